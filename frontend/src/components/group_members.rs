//! A group's member panel: who is in it (by username, owner tagged, online
//! dots), a page at a time ("Show more members"), add someone by username,
//! leave; the owner also renames and removes.

use super::avatar;
use crate::model::Conversation;
use crate::services::http::{self, capitalize, group_error_text};
use crate::state::Presence;
use shared::api::GroupSummary;
use shared::{GroupId, UserId};
use std::rc::Rc;
use web_sys::HtmlInputElement;
use yew::platform::spawn_local;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The group.
    pub group: GroupId,
    /// Its conversation (name, members, owner).
    pub conversation: Rc<Conversation>,
    /// The signed-in user.
    pub me: UserId,
    /// The session token.
    pub token: AttrValue,
    /// Contacts' presence.
    pub presence: Rc<Presence>,
    /// The group changed (answer of add or rename): the app applies the
    /// summary and reloads the members.
    pub on_info: Callback<GroupSummary>,
    /// We left.
    pub on_left: Callback<GroupId>,
    /// Load the members after this cursor.
    pub on_more: Callback<String>,
    /// Close the panel.
    pub on_close: Callback<()>,
}

/// One change the panel asks of the relay.
enum Change {
    Add(String),
    Rename(String),
    Leave,
    Remove(UserId),
}

/// What a change came to.
enum Done {
    Added(GroupSummary),
    Renamed(GroupSummary),
    Left,
    Removed,
}

/// Performs one change: one future type for all four, which keeps the
/// panel small in the wasm. Errors come back as the text to show.
async fn perform(token: &str, id: GroupId, change: Change) -> Result<Done, String> {
    let done = match change {
        Change::Add(name) => http::add_member(token, id, &name).await.map(Done::Added),
        Change::Rename(name) => http::rename_group(token, id, &name)
            .await
            .map(Done::Renamed),
        Change::Leave => http::leave_group(token, id).await.map(|()| Done::Left),
        Change::Remove(user) => http::remove_member(token, id, user)
            .await
            .map(|()| Done::Removed),
    };
    done.map_err(|f| group_error_text(&f))
}

fn value(e: InputEvent) -> String {
    e.target_unchecked_into::<HtmlInputElement>().value()
}

/// `[data-testid=group-members]` with `[data-testid=member]` items,
/// `#add-member` + `[data-testid=add-member-submit]`,
/// `[data-testid=leave-group]`; for the owner `#group-rename` +
/// `[data-testid=rename-group]` and `[data-testid=remove-member]`.
#[function_component(GroupMembers)]
pub fn group_members(props: &Props) -> Html {
    let c = &props.conversation;
    let add = use_state(String::new);
    let rename = use_state(|| c.name.clone());
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let owner = c.is_owner(props.me);
    let (id, token) = (props.group, props.token.to_string());

    // Runs one change at a time; failures show in the panel.
    let run = {
        let (error, busy, add) = (error.clone(), busy.clone(), add.clone());
        let (token, on_info, on_left) =
            (token.clone(), props.on_info.clone(), props.on_left.clone());
        Callback::from(move |change: Change| {
            if *busy {
                return;
            }
            busy.set(true);
            error.set(None);
            let (error, busy, add) = (error.clone(), busy.clone(), add.clone());
            let (token, on_info, on_left) = (token.clone(), on_info.clone(), on_left.clone());
            spawn_local(async move {
                let r = perform(&token, id, change).await;
                busy.set(false);
                match r {
                    Ok(Done::Added(summary)) => {
                        add.set(String::new());
                        on_info.emit(summary);
                    }
                    Ok(Done::Renamed(summary)) => on_info.emit(summary),
                    Ok(Done::Left) => on_left.emit(id),
                    // The GROUP_EVENT that follows updates the list.
                    Ok(Done::Removed) => {}
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };

    let on_add = {
        let (add, run) = (add.clone(), run.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let name = add.trim().to_string();
            if !name.is_empty() {
                run.emit(Change::Add(name));
            }
        })
    };
    let on_rename = {
        let (rename, run, error) = (rename.clone(), run.clone(), error.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let name = rename.trim().to_string();
            match shared::validate::group_name(&name) {
                Ok(()) => run.emit(Change::Rename(name)),
                Err(e) => error.set(Some(capitalize(&e.message))),
            }
        })
    };
    let on_leave = run.reform(|_: MouseEvent| Change::Leave);
    let close = props.on_close.reform(|_: MouseEvent| ());
    let (members, count) = c
        .group
        .as_ref()
        .map(|g| (g.members.clone(), g.member_count))
        .unwrap_or_default();
    let count = if count > 0 {
        count as usize
    } else {
        members.list.len()
    };
    let more = members.next.clone().map(|after| {
        let loading = members.loading;
        let onclick = props.on_more.reform(move |_: MouseEvent| after.clone());
        html! {
            <button type="button" class="link more-members" data-testid="more-members"
                disabled={loading} aria-busy={loading.to_string()} {onclick}>
                { if loading { "Loading…" } else { "Show more members" } }
            </button>
        }
    });

    html! {
        <aside class="members-panel" id="group-members" data-testid="group-members"
            aria-label={format!("Members of {}", c.name)}>
            <header class="panel-head">
                <h3>{ format!("Members · {count}") }</h3>
                <button type="button" class="ghost" onclick={close} aria-label="Close members">{"✕"}</button>
            </header>
            if owner {
                <form class="panel-form" onsubmit={on_rename}>
                    <label for="group-rename">{"Group name"}</label>
                    <div class="inline">
                        <input id="group-rename" type="text" value={(*rename).clone()}
                            oninput={let r = rename.clone(); Callback::from(move |e| r.set(value(e)))} />
                        <button type="submit" class="secondary small" data-testid="rename-group"
                            disabled={*busy || rename.trim() == c.name}>{"Rename"}</button>
                    </div>
                </form>
            }
            if !members.loaded {
                <p class="empty-note">{"Loading members…"}</p>
            }
            <ul class="member-list">
                { for members.list.iter().map(|m| {
                    let me = m.user_id == props.me;
                    let online = me || props.presence.online_or(m.user_id, m.online);
                    let remove = (owner && !me).then(|| {
                        let user = m.user_id;
                        let onclick = run.reform(move |_: MouseEvent| Change::Remove(user));
                        html! {
                            <button type="button" class="ghost small" data-testid="remove-member"
                                aria-label={format!("Remove {}", m.username)} {onclick}>{"Remove"}</button>
                        }
                    });
                    html! {
                        <li key={m.user_id.0} class="member" data-testid="member"
                            data-user={m.username.clone()} data-online={online.to_string()}>
                            { avatar(&m.username, true, Some(online)) }
                            <span class="name">
                                { &m.username }
                                if me { <span class="muted">{" (you)"}</span> }
                            </span>
                            if m.owner { <span class="tag" data-testid="owner">{"owner"}</span> }
                            { for remove }
                        </li>
                    }
                }) }
            </ul>
            { for more }
            <form class="panel-form" onsubmit={on_add}>
                <label for="add-member">{"Add a member"}</label>
                <div class="inline">
                    <input id="add-member" type="text" placeholder="username" autocomplete="off"
                        autocapitalize="none" spellcheck="false" value={(*add).clone()}
                        oninput={let a = add.clone(); Callback::from(move |e| a.set(value(e)))} />
                    <button type="submit" class="secondary small" data-testid="add-member-submit"
                        disabled={*busy || add.trim().is_empty()}>{"Add"}</button>
                </div>
            </form>
            if let Some(e) = (*error).clone() {
                <p class="form-error" data-testid="group-error" role="alert">{ e }</p>
            }
            <button type="button" class="danger" data-testid="leave-group" onclick={on_leave}
                disabled={*busy}>{"Leave group"}</button>
        </aside>
    }
}
