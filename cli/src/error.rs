//! The one error type of the client, and the process exit code each kind
//! maps to (listed in `cli/README.md`).

use std::fmt;

/// Why a command failed.
#[derive(Debug)]
pub enum Error {
    /// Bad input from the user (also clap's usage errors, code 2).
    Usage(String),
    /// Not logged in, a refused token, wrong credentials (code 3).
    Auth(String),
    /// An unknown user or group, or not a member (code 4).
    NotFound(String),
    /// No answer in time, or the relay cannot be reached (code 5).
    Timeout(String),
    /// Anything else: the relay refused, local I/O failed (code 1).
    Other(String),
}

impl Error {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Other(_) => 1,
            Error::Usage(_) => 2,
            Error::Auth(_) => 3,
            Error::NotFound(_) => 4,
            Error::Timeout(_) => 5,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Error::Usage(m)
        | Error::Auth(m)
        | Error::NotFound(m)
        | Error::Timeout(m)
        | Error::Other(m)) = self;
        f.write_str(m)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Other(e.to_string())
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, Error>;
