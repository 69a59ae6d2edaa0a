//! ferrochat end to end, one-to-one chat: two users talking both ways with
//! delivery and read receipts, messages kept for an offline user, and a
//! long history loaded page by page. Real headless Chromium (one WebDriver
//! session per user), a real relay serving the release SPA, a real SQLite
//! file.
//!
//! Run with `cargo xtask test`, or after `cargo xtask dist`:
//! `FERROCHAT_DIST=$PWD/dist cargo test -p e2e -- --test-threads=1`.
//! Failures leave a screenshot and the page text per browser in
//! `e2e-artifacts/`; the chat screenshots are written there on every run.

mod common;

use common::*;
use std::time::Duration;

/// Two users in two browsers sign up and talk both ways: each sees the
/// other's messages as theirs, the sender sees "delivered" and, once the
/// peer has the conversation open, "read". Also saves the
/// chat screenshots (`e2e-artifacts/chat.png`, `chat-mobile.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_sign_up_and_chat_both_ways() {
    run("two_users_sign_up_and_chat_both_ways", |env| async move {
        let (alice_name, alice) = env.signed_up("alice").await;
        let (bob_name, bob) = env.signed_up("bob").await;

        alice.open_chat_via_search(&bob_name).await;
        let hello = "Hi Bob! Lunch at the café at 12:30?";
        let mine = alice.send(hello).await;
        assert_eq!(mine.sender, alice_name);
        // Their first message makes them contacts: each is told the other
        // is online (a PRESENCE frame; nothing is polled), and alice shows
        // in bob's online list.
        bob.wait_for_within(
            &format!("[data-testid=\"online-user\"][data-user=\"{alice_name}\"]"),
            Duration::from_secs(10),
        )
        .await;

        // Bob has no conversation open: the message shows up as unread,
        // delivered (his page acked it) but not read.
        bob.wait_unread(&alice_name, 1).await;
        let delivered = alice.wait_state(hello, "delivered").await;
        assert!(
            delivered.msg_id.is_some(),
            "a delivered message has its msgId"
        );
        bob.click(&conv_item(&alice_name)).await;
        bob.wait_received(hello, &alice_name).await;
        // On his screen now: read.
        alice.wait_state(hello, "read").await;

        let reply = "Sure — 12:30 works. See you there.";
        bob.send_read_by(&bob_name, &alice, reply).await;

        let last = "Great, I'll book a table for two.";
        alice.send_read_by(&alice_name, &bob, last).await;

        // Both sides show the same conversation, in the same order, once.
        let expect = [
            (hello, &alice_name),
            (reply, &bob_name),
            (last, &alice_name),
        ];
        for (who, b) in [(&alice_name, &alice), (&bob_name, &bob)] {
            let seen: Vec<(String, String, bool)> = b
                .messages()
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.body, m.sender, m.mine))
                .collect();
            let want: Vec<(String, String, bool)> = expect
                .iter()
                .map(|(body, from)| (body.to_string(), from.to_string(), *from == who))
                .collect();
            assert_eq!(seen, want, "{who}'s conversation");
        }

        // Bob's view: alice is in his online list, and he has both kinds of
        // messages.
        let path = bob.save_screenshot("chat.png").await;
        eprintln!("e2e: chat screenshot at {}", path.display());

        // Phones: one pane; with a conversation open, it is the conversation.
        bob.set_viewport(360, 740).await;
        let what = "bob at 360 px: only the conversation pane";
        wait_until(what, WAIT, || {
            let bob = &bob;
            async move {
                let me = bob.find(&tid("me")).await.ok_or("no me")?;
                let composer = bob.find(&tid("composer")).await.ok_or("no composer")?;
                let me_shown = me.is_displayed().await.map_err(|e| e.to_string())?;
                let composer_shown = composer.is_displayed().await.map_err(|e| e.to_string())?;
                if !me_shown && composer_shown {
                    Ok(())
                } else {
                    Err(format!(
                        "sidebar displayed: {me_shown}, composer displayed: {composer_shown}"
                    ))
                }
            }
        })
        .await;
        bob.save_screenshot("chat-mobile.png").await;
    })
    .await;
}

/// Messages sent while the recipient's browser is closed wait on the relay:
/// in a new browser (new profile, so a fresh login through the form) the
/// recipient gets all of them, in order, once each (her unread count comes
/// from the server); the sender then sees them read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_offline_arrive_in_order_once() {
    run(
        "messages_sent_while_offline_arrive_in_order_once",
        |env| async move {
            let (alice_name, alice) = env.signed_up("alice").await;
            let (bob_name, bob) = env.signed_up("bob").await;

            // A conversation that existed before alice left.
            bob.open_chat_via_search(&alice_name).await;
            let before = "Are you around?";
            bob.send(before).await;
            bob.wait_state(before, "delivered").await;

            env.close_browser(alice).await;

            let texts = [
                "First, while you were away",
                "Second: the build is green",
                "Third and last: call me back",
            ];
            for t in texts {
                bob.send(t).await;
            }
            for t in texts {
                // Stored by the relay (81), but nobody could have acked it.
                bob.wait_state(t, "sent").await;
            }

            let alice = env.browser("alice-again").await;
            alice.open().await;
            // A new profile has no stored session: the sign-in form shows.
            alice.login(&alice_name).await;
            // The three, plus the first one: delivered but never read.
            alice.wait_unread(&bob_name, texts.len() as u32 + 1).await;
            alice.click(&conv_item(&bob_name)).await;
            for t in texts {
                alice.wait_received(t, &bob_name).await;
            }
            for t in texts {
                bob.wait_state(t, "read").await;
            }
            // After every receipt is in (so any re-push would have been seen
            // too): each is shown exactly once, in the order sent.
            let shown: Vec<String> = alice
                .messages()
                .await
                .unwrap()
                .into_iter()
                .filter(|m| texts.contains(&m.body.as_str()))
                .map(|m| {
                    assert!(!m.mine, "{m:?} is bob's");
                    m.body
                })
                .collect();
            assert_eq!(shown, texts, "alice sees the three once each, in order");
        },
    )
    .await;
}

/// What bob's page runs to write `n` messages to `to` from a second
/// socket of his (as another tab would): paced under the relay's rate
/// limit, resending with the same `clientMsgId` if one is refused anyway.
/// Calls back with how many were stored (81).
const BULK_SEND_JS: &str = r#"
const [to, n] = [arguments[0], arguments[1]];
const done = arguments[arguments.length - 1];
const token = JSON.parse(localStorage.getItem('ferrochat.session')).token;
const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws');
const stored = new Set();
const send = (i) => ws.send(JSON.stringify({type: '80', toId: to, clientMsgId: 'bulk-' + i,
  content: {contentType: 1, body: 'history ' + i}}));
ws.onopen = () => ws.send(JSON.stringify({type: '10', token}));
ws.onmessage = (e) => {
  const f = JSON.parse(e.data);
  if (f.type === '11') {
    let i = 0;
    const next = () => { if (++i <= n) { send(i); setTimeout(next, 15); } };
    next();
  } else if (f.type === '81') {
    stored.add(f.clientMsgId);
    if (stored.size === n) { ws.close(); done(n); }
  } else if (f.type === '0' && f.clientMsgId) {
    setTimeout(() => send(Number(f.clientMsgId.slice(5))), 200);
  }
};
setTimeout(() => done(stored.size), 25000);
"#;

/// Where the message `body` is, in pixels from the top of the list's
/// viewport (`null` when not shown). With a second argument `true`, first
/// scrolls the list to the top: in the same script, so the position is
/// read before the scroll event can have the page load anything.
const OFFSET_JS: &str = r#"
const list = document.querySelector('[data-testid="messages"]');
if (arguments[1] === true) list.scrollTop = 0;
const m = [...list.querySelectorAll('[data-testid="message"]')]
  .find(e => e.querySelector('.body').textContent === arguments[0]);
return m ? m.getBoundingClientRect().top - list.getBoundingClientRect().top : null;
"#;

/// A long conversation opens at its latest page (50); scrolling to the top
/// loads the older pages, and what was on screen does not move when they
/// are prepended; in the end every message is there once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_loads_older_pages_on_scroll_without_jumping() {
    run(
        "history_loads_older_pages_on_scroll_without_jumping",
        |env| async move {
            let (alice_name, alice) = env.signed_up("alice").await;
            let (bob_name, bob) = env.signed_up("bob").await;
            let alice_id = alice
                .js(
                    "return JSON.parse(localStorage.getItem('ferrochat.session')).userId;",
                    vec![],
                )
                .await
                .unwrap();

            const N: u64 = 120;
            let stored = bob
                .client
                .execute_async(BULK_SEND_JS, vec![alice_id, serde_json::json!(N)])
                .await
                .unwrap();
            assert_eq!(stored, serde_json::json!(N), "every message stored");
            // alice's page got (and acked) them all, without opening the
            // conversation; then she closes that browser.
            let badge = format!("{} {}", conv_item(&bob_name), tid("unread"));
            let unread_label = |b: &Browser| {
                let (b, badge) = (b.clone(), badge.clone());
                async move {
                    let v = b
                        .js(
                            "const e = document.querySelector(arguments[0]); return e && e.getAttribute('aria-label');",
                            vec![serde_json::json!(badge)],
                        )
                        .await?;
                    match v.as_str() {
                        Some(l) if l == format!("{N} unread") => Ok(()),
                        _ => Err(format!("badge label {v}")),
                    }
                }
            };
            wait_until("alice: 120 unread", WAIT, || unread_label(&alice)).await;
            env.close_browser(alice).await;

            // A new browser: nothing cached, everything from the server.
            let alice = env.browser("alice-again").await;
            alice.open().await;
            alice.login(&alice_name).await;
            wait_until("alice again: 120 unread", WAIT, || unread_label(&alice)).await;
            alice.click(&conv_item(&bob_name)).await;
            alice.wait_received(&format!("history {N}"), &bob_name).await;
            let count = || async { alice.messages().await.map(|m| m.len()) };
            // The conversation may first show the last message it already
            // knew, then its latest page from history: wait for that page.
            wait_until("alice: the latest page of 50", WAIT, || async {
                match count().await {
                    Ok(50) => Ok(()),
                    other => Err(format!("{other:?} messages shown")),
                }
            })
            .await;
            alice.wait_for(&tid("load-older")).await;
            assert_eq!(count().await.unwrap(), 50, "the latest page only");
            // Opening it read it all.
            alice
                .wait_gone(&format!("{} {}", conv_item(&bob_name), tid("unread")), WAIT)
                .await;

            // Scrolled to the top, the previous page is prepended and the
            // message that was at the top stays where it was.
            for (top, expect) in [("history 71", 100), ("history 21", 120)] {
                let at = alice
                    .js(OFFSET_JS, vec![serde_json::json!(top), serde_json::json!(true)])
                    .await
                    .unwrap();
                let at = at.as_f64().expect("the top message is shown");
                wait_until(&format!("{expect} messages after scrolling up"), WAIT, || async {
                    match count().await? {
                        n if n == expect => Ok(()),
                        n => Err(format!("{n} messages")),
                    }
                })
                .await;
                let now = alice.js(OFFSET_JS, vec![serde_json::json!(top)]).await.unwrap();
                let now = now.as_f64().expect("still shown");
                assert!(
                    (now - at).abs() <= 2.0,
                    "{top:?} moved from {at}px to {now}px when older messages were prepended"
                );
            }
            assert!(!alice.exists(&tid("load-older")).await.unwrap(), "start reached");
            let bodies: Vec<String> = alice
                .messages()
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.body)
                .collect();
            let want: Vec<String> = (1..=N).map(|i| format!("history {i}")).collect();
            assert_eq!(bodies, want, "all of them, once, in order");
        },
    )
    .await;
}
