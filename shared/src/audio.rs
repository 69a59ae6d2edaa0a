//! The binary audio frame of voice rooms (issue 14).
//!
//! Client → relay (header [`CLIENT_HEADER`] = 18 bytes, then the payload):
//!
//! | bytes  | field                         |
//! |--------|-------------------------------|
//! | 0      | version, 1                    |
//! | 1      | kind, 1 = Opus                |
//! | 2..10  | group id, u64 big-endian      |
//! | 10..14 | sequence, u32 big-endian      |
//! | 14..18 | timestamp (ms), u32 big-endian|
//!
//! Relay → listener: the same, with the speaker's user id (u64 BE) inserted
//! after the group id (header [`RELAY_HEADER`] = 26 bytes). No std-only
//! dependencies: the browser uses the same helpers.

use crate::ids::{GroupId, UserId};

/// The only format version.
pub const VERSION: u8 = 1;
/// Payload kind: Opus.
pub const KIND_OPUS: u8 = 1;
/// Length of the client → relay header.
pub const CLIENT_HEADER: usize = 18;
/// Length of the relay → listener header.
pub const RELAY_HEADER: usize = 26;
/// Largest client audio frame (header and payload) the relay accepts.
pub const MAX_AUDIO_FRAME: usize = 1000;

/// The header fields both directions share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioHeader {
    /// Payload kind ([`KIND_OPUS`]).
    pub kind: u8,
    /// The voice room (group).
    pub group_id: GroupId,
    /// The speaker's frame counter.
    pub seq: u32,
    /// The speaker's capture time, milliseconds (wrapping).
    pub ts: u32,
}

/// Why an audio frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioError {
    /// Shorter than the header.
    Short,
    /// Version other than [`VERSION`].
    Version(u8),
    /// Kind other than [`KIND_OPUS`].
    Kind(u8),
    /// Group id 0 or negative (over `i64::MAX`).
    Group,
}

impl core::fmt::Display for AudioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AudioError::Short => f.write_str("audio frame shorter than its header"),
            AudioError::Version(v) => write!(f, "unknown audio frame version {v}"),
            AudioError::Kind(k) => write!(f, "unknown audio kind {k}"),
            AudioError::Group => f.write_str("audio frame for an invalid group id"),
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn check(b: &[u8], header: usize) -> Result<(), AudioError> {
    if b.len() < header {
        return Err(AudioError::Short);
    }
    if b[0] != VERSION {
        return Err(AudioError::Version(b[0]));
    }
    if b[1] != KIND_OPUS {
        return Err(AudioError::Kind(b[1]));
    }
    if (u64_at(b, 2) as i64) <= 0 {
        return Err(AudioError::Group);
    }
    Ok(())
}

/// A client → relay frame.
pub fn encode_client(h: &AudioHeader, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(CLIENT_HEADER + payload.len());
    v.push(VERSION);
    v.push(h.kind);
    v.extend_from_slice(&(h.group_id.0 as u64).to_be_bytes());
    v.extend_from_slice(&h.seq.to_be_bytes());
    v.extend_from_slice(&h.ts.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Reads a client → relay frame: its header and payload.
pub fn parse_client(b: &[u8]) -> Result<(AudioHeader, &[u8]), AudioError> {
    check(b, CLIENT_HEADER)?;
    let h = AudioHeader {
        kind: b[1],
        group_id: GroupId(u64_at(b, 2) as i64),
        seq: u32_at(b, 10),
        ts: u32_at(b, 14),
    };
    Ok((h, &b[CLIENT_HEADER..]))
}

/// The relay → listener form of a (valid) client frame: `speaker` inserted
/// after the group id.
pub fn to_listener(client_frame: &[u8], speaker: UserId) -> Vec<u8> {
    let mut v = Vec::with_capacity(client_frame.len() + 8);
    v.extend_from_slice(&client_frame[..10]);
    v.extend_from_slice(&(speaker.0 as u64).to_be_bytes());
    v.extend_from_slice(&client_frame[10..]);
    v
}

/// Reads a relay → listener frame: header, speaker and payload.
pub fn parse_listener(b: &[u8]) -> Result<(AudioHeader, UserId, &[u8]), AudioError> {
    check(b, RELAY_HEADER)?;
    let h = AudioHeader {
        kind: b[1],
        group_id: GroupId(u64_at(b, 2) as i64),
        seq: u32_at(b, 18),
        ts: u32_at(b, 22),
    };
    Ok((h, UserId(u64_at(b, 10) as i64), &b[RELAY_HEADER..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> AudioHeader {
        AudioHeader {
            kind: KIND_OPUS,
            group_id: GroupId(0x0102_0304_0506_0708),
            seq: 0xAABB_CCDD,
            ts: 1234,
        }
    }

    #[test]
    fn client_frames_round_trip_with_the_documented_layout() {
        let f = encode_client(&header(), b"opus");
        assert_eq!(f.len(), CLIENT_HEADER + 4);
        assert_eq!(&f[..2], &[1, 1]);
        assert_eq!(&f[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&f[10..14], &[0xAA, 0xBB, 0xCC, 0xDD]);
        assert_eq!(&f[14..18], &1234u32.to_be_bytes());
        assert_eq!(parse_client(&f), Ok((header(), &b"opus"[..])));
    }

    #[test]
    fn listener_frames_carry_the_speaker_after_the_group() {
        let f = encode_client(&header(), b"xyz");
        let l = to_listener(&f, UserId(77));
        assert_eq!(l.len(), RELAY_HEADER + 3);
        assert_eq!(&l[10..18], &77u64.to_be_bytes());
        assert_eq!(parse_listener(&l), Ok((header(), UserId(77), &b"xyz"[..])));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = encode_client(&header(), b"");
        assert_eq!(parse_client(&good[..17]), Err(AudioError::Short));
        let mut v = good.clone();
        v[0] = 2;
        assert_eq!(parse_client(&v), Err(AudioError::Version(2)));
        let mut k = good.clone();
        k[1] = 9;
        assert_eq!(parse_client(&k), Err(AudioError::Kind(9)));
        let mut g = good;
        g[2..10].fill(0);
        assert_eq!(parse_client(&g), Err(AudioError::Group));
        assert_eq!(parse_listener(&[1, 1]), Err(AudioError::Short));
    }
}
