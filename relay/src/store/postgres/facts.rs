//! Facts for the rules, gathered inside a transaction.
//!
//! The rules (`crate::rules`) are synchronous functions over small traits;
//! PostgreSQL is a network round trip away. So a backend of this kind runs
//! a rule as "gather facts, decide, apply": the rule runs against what is
//! in memory ([`Facts`]), and where it asks for something not loaded yet
//! the sheet it runs on answers with the missing fact ([`Need`]) instead
//! (the rule traits' error type), which aborts that run of the rule. The
//! caller loads every missing fact of every item of its batch at once, in
//! one round trip ([`Facts::load`]: one query per kind of fact, pipelined),
//! and runs the rules again from the start. Rules are deterministic over
//! their facts, so the last run, the one that asks for nothing, is the
//! decision; the primitive changes it recorded are then applied with a few
//! batched statements. The hot path (chats) loads what it knows it will be
//! asked for before the first run, so it decides in one go.

use super::conn::Pg;
use super::schema::KIND_GROUP;
use crate::rules::group::GroupState;
use crate::store::{ConvId, Original, UserRef};
use futures_util::future::try_join_all;
use shared::{MsgId, UserId};
use std::collections::{BTreeSet, HashMap};
use tokio_postgres::types::ToSql;
use tokio_postgres::Error as PgError;

/// A fact a rule asked for that is not loaded yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Need {
    /// The conversation of a pair of users (lower id first).
    Direct(i64, i64),
    /// Whether a user exists, and their name.
    User(UserId),
    /// A user by username, lowercased.
    Named(String),
    /// The message a sender stored under an idempotency key.
    Key(UserId, String),
    /// A group as the group rules see it (read under its row lock).
    Group(ConvId),
    /// A user's row in a conversation's members, with the conversation's
    /// kind and last `seq`.
    Member(ConvId, UserId),
    /// A conversation's last `seq`.
    LastSeq(ConvId),
    /// Who sent the messages `after < seq <= upto` of a conversation,
    /// other than a user.
    Senders(ConvId, u64, u64, UserId),
    /// A fresh conversation id.
    NewConv,
}

/// A user's row in a conversation's members.
#[derive(Clone, Copy, Debug)]
pub(super) struct MemberRow {
    /// The conversation's kind.
    pub kind: i16,
    pub joined: u64,
    pub read: u64,
}

/// What is known, by kind; `None` records that something does not exist,
/// so it is not asked for again.
#[derive(Default)]
pub(super) struct Facts {
    pub directs: HashMap<(i64, i64), Option<ConvId>>,
    pub users: HashMap<UserId, Option<String>>,
    pub named: HashMap<String, Option<UserRef>>,
    pub keys: HashMap<(UserId, String), Option<Original>>,
    pub groups: HashMap<ConvId, Option<GroupState>>,
    pub members: HashMap<(ConvId, UserId), Option<MemberRow>>,
    pub last_seq: HashMap<ConvId, u64>,
    pub senders: HashMap<(ConvId, u64, u64, UserId), Vec<UserId>>,
    /// Conversation ids taken from the sequence, not used yet.
    pub new_convs: Vec<ConvId>,
}

/// A fact from a map, or the [`Need`] for it.
pub(super) fn known<K, V>(
    map: &HashMap<K, V>,
    key: K,
    need: impl FnOnce(K) -> Need,
) -> Result<V, Need>
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    match map.get(&key) {
        Some(v) => Ok(v.clone()),
        None => Err(need(key)),
    }
}

/// A pair's key: lower user id first.
pub(super) fn pair(a: UserId, b: UserId) -> (i64, i64) {
    (a.0.min(b.0), a.0.max(b.0))
}

/// A database integer as the unsigned `seq` the relay uses.
pub(super) fn seq(v: i64) -> u64 {
    v.max(0) as u64
}

/// What one query of [`Facts::load`] brought back.
enum Loaded {
    Directs(Vec<(i64, i64, ConvId)>),
    Users(Vec<(UserId, String)>),
    Named(Vec<UserRef>),
    Keys(Vec<((UserId, String), Original)>),
    Groups(Vec<(ConvId, GroupState, u64)>),
    Members(Vec<((ConvId, UserId), MemberRow, u64)>),
    LastSeqs(Vec<(ConvId, u64)>),
    Senders((ConvId, u64, u64, UserId), Vec<UserId>),
    NewConvs(Vec<ConvId>),
}

type Fetch<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Loaded, PgError>> + Send + 'a>>;

impl Facts {
    /// Loads `needs` (each kind with one query, the kinds pipelined in one
    /// round trip) and records what was not found as absent.
    pub async fn load(&mut self, c: &Pg, needs: BTreeSet<Need>) -> Result<(), PgError> {
        let mut directs = (Vec::new(), Vec::new());
        let (mut users, mut named, mut groups, mut last) = (vec![], vec![], vec![], vec![]);
        let mut keys = (Vec::new(), Vec::new());
        let mut members = (Vec::new(), Vec::new());
        let mut fetches: Vec<Fetch<'_>> = Vec::new();
        let mut new_convs = 0i64;
        for need in &needs {
            match need {
                Need::Direct(lo, hi) => {
                    self.directs.insert((*lo, *hi), None);
                    directs.0.push(*lo);
                    directs.1.push(*hi);
                }
                Need::User(u) => {
                    self.users.insert(*u, None);
                    users.push(u.0);
                }
                Need::Named(n) => {
                    self.named.insert(n.clone(), None);
                    named.push(n.clone());
                }
                Need::Key(from, key) => {
                    self.keys.insert((*from, key.clone()), None);
                    keys.0.push(from.0);
                    keys.1.push(key.clone());
                }
                Need::Group(g) => {
                    self.groups.insert(*g, None);
                    groups.push(*g);
                }
                Need::Member(conv, user) => {
                    self.members.insert((*conv, *user), None);
                    members.0.push(*conv);
                    members.1.push(user.0);
                }
                Need::LastSeq(conv) => {
                    self.last_seq.insert(*conv, 0);
                    last.push(*conv);
                }
                Need::Senders(conv, after, upto, except) => {
                    let k = (*conv, *after, *upto, *except);
                    fetches.push(Box::pin(async move {
                        let s = c.prepare_cached(SENDERS).await?;
                        let rows = c
                            .query(&s, &[&k.0, &(k.1 as i64), &(k.2 as i64), &k.3 .0])
                            .await?;
                        Ok(Loaded::Senders(
                            k,
                            rows.iter().map(|r| UserId(r.get(0))).collect(),
                        ))
                    }));
                }
                Need::NewConv => new_convs += 1,
            }
        }
        if !directs.0.is_empty() {
            fetches.push(Box::pin(async move {
                let s = c.prepare_cached(DIRECTS).await?;
                let rows = c.query(&s, &[&directs.0, &directs.1]).await?;
                Ok(Loaded::Directs(
                    rows.iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect(),
                ))
            }));
        }
        if !users.is_empty() {
            fetches.push(Box::pin(async move {
                let s = c.prepare_cached(USERS).await?;
                let rows = c.query(&s, &[&users]).await?;
                Ok(Loaded::Users(
                    rows.iter().map(|r| (UserId(r.get(0)), r.get(1))).collect(),
                ))
            }));
        }
        if !named.is_empty() {
            fetches.push(Box::pin(async move {
                let s = c.prepare_cached(NAMED).await?;
                let rows = c.query(&s, &[&named]).await?;
                Ok(Loaded::Named(rows.iter().map(user_ref).collect()))
            }));
        }
        if !keys.0.is_empty() {
            fetches.push(Box::pin(async move {
                let s = c.prepare_cached(KEYS).await?;
                let rows = c.query(&s, &[&keys.0, &keys.1]).await?;
                Ok(Loaded::Keys(
                    rows.iter()
                        .map(|r| {
                            let original = Original {
                                msg_id: r.get::<_, MsgId>(2),
                                ts: r.get(3),
                                seq: seq(r.get(4)),
                            };
                            ((UserId(r.get(0)), r.get::<_, String>(1)), original)
                        })
                        .collect(),
                ))
            }));
        }
        if !groups.is_empty() {
            fetches.push(Box::pin(load_groups(c, groups)));
        }
        if !members.0.is_empty() {
            fetches.push(Box::pin(async move {
                let s = c.prepare_cached(MEMBER_ROWS).await?;
                let rows = c.query(&s, &[&members.0, &members.1]).await?;
                Ok(Loaded::Members(
                    rows.iter()
                        .map(|r| {
                            let row = MemberRow {
                                kind: r.get(2),
                                joined: seq(r.get(3)),
                                read: seq(r.get(4)),
                            };
                            ((r.get(0), UserId(r.get(1))), row, seq(r.get(5)))
                        })
                        .collect(),
                ))
            }));
        }
        if !last.is_empty() {
            fetches.push(Box::pin(async move {
                let s = c.prepare_cached(LAST_SEQS).await?;
                let rows = c.query(&s, &[&last]).await?;
                Ok(Loaded::LastSeqs(
                    rows.iter().map(|r| (r.get(0), seq(r.get(1)))).collect(),
                ))
            }));
        }
        if new_convs > 0 {
            fetches.push(Box::pin(async move {
                let s = c.prepare_cached(NEW_CONVS).await?;
                let rows = c.query(&s, &[&new_convs]).await?;
                Ok(Loaded::NewConvs(rows.iter().map(|r| r.get(0)).collect()))
            }));
        }
        for loaded in try_join_all(fetches).await? {
            self.merge(loaded);
        }
        Ok(())
    }

    fn merge(&mut self, loaded: Loaded) {
        match loaded {
            Loaded::Directs(rows) => {
                for (lo, hi, conv) in rows {
                    self.directs.insert((lo, hi), Some(conv));
                }
            }
            Loaded::Users(rows) => {
                for (id, name) in rows {
                    self.users.insert(id, Some(name));
                }
            }
            Loaded::Named(rows) => {
                for u in rows {
                    self.named.insert(u.username.to_lowercase(), Some(u));
                }
            }
            Loaded::Keys(rows) => {
                for (k, o) in rows {
                    self.keys.insert(k, Some(o));
                }
            }
            Loaded::Groups(rows) => {
                for (g, state, last) in rows {
                    self.groups.insert(g, Some(state));
                    self.last_seq.insert(g, last);
                }
            }
            Loaded::Members(rows) => {
                for (k, row, last) in rows {
                    self.members.insert(k, Some(row));
                    self.last_seq.insert(k.0, last);
                }
            }
            Loaded::LastSeqs(rows) => self.last_seq.extend(rows),
            Loaded::Senders(k, senders) => {
                self.senders.insert(k, senders);
            }
            Loaded::NewConvs(ids) => self.new_convs.extend(ids),
        }
    }
}

/// Groups as the group rules see them, with their last `seq` (callers
/// lock a group's row before they ask, so the members are exact).
async fn load_groups(c: &Pg, ids: Vec<ConvId>) -> Result<Loaded, PgError> {
    let (rows, member_rows) = {
        let (s, m) = (
            c.prepare_cached(GROUPS).await?,
            c.prepare_cached(GROUP_MEMBERS).await?,
        );
        let (rows, members): ([&(dyn ToSql + Sync); 2], [&(dyn ToSql + Sync); 1]) =
            ([&ids, &KIND_GROUP], [&ids]);
        futures_util::try_join!(c.query(&s, &rows), c.query(&m, &members))?
    };
    let mut members: HashMap<ConvId, Vec<(UserId, u64)>> = HashMap::new();
    for r in &member_rows {
        members
            .entry(r.get(0))
            .or_default()
            .push((UserId(r.get(1)), seq(r.get(2))));
    }
    Ok(Loaded::Groups(
        rows.iter()
            .map(|r| {
                let id: ConvId = r.get(0);
                let state = GroupState {
                    name: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    owner: r.get::<_, Option<i64>>(2).map(UserId),
                    public: r.get(3),
                    members: members.remove(&id).unwrap_or_default(),
                    desk: r.get(5),
                };
                (id, state, seq(r.get(4)))
            })
            .collect(),
    ))
}

/// A `UserRef` from a row of (id, username).
pub(super) fn user_ref(r: &tokio_postgres::Row) -> UserRef {
    UserRef {
        id: UserId(r.get(0)),
        username: r.get(1),
    }
}

pub(super) const DIRECTS: &str =
    "SELECT d.user_lo, d.user_hi, d.conv_id FROM direct_conversations d
     JOIN unnest($1::int8[], $2::int8[]) AS p(lo, hi) ON d.user_lo = p.lo AND d.user_hi = p.hi";
// Visitors are nobody to the chat's rules: never a recipient, never a
// group member (see `rules::desk`).
const USERS: &str = "SELECT id, username FROM users WHERE id = ANY($1::int8[]) AND role <> 3";
const NAMED: &str = r#"SELECT id, username FROM users WHERE lower(username) COLLATE "C" = ANY($1::text[]) AND role <> 3"#;
/// One index probe per key, whatever the planner thinks of the table: as a
/// plain join, a plan made while `messages` was small (a fresh database)
/// hashed the keys and scanned the whole table, once per transaction, so
/// every commit got slower as messages accumulated (measured: 1.8 ms per
/// call at 60k rows, 8 of the 10 s the writer spent in PostgreSQL). The
/// `LIMIT` keeps the subquery from being flattened back into that join;
/// the key is unique anyway.
pub(super) const KEYS: &str = "SELECT m.from_id, m.client_msg_id, m.msg_id, m.ts, m.seq
     FROM unnest($1::int8[], $2::text[]) AS k(f, key)
     CROSS JOIN LATERAL (SELECT from_id, client_msg_id, msg_id, ts, seq FROM messages
                         WHERE from_id = k.f AND client_msg_id = k.key LIMIT 1) m";
const GROUPS: &str = "SELECT c.id, c.name, c.owner_id, c.is_public, c.last_seq,
            EXISTS (SELECT 1 FROM desk_conversations d WHERE d.group_id = c.id)
     FROM conversations c WHERE c.id = ANY($1::int8[]) AND c.kind = $2";
const GROUP_MEMBERS: &str = "SELECT conv_id, user_id, joined_seq FROM members
     WHERE conv_id = ANY($1::int8[]) ORDER BY conv_id, user_id";
const MEMBER_ROWS: &str =
    "SELECT mb.conv_id, mb.user_id, c.kind, mb.joined_seq, mb.read_seq, c.last_seq
     FROM unnest($1::int8[], $2::int8[]) AS k(conv, usr)
     JOIN members mb ON mb.conv_id = k.conv AND mb.user_id = k.usr
     JOIN conversations c ON c.id = k.conv";
const LAST_SEQS: &str = "SELECT id, last_seq FROM conversations WHERE id = ANY($1::int8[])";
const SENDERS: &str = "SELECT DISTINCT from_id FROM messages
     WHERE conv_id = $1 AND seq > $2 AND seq <= $3 AND from_id <> $4 ORDER BY from_id";
const NEW_CONVS: &str =
    "SELECT nextval(pg_get_serial_sequence('conversations', 'id')) FROM generate_series(1, $1::int8)";
