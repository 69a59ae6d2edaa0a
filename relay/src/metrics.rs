//! Counters and gauges, rendered in the Prometheus text format at
//! `GET /metrics`. Plain atomics: incrementing one is a single instruction on
//! the hot path, and there is no registry to lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

macro_rules! metrics {
    ($( $(#[doc = $doc:literal])* $kind:ident $name:ident : $prom:literal ),* $(,)?) => {
        /// All relay metrics.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( $(#[doc = $doc])* pub $name: metrics!(@ty $kind), )*
            /// Time from a chat's arrival to the moment it is durable and answered.
            pub store_latency: Histogram,
            /// Time one commit log append takes (its write and `fdatasync`).
            pub log_append_latency: Histogram,
        }

        impl Metrics {
            /// Prometheus text exposition format.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(4096);
                $(
                    let help = concat!($($doc),*).trim();
                    let _ = writeln!(out, "# HELP {} {}", $prom, help);
                    let _ = writeln!(out, "# TYPE {} {}", $prom, metrics!(@prom $kind));
                    let _ = writeln!(out, "{} {}", $prom, self.$name.load(Relaxed));
                )*
                self.store_latency.render(
                    &mut out,
                    "ferrochat_store_latency_seconds",
                    "Time from a chat's arrival at the relay to the moment it is durable (in the commit log) and answered.",
                );
                self.log_append_latency.render(
                    &mut out,
                    "ferrochat_log_append_seconds",
                    "Time one commit log append takes: its write and its fdatasync.",
                );
                out
            }
        }
    };
    (@ty counter) => { AtomicU64 };
    (@ty gauge) => { AtomicI64 };
    (@prom counter) => { "counter" };
    (@prom gauge) => { "gauge" };
}

/// Upper bounds of the latency histogram buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 500_000, 1_000_000,
];

/// A latency histogram with fixed buckets (Prometheus `histogram`).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let us = d.as_micros() as u64;
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *b as f64 / 1e6
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

metrics! {
    /// Open TCP connections (HTTP and WebSocket).
    gauge connections: "ferrochat_connections",
    /// TCP connections accepted since start.
    counter connections_total: "ferrochat_connections_total",
    /// TCP connections refused at the connection cap.
    counter connections_rejected_total: "ferrochat_connections_rejected_total",
    /// Open WebSocket sessions (logged in or not).
    gauge ws_sessions: "ferrochat_ws_sessions",
    /// Logged-in users (with at least one socket).
    gauge users_online: "ferrochat_users_online",
    /// Successful WebSocket logins.
    counter logins_total: "ferrochat_logins_total",
    /// Failed WebSocket logins.
    counter login_failures_total: "ferrochat_login_failures_total",
    /// Accounts registered.
    counter registrations_total: "ferrochat_registrations_total",
    /// HTTP logins refused (429) by a failed-login lockout, before hashing.
    counter login_throttled_total: "ferrochat_login_throttled_total",
    /// Registrations refused (429) by the per-address cap, before hashing.
    counter register_throttled_total: "ferrochat_register_throttled_total",
    /// Visitors of the support desk created (`POST /api/visitors`).
    counter visitors_total: "ferrochat_visitors_total",
    /// New visitors refused (429) by the per-address `--visitor-limit`.
    counter visitor_throttled_total: "ferrochat_visitor_throttled_total",
    /// Frames read from clients.
    counter frames_in_total: "ferrochat_frames_in_total",
    /// Frames queued to clients.
    counter frames_out_total: "ferrochat_frames_out_total",
    /// Chat messages stored (type 81 sent).
    counter messages_in_total: "ferrochat_messages_in_total",
    /// Chat pushes to recipient sockets, first attempts.
    counter messages_out_total: "ferrochat_messages_out_total",
    /// Chat sends that were duplicates of a stored clientMsgId.
    counter messages_deduplicated_total: "ferrochat_messages_deduplicated_total",
    /// Acks received.
    counter acks_total: "ferrochat_acks_total",
    /// Pushes repeated because no ack came in time.
    counter retries_total: "ferrochat_retries_total",
    /// Error frames (type 0) sent.
    counter errors_total: "ferrochat_errors_total",
    /// Frames refused by the per-connection rate limit.
    counter rate_limited_total: "ferrochat_rate_limited_total",
    /// Sockets closed because their outbound queue overflowed.
    counter slow_consumers_total: "ferrochat_slow_consumers_total",
    /// Frames not queued because a socket's queue was full while the relay
    /// was behind (pushes among them are retried).
    counter frames_dropped_total: "ferrochat_frames_dropped_total",
    /// Audio frames accepted from speakers (voice rooms).
    counter audio_frames_in_total: "ferrochat_audio_frames_in_total",
    /// Audio frames queued to listeners' audio lanes.
    counter audio_frames_out_total: "ferrochat_audio_frames_out_total",
    /// Audio frames dropped as the oldest in a full audio lane: a listener
    /// not keeping up loses its own audio, nobody else's.
    counter audio_frames_dropped_total: "ferrochat_audio_frames_dropped_total",
    /// Audio frames refused from a speaker (caps, not in the room, muted,
    /// malformed header), each answered with a type 0 frame.
    counter audio_frames_refused_total: "ferrochat_audio_frames_refused_total",
    /// Sockets in voice rooms right now.
    gauge voice_participants: "ferrochat_voice_participants",
    /// Sockets closed by the idle timeout.
    counter idle_timeouts_total: "ferrochat_idle_timeouts_total",
    /// Storage transactions committed (group commits).
    counter store_commits_total: "ferrochat_store_commits_total",
    /// Operations written in those transactions.
    counter store_ops_total: "ferrochat_store_ops_total",
    /// Total time spent committing, in microseconds.
    counter store_commit_micros_total: "ferrochat_store_commit_micros_total",
    /// Storage transactions that failed.
    counter store_failures_total: "ferrochat_store_failures_total",
    /// Appends to the commit log (each one write and one fdatasync).
    counter log_appends_total: "ferrochat_log_appends_total",
    /// Chats made durable in the commit log.
    counter log_records_total: "ferrochat_log_records_total",
    /// Commit log appends that failed and were retried.
    counter log_failures_total: "ferrochat_log_failures_total",
    /// Webhook deliveries a bot's webhook answered 2xx (this relay's).
    counter webhook_delivered_total: "ferrochat_webhook_delivered_total",
    /// Webhook attempts that failed (a status, a timeout, a refused
    /// connection) and were scheduled again.
    counter webhook_retries_total: "ferrochat_webhook_retries_total",
    /// Webhook deliveries given up (`--webhook-max-age`, a removed webhook,
    /// a refused address) and recorded as failed.
    counter webhook_given_up_total: "ferrochat_webhook_given_up_total",
    /// `POST /api/messages` requests refused (429) by the per-user rate
    /// limit (`--rate-limit`, `--rate-burst`).
    counter api_rate_limited_total: "ferrochat_api_rate_limited_total",
    /// Cluster: events published to the other relays.
    counter cluster_published_total: "ferrochat_cluster_published_total",
    /// Cluster: events not published (the queue was full or Redis was
    /// unreachable); chats among them are recovered by catch-ups.
    counter cluster_publish_dropped_total: "ferrochat_cluster_publish_dropped_total",
    /// Cluster: chats that waited before being stored because the publish
    /// queue was far behind (back-pressure instead of dropped events).
    counter cluster_backpressure_total: "ferrochat_cluster_backpressure_total",
    /// Cluster: events received from the other relays.
    counter cluster_received_total: "ferrochat_cluster_received_total",
    /// Cluster: catch-ups run (a reconnect, a dead relay, the periodic
    /// check).
    counter cluster_catchups_total: "ferrochat_cluster_catchups_total",
    /// Cluster: messages a catch-up or gap fetch found that no event had
    /// brought.
    counter cluster_recovered_total: "ferrochat_cluster_recovered_total",
    /// Cluster: 1 while subscribed to Redis and the probe comes back.
    gauge cluster_link_up: "ferrochat_cluster_link_up",
    /// Cluster voice: audio frames published for the other relays (one per
    /// frame per room, whatever the number of relays listening).
    counter cluster_voice_published_total: "ferrochat_cluster_voice_published_total",
    /// Cluster voice: audio frames not published (the voice queue was full
    /// or Redis was unreachable): audio never waits.
    counter cluster_voice_dropped_total: "ferrochat_cluster_voice_dropped_total",
    /// Cluster voice: audio frames received from the other relays.
    counter cluster_voice_received_total: "ferrochat_cluster_voice_received_total",
    /// Cluster voice: room changes received on the control channel (or
    /// found by a resync) and applied here.
    counter cluster_voice_changes_total: "ferrochat_cluster_voice_changes_total",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.acks_total.fetch_add(3, Relaxed);
        m.connections.fetch_add(2, Relaxed);
        let text = m.render();
        assert!(text.contains("# TYPE ferrochat_acks_total counter\nferrochat_acks_total 3\n"));
        assert!(text.contains("# TYPE ferrochat_connections gauge\nferrochat_connections 2\n"));
        assert!(text.contains("# HELP ferrochat_retries_total Pushes repeated"));
        m.store_latency
            .observe(std::time::Duration::from_micros(150));
        m.store_latency.observe(std::time::Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("ferrochat_store_latency_seconds_bucket{le=\"0.0001\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("ferrochat_store_latency_seconds_bucket{le=\"0.0002\"} 1\n"));
        assert!(text.contains("ferrochat_store_latency_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("ferrochat_store_latency_seconds_count 2\n"));
    }
}
