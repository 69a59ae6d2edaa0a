//! The `Store` trait over the SQLite backend: writes queued to the front,
//! reads on the pool (fresh ones after a barrier through the front).

use super::{accounts, bots, desk, facts, listing, reads, Cmd, SqliteStore, Write};
use crate::auth::TokenHash;
use crate::error::Result;
use crate::store::{
    answer, Answer, BotInfo, ChatOutcome, Claim, ConvId, Delivery, DeliveryEnd, DeskDone, DeskOp,
    DeskRow, DeskSnapshot, GroupChange, GroupOp, MemberRows, Membership, MessageRef, NewChat,
    Position, ReadMoved, Reply, Store, StoredMessage, UserRecord, UserRef, Webhook,
};
use async_trait::async_trait;
use shared::api::{Conversations, GroupSummary};
use shared::desk::{NewVisitor, Role};
use shared::{ChatMessage, GroupId, MsgId, Target, UserId};
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::oneshot;

#[async_trait]
impl Store for SqliteStore {
    async fn submit_chat(&self, chat: NewChat, reply: Reply<ChatOutcome>) {
        // A refused queue drops the write, and with it the reply: that
        // answers `StoreClosed`.
        let _ = self.queue(Write::Chat(chat, reply)).await;
    }

    async fn submit_read(
        &self,
        user: UserId,
        to: Target,
        seq: u64,
    ) -> Result<Answer<Option<ReadMoved>>> {
        let (reply, answer) = answer();
        self.queue(Write::Read {
            user,
            to,
            seq,
            reply,
        })
        .await?;
        Ok(answer)
    }

    async fn create_user(&self, username: String, password_hash: String) -> Result<UserId> {
        self.call(|reply| Write::CreateUser {
            username,
            password_hash,
            reply,
        })
        .await
    }

    async fn create_token(&self, user: UserId, hash: TokenHash, expires_at: i64) -> Result<()> {
        self.call(|reply| Write::CreateToken {
            user,
            hash,
            expires_at,
            reply,
        })
        .await
    }

    async fn revoke_token(&self, hash: TokenHash) -> Result<Option<UserId>> {
        self.call(|reply| Write::RevokeToken { hash, reply }).await
    }

    async fn change_group(&self, op: GroupOp) -> Result<GroupChange> {
        self.call(|reply| Write::Group(op, reply)).await
    }

    async fn desk(&self, op: DeskOp) -> Result<DeskDone> {
        if matches!(op, DeskOp::Sweep) {
            // Every few seconds on every relay: a read first, so an idle
            // desk costs the writer nothing.
            let now = crate::clock::now_ms();
            if !self.readers.run(move |c| desk::lapsed(c, now)).await? {
                return Ok(DeskDone::default());
            }
        }
        self.call(|reply| Write::Desk(desk::op(op, reply))).await
    }

    async fn desk_snapshot(&self, now: i64) -> Result<DeskSnapshot> {
        self.fresh(move |c| desk::snapshot(c, now)).await
    }

    async fn desk_row(&self, group: GroupId) -> Result<Option<DeskRow>> {
        self.fresh(move |c| desk::row(c, group)).await
    }

    fn move_cursor(&self, user: UserId, conv: ConvId, seq: u64) {
        self.cursors.moved(user, conv, seq);
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let name = username.to_string();
        self.readers
            .run(move |c| reads::user_by_name(c, &name))
            .await
    }

    async fn visitor_name(&self, user: UserId) -> Result<Option<String>> {
        self.readers
            .run(move |c| accounts::visitor_name(c, user))
            .await
    }

    async fn user_exists(&self, user: UserId) -> Result<bool> {
        self.readers.run(move |c| facts::user_exists(c, user)).await
    }

    async fn create_visitor(&self, username: String, about: NewVisitor) -> Result<UserId> {
        self.call(|reply| Write::Account(accounts::create_visitor(username, about, reply)))
            .await
    }

    async fn set_role(&self, user: UserId, role: Role) -> Result<()> {
        self.call(|reply| Write::Account(accounts::set_role(user, role, reply)))
            .await
    }

    async fn create_bot(
        &self,
        username: String,
        token: TokenHash,
        webhook: Option<Webhook>,
    ) -> Result<UserId> {
        self.call(|reply| Write::Account(bots::create_bot(username, token, webhook, reply)))
            .await
    }

    async fn set_webhook(&self, bot: UserId, webhook: Option<Webhook>) -> Result<()> {
        self.call(|reply| Write::Account(bots::set_webhook(bot, webhook, reply)))
            .await
    }

    async fn revoke_tokens(&self, user: UserId) -> Result<u64> {
        self.call(|reply| Write::Account(bots::revoke_tokens(user, reply)))
            .await
    }

    async fn claim_deliveries(&self, claim: Claim) -> Result<Vec<Delivery>> {
        self.call(|reply| Write::Account(bots::claim(claim, reply)))
            .await
    }

    async fn finish_delivery(&self, id: i64, end: DeliveryEnd) -> Result<()> {
        self.call(|reply| Write::Account(bots::finish(id, end, reply)))
            .await
    }

    async fn next_delivery_at(&self, now: i64) -> Result<Option<i64>> {
        self.readers.run(move |c| bots::next_due(c, now)).await
    }

    fn deliveries_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.deliveries_queued.clone()
    }

    async fn bots(&self) -> Result<Vec<BotInfo>> {
        self.fresh(bots::list).await
    }

    async fn user_role(&self, username: &str) -> Result<Option<(UserRef, Role)>> {
        let name = username.to_string();
        self.fresh(move |c| accounts::user_role(c, &name)).await
    }

    async fn staff(&self) -> Result<Vec<(UserRef, Role)>> {
        self.fresh(accounts::staff).await
    }

    async fn token_user(&self, hash: TokenHash, now: i64) -> Result<Option<(UserRef, Role)>> {
        self.readers
            .run(move |c| reads::token_user(c, &hash[..], now))
            .await
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRef>> {
        let prefix = prefix.to_string();
        self.readers
            .run(move |c| reads::search_users(c, &prefix, limit))
            .await
    }

    async fn contacts(&self, user: UserId, group_limit: u32) -> Result<Vec<UserRef>> {
        self.readers
            .run(move |c| reads::contacts(c, user, group_limit))
            .await
    }

    async fn positions(&self, user: UserId) -> Result<Vec<Position>> {
        self.fresh(move |c| reads::positions(c, user)).await
    }

    async fn pending(
        &self,
        user: UserId,
        after: Option<(ConvId, u64)>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        self.fresh(move |c| reads::pending(c, user, after, limit))
            .await
    }

    async fn range(
        &self,
        user: UserId,
        conv: ConvId,
        after: u64,
        before: u64,
    ) -> Result<Vec<StoredMessage>> {
        self.fresh(move |c| reads::range(c, user, conv, after, before))
            .await
    }

    async fn message_for(&self, user: UserId, msg_id: MsgId) -> Result<Option<MessageRef>> {
        self.readers
            .run(move |c| reads::message_for(c, user, msg_id))
            .await
    }

    async fn conversations(&self, user: UserId) -> Result<Conversations> {
        self.fresh(move |c| listing::list_conversations(c, user))
            .await
    }

    async fn membership(&self, user: UserId, to: Target) -> Result<Option<Membership>> {
        self.readers
            .run(move |c| reads::membership(c, user, to))
            .await
    }

    async fn messages(
        &self,
        viewer: UserId,
        conv: ConvId,
        after: u64,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool)> {
        self.fresh(move |c| reads::messages(c, viewer, conv, after, before, limit))
            .await
    }

    async fn read_cursors(&self, conv: ConvId, except: UserId) -> Result<Vec<(u64, u64)>> {
        self.readers
            .run(move |c| reads::read_cursors(c, conv, except))
            .await
    }

    async fn group(&self, group: GroupId) -> Result<Option<GroupSummary>> {
        self.readers
            .run(move |c| reads::group_summary(c, group.0))
            .await
    }

    async fn group_members_page(
        &self,
        group: GroupId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<MemberRows> {
        let after = after.map(str::to_string);
        self.readers
            .run(move |c| reads::group_members_page(c, group, after.as_deref(), limit))
            .await
    }

    async fn search_groups(&self, prefix: &str, limit: u32) -> Result<Vec<GroupSummary>> {
        let prefix = prefix.to_string();
        self.readers
            .run(move |c| reads::search_groups(c, &prefix, limit))
            .await
    }

    async fn small_group_members(&self, group: GroupId, cap: u32) -> Result<Option<Vec<UserId>>> {
        self.readers
            .run(move |c| reads::small_group_members(c, group, cap))
            .await
    }

    async fn close(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
        self.stop.store(true, Relaxed);
        Ok(())
    }
}
