//! The `desk` scenario against a real relay process on an SQLite file (the
//! agents are granted through the running relay's admin socket): 20
//! visitors over 2 s, 2 agents of capacity 2. Everyone must be served,
//! every message must reach the other side once, and the report must carry
//! the waits and the queue series.

#![cfg(unix)]

use services::RelayProcess;
use std::process::Command;

#[test]
fn a_small_desk_run_serves_every_visitor_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("loadgen-desk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("desk.db").display());
    let bin = services::relay::test_binary();
    let mut args = vec![
        "--db".to_string(),
        db.clone(),
        "--visitor-limit".into(),
        "off".into(),
        "--visitor-message-limit".into(),
        "off".into(),
    ];
    args.extend(services::relay::load_test_args());
    let mut relay =
        RelayProcess::spawn(&bin, &args, &dir.join("relay.log")).expect("the relay starts");
    let pid = relay.pid().expect("the relay runs").to_string();
    let url = relay.url();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        // The same relay twice: the multi-node paths against one process.
        .args(["--url", &format!("{url},{url}"), "--relay-pid", &pid])
        .args(["--json", "--quiet", "desk"])
        .args(["--visitors", "20", "--arrival", "2s", "--agents", "2"])
        .args([
            "--capacity",
            "2",
            "--messages",
            "3",
            "--reply-delay",
            "20ms",
        ])
        .args(["--serve-deadline", "30s", "--relay-bin"])
        .arg(&bin)
        .args(["--db", &db])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed ({}): {stdout}\n{}\nrelay log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        relay.log_tail(30)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["scenario"], "desk");
    let r = &report["results"];
    let n =
        |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    for k in ["visitorsStarted", "visitorsAssigned", "visitorsServed"] {
        assert_eq!(n(r, k), 20, "{k}: {r}");
    }
    assert_eq!(n(r, "agentsReady"), 2, "{r}");
    assert_eq!(n(r, "closesSent"), 20, "{r}");
    for dir in ["visitorToAgent", "agentToVisitor"] {
        let f = &r[dir];
        assert_eq!((n(f, "sent"), n(f, "acked")), (60, 60), "{dir}: {f}");
        assert_eq!(n(f, "delivered"), 60, "{dir}: {f}");
    }
    assert_eq!((n(r, "lost"), n(r, "duplicates")), (0, 0), "{r}");
    let waits = &r["timeToAssignment"];
    assert_eq!(n(waits, "count"), 20, "{waits}");
    assert!(waits["p99Ms"].as_f64().unwrap() >= waits["p50Ms"].as_f64().unwrap());
    // 4 seats for 20 visitors at 10/s, each held ≥ 60 ms: some wait.
    assert!(!r["queue"].as_array().unwrap().is_empty(), "{r}");
    assert!(n(r, "boards") > 0, "{r}");
    assert!(r["relayCpuPct"].as_f64().is_some(), "{r}");
    relay.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
