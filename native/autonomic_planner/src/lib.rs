//! The planner C-node: a hidden Erlang node, written in Rust on `erl_dist`, that serves
//! `autonomic_core::planner` to the node that started it (its *owner*).
//!
//! # Lifecycle and security
//!
//! The owner (`autonomic_planner_cnode` in the `autonomic` application) starts the binary as a
//! port with `open_port({spawn_executable, ...})`:
//!
//! ```text
//! autonomic_planner planner_<owner>@<host> [--listen ADDR] [--ports MIN-MAX]
//!                   [--net-ticktime SECONDS] [--workers N]
//! ```
//!
//! and writes the owner's cookie as the first line of the port, so the cookie never appears on a
//! command line or in the environment (both readable by other users through `ps` and `/proc`).
//! The C-node binds its listener, registers with the local epmd as a *hidden* node (it keeps the
//! epmd connection open for its whole life, which is what keeps it registered), and writes
//! `ready <port> <creation>` on its stdout. From then on its stdout carries log lines
//! (`log <level> <text>`) that the owner passes to `logger`.
//!
//! It exits as soon as its stdin reaches end of file: the owner closed the port, stopped, or was
//! killed (the kernel closes the pipe of a killed process), so no C-node outlives its owner. It
//! also exits when its epmd connection is lost. Connecting nodes must know the cookie (the
//! handshake's challenge fails otherwise, and the connection is closed).
//!
//! # What it answers
//!
//! * `gen_server:call({planner, Node}, {plan, Input})`: `{ok, Plan}` or `{error, Reason}`;
//!   `gen_server:call({planner, Node}, stats)`: the node's counters. Replies echo the call's tag
//!   byte for byte; an OTP 24+ `[alias | Ref]` tag is answered with an alias send, so the reply
//!   to a caller that already gave up is discarded by the runtime instead of landing in its
//!   mailbox.
//! * net_kernel's `{is_auth, Node}` call (`net_adm:ping/1` gives `pong`).
//! * Monitors of `planner` and `net_kernel` are accepted; a monitor of any other name fires at
//!   once with `noproc`, so calls to unknown names fail fast, as against an Erlang node. Messages
//!   to unknown names, non-call messages, and unreadable frames are dropped and counted.
//! * Ticks: sent when the connection has been idle for `net_ticktime / 8`; a connection on
//!   which nothing arrived for `net_ticktime * 5/4` is closed.
//!
//! # Bounds
//!
//! A frame over [`server::MAX_FRAME`] bytes is not kept: a call in it is answered
//! `{error, {too_large, Size, Max}}` from the frame's head, the rest is skipped. A request over
//! [`server::MAX_TERMS`] terms or nested deeper than [`etf::MAX_DEPTH`] is answered
//! `{error, {bad_term, Why}}`. Calls beyond [`server::QUEUE`] queued or [`server::MAX_IN_FLIGHT`]
//! bytes are answered `{error, overloaded}`. The planner's own limits (nodes, services,
//! dependencies) give `{error, {invalid_input, {too_many, What, Max}}}`.
//!
//! # Prepared topologies
//!
//! The node keeps the last few topologies it validated and indexed ([`cache`]), keyed by the
//! bytes of their encoding: a plan asked with a topology seen before skips decoding, validating
//! and indexing it, which is most of the work on a big topology.
//!
//! # Runtime
//!
//! `erl_dist` is built on `futures`' `AsyncRead`/`AsyncWrite`, and its handshake and channel
//! want a stream that is `Clone`: `smol`'s `TcpStream` is (tokio's is not, which would need a
//! bridge through channels or compat wrappers on an extra thread). So the network runs on a
//! single-threaded `smol` executor, the way `erl_dist`'s own examples run, and frames are read
//! and written directly (`dist`), which lets the node bound every read. Planning is CPU work
//! and runs on a pool of plain threads (see `server`); nothing else needs an async runtime.

pub mod cache;
pub mod convert;
pub mod dist;
pub mod etf;
pub mod log;
pub mod server;
mod worker;
