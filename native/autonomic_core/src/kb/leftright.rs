//! Left-right concurrency: two copies of a structure, so that readers never wait for long.
//!
//! Readers use the *active* copy; a writer applies its operations to the *inactive* copy, then
//! makes it the active one, and replays the same operations on the other copy at the start of the
//! next write (the operations must be deterministic: the same operations on the same state give
//! the same state). Each copy sits behind its own `parking_lot::RwLock`:
//!
//! - A reader takes the active copy's lock with `read_recursive`. The only writer that can ever
//!   hold that lock is one that started right after a swap, for the duration of one batch of
//!   operations; a reader never queues behind a writer that is itself waiting for a long reader.
//! - A writer takes the inactive copy's lock. The readers it may find there started before the
//!   previous swap (no new reader goes to the inactive copy), so a writer waits at most for the
//!   longest read in progress: never starved by a stream of short reads. [`LeftRight::try_apply`]
//!   bounds that wait, for callers that must not block (a NIF on a normal scheduler).
//!
//! This is the left-right pattern of Ramalhete and Correia (as in the `left-right`/`evmap`
//! crates), built from two locks instead of epoch counters: the cost is memory (two copies) and
//! applying every write twice.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An operation that can be applied to both copies.
pub trait Absorb<T> {
    type Output;
    fn absorb(&self, target: &mut T) -> Self::Output;
}

/// The write could not start in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// How often, and how long, readers had to wait for a writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadWaits {
    /// Reads that found their copy write-locked.
    pub count: u64,
    /// Total time they waited, in nanoseconds.
    pub total_ns: u64,
    /// Longest single wait, in nanoseconds.
    pub max_ns: u64,
}

#[derive(Debug)]
pub struct LeftRight<T, O> {
    copies: [RwLock<T>; 2],
    active: AtomicUsize,
    /// Serializes writers; holds the operations applied to the active copy and not yet to the
    /// inactive one.
    lag: Mutex<Vec<O>>,
    waits: AtomicU64,
    waited_ns: AtomicU64,
    max_wait_ns: AtomicU64,
}

impl<T: Clone, O: Absorb<T>> LeftRight<T, O> {
    pub fn new(value: T) -> Self {
        LeftRight {
            copies: [RwLock::new(value.clone()), RwLock::new(value)],
            active: AtomicUsize::new(0),
            lag: Mutex::new(Vec::new()),
            waits: AtomicU64::new(0),
            waited_ns: AtomicU64::new(0),
            max_wait_ns: AtomicU64::new(0),
        }
    }
}

impl<T, O: Absorb<T>> LeftRight<T, O> {
    /// A read guard on the current state. Waits (and counts the wait) only when a writer holds
    /// the copy, which happens when the reader picked the copy just before a swap.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        let copy = &self.copies[self.active.load(Ordering::Acquire) & 1];
        if let Some(guard) = copy.try_read_recursive() {
            return guard;
        }
        let t0 = Instant::now();
        let guard = copy.read_recursive();
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.waited_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_wait_ns.fetch_max(ns, Ordering::Relaxed);
        guard
    }

    /// The readers' waits so far.
    pub fn read_waits(&self) -> ReadWaits {
        ReadWaits {
            count: self.waits.load(Ordering::Relaxed),
            total_ns: self.waited_ns.load(Ordering::Relaxed),
            max_ns: self.max_wait_ns.load(Ordering::Relaxed),
        }
    }

    /// Applies `ops` in order, waiting as long as needed; returns their outputs. Both copies are
    /// brought up to date before it returns (it waits for the reads of the old copy to finish),
    /// so the next writer has nothing to replay: a large batch applied here never lands on a
    /// writer that must not wait ([`LeftRight::try_apply`] replays at most one batch of its own).
    pub fn apply(&self, ops: Vec<O>) -> Vec<O::Output> {
        let mut lag = self.lag.lock();
        let inactive = 1 - (self.active.load(Ordering::Acquire) & 1);
        let guard = self.copies[inactive].write();
        let out = self.publish(&mut lag, inactive, guard, ops);
        let mut other = self.copies[1 - inactive].write();
        for op in lag.drain(..) {
            op.absorb(&mut other);
        }
        out
    }

    /// Operations applied to the active copy and not yet to the other one.
    pub fn lag(&self) -> usize {
        self.lag.lock().len()
    }

    /// As [`LeftRight::apply`], but gives up (applying nothing) when the write cannot start
    /// within `wait`.
    pub fn try_apply(&self, ops: Vec<O>, wait: Duration) -> Result<Vec<O::Output>, Busy> {
        let mut lag = self.lag.try_lock_for(wait).ok_or(Busy)?;
        let inactive = 1 - (self.active.load(Ordering::Acquire) & 1);
        let guard = self.copies[inactive].try_write_for(wait).ok_or(Busy)?;
        Ok(self.publish(&mut lag, inactive, guard, ops))
    }

    fn publish(
        &self,
        lag: &mut Vec<O>,
        inactive: usize,
        mut guard: RwLockWriteGuard<'_, T>,
        ops: Vec<O>,
    ) -> Vec<O::Output> {
        for op in lag.drain(..) {
            op.absorb(&mut guard);
        }
        let out = ops.iter().map(|op| op.absorb(&mut guard)).collect();
        drop(guard);
        self.active.store(inactive, Ordering::Release);
        *lag = ops;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[derive(Clone, Copy)]
    struct Add(u64);

    impl Absorb<Vec<u64>> for Add {
        type Output = usize;
        fn absorb(&self, v: &mut Vec<u64>) -> usize {
            v.push(self.0);
            v.len()
        }
    }

    #[test]
    fn both_copies_converge() {
        let lr: LeftRight<Vec<u64>, Add> = LeftRight::new(Vec::new());
        assert_eq!(lr.apply(vec![Add(1), Add(2)]), vec![1, 2]);
        assert_eq!(*lr.read(), vec![1, 2]);
        // A blocking apply settles both copies; a bounded one leaves its own batch to replay.
        assert_eq!(lr.lag(), 0);
        assert_eq!(*lr.copies[0].read(), *lr.copies[1].read());
        assert_eq!(lr.apply(vec![Add(3)]), vec![3]);
        assert_eq!(*lr.read(), vec![1, 2, 3]);
        assert_eq!(lr.try_apply(vec![Add(4)], Duration::ZERO).unwrap(), vec![4]);
        assert_eq!(*lr.read(), vec![1, 2, 3, 4]);
        assert_eq!(lr.lag(), 1);
        // The other copy caught up too.
        lr.apply(Vec::new());
        assert_eq!(*lr.read(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_long_reader_delays_writers_but_no_reader() {
        let lr: Arc<LeftRight<Vec<u64>, Add>> = Arc::new(LeftRight::new(Vec::new()));
        let long = lr.read();
        // The first write goes to the other copy: no wait.
        assert!(lr.try_apply(vec![Add(1)], Duration::ZERO).is_ok());
        // The second needs the copy the long reader holds.
        let t0 = Instant::now();
        assert_eq!(
            lr.try_apply(vec![Add(2)], Duration::from_millis(5)),
            Err(Busy)
        );
        assert!(t0.elapsed() >= Duration::from_millis(5));
        let writer = {
            let lr = Arc::clone(&lr);
            std::thread::spawn(move || lr.apply(vec![Add(2)]))
        };
        std::thread::sleep(Duration::from_millis(20));
        // Readers see the newest published state without waiting for the queued writer.
        let t0 = Instant::now();
        assert_eq!(*lr.read(), vec![1]);
        assert!(t0.elapsed() < Duration::from_millis(10));
        assert!(!writer.is_finished());
        assert_eq!(lr.read_waits().count, 0);
        assert!(long.is_empty());
        drop(long);
        assert_eq!(writer.join().unwrap(), vec![2]);
        assert_eq!(*lr.read(), vec![1, 2]);
    }

    #[test]
    fn waits_are_counted_and_timed() {
        let lr: Arc<LeftRight<Vec<u64>, Add>> = Arc::new(LeftRight::new(Vec::new()));
        // A writer holding the active copy: what a reader meets when it picked the copy just
        // before a swap and the next write started on it.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = {
            let lr = Arc::clone(&lr);
            std::thread::spawn(move || {
                let active = lr.active.load(Ordering::Acquire) & 1;
                let _guard = lr.copies[active].write();
                locked_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            })
        };
        locked_rx.recv().unwrap();
        drop(lr.read());
        holder.join().unwrap();
        let w = lr.read_waits();
        assert_eq!(w.count, 1);
        assert!(w.max_ns >= 10_000_000 && w.total_ns == w.max_ns, "{w:?}");
        drop(lr.read());
        assert_eq!(lr.read_waits().count, 1);
    }

    #[test]
    fn a_stream_of_readers_does_not_starve_a_writer() {
        let lr: Arc<LeftRight<Vec<u64>, Add>> = Arc::new(LeftRight::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (lr, stop) = (Arc::clone(&lr), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let v = lr.read();
                        // Each published state is a prefix 1..=n.
                        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 + 1));
                    }
                })
            })
            .collect();
        // Readers overlap without pause (more busy threads than this machine's cores): with a
        // single reader-preferring lock the writes would never get in. Here each write waits
        // at most for the reads that began before the previous swap.
        for i in 1..=200 {
            lr.apply(vec![Add(i)]);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(lr.read().len(), 200);
    }
}
