//! The writes the indexer runs for someone (accounts, tokens, group
//! changes, read markers, the first message between two users), each
//! answered once its transaction commits. The decisions are the rules'
//! (`crate::rules`); this file gives them the indexer's facts and
//! primitives.

use super::facts::{
    direct_lookup, find_by_key, last_stored_seq, load_members, user_exists, user_named,
};
use super::indexer::{is_unique_violation, Indexer};
use super::recovery::insert_message;
use super::schema::{KIND_DIRECT, KIND_GROUP, ROLE_OWNER};
use super::Placing;
use crate::auth::TokenHash;
use crate::error::{Error, Result};
use crate::rules::chat::{self, ChatFacts, Verdict};
use crate::rules::group::{self, GroupChange, GroupOp, GroupState, GroupStore};
use crate::rules::read::{self, ReadMoved, ReadStore};
use crate::store::{ChatOutcome, ConvId, Membership, NewChat, Original, Placed, Reply, UserRef};
use rusqlite::{params, OptionalExtension};
use shared::{GroupId, Target, UserId};
use std::sync::Arc;
use std::time::Instant;

/// A write the indexer runs inside a transaction and answers after it
/// commits.
pub(super) trait Task: Send {
    /// Runs in the open transaction; an error aborts the transaction. May
    /// run again if the transaction is redone.
    fn run(&mut self, ix: &mut Indexer, now: i64) -> rusqlite::Result<()>;
    /// Its transaction committed: send the result.
    fn answer(self: Box<Self>);
    /// Its transaction failed.
    fn fail(self: Box<Self>, e: Error);
    /// Nobody waits for it to reach the disk (see `indexer::Op::is_quiet`).
    fn quiet(&self) -> bool;
    /// When the request arrived, for the store latency histogram.
    fn received(&self) -> Option<Instant>;
}

/// A [`Task`] from a closure and the reply its result goes to.
struct Job<T, F> {
    reply: Reply<T>,
    work: F,
    out: Option<Result<T>>,
    quiet: bool,
    received: Option<Instant>,
}

impl<T, F> Task for Job<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut Indexer, i64) -> rusqlite::Result<Result<T>> + Send + 'static,
{
    fn run(&mut self, ix: &mut Indexer, now: i64) -> rusqlite::Result<()> {
        self.out = Some((self.work)(ix, now)?);
        Ok(())
    }

    fn answer(self: Box<Self>) {
        let out = self
            .out
            .unwrap_or_else(|| Err(Error::Storage("the write was not run".into())));
        self.reply.send(out);
    }

    fn fail(self: Box<Self>, e: Error) {
        self.reply.send(Err(e));
    }

    fn quiet(&self) -> bool {
        self.quiet
    }

    fn received(&self) -> Option<Instant> {
        self.received
    }
}

pub(super) fn job<T, F>(reply: Reply<T>, work: F) -> Box<dyn Task>
where
    T: Send + 'static,
    F: FnMut(&mut Indexer, i64) -> rusqlite::Result<Result<T>> + Send + 'static,
{
    Box::new(Job {
        reply,
        work,
        out: None,
        quiet: false,
        received: None,
    })
}

/// Registers an account.
pub(super) fn create_user(username: String, hash: String, reply: Reply<UserId>) -> Box<dyn Task> {
    job(reply, move |ix, now| {
        let r = ix
            .conn
            .prepare_cached(
                "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![username, hash, now]);
        match r {
            Ok(_) => Ok(Ok(UserId(ix.conn.last_insert_rowid()))),
            Err(e) if is_unique_violation(&e) => Ok(Err(Error::UsernameTaken)),
            Err(e) => Err(e),
        }
    })
}

/// Stores a session token.
pub(super) fn create_token(
    user: UserId,
    hash: TokenHash,
    expires_at: i64,
    reply: Reply<()>,
) -> Box<dyn Task> {
    job(reply, move |ix, now| {
        ix.conn
            .prepare_cached(
                "INSERT INTO tokens (hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&hash[..], user.0, now, expires_at])?;
        Ok(Ok(()))
    })
}

/// Revokes a token; answers its owner if it existed.
pub(super) fn revoke_token(hash: TokenHash, reply: Reply<Option<UserId>>) -> Box<dyn Task> {
    job(reply, move |ix, _| {
        Ok(Ok(ix
            .conn
            .prepare_cached("DELETE FROM tokens WHERE hash = ?1 RETURNING user_id")?
            .query_row([&hash[..]], |r| r.get(0))
            .optional()?
            .map(UserId)))
    })
}

/// Applies a group change through `rules::group`.
pub(super) fn group(op: GroupOp, reply: Reply<GroupChange>) -> Box<dyn Task> {
    job(reply, move |ix, _| group::change(ix, &op))
}

/// Moves a read marker through `rules::read`. Quiet: it gathers with the
/// chats and is answered when they commit.
pub(super) fn read(
    user: UserId,
    to: Target,
    seq: u64,
    reply: Reply<Option<ReadMoved>>,
) -> Box<dyn Task> {
    Box::new(Job {
        reply,
        work: move |ix: &mut Indexer, _| read::mark(ix, user, to, seq),
        out: None,
        quiet: true,
        received: None,
    })
}

/// A chat the front could not place from its caches: the first message
/// between two users. Decided by `rules::chat` again here, since the
/// conversation may exist by now; created if not.
pub(super) fn first_chat(chat: NewChat, reply: Reply<ChatOutcome>) -> Box<dyn Task> {
    let received = Some(chat.received);
    Box::new(Job {
        reply,
        work: move |ix: &mut Indexer, now| ix.place_first(&chat, now),
        out: None,
        quiet: false,
        received,
    })
}

impl Indexer {
    fn place_first(&mut self, c: &NewChat, now: i64) -> rusqlite::Result<Result<ChatOutcome>> {
        let verdict = chat::resolve(self, c.from, c.to, c.client_msg_id.as_deref())?;
        let (conv, members) = match verdict {
            Verdict::Conv(conv, members) => (conv, members),
            Verdict::NewDirect(peer) => (self.create_direct(c.from, peer, now)?, None),
            Verdict::Duplicate(o) => return Ok(Ok(ChatOutcome::Duplicate(o))),
            Verdict::Refused(e) => return Ok(Err(e)),
        };
        let seq = self.last_seq(conv)? + 1;
        let (msg_id, ts) = self.ids.lock().next(now);
        let placing = Placing {
            conv,
            seq,
            msg_id,
            ts,
        };
        let (inserted, queued) = insert_message(&self.conn, &placing.record(0, c))?;
        self.deliveries_queued |= queued > 0;
        if inserted == 0 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                Some(format!("message {conv}/{seq} conflicts with a stored one")),
            ));
        }
        self.seqs.insert(conv, seq);
        Ok(Ok(ChatOutcome::Stored(Placed {
            // The job may run again if its transaction is redone: a copy.
            msg: Arc::new(placing.message(c.clone())),
            members,
            batch: 1,
        })))
    }

    pub(super) fn last_seq(&mut self, conv: ConvId) -> rusqlite::Result<u64> {
        if let Some(s) = self.seqs.get(&conv) {
            return Ok(*s);
        }
        let s = last_stored_seq(&self.conn, conv)?;
        self.seqs.insert(conv, s);
        Ok(s)
    }

    /// Creates the conversation between two users.
    fn create_direct(&mut self, a: UserId, b: UserId, now: i64) -> rusqlite::Result<ConvId> {
        let key = (a.0.min(b.0), a.0.max(b.0));
        self.conn
            .prepare_cached("INSERT INTO conversations (kind, created_at) VALUES (?1, ?2)")?
            .execute(params![KIND_DIRECT, now])?;
        let conv = self.conn.last_insert_rowid();
        self.conn
            .prepare_cached(
                "INSERT INTO direct_conversations (user_lo, user_hi, conv_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key.0, key.1, conv])?;
        let mut add = self
            .conn
            .prepare_cached("INSERT INTO members (conv_id, user_id) VALUES (?1, ?2)")?;
        add.execute(params![conv, key.0])?;
        add.execute(params![conv, key.1])?;
        self.directs.insert(key, conv);
        self.seqs.insert(conv, 0);
        Ok(conv)
    }

    fn direct(&mut self, a: UserId, b: UserId) -> rusqlite::Result<Option<ConvId>> {
        let key = (a.0.min(b.0), a.0.max(b.0));
        if let Some(c) = self.directs.get(&key) {
            return Ok(Some(*c));
        }
        let found = direct_lookup(&self.conn, a, b)?;
        if let Some(c) = found {
            self.directs.insert(key, c);
        }
        Ok(found)
    }

    /// A group as the rules see it, cached.
    pub(super) fn group_state(&mut self, g: GroupId) -> rusqlite::Result<Option<&mut GroupState>> {
        if !self.groups.contains_key(&g.0) {
            let row = self
                .conn
                .prepare_cached(
                    "SELECT name, owner_id, is_public,
                            EXISTS (SELECT 1 FROM desk_conversations d WHERE d.group_id = c.id)
                     FROM conversations c WHERE id = ?1 AND kind = ?2",
                )?
                .query_row(params![g.0, KIND_GROUP], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get::<_, Option<i64>>(1)?.map(UserId),
                        r.get::<_, i64>(2)? != 0,
                        r.get::<_, i64>(3)? != 0,
                    ))
                })
                .optional()?;
            let Some((name, owner, public, desk)) = row else {
                return Ok(None);
            };
            let members = load_members(&self.conn, g.0)?.unwrap_or_default();
            self.groups.insert(
                g.0,
                GroupState {
                    name,
                    owner,
                    public,
                    members,
                    desk,
                },
            );
        }
        Ok(self.groups.get_mut(&g.0))
    }
}

impl ChatFacts for Indexer {
    type Error = rusqlite::Error;

    fn direct(&mut self, a: UserId, b: UserId) -> rusqlite::Result<Option<ConvId>> {
        Indexer::direct(self, a, b)
    }

    fn user_exists(&mut self, user: UserId) -> rusqlite::Result<bool> {
        user_exists(&self.conn, user)
    }

    fn group_members(&mut self, g: GroupId) -> rusqlite::Result<Option<Arc<Vec<UserId>>>> {
        Ok(self
            .group_state(g)?
            .map(|s| Arc::new(s.members.iter().map(|m| m.0).collect())))
    }

    fn original(&mut self, from: UserId, key: &str) -> rusqlite::Result<Option<Original>> {
        find_by_key(&self.conn, from, key)
    }
}

impl GroupStore for Indexer {
    type Error = rusqlite::Error;

    fn group(&mut self, g: GroupId) -> rusqlite::Result<Option<GroupState>> {
        Ok(self.group_state(g)?.cloned())
    }

    fn user_named(&mut self, username: &str) -> rusqlite::Result<Option<UserRef>> {
        user_named(&self.conn, username)
    }

    fn username(&mut self, user: UserId) -> rusqlite::Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT username FROM users WHERE id = ?1")?
            .query_row([user.0], |r| r.get(0))
            .optional()
    }

    fn create(&mut self, name: &str, public: bool) -> rusqlite::Result<GroupId> {
        self.conn
            .prepare_cached(
                "INSERT INTO conversations (kind, name, is_public, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![KIND_GROUP, name, public as i64, crate::clock::now_ms()])?;
        let conv = self.conn.last_insert_rowid();
        self.seqs.insert(conv, 0);
        self.groups.insert(
            conv,
            GroupState {
                name: name.to_string(),
                owner: None,
                public,
                members: Vec::new(),
                desk: false,
            },
        );
        Ok(GroupId(conv))
    }

    fn add(&mut self, g: GroupId, user: UserId) -> rusqlite::Result<u64> {
        // A newcomer starts at the current end: history and pushes begin
        // with the next message.
        let last = self.last_seq(g.0)?;
        self.conn
            .prepare_cached(
                "INSERT INTO members (conv_id, user_id, joined_seq, delivered_seq, read_seq)
                 VALUES (?1, ?2, ?3, ?3, ?3)",
            )?
            .execute(params![g.0, user.0, last as i64])?;
        if let Some(s) = self.groups.get_mut(&g.0) {
            if let Err(at) = s.members.binary_search_by_key(&user, |m| m.0) {
                s.members.insert(at, (user, last));
            }
        }
        Ok(last)
    }

    fn remove(&mut self, g: GroupId, user: UserId) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM members WHERE conv_id = ?1 AND user_id = ?2")?
            .execute(params![g.0, user.0])?;
        if let Some(s) = self.groups.get_mut(&g.0) {
            s.members.retain(|m| m.0 != user);
        }
        Ok(())
    }

    fn set_owner(&mut self, g: GroupId, owner: Option<UserId>) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("UPDATE conversations SET owner_id = ?1 WHERE id = ?2")?
            .execute(params![owner.map(|o| o.0), g.0])?;
        if let Some(o) = owner {
            self.conn
                .prepare_cached("UPDATE members SET role = ?1 WHERE conv_id = ?2 AND user_id = ?3")?
                .execute(params![ROLE_OWNER, g.0, o.0])?;
        }
        if let Some(s) = self.groups.get_mut(&g.0) {
            s.owner = owner;
        }
        Ok(())
    }

    fn rename(&mut self, g: GroupId, name: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("UPDATE conversations SET name = ?1 WHERE id = ?2")?
            .execute(params![name, g.0])?;
        if let Some(s) = self.groups.get_mut(&g.0) {
            s.name = name.to_string();
        }
        Ok(())
    }
}

impl ReadStore for Indexer {
    type Error = rusqlite::Error;

    fn membership(&mut self, user: UserId, to: Target) -> rusqlite::Result<Option<Membership>> {
        let direct = match to {
            Target::User(peer) => match self.direct(user, peer)? {
                Some(conv) => Some(conv),
                None => return Ok(None),
            },
            Target::Group(_) => None,
        };
        super::facts::membership(&self.conn, user, to, direct)
    }

    fn last_seq(&mut self, conv: ConvId) -> rusqlite::Result<u64> {
        Indexer::last_seq(self, conv)
    }

    fn set_read(&mut self, conv: ConvId, user: UserId, seq: u64) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("UPDATE members SET read_seq = ?1 WHERE conv_id = ?2 AND user_id = ?3")?
            .execute(params![seq as i64, conv, user.0])?;
        Ok(())
    }

    fn senders(
        &mut self,
        conv: ConvId,
        after: u64,
        upto: u64,
        except: UserId,
    ) -> rusqlite::Result<Vec<UserId>> {
        self.conn
            .prepare_cached(
                "SELECT DISTINCT from_id FROM messages
                 WHERE conv_id = ?1 AND seq > ?2 AND seq <= ?3 AND from_id != ?4",
            )?
            .query_map(params![conv, after as i64, upto as i64, except.0], |r| {
                Ok(UserId(r.get(0)?))
            })?
            .collect()
    }
}
