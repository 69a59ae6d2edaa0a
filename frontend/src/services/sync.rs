//! Loads from the HTTP API that feed the reducer: the conversation list,
//! history pages, group details and further pages of members. Each runs in the background and ends
//! in an [`Action`]; a 401 ends the session.

use crate::model::{ConvKey, HISTORY_PAGE};
use crate::services::{http, now_ms};
use crate::state::Action;
use shared::limits::MEMBER_PAGE;
use shared::GroupId;
use yew::platform::spawn_local;
use yew::Callback;

/// Where results go.
#[derive(Clone, PartialEq)]
pub struct Sync {
    /// The session token.
    pub token: String,
    /// The reducer.
    pub dispatch: Callback<Action>,
    /// Called on a 401: the session is over.
    pub unauthorized: Callback<()>,
}

impl Sync {
    fn failed(&self, e: &http::ApiFailure) {
        if e.is_unauthorized() {
            self.unauthorized.emit(());
        }
    }

    /// `GET /api/conversations` → [`Action::Conversations`].
    pub fn conversations(&self) {
        let s = self.clone();
        spawn_local(async move {
            match http::conversations(&s.token).await {
                Ok(list) => s.dispatch.emit(Action::Conversations(list)),
                Err(e) => s.failed(&e),
            }
        });
    }

    /// One history page → [`Action::History`] (`before` = `None`: the
    /// latest).
    pub fn history(&self, key: ConvKey, before: Option<u64>) {
        let s = self.clone();
        s.dispatch
            .emit(Action::HistoryLoading { key, loading: true });
        spawn_local(async move {
            match http::history(&s.token, key, before, HISTORY_PAGE).await {
                Ok(page) => s.dispatch.emit(Action::History { key, before, page }),
                Err(e) => {
                    s.dispatch.emit(Action::HistoryLoading {
                        key,
                        loading: false,
                    });
                    s.failed(&e);
                }
            }
        });
    }

    /// The page of members after `after` → [`Action::MemberPage`].
    pub fn members(&self, id: GroupId, after: String) {
        let s = self.clone();
        s.dispatch.emit(Action::MembersLoading {
            group: id,
            loading: true,
        });
        spawn_local(async move {
            match http::members(&s.token, id, &after, MEMBER_PAGE).await {
                Ok(page) => s.dispatch.emit(Action::MemberPage {
                    group: id,
                    after,
                    page,
                }),
                Err(e) => {
                    s.dispatch.emit(Action::MembersLoading {
                        group: id,
                        loading: false,
                    });
                    s.failed(&e);
                }
            }
        });
    }

    /// `GET /api/groups/{id}` (the first page of members) →
    /// [`Action::Group`].
    pub fn group(&self, id: GroupId) {
        let s = self.clone();
        spawn_local(async move {
            match http::group(&s.token, id).await {
                Ok(info) => s.dispatch.emit(Action::Group {
                    info,
                    now: now_ms(),
                }),
                Err(e) => s.failed(&e),
            }
        });
    }
}
