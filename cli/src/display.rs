//! How a message looks on the terminal: `[14:03:07] alice: hi`, or
//! `[14:03:07] #team alice: hi` in a group; local time.

use chrono::TimeZone;
use shared::{ChatMessage, GroupId, Target};
use std::collections::HashMap;

/// `HH:MM:SS` in local time, or the date too when not today.
pub fn local_time(ts_ms: i64) -> String {
    match chrono::Local.timestamp_millis_opt(ts_ms).single() {
        Some(t) if t.date_naive() == chrono::Local::now().date_naive() => {
            t.format("%H:%M:%S").to_string()
        }
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "?".into(),
    }
}

/// One line for a message; group names from `groups` (else `#<id>`).
pub fn line(m: &ChatMessage, groups: &HashMap<GroupId, String>) -> String {
    let time = local_time(m.ts);
    match m.to {
        Target::User(_) => format!("[{time}] {}: {}", m.from_name, m.content.body),
        Target::Group(g) => {
            let name = groups.get(&g).cloned().unwrap_or_else(|| g.to_string());
            format!("[{time}] #{name} {}: {}", m.from_name, m.content.body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{Content, MsgId, UserId};

    #[test]
    fn lines_name_the_sender_and_the_group() {
        let mut m = ChatMessage {
            msg_id: MsgId::from_u128(1),
            from_id: UserId(1),
            from_name: "alice".into(),
            to: Target::User(UserId(2)),
            content: Content::text("hi"),
            ts: chrono::Local::now().timestamp_millis(),
            seq: 1,
            client_msg_id: None,
        };
        let groups = HashMap::from([(GroupId(5), "team".to_string())]);
        let l = line(&m, &groups);
        assert!(
            l.ends_with("] alice: hi") && l.len() == "[00:00:00] alice: hi".len(),
            "{l}"
        );
        m.to = Target::Group(GroupId(5));
        assert!(line(&m, &groups).ends_with("] #team alice: hi"));
        m.to = Target::Group(GroupId(6));
        assert!(line(&m, &groups).ends_with("] #6 alice: hi"));
    }
}
