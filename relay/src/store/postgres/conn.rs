//! Connections: how they are configured, pooled and replaced, and what a
//! PostgreSQL failure means to the relay.
//!
//! Every connection runs with `synchronous_commit=on`, whatever the
//! server's default: a write is answered only once its commit is on disk.
//! The pool recycles with [`RecyclingMethod::Verified`] (a test query
//! before a pooled connection is handed out), since after a hard cut a
//! connection can look open until its first query fails; reads are tried
//! once more on a fresh connection on top of that ([`with_conn!`]).
//!
//! Failures come in three kinds ([`Failure`]): the database is unreachable
//! (answered as [`Error::Unavailable`], which clients may retry), a
//! conflict with a concurrent transaction (a deadlock, a serialization
//! failure, a unique key another relay inserted first: the writer redoes
//! the whole transaction), and anything else ([`Error::Storage`]).

use crate::error::Error;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long unacknowledged data may sit on a connection before the kernel
/// gives up on it: a cut network is noticed in seconds, not the ~15
/// minutes of TCP's retransmissions.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection's client (with its statement cache).
pub(super) type Pg = deadpool_postgres::ClientWrapper;

/// The connection settings from the relay's `--db` URL.
pub(super) fn config(url: &str) -> crate::error::Result<tokio_postgres::Config> {
    let mut c: tokio_postgres::Config = url
        .parse()
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL {url:?}: {e}")))?;
    let options = format!(
        "{} -c synchronous_commit=on",
        c.get_options().unwrap_or_default()
    );
    c.options(options.trim());
    if c.get_application_name().is_none() {
        c.application_name("ferrochat-relay");
    }
    c.connect_timeout(CONNECT_TIMEOUT)
        .tcp_user_timeout(TCP_USER_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10));
    Ok(c)
}

/// The pool: at most `size` connections, opened as needed.
pub(super) fn pool(config: tokio_postgres::Config, size: usize) -> crate::error::Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| Error::Config(format!("PostgreSQL pool: {e}")))
}

/// A connection from the pool.
pub(super) async fn get(pool: &Pool) -> Result<Object, Failure> {
    pool.get().await.map_err(Failure::from)
}

/// Drops a connection instead of returning it to the pool (it failed, or
/// it is in the middle of a transaction that could not be rolled back).
pub(super) fn discard(conn: Object) {
    drop(Object::take(conn));
}

/// What went wrong, as the relay acts on it.
#[derive(Clone, Debug)]
pub(super) enum Failure {
    /// The database cannot be reached: nothing was stored (or, if the
    /// connection broke during a commit, nobody can tell; see the writer).
    Unavailable(String),
    /// A concurrent transaction got in the way; doing it again may work.
    Conflict(String),
    /// Anything else.
    Other(String),
}

impl Failure {
    /// The error a caller is answered with.
    pub fn into_error(self) -> Error {
        match self {
            Failure::Unavailable(m) => Error::Unavailable(m),
            Failure::Conflict(m) | Failure::Other(m) => Error::Storage(m),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        };
        if let Some(code) = e.code() {
            if [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::UNIQUE_VIOLATION,
            ]
            .contains(code)
            {
                return Failure::Conflict(text);
            }
            // Class 08 (connection exception), the server shutting down or
            // starting up, or out of connection slots.
            let unavailable = code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code);
            return if unavailable {
                Failure::Unavailable(text)
            } else {
                Failure::Other(text)
            };
        }
        // No server error: the connection itself failed (closed, reset,
        // refused, timed out) unless a value failed to convert.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let lost = e.is_closed()
            || io
            || text.starts_with("error connecting")
            || text.starts_with("timeout");
        if lost {
            Failure::Unavailable(text)
        } else {
            Failure::Other(text)
        }
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Failure {
        match e {
            PoolError::Backend(e) => match Failure::from(e) {
                // A server that refuses new sessions is unavailable too.
                Failure::Other(m) | Failure::Conflict(m) => Failure::Unavailable(m),
                f => f,
            },
            PoolError::Closed => Failure::Other("the PostgreSQL pool is closed".into()),
            e => Failure::Unavailable(e.to_string()),
        }
    }
}

/// The relay's error for a PostgreSQL error.
pub(super) fn pg_error(e: tokio_postgres::Error) -> Error {
    Failure::from(e).into_error()
}

/// Runs `$body` (a future using `$c: &Pg`) on a pooled connection,
/// answering with the relay's error. If the connection turns out to be
/// gone, it runs once more on a fresh one: after PostgreSQL restarted, a
/// pooled connection may fail its first query even though it was
/// verified a moment ago. Only for reads and for writes that may safely
/// run twice.
macro_rules! with_conn {
    ($pool:expr, |$c:ident| $body:expr) => {{
        let mut again = true;
        loop {
            let conn = match $crate::store::postgres::conn::get($pool).await {
                Ok(conn) => conn,
                Err(f) => break Err(f.into_error()),
            };
            let result = {
                let $c: &$crate::store::postgres::conn::Pg = &conn;
                $body.await
            };
            match result.map_err($crate::store::postgres::conn::Failure::from) {
                Ok(v) => break Ok(v),
                Err($crate::store::postgres::conn::Failure::Unavailable(_)) if again => {
                    again = false;
                    $crate::store::postgres::conn::discard(conn);
                }
                Err(f) => break Err(f.into_error()),
            }
        }
    }};
}
pub(super) use with_conn;
