//! The node: epmd registration, the listener, one task per connection, and the hand-off of
//! calls to the planning workers (`worker`).
//!
//! Threads: the network runs on one thread (a `smol` executor: the listener, every connection's
//! reader and writer, the epmd keepalive); plans run on `workers` threads fed by a bounded
//! queue. The network thread only reads frames, looks at their control message and answers the
//! cheap things itself (net_kernel's `is_auth`, monitors, unlink acknowledgements); a call to
//! `planner` is handed to a worker with its frame, and the worker sends the reply frame back to
//! the connection's writer. So a slow plan never delays a tick, a ping or another caller's
//! reply, and several callers are served at once.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use erl_dist::epmd::{EpmdClient, NodeEntry};
use erl_dist::handshake::{HandshakeStatus, ServerSideHandshake};
use erl_dist::node::{Creation, LocalNode, NodeName, PeerNode};
use erl_dist::DistributionFlags;
use smol::channel::{bounded, Receiver, Sender, TrySendError};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer};
use thiserror::Error;

use crate::cache::TopologyCache;
use crate::dist::{self, Call, Control};
use crate::etf::{Decoder, Encoder, Term};
use crate::log::Log;
use crate::worker;

/// Largest frame read whole. A larger one is answered `{error, {too_large, Size, Max}}` (when
/// it is a call) and skipped without being kept in memory.
pub const MAX_FRAME: usize = 32 * 1024 * 1024;
/// Most terms one request may hold.
pub const MAX_TERMS: usize = 2_000_000;
/// Bytes of requests queued or being planned, over all connections; beyond it calls are
/// answered `{error, overloaded}` at once.
pub const MAX_IN_FLIGHT: usize = 128 * 1024 * 1024;
/// Requests queued for the workers.
pub const QUEUE: usize = 1024;
/// Frames waiting to be written on one connection.
pub const OUTBOX: usize = 1024;
/// Connections at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a connecting node has to complete the handshake (OTP's `net_setuptime` default).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(7);
/// Bytes read from an oversized frame to find out who asked.
const HEAD: usize = 64 * 1024;

/// How the node runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// `planner_<owner>@<host>`.
    pub node: NodeName,
    /// Address the listener binds (the owner's `inet_dist_use_interface`, else any).
    pub listen: IpAddr,
    /// Port range to listen in (the owner's `inet_dist_listen_min/max`); `(0, 0)`: any.
    pub ports: (u16, u16),
    /// The owner's `net_ticktime`.
    pub net_ticktime: Duration,
    /// Planning threads.
    pub workers: usize,
    /// Where epmd listens on this host.
    pub epmd_port: u16,
}

impl Config {
    /// A tick is sent when nothing else was for this long: an eighth of `net_ticktime`, twice
    /// as often as OTP's nodes tick, so that the owner never misses one.
    pub fn tick_interval(&self) -> Duration {
        (self.net_ticktime / 8).max(Duration::from_millis(100))
    }

    /// A connection on which nothing arrived for this long is dead (the peer ticks every
    /// quarter of its `net_ticktime`).
    pub fn idle_timeout(&self) -> Duration {
        self.net_ticktime + self.net_ticktime / 4
    }
}

/// Why the node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on {0}: {1}")]
    Listen(String, io::Error),
    #[error("cannot register {0} with epmd on port {1}: {2}")]
    Epmd(String, u16, String),
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
}

/// Counters, reported by the `stats` request.
#[derive(Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub calls: AtomicU64,
    pub plans: AtomicU64,
    pub errors: AtomicU64,
    pub net_kernel_calls: AtomicU64,
    pub dropped: AtomicU64,
    pub unknown_name: AtomicU64,
    pub too_large: AtomicU64,
    pub overloaded: AtomicU64,
    pub replies_dropped: AtomicU64,
    pub panics: AtomicU64,
    pub topology_hits: AtomicU64,
    pub topology_misses: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub(crate) struct Shared {
    pub(crate) cfg: Config,
    pub(crate) cookie: String,
    pub(crate) creation: Creation,
    pub(crate) log: Log,
    pub(crate) stats: Stats,
    /// The pid replies are sent from, encoded.
    pub(crate) self_pid: Vec<u8>,
    pub(crate) jobs: Sender<Job>,
    pub(crate) cache: TopologyCache,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) connections: AtomicUsize,
}

/// One connection, as the workers see it.
pub(crate) struct Conn {
    peer: String,
    /// Whether the peer accepts `ALIAS_SEND`.
    aliases: bool,
    outbox: Sender<Vec<u8>>,
}

impl Conn {
    fn send(&self, shared: &Shared, frame: Vec<u8>) {
        if self.outbox.try_send(frame).is_err() {
            inc(&shared.stats.replies_dropped);
        }
    }

    /// Replies to a call, if it came from this connection's node.
    pub(crate) fn reply(&self, shared: &Shared, call: &Call<'_>, reply: impl FnOnce(&mut Encoder)) {
        if call.from_node == self.peer {
            let frame = dist::reply_frame(call, &shared.self_pid, self.aliases, reply);
            self.send(shared, frame);
        } else {
            inc(&shared.stats.dropped);
        }
    }
}

pub(crate) struct Job {
    pub(crate) frame: Vec<u8>,
    pub(crate) payload_at: usize,
    pub(crate) conn: Arc<Conn>,
}

/// The distribution flags the node offers: OTP 25's mandatory set, monitors by name (every
/// `gen_server:call` to a name monitors it) and process aliases (OTP 24+ call tags).
pub fn flags() -> DistributionFlags {
    DistributionFlags::mandatory()
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME
        | DistributionFlags::ALIAS
}

async fn timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            Timer::after(d).await;
            None
        })
        .await
}

/// Runs the node until the process exits (the owner closes the port, or epmd goes away).
pub fn run(cfg: Config, cookie: String, log: Log) -> Result<(), StartError> {
    let ex = LocalExecutor::new();
    smol::block_on(ex.run(serve(&ex, cfg, cookie, log)))
}

async fn bind(cfg: &Config) -> Result<TcpListener, StartError> {
    let (lo, hi) = cfg.ports;
    let mut last = io::Error::other("empty port range");
    for port in lo..=hi.max(lo) {
        match TcpListener::bind(SocketAddr::new(cfg.listen, port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(StartError::Listen(
        format!("{}:{lo}-{hi}", cfg.listen),
        last,
    ))
}

/// Registers with epmd. A name still held by a previous instance (killed an instant ago, its
/// epmd connection not yet seen closed) is retried for a few seconds.
async fn register(cfg: &Config, port: u16) -> Result<(TcpStream, Creation), StartError> {
    let name = cfg.node.name().to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = async {
            let s = TcpStream::connect(("127.0.0.1", cfg.epmd_port))
                .await
                .map_err(|e| e.to_string())?;
            EpmdClient::new(s)
                .register(NodeEntry::new_hidden(&name, port))
                .await
                .map_err(|e| e.to_string())
        };
        let result = timeout(Duration::from_secs(2), attempt)
            .await
            .unwrap_or_else(|| Err("epmd did not answer".into()));
        match result {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() >= deadline => {
                return Err(StartError::Epmd(name, cfg.epmd_port, e))
            }
            Err(_) => Timer::after(Duration::from_millis(20)).await,
        };
    }
}

async fn serve(
    ex: &LocalExecutor<'_>,
    cfg: Config,
    cookie: String,
    log: Log,
) -> Result<(), StartError> {
    let listener = bind(&cfg).await?;
    let port = listener
        .local_addr()
        .map_err(|e| StartError::Listen(cfg.listen.to_string(), e))?
        .port();
    let (mut keepalive, creation) = register(&cfg, port).await?;
    let self_pid = {
        let mut e = Encoder::new();
        e.pid(&cfg.node.to_string(), 0, 0, creation.get());
        e.buf
    };
    let (jobs, queue) = bounded::<Job>(QUEUE);
    let shared = Arc::new(Shared {
        cookie,
        creation,
        log: log.clone(),
        stats: Stats::default(),
        self_pid,
        jobs,
        cache: TopologyCache::new(),
        in_flight: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
        cfg,
    });
    for i in 0..shared.cfg.workers.max(1) {
        let (s, q) = (Arc::clone(&shared), queue.clone());
        thread::Builder::new()
            .name(format!("planner-{i}"))
            .spawn(move || worker::run(&s, &q))
            .map_err(StartError::Thread)?;
    }

    // epmd answers nothing more on this connection; it closing means we are unregistered and
    // nobody can find us: exit, and the owner starts a new instance.
    let watch_log = log.clone();
    ex.spawn(async move {
        let mut b = [0u8; 16];
        loop {
            match keepalive.read(&mut b).await {
                Ok(0) | Err(_) => {
                    watch_log.error("lost the connection to epmd; exiting");
                    Timer::after(Duration::from_millis(50)).await;
                    std::process::exit(2);
                }
                Ok(_) => {}
            }
        }
    })
    .detach();

    log.line(format!("ready {port} {}", creation.get()));
    log.info(format!(
        "{} listening on {}:{port} (creation {}, {} workers, tick every {:?})",
        shared.cfg.node,
        shared.cfg.listen,
        creation.get(),
        shared.cfg.workers.max(1),
        shared.cfg.tick_interval()
    ));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log.warning(format!("accept failed: {e}"));
                Timer::after(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.connections.fetch_add(1, Relaxed) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Relaxed);
            log.warning("too many connections; refusing one");
            continue;
        }
        let s = Arc::clone(&shared);
        ex.spawn(async move {
            connection(&s, stream).await;
            s.connections.fetch_sub(1, Relaxed);
        })
        .detach();
    }
}

async fn handshake(shared: &Shared, stream: TcpStream) -> Result<PeerNode, String> {
    let local = LocalNode {
        name: shared.cfg.node.clone(),
        flags: flags(),
        creation: shared.creation,
    };
    let mut hs = ServerSideHandshake::new(stream, local, &shared.cookie);
    let name = hs.execute_recv_name().await.map_err(|e| e.to_string())?;
    // A node asking to be given a name (NAME_ME) is not one of ours.
    let status = if name.is_some() {
        HandshakeStatus::Ok
    } else {
        HandshakeStatus::NotAllowed
    };
    let (_, peer) = hs.execute_rest(status).await.map_err(|e| e.to_string())?;
    Ok(peer)
}

async fn connection(shared: &Arc<Shared>, stream: TcpStream) {
    inc(&shared.stats.connections);
    let peer = match timeout(HANDSHAKE_TIMEOUT, handshake(shared, stream.clone())).await {
        Some(Ok(peer)) => peer,
        Some(Err(e)) => {
            inc(&shared.stats.handshake_failures);
            shared.log.warning(format!("handshake refused: {e}"));
            return;
        }
        None => {
            inc(&shared.stats.handshake_failures);
            shared.log.warning("handshake timed out");
            return;
        }
    };
    let (outbox, rx) = bounded::<Vec<u8>>(OUTBOX);
    let conn = Arc::new(Conn {
        peer: peer.name.to_string(),
        aliases: peer.flags.contains(DistributionFlags::ALIAS),
        outbox,
    });
    shared.log.info(format!("{} connected", conn.peer));
    let why = read_loop(shared, &conn, stream.clone())
        .or(write_loop(shared, stream.clone(), rx))
        .await;
    let _ = stream.shutdown(Shutdown::Both);
    shared
        .log
        .info(format!("{} disconnected: {why}", conn.peer));
}

async fn read_loop(shared: &Arc<Shared>, conn: &Arc<Conn>, stream: TcpStream) -> String {
    let idle = shared.cfg.idle_timeout();
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let mut header = [0u8; 4];
        match timeout(idle, r.read_exact(&mut header)).await {
            None => return format!("nothing received for {idle:?}"),
            Some(Err(e)) => return e.to_string(),
            Some(Ok(())) => {}
        }
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 {
            continue; // a tick
        }
        if len > MAX_FRAME {
            if let Err(e) = oversized(shared, conn, &mut r, len).await {
                return e;
            }
            continue;
        }
        let mut frame = vec![0u8; len];
        match timeout(idle, r.read_exact(&mut frame)).await {
            None => return format!("a frame stalled for {idle:?}"),
            Some(Err(e)) => return e.to_string(),
            Some(Ok(())) => {}
        }
        on_frame(shared, conn, frame);
    }
}

async fn write_loop(shared: &Shared, stream: TcpStream, rx: Receiver<Vec<u8>>) -> String {
    let tick = shared.cfg.tick_interval();
    let mut w = BufWriter::with_capacity(64 * 1024, stream);
    loop {
        let written = match timeout(tick, rx.recv()).await {
            None => w.write_all(&[0, 0, 0, 0]).await,
            Some(Err(_)) => return "closed".into(),
            Some(Ok(frame)) => {
                let mut r = w.write_all(&frame).await;
                while let (Ok(()), Ok(more)) = (&r, rx.try_recv()) {
                    r = w.write_all(&more).await;
                }
                r
            }
        };
        if let Err(e) = written.and(w.flush().await) {
            return e.to_string();
        }
    }
}

/// A frame too big to keep: answer the call (if it is one) from its head, skip the rest.
async fn oversized(
    shared: &Shared,
    conn: &Conn,
    r: &mut BufReader<TcpStream>,
    len: usize,
) -> Result<(), String> {
    inc(&shared.stats.too_large);
    let idle = shared.cfg.idle_timeout();
    let mut head = vec![0u8; HEAD.min(len)];
    match timeout(idle, r.read_exact(&mut head)).await {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("an oversized frame stalled".into()),
    }
    if let Ok(Control::RegSend { payload_at, .. }) = dist::control(&head) {
        if let Ok(Some(call)) = dist::call_head(&head[payload_at..]) {
            conn.reply(shared, &call, |e| {
                e.tuple(2).atom("error").tuple(3).atom("too_large");
                e.int(len as i64).int(MAX_FRAME as i64);
            });
        }
    }
    shared.log.warning(format!(
        "{} sent a {len}-byte message, over the {MAX_FRAME}-byte limit: skipped",
        conn.peer
    ));
    let mut left = len - head.len();
    let mut sink = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = left.min(sink.len());
        match timeout(idle, r.read_exact(&mut sink[..n])).await {
            Some(Ok(())) => left -= n,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("an oversized frame stalled".into()),
        }
    }
    Ok(())
}

fn on_frame(shared: &Arc<Shared>, conn: &Arc<Conn>, frame: Vec<u8>) {
    match dist::control(&frame) {
        Ok(Control::RegSend { to, payload_at }) => match to.as_str() {
            "planner" => submit(shared, conn, frame, payload_at),
            "net_kernel" => net_kernel(shared, conn, &frame[payload_at..]),
            _ => inc(&shared.stats.unknown_name),
        },
        Ok(Control::Monitor {
            from,
            to,
            reference,
        }) => match to.as_deref() {
            // Those never go away while the node lives: nothing to remember.
            Some("planner") | Some("net_kernel") | None => {}
            // No such process: the monitor fires at once, as Erlang's would, so a call to an
            // unknown name fails with `noproc` instead of waiting for its timeout.
            Some(name) => conn.send(shared, dist::monitor_exit_frame(name, from, reference)),
        },
        Ok(Control::UnlinkId { id, from, to }) => {
            conn.send(shared, dist::unlink_ack_frame(id, to, from));
        }
        Ok(Control::Other(_)) => {}
        Err(e) => {
            inc(&shared.stats.dropped);
            shared
                .log
                .debug(format!("{}: unreadable frame dropped: {e}", conn.peer));
        }
    }
}

/// Queues a call for a worker, or answers `{error, overloaded}` at once.
fn submit(shared: &Arc<Shared>, conn: &Arc<Conn>, frame: Vec<u8>, payload_at: usize) {
    let len = frame.len();
    let reject = |frame: &[u8]| {
        inc(&shared.stats.overloaded);
        if let Ok(Some(call)) = dist::call_head(&frame[payload_at..]) {
            conn.reply(shared, &call, |e| {
                e.tuple(2).atom("error").atom("overloaded");
            });
        }
    };
    if shared.in_flight.fetch_add(len, Relaxed) + len > MAX_IN_FLIGHT {
        shared.in_flight.fetch_sub(len, Relaxed);
        return reject(&frame);
    }
    let job = Job {
        frame,
        payload_at,
        conn: Arc::clone(conn),
    };
    if let Err(TrySendError::Full(job) | TrySendError::Closed(job)) = shared.jobs.try_send(job) {
        shared.in_flight.fetch_sub(len, Relaxed);
        reject(&job.frame);
    }
}

/// `net_adm:ping/1` is `gen_server:call({net_kernel, Node}, {is_auth, node()})`: answer `yes`.
fn net_kernel(shared: &Shared, conn: &Conn, payload: &[u8]) {
    let Ok(Some(call)) = dist::call_head(payload) else {
        inc(&shared.stats.dropped);
        return;
    };
    inc(&shared.stats.net_kernel_calls);
    let request = Decoder::new(&payload[call.request_at..], 64).term();
    let is_auth = matches!(&request, Ok(Term::Tuple(t)) if t.len() == 2 && t[0].is_atom("is_auth"));
    conn.reply(shared, &call, |e| {
        if is_auth {
            e.atom("yes");
        } else {
            e.tuple(2).atom("error").atom("unknown_request");
        }
    });
}
