//! End-to-end runs of the scenarios against the in-process mock relay
//! (`mock/`), over real loopback sockets. They check that the generator's
//! plumbing works and, with injected faults, that it catches what it claims
//! to catch.

mod mock;

use clap::Parser;
use loadgen::report::ScenarioReport;
use loadgen::{make_ctx, run, Cli};
use mock::Faults;
use serde_json::Value;

async fn run_against(faults: Faults, args: &[&str]) -> (Value, Vec<String>, String) {
    let addr = mock::start(faults).await;
    let url = format!("http://{addr}");
    let mut argv = vec!["loadgen", "--quiet", "--url", url.as_str()];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let ctx = make_ctx(cli.common).unwrap();
    let report: Box<dyn ScenarioReport> = run(&ctx, cli.scenario).await.unwrap();
    (report.results(), report.failures(), report.human())
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

const QUICK_CHAT: &[&str] = &[
    "chat",
    "--pairs",
    "4",
    "--window",
    "8",
    "--warmup",
    "300ms",
    "--duration",
    "1s",
    "--drain",
    "3s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_chat_against_a_correct_relay_passes() {
    let (r, failures, human) = run_against(Faults::default(), QUICK_CHAT).await;
    assert!(failures.is_empty(), "{failures:?}\n{human}");
    assert!(n(&r, "delivered") > 100, "{r}");
    assert_eq!(n(&r, "delivered"), n(&r, "sent"));
    assert_eq!(n(&r, "stored"), n(&r, "sent"));
    for k in [
        "lost",
        "duplicates",
        "redeliveries",
        "outOfOrder",
        "unanswered",
        "misrouted",
        "idMismatch",
    ] {
        assert_eq!(n(&r, k), 0, "{k}: {r}");
    }
    assert!(n(&r["latency"], "count") > 0, "{r}");
    assert!(n(&r["latency"], "p99Us") >= n(&r["latency"], "p50Us"));
    assert!(n(&r["respLatency"], "count") > 0, "{r}");
    assert!(r["deliveredRate"].as_f64().unwrap() > 0.0);
    // Every delivery was acked, so every sender got its receipt.
    assert_eq!(n(&r, "receipts"), n(&r, "delivered"));
    assert_eq!(n(&r, "ackResps"), n(&r, "delivered"));
    assert_eq!(n(&r, "acksSent"), n(&r, "delivered"));
    assert_eq!(n(&r, "refused"), 0);
    assert!(r["sendLag"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_chat_keeps_its_schedule() {
    let mut args = QUICK_CHAT.to_vec();
    args.extend_from_slice(&["--rate", "400"]);
    let (r, failures, human) = run_against(Faults::default(), &args).await;
    assert!(failures.is_empty(), "{failures:?}\n{human}");
    // 400/s over 1.3 s on four senders, each every 10 ms.
    // Every message due before the end is sent: 130 per sender.
    assert_eq!(n(&r, "sent"), 520, "{r}");
    // Sent during the measured second (a loaded machine may push a few out).
    let rate = r["sendRate"].as_f64().unwrap();
    assert!((330.0..=420.0).contains(&rate), "{r}");
    assert_eq!(r["offeredRate"].as_f64(), Some(400.0));
    assert!(n(&r["sendLag"], "count") > 0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_duplicated_messages_fail_the_run() {
    let faults = Faults {
        duplicate_every: 7,
        drop_every: 11,
        ..Default::default()
    };
    let (r, failures, _) = run_against(faults, QUICK_CHAT).await;
    let (sent, lost, dups) = (n(&r, "sent"), n(&r, "lost"), n(&r, "duplicates"));
    // The mock counts chats across all senders, so exactly every 11th and
    // every 7th message overall is faulty.
    assert_eq!(lost, sent / 11, "{r}");
    assert_eq!(dups, sent / 7 - sent / 77, "{r}");
    assert!(failures.iter().any(|f| f.contains("lost")), "{failures:?}");
    assert!(
        failures.iter().any(|f| f.contains("duplicate")),
        "{failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_and_refusals_are_counted_but_pass() {
    let faults = Faults {
        redeliver_every: 5,
        refuse_every: 13,
        ..Default::default()
    };
    let (r, failures, human) = run_against(faults, QUICK_CHAT).await;
    assert!(failures.is_empty(), "{failures:?}\n{human}");
    let sent = n(&r, "sent");
    let refused = r["errors"]["rate_limited"].as_u64().unwrap();
    assert_eq!(refused, sent / 13, "{r}");
    // Refusals free window slots: nothing stays unanswered.
    assert_eq!(n(&r, "unanswered"), 0, "{r}");
    assert_eq!(n(&r, "stored"), sent - refused);
    assert!(n(&r, "redeliveries") > 0, "{r}");
    assert_eq!(n(&r, "delivered"), sent - refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reconnects_after_a_kill_and_loses_nothing() {
    // The 300th chat is stored but never answered nor pushed, and every
    // socket is dropped: senders must resend what has no 81 under the same
    // clientMsgId, recipients get what they had not acked at their next
    // LOGIN. Two "nodes" on the one mock, cross placement.
    let faults = Faults {
        kill_at: 300,
        ..Default::default()
    };
    let addr = mock::start(faults).await;
    let url = format!("http://{addr},http://{addr}");
    let mut argv = vec!["loadgen", "--quiet", "--url", url.as_str()];
    argv.extend_from_slice(QUICK_CHAT);
    argv.extend_from_slice(&[
        "--rate",
        "800",
        "--placement",
        "cross",
        "--reconnect",
        "--reconnect-deadline",
        "10s",
    ]);
    let cli = Cli::try_parse_from(argv).unwrap();
    let ctx = make_ctx(cli.common).unwrap();
    let report = run(&ctx, cli.scenario).await.unwrap();
    let (r, failures) = (report.results(), report.failures());
    assert!(failures.is_empty(), "{failures:?}\n{}", report.human());
    assert_eq!(n(&r, "sent"), 1040, "{r}");
    assert_eq!((n(&r, "stored"), n(&r, "delivered")), (1040, 1040), "{r}");
    for k in [
        "lost",
        "duplicates",
        "outOfOrder",
        "unanswered",
        "idMismatch",
    ] {
        assert_eq!(n(&r, k), 0, "{k}: {r}");
    }
    // 4 senders and 4 recipients lost their socket and came back.
    assert_eq!((n(&r, "socketsLost"), n(&r, "reconnected")), (8, 8), "{r}");
    assert_eq!(n(&r, "reconnectGaveUp") + n(&r, "reconnectUnfinished"), 0);
    assert_eq!(n(&r["reconnectTime"], "count"), 8);
    assert!(r["recoverySecs"].as_f64().unwrap() < 10.0, "{r}");
    // At least the killed chat was resent (and answered with its first
    // msgId: no duplicate above).
    assert!(n(&r, "resent") >= 1, "{r}");
    assert_eq!(n(&r, "rawDuplicates"), n(&r, "redeliveries"));
    assert_eq!(n(&r, "crossPairs"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnect_a_kill_ends_the_sessions() {
    let faults = Faults {
        kill_at: 300,
        ..Default::default()
    };
    let mut args = QUICK_CHAT.to_vec();
    *args.last_mut().unwrap() = "1s"; // --drain
    args.extend_from_slice(&["--rate", "800"]);
    let (r, failures, human) = run_against(faults, &args).await;
    assert_eq!((n(&r, "socketsLost"), n(&r, "reconnected")), (8, 0), "{r}");
    // The killed chat was stored but never answered: unanswered, not lost;
    // nothing is sent after the kill.
    assert!(n(&r, "sent") < 400, "{r}");
    assert!(n(&r, "unanswered") >= 1, "{r}");
    assert!(
        r["problems"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("sender")),
        "{r}"
    );
    assert!(
        !failures.iter().any(|f| f.contains("reconnect")),
        "{failures:?}\n{human}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_heartbeat_and_are_measured() {
    let pid = std::process::id().to_string();
    let args = [
        "--relay-pid",
        pid.as_str(),
        "--source-ips",
        "2",
        "idle",
        "--connections",
        "30",
        "--tabs",
        "7",
        "--ping-interval",
        "200ms",
        "--hold",
        "1s",
    ];
    let (r, failures, human) = run_against(Faults::default(), &args).await;
    assert!(failures.is_empty(), "{failures:?}\n{human}");
    assert_eq!(n(&r, "established"), 30);
    assert_eq!(n(&r, "users"), 5);
    assert_eq!(n(&r, "sourceIps"), 2);
    // 30 sockets × 1 s / 200 ms ≈ 150 pings, all answered.
    let expected = n(&r, "pongsExpected");
    assert!((120..=180).contains(&expected), "{r}");
    assert_eq!(n(&r, "pongsReceived"), expected);
    assert_eq!(n(&r["pongLatency"], "count"), expected);
    assert_eq!(n(&r, "closedCleanly"), 30);
    assert!(n(&r, "relayRssBaselineKib") > 0);
    assert!(r["relayRssPerConnKib"].is_number(), "{r}");
    assert!(r["relayCpuPct"].is_number(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_fanout_spread_sessions_over_several_relays() {
    // Three "relays", all the same mock (two mocks would not share their
    // accounts): the sessions go round robin over the list.
    let a = mock::start(Faults::default()).await;
    let url = format!("http://{a},http://{a},http://{a}");
    let pid = std::process::id().to_string();
    let run_with = |args: Vec<&str>| {
        let mut argv = vec!["loadgen", "--quiet", "--url", url.as_str()];
        argv.extend(args);
        Cli::try_parse_from(argv).unwrap()
    };
    let cli = run_with(vec![
        "--relay-pid",
        &pid,
        "idle",
        "--connections",
        "7",
        "--tabs",
        "7",
        "--ping-interval",
        "200ms",
        "--hold",
        "300ms",
    ]);
    let ctx = make_ctx(cli.common).unwrap();
    let r = run(&ctx, cli.scenario).await.unwrap().results();
    assert_eq!(n(&r, "established"), 7, "{r}");
    assert_eq!(r["establishedPerNode"], serde_json::json!([3, 2, 2]));
    assert_eq!(r["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(
        r["relayProcesses"][0]["pid"].as_u64(),
        Some(std::process::id() as u64)
    );
    let mut args = vec!["fanout"];
    args.extend_from_slice(&QUICK_FANOUT[1..]);
    let cli = run_with(args);
    let ctx = make_ctx(cli.common).unwrap();
    let report = run(&ctx, cli.scenario).await.unwrap();
    let r = report.results();
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_eq!(r["membersPerNode"], serde_json::json!([2, 2, 2]), "{r}");
    assert_eq!((n(&r, "expected"), n(&r, "delivered")), (24, 24));
    assert!(report.human().contains("members per relay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_relay_is_an_error_not_a_report() {
    // Port 1 on loopback: nothing listens there.
    let cli = Cli::try_parse_from([
        "loadgen",
        "--quiet",
        "--url",
        "http://127.0.0.1:1",
        "idle",
        "--connections",
        "2",
    ])
    .unwrap();
    let ctx = make_ctx(cli.common).unwrap();
    let started = std::time::Instant::now();
    assert!(run(&ctx, cli.scenario).await.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_file_is_written_once_and_reused() {
    let (addr, state) = mock::start_counting(Faults::default()).await;
    let url = format!("http://{addr}");
    let file = std::env::temp_dir().join(format!("loadgen-accounts-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let path = file.to_str().unwrap();
    let chat = |pairs: &'static str| {
        vec![
            "loadgen",
            "--quiet",
            "--url",
            url.as_str(),
            "--accounts",
            path,
            "chat",
            "--pairs",
            pairs,
            "--warmup",
            "0s",
            "--duration",
            "300ms",
            "--drain",
            "2s",
        ]
    };
    for round in 0..2 {
        let cli = Cli::try_parse_from(chat("3")).unwrap();
        let ctx = make_ctx(cli.common).unwrap();
        let report = run(&ctx, cli.scenario).await.unwrap();
        assert!(
            report.failures().is_empty(),
            "round {round}: {:?}",
            report.failures()
        );
        assert_eq!(mock::registrations(&state), 6, "round {round}");
    }
    let saved: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved.len(), 6);
    assert!(saved[0]["token"].is_string());
    // A run that needs more accounts than the file holds is refused.
    let cli = Cli::try_parse_from(chat("4")).unwrap();
    let ctx = make_ctx(cli.common).unwrap();
    let err = run(&ctx, cli.scenario)
        .await
        .err()
        .expect("too few accounts accepted");
    assert!(err.to_string().contains("holds 6 accounts"), "{err}");
    let _ = std::fs::remove_file(&file);
}

const QUICK_FANOUT: &[&str] = &[
    "fanout",
    "--members",
    "6",
    "--messages",
    "4",
    "--interval",
    "20ms",
    "--drain",
    "3s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_against_a_correct_relay_reaches_every_member() {
    let pid = std::process::id().to_string();
    let mut args = vec!["--relay-pid", pid.as_str()];
    args.extend_from_slice(QUICK_FANOUT);
    let (r, failures, human) = run_against(Faults::default(), &args).await;
    assert!(failures.is_empty(), "{failures:?}\n{human}");
    assert_eq!(n(&r, "groupMembers"), 7, "{r}");
    assert_eq!(n(&r, "joins"), 6, "{r}");
    assert_eq!(n(&r, "membersConnected"), 6);
    assert_eq!((n(&r, "sent"), n(&r, "stored")), (4, 4));
    assert_eq!((n(&r, "expected"), n(&r, "delivered")), (24, 24), "{r}");
    for k in [
        "lost",
        "duplicates",
        "redeliveries",
        "outOfOrder",
        "misrouted",
        "idMismatch",
        "unanswered",
    ] {
        assert_eq!(n(&r, k), 0, "{k}: {r}");
    }
    assert_eq!(n(&r["latency"], "count"), 24);
    assert!(n(&r["latency"], "maxUs") >= n(&r["latency"], "p50Us"));
    assert_eq!(n(&r["lastMember"], "count"), 4);
    assert_eq!(n(&r["respLatency"], "count"), 4);
    let per = r["perMessage"].as_array().unwrap();
    assert_eq!(per.len(), 4);
    for (i, m) in per.iter().enumerate() {
        assert_eq!(n(m, "seq"), i as u64 + 1);
        assert_eq!((n(m, "reached"), n(m, "expected")), (6, 6), "{m}");
        assert_eq!(m["status"], "stored");
    }
    // The presence and group-event frames every socket (6 members and the
    // sender) got at login were ignored, not counted as problems.
    assert_eq!(n(&r, "notices"), 14, "{r}");
    assert!(r["problems"].as_object().unwrap().is_empty(), "{r}");
    assert_eq!(n(&r, "ackResps"), 24);
    assert!(n(&r, "relayRssConnectedKib") > 0);
    assert!(human.contains("6/6"), "{human}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_counts_lost_duplicated_and_redelivered_pushes() {
    let faults = Faults {
        drop_every: 7,
        duplicate_every: 5,
        redeliver_every: 3,
        ..Default::default()
    };
    let mut args = QUICK_FANOUT.to_vec();
    *args.last_mut().unwrap() = "500ms";
    let (r, failures, human) = run_against(faults, &args).await;
    // 24 pushes (6 members × 4 messages), faults counted over pushes:
    // dropped 7, 14, 21; duplicated 5, 10, 15, 20; redelivered the other
    // multiples of 3 (21 was dropped).
    assert_eq!(n(&r, "lost"), 3, "{r}\n{human}");
    assert_eq!(n(&r, "delivered"), 21);
    assert_eq!(n(&r, "duplicates"), 4, "{r}");
    assert_eq!(n(&r, "redeliveries"), 7, "{r}");
    let reached: u64 = r["perMessage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| n(m, "reached"))
        .sum();
    assert_eq!(reached, 21);
    assert!(failures.iter().any(|f| f.contains("lost")), "{failures:?}");
    assert!(
        failures.iter().any(|f| f.contains("duplicate")),
        "{failures:?}"
    );
    assert!(!failures.iter().any(|f| f.contains("redeliver")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_refused_messages_fail_the_run() {
    let faults = Faults {
        refuse_every: 2,
        ..Default::default()
    };
    let (r, failures, _) = run_against(faults, QUICK_FANOUT).await;
    assert_eq!((n(&r, "stored"), n(&r, "refused")), (2, 2), "{r}");
    assert_eq!(
        (n(&r, "expected"), n(&r, "delivered"), n(&r, "lost")),
        (12, 12, 0)
    );
    assert_eq!(r["perMessage"][1]["status"], "refused");
    assert!(
        failures.iter().any(|f| f.contains("refused")),
        "{failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reruns_reuse_accounts_and_group() {
    let (addr, state) = mock::start_counting(Faults::default()).await;
    let url = format!("http://{addr}");
    let file = std::env::temp_dir().join(format!("loadgen-fanout-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let path = file.to_str().unwrap();
    let mut group: Option<u64> = None;
    for round in 0..2 {
        let mut argv = vec![
            "loadgen".to_string(),
            "--quiet".into(),
            "--url".into(),
            url.clone(),
            "--accounts".into(),
            path.into(),
            "fanout".into(),
            "--members".into(),
            "3".into(),
            "--messages".into(),
            "2".into(),
            "--interval".into(),
            "10ms".into(),
        ];
        if let Some(g) = &group {
            argv.extend(["--group".to_string(), g.to_string()]);
        }
        let cli = Cli::try_parse_from(argv).unwrap();
        let ctx = make_ctx(cli.common).unwrap();
        let report = run(&ctx, cli.scenario).await.unwrap();
        assert!(
            report.failures().is_empty(),
            "round {round}: {:?}",
            report.failures()
        );
        let r = report.results();
        assert_eq!(mock::registrations(&state), 4, "round {round}");
        assert_eq!(n(&r, "groupMembers"), 4);
        assert_eq!(n(&r, "joins"), if round == 0 { 3 } else { 0 }, "{r}");
        assert_eq!(n(&r, "delivered"), 6);
        group = Some(n(&r, "groupId"));
    }
    let _ = std::fs::remove_file(&file);
}
