//! One HTTP/1.1 POST to a checked address, over a connection of its own
//! (hyper's client connection; no pool: deliveries to one webhook are few
//! and bounded, and each goes to the address its own check resolved).

use super::target::Target;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use warp::http::{header, Request};

/// The most of a webhook's answer that is read (a reply message fits).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Posts `body` to `target` at `addr`; the status and (up to
/// [`MAX_ANSWER_BYTES`] of) the answer's body.
pub(super) async fn post(
    addr: SocketAddr,
    target: &Target,
    signature: &str,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr} failed: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = Request::post(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "ferrochat-relay webhook")
        .header(shared::bots::SIGNATURE_HEADER, signature)
        .body(Full::new(body))
        .map_err(|e| format!("bad request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request to {addr} failed: {e}"))?;
        let status = resp.status().as_u16();
        let answer = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok((status, answer))
    }
    .await;
    driver.abort();
    result
}
