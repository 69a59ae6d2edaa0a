//! Group changes: a transaction each, on a pooled connection, after the
//! chats queued on this relay before them (a barrier through the writer).
//!
//! The group's conversation row is locked first (`FOR NO KEY UPDATE`, the
//! same lock the writer takes on a conversation it stores chats into), so
//! a change and the chats of that group are serialised across every relay:
//! a chat's recipients are the members when its `seq` was taken, and a
//! member added at `seq` N (`joined_seq`) gets exactly what comes after N.
//! Every membership change bumps `members_version` under that lock, which
//! tells the writers their cached member lists are stale.
//!
//! `rules::group::change` decides over gathered facts (`facts.rs`); its
//! primitive changes are recorded and applied in order with pipelined
//! statements, then `COMMIT`.

use super::conn::{self, Failure, Pg};
use super::facts::{known, Facts, Need};
use super::schema::{KIND_GROUP, ROLE_OWNER};
use crate::clock::now_ms;
use crate::error::Result;
use crate::rules::group::{self, GroupChange, GroupOp, GroupState, GroupStore};
use crate::store::{ConvId, UserRef};
use deadpool_postgres::Pool;
use shared::{GroupId, UserId};
use std::collections::BTreeSet;
use tokio_postgres::types::ToSql;
use tokio_postgres::Error as PgError;

/// A statement parameter, owned.
type Param = Box<dyn ToSql + Sync + Send>;

/// Attempts at a change that conflicts with another transaction.
const MAX_TRIES: usize = 5;
/// Rounds of fact loading one change may take.
const MAX_ROUNDS: usize = 8;

/// A primitive change the rule made, to apply in order.
enum Effect {
    Create {
        id: ConvId,
        name: String,
        public: bool,
    },
    Add {
        group: ConvId,
        user: UserId,
        seq: u64,
    },
    Remove {
        group: ConvId,
        user: UserId,
    },
    Owner {
        group: ConvId,
        owner: Option<UserId>,
    },
    Rename {
        group: ConvId,
        name: String,
    },
}

/// What one run of the rule sees and does.
struct Sheet<'a> {
    facts: &'a Facts,
    created: Option<ConvId>,
    effects: Vec<Effect>,
}

impl GroupStore for Sheet<'_> {
    type Error = Need;

    fn group(&mut self, g: GroupId) -> Result<Option<GroupState>, Need> {
        known(&self.facts.groups, g.0, Need::Group)
    }

    fn user_named(&mut self, username: &str) -> Result<Option<UserRef>, Need> {
        known(&self.facts.named, username.to_lowercase(), Need::Named)
    }

    fn username(&mut self, user: UserId) -> Result<Option<String>, Need> {
        known(&self.facts.users, user, Need::User)
    }

    fn create(&mut self, name: &str, public: bool) -> Result<GroupId, Need> {
        let id = *self.facts.new_convs.first().ok_or(Need::NewConv)?;
        self.created = Some(id);
        self.effects.push(Effect::Create {
            id,
            name: name.to_string(),
            public,
        });
        Ok(GroupId(id))
    }

    fn add(&mut self, g: GroupId, user: UserId) -> Result<u64, Need> {
        // A newcomer starts at the current end (read under the lock).
        let seq = if self.created == Some(g.0) {
            0
        } else {
            known(&self.facts.last_seq, g.0, Need::LastSeq)?
        };
        self.effects.push(Effect::Add {
            group: g.0,
            user,
            seq,
        });
        Ok(seq)
    }

    fn remove(&mut self, g: GroupId, user: UserId) -> Result<(), Need> {
        self.effects.push(Effect::Remove { group: g.0, user });
        Ok(())
    }

    fn set_owner(&mut self, g: GroupId, owner: Option<UserId>) -> Result<(), Need> {
        self.effects.push(Effect::Owner { group: g.0, owner });
        Ok(())
    }

    fn rename(&mut self, g: GroupId, name: &str) -> Result<(), Need> {
        self.effects.push(Effect::Rename {
            group: g.0,
            name: name.to_string(),
        });
        Ok(())
    }
}

/// Applies `op` through `rules::group` in a transaction of its own.
pub(super) async fn change(pool: &Pool, op: &GroupOp) -> Result<GroupChange> {
    let mut tries = 0;
    loop {
        tries += 1;
        let c = conn::get(pool).await.map_err(Failure::into_error)?;
        let failure = match attempt(&c, op).await {
            Ok(result) => return result,
            Err((f, committing)) => {
                if matches!(f, Failure::Unavailable(_))
                    || c.batch_execute("ROLLBACK").await.is_err()
                {
                    conn::discard(c);
                }
                match f {
                    Failure::Conflict(_) if tries < MAX_TRIES => continue,
                    Failure::Unavailable(_) if tries == 1 && !committing => continue,
                    f => f,
                }
            }
        };
        return Err(failure.into_error());
    }
}

/// What to load with the lock, before the rule asks.
fn likely_needs(op: &GroupOp) -> BTreeSet<Need> {
    let mut needs = BTreeSet::new();
    if let Some(g) = op.group() {
        needs.insert(Need::Group(g.0));
    }
    match op {
        GroupOp::Create { owner, .. } => {
            needs.insert(Need::NewConv);
            needs.insert(Need::User(*owner));
        }
        GroupOp::Add { username, .. } => {
            needs.insert(Need::Named(username.to_lowercase()));
        }
        GroupOp::Join { user, .. } | GroupOp::Leave { user, .. } | GroupOp::Remove { user, .. } => {
            needs.insert(Need::User(*user));
        }
        GroupOp::Rename { .. } => {}
    }
    needs
}

/// One try; on failure also whether `COMMIT` had been sent.
async fn attempt(c: &Pg, op: &GroupOp) -> Result<Result<GroupChange>, (Failure, bool)> {
    let early = |e: PgError| (Failure::from(e), false);
    let lock = c.prepare_cached(LOCK).await.map_err(early)?;
    let mut facts = Facts::default();
    let group = op.group().map_or(0, |g| g.0);
    // `BEGIN`, the lock, then the facts read under it, pipelined.
    let (begun, locked, loaded) = tokio::join!(
        c.batch_execute("BEGIN"),
        async {
            match op.group() {
                Some(_) => c.query(&lock, &[&group]).await.map(|_| ()),
                None => Ok(()),
            }
        },
        facts.load(c, likely_needs(op))
    );
    begun.and(locked).and(loaded).map_err(early)?;
    for _ in 0..MAX_ROUNDS {
        let mut sheet = Sheet {
            facts: &facts,
            created: None,
            effects: Vec::new(),
        };
        match group::change(&mut sheet, op) {
            Err(need) => facts.load(c, BTreeSet::from([need])).await.map_err(early)?,
            Ok(Err(refused)) => {
                c.batch_execute("ROLLBACK").await.map_err(early)?;
                return Ok(Err(refused));
            }
            Ok(Ok(done)) => {
                apply(c, sheet.effects).await?;
                return Ok(Ok(done));
            }
        }
    }
    Err((
        Failure::Other("a group change kept needing facts; giving up".into()),
        false,
    ))
}

/// Applies the effects in order and commits, pipelined. Statements are
/// prepared first, so the requests go out in order.
async fn apply(c: &Pg, effects: Vec<Effect>) -> Result<(), (Failure, bool)> {
    let early = |e: PgError| (Failure::from(e), false);
    let mut prepared = Vec::with_capacity(effects.len() + 1);
    let mut touched = BTreeSet::new();
    for e in &effects {
        let sql = match e {
            Effect::Create { .. } => CREATE,
            Effect::Add { group, .. } => {
                touched.insert(*group);
                ADD
            }
            Effect::Remove { group, .. } => {
                touched.insert(*group);
                REMOVE
            }
            Effect::Owner { .. } => SET_OWNER,
            Effect::Rename { .. } => RENAME,
        };
        prepared.push(c.prepare_cached(sql).await.map_err(early)?);
    }
    let bump = c.prepare_cached(BUMP).await.map_err(early)?;
    let touched: Vec<ConvId> = touched.into_iter().collect();
    let now = now_ms();
    let params: Vec<Vec<Param>> = effects
        .into_iter()
        .map(|e| -> Vec<Param> {
            match e {
                Effect::Create { id, name, public } => vec![
                    Box::new(id),
                    Box::new(KIND_GROUP),
                    Box::new(name),
                    Box::new(public),
                    Box::new(now),
                ],
                Effect::Add { group, user, seq } => {
                    vec![Box::new(group), Box::new(user.0), Box::new(seq as i64)]
                }
                Effect::Remove { group, user } => vec![Box::new(group), Box::new(user.0)],
                Effect::Owner { group, owner } => vec![
                    Box::new(group),
                    Box::new(owner.map(|o| o.0)),
                    Box::new(ROLE_OWNER),
                ],
                Effect::Rename { group, name } => vec![Box::new(group), Box::new(name)],
            }
        })
        .collect();
    let params: Vec<Vec<&(dyn ToSql + Sync)>> = params
        .iter()
        .map(|p| {
            p.iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();
    let bump_params: [&(dyn ToSql + Sync); 1] = [&touched];
    let mut requests: Vec<_> = prepared
        .iter()
        .zip(&params)
        .map(|(s, p)| c.execute(s, p))
        .collect();
    requests.push(c.execute(&bump, &bump_params));
    let (applied, committed) = tokio::join!(
        futures_util::future::try_join_all(requests),
        c.batch_execute("COMMIT")
    );
    applied
        .map(|_| ())
        .and(committed)
        .map_err(|e| (Failure::from(e), true))
}

const LOCK: &str = "SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE";
const CREATE: &str =
    "INSERT INTO conversations (id, kind, name, is_public, created_at) VALUES ($1, $2, $3, $4, $5)";
const ADD: &str = "INSERT INTO members (conv_id, user_id, joined_seq, delivered_seq, read_seq)
     VALUES ($1, $2, $3, $3, $3)";
const REMOVE: &str = "DELETE FROM members WHERE conv_id = $1 AND user_id = $2";
/// The owner's id on the group, and the owner's role on their row.
const SET_OWNER: &str = "WITH g AS (UPDATE conversations SET owner_id = $2 WHERE id = $1)
     UPDATE members SET role = $3 WHERE conv_id = $1 AND user_id = $2";
const RENAME: &str = "UPDATE conversations SET name = $2 WHERE id = $1";
const BUMP: &str =
    "UPDATE conversations SET members_version = members_version + 1 WHERE id = ANY($1::int8[])";
