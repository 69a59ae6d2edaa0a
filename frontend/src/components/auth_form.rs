//! Sign in / create account.

use crate::services::http::{self, auth_error_text, capitalize};
use shared::api::Session;
use web_sys::HtmlInputElement;
use yew::platform::spawn_local;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// Called with the new session after a successful login or register.
    pub on_signed_in: Callback<Session>,
}

/// The sign-in screen: `#username`, `#password`, `[data-testid=login]`,
/// `[data-testid=register]`, `[data-testid=auth-error]`.
#[function_component(AuthForm)]
pub fn auth_form(props: &Props) -> Html {
    let username = use_state(String::new);
    let password = use_state(String::new);
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let user_ref = use_node_ref();

    {
        let user_ref = user_ref.clone();
        use_effect_with((), move |_| {
            if let Some(el) = user_ref.cast::<HtmlInputElement>() {
                let _ = el.focus();
            }
        });
    }

    let submit = {
        let (username, password, error, busy) = (
            username.clone(),
            password.clone(),
            error.clone(),
            busy.clone(),
        );
        let on_signed_in = props.on_signed_in.clone();
        Callback::from(move |register: bool| {
            if *busy {
                return;
            }
            let (u, p) = (username.trim().to_string(), (*password).clone());
            if let Err(e) = shared::validate::username(&u) {
                error.set(Some(capitalize(&e.message)));
                return;
            }
            if let Err(e) = shared::validate::password(&p) {
                error.set(Some(capitalize(&e.message)));
                return;
            }
            error.set(None);
            busy.set(true);
            let (error, busy, on_signed_in) = (error.clone(), busy.clone(), on_signed_in.clone());
            spawn_local(async move {
                let result = if register {
                    http::register(&u, &p).await
                } else {
                    http::login(&u, &p).await
                };
                busy.set(false);
                match result {
                    Ok(session) => on_signed_in.emit(session),
                    Err(f) => error.set(Some(auth_error_text(&f))),
                }
            });
        })
    };

    let on_submit = {
        let submit = submit.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            submit.emit(false);
        })
    };
    let on_register = submit.reform(|_: MouseEvent| true);
    let on_user = {
        let username = username.clone();
        Callback::from(move |e: InputEvent| {
            username.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_pass = {
        let password = password.clone();
        Callback::from(move |e: InputEvent| {
            password.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };

    html! {
        <main class="auth">
            <form class="auth-card" onsubmit={on_submit} novalidate=true aria-busy={busy.to_string()}>
                <div class="brand">
                    <span class="logo" aria-hidden="true">{"◆"}</span>
                    <h1>{"ferrochat"}</h1>
                </div>
                <p class="tagline">{"Sign in or create an account to start chatting."}</p>
                <label for="username">{"Username"}</label>
                <input id="username" ref={user_ref} type="text" name="username"
                    autocomplete="username" autocapitalize="none" spellcheck="false"
                    value={(*username).clone()} oninput={on_user}
                    aria-invalid={error.is_some().to_string()}
                    aria-describedby="auth-error" />
                <label for="password">{"Password"}</label>
                <input id="password" type="password" name="password"
                    autocomplete="current-password"
                    value={(*password).clone()} oninput={on_pass}
                    aria-invalid={error.is_some().to_string()}
                    aria-describedby="auth-error" />
                <p class="hint">{"3–32 letters, digits, _ . -; password at least 8 characters."}</p>
                if let Some(msg) = (*error).clone() {
                    <p id="auth-error" class="auth-error" data-testid="auth-error" role="alert">{ msg }</p>
                }
                <div class="auth-actions">
                    <button type="submit" class="primary" data-testid="login" disabled={*busy}>
                        { if *busy { "Working…" } else { "Log in" } }
                    </button>
                    <button type="button" class="secondary" data-testid="register"
                        disabled={*busy} onclick={on_register}>
                        {"Create account"}
                    </button>
                </div>
            </form>
        </main>
    }
}
