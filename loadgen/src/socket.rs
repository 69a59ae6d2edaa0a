//! A logged-in socket after LOGIN, as every scenario's tasks handle it:
//! reading a frame and naming why a socket ended, heartbeating, closing.
//!
//! Opening the socket and logging in is [`client`](crate::client)'s part;
//! what the frames mean is the caller's.

use crate::client::Ws;
use crate::report::{self, Tally};
use crate::wire;
use futures_util::{SinkExt, StreamExt};
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

/// PING period on the sockets of the message scenarios: a slow run must not
/// trip the relay's idle timeout.
pub const PING_EVERY: Duration = Duration::from_secs(10);

/// Frames fed before a flush, and frames read before a task returns to
/// sending: large enough to amortise syscalls, small enough that reading and
/// writing interleave.
pub const BATCH: usize = 64;

/// One read from a socket, as `ws.next()` returns it.
pub type Read = Option<Result<Message, tungstenite::Error>>;

/// The socket is gone; why is tallied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone;

/// The text of one read: `Ok(Some(text))` for a text frame, `Ok(None)` for
/// any other frame (binary, ping, pong), `Err(Gone)` when the socket closed,
/// failed or ended, with the reason tallied in `problems` under `who`
/// (`"sender"`, `"recipient"`: e.g. `recipient closed by relay: 4008`).
pub fn text(m: Read, who: &str, problems: &mut Tally) -> Result<Option<Utf8Bytes>, Gone> {
    let why = match m {
        Some(Ok(Message::Text(t))) => return Ok(Some(t)),
        Some(Ok(Message::Close(Some(c)))) => {
            format!("{who} closed by relay: {}", u16::from(c.code))
        }
        Some(Ok(Message::Close(None))) => format!("{who} closed by relay"),
        Some(Ok(_)) => return Ok(None),
        Some(Err(e)) => format!("{who} read: {e}"),
        None => format!("{who} socket ended"),
    };
    report::tally(problems, &why, 1);
    Err(Gone)
}

/// Sends a PING and re-arms `timer` one [`PING_EVERY`] after its last
/// deadline; `Err(Gone)` when the socket cannot be written.
pub async fn ping(ws: &mut Ws, timer: Pin<&mut Sleep>) -> Result<(), Gone> {
    let next = timer.deadline() + PING_EVERY;
    timer.reset(next);
    ws.send(Message::Text(Utf8Bytes::from_static(wire::PING)))
        .await
        .map_err(|_| Gone)
}

/// Sends a Close frame and reads until the relay's Close (or the end of the
/// stream) arrives, for at most 5 s. True when the handshake completed.
pub async fn close_cleanly(ws: &mut Ws) -> bool {
    let done = async {
        ws.close(None).await.ok()?;
        while let Some(m) = ws.next().await {
            if m.is_err() {
                break;
            }
        }
        Some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), done).await,
        Ok(Some(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;

    #[test]
    fn reads_are_text_other_frames_or_a_named_end() {
        let mut p = Tally::new();
        let t = text(Some(Ok(Message::text("{}"))), "sender", &mut p);
        assert_eq!(t.unwrap().unwrap().as_str(), "{}");
        assert_eq!(
            text(
                Some(Ok(Message::Ping(Default::default()))),
                "sender",
                &mut p
            ),
            Ok(None)
        );
        let close = CloseFrame {
            code: CloseCode::from(4008),
            reason: "slow".into(),
        };
        for m in [
            Some(Ok(Message::Close(Some(close)))),
            Some(Ok(Message::Close(None))),
            Some(Err(tungstenite::Error::ConnectionClosed)),
            None,
        ] {
            assert_eq!(text(m, "recipient", &mut p), Err(Gone));
        }
        assert_eq!(
            report::fmt_tally(&p),
            "recipient closed by relay=1, recipient closed by relay: 4008=1, \
             recipient read: Connection closed normally=1, recipient socket ended=1"
        );
    }
}
