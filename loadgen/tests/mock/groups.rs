//! Public groups as the relay serves them: a group change (create, join)
//! answers with the `GroupSummary` alone, `GET /api/groups/{id}` with the
//! first page of members, `GET /api/groups/{id}/members?after=&limit=` with
//! the next ones, by username. Pages here hold at most [`PAGE`] members,
//! so that the tests' small groups take several.

use super::http::error;
use super::{Group, State};
use serde::Serialize;
use shared::api::{GroupInfo, GroupSummary, MemberInfo, MemberPage, NewGroup};
use shared::{GroupId, UserId};
use std::sync::Mutex;

/// The largest page of members (the relay's is
/// `shared::limits::MAX_MEMBER_PAGE`).
const PAGE: usize = 3;

/// The group endpoints the fan-out scenario uses; `target` is the path with
/// its query.
pub(super) fn api(
    st: &Mutex<State>,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: &[u8],
) -> (&'static str, String) {
    let mut g = st.lock().unwrap();
    let Some(me) = token.and_then(|t| g.tokens.get(t)).map(|(u, _)| *u) else {
        return error("401 Unauthorized", "unauthorized");
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("POST", ["api", "groups"]) => {
            let Ok(new) = serde_json::from_slice::<NewGroup>(body) else {
                return error("400 Bad Request", "bad_request");
            };
            let id = g.groups.len() as i64 + 1;
            let group = Group {
                name: new.name,
                owner: me,
                members: vec![me],
                seq: 0,
            };
            g.groups.insert(id, group);
            ("201 Created", json(&g.summary(id)))
        }
        (_, ["api", "groups", id, rest @ ..]) => {
            let Some(id) = id.parse().ok().filter(|id| g.groups.contains_key(id)) else {
                return error("404 Not Found", "not_found");
            };
            match (method, rest) {
                ("GET", []) => {
                    let (members, next) = g.members_page(id, None, None);
                    let info = GroupInfo {
                        summary: g.summary(id),
                        members,
                        next,
                    };
                    ("200 OK", json(&info))
                }
                ("GET", ["members"]) => {
                    let q = |k: &str| param(query, k);
                    let limit = q("limit").and_then(|l| l.parse().ok());
                    let (members, next) = g.members_page(id, q("after").as_deref(), limit);
                    ("200 OK", json(&MemberPage { members, next }))
                }
                ("POST", ["join"]) => {
                    let grp = g.groups.get_mut(&id).unwrap();
                    if !grp.members.contains(&me) {
                        grp.members.push(me);
                    }
                    ("200 OK", json(&g.summary(id)))
                }
                _ => error("405 Method Not Allowed", "method_not_allowed"),
            }
        }
        _ => error("404 Not Found", "not_found"),
    }
}

impl State {
    fn summary(&self, id: i64) -> GroupSummary {
        let g = &self.groups[&id];
        GroupSummary {
            group_id: GroupId(id),
            name: g.name.clone(),
            owner_id: g.owner,
            public: true,
            member_count: g.members.len() as u32,
        }
    }

    /// The members after username `after`, by username, at most `limit`
    /// (and [`PAGE`]); the cursor for the next page when more follow.
    fn members_page(
        &self,
        id: i64,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> (Vec<MemberInfo>, Option<String>) {
        let g = &self.groups[&id];
        let mut all: Vec<(&str, UserId)> = g
            .members
            .iter()
            .map(|u| (self.names[u].as_str(), *u))
            .filter(|(name, _)| after.is_none_or(|a| *name > a))
            .collect();
        all.sort();
        let n = limit.unwrap_or(PAGE).clamp(1, PAGE);
        let next = (all.len() > n).then(|| all[n - 1].0.to_string());
        let members = all
            .into_iter()
            .take(n)
            .map(|(name, u)| MemberInfo {
                user_id: u,
                username: name.to_string(),
                owner: u == g.owner,
                read_seq: 0,
                delivered_seq: 0,
                online: self.online.contains_key(&u),
            })
            .collect();
        (members, next)
    }
}

/// The percent-decoded value of `key` in a query string.
fn param(query: &str, key: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?;
    let mut out = Vec::new();
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// An API body.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}
