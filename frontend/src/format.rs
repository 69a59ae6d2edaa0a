//! Small pure helpers for display and ids.

use shared::limits::MAX_BODY_BYTES;

/// Show the byte counter once a draft is this large.
pub const COUNTER_FROM_BYTES: usize = MAX_BODY_BYTES * 7 / 8;

/// A `clientMsgId`: `w-<ms base36>-<random base36>`. Unique per sender in
/// practice (time plus 64 random bits), and within the protocol's alphabet
/// and length (`shared::validate::client_msg_id`).
pub fn client_msg_id(now_ms: i64, random: u64) -> String {
    format!("w-{}-{}", base36(now_ms.max(0) as u64), base36(random))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// The composer's counter: `Some((bytes, over_limit))` once the draft is
/// near the limit.
pub fn body_counter(draft: &str) -> Option<(usize, bool)> {
    let n = draft.len();
    (n >= COUNTER_FROM_BYTES).then_some((n, n > MAX_BODY_BYTES))
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A message time for display: `14:05` today, `Mar 3, 14:05` this year,
/// `Mar 3 2024, 14:05` before. `tz_offset_min` is JavaScript's
/// `getTimezoneOffset()` (minutes to add to local time to get UTC).
pub fn message_time(ts_ms: i64, now_ms: i64, tz_offset_min: i32) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let local = |t: i64| t - i64::from(tz_offset_min) * 60_000;
    let (t, n) = (local(ts_ms), local(now_ms));
    let day = t.div_euclid(86_400_000);
    let mins = t.rem_euclid(86_400_000) / 60_000;
    let hm = format!("{:02}:{:02}", mins / 60, mins % 60);
    let (y, m, d) = civil_from_days(day);
    let (ny, _, _) = civil_from_days(n.div_euclid(86_400_000));
    if day == n.div_euclid(86_400_000) {
        hm
    } else if y == ny {
        format!("{} {d}, {hm}", MONTHS[m as usize - 1])
    } else {
        format!("{} {d} {y}, {hm}", MONTHS[m as usize - 1])
    }
}

/// One-line preview of a message body for the sidebar.
pub fn preview(body: &str, max_chars: usize) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max_chars {
        line
    } else {
        let mut s: String = line.chars().take(max_chars.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The typing indicator: `alice is typing…`, `alice, bob are typing…`,
/// `alice, bob and 2 others are typing…`; `None` when nobody types.
pub fn typing_text(names: &[String]) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!("{one} is typing…")),
        [a, b, c] => Some(format!("{a}, {b}, {c} are typing…")),
        [a, b] => Some(format!("{a}, {b} are typing…")),
        [a, b, rest @ ..] => Some(format!("{a}, {b} and {} others are typing…", rest.len())),
    }
}

/// How long since `since` (the desk's waiting times): `12 s`, `3 min`,
/// `2 h 5 min`; clock skew reads as `0 s`.
pub fn elapsed(since_ms: i64, now_ms: i64) -> String {
    let s = (now_ms - since_ms).max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The status line of one of our messages.
pub fn status_label(state: crate::model::MsgState, read_by: Option<u32>) -> String {
    use crate::model::MsgState as S;
    match (state, read_by) {
        (S::Sending, _) => "Sending…".into(),
        (S::Failed, _) => "Not sent".into(),
        (S::Read, None) => "Read".into(),
        (S::Sent | S::Delivered | S::Read, Some(n)) if n > 0 => format!("Read by {n}"),
        (S::Delivered, _) => "Delivered".into(),
        _ => "Sent".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_times_read_naturally() {
        assert_eq!(elapsed(1_000, 500), "0 s");
        assert_eq!(elapsed(0, 59_999), "59 s");
        assert_eq!(elapsed(0, 60_000), "1 min");
        assert_eq!(elapsed(0, 3_599_000), "59 min");
        assert_eq!(elapsed(0, 7_500_000), "2 h 5 min");
    }

    #[test]
    fn client_msg_ids_are_valid_and_distinct() {
        let a = client_msg_id(1_732_352_400_000, u64::MAX);
        let b = client_msg_id(1_732_352_400_000, 1);
        assert_ne!(a, b);
        assert!(a.starts_with("w-"));
        shared::validate::client_msg_id(&a).unwrap();
        shared::validate::client_msg_id(&client_msg_id(-5, 0)).unwrap();
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }

    #[test]
    fn counter_appears_near_the_limit_and_flags_overflow() {
        assert_eq!(body_counter("hello"), None);
        assert_eq!(body_counter(&"a".repeat(COUNTER_FROM_BYTES - 1)), None);
        assert_eq!(
            body_counter(&"a".repeat(COUNTER_FROM_BYTES)),
            Some((COUNTER_FROM_BYTES, false))
        );
        assert_eq!(
            body_counter(&"a".repeat(MAX_BODY_BYTES)),
            Some((MAX_BODY_BYTES, false))
        );
        // Bytes, not characters: 4097 two-byte characters are over 8192.
        assert_eq!(
            body_counter(&"é".repeat(MAX_BODY_BYTES / 2 + 1)),
            Some((MAX_BODY_BYTES + 2, true))
        );
    }

    #[test]
    fn message_times() {
        // 2024-11-23 09:00:00 UTC.
        let ts = 1_732_352_400_000;
        assert_eq!(message_time(ts, ts + 60_000, 0), "09:00");
        // UTC+1 (offset -60): 10:00 local.
        assert_eq!(message_time(ts, ts, -60), "10:00");
        // UTC-10 (offset 600): 23:00 the previous local day.
        assert_eq!(message_time(ts, ts, 600), "23:00");
        assert_eq!(message_time(ts, ts + 86_400_000, 0), "Nov 23, 09:00");
        assert_eq!(
            message_time(ts, ts + 365 * 86_400_000, 0),
            "Nov 23 2024, 09:00"
        );
        assert_eq!(message_time(0, 0, 0), "00:00");
        assert_eq!(message_time(951_782_400_000, 0, 0), "Feb 29 2000, 00:00");
    }

    #[test]
    fn previews_are_single_line_and_bounded() {
        assert_eq!(preview("hi\nthere", 40), "hi there");
        assert_eq!(preview("abcdef", 4), "abc…");
        assert_eq!(preview("日本語のテキスト", 3), "日本…");
    }

    #[test]
    fn typing_texts() {
        let n = |v: &[&str]| typing_text(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(n(&[]), None);
        assert_eq!(n(&["alice"]).unwrap(), "alice is typing…");
        assert_eq!(n(&["alice", "bob"]).unwrap(), "alice, bob are typing…");
        assert_eq!(n(&["a", "b", "c"]).unwrap(), "a, b, c are typing…");
        assert_eq!(
            n(&["a", "b", "c", "d"]).unwrap(),
            "a, b and 2 others are typing…"
        );
    }

    #[test]
    fn status_labels() {
        use crate::model::MsgState as S;
        assert_eq!(status_label(S::Sending, None), "Sending…");
        assert_eq!(status_label(S::Sent, None), "Sent");
        assert_eq!(status_label(S::Delivered, None), "Delivered");
        assert_eq!(status_label(S::Read, None), "Read");
        assert_eq!(status_label(S::Sent, Some(0)), "Sent");
        assert_eq!(status_label(S::Sent, Some(2)), "Read by 2");
        assert_eq!(status_label(S::Read, Some(3)), "Read by 3");
        assert_eq!(status_label(S::Failed, Some(3)), "Not sent");
    }
}
