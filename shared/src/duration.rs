//! Durations on the command line and in environment variables: one parser
//! for the relay's flags and the load generator's, so `30d` or `250ms`
//! means the same everywhere.

use std::time::Duration;

/// Parses `250ms`, `1.5s`, `5s`, `2m`, `1h`, `30d` (also `us`/`µs` and
/// `min`), or a bare number of seconds. Refuses negative, non-finite and
/// overflowing values with a message instead of panicking.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 500ms, 5s, 2m, 30d)"))?;
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        u => {
            return Err(format!(
                "unknown duration unit {u:?} in {s:?} (use ms, s, m, h or d)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration {s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("40us"), Ok(Duration::from_micros(40)));
        assert_eq!(parse_duration(" 5s "), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "s", "-1s", "5x", "1..2s", "NaN", "inf", "5 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// `Duration::from_secs_f64` panics on these; the flag parser must not.
    #[test]
    fn overflow_is_an_error_not_a_panic() {
        for huge in [
            "99999999999999999999999d",
            "1e400",
            "184467440737095516160s",
        ] {
            let r = parse_duration(huge);
            assert!(r.is_err(), "{huge:?} gave {r:?}");
        }
        let digits = "9".repeat(400);
        assert!(parse_duration(&format!("{digits}h")).is_err());
    }
}
