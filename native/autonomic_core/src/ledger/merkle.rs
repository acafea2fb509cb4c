//! RFC 6962 Merkle tree over the receipt hashes, with audit (inclusion) and consistency proofs
//! as Certificate Transparency and Trillian produce them, and their verifiers (RFC 9162 sections
//! 2.1.3.2 and 2.1.4.2, which state the RFC 6962 checks as algorithms).
//!
//! Hashing (RFC 6962 section 2.1): `MTH({}) = SHA-256()`, a leaf is `SHA-256(0x00 || d)`, an
//! interior node `SHA-256(0x01 || left || right)`, and a tree of `n > 1` leaves splits at the
//! largest power of two `k < n`: `MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`.
//!
//! Storage: [`Tree`] keeps every *perfect* subtree hash, level by level (level 0: the leaf
//! hashes; level `h`: the hash of leaves `[i * 2^h, (i + 1) * 2^h)`), about `2n` hashes for `n`
//! leaves. Every node of the RFC tree of any size `m <= n` is either such a perfect subtree or
//! lies on the right edge of that tree, where it is recomputed from `O(log n)` stored hashes. So
//! roots of any past size, inclusion proofs and consistency proofs all cost `O(log n)` lookups and
//! hashes. Appending goes through a [`Frontier`] (the compact range `[0, n)`: one hash per set bit
//! of `n`), which yields the leaf and the perfect subtrees it completes (amortised two hashes per
//! leaf) and the new root, without reading the tree.

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::chunked::ChunkedVec;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of a leaf whose input is `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `MTH({}) = SHA-256()`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n >= 2`): where RFC 6962 splits `D[n]`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Why a proof cannot be produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProofError {
    #[error("leaf {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is larger than the {available} leaves appended")]
    SizeOutOfRange { size: u64, available: u64 },
    #[error("old size {old} must be between 1 and the new size {new}")]
    BadOldSize { old: u64, new: u64 },
    #[error("stored tree is missing node {index} of level {level}")]
    MissingNode { level: u32, index: u64 },
}

/// Why a proof does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old size {old} is larger than new size {new}")]
    SizesReversed { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the recomputed root does not match")]
    RootMismatch,
}

/// The compact range `[0, n)`: for every set bit `h` of `n`, the hash of the perfect subtree of
/// `2^h` leaves that ends the range at that height. Enough to append leaves and to compute the
/// root, which is what the single writer of a ledger needs.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// `nodes[h]` is meaningful iff bit `h` of `size` is set.
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. `emit(level, hash)` receives the leaf (level 0) and then each perfect
    /// subtree the leaf completes, lowest first: exactly the hashes [`Tree::push_node`] stores.
    pub fn push(&mut self, leaf: Hash, mut emit: impl FnMut(usize, Hash)) {
        emit(0, leaf);
        let mut carry = leaf;
        let mut level = 0usize;
        while (self.size >> level) & 1 == 1 {
            // Bit `level` is set, so `nodes[level]` exists (the vector grows with the size).
            let left = self.nodes.get(level).copied().unwrap_or_default();
            carry = node_hash(&left, &carry);
            level += 1;
            emit(level, carry);
        }
        if self.nodes.len() <= level {
            self.nodes.resize(level + 1, [0; 32]);
        }
        if let Some(slot) = self.nodes.get_mut(level) {
            *slot = carry;
        }
        self.size += 1;
    }

    /// `MTH(D[0:size])`: the right-edge subtrees folded from the smallest up.
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for (level, node) in self.nodes.iter().enumerate() {
            if (self.size >> level) & 1 == 1 {
                acc = Some(match acc {
                    None => *node,
                    Some(right) => node_hash(node, &right),
                });
            }
        }
        acc.unwrap_or_else(empty_root)
    }
}

/// Every perfect subtree hash of the tree, by level (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    levels: Vec<ChunkedVec<Hash>>,
}

impl Tree {
    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Stores a hash emitted by [`Frontier::push`]; hashes of one level arrive in order.
    pub fn push_node(&mut self, level: usize, hash: Hash) {
        while self.levels.len() <= level {
            self.levels.push(ChunkedVec::default());
        }
        if let Some(l) = self.levels.get_mut(level) {
            l.push(hash);
        }
    }

    /// Appends a leaf, computing the perfect subtrees it completes (for building a tree in one
    /// go; the ledger's writer uses a [`Frontier`] and [`Tree::push_node`] instead).
    pub fn push_leaf(&mut self, frontier: &mut Frontier, leaf: Hash) {
        frontier.push(leaf, |level, hash| self.push_node(level, hash));
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    /// Appends leaf hashes `[start, start + count)` (clamped to the size) to `out`.
    pub fn leaves(&self, start: u64, count: usize, out: &mut Vec<Hash>) {
        if let (Some(level), Ok(start)) = (self.levels.first(), usize::try_from(start)) {
            level.copy_to(start, out, count);
        }
    }

    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .ok_or(ProofError::MissingNode { level, index })
    }

    /// `MTH(D[lo:hi])` for a node of the RFC tree (`lo < hi <= size`, `lo` a multiple of the
    /// largest power of two not above `hi - lo`): a stored lookup when the range is a perfect
    /// subtree, otherwise the RFC split, which only recurses along the right edge.
    fn subtree(&self, lo: u64, hi: u64) -> Result<Hash, ProofError> {
        let n = hi - lo;
        if n.is_power_of_two() && lo % n == 0 {
            let level = n.trailing_zeros();
            return self.node(level, lo >> level);
        }
        let k = split_point(n);
        Ok(node_hash(
            &self.subtree(lo, lo + k)?,
            &self.subtree(lo + k, hi)?,
        ))
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            Err(ProofError::SizeOutOfRange {
                size,
                available: self.size(),
            })
        } else {
            Ok(())
        }
    }

    /// `MTH(D[0:size])`, the root the tree had when it held `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        if size == 0 {
            Ok(empty_root())
        } else {
            self.subtree(0, size)
        }
    }

    /// RFC 6962 section 2.1.1 `PATH(index, D[0:size])`, leaf side first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut path = Vec::with_capacity(64 - size.leading_zeros() as usize);
        let (mut lo, mut hi) = (0u64, size);
        // Walks from the root down; each step records the sibling of the half holding `index`.
        while hi - lo > 1 {
            let k = split_point(hi - lo);
            if index < lo + k {
                path.push(self.subtree(lo + k, hi)?);
                hi = lo + k;
            } else {
                path.push(self.subtree(lo, lo + k)?);
                lo += k;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// RFC 6962 section 2.1.2 `PROOF(old, D[0:size])` for `0 < old <= size`, leaf side first.
    pub fn consistency_proof(&self, old: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if old == 0 || old > size {
            return Err(ProofError::BadOldSize { old, new: size });
        }
        let mut path = Vec::with_capacity(64);
        // SUBPROOF(m, D[lo:hi], complete), unrolled from the root down.
        let (mut lo, mut hi, mut m, mut complete) = (0u64, size, old, true);
        loop {
            if m == hi - lo {
                if !complete {
                    path.push(self.subtree(lo, hi)?);
                }
                break;
            }
            let k = split_point(hi - lo);
            if m <= k {
                path.push(self.subtree(lo + k, hi)?);
                hi = lo + k;
            } else {
                path.push(self.subtree(lo, lo + k)?);
                lo += k;
                m -= k;
                complete = false;
            }
        }
        path.reverse();
        Ok(path)
    }
}

/// The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or why it cannot be one.
pub fn root_from_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
) -> Result<Hash, VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    Ok(r)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if root_from_inclusion(leaf, index, size, path)? == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root` (RFC 9162 section 2.1.4.2; equal sizes need an empty proof and
/// equal roots, and the empty tree is a prefix of every tree).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> Result<(), VerifyError> {
    if old > new {
        return Err(VerifyError::SizesReversed { old, new });
    }
    if old == new {
        return match (path.is_empty(), old_root == new_root) {
            (true, true) => Ok(()),
            (false, _) => Err(VerifyError::WrongLength),
            (true, false) => Err(VerifyError::RootMismatch),
        };
    }
    if old == 0 {
        return if path.is_empty() {
            Ok(())
        } else {
            Err(VerifyError::WrongLength)
        };
    }
    // 0 < old < new from here on: a proof has at least one hash. When the old tree is a perfect
    // subtree of the new one, its root is the proof's implicit first element.
    let (first, rest): (&Hash, &[Hash]) = match path.split_first() {
        None => return Err(VerifyError::WrongLength),
        Some(_) if old.is_power_of_two() => (old_root, path),
        Some((first, rest)) => (first, rest),
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    if fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

#[cfg(test)]
mod tests {
    //! Test vectors: the leaf inputs, perfect-subtree hashes and roots used by Certificate
    //! Transparency and Trillian (github.com/transparency-dev/merkle, `testonly/constants.go`
    //! and `proof/verify_test.go`), and the 7-leaf example tree of RFC 6962 section 2.1.3.

    use super::*;

    fn h(hex: &str) -> Hash {
        let mut out = [0u8; 32];
        assert_eq!(hex.len(), 64);
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    fn leaf_inputs() -> Vec<Vec<u8>> {
        vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..=0x57).collect(),
            (0x60..=0x6f).collect(),
        ]
    }

    /// Perfect subtree hashes of the 8-leaf tree, by level.
    fn node_hashes() -> Vec<Vec<Hash>> {
        vec![
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
                h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
            ],
            vec![
                h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            ],
            vec![
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
            vec![h(
                "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
            )],
        ]
    }

    /// Roots of the trees of sizes 0 to 8.
    fn roots() -> Vec<Hash> {
        vec![
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
            h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
            h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
            h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
            h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
        ]
    }

    fn tree(n: usize) -> Tree {
        let mut t = Tree::default();
        let mut f = Frontier::default();
        for d in leaf_inputs().iter().take(n) {
            t.push_leaf(&mut f, leaf_hash(d));
        }
        t
    }

    /// Straight from the RFC's recursive definition, for cross-checking.
    fn reference_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&reference_mth(&leaves[..k]), &reference_mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn leaf_and_perfect_subtree_hashes_match_vectors() {
        let t = tree(8);
        for (level, hashes) in node_hashes().iter().enumerate() {
            for (i, expected) in hashes.iter().enumerate() {
                assert_eq!(t.node(level as u32, i as u64), Ok(*expected), "{level}/{i}");
            }
        }
    }

    #[test]
    fn roots_of_every_size_match_vectors() {
        let mut t = Tree::default();
        let mut f = Frontier::default();
        assert_eq!(f.root(), roots()[0]);
        for (n, d) in leaf_inputs().iter().enumerate() {
            t.push_leaf(&mut f, leaf_hash(d));
            assert_eq!(f.root(), roots()[n + 1], "frontier root of size {}", n + 1);
        }
        for (size, root) in roots().iter().enumerate() {
            assert_eq!(t.root_at(size as u64), Ok(*root), "root_at({size})");
        }
        assert_eq!(
            t.root_at(9),
            Err(ProofError::SizeOutOfRange {
                size: 9,
                available: 8
            })
        );
    }

    /// Inclusion proofs of `proof/verify_test.go` (its leaf numbers are 1-based).
    #[test]
    fn inclusion_proofs_match_vectors() {
        let nh = node_hashes();
        let t = tree(8);
        let cases: Vec<(u64, u64, Vec<Hash>)> = vec![
            (0, 1, vec![]),
            (0, 8, vec![nh[0][1], nh[1][1], nh[2][1]]),
            (5, 8, vec![nh[0][4], nh[1][3], nh[2][0]]),
            (2, 3, vec![nh[1][0]]),
            (1, 5, vec![nh[0][0], nh[1][1], nh[0][4]]),
        ];
        for (index, size, expected) in cases {
            let path = t.inclusion_proof(index, size).expect("proof");
            assert_eq!(path, expected, "PATH({index}, D[{size}])");
            let leaf = nh[0][index as usize];
            assert_eq!(
                verify_inclusion(&leaf, index, size, &path, &roots()[size as usize]),
                Ok(())
            );
        }
    }

    /// Consistency proofs of `proof/verify_test.go`.
    #[test]
    fn consistency_proofs_match_vectors() {
        let nh = node_hashes();
        let t = tree(8);
        let cases: Vec<(u64, u64, Vec<Hash>)> = vec![
            (1, 1, vec![]),
            (1, 8, vec![nh[0][1], nh[1][1], nh[2][1]]),
            (6, 8, vec![nh[1][2], nh[1][3], nh[2][0]]),
            (2, 5, vec![nh[1][1], nh[0][4]]),
            (6, 7, vec![nh[1][2], nh[0][6], nh[2][0]]),
        ];
        for (old, new, expected) in cases {
            let path = t.consistency_proof(old, new).expect("proof");
            assert_eq!(path, expected, "PROOF({old}, D[{new}])");
            assert_eq!(
                verify_consistency(
                    old,
                    new,
                    &roots()[old as usize],
                    &roots()[new as usize],
                    &path
                ),
                Ok(())
            );
        }
    }

    /// The worked example of RFC 6962 section 2.1.3: the 7-leaf tree, its audit paths for d0,
    /// d3, d4 and d6, and its consistency proofs from sizes 3, 4 and 6.
    #[test]
    fn rfc6962_section_2_1_3_seven_leaf_example() {
        let nh = node_hashes();
        let t = tree(7);
        let (a, b, c, d, e, f, j) = (
            nh[0][0], nh[0][1], nh[0][2], nh[0][3], nh[0][4], nh[0][5], nh[0][6],
        );
        let (g, hh, i) = (nh[1][0], nh[1][1], nh[1][2]);
        let k = nh[2][0];
        let l = node_hash(&i, &j);
        assert_eq!(node_hash(&a, &b), g);
        assert_eq!(node_hash(&c, &d), hh);
        assert_eq!(node_hash(&e, &f), i);
        assert_eq!(node_hash(&g, &hh), k);
        let root = node_hash(&k, &l);
        assert_eq!(root, roots()[7]);
        assert_eq!(t.root_at(7), Ok(root));

        assert_eq!(t.inclusion_proof(0, 7), Ok(vec![b, hh, l]));
        assert_eq!(t.inclusion_proof(3, 7), Ok(vec![c, g, l]));
        assert_eq!(t.inclusion_proof(4, 7), Ok(vec![f, j, k]));
        assert_eq!(t.inclusion_proof(6, 7), Ok(vec![i, k]));

        // hash0 = the root of size 3 (leaves d0, d1, d2), hash1 = size 4, hash2 = size 6.
        assert_eq!(t.consistency_proof(3, 7), Ok(vec![c, d, g, l]));
        assert_eq!(t.consistency_proof(4, 7), Ok(vec![l]));
        assert_eq!(t.consistency_proof(6, 7), Ok(vec![i, j, k]));
        for (old, path) in [(3, vec![c, d, g, l]), (4, vec![l]), (6, vec![i, j, k])] {
            assert_eq!(
                verify_consistency(old, 7, &roots()[old as usize], &root, &path),
                Ok(())
            );
        }
    }

    #[test]
    fn proofs_for_every_pair_up_to_70_leaves_verify_and_reject_tampering() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut t = Tree::default();
        let mut f = Frontier::default();
        for leaf in &leaves {
            t.push_leaf(&mut f, *leaf);
        }
        for size in 1..=leaves.len() as u64 {
            let root = t.root_at(size).expect("root");
            assert_eq!(root, reference_mth(&leaves[..size as usize]));
            for index in 0..size {
                let path = t.inclusion_proof(index, size).expect("path");
                let leaf = leaves[index as usize];
                assert_eq!(verify_inclusion(&leaf, index, size, &path, &root), Ok(()));
                let wrong_leaf = leaf_hash(b"not a leaf");
                assert!(verify_inclusion(&wrong_leaf, index, size, &path, &root).is_err());
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(verify_inclusion(&leaf, other, size, &path, &root).is_err());
                }
                for n in 0..path.len() {
                    let mut bad = path.clone();
                    bad[n][0] ^= 8;
                    assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                }
                let mut longer = path.clone();
                longer.push(root);
                assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
            }
            for old in 1..=size {
                let old_root = t.root_at(old).expect("old root");
                let path = t.consistency_proof(old, size).expect("consistency");
                assert_eq!(
                    verify_consistency(old, size, &old_root, &root, &path),
                    Ok(())
                );
                if old < size {
                    assert!(verify_consistency(old, size, &root, &old_root, &path).is_err());
                    for n in 0..path.len() {
                        let mut bad = path.clone();
                        bad[n][0] ^= 16;
                        assert!(verify_consistency(old, size, &old_root, &root, &bad).is_err());
                    }
                    let truncated = &path[..path.len() - 1];
                    assert!(verify_consistency(old, size, &old_root, &root, truncated).is_err());
                    assert!(verify_consistency(old, size, &old_root, &root, &[]).is_err());
                }
            }
        }
    }

    #[test]
    fn degenerate_consistency_cases() {
        let r1 = leaf_hash(b"1");
        let r2 = leaf_hash(b"2");
        assert_eq!(verify_consistency(0, 0, &r1, &r1, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 5, &r1, &r2, &[]), Ok(()));
        assert_eq!(verify_consistency(3, 3, &r2, &r2, &[]), Ok(()));
        assert!(verify_consistency(3, 3, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(3, 3, &r1, &r1, &[r1]).is_err());
        assert!(verify_consistency(2, 1, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(1, 2, &r1, &r2, &[]).is_err());
        let t = tree(4);
        assert_eq!(
            t.consistency_proof(0, 4),
            Err(ProofError::BadOldSize { old: 0, new: 4 })
        );
        assert_eq!(
            t.consistency_proof(5, 4),
            Err(ProofError::BadOldSize { old: 5, new: 4 })
        );
        assert_eq!(
            t.consistency_proof(2, 5),
            Err(ProofError::SizeOutOfRange {
                size: 5,
                available: 4
            })
        );
        assert_eq!(
            t.inclusion_proof(4, 4),
            Err(ProofError::IndexOutOfRange { index: 4, size: 4 })
        );
    }
}
