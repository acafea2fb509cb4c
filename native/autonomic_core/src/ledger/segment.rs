//! Segment files: naming, atomic creation and the recovery scan.
//!
//! A ledger directory holds `LOCK` and segment files named after their first sequence number,
//! `00000000000000000000.seg`, `00000000000000052113.seg`, ... Each segment starts with a 16-byte
//! header (`AUTLDG01` and its first sequence number, big-endian) followed by frames
//! ([`super::record`]). Records never span segments. A segment is created under a temporary name,
//! synced, renamed and its directory synced, so a segment file either exists with its header or
//! not at all; leftover temporary files are removed on open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{Corruption, LedgerError};
use super::record::{self, Body, HeaderError, FRAME_HEADER};

pub const MAGIC: [u8; 8] = *b"AUTLDG01";
pub const HEADER_LEN: u64 = 16;
const SUFFIX: &str = ".seg";
const TMP_SUFFIX: &str = ".seg.tmp";
const READ_BUFFER: usize = 1 << 20;

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn header(first_seq: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..].copy_from_slice(&first_seq.to_be_bytes());
    h
}

/// Makes the directory entry changes (a created or renamed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io("sync directory", dir, e))
}

/// The segments of `dir` sorted by first sequence number, after removing leftover temporary
/// files (a crash during [`create`]); also returns how many were removed.
pub fn list(dir: &Path) -> Result<(Vec<(u64, PathBuf)>, usize), LedgerError> {
    let mut segments = Vec::new();
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(|e| LedgerError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LedgerError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_SUFFIX) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| LedgerError::io("remove", &path, e))?;
            removed += 1;
        } else if let Some(first) = parse_name(name) {
            segments.push((first, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(first, _)| *first);
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok((segments, removed))
}

/// Creates the segment starting at `first_seq` atomically and returns it open for writing.
pub fn create(dir: &Path, first_seq: u64) -> Result<(File, PathBuf), LedgerError> {
    let path = dir.join(file_name(first_seq));
    let tmp = dir.join(format!("{first_seq:020}{TMP_SUFFIX}"));
    let on = |op: &'static str| {
        let tmp = &tmp;
        move |e| LedgerError::io(op, tmp, e)
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(on("create"))?;
    file.write_all_at(&header(first_seq), 0)
        .map_err(on("write"))?;
    file.sync_all().map_err(on("sync"))?;
    fs::rename(&tmp, &path).map_err(on("rename"))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// How a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The last frame ends exactly at the end of the file.
    Clean,
    /// The file ends inside a frame (a crash mid-append), or with zeros only (an extension the
    /// file system made durable before the data): `bytes` bytes from `offset` are not a frame.
    Torn {
        offset: u64,
        bytes: u64,
        zero_fill: bool,
    },
}

/// What a scan found.
#[derive(Debug, Clone, Copy)]
pub struct Scan {
    /// Records in the segment.
    pub records: u64,
    /// End of the last whole frame.
    pub valid_len: u64,
    pub tail: Tail,
}

/// Reads the segment at `path`, calling `visit(offset, body)` for every whole frame, in order.
/// A torn tail is accepted only in the last segment (`is_last`); anything else that is not a
/// frame is corruption, reported with the byte offset and the sequence number it would have had.
pub fn scan(
    path: &Path,
    first_seq: u64,
    is_last: bool,
    mut visit: impl FnMut(u64, &Body<'_>),
) -> Result<Scan, LedgerError> {
    let file = File::open(path).map_err(|e| LedgerError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| LedgerError::io("stat", path, e))?
        .len();
    let mut r = BufReader::with_capacity(READ_BUFFER, file);
    let read_err = |e| LedgerError::io("read", path, e);
    let corrupt = |offset, seq, what| LedgerError::Corrupt {
        segment: path.to_path_buf(),
        offset,
        seq,
        what,
    };

    let mut head = [0u8; HEADER_LEN as usize];
    if len < HEADER_LEN {
        return Err(corrupt(0, first_seq, Corruption::SegmentHeader));
    }
    r.read_exact(&mut head).map_err(read_err)?;
    if head != header(first_seq) {
        return Err(corrupt(0, first_seq, Corruption::SegmentHeader));
    }

    let mut offset = HEADER_LEN;
    let mut seq = first_seq;
    let mut body = Vec::new();
    let torn = |offset: u64, zero_fill| Tail::Torn {
        offset,
        bytes: len - offset,
        zero_fill,
    };
    let tail = loop {
        let remaining = len - offset;
        if remaining == 0 {
            break Tail::Clean;
        }
        if remaining < FRAME_HEADER as u64 {
            if is_last {
                break torn(offset, false);
            }
            return Err(corrupt(offset, seq, Corruption::TruncatedFrame));
        }
        let mut fh = [0u8; FRAME_HEADER];
        r.read_exact(&mut fh).map_err(read_err)?;
        let body_len = match record::decode_header(&fh) {
            Ok(n) => n as u64,
            Err(HeaderError::Checksum) if is_last && fh == [0; FRAME_HEADER] => {
                if rest_is_zero(&mut r, remaining - FRAME_HEADER as u64).map_err(read_err)? {
                    break torn(offset, true);
                }
                return Err(corrupt(offset, seq, Corruption::FrameHeader));
            }
            Err(_) => return Err(corrupt(offset, seq, Corruption::FrameHeader)),
        };
        if remaining - (FRAME_HEADER as u64) < body_len {
            if is_last {
                break torn(offset, false);
            }
            return Err(corrupt(offset, seq, Corruption::TruncatedFrame));
        }
        // body_len <= MAX_BODY (checked by decode_header), so this allocation is bounded.
        body.resize(body_len as usize, 0);
        r.read_exact(&mut body).map_err(read_err)?;
        let Some(decoded) = record::decode_body(&body) else {
            return Err(corrupt(offset, seq, Corruption::RecordLayout));
        };
        visit(offset, &decoded);
        offset += FRAME_HEADER as u64 + body_len;
        seq += 1;
    };
    Ok(Scan {
        records: seq - first_seq,
        valid_len: match tail {
            Tail::Clean => len,
            Tail::Torn { offset, .. } => offset,
        },
        tail,
    })
}

fn rest_is_zero(r: &mut impl Read, mut n: u64) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    while n > 0 {
        let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        let got = r.read(&mut buf[..want])?;
        if got == 0 {
            return Ok(true);
        }
        if buf[..got].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        n -= got as u64;
    }
    Ok(true)
}

/// Cuts a torn tail off the last segment and makes the new length durable.
pub fn truncate(path: &Path, len: u64) -> Result<(), LedgerError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LedgerError::io("open", path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| LedgerError::io("truncate", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_others() {
        assert_eq!(file_name(52113), "00000000000000052113.seg");
        assert_eq!(parse_name("00000000000000052113.seg"), Some(52113));
        assert_eq!(parse_name("52113.seg"), None);
        assert_eq!(parse_name("0000000000000005211x.seg"), None);
        assert_eq!(parse_name("00000000000000052113.seg.tmp"), None);
        assert_eq!(parse_name("LOCK"), None);
    }
}
