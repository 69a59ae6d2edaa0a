//! Placing a batch of chats inside the writer's transaction: one group
//! commit.
//!
//! 1. Facts: the conversation of every pair (cached across batches: it
//!    never changes once created) and the stored idempotency keys, in one
//!    round trip. Keys are looked up *before* any `seq` is taken, so a
//!    resend never burns one.
//! 2. The first message between two users: `rules::chat::resolve` says
//!    which pairs need a conversation; they are created at once (sorted,
//!    `ON CONFLICT DO NOTHING`: another relay may be creating the same pair,
//!    and then its row is used).
//! 3. The counter rows of every conversation in the batch are locked in id
//!    order (`FOR NO KEY UPDATE`, so two writers covering several
//!    conversations never deadlock), and the member lists of the groups
//!    read after the lock, so they are the members at the `seq`s about to
//!    be taken. A group's list is cached with the `members_version` it was
//!    read at and read again only when a change bumped it.
//! 4. `rules::chat::resolve` decides each chat in order; a key repeated
//!    within the batch is a duplicate of its first use. Each stored chat
//!    takes the next `seq` of its conversation and a UUIDv7.
//! 5. [`write`]: one multi-row insert (`UNNEST`) for the messages and one
//!    update of the counters; the writer pipelines them with `COMMIT`.

use super::conn::{Failure, Pg};
use super::facts::{known, pair, seq, Facts, Need, DIRECTS};
use super::schema::{KIND_DIRECT, KIND_GROUP};
use crate::clock::now_ms;
use crate::error::Error;
use crate::rules::chat::{self, ChatFacts, Verdict};
use crate::store::ids::IdGen;
use crate::store::{ConvId, NewChat, Original};
use shared::{GroupId, MsgId, Target, UserId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error as PgError, Statement};

/// Entries the writer caches before it starts over (bounds memory).
const CACHE_LIMIT: usize = 100_000;

/// What the writer keeps between batches.
#[derive(Default)]
pub(super) struct ChatCache {
    /// A pair's conversation: fixed once it exists.
    directs: HashMap<(i64, i64), ConvId>,
    /// A group's members (sorted) and the `members_version` they are of.
    groups: HashMap<ConvId, (i64, Arc<Vec<UserId>>)>,
}

impl ChatCache {
    /// A pair's conversation, if this writer has seen it.
    pub fn direct(&self, pair: (i64, i64)) -> Option<ConvId> {
        self.directs.get(&pair).copied()
    }
}

/// Where one chat went.
pub(super) enum Slot {
    Stored(Spot),
    Duplicate(Original),
    Refused(Error),
}

/// A stored chat's place.
pub(super) struct Spot {
    pub conv: ConvId,
    pub seq: u64,
    pub msg_id: MsgId,
    pub ts: i64,
    pub members: Option<Arc<Vec<UserId>>>,
}

/// The decisions for a batch, in the order of its chats.
pub(super) struct Placement {
    pub slots: Vec<Slot>,
    /// Each conversation's new last `seq`.
    lasts: Vec<(ConvId, u64)>,
}

impl Placement {
    /// How many chats it stores.
    pub fn stored(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Stored(_)))
            .count()
    }
}

/// The writer's chat statements, prepared once per connection so that
/// pipelined requests go out in the order they are issued.
pub(super) struct Statements {
    lock: Statement,
    members: Statement,
    create: Statement,
    directs: Statement,
    insert: Statement,
    advance: Statement,
    outbox: Statement,
}

impl Statements {
    pub async fn prepare(c: &Pg) -> Result<Statements, PgError> {
        Ok(Statements {
            lock: c.prepare_cached(LOCK).await?,
            members: c.prepare_cached(MEMBER_IDS).await?,
            create: c.prepare_cached(CREATE_DIRECTS).await?,
            directs: c.prepare_cached(DIRECTS).await?,
            insert: c.prepare_cached(INSERT_MESSAGES).await?,
            advance: c.prepare_cached(ADVANCE).await?,
            outbox: c.prepare_cached(super::bots::OUTBOX).await?,
        })
    }
}

/// A conversation locked for the batch.
struct Locked {
    kind: i16,
    last: u64,
    version: i64,
}

/// The facts one run of `rules::chat::resolve` sees.
struct Sheet<'a> {
    facts: &'a Facts,
    /// The groups' members, once locked (`None` while planning).
    groups: Option<&'a HashMap<ConvId, Arc<Vec<UserId>>>>,
    /// Keys stored earlier in this batch.
    batch_keys: &'a HashMap<(UserId, String), Original>,
}

impl ChatFacts for Sheet<'_> {
    type Error = Need;

    fn direct(&mut self, a: UserId, b: UserId) -> Result<Option<ConvId>, Need> {
        let (lo, hi) = pair(a, b);
        known(&self.facts.directs, (lo, hi), |(lo, hi)| {
            Need::Direct(lo, hi)
        })
    }

    fn user_exists(&mut self, user: UserId) -> Result<bool, Need> {
        known(&self.facts.users, user, Need::User).map(|u| u.is_some())
    }

    fn group_members(&mut self, g: GroupId) -> Result<Option<Arc<Vec<UserId>>>, Need> {
        match self.groups {
            Some(groups) => Ok(groups.get(&g.0).cloned()),
            None => Err(Need::Group(g.0)),
        }
    }

    fn original(&mut self, from: UserId, key: &str) -> Result<Option<Original>, Need> {
        if let Some(o) = self.batch_keys.get(&(from, key.to_string())) {
            return Ok(Some(*o));
        }
        known(&self.facts.keys, (from, key.to_string()), |(f, k)| {
            Need::Key(f, k)
        })
    }
}

/// Decides every chat of the batch in the open transaction (locking the
/// conversations it stores into); writes nothing yet but new pairs'
/// conversations.
pub(super) async fn place(
    c: &Pg,
    st: &Statements,
    chats: &[NewChat],
    cache: &mut ChatCache,
    ids: &mut IdGen,
) -> Result<Placement, Failure> {
    if cache.directs.len() + cache.groups.len() > CACHE_LIMIT {
        *cache = ChatCache::default();
    }
    let mut facts = Facts::default();
    let mut needs = BTreeSet::new();
    let mut convs = BTreeSet::new();
    for ch in chats {
        match ch.to {
            Target::User(peer) if peer != ch.from => {
                let p = pair(ch.from, peer);
                match cache.directs.get(&p) {
                    Some(conv) => {
                        facts.directs.insert(p, Some(*conv));
                        convs.insert(*conv);
                    }
                    None => {
                        needs.insert(Need::Direct(p.0, p.1));
                    }
                }
            }
            Target::User(_) => {}
            Target::Group(g) => {
                convs.insert(g.0);
            }
        }
        if let Some(key) = &ch.client_msg_id {
            needs.insert(Need::Key(ch.from, key.clone()));
        }
    }
    let new_pairs = needs.iter().any(|n| matches!(n, Need::Direct(..)));
    let locked = if new_pairs {
        facts.load(c, needs).await?;
        for (p, conv) in &facts.directs {
            if let Some(conv) = conv {
                cache.directs.insert(*p, *conv);
                convs.insert(*conv);
            }
        }
        for conv in create_pairs(c, st, chats, &mut facts).await? {
            convs.insert(conv);
        }
        lock(c, st, &convs, cache).await?
    } else {
        // Every pair is known: keys and locks in one round trip.
        futures_util::try_join!(facts.load(c, needs), lock(c, st, &convs, cache))?.1
    };
    refresh_members(c, st, &locked, cache).await?;
    let groups: HashMap<ConvId, Arc<Vec<UserId>>> = locked
        .iter()
        .filter(|(_, l)| l.kind == KIND_GROUP)
        .filter_map(|(id, _)| cache.groups.get(id).map(|g| (*id, g.1.clone())))
        .collect();
    let mut lasts: HashMap<ConvId, u64> = locked.iter().map(|(id, l)| (*id, l.last)).collect();
    let mut batch_keys = HashMap::new();
    let mut slots = Vec::with_capacity(chats.len());
    let now = now_ms();
    for ch in chats {
        let mut sheet = Sheet {
            facts: &facts,
            groups: Some(&groups),
            batch_keys: &batch_keys,
        };
        let verdict = chat::resolve(&mut sheet, ch.from, ch.to, ch.client_msg_id.as_deref())
            .map_err(|need| {
                Failure::Other(format!("a chat needed {need:?}, which was not loaded"))
            })?;
        slots.push(match verdict {
            Verdict::Conv(conv, members) => {
                let Some(last) = lasts.get_mut(&conv) else {
                    return Err(Failure::Other(format!(
                        "conversation {conv} was not locked"
                    )));
                };
                *last += 1;
                let (msg_id, ts) = ids.next(now);
                if let Some(key) = &ch.client_msg_id {
                    let o = Original {
                        msg_id,
                        ts,
                        seq: *last,
                    };
                    batch_keys.insert((ch.from, key.clone()), o);
                }
                Slot::Stored(Spot {
                    conv,
                    seq: *last,
                    msg_id,
                    ts,
                    members,
                })
            }
            Verdict::Duplicate(o) => Slot::Duplicate(o),
            Verdict::Refused(e) => Slot::Refused(e),
            Verdict::NewDirect(peer) => {
                return Err(Failure::Other(format!(
                    "the conversation of {} and {peer} was not created",
                    ch.from
                )))
            }
        });
    }
    let mut lasts: Vec<(ConvId, u64)> = lasts
        .into_iter()
        .filter(|(id, last)| locked.get(id).is_some_and(|l| l.last != *last))
        .collect();
    lasts.sort_unstable();
    Ok(Placement { slots, lasts })
}

/// Creates the conversations of the pairs whose first message this batch
/// carries (as `rules::chat::resolve` decides: not to oneself, not to
/// nobody, not for a resent key); returns them.
async fn create_pairs(
    c: &Pg,
    st: &Statements,
    chats: &[NewChat],
    facts: &mut Facts,
) -> Result<Vec<ConvId>, PgError> {
    let none = HashMap::new();
    let mut new = BTreeSet::new();
    loop {
        let mut needs = BTreeSet::new();
        for ch in chats.iter().filter(|ch| matches!(ch.to, Target::User(_))) {
            let mut sheet = Sheet {
                facts,
                groups: None,
                batch_keys: &none,
            };
            match chat::resolve(&mut sheet, ch.from, ch.to, ch.client_msg_id.as_deref()) {
                Ok(Verdict::NewDirect(peer)) => {
                    new.insert(pair(ch.from, peer));
                }
                Ok(_) => {}
                Err(need) => {
                    needs.insert(need);
                }
            }
        }
        if needs.is_empty() {
            break;
        }
        facts.load(c, needs).await?;
    }
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let (lo, hi): (Vec<i64>, Vec<i64>) = new.iter().copied().unzip();
    // Sorted, so two writers creating the same pairs wait for each other
    // instead of deadlocking; a pair another relay created meanwhile is
    // read back by the second statement (run after the first's waits).
    let now = now_ms();
    let create: [&(dyn ToSql + Sync); 4] = [&lo, &hi, &now, &KIND_DIRECT];
    let read: [&(dyn ToSql + Sync); 2] = [&lo, &hi];
    let (_, rows) =
        futures_util::try_join!(c.execute(&st.create, &create), c.query(&st.directs, &read))?;
    let mut convs = Vec::with_capacity(rows.len());
    for r in rows {
        let conv: ConvId = r.get(2);
        facts.directs.insert((r.get(0), r.get(1)), Some(conv));
        convs.push(conv);
    }
    Ok(convs)
}

/// Locks the conversations' counter rows in id order; reads the members of
/// the groups among them not cached yet (after the lock: the members at
/// this moment).
async fn lock(
    c: &Pg,
    st: &Statements,
    convs: &BTreeSet<ConvId>,
    cache: &mut ChatCache,
) -> Result<HashMap<ConvId, Locked>, PgError> {
    let ids: Vec<ConvId> = convs.iter().copied().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let uncached: Vec<ConvId> = ids
        .iter()
        .copied()
        .filter(|id| !cache.groups.contains_key(id))
        .collect();
    let lock: [&(dyn ToSql + Sync); 1] = [&ids];
    let read: [&(dyn ToSql + Sync); 2] = [&uncached, &KIND_GROUP];
    let (rows, members) = if uncached.is_empty() {
        (c.query(&st.lock, &lock).await?, Vec::new())
    } else {
        futures_util::try_join!(c.query(&st.lock, &lock), c.query(&st.members, &read))?
    };
    let locked: HashMap<ConvId, Locked> = rows
        .iter()
        .map(|r| {
            let l = Locked {
                kind: r.get(1),
                last: seq(r.get(2)),
                version: r.get(3),
            };
            (r.get(0), l)
        })
        .collect();
    for (id, list) in group_lists(&members) {
        if let Some(l) = locked.get(&id) {
            cache.groups.insert(id, (l.version, Arc::new(list)));
        }
    }
    for id in uncached {
        if locked.get(&id).is_some_and(|l| l.kind == KIND_GROUP) {
            // A group nobody is in any more.
            let version = locked[&id].version;
            cache
                .groups
                .entry(id)
                .or_insert((version, Arc::new(Vec::new())));
        }
    }
    Ok(locked)
}

/// Reads again the member lists whose `members_version` moved on.
async fn refresh_members(
    c: &Pg,
    st: &Statements,
    locked: &HashMap<ConvId, Locked>,
    cache: &mut ChatCache,
) -> Result<(), PgError> {
    let stale: Vec<ConvId> = locked
        .iter()
        .filter(|(id, l)| {
            l.kind == KIND_GROUP && cache.groups.get(id).is_some_and(|g| g.0 != l.version)
        })
        .map(|(id, _)| *id)
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let rows = c.query(&st.members, &[&stale, &KIND_GROUP]).await?;
    let mut lists = group_lists(&rows);
    for id in stale {
        let list = lists.remove(&id).unwrap_or_default();
        cache
            .groups
            .insert(id, (locked[&id].version, Arc::new(list)));
    }
    Ok(())
}

/// Member ids by group from rows of (conv_id, user_id), sorted.
fn group_lists(rows: &[tokio_postgres::Row]) -> HashMap<ConvId, Vec<UserId>> {
    let mut lists: HashMap<ConvId, Vec<UserId>> = HashMap::new();
    for r in rows {
        lists.entry(r.get(0)).or_default().push(UserId(r.get(1)));
    }
    lists
}

/// Inserts the stored chats with one statement and advances the
/// counters with another; the writer pipelines both with `COMMIT`. How
/// many webhook deliveries that queued.
pub(super) async fn write(
    c: &Pg,
    st: &Statements,
    chats: &[NewChat],
    placement: &Placement,
) -> Result<u64, PgError> {
    let mut rows: Vec<(&NewChat, &Spot)> = chats
        .iter()
        .zip(&placement.slots)
        .filter_map(|(ch, slot)| match slot {
            Slot::Stored(spot) => Some((ch, spot)),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    // In key order: two writers inserting the same resent keys wait for
    // each other instead of deadlocking on the unique index.
    rows.sort_by(|a, b| (a.0.from, &a.0.client_msg_id).cmp(&(b.0.from, &b.0.client_msg_id)));
    let n = rows.len();
    let (mut conv, mut seqs, mut ids, mut from) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut keys, mut types, mut bodies, mut ts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (ch, spot) in rows {
        conv.push(spot.conv);
        seqs.push(spot.seq as i64);
        ids.push(spot.msg_id);
        from.push(ch.from.0);
        keys.push(ch.client_msg_id.as_deref());
        types.push(i32::from(ch.content.content_type));
        bodies.push(ch.content.body.as_str());
        ts.push(spot.ts);
    }
    let (last_ids, lasts): (Vec<ConvId>, Vec<i64>) = placement
        .lasts
        .iter()
        .map(|(id, last)| (*id, *last as i64))
        .unzip();
    let insert: [&(dyn ToSql + Sync); 8] = [&conv, &seqs, &ids, &from, &keys, &types, &bodies, &ts];
    let advance: [&(dyn ToSql + Sync); 2] = [&last_ids, &lasts];
    // The webhook deliveries go in the same transaction as the messages,
    // pipelined after them (tokio-postgres sends in first-poll order, and
    // the statement reads the messages back).
    let outbox: [&(dyn ToSql + Sync); 2] = [&conv, &seqs];
    let (_, _, queued) = futures_util::try_join!(
        c.execute(&st.insert, &insert),
        c.execute(&st.advance, &advance),
        c.execute(&st.outbox, &outbox)
    )?;
    Ok(queued)
}

const LOCK: &str = "SELECT id, kind, last_seq, members_version FROM conversations
     WHERE id = ANY($1::int8[]) ORDER BY id FOR NO KEY UPDATE";
const MEMBER_IDS: &str = "SELECT m.conv_id, m.user_id FROM members m
     JOIN conversations c ON c.id = m.conv_id AND c.kind = $2
     WHERE m.conv_id = ANY($1::int8[]) ORDER BY m.conv_id, m.user_id";
/// New pairs: the pair row with a fresh id, then (in the same statement,
/// only for the rows inserted) the conversation and its two members.
const CREATE_DIRECTS: &str = "WITH pairs AS (
         INSERT INTO direct_conversations (user_lo, user_hi, conv_id)
         SELECT lo, hi, nextval(pg_get_serial_sequence('conversations', 'id'))
         FROM unnest($1::int8[], $2::int8[]) AS p(lo, hi)
         ON CONFLICT DO NOTHING
         RETURNING user_lo, user_hi, conv_id
     ), convs AS (
         INSERT INTO conversations (id, kind, created_at) SELECT conv_id, $4, $3 FROM pairs
     )
     INSERT INTO members (conv_id, user_id)
     SELECT conv_id, user_lo FROM pairs UNION ALL SELECT conv_id, user_hi FROM pairs";
const INSERT_MESSAGES: &str = "INSERT INTO messages
         (conv_id, seq, msg_id, from_id, client_msg_id, content_type, body, ts)
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::uuid[], $4::int8[], $5::text[],
                          $6::int4[], $7::text[], $8::int8[])";
const ADVANCE: &str = "UPDATE conversations c SET last_seq = v.last
     FROM unnest($1::int8[], $2::int8[]) AS v(id, last) WHERE c.id = v.id";
