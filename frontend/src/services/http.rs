//! The relay's HTTP API (`/api/...`, same origin), over `fetch` (gloo-net).

use crate::model::ConvKey;
use gloo_net::http::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use shared::api::{
    ApiError, ConversationSummary, Conversations, Credentials, GroupInfo, GroupSummary, Groups,
    History, Invite, MemberPage, NewGroup, OnlineUsers, RenameGroup, Session, UserSummary,
};
use shared::{ErrorCode, GroupId, UserId};

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFailure {
    /// No answer from the relay (offline, refused, proxy error page).
    Network,
    /// The relay answered with an error.
    Http {
        /// HTTP status.
        status: u16,
        /// The body's `code` (`Other` when unreadable).
        code: ErrorCode,
        /// The body's `message`.
        message: String,
    },
    /// A success status with a body that does not parse.
    Decode(String),
}

impl ApiFailure {
    /// A 401: the token is no good, the session is over.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiFailure::Http { status: 401, .. })
    }

    /// Builds the failure for a non-2xx answer. An error page that is not
    /// the relay's JSON (a dev proxy's 502, say) counts as unreachable.
    pub fn from_response(status: u16, body: &str) -> ApiFailure {
        match serde_json::from_str::<ApiError>(body) {
            Ok(e) => ApiFailure::Http {
                status,
                code: e.code,
                message: e.message,
            },
            Err(_) if matches!(status, 502..=504) => ApiFailure::Network,
            Err(_) => ApiFailure::Http {
                status,
                code: ErrorCode::Other,
                message: format!("the relay answered HTTP {status}"),
            },
        }
    }
}

/// The sign-in screen's message for a failed register/login.
pub fn auth_error_text(f: &ApiFailure) -> String {
    match f {
        ApiFailure::Network => "Can't reach the relay. Check your connection and try again.".into(),
        ApiFailure::Http { code, message, .. } => match code {
            ErrorCode::UsernameTaken => "That username is taken. Try another one.".into(),
            ErrorCode::InvalidCredentials => "Wrong username or password.".into(),
            ErrorCode::RateLimited => "Too many attempts. Wait a moment and try again.".into(),
            ErrorCode::Unavailable => "The relay is busy. Try again in a moment.".into(),
            ErrorCode::InvalidUsername | ErrorCode::InvalidPassword if !message.is_empty() => {
                capitalize(message)
            }
            _ if !message.is_empty() => capitalize(message),
            _ => "Something went wrong. Try again.".into(),
        },
        ApiFailure::Decode(_) => "The relay sent an unexpected answer.".into(),
    }
}

/// Uppercases the first letter (validation messages start lowercase).
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The panel's message for a failed group operation.
pub fn group_error_text(f: &ApiFailure) -> String {
    match f {
        ApiFailure::Http { code, message, .. } => match code {
            ErrorCode::UnknownRecipient => "No user with that name.".into(),
            ErrorCode::Forbidden => "Only the group's owner can do that.".into(),
            ErrorCode::NotMember => "You are not a member of this group.".into(),
            ErrorCode::NotFound => "That group no longer exists.".into(),
            _ => auth_error_text(&ApiFailure::Http {
                status: 0,
                code: *code,
                message: message.clone(),
            }),
        },
        other => auth_error_text(other),
    }
}

/// Percent-encodes a query parameter value as `encodeURIComponent` does
/// (letters, digits and `-_.!~*'()` stay; every other byte of the UTF-8
/// form becomes `%XX`).
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// The path of a further page of a group's members.
pub fn members_path(id: GroupId, after: &str, limit: u32) -> String {
    format!(
        "/api/groups/{id}/members?after={}&limit={limit}",
        query_value(after)
    )
}

/// The path of a history page.
pub fn history_path(key: ConvKey, before: Option<u64>, limit: u32) -> String {
    let (kind, id) = match key {
        ConvKey::User(u) => ("user", u.0),
        ConvKey::Group(g) => ("group", g.0),
    };
    match before {
        Some(b) => format!("/api/conversations/{kind}/{id}/messages?before={b}&limit={limit}"),
        None => format!("/api/conversations/{kind}/{id}/messages?limit={limit}"),
    }
}

/// One request: JSON in and out, the bearer token when signed in. Any
/// failure to get an answer (offline, refused, aborted) is
/// [`ApiFailure::Network`]; an answer outside 2xx goes through
/// [`ApiFailure::from_response`].
async fn call(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<String, ApiFailure> {
    let mut req = RequestBuilder::new(path)
        .method(method)
        .header("Accept", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req.header("Content-Type", "application/json").body(b),
        None => req.build(),
    };
    let response = req
        .map_err(|_| ApiFailure::Network)?
        .send()
        .await
        .map_err(|_| ApiFailure::Network)?;
    let text = response.text().await.map_err(|_| ApiFailure::Network)?;
    let status = response.status();
    if (200..300).contains(&status) {
        Ok(text)
    } else {
        Err(ApiFailure::from_response(status, &text))
    }
}

async fn call_json<T: DeserializeOwned>(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<T, ApiFailure> {
    let text = call(method, path, token, body).await?;
    serde_json::from_str(&text).map_err(|e| ApiFailure::Decode(e.to_string()))
}

fn credentials(username: &str, password: &str) -> Option<String> {
    serde_json::to_string(&Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
    .ok()
}

/// `POST /api/register`.
pub async fn register(username: &str, password: &str) -> Result<Session, ApiFailure> {
    call_json(
        Method::POST,
        "/api/register",
        None,
        credentials(username, password),
    )
    .await
}

/// `POST /api/login`.
pub async fn login(username: &str, password: &str) -> Result<Session, ApiFailure> {
    call_json(
        Method::POST,
        "/api/login",
        None,
        credentials(username, password),
    )
    .await
}

/// `POST /api/logout`: revokes the token.
pub async fn logout(token: &str) -> Result<(), ApiFailure> {
    call(Method::POST, "/api/logout", Some(token), None)
        .await
        .map(drop)
}

/// `GET /api/me`: whether the token still works.
pub async fn me(token: &str) -> Result<UserSummary, ApiFailure> {
    call_json(Method::GET, "/api/me", Some(token), None).await
}

/// `POST /api/visitors`: a visitor of the support desk and their token.
pub async fn new_visitor(
    v: &shared::desk::NewVisitor,
) -> Result<shared::desk::VisitorSession, ApiFailure> {
    call_json(Method::POST, "/api/visitors", None, json(v)).await
}

/// `GET /api/users?q=<prefix>`.
pub async fn search(token: &str, prefix: &str) -> Result<Vec<UserSummary>, ApiFailure> {
    let q = query_value(prefix);
    call_json::<OnlineUsers>(Method::GET, &format!("/api/users?q={q}"), Some(token), None)
        .await
        .map(|o| o.users)
}

fn json<T: serde::Serialize>(body: &T) -> Option<String> {
    serde_json::to_string(body).ok()
}

/// `GET /api/conversations`.
pub async fn conversations(token: &str) -> Result<Vec<ConversationSummary>, ApiFailure> {
    call_json::<Conversations>(Method::GET, "/api/conversations", Some(token), None)
        .await
        .map(|c| c.conversations)
}

/// `GET /api/conversations/{user|group}/{id}/messages?before=&limit=`.
pub async fn history(
    token: &str,
    key: ConvKey,
    before: Option<u64>,
    limit: u32,
) -> Result<History, ApiFailure> {
    call_json(
        Method::GET,
        &history_path(key, before, limit),
        Some(token),
        None,
    )
    .await
}

/// `GET /api/groups/{id}`.
pub async fn group(token: &str, id: GroupId) -> Result<GroupInfo, ApiFailure> {
    call_json(Method::GET, &format!("/api/groups/{id}"), Some(token), None).await
}

/// `GET /api/groups/{id}/members?after=&limit=`: the page after `after`.
pub async fn members(
    token: &str,
    id: GroupId,
    after: &str,
    limit: u32,
) -> Result<MemberPage, ApiFailure> {
    call_json(
        Method::GET,
        &members_path(id, after, limit),
        Some(token),
        None,
    )
    .await
}

/// `POST /api/groups`: answers with the new group's summary.
pub async fn create_group(
    token: &str,
    name: &str,
    public: bool,
) -> Result<GroupSummary, ApiFailure> {
    let body = json(&NewGroup {
        name: name.to_owned(),
        public,
    });
    call_json(Method::POST, "/api/groups", Some(token), body).await
}

/// `GET /api/groups?q=<prefix>`: public groups.
pub async fn find_groups(token: &str, prefix: &str) -> Result<Vec<GroupSummary>, ApiFailure> {
    let q = query_value(prefix);
    call_json::<Groups>(
        Method::GET,
        &format!("/api/groups?q={q}"),
        Some(token),
        None,
    )
    .await
    .map(|g| g.groups)
}

/// `POST /api/groups/{id}/join`.
pub async fn join_group(token: &str, id: GroupId) -> Result<GroupSummary, ApiFailure> {
    call_json(
        Method::POST,
        &format!("/api/groups/{id}/join"),
        Some(token),
        None,
    )
    .await
}

/// `POST /api/groups/{id}/members`.
pub async fn add_member(
    token: &str,
    id: GroupId,
    username: &str,
) -> Result<GroupSummary, ApiFailure> {
    let body = json(&Invite {
        username: username.to_owned(),
    });
    call_json(
        Method::POST,
        &format!("/api/groups/{id}/members"),
        Some(token),
        body,
    )
    .await
}

/// `DELETE /api/groups/{id}/members/{userId}`.
pub async fn remove_member(token: &str, id: GroupId, user: UserId) -> Result<(), ApiFailure> {
    let path = format!("/api/groups/{id}/members/{user}");
    call(Method::DELETE, &path, Some(token), None)
        .await
        .map(drop)
}

/// `POST /api/groups/{id}/leave`.
pub async fn leave_group(token: &str, id: GroupId) -> Result<(), ApiFailure> {
    let path = format!("/api/groups/{id}/leave");
    call(Method::POST, &path, Some(token), None).await.map(drop)
}

/// `PATCH /api/groups/{id}`.
pub async fn rename_group(
    token: &str,
    id: GroupId,
    name: &str,
) -> Result<GroupSummary, ApiFailure> {
    let body = json(&RenameGroup {
        name: name.to_owned(),
    });
    call_json(
        Method::PATCH,
        &format!("/api/groups/{id}"),
        Some(token),
        body,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_errors_map_to_friendly_text() {
        let taken = ApiFailure::from_response(
            409,
            r#"{"code":"username_taken","message":"username \"bob\" is taken"}"#,
        );
        assert!(matches!(
            taken,
            ApiFailure::Http {
                status: 409,
                code: ErrorCode::UsernameTaken,
                ..
            }
        ));
        assert!(auth_error_text(&taken).contains("taken"));

        let wrong = ApiFailure::from_response(
            401,
            r#"{"code":"invalid_credentials","message":"wrong username or password"}"#,
        );
        assert!(wrong.is_unauthorized());
        assert_eq!(auth_error_text(&wrong), "Wrong username or password.");

        let bad = ApiFailure::from_response(
            400,
            r#"{"code":"invalid_password","message":"password must be 8 to 256 bytes"}"#,
        );
        assert_eq!(auth_error_text(&bad), "Password must be 8 to 256 bytes");
        assert!(!bad.is_unauthorized());
    }

    #[test]
    fn proxy_error_pages_mean_unreachable() {
        assert_eq!(
            ApiFailure::from_response(502, "<html>Bad Gateway</html>"),
            ApiFailure::Network
        );
        assert!(auth_error_text(&ApiFailure::Network).contains("Can't reach the relay"));
        // A non-JSON 500 is still the relay's answer, not a network error.
        assert!(matches!(
            ApiFailure::from_response(500, "oops"),
            ApiFailure::Http {
                status: 500,
                code: ErrorCode::Other,
                ..
            }
        ));
    }

    #[test]
    fn history_paths() {
        assert_eq!(
            history_path(ConvKey::User(UserId(7)), None, 50),
            "/api/conversations/user/7/messages?limit=50"
        );
        assert_eq!(
            history_path(ConvKey::Group(GroupId(3)), Some(51), 50),
            "/api/conversations/group/3/messages?before=51&limit=50"
        );
    }

    #[test]
    fn query_values_are_encoded_like_encode_uri_component() {
        assert_eq!(query_value("bob"), "bob");
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_value("-_.!~*'()"), "-_.!~*'()");
        assert_eq!(query_value("50%+"), "50%25%2B");
        assert_eq!(
            members_path(GroupId(3), "bob & co", 100),
            "/api/groups/3/members?after=bob%20%26%20co&limit=100"
        );
    }

    #[test]
    fn group_errors_are_specific() {
        let f = ApiFailure::from_response(
            404,
            r#"{"code":"unknown_recipient","message":"no such user"}"#,
        );
        assert_eq!(group_error_text(&f), "No user with that name.");
        let f = ApiFailure::from_response(403, r#"{"code":"forbidden","message":"owner only"}"#);
        assert!(group_error_text(&f).contains("owner"));
        let f = ApiFailure::from_response(
            400,
            r#"{"code":"invalid_field","message":"group name must be 1 to 64 characters"}"#,
        );
        assert_eq!(
            group_error_text(&f),
            "Group name must be 1 to 64 characters"
        );
        assert!(group_error_text(&ApiFailure::Network).contains("Can't reach"));
    }
}
