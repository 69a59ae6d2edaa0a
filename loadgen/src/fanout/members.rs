//! The group's members on the generator's side: one logged-in socket each,
//! served by the shared [`recipient`](crate::recipient) as soon as it has
//! logged in, and the live count of members each message has reached,
//! which tells the sender when the next message may leave.

use super::{FanoutArgs, SENDER};
use crate::client::{Account, Targets};
use crate::recipient::{run_recipient, ProgressSink, RecvOut, RecvSpec};
use crate::report::{self, fmt_tally, Tally};
use crate::track::SendLog;
use crate::Ctx;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Live counters the members report into and the sender watches.
pub(super) struct Progress {
    /// Members that got message k (index k−1) at least once, counted as
    /// each first arrival is read, before its ACK leaves.
    reached: Vec<AtomicU64>,
    /// 91s received by members.
    ack_resps: AtomicU64,
}

impl Progress {
    pub fn new(messages: usize) -> Progress {
        Progress {
            reached: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            ack_resps: AtomicU64::new(0),
        }
    }

    /// Members that message `seq` has reached so far.
    pub fn reached(&self, seq: u64) -> u64 {
        self.counter(seq).map_or(0, |c| c.load(Relaxed))
    }

    /// First arrivals so far, all messages.
    fn first_arrivals(&self) -> u64 {
        self.reached.iter().map(|c| c.load(Relaxed)).sum()
    }

    fn counter(&self, seq: u64) -> Option<&AtomicU64> {
        self.reached.get(usize::try_from(seq.checked_sub(1)?).ok()?)
    }
}

impl ProgressSink for Progress {
    fn ack_resps(&self, n: u64) {
        self.ack_resps.fetch_add(n, Relaxed);
    }
    fn arrived(&self, seq: u64) {
        if let Some(c) = self.counter(seq) {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// Whether sending may move on from a message: it was refused, or it was
/// stored and reached `members` members. (Pure, so it is tested.)
pub(super) fn settled(answer: Option<bool>, reached: u64, members: u64) -> bool {
    match answer {
        None => false,
        Some(false) => true,
        Some(true) => reached >= members,
    }
}

/// Whether the final drain is over: every message sent is settled, and
/// the ACK of every first arrival has been answered. First arrivals are
/// counted before their ACK is sent, so a 91 still on its way is waited
/// for. (Pure but for the counters' reads, so it is tested.)
pub(super) fn drained(sent: &SendLog, progress: &Progress, members: u64) -> bool {
    (1..=sent.sent()).all(|q| settled(sent.answer(q), progress.reached(q), members))
        && progress.ack_resps.load(Relaxed) >= progress.first_arrivals()
}

/// The members' sockets, each served by its own recipient task.
pub(super) struct Members {
    /// One task per connected member.
    pub tasks: Vec<JoinHandle<RecvOut>>,
    /// Members that could not connect, by reason.
    pub failures: Tally,
    /// Members connected, per relay.
    pub per_node: Vec<u64>,
    /// How long connecting took, seconds.
    pub secs: f64,
}

/// Opens and logs in a socket for accounts 1..=`--members`, round robin
/// over the relays (member i on node i − 1; `--connect-concurrency` at a
/// time) and starts a recipient on each as soon as it is in, so the first
/// ones heartbeat while the rest connect.
pub(super) async fn connect(
    ctx: &Ctx,
    targets: &Targets,
    accounts: &[Account],
    args: &FanoutArgs,
    spec: &RecvSpec,
    progress: &Arc<Progress>,
    stop: &watch::Receiver<bool>,
) -> Members {
    let log = &ctx.log;
    log.say(format_args!(
        "opening {} member sessions ({} at a time)",
        args.members, args.connect_concurrency
    ));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.members);
    let mut failures = Tally::new();
    let mut per_node = vec![0; targets.len()];
    let mut opening = futures_util::stream::iter(1..=args.members)
        .map(|i| {
            let token = accounts[i].token.clone();
            let node = (i - 1) % targets.len();
            let target = targets.node(node);
            async move { (node, target.open_session(i, &token).await) }
        })
        .buffer_unordered(args.connect_concurrency.max(1));
    let mut last_log = Instant::now();
    while let Some((node, r)) = opening.next().await {
        if r.is_ok() {
            per_node[node] += 1;
        }
        match r {
            Ok((ws, _)) => tasks.push(tokio::spawn(run_recipient(
                ws,
                SENDER,
                args.messages,
                spec.clone(),
                Some(progress.clone() as Arc<dyn ProgressSink>),
                stop.clone(),
                None,
            ))),
            Err(e) => report::tally(&mut failures, &e.to_string(), 1),
        }
        if last_log.elapsed() >= Duration::from_secs(2) {
            last_log = Instant::now();
            log.say(format_args!(
                "{} members connected, {} failed",
                tasks.len(),
                failures.values().sum::<u64>()
            ));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    log.say(format_args!(
        "{} members connected in {secs:.1} s; failures: {}",
        tasks.len(),
        fmt_tally(&failures)
    ));
    Members {
        tasks,
        failures,
        per_node,
        secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sending_moves_on_when_a_message_is_refused_or_reached_everyone() {
        assert!(!settled(None, 10, 10));
        assert!(settled(Some(false), 0, 10));
        assert!(!settled(Some(true), 9, 10));
        assert!(settled(Some(true), 10, 10));
        assert!(settled(Some(true), 11, 10));
    }

    #[test]
    fn the_final_drain_waits_for_every_first_arrivals_91() {
        let mut sent = SendLog::default();
        sent.on_sent(1);
        sent.on_stored(1, 7);
        let p = Progress::new(2);
        // Both members have message 1, but only one 91 is back: a member
        // reports its delivery only after flushing the ACK, so counting
        // deliveries would let the drain end here.
        p.arrived(1);
        assert!(!drained(&sent, &p, 2), "one member still lacks message 1");
        p.arrived(1);
        p.ack_resps(1);
        assert!(!drained(&sent, &p, 2), "a 91 is still on its way");
        p.ack_resps(1);
        assert!(drained(&sent, &p, 2));
        // A message awaiting its 81 holds the drain too.
        sent.on_sent(2);
        assert!(!drained(&sent, &p, 2));
        sent.on_refused(2);
        assert!(drained(&sent, &p, 2));
    }

    #[test]
    fn progress_counts_first_arrivals_per_message() {
        let p = Progress::new(3);
        p.arrived(1);
        p.arrived(3);
        p.arrived(3);
        p.arrived(0); // not a message number
        p.arrived(4); // beyond the run
        assert_eq!(
            (
                p.reached(0),
                p.reached(1),
                p.reached(2),
                p.reached(3),
                p.reached(4)
            ),
            (0, 1, 0, 2, 0)
        );
        assert_eq!(p.first_arrivals(), 3);
    }
}
