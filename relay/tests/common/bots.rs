//! Bots in tests: the admin command that makes them, and a real webhook
//! receiver (a small HTTP server on 127.0.0.1:0) that records what it is
//! sent and answers as told: 200, a status, a reply, or nothing at all.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The flags the bot suites run relays with: private webhooks allowed
/// (the receiver is on loopback), quick retries, short deadlines.
pub const FLAGS: &[&str] = &[
    "--webhook-allow-private",
    "--webhook-backoff",
    "100ms",
    "--webhook-timeout",
    "1s",
];

/// Runs `ferrochat-relay admin <args> --db <db>` to the end.
pub async fn admin(db: &str, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrochat-relay"));
    c.arg("admin").args(args).args(["--db", db]);
    tokio::task::spawn_blocking(move || c.output().expect("admin command runs"))
        .await
        .unwrap()
}

/// Runs it, asserting it worked; its stdout.
pub async fn admin_ok(db: &str, args: &[&str]) -> String {
    let out = admin(db, args).await;
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bot the admin command made.
pub struct Bot {
    pub name: String,
    pub id: shared::UserId,
    pub token: String,
    pub secret: Option<String>,
}

/// The value of `key` in the admin command's `key\tvalue` lines.
pub fn field(out: &str, key: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}\t")).map(str::to_string))
}

/// `admin create-bot name [--webhook url]`.
pub async fn create_bot(db: &str, name: &str, webhook: Option<&str>) -> Bot {
    let mut args = vec!["create-bot", name];
    if let Some(url) = webhook {
        args.extend(["--webhook", url]);
    }
    let out = admin_ok(db, &args).await;
    Bot {
        name: name.into(),
        id: shared::UserId(field(&out, "userId").unwrap().parse().unwrap()),
        token: field(&out, "token").expect("a token"),
        secret: field(&out, "secret"),
    }
}

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Answer {
    Ok,
    Status(u16),
    /// Never answers (until the relay gives up on it).
    Hang,
    /// 200 with this JSON body.
    Json(String),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub signature: Option<String>,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// The receiver: what it got, and what it answers next.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            got: Arc::default(),
            answer: Arc::new(Mutex::new(Answer::Ok)),
        };
        let (got, answer) = (r.got.clone(), r.answer.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (got, answer) = (got.clone(), answer.clone());
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (got, answer) = (got.clone(), answer.clone());
                        async move {
                            let signature = req
                                .headers()
                                .get(shared::bots::SIGNATURE_HEADER)
                                .map(|v| v.to_str().unwrap().to_string());
                            let body = req.into_body().collect().await?.to_bytes();
                            got.lock().unwrap().push(Received { signature, body });
                            let a = answer.lock().unwrap().clone();
                            let (status, body) = match a {
                                Answer::Ok => (200, String::new()),
                                Answer::Status(s) => (s, String::new()),
                                Answer::Json(j) => (200, j),
                                Answer::Hang => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    (200, String::new())
                                }
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        r
    }

    pub fn answer(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests came; all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        super::eventually(&format!("{n} webhook request(s)"), || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

/// Checks `sig` (`t=…,v1=…`) over `body` with `secret`, computing the
/// HMAC here, independently of the relay's code.
pub fn verify(secret: &str, sig: &str, body: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (t, v1) = sig
        .split_once(",v1=")
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v)))
        .expect("t=…,v1=…");
    let mut key = [0u8; 64];
    assert!(secret.len() <= 64);
    key[..secret.len()].copy_from_slice(secret.as_bytes());
    let mut inner = Sha256::new();
    inner.update(key.map(|b| b ^ 0x36));
    inner.update(format!("{t}."));
    inner.update(body);
    let mut outer = Sha256::new();
    outer.update(key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    let mac: String = outer
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    mac == v1
}
