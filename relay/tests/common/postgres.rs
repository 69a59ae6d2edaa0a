//! PostgreSQL for tests: one private server per test process (the
//! `services` crate starts it on a free port on first use and stops it at
//! exit), a fresh database per test.

use std::sync::atomic::{AtomicU32, Ordering};

/// The URL of a new, empty database on the test process's server.
pub async fn fresh_database() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    tokio::task::spawn_blocking(move || {
        services::postgres::Postgres::shared()
            .create_database(&name)
            .expect("a test database")
    })
    .await
    .unwrap()
}
