//! One test's world: the built SPA, a relay in this process on a fresh
//! SQLite file in a temp dir (on a free port, restartable on the same one)
//! or, for [`run_cluster`], a cluster of relay processes on PostgreSQL and
//! Redis behind nginx (`services`), chromedriver, and the browsers opened
//! so far. [`run`] sets it up, runs the test body and tears everything
//! down whatever happened.

use super::browser::{Browser, DESKTOP};
use super::chromedriver::{check_binaries, ChromeDriver};
use super::{artifacts_dir, err, http_get, wait_until, HOW_TO_RUN, WAIT};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The whole body of one test, however it goes.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// The built SPA. Panics (never skips) when it is not there.
fn dist_dir() -> PathBuf {
    let Some(dir) = std::env::var_os("FERROCHAT_DIST") else {
        panic!("FERROCHAT_DIST is not set: the browser suite serves the built SPA; {HOW_TO_RUN}");
    };
    let dir = PathBuf::from(dir);
    if !dir.join("index.html").is_file() {
        panic!(
            "FERROCHAT_DIST={} has no index.html (SPA not built); {HOW_TO_RUN}",
            dir.display()
        );
    }
    dir.canonicalize().expect("FERROCHAT_DIST is readable")
}

/// The relay running in this process.
struct RelayTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<relay::Result<()>>,
}

/// What a test gets: the relay, and browsers on demand. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    inner: Arc<EnvInner>,
}

struct EnvInner {
    test: &'static str,
    /// Unique per run: usernames get it as a suffix.
    run_tag: String,
    dist: PathBuf,
    db_dir: TempDir,
    /// The relay, or nginx in front of the cluster.
    addr: SocketAddr,
    driver_url: String,
    relay: tokio::sync::Mutex<Option<RelayTask>>,
    cluster: Option<Arc<Mutex<services::Cluster>>>,
    browsers: Mutex<Vec<OpenBrowser>>,
    users: AtomicU32,
}

/// What a test runs against.
enum World {
    /// One relay in this process.
    Relay(RelayTask),
    /// Relay processes behind nginx.
    Cluster(Box<services::Cluster>),
}

struct OpenBrowser {
    browser: Browser,
    profile: TempDir,
}

impl Env {
    /// The relay's base URL, e.g. `http://127.0.0.1:41234/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.inner.addr)
    }

    /// A fresh, unique, valid username starting with `role`.
    pub fn username(&self, role: &str) -> String {
        let n = self.inner.users.fetch_add(1, Ordering::Relaxed);
        let name = format!("{role}-{}{n}", self.inner.run_tag);
        assert!(name.len() <= 32, "username too long: {name}");
        name
    }

    /// Starts the relay on `listen` (`127.0.0.1:0` the first time, then the
    /// same port again), its database a SQLite file in `db_dir`, and waits
    /// until it answers `/healthz`.
    async fn spawn_relay(
        dist: &Path,
        db_dir: &Path,
        listen: SocketAddr,
    ) -> (RelayTask, SocketAddr) {
        let args: Vec<String> = vec![
            "--db".into(),
            format!("sqlite://{}", db_dir.join("e2e.db").display()),
            "--static-dir".into(),
            dist.display().to_string(),
            "--listen".into(),
            listen.to_string(),
            "--max-hashing".into(),
            "2".into(),
            "--log".into(),
            std::env::var("E2E_RELAY_LOG").unwrap_or_else(|_| "warn".into()),
        ];
        let config = relay::Config::from_args(&args).expect("valid relay config");
        if std::env::var_os("E2E_RELAY_LOG").is_some() {
            relay::init_tracing(&config);
        }
        // The port was just released by the previous relay; std/tokio set
        // SO_REUSEADDR, so this normally succeeds at once.
        let what = format!("the relay to bind {listen}");
        let listener = wait_until(&what, Duration::from_secs(5), || async move {
            TcpListener::bind(listen).await.map_err(err)
        })
        .await;
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay::run(listener, config, async {
            let _ = stopped.await;
        }));
        let host = addr.to_string();
        wait_until("the relay to answer /healthz", WAIT, || {
            let host = host.clone();
            async move { http_get(&host, "/healthz").await }
        })
        .await;
        (RelayTask { stop, task }, addr)
    }

    /// `ferrochat-relay admin grant-agent <username>` against this test's
    /// relay (over its admin socket, as the command does).
    pub async fn grant_agent(&self, username: &str) {
        let db = format!(
            "sqlite://{}",
            self.inner.db_dir.path().join("e2e.db").display()
        );
        let config = relay::Config::from_args(["admin", "grant-agent", username, "--db", &db])
            .expect("a valid admin command");
        let code = tokio::task::spawn_blocking(move || match &config.command {
            Some(relay::config::Command::Admin { op }) => relay::admin::main(&config, op),
            _ => unreachable!("parsed as an admin command"),
        })
        .await
        .unwrap();
        assert_eq!(
            format!("{code:?}"),
            format!("{:?}", std::process::ExitCode::SUCCESS),
            "grant-agent {username}"
        );
    }

    /// Starts the relay again on the same port and database.
    pub async fn start_relay(&self) {
        let mut slot = self.inner.relay.lock().await;
        assert!(slot.is_none(), "the relay is already running");
        let inner = &self.inner;
        let (task, _) = Env::spawn_relay(&inner.dist, inner.db_dir.path(), inner.addr).await;
        *slot = Some(task);
    }

    /// Graceful shutdown (what SIGTERM does): sockets get 1001, the store is
    /// flushed. Panics unless it ends cleanly and in time.
    pub async fn stop_relay(&self) {
        if let Err(e) = self.try_stop_relay().await {
            panic!("{e}");
        }
    }

    async fn try_stop_relay(&self) -> Result<(), String> {
        let Some(r) = self.inner.relay.lock().await.take() else {
            return Ok(());
        };
        let _ = r.stop.send(());
        match tokio::time::timeout(Duration::from_secs(20), r.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("relay shut down with an error: {e}")),
            Ok(Err(e)) => Err(format!("relay task failed: {e}")),
            Err(_) => Err("relay did not shut down within 20 s".into()),
        }
    }

    /// The cluster's relays' addresses (a cluster test only).
    pub fn nodes(&self) -> Vec<SocketAddr> {
        let c = self.inner.cluster.as_ref().expect("a cluster test");
        let c = c.lock().unwrap();
        c.relays().iter().map(|r| r.addr()).collect()
    }

    /// A gauge or counter of the cluster's relay `i` (from `/metrics`).
    pub async fn node_metric(&self, i: usize, name: &str) -> i64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.nodes()[i];
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("relay up");
        let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(WAIT, s.read_to_string(&mut text))
            .await
            .expect("metrics in time")
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no metric {name}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// `kill -9` of the cluster's relay `i`.
    pub async fn kill_node(&self, i: usize) {
        let c = self.inner.cluster.clone().expect("a cluster test");
        tokio::task::spawn_blocking(move || c.lock().unwrap().relay_mut(i).kill())
            .await
            .unwrap()
            .expect("the relay is killed");
    }

    /// A new browser (own WebDriver session, own fresh profile), not yet on
    /// any page. `label` names it in logs and artifacts.
    pub async fn browser(&self, label: &str) -> Browser {
        self.browser_with(label, &[]).await
    }

    /// [`Env::browser`] with extra Chromium flags (a fake microphone…).
    pub async fn browser_with(&self, label: &str, flags: &[String]) -> Browser {
        assert!(
            !self
                .inner
                .browsers
                .lock()
                .unwrap()
                .iter()
                .any(|o| o.browser.label == label),
            "browser label {label} used twice"
        );
        let (b, profile) = Browser::launch(&self.inner.driver_url, label, self.url(), flags).await;
        self.inner.browsers.lock().unwrap().push(OpenBrowser {
            browser: b.clone(),
            profile,
        });
        b.set_viewport(DESKTOP.0, DESKTOP.1).await;
        b
    }

    /// Ends a browser's WebDriver session: Chromium quits, its profile is
    /// deleted (the user "closes their browser").
    pub async fn close_browser(&self, b: Browser) {
        let entry = {
            let mut list = self.inner.browsers.lock().unwrap();
            let i = list
                .iter()
                .position(|o| o.browser.label == b.label)
                .expect("an open browser");
            list.remove(i)
        };
        drop(b);
        tokio::time::timeout(Duration::from_secs(30), entry.browser.client.close())
            .await
            .expect("browser closes in time")
            .expect("browser closes");
        drop(entry.profile);
    }

    async fn close_all_browsers(&self) {
        let list: Vec<OpenBrowser> = std::mem::take(&mut *self.inner.browsers.lock().unwrap());
        for o in list {
            let _ = tokio::time::timeout(Duration::from_secs(15), o.browser.client.close()).await;
            drop(o.profile);
        }
    }

    /// Screenshot + visible text + message hooks of every open browser.
    async fn dump_artifacts(&self, driver_log: &Path) {
        let dir = artifacts_dir();
        let _ = std::fs::create_dir_all(&dir);
        let list: Vec<Browser> = self
            .inner
            .browsers
            .lock()
            .unwrap()
            .iter()
            .map(|o| o.browser.clone())
            .collect();
        for b in list {
            let label = &b.label;
            let stem = format!("{}-{label}", self.inner.test);
            let dump = async {
                let url = b
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let text = b.visible_text().await.unwrap_or_else(|e| e);
                let msgs = b
                    .messages()
                    .await
                    .map(|m| format!("{m:#?}"))
                    .unwrap_or_else(|e| e);
                let report = format!(
                    "browser {label} at {url}\n--- visible text ---\n{text}\n--- [data-testid=message] ---\n{msgs}\n"
                );
                eprintln!("\n===== e2e failure dump: {report}");
                let _ = std::fs::write(dir.join(format!("{stem}.txt")), &report);
                match b.client.screenshot().await {
                    Ok(png) => {
                        let path = dir.join(format!("{stem}.png"));
                        let _ = std::fs::write(&path, png);
                        eprintln!("===== screenshot: {}", path.display());
                    }
                    Err(e) => eprintln!("===== no screenshot: {}", err(e)),
                }
            };
            if tokio::time::timeout(Duration::from_secs(20), dump)
                .await
                .is_err()
            {
                eprintln!("===== browser {label} did not answer the failure dump");
            }
        }
        let _ = std::fs::copy(
            driver_log,
            dir.join(format!("{}-chromedriver.log", self.inner.test)),
        );
    }
}

enum Failure {
    Panic(Box<dyn std::any::Any + Send>),
    Message(String),
}

/// Runs one browser test: chromedriver, a relay on a fresh database, the
/// body, then cleanup whatever happened (see the module doc).
pub async fn run<F, Fut>(test: &'static str, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_in(test, None, body).await
}

/// [`run`] against a cluster of `nodes` relays on PostgreSQL and Redis
/// behind nginx: the browsers open nginx's URL.
pub async fn run_cluster<F, Fut>(test: &'static str, nodes: usize, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_in(test, Some(nodes), body).await
}

/// The relay binary for cluster tests: `FERROCHAT_RELAY_BIN`, or the
/// workspace's build (see [`services::relay::test_binary`]).
fn relay_bin() -> PathBuf {
    services::relay::test_binary()
}

async fn start_world(dist: &Path, db_dir: &Path, nodes: Option<usize>) -> (World, SocketAddr) {
    match nodes {
        None => {
            let any_port = "127.0.0.1:0".parse().unwrap();
            let (relay, addr) = Env::spawn_relay(dist, db_dir, any_port).await;
            (World::Relay(relay), addr)
        }
        Some(n) => {
            let mut config = services::ClusterConfig::new(db_dir.join("cluster"), relay_bin());
            config.nodes = n;
            config.static_dir = Some(dist.to_path_buf());
            config.extra_relay_args = vec!["--max-hashing".into(), "2".into()];
            let cluster = tokio::task::spawn_blocking(move || services::Cluster::start(config))
                .await
                .unwrap()
                .expect("the cluster starts");
            let url = cluster.url();
            let host = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            let addr: SocketAddr = host.parse().expect("nginx on a socket address");
            wait_until("the cluster to answer /healthz", WAIT, || {
                let host = host.clone();
                async move { http_get(&host, "/healthz").await }
            })
            .await;
            (World::Cluster(Box::new(cluster)), addr)
        }
    }
}

async fn run_in<F, Fut>(test: &'static str, nodes: Option<usize>, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    check_binaries();
    let dist = dist_dir();
    // Dumps of an earlier failed run of this test would only mislead.
    if let Ok(entries) = std::fs::read_dir(artifacts_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{test}-")) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let started = Instant::now();
    let driver = ChromeDriver::start().await;
    let db_dir = tempfile::Builder::new()
        .prefix("e2e-relay-")
        .tempdir()
        .unwrap();
    let (world, addr) = start_world(&dist, db_dir.path(), nodes).await;
    let (relay, cluster) = match world {
        World::Relay(r) => (Some(r), None),
        World::Cluster(c) => (None, Some(Arc::new(Mutex::new(*c)))),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let env = Env {
        inner: Arc::new(EnvInner {
            test,
            run_tag: format!("{:04x}", nanos % 0x10000),
            dist,
            db_dir,
            addr,
            driver_url: driver.url.clone(),
            relay: tokio::sync::Mutex::new(relay),
            cluster,
            browsers: Mutex::new(Vec::new()),
            users: AtomicU32::new(1),
        }),
    };

    let task = tokio::spawn(body(env.clone()));
    let abort = task.abort_handle();
    let failure = match tokio::time::timeout(TEST_TIMEOUT, task).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) if e.is_panic() => Some(Failure::Panic(e.into_panic())),
        Ok(Err(e)) => Some(Failure::Message(format!("test task ended: {e}"))),
        Err(_) => {
            abort.abort();
            Some(Failure::Message(format!(
                "{test} did not finish within {TEST_TIMEOUT:?}"
            )))
        }
    };
    if failure.is_some() {
        env.dump_artifacts(&driver.log).await;
    }
    env.close_all_browsers().await;
    let stopped = env.try_stop_relay().await;
    if let Some(c) = env.inner.cluster.clone() {
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(c) = Arc::try_unwrap(c) {
                let _ = c.into_inner().map(|c| c.stop());
            }
        })
        .await;
    }
    drop(driver);
    eprintln!("e2e: {test} took {:.1}s", started.elapsed().as_secs_f64());
    match failure {
        Some(Failure::Panic(p)) => std::panic::resume_unwind(p),
        Some(Failure::Message(m)) => panic!("{m}"),
        None => {
            if let Err(e) = stopped {
                panic!("{e}");
            }
        }
    }
}
