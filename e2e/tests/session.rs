//! ferrochat end to end, sessions and connection: signing in with bad
//! credentials, a reload keeping the session, and both clients recovering
//! by themselves from a relay restart. Real headless Chromium, a real
//! relay serving the release SPA, a real SQLite file.
//!
//! Run with `cargo xtask test`, or after `cargo xtask dist`:
//! `FERROCHAT_DIST=$PWD/dist cargo test -p e2e -- --test-threads=1`.
//! Failures leave a screenshot and the page text per browser in
//! `e2e-artifacts/`.

mod common;

use common::*;

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
            alice.send_read_by(&alice_name, &bob, after).await;
            let answer = "Loud and clear";
            bob.send_read_by(&bob_name, &alice, answer).await;

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
