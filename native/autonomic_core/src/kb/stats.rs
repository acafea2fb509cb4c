//! Outcome statistics kept up to date on every insert and eviction: success counts per failure
//! type, and per strategy the outcomes and the distribution of successful recovery times.

use std::collections::BTreeMap;

use super::record::{Failure, RecoveryMs};

/// Successes and failures of a set of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub successes: u64,
    pub failures: u64,
}

impl Counts {
    pub fn total(self) -> u64 {
        self.successes + self.failures
    }

    /// `successes / total`, or `None` without any record.
    pub fn rate(self) -> Option<f64> {
        (self.total() > 0).then(|| self.successes as f64 / self.total() as f64)
    }

    pub(crate) fn add(&mut self, success: bool) {
        if success {
            self.successes += 1;
        } else {
            self.failures += 1;
        }
    }

    pub(crate) fn remove(&mut self, success: bool) {
        if success {
            self.successes = self.successes.saturating_sub(1);
        } else {
            self.failures = self.failures.saturating_sub(1);
        }
    }
}

/// What the knowledge base knows about one strategy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Effectiveness {
    pub counts: Counts,
    /// `successes / (successes + failures)`; `None` without any record.
    pub rate: Option<f64>,
    /// Mean `recovery_ms` of the successful recoveries; `None` without any.
    pub mean_recovery_ms: Option<f64>,
    /// 95th percentile (nearest rank: the smallest value at or above 95% of the successful
    /// recoveries) of `recovery_ms`; `None` without any.
    pub p95_recovery_ms: Option<f64>,
}

/// Per strategy: outcome counts, and the successful recovery times as a sorted multiset (keys are
/// the bits of non-negative floats, which sort like the floats).
#[derive(Clone, Debug, Default)]
pub(crate) struct StrategyStats {
    counts: Counts,
    recoveries: BTreeMap<u64, u32>,
    recoveries_len: u64,
}

fn key(ms: RecoveryMs) -> u64 {
    ms.as_f64().to_bits()
}

impl StrategyStats {
    pub fn add(&mut self, f: &Failure) {
        self.counts.add(f.success());
        if f.success() {
            *self.recoveries.entry(key(f.recovery_ms())).or_insert(0) += 1;
            self.recoveries_len += 1;
        }
    }

    pub fn remove(&mut self, success: bool, ms: RecoveryMs) {
        self.counts.remove(success);
        if success {
            let k = key(ms);
            if let Some(n) = self.recoveries.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.recoveries.remove(&k);
                }
                self.recoveries_len -= 1;
            }
        }
    }

    /// Work [`StrategyStats::effectiveness`] does: the distinct recovery times it walks.
    pub fn cost(&self) -> usize {
        self.recoveries.len()
    }

    /// Summarizes. The mean is summed in ascending order of the values, so it depends only on
    /// the set of records, not on the order they arrived in.
    pub fn effectiveness(&self) -> Effectiveness {
        let n = self.recoveries_len;
        let (mean, p95) = if n == 0 {
            (None, None)
        } else {
            // Nearest rank: the ceil(0.95 n)-th smallest value (1-based).
            let rank = (95 * n).div_ceil(100);
            let mut seen = 0u64;
            let mut sum = 0.0f64;
            let mut p95 = None;
            for (&bits, &count) in &self.recoveries {
                let v = f64::from_bits(bits);
                sum += v * f64::from(count);
                seen += u64::from(count);
                if p95.is_none() && seen >= rank {
                    p95 = Some(v);
                }
            }
            (Some(sum / n as f64), p95)
        };
        Effectiveness {
            counts: self.counts,
            rate: self.counts.rate(),
            mean_recovery_ms: mean,
            p95_recovery_ms: p95,
        }
    }
}
