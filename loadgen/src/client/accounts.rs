//! The accounts a run uses: registered over the HTTP API (argon2 makes
//! that slow on the relay, so it is bounded and can be saved with
//! `--accounts FILE` for reruns).

use super::{Api, Target};
use crate::{Error, Log};
use bytes::Bytes;
use futures_util::StreamExt;
use shared::api::{Credentials, Session};
use shared::UserId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A registered account and its session token.
#[derive(Clone, Debug)]
pub struct Account {
    /// The relay's id for the user.
    pub user_id: UserId,
    /// `lg<run>u<i>`.
    pub username: String,
    /// Bearer token for LOGIN frames.
    pub token: Arc<str>,
}

impl From<Session> for Account {
    fn from(s: Session) -> Self {
        Account {
            user_id: s.user_id,
            username: s.username,
            token: s.token.into(),
        }
    }
}

/// The `count` accounts a scenario needs: from `--accounts FILE` when it
/// exists (the first `count` of them), otherwise freshly registered (and
/// saved to `FILE` when given).
pub async fn accounts(
    ctx: &crate::Ctx,
    target: &Target,
    count: usize,
) -> Result<Vec<Account>, Error> {
    let file = ctx.common.accounts.as_deref();
    if let Some(path) = file.filter(|p| p.exists()) {
        let saved: Vec<Session> = serde_json::from_slice(&std::fs::read(path)?)
            .map_err(|e| format!("{}: not an accounts file: {e}", path.display()))?;
        if saved.len() < count {
            return Err(format!(
                "{} holds {} accounts but this run needs {count}; delete it to register anew",
                path.display(),
                saved.len()
            )
            .into());
        }
        ctx.log.say(format_args!(
            "using {count} accounts from {}",
            path.display()
        ));
        return Ok(saved.into_iter().take(count).map(Account::from).collect());
    }
    let sessions = register_accounts(
        target,
        &ctx.run_id,
        count,
        ctx.common.register_concurrency,
        &ctx.log,
    )
    .await?;
    if let Some(path) = file {
        std::fs::write(path, serde_json::to_vec(&sessions)?)?;
        ctx.log
            .say(format_args!("saved {count} accounts to {}", path.display()));
    }
    Ok(sessions.into_iter().map(Account::from).collect())
}

/// The username of the i-th account of a run.
pub fn username(run_id: &str, i: usize) -> String {
    format!("lg{run_id}u{i}")
}

/// Registers `count` fresh accounts `lg<run>u0 …`, at most `concurrency`
/// requests in flight, and returns their sessions in index order.
///
/// The relay hashes passwords with argon2id, deliberately slow (tens of ms
/// of CPU each), so registration is bounded to avoid starving the relay, and
/// scenarios keep the account count small (idle shares one account between
/// `--tabs` sockets). 429 and 503 answers are retried with backoff, since a
/// relay may rate-limit registrations per address.
pub async fn register_accounts(
    target: &Target,
    run_id: &str,
    count: usize,
    concurrency: usize,
    log: &Log,
) -> Result<Vec<Session>, Error> {
    let api = Api::new(target);
    let password = format!("lg-{run_id}-password");
    let started = Instant::now();
    let done = AtomicUsize::new(0);
    let last_log = std::sync::Mutex::new(Instant::now());
    log.say(format_args!(
        "registering {count} accounts ({concurrency} in flight)"
    ));
    let results: Vec<Result<Session, Error>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let (api, password, done, last_log) = (&api, &password, &done, &last_log);
            async move {
                let creds = Credentials {
                    username: username(run_id, i),
                    password: password.clone(),
                };
                let a = register_one(api, &creds).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                let mut last = last_log.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(2) {
                    *last = Instant::now();
                    log.say(format_args!("registered {n}/{count}"));
                }
                a
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let accounts = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let secs = started.elapsed().as_secs_f64();
    log.say(format_args!(
        "registered {count} accounts in {secs:.1} s ({:.0}/s)",
        count as f64 / secs.max(1e-9)
    ));
    Ok(accounts)
}

async fn register_one(api: &Api, creds: &Credentials) -> Result<Session, Error> {
    let body = Bytes::from(serde_json::to_vec(creds)?);
    let r = api
        .request(hyper::Method::POST, "/api/register", None, Some(body))
        .await
        .map_err(|e| format!("register {}: {e}", creds.username))?;
    match r.status {
        200 | 201 => serde_json::from_slice(&r.body)
            .map_err(|e| format!("register {}: bad response body: {e}", creds.username).into()),
        _ => Err(format!("register {}: {}", creds.username, r.describe()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_valid_and_distinct() {
        let a = username("k3x9q2", 0);
        let b = username("k3x9q2", 1_000_000);
        assert_eq!(a, "lgk3x9q2u0");
        assert_ne!(a, b);
        shared::validate::username(&a).unwrap();
        shared::validate::username(&b).unwrap();
    }
}
