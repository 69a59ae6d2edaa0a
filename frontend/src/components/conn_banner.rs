//! The connection banner: shown only while the socket is not logged in.

use crate::state::ConnStatus;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The socket state.
    pub status: ConnStatus,
    /// "Retry now" was pressed.
    pub on_retry_now: Callback<()>,
}

/// `[data-testid=conn-banner]`, absent while online.
#[function_component(ConnBanner)]
pub fn conn_banner(props: &Props) -> Html {
    match props.status.banner() {
        None => html! {},
        Some(text) => {
            let lost = matches!(props.status, ConnStatus::Reconnecting { .. });
            let retry = props.on_retry_now.reform(|_: MouseEvent| ());
            html! {
                <div class={classes!("conn-banner", lost.then_some("warn"))}
                    data-testid="conn-banner" role="status" aria-live="polite">
                    <span class="spinner" aria-hidden="true"></span>
                    <span>{ text }</span>
                    if lost {
                        <button type="button" class="link" onclick={retry}>{"Retry now"}</button>
                    }
                </div>
            }
        }
    }
}
