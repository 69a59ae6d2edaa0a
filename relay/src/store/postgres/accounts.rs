//! Accounts of the support desk on PostgreSQL: roles and visitors. Each
//! is one statement on a pooled connection. Roles are read from `users`
//! wherever they are needed (with the token, at every request and login),
//! so a role granted by the admin command, which writes here directly, is
//! seen by every relay of the cluster without a restart or a cache to
//! invalidate.

use super::conn::{pg_error, Pg};
use super::facts::user_ref;
use super::schema::ROLE_VISITOR;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::UserRef;
use shared::desk::{NewVisitor, Role};
use shared::UserId;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Error as PgError, Row};

type R<T> = std::result::Result<T, PgError>;

fn with_role(r: &Row) -> (UserRef, Role) {
    (user_ref(r), Role::from_code(r.get::<_, i16>(2).into()))
}

/// Creates a visitor and their details in one statement. Not tried twice:
/// a first try that committed before its connection broke would make the
/// second say "taken".
pub(super) async fn create_visitor(c: &Pg, username: &str, about: &NewVisitor) -> Result<UserId> {
    let s = c
        .prepare_cached(
            "WITH u AS (
                 INSERT INTO users (username, password_hash, created_at, role)
                 VALUES ($1, '', $2, $3) RETURNING id
             )
             INSERT INTO visitors (user_id, name, email, page, created_at)
             SELECT id, $4, $5, $6, $2 FROM u RETURNING user_id",
        )
        .await
        .map_err(pg_error)?;
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &username,
        &now_ms(),
        &ROLE_VISITOR,
        &about.name,
        &about.email,
        &about.page,
    ];
    match c.query_one(&s, &args).await {
        Ok(row) => Ok(UserId(row.get(0))),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(Error::UsernameTaken),
        Err(e) => Err(pg_error(e)),
    }
}

/// Sets a user's role (safe to run twice).
/// The name a visitor gave.
pub(super) async fn visitor_name(c: &Pg, user: UserId) -> R<Option<String>> {
    let s = c
        .prepare_cached("SELECT name FROM visitors WHERE user_id = $1")
        .await?;
    Ok(c.query_opt(&s, &[&user.0])
        .await?
        .and_then(|r| r.get::<_, Option<String>>(0)))
}

pub(super) async fn set_role(c: &Pg, user: UserId, role: Role) -> R<()> {
    let s = c
        .prepare_cached("UPDATE users SET role = $2 WHERE id = $1")
        .await?;
    c.execute(&s, &[&user.0, &role.code()]).await.map(|_| ())
}

/// A user and their role, by username (case-insensitive).
pub(super) async fn user_role(c: &Pg, username: &str) -> R<Option<(UserRef, Role)>> {
    let s = c
        .prepare_cached(
            r#"SELECT id, username, role FROM users
               WHERE lower(username) COLLATE "C" = lower($1)"#,
        )
        .await?;
    Ok(c.query_opt(&s, &[&username]).await?.as_ref().map(with_role))
}

/// Agents and administrators, by username.
pub(super) async fn staff(c: &Pg) -> R<Vec<(UserRef, Role)>> {
    let s = c
        .prepare_cached(
            r#"SELECT id, username, role FROM users WHERE role IN (1, 2)
               ORDER BY lower(username) COLLATE "C""#,
        )
        .await?;
    Ok(c.query(&s, &[]).await?.iter().map(with_role).collect())
}
