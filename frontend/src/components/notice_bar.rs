//! A one-line notice (left a group, an operation failed) with a dismiss
//! button.

use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// The text.
    pub text: AttrValue,
    /// Dismissed.
    pub on_dismiss: Callback<()>,
}

/// `[data-testid=notice]`.
#[function_component(NoticeBar)]
pub fn notice_bar(props: &Props) -> Html {
    let dismiss = props.on_dismiss.reform(|_: MouseEvent| ());
    html! {
        <div class="notice" data-testid="notice" role="status">
            <span>{ props.text.clone() }</span>
            <button type="button" class="link" onclick={dismiss} aria-label="Dismiss">{"✕"}</button>
        </div>
    }
}
