//! The conversation list in one query: each of a user's conversations
//! with its last message after they joined (`rules::history`), the unread
//! count, the peer's cursors or the group's summary. One round trip
//! whatever the number of conversations (a query per conversation, as an
//! embedded database can afford, would be one round trip each here);
//! `store::conversation_list` orders it.

use super::conn::Pg;
use super::facts::seq;
use super::reads::{message_view, summary, MESSAGE_COLUMNS, SUMMARY_COLUMNS};
use super::schema::KIND_GROUP;
use crate::store::{conversation_list, Listed};
use shared::api::Conversations;
use shared::UserId;
use tokio_postgres::Error as PgError;

pub(super) async fn list_conversations(c: &Pg, user: UserId) -> Result<Conversations, PgError> {
    // Columns: 0 kind, 1 read_seq, 2 created_at, 3 unread, 4-8 the group
    // summary, 9-12 the peer, 13-20 the last message.
    let s = c
        .prepare_cached(&format!(
            "SELECT c.kind, mb.read_seq, c.created_at,
                    (SELECT count(*) FROM messages x
                     WHERE x.conv_id = mb.conv_id AND x.seq > mb.read_seq AND x.from_id <> $1),
                    {SUMMARY_COLUMNS},
                    p.user_id, p.username, p.read_seq, p.delivered_seq,
                    {MESSAGE_COLUMNS}
             FROM members mb
             JOIN conversations c ON c.id = mb.conv_id
             LEFT JOIN LATERAL (
                 SELECT o.user_id, ou.username, o.read_seq, o.delivered_seq
                 FROM members o JOIN users ou ON ou.id = o.user_id
                 WHERE c.kind <> $2 AND o.conv_id = mb.conv_id AND o.user_id <> $1 LIMIT 1
             ) p ON true
             LEFT JOIN LATERAL (
                 SELECT * FROM messages l
                 WHERE l.conv_id = mb.conv_id AND l.seq > mb.joined_seq
                 ORDER BY l.seq DESC LIMIT 1
             ) m ON true
             LEFT JOIN users u ON u.id = m.from_id
             WHERE mb.user_id = $1 AND (c.kind = $2 OR p.user_id IS NOT NULL)"
        ))
        .await?;
    let rows = c.query(&s, &[&user.0, &KIND_GROUP]).await?;
    let listed = rows
        .iter()
        .map(|r| {
            let group = (r.get::<_, i16>(0) == KIND_GROUP).then(|| summary(r, 4));
            let peer = r.get::<_, Option<i64>>(9).map(|id| {
                (
                    UserId(id),
                    r.get::<_, String>(10),
                    seq(r.get(11)),
                    seq(r.get(12)),
                )
            });
            let last = r.get::<_, Option<i64>>(13).map(|_| {
                let peer_id = peer.as_ref().map(|p| p.0);
                let group_id = group.as_ref().map(|g| g.group_id);
                message_view(r, 13, user, peer_id, group_id)
            });
            Listed {
                created_at: r.get(2),
                read_seq: seq(r.get(1)),
                peer,
                group,
                last,
                unread: seq(r.get(3)),
            }
        })
        .collect();
    Ok(conversation_list(listed))
}
