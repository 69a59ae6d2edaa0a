//! The relay's one error type.

use shared::validate::Invalid;
use shared::ErrorCode;
use warp::http::StatusCode;

/// Everything that can go wrong inside the relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// SQLite failed.
    #[cfg(feature = "sqlite")]
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The configuration cannot work.
    #[error("configuration error: {0}")]
    Config(String),
    /// The storage writer has stopped (shutdown or a fatal error).
    #[error("storage is closed")]
    StoreClosed,
    /// The database cannot be reached (down, restarting, cut off); nothing
    /// was stored, and the same write may be retried later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A storage transaction failed; nothing in it was stored.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The username is registered already.
    #[error("username is taken")]
    UsernameTaken,
    /// Wrong username or password.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Missing, unknown or expired bearer token.
    #[error("missing or invalid token")]
    Unauthorized,
    /// A request broke a validation rule.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// A referenced user does not exist.
    #[error("no such user")]
    UnknownRecipient,
    /// The sender is not a member of that group, or it does not exist.
    #[error("not a member of that group")]
    NotMember,
    /// No such group (or a private group the caller is not in).
    #[error("no such group")]
    NoSuchGroup,
    /// Allowed in general, but not to this caller.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Password hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl Error {
    /// The wire error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::UsernameTaken => ErrorCode::UsernameTaken,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::Invalid(i) => i.code,
            Error::UnknownRecipient => ErrorCode::UnknownRecipient,
            Error::NotMember => ErrorCode::NotMember,
            Error::NoSuchGroup => ErrorCode::NotFound,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Unavailable(_) => ErrorCode::StorageUnavailable,
            _ => ErrorCode::Internal,
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::UsernameTaken => StatusCode::CONFLICT,
            Error::InvalidCredentials | Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::UnknownRecipient => StatusCode::NOT_FOUND,
            Error::NotMember | Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NoSuchGroup => StatusCode::NOT_FOUND,
            Error::StoreClosed | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A message safe to show a client: internal details stay in the logs.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal error; try again".to_string(),
            ErrorCode::StorageUnavailable => {
                "the database is unavailable; nothing was stored, try again".to_string()
            }
            _ => self.to_string(),
        }
    }
}

/// Short for `Result<T, relay::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
