//! Read markers inside the writer's transaction.
//!
//! Nobody waits for a read marker to reach the disk, so markers are quiet:
//! they ride along with the next batch of chats, or gather for a moment
//! when nothing else comes (see the writer). `rules::read::mark` decides
//! each in order over gathered facts (see `facts.rs`); a second marker of
//! the same user in the batch sees the first one's move. The moves are
//! written with one statement, and only forward (`GREATEST`), since a
//! relay elsewhere may move the same cursor at the same moment.

use super::chats::ChatCache;
use super::conn::{Failure, Pg};
use super::facts::{known, pair, Facts, Need};
use super::schema::KIND_GROUP;
use crate::error::Error;
use crate::rules::read::{self, ReadMoved, ReadStore};
use crate::store::{ConvId, Membership};
use shared::{Target, UserId};
use std::collections::{BTreeSet, HashMap};
use tokio_postgres::{Error as PgError, Statement};

/// Most rounds of fact loading one batch of markers may take (each marker
/// needs at most three: membership, last `seq`, senders).
const MAX_ROUNDS: usize = 6;

/// A read marker as queued.
pub(super) struct Mark {
    pub user: UserId,
    pub to: Target,
    pub seq: u64,
}

/// The decisions for a batch of markers.
#[derive(Default)]
pub(super) struct Marked {
    /// One per marker, in order.
    pub results: Vec<Result<Option<ReadMoved>, Error>>,
    /// Cursor moves to write: (conversation, user, seq).
    moves: Vec<(ConvId, UserId, u64)>,
}

/// The writer's marker statement, prepared once per connection.
pub(super) struct Statements {
    set_read: Statement,
}

impl Statements {
    pub async fn prepare(c: &Pg) -> Result<Statements, PgError> {
        Ok(Statements {
            set_read: c.prepare_cached(SET_READ).await?,
        })
    }
}

/// The facts one run of the markers sees, and the moves it made.
struct Sheet<'a> {
    facts: &'a Facts,
    /// Read cursors moved earlier in this run.
    read: HashMap<(ConvId, UserId), u64>,
    moves: Vec<(ConvId, UserId, u64)>,
}

impl ReadStore for Sheet<'_> {
    type Error = Need;

    fn membership(&mut self, user: UserId, to: Target) -> Result<Option<Membership>, Need> {
        let conv = match to {
            Target::User(peer) => {
                match known(&self.facts.directs, pair(user, peer), |(lo, hi)| {
                    Need::Direct(lo, hi)
                })? {
                    Some(conv) => conv,
                    None => return Ok(None),
                }
            }
            Target::Group(g) => g.0,
        };
        let row = known(&self.facts.members, (conv, user), |(c, u)| {
            Need::Member(c, u)
        })?;
        let Some(row) = row else { return Ok(None) };
        if matches!(to, Target::Group(_)) && row.kind != KIND_GROUP {
            return Ok(None);
        }
        Ok(Some(Membership {
            conv,
            joined: row.joined,
            read: self.read.get(&(conv, user)).copied().unwrap_or(row.read),
        }))
    }

    fn last_seq(&mut self, conv: ConvId) -> Result<u64, Need> {
        known(&self.facts.last_seq, conv, Need::LastSeq)
    }

    fn set_read(&mut self, conv: ConvId, user: UserId, seq: u64) -> Result<(), Need> {
        self.read.insert((conv, user), seq);
        self.moves.push((conv, user, seq));
        Ok(())
    }

    fn senders(
        &mut self,
        conv: ConvId,
        after: u64,
        upto: u64,
        except: UserId,
    ) -> Result<Vec<UserId>, Need> {
        known(
            &self.facts.senders,
            (conv, after, upto, except),
            |(c, a, u, e)| Need::Senders(c, a, u, e),
        )
    }
}

/// Decides every marker in order, loading facts until a run needs none.
pub(super) async fn decide(c: &Pg, marks: &[Mark], cache: &ChatCache) -> Result<Marked, Failure> {
    if marks.is_empty() {
        return Ok(Marked::default());
    }
    let mut facts = Facts::default();
    for m in marks {
        if let Target::User(peer) = m.to {
            if let Some(conv) = cache.direct(pair(m.user, peer)) {
                facts.directs.insert(pair(m.user, peer), Some(conv));
            }
        }
    }
    for _ in 0..MAX_ROUNDS {
        let mut sheet = Sheet {
            facts: &facts,
            read: HashMap::new(),
            moves: Vec::new(),
        };
        let mut needs = BTreeSet::new();
        let mut results = Vec::with_capacity(marks.len());
        for m in marks {
            match read::mark(&mut sheet, m.user, m.to, m.seq) {
                Ok(r) => results.push(r),
                Err(need) => {
                    // Later markers still run, so their needs load in the
                    // same round; this run's decisions are not used.
                    needs.insert(need);
                    results.push(Ok(None));
                }
            }
        }
        if needs.is_empty() {
            return Ok(Marked {
                results,
                moves: sheet.moves,
            });
        }
        facts.load(c, needs).await?;
    }
    Err(Failure::Other(
        "read markers kept needing facts; giving up".into(),
    ))
}

/// Writes the moves with one statement (the writer pipelines it with its
/// `COMMIT`).
pub(super) async fn write(c: &Pg, st: &Statements, marked: &Marked) -> Result<(), PgError> {
    if marked.moves.is_empty() {
        return Ok(());
    }
    let mut last: HashMap<(ConvId, UserId), u64> = HashMap::new();
    for (conv, user, seq) in &marked.moves {
        let e = last.entry((*conv, *user)).or_default();
        *e = (*e).max(*seq);
    }
    let mut moves: Vec<_> = last.into_iter().collect();
    moves.sort_unstable();
    let convs: Vec<ConvId> = moves.iter().map(|m| m.0 .0).collect();
    let users: Vec<i64> = moves.iter().map(|m| m.0 .1 .0).collect();
    let seqs: Vec<i64> = moves.iter().map(|m| m.1 as i64).collect();
    c.execute(&st.set_read, &[&convs, &users, &seqs]).await?;
    Ok(())
}

const SET_READ: &str = "UPDATE members m SET read_seq = GREATEST(m.read_seq, v.seq)
     FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS v(conv, usr, seq)
     WHERE m.conv_id = v.conv AND m.user_id = v.usr";
