//! Receipt identifiers: UUIDv7 (RFC 9562), shown as the usual 36-character lower-case text.
//!
//! A receipt's `seq` says where it is in its ledger; its `id` names it everywhere else (in an
//! event, a knowledge-base entry, a ticket) without saying which node's ledger holds it. Version 7
//! puts the Unix time in milliseconds first, so ids sort by creation time. Within one ledger the
//! ids are strictly increasing (RFC 9562 section 6.2, method 1: a 12-bit counter in `rand_a` for
//! ids of the same millisecond, which borrows the next millisecond on overflow, and the clock
//! never goes back from the last id written, even across restarts), and `rand_b` is a
//! bijective mix of a random per-open seed and a counter, so two ids of one generator never
//! share it. Across ledgers and nodes, the 62 random bits make a clash practically impossible.

use std::fmt;

/// A receipt id: the 16 bytes of a UUIDv7.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 16]);

impl RecordId {
    /// Length of the text form, `xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx`.
    pub const TEXT_LEN: usize = 36;

    /// The Unix time in milliseconds the id carries.
    pub fn unix_ms(&self) -> u64 {
        self.0[..6]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }

    fn counter(&self) -> u16 {
        (u16::from(self.0[6] & 0x0f) << 8) | u16::from(self.0[7])
    }

    /// The lower-case hyphenated text form.
    pub fn to_text(&self) -> [u8; Self::TEXT_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; Self::TEXT_LEN];
        let mut pos = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                pos += 1;
            }
            out[pos] = HEX[usize::from(byte >> 4)];
            out[pos + 1] = HEX[usize::from(byte & 0x0f)];
            pos += 2;
        }
        out
    }

    /// Parses the hyphenated text form (either case). Anything else is `None`.
    pub fn parse(text: &[u8]) -> Option<RecordId> {
        if text.len() != Self::TEXT_LEN {
            return None;
        }
        let mut out = [0u8; 16];
        let mut digits = text
            .iter()
            .enumerate()
            .filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23));
        if [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
            return None;
        }
        for byte in out.iter_mut() {
            let (_, hi) = digits.next()?;
            let (_, lo) = digits.next()?;
            *byte = (hex_value(*hi)? << 4) | hex_value(*lo)?;
        }
        Some(RecordId(out))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The text form is ASCII by construction.
        f.write_str(std::str::from_utf8(&self.to_text()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

/// Makes strictly increasing UUIDv7 ids for one ledger.
#[derive(Debug, Clone, Copy)]
pub struct IdGenerator {
    last_ms: u64,
    counter: u16,
    seed: u64,
    n: u64,
}

const COUNTER_MAX: u16 = 0x0fff;

impl IdGenerator {
    /// A generator whose ids all sort after `last` (the newest id already in the ledger).
    pub fn new(seed: u64, last: Option<RecordId>) -> Self {
        let (last_ms, counter) = last.map_or((0, 0), |id| (id.unix_ms(), id.counter()));
        Self {
            last_ms,
            counter,
            seed,
            n: 0,
        }
    }

    /// The next id, given the wall clock in Unix milliseconds.
    pub fn next(&mut self, now_ms: u64) -> RecordId {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.counter = 0;
        } else if self.counter < COUNTER_MAX {
            self.counter += 1;
        } else {
            self.last_ms += 1;
            self.counter = 0;
        }
        self.n = self.n.wrapping_add(1);
        let rand_b = splitmix64(self.seed.wrapping_add(self.n.wrapping_mul(GOLDEN)));
        let ms = self.last_ms & 0xffff_ffff_ffff;
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b[6] = 0x70 | (self.counter >> 8) as u8;
        b[7] = (self.counter & 0xff) as u8;
        b[8..].copy_from_slice(&rand_b.to_be_bytes());
        b[8] = 0x80 | (b[8] & 0x3f);
        RecordId(b)
    }
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser: a bijection on `u64` with good avalanche.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_layout() {
        let mut g = IdGenerator::new(42, None);
        let id = g.next(0x0190_f0a1_b2c3);
        let text = id.to_text();
        let s = std::str::from_utf8(&text).expect("ascii");
        assert_eq!(&s[..14], "0190f0a1-b2c3-");
        assert_eq!(&s[14..15], "7", "version 7");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"), "variant 10xx");
        assert_eq!(RecordId::parse(&text), Some(id));
        assert_eq!(RecordId::parse(s.to_uppercase().as_bytes()), Some(id));
        assert_eq!(id.unix_ms(), 0x0190_f0a1_b2c3);
    }

    #[test]
    fn rejects_malformed_text() {
        let good = *b"0190f0a1-b2c3-7000-8000-000000000000";
        assert!(RecordId::parse(&good).is_some());
        assert!(RecordId::parse(&good[..35]).is_none());
        let mut bad = good;
        bad[8] = b'x';
        assert!(RecordId::parse(&bad).is_none());
        let mut bad = good;
        bad[0] = b'g';
        assert!(RecordId::parse(&bad).is_none());
        assert!(RecordId::parse(b"").is_none());
    }

    #[test]
    fn strictly_increasing_within_a_millisecond_and_when_the_clock_goes_back() {
        let mut g = IdGenerator::new(7, None);
        let mut prev = g.next(1000);
        for i in 0..10_000u64 {
            // The clock stalls, then goes back, then jumps forward.
            let now = if i < 5000 { 1000 } else { 900 + i / 100 };
            let id = g.next(now);
            assert!(id > prev, "{id} after {prev}");
            prev = id;
        }
    }

    #[test]
    fn continues_after_the_last_id_of_a_reopened_ledger() {
        let mut g = IdGenerator::new(1, None);
        let last = g.next(5000);
        let mut g2 = IdGenerator::new(2, Some(last));
        assert!(g2.next(4000) > last, "clock behind the ledger");
        assert!(g2.next(5000) > last);
    }
}
