//! The support desk's frames (130 open, 132 agent settings, 134 transfer,
//! 135 close). Who may send which is `rules::desk::frame`'s; what each
//! does is decided by the store (`rules::routing`) through `crate::desk`.

use super::frames::relay_error;
use super::{Session, Stop};
use crate::store::DeskOp;
use shared::desk::{DeskAgentSet, DeskStatus};
use shared::{frame_type, GroupId, ServerFrame, UserId};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// After LOGIN: an agent's lease starts, and their board follows.
    pub(super) async fn desk_login(&mut self) {
        if !self.role.is_agent() {
            return;
        }
        match self.app.desk.agent_here(self.user_id()).await {
            Ok(guard) => self.desk = Some(guard),
            // Chat works without the desk; the next lease tick renews it.
            Err(e) => tracing::warn!(error = %e, "desk: could not start an agent's lease"),
        }
    }

    /// 130: the visitor's conversation, created or resumed; answered with
    /// its 131 (later changes follow as 131s).
    pub(super) async fn desk_open(&mut self) -> Result<(), Stop> {
        let me = self.user_id();
        let done = self.app.desk.apply(DeskOp::Open { visitor: me }).await;
        let row = match done.map(|d| d.row) {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(()),
            Err(e) => return self.reply(self.send(&relay_error(&e, frame_type::DESK_OPEN)).await),
        };
        match &self.desk {
            None => self.desk = Some(self.app.desk.visitor_here(me)),
            Some(_) => self.app.desk.resend(me),
        }
        // The exact position follows in the next notice (within 100 ms).
        let status = DeskStatus {
            group_id: row.group,
            state: row.state,
            position: None,
            agent_id: row.agent,
            agent_name: None,
        };
        self.reply(self.send(&ServerFrame::DeskStatus(status)).await)
    }

    /// 132: available or away, capacity.
    pub(super) async fn desk_agent(&mut self, set: DeskAgentSet) -> Result<(), Stop> {
        let op = DeskOp::Agent {
            agent: self.user_id(),
            set,
        };
        self.desk_change(op, frame_type::DESK_AGENT).await
    }

    /// 134: hand a conversation to another agent or back to the queue.
    pub(super) async fn desk_transfer(
        &mut self,
        group: GroupId,
        to: Option<UserId>,
    ) -> Result<(), Stop> {
        let op = DeskOp::Transfer {
            group,
            by: self.user_id(),
            to,
        };
        self.desk_change(op, frame_type::DESK_TRANSFER).await
    }

    /// 135: close a conversation.
    pub(super) async fn desk_close(&mut self, group: GroupId) -> Result<(), Stop> {
        let op = DeskOp::Close {
            group,
            by: self.user_id(),
        };
        self.desk_change(op, frame_type::DESK_CLOSE).await
    }

    /// Applies `op`; a refusal is answered with an error frame, success by
    /// the notices (133 / 131) that follow.
    async fn desk_change(&mut self, op: DeskOp, req_type: u16) -> Result<(), Stop> {
        match self.app.desk.apply(op).await {
            Ok(_) => {
                // The asker hears back even if nothing they see changed.
                self.app.desk.resend(self.user_id());
                Ok(())
            }
            Err(e) => self.reply(self.send(&relay_error(&e, req_type)).await),
        }
    }
}
