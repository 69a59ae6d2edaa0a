//! The root component: owns the state and the connection, wires callbacks
//! and the background loads (conversation list, history, group details,
//! read receipts).

use super::auth_form::AuthForm;
use super::conn_banner::ConnBanner;
use super::conversation_view::ConversationView;
use super::desk_view::DeskView;
use super::group_directory::GroupDirectory;
use super::new_group::NewGroup;
use super::notice_bar::NoticeBar;
use super::sidebar::Sidebar;
use crate::model::ConvKey;
use crate::services::http::{self, group_error_text};
use crate::services::reads::{flush_read, ReadSender};
use crate::services::search::debounced_search;
use crate::services::storage;
use crate::services::sync::Sync;
use crate::services::throttle::{Throttle, TYPING_INTERVAL_MS};
use crate::services::ws::{Connection, Hooks};
use crate::services::{new_client_msg_id, now_ms};
use crate::state::{Action, Screen, State};
use gloo_timers::callback::Timeout;
use shared::api::{GroupSummary, Session, UserSummary};
use shared::{ChatSend, ClientFrame, Content, GroupId};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::VisibilityState;
use yew::platform::spawn_local;
use yew::prelude::*;

fn tz_offset(now: i64) -> i32 {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(now as f64)).get_timezone_offset() as i32
}

fn page_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == VisibilityState::Visible)
}

/// The app.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(|| {
        let session = storage::load_session();
        let cache = session
            .as_ref()
            .and_then(|s| storage::load_cache(s.user_id));
        State::new(session, cache)
    });
    let conn: Rc<RefCell<Option<Connection>>> = use_mut_ref(|| None);
    let search_timer: Rc<RefCell<Option<Timeout>>> = use_mut_ref(|| None);
    let group_timer: Rc<RefCell<Option<Timeout>>> = use_mut_ref(|| None);
    let reads = use_mut_ref(ReadSender::default);
    let typing = use_mut_ref(|| Throttle::per_key(TYPING_INTERVAL_MS));

    // Ends the session. `revoke`: an explicit logout (tell the relay, and
    // drop this user's cached messages: the browser may be shared). When the
    // relay says the token is dead, the cache is kept for the next login.
    let sign_out = {
        let (state, conn) = (state.clone(), conn.clone());
        Callback::from(move |revoke: bool| {
            if let Some(c) = conn.borrow_mut().take() {
                c.stop();
            }
            storage::clear_session();
            if let Some(s) = state.session.clone() {
                if revoke {
                    storage::clear_cache(s.user_id);
                    spawn_local(async move {
                        let _ = http::logout(&s.token).await;
                    });
                }
            }
            state.dispatch(Action::SignedOut);
        })
    };
    let sync = state.session.as_ref().map(|s| Sync {
        token: s.token.clone(),
        dispatch: state.dispatcher().to_callback(),
        unauthorized: sign_out.reform(|()| false),
    });

    // Page visibility: messages count as read only while visible.
    {
        let dispatch = state.dispatcher();
        use_effect_with((), move |_| {
            let doc = web_sys::window().and_then(|w| w.document());
            let cb = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                dispatch.dispatch(Action::Visible(page_visible()));
            });
            if let Some(d) = &doc {
                let _ = d.add_event_listener_with_callback(
                    "visibilitychange",
                    cb.as_ref().unchecked_ref(),
                );
            }
            move || {
                if let Some(d) = &doc {
                    let _ = d.remove_event_listener_with_callback(
                        "visibilitychange",
                        cb.as_ref().unchecked_ref(),
                    );
                }
                drop(cb);
            }
        });
        let dispatch = state.dispatcher();
        use_effect_with((), move |_| {
            dispatch.dispatch(Action::Visible(page_visible()))
        });
    }

    // The connection and the session check live as long as the session
    // token. Presence comes from the socket's frames: nothing is polled.
    {
        let token = state.session.as_ref().map(|s| s.token.clone());
        let (state, conn, sign_out) = (state.clone(), conn.clone(), sign_out.clone());
        use_effect_with(token, move |token| {
            if let Some(token) = token.clone() {
                let reader = state.clone();
                let hooks = Hooks {
                    dispatch: state.dispatcher().to_callback(),
                    // The handle reads the current state, not a snapshot.
                    pending: Rc::new(move || reader.clone().chat.pending_frames()),
                    session_gone: sign_out.reform(|()| false),
                };
                *conn.borrow_mut() = Some(Connection::start(token.clone(), hooks));

                // A stored session may have expired or been revoked. (Whether
                // we answer at the desk needs no `role` from here: the relay
                // sends agents the desk's board, type 133, at every login.)
                spawn_local(async move {
                    if let Err(e) = http::me(&token).await {
                        if e.is_unauthorized() {
                            sign_out.emit(false);
                        }
                    }
                });
            }
            move || {
                if let Some(c) = conn.borrow_mut().take() {
                    c.stop();
                }
            }
        });
    }

    // After every socket login (first and reconnects): the server's
    // conversation list.
    {
        let sync = sync.clone();
        use_effect_with(state.logins, move |&logins| {
            if let (true, Some(s)) = (logins > 0, sync) {
                s.conversations();
            }
        });
    }
    // The open conversation: its latest page (and the group's members),
    // when opened and after every socket login.
    {
        let sync = sync.clone();
        use_effect_with((state.chat.active, state.logins), move |(active, _)| {
            if let (Some(key), Some(s)) = (*active, sync) {
                s.history(key, None);
                if let ConvKey::Group(g) = key {
                    s.group(g);
                }
            }
        });
    }

    // Read receipts for what is on screen.
    {
        let (s, conn, reads) = (state.clone(), conn.clone(), reads.clone());
        let candidate = (state.chat.read_candidate(), state.conn);
        use_effect_with(candidate, move |_| flush_read(&s, &conn, &reads));
    }

    // Cache conversations whenever they change.
    {
        let s = state.clone();
        use_effect_with(state.chat_rev, move |_| {
            if s.session.is_some() {
                storage::save_cache(&s.chat.to_cache());
            }
        });
    }

    // Unread count in the tab title.
    {
        let unread = state.chat.total_unread();
        use_effect_with(unread, move |&n| {
            if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
                doc.set_title(&if n > 0 {
                    format!("({n}) ferrochat")
                } else {
                    "ferrochat".into()
                });
            }
        });
    }

    let on_signed_in = {
        let state = state.clone();
        Callback::from(move |session: Session| {
            storage::save_session(&session);
            let cache = storage::load_cache(session.user_id);
            state.dispatch(Action::SignedIn { session, cache });
        })
    };

    let (Some(session), Some(sync)) = (state.session.clone(), sync) else {
        return html! { <AuthForm {on_signed_in} /> };
    };

    let on_open = {
        let state = state.clone();
        Callback::from(move |(key, name): (ConvKey, String)| {
            state.dispatch(Action::Open {
                key,
                name,
                now: now_ms(),
            })
        })
    };
    let on_open_user = on_open.reform(|u: UserSummary| (ConvKey::User(u.user_id), u.username));
    let on_send = {
        let (state, conn, typing) = (state.clone(), conn.clone(), typing.clone());
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
            // Offline, the message stays "sending" and goes out after login.
            if let Some(conn) = conn.borrow().as_ref() {
                conn.send(&frame);
            }
        })
    };
    let on_typing = {
        let (state, conn, typing) = (state.clone(), conn.clone(), typing.clone());
        Callback::from(move |()| {
            let Some(key) = state.chat.active else { return };
            if typing.borrow_mut().try_send(key, now_ms()).is_ok() {
                if let Some(c) = conn.borrow().as_ref() {
                    c.send(&ClientFrame::Typing { to: key.target() });
                }
            }
        })
    };
    let on_retry = {
        let (state, conn) = (state.clone(), conn.clone());
        Callback::from(move |client_msg_id: String| {
            state.dispatch(Action::Retry {
                client_msg_id: client_msg_id.clone(),
                now: now_ms(),
            });
            let frame = state.chat.sending_frame(&client_msg_id);
            if let (Some(c), Some(f)) = (conn.borrow().as_ref(), frame) {
                c.send(&f);
            }
        })
    };
    let on_load_older = {
        let (state, sync) = (state.clone(), sync.clone());
        Callback::from(move |()| {
            let current = state.clone();
            let Some(c) = current.chat.active_conversation() else {
                return;
            };
            if let (Some(before), false) = (c.older_cursor(), c.history.loading) {
                sync.history(c.key, Some(before));
            }
        })
    };
    let on_search = debounced_search(
        state.clone(),
        search_timer.clone(),
        session.token.clone(),
        Action::SearchQuery,
        |token, q| async move { http::search(&token, &q).await },
        |query, users| Action::SearchResults { query, users },
    );
    let on_group_query = debounced_search(
        state.clone(),
        group_timer.clone(),
        session.token.clone(),
        Action::GroupQuery,
        |token, q| async move { http::find_groups(&token, &q).await },
        |query, groups| Action::GroupResults { query, groups },
    );
    // A group change answered with the group's summary. The member list is
    // not in it: opening the group loads it, else it is reloaded here.
    let on_group = {
        let (state, sync) = (state.clone(), sync.clone());
        move |open: bool| {
            let (state, sync) = (state.clone(), sync.clone());
            Callback::from(move |summary: GroupSummary| {
                let id = summary.group_id;
                state.dispatch(Action::GroupChanged {
                    summary,
                    open,
                    now: now_ms(),
                });
                if !open {
                    sync.group(id);
                }
            })
        }
    };
    let on_created = {
        let (state, opened) = (state.clone(), on_group(true));
        Callback::from(move |summary: GroupSummary| {
            opened.emit(summary);
            // A new group is empty: show the member panel to add people.
            state.dispatch(Action::ShowMembers(true));
        })
    };
    let on_join = {
        let (state, opened) = (state.clone(), on_group(true));
        let token = session.token.clone();
        Callback::from(move |g: GroupSummary| {
            let (state, opened, token) = (state.clone(), opened.clone(), token.clone());
            spawn_local(async move {
                match http::join_group(&token, g.group_id).await {
                    Ok(info) => opened.emit(info),
                    Err(f) => state.dispatch(Action::Notice(Some(group_error_text(&f)))),
                }
            });
        })
    };
    let on_more_members = {
        let sync = sync.clone();
        Callback::from(move |(g, after): (GroupId, String)| sync.members(g, after))
    };
    let on_left = {
        let state = state.clone();
        Callback::from(move |g: GroupId| state.dispatch(Action::LeftGroup(g)))
    };
    let on_members = {
        let state = state.clone();
        Callback::from(move |open: bool| state.dispatch(Action::ShowMembers(open)))
    };
    let on_screen = {
        let state = state.clone();
        Callback::from(move |s: Screen| state.dispatch(Action::Show(s)))
    };
    let on_cancel = {
        let state = state.clone();
        Callback::from(move |()| {
            state.dispatch(Action::Show(Screen::Chat));
            state.dispatch(Action::ShowSidebar(true));
        })
    };
    let on_dismiss = {
        let state = state.clone();
        Callback::from(move |()| state.dispatch(Action::Notice(None)))
    };
    let on_logout = sign_out.reform(|()| true);
    let on_retry_now = {
        let conn = conn.clone();
        Callback::from(move |()| {
            if let Some(c) = conn.borrow().as_ref() {
                c.retry_now();
            }
        })
    };
    let on_desk = {
        let conn = conn.clone();
        Callback::from(move |f: ClientFrame| {
            if let Some(c) = conn.borrow().as_ref() {
                c.send(&f);
            }
        })
    };
    let on_back = {
        let state = state.clone();
        Callback::from(move |()| state.dispatch(Action::ShowSidebar(true)))
    };

    let now = now_ms();
    let tz = tz_offset(now);
    let me = session.user_id;
    let presence = state.presence.clone();
    let active = state.chat.active_conversation().cloned();
    let shell = classes!(
        "shell",
        state.sidebar_open.then_some("sidebar-open"),
        active.is_some().then_some("has-active")
    );
    let main = match state.screen {
        Screen::NewGroup => html! {
            <NewGroup token={session.token.clone()} {on_created} on_cancel={on_cancel.clone()} />
        },
        Screen::FindGroups => {
            // Groups we are in (not those we were removed from: those can
            // be joined again).
            let mine: Vec<GroupId> = state
                .chat
                .conversations
                .values()
                .filter_map(|c| match c.key {
                    ConvKey::Group(g) if !c.read_only() => Some(g),
                    _ => None,
                })
                .collect();
            html! {
                <GroupDirectory query={state.group_query.clone()} results={state.group_results.clone()}
                    {mine} on_query={on_group_query} {on_join} on_open={on_open.clone()}
                    on_cancel={on_cancel.clone()} />
            }
        }
        Screen::Desk => match state.desk.clone() {
            Some(board) => html! {
                <DeskView {board} {me} {now} on_frame={on_desk} on_open={on_open.clone()}
                    on_cancel={on_cancel.clone()} />
            },
            None => html! { <div class="welcome"><p>{"Loading the desk…"}</p></div> },
        },
        Screen::Chat => match active {
            Some(c) => html! {
                <ConversationView typing={state.chat.typing_in(c.key)} conversation={c} {me}
                    token={session.token.clone()} presence={presence.clone()}
                    members_open={state.members_open} {now} {tz} {on_send} {on_typing} {on_retry}
                    {on_load_older} {on_back} {on_members} on_group_info={on_group(false)} {on_left}
                    {on_more_members} />
            },
            None => html! {
                <div class="welcome">
                    <span class="logo" aria-hidden="true">{"◆"}</span>
                    <h2>{ format!("Hi, {}", session.username) }</h2>
                    <p>{"Pick a conversation, someone who is online, or search for a username to start chatting. Groups: start one, or find a public one to join."}</p>
                </div>
            },
        },
    };
    html! {
        <div class={shell}>
            <ConnBanner status={state.conn} {on_retry_now} />
            if let Some(text) = state.notice.clone() {
                <NoticeBar {text} on_dismiss={on_dismiss} />
            }
            <Sidebar me={session.username.clone()} conversations={state.chat.sorted_conversations()}
                active={state.chat.active} online={state.presence.online_users()} {presence}
                typing={state.chat.typing.clone()}
                search_query={state.search_query.clone()} search_results={state.search_results.clone()}
                desk_queued={state.desk.as_ref().map(|b| b.queued)}
                {now} {tz} {on_open} {on_open_user} {on_search} {on_screen} {on_logout} />
            <main class="main">{ main }</main>
        </div>
    }
}
