//! The queue over time, seen two ways once per second: the relay's count
//! (`queued` of the agents' 133 boards: the largest seen in that second,
//! or the last one seen when no board came) and the generator's own
//! (visitors that sent 130 and have no 131 `open` yet).

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// One second of the series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuePoint {
    /// Seconds since the first arrival.
    pub t: u32,
    /// The boards' `queued` (the largest in the second).
    pub queued: u32,
    /// Visitors waiting for an agent, as the generator counts them.
    pub waiting: u32,
}

/// The series and the readings it is sampled from.
#[derive(Default)]
pub struct Queue {
    last_board: AtomicU32,
    peak_board: AtomicU32,
    board_seen: AtomicBool,
    waiting: AtomicU32,
    series: Mutex<Vec<QueuePoint>>,
}

impl Queue {
    /// An agent's board said `queued`.
    pub fn board(&self, queued: u32) {
        self.last_board.store(queued, Relaxed);
        self.peak_board.fetch_max(queued, Relaxed);
        self.board_seen.store(true, Relaxed);
    }

    /// A visitor sent 130.
    pub fn enter(&self) {
        self.waiting.fetch_add(1, Relaxed);
    }

    /// A visitor got an agent.
    pub fn leave(&self) {
        self.waiting.fetch_sub(1, Relaxed);
    }

    /// Visitors waiting now (the generator's count).
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Relaxed)
    }

    /// Appends the point of second `t`.
    pub fn sample(&self, t: u32) -> QueuePoint {
        let queued = if self.board_seen.swap(false, Relaxed) {
            self.peak_board.swap(0, Relaxed)
        } else {
            self.last_board.load(Relaxed)
        };
        let p = QueuePoint {
            t,
            queued,
            waiting: self.waiting(),
        };
        self.series.lock().unwrap().push(p);
        p
    }

    /// Samples once per second from now until the task is dropped.
    pub async fn sample_every_second(&self) {
        let start = tokio::time::Instant::now();
        for t in 1.. {
            tokio::time::sleep_until(start + Duration::from_secs(t.into())).await;
            self.sample(t);
        }
    }

    /// The series so far.
    pub fn series(&self) -> Vec<QueuePoint> {
        self.series.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_takes_its_peak_board_or_the_last_one() {
        let q = Queue::default();
        q.enter();
        q.enter();
        q.board(3);
        q.board(7);
        q.board(2);
        assert_eq!(
            q.sample(1),
            QueuePoint {
                t: 1,
                queued: 7,
                waiting: 2
            }
        );
        q.leave();
        // No board in second 2: the last one still holds.
        assert_eq!(q.sample(2).queued, 2);
        assert_eq!(q.sample(2).waiting, 1);
        assert_eq!(q.series().len(), 3);
    }
}
