//! Find public groups by name and join them.

use crate::model::ConvKey;
use shared::api::GroupSummary;
use shared::GroupId;
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The search box.
    pub query: AttrValue,
    /// Matching public groups.
    pub results: Vec<GroupSummary>,
    /// Groups we are already in.
    pub mine: Vec<GroupId>,
    /// The text changed.
    pub on_query: Callback<String>,
    /// Join one.
    pub on_join: Callback<GroupSummary>,
    /// Open one we are in.
    pub on_open: Callback<(ConvKey, String)>,
    /// Back to the chats.
    pub on_cancel: Callback<()>,
}

/// `#group-search` and `[data-testid=group-result]` (`data-group`) items
/// with `[data-testid=join-group]`.
#[function_component(GroupDirectory)]
pub fn group_directory(props: &Props) -> Html {
    let on_input = props
        .on_query
        .reform(|e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value());
    let cancel = props.on_cancel.reform(|_: MouseEvent| ());
    let searching = !props.query.trim().is_empty();
    html! {
        <section class="pane-form" aria-labelledby="find-groups-h">
            <header class="conv-head">
                <button type="button" class="ghost back" onclick={cancel} aria-label="Back to chats">
                    {"‹ Chats"}
                </button>
                <h2 id="find-groups-h" class="peer-name">{"Find public groups"}</h2>
            </header>
            <div class="card">
                <label for="group-search">{"Group name starts with"}</label>
                <input id="group-search" type="search" autocomplete="off" spellcheck="false"
                    value={props.query.clone()} oninput={on_input} />
                if searching {
                    <ul class="group-results" aria-label="Public groups">
                        { for props.results.iter().map(|g| {
                            let member = props.mine.contains(&g.group_id);
                            let action = if member {
                                let open = (ConvKey::Group(g.group_id), g.name.clone());
                                let onclick = props.on_open.reform(move |_: MouseEvent| open.clone());
                                html! { <button type="button" class="secondary small" {onclick}>{"Open"}</button> }
                            } else {
                                let pick = g.clone();
                                let onclick = props.on_join.reform(move |_: MouseEvent| pick.clone());
                                html! {
                                    <button type="button" class="primary small" data-testid="join-group"
                                        aria-label={format!("Join {}", g.name)} {onclick}>{"Join"}</button>
                                }
                            };
                            let n = g.member_count;
                            html! {
                                <li key={g.group_id.0} class="group-result" data-testid="group-result"
                                    data-group={g.name.clone()}>
                                    { super::group_avatar(&g.name, true) }
                                    <span class="conv-text">
                                        <span class="name">{ &g.name }</span>
                                        <span class="preview">{ format!("{n} member{}", if n == 1 { "" } else { "s" }) }</span>
                                    </span>
                                    { action }
                                </li>
                            }
                        }) }
                        if props.results.is_empty() {
                            <li class="empty">{"No public groups by that name"}</li>
                        }
                    </ul>
                } else {
                    <p class="hint">{"Type the start of a group's name."}</p>
                }
            </div>
        </section>
    }
}
