//! The fan-out group, set up over the HTTP API: created by account 0 (or an
//! existing public one, `--group`) and joined by every account of the run
//! that is not a member yet.
//!
//! Group changes answer with a [`GroupSummary`] alone; the members are read
//! a page at a time: the first page with `GET /api/groups/{id}`, the rest
//! with `GET /api/groups/{id}/members?after=&limit=`.

use super::FanoutArgs;
use crate::client::{Account, Api};
use crate::{Ctx, Error};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::api::{GroupInfo, GroupSummary, MemberPage};
use shared::{GroupId, UserId};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The group as set up for the run (flattened into the report).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSetup {
    /// The group posted to.
    pub group_id: i64,
    /// Its members as the relay counted them after the joins (owner
    /// included).
    pub group_members: u64,
    /// Join requests made (accounts that were not members yet).
    pub joins: u64,
    /// Total size of the join answers, bytes.
    pub join_response_bytes: u64,
    /// Group creation (or lookup), joins and the check, seconds.
    pub group_setup_secs: f64,
}

/// Creates the group as account 0 (or takes `--group`), has every account
/// that is not a member yet join it, and checks that all of them are.
pub(super) async fn setup_group(
    ctx: &Ctx,
    api: &Api,
    accounts: &[Account],
    args: &FanoutArgs,
) -> Result<GroupSetup, Error> {
    let log = &ctx.log;
    let started = Instant::now();
    let owner = &accounts[0];
    let group = match args.group {
        None => {
            let name = format!("lg{} fanout {}", ctx.run_id, args.members);
            create_group(api, owner, &name).await?.group_id
        }
        Some(id) => GroupId(id),
    };
    let (_, members) = group_members(api, owner, group).await?;
    let to_join: Vec<&Account> = accounts
        .iter()
        .filter(|a| !members.contains(&a.user_id))
        .collect();
    log.say(format_args!(
        "group {}: {} accounts join ({} in flight)",
        group.0,
        to_join.len(),
        args.join_concurrency
    ));
    let path = format!("/api/groups/{}/join", group.0);
    let total = to_join.len();
    let done = AtomicUsize::new(0);
    let last_log = std::sync::Mutex::new(Instant::now());
    let results: Vec<Result<u64, Error>> = futures_util::stream::iter(&to_join)
        .map(|a| {
            let (path, done, last_log) = (&path, &done, &last_log);
            async move {
                let bytes = join_at(api, a, group, path).await?;
                let n = done.fetch_add(1, Relaxed) + 1;
                let mut last = last_log.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(2) {
                    *last = Instant::now();
                    log.say(format_args!("joined {n}/{total}"));
                }
                Ok(bytes)
            }
        })
        .buffer_unordered(args.join_concurrency.max(1))
        .collect()
        .await;
    let mut join_response_bytes = 0;
    for r in results {
        join_response_bytes += r?;
    }
    let (summary, now_in) = group_members(api, owner, group).await?;
    let missing = accounts
        .iter()
        .filter(|a| !now_in.contains(&a.user_id))
        .count();
    if missing > 0 {
        return Err(format!(
            "group {}: {missing} of the run's accounts are not members after joining",
            group.0
        )
        .into());
    }
    let secs = started.elapsed().as_secs_f64();
    log.say(format_args!(
        "group {} has {} members; setup took {secs:.1} s ({:.1} MiB of join answers)",
        group.0,
        summary.member_count,
        join_response_bytes as f64 / (1024.0 * 1024.0)
    ));
    Ok(GroupSetup {
        group_id: group.0,
        group_members: summary.member_count as u64,
        joins: to_join.len() as u64,
        join_response_bytes,
        group_setup_secs: crate::report::round_to(secs, 2),
    })
}

/// `a` joins the public `group` (`POST /api/groups/{id}/join`); returns the
/// size of the answer, bytes.
pub(crate) async fn join_group(api: &Api, a: &Account, group: GroupId) -> Result<u64, Error> {
    join_at(api, a, group, &format!("/api/groups/{}/join", group.0)).await
}

async fn join_at(api: &Api, a: &Account, group: GroupId, path: &str) -> Result<u64, Error> {
    let r = api
        .request(hyper::Method::POST, path, Some(&a.token), None)
        .await?;
    if r.status != 200 {
        return Err(format!("join as {}: {}", a.username, r.describe()).into());
    }
    let joined: GroupSummary = parse(&r.body, "join answer")?;
    if joined.group_id != group {
        return Err(format!(
            "join as {}: answered for group {}",
            a.username, joined.group_id.0
        )
        .into());
    }
    Ok(r.body.len() as u64)
}

/// Creates a public group owned by `owner`.
pub(crate) async fn create_group(
    api: &Api,
    owner: &Account,
    name: &str,
) -> Result<GroupSummary, Error> {
    let body = serde_json::json!({ "name": name, "public": true });
    let r = api
        .request(
            hyper::Method::POST,
            "/api/groups",
            Some(&owner.token),
            Some(Bytes::from(serde_json::to_vec(&body)?)),
        )
        .await?;
    if !matches!(r.status, 200 | 201) {
        return Err(format!("create group: {}", r.describe()).into());
    }
    parse(&r.body, "group summary")
}

/// The group's summary and all its members as `viewer` sees them, page by
/// page.
async fn group_members(
    api: &Api,
    viewer: &Account,
    group: GroupId,
) -> Result<(GroupSummary, HashSet<UserId>), Error> {
    let info: GroupInfo = get(api, viewer, &format!("/api/groups/{}", group.0)).await?;
    let mut members: HashSet<UserId> = info.members.iter().map(|m| m.user_id).collect();
    let mut next = info.next;
    while let Some(after) = next {
        let path = members_page_path(group, &after);
        let page: MemberPage = get(api, viewer, &path).await?;
        if page.next.as_deref() == Some(after.as_str()) {
            return Err(format!(
                "group {}: member pages do not advance past {after:?}",
                group.0
            )
            .into());
        }
        members.extend(page.members.iter().map(|m| m.user_id));
        next = page.next;
    }
    Ok((info.summary, members))
}

/// `GET /api/groups/{id}/members` for the page after `after`, as large as
/// the relay allows.
fn members_page_path(group: GroupId, after: &str) -> String {
    let mut path = format!(
        "/api/groups/{}/members?limit={}&after=",
        group.0,
        shared::limits::MAX_MEMBER_PAGE
    );
    for b in after.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

/// A `GET` of the API as `viewer`, its JSON answer parsed.
async fn get<T: DeserializeOwned>(api: &Api, viewer: &Account, path: &str) -> Result<T, Error> {
    let r = api
        .request(hyper::Method::GET, path, Some(&viewer.token), None)
        .await?;
    if r.status != 200 {
        return Err(format!("GET {path}: {}", r.describe()).into());
    }
    parse(&r.body, path)
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| format!("unexpected {what}: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_page_cursors_are_escaped() {
        let page = format!(
            "/api/groups/7/members?limit={}&after=",
            shared::limits::MAX_MEMBER_PAGE
        );
        assert_eq!(
            members_page_path(GroupId(7), "lgab12u9"),
            format!("{page}lgab12u9")
        );
        assert_eq!(
            members_page_path(GroupId(7), "a b&c=d/é~"),
            format!("{page}a%20b%26c%3Dd%2F%C3%A9~")
        );
    }

    #[test]
    fn answers_parse_as_the_shared_api_types() {
        let summary = GroupSummary {
            group_id: GroupId(3),
            name: "g".into(),
            owner_id: UserId(1),
            public: true,
            member_count: 2,
        };
        let body = serde_json::to_vec(&summary).unwrap();
        assert_eq!(parse::<GroupSummary>(&body, "x").unwrap(), summary);
        let err = parse::<GroupSummary>(b"[]", "join answer").unwrap_err();
        assert!(
            err.to_string().starts_with("unexpected join answer"),
            "{err}"
        );
    }
}
