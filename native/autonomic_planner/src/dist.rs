//! The distribution protocol's messages, as bytes: reading a frame's control message and a
//! `gen_server` call out of its payload, and building the frames the C-node sends (replies,
//! monitor exits, unlink acknowledgements). Pure functions over byte slices; the connection
//! tasks in `server` move the bytes.
//!
//! A frame after the handshake is a 4-byte big-endian length (0 is a tick), then `112`
//! (pass-through: no distribution header, as no atom cache is negotiated), then the control
//! message and, for sends, the payload, each a versioned external term.

use crate::etf::{node_of, Decoder, Encoder, EtfError, Term};

/// Pass-through message type.
pub const PASS_THROUGH: u8 = 112;

// Control message operations.
pub const SEND: i64 = 2;
pub const REG_SEND: i64 = 6;
pub const REG_SEND_TT: i64 = 16;
pub const MONITOR_P: i64 = 19;
pub const MONITOR_P_EXIT: i64 = 21;
pub const ALIAS_SEND: i64 = 33;
pub const UNLINK_ID: i64 = 35;
pub const UNLINK_ID_ACK: i64 = 36;

/// Terms a control message may hold (a trace token can be any term, but small).
const CONTROL_BUDGET: usize = 10_000;

/// What a frame asks for, as far as the connection needs to know before handing it on.
#[derive(Debug, PartialEq)]
pub enum Control<'a> {
    /// A message to a registered name; the payload starts at `payload_at` in the frame.
    RegSend { to: String, payload_at: usize },
    /// A process monitors `to` (a registered name, or a pid when `to` is `None`).
    Monitor {
        from: &'a [u8],
        to: Option<String>,
        reference: &'a [u8],
    },
    /// An unlink that must be acknowledged.
    UnlinkId {
        id: &'a [u8],
        from: &'a [u8],
        to: &'a [u8],
    },
    /// Anything else (sends to pids, links, exits, demonitors, ...): nothing to do.
    Other(i64),
}

/// Reads a frame's control message. `frame` starts with the message type byte.
pub fn control(frame: &[u8]) -> Result<Control<'_>, EtfError> {
    if frame.first() != Some(&PASS_THROUGH) {
        return Err(EtfError::UnsupportedTag(
            frame.first().copied().unwrap_or(0),
        ));
    }
    let body = &frame[1..];
    let mut d = Decoder::new(body, CONTROL_BUDGET);
    d.cur.version()?;
    let ctl = d.skip()?;
    let payload_at = 1 + d.cur.pos();
    let items = match Decoder::new(ctl, CONTROL_BUDGET).term()? {
        Term::Tuple(items) => items,
        _ => return Ok(Control::Other(-1)),
    };
    let op = match items.first() {
        Some(Term::Int(op)) => *op,
        _ => return Ok(Control::Other(-1)),
    };
    Ok(match op {
        REG_SEND | REG_SEND_TT => match items.get(3).and_then(Term::atom) {
            Some(to) => Control::RegSend {
                to: to.to_owned(),
                payload_at,
            },
            None => Control::Other(op),
        },
        MONITOR_P => match (pid_at(ctl, 1), ref_at(ctl, 3)) {
            (Some(from), Some(reference)) => Control::Monitor {
                from,
                to: items.get(2).and_then(Term::atom).map(str::to_owned),
                reference,
            },
            _ => Control::Other(op),
        },
        UNLINK_ID => match (element(ctl, 1), pid_at(ctl, 2), pid_at(ctl, 3)) {
            (Some(id), Some(from), Some(to)) => Control::UnlinkId { id, from, to },
            _ => Control::Other(op),
        },
        other => Control::Other(other),
    })
}

/// The bytes of the `i`th element of an encoded tuple.
fn element(tuple: &[u8], i: usize) -> Option<&[u8]> {
    let mut d = Decoder::new(tuple, CONTROL_BUDGET);
    let arity = match d.cur.u8().ok()? {
        104 => usize::from(d.cur.u8().ok()?),
        105 => usize::try_from(d.cur.u32().ok()?).ok()?,
        _ => return None,
    };
    if i >= arity {
        return None;
    }
    for _ in 0..i {
        d.skip().ok()?;
    }
    d.skip().ok()
}

fn pid_at(tuple: &[u8], i: usize) -> Option<&[u8]> {
    let b = element(tuple, i)?;
    matches!(b.first(), Some(88) | Some(103)).then_some(b)
}

fn ref_at(tuple: &[u8], i: usize) -> Option<&[u8]> {
    let b = element(tuple, i)?;
    matches!(b.first(), Some(90) | Some(114) | Some(101)).then_some(b)
}

/// A `gen_server` call: `{'$gen_call', {From, Tag}, Request}`.
#[derive(Debug, PartialEq)]
pub struct Call<'a> {
    /// The caller's pid, encoded.
    pub from: &'a [u8],
    /// The caller's node.
    pub from_node: String,
    /// The tag, encoded, to be echoed unchanged.
    pub tag: &'a [u8],
    /// For an `[alias | Ref]` tag (OTP 24+), the reference, encoded.
    pub alias: Option<&'a [u8]>,
    /// Where the request starts in the payload.
    pub request_at: usize,
}

/// Reads the head of a call from a payload (which starts with the version byte). Only the
/// head needs to be there: the request itself may be cut off (an oversized frame).
pub fn call_head(payload: &[u8]) -> Result<Option<Call<'_>>, EtfError> {
    let mut d = Decoder::new(payload, CONTROL_BUDGET);
    d.cur.version()?;
    if d.cur.u8()? != 104 || d.cur.u8()? != 3 {
        return Ok(None);
    }
    if !d.term()?.is_atom("$gen_call") {
        return Ok(None);
    }
    if d.cur.u8()? != 104 || d.cur.u8()? != 2 {
        return Ok(None);
    }
    let (from, from_node) = match d.term()? {
        Term::Pid(raw) => (
            raw,
            node_of(raw).ok_or(EtfError::BadIdentifier)?.into_owned(),
        ),
        _ => return Ok(None),
    };
    let tag = d.skip()?;
    Ok(Some(Call {
        from,
        from_node,
        tag,
        alias: alias_of(tag),
        request_at: d.cur.pos(),
    }))
}

/// The reference of an `[alias | Ref]` tag.
fn alias_of(tag: &[u8]) -> Option<&[u8]> {
    let mut d = Decoder::new(tag, 16);
    if d.cur.u8().ok()? != 108 || d.cur.u32().ok()? != 1 {
        return None;
    }
    if !d.term().ok()?.is_atom("alias") {
        return None;
    }
    let at = d.cur.pos();
    match d.term().ok()? {
        Term::Ref(_) if d.cur.remaining() == 0 => Some(&tag[at..]),
        _ => None,
    }
}

/// Starts a frame: room for the length, the message type, and a version byte for the control
/// message. Finish with [`finish`].
pub fn start_frame() -> Encoder {
    let mut e = Encoder::new();
    e.buf
        .extend_from_slice(&[0, 0, 0, 0, PASS_THROUGH, crate::etf::VERSION]);
    e
}

/// Writes the length prefix.
pub fn finish(mut e: Encoder) -> Vec<u8> {
    let len = u32::try_from(e.buf.len() - 4).unwrap_or(u32::MAX);
    e.buf[..4].copy_from_slice(&len.to_be_bytes());
    e.buf
}

/// A reply to a call: the control message (an alias send when the tag is an alias and the
/// connection supports aliases, so a late reply to a caller that gave up is dropped by the
/// runtime; else a plain send to the caller's pid), then `{Tag, Reply}` where the reply is
/// written by `reply`.
pub fn reply_frame(
    call: &Call<'_>,
    self_pid: &[u8],
    aliases: bool,
    reply: impl FnOnce(&mut Encoder),
) -> Vec<u8> {
    let mut e = start_frame();
    match call.alias {
        Some(alias) if aliases => {
            e.tuple(3).int(ALIAS_SEND).raw(self_pid).raw(alias);
        }
        _ => {
            e.tuple(3).int(SEND).atom("").raw(call.from);
        }
    }
    e.version().tuple(2).raw(call.tag);
    reply(&mut e);
    finish(e)
}

/// `{MONITOR_P_EXIT, Name, Watcher, Ref, noproc}`: the monitored name does not exist here.
pub fn monitor_exit_frame(name: &str, watcher: &[u8], reference: &[u8]) -> Vec<u8> {
    let mut e = start_frame();
    e.tuple(5)
        .int(MONITOR_P_EXIT)
        .atom(name)
        .raw(watcher)
        .raw(reference)
        .atom("noproc");
    finish(e)
}

/// `{UNLINK_ID_ACK, Id, From, To}` for an `{UNLINK_ID, Id, To, From}` received.
pub fn unlink_ack_frame(id: &[u8], ours: &[u8], theirs: &[u8]) -> Vec<u8> {
    let mut e = start_frame();
    e.tuple(4).int(UNLINK_ID_ACK).raw(id).raw(ours).raw(theirs);
    finish(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(e: &mut Encoder, node: &str) {
        e.pid(node, 77, 0, 3);
    }

    fn reference(e: &mut Encoder, node: &str) {
        e.buf.extend_from_slice(&[90, 0, 3]);
        e.atom(node);
        e.buf
            .extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
    }

    /// A frame `{6, From, '', To}` + `{'$gen_call', {From, [alias | Ref]}, Req}`.
    fn call_frame(to: &str, alias: bool, req: impl FnOnce(&mut Encoder)) -> Vec<u8> {
        let mut e = start_frame();
        e.tuple(4).int(REG_SEND);
        pid(&mut e, "a@h");
        e.atom("").atom(to);
        e.version().tuple(3).atom("$gen_call").tuple(2);
        pid(&mut e, "a@h");
        if alias {
            e.buf.extend_from_slice(&[108, 0, 0, 0, 1]);
            e.atom("alias");
        }
        reference(&mut e, "a@h");
        req(&mut e);
        finish(e)
    }

    #[test]
    fn reads_a_call_and_echoes_its_tag() {
        let frame = call_frame("planner", true, |e| {
            e.atom("stats");
        });
        let body = &frame[4..];
        let Ok(Control::RegSend { to, payload_at }) = control(body) else {
            panic!()
        };
        assert_eq!(to, "planner");
        let call = call_head(&body[payload_at..]).unwrap().unwrap();
        assert_eq!(call.from_node, "a@h");
        assert!(call.alias.is_some());
        let mut d = Decoder::new(&body[payload_at + call.request_at..], 10);
        assert!(d.term().unwrap().is_atom("stats"));

        let me = {
            let mut e = Encoder::new();
            pid(&mut e, "planner_a@h");
            e.buf
        };
        let out = reply_frame(&call, &me, true, |e| {
            e.atom("ok");
        });
        assert_eq!(
            u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize,
            out.len() - 4
        );
        // The reply's payload is {Tag, ok}, the tag byte for byte.
        let mut d = Decoder::new(&out[5..], 100);
        d.cur.version().unwrap();
        let ctl = d.skip().unwrap();
        // {33, ...}: tuple header, arity, small integer tag, 33.
        assert_eq!(ctl[3], ALIAS_SEND as u8);
        d.cur.version().unwrap();
        assert_eq!(d.cur.u8().unwrap(), 104);
        assert_eq!(d.cur.u8().unwrap(), 2);
        assert_eq!(d.skip().unwrap(), call.tag);
        // Without alias support, a plain send to the caller's pid.
        let out = reply_frame(&call, &me, false, |e| {
            e.atom("ok");
        });
        let mut d = Decoder::new(&out[6..], 100);
        let Term::Tuple(ctl) = d.term().unwrap() else {
            panic!()
        };
        assert_eq!(ctl[0], Term::Int(SEND));
    }

    #[test]
    fn plain_reference_tags_have_no_alias() {
        let frame = call_frame("planner", false, |e| {
            e.atom("x");
        });
        let body = &frame[4..];
        let Ok(Control::RegSend { payload_at, .. }) = control(body) else {
            panic!()
        };
        let call = call_head(&body[payload_at..]).unwrap().unwrap();
        assert!(call.alias.is_none());
    }

    #[test]
    fn non_calls_are_recognised() {
        let mut e = Encoder::new();
        e.version().tuple(2).atom("hello").int(1);
        assert_eq!(call_head(&e.buf), Ok(None));
        let mut e = Encoder::new();
        e.version().atom("$gen_call");
        assert_eq!(call_head(&e.buf), Ok(None));
    }

    #[test]
    fn monitors_are_read() {
        let mut e = start_frame();
        e.tuple(4).int(MONITOR_P);
        pid(&mut e, "a@h");
        e.atom("nobody");
        reference(&mut e, "a@h");
        let frame = finish(e);
        match control(&frame[4..]).unwrap() {
            Control::Monitor { to, from, .. } => {
                assert_eq!(to.as_deref(), Some("nobody"));
                assert_eq!(from[0], 88);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_head_may_be_read_from_a_cut_off_frame() {
        let frame = call_frame("planner", true, |e| {
            e.binary(&[7u8; 1000]);
        });
        let body = &frame[4..200];
        let Ok(Control::RegSend { payload_at, .. }) = control(body) else {
            panic!()
        };
        assert!(call_head(&body[payload_at..]).unwrap().is_some());
    }
}
