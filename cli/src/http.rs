//! The relay's HTTP API (`docs/protocol.md` section 7), with the bodies of
//! `shared::api`.

use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use shared::api::{
    ApiError, Conversations, Credentials, GroupSummary, Groups, History, OnlineUsers, Session,
    UserSummary,
};
use shared::{GroupId, Target, UserId};
use std::time::Duration;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A client of one relay's API.
#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: Option<String>,
}

/// `http://host:port` with no trailing slash; anything else is refused
/// (TLS is not supported).
pub fn normalize_server(server: &str) -> Result<String> {
    let s = server.trim().trim_end_matches('/');
    if s.starts_with("https://") {
        return Err(Error::Usage(
            "https:// is not supported (no TLS in this client); use http://".into(),
        ));
    }
    let Some(rest) = s.strip_prefix("http://") else {
        return Err(Error::Usage(format!(
            "--server must start with http:// (got {server:?})"
        )));
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::Usage(format!(
            "--server must be http://host:port (got {server:?})"
        )));
    }
    Ok(s.to_string())
}

/// The WebSocket URL of a normalized server: `ws://host:port/ws`.
pub fn ws_url(server: &str) -> String {
    format!("ws://{}/ws", server.trim_start_matches("http://"))
}

/// Percent-encodes every byte of a query value.
fn encode(v: &str) -> String {
    v.bytes().map(|b| format!("%{b:02X}")).collect()
}

impl Api {
    /// A client for `server` (normalized), authenticated with `token`.
    pub fn new(server: &str, token: Option<String>) -> Api {
        Api {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            base: server.to_string(),
            token,
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Option<T>> {
        let uri: hyper::Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| Error::Usage(format!("bad server URL: {e}")))?;
        let mut req = hyper::Request::builder().method(method.clone()).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Other(e.to_string()))?;
        let what = format!("{method} {path}");
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                Error::Timeout(format!("cannot reach the relay at {}: {e}", self.base))
            })?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Timeout(format!("{what}: {e}")))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Timeout(format!("{what}: no answer in {REQUEST_TIMEOUT:?}")))??;
        if status == 204 {
            return Ok(None);
        }
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| Error::Other(format!("{what}: unexpected answer: {e}")));
        }
        let msg = match serde_json::from_slice::<ApiError>(&body) {
            Ok(e) => format!("{} ({})", e.message, e.code),
            Err(_) => format!("HTTP {status}"),
        };
        Err(match status {
            401 => Error::Auth(msg),
            403 | 404 => Error::NotFound(msg),
            503 | 429 => Error::Timeout(msg),
            400 | 409 => Error::Usage(msg),
            _ => Error::Other(msg),
        })
    }

    async fn want<T: DeserializeOwned>(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        self.call(method, path, body)
            .await?
            .ok_or_else(|| Error::Other(format!("{path}: empty answer")))
    }

    /// `POST /api/register` or `/api/login`.
    pub async fn authenticate(&self, register: bool, creds: &Credentials) -> Result<Session> {
        let path = if register {
            "/api/register"
        } else {
            "/api/login"
        };
        let body = serde_json::to_vec(creds).map_err(|e| Error::Other(e.to_string()))?;
        self.want(hyper::Method::POST, path, Some(body)).await
    }

    /// `POST /api/logout`.
    pub async fn logout(&self) -> Result<()> {
        self.call::<serde_json::Value>(hyper::Method::POST, "/api/logout", None)
            .await
            .map(|_| ())
    }

    /// Your online contacts (every page).
    pub async fn online(&self) -> Result<Vec<UserSummary>> {
        let mut users = Vec::new();
        let mut after = String::new();
        loop {
            let path = format!("/api/users/online?limit=500&after={after}");
            let page: OnlineUsers = self.want(hyper::Method::GET, &path, None).await?;
            users.extend(page.users);
            match page.next {
                Some(n) => after = n,
                None => return Ok(users),
            }
        }
    }

    /// The user called `name` (case-insensitive), or `NotFound`.
    pub async fn find_user(&self, name: &str) -> Result<UserSummary> {
        if !name.is_empty() {
            let path = format!("/api/users?q={}", encode(name));
            let found: OnlineUsers = self.want(hyper::Method::GET, &path, None).await?;
            if let Some(u) = found
                .users
                .into_iter()
                .find(|u| u.username.eq_ignore_ascii_case(name))
            {
                return Ok(u);
            }
        }
        Err(Error::NotFound(format!("unknown user {name:?}")))
    }

    /// Your conversations, newest activity first.
    pub async fn conversations(&self) -> Result<Conversations> {
        self.want(hyper::Method::GET, "/api/conversations", None)
            .await
    }

    /// Your groups.
    pub async fn my_groups(&self) -> Result<Vec<GroupSummary>> {
        Ok(self
            .conversations()
            .await?
            .conversations
            .into_iter()
            .filter_map(|c| c.group)
            .collect())
    }

    /// Public groups whose name starts with `q`.
    pub async fn public_groups(&self, q: &str) -> Result<Vec<GroupSummary>> {
        let g: Groups = self
            .want(
                hyper::Method::GET,
                &format!("/api/groups?q={}", encode(q)),
                None,
            )
            .await?;
        Ok(g.groups)
    }

    /// `POST /api/groups/{id}/join`.
    pub async fn join(&self, id: GroupId) -> Result<GroupSummary> {
        self.want(hyper::Method::POST, &format!("/api/groups/{id}/join"), None)
            .await
    }

    /// The last `limit` messages of a conversation, oldest first.
    pub async fn history(&self, to: Target, limit: u32) -> Result<History> {
        let path = match to {
            Target::User(UserId(u)) => format!("/api/conversations/user/{u}/messages"),
            Target::Group(GroupId(g)) => format!("/api/conversations/group/{g}/messages"),
        };
        self.want(hyper::Method::GET, &format!("{path}?limit={limit}"), None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_servers_are_accepted() {
        assert_eq!(normalize_server("http://h:8080/").unwrap(), "http://h:8080");
        assert_eq!(ws_url("http://h:8080"), "ws://h:8080/ws");
        assert!(matches!(
            normalize_server("https://h"),
            Err(Error::Usage(_))
        ));
        assert!(matches!(normalize_server("h:8080"), Err(Error::Usage(_))));
        assert!(matches!(
            normalize_server("http://h/x"),
            Err(Error::Usage(_))
        ));
    }
}
