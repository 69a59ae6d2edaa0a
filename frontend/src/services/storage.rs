//! localStorage: the session (`ferrochat.session`) and each user's chat
//! cache (`ferrochat.cache.<userId>`). Storage can be missing or full
//! (private mode, quota): every call degrades to "nothing stored".

use crate::model::ChatCache;
use shared::api::Session;
use shared::UserId;
use web_sys::Storage;

/// Where the session is kept.
pub const SESSION_KEY: &str = "ferrochat.session";

fn local() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn get(key: &str) -> Option<String> {
    local()?.get_item(key).ok().flatten()
}

fn set(key: &str, value: &str) {
    if let Some(s) = local() {
        let _ = s.set_item(key, value);
    }
}

fn remove(key: &str) {
    if let Some(s) = local() {
        let _ = s.remove_item(key);
    }
}

/// Where a visitor's session (`support.html`) is kept: apart from
/// an account's, so an agent testing the widget stays signed in.
pub const VISITOR_KEY: &str = "ferrochat.visitor";

/// The stored session, if any (and if it parses).
pub fn load_session() -> Option<Session> {
    serde_json::from_str(&get(SESSION_KEY)?).ok()
}

/// The session stored under `key`.
pub fn load_session_at(key: &str) -> Option<Session> {
    serde_json::from_str(&get(key)?).ok()
}

/// Remembers the session across reloads.
pub fn save_session(s: &Session) {
    if let Ok(json) = serde_json::to_string(s) {
        set(SESSION_KEY, &json);
    }
}

/// Remembers a session under `key`.
pub fn save_session_at(key: &str, s: &Session) {
    if let Ok(json) = serde_json::to_string(s) {
        set(key, &json);
    }
}

/// Forgets the session.
pub fn clear_session() {
    remove(SESSION_KEY);
}

/// Forgets the session under `key`.
pub fn clear_session_at(key: &str) {
    remove(key);
}

/// A user's cached conversations.
pub fn load_cache(user: UserId) -> Option<ChatCache> {
    serde_json::from_str(&get(&ChatCache::key(user))?).ok()
}

/// Caches a user's conversations.
pub fn save_cache(cache: &ChatCache) {
    let Some(user) = cache.user_id else { return };
    if let Ok(json) = serde_json::to_string(cache) {
        set(&ChatCache::key(user), &json);
    }
}

/// Drops a user's cache (on logout: the browser may be shared).
pub fn clear_cache(user: UserId) {
    remove(&ChatCache::key(user));
}
