//! The commit log: where a chat becomes durable before SQLite has it.
//!
//! The front thread (`front.rs`) appends each group of resolved chats here
//! with one `write` and one `fdatasync`, then answers; the indexer inserts
//! them into SQLite later. The file is preallocated and written with zeros
//! once, so overwriting it needs no metadata update and `fdatasync` is a
//! single data flush (docs/benchmarks.md, "floor").
//!
//! Layout: records back to back from offset 0, each
//! `len: u32 | crc: u32 | lsn: u64 | payload[len]`, little-endian, with the
//! CRC-32 over the LSN and the payload. LSNs increase by one per record.
//! Writing restarts at offset 0 only when everything before has been
//! applied to SQLite, so the records a crash can leave unapplied are always
//! in the run that starts at offset 0; the run ends at the first record
//! whose CRC fails (a torn write, never answered) or whose LSN is not the
//! previous one plus one (a stale record from before the last restart).

use crate::store::ConvId;
use shared::{Content, MsgId, UserId};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes before each record's payload: length, CRC-32 and LSN.
const HEADER: usize = 4 + 4 + 8;
/// `client_msg_id` length that means "none".
const NO_KEY: u16 = u16::MAX;

/// A resolved chat: everything the indexer needs to insert it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    /// Log sequence number.
    pub lsn: u64,
    /// Conversation.
    pub conv: ConvId,
    /// Position in the conversation.
    pub seq: u64,
    /// Relay-assigned id.
    pub msg_id: MsgId,
    /// Sender.
    pub from: UserId,
    /// Storage time, ms since the epoch.
    pub ts: i64,
    /// Sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// Content.
    pub content: Content,
}

impl Record {
    /// Appends the framed record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        out.extend_from_slice(&self.conv.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(self.msg_id.as_bytes());
        out.extend_from_slice(&self.from.0.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.content.content_type.to_le_bytes());
        match &self.client_msg_id {
            // Keys are validated to at most 64 bytes (shared::limits).
            Some(k) => {
                out.extend_from_slice(&(k.len().min(NO_KEY as usize - 1) as u16).to_le_bytes());
                out.extend_from_slice(&k.as_bytes()[..k.len().min(NO_KEY as usize - 1)]);
            }
            None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
        }
        out.extend_from_slice(&(self.content.body.len() as u32).to_le_bytes());
        out.extend_from_slice(self.content.body.as_bytes());
        let len = (out.len() - start - HEADER) as u32;
        out[start + 8..start + 16].copy_from_slice(&self.lsn.to_le_bytes());
        let crc = crc32fast::hash(&out[start + 8..]);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// The record at the start of `bytes` and its framed length, if it is
    /// whole and its CRC matches.
    fn decode(bytes: &[u8]) -> Option<(Record, usize)> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
        let framed = bytes.get(8..HEADER.checked_add(len)?)?;
        if len == 0 || crc32fast::hash(framed) != crc {
            return None;
        }
        let mut r = Reader(framed);
        let lsn = r.u64()?;
        let conv = r.u64()? as i64;
        let seq = r.u64()?;
        let msg_id = MsgId::from_slice(r.take(16)?).ok()?;
        let from = UserId(r.u64()? as i64);
        let ts = r.u64()? as i64;
        let content_type = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let key_len = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let client_msg_id = match key_len {
            NO_KEY => None,
            n => Some(String::from_utf8(r.take(n as usize)?.to_vec()).ok()?),
        };
        let body_len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
        let body = String::from_utf8(r.take(body_len)?.to_vec()).ok()?;
        let record = Record {
            lsn,
            conv,
            seq,
            msg_id,
            from,
            ts,
            client_msg_id,
            content: Content { content_type, body },
        };
        Some((record, HEADER + len))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The run of records from offset 0: whole, CRC-checked, each LSN the
/// previous one plus one.
pub(super) fn scan(bytes: &[u8]) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut at = 0;
    while let Some((record, n)) = Record::decode(&bytes[at..]) {
        if out.last().is_some_and(|prev| record.lsn != prev.lsn + 1) {
            break;
        }
        out.push(record);
        at += n;
    }
    out
}

/// The log file, opened for appending.
pub(super) struct CommitLog {
    file: File,
    size: u64,
    at: u64,
    durable: bool,
}

/// The log file next to a database: `<db>-log`.
pub(super) fn path_for(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_os_string();
    p.push("-log");
    p.into()
}

/// The records a log file holds (none if it does not exist).
pub(super) fn read(path: &Path) -> io::Result<Vec<Record>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(scan(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

impl CommitLog {
    /// Opens the log for writing from offset 0, first (re)creating it at
    /// `size` bytes of zeros if it has another size. Call only once every
    /// record in it is applied: writing starts over it.
    pub fn open(path: &Path, size: u64, durable: bool) -> io::Result<CommitLog> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        if file.metadata()?.len() != size {
            file.set_len(0)?;
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < size {
                let n = zeros.len().min((size - at) as usize);
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(CommitLog {
            file,
            size,
            at: 0,
            durable,
        })
    }

    /// Whether `n` more bytes fit before the end of the file.
    pub fn fits(&self, n: usize) -> bool {
        self.at + n as u64 <= self.size
    }

    /// The most bytes one append may carry.
    pub fn capacity(&self) -> usize {
        self.size as usize
    }

    /// Continues writing at offset 0. Only once everything logged so far
    /// is applied.
    pub fn rewind(&mut self) {
        self.at = 0;
    }

    /// Writes `bytes` (whole records) at the current position and, when
    /// durable, waits until they are on disk.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert!(self.fits(bytes.len()));
        self.file.write_all_at(bytes, self.at)?;
        if self.durable {
            self.file.sync_data()?;
        }
        self.at += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lsn: u64, key: Option<&str>, body: &str) -> Record {
        Record {
            lsn,
            conv: 7,
            seq: lsn + 100,
            msg_id: MsgId::from_bytes([lsn as u8; 16]),
            from: UserId(3),
            ts: 1_700_000_000_000 + lsn as i64,
            client_msg_id: key.map(str::to_string),
            content: Content {
                content_type: 1,
                body: body.to_string(),
            },
        }
    }

    fn encoded(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            r.encode(&mut out);
        }
        out
    }

    #[test]
    fn records_round_trip_with_and_without_keys() {
        let rs = vec![
            record(1, Some("k-1"), "hi"),
            record(2, None, ""),
            record(3, Some(""), "héllo 👋\u{0}"),
        ];
        let mut bytes = encoded(&rs);
        bytes.extend_from_slice(&[0; 64]);
        assert_eq!(scan(&bytes), rs);
    }

    #[test]
    fn a_torn_last_record_ends_the_run() {
        let rs = vec![record(1, None, "a"), record(2, None, "bb")];
        let mut bytes = encoded(&rs);
        let whole = bytes.len();
        record(3, None, "ccc").encode(&mut bytes);
        // The last record reached the disk only in part.
        bytes.truncate(whole + 20);
        bytes.extend_from_slice(&[0; 40]);
        assert_eq!(scan(&bytes), rs);
        // A flipped byte inside it fails its CRC just the same.
        let mut flipped = encoded(&[rs[0].clone(), rs[1].clone(), record(3, None, "ccc")]);
        let n = flipped.len();
        flipped[n - 2] ^= 0x40;
        assert_eq!(scan(&flipped), rs);
    }

    #[test]
    fn stale_records_after_a_rewind_are_not_replayed() {
        // Records 10..=14 were written, applied, and the log restarted at
        // offset 0 with 15 and 16, shorter, over the start of the old run.
        let old: Vec<Record> = (10..15).map(|l| record(l, None, "old message")).collect();
        let mut bytes = encoded(&old);
        let new = vec![record(15, None, "n"), record(16, None, "m")];
        let fresh = encoded(&new);
        bytes[..fresh.len()].copy_from_slice(&fresh);
        assert_eq!(scan(&bytes), new);
        // Same with the new run ending exactly on an old record boundary.
        let mut bytes = encoded(&old);
        let one = encoded(&[record(20, None, "old message")]);
        bytes[..one.len()].copy_from_slice(&one);
        assert_eq!(scan(&bytes), vec![record(20, None, "old message")]);
    }

    #[test]
    fn the_file_is_preallocated_reused_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("x.db"));
        assert!(read(&path).unwrap().is_empty());
        let mut log = CommitLog::open(&path, 4096, true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        let rs = vec![record(1, Some("a"), "one"), record(2, None, "two")];
        log.append(&encoded(&rs)).unwrap();
        assert_eq!(read(&path).unwrap(), rs);
        assert!(!log.fits(4096));
        drop(log);
        // Reopened at the same size: the contents stay until overwritten.
        let mut log = CommitLog::open(&path, 4096, true).unwrap();
        assert_eq!(read(&path).unwrap(), rs);
        log.append(&encoded(&[record(3, None, "three")])).unwrap();
        assert_eq!(read(&path).unwrap(), vec![record(3, None, "three")]);
        // Reopened at another size: recreated empty.
        drop(log);
        CommitLog::open(&path, 8192, false).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
        assert!(read(&path).unwrap().is_empty());
    }
}
