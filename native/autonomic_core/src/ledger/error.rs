//! Errors of the ledger.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::merkle::ProofError;

/// What is wrong with a ledger's files, found while opening it. Each names what a reader of the
/// files would have to guess at, so open refuses rather than guess (a torn tail, the only damage a
/// crash can cause, is not among them: it is truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// A segment file does not start with the segment magic and its own first sequence number.
    SegmentHeader,
    /// The segments do not follow each other (a segment is missing, or the first is not seq 0).
    SegmentSequence,
    /// A frame's length does not match its checksum, or is out of range.
    FrameHeader,
    /// A frame ends past the end of a segment that is not the last one.
    TruncatedFrame,
    /// A frame's action and result lengths do not add up to its length.
    RecordLayout,
}

impl Corruption {
    /// A short snake_case name (for the Erlang side).
    pub fn name(self) -> &'static str {
        match self {
            Corruption::SegmentHeader => "segment_header",
            Corruption::SegmentSequence => "segment_sequence",
            Corruption::FrameHeader => "frame_header",
            Corruption::TruncatedFrame => "truncated_frame",
            Corruption::RecordLayout => "record_layout",
        }
    }
}

#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is locked by another open ledger", .0.display())]
    Locked(PathBuf),
    #[error("corrupt ledger: {} at byte {offset} (record {seq}): {}", segment.display(), what.name())]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        seq: u64,
        what: Corruption,
    },
    #[error("payload of {size} bytes is over the {max}-byte limit")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("a write or fsync failed earlier; close and reopen the ledger")]
    Failed,
    #[error("the ledger is closed")]
    Closed,
    #[error("too many appends waiting ({bytes} bytes queued)")]
    Overloaded { bytes: usize },
    #[error("no record {seq}: the ledger holds {size}")]
    NoSuchRecord { seq: u64, size: u64 },
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("{} holds a record that does not decode at byte {offset}", path.display())]
    Unreadable { path: PathBuf, offset: u64 },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl LedgerError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LedgerError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
