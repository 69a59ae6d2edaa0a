//! The support desk for agents: availability and capacity (type 132), the
//! waiting queue, and our conversations with transfer (134) and close
//! (135). Everything shown comes from the last board (type 133). Kept
//! lean: one row renderer for both lists, frames built here and sent
//! through one callback (the app's wasm has a size budget).

use crate::format::elapsed;
use crate::model::ConvKey;
use crate::state::transfer_targets;
use shared::desk::{DeskAgentSet, DeskBoard, DeskEntry, DESK_MAX_CAPACITY};
use shared::{ClientFrame, UserId};
use std::rc::Rc;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

/// Props. Compared by the board's pointer: a new board is a new `Rc`
/// (a deep comparison would cost wasm size for nothing).
#[derive(Properties)]
pub struct Props {
    /// The board.
    pub board: Rc<DeskBoard>,
    /// Us (not a transfer target).
    pub me: UserId,
    /// Local time, for waiting times.
    pub now: i64,
    /// Send a desk frame (132, 134, 135).
    pub on_frame: Callback<ClientFrame>,
    /// Open a conversation.
    pub on_open: Callback<(ConvKey, String)>,
    /// Back to the chats (phones).
    pub on_cancel: Callback<()>,
}

impl PartialEq for Props {
    fn eq(&self, o: &Self) -> bool {
        Rc::ptr_eq(&self.board, &o.board)
            && self.me == o.me
            && self.now == o.now
            && self.on_frame == o.on_frame
            && self.on_open == o.on_open
            && self.on_cancel == o.on_cancel
    }
}

fn set(available: Option<bool>, capacity: Option<u32>) -> ClientFrame {
    ClientFrame::DeskAgent(DeskAgentSet {
        available,
        capacity,
    })
}

/// One visitor: name, page, email, the time waited (queue) or since
/// assigned (ours); ours get open, transfer and close.
fn row(p: &Props, e: &DeskEntry, mine: bool) -> Html {
    let g = e.group_id;
    let since = e.assigned_at.filter(|_| mine).unwrap_or(e.queued_at);
    let who = html! {
        <>
            { super::avatar(&e.name, true, None) }
            <span class="conv-text">
                <span class="name">{ &e.name }</span>
                <span class="preview">
                    if let Some(page) = &e.page { <span class="desk-page" title={page.clone()}>{ page }</span> }
                    if let Some(m) = &e.email { { " · " }<span class="desk-email">{ m }</span> }
                </span>
            </span>
            <span class="time">{ elapsed(since, p.now) }</span>
        </>
    };
    if !mine {
        return html! {
            <li key={g.0} class="desk-item" data-testid="desk-queue-item">{ who }</li>
        };
    }
    let open = (ConvKey::Group(g), e.name.clone());
    let on_open = p.on_open.reform(move |_: MouseEvent| open.clone());
    let on_close = p
        .on_frame
        .reform(move |_: MouseEvent| ClientFrame::DeskClose { group_id: g });
    // Options: 0 the prompt, 1 the queue, then the targets in order (of
    // this board: the closure keeps it).
    let (frame, board, me) = (p.on_frame.clone(), p.board.clone(), p.me);
    let on_transfer = {
        Callback::from(move |ev: Event| {
            let sel = ev.target_unchecked_into::<HtmlSelectElement>();
            let i = sel.selected_index();
            sel.set_selected_index(0);
            let to = match i {
                1 => None,
                2.. => match transfer_targets(&board, me).nth(i as usize - 2) {
                    Some(a) => Some(a.user_id),
                    None => return,
                },
                _ => return,
            };
            frame.emit(ClientFrame::DeskTransfer { group_id: g, to });
        })
    };
    html! {
        <li key={g.0} class="desk-item" data-testid="desk-mine-item">
            <button type="button" class="desk-open" data-testid="desk-open" onclick={on_open}>{ who }</button>
            <select data-testid="desk-transfer" aria-label="Transfer" onchange={on_transfer}>
                <option>{"Transfer…"}</option>
                <option>{"Back to the queue"}</option>
                { for transfer_targets(&p.board, p.me).map(|a| html! {
                    <option>{ format!("{} ({}/{})", a.username, a.open, a.capacity) }</option>
                }) }
            </select>
            <button type="button" class="ghost" data-testid="desk-close" onclick={on_close}>{"Close"}</button>
        </li>
    }
}

/// `[data-testid=desk]`: `desk-available` (checkbox), `desk-capacity`,
/// `desk-queued` (the count), `desk-queue-item` and `desk-mine-item`, the
/// latter with `desk-open`, `desk-transfer` (a select: the queue, then
/// agents) and `desk-close`.
#[function_component(DeskView)]
pub fn desk_view(p: &Props) -> Html {
    let b = &p.board;
    let on_available = p.on_frame.reform(|e: Event| {
        set(
            Some(e.target_unchecked_into::<HtmlInputElement>().checked()),
            None,
        )
    });
    let on_capacity = {
        let frame = p.on_frame.clone();
        Callback::from(move |e: Event| {
            let c = e
                .target_unchecked_into::<HtmlInputElement>()
                .value_as_number();
            if (1.0..=f64::from(DESK_MAX_CAPACITY)).contains(&c) {
                frame.emit(set(None, Some(c as u32)));
            }
        })
    };
    let cancel = p.on_cancel.reform(|_: MouseEvent| ());
    let list = |entries: &[DeskEntry], mine: bool, none: &str| {
        html! {
            <ul class="desk-list">
                { for entries.iter().map(|e| row(p, e, mine)) }
                if entries.is_empty() { <li class="empty">{ none }</li> }
            </ul>
        }
    };
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
                <label>{"Capacity "}
                    <input data-testid="desk-capacity" type="number" min="1" max="100"
                        value={b.capacity.to_string()} onchange={on_capacity} />
                </label>
                <span class="hint">{ b.mine.len() }{" open"}</span>
            </div>
            <h3>{"Waiting "}<span class="badge" data-testid="desk-queued">{ b.queued }</span></h3>
            { list(&b.queue, false, "Nobody is waiting") }
            <h3>{"My conversations"}</h3>
            { list(&b.mine, true, "None open") }
        </section>
    }
}
