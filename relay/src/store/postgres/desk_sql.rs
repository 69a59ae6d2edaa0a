//! The statements of the desk on PostgreSQL (`desk.rs`).

pub(super) const ROW: &str = "SELECT d.group_id, d.visitor_id, d.agent_id, d.state, d.queued_at,
        d.assigned_at FROM desk_conversations d";
pub(super) const LOCK_VISITOR: &str = "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE";
pub(super) const VISITOR_NAME: &str = "SELECT name FROM visitors WHERE user_id = $1";
pub(super) const CREATE: &str = "INSERT INTO conversations (kind, name, is_public, created_at)
     VALUES ($1, $2, false, $3) RETURNING id";
pub(super) const ADD_VISITOR: &str =
    "INSERT INTO members (conv_id, user_id, joined_seq, delivered_seq, read_seq)
     VALUES ($1, $2, 0, 0, 0)";
pub(super) const QUEUE: &str =
    "INSERT INTO desk_conversations (group_id, visitor_id, state, queued_at)
     VALUES ($1, $2, 0, $3)";
pub(super) const BUMP: &str =
    "UPDATE conversations SET members_version = members_version + 1 WHERE id = $1";
pub(super) const LOCK_GROUP: &str =
    "SELECT name, last_seq FROM conversations WHERE id = $1 FOR NO KEY UPDATE";
/// The agent reads the whole conversation (`joined_seq` 0) and is
/// delivered what follows its current end.
pub(super) const ADD_AGENT: &str =
    "INSERT INTO members (conv_id, user_id, joined_seq, delivered_seq, read_seq)
     VALUES ($1, $2, 0, $3, $3)
     ON CONFLICT (conv_id, user_id) DO UPDATE
     SET joined_seq = 0, delivered_seq = EXCLUDED.delivered_seq, read_seq = EXCLUDED.read_seq";
pub(super) const REMOVE: &str = "DELETE FROM members WHERE conv_id = $1 AND user_id = $2";
pub(super) const MEMBERS: &str =
    "SELECT user_id, joined_seq FROM members WHERE conv_id = $1 ORDER BY user_id";
pub(super) const USERNAME: &str = "SELECT username FROM users WHERE id = $1";
pub(super) const ASSIGN: &str =
    "UPDATE desk_conversations SET state = 1, agent_id = $2, assigned_at = $3
     WHERE group_id = $1";
pub(super) const REQUEUE: &str =
    "UPDATE desk_conversations SET state = 0, agent_id = NULL, assigned_at = NULL
     WHERE group_id = $1";
pub(super) const CLOSE: &str =
    "UPDATE desk_conversations SET state = 2, closed_at = $2 WHERE group_id = $1";
/// Every agent's row (not only those taking conversations now: see the
/// module's notes), in id order.
pub(super) const LOCK_AGENTS: &str =
    "SELECT a.user_id, a.available, a.capacity, a.seen_until, u.role
     FROM desk_agents a JOIN users u ON u.id = a.user_id
     ORDER BY a.user_id FOR UPDATE OF a";
pub(super) const OPEN_COUNTS: &str = "SELECT agent_id, count(*) FROM desk_conversations
     WHERE state = 1 AND agent_id = ANY($1::int8[]) GROUP BY agent_id";
pub(super) const NEXT_QUEUED: &str = "SELECT group_id FROM desk_conversations WHERE state = 0
     ORDER BY queued_at, group_id LIMIT 1 FOR UPDATE SKIP LOCKED";
pub(super) const LAPSED: &str = "SELECT d.group_id, d.visitor_id, d.agent_id, d.state, d.queued_at,
        d.assigned_at FROM desk_conversations d
     WHERE d.state = 1 AND d.agent_id IN (SELECT user_id FROM desk_agents WHERE seen_until < $1)
     ORDER BY d.group_id FOR UPDATE OF d";
pub(super) const SET_AGENT: &str = "UPDATE desk_agents SET available = coalesce($2, available),
                                capacity = coalesce($3, capacity)
     WHERE user_id = $1";
pub(super) const RENEW: &str = "UPDATE desk_agents SET seen_until = greatest(seen_until, $2)
     WHERE user_id = ANY($1::int8[])";
pub(super) const ENSURE_AGENTS: &str = "INSERT INTO desk_agents (user_id, capacity)
     SELECT unnest($1::int8[]), $2 ON CONFLICT (user_id) DO NOTHING";
pub(super) const ENTRIES: &str =
    "SELECT d.group_id, d.visitor_id, v.name, v.email, v.page, d.state,
        d.agent_id, d.queued_at, d.assigned_at
     FROM desk_conversations d LEFT JOIN visitors v ON v.user_id = d.visitor_id
     WHERE d.state < 2 ORDER BY d.queued_at, d.group_id";
pub(super) const AGENTS: &str = r#"SELECT u.id, u.username, coalesce(a.available, true),
        coalesce(a.capacity, $1), coalesce(a.seen_until, 0),
        (SELECT count(*) FROM desk_conversations d WHERE d.agent_id = u.id AND d.state = 1)
     FROM users u LEFT JOIN desk_agents a ON a.user_id = u.id
     WHERE u.role IN (1, 2) ORDER BY lower(u.username) COLLATE "C""#;
