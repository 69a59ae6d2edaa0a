//! Contacts online right now (from PRESENCE frames: the snapshot after
//! login, then changes); clicking someone opens the conversation.

use super::avatar;
use shared::api::UserSummary;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// Contacts online now, by username.
    pub users: Vec<UserSummary>,
    /// Someone was picked.
    pub on_open: Callback<UserSummary>,
}

/// `[data-testid=online-user]` per user.
#[function_component(OnlineUsers)]
pub fn online_users(props: &Props) -> Html {
    html! {
        <section class="online" aria-labelledby="online-h">
            <h2 id="online-h">{ format!("Online — {}", props.users.len()) }</h2>
            if props.users.is_empty() {
                <p class="empty-note">{"None of your contacts is online."}</p>
            } else {
                <ul>
                    { for props.users.iter().map(|u| {
                        let pick = { let u = u.clone(); props.on_open.reform(move |_: MouseEvent| u.clone()) };
                        html! {
                            <li key={u.user_id.0}>
                                <button type="button" class="row" data-testid="online-user"
                                    data-user={u.username.clone()} onclick={pick}>
                                    { avatar(&u.username, true, Some(true)) }
                                    <span class="name">{ &u.username }</span>
                                </button>
                            </li>
                        }
                    }) }
                </ul>
            }
        </section>
    }
}
