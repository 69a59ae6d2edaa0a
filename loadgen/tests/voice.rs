//! The `voice` scenario against a real relay process (the `services`
//! crate starts it on a free port, on an in-memory database): two rooms of
//! five participants, two speakers each, for two seconds, with a small chat
//! load alongside. Every frame must reach every other participant of its
//! room, once, and the report must carry latencies and the chat figures.

#![cfg(unix)]

use services::RelayProcess;
use std::process::Command;

#[test]
fn a_small_voice_run_delivers_every_frame_to_every_listener() {
    let dir = std::env::temp_dir().join(format!("loadgen-voice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = vec!["--db".to_string(), "sqlite::memory:".into()];
    args.extend(services::relay::load_test_args());
    let mut relay = RelayProcess::spawn(
        &services::relay::test_binary(),
        &args,
        &dir.join("relay.log"),
    )
    .expect("the relay starts");
    let pid = relay.pid().expect("the relay runs").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--url",
            &relay.url(),
            "--relay-pid",
            &pid,
            "--json",
            "--quiet",
        ])
        .args([
            "voice",
            "--rooms",
            "2",
            "--participants",
            "5",
            "--speakers",
            "2",
        ])
        .args(["--warmup", "500ms", "--duration", "2s", "--drain", "5s"])
        .args(["--chat-pairs", "2", "--chat-rate", "50", "--max-loss", "0"])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["scenario"], "voice");
    let r = &report["results"];
    let n =
        |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    // 2.5 s at 20 ms: 125 frames per speaker, 4 speakers, 4 listeners each.
    assert_eq!(n(r, "participantsJoined"), 10, "{r}");
    assert_eq!(n(r, "framesSent"), 4 * 125, "{r}");
    assert_eq!(n(r, "expected"), 4 * 125 * 4, "{r}");
    assert_eq!(n(r, "received"), n(r, "expected"), "{r}");
    for k in ["lost", "duplicates", "outOfOrder", "stray", "socketsLost"] {
        assert_eq!(n(r, k), 0, "{k}: {r}");
    }
    let latency = &r["latency"];
    // Frames due in the measured 2 s: 100 per speaker, each heard 4 times.
    assert_eq!(n(latency, "count"), 4 * 100 * 4, "{r}");
    assert!(n(latency, "p50Us") > 0 && n(latency, "p99Us") >= n(latency, "p50Us"));
    assert!(r["relayCpuPct"].as_f64().is_some(), "{r}");
    // The relay's own counters agree.
    let m = &r["relayAudio"];
    assert_eq!(n(m, "framesIn"), n(r, "framesSent"), "{m}");
    assert_eq!(n(m, "framesOut"), n(r, "expected"), "{m}");
    assert_eq!((n(m, "dropped"), n(m, "refused")), (0, 0), "{m}");
    let chat = &r["chat"];
    assert_eq!(n(chat, "lost"), 0, "{chat}");
    assert_eq!(n(chat, "delivered"), n(chat, "sent"), "{chat}");
    assert!(n(&chat["latency"], "count") > 0, "{chat}");
    relay.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
