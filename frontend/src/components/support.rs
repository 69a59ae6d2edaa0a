//! The visitor's chat with the support desk: `support.html` (a build of
//! this crate with the `support` feature; `widget.js` opens it in an
//! iframe with the host page's address in `?page=`). A visitor session (`POST /api/visitors`)
//! kept under its own storage key, LOGIN, DESK_OPEN (130) after every
//! login, the status (131) on top, then the ordinary message list,
//! typing, receipts and composer of the group it names.

use super::composer::Composer;
use super::conn_banner::ConnBanner;
use super::message_list::MessageList;
use super::typing_indicator::TypingIndicator;
use crate::services::reads::{flush_read, ReadSender};
use crate::services::storage::{self, VISITOR_KEY};
use crate::services::sync::Sync;
use crate::services::throttle::{Throttle, TYPING_INTERVAL_MS};
use crate::services::ws::{Connection, Hooks};
use crate::services::{http, new_client_msg_id, now_ms};
use crate::state::{Action, State};
use shared::api::Session;
use shared::desk::{DeskState, DeskStatus, NewVisitor};
use shared::{ChatSend, ClientFrame, Content, ServerFrame};
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::HtmlInputElement;
use yew::platform::spawn_local;
use yew::prelude::*;

/// Where the id of a conversation the visitor saw closed is kept: a reload
/// shows it (read-only) instead of opening a new one.
const CLOSED_KEY: &str = "ferrochat.visitor.closed";

fn local(key: &str) -> Option<String> {
    let s = web_sys::window()?.local_storage().ok()??;
    s.get_item(key).ok()?
}

fn set_local(key: &str, value: Option<&str>) {
    if let Some(s) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = match value {
            Some(v) => s.set_item(key, v),
            None => s.remove_item(key),
        };
    }
}

/// The host page (`?page=` from the widget), else the referrer.
fn host_page() -> Option<String> {
    let w = web_sys::window()?;
    let search = w.location().search().ok()?;
    let from_query = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|v| js_sys::decode_uri_component(&v.replace('+', " ")).ok())
        .and_then(|v| v.as_string());
    from_query
        .or_else(|| w.document().map(|d| d.referrer()))
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.chars()
                .take(shared::desk::VISITOR_PAGE_MAX_BYTES / 4)
                .collect()
        })
}

fn status_line(d: Option<&DeskStatus>) -> String {
    match d {
        None => "Connecting…".into(),
        Some(d) => match (d.state, d.position, &d.agent_name) {
            (DeskState::Queued, Some(1), _) => "Waiting for an agent: you are next".into(),
            (DeskState::Queued, Some(n), _) => format!("Waiting for an agent: position {n}"),
            (DeskState::Queued, None, _) => "Waiting for an agent…".into(),
            (DeskState::Open, _, Some(a)) => format!("You are chatting with {a}"),
            (DeskState::Open, _, None) => "An agent has joined".into(),
            (DeskState::Closed, ..) => "This conversation has ended".into(),
        },
    }
}

/// The start form: `#visitor-name`, `#visitor-email`, `[data-testid=visitor-start]`.
#[derive(Properties, PartialEq)]
struct StartProps {
    on_session: Callback<Session>,
}

#[function_component(StartForm)]
fn start_form(props: &StartProps) -> Html {
    let (name_ref, email_ref) = (use_node_ref(), use_node_ref());
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let onsubmit = {
        let (name_ref, email_ref, error, busy) = (
            name_ref.clone(),
            email_ref.clone(),
            error.clone(),
            busy.clone(),
        );
        let on_session = props.on_session.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let value = |r: &NodeRef| r.cast::<HtmlInputElement>().map(|i| i.value());
            let v = NewVisitor {
                name: value(&name_ref),
                email: value(&email_ref),
                page: host_page(),
            };
            let v = match v.validated() {
                Ok(v) => v,
                Err(e) => return error.set(Some(http::capitalize(&e.message))),
            };
            busy.set(true);
            let (error, busy, on_session) = (error.clone(), busy.clone(), on_session.clone());
            spawn_local(async move {
                match http::new_visitor(&v).await {
                    Ok(s) => on_session.emit(Session {
                        user_id: s.visitor_id,
                        username: s.name,
                        token: s.token,
                        expires_at: s.expires_at,
                    }),
                    Err(e) => {
                        error.set(Some(http::auth_error_text(&e)));
                        busy.set(false);
                    }
                }
            });
        })
    };
    html! {
        <form class="card support-start" {onsubmit}>
            <h2>{"Chat with us"}</h2>
            <label for="visitor-name">{"Your name (optional)"}</label>
            <input id="visitor-name" ref={name_ref} autocomplete="name" maxlength="64" />
            <label for="visitor-email">{"Email (optional, to answer you later)"}</label>
            <input id="visitor-email" ref={email_ref} type="email" autocomplete="email" />
            if let Some(e) = (*error).clone() {
                <p class="error" role="alert">{ e }</p>
            }
            <button type="submit" class="primary" data-testid="visitor-start" disabled={*busy}>
                {"Start chat"}
            </button>
        </form>
    }
}

/// The visitor's page (`support.html`).
#[function_component(SupportApp)]
pub fn support_app() -> Html {
    let state = use_reducer(|| State::new(storage::load_session_at(VISITOR_KEY), None));
    let conn: Rc<RefCell<Option<Connection>>> = use_mut_ref(|| None);
    let reads = use_mut_ref(ReadSender::default);
    let typing = use_mut_ref(|| Throttle::per_key(TYPING_INTERVAL_MS));

    let sign_out = {
        let (state, conn) = (state.clone(), conn.clone());
        Callback::from(move |()| {
            if let Some(c) = conn.borrow_mut().take() {
                c.stop();
            }
            storage::clear_session_at(VISITOR_KEY);
            set_local(CLOSED_KEY, None);
            state.dispatch(Action::SignedOut);
        })
    };
    let sync = state.session.as_ref().map(|s| Sync {
        token: s.token.clone(),
        dispatch: state.dispatcher().to_callback(),
        unauthorized: sign_out.clone(),
    });

    // The connection lives as long as the token.
    {
        let token = state.session.as_ref().map(|s| s.token.clone());
        let (state, conn, sign_out) = (state.clone(), conn.clone(), sign_out.clone());
        use_effect_with(token, move |token| {
            if let Some(token) = token.clone() {
                let reader = state.clone();
                let hooks = Hooks {
                    dispatch: state.dispatcher().to_callback(),
                    pending: Rc::new(move || reader.clone().chat.pending_frames()),
                    session_gone: sign_out,
                };
                *conn.borrow_mut() = Some(Connection::start(token, hooks));
            }
            move || {
                if let Some(c) = conn.borrow_mut().take() {
                    c.stop();
                }
            }
        });
    }
    // After every login: 130 (resume or start), unless the visitor saw
    // their conversation closed (then it is shown until they start anew).
    {
        let (state, conn) = (state.clone(), conn.clone());
        use_effect_with(state.logins, move |&logins| {
            if logins == 0 {
                return;
            }
            let closed = local(CLOSED_KEY).and_then(|g| g.parse().ok());
            match closed {
                Some(g) if state.desk_status.is_none() => state.dispatch(Action::Frame {
                    frame: ServerFrame::DeskStatus(DeskStatus {
                        group_id: shared::GroupId(g),
                        state: DeskState::Closed,
                        position: None,
                        agent_id: None,
                        agent_name: None,
                    }),
                    now: now_ms(),
                }),
                Some(_) => {}
                None => {
                    if let Some(c) = conn.borrow().as_ref() {
                        c.send(&ClientFrame::DeskOpen);
                    }
                }
            }
        });
    }
    // Remember a close across reloads.
    {
        let closed = state
            .desk_status
            .as_ref()
            .filter(|d| d.state == DeskState::Closed)
            .map(|d| d.group_id.0.to_string());
        use_effect_with(closed, |closed| {
            if let Some(g) = closed {
                set_local(CLOSED_KEY, Some(g));
            }
        });
    }
    // The conversation's history, when it opens and after every login.
    {
        let sync = sync.clone();
        use_effect_with((state.chat.active, state.logins), move |(active, _)| {
            if let (Some(key), Some(s)) = (*active, sync) {
                s.history(key, None);
            }
        });
    }
    {
        let (s, conn, reads) = (state.clone(), conn.clone(), reads.clone());
        let candidate = (state.chat.read_candidate(), state.conn);
        use_effect_with(candidate, move |_| flush_read(&s, &conn, &reads));
    }

    let Some(sync) = sync else {
        let on_session = {
            let state = state.clone();
            Callback::from(move |session: Session| {
                storage::save_session_at(VISITOR_KEY, &session);
                set_local(CLOSED_KEY, None);
                state.dispatch(Action::SignedIn {
                    session,
                    cache: None,
                });
            })
        };
        return html! { <div class="support"><StartForm {on_session} /></div> };
    };

    let send_frame = {
        let conn = conn.clone();
        move |f: &ClientFrame| {
            if let Some(c) = conn.borrow().as_ref() {
                c.send(f);
            }
        }
    };
    let on_send = {
        let (state, typing, send_frame) = (state.clone(), typing.clone(), send_frame.clone());
        Callback::from(move |body: String| {
            let Some(c) = state.chat.active_conversation().cloned() else {
                return;
            };
            let client_msg_id = new_client_msg_id();
            let frame = ClientFrame::Chat(ChatSend {
                from_id: None,
                to: c.key.target(),
                client_msg_id: Some(client_msg_id.clone()),
                content: Content::text(body.clone()),
            });
            state.dispatch(Action::Send {
                to: c.key,
                name: c.name.clone(),
                client_msg_id,
                body,
                now: now_ms(),
            });
            typing.borrow_mut().reset(c.key);
            send_frame(&frame);
        })
    };
    let on_typing = {
        let (state, typing, send_frame) = (state.clone(), typing.clone(), send_frame.clone());
        Callback::from(move |()| {
            let Some(key) = state.chat.active else { return };
            if typing.borrow_mut().try_send(key, now_ms()).is_ok() {
                send_frame(&ClientFrame::Typing { to: key.target() });
            }
        })
    };
    let on_retry = {
        let (state, send_frame) = (state.clone(), send_frame.clone());
        Callback::from(move |client_msg_id: String| {
            state.dispatch(Action::Retry {
                client_msg_id: client_msg_id.clone(),
                now: now_ms(),
            });
            if let Some(f) = state.chat.sending_frame(&client_msg_id) {
                send_frame(&f);
            }
        })
    };
    let on_load_older = {
        let state = state.clone();
        Callback::from(move |()| {
            let current = state.clone();
            if let Some(c) = current.chat.active_conversation() {
                if let (Some(before), false) = (c.older_cursor(), c.history.loading) {
                    sync.history(c.key, Some(before));
                }
            }
        })
    };
    let status = state.desk_status.clone();
    let on_close = {
        let send_frame = send_frame.clone();
        let g = status.as_ref().map(|d| d.group_id);
        Callback::from(move |_: MouseEvent| {
            if let Some(group_id) = g {
                send_frame(&ClientFrame::DeskClose { group_id });
            }
        })
    };
    let on_new = Callback::from(move |_: MouseEvent| {
        set_local(CLOSED_KEY, None);
        send_frame(&ClientFrame::DeskOpen);
    });
    let on_retry_now = {
        let conn = conn.clone();
        Callback::from(move |()| {
            if let Some(c) = conn.borrow().as_ref() {
                c.retry_now();
            }
        })
    };
    let closed = status
        .as_ref()
        .is_some_and(|d| d.state == DeskState::Closed);
    let state_name = status.as_ref().map_or("connecting", |d| match d.state {
        DeskState::Queued => "queued",
        DeskState::Open => "open",
        DeskState::Closed => "closed",
    });
    let now = now_ms();
    let tz = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(now as f64)).get_timezone_offset()
        as i32;
    let active = state.chat.active_conversation().cloned();
    html! {
        <div class="support">
            <ConnBanner status={state.conn} {on_retry_now} />
            <header class="conv-head support-head">
                <div class="peer">
                    <h2 class="peer-name">{"Support"}</h2>
                    <span class="presence" data-testid="desk-status" data-state={state_name} role="status">
                        { status_line(status.as_ref()) }
                    </span>
                </div>
                if closed {
                    <button type="button" class="secondary small" data-testid="visitor-new" onclick={on_new}>
                        {"New conversation"}
                    </button>
                } else if status.is_some() {
                    <button type="button" class="ghost" data-testid="visitor-close" onclick={on_close}>
                        {"End chat"}
                    </button>
                }
            </header>
            if let Some(c) = active {
                <div class="conv-main">
                    <MessageList conversation={c.clone()} {now} {tz} {on_retry} {on_load_older} />
                    <TypingIndicator names={state.chat.typing_in(c.key)} />
                    if !closed {
                        <Composer key={c.key.id_string()} peer_name={"Support"} {on_send} {on_typing} />
                    }
                </div>
            }
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{GroupId, UserId};

    #[test]
    fn the_status_line_says_where_the_visitor_stands() {
        let d = |state, position, agent_name: Option<&str>| DeskStatus {
            group_id: GroupId(1),
            state,
            position,
            agent_id: agent_name.map(|_| UserId(2)),
            agent_name: agent_name.map(Into::into),
        };
        assert_eq!(status_line(None), "Connecting…");
        assert!(status_line(Some(&d(DeskState::Queued, Some(3), None))).contains("position 3"));
        assert!(status_line(Some(&d(DeskState::Queued, Some(1), None))).contains("next"));
        assert!(status_line(Some(&d(DeskState::Open, None, Some("ann")))).contains("ann"));
        assert!(status_line(Some(&d(DeskState::Closed, None, None))).contains("ended"));
    }
}
