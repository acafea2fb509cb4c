//! Jaccard similarity over sorted arrays of interned symptom ids, and the bound that lets a
//! search skip most of the history.

use serde::Serialize;

/// A similarity threshold: a number in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
pub struct Threshold(f64);

impl Threshold {
    /// The default of `similar/2` and `recommend/1`.
    pub const DEFAULT: Threshold = Threshold(0.7);

    /// Accepts a value in `0.0..=1.0` (so not NaN).
    pub fn new(value: f64) -> Option<Threshold> {
        (0.0..=1.0).contains(&value).then_some(Threshold(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Jaccard similarity from the sizes of two sets and of their intersection:
/// `|A ∩ B| / |A ∪ B|`, computed as `inter / (a + b - inter)` in `f64` (one correctly rounded
/// division, so any implementation that divides the same two integers gets the same bits). Two
/// empty sets are identical: their similarity is `1.0`.
pub fn jaccard(inter: usize, a: usize, b: usize) -> f64 {
    let union = a + b - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Size of the intersection of two sorted, duplicate-free slices (a merge: `a.len() + b.len()`
/// comparisons at most, on integers).
pub fn intersection_len(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// The fewest symptoms a record must share with a query of `q >= 1` symptoms to reach
/// `threshold`: the least `m` with `m / q >= threshold`, evaluated in the same floating point as
/// [`jaccard`]. It is a sound bound: the union is at least `q`, and a correctly rounded division
/// does not grow when its divisor does, so `jaccard(i, q, r) <= i / q` bit for bit; a record
/// sharing fewer than `m` symptoms cannot pass. `0` means every record passes (threshold 0).
pub fn min_overlap(q: usize, threshold: Threshold) -> usize {
    (0..=q)
        .find(|&m| m as f64 / q as f64 >= threshold.get())
        .unwrap_or(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_edge_cases() {
        // Both empty: identical.
        assert_eq!(jaccard(0, 0, 0), 1.0);
        // One empty: nothing in common.
        assert_eq!(jaccard(0, 0, 3), 0.0);
        assert_eq!(jaccard(0, 3, 0), 0.0);
        // Identical.
        assert_eq!(jaccard(4, 4, 4), 1.0);
        // Disjoint.
        assert_eq!(jaccard(0, 2, 3), 0.0);
        // Partial: {a,b,c} vs {b,c,d}: 2 / 4.
        assert_eq!(jaccard(2, 3, 3), 0.5);
        // 7 of 10 shared, nothing else: exactly 0.7 as f64 division gives it.
        assert_eq!(jaccard(7, 10, 7), 0.7);
    }

    #[test]
    fn intersection_of_sorted_slices() {
        assert_eq!(intersection_len(&[], &[]), 0);
        assert_eq!(intersection_len(&[1, 2, 3], &[]), 0);
        assert_eq!(intersection_len(&[1, 2, 3], &[1, 2, 3]), 3);
        assert_eq!(intersection_len(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), 2);
        assert_eq!(intersection_len(&[1, 2], &[3, 4]), 0);
    }

    #[test]
    fn thresholds_are_checked() {
        assert!(Threshold::new(0.0).is_some());
        assert!(Threshold::new(1.0).is_some());
        assert!(Threshold::new(-0.0001).is_none());
        assert!(Threshold::new(1.0001).is_none());
        assert!(Threshold::new(f64::NAN).is_none());
        assert_eq!(Threshold::DEFAULT.get(), 0.7);
    }

    #[test]
    fn min_overlap_is_the_tight_bound() {
        let t = |v| Threshold::new(v).unwrap();
        assert_eq!(min_overlap(5, t(0.0)), 0);
        assert_eq!(min_overlap(5, t(0.7)), 4);
        assert_eq!(min_overlap(5, t(0.8)), 4);
        assert_eq!(min_overlap(5, t(0.81)), 5);
        assert_eq!(min_overlap(10, t(0.7)), 7);
        assert_eq!(min_overlap(1, t(1.0)), 1);
        assert_eq!(min_overlap(3, t(1e-9)), 1);
        // Soundness against every (i, r) for small sizes and many thresholds.
        for q in 1..=12 {
            for k in 0..=100 {
                let th = t(k as f64 / 100.0);
                let m = min_overlap(q, th);
                for r in 0..=14 {
                    for i in 0..=q.min(r) {
                        if jaccard(i, q, r) >= th.get() {
                            assert!(i >= m, "q={q} r={r} i={i} t={} m={m}", th.get());
                        }
                    }
                }
            }
        }
    }
}
