//! One message bubble.

use crate::format::{message_time, status_label};
use crate::model::{Message, MsgState};
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The message.
    pub message: Message,
    /// Its state as shown (read receipts applied).
    pub state: MsgState,
    /// Ours in a group: how many other members have read it.
    #[prop_or_default]
    pub read_by: Option<u32>,
    /// Current time and timezone offset.
    pub now: i64,
    /// `getTimezoneOffset()`.
    pub tz: i32,
    /// Retry (by `clientMsgId`).
    pub on_retry: Callback<String>,
}

/// `[data-testid=message]` with `data-msg-id`, `data-client-id`,
/// `data-mine`, `data-state`, `data-read-by` (ours in groups), and
/// `.body` / `.sender` inside.
#[function_component(MessageItem)]
pub fn message_item(props: &Props) -> Html {
    let m = &props.message;
    let state = props.state;
    let status = m.mine.then(|| {
        let icon = match state {
            MsgState::Sending => "◷",
            MsgState::Sent => "✓",
            MsgState::Delivered | MsgState::Read => "✓✓",
            MsgState::Failed => "!",
            MsgState::Received => "",
        };
        let retry = (state == MsgState::Failed)
            .then(|| m.client_msg_id.clone())
            .flatten()
            .map(|cid| {
                let onclick = props.on_retry.reform(move |_: MouseEvent| cid.clone());
                html! { <button type="button" class="retry" data-testid="retry" {onclick}>{"Retry"}</button> }
            });
        html! {
            <span class={classes!("status", state.as_str())} title={m.error.clone()}>
                <span aria-hidden="true" class="icon">{ icon }</span>
                { status_label(state, props.read_by) }
                { for retry }
            </span>
        }
    });
    let read_by = props
        .read_by
        .filter(|_| m.mine && m.seq > 0)
        .map(|n| n.to_string());
    html! {
        <li class={classes!("msg", if m.mine { "mine" } else { "theirs" }, state.as_str())}
            data-testid="message"
            data-msg-id={m.msg_id.map(|id| id.to_string())}
            data-client-id={m.client_msg_id.clone()}
            data-seq={(m.seq > 0).then(|| m.seq.to_string())}
            data-mine={m.mine.to_string()}
            data-state={state.as_str()}
            data-read-by={read_by}>
            <div class="bubble">
                <div class="meta">
                    <span class="sender">{ &m.from_name }</span>
                    <time>{ message_time(m.ts, props.now, props.tz) }</time>
                </div>
                <div class="body">{ &m.body }</div>
                { for status }
            </div>
        </li>
    }
}
