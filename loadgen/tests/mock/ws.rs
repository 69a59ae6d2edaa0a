//! The mock's `/ws`: LOGIN, PING, CHAT (to a user or a group, with the
//! injected faults) and ACK, with a writer task per socket.

use super::{every, Faults, State, Tx};
use futures_util::{SinkExt, StreamExt};
use shared::{ChatSend, ClientFrame, ErrorCode, GroupId, ServerFrame, Target, UserId};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Serves one WebSocket until the client closes it.
pub(super) async fn serve(s: TcpStream, st: Arc<Mutex<State>>, faults: Faults) {
    let Ok(ws) = tokio_tungstenite::accept_async(s).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut me: Option<UserId> = None;
    let mut kill = st.lock().unwrap().kill.as_ref().unwrap().subscribe();
    let mut killed = false;
    loop {
        let m = tokio::select! {
            m = stream.next() => m,
            _ = kill.changed() => {
                killed = true;
                break;
            }
        };
        let Some(Ok(m)) = m else { break };
        let text = match m {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let frame = match ClientFrame::decode(text.as_str()) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(e.to_frame().encode());
                continue;
            }
        };
        let mut g = st.lock().unwrap();
        match (frame, me) {
            (ClientFrame::Login { token }, None) => match g.tokens.get(&token).cloned() {
                Some((uid, name)) => {
                    me = Some(uid);
                    g.online.entry(uid).or_default().push(tx.clone());
                    login(&g, &tx, uid, name);
                }
                None => {
                    let _ = tx.send(
                        ServerFrame::LoginFailed {
                            code: ErrorCode::InvalidToken,
                            message: "no".into(),
                        }
                        .encode(),
                    );
                    break;
                }
            },
            (_, None) => {
                let _ = tx.send(ServerFrame::error(ErrorCode::NotLoggedIn, "login first").encode());
                break;
            }
            (ClientFrame::Ping { .. }, Some(_)) => {
                let _ = tx.send(ServerFrame::Pong { ts: 1 }.encode());
            }
            (ClientFrame::Chat(c), Some(uid)) => {
                if chat(&mut g, &tx, uid, c, &faults) {
                    g.kill.as_ref().unwrap().send_modify(|k| *k += 1);
                    killed = true;
                    break;
                }
            }
            (ClientFrame::Ack { msg_id }, Some(uid)) => {
                let _ = tx.send(ServerFrame::AckResp { msg_id }.encode());
                if let Some((to, key)) = g.unacked_ids.remove(&msg_id) {
                    if let Some(m) = g.unacked.get_mut(&to) {
                        m.remove(&key);
                    }
                }
                if g.group_msgs.contains(&msg_id) {
                    continue; // no receipts for group messages
                }
                if let Some(from) = g.senders.get(&msg_id).copied() {
                    let receipt = ServerFrame::Delivered {
                        msg_id,
                        by_id: uid,
                        ts: 1,
                    }
                    .encode();
                    for t in g.online.get(&from).into_iter().flatten() {
                        let _ = t.send(receipt.clone());
                    }
                }
            }
            (
                ClientFrame::Typing { .. }
                | ClientFrame::Read { .. }
                | ClientFrame::VoiceJoin { .. }
                | ClientFrame::VoiceLeave { .. }
                | ClientFrame::VoiceMute { .. }
                | ClientFrame::VoiceQuery { .. }
                | ClientFrame::DeskOpen
                | ClientFrame::DeskAgent(_)
                | ClientFrame::DeskTransfer { .. }
                | ClientFrame::DeskClose { .. },
                Some(_),
            ) => {}
            (ClientFrame::Login { .. }, Some(_)) => {
                let _ = tx.send(ServerFrame::error(ErrorCode::AlreadyLoggedIn, "again").encode());
            }
        }
    }
    if let Some(uid) = me {
        let mut g = st.lock().unwrap();
        if let Some(v) = g.online.get_mut(&uid) {
            v.retain(|t| !t.same_channel(&tx));
        }
    }
    drop(tx);
    if killed {
        // Gone at once: no close frame, nothing more written.
        writer.abort();
        return;
    }
    let _ = writer.await;
}

/// The 11 for `uid`, its unacked one-to-one messages, then the notices a
/// client gets unasked (they must be ignored): for a group member, its
/// owner's presence and its own joining.
fn login(g: &State, tx: &Tx, uid: UserId, name: String) {
    let _ = tx.send(
        ServerFrame::LoginOk {
            user_id: uid,
            username: name.clone(),
            ts: 1,
        }
        .encode(),
    );
    for push in g.unacked.get(&uid).into_iter().flat_map(|m| m.values()) {
        let _ = tx.send(push.clone());
    }
    let Some((&gid, gr)) = g.groups.iter().find(|(_, gr)| gr.members.contains(&uid)) else {
        return;
    };
    let presence = ServerFrame::Presence {
        user_id: gr.owner,
        username: "owner".into(),
        online: true,
        ts: 1,
    };
    let joined = ServerFrame::GroupEvent(shared::GroupEvent {
        group_id: GroupId(gid),
        kind: shared::GroupEventKind::MemberJoined,
        user_id: Some(uid),
        username: Some(name),
        by_id: None,
        name: Some(gr.name.clone()),
    });
    for f in [presence, joined] {
        let _ = tx.send(f.encode());
    }
}

/// A CHAT from `uid`: refused (`refuse_every`), or stored once per
/// clientMsgId, answered with an 81 and pushed to the recipients' sockets
/// with the faults applied (counted per chat for a user, per push for a
/// group). True when this chat "kills" the mock (`kill_at`): stored, but
/// neither answered nor pushed.
fn chat(g: &mut State, tx: &Tx, uid: UserId, c: ChatSend, faults: &Faults) -> bool {
    let cmid = c.client_msg_id.clone().unwrap_or_default();
    g.chats += 1;
    let killing = faults.kill_at == g.chats;
    if every(faults.refuse_every, g.chats) {
        let mut e = ServerFrame::error(ErrorCode::RateLimited, "slow down");
        if let ServerFrame::Error(ef) = &mut e {
            ef.req_type = Some("80".into());
            ef.client_msg_id = c.client_msg_id.clone();
        }
        let _ = tx.send(e.encode());
        return false;
    }
    if let Target::Group(gid) = c.to {
        if !g
            .groups
            .get(&gid.0)
            .is_some_and(|gr| gr.members.contains(&uid))
        {
            let _ = tx.send(ServerFrame::error(ErrorCode::NotMember, "no").encode());
            return false;
        }
    }
    let (id, seq) = match g.stored.get(&(uid, cmid.clone())) {
        // Already stored (a resend): the original answer, no new push.
        Some(&(id, seq)) if !killing => {
            let _ = tx.send(
                ServerFrame::ChatResp {
                    msg_id: id,
                    client_msg_id: c.client_msg_id.clone(),
                    ts: 1,
                    seq,
                }
                .encode(),
            );
            return false;
        }
        Some(&v) => v,
        None => {
            let id = uuid::Uuid::now_v7();
            let seq = match c.to {
                Target::Group(gid) => {
                    g.group_msgs.insert(id);
                    let grp = g.groups.get_mut(&gid.0).unwrap();
                    grp.seq += 1;
                    grp.seq
                }
                Target::User(to) => {
                    g.senders.insert(id, uid);
                    let s = g.seqs.entry((uid, to)).or_default();
                    *s += 1;
                    *s
                }
            };
            g.stored.insert((uid, cmid), (id, seq));
            if let Target::User(to) = c.to {
                let frame = push_frame(uid, &c, id, seq);
                g.unacked.entry(to).or_default().insert((uid, seq), frame);
                g.unacked_ids.insert(id, (to, (uid, seq)));
            }
            (id, seq)
        }
    };
    if killing {
        return true;
    }
    let _ = tx.send(
        ServerFrame::ChatResp {
            msg_id: id,
            client_msg_id: c.client_msg_id.clone(),
            ts: 1,
            seq,
        }
        .encode(),
    );
    let push = |msg_id| push_frame(uid, &c, msg_id, seq);
    let (recipients, group) = match c.to {
        Target::Group(gid) => {
            let members = g.groups[&gid.0].members.iter().copied();
            (members.filter(|&m| m != uid).collect(), true)
        }
        Target::User(to) => (vec![to], false),
    };
    for m in recipients {
        let k = if group {
            g.group_pushes += 1;
            g.group_pushes
        } else {
            g.chats
        };
        if every(faults.drop_every, k) {
            continue;
        }
        let mut frames = vec![push(id)];
        if every(faults.redeliver_every, k) {
            frames.push(push(id));
        }
        if every(faults.duplicate_every, k) {
            let dup = uuid::Uuid::now_v7();
            if !group {
                g.senders.insert(dup, uid);
            }
            frames.push(push(dup));
        }
        for t in g.online.get(&m).into_iter().flatten() {
            for f in &frames {
                let _ = t.send(f.clone());
            }
        }
    }
    false
}

/// The push of chat `c` from `from`, stored as `msg_id` at `seq`.
fn push_frame(from: UserId, c: &ChatSend, msg_id: uuid::Uuid, seq: u64) -> String {
    ServerFrame::Chat(shared::ChatMessage {
        msg_id,
        from_id: from,
        from_name: "x".into(),
        to: c.to,
        content: c.content.clone(),
        ts: 1,
        seq,
        client_msg_id: c.client_msg_id.clone(),
    })
    .encode()
}
