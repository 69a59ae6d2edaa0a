//! The open conversation: header, messages, typing indicator, composer,
//! and (groups) the member panel.

use super::composer::Composer;
use super::group_members::GroupMembers;
use super::message_list::MessageList;
use super::typing_indicator::TypingIndicator;
use super::{avatar, group_avatar};
use crate::model::{ConvKey, Conversation};
use crate::state::Presence;
use shared::api::GroupSummary;
use shared::{GroupId, UserId};
use std::rc::Rc;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The conversation.
    pub conversation: Rc<Conversation>,
    /// The signed-in user.
    pub me: UserId,
    /// The session token (the member panel calls the API).
    pub token: AttrValue,
    /// Contacts' presence.
    pub presence: Rc<Presence>,
    /// Who is typing here.
    pub typing: Vec<String>,
    /// Whether the member panel shows (groups).
    pub members_open: bool,
    /// Current time and timezone offset.
    pub now: i64,
    /// `getTimezoneOffset()`.
    pub tz: i32,
    /// Send a message.
    pub on_send: Callback<String>,
    /// The user is typing.
    pub on_typing: Callback<()>,
    /// Retry a failed message.
    pub on_retry: Callback<String>,
    /// Load older history.
    pub on_load_older: Callback<()>,
    /// Back to the list (narrow screens).
    pub on_back: Callback<()>,
    /// Show or hide the member panel.
    pub on_members: Callback<bool>,
    /// A group changed (answer of a group call).
    pub on_group_info: Callback<GroupSummary>,
    /// We left the group.
    pub on_left: Callback<GroupId>,
    /// Load more members of the group, after this cursor.
    pub on_more_members: Callback<(GroupId, String)>,
}

/// The right column.
#[function_component(ConversationView)]
pub fn conversation_view(props: &Props) -> Html {
    let c = &props.conversation;
    let back = props.on_back.reform(|_: MouseEvent| ());
    let (pic, subtitle) = match (c.key, &c.group) {
        (ConvKey::User(u), _) => {
            let online = props.presence.is_online(u);
            (
                avatar(&c.name, false, Some(online)),
                if online { "online" } else { "offline" }.to_string(),
            )
        }
        (ConvKey::Group(_), g) => {
            let n = g.as_ref().map_or(0, |g| g.member_count);
            // Online among the members, when all of them are loaded (with
            // only some pages, a count would mislead).
            let online = g
                .as_ref()
                .filter(|g| g.members.next.is_none())
                .map_or(0, |g| {
                    g.members
                        .list
                        .iter()
                        .filter(|m| {
                            m.user_id == props.me || props.presence.online_or(m.user_id, m.online)
                        })
                        .count()
                });
            let s = if n == 1 { "" } else { "s" };
            (
                group_avatar(&c.name, false),
                if online > 0 {
                    format!("{n} member{s}, {online} online")
                } else {
                    format!("{n} member{s}")
                },
            )
        }
    };
    let members_btn = c.key.is_group().then(|| {
        let open = props.members_open;
        let onclick = props.on_members.reform(move |_: MouseEvent| !open);
        html! {
            <button type="button" class={classes!("ghost", "members-btn", open.then_some("on"))}
                data-testid="members-toggle" aria-expanded={open.to_string()}
                aria-controls="group-members" {onclick}>
                {"Members"}
            </button>
        }
    });
    let panel = match c.key {
        ConvKey::Group(id) if props.members_open && !c.read_only() => html! {
            <GroupMembers group={id} conversation={c.clone()} me={props.me}
                token={props.token.clone()} presence={props.presence.clone()}
                on_info={props.on_group_info.clone()} on_left={props.on_left.clone()}
                on_more={props.on_more_members.reform(move |after| (id, after))}
                on_close={props.on_members.reform(|()| false)} />
        },
        _ => html! {},
    };
    let gone = c.group.as_ref().and_then(|g| g.gone.clone());
    html! {
        <section class="conversation" aria-label={format!("Conversation: {}", c.name)}>
            <header class="conv-head">
                <button type="button" class="ghost back" onclick={back} aria-label="Back to chats">
                    {"‹ Chats"}
                </button>
                { pic }
                <div class="peer">
                    <h2 class="peer-name">{ &c.name }</h2>
                    <span class="presence">{ subtitle }</span>
                </div>
                { for members_btn }
            </header>
            // The voice panel's place: the voice module draws into it.
            if let (ConvKey::Group(id), false) = (c.key, c.read_only()) {
                <div key={id.0} id="voice-slot" class="voice-slot" data-group={id.0.to_string()}></div>
            }
            <div class="conv-body">
                <div class="conv-main">
                    <MessageList conversation={c.clone()} now={props.now} tz={props.tz}
                        on_retry={props.on_retry.clone()} on_load_older={props.on_load_older.clone()} />
                    <TypingIndicator names={props.typing.clone()} />
                    if let Some(why) = gone {
                        <p class="read-only" data-testid="read-only" role="status">
                            { why }{" You can read the messages you have, but not post."}
                        </p>
                    } else {
                        <Composer key={c.key.id_string()} peer_name={c.name.clone()}
                            on_send={props.on_send.clone()} on_typing={props.on_typing.clone()} />
                    }
                </div>
                { panel }
            </div>
        </section>
    }
}
