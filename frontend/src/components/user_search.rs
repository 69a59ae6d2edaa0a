//! Find someone to talk to by username prefix.

use super::{hue, initial};
use shared::api::UserSummary;
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The box's text.
    pub query: AttrValue,
    /// Matching users (without us).
    pub results: Vec<UserSummary>,
    /// The text changed.
    pub on_query: Callback<String>,
    /// A result was picked.
    pub on_pick: Callback<UserSummary>,
}

/// `[data-testid=user-search]` and its `[data-testid=search-result]`s.
#[function_component(UserSearch)]
pub fn user_search(props: &Props) -> Html {
    let on_input = props
        .on_query
        .reform(|e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value());
    let on_key = {
        let on_query = props.on_query.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                on_query.emit(String::new());
            }
        })
    };
    let searching = !props.query.trim().is_empty();
    html! {
        <div class="search" role="search">
            <label for="user-search" class="visually-hidden">{"Find people"}</label>
            <input id="user-search" type="search" data-testid="user-search"
                placeholder="Find people…" autocomplete="off" spellcheck="false"
                value={props.query.clone()} oninput={on_input} onkeydown={on_key} />
            if searching {
                <ul class="search-results" aria-label="Search results">
                    { for props.results.iter().map(|u| {
                        let pick = { let u = u.clone(); props.on_pick.reform(move |_: MouseEvent| u.clone()) };
                        html! {
                            <li key={u.user_id.0}>
                                <button type="button" class="row" data-testid="search-result"
                                    data-user={u.username.clone()} onclick={pick}>
                                    <span class="avatar small" style={format!("--h:{}", hue(&u.username))}
                                        aria-hidden="true">{ initial(&u.username) }</span>
                                    <span class="name">{ &u.username }</span>
                                </button>
                            </li>
                        }
                    }) }
                    if props.results.is_empty() {
                        <li class="empty">{"No matching users"}</li>
                    }
                </ul>
            }
        </div>
    }
}
