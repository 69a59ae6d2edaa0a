//! Voice rooms in Redis: the keys, the Lua scripts that change a room
//! atomically, and how their answers and control messages read.
//!
//! - `ferrochat:voice:room:<group>`: a hash, one field per participant
//!   socket, `<node>:<socket>` → `<muted 0|1>|<userId>|<order>|<username>`
//!   (`order` is the change number of the join: the roster's order);
//! - `ferrochat:voice:seq`: the change counter (INCR), the 121/125 `seq`,
//!   one for every room of the cluster, so it only grows. Made at the
//!   current time in milliseconds, so that after a restart of Redis (which
//!   forgets it) it still starts above what members saw before;
//! - `ferrochat:voice:node:<node>`: the groups where a relay has (or may
//!   have) participants, and `ferrochat:voice:nodes` the relays that have
//!   any: what the survivors clean up after a relay is gone;
//! - `ferrochat:voice:ctl`: the control channel. Every script that changes
//!   a room publishes the room as it is now, with its change number, from
//!   inside the script: messages go out in change order, and the roster
//!   and number of a message always belong together;
//! - `ferrochat:voice:audio:<group>`: a room's audio (see `voice.rs`).
//!
//! Each script is one EVAL: the check and the change cannot interleave
//! with another relay's (capacity holds across relays). Usernames, node
//! ids and numbers never contain `|` or a newline, so the formats need no
//! escaping.

use shared::{GroupId, UserId, VoiceParticipant};

/// The control channel.
pub(super) const CTL: &str = "ferrochat:voice:ctl";
/// The change counter.
pub(super) const SEQ: &str = "ferrochat:voice:seq";
/// The relays that have had participants.
pub(super) const NODES: &str = "ferrochat:voice:nodes";
/// Prefix of a relay's set of groups.
pub(super) const NODE_PREFIX: &str = "ferrochat:voice:node:";
/// Prefix of the audio channels.
pub(super) const AUDIO_PREFIX: &str = "ferrochat:voice:audio:";

/// A room's hash.
pub(super) fn room_key(group: GroupId) -> String {
    format!("ferrochat:voice:room:{}", group.0)
}

/// A room's audio channel.
pub(super) fn audio_channel(group: GroupId) -> String {
    format!("{AUDIO_PREFIX}{}", group.0)
}

/// A participant's field in the room's hash.
pub(super) fn field(node: &str, socket: u64) -> String {
    format!("{node}:{socket}")
}

/// Shared by every script. KEYS[1] is the room, KEYS[2] the counter;
/// ARGV[1] the group, ARGV[2] the control channel, ARGV[3] the prefix of
/// the relays' group sets. `changed` counts the change, publishes the room
/// and returns `{1, seq, flat roster}`.
const PRELUDE: &str = r"
local group, ctl, nodeprefix = ARGV[1], ARGV[2], ARGV[3]
local function user_of(v) return string.match(v, '^%d|([^|]*)|') end
local function node_of(f) return string.match(f, '^(.*):[^:]*$') end
local function tidy(node)
  local p = node .. ':'
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, #p) == p then return end
  end
  redis.call('SREM', nodeprefix .. node, group)
end
local function next_seq()
  if redis.call('EXISTS', KEYS[2]) == 0 then
    local t = redis.call('TIME')
    local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('SET', KEYS[2], string.format('%d', ms))
  end
  return redis.call('INCR', KEYS[2])
end
local function changed(extras, seq)
  seq = seq or next_seq()
  local flat = redis.call('HGETALL', KEYS[1])
  local msg = {group, tostring(seq), extras}
  for i = 1, #flat do msg[#msg + 1] = flat[i] end
  redis.call('PUBLISH', ctl, table.concat(msg, '\n'))
  return {1, tostring(seq), flat}
end
local function unchanged(status)
  return {status, tostring(redis.call('GET', KEYS[2]) or '0'), redis.call('HGETALL', KEYS[1])}
end
";

/// ARGV[4] field, ARGV[5] user, ARGV[6] username, ARGV[7] capacity,
/// ARGV[8] node, ARGV[9] the set of relays. -1: full; 0: already in.
const JOIN: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[4]) == 1 then return unchanged(0) end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[7]) then return {-1, '0', {}} end
local seq = next_seq()
redis.call('HSET', KEYS[1], ARGV[4], '0|' .. ARGV[5] .. '|' .. tostring(seq) .. '|' .. ARGV[6])
redis.call('SADD', nodeprefix .. ARGV[8], group)
redis.call('SADD', ARGV[9], ARGV[8])
return changed('', seq)
";

/// ARGV[4] field. 0: not in the room.
const LEAVE: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[4])
if not v then return {0, '0', {}} end
redis.call('HDEL', KEYS[1], ARGV[4])
tidy(node_of(ARGV[4]))
return changed(user_of(v))
";

/// ARGV[4] field, ARGV[5] '0' or '1'. 0: not in the room; 2: no change.
const MUTE: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[4])
if not v then return {0, '0', {}} end
if string.sub(v, 1, 1) == ARGV[5] then return unchanged(2) end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5] .. string.sub(v, 2))
return changed('')
";

/// ARGV[4] user: every socket of theirs, on any relay. 0: none.
const EVICT: &str = r"
local flat = redis.call('HGETALL', KEYS[1])
local nodes = {}
local gone = false
for i = 1, #flat, 2 do
  if user_of(flat[i + 1]) == ARGV[4] then
    redis.call('HDEL', KEYS[1], flat[i])
    nodes[node_of(flat[i])] = true
    gone = true
  end
end
if not gone then return {0, '0', {}} end
for n, _ in pairs(nodes) do tidy(n) end
return changed(ARGV[4])
";

/// ARGV[4] node: every socket of a relay that is gone (or restarted).
/// 0: none.
const PURGE: &str = r"
local flat = redis.call('HGETALL', KEYS[1])
local p = ARGV[4] .. ':'
local users = {}
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, #p) == p then
    redis.call('HDEL', KEYS[1], flat[i])
    users[#users + 1] = user_of(flat[i + 1])
  end
end
redis.call('SREM', nodeprefix .. ARGV[4], group)
if #users == 0 then return {0, '0', {}} end
return changed(table.concat(users, ','))
";

/// The room and the counter, read together.
const READ: &str = r"
return unchanged(0)
";

/// Which script.
#[derive(Clone, Copy, Debug)]
pub(super) enum Script {
    Join,
    Leave,
    Mute,
    Evict,
    Purge,
    Read,
}

impl Script {
    fn body(self) -> &'static str {
        match self {
            Script::Join => JOIN,
            Script::Leave => LEAVE,
            Script::Mute => MUTE,
            Script::Evict => EVICT,
            Script::Purge => PURGE,
            Script::Read => READ,
        }
    }

    /// The EVAL command for `group`'s room, with the script's own
    /// arguments (ARGV[4] on) in `args`.
    pub(super) fn cmd(self, group: GroupId, args: &[String]) -> redis::Cmd {
        let mut c = redis::cmd("EVAL");
        c.arg(format!("{PRELUDE}{}", self.body()))
            .arg(2)
            .arg(room_key(group))
            .arg(SEQ)
            .arg(group.0)
            .arg(CTL)
            .arg(NODE_PREFIX);
        for a in args {
            c.arg(a);
        }
        c
    }
}

/// What a script answers: its status, the change number and the room.
pub(super) type Reply = (i64, String, Vec<String>);

/// One participant as Redis holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub node: String,
    pub socket: u64,
    pub user: UserId,
    pub muted: bool,
    pub order: u64,
    pub username: String,
}

/// A room as a script or a control message gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Room {
    pub group: GroupId,
    pub seq: u64,
    /// Users just taken out (they hear the change too).
    pub gone: Vec<UserId>,
    /// In joining order.
    pub entries: Vec<Entry>,
}

impl Room {
    /// The participant list of 121 and 125.
    pub fn roster(&self) -> Vec<VoiceParticipant> {
        self.entries
            .iter()
            .map(|e| VoiceParticipant {
                user_id: e.user,
                username: e.username.clone(),
                muted: e.muted,
            })
            .collect()
    }

    /// Whether a relay other than `node` has participants.
    pub fn elsewhere(&self, node: &str) -> bool {
        self.entries.iter().any(|e| e.node != node)
    }
}

/// A flat `field, value, …` list, sorted into joining order (unreadable
/// entries skipped).
pub(super) fn entries(flat: &[String]) -> Vec<Entry> {
    let mut out: Vec<Entry> = flat
        .chunks_exact(2)
        .filter_map(|kv| {
            let (node, socket) = kv[0].rsplit_once(':')?;
            let mut v = kv[1].splitn(4, '|');
            let muted = v.next()? == "1";
            let user = UserId(v.next()?.parse().ok()?);
            let order = v.next()?.parse().ok()?;
            Some(Entry {
                node: node.to_string(),
                socket: socket.parse().ok()?,
                user,
                muted,
                order,
                username: v.next()?.to_string(),
            })
        })
        .collect();
    out.sort_by_key(|e| e.order);
    out
}

/// A script's room.
pub(super) fn room_of(group: GroupId, reply: &Reply) -> Room {
    Room {
        group,
        seq: reply.1.parse().unwrap_or(0),
        gone: Vec::new(),
        entries: entries(&reply.2),
    }
}

/// A control message: `group \n seq \n gone-users \n field \n value …`.
pub(super) fn parse_ctl(payload: &[u8]) -> Option<Room> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut lines = text.split('\n');
    let group = GroupId(lines.next()?.parse().ok()?);
    let seq = lines.next()?.parse().ok()?;
    let gone = lines
        .next()?
        .split(',')
        .filter_map(|u| u.parse().ok().map(UserId))
        .collect();
    let flat: Vec<String> = lines.map(str::to_string).collect();
    Some(Room {
        group,
        seq,
        gone,
        entries: entries(&flat),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_read_in_joining_order() {
        let msg = "7\n12\n3,4\nn1:5\n0|2|11|bob\nn0:9\n1|1|10|al.ice-x";
        let room = parse_ctl(msg.as_bytes()).unwrap();
        assert_eq!((room.group, room.seq), (GroupId(7), 12));
        assert_eq!(room.gone, vec![UserId(3), UserId(4)]);
        let names: Vec<_> = room.roster().into_iter().map(|p| p.username).collect();
        assert_eq!(names, ["al.ice-x", "bob"]);
        assert!(room.entries[0].muted && !room.entries[1].muted);
        assert_eq!(
            (room.entries[0].node.as_str(), room.entries[0].socket),
            ("n0", 9)
        );
        assert!(room.elsewhere("n0") && room.elsewhere("n1"));
        let alone = parse_ctl(b"7\n14\n\nn0:9\n0|1|10|alice").unwrap();
        assert!(!alone.elsewhere("n0") && alone.elsewhere("n1"));
        let empty = parse_ctl(b"7\n13\n").unwrap();
        assert!(empty.entries.is_empty() && empty.gone.is_empty());
        assert!(parse_ctl(b"x\n1\n").is_none());
    }
}
