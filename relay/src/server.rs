//! The accept loop.
//!
//! `warp::serve` cannot set `TCP_NODELAY`, and without it small frames wait
//! on Nagle's algorithm (a p50 of 22 ms instead of 0.14 ms, measured). So the
//! relay accepts connections itself, sets `TCP_NODELAY`, enforces the
//! connection cap with a semaphore, and serves `warp::service(routes)` with
//! hyper-util's HTTP/1 + HTTP/2 builder (with upgrades, for WebSockets).

use crate::handlers::ConnSlot;
use crate::metrics::Metrics;
use crate::{filters, App};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use shared::close;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// One slot under `--max-connections`; frees the slot and updates the gauge
/// when dropped.
pub struct ConnPermit {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.metrics.connections.fetch_sub(1, Relaxed);
    }
}

/// The peer address, available to filters as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub SocketAddr);

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let body =
        r#"{"code":"unavailable","message":"the relay is at its connection limit; retry later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serves until `shutdown` resolves, then shuts down gracefully: stop
/// accepting, close every WebSocket with 1001, let requests finish, flush
/// the store.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let routes = warp::service(filters::routes(app.clone()));
    let limit = Arc::new(Semaphore::new(app.config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris: a client has this long to send its request headers.
        .header_read_timeout(Duration::from_secs(10));
    let mut background = crate::spawn_background(app.clone());
    let webhooks = crate::webhook::start(app.clone());
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            // Retries, presence and gap fetches never end: if that task
            // died (a panic), the relay must not go on without them.
            ended = &mut background => {
                crate::fatal::stop(&format!("the relay's timer task ended ({ended:?})"))
            }
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        app.metrics.connections_total.fetch_add(1, Relaxed);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            app.metrics.connections_rejected_total.fetch_add(1, Relaxed);
            tokio::spawn(refuse(stream));
            continue;
        };
        app.metrics.connections.fetch_add(1, Relaxed);
        let slot = ConnSlot(Arc::new(parking_lot::Mutex::new(Some(ConnPermit {
            _permit: permit,
            metrics: app.metrics.clone(),
        }))));
        let routes = routes.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(slot.clone());
                req.extensions_mut().insert(RemoteAddr(peer));
                routes.clone().call(req)
            });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection error");
            }
        });
    }

    tracing::info!("shutting down");
    drop(listener);
    // Deliveries cut short stay in the outbox and are made again.
    webhooks.abort();
    app.begin_shutdown();
    app.hub.close_all(close::GOING_AWAY);
    let grace = app.config.shutdown_grace;
    let sessions_closed = async {
        while app.metrics.ws_sessions.load(Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(grace, sessions_closed).await.is_err() {
        tracing::warn!("some WebSocket sessions did not close in time");
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
    background.abort();
    app.store.close().await?;
    tracing::info!("shutdown complete");
    Ok(())
}
