//! Validation rules shared by the relay and the browser, so both reject the
//! same things with the same codes.

use crate::codes::ErrorCode;
use crate::limits::*;

/// A rule violation: the code and a message a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Invalid {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl Invalid {
    /// Builds a violation.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
        }
    }
}

/// Usernames: 3 to 32 characters from `A-Z a-z 0-9 _ . -`, starting with a
/// letter or digit. Uniqueness is case-insensitive (enforced by the relay).
pub fn username(name: &str) -> Result<(), Invalid> {
    let n = name.chars().count();
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&n) {
        return Err(Invalid::new(
            ErrorCode::InvalidUsername,
            format!("username must be {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters"),
        ));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(Invalid::new(
            ErrorCode::InvalidUsername,
            "username may contain only letters, digits, '_', '.' and '-', and must start with a letter or digit",
        ));
    }
    Ok(())
}

/// Passwords: 8 to 256 bytes of anything.
pub fn password(pw: &str) -> Result<(), Invalid> {
    if !(PASSWORD_MIN_BYTES..=PASSWORD_MAX_BYTES).contains(&pw.len()) {
        return Err(Invalid::new(
            ErrorCode::InvalidPassword,
            format!("password must be {PASSWORD_MIN_BYTES} to {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Whether a character may appear in a chat body: anything printable plus
/// newline, carriage return and tab. Other C0/C1 controls (NUL, ESC, …) are
/// refused because they corrupt terminals and logs and carry no text.
fn body_char_ok(c: char) -> bool {
    !c.is_control() || matches!(c, '\n' | '\r' | '\t')
}

/// Chat content: an allowed content type and a non-blank body of at most
/// `MAX_BODY_BYTES` UTF-8 bytes without control characters.
pub fn content(content_type: u16, body: &str) -> Result<(), Invalid> {
    if !ALLOWED_CONTENT_TYPES.contains(&content_type) {
        return Err(Invalid::new(
            ErrorCode::UnsupportedContentType,
            format!(
                "contentType {content_type} is not supported (allowed: {ALLOWED_CONTENT_TYPES:?})"
            ),
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(Invalid::new(
            ErrorCode::BodyTooLarge,
            format!(
                "body is {} bytes; the limit is {MAX_BODY_BYTES}",
                body.len()
            ),
        ));
    }
    if body.trim().is_empty() {
        return Err(Invalid::new(ErrorCode::EmptyBody, "body is empty"));
    }
    if !body.chars().all(body_char_ok) {
        return Err(Invalid::new(
            ErrorCode::InvalidField,
            "body contains control characters",
        ));
    }
    Ok(())
}

/// `clientMsgId`: 1 to 64 characters from `A-Z a-z 0-9 - _ . :`.
pub fn client_msg_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CLIENT_MSG_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !ok {
        return Err(Invalid::new(
            ErrorCode::InvalidField,
            format!("clientMsgId must be 1 to {MAX_CLIENT_MSG_ID_LEN} characters from A-Z a-z 0-9 - _ . :"),
        ));
    }
    Ok(())
}

/// A session token as presented: non-empty, bounded, printable ASCII.
pub fn token(t: &str) -> Result<(), Invalid> {
    if t.is_empty() || t.len() > MAX_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(ErrorCode::InvalidToken, "malformed token"));
    }
    Ok(())
}

/// Group names: 1 to 64 characters, not blank, no control characters.
pub fn group_name(name: &str) -> Result<(), Invalid> {
    let n = name.chars().count();
    if !(GROUP_NAME_MIN_CHARS..=GROUP_NAME_MAX_CHARS).contains(&n) || name.trim().is_empty() {
        return Err(Invalid::new(
            ErrorCode::InvalidField,
            format!(
                "group name must be {GROUP_NAME_MIN_CHARS} to {GROUP_NAME_MAX_CHARS} characters"
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(
            ErrorCode::InvalidField,
            "group name contains control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("alice").is_ok());
        assert!(username("a_b.c-9").is_ok());
        for bad in ["al", "_alice", "al ice", "ålice", "a<b>", &"x".repeat(33)] {
            assert_eq!(
                username(bad).unwrap_err().code,
                ErrorCode::InvalidUsername,
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords() {
        assert!(password("correct horse").is_ok());
        assert_eq!(
            password("short").unwrap_err().code,
            ErrorCode::InvalidPassword
        );
        assert!(password(&"p".repeat(257)).is_err());
    }

    #[test]
    fn bodies() {
        assert!(content(1, "hi").is_ok());
        assert!(content(1, "multi\nline\ttext 😀 日本語").is_ok());
        assert_eq!(
            content(2, "hi").unwrap_err().code,
            ErrorCode::UnsupportedContentType
        );
        assert_eq!(content(1, "").unwrap_err().code, ErrorCode::EmptyBody);
        assert_eq!(content(1, " \n\t").unwrap_err().code, ErrorCode::EmptyBody);
        assert_eq!(
            content(1, "a\u{0}b").unwrap_err().code,
            ErrorCode::InvalidField
        );
        assert_eq!(
            content(1, "a\u{1b}[2J").unwrap_err().code,
            ErrorCode::InvalidField
        );
        assert!(content(1, &"é".repeat(MAX_BODY_BYTES / 2)).is_ok());
        assert_eq!(
            content(1, &"é".repeat(MAX_BODY_BYTES / 2 + 1))
                .unwrap_err()
                .code,
            ErrorCode::BodyTooLarge
        );
    }

    #[test]
    fn client_msg_ids() {
        assert!(client_msg_id("c-1:2.3_x").is_ok());
        assert!(client_msg_id("").is_err());
        assert!(client_msg_id("has space").is_err());
        assert!(client_msg_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn tokens_and_group_names() {
        assert!(token("abcDEF_-123").is_ok());
        assert!(token("").is_err());
        assert!(token("a b").is_err());
        assert!(token(&"a".repeat(257)).is_err());
        assert!(group_name("Rust fans 🦀").is_ok());
        assert!(group_name("   ").is_err());
        assert!(group_name(&"g".repeat(65)).is_err());
    }
}
