//! The sidebar: who we are, search, group actions, conversations, online
//! users.

use super::avatar;
use super::conversation_list::ConversationList;
use super::online_users::OnlineUsers;
use super::user_search::UserSearch;
use crate::model::{ConvKey, Conversation, Typing};
use crate::state::{Presence, Screen};
use shared::api::UserSummary;
use std::rc::Rc;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// Our username.
    pub me: AttrValue,
    /// Conversations, most recent first.
    pub conversations: Vec<Rc<Conversation>>,
    /// The open conversation.
    pub active: Option<ConvKey>,
    /// Contacts online now (the "Online" list).
    pub online: Vec<UserSummary>,
    /// Contacts' presence (dots).
    pub presence: Rc<Presence>,
    /// Who is typing where.
    pub typing: Vec<Typing>,
    /// Search box text.
    pub search_query: AttrValue,
    /// Search results.
    pub search_results: Vec<UserSummary>,
    /// Time and timezone offset for timestamps.
    pub now: i64,
    /// `getTimezoneOffset()`.
    pub tz: i32,
    /// Open a conversation.
    pub on_open: Callback<(ConvKey, String)>,
    /// Open the conversation with a user.
    pub on_open_user: Callback<UserSummary>,
    /// The search text changed.
    pub on_search: Callback<String>,
    /// Show "new group" or "find groups".
    pub on_screen: Callback<Screen>,
    /// Log out.
    pub on_logout: Callback<()>,
    /// Agents: how many visitors wait at the desk (`Some` shows "Desk").
    #[prop_or_default]
    pub desk_queued: Option<u32>,
}

/// The left column (the whole screen on phones when no chat is open).
#[function_component(Sidebar)]
pub fn sidebar(props: &Props) -> Html {
    let logout = props.on_logout.reform(|_: MouseEvent| ());
    let new_group = props.on_screen.reform(|_: MouseEvent| Screen::NewGroup);
    let find_groups = props.on_screen.reform(|_: MouseEvent| Screen::FindGroups);
    let desk = props.on_screen.reform(|_: MouseEvent| Screen::Desk);
    html! {
        <aside class="sidebar" aria-label="Conversations">
            <header class="sidebar-head">
                { avatar(&props.me, false, None) }
                <div class="me-block">
                    <span class="label">{"Signed in as"}</span>
                    <span class="me" data-testid="me">{ props.me.clone() }</span>
                </div>
                <button type="button" class="ghost" data-testid="logout" onclick={logout}>
                    {"Log out"}
                </button>
            </header>
            <UserSearch query={props.search_query.clone()} results={props.search_results.clone()}
                on_query={props.on_search.clone()} on_pick={props.on_open_user.clone()} />
            <div class="group-actions">
                <button type="button" class="secondary small" data-testid="new-group" onclick={new_group}>
                    {"+ New group"}
                </button>
                <button type="button" class="ghost" data-testid="find-groups" onclick={find_groups}>
                    {"Find groups"}
                </button>
                if let Some(n) = props.desk_queued {
                    <button type="button" class="ghost" data-testid="desk-nav" onclick={desk}>
                        {"Desk"}
                        if n > 0 { {" "}<span class="badge" data-testid="desk-nav-queued">{ n }</span> }
                    </button>
                }
            </div>
            <nav class="conversations" aria-labelledby="conv-h">
                <h2 id="conv-h">{"Chats"}</h2>
                <ConversationList conversations={props.conversations.clone()} active={props.active}
                    presence={props.presence.clone()} typing={props.typing.clone()}
                    now={props.now} tz={props.tz} on_open={props.on_open.clone()} />
            </nav>
            <OnlineUsers users={props.online.clone()} on_open={props.on_open_user.clone()} />
        </aside>
    }
}
