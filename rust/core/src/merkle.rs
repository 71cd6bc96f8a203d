//! The audit log's Merkle tree (RFC 6962, section 2.1; RFC 9162 section 2.1).
//!
//! Leaf hash `SHA-256(0x00 || data)`, node hash `SHA-256(0x01 || left || right)`,
//! the tree of `n` leaves split at the largest power of two below `n`. Here:
//!
//! - [`Frontier`]: the compact range `[0, n)` (one subtree root per set bit of
//!   `n`), appending a leaf in O(log n) and giving the root of the current size;
//! - [`root`]: the root of a list of leaf hashes;
//! - [`inclusion_proof`] / [`verify_inclusion`], [`consistency_proof`] /
//!   [`verify_consistency`] (RFC 6962 section 2.1.1 and 2.1.2; verification
//!   as RFC 9162 section 2.1.3.2 and 2.1.4.2);
//! - the canonical bytes of one audit entry ([`entry_bytes`]) and the bulk
//!   hashing of a whole log's leaves ([`entry_leaves`], parallel).

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::{CoreError, Result};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// The compact range of the leaves `[0, size)`: the roots of the perfect
/// subtrees the tree of `size` leaves is made of, largest (leftmost) first,
/// one per set bit of `size`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from its stored parts; refused unless `nodes` has one hash
    /// per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self> {
        if nodes.len() != size.count_ones() as usize {
            return Err(CoreError::Corrupt(format!(
                "a Merkle frontier of size {size} has {} nodes, not {}",
                nodes.len(),
                size.count_ones()
            )));
        }
        Ok(Self { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Append one leaf hash: O(log n) node hashes.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            let left = self.nodes.pop().expect("one node per set bit");
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// Append leaf hashes in order.
    pub fn extend(&mut self, leaves: &[Hash]) {
        for l in leaves {
            self.push(*l);
        }
    }

    /// The root of the tree of the current size.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        match it.next() {
            None => EMPTY_ROOT,
            Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// The largest power of two smaller than `n` (n >= 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root (RFC 6962 MTH) of the given leaf hashes; big perfect subtrees are
/// hashed in parallel.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split(n);
            let (l, r) = if n >= 1 << 16 {
                rayon::join(|| root(&leaves[..k]), || root(&leaves[k..]))
            } else {
                (root(&leaves[..k]), root(&leaves[k..]))
            };
            node_hash(&l, &r)
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 PATH),
/// from the leaf up.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>> {
    let n = leaves.len();
    if index >= n as u64 {
        return Err(CoreError::Invalid(format!(
            "leaf {index} is not in a tree of {n} leaves"
        )));
    }
    let mut out = Vec::new();
    path(leaves, index as usize, &mut out);
    Ok(out)
}

fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(&leaves[..k], m, out);
        out.push(root(&leaves[k..]));
    } else {
        path(&leaves[k..], m - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// Whether `proof` proves leaf hash `leaf` at `index` in the tree of `size`
/// leaves whose root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// The consistency proof of the tree of the first `m` leaves with the tree of
/// all `leaves` (RFC 6962 PROOF); `0 < m <= n`.
pub fn consistency_proof(leaves: &[Hash], m: u64) -> Result<Vec<Hash>> {
    let n = leaves.len() as u64;
    if m == 0 || m > n {
        return Err(CoreError::Invalid(format!(
            "no consistency proof from size {m} to size {n} (0 < m <= n)"
        )));
    }
    let mut out = Vec::new();
    subproof(m as usize, leaves, true, &mut out);
    Ok(out)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Whether `proof` proves that the tree of `m` leaves with root `root_m` is a
/// prefix of the tree of `n` leaves with root `root_n` (RFC 9162 section
/// 2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, root_m: &Hash, root_n: &Hash, proof: &[Hash]) -> bool {
    if m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    if m == 0 {
        // the empty tree is a prefix of every tree; nothing to prove
        return proof.is_empty() && *root_m == EMPTY_ROOT;
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if m.is_power_of_two() {
        path.push(*root_m);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *root_m && sr == *root_n
}

// -- audit entries -------------------------------------------------------------------

/// Version tag that starts the canonical bytes of an audit entry.
pub const ENTRY_TAG: &[u8; 4] = b"JKA1";

/// The text fields of an entry, in their order in the canonical bytes.
pub const ENTRY_TEXT_FIELDS: [&str; 6] = [
    "actor",
    "actor_kind",
    "action",
    "target",
    "notification_id",
    "detail",
];

/// One audit entry: its sequence number, its time (microseconds since the
/// Unix epoch, UTC) and its six text fields (null: `None`), in the order of
/// [`ENTRY_TEXT_FIELDS`].
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub seq: u64,
    pub at_us: i64,
    pub texts: [Option<&'a str>; 6],
}

/// Append the canonical bytes of `e` to `out`:
///
/// `"JKA1" || seq (u64 BE) || at_us (i64 BE) || field*6`, each field being
/// `0xFFFFFFFF` for null, or its UTF-8 length (u32 BE, < 0xFFFFFFFF) and bytes.
/// Every field has a fixed size or a length prefix, so two different entries
/// never have the same bytes.
pub fn entry_bytes(e: &Entry<'_>, out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(ENTRY_TAG);
    out.extend_from_slice(&e.seq.to_be_bytes());
    out.extend_from_slice(&e.at_us.to_be_bytes());
    for (i, t) in e.texts.iter().enumerate() {
        match t {
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
            Some(s) => {
                let len = u32::try_from(s.len())
                    .ok()
                    .filter(|&l| l != u32::MAX)
                    .ok_or_else(|| {
                        CoreError::Invalid(format!(
                            "audit entry {}: {} is too long ({} bytes)",
                            e.seq,
                            ENTRY_TEXT_FIELDS[i],
                            s.len()
                        ))
                    })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    Ok(())
}

/// The leaf hash of one entry.
pub fn entry_leaf(e: &Entry<'_>) -> Result<Hash> {
    let mut buf = Vec::with_capacity(64);
    entry_bytes(e, &mut buf)?;
    Ok(leaf_hash(&buf))
}

/// The leaf hashes of entries `0..n` (`get(i)` gives entry `i`), hashed in
/// parallel.
pub fn entry_leaves<'a, F>(n: usize, get: F) -> Result<Vec<Hash>>
where
    F: Fn(usize) -> Entry<'a> + Sync,
{
    const CHUNK: usize = 16_384;
    let mut out = vec![[0u8; 32]; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .try_for_each(|(c, dst)| -> Result<()> {
            let mut buf = Vec::with_capacity(256);
            for (j, slot) in dst.iter_mut().enumerate() {
                buf.clear();
                entry_bytes(&get(c * CHUNK + j), &mut buf)?;
                *slot = leaf_hash(&buf);
            }
            Ok(())
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(s: &str) -> Hash {
        let b: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        b.try_into().unwrap()
    }

    fn raw(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The leaves of the Certificate Transparency test vectors
    /// (certificate-transparency-go merkletree tests, RFC 6962).
    fn ct_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|d| leaf_hash(&raw(d)))
        .collect()
    }

    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest(b"")));
        assert_eq!(root(&[]), EMPTY_ROOT);
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn roots_match_the_ct_vectors() {
        let leaves = ct_leaves();
        let mut f = Frontier::new();
        for (i, want) in CT_ROOTS.iter().enumerate() {
            assert_eq!(root(&leaves[..=i]), hx(want), "root of {}", i + 1);
            f.push(leaves[i]);
            assert_eq!(f.root(), hx(want), "frontier root of {}", i + 1);
            assert_eq!(f.nodes().len(), f.size().count_ones() as usize);
        }
    }

    #[test]
    fn inclusion_proofs_match_the_ct_vectors() {
        let leaves = ct_leaves();
        let cases: [(u64, usize, &[&str]); 5] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| hx(s)).collect();
            let proof = inclusion_proof(&leaves[..size], index).unwrap();
            assert_eq!(proof, want, "leaf {index} of {size}");
            let r = hx(CT_ROOTS[size - 1]);
            assert!(verify_inclusion(
                &leaves[index as usize],
                index,
                size as u64,
                &proof,
                &r
            ));
            // a wrong leaf, index, size, root or path is refused
            assert!(!verify_inclusion(
                &leaves[7 - index as usize],
                index,
                size as u64,
                &proof,
                &r
            ));
            // (a size with the same path shape proves the same root: not a forgery)
            assert!(!verify_inclusion(
                &leaves[index as usize],
                index,
                size as u64 * 4,
                &proof,
                &r
            ));
            assert!(!verify_inclusion(
                &leaves[index as usize],
                size as u64,
                size as u64,
                &proof,
                &r
            ));
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                assert!(!verify_inclusion(
                    &leaves[index as usize],
                    index,
                    size as u64,
                    &bad,
                    &r
                ));
                assert!(!verify_inclusion(
                    &leaves[index as usize],
                    index,
                    size as u64,
                    &proof[1..],
                    &r
                ));
            }
        }
    }

    #[test]
    fn consistency_proofs_match_the_ct_vectors() {
        let leaves = ct_leaves();
        let cases: [(u64, usize, &[&str]); 4] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (m, n, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| hx(s)).collect();
            let proof = consistency_proof(&leaves[..n], m).unwrap();
            assert_eq!(proof, want, "{m} -> {n}");
            let (rm, rn) = (hx(CT_ROOTS[m as usize - 1]), hx(CT_ROOTS[n - 1]));
            assert!(verify_consistency(m, n as u64, &rm, &rn, &proof));
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[proof.len() - 1][3] ^= 0x40;
                assert!(!verify_consistency(m, n as u64, &rm, &rn, &bad));
                assert!(!verify_consistency(m, n as u64, &rn, &rm, &proof));
            }
        }
    }

    #[test]
    fn every_proof_of_small_trees_verifies_and_forgeries_do_not() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let roots: Vec<Hash> = (0..=leaves.len()).map(|n| root(&leaves[..n])).collect();
        let mut f = Frontier::new();
        for n in 1..=leaves.len() {
            f.push(leaves[n - 1]);
            assert_eq!(f.root(), roots[n]);
            let g = Frontier::from_parts(f.size(), f.nodes().to_vec()).unwrap();
            assert_eq!(g, f);
            for i in 0..n {
                let p = inclusion_proof(&leaves[..n], i as u64).unwrap();
                assert!(verify_inclusion(
                    &leaves[i], i as u64, n as u64, &p, &roots[n]
                ));
                assert!(!verify_inclusion(
                    &leaves[(i + 1) % 70],
                    i as u64,
                    n as u64,
                    &p,
                    &roots[n]
                ));
            }
            for m in 1..=n {
                let p = consistency_proof(&leaves[..n], m as u64).unwrap();
                assert!(verify_consistency(
                    m as u64, n as u64, &roots[m], &roots[n], &p
                ));
                if m < n {
                    // the root of another prefix, or another tree, does not verify
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &roots[m - 1],
                        &roots[n],
                        &p
                    ));
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &roots[m],
                        &roots[n - 1],
                        &p
                    ));
                    assert!(!verify_consistency(
                        m as u64 + 1,
                        n as u64,
                        &roots[m],
                        &roots[n],
                        &p
                    ));
                }
            }
        }
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
        assert!(inclusion_proof(&leaves[..4], 4).is_err());
        assert!(consistency_proof(&leaves[..4], 0).is_err());
        assert!(consistency_proof(&leaves[..4], 5).is_err());
    }

    #[test]
    fn entry_bytes_are_length_prefixed_and_distinct() {
        let e = |texts: [Option<&'static str>; 6]| Entry {
            seq: 7,
            at_us: -1,
            texts,
        };
        let mut a = Vec::new();
        entry_bytes(
            &e([Some("ab"), Some("c"), None, Some(""), None, None]),
            &mut a,
        )
        .unwrap();
        let mut want = b"JKA1".to_vec();
        want.extend_from_slice(&7u64.to_be_bytes());
        want.extend_from_slice(&(-1i64).to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'c']);
        want.extend_from_slice(&[0xff; 4]);
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&[0xff; 8]);
        assert_eq!(a, want);
        // moving a character between fields, or null against empty, changes the bytes
        let variants = [
            [Some("a"), Some("bc"), None, Some(""), None, None],
            [Some("ab"), Some("c"), None, None, None, None],
            [Some("ab"), Some("c"), Some(""), Some(""), None, None],
        ];
        for v in variants {
            let mut b = Vec::new();
            entry_bytes(&e(v), &mut b).unwrap();
            assert_ne!(a, b);
        }
        let leaves = entry_leaves(40_000, |i| Entry {
            seq: i as u64,
            at_us: 0,
            texts: [Some("x"), None, None, None, None, None],
        })
        .unwrap();
        assert_eq!(leaves.len(), 40_000);
        let one = entry_leaf(&Entry {
            seq: 39_999,
            at_us: 0,
            texts: [Some("x"), None, None, None, None, None],
        });
        assert_eq!(leaves[39_999], one.unwrap());
    }
}
