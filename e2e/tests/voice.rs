//! ferrochat end to end, voice rooms: two people in two headless Chromium
//! browsers talk in a group's voice room. The speaker's microphone is
//! Chromium's fake capture device playing a speech file made at test time
//! with espeak-ng; the listener's page must really decode and play it.
//! The app imports the voice module (`frontend-voice`) after login, as in
//! production.
//!
//! Once on one relay, once across two relays of a cluster. Saves
//! `e2e-artifacts/voice-room.png` and `voice-room-cluster.png` (the
//! listener's view) on every run.

mod common;

use common::*;
use serde_json::Value;

/// Chromium flags: a fake microphone (speech from `wav`, or the built-in
/// beep without one), no permission prompt, audio that may start without a
/// gesture.
fn fake_mic(wav: Option<&std::path::Path>) -> Vec<String> {
    let mut flags = vec![
        "--use-fake-ui-for-media-stream".to_string(),
        "--use-fake-device-for-media-stream".into(),
        "--autoplay-policy=no-user-gesture-required".into(),
    ];
    if let Some(wav) = wav {
        flags.push(format!(
            "--use-file-for-fake-audio-capture={}",
            wav.display()
        ));
    }
    flags
}

/// A few seconds of speech (Chromium loops the file).
fn speech(dir: &std::path::Path) -> std::path::PathBuf {
    let wav = dir.join("speech.wav");
    let status = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg("Hello everyone, this is the voice room test. Can you hear me clearly?")
        .status()
        .expect("espeak-ng runs (cargo xtask test installs it)");
    assert!(status.success(), "espeak-ng failed");
    wav
}

/// The panel's counters and participants, as the page shows them.
async fn panel(b: &Browser) -> Result<Value, String> {
    b.js(
        r#"const v = document.querySelector('#voice-slot .voice');
           if (!v) return null;
           return {
             title: v.querySelector('.voice-title')?.textContent,
             people: [...v.querySelectorAll('li[data-user]')].map(li => ({
               name: li.querySelector('.voice-name').textContent,
               speaking: li.classList.contains('speaking'),
             })),
             received: +(v.dataset.received || 0),
             decoded: +(v.dataset.decoded || 0),
             played: +(v.dataset.played || 0),
             sent: +(v.dataset.sent || 0),
             heard: +(v.dataset.heardLevel || 0),
             error: v.querySelector('.voice-error')?.textContent || null,
           };"#,
        vec![],
    )
    .await
}

/// Waits until the panel's participants are exactly `names`.
async fn wait_people(b: &Browser, names: &[&str]) {
    let want: Vec<&str> = names.to_vec();
    wait_until(
        &format!("{}: voice participants {want:?}", b.label),
        WAIT,
        || async {
            let p = panel(b).await?;
            let mut got: Vec<String> = p["people"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            if got == want {
                Ok(())
            } else {
                Err(p.to_string())
            }
        },
    )
    .await
}

/// alice (speech on her fake microphone) starts a call in a group; bob,
/// before joining, sees that a call is going on and who is in it, and so
/// does carol, added to the group after the call started; bob joins;
/// his page decodes and plays alice's audio (frames decoded, analyser level
/// above silence) and marks her as speaking; alice mutes and bob sees it;
/// when he leaves, alice sees him go; when alice closes her browser, the
/// call ends in bob's view.
async fn a_call(
    env: &Env,
    (alice_name, alice): (String, Browser),
    (bob_name, bob): (String, Browser),
    shot: &str,
) {
    let group = "Standup";
    alice.create_group(group, false).await;
    alice.add_member(&bob_name).await;
    bob.wait_for(&conv_group(group)).await;
    bob.open_group(group).await;

    // No call yet; alice starts one.
    alice.click("#voice-slot [data-action=\"join\"]").await;
    wait_people(&alice, &[&alice_name]).await;
    // bob is not in it, but sees it and who is there.
    wait_people(&bob, &[&alice_name]).await;
    bob.wait_text("#voice-slot .voice-title", WAIT, "a call of one", |t| {
        t == "Call: 1 person"
    })
    .await;
    // carol joins the group after the call started (she was told of no
    // change): opening the group, her page asks and shows the call.
    let (carol_name, carol) = env.signed_up("carol").await;
    alice.add_member(&carol_name).await;
    carol.wait_for(&conv_group(group)).await;
    carol.open_group(group).await;
    wait_people(&carol, &[&alice_name]).await;
    env.close_browser(carol).await;

    bob.click("#voice-slot [data-action=\"join\"]").await;
    wait_people(&bob, &[&alice_name, &bob_name]).await;
    wait_people(&alice, &[&alice_name, &bob_name]).await;

    // bob's page decodes alice's Opus frames and plays them: 100 frames is
    // two seconds of speech; the analyser after the decoder hears more
    // than silence; alice shows as speaking.
    let heard = wait_until("bob decodes and plays alice's audio", WAIT, || async {
        let p = panel(&bob).await?;
        let ok = p["decoded"].as_u64() >= Some(100)
            && p["played"].as_u64() >= Some(50)
            && p["heard"].as_f64() > Some(0.01);
        if ok {
            Ok(p)
        } else {
            Err(p.to_string())
        }
    })
    .await;
    eprintln!("voice: bob's panel {heard}");
    let alice_sent = panel(&alice).await.unwrap();
    assert!(alice_sent["sent"].as_u64() >= Some(100), "{alice_sent}");
    wait_until("bob sees alice speaking", WAIT, || async {
        let p = panel(&bob).await?;
        let speaking = p["people"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["name"] == alice_name.as_str() && x["speaking"] == true)
        });
        if speaking {
            Ok(())
        } else {
            Err(p.to_string())
        }
    })
    .await;
    bob.save_screenshot(shot).await;

    // Mute: bob sees alice muted.
    alice.click("#voice-slot [data-action=\"mute\"]").await;
    bob.wait_for("#voice-slot li .voice-muted").await;

    bob.click("#voice-slot [data-action=\"leave\"]").await;
    wait_people(&alice, &[&alice_name]).await;
    // Closing alice's browser ends the call in bob's view.
    env.close_browser(alice).await;
    wait_people(&bob, &[]).await;
}

/// [`a_call`] on one relay. Saves `e2e-artifacts/voice-room.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_is_heard_in_another_browser() {
    run("a_speaker_is_heard_in_another_browser", |env| async move {
        let dir = tempfile::tempdir().unwrap();
        let wav = speech(dir.path());
        let alice = env.signed_up_with("alice", &fake_mic(Some(&wav))).await;
        let bob = env.signed_up_with("bob", &fake_mic(None)).await;
        a_call(&env, alice, bob, "voice-room.png").await;
    })
    .await;
}

/// [`a_call`] with alice and bob on two relays of a cluster (behind
/// nginx): the room and the audio cross through Redis. Saves
/// `e2e-artifacts/voice-room-cluster.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_is_heard_across_two_relays() {
    run_cluster(
        "a_speaker_is_heard_across_two_relays",
        2,
        |env| async move {
            let dir = tempfile::tempdir().unwrap();
            let wav = speech(dir.path());
            let alice = env.signed_up_with("alice", &fake_mic(Some(&wav))).await;
            let alice_node = env.node_of_only_user().await;
            let bob = env.signed_up_with("bob", &fake_mic(None)).await;
            env.until_apart(alice_node, &bob.1).await;
            a_call(&env, alice, bob, "voice-room-cluster.png").await;
        },
    )
    .await;
}
