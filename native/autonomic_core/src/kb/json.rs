//! JSON encodings of the knowledge base.
//!
//! **File** (export, import and the snapshot), one record per line for readable diffs:
//!
//! ```text
//! {"format":"autonomic_kb","version":1,"records":[
//! {"id":"…","failure_type":{"atom":"node_down"},"root_cause":{"binary":"disk full"},"symptoms":["a","b"],"strategy":"supervisor_restart","recovery_ms":1200,"success":true,"timestamp":1700000000000},
//! …
//! ]}
//! ```
//!
//! Records are written oldest first (timestamp, then id), so a file is a function of the records:
//! export, import into another base, export gives the same bytes. A snapshot also carries the
//! base's epoch (`"epoch":E` after the version), which an export leaves out: it belongs to a
//! node's base, not to a set of records, and an import ignores it. Labels keep whether they were atoms or
//! binaries; `recovery_ms` keeps whether it was an integer (`1200`) or a float (`1200.0`); floats
//! are written in the shortest form that reads back to the same bits and parsed exactly
//! (serde_json's `float_roundtrip`). Reading checks every record and refuses the whole file on any
//! error, or on two different records with the same id.
//!
//! **Line** (the append log and the records exchanged between nodes): `CRC32 JSON\n`, the CRC32
//! (IEEE) of the JSON object in 8 lowercase hex digits, one space, the record, a newline. A torn
//! or damaged line is detected by its checksum.

use std::collections::HashMap;
use std::io::Write;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::record::{Failure, Label, RecoveryMs, Strategy};
use super::{FailureRef, KnowledgeBase};

pub const FORMAT: &str = "autonomic_kb";
pub const VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum JsonError {
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("not an autonomic knowledge base file (format {0:?})")]
    Format(String),
    #[error("unsupported version {0}")]
    Version(u32),
    #[error("two different records have the id {0:?}")]
    DuplicateId(String),
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        JsonError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    }
}

/// A record for serialization; the field order is the canonical one (as in [`Failure`]).
#[derive(Serialize)]
struct FailureOut<'a> {
    id: &'a str,
    failure_type: &'a Label,
    root_cause: &'a Label,
    symptoms: Vec<&'a str>,
    strategy: Strategy,
    recovery_ms: RecoveryMs,
    success: bool,
    timestamp: i64,
}

impl<'a> From<&FailureRef<'a>> for FailureOut<'a> {
    fn from(f: &FailureRef<'a>) -> Self {
        FailureOut {
            id: f.id(),
            failure_type: f.failure_type(),
            root_cause: f.root_cause(),
            symptoms: f.symptoms(),
            strategy: f.strategy(),
            recovery_ms: f.recovery_ms(),
            success: f.success(),
            timestamp: f.timestamp(),
        }
    }
}

impl<'a> From<&'a Failure> for FailureOut<'a> {
    fn from(f: &'a Failure) -> Self {
        FailureOut {
            id: f.id(),
            failure_type: f.failure_type(),
            root_cause: f.root_cause(),
            symptoms: f.symptoms().iter().map(|s| &**s).collect(),
            strategy: f.strategy(),
            recovery_ms: f.recovery_ms(),
            success: f.success(),
            timestamp: f.timestamp(),
        }
    }
}

fn to_vec(out: &FailureOut<'_>) -> Vec<u8> {
    // Serializing these types into memory cannot fail (no maps with non-string keys, no I/O).
    serde_json::to_vec(out).unwrap_or_default()
}

/// What a file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// The records only.
    Export,
    /// The records and the epoch.
    Snapshot,
}

/// Encodes the whole knowledge base as a file; returns the bytes and the number of records.
pub fn encode_file(kb: &KnowledgeBase, kind: FileKind) -> (Vec<u8>, usize) {
    let mut buf = Vec::with_capacity(64 + kb.len() * 256);
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},");
    if kind == FileKind::Snapshot {
        let _ = write!(buf, "\"epoch\":{},", kb.epoch());
    }
    buf.extend_from_slice(b"\"records\":[");
    let mut n = 0;
    for f in kb.iter() {
        buf.extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
        buf.extend_from_slice(&to_vec(&FailureOut::from(&f)));
        n += 1;
    }
    buf.extend_from_slice(b"\n]}\n");
    (buf, n)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    format: String,
    version: u32,
    #[serde(default)]
    epoch: i64,
    records: Vec<Failure>,
}

/// The content of a file.
#[derive(Debug)]
pub struct FileContents {
    pub epoch: i64,
    /// Every record once (identical duplicates dropped), in file order.
    pub records: Vec<Failure>,
}

/// Parses and validates a file; any error refuses the whole file.
pub fn decode_file(bytes: &[u8]) -> Result<FileContents, JsonError> {
    let file: FileIn = serde_json::from_slice(bytes)?;
    if file.format != FORMAT {
        return Err(JsonError::Format(file.format));
    }
    if file.version != VERSION {
        return Err(JsonError::Version(file.version));
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(file.records.len());
    let mut keep = vec![true; file.records.len()];
    for (i, f) in file.records.iter().enumerate() {
        if let Some(&j) = seen.get(f.id()) {
            if file.records[j] != *f {
                return Err(JsonError::DuplicateId(f.id().to_string()));
            }
            keep[i] = false;
        } else {
            seen.insert(f.id(), i);
        }
    }
    drop(seen);
    let mut keep = keep.into_iter();
    let mut records = file.records;
    records.retain(|_| keep.next().unwrap_or(true));
    Ok(FileContents {
        epoch: file.epoch,
        records,
    })
}

fn push_line(buf: &mut Vec<u8>, json: &[u8]) {
    let crc = crc32fast::hash(json);
    let _ = write!(buf, "{crc:08x} ");
    buf.extend_from_slice(json);
    buf.push(b'\n');
}

/// Appends a record's line to `buf`.
pub fn push_failure_line(buf: &mut Vec<u8>, f: &Failure) {
    push_line(buf, &to_vec(&FailureOut::from(f)));
}

/// Appends a stored record's line to `buf`.
pub fn push_ref_line(buf: &mut Vec<u8>, f: &FailureRef<'_>) {
    push_line(buf, &to_vec(&FailureOut::from(f)));
}

/// The records of a run of lines.
#[derive(Debug, Default)]
pub struct Lines {
    pub records: Vec<Failure>,
    /// Complete lines that failed their checksum or did not parse, skipped.
    pub corrupt: usize,
    /// Length of the prefix that ends with the last good line: what follows is a torn or damaged
    /// tail (a crash in the middle of a write) and is to be truncated.
    pub clean_len: usize,
}

fn decode_line(line: &[u8]) -> Option<Failure> {
    if line.len() < 10 || line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let json = &line[9..];
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Decodes lines. Damaged lines are skipped and counted; the tail after the last good line
/// (including a last line without its newline) is reported through [`Lines::clean_len`].
pub fn decode_lines(bytes: &[u8]) -> Lines {
    let mut out = Lines::default();
    let mut pos = 0;
    let mut bad_since_clean = 0;
    while pos < bytes.len() {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            break; // a torn last line
        };
        let line = &bytes[pos..pos + nl];
        pos += nl + 1;
        match decode_line(line) {
            Some(f) => {
                out.records.push(f);
                out.corrupt += bad_since_clean;
                bad_since_clean = 0;
                out.clean_len = pos;
            }
            None => bad_since_clean += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::raw;
    use super::*;

    #[test]
    fn lines_round_trip_and_detect_damage() {
        let a = Failure::new(raw("a", &["x", "y"], 1)).unwrap();
        let b = Failure::new(raw("b", &["ü", "日本"], 2)).unwrap();
        let mut buf = Vec::new();
        push_failure_line(&mut buf, &a);
        push_failure_line(&mut buf, &b);
        let lines = decode_lines(&buf);
        assert_eq!(lines.records, vec![a.clone(), b.clone()]);
        assert_eq!((lines.corrupt, lines.clean_len), (0, buf.len()));

        // A torn last line is not a record, and the clean prefix ends before it.
        let first_len = buf.iter().position(|&c| c == b'\n').unwrap() + 1;
        let torn = &buf[..buf.len() - 3];
        let lines = decode_lines(torn);
        assert_eq!(lines.records, vec![a.clone()]);
        assert_eq!(lines.clean_len, first_len);

        // A damaged line in the middle is skipped and counted.
        let mut damaged = buf.clone();
        damaged[20] ^= 0x01;
        let mut three = damaged.clone();
        push_failure_line(&mut three, &a);
        let lines = decode_lines(&three);
        assert_eq!(lines.records, vec![b.clone(), a.clone()]);
        assert_eq!(lines.corrupt, 1);
        assert_eq!(lines.clean_len, three.len());

        // A damaged last line is a tail to truncate, not counted as corruption.
        let lines = decode_lines(&damaged[first_len..]);
        assert!(lines.records.len() == 1 && lines.corrupt == 0);
        let mut tail_damaged = buf.clone();
        let n = tail_damaged.len();
        tail_damaged[n - 5] ^= 0x01;
        let lines = decode_lines(&tail_damaged);
        assert_eq!(lines.records, vec![a]);
        assert_eq!((lines.corrupt, lines.clean_len), (0, first_len));
    }

    #[test]
    fn files_are_checked() {
        assert!(matches!(
            decode_file(b"{\"format\":\"other\",\"version\":1,\"records\":[]}"),
            Err(JsonError::Format(_))
        ));
        assert!(matches!(
            decode_file(b"{\"format\":\"autonomic_kb\",\"version\":2,\"records\":[]}"),
            Err(JsonError::Version(2))
        ));
        assert!(matches!(
            decode_file(b"{\"format\":\"autonomic_kb\",\"version\":1,\"records\":["),
            Err(JsonError::Syntax { .. })
        ));
        assert!(matches!(
            decode_file(b"{\"format\":\"autonomic_kb\",\"version\":1,\"records\":[],\"x\":1}"),
            Err(JsonError::Syntax { .. })
        ));
        let rec = |id: &str, sym: &str| {
            format!(
                "{{\"id\":\"{id}\",\"failure_type\":{{\"atom\":\"t\"}},\"root_cause\":{{\"binary\":\"c\"}},\
                 \"symptoms\":[\"{sym}\"],\"strategy\":\"pause\",\"recovery_ms\":1,\"success\":true,\"timestamp\":5}}"
            )
        };
        let file = |recs: &[String]| {
            format!(
                "{{\"format\":\"autonomic_kb\",\"version\":1,\"records\":[{}]}}",
                recs.join(",")
            )
        };
        let ok =
            decode_file(file(&[rec("a", "s"), rec("a", "s"), rec("b", "s")]).as_bytes()).unwrap();
        assert_eq!(ok.records.len(), 2);
        assert_eq!(ok.epoch, 0);
        assert!(matches!(
            decode_file(file(&[rec("a", "s"), rec("a", "t")]).as_bytes()),
            Err(JsonError::DuplicateId(_))
        ));
        // Invalid records: empty symptom, unknown strategy, negative recovery, missing field.
        for bad in [
            rec("a", ""),
            rec("a", "s").replace("pause", "reboot"),
            rec("a", "s").replace("\"recovery_ms\":1", "\"recovery_ms\":-1"),
            rec("a", "s").replace("\"success\":true,", ""),
            rec("a", "s").replace("{\"atom\":\"t\"}", "\"t\""),
        ] {
            assert!(
                decode_file(file(std::slice::from_ref(&bad)).as_bytes()).is_err(),
                "{bad}"
            );
        }
    }
}
