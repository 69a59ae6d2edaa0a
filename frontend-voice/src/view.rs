//! The voice panel, drawn into the app's `#voice-slot` element (the group
//! view renders it empty, with the group in `data-group`). Plain DOM: the
//! module stays small and independent of the app's yew version. Names are
//! set as text, never as HTML.
//!
//! Buttons carry `data-action` (`join`, `leave`, `mute`, `unmute`); the
//! engine listens for clicks on the slot. Level bars are updated in place
//! between redraws (`levels`), so a button is never replaced under the
//! pointer while the meters move.

use crate::level;
use crate::state::{Capability, Model, Phase};
use shared::{GroupId, UserId};
use web_sys::{Document, Element};

fn el(doc: &Document, tag: &str, class: &str) -> Element {
    let e = doc.create_element(tag).expect("create_element");
    if !class.is_empty() {
        e.set_class_name(class);
    }
    e
}

fn button(doc: &Document, action: &str, label: &str, class: &str) -> Element {
    let b = el(doc, "button", class);
    let _ = b.set_attribute("type", "button");
    let _ = b.set_attribute("data-action", action);
    b.set_text_content(Some(label));
    b
}

/// Redraws the panel for `group`.
pub fn draw(slot: &Element, group: GroupId, model: &Model) {
    let Some(doc) = slot.owner_document() else {
        return;
    };
    slot.set_text_content(None);
    let root = el(&doc, "section", "voice");
    let _ = root.set_attribute("aria-label", "Voice call");
    let people = model.participants(group);
    let mine = model.mine().filter(|(g, _)| *g == group).map(|(_, p)| p);

    let head = el(&doc, "div", "voice-head");
    let title = el(&doc, "span", "voice-title");
    title.set_text_content(Some(&match (people.len(), mine) {
        (_, Some(Phase::Joining)) => "Joining the call…".to_string(),
        (0, _) => "No call going on".to_string(),
        (1, _) => "Call: 1 person".to_string(),
        (n, _) => format!("Call: {n} people"),
    }));
    let _ = head.append_child(&title);
    let actions = el(&doc, "span", "voice-actions");
    match mine {
        Some(Phase::In) => {
            if model.capability() == Capability::Talk {
                let b = if model.muted() {
                    button(&doc, "unmute", "Unmute", "secondary")
                } else {
                    button(&doc, "mute", "Mute", "secondary")
                };
                let _ = actions.append_child(&b);
            }
            let _ = actions.append_child(&button(&doc, "leave", "Leave", "ghost voice-leave"));
        }
        Some(Phase::Joining) => {}
        None if model.capability() != Capability::None && model.online() => {
            let label = if people.is_empty() {
                "Start call"
            } else {
                "Join call"
            };
            let _ = actions.append_child(&button(&doc, "join", label, "primary"));
        }
        None => {}
    }
    let _ = head.append_child(&actions);
    let _ = root.append_child(&head);

    if !people.is_empty() {
        let list = el(&doc, "ul", "voice-people");
        for p in people {
            let li = el(&doc, "li", "");
            let _ = li.set_attribute("data-user", &p.user_id.0.to_string());
            let name = el(&doc, "span", "voice-name");
            name.set_text_content(Some(&p.username));
            let _ = li.append_child(&name);
            if p.muted {
                let m = el(&doc, "span", "voice-muted");
                m.set_text_content(Some("muted"));
                let _ = li.append_child(&m);
            }
            let bar = el(&doc, "span", "voice-bar");
            let _ = bar.set_attribute("aria-hidden", "true");
            let _ = bar.append_child(&el(&doc, "i", ""));
            let _ = li.append_child(&bar);
            let _ = list.append_child(&li);
        }
        let _ = root.append_child(&list);
    }
    if let Some(e) = model.error() {
        let p = el(&doc, "p", "voice-error");
        let _ = p.set_attribute("role", "alert");
        p.set_text_content(Some(e));
        let _ = root.append_child(&p);
    }
    let _ = slot.append_child(&root);
}

/// What the meters show, and the listener's counters (as `data-*` on the
/// panel: the browser test reads them).
pub struct Meters<'a> {
    /// Each participant's level (by user; a user with two tabs shows once).
    pub levels: &'a [(UserId, f32)],
    /// Frames received, decoded and scheduled; frames sent.
    pub received: u32,
    pub decoded: u32,
    pub played: u32,
    pub sent: u32,
    /// The loudest level heard from others.
    pub heard: f32,
}

/// Updates the level bars and "speaking" marks in place.
pub fn levels(slot: &Element, m: &Meters<'_>) {
    let Ok(Some(root)) = slot.query_selector(".voice") else {
        return;
    };
    for (k, v) in [
        ("data-received", m.received.to_string()),
        ("data-decoded", m.decoded.to_string()),
        ("data-played", m.played.to_string()),
        ("data-sent", m.sent.to_string()),
        ("data-heard-level", format!("{:.4}", m.heard)),
    ] {
        let _ = root.set_attribute(k, &v);
    }
    for &(user, lvl) in m.levels {
        let sel = format!("li[data-user=\"{}\"]", user.0);
        let Ok(Some(li)) = root.query_selector(&sel) else {
            continue;
        };
        let speaking = lvl > level::SPEAKING;
        let _ = li.class_list().toggle_with_force("speaking", speaking);
        if let Ok(Some(bar)) = li.query_selector(".voice-bar i") {
            let _ = bar.set_attribute("style", &format!("width:{}%", level::percent(lvl)));
        }
    }
}
