//! Search boxes (users, public groups): debounced fetches whose answers are
//! tagged with the query they answer.

use crate::services::http;
use crate::state::{Action, State};
use gloo_timers::callback::Timeout;
use std::cell::RefCell;
use std::rc::Rc;
use yew::platform::spawn_local;
use yew::{Callback, UseReducerHandle};

/// Wait this long after the last keystroke before searching.
const SEARCH_DEBOUNCE_MS: u32 = 250;

/// A search box's callback: the query is recorded at once (the input stays
/// responsive), and `fetch` runs once typing pauses for
/// `SEARCH_DEBOUNCE_MS`; its answer is dispatched tagged with the query it
/// was for, so a late answer to an old query cannot overwrite a newer one.
/// An empty query cancels the pending fetch.
pub fn debounced_search<T, Fut>(
    state: UseReducerHandle<State>,
    timer: Rc<RefCell<Option<Timeout>>>,
    token: String,
    typed: fn(String) -> Action,
    fetch: fn(String, String) -> Fut,
    found: fn(String, T) -> Action,
) -> Callback<String>
where
    T: 'static,
    Fut: std::future::Future<Output = Result<T, http::ApiFailure>> + 'static,
{
    Callback::from(move |query: String| {
        state.dispatch(typed(query.clone()));
        let q = query.trim().to_string();
        if q.is_empty() {
            timer.borrow_mut().take();
            return;
        }
        let (state, token) = (state.clone(), token.clone());
        *timer.borrow_mut() = Some(Timeout::new(SEARCH_DEBOUNCE_MS, move || {
            spawn_local(async move {
                if let Ok(r) = fetch(token, q).await {
                    state.dispatch(found(query, r));
                }
            });
        }));
    })
}
