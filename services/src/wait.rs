//! Waiting for a condition with a deadline, instead of sleeping for a
//! guessed time: a server is ready when it answers, not after 2 s.

use std::io;
use std::time::{Duration, Instant};

/// Polls `probe` until it yields `Some`, fails, or `timeout` passes (then a
/// `TimedOut` error naming `what`). Polls quickly at first (servers that
/// are already up answer at once), then every 50 ms.
pub(crate) fn until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = probe()? {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {timeout:?} waiting for {what}"),
            ));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_or_times_out() {
        let mut n = 0;
        let v = until(Duration::from_secs(5), "three polls", || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .unwrap();
        assert_eq!(v, 3);
        let e = until(Duration::from_millis(20), "never", || Ok(None::<()>)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("never"));
    }
}
