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

    // Runs one API call; failures show in the panel.
    let run = {
        let (error, busy) = (error.clone(), busy.clone());
        move |fut: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>| {
            if *busy {
                return;
            }
            busy.set(true);
            error.set(None);
            let (error, busy) = (error.clone(), busy.clone());
            spawn_local(async move {
                let r = fut.await;
                busy.set(false);
                if let Err(e) = r {
                    error.set(Some(e));
                }
            });
        }
    };

    let on_add = {
        let (add, run, token, on_info) = (
            add.clone(),
            run.clone(),
            token.clone(),
            props.on_info.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let name = add.trim().to_string();
            if name.is_empty() {
                return;
            }
            let (add, token, on_info) = (add.clone(), token.clone(), on_info.clone());
            run(Box::pin(async move {
                let info = http::add_member(&token, id, &name)
                    .await
                    .map_err(|f| group_error_text(&f))?;
                add.set(String::new());
                on_info.emit(info);
                Ok(())
            }));
        })
    };
    let on_rename = {
        let (rename, run, token, on_info) = (
            rename.clone(),
            run.clone(),
            token.clone(),
            props.on_info.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let name = rename.trim().to_string();
            if let Err(e) = shared::validate::group_name(&name) {
                run(Box::pin(async move { Err(capitalize(&e.message)) }));
                return;
            }
            let (token, on_info) = (token.clone(), on_info.clone());
            run(Box::pin(async move {
                let info = http::rename_group(&token, id, &name)
                    .await
                    .map_err(|f| group_error_text(&f))?;
                on_info.emit(info);
                Ok(())
            }));
        })
    };
    let on_leave = {
        let (run, token, on_left) = (run.clone(), token.clone(), props.on_left.clone());
        Callback::from(move |_: MouseEvent| {
            let (token, on_left) = (token.clone(), on_left.clone());
            run(Box::pin(async move {
                http::leave_group(&token, id)
                    .await
                    .map_err(|f| group_error_text(&f))?;
                on_left.emit(id);
                Ok(())
            }));
        })
    };
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
                        let (run, token, user) = (run.clone(), token.clone(), m.user_id);
                        let onclick = Callback::from(move |_: MouseEvent| {
                            let token = token.clone();
                            run(Box::pin(async move {
                                http::remove_member(&token, id, user).await.map_err(|f| group_error_text(&f))
                            }));
                        });
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
