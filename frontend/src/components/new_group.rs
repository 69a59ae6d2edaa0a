//! Create a group: name and a "public" toggle.

use crate::services::http::{self, capitalize, group_error_text};
use shared::api::GroupSummary;
use web_sys::HtmlInputElement;
use yew::platform::spawn_local;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The session token.
    pub token: AttrValue,
    /// The group was created.
    pub on_created: Callback<GroupSummary>,
    /// Back to the chats.
    pub on_cancel: Callback<()>,
}

/// `#group-name`, `[data-testid=group-public]`, `[data-testid=create-group]`.
#[function_component(NewGroup)]
pub fn new_group(props: &Props) -> Html {
    let name = use_state(String::new);
    let public = use_state(|| false);
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let name_ref = use_node_ref();
    {
        let name_ref = name_ref.clone();
        use_effect_with((), move |_| {
            if let Some(el) = name_ref.cast::<HtmlInputElement>() {
                let _ = el.focus();
            }
        });
    }

    let on_submit = {
        let (name, public, error, busy) =
            (name.clone(), public.clone(), error.clone(), busy.clone());
        let (token, on_created) = (props.token.to_string(), props.on_created.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let n = name.trim().to_string();
            if let Err(e) = shared::validate::group_name(&n) {
                error.set(Some(capitalize(&e.message)));
                return;
            }
            busy.set(true);
            error.set(None);
            let (error, busy, token, on_created) = (
                error.clone(),
                busy.clone(),
                token.clone(),
                on_created.clone(),
            );
            let public = *public;
            spawn_local(async move {
                let r = http::create_group(&token, &n, public).await;
                busy.set(false);
                match r {
                    Ok(info) => on_created.emit(info),
                    Err(f) => error.set(Some(group_error_text(&f))),
                }
            });
        })
    };
    let on_name = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| {
            name.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_public = {
        let public = public.clone();
        Callback::from(move |e: Event| {
            public.set(e.target_unchecked_into::<HtmlInputElement>().checked())
        })
    };
    let cancel = props.on_cancel.reform(|_: MouseEvent| ());

    html! {
        <section class="pane-form" aria-labelledby="new-group-h">
            <header class="conv-head">
                <button type="button" class="ghost back" onclick={cancel.clone()} aria-label="Back to chats">
                    {"‹ Chats"}
                </button>
                <h2 id="new-group-h" class="peer-name">{"New group"}</h2>
            </header>
            <form class="card" onsubmit={on_submit} novalidate=true aria-busy={busy.to_string()}>
                <label for="group-name">{"Group name"}</label>
                <input id="group-name" ref={name_ref} type="text" maxlength="64" autocomplete="off"
                    value={(*name).clone()} oninput={on_name}
                    aria-invalid={error.is_some().to_string()} aria-describedby="group-error" />
                <label class="check">
                    <input type="checkbox" data-testid="group-public" checked={*public} onchange={on_public} />
                    <span>{"Public: anyone can find and join it"}</span>
                </label>
                if let Some(e) = (*error).clone() {
                    <p id="group-error" class="form-error" data-testid="group-error" role="alert">{ e }</p>
                }
                <p class="hint">{"After creating it, add people from the member panel."}</p>
                <div class="auth-actions">
                    <button type="submit" class="primary" data-testid="create-group" disabled={*busy}>
                        { if *busy { "Creating…" } else { "Create group" } }
                    </button>
                    <button type="button" class="secondary" onclick={cancel}>{"Cancel"}</button>
                </div>
            </form>
        </section>
    }
}
