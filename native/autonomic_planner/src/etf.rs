//! Erlang's external term format, as much of it as the C-node needs, written for input from
//! the network: every length is checked against the bytes actually there before anything is
//! allocated, nesting is limited, the number of terms is budgeted, and encodings Erlang never
//! sends on a distribution connection without the matching flag (compressed terms, atom cache
//! references, distribution headers, old funs and floats) are refused. Nothing here panics on
//! any input; the property tests feed it random bytes.
//!
//! Decoded terms borrow from the frame: atoms, binaries, pids and references are slices of it,
//! so echoing a caller's pid or call tag back is a byte-for-byte copy.

use std::borrow::Cow;

use thiserror::Error;

/// Deepest nesting accepted (a plan request nests about 6 deep).
pub const MAX_DEPTH: usize = 64;

pub const VERSION: u8 = 131;

const NEW_FLOAT: u8 = 70;
const BIT_BINARY: u8 = 77;
const NEW_PID: u8 = 88;
const NEW_PORT: u8 = 89;
const NEWER_REFERENCE: u8 = 90;
const SMALL_INTEGER: u8 = 97;
const INTEGER: u8 = 98;
const ATOM: u8 = 100;
const REFERENCE: u8 = 101;
const PORT: u8 = 102;
const PID: u8 = 103;
const SMALL_TUPLE: u8 = 104;
const LARGE_TUPLE: u8 = 105;
const NIL: u8 = 106;
const STRING: u8 = 107;
const LIST: u8 = 108;
const BINARY: u8 = 109;
const SMALL_BIG: u8 = 110;
const LARGE_BIG: u8 = 111;
const NEW_FUN: u8 = 112;
const EXPORT: u8 = 113;
const NEW_REFERENCE: u8 = 114;
const SMALL_ATOM: u8 = 115;
const MAP: u8 = 116;
const ATOM_UTF8: u8 = 118;
const SMALL_ATOM_UTF8: u8 = 119;
const V4_PORT: u8 = 120;

/// Why bytes are not an acceptable term.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum EtfError {
    #[error("the term ends early")]
    Truncated,
    #[error("unsupported term tag {0}")]
    UnsupportedTag(u8),
    #[error("missing version byte 131")]
    NoVersion,
    #[error("terms nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("more terms than the budget allows")]
    TooManyTerms,
    #[error("an atom is not valid UTF-8")]
    BadAtom,
    #[error("a pid, port or reference is malformed")]
    BadIdentifier,
}

impl EtfError {
    /// The reason as an Erlang atom.
    pub fn name(self) -> &'static str {
        match self {
            EtfError::Truncated => "truncated",
            EtfError::UnsupportedTag(_) => "unsupported_tag",
            EtfError::NoVersion => "no_version",
            EtfError::TooDeep => "too_deep",
            EtfError::TooManyTerms => "too_many_terms",
            EtfError::BadAtom => "bad_atom",
            EtfError::BadIdentifier => "bad_identifier",
        }
    }
}

/// A decoded term. Containers own their elements; everything else borrows from the input.
#[derive(Clone, Debug, PartialEq)]
pub enum Term<'a> {
    /// An integer that fits an `i64`.
    Int(i64),
    /// A larger integer (its value is never needed).
    BigInt,
    Float(f64),
    Atom(Cow<'a, str>),
    Binary(&'a [u8]),
    /// A bitstring that is not a binary.
    BitBinary,
    /// A proper list; `[]` is the empty one.
    List(Vec<Term<'a>>),
    /// A list of bytes, as Erlang encodes lists of small integers.
    Bytes(&'a [u8]),
    /// A list with a tail that is not `[]` (its elements are not kept).
    ImproperList,
    Tuple(Vec<Term<'a>>),
    /// Pairs in the order they were encoded.
    Map(Vec<(Term<'a>, Term<'a>)>),
    /// A pid, as its whole encoding (for echoing back; [`node_of`] reads its node).
    Pid(&'a [u8]),
    /// A reference, as its whole encoding.
    Ref(&'a [u8]),
    /// A port, fun or external fun (never needed beyond skipping).
    Opaque,
}

impl<'a> Term<'a> {
    /// The atom's text, if this is an atom.
    pub fn atom(&self) -> Option<&str> {
        match self {
            Term::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this is the atom `name`.
    pub fn is_atom(&self, name: &str) -> bool {
        self.atom() == Some(name)
    }

    /// The value under the atom key `key`, if this is a map holding it.
    pub fn get(&self, key: &str) -> Option<&Term<'a>> {
        match self {
            Term::Map(pairs) => pairs.iter().find(|(k, _)| k.is_atom(key)).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A bounds-checked reader over a byte slice.
#[derive(Clone, Copy)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], EtfError> {
        if n > self.remaining() {
            return Err(EtfError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EtfError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, EtfError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, EtfError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, EtfError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn len32(&mut self) -> Result<usize, EtfError> {
        usize::try_from(self.u32()?).map_err(|_| EtfError::Truncated)
    }

    /// Expects the version byte 131.
    pub fn version(&mut self) -> Result<(), EtfError> {
        if self.u8()? == VERSION {
            Ok(())
        } else {
            Err(EtfError::NoVersion)
        }
    }
}

/// Decodes terms with a budget: at most `budget` terms in all.
pub struct Decoder<'a> {
    pub cur: Cursor<'a>,
    budget: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8], budget: usize) -> Self {
        Decoder {
            cur: Cursor::new(buf),
            budget,
        }
    }

    fn spend(&mut self, n: usize) -> Result<(), EtfError> {
        // Every term takes at least one byte, so a count larger than the bytes left is a lie:
        // refuse it before allocating room for it.
        if n > self.cur.remaining() {
            return Err(EtfError::Truncated);
        }
        if n > self.budget {
            return Err(EtfError::TooManyTerms);
        }
        self.budget -= n;
        Ok(())
    }

    /// A map's header: its number of pairs (checked against the bytes left and the budget).
    pub fn map_header(&mut self) -> Result<usize, EtfError> {
        if self.cur.u8()? != MAP {
            return Err(EtfError::UnsupportedTag(0));
        }
        let n = self.cur.len32()?;
        self.spend(n.saturating_mul(2))?;
        Ok(n)
    }

    /// A version byte, then one term.
    pub fn versioned(&mut self) -> Result<Term<'a>, EtfError> {
        self.cur.version()?;
        self.term()
    }

    pub fn term(&mut self) -> Result<Term<'a>, EtfError> {
        self.spend(1)?;
        self.term_at(0)
    }

    fn atom_term(&mut self, depth: usize) -> Result<Cow<'a, str>, EtfError> {
        match self.term_at(depth + 1)? {
            Term::Atom(a) => Ok(a),
            _ => Err(EtfError::BadIdentifier),
        }
    }

    fn term_at(&mut self, depth: usize) -> Result<Term<'a>, EtfError> {
        if depth > MAX_DEPTH {
            return Err(EtfError::TooDeep);
        }
        let start = self.cur.pos;
        let tag = self.cur.u8()?;
        Ok(match tag {
            SMALL_INTEGER => Term::Int(i64::from(self.cur.u8()?)),
            INTEGER => Term::Int(i64::from(i32::from_be_bytes(self.cur.array()?))),
            SMALL_BIG | LARGE_BIG => {
                let n = if tag == SMALL_BIG {
                    usize::from(self.cur.u8()?)
                } else {
                    self.cur.len32()?
                };
                let sign = self.cur.u8()?;
                let digits = self.cur.bytes(n)?;
                big_to_i64(sign, digits).map_or(Term::BigInt, Term::Int)
            }
            NEW_FLOAT => Term::Float(f64::from_bits(u64::from_be_bytes(self.cur.array()?))),
            ATOM | SMALL_ATOM | ATOM_UTF8 | SMALL_ATOM_UTF8 => {
                let n = if tag == SMALL_ATOM || tag == SMALL_ATOM_UTF8 {
                    usize::from(self.cur.u8()?)
                } else {
                    usize::from(self.cur.u16()?)
                };
                let text = self.cur.bytes(n)?;
                Term::Atom(atom_text(tag, text)?)
            }
            BINARY => {
                let n = self.cur.len32()?;
                Term::Binary(self.cur.bytes(n)?)
            }
            BIT_BINARY => {
                let n = self.cur.len32()?;
                let bits = self.cur.u8()?;
                self.cur.bytes(n)?;
                if bits == 0 || bits > 8 {
                    return Err(EtfError::BadIdentifier);
                }
                Term::BitBinary
            }
            NIL => Term::List(Vec::new()),
            STRING => {
                let n = usize::from(self.cur.u16()?);
                Term::Bytes(self.cur.bytes(n)?)
            }
            LIST => {
                let n = self.cur.len32()?;
                self.spend(n.saturating_add(1))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.term_at(depth + 1)?);
                }
                match self.term_at(depth + 1)? {
                    Term::List(tail) if tail.is_empty() => Term::List(items),
                    _ => Term::ImproperList,
                }
            }
            SMALL_TUPLE | LARGE_TUPLE => {
                let n = if tag == SMALL_TUPLE {
                    usize::from(self.cur.u8()?)
                } else {
                    self.cur.len32()?
                };
                self.spend(n)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.term_at(depth + 1)?);
                }
                Term::Tuple(items)
            }
            MAP => {
                let n = self.cur.len32()?;
                self.spend(n.saturating_mul(2))?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.term_at(depth + 1)?;
                    let v = self.term_at(depth + 1)?;
                    pairs.push((k, v));
                }
                Term::Map(pairs)
            }
            NEW_PID | PID => {
                self.atom_term(depth)?;
                self.cur.bytes(if tag == NEW_PID { 12 } else { 9 })?;
                Term::Pid(&self.cur.buf[start..self.cur.pos])
            }
            NEWER_REFERENCE | NEW_REFERENCE => {
                let words = usize::from(self.cur.u16()?);
                if words == 0 || words > 5 {
                    return Err(EtfError::BadIdentifier);
                }
                self.atom_term(depth)?;
                self.cur
                    .bytes(if tag == NEWER_REFERENCE { 4 } else { 1 } + 4 * words)?;
                Term::Ref(&self.cur.buf[start..self.cur.pos])
            }
            REFERENCE => {
                self.atom_term(depth)?;
                self.cur.bytes(5)?;
                Term::Ref(&self.cur.buf[start..self.cur.pos])
            }
            NEW_PORT | V4_PORT | PORT => {
                self.atom_term(depth)?;
                self.cur.bytes(match tag {
                    NEW_PORT => 8,
                    V4_PORT => 12,
                    _ => 5,
                })?;
                Term::Opaque
            }
            EXPORT => {
                self.spend(3)?;
                for _ in 0..3 {
                    self.term_at(depth + 1)?;
                }
                Term::Opaque
            }
            NEW_FUN => {
                // Size counts itself; the fun's insides are never looked at.
                let size = self.cur.len32()?;
                if size < 4 {
                    return Err(EtfError::Truncated);
                }
                self.cur.bytes(size - 4)?;
                Term::Opaque
            }
            other => return Err(EtfError::UnsupportedTag(other)),
        })
    }

    /// Skips one term without keeping it; returns its bytes.
    pub fn skip(&mut self) -> Result<&'a [u8], EtfError> {
        let start = self.cur.pos;
        self.spend(1)?;
        self.skip_at(0)?;
        Ok(&self.cur.buf[start..self.cur.pos])
    }

    fn skip_at(&mut self, depth: usize) -> Result<(), EtfError> {
        if depth > MAX_DEPTH {
            return Err(EtfError::TooDeep);
        }
        let tag = *self.cur.buf.get(self.cur.pos).ok_or(EtfError::Truncated)?;
        match tag {
            LIST | SMALL_TUPLE | LARGE_TUPLE | MAP | EXPORT => {
                self.cur.u8()?;
                let n = match tag {
                    LIST => self.cur.len32()?.saturating_add(1),
                    SMALL_TUPLE => usize::from(self.cur.u8()?),
                    LARGE_TUPLE => self.cur.len32()?,
                    MAP => self.cur.len32()?.saturating_mul(2),
                    _ => 3,
                };
                self.spend(n)?;
                for _ in 0..n {
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            // Leaves (and identifiers, whose node atom is a leaf) decode without allocating
            // anything that outlives the call.
            _ => self.term_at(depth).map(|_| ()),
        }
    }
}

/// The node of an encoded pid, port or reference (its first element, an atom).
pub fn node_of(raw: &[u8]) -> Option<Cow<'_, str>> {
    let mut d = Decoder::new(raw, 4);
    let tag = d.cur.u8().ok()?;
    if matches!(tag, NEWER_REFERENCE | NEW_REFERENCE) {
        d.cur.u16().ok()?;
    }
    match d.term().ok()? {
        Term::Atom(a) => Some(a),
        _ => None,
    }
}

fn atom_text(tag: u8, text: &[u8]) -> Result<Cow<'_, str>, EtfError> {
    if tag == ATOM_UTF8 || tag == SMALL_ATOM_UTF8 || text.is_ascii() {
        std::str::from_utf8(text)
            .map(Cow::Borrowed)
            .map_err(|_| EtfError::BadAtom)
    } else {
        // Latin-1.
        Ok(Cow::Owned(text.iter().map(|&b| char::from(b)).collect()))
    }
}

/// A bignum's value, if it fits an `i64`.
fn big_to_i64(sign: u8, little_endian: &[u8]) -> Option<i64> {
    let significant = little_endian
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    if significant > 8 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in little_endian[..significant].iter().rev() {
        v = (v << 8) | u64::from(b);
    }
    match sign {
        0 => i64::try_from(v).ok(),
        _ => {
            if v == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(v).ok().map(|x| -x)
            }
        }
    }
}

/// Builds terms into a byte buffer.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder::default()
    }

    pub fn version(&mut self) -> &mut Self {
        self.buf.push(VERSION);
        self
    }

    pub fn atom(&mut self, a: &str) -> &mut Self {
        let b = a.as_bytes();
        if let Ok(n) = u8::try_from(b.len()) {
            self.buf.extend_from_slice(&[SMALL_ATOM_UTF8, n]);
        } else {
            // Atoms come from names of at most 255 characters: at most 1,020 bytes.
            let n = u16::try_from(b.len()).unwrap_or(u16::MAX);
            self.buf.push(ATOM_UTF8);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        self.buf.extend_from_slice(b);
        self
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        if (0..=255).contains(&v) {
            self.buf.extend_from_slice(&[SMALL_INTEGER, v as u8]);
        } else if let Ok(x) = i32::try_from(v) {
            self.buf.push(INTEGER);
            self.buf.extend_from_slice(&x.to_be_bytes());
        } else {
            let sign = u8::from(v < 0);
            let mag = v.unsigned_abs().to_le_bytes();
            let n = mag.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1);
            self.buf.extend_from_slice(&[SMALL_BIG, n as u8, sign]);
            self.buf.extend_from_slice(&mag[..n]);
        }
        self
    }

    pub fn float(&mut self, v: f64) -> &mut Self {
        self.buf.push(NEW_FLOAT);
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
        self
    }

    pub fn binary(&mut self, b: &[u8]) -> &mut Self {
        self.buf.push(BINARY);
        self.buf
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.buf.extend_from_slice(b);
        self
    }

    pub fn tuple(&mut self, arity: usize) -> &mut Self {
        if let Ok(n) = u8::try_from(arity) {
            self.buf.extend_from_slice(&[SMALL_TUPLE, n]);
        } else {
            self.buf.push(LARGE_TUPLE);
            self.buf
                .extend_from_slice(&u32::try_from(arity).unwrap_or(u32::MAX).to_be_bytes());
        }
        self
    }

    /// The header of a proper list of `len` elements; call [`Encoder::nil`] after them (for
    /// `len` 0 the header is `[]` itself and nothing follows).
    pub fn list(&mut self, len: usize) -> &mut Self {
        if len == 0 {
            self.buf.push(NIL);
        } else {
            self.buf.push(LIST);
            self.buf
                .extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        }
        self
    }

    pub fn nil(&mut self) -> &mut Self {
        self.buf.push(NIL);
        self
    }

    pub fn map(&mut self, pairs: usize) -> &mut Self {
        self.buf.push(MAP);
        self.buf
            .extend_from_slice(&u32::try_from(pairs).unwrap_or(u32::MAX).to_be_bytes());
        self
    }

    /// An already encoded term (a caller's pid or tag), copied unchanged.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn pid(&mut self, node: &str, id: u32, serial: u32, creation: u32) -> &mut Self {
        self.buf.push(NEW_PID);
        self.atom(node);
        for w in [id, serial, creation] {
            self.buf.extend_from_slice(&w.to_be_bytes());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Result<Term<'_>, EtfError> {
        Decoder::new(bytes, 1_000_000).versioned()
    }

    /// Bytes from `term_to_binary/1` on OTP 25.
    #[test]
    fn decodes_what_erlang_encodes() {
        // #{a => 1, <<"b">> => [x, 2.5], c => {-5, 300, 1 bsl 40, -(1 bsl 70)}}
        let bytes = [
            131, 116, 0, 0, 0, 3, 100, 0, 1, 97, 97, 1, 100, 0, 1, 99, 104, 4, 98, 255, 255, 255,
            251, 98, 0, 0, 1, 44, 110, 6, 0, 0, 0, 0, 0, 0, 1, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0,
            64, 109, 0, 0, 0, 1, 98, 108, 0, 0, 0, 2, 100, 0, 1, 120, 70, 64, 4, 0, 0, 0, 0, 0, 0,
            106,
        ];
        let t = decode(&bytes).unwrap();
        assert_eq!(t.get("a"), Some(&Term::Int(1)));
        assert_eq!(
            t.get("c"),
            Some(&Term::Tuple(vec![
                Term::Int(-5),
                Term::Int(300),
                Term::Int(1 << 40),
                Term::BigInt
            ]))
        );
        let Term::Map(pairs) = &t else { panic!() };
        assert_eq!(pairs[2].0, Term::Binary(b"b"));
        assert_eq!(
            pairs[2].1,
            Term::List(vec![Term::Atom("x".into()), Term::Float(2.5)])
        );
    }

    #[test]
    fn encodes_what_it_decodes() {
        let mut e = Encoder::new();
        e.version()
            .tuple(6)
            .atom("ok")
            .int(-1)
            .int(1 << 40)
            .int(i64::MIN);
        e.float(0.1).list(2).binary(b"xy").map(0).nil();
        let t = decode(&e.buf).unwrap();
        assert_eq!(
            t,
            Term::Tuple(vec![
                Term::Atom("ok".into()),
                Term::Int(-1),
                Term::Int(1 << 40),
                Term::Int(i64::MIN),
                Term::Float(0.1),
                Term::List(vec![Term::Binary(b"xy"), Term::Map(Vec::new())]),
            ])
        );
    }

    #[test]
    fn pids_and_references_keep_their_bytes() {
        // [alias | Ref] as OTP 25 encodes a gen_server call tag.
        let mut e = Encoder::new();
        e.version().buf.extend_from_slice(&[108, 0, 0, 0, 1]);
        e.atom("alias");
        e.buf.extend_from_slice(&[90, 0, 3]);
        e.atom("n@h");
        e.buf.extend_from_slice(&[0, 0, 0, 7]);
        e.buf.extend_from_slice(&[0; 12]);
        // An improper list: the reference is its tail.
        assert_eq!(decode(&e.buf), Ok(Term::ImproperList));
        let mut d = Decoder::new(&e.buf[1..], 100);
        assert_eq!(d.skip().unwrap().len(), e.buf.len() - 1);
    }

    #[test]
    fn lies_about_lengths_are_refused_before_allocating() {
        // A list claiming 4 billion elements in 10 bytes.
        assert_eq!(
            decode(&[131, 108, 255, 255, 255, 255, 106]),
            Err(EtfError::Truncated)
        );
        assert_eq!(
            decode(&[131, 116, 255, 255, 255, 255]),
            Err(EtfError::Truncated)
        );
        assert_eq!(
            decode(&[131, 109, 255, 255, 255, 255, 1]),
            Err(EtfError::Truncated)
        );
        assert_eq!(decode(&[131, 105, 0, 0, 0, 9]), Err(EtfError::Truncated));
    }

    #[test]
    fn deep_nesting_and_budget_are_limited() {
        let mut deep = vec![131];
        for _ in 0..10_000 {
            deep.extend_from_slice(&[108, 0, 0, 0, 1]);
        }
        deep.extend(std::iter::repeat_n(106, 10_001));
        assert_eq!(decode(&deep), Err(EtfError::TooDeep));
        assert_eq!(
            Decoder::new(&deep[1..], 1_000_000).skip(),
            Err(EtfError::TooDeep)
        );
        let mut wide = Encoder::new();
        wide.version().list(100);
        for _ in 0..100 {
            wide.nil();
        }
        wide.nil();
        assert_eq!(
            Decoder::new(&wide.buf, 50).versioned(),
            Err(EtfError::TooManyTerms)
        );
        assert!(Decoder::new(&wide.buf, 200).versioned().is_ok());
    }

    #[test]
    fn encodings_erlang_does_not_send_are_refused() {
        for tag in [80u8, 68, 82, 117, 99, 121, 0, 255] {
            assert_eq!(
                decode(&[131, tag, 0, 0, 0, 0, 0]),
                Err(EtfError::UnsupportedTag(tag))
            );
        }
        assert_eq!(decode(&[130, 106]), Err(EtfError::NoVersion));
        assert_eq!(decode(&[]), Err(EtfError::Truncated));
        assert_eq!(decode(&[131, 119, 2, 0xff, 0xfe]), Err(EtfError::BadAtom));
        // Latin-1 atoms are converted.
        assert_eq!(decode(&[131, 100, 0, 1, 0xe9]), Ok(Term::Atom("é".into())));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Decoder::new(&bytes, 10_000).term();
            let _ = Decoder::new(&bytes, 10_000).skip();
        }

        #[test]
        fn random_bytes_after_a_valid_prefix_never_panic(
            tag in proptest::sample::select(vec![104u8, 105, 108, 116, 88, 90, 103, 110, 111, 113, 112, 77, 107]),
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut b = vec![131, tag];
            b.extend_from_slice(&bytes);
            let _ = Decoder::new(&b, 10_000).versioned();
            let _ = Decoder::new(&b[1..], 10_000).skip();
        }

        #[test]
        fn integers_round_trip(v in any::<i64>()) {
            let mut e = Encoder::new();
            e.version().int(v);
            prop_assert_eq!(decode(&e.buf), Ok(Term::Int(v)));
        }
    }
}
