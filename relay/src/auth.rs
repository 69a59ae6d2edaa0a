//! Passwords (argon2id) and session tokens (random, stored hashed).

use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// SHA-256 of a token: what the database stores, so a leaked database does
/// not leak usable tokens.
pub type TokenHash = [u8; 32];

/// Hashes and verifies passwords off the async runtime, a bounded number at
/// a time: argon2 is deliberately slow and memory-hungry, and an unbounded
/// burst of logins must not starve message delivery or exhaust memory.
#[derive(Clone)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    /// A real hash of a random password. Logins for unknown users verify
    /// against it so they take as long as logins with a wrong password, and
    /// response time does not reveal which usernames exist.
    decoy: Arc<str>,
}

fn hash_blocking(password: &[u8]) -> Result<String> {
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

impl PasswordHashing {
    /// Allows `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Result<Self> {
        let decoy = hash_blocking(new_token().as_bytes())?;
        Ok(PasswordHashing {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy: decoy.into(),
        })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::StoreClosed)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Hash(e.to_string()))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || hash_blocking(password.as_bytes())).await?
    }

    /// Whether `password` matches `stored`. With `stored == None` (no such
    /// user) it verifies against the decoy and returns false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool> {
        let decoy = self.decoy.clone();
        self.run(move || {
            let known = stored.is_some();
            let hash = stored.unwrap_or_else(|| decoy.to_string());
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok();
            ok && known
        })
        .await
    }
}

/// A fresh session token: 256 random bits, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A token hash as hex (how relays of a cluster name a token to each
/// other; the hash, never the token).
pub fn token_hash_hex(hash: &TokenHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`token_hash_hex`].
pub fn token_hash_from_hex(hex: &str) -> Option<TokenHash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| shared::validate::token(t).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(Some("Bearer a b")), None);
        assert_eq!(bearer(None), None);
    }

    #[tokio::test]
    async fn passwords_verify_and_unknown_users_fail() {
        let h = PasswordHashing::new(2).unwrap();
        let stored = h.hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h
            .verify("correct horse".into(), Some(stored.clone()))
            .await
            .unwrap());
        assert!(!h.verify("wrong horse!".into(), Some(stored)).await.unwrap());
        assert!(!h.verify("correct horse".into(), None).await.unwrap());
    }
}
