//! ferrochat end to end, groups: a private group's live chat, catch-up and
//! "read by n" receipts across three browsers, and a public group found by
//! name, joined, renamed, left. Real headless Chromium, a real relay
//! serving the release SPA, a real SQLite file.
//!
//! Run with `cargo xtask test`, or after `cargo xtask dist`:
//! `FERROCHAT_DIST=$PWD/dist cargo test -p e2e -- --test-threads=1`.
//! Failures leave a screenshot and the page text per browser in
//! `e2e-artifacts/`; the group chat screenshots are written there on every
//! run.

mod common;

use common::*;

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

            alice.join_public_group("open h", group).await;
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
            alice.join_public_group("open", renamed).await;
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
