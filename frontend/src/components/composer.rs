//! The message composer: Enter sends, Shift+Enter is a newline.

use crate::format::body_counter;
use crate::services::http::capitalize;
use shared::limits::{CONTENT_TYPE_TEXT, MAX_BODY_BYTES};
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// Who we write to (for the placeholder).
    pub peer_name: AttrValue,
    /// Send this text.
    pub on_send: Callback<String>,
    /// The user typed (the draft is not empty).
    pub on_typing: Callback<()>,
}

/// `[data-testid=composer]` and `[data-testid=send]`.
#[function_component(Composer)]
pub fn composer(props: &Props) -> Html {
    let draft = use_state(String::new);
    let error = use_state(|| None::<String>);
    let area = use_node_ref();

    {
        let area = area.clone();
        use_effect_with(props.peer_name.clone(), move |_| {
            if let Some(el) = area.cast::<HtmlTextAreaElement>() {
                let _ = el.focus();
            }
        });
    }

    let counter = body_counter(&draft);
    let blank = draft.trim().is_empty();
    let too_long = draft.len() > MAX_BODY_BYTES;

    let send = {
        let (draft, error, area) = (draft.clone(), error.clone(), area.clone());
        let on_send = props.on_send.clone();
        Callback::from(move |()| {
            let body = draft.trim().to_string();
            if body.is_empty() {
                return;
            }
            if let Err(e) = shared::validate::content(CONTENT_TYPE_TEXT, &body) {
                error.set(Some(capitalize(&e.message)));
                return;
            }
            error.set(None);
            on_send.emit(body);
            draft.set(String::new());
            if let Some(el) = area.cast::<HtmlTextAreaElement>() {
                el.set_value("");
                let _ = el.focus();
            }
        })
    };
    let on_input = {
        let (draft, error) = (draft.clone(), error.clone());
        let on_typing = props.on_typing.clone();
        Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlTextAreaElement>().value();
            // A cleared box stops the notices (there is no "stopped" frame:
            // the other side hides the indicator after a few seconds).
            if !value.trim().is_empty() {
                on_typing.emit(());
            }
            draft.set(value);
            if error.is_some() {
                error.set(None);
            }
        })
    };
    let on_key = {
        let send = send.clone();
        Callback::from(move |e: KeyboardEvent| {
            // While an IME composes, Enter confirms the composition.
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                send.emit(());
            }
        })
    };
    let on_submit = {
        let send = send.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            send.emit(());
        })
    };
    let rows = draft.lines().count().clamp(1, 6).to_string();

    html! {
        <form class="composer" onsubmit={on_submit}>
            <label for="composer" class="visually-hidden">{ format!("Message {}", props.peer_name) }</label>
            <textarea id="composer" ref={area} data-testid="composer" {rows}
                placeholder={format!("Message {}", props.peer_name)}
                value={(*draft).clone()} oninput={on_input} onkeydown={on_key}
                aria-describedby="composer-help" aria-invalid={too_long.to_string()} />
            <button type="submit" class="primary send" data-testid="send"
                disabled={blank || too_long} aria-label="Send">
                <span aria-hidden="true">{"➤"}</span><span class="send-label">{"Send"}</span>
            </button>
            <div id="composer-help" class="composer-help">
                if let Some(e) = (*error).clone() {
                    <span class="composer-error" role="alert">{ e }</span>
                } else {
                    <span class="keys">{"Enter to send · Shift+Enter for a new line"}</span>
                }
                if let Some((n, over)) = counter {
                    <span class={classes!("counter", over.then_some("over"))} aria-live="polite">
                        { format!("{n} / {MAX_BODY_BYTES} bytes") }
                    </span>
                }
            </div>
        </form>
    }
}
