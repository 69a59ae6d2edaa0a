//! Message ids: UUIDv7, generated on the write path.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension};
use shared::MsgId;

/// Message ids: UUIDv7 (RFC 9562), strictly increasing even within one
/// millisecond (a 12-bit counter in `rand_a`) and across restarts (it
/// resumes after the largest stored id, even if the clock went back).
pub(super) struct IdGen {
    last_ms: i64,
    counter: u16,
    rng: u64,
}

impl IdGen {
    pub(super) fn resume(conn: &Connection) -> Result<IdGen> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("OS random source");
        let mut g = IdGen {
            last_ms: 0,
            counter: 0,
            rng: u64::from_le_bytes(seed) | 1,
        };
        let last: Option<Vec<u8>> = conn
            .query_row(
                "SELECT msg_id FROM messages ORDER BY msg_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(b) = last.filter(|b| b.len() == 16) {
            let mut ms = [0u8; 8];
            ms[2..].copy_from_slice(&b[..6]);
            g.last_ms = i64::from_be_bytes(ms);
            g.counter = u16::from_be_bytes([b[6] & 0x0f, b[7]]);
        }
        Ok(g)
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: ids need uniqueness and spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next id and its millisecond timestamp.
    pub(super) fn next(&mut self, now: i64) -> (MsgId, i64) {
        let mut ms = now.max(self.last_ms);
        if ms == self.last_ms {
            self.counter += 1;
            if self.counter > 0x0fff {
                ms += 1;
                self.counter = (self.rand() & 0x3ff) as u16;
            }
        } else {
            // Start low in the counter range so bursts have room.
            self.counter = (self.rand() & 0x3ff) as u16;
        }
        self.last_ms = ms;
        let r = self.rand();
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&(ms as u64).to_be_bytes()[2..]);
        b[6] = 0x70 | ((self.counter >> 8) as u8 & 0x0f);
        b[7] = self.counter as u8;
        b[8] = 0x80 | ((r >> 56) as u8 & 0x3f);
        b[9..].copy_from_slice(&r.to_be_bytes()[1..]);
        (MsgId::from_bytes(b), ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_strictly_and_carry_the_time() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::MIGRATIONS[0])
            .unwrap();
        let mut g = IdGen::resume(&conn).unwrap();
        let mut last = MsgId::nil();
        for i in 0..10_000 {
            // the clock stalls and even goes back: ids still increase
            let now = 1_700_000_000_000 - (i % 3);
            let (id, ts) = g.next(now);
            assert!(id > last, "{id} <= {last}");
            assert_eq!(id.get_version_num(), 7);
            assert!(ts >= 1_700_000_000_000);
            last = id;
        }
    }
}
