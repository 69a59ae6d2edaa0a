//! Harness of the browser suite: a real relay (in this process, on a temp
//! SQLite file, serving the release SPA from `$FERROCHAT_DIST`), Debian's
//! chromedriver, and one headless Chromium per simulated user, driven over
//! WebDriver with fantoccini. Nothing is mocked.
//!
//! Every test is `run(name, |env| async move { … })`. The body runs in its
//! own task; whatever happens to it (success, panic, overall timeout), the
//! runner then closes every browser, stops the relay and kills chromedriver.
//! On failure it first saves, per open browser, a screenshot and the page's
//! visible text into `e2e-artifacts/<test>-<browser>.{png,txt}` (workspace
//! root) and prints the text.
//!
//! Waiting is always polling with a deadline (`wait_until`); no test
//! asserts anything after a fixed sleep.
//!
//! `E2E_RELAY_LOG=<filter>` (e.g. `info`) prints the relay's log.
#![allow(dead_code)]

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Debian's Chromium and its driver (`cargo xtask test` installs both).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long to wait for something the UI should do promptly.
pub const WAIT: Duration = Duration::from_secs(15);
/// How long to wait for the SPA to reconnect by itself: its backoff is
/// capped at 30 s, with full jitter.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(45);
/// The whole body of one test, however it goes.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// Between two polls of a condition.
const POLL: Duration = Duration::from_millis(100);

/// The password of every test account (valid: 8+ characters).
pub const PASSWORD: &str = "correct-horse-battery";

/// Viewport of every browser (CSS pixels).
pub const DESKTOP: (u32, u32) = (1280, 800);

const HOW_TO_RUN: &str = "run the browser suite with `cargo xtask test` (it installs \
     chromium + chromium-driver, builds the SPA with `cargo xtask dist` and sets \
     FERROCHAT_DIST), or by hand: `cargo xtask dist && FERROCHAT_DIST=$PWD/dist \
     cargo test -p e2e -- --test-threads=1`";

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .to_path_buf()
}

/// Where screenshots and failure dumps go.
pub fn artifacts_dir() -> PathBuf {
    workspace_root().join("e2e-artifacts")
}

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

fn check_binaries() {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(bin).exists() {
            panic!("{bin} is missing; {HOW_TO_RUN}");
        }
    }
}

/// Polls `check` until it returns `Ok`, at most `timeout`. `Err` carries
/// what was observed instead; the last one ends up in the panic message.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = match tokio::time::timeout(left.max(POLL), check()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(seen)) => seen,
            Err(_) => "(the check itself did not finish in time)".to_string(),
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {:.1}s waiting for {what}\n  last seen: {seen}",
                start.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn err(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    // WebDriver errors carry a long stack trace; the first line says it all.
    s.lines().next().unwrap_or_default().to_string()
}

/// `[data-testid="name"]`.
pub fn tid(name: &str) -> String {
    format!("[data-testid=\"{name}\"]")
}

/// The sidebar entry of the conversation with `peer`.
pub fn conv_item(peer: &str) -> String {
    format!("[data-testid=\"conv-item\"][data-user=\"{peer}\"]")
}

/// The sidebar entry of the group named `name`.
pub fn conv_group(name: &str) -> String {
    format!("[data-testid=\"conv-item\"][data-group=\"{name}\"]")
}

/// A member in the open group's member panel.
pub fn member(user: &str) -> String {
    format!("[data-testid=\"group-members\"] [data-testid=\"member\"][data-user=\"{user}\"]")
}

// ---------------------------------------------------------------- chromedriver

/// A chromedriver child process; killed (with its process group, so any
/// Chromium it started too) on drop, also when a test panics.
struct ChromeDriver {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::Builder::new()
            .prefix("e2e-chromedriver-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("chromedriver.log");
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Own process group: one kill reaches the browsers it starts.
            cmd.process_group(0);
            // If this test process dies hard, chromedriver goes too.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; {HOW_TO_RUN}"));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let addr = format!("127.0.0.1:{port}");
        let driver_ref = &mut driver;
        wait_until("chromedriver to listen", WAIT, || {
            let exited = driver_ref.child.try_wait().ok().flatten();
            let addr = addr.clone();
            async move {
                if let Some(status) = exited {
                    // Not worth waiting for: fail right away.
                    panic!("chromedriver exited at start: {status}");
                }
                http_get(&addr, "/status").await
            }
        })
        .await;
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        #[cfg(unix)]
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: `Ok(())` when the status is 200. Only the
/// status line is read (chromedriver may keep the connection open; it does
/// not answer HTTP/1.0 at all).
async fn http_get(addr: &str, path: &str) -> Result<(), String> {
    let io = async {
        let mut s = TcpStream::connect(addr).await.map_err(err)?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(err)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.map_err(err)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, String>(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .map_err(|_| format!("GET {path}: no answer within 2 s"))??;
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("GET {path}: {status:?}"))
    }
}

// ---------------------------------------------------------------------- relay

/// The relay running in this process.
struct RelayTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<relay::Result<()>>,
}

// ------------------------------------------------------------------------ env

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
    addr: SocketAddr,
    driver_url: String,
    relay: tokio::sync::Mutex<Option<RelayTask>>,
    browsers: Mutex<Vec<OpenBrowser>>,
    users: AtomicU32,
}

struct OpenBrowser {
    label: String,
    client: Client,
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

    fn db_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.inner.db_dir.path().join("e2e.db").display()
        )
    }

    /// Starts the relay on `listen` (`127.0.0.1:0` the first time, then the
    /// same port again) and waits until it answers `/healthz`.
    async fn spawn_relay(dist: &Path, db_url: &str, listen: SocketAddr) -> (RelayTask, SocketAddr) {
        let args: Vec<String> = vec![
            "--db".into(),
            db_url.into(),
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
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(listen).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("e2e: bind {listen}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot bind the relay to {listen}: {e}"),
            }
        };
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

    /// Starts the relay again on the same port and database.
    pub async fn start_relay(&self) {
        let mut slot = self.inner.relay.lock().await;
        assert!(slot.is_none(), "the relay is already running");
        let (task, _) = Env::spawn_relay(&self.inner.dist, &self.db_url(), self.inner.addr).await;
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

    /// A new user in a new browser session, signed up and connected: the
    /// start of most scenarios. Returns the username and the browser.
    pub async fn signed_up(&self, role: &str) -> (String, Browser) {
        let name = self.username(role);
        let browser = self.browser(role).await;
        browser.open().await;
        browser.register(&name).await;
        browser.wait_connected(WAIT).await;
        (name, browser)
    }

    /// A new browser (own WebDriver session, own fresh profile), not yet on
    /// any page. `label` names it in logs and artifacts.
    pub async fn browser(&self, label: &str) -> Browser {
        assert!(
            !self
                .inner
                .browsers
                .lock()
                .unwrap()
                .iter()
                .any(|b| b.label == label),
            "browser label {label} used twice"
        );
        let profile = tempfile::Builder::new()
            .prefix("e2e-chromium-")
            .tempdir()
            .unwrap();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            // Containers often have a tiny /dev/shm.
            "--disable-dev-shm-usage".into(),
            "--password-store=basic".into(),
            "--lang=en-US".into(),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(&self.inner.driver_url),
        )
        .await
        .unwrap_or_else(|_| panic!("browser {label}: no WebDriver session within 60 s"))
        .unwrap_or_else(|e| panic!("browser {label}: cannot start Chromium: {e}"));
        self.inner.browsers.lock().unwrap().push(OpenBrowser {
            label: label.to_string(),
            client: client.clone(),
            profile,
        });
        let b = Browser {
            label: label.to_string(),
            client,
            base: self.url(),
        };
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
                .position(|o| o.label == b.label)
                .expect("an open browser");
            list.remove(i)
        };
        drop(b);
        tokio::time::timeout(Duration::from_secs(30), entry.client.close())
            .await
            .expect("browser closes in time")
            .expect("browser closes");
        drop(entry.profile);
    }

    async fn close_all_browsers(&self) {
        let list: Vec<OpenBrowser> = std::mem::take(&mut *self.inner.browsers.lock().unwrap());
        for b in list {
            let _ = tokio::time::timeout(Duration::from_secs(15), b.client.close()).await;
            drop(b.profile);
        }
    }

    /// Screenshot + visible text + message hooks of every open browser.
    async fn dump_artifacts(&self, driver_log: &Path) {
        let dir = artifacts_dir();
        let _ = std::fs::create_dir_all(&dir);
        let list: Vec<(String, Client)> = self
            .inner
            .browsers
            .lock()
            .unwrap()
            .iter()
            .map(|b| (b.label.clone(), b.client.clone()))
            .collect();
        for (label, client) in list {
            let b = Browser {
                label: label.clone(),
                client,
                base: self.url(),
            };
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
    let db_url = format!("sqlite://{}", db_dir.path().join("e2e.db").display());
    let (relay, addr) = Env::spawn_relay(&dist, &db_url, "127.0.0.1:0".parse().unwrap()).await;
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
            relay: tokio::sync::Mutex::new(Some(relay)),
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

// -------------------------------------------------------------------- browser

/// One message as the page shows it (`[data-testid=message]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Msg {
    /// `data-mine == "true"`.
    pub mine: bool,
    /// `data-state`.
    pub state: String,
    /// `.body` text.
    pub body: String,
    /// `.sender` text.
    pub sender: String,
    /// `data-msg-id`, once the relay assigned one.
    pub msg_id: Option<String>,
    /// `data-read-by` (ours in a group): how many others have read it.
    pub read_by: Option<u32>,
}

const MESSAGES_JS: &str = r#"
return Array.from(document.querySelectorAll('[data-testid="message"]')).map(e => ({
    mine: e.getAttribute('data-mine') === 'true',
    state: e.getAttribute('data-state') || '',
    body: (e.querySelector('.body') || {}).textContent || '',
    sender: (e.querySelector('.sender') || {}).textContent || '',
    msg_id: e.getAttribute('data-msg-id'),
    read_by: e.hasAttribute('data-read-by') ? Number(e.getAttribute('data-read-by')) : null,
}));
"#;

/// One user's browser.
#[derive(Clone)]
pub struct Browser {
    pub label: String,
    pub client: Client,
    base: String,
}

impl Browser {
    /// Loads the app from the relay.
    pub async fn open(&self) {
        self.client
            .goto(&self.base)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot load {}: {e}", self.label, self.base));
    }

    /// Reloads the page (and waits for the load event).
    pub async fn reload(&self) {
        self.client
            .refresh()
            .await
            .unwrap_or_else(|e| panic!("{}: reload failed: {e}", self.label));
    }

    /// Runs JavaScript in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client.execute(script, args).await.map_err(err)
    }

    /// The page's visible text.
    pub async fn visible_text(&self) -> Result<String, String> {
        self.js(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .await
        .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// Every message of the open conversation, in page order.
    pub async fn messages(&self) -> Result<Vec<Msg>, String> {
        let v = self.js(MESSAGES_JS, vec![]).await?;
        serde_json::from_value(v).map_err(err)
    }

    /// The element, if it is in the page now.
    pub async fn find(&self, css: &str) -> Option<Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    /// Whether `css` matches something now.
    pub async fn exists(&self, css: &str) -> Result<bool, String> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| !v.is_empty())
            .map_err(err)
    }

    /// Text (as rendered) of the first match now, if any.
    pub async fn text(&self, css: &str) -> Result<Option<String>, String> {
        match self
            .client
            .find_all(Locator::Css(css))
            .await
            .map_err(err)?
            .first()
        {
            Some(e) => e.text().await.map(Some).map_err(err),
            None => Ok(None),
        }
    }

    /// Waits until `css` is in the page and displayed.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, WAIT).await
    }

    /// As [`Browser::wait_for`], with a given timeout.
    pub async fn wait_for_within(&self, css: &str, timeout: Duration) -> Element {
        let what = format!("{}: {css} to be displayed", self.label);
        wait_until(&what, timeout, || async move {
            let e = self.client.find(Locator::Css(css)).await.map_err(err)?;
            if e.is_displayed().await.map_err(err)? {
                Ok(e)
            } else {
                Err("present but not displayed".into())
            }
        })
        .await
    }

    /// Waits until nothing matches `css`.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) {
        let what = format!("{}: {css} to go away", self.label);
        wait_until(&what, timeout, || async move {
            match self.text(css).await? {
                None => Ok(()),
                Some(t) => Err(format!("still there: {t:?}")),
            }
        })
        .await
    }

    /// Waits until the text of `css` satisfies `pred`; returns it.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        expect: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let what = format!("{}: {css} text {expect}", self.label);
        let pred = &pred;
        wait_until(&what, timeout, || async move {
            match self.text(css).await? {
                Some(t) if pred(&t) => Ok(t),
                Some(t) => Err(format!("text is {t:?}")),
                None => Err("not in the page".into()),
            }
        })
        .await
    }

    /// Clicks `css` once it is present and enabled.
    pub async fn click(&self, css: &str) {
        let what = format!("{}: click {css}", self.label);
        wait_until(&what, WAIT, || async move {
            let e = self.client.find(Locator::Css(css)).await.map_err(err)?;
            if !e.is_enabled().await.map_err(err)? {
                return Err("disabled".into());
            }
            e.click().await.map_err(err)
        })
        .await
    }

    /// Types `text` into the (empty or not) input `css`, as a user would,
    /// and checks the input holds exactly `text` afterwards.
    pub async fn fill(&self, css: &str, text: &str) {
        let what = format!("{}: type {text:?} into {css}", self.label);
        wait_until(&what, WAIT, || async move {
            let e = self.client.find(Locator::Css(css)).await.map_err(err)?;
            let current = e.prop("value").await.map_err(err)?.unwrap_or_default();
            if !current.is_empty() {
                // Select all + Backspace: real input events, unlike Clear.
                e.send_keys("\u{E009}a\u{E009}\u{E003}")
                    .await
                    .map_err(err)?;
            }
            e.send_keys(text).await.map_err(err)?;
            let value = e.prop("value").await.map_err(err)?.unwrap_or_default();
            if value == text {
                Ok(())
            } else {
                Err(format!("the input holds {value:?}"))
            }
        })
        .await
    }

    /// Resizes the window so that the page's viewport is `width` x
    /// `height` CSS pixels (headless Chromium's window is taller than its
    /// viewport), and waits until the page sees that size.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let what = format!("{}: a {width}x{height} viewport", self.label);
        wait_until(&what, WAIT, || async move {
            let v = self
                .js(
                    "return [window.innerWidth, window.innerHeight, \
                     window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
                    vec![],
                )
                .await?;
            let n = |i: usize| v[i].as_i64().unwrap_or(0);
            if (n(0), n(1)) == (i64::from(width), i64::from(height)) {
                return Ok(());
            }
            let (w, h) = (i64::from(width) + n(2).max(0), i64::from(height) + n(3).max(0));
            self.client
                .set_window_size(w as u32, h as u32)
                .await
                .map_err(err)?;
            Err(format!("viewport was {}x{}", n(0), n(1)))
        })
        .await
    }

    /// Saves a screenshot of the viewport into `e2e-artifacts/<name>`.
    pub async fn save_screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot: {e}", self.label));
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    // ------------------------------------------------------------ app level

    /// Waits for the sign-in form of a signed-out browser.
    pub async fn wait_sign_in_form(&self) {
        self.wait_for("#username").await;
        self.wait_for("#password").await;
        assert!(
            !self.exists(&tid("me")).await.unwrap(),
            "{}: signed out, yet [data-testid=me] is shown",
            self.label
        );
    }

    /// Fills the sign-in form and presses `button` (`login` or `register`).
    pub async fn submit_credentials(&self, user: &str, password: &str, button: &str) {
        self.wait_sign_in_form().await;
        self.fill("#username", user).await;
        self.fill("#password", password).await;
        self.click(&tid(button)).await;
    }

    /// Signs up through the form; waits until signed in as `user`.
    pub async fn register(&self, user: &str) {
        self.submit_credentials(user, PASSWORD, "register").await;
        self.expect_signed_in(user).await;
    }

    /// Logs in through the form; waits until signed in as `user`.
    pub async fn login(&self, user: &str) {
        self.submit_credentials(user, PASSWORD, "login").await;
        self.expect_signed_in(user).await;
    }

    /// The chat UI shows `user` as the current user.
    pub async fn expect_signed_in(&self, user: &str) {
        self.wait_text(&tid("me"), WAIT, &format!("== {user:?}"), |t| t == user)
            .await;
    }

    /// Waits until the socket is logged in: no connection banner.
    pub async fn wait_connected(&self, timeout: Duration) {
        self.wait_gone(&tid("conn-banner"), timeout).await;
    }

    /// Waits until the banner says the connection is being re-established.
    pub async fn wait_reconnecting(&self) -> String {
        self.wait_text(
            &tid("conn-banner"),
            WAIT,
            "containing \"reconnecting\"",
            |t| t.contains("reconnecting"),
        )
        .await
    }

    /// Opens the conversation with `peer` through the user search.
    pub async fn open_chat_via_search(&self, peer: &str) {
        self.fill(&tid("user-search"), peer).await;
        let result = format!("[data-testid=\"search-result\"][data-user=\"{peer}\"]");
        self.click(&result).await;
        self.wait_for(&tid("composer")).await;
    }

    /// Types `text` in the composer and presses Send; waits until the
    /// message is in the list as ours. Returns it.
    pub async fn send(&self, text: &str) -> Msg {
        self.fill(&tid("composer"), text).await;
        self.click(&tid("send")).await;
        // The composer empties itself once the message is queued.
        let what = format!("{}: the composer to empty after sending", self.label);
        wait_until(&what, WAIT, || async move {
            let e = self
                .client
                .find(Locator::Css(&tid("composer")))
                .await
                .map_err(err)?;
            let v = e.prop("value").await.map_err(err)?.unwrap_or_default();
            if v.is_empty() {
                Ok(())
            } else {
                Err(format!("composer holds {v:?}"))
            }
        })
        .await;
        self.wait_message(text, true, None, WAIT).await
    }

    /// Waits until exactly one message with `body` (ours or theirs as
    /// `mine` says, in `state` if given) is in the open conversation.
    pub async fn wait_message(
        &self,
        body: &str,
        mine: bool,
        state: Option<&str>,
        timeout: Duration,
    ) -> Msg {
        let what = format!(
            "{}: a message {body:?} with data-mine={mine}{}",
            self.label,
            state
                .map(|s| format!(" data-state={s}"))
                .unwrap_or_default()
        );
        wait_until(&what, timeout, || async move {
            let all = self.messages().await?;
            let same: Vec<&Msg> = all.iter().filter(|m| m.body == body).collect();
            match same.as_slice() {
                [m] if m.mine == mine && state.is_none_or(|s| m.state == s) => Ok((*m).clone()),
                [_, _, ..] => panic!(
                    "{}: message {body:?} is shown {} times: {all:#?}",
                    self.label,
                    same.len()
                ),
                _ => Err(format!("messages: {all:?}")),
            }
        })
        .await
    }

    /// Waits until `body` from `from` is shown (theirs, `received`).
    pub async fn wait_received(&self, body: &str, from: &str) -> Msg {
        let m = self.wait_message(body, false, Some("received"), WAIT).await;
        assert_eq!(m.sender, from, "{}: sender of {body:?}", self.label);
        m
    }

    /// Waits until our message `body` reaches `state`.
    pub async fn wait_state(&self, body: &str, state: &str) -> Msg {
        self.wait_message(body, true, Some(state), WAIT).await
    }

    /// Waits until the conversation with `peer` shows `n` unread.
    pub async fn wait_unread(&self, peer: &str, n: u32) {
        let css = format!("{} {}", conv_item(peer), tid("unread"));
        self.wait_text(&css, WAIT, &format!("== \"{n}\""), |t| {
            t.trim() == n.to_string()
        })
        .await;
    }

    /// Waits until the group `name` shows `n` unread.
    pub async fn wait_group_unread(&self, name: &str, n: u32) {
        let css = format!("{} {}", conv_group(name), tid("unread"));
        self.wait_text(&css, WAIT, &format!("== \"{n}\""), |t| {
            t.trim() == n.to_string()
        })
        .await;
    }

    /// Waits until our group message `body` says it was read by `n`
    /// others (`data-read-by`), in `state`.
    pub async fn wait_read_by(&self, body: &str, n: u32, state: &str) -> Msg {
        let what = format!("{}: {body:?} read by {n}, data-state={state}", self.label);
        wait_until(&what, WAIT, || async move {
            let all = self.messages().await?;
            match all.iter().find(|m| m.body == body) {
                Some(m) if m.mine && m.read_by == Some(n) && m.state == state => Ok(m.clone()),
                Some(m) => Err(format!("{m:?}")),
                None => Err(format!("not shown; messages: {all:?}")),
            }
        })
        .await
    }

    /// Creates a group through the "New group" form; waits until its
    /// conversation is open, with the member panel.
    pub async fn create_group(&self, name: &str, public: bool) {
        self.click(&tid("new-group")).await;
        self.fill("#group-name", name).await;
        if public {
            self.click(&tid("group-public")).await;
        }
        self.click(&tid("create-group")).await;
        self.wait_for(&conv_group(name)).await;
        self.wait_for(&tid("composer")).await;
        self.wait_for(&tid("group-members")).await;
    }

    /// Adds `user` to the open group from the member panel; waits until
    /// they are listed.
    pub async fn add_member(&self, user: &str) {
        self.fill("#add-member", user).await;
        self.click(&tid("add-member-submit")).await;
        self.wait_for(&member(user)).await;
    }

    /// Opens the group `name` from the sidebar.
    pub async fn open_group(&self, name: &str) {
        self.click(&conv_group(name)).await;
        self.wait_text(
            ".conv-head .peer-name",
            WAIT,
            &format!("== {name:?}"),
            |t| t == name,
        )
        .await;
        self.wait_for(&tid("composer")).await;
    }
}
