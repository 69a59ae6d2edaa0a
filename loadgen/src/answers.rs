//! What a sending socket hears back, one piece of code for the chat and the
//! fan-out senders: the 81 or type 0 error that answers each CHAT (kept in
//! a [`SendLog`]), delivery receipts (92), notices, and anything unexpected.
//! A sender acts on what [`Answers::on_read`] returns: a first answer frees
//! a window slot (chat) or lets the next message go (fan-out).

use crate::report::{self, Tally};
use crate::socket::{self, Gone, Read};
use crate::track::{Answer, SendLog};
use crate::wire::{self, frame_type as ft, Lite, MsgTag};

/// What a sender heard back, and the running tallies.
#[derive(Debug, Default)]
pub struct Answers {
    /// Each message's answer (81 or error).
    pub log: SendLog,
    /// 92s (chat: one per delivery; the relay sends none for group
    /// messages).
    pub receipts: u64,
    /// Presence, typing, read receipts, group events: ignored.
    pub notices: u64,
    /// Type 0 errors by code.
    pub errors: Tally,
    /// Unexpected events by kind.
    pub problems: Tally,
}

/// What a read means to the sender.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// The first 81 for our message `tag` (recorded in the log).
    Stored(MsgTag),
    /// The first error for our message `tag` (recorded): it had no effect.
    Refused(MsgTag),
    /// A push to the sender itself, with the ACK to send when it has a
    /// msgId. The sender decides whether it is legal.
    Push(Option<String>),
    /// Nothing to act on (counted where it counts).
    Nothing,
    /// The socket is gone (why is in the problems).
    Gone,
}

impl Answers {
    /// Empty, with room for about `expected` messages.
    pub fn with_capacity(expected: usize) -> Answers {
        Answers {
            log: SendLog::with_capacity(expected),
            ..Answers::default()
        }
    }

    /// Accounts for one read from the socket of sender `pair`, whose
    /// messages carry tags of run `run_id`.
    pub fn on_read(&mut self, m: Read, run_id: &str, pair: u32) -> Heard {
        match socket::text(m, "sender", &mut self.problems) {
            Ok(Some(text)) => self.on_text(text.as_str(), run_id, pair),
            Ok(None) => Heard::Nothing,
            Err(Gone) => Heard::Gone,
        }
    }

    fn on_text(&mut self, text: &str, run_id: &str, pair: u32) -> Heard {
        match wire::fast_type(text) {
            Some(ft::DELIVERED) => {
                self.receipts += 1;
                return Heard::Nothing;
            }
            Some(ft::PONG) => return Heard::Nothing,
            _ => {}
        }
        let Ok(f) = Lite::parse(text) else {
            report::tally(&mut self.problems, "unparsable frame", 1);
            return Heard::Nothing;
        };
        let tag = f
            .client_msg_id
            .as_deref()
            .and_then(|c| MsgTag::decode(c, run_id).ok())
            .filter(|t| t.pair == pair);
        match f.ty {
            ft::CHAT_RESP => {
                let id = f
                    .msg_id
                    .as_deref()
                    .and_then(|s| uuid::Uuid::try_parse(s).ok());
                let (Some(tag), Some(id)) = (tag, id) else {
                    report::tally(
                        &mut self.problems,
                        "81 without our clientMsgId or a msgId",
                        1,
                    );
                    return Heard::Nothing;
                };
                if self.log.on_stored(tag.seq, id.as_u128()) == Answer::First {
                    return Heard::Stored(tag);
                }
            }
            ft::ERROR => {
                report::tally(&mut self.errors, f.code.as_deref().unwrap_or("?"), 1);
                if let Some(tag) = tag {
                    if self.log.on_refused(tag.seq) == Answer::First {
                        return Heard::Refused(tag);
                    }
                }
            }
            ft::CHAT => return Heard::Push(f.msg_id.as_deref().map(wire::ack)),
            ft::DELIVERED => self.receipts += 1,
            ft::ACK_RESP | ft::PONG => {}
            ft::HEARTBEAT_TIMEOUT => {
                report::tally(&mut self.problems, "sender heartbeat timeout", 1)
            }
            t if wire::is_notice(t) => self.notices += 1,
            other => report::tally(&mut self.problems, &format!("sender got type {other}"), 1),
        }
        Heard::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ErrorCode, ServerFrame};
    use tokio_tungstenite::tungstenite::Message;

    fn read(frame: ServerFrame) -> Read {
        Some(Ok(Message::text(frame.encode())))
    }

    fn resp(tag: &str, id: uuid::Uuid) -> Read {
        read(ServerFrame::ChatResp {
            msg_id: id,
            client_msg_id: Some(tag.into()),
            ts: 1,
            seq: 1,
        })
    }

    fn refusal(tag: &str) -> Read {
        let mut e = ServerFrame::error(ErrorCode::RateLimited, "slow down");
        if let ServerFrame::Error(ef) = &mut e {
            ef.client_msg_id = Some(tag.into());
        }
        read(e)
    }

    #[test]
    fn first_answers_are_told_apart_from_the_rest() {
        let mut a = Answers::with_capacity(4);
        for q in 1..=3 {
            a.log.on_sent(q);
        }
        let id = uuid::Uuid::now_v7();
        let stored = a.on_read(resp("lgr.7.1.250", id), "r", 7);
        let tag = MsgTag {
            pair: 7,
            seq: 1,
            t_us: 250,
            lag_us: 0,
        };
        assert_eq!(stored, Heard::Stored(tag));
        // The same 81 again, another pair's, another run's: nothing new.
        for r in [
            resp("lgr.7.1.250", id),
            resp("lgr.8.2.0", id),
            resp("lgx.7.2.0", id),
        ] {
            assert_eq!(a.on_read(r, "r", 7), Heard::Nothing);
        }
        let refused = MsgTag {
            seq: 2,
            t_us: 0,
            ..tag
        };
        assert_eq!(
            a.on_read(refusal("lgr.7.2.0"), "r", 7),
            Heard::Refused(refused)
        );
        assert_eq!(a.on_read(refusal("lgr.7.2.0"), "r", 7), Heard::Nothing);
        assert_eq!(
            (a.log.stored(), a.log.refused(), a.log.answer(3)),
            (1, 1, None)
        );
        assert_eq!(a.errors.get("rate_limited"), Some(&2));
        assert_eq!(a.log.repeated_resps + a.log.stray_resps, 2);
        assert_eq!(
            a.problems.get("81 without our clientMsgId or a msgId"),
            Some(&2)
        );
    }

    #[test]
    fn receipts_notices_pushes_and_the_end_of_the_socket() {
        let mut a = Answers::default();
        let id = uuid::Uuid::now_v7();
        let receipt = read(ServerFrame::Delivered {
            msg_id: id,
            by_id: shared::UserId(2),
            ts: 1,
        });
        let presence = read(ServerFrame::Presence {
            user_id: shared::UserId(2),
            username: "b".into(),
            online: true,
            ts: 1,
        });
        let push = read(ServerFrame::Chat(shared::ChatMessage {
            msg_id: id,
            from_id: shared::UserId(2),
            from_name: "b".into(),
            to: shared::Target::User(shared::UserId(1)),
            content: shared::Content::text("x"),
            ts: 1,
            seq: 1,
            client_msg_id: None,
        }));
        for r in [
            receipt,
            presence,
            read(ServerFrame::Pong { ts: 1 }),
            Some(Ok(Message::Ping(Default::default()))),
        ] {
            assert_eq!(a.on_read(r, "r", 0), Heard::Nothing);
        }
        assert_eq!((a.receipts, a.notices), (1, 1));
        assert_eq!(
            a.on_read(push, "r", 0),
            Heard::Push(Some(wire::ack(&id.to_string())))
        );
        assert_eq!(
            a.on_read(Some(Ok(Message::text("{"))), "r", 0),
            Heard::Nothing
        );
        assert_eq!(a.on_read(None, "r", 0), Heard::Gone);
        assert_eq!(
            report::fmt_tally(&a.problems),
            "sender socket ended=1, unparsable frame=1"
        );
    }
}
