//! The relay's JSON HTTP API, with retries for a busy relay.

use super::Target;
use crate::Error;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// An answer of the relay's HTTP API.
#[derive(Clone, Debug)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl ApiResponse {
    /// `HTTP 403: {"code":…}` (body cut at 300 bytes), for error messages.
    pub fn describe(&self) -> String {
        format!(
            "HTTP {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        )
    }
}

/// The relay's JSON HTTP API (`/api/...`) over one pooled keep-alive client.
#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    /// A client for `target`'s HTTP API.
    pub fn new(target: &Target) -> Api {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Api {
            client: Client::builder(TokioExecutor::new()).build(http),
            base: target.http_base.clone(),
        }
    }

    /// Sends one request (`token` as a bearer token, `body` as JSON) and
    /// returns the final answer, whatever its status. 429 and 503 (the relay
    /// is busy or rate-limiting) are retried with backoff, honouring
    /// `Retry-After`; a failed connection is retried twice (most likely
    /// there is no relay at all, so give up soon). Errors are only for
    /// answers that never came.
    pub async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<ApiResponse, Error> {
        let uri: hyper::Uri = format!("{}{path}", self.base).parse()?;
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = hyper::Request::builder()
                .method(method.clone())
                .uri(uri.clone());
            if body.is_some() {
                req = req.header("content-type", "application/json");
            }
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let req = req.body(Full::new(body.clone().unwrap_or_default()))?;
            // (reason, server-suggested delay, attempts allowed for this reason)
            let (why, retry_after, limit): (String, Option<Duration>, u32) =
                match self.client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let retry_after = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        let body = resp.into_body().collect().await?.to_bytes();
                        if !matches!(status, 429 | 503) {
                            return Ok(ApiResponse { status, body });
                        }
                        (format!("HTTP {status}"), retry_after, 12)
                    }
                    Err(e) => (format!("request failed: {e}"), None, 3),
                };
            if attempt >= limit {
                return Err(
                    format!("{method} {path}: giving up after {attempt} attempts: {why}").into(),
                );
            }
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
