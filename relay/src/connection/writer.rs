//! The socket's writer task: drains its bounded queue into the
//! connection, batching every frame that is ready into one flush. A client
//! that stops reading blocks only this task; the queue then fills and the
//! socket is closed as a slow consumer (`socket.rs`).
//!
//! Audio (voice rooms) comes through the handle's separate audio lane: each
//! round writes the queued text frames first, then the audio, so chat has
//! priority and a listener that falls behind only loses its own oldest
//! audio (the lane drops it), never a chat frame.

use crate::socket::{close_reason, SocketHandle};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use shared::close;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::CLOSE_GRACE;

/// Frames written per flush at most.
const WRITE_BATCH: usize = 64;

/// WebSocket settings: frames over the protocol limit are refused by
/// tungstenite before they are buffered; the small read buffer is what keeps
/// an idle connection cheap (tungstenite's default is 128 KiB, all of it
/// resident once read into). 2 KiB still takes a dozen typical frames per
/// read; a larger frame grows that one socket's buffer as needed.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0)
        .max_write_buffer_size(shared::limits::MAX_FRAME_BYTES * 4)
        .max_message_size(Some(shared::limits::MAX_FRAME_BYTES))
        .max_frame_size(Some(shared::limits::MAX_FRAME_BYTES))
}

pub(super) type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

fn close_message(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: close_reason(code).into(),
    }))
}

async fn write_batch<S>(
    sink: &mut Sink<S>,
    batch: &mut Vec<Utf8Bytes>,
    audio: &mut Vec<Bytes>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for t in batch.drain(..) {
        sink.feed(Message::Text(t)).await?;
    }
    for a in audio.drain(..) {
        sink.feed(Message::Binary(a)).await?;
    }
    sink.flush().await
}

/// Drains the socket's queue into the connection until a close.
pub(super) async fn write_loop<S>(
    mut sink: Sink<S>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    handle: SocketHandle,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Grows on demand: most sockets are idle, and a preallocated batch of
    // 64 frames would cost 2 KiB per connection.
    let mut batch = Vec::new();
    let mut audio = Vec::new();
    let killed = handle.killed();
    tokio::pin!(killed);
    let code = loop {
        tokio::select! {
            biased;
            code = &mut killed => break Some(code),
            n = rx.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break None;
                }
            }
            _ = handle.audio_queued() => {}
        }
        // Text first (taken above), then whatever audio is waiting.
        handle.take_audio(&mut audio);
        if batch.is_empty() && audio.is_empty() {
            continue;
        }
        handle.writing(true);
        tokio::select! {
            biased;
            code = &mut killed => break Some(code),
            r = write_batch(&mut sink, &mut batch, &mut audio) => if r.is_err() {
                // The peer is gone: stop the reader too.
                handle.kill(close::NORMAL);
                return;
            },
        }
        handle.writing(false);
        if audio.capacity() > crate::socket::AUDIO_LANE {
            audio = Vec::new();
        }
    };
    // Killed (or every sender gone): flush what is already queued, then
    // close, within a bounded time; a stuck peer just gets dropped.
    let code = code.unwrap_or(close::NORMAL);
    let _ = timeout(CLOSE_GRACE, async {
        while let Ok(t) = rx.try_recv() {
            if code != close::SLOW_CONSUMER {
                sink.feed(Message::Text(t)).await?;
            }
        }
        sink.send(close_message(code)).await
    })
    .await;
}
