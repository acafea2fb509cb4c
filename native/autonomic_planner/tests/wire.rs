//! The C-node as a process, spoken to over the distribution protocol by hand: the things an
//! Erlang node never sends (malformed frames, lying lengths, unsupported encodings, a frame
//! that never ends) must not take it down, a wrong cookie must not get in, and closing its
//! stdin must end it. Needs `epmd` (it comes with Erlang/OTP; the test starts it).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autonomic_planner::dist;
use autonomic_planner::etf::{Decoder, Encoder, Term};
use erl_dist::handshake::ClientSideHandshake;
use erl_dist::node::{Creation, LocalNode};
use erl_dist::DistributionFlags;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

const COOKIE: &str = "wire_test_cookie";

struct CNode {
    child: Child,
    port: u16,
}

impl Drop for CNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(tag: &str) -> CNode {
    let _ = Command::new("epmd").arg("-daemon").status();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autonomic_planner"))
        .arg(format!(
            "planner_wire_{tag}_{}@localhost",
            std::process::id()
        ))
        .args(["--net-ticktime", "60", "--workers", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the C-node starts");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{COOKIE}").expect("cookie written");
    // Keep stdin open for the node's life: closing it stops the node.
    std::mem::forget(stdin);
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines.next().expect("a line").expect("readable");
        if let Some(rest) = line.strip_prefix("ready ") {
            break rest
                .split(' ')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a port");
        }
    };
    // Drain the log lines so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    CNode { child, port }
}

fn local_node() -> LocalNode {
    let mut n = LocalNode::new(
        format!("wire_tester_{}@localhost", std::process::id())
            .parse()
            .expect("a node name"),
        Creation::new(7),
    );
    n.flags = DistributionFlags::mandatory()
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME;
    n
}

async fn connect(node: &CNode, cookie: &str) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(("127.0.0.1", node.port))
        .await
        .map_err(|e| e.to_string())?;
    let mut hs = ClientSideHandshake::new(stream, local_node(), cookie);
    hs.execute_send_name(6).await.map_err(|e| e.to_string())?;
    let (stream, _) = hs.execute_rest(true).await.map_err(|e| e.to_string())?;
    Ok(stream)
}

fn our_pid(e: &mut Encoder) {
    e.pid(&local_node().name.to_string(), 1, 0, 7);
}

/// A frame `{REG_SEND, Pid, '', To}` + `{'$gen_call', {Pid, Tag}, Request}`.
fn call_frame(to: &str, tag: i64, request: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = dist::start_frame();
    e.tuple(4).int(dist::REG_SEND);
    our_pid(&mut e);
    e.atom("").atom(to);
    e.version().tuple(3).atom("$gen_call").tuple(2);
    our_pid(&mut e);
    e.int(tag);
    request(&mut e);
    dist::finish(e)
}

/// A frame with a valid `REG_SEND` control message to `planner` and `payload` as is.
fn raw_payload_frame(payload: &[u8]) -> Vec<u8> {
    let mut e = dist::start_frame();
    e.tuple(4).int(dist::REG_SEND);
    our_pid(&mut e);
    e.atom("").atom("planner");
    e.raw(payload);
    dist::finish(e)
}

fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

async fn with_timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            smol::Timer::after(d).await;
            None
        })
        .await
}

/// Reads frames until the reply to the call tagged `tag` arrives; returns the reply.
async fn reply_to(stream: &mut TcpStream, tag: i64) -> Vec<u8> {
    loop {
        let mut len = [0u8; 4];
        with_timeout(Duration::from_secs(10), stream.read_exact(&mut len))
            .await
            .expect("a frame in time")
            .expect("readable");
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        let mut frame = vec![0u8; len];
        stream.read_exact(&mut frame).await.expect("a whole frame");
        let mut d = Decoder::new(&frame[1..], 100_000);
        d.versioned().expect("a control message");
        let payload = &frame[1 + d.cur.pos()..];
        let Ok(Term::Tuple(items)) = Decoder::new(payload, 100_000).versioned() else {
            continue;
        };
        if items.first() == Some(&Term::Int(tag)) {
            let mut d = Decoder::new(payload, 100_000);
            d.cur.version().expect("version");
            d.cur.bytes(2).expect("tuple header");
            d.skip().expect("the tag");
            return payload[d.cur.pos()..].to_vec();
        }
    }
}

/// Whether the node answers a `stats` call with `{ok, _}`.
async fn answers(stream: &mut TcpStream, tag: i64) -> bool {
    stream
        .write_all(&call_frame("planner", tag, |e| {
            e.atom("stats");
        }))
        .await
        .expect("sent");
    let reply = reply_to(stream, tag).await;
    matches!(Decoder::new(&reply, 1000).term(), Ok(Term::Tuple(items)) if items[0].is_atom("ok"))
}

#[test]
fn malformed_frames_never_take_the_node_down() {
    let node = start("malformed");
    smol::block_on(async {
        let mut s = connect(&node, COOKIE).await.expect("handshake");
        let mut tag = 1;
        let mut garbage: Vec<Vec<u8>> = vec![
            raw_frame(&[0x44, 1, 2, 3]),                     // a distribution header
            raw_frame(&[112]),                               // no control message
            raw_frame(&[112, 131, 108, 255, 255, 255, 255]), // a list claiming 4 billion elements
            raw_frame(&[112, 131, 80, 0, 0, 0, 9, 1, 2]),    // a compressed term
            raw_frame(&[112, 131, 82, 0]),                   // an atom cache reference
            raw_frame(&[112, 131, 104, 3, 97, 6]),           // a truncated tuple
            raw_frame(&[112, 130, 106]),                     // a bad version byte
            raw_payload_frame(&[131, 109, 255, 255, 255, 255]), // a binary longer than the frame
            raw_payload_frame(&[131, 116, 0, 0, 0, 1]),      // a map without its pair
            raw_payload_frame(&[131, 119, 2, 0xff, 0xfe]),   // an atom that is not UTF-8
        ];
        // An old-style float (31 bytes of text).
        let mut float_ext = vec![131, 99];
        float_ext.extend_from_slice(&[b'1'; 31]);
        garbage.push(raw_payload_frame(&float_ext));
        // Nested 100,000 deep.
        let mut deep = vec![131];
        for _ in 0..100_000 {
            deep.extend_from_slice(&[108, 0, 0, 0, 1]);
        }
        deep.extend(std::iter::repeat_n(106, 100_001));
        garbage.push(raw_payload_frame(&deep));
        // Random bytes after a valid control message, and as whole frames.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for n in 0..200 {
            let mut b = vec![131u8];
            for _ in 0..(n % 60) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            garbage.push(raw_payload_frame(&b));
            b[0] = 112;
            garbage.push(raw_frame(&b));
        }
        for g in &garbage {
            s.write_all(g).await.expect("sent");
        }
        assert!(answers(&mut s, tag).await);
        tag += 1;

        // A call whose request is nested too deep is answered with an error.
        s.write_all(&call_frame("planner", tag, |e| {
            e.raw(&deep[1..]);
        }))
        .await
        .expect("sent");
        let reply = reply_to(&mut s, tag).await;
        let t = Decoder::new(&reply, 1000).term().expect("a reply");
        assert_eq!(
            t,
            Term::Tuple(vec![
                Term::Atom("error".into()),
                Term::Tuple(vec![
                    Term::Atom("bad_term".into()),
                    Term::Atom("too_deep".into())
                ])
            ])
        );
        tag += 1;

        // A call in a frame over the limit: answered from its head, the rest skipped.
        let big = call_frame("planner", tag, |e| {
            e.binary(&vec![7u8; 33 * 1024 * 1024]);
        });
        s.write_all(&big).await.expect("sent");
        let reply = reply_to(&mut s, tag).await;
        let t = Decoder::new(&reply, 1000).term().expect("a reply");
        let Term::Tuple(items) = t else {
            panic!("{t:?}")
        };
        assert!(items[0].is_atom("error"));
        assert!(matches!(&items[1], Term::Tuple(r) if r[0].is_atom("too_large")));
        tag += 1;
        assert!(answers(&mut s, tag).await);
        tag += 1;

        // A frame that announces 4 GB and stops: the connection is closed, not the node.
        s.write_all(&[0xff, 0xff, 0xff, 0xf0, 112, 131])
            .await
            .expect("sent");
        drop(s);
        let mut s = connect(&node, COOKIE).await.expect("a new handshake");
        assert!(answers(&mut s, tag).await);
    });
}

#[test]
fn a_wrong_cookie_fails_the_handshake() {
    let node = start("cookie");
    smol::block_on(async {
        assert!(connect(&node, "not_the_cookie").await.is_err());
        assert!(connect(&node, COOKIE).await.is_ok());
    });
}

#[test]
fn the_node_exits_when_its_stdin_closes() {
    let _ = Command::new("epmd").arg("-daemon").status();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autonomic_planner"))
        .arg(format!(
            "planner_wire_stdin_{}@localhost",
            std::process::id()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the C-node starts");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{COOKIE}").expect("cookie written");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert!(lines
        .next()
        .expect("a line")
        .expect("readable")
        .starts_with("ready "));
    std::thread::spawn(move || for _ in lines {});
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn no_cookie_no_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_autonomic_planner"))
        .arg(format!(
            "planner_wire_none_{}@localhost",
            std::process::id()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cookie"));
}
