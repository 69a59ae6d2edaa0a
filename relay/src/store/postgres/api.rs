//! The `Store` trait over the PostgreSQL backend: chats and read markers
//! through the writer, other writes in transactions of their own, reads on
//! the pool (fresh ones after a barrier and a cursor flush).

use super::conn::{pg_error, with_conn};
use super::marks::Mark;
use super::{accounts, bots, desk, groups, listing, reads, Cmd, PostgresStore};
use crate::auth::TokenHash;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::{
    answer, Answer, BotInfo, ChatOutcome, Claim, ConvId, Delivery, DeliveryEnd, DeskDone, DeskOp,
    DeskRow, DeskSnapshot, GroupChange, GroupOp, MemberRows, Membership, MessageRef, NewChat,
    Position, ReadMoved, Reply, Store, StoredMessage, UserRecord, UserRef, Webhook,
};
use async_trait::async_trait;
use shared::api::{Conversations, GroupSummary};
use shared::desk::{NewVisitor, Role};
use shared::{ChatMessage, GroupId, MsgId, Target, UserId};
use std::sync::atomic::Ordering::{Acquire, Release};
use tokio::sync::oneshot;
use tokio_postgres::error::SqlState;

impl PostgresStore {
    /// Writes outside the writer fail once the store is closed, as queued
    /// ones do.
    fn open_for_writes(&self) -> Result<()> {
        if self.closed.load(Acquire) {
            return Err(Error::StoreClosed);
        }
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn submit_chat(&self, chat: NewChat, reply: Reply<ChatOutcome>) {
        // A refused queue drops the command, and with it the reply: that
        // answers `StoreClosed`.
        let _ = self.queue(Cmd::Chat(chat, reply)).await;
    }

    async fn submit_read(
        &self,
        user: UserId,
        to: Target,
        seq: u64,
    ) -> Result<Answer<Option<ReadMoved>>> {
        let (reply, answer) = answer();
        self.queue(Cmd::Read(Mark { user, to, seq }, reply)).await?;
        Ok(answer)
    }

    async fn create_user(&self, username: String, password_hash: String) -> Result<UserId> {
        self.open_for_writes()?;
        // Not tried twice: a first try that committed before its
        // connection broke would make the second say "taken".
        let c = super::conn::get(&self.pool)
            .await
            .map_err(super::conn::Failure::into_error)?;
        let s = c
            .prepare_cached(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)
                 RETURNING id",
            )
            .await
            .map_err(pg_error)?;
        match c
            .query_one(&s, &[&username, &password_hash, &now_ms()])
            .await
        {
            Ok(row) => Ok(UserId(row.get(0))),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(Error::UsernameTaken),
            Err(e) => Err(pg_error(e)),
        }
    }

    async fn create_token(&self, user: UserId, hash: TokenHash, expires_at: i64) -> Result<()> {
        self.open_for_writes()?;
        // Safe to run twice: the same token again changes nothing.
        with_conn!(&self.pool, |c| async {
            let s = c
                .prepare_cached(
                    "INSERT INTO tokens (hash, user_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING",
                )
                .await?;
            c.execute(&s, &[&&hash[..], &user.0, &now_ms(), &expires_at])
                .await
        })
        .map(|_| ())
    }

    async fn revoke_token(&self, hash: TokenHash) -> Result<Option<UserId>> {
        self.open_for_writes()?;
        let c = super::conn::get(&self.pool)
            .await
            .map_err(super::conn::Failure::into_error)?;
        let s = c
            .prepare_cached("DELETE FROM tokens WHERE hash = $1 RETURNING user_id")
            .await
            .map_err(pg_error)?;
        let row = c.query_opt(&s, &[&&hash[..]]).await.map_err(pg_error)?;
        Ok(row.map(|r| UserId(r.get(0))))
    }

    async fn desk(&self, op: DeskOp) -> Result<DeskDone> {
        self.open_for_writes()?;
        // After the chats queued on this relay before it, like a group
        // change (it changes members too).
        self.barrier().await?;
        desk::op(&self.pool, &op).await
    }

    async fn desk_snapshot(&self, now: i64) -> Result<DeskSnapshot> {
        self.fresh().await?;
        with_conn!(&self.pool, |c| desk::snapshot(c, now))
    }

    async fn desk_row(&self, group: GroupId) -> Result<Option<DeskRow>> {
        self.fresh().await?;
        with_conn!(&self.pool, |c| desk::row(c, group.0))
    }

    async fn change_group(&self, op: GroupOp) -> Result<GroupChange> {
        self.open_for_writes()?;
        // In order with the chats queued on this relay before it (as the
        // SQLite backend queues it behind them); chats of other relays are
        // ordered by the group's row lock.
        self.barrier().await?;
        groups::change(&self.pool, &op).await
    }

    fn move_cursor(&self, user: UserId, conv: ConvId, seq: u64) {
        self.cursors.moved(user, conv, seq);
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        with_conn!(&self.pool, |c| reads::user_by_name(c, username))
    }

    async fn visitor_name(&self, user: UserId) -> Result<Option<String>> {
        with_conn!(&self.pool, |c| accounts::visitor_name(c, user))
    }

    async fn user_exists(&self, user: UserId) -> Result<bool> {
        with_conn!(&self.pool, |c| reads::user_exists(c, user))
    }

    async fn create_visitor(&self, username: String, about: NewVisitor) -> Result<UserId> {
        self.open_for_writes()?;
        let c = super::conn::get(&self.pool)
            .await
            .map_err(super::conn::Failure::into_error)?;
        accounts::create_visitor(&c, &username, &about).await
    }

    async fn set_role(&self, user: UserId, role: Role) -> Result<()> {
        self.open_for_writes()?;
        with_conn!(&self.pool, |c| accounts::set_role(c, user, role))
    }

    async fn create_bot(
        &self,
        username: String,
        token: TokenHash,
        webhook: Option<Webhook>,
    ) -> Result<UserId> {
        self.open_for_writes()?;
        let c = super::conn::get(&self.pool)
            .await
            .map_err(super::conn::Failure::into_error)?;
        bots::create_bot(&c, &username, &token, webhook).await
    }

    async fn set_webhook(&self, bot: UserId, webhook: Option<Webhook>) -> Result<()> {
        self.open_for_writes()?;
        with_conn!(&self.pool, |c| bots::set_webhook(c, bot, webhook.clone()))
    }

    async fn revoke_tokens(&self, user: UserId) -> Result<u64> {
        self.open_for_writes()?;
        with_conn!(&self.pool, |c| bots::revoke_tokens(c, user))
    }

    async fn claim_deliveries(&self, claim: Claim) -> Result<Vec<Delivery>> {
        self.open_for_writes()?;
        let mut c = super::conn::get(&self.pool)
            .await
            .map_err(super::conn::Failure::into_error)?;
        bots::claim(&mut c, claim).await.map_err(pg_error)
    }

    async fn finish_delivery(&self, id: i64, end: DeliveryEnd) -> Result<()> {
        self.open_for_writes()?;
        with_conn!(&self.pool, |c| bots::finish(c, id, &end))
    }

    async fn next_delivery_at(&self, now: i64) -> Result<Option<i64>> {
        with_conn!(&self.pool, |c| bots::next_due(c, now))
    }

    fn deliveries_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.deliveries_queued.clone()
    }

    async fn bots(&self) -> Result<Vec<BotInfo>> {
        with_conn!(&self.pool, |c| bots::list(c))
    }

    async fn user_role(&self, username: &str) -> Result<Option<(UserRef, Role)>> {
        with_conn!(&self.pool, |c| accounts::user_role(c, username))
    }

    async fn staff(&self) -> Result<Vec<(UserRef, Role)>> {
        with_conn!(&self.pool, |c| accounts::staff(c))
    }

    async fn token_user(&self, hash: TokenHash, now: i64) -> Result<Option<(UserRef, Role)>> {
        with_conn!(&self.pool, |c| reads::token_user(c, &hash[..], now))
    }

    async fn revoked_tokens(&self, hashes: Vec<TokenHash>) -> Result<Vec<TokenHash>> {
        with_conn!(&self.pool, |c| reads::revoked_tokens(c, &hashes))
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRef>> {
        with_conn!(&self.pool, |c| reads::search_users(c, prefix, limit))
    }

    async fn contacts(&self, user: UserId, group_limit: u32) -> Result<Vec<UserRef>> {
        with_conn!(&self.pool, |c| reads::contacts(c, user, group_limit))
    }

    async fn positions(&self, user: UserId) -> Result<Vec<Position>> {
        self.fresh().await?;
        with_conn!(&self.pool, |c| reads::positions(c, user))
    }

    async fn pending(
        &self,
        user: UserId,
        after: Option<(ConvId, u64)>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        self.fresh().await?;
        with_conn!(&self.pool, |c| reads::pending(c, user, after, limit))
    }

    async fn range(
        &self,
        user: UserId,
        conv: ConvId,
        after: u64,
        before: u64,
    ) -> Result<Vec<StoredMessage>> {
        self.fresh().await?;
        with_conn!(&self.pool, |c| reads::range(c, user, conv, after, before))
    }

    async fn message_for(&self, user: UserId, msg_id: MsgId) -> Result<Option<MessageRef>> {
        with_conn!(&self.pool, |c| reads::message_for(c, user, msg_id))
    }

    async fn conversations(&self, user: UserId) -> Result<Conversations> {
        self.fresh().await?;
        with_conn!(&self.pool, |c| listing::list_conversations(c, user))
    }

    async fn membership(&self, user: UserId, to: Target) -> Result<Option<Membership>> {
        with_conn!(&self.pool, |c| reads::membership(c, user, to))
    }

    async fn messages(
        &self,
        viewer: UserId,
        conv: ConvId,
        after: u64,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool)> {
        self.fresh().await?;
        with_conn!(&self.pool, |c| reads::messages(
            c, viewer, conv, after, before, limit
        ))
    }

    async fn read_cursors(&self, conv: ConvId, except: UserId) -> Result<Vec<(u64, u64)>> {
        with_conn!(&self.pool, |c| reads::read_cursors(c, conv, except))
    }

    async fn group(&self, group: GroupId) -> Result<Option<GroupSummary>> {
        with_conn!(&self.pool, |c| reads::group_summary(c, group.0))
    }

    async fn group_members_page(
        &self,
        group: GroupId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<MemberRows> {
        with_conn!(&self.pool, |c| reads::group_members_page(
            c, group, after, limit
        ))
    }

    async fn search_groups(&self, prefix: &str, limit: u32) -> Result<Vec<GroupSummary>> {
        with_conn!(&self.pool, |c| reads::search_groups(c, prefix, limit))
    }

    async fn small_group_members(&self, group: GroupId, cap: u32) -> Result<Option<Vec<UserId>>> {
        with_conn!(&self.pool, |c| reads::small_group_members(c, group, cap))
    }

    async fn close(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
        self.closed.store(true, Release);
        if let Err(e) = self.cursors.flush(&self.pool, &self.metrics).await {
            tracing::warn!(error = %e, "could not write the last delivery cursors");
        }
        let _ = self.stop.send(true);
        self.pool.close();
        Ok(())
    }
}
