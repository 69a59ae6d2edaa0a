//! Frames from the relay, as the reducer applies them.

use super::State;
use crate::model::PushOutcome;
use shared::ServerFrame;
use std::rc::Rc;

impl State {
    /// Applies a frame; `None` when nothing visible changed.
    pub(super) fn on_frame(&mut self, frame: &ServerFrame, now: i64) -> Option<()> {
        let chat = &mut self.chat;
        let changed = match frame {
            ServerFrame::Chat(p) => {
                let shown = matches!(chat.on_push(p), PushOutcome::Shown | PushOutcome::Merged);
                if shown {
                    // An echo to someone new has only a placeholder name.
                    chat.learn_names(self.presence.names());
                }
                shown
            }
            ServerFrame::ChatResp {
                msg_id,
                client_msg_id,
                ts,
                seq,
            } => chat.on_chat_resp(*msg_id, client_msg_id.as_deref(), *ts, *seq),
            ServerFrame::Delivered { msg_id, .. } => chat.on_delivered(*msg_id),
            ServerFrame::Error(e) => chat.on_error(e),
            ServerFrame::ReadReceipt {
                by_id,
                to,
                prev_seq,
                seq,
                ..
            } => chat.on_read_receipt(*by_id, *to, *prev_seq, *seq),
            ServerFrame::GroupEvent(e) => {
                let (changed, notice) = chat.on_group_event(e, now);
                if notice.is_some() {
                    self.notice = notice;
                    if self.chat.active.is_none() {
                        self.members_open = false;
                    }
                }
                changed
            }
            ServerFrame::Typing {
                from_id,
                from_name,
                to,
            } => {
                // Not cached: no `chat_rev` bump.
                return chat.on_typing(*from_id, from_name, *to, now).then_some(());
            }
            ServerFrame::Presence {
                user_id,
                username,
                online,
                ..
            } => {
                if Some(*user_id) == self.me() {
                    return None;
                }
                let named = self.chat.learn_names([(*user_id, username.as_str())]);
                let shown = Rc::make_mut(&mut self.presence).apply(*user_id, username, *online);
                if named {
                    self.chat_rev += 1;
                }
                return (named || shown).then_some(());
            }
            // Only the visitor's page (`support.html`) follows 131.
            #[cfg(any(test, feature = "support"))]
            ServerFrame::DeskStatus(d) => return self.apply_desk_status(d, now),
            _ => false,
        };
        if !changed {
            return None;
        }
        self.chat_rev += 1;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::Action;
    use super::*;
    use crate::model::{ConvKey, MsgState, TYPING_SHOW_MS};
    use shared::{
        ChatMessage, Content, GroupEvent, GroupEventKind, GroupId, MsgId, Target, UserId,
    };
    use std::rc::Rc;

    #[test]
    fn frames_drive_message_states_up_to_read() {
        let s = send(&online(&signed_in()), "w-1", 0);
        let msg_id = MsgId::from_u128(7);
        let s = frame(
            &s,
            ServerFrame::ChatResp {
                msg_id,
                client_msg_id: Some("w-1".into()),
                ts: 5,
                seq: 1,
            },
        );
        assert_eq!(state_of(&s, "w-1"), MsgState::Sent);
        let s = frame(
            &s,
            ServerFrame::Delivered {
                msg_id,
                by_id: UserId(2),
                ts: 6,
            },
        );
        assert_eq!(state_of(&s, "w-1"), MsgState::Delivered);
        let s = frame(
            &s,
            ServerFrame::ReadReceipt {
                by_id: UserId(2),
                to: Target::User(UserId(1)),
                prev_seq: Some(0),
                seq: 1,
                ts: 7,
            },
        );
        let c = s.chat.conversation(KB).unwrap();
        assert_eq!(c.display_state(&c.messages[0]), MsgState::Read);
        let s2 = frame(&s, ServerFrame::Pong { ts: 1 });
        assert!(Rc::ptr_eq(&s, &s2), "frames that change nothing");
    }

    #[test]
    fn duplicate_pushes_do_not_change_state_and_reads_clear_badges() {
        let s = online(&signed_in());
        let s = frame(&s, bob_says(9, 1));
        assert_eq!(s.chat.total_unread(), 1);
        let s2 = frame(&s, bob_says(9, 1));
        assert!(Rc::ptr_eq(&s, &s2));
        // Opening shows it and hides the sidebar (narrow screens); the READ
        // the app sends then clears the badge.
        let s = open(&s2, KB, "bob");
        assert!(!s.sidebar_open);
        assert_eq!(s.chat.read_candidate(), Some((KB, 1)));
        let s = reduce(&s, Action::MarkRead { key: KB, seq: 1 });
        assert_eq!(s.chat.total_unread(), 0);
        let s2 = reduce(&s, Action::MarkRead { key: KB, seq: 1 });
        assert!(Rc::ptr_eq(&s, &s2));
        // Back to the list on a phone: closed, nothing more is read.
        let s = reduce(&s, Action::ShowSidebar(true));
        assert_eq!(s.chat.active, None);
        let s = open(&s, KB, "bob");
        // Hidden page: nothing to read.
        let s = reduce(&s, Action::Visible(false));
        let s = frame(&s, bob_says(10, 2));
        assert_eq!(s.chat.read_candidate(), None);
        assert_eq!(s.chat.total_unread(), 1);
        let s = reduce(&s, Action::Visible(true));
        assert_eq!(s.chat.read_candidate(), Some((KB, 2)));
        // We cannot open a conversation with ourselves.
        let s3 = open(&s, ConvKey::User(UserId(1)), "me");
        assert!(Rc::ptr_eq(&s, &s3));
    }

    #[test]
    fn presence_frames_drive_dots_and_the_online_list() {
        let s = online(&signed_in());
        let presence = |id: i64, name: &str, online: bool| ServerFrame::Presence {
            user_id: UserId(id),
            username: name.into(),
            online,
            ts: 0,
        };
        // The snapshot after login.
        let s = frame(&s, presence(3, "carol", true));
        let s = frame(&s, presence(2, "bob", true));
        assert!(s.presence.is_online(UserId(2)));
        assert_eq!(
            s.presence.online_users(),
            [user(2, "bob"), user(3, "carol")]
        );
        // A change.
        let s = frame(&s, presence(3, "carol", false));
        assert!(!s.presence.is_online(UserId(3)));
        assert_eq!(s.presence.online_users(), [user(2, "bob")]);
        let s2 = frame(&s, presence(2, "bob", true));
        assert!(Rc::ptr_eq(&s, &s2), "no change");
        let s3 = frame(&s, presence(1, "me", false));
        assert!(Rc::ptr_eq(&s, &s3), "not about us");
    }

    #[test]
    fn typing_shows_then_expires_on_ticks() {
        let s = online(&signed_in());
        let s = reduce(
            &s,
            Action::Frame {
                frame: ServerFrame::Typing {
                    from_id: UserId(2),
                    from_name: "bob".into(),
                    to: Target::User(UserId(1)),
                },
                now: 1_000,
            },
        );
        assert_eq!(s.chat.typing_in(KB), ["bob"]);
        let s2 = reduce(&s, Action::Tick { now: 2_000 });
        assert!(Rc::ptr_eq(&s, &s2));
        let rev = s.chat_rev;
        let s = reduce(
            &s,
            Action::Tick {
                now: 1_000 + TYPING_SHOW_MS,
            },
        );
        assert!(s.chat.typing_in(KB).is_empty());
        assert_eq!(s.chat_rev, rev, "typing is not cached");
    }

    #[test]
    fn being_removed_shows_a_notice() {
        let s = online(&signed_in());
        let s = reduce(
            &s,
            Action::Group {
                info: group_info(),
                now: 5,
            },
        );
        let removed = GroupEvent {
            group_id: GroupId(7),
            kind: GroupEventKind::MemberRemoved,
            user_id: Some(UserId(1)),
            username: Some("me".into()),
            by_id: Some(UserId(2)),
            name: Some("team".into()),
        };
        let s = frame(&s, ServerFrame::GroupEvent(removed));
        assert!(s.notice.as_deref().unwrap().contains("removed from team"));
        assert!(s.chat.conversation(KG).unwrap().read_only());
    }

    /// The echo of a message "me" (user 1) sent from another tab.
    fn my_echo(id: u128, to: i64, seq: u64, cid: &str) -> ServerFrame {
        ServerFrame::Chat(ChatMessage {
            msg_id: MsgId::from_u128(id),
            from_id: UserId(1),
            from_name: "me".into(),
            to: Target::User(UserId(to)),
            content: Content::text("hey"),
            ts: seq as i64,
            seq,
            client_msg_id: Some(cid.into()),
        })
    }

    #[test]
    fn presence_fills_in_unknown_peer_names() {
        let presence = |id: i64, name: &str| ServerFrame::Presence {
            user_id: UserId(id),
            username: name.into(),
            online: true,
            ts: 0,
        };
        let s = signed_in();
        let s = frame(&s, my_echo(3, 5, 1, "t2-1"));
        let k = ConvKey::User(UserId(5));
        assert_eq!(s.chat.conversation(k).unwrap().name, "user 5");
        let rev = s.chat_rev;
        let s = frame(&s, presence(5, "eve"));
        assert_eq!(s.chat.conversation(k).unwrap().name, "eve");
        assert!(s.chat_rev > rev, "the name is cached");
        // Already known from presence when the echo comes: named at once.
        let s = frame(&s, presence(6, "fay"));
        let s = frame(&s, my_echo(5, 6, 2, "t2-3"));
        assert_eq!(
            s.chat.conversation(ConvKey::User(UserId(6))).unwrap().name,
            "fay"
        );
    }
}
