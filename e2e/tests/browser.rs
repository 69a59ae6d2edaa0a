//! ferrochat end to end: real headless Chromium (one WebDriver session per
//! user), a real relay serving the release SPA, a real SQLite file.
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
        // Bob signed in after alice was online: she is in his online list
        // (polled every 10 s, and once at sign-in).
        bob.wait_for_within(
            &format!("[data-testid=\"online-user\"][data-user=\"{alice_name}\"]"),
            Duration::from_secs(25),
        )
        .await;

        alice.open_chat_via_search(&bob_name).await;
        let hello = "Hi Bob! Lunch at the café at 12:30?";
        let mine = alice.send(hello).await;
        assert_eq!(mine.sender, alice_name);

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
        bob.send(reply).await;
        alice.wait_received(reply, &bob_name).await;
        bob.wait_state(reply, "read").await;

        let last = "Great, I'll book a table for two.";
        alice.send(last).await;
        bob.wait_received(last, &alice_name).await;
        alice.wait_state(last, "read").await;

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

/// A reload keeps the session: same user, no sign-in form, and the socket
/// logs in again with the stored token (a message still arrives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_session() {
    run("reload_keeps_the_session", |env| async move {
        let (alice_name, alice) = env.signed_up("alice").await;
        let (bob_name, bob) = env.signed_up("bob").await;

        // A marker in the old page proves we later look at a new one.
        alice
            .js("window.__e2eBeforeReload = true; return null;", vec![])
            .await
            .unwrap();
        alice.reload().await;
        alice.expect_signed_in(&alice_name).await;
        let marker = alice
            .js("return window.__e2eBeforeReload === true;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, serde_json::json!(false), "the page was reloaded");
        assert!(
            !alice.exists("#username").await.unwrap(),
            "no sign-in form after a reload"
        );
        alice.wait_connected(WAIT).await;

        // The restored session is live: a new message reaches alice.
        bob.wait_connected(WAIT).await;
        bob.open_chat_via_search(&alice_name).await;
        let text = "Still there after the reload?";
        bob.send(text).await;
        alice.click(&conv_item(&bob_name)).await;
        alice.wait_received(text, &bob_name).await;
        bob.wait_state(text, "read").await;
        alice.expect_signed_in(&alice_name).await;
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

/// The relay restarts (graceful stop, same port, same database) while both
/// users are signed in: both UIs say "reconnecting…", recover by themselves,
/// a message written during the outage goes out once, and new ones are
/// delivered (and read: both have the conversation open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_recover_from_a_relay_restart() {
    run(
        "both_clients_recover_from_a_relay_restart",
        |env| async move {
            let (alice_name, alice) = env.signed_up("alice").await;
            let (bob_name, bob) = env.signed_up("bob").await;
            alice.open_chat_via_search(&bob_name).await;
            let before = "Before the restart";
            alice.send(before).await;
            bob.click(&conv_item(&alice_name)).await;
            bob.wait_received(before, &alice_name).await;
            alice.wait_state(before, "read").await;

            env.stop_relay().await;
            let banner = alice.wait_reconnecting().await;
            bob.wait_reconnecting().await;
            eprintln!("e2e: banner while the relay is down: {banner:?}");

            // Written while disconnected: it waits instead of failing.
            let during = "Written during the outage";
            alice.send(during).await;
            let m = alice.wait_message(during, true, None, WAIT).await;
            assert_eq!(m.state, "sending", "{m:?}");

            env.start_relay().await;
            alice.wait_connected(RECONNECT_WAIT).await;
            bob.wait_connected(RECONNECT_WAIT).await;

            // The queued message went out after the re-login, exactly once.
            bob.wait_received(during, &alice_name).await;
            alice.wait_state(during, "read").await;

            let after = "After the restart";
            alice.send(after).await;
            bob.wait_received(after, &alice_name).await;
            alice.wait_state(after, "read").await;
            let answer = "Loud and clear";
            bob.send(answer).await;
            alice.wait_received(answer, &bob_name).await;
            bob.wait_state(answer, "read").await;

            let bodies: Vec<String> = bob
                .messages()
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.body)
                .collect();
            assert_eq!(
                bodies,
                [before, during, after, answer],
                "bob's conversation"
            );
        },
    )
    .await;
}

/// Wrong password, unknown user and a taken username each show an error on
/// the sign-in screen and sign nobody in; the right password then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_show_an_error() {
    run("bad_credentials_show_an_error", |env| async move {
        let carol_name = env.username("carol");
        let b = env.browser("carol").await;
        b.open().await;
        b.register(&carol_name).await;
        b.click(&tid("logout")).await;
        b.wait_sign_in_form().await;

        let unknown = env.username("nobody");
        let taken_upper = carol_name.to_uppercase();
        let cases = [
            (
                carol_name.as_str(),
                "not-the-password",
                "login",
                "wrong username or password",
            ),
            (
                unknown.as_str(),
                PASSWORD,
                "login",
                "wrong username or password",
            ),
            (carol_name.as_str(), PASSWORD, "register", "taken"),
            // Usernames are unique regardless of case.
            (taken_upper.as_str(), PASSWORD, "register", "taken"),
        ];
        for (user, password, button, expect) in cases {
            // A fresh page each time: an error left from the previous case
            // cannot be mistaken for this one's.
            b.open().await;
            b.wait_sign_in_form().await;
            assert!(
                !b.exists(&tid("auth-error")).await.unwrap(),
                "no error before submitting"
            );
            b.submit_credentials(user, password, button).await;
            let text = b
                .wait_text(
                    &tid("auth-error"),
                    WAIT,
                    &format!("containing {expect:?} ({button} as {user})"),
                    |t| t.to_lowercase().contains(expect),
                )
                .await;
            eprintln!("e2e: {button} as {user}: {text:?}");
            assert!(
                b.wait_for(&tid("auth-error"))
                    .await
                    .is_displayed()
                    .await
                    .unwrap(),
                "the error is visible"
            );
            assert!(!b.exists(&tid("me")).await.unwrap(), "nobody is signed in");
            let stored = b
                .js("return localStorage.getItem('ferrochat.session');", vec![])
                .await
                .unwrap();
            assert!(stored.is_null(), "no session stored: {stored}");
        }

        // The form itself works: the right password signs carol in.
        b.open().await;
        b.login(&carol_name).await;
    })
    .await;
}

/// Three users in three browsers. alice creates a group and adds bob and
/// carol; carol closes her browser; alice and bob talk in the group both
/// ways (with sender names, typing indicator, "read by 1"); carol comes
/// back in a new browser and catches up from the server: the group with
/// the right unread count, every message once, in order, with senders; her
/// reading makes alice's messages "read by 2". Then a one-to-one message is
/// shown "read" once the peer opens it. Saves `e2e-artifacts/group-chat.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chat_catch_up_and_read_receipts() {
    run("group_chat_catch_up_and_read_receipts", |env| async move {
        let (alice_name, bob_name, carol_name) = (
            env.username("alice"),
            env.username("bob"),
            env.username("carol"),
        );
        let alice = env.browser("alice").await;
        let bob = env.browser("bob").await;
        let carol = env.browser("carol").await;
        for (b, name) in [
            (&alice, &alice_name),
            (&bob, &bob_name),
            (&carol, &carol_name),
        ] {
            b.open().await;
            b.register(name).await;
            b.wait_connected(WAIT).await;
        }

        let group = "Launch plan";
        alice.create_group(group, false).await;
        alice.add_member(&bob_name).await;
        alice.add_member(&carol_name).await;
        // The owner is marked; members of a small group are contacts, so
        // their dots are live.
        alice
            .wait_for(&format!("{} {}", member(&alice_name), tid("owner")))
            .await;
        for who in [&bob_name, &carol_name] {
            alice
                .wait_for(&format!("{}[data-online=\"true\"]", member(who)))
                .await;
        }
        // Both were told live (GROUP_EVENT): the group is in their list.
        bob.wait_for(&conv_group(group)).await;
        carol.wait_for(&conv_group(group)).await;

        env.close_browser(carol).await;
        // Presence: carol goes offline (after the relay's grace period).
        alice
            .wait_for(&format!("{}[data-online=\"false\"]", member(&carol_name)))
            .await;

        bob.open_group(group).await;
        // bob types: alice sees it.
        bob.fill(&tid("composer"), "Sounds").await;
        alice
            .wait_text(&tid("typing"), WAIT, &format!("naming {bob_name}"), |t| {
                t.contains(&bob_name) && t.contains("typing")
            })
            .await;

        let m1 = "Kick-off is Monday at 10:00";
        let m2 = "Great, I'll prepare the slides";
        let m3 = "Thanks! Carol, please review the budget";
        alice.send(m1).await;
        bob.wait_received(m1, &alice_name).await;
        bob.send(m2).await;
        alice.wait_received(m2, &bob_name).await;
        alice.send(m3).await;
        bob.wait_received(m3, &alice_name).await;
        // bob has the group on screen: he read both of alice's messages.
        alice.wait_read_by(m1, 1, "sent").await;
        alice.wait_read_by(m3, 1, "sent").await;
        // alice has it open too: bob's message is read by her.
        bob.wait_read_by(m2, 1, "sent").await;

        // carol, in a brand-new browser: everything from the server.
        let carol = env.browser("carol-again").await;
        carol.open().await;
        carol.login(&carol_name).await;
        carol.wait_group_unread(group, 3).await;
        carol.open_group(group).await;
        let want = [(m1, &alice_name), (m2, &bob_name), (m3, &alice_name)];
        for (body, from) in want {
            carol.wait_received(body, from).await;
        }
        let seen: Vec<(String, String)> = carol
            .messages()
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.body, m.sender))
            .collect();
        let expect: Vec<(String, String)> = want
            .iter()
            .map(|(b, f)| (b.to_string(), f.to_string()))
            .collect();
        assert_eq!(seen, expect, "carol sees each message once, in order");
        // Her reading reaches the senders: read by everyone else.
        alice.wait_read_by(m1, 2, "read").await;
        alice.wait_read_by(m3, 2, "read").await;
        bob.wait_read_by(m2, 2, "read").await;
        alice
            .wait_for(&format!("{}[data-online=\"true\"]", member(&carol_name)))
            .await;
        // Her other browsers' unread count would follow; this one is read.
        carol
            .wait_gone(&format!("{} {}", conv_group(group), tid("unread")), WAIT)
            .await;

        let path = alice.save_screenshot("group-chat.png").await;
        eprintln!("e2e: group chat screenshot at {}", path.display());

        // One-to-one: "read" once the peer has the conversation open.
        carol.open_chat_via_search(&alice_name).await;
        let dm = "Budget looks fine, one question about travel";
        carol.send(dm).await;
        carol.wait_state(dm, "delivered").await;
        alice.wait_unread(&carol_name, 1).await;
        alice.click(&conv_item(&carol_name)).await;
        alice.wait_received(dm, &carol_name).await;
        carol.wait_state(dm, "read").await;

        // Phones: one pane at a time; the member panel covers the chat.
        alice.set_viewport(360, 740).await;
        alice.click(".conv-head .back").await;
        alice.open_group(group).await;
        alice.click(&tid("members-toggle")).await;
        alice.wait_for(&member(&bob_name)).await;
        alice.save_screenshot("group-chat-mobile.png").await;
    })
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
/// viewport (`null` when not shown).
const OFFSET_JS: &str = r#"
const list = document.querySelector('[data-testid="messages"]');
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
            assert_eq!(count().await.unwrap(), 50, "the latest page only");
            alice.wait_for(&tid("load-older")).await;
            // Opening it read it all.
            alice
                .wait_gone(&format!("{} {}", conv_item(&bob_name), tid("unread")), WAIT)
                .await;

            // Scrolled to the top, the previous page is prepended and the
            // message that was at the top stays where it was.
            for (top, expect) in [("history 71", 100), ("history 21", 120)] {
                alice
                    .js(
                        "document.querySelector('[data-testid=\"messages\"]').scrollTop = 0; return null;",
                        vec![],
                    )
                    .await
                    .unwrap();
                let at = alice.js(OFFSET_JS, vec![serde_json::json!(top)]).await.unwrap();
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

/// Public groups: alice finds bob's group by name and joins; the owner's
/// rename reaches her live; when bob removes her the conversation turns
/// read-only with a notice; she joins again, then leaves, and it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_groups_join_rename_remove_and_leave() {
    run(
        "public_groups_join_rename_remove_and_leave",
        |env| async move {
            let (alice_name, alice) = env.signed_up("alice").await;
            let (_, bob) = env.signed_up("bob").await;

            let group = "Open house";
            bob.create_group(group, true).await;

            let join = |b: &Browser| {
                let b = b.clone();
                async move {
                    b.click(&tid("find-groups")).await;
                    b.fill("#group-search", "open h").await;
                    let result = format!("[data-testid=\"group-result\"][data-group=\"{group}\"]");
                    b.click(&format!("{result} {}", tid("join-group"))).await;
                    b.open_group(group).await;
                }
            };
            join(&alice).await;
            bob.wait_for(&member(&alice_name)).await;
            let hello = "Hi all, just joined";
            alice.send(hello).await;
            bob.wait_received(hello, &alice_name).await;

            // The owner renames: everyone sees the new name.
            let renamed = "Open house (weekly)";
            bob.fill("#group-rename", renamed).await;
            bob.click(&tid("rename-group")).await;
            alice.wait_for(&conv_group(renamed)).await;
            alice
                .wait_text(".conv-head .peer-name", WAIT, "the new name", |t| {
                    t == renamed
                })
                .await;

            // Removed by the owner: read-only, with a notice.
            bob.click(&format!("{} {}", member(&alice_name), tid("remove-member")))
                .await;
            bob.wait_gone(&member(&alice_name), WAIT).await;
            alice.wait_for(&tid("read-only")).await;
            alice
                .wait_text(&tid("notice"), WAIT, "saying she was removed", |t| {
                    t.contains("removed")
                })
                .await;
            assert!(!alice.exists(&tid("composer")).await.unwrap());
            // The history she had stays readable.
            alice.wait_message(hello, true, None, WAIT).await;

            // Public: she can join again; then she leaves for good.
            let join_again = |b: &Browser| {
                let b = b.clone();
                async move {
                    b.click(&tid("find-groups")).await;
                    b.fill("#group-search", "open").await;
                    let result =
                        format!("[data-testid=\"group-result\"][data-group=\"{renamed}\"]");
                    b.click(&format!("{result} {}", tid("join-group"))).await;
                    b.open_group(renamed).await;
                }
            };
            join_again(&alice).await;
            alice.wait_for(&tid("composer")).await;
            alice.click(&tid("members-toggle")).await;
            alice.click(&tid("leave-group")).await;
            alice.wait_gone(&conv_group(renamed), WAIT).await;
            alice
                .wait_text(&tid("notice"), WAIT, "saying she left", |t| {
                    t.contains("left")
                })
                .await;
            bob.wait_gone(&member(&alice_name), WAIT).await;
        },
    )
    .await;
}
