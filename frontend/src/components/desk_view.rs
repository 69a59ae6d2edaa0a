//! The support desk for agents: availability and capacity (type 132), the
//! waiting queue, and our conversations with transfer (134) and close
//! (135). Everything shown comes from the last board (type 133).

use crate::format::elapsed;
use crate::model::ConvKey;
use shared::desk::{DeskAgentInfo, DeskAgentSet, DeskBoard, DeskEntry, DESK_MAX_CAPACITY};
use shared::{GroupId, UserId};
use std::rc::Rc;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The board.
    pub board: Rc<DeskBoard>,
    /// Agents a conversation may go to.
    pub targets: Vec<DeskAgentInfo>,
    /// Local time, for waiting times.
    pub now: i64,
    /// Change availability or capacity (type 132).
    pub on_set: Callback<DeskAgentSet>,
    /// Open a conversation.
    pub on_open: Callback<(ConvKey, String)>,
    /// Hand a conversation to an agent, or back to the queue (`None`).
    pub on_transfer: Callback<(GroupId, Option<UserId>)>,
    /// Close a conversation.
    pub on_close: Callback<GroupId>,
    /// Back to the chats (phones).
    pub on_cancel: Callback<()>,
}

/// A visitor: name, page, email, and how long since `since`.
fn who(e: &DeskEntry, since: i64, now: i64) -> Html {
    html! {
        <>
            { super::avatar(&e.name, true, None) }
            <span class="conv-text">
                <span class="name">{ &e.name }</span>
                <span class="preview">
                    if let Some(p) = &e.page { <span class="desk-page" title={p.clone()}>{ p }</span> }
                    if let Some(m) = &e.email { { " · " }<span class="desk-email">{ m }</span> }
                </span>
            </span>
            <span class="time">{ elapsed(since, now) }</span>
        </>
    }
}

/// `[data-testid=desk]`: `desk-available` (checkbox), `desk-capacity`,
/// `desk-queued` (the count), `desk-queue-item` and `desk-mine-item`
/// (`data-group`), with `desk-open`, `desk-transfer` (a select: an agent's
/// id or `queue`) and `desk-close`.
#[function_component(DeskView)]
pub fn desk_view(props: &Props) -> Html {
    let b = &props.board;
    let on_available = props.on_set.reform(|e: Event| DeskAgentSet {
        available: Some(e.target_unchecked_into::<HtmlInputElement>().checked()),
        capacity: None,
    });
    let on_capacity = {
        let set = props.on_set.clone();
        Callback::from(move |e: Event| {
            let v = e.target_unchecked_into::<HtmlInputElement>().value();
            if let Ok(c @ 1..=DESK_MAX_CAPACITY) = v.trim().parse::<u32>() {
                set.emit(DeskAgentSet {
                    available: None,
                    capacity: Some(c),
                });
            }
        })
    };
    let cancel = props.on_cancel.reform(|_: MouseEvent| ());
    let now = props.now;
    let queue = b.queue.iter().map(|e| {
        html! {
            <li key={e.group_id.0} class="desk-item" data-testid="desk-queue-item" data-group={e.group_id.0.to_string()}>
                { who(e, e.queued_at, now) }
            </li>
        }
    });
    let mine = b.mine.iter().map(|e| {
        let g = e.group_id;
        let open = (ConvKey::Group(g), e.name.clone());
        let on_open = props.on_open.reform(move |_: MouseEvent| open.clone());
        let on_close = props.on_close.reform(move |_: MouseEvent| g);
        let transfer = props.on_transfer.clone();
        let on_transfer = Callback::from(move |ev: Event| {
            let sel = ev.target_unchecked_into::<HtmlSelectElement>();
            let v = sel.value();
            sel.set_value("");
            match v.as_str() {
                "" => {}
                "queue" => transfer.emit((g, None)),
                id => {
                    if let Ok(id) = id.parse() {
                        transfer.emit((g, Some(UserId(id))));
                    }
                }
            }
        });
        let since = e.assigned_at.unwrap_or(e.queued_at);
        html! {
            <li key={g.0} class="desk-item" data-testid="desk-mine-item" data-group={g.0.to_string()}>
                <button type="button" class="desk-open" data-testid="desk-open" onclick={on_open}
                    aria-label={format!("Open the conversation with {}", e.name)}>
                    { who(e, since, now) }
                </button>
                <span class="desk-actions">
                    <select data-testid="desk-transfer" aria-label={format!("Transfer {}", e.name)} onchange={on_transfer}>
                        <option value="" selected=true>{"Transfer…"}</option>
                        <option value="queue">{"Back to the queue"}</option>
                        { for props.targets.iter().map(|a| html! {
                            <option value={a.user_id.0.to_string()}>
                                { format!("{} ({}/{})", a.username, a.open, a.capacity) }
                            </option>
                        }) }
                    </select>
                    <button type="button" class="ghost" data-testid="desk-close" onclick={on_close}>{"Close"}</button>
                </span>
            </li>
        }
    });
    html! {
        <section class="pane-form desk" data-testid="desk" aria-labelledby="desk-h">
            <header class="conv-head">
                <button type="button" class="ghost back" onclick={cancel} aria-label="Back to chats">
                    {"‹ Chats"}
                </button>
                <h2 id="desk-h" class="peer-name">{"Support desk"}</h2>
            </header>
            <div class="card desk-settings">
                <label class="desk-toggle">
                    <input type="checkbox" data-testid="desk-available" checked={b.available} onchange={on_available} />
                    { if b.available { "Available" } else { "Away" } }
                </label>
                <label for="desk-capacity">{"Capacity"}</label>
                <input id="desk-capacity" data-testid="desk-capacity" type="number" min="1"
                    max={DESK_MAX_CAPACITY.to_string()} value={b.capacity.to_string()} onchange={on_capacity} />
                <span class="hint">{ format!("{} open", b.mine.len()) }</span>
            </div>
            <h3>{"Waiting "}<span class="badge" data-testid="desk-queued">{ b.queued }</span></h3>
            <ul class="desk-list" aria-label="Queue">
                { for queue }
                if b.queue.is_empty() { <li class="empty">{"Nobody is waiting"}</li> }
            </ul>
            <h3>{"My conversations"}</h3>
            <ul class="desk-list" aria-label="My conversations">
                { for mine }
                if b.mine.is_empty() { <li class="empty">{"None open"}</li> }
            </ul>
        </section>
    }
}
