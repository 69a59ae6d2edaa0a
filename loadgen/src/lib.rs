//! ferrochat's load generator.
//!
//! It speaks the real protocol (`docs/protocol.md`) over real sockets, so what
//! it measures is what a browser fleet would cost the relay: TCP, the
//! WebSocket handshake, JSON frames, argon2 at registration, the database
//! commit behind every 81.
//!
//! Layout, one concern per module:
//! - [`client`]: the relays' addresses (`--url` may list several),
//!   account registration, logged-in sockets and the HTTP API (shared by
//!   every scenario);
//! - [`socket`]: a logged-in socket afterwards: reading a frame (and why a
//!   socket ended), PINGs, closing;
//! - [`wire`]: cheap frame parsing/writing for the hot path, and the
//!   `clientMsgId` tag that lets a recipient account for a message alone;
//! - [`track`]: delivery bookkeeping (lost, duplicate, out of order) and the
//!   run's clock;
//! - [`answers`]: what a sending socket hears back (81s, errors, receipts),
//!   for the chat and fan-out senders alike;
//! - [`recipient`]: the receiving side of chat and fan-out alike: reading
//!   pushes, acking, accounting for arrivals and latency, and the delivery
//!   figures both report;
//! - [`redial`]: surviving the loss of a socket (`chat --reconnect`):
//!   dialing the next relay, and the reconnection figures;
//! - [`report`]: the output forms and the report parts every scenario
//!   builds alike; [`latency`]: latency summaries; [`resources`]: CPU and
//!   memory over a phase of a run;
//! - [`sys`]: file-descriptor limits and `/proc` sampling;
//! - one directory per scenario, each split into its options, its tasks and
//!   its report: [`idle`] (many quiet connections: memory and heartbeat
//!   cost), [`chat`] (one-to-one throughput and latency) and [`fanout`] (one
//!   message to a group of thousands, all online) and [`voice`] (voice
//!   rooms: binary audio frames every 20 ms, with a chat load alongside)
//!   and [`desk`] (the support desk: visitors queueing for agents).
//!
//! Adding a scenario: write a module with a clap `Args` struct and
//! `async fn run(&Ctx, Args) -> Result<impl ScenarioReport, Error>`, add a
//! variant to [`Scenario`] and an arm to [`run`]. [`fanout`] shows the
//! reusable parts: [`client::accounts`], [`client::Api`] for the HTTP API,
//! [`client::Target::open_session`], [`wire::write_chat`] with a group
//! target, [`answers::Answers`] on the sending socket,
//! [`recipient::run_recipient`] for every receiving socket and
//! [`recipient::Deliveries`], [`resources::Phase`] and
//! [`report::Summary`]/[`report::Findings`] for the report.

pub mod answers;
pub mod chat;
pub mod client;
pub mod desk;
pub mod fanout;
pub mod idle;
pub mod latency;
pub mod recipient;
pub mod redial;
pub mod report;
pub mod resources;
pub mod socket;
pub mod sys;
pub mod track;
pub mod voice;
pub mod wire;

use clap::{Args, Parser, Subcommand};
use report::ScenarioReport;
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Errors that abort a run (as opposed to measured failures, which are part
/// of the report).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    version,
    about = "ferrochat load generator: drives a relay over real sockets and reports latency, throughput, memory and correctness"
)]
pub struct Cli {
    /// Options every scenario understands.
    #[command(flatten)]
    pub common: Common,
    /// What to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options shared by all scenarios (accepted before or after the scenario
/// name).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Common options")]
pub struct Common {
    /// The relay's base URL; the WebSocket endpoint is `ws://HOST:PORT/ws`.
    /// Several relays (a cluster's nodes, each addressed directly):
    /// comma-separated. Accounts are registered through the first; each
    /// scenario spreads its sessions over all of them (chat: see
    /// `--placement`).
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "LOADGEN_URL"
    )]
    pub url: String,
    /// Bind outgoing sockets round-robin to 127.0.0.1 ..= 127.0.0.K, for more
    /// connections than one address's ephemeral ports (~28k) allow.
    #[arg(long, global = true, default_value_t = 1)]
    pub source_ips: u8,
    /// The relay's process id, to report its memory (VmRSS) and CPU time;
    /// several relays: comma-separated (reported per process and summed).
    #[arg(long, global = true, value_delimiter = ',')]
    pub relay_pid: Vec<u32>,
    /// Print only the JSON result line on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress messages on stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Run id used in usernames (`lg<run>u<i>`); random by default so reruns
    /// against the same database do not collide. 1–12 letters or digits.
    #[arg(long, global = true)]
    pub run_id: Option<String>,
    /// Reuse accounts from this JSON file instead of registering; when the
    /// file does not exist, register and save them there. With a relay on a
    /// file database, register once, restart the relay, and measure with a
    /// relay that has never run argon2 (whose freed hashing memory would
    /// otherwise blur its memory figures).
    #[arg(long, global = true)]
    pub accounts: Option<std::path::PathBuf>,
    /// Registrations in flight (argon2 makes each one slow on the relay).
    #[arg(long, global = true, default_value_t = 16)]
    pub register_concurrency: usize,
    /// Tokio worker threads for the generator (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

/// The scenarios.
#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// Many idle, heartbeating connections: relay memory per connection,
    /// heartbeat CPU, PONG latency.
    Idle(idle::IdleArgs),
    /// Sender→recipient pairs exchanging messages: throughput, end-to-end
    /// latency, loss, duplicates and ordering.
    Chat(chat::ChatArgs),
    /// One sender posting to a group whose members are all online, one
    /// message at a time: per-member delivery latency, time until the last
    /// member, loss and duplicates.
    Fanout(fanout::FanoutArgs),
    /// Voice rooms: speakers sending audio frames every 20 ms to the other
    /// participants of their room; speaker→listener latency, lost frames,
    /// relay cost, with an optional chat load measured alongside.
    Voice(voice::VoiceArgs),
    /// The support desk: visitors arriving over a window, agents of a
    /// given capacity answering and closing; time to assignment, the queue
    /// over time, lost and duplicate messages both ways.
    Desk(desk::DeskArgs),
}

/// What a scenario gets from the framework.
pub struct Ctx {
    /// Shared options.
    pub common: Common,
    /// This run's id (usernames are `lg<run>u<i>`).
    pub run_id: String,
    /// Progress output.
    pub log: Log,
}

impl Ctx {
    /// The relays' memory and CPU now, summed over every `--relay-pid`,
    /// when it was given and every process is readable (a failure is
    /// reported once per call site, and the figure is left out rather than
    /// guessed).
    pub fn relay_sample(&self) -> Option<sys::ProcSample> {
        sys::ProcSample::sum(&self.relay_samples())
    }

    /// Each `--relay-pid`'s memory and CPU now, in the order given; `None`
    /// for a process that cannot be read (reported).
    pub fn relay_samples(&self) -> Vec<Option<sys::ProcSample>> {
        (self.common.relay_pid.iter())
            .map(|&pid| match sys::ProcSample::read(pid) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.log.say(format_args!("cannot read /proc/{pid}: {e}"));
                    None
                }
            })
            .collect()
    }
}

/// Progress messages on stderr, timestamped from the start of the run, so
/// stdout carries only results.
pub struct Log {
    quiet: bool,
    start: Instant,
}

impl Log {
    /// A logger; `quiet` silences it.
    pub fn new(quiet: bool) -> Self {
        Log {
            quiet,
            start: Instant::now(),
        }
    }

    /// Prints one progress line.
    pub fn say(&self, args: fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("[{:>7.1}s] {args}", self.start.elapsed().as_secs_f64());
        }
    }
}

pub use shared::parse_duration;

/// Six base-36 characters from the random bits of a UUIDv7.
pub fn random_run_id() -> String {
    let mut x = (uuid::Uuid::now_v7().as_u128() & ((1u128 << 62) - 1)) as u64;
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..6)
        .map(|_| {
            let d = digits[(x % 36) as usize] as char;
            x /= 36;
            d
        })
        .collect()
}

fn check_run_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 12 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("--run-id must be 1-12 letters or digits, got {id:?}").into());
    }
    Ok(())
}

/// Runs one scenario and returns its report (the caller prints it).
pub async fn run(ctx: &Ctx, scenario: Scenario) -> Result<Box<dyn ScenarioReport>, Error> {
    Ok(match scenario {
        Scenario::Idle(a) => Box::new(idle::run(ctx, a).await?),
        Scenario::Chat(a) => Box::new(chat::run(ctx, a).await?),
        Scenario::Fanout(a) => Box::new(fanout::run(ctx, a).await?),
        Scenario::Voice(a) => Box::new(voice::run(ctx, a).await?),
        Scenario::Desk(a) => Box::new(desk::run(ctx, a).await?),
    })
}

/// Builds the context for a run from the shared options.
pub fn make_ctx(common: Common) -> Result<Ctx, Error> {
    let run_id = match &common.run_id {
        Some(id) => {
            check_run_id(id)?;
            id.clone()
        }
        None => random_run_id(),
    };
    let log = Log::new(common.quiet);
    Ok(Ctx {
        common,
        run_id,
        log,
    })
}

/// The whole program: runtime, limits, the run, output, exit code
/// (0 pass, 1 the run measured failures, 2 the run could not be carried out).
pub fn main_with(cli: Cli) -> ExitCode {
    let ctx = match make_ctx(cli.common.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    match sys::raise_nofile_limit() {
        Ok(n) => ctx.log.say(format_args!("file descriptor limit: {n}")),
        Err(e) => ctx.log.say(format_args!(
            "could not raise the file descriptor limit: {e}"
        )),
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(t) = cli.common.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(run(&ctx, cli.scenario));
    // Leftover tasks (e.g. sockets stuck in close) must not delay the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => {
            let unix_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            if !ctx.common.json {
                print!("{}", report::human_text(&ctx.run_id, report.as_ref()));
            }
            println!(
                "{}",
                report::json_line(&ctx.run_id, unix_ms, report.as_ref())
            );
            if report.failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn run_ids() {
        let a = random_run_id();
        assert_eq!(a.len(), 6);
        assert!(check_run_id(&a).is_ok());
        assert!(check_run_id("bad id").is_err());
        assert!(check_run_id("").is_err());
        assert!(check_run_id("abcdefghijklm").is_err());
        shared::validate::username(&client::username("abcdefghijkl", 9_999_999)).unwrap();
    }

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "loadgen",
            "--url",
            "http://127.0.0.1:9",
            "chat",
            "--pairs",
            "3",
            "--rate",
            "100",
            "--duration",
            "2s",
            "--json",
        ])
        .unwrap();
        assert!(cli.common.json);
        assert_eq!(cli.common.url, "http://127.0.0.1:9");
        match cli.scenario {
            Scenario::Chat(c) => {
                assert_eq!(c.pairs, 3);
                assert_eq!(c.rate, 100.0);
                assert_eq!(c.duration, Duration::from_secs(2));
                assert_eq!(c.window, 64);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["loadgen", "idle", "--connections", "10", "--hold", "1s"])
            .unwrap();
        match cli.scenario {
            Scenario::Idle(i) => {
                assert_eq!((i.connections, i.tabs), (10, 50));
                assert_eq!(i.ping_interval, Duration::from_secs(10));
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["loadgen", "fanout", "--members", "10000"]).unwrap();
        match cli.scenario {
            Scenario::Fanout(f) => {
                assert_eq!((f.members, f.messages), (10_000, 20));
                assert_eq!(f.interval, Duration::from_secs(1));
                assert_eq!(f.group, None);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["loadgen", "fanout", "--tabs", "2"]).is_err());
        let cli =
            Cli::try_parse_from(["loadgen", "voice", "--rooms", "0", "--chat-pairs", "5"]).unwrap();
        match cli.scenario {
            Scenario::Voice(v) => {
                assert_eq!((v.rooms, v.participants, v.speakers), (0, 50, 2));
                assert_eq!((v.chat_pairs, v.frame_bytes, v.max_p99), (5, 100, None));
                assert_eq!(v.interval, Duration::from_millis(20));
                assert!(v.check().is_ok());
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["loadgen", "voice", "--max-p99", "50ms"]).unwrap();
        match cli.scenario {
            Scenario::Voice(v) => assert_eq!(v.max_p99, Some(Duration::from_millis(50))),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn several_relays_and_the_reconnect_options_parse() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--url",
            "http://127.0.0.1:9100,http://127.0.0.1:9101",
            "--relay-pid",
            "41,42",
            "chat",
            "--placement",
            "cross",
            "--reconnect",
            "--reconnect-deadline",
            "10s",
        ])
        .unwrap();
        assert_eq!(cli.common.relay_pid, [41, 42]);
        assert_eq!(
            client::split_urls(&cli.common.url).unwrap(),
            ["http://127.0.0.1:9100", "http://127.0.0.1:9101"]
        );
        match cli.scenario {
            Scenario::Chat(c) => {
                assert_eq!(c.placement, chat::Placement::Cross);
                assert!(c.reconnect);
                assert_eq!(c.reconnect_deadline, Duration::from_secs(10));
            }
            other => panic!("parsed as {other:?}"),
        }
        // The defaults: one relay, spread, no reconnection, one pid or none.
        let cli = Cli::try_parse_from(["loadgen", "--relay-pid", "7", "chat"]).unwrap();
        assert_eq!(cli.common.relay_pid, [7]);
        match cli.scenario {
            Scenario::Chat(c) => {
                assert_eq!(c.placement, chat::Placement::Spread);
                assert!(!c.reconnect);
                assert_eq!(c.reconnect_deadline, Duration::from_secs(30));
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["loadgen", "idle"]).unwrap();
        assert!(cli.common.relay_pid.is_empty());
        assert!(Cli::try_parse_from(["loadgen", "chat", "--placement", "diagonal"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "--relay-pid", "1,x", "idle"]).is_err());
    }
}
