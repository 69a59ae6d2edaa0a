//! Message ids: UUIDv7, generated on the write path by whichever backend
//! stores the message (one generator per writer).

use shared::MsgId;

/// Message ids: UUIDv7 (RFC 9562), strictly increasing even within one
/// millisecond (a 12-bit counter in `rand_a`) and across restarts (it
/// resumes after the largest stored id, even if the clock went back).
///
/// With several writers (relays on one PostgreSQL database) each is
/// increasing on its own; ids of different writers interleave, which is
/// why nothing orders or pages by message id (see `docs/architecture.md`).
#[derive(Debug)]
pub struct IdGen {
    last_ms: i64,
    counter: u16,
    rng: u64,
}

impl IdGen {
    /// A generator whose ids all come after `last` (the largest id stored,
    /// if any).
    pub fn after(last: Option<MsgId>) -> IdGen {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("OS random source");
        let mut g = IdGen {
            last_ms: 0,
            counter: 0,
            rng: u64::from_le_bytes(seed) | 1,
        };
        if let Some(id) = last {
            let b = id.as_bytes();
            let mut ms = [0u8; 8];
            ms[2..].copy_from_slice(&b[..6]);
            g.last_ms = i64::from_be_bytes(ms);
            g.counter = u16::from_be_bytes([b[6] & 0x0f, b[7]]);
        }
        g
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: ids need uniqueness and spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next id and its millisecond timestamp.
    pub fn next(&mut self, now: i64) -> (MsgId, i64) {
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
        let mut g = IdGen::after(None);
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
        // A generator resumed after the last id goes on after it, even
        // with the clock behind.
        let (next, _) = IdGen::after(Some(last)).next(1_600_000_000_000);
        assert!(next > last);
    }
}
