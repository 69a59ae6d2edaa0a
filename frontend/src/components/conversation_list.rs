//! The list of conversations, direct and group: name, last message, unread
//! badge, presence, typing.

use super::{avatar, group_avatar};
use crate::format::{message_time, preview, typing_text};
use crate::model::{ConvKey, Conversation, Typing};
use crate::state::Presence;
use std::rc::Rc;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// Most recent first.
    pub conversations: Vec<Rc<Conversation>>,
    /// The open one.
    pub active: Option<ConvKey>,
    /// Contacts' presence (for the dots).
    pub presence: Rc<Presence>,
    /// Who is typing where.
    pub typing: Vec<Typing>,
    /// Current time and timezone offset, for the timestamps.
    pub now: i64,
    /// `getTimezoneOffset()`.
    pub tz: i32,
    /// A conversation was picked.
    pub on_open: Callback<(ConvKey, String)>,
}

/// `[data-testid=conv-item]` per conversation (`data-user` or `data-group`).
#[function_component(ConversationList)]
pub fn conversation_list(props: &Props) -> Html {
    if props.conversations.is_empty() {
        return html! {
            <p class="empty-note">{"No conversations yet. Pick someone online, search by name, or start a group."}</p>
        };
    }
    html! {
        <ul class="conv-list">
            { for props.conversations.iter().map(|c| {
                let open = (c.key, c.name.clone());
                let onclick = props.on_open.reform(move |_: MouseEvent| open.clone());
                let active = props.active == Some(c.key);
                let last = c.last_message();
                let typing: Vec<String> = props.typing.iter()
                    .filter(|t| t.key == c.key).map(|t| t.name.clone()).collect();
                let text = match typing_text(&typing) {
                    Some(t) => t,
                    None => last.map(|m| {
                        let p = preview(&m.body, 60);
                        if m.mine { format!("You: {p}") }
                        else if c.key.is_group() { format!("{}: {p}", m.from_name) }
                        else { p }
                    }).unwrap_or_else(|| if c.read_only() { "You are no longer a member".into() } else { "No messages yet".into() }),
                };
                let when = last.map(|m| message_time(m.ts, props.now, props.tz)).unwrap_or_default();
                let (user_attr, group_attr, pic) = match c.key {
                    ConvKey::User(u) => (Some(c.name.clone()), None,
                        avatar(&c.name, false, Some(props.presence.is_online(u)))),
                    ConvKey::Group(_) => (None, Some(c.name.clone()), group_avatar(&c.name, false)),
                };
                html! {
                    <li key={c.key.id_string()}>
                        <button type="button"
                            class={classes!("row", "conv-item", active.then_some("active"), (c.unread > 0).then_some("has-unread"))}
                            data-testid="conv-item" data-user={user_attr} data-group={group_attr}
                            aria-current={active.then_some("true")} {onclick}>
                            { pic }
                            <span class="conv-text">
                                <span class="conv-top">
                                    <span class="name">{ &c.name }</span>
                                    <span class="when">{ when }</span>
                                </span>
                                <span class="conv-bottom">
                                    <span class={classes!("preview", (!typing.is_empty()).then_some("typing-preview"))}>{ text }</span>
                                    if c.unread > 0 {
                                        <span class="badge" data-testid="unread"
                                            aria-label={format!("{} unread", c.unread)}>
                                            { if c.unread > 99 { "99+".to_string() } else { c.unread.to_string() } }
                                        </span>
                                    }
                                </span>
                            </span>
                        </button>
                    </li>
                }
            }) }
        </ul>
    }
}
