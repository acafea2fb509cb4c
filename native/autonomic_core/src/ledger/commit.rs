//! The commit thread: the one thread that owns a ledger's [`Writer`], so that callers never do
//! file I/O themselves (in the NIF, callers are Erlang processes on normal schedulers: they
//! enqueue and wait for a message).
//!
//! Callers [`Committer::submit`] an entry with a reply tag; the thread takes everything queued,
//! appends and fsyncs it according to the [`FsyncPolicy`], and answers every tag through the
//! [`Replier`] only after the fsync that covers its record:
//!
//! * [`FsyncPolicy::Always`]: one write and one `fdatasync` per record, in arrival order.
//! * [`FsyncPolicy::GroupCommit`]: one write and one `fdatasync` for everything queued (up to
//!   [`MAX_BATCH_RECORDS`] / [`MAX_BATCH_BYTES`]), and at most one fsync per `interval`: a batch
//!   that arrives sooner after the previous fsync started waits (gathering more) until the interval
//!   has passed. With a zero interval nothing waits: what queues up while an fsync runs shares the
//!   next one, which is all a lone appender pays and what makes thousands of concurrent
//!   appenders cheap.
//!
//! With group commit, the replies of a batch are sent by a second thread while the commit thread
//! goes on with the next batch (publication to readers happens before either, so a caller that
//! has its receipt can read it back).
//!
//! Every submitted tag is answered exactly once: stopping refuses new submissions first, then the
//! thread drains the queue (appending what was accepted) before it exits, and a panic while
//! processing a batch answers that batch with an error and stops the writer.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Appended, Entry, Ledger, LedgerError, Writer};

/// Most records one group-commit batch takes.
pub const MAX_BATCH_RECORDS: usize = 8192;
/// Most payload bytes one batch takes (a single larger entry still forms a batch of its own).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Payload bytes that may wait in the queue before submissions are refused.
pub const MAX_QUEUED_BYTES: usize = 256 << 20;

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// An `fdatasync` per record.
    Always,
    /// Shared `fdatasync`s, at most one per `interval`.
    GroupCommit { interval: Duration },
}

/// Delivers outcomes; runs on the commit thread.
pub trait Replier<T>: Send {
    /// Answers one submission, after the fsync that made its record durable (or with the error
    /// that prevented it). The submitter still holds the action and result it appended.
    fn reply(&mut self, tag: T, outcome: Result<&Appended, &LedgerError>);

    /// Called after the replies of each batch.
    fn batch_done(&mut self) {}

    /// Called once, last, after the writer (its files and the directory lock) is gone.
    fn closed(&mut self) {}
}

/// Why a submission was refused (the entry was not queued; no reply will come).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Closed,
    Overloaded { bytes: usize },
    PayloadTooLarge { size: usize },
}

impl From<Refused> for LedgerError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Closed => LedgerError::Closed,
            Refused::Overloaded { bytes } => LedgerError::Overloaded { bytes },
            Refused::PayloadTooLarge { size } => LedgerError::PayloadTooLarge {
                size,
                max: super::MAX_PAYLOAD,
            },
        }
    }
}

struct Queue<T> {
    items: VecDeque<(Entry, T)>,
    bytes: usize,
    stopping: bool,
}

struct Inner<T> {
    queue: Mutex<Queue<T>>,
    wake: Condvar,
}

/// Handle on a commit thread. Dropping it stops the thread without waiting for it (the thread
/// still drains the queue, then calls [`Replier::closed`]).
pub struct Committer<T> {
    inner: Arc<Inner<T>>,
    thread: Option<JoinHandle<()>>,
    ledger: Ledger,
}

impl<T: Send + 'static> Committer<T> {
    /// Starts the commit thread for `writer`.
    pub fn spawn<R: Replier<T> + 'static>(
        writer: Writer,
        policy: FsyncPolicy,
        replier: R,
        name: &str,
    ) -> Result<Self, LedgerError> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                stopping: false,
            }),
            wake: Condvar::new(),
        });
        let ledger = writer.ledger();
        let thread_inner = Arc::clone(&inner);
        let spawn_err = |e| LedgerError::io("spawn commit thread", ledger.dir(), e);
        let answerer = match policy {
            FsyncPolicy::Always => Answerer::Inline(replier),
            FsyncPolicy::GroupCommit { .. } => {
                let (tx, rx) = mpsc::channel();
                let handle = thread::Builder::new()
                    .name(name.chars().take(13).chain("-r".chars()).collect())
                    .spawn(move || {
                        let mut replier = replier;
                        for (outcome, tags) in rx {
                            answer(&mut replier, &outcome, tags);
                        }
                        let _ = panic::catch_unwind(AssertUnwindSafe(|| replier.closed()));
                    })
                    .map_err(spawn_err)?;
                Answerer::Thread { tx, handle }
            }
        };
        let thread = thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || run(thread_inner, writer, policy, answerer))
            .map_err(spawn_err)?;
        Ok(Committer {
            inner,
            thread: Some(thread),
            ledger,
        })
    }

    /// The ledger this thread appends to.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Queues an entry; its outcome will reach the replier with `tag`. Never blocks for I/O.
    pub fn submit(&self, entry: Entry, tag: T) -> Result<(), (Refused, T)> {
        let size = entry.payload_len();
        if entry.check().is_err() {
            return Err((Refused::PayloadTooLarge { size }, tag));
        }
        let mut q = self.inner.queue.lock();
        if q.stopping {
            return Err((Refused::Closed, tag));
        }
        if q.bytes > MAX_QUEUED_BYTES {
            let bytes = q.bytes;
            return Err((Refused::Overloaded { bytes }, tag));
        }
        let was_empty = q.items.is_empty();
        q.bytes += size;
        q.items.push_back((entry, tag));
        drop(q);
        if was_empty {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Refuses further submissions and lets the thread finish what is queued; does not wait.
    pub fn stop(&self) {
        self.inner.queue.lock().stopping = true;
        self.inner.wake.notify_one();
    }

    /// Stops and waits until every queued entry is answered and the files are closed.
    pub fn close(mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            // The thread catches panics per batch; a join error would only mean one escaped
            // `closed()`, after everything was answered.
            let _ = t.join();
        }
    }
}

impl<T> Drop for Committer<T> {
    fn drop(&mut self) {
        self.inner.queue.lock().stopping = true;
        self.inner.wake.notify_one();
    }
}

/// A batch's outcome and its tags.
type Answers<T> = (Result<Vec<Appended>, LedgerError>, Vec<T>);

/// Who answers a batch. With group commit, a reply thread: a batch has hundreds of replies, and
/// sending them there overlaps the next batch's write and fsync instead of delaying it. With an
/// fsync per record, the commit thread itself: one reply is cheaper than a hand-off to another
/// thread, which would sit on every round trip of a lone appender.
enum Answerer<T, R> {
    Inline(R),
    Thread {
        tx: mpsc::Sender<Answers<T>>,
        handle: JoinHandle<()>,
    },
}

impl<T, R: Replier<T>> Answerer<T, R> {
    fn answer(&mut self, outcome: Result<Vec<Appended>, LedgerError>, tags: Vec<T>) {
        match self {
            Answerer::Inline(replier) => answer(replier, &outcome, tags),
            // Only fails once the reply thread is gone, which it never is before this sender.
            Answerer::Thread { tx, .. } => {
                let _ = tx.send((outcome, tags));
            }
        }
    }

    /// After the last batch: every tag answered, then `closed()`, before this returns.
    fn finish(self) {
        match self {
            Answerer::Inline(mut replier) => {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| replier.closed()));
            }
            Answerer::Thread { tx, handle } => {
                drop(tx);
                let _ = handle.join();
            }
        }
    }
}

/// The commit thread: takes batches, appends them, and has them answered. Returns (so that a
/// join on it completes) only after every tag is answered and the writer is gone.
fn run<T, R: Replier<T>>(
    inner: Arc<Inner<T>>,
    writer: Writer,
    policy: FsyncPolicy,
    mut answerer: Answerer<T, R>,
) {
    let mut writer = Some(writer);
    let mut last_sync: Option<Instant> = None;
    let mut entries: Vec<Entry> = Vec::new();
    let mut tags: Vec<T> = Vec::new();
    loop {
        {
            let mut q = inner.queue.lock();
            while q.items.is_empty() && !q.stopping {
                inner.wake.wait(&mut q);
            }
            if q.items.is_empty() {
                break; // stopping, and nothing left to answer
            }
            if let (FsyncPolicy::GroupCommit { interval }, Some(last)) = (policy, last_sync) {
                let due = last + interval;
                while !q.stopping && q.items.len() < MAX_BATCH_RECORDS {
                    if inner.wake.wait_until(&mut q, due).timed_out() {
                        break;
                    }
                }
            }
            let limit = match policy {
                FsyncPolicy::Always => 1,
                FsyncPolicy::GroupCommit { .. } => MAX_BATCH_RECORDS,
            };
            let mut bytes = 0usize;
            while let Some((entry, _)) = q.items.front() {
                let size = entry.payload_len();
                if !entries.is_empty() && (entries.len() >= limit || bytes + size > MAX_BATCH_BYTES)
                {
                    break;
                }
                let Some((entry, tag)) = q.items.pop_front() else {
                    break;
                };
                bytes += size;
                entries.push(entry);
                tags.push(tag);
            }
            q.bytes -= bytes;
        }
        last_sync = Some(Instant::now());
        let outcome = commit_batch(&mut writer, &mut entries);
        answerer.answer(outcome, std::mem::take(&mut tags));
    }
    drop(writer);
    answerer.finish();
}

/// Answers every tag of a batch, in order.
fn answer<T, R: Replier<T>>(
    replier: &mut R,
    outcome: &Result<Vec<Appended>, LedgerError>,
    mut tags: Vec<T>,
) {
    match outcome {
        Ok(appended) => {
            for (a, tag) in appended.iter().zip(tags.drain(..)) {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| replier.reply(tag, Ok(a))));
            }
        }
        Err(e) => {
            for tag in tags.drain(..) {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| replier.reply(tag, Err(e))));
            }
        }
    }
    // `append` returns one `Appended` per entry; should that ever not hold, the leftovers still
    // get an answer.
    for tag in tags.drain(..) {
        let e = LedgerError::Internal("record without receipt");
        let _ = panic::catch_unwind(AssertUnwindSafe(|| replier.reply(tag, Err(&e))));
    }
    let _ = panic::catch_unwind(AssertUnwindSafe(|| replier.batch_done()));
}

/// Appends one batch (emptying `entries`). After a panic the writer is dropped: its state is
/// unknown, so nothing more is appended through it.
fn commit_batch(
    writer: &mut Option<Writer>,
    entries: &mut Vec<Entry>,
) -> Result<Vec<Appended>, LedgerError> {
    let outcome = match writer.as_mut() {
        Some(w) => panic::catch_unwind(AssertUnwindSafe(|| w.append(entries)))
            .unwrap_or(Err(LedgerError::Internal("panic while appending"))),
        None => Err(LedgerError::Failed),
    };
    if let Err(LedgerError::Internal(_)) = outcome {
        *writer = None;
    }
    entries.clear();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{open, Options, Verification};
    use std::sync::mpsc;

    type Reply = (u64, Result<Appended, String>);

    struct Chan(mpsc::Sender<Reply>);

    impl Replier<u64> for Chan {
        fn reply(&mut self, tag: u64, outcome: Result<&Appended, &LedgerError>) {
            let _ = self
                .0
                .send((tag, outcome.copied().map_err(|e| e.to_string())));
        }
        fn closed(&mut self) {
            let _ = self.0.send((u64::MAX, Err("closed".into())));
        }
    }

    fn start(policy: FsyncPolicy) -> (tempfile::TempDir, Committer<u64>, mpsc::Receiver<Reply>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_ledger, writer, _) = open(dir.path(), Options::default()).expect("open");
        let (tx, rx) = mpsc::channel();
        let c = Committer::spawn(writer, policy, Chan(tx), "test-commit").expect("spawn");
        (dir, c, rx)
    }

    #[test]
    fn concurrent_submitters_share_fsyncs_and_every_tag_is_answered_once() {
        let (_dir, c, rx) = start(FsyncPolicy::GroupCommit {
            interval: Duration::from_millis(2),
        });
        let c = Arc::new(c);
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let c = Arc::clone(&c);
                thread::spawn(move || {
                    for i in 0..500u64 {
                        let tag = t * 1000 + i;
                        c.submit(Entry::new(format!("a{t}"), i.to_be_bytes()), tag)
                            .map_err(|(r, _)| r)
                            .expect("submit");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let mut seen = std::collections::HashSet::new();
        let mut seqs = std::collections::HashSet::new();
        for _ in 0..4000 {
            let (tag, outcome) = rx.recv_timeout(Duration::from_secs(30)).expect("reply");
            let appended = outcome.expect("appended");
            assert!(seen.insert(tag), "tag {tag} answered twice");
            assert!(seqs.insert(appended.seq));
            let receipt = c.ledger().read(appended.seq).expect("read");
            assert_eq!(receipt.hash, appended.hash);
            assert_eq!(receipt.result, (tag % 1000).to_be_bytes().to_vec());
        }
        let ledger = c.ledger().clone();
        let stats = ledger.stats();
        assert_eq!(stats.appends, 4000);
        assert!(stats.fsyncs < 4000, "group commit shared fsyncs: {stats:?}");
        assert_eq!(
            ledger.verify().expect("verify"),
            Verification::Intact { records: 4000 }
        );
        match Arc::try_unwrap(c) {
            Ok(c) => c.close(),
            Err(_) => panic!("committer still shared"),
        }
        assert_eq!(rx.recv().expect("closed").0, u64::MAX);
    }

    #[test]
    fn always_fsyncs_every_record() {
        let (_dir, c, rx) = start(FsyncPolicy::Always);
        for i in 0..20u64 {
            c.submit(Entry::new("x", vec![]), i)
                .map_err(|(r, _)| r)
                .expect("submit");
        }
        for i in 0..20u64 {
            let (tag, outcome) = rx.recv_timeout(Duration::from_secs(30)).expect("reply");
            assert_eq!(tag, i, "answered in order");
            assert_eq!(outcome.expect("ok").seq, i);
        }
        assert_eq!(c.ledger().stats().fsyncs, 20);
        assert_eq!(c.ledger().stats().batches[0], 20);
        c.close();
    }

    #[test]
    fn close_drains_the_queue_then_refuses() {
        let (_dir, c, rx) = start(FsyncPolicy::GroupCommit {
            interval: Duration::from_millis(50),
        });
        for i in 0..100u64 {
            c.submit(Entry::new("x", vec![]), i)
                .map_err(|(r, _)| r)
                .expect("submit");
        }
        let ledger = c.ledger().clone();
        let inner = Arc::clone(&c.inner);
        c.close();
        let answered: Vec<_> = rx.try_iter().collect();
        assert_eq!(answered.len(), 101, "100 receipts, then closed");
        assert!(answered[..100].iter().all(|(_, o)| o.is_ok()));
        assert_eq!(ledger.size(), 100);
        assert!(inner.queue.lock().stopping);
    }

    #[test]
    fn oversized_entries_are_refused_at_submission() {
        let (_dir, c, _rx) = start(FsyncPolicy::Always);
        let big = Entry::new(vec![0u8; 10], vec![0u8; super::super::MAX_PAYLOAD]);
        assert_eq!(
            c.submit(big, 1).map_err(|(r, _)| r),
            Err(Refused::PayloadTooLarge {
                size: super::super::MAX_PAYLOAD + 10
            })
        );
        c.stop();
        assert_eq!(
            c.submit(Entry::new("a", "b"), 2).map_err(|(r, _)| r),
            Err(Refused::Closed)
        );
    }
}
