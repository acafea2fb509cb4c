//! Receipts, their canonical encoding and hash, and the frame that holds one on disk.
//!
//! Canonical encoding (all integers big-endian), the exact bytes the receipt hash covers:
//!
//! ```text
//! seq        u64
//! id         16 bytes (UUIDv7)
//! prev_hash  32 bytes (all zero for seq 0)
//! timestamp  i64, microseconds since the Unix epoch
//! action     u32 length, then the bytes
//! result     u32 length, then the bytes
//! ```
//!
//! `hash = SHA-256(canonical)`. Fixed-width fields need no length; the two variable ones are
//! length-prefixed, so no two different receipts share an encoding.
//!
//! Frame (one per record, appended to a segment file):
//!
//! ```text
//! body_len   u32 (big-endian)  = canonical length + 32
//! len_crc    u32 (big-endian)  = CRC-32 of the 4 body_len bytes
//! canonical  body_len - 32 bytes
//! hash       32 bytes
//! ```
//!
//! The checksum guards only the length, and that is deliberate: it is what tells a torn write
//! from tampering. A crash mid-append leaves a *prefix* of the frame (a short header, or a body
//! shorter than `body_len`), which recovery truncates. A changed length fails `len_crc` and is
//! reported as corruption, never mistaken for a torn tail and truncated away. A change anywhere
//! else in a complete frame leaves it readable, and `verify` names it: the body is covered by the
//! hash, the hash by the next record's `prev_hash` and by the Merkle tree.

use sha2::{Digest, Sha256};

use super::id::RecordId;
use super::merkle::Hash;

/// The `prev_hash` of the first receipt.
pub const ZERO_HASH: Hash = [0; 32];
/// Largest `action` plus `result`, in bytes.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Canonical encoding without the action and result bytes.
pub const CANONICAL_FIXED: usize = 8 + 16 + 32 + 8 + 4 + 4;
/// Frame header: `body_len` and `len_crc`.
pub const FRAME_HEADER: usize = 8;
/// Smallest and largest valid `body_len`.
pub const MIN_BODY: usize = CANONICAL_FIXED + 32;
pub const MAX_BODY: usize = MIN_BODY + MAX_PAYLOAD;

/// A receipt: one record of the ledger, as returned to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub id: RecordId,
    /// Microseconds since the Unix epoch (wall clock of the appending node).
    pub timestamp: i64,
    pub action: Vec<u8>,
    pub result: Vec<u8>,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// What the writer learns about a record it appended (the caller already holds the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub id: RecordId,
    pub timestamp: i64,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl Appended {
    pub fn into_receipt(self, action: Vec<u8>, result: Vec<u8>) -> Receipt {
        Receipt {
            seq: self.seq,
            id: self.id,
            timestamp: self.timestamp,
            action,
            result,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Fields of a record, for encoding.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: u64,
    pub id: &'a RecordId,
    pub prev_hash: &'a Hash,
    pub timestamp: i64,
    pub action: &'a [u8],
    pub result: &'a [u8],
}

/// Appends the canonical encoding of `f` to `out`. `action` and `result` are at most
/// [`MAX_PAYLOAD`] bytes together (checked by the caller), so their lengths fit in a `u32`.
pub fn encode_canonical(out: &mut Vec<u8>, f: &Fields<'_>) {
    out.extend_from_slice(&f.seq.to_be_bytes());
    out.extend_from_slice(&f.id.0);
    out.extend_from_slice(f.prev_hash);
    out.extend_from_slice(&f.timestamp.to_be_bytes());
    out.extend_from_slice(&(f.action.len() as u32).to_be_bytes());
    out.extend_from_slice(f.action);
    out.extend_from_slice(&(f.result.len() as u32).to_be_bytes());
    out.extend_from_slice(f.result);
}

/// The receipt hash of a canonical encoding.
pub fn hash_canonical(canonical: &[u8]) -> Hash {
    Sha256::digest(canonical).into()
}

/// The receipt hash of `f`.
pub fn receipt_hash(f: &Fields<'_>) -> Hash {
    let mut buf = Vec::with_capacity(CANONICAL_FIXED + f.action.len() + f.result.len());
    encode_canonical(&mut buf, f);
    hash_canonical(&buf)
}

/// Size of the frame of a record with this payload.
pub fn frame_len(action: usize, result: usize) -> usize {
    FRAME_HEADER + MIN_BODY + action + result
}

/// Appends the frame of `f` to `out` and returns the record's hash.
pub fn encode_frame(out: &mut Vec<u8>, f: &Fields<'_>) -> Hash {
    let body_len = (MIN_BODY + f.action.len() + f.result.len()) as u32;
    let len_bytes = body_len.to_be_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc32fast::hash(&len_bytes).to_be_bytes());
    let start = out.len();
    encode_canonical(out, f);
    let hash = hash_canonical(&out[start..]);
    out.extend_from_slice(&hash);
    hash
}

/// Why a frame header is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// `len_crc` does not match `body_len`.
    Checksum,
    /// The checksum matches but the length is outside `MIN_BODY..=MAX_BODY`.
    Length(u32),
}

/// Reads a frame header and returns `body_len`.
pub fn decode_header(header: &[u8; FRAME_HEADER]) -> Result<usize, HeaderError> {
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if crc32fast::hash(&len_bytes) != crc {
        return Err(HeaderError::Checksum);
    }
    let len = u32::from_be_bytes(len_bytes);
    let body = len as usize;
    if (MIN_BODY..=MAX_BODY).contains(&body) {
        Ok(body)
    } else {
        Err(HeaderError::Length(len))
    }
}

/// A frame body, borrowed from the buffer it was read into.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub seq: u64,
    pub id: RecordId,
    pub prev_hash: Hash,
    pub timestamp: i64,
    pub action: &'a [u8],
    pub result: &'a [u8],
    /// The stored hash (what the record claims to hash to).
    pub hash: Hash,
    /// The bytes the stored hash should cover.
    pub canonical: &'a [u8],
}

impl Body<'_> {
    pub fn to_receipt(&self) -> Receipt {
        Receipt {
            seq: self.seq,
            id: self.id,
            timestamp: self.timestamp,
            action: self.action.to_vec(),
            result: self.result.to_vec(),
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }

    /// Whether the stored hash is the hash of the stored fields.
    pub fn hash_matches(&self) -> bool {
        hash_canonical(self.canonical) == self.hash
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

fn take_array<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    take(buf, N)?.try_into().ok()
}

/// Parses a body of `body_len` bytes. `None` when its internal lengths do not add up: the
/// action and result lengths must account for every byte between the fixed fields and the hash.
pub fn decode_body(body: &[u8]) -> Option<Body<'_>> {
    let canonical_len = body.len().checked_sub(32)?;
    let (canonical, hash) = body.split_at(canonical_len);
    let mut cur = canonical;
    let seq = u64::from_be_bytes(take_array(&mut cur)?);
    let id = RecordId(take_array(&mut cur)?);
    let prev_hash: Hash = take_array(&mut cur)?;
    let timestamp = i64::from_be_bytes(take_array(&mut cur)?);
    let action_len = u32::from_be_bytes(take_array(&mut cur)?) as usize;
    let action = take(&mut cur, action_len)?;
    let result_len = u32::from_be_bytes(take_array(&mut cur)?) as usize;
    let result = take(&mut cur, result_len)?;
    if !cur.is_empty() {
        return None;
    }
    Some(Body {
        seq,
        id,
        prev_hash,
        timestamp,
        action,
        result,
        hash: hash.try_into().ok()?,
        canonical,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_id() -> RecordId {
        RecordId(*b"\x01\x90\xf0\xa1\xb2\xc3\x70\x00\x80\x00\x00\x00\x00\x00\x00\x01")
    }

    #[test]
    fn canonical_encoding_is_the_documented_layout() {
        let id = sample_id();
        let prev = [0xab; 32];
        let f = Fields {
            seq: 5,
            id: &id,
            prev_hash: &prev,
            timestamp: -2,
            action: b"restart",
            result: b"ok",
        };
        let mut buf = Vec::new();
        encode_canonical(&mut buf, &f);
        let mut expected = Vec::new();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]);
        expected.extend_from_slice(&id.0);
        expected.extend_from_slice(&[0xab; 32]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(b"restart");
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"ok");
        assert_eq!(buf, expected);
        assert_eq!(receipt_hash(&f), hash_canonical(&expected));
    }

    #[test]
    fn length_prefixes_separate_action_from_result() {
        let id = sample_id();
        let f1 = Fields {
            seq: 0,
            id: &id,
            prev_hash: &ZERO_HASH,
            timestamp: 0,
            action: b"ab",
            result: b"c",
        };
        let f2 = Fields {
            action: b"a",
            result: b"bc",
            ..f1
        };
        assert_ne!(receipt_hash(&f1), receipt_hash(&f2));
    }

    #[test]
    fn frame_round_trip() {
        let id = sample_id();
        let f = Fields {
            seq: 9,
            id: &id,
            prev_hash: &[7; 32],
            timestamp: 1_700_000_000_000_000,
            action: b"act",
            result: &[0u8; 300],
        };
        let mut buf = Vec::new();
        let hash = encode_frame(&mut buf, &f);
        assert_eq!(buf.len(), frame_len(3, 300));
        let header: [u8; FRAME_HEADER] = buf[..FRAME_HEADER].try_into().expect("header");
        let body_len = decode_header(&header).expect("valid header");
        assert_eq!(body_len, buf.len() - FRAME_HEADER);
        let body = decode_body(&buf[FRAME_HEADER..]).expect("valid body");
        assert_eq!(body.seq, 9);
        assert_eq!(body.id, id);
        assert_eq!(body.action, b"act");
        assert_eq!(body.result.len(), 300);
        assert_eq!(body.hash, hash);
        assert!(body.hash_matches());
    }

    #[test]
    fn header_checksum_catches_every_single_bit_flip() {
        let len_bytes = 200u32.to_be_bytes();
        let mut header = [0u8; FRAME_HEADER];
        header[..4].copy_from_slice(&len_bytes);
        header[4..].copy_from_slice(&crc32fast::hash(&len_bytes).to_be_bytes());
        assert_eq!(decode_header(&header), Ok(200));
        for byte in 0..FRAME_HEADER {
            for bit in 0..8 {
                let mut h = header;
                h[byte] ^= 1 << bit;
                assert_eq!(decode_header(&h), Err(HeaderError::Checksum));
            }
        }
        assert_eq!(decode_header(&[0; 8]), Err(HeaderError::Checksum));
    }

    #[test]
    fn inconsistent_inner_lengths_are_rejected() {
        let id = sample_id();
        let f = Fields {
            seq: 0,
            id: &id,
            prev_hash: &ZERO_HASH,
            timestamp: 0,
            action: b"a",
            result: b"b",
        };
        let mut buf = Vec::new();
        encode_frame(&mut buf, &f);
        let body = &mut buf[FRAME_HEADER..];
        // The action length sits after seq, id, prev_hash and timestamp.
        body[8 + 16 + 32 + 8 + 3] = 2;
        assert!(decode_body(body).is_none());
    }
}
