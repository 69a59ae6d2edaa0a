//! "alice is typing…" under the messages.

use crate::format::typing_text;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct Props {
    /// Who types, in order.
    pub names: Vec<String>,
}

/// A fixed-height slot (nothing jumps) holding `[data-testid=typing]`
/// while someone types.
#[function_component(TypingIndicator)]
pub fn typing_indicator(props: &Props) -> Html {
    html! {
        <div class="typing-slot" aria-live="polite">
            if let Some(text) = typing_text(&props.names) {
                <span class="typing" data-testid="typing">
                    <span class="typing-dots" aria-hidden="true"><i></i><i></i><i></i></span>
                    { text }
                </span>
            }
        </div>
    }
}
