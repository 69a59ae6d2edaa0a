//! UI widgets, one per file; each takes props and reports through callbacks.

pub mod app;
pub mod auth_form;
pub mod composer;
pub mod conn_banner;
pub mod conversation_list;
pub mod conversation_view;
pub mod desk_view;
pub mod group_directory;
pub mod group_members;
pub mod message_item;
pub mod message_list;
pub mod new_group;
pub mod notice_bar;
pub mod online_users;
pub mod sidebar;
pub mod support;
pub mod typing_indicator;
pub mod user_search;

use yew::{html, Html};

/// The first letter of a name, for the round avatar.
pub fn initial(name: &str) -> String {
    name.chars()
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_else(|| "?".into())
}

/// A stable hue (0-359) per name, so each person keeps their avatar colour.
pub fn hue(name: &str) -> u32 {
    name.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360
}

/// The presence dot on a user's avatar: `[data-testid=presence-dot]`
/// with `data-online`.
pub fn presence_dot(online: bool) -> Html {
    html! {
        <span class={if online { "dot" } else { "dot off" }} data-testid="presence-dot"
            data-online={online.to_string()}></span>
    }
}

/// A round avatar with the name's initial (and a presence dot for users).
pub fn avatar(name: &str, small: bool, online: Option<bool>) -> Html {
    html! {
        <span class={if small { "avatar small" } else { "avatar" }}
            style={format!("--h:{}", hue(name))} aria-hidden="true">
            { initial(name) }
            { for online.map(presence_dot) }
        </span>
    }
}

/// A group's avatar: a rounded square with `#`.
pub fn group_avatar(name: &str, small: bool) -> Html {
    html! {
        <span class={if small { "avatar group small" } else { "avatar group" }}
            style={format!("--h:{}", hue(name))} aria-hidden="true">{"#"}</span>
    }
}
