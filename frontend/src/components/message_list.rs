//! The scrolling list of messages. Sticks to the newest message unless the
//! user has scrolled up to read older ones; near the top it asks for the
//! previous history page, and keeps what is on screen in place when that
//! page is prepended.

use super::message_item::MessageItem;
use crate::model::{shown_read_by, Conversation};
use std::rc::Rc;
use web_sys::HtmlElement;
use yew::prelude::*;

/// Within this many pixels of the bottom counts as "at the bottom".
const STICK_PX: i32 = 48;
/// Within this many pixels of the top, older messages are loaded.
const LOAD_OLDER_PX: i32 = 150;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The conversation shown.
    pub conversation: Rc<Conversation>,
    /// Current time and timezone offset.
    pub now: i64,
    /// `getTimezoneOffset()`.
    pub tz: i32,
    /// Retry a failed message.
    pub on_retry: Callback<String>,
    /// Load the previous page of history.
    pub on_load_older: Callback<()>,
}

/// Where the list was after the last render (to undo the jump when
/// messages are prepended).
#[derive(Default)]
struct Saved {
    height: i32,
    top: i32,
    first: Option<String>,
}

fn scroll_to_bottom(el: &HtmlElement) {
    el.set_scroll_top(el.scroll_height());
}

/// `[data-testid=messages]`, with `[data-testid=load-older]` at the top
/// while older messages exist.
#[function_component(MessageList)]
pub fn message_list(props: &Props) -> Html {
    let list_ref = use_node_ref();
    // Whether to follow new messages; shared with the scroll handler.
    let stick = use_mut_ref(|| true);
    let saved = use_mut_ref(Saved::default);
    let show_jump = use_state(|| false);
    let c = &props.conversation;
    let can_load = c.older_cursor().is_some() && !c.history.loading;

    {
        // A different conversation starts at its newest message.
        let (stick, saved) = (stick.clone(), saved.clone());
        use_effect_with(c.key, move |_| {
            *stick.borrow_mut() = true;
            *saved.borrow_mut() = Saved::default();
        });
    }
    {
        // After every render: follow the newest message if we stick, or
        // keep the view still when older messages were prepended.
        let (list_ref, stick, saved) = (list_ref.clone(), stick.clone(), saved.clone());
        let first = c.messages.first().map(|m| m.key());
        let on_load_older = props.on_load_older.clone();
        use_effect(move || {
            if let Some(el) = list_ref.cast::<HtmlElement>() {
                let mut s = saved.borrow_mut();
                if *stick.borrow() {
                    scroll_to_bottom(&el);
                } else if s.first.is_some() && s.first != first && s.height > 0 {
                    el.set_scroll_top(s.top + el.scroll_height() - s.height);
                }
                s.height = el.scroll_height();
                s.top = el.scroll_top();
                s.first = first;
                // Too few messages to scroll: fetch more right away.
                if can_load && el.scroll_height() <= el.client_height() {
                    on_load_older.emit(());
                }
            }
        });
    }

    let on_scroll = {
        let (list_ref, stick, saved, show_jump) = (
            list_ref.clone(),
            stick.clone(),
            saved.clone(),
            show_jump.clone(),
        );
        let on_load_older = props.on_load_older.clone();
        Callback::from(move |_: Event| {
            if let Some(el) = list_ref.cast::<HtmlElement>() {
                let top = el.scroll_top();
                let at_bottom = el.scroll_height() - top - el.client_height() <= STICK_PX;
                *stick.borrow_mut() = at_bottom;
                saved.borrow_mut().top = top;
                if *show_jump == at_bottom {
                    show_jump.set(!at_bottom);
                }
                if can_load && top < LOAD_OLDER_PX {
                    on_load_older.emit(());
                }
            }
        })
    };
    let jump = {
        let (list_ref, stick, show_jump) = (list_ref.clone(), stick.clone(), show_jump.clone());
        Callback::from(move |_: MouseEvent| {
            *stick.borrow_mut() = true;
            show_jump.set(false);
            if let Some(el) = list_ref.cast::<HtmlElement>() {
                scroll_to_bottom(&el);
            }
        })
    };
    let load_older = {
        let stick = stick.clone();
        props.on_load_older.reform(move |_: MouseEvent| {
            *stick.borrow_mut() = false;
        })
    };

    let h = &c.history;
    let edge = if h.loading {
        html! { <li class="history-edge" data-testid="loading-older">{"Loading…"}</li> }
    } else if can_load {
        html! {
            <li class="history-edge">
                <button type="button" class="link" data-testid="load-older" onclick={load_older}>
                    {"Load older messages"}
                </button>
            </li>
        }
    } else if h.loaded && !c.messages.is_empty() {
        html! { <li class="history-edge">{"Start of the conversation"}</li> }
    } else {
        html! {}
    };
    html! {
        <div class="messages-wrap">
            <ol class="messages" data-testid="messages" ref={list_ref} onscroll={on_scroll}
                role="log" aria-live="polite" aria-label={format!("Messages in {}", c.name)}
                aria-busy={h.loading.to_string()} tabindex="0">
                { edge }
                if c.messages.is_empty() && !h.loading {
                    <li class="empty-note">{
                        if c.key.is_group() { format!("No messages in {} yet", c.name) }
                        else { format!("Say hello to {} 👋", c.name) }
                    }</li>
                }
                { for c.messages.iter().map(|m| html! {
                    <MessageItem key={m.key()} message={m.clone()} state={c.display_state(m)}
                        read_by={shown_read_by(c, m)}
                        now={props.now} tz={props.tz} on_retry={props.on_retry.clone()} />
                }) }
            </ol>
            if *show_jump {
                <button type="button" class="jump" onclick={jump}>{"↓ Newest"}</button>
            }
        </div>
    }
}
