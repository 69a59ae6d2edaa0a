//! A minimal in-process relay for testing the load generator end to end,
//! built on the `shared` codec (so every frame the generator sends is
//! validated by the same decoder as the real relay uses), with fault
//! injection so the tests can prove that the generator notices lost,
//! duplicated and redelivered messages:
//! - `http.rs`: `POST /api/register`, and routing;
//! - `groups.rs`: public groups as the relay serves them (create, join,
//!   the group with its first page of members, further pages);
//! - `ws.rs`: `/ws` with LOGIN (and the backlog of unacked messages),
//!   PING, CHAT (to a user or a group) and ACK, and a simulated
//!   `kill -9`.

mod groups;
mod http;
mod ws;

use shared::UserId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Faults to inject, each "every Nth chat" (0 = never). For group chats,
/// `drop_every`, `duplicate_every` and `redeliver_every` count pushes to
/// members instead (every Nth push across all group messages).
#[derive(Clone, Copy, Default)]
pub struct Faults {
    /// Push an extra copy under a second msgId (a duplicate).
    pub duplicate_every: u64,
    /// Answer 81 but never push (a loss).
    pub drop_every: u64,
    /// Push the same frame twice (a legal redelivery).
    pub redeliver_every: u64,
    /// Refuse with `rate_limited` (no 81, no push).
    pub refuse_every: u64,
    /// At the Nth chat (0: never), store it but answer nothing and drop
    /// every socket at once without a close handshake, as a relay killed
    /// with `kill -9` right after its commit; what was stored stays (the
    /// state is the database), and a LOGIN pushes the user's unacked
    /// one-to-one messages again, in order.
    pub kill_at: u64,
}

/// Whether the `n`th event is one of every `every`th (0: never).
fn every(every: u64, n: u64) -> bool {
    // (`is_multiple_of` is newer than the workspace's MSRV.)
    #[allow(clippy::manual_is_multiple_of)]
    let hit = every > 0 && n % every == 0;
    hit
}

type Tx = mpsc::UnboundedSender<String>;

/// The mock's state (opaque to tests; see [`registrations`]).
#[derive(Default)]
pub struct State {
    next_user: i64,
    tokens: HashMap<String, (UserId, String)>,
    online: HashMap<UserId, Vec<Tx>>,
    senders: HashMap<uuid::Uuid, UserId>,
    stored: HashMap<(UserId, String), (uuid::Uuid, u64)>,
    seqs: HashMap<(UserId, UserId), u64>,
    chats: u64,
    names: HashMap<UserId, String>,
    groups: HashMap<i64, Group>,
    /// Group message ids (acks of those get no 92).
    group_msgs: HashSet<uuid::Uuid>,
    group_pushes: u64,
    /// One-to-one pushes not acked yet, per recipient, by (sender, seq).
    unacked: HashMap<UserId, BTreeMap<(UserId, u64), String>>,
    /// Where each of them is in `unacked`.
    unacked_ids: HashMap<uuid::Uuid, (UserId, (UserId, u64))>,
    /// Told when the mock "is killed" (`Faults::kill_at`).
    kill: Option<watch::Sender<u64>>,
}

struct Group {
    name: String,
    owner: UserId,
    members: Vec<UserId>,
    seq: u64,
}

/// Starts the mock on 127.0.0.1 and returns its address.
pub async fn start(faults: Faults) -> SocketAddr {
    start_counting(faults).await.0
}

/// Like [`start`], also returning a handle to the number of registrations.
pub async fn start_counting(faults: Faults) -> (SocketAddr, Arc<Mutex<State>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = Arc::new(Mutex::new(State {
        kill: Some(watch::channel(0).0),
        ..State::default()
    }));
    let handle = st.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 8];
                loop {
                    match s.peek(&mut head).await {
                        Ok(n) if n >= 7 => break,
                        Ok(0) | Err(_) => return,
                        Ok(_) => tokio::task::yield_now().await,
                    }
                }
                if head.starts_with(b"GET /ws") {
                    ws::serve(s, st, faults).await;
                } else {
                    http::serve(s, st).await;
                }
            });
        }
    });
    (addr, handle)
}

/// Accounts registered so far.
pub fn registrations(st: &Mutex<State>) -> i64 {
    st.lock().unwrap().next_user
}
