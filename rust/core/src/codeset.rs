//! A compact set of code bodies (integers below a fixed universe such as
//! 10^10), built for "has this code ever been issued?" at national scale.
//!
//! Layout: the universe is cut into buckets of 2^16 consecutive bodies; each
//! bucket keeps the low 16 bits of its members as a sorted boxed slice. A
//! member costs 2 bytes and a bucket 16 bytes, so 125 million resident-code
//! bodies (1.25 % of 10^10, about 819 per bucket) take about 252 MB, plus
//! about 1/16 of slack so that later batches insert in place. This is
//! the array-container half of a Roaring bitmap; the density of the code space
//! never comes near the point where bitmap containers would pay.
//!
//! Batch insertion ([`CodeSet::insert_new`]) is a two-level radix partition:
//! candidates are scattered into their buckets (with their position in the
//! batch packed beside the low bits), each bucket's candidates are sorted and
//! merged with the bucket in one pass, both cores working on disjoint buckets.

use rayon::prelude::*;

use crate::error::{CoreError, Result};

const LOW_BITS: u32 = 16;
const LOW_MASK: u64 = (1 << LOW_BITS) - 1;
/// Candidates per partition pass; a position in the pass needs `IDX_BITS` bits.
const IDX_BITS: u32 = 26;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;
pub const PASS: usize = 1 << IDX_BITS;

/// Set of integers below `universe` (at most 2^40).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeSet {
    universe: u64,
    buckets: Vec<Vec<u16>>,
    len: u64,
}

struct SendPtr(*mut u64);
// SAFETY: used only to scatter into provably disjoint positions of one buffer.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl CodeSet {
    pub fn new(universe: u64) -> Self {
        assert!(universe > 0 && universe <= 1 << 40, "universe out of range");
        let nb = universe.div_ceil(1 << LOW_BITS) as usize;
        let buckets = (0..nb).map(|_| Vec::new()).collect();
        CodeSet {
            universe,
            buckets,
            len: 0,
        }
    }

    pub fn universe(&self) -> u64 {
        self.universe
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the set: bucket headers and every bucket's capacity
    /// (members plus the slack kept for cheap insertion).
    pub fn memory_bytes(&self) -> u64 {
        std::mem::size_of::<Self>() as u64
            + (self.buckets.capacity() * std::mem::size_of::<Vec<u16>>()) as u64
            + self
                .buckets
                .iter()
                .map(|b| 2 * b.capacity() as u64)
                .sum::<u64>()
    }

    #[inline]
    pub fn contains(&self, body: u64) -> bool {
        if body >= self.universe {
            return false;
        }
        let bucket = &self.buckets[(body >> LOW_BITS) as usize];
        bucket.binary_search(&((body & LOW_MASK) as u16)).is_ok()
    }

    /// Membership of each body, in order, using every core.
    pub fn contains_many(&self, bodies: &[u64]) -> Vec<bool> {
        let mut out = vec![false; bodies.len()];
        out.par_chunks_mut(1 << 14)
            .zip(bodies.par_chunks(1 << 14))
            .for_each(|(o, b)| {
                for (d, &v) in o.iter_mut().zip(b) {
                    *d = self.contains(v);
                }
            });
        out
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets.iter().enumerate().flat_map(|(b, lows)| {
            let high = (b as u64) << LOW_BITS;
            lows.iter().map(move |&l| high | l as u64)
        })
    }

    /// Insert every body of `candidates` that is neither in the set already
    /// nor equal to an earlier candidate of the same call. Returns, per
    /// candidate, whether it was inserted (its first occurrence, and new).
    ///
    /// Errors (and changes nothing) if a candidate is not below the universe.
    pub fn insert_new(&mut self, candidates: &[u64]) -> Result<Vec<bool>> {
        if let Some(row) = candidates
            .par_iter()
            .position_first(|&c| c >= self.universe)
        {
            return Err(CoreError::Invalid(format!(
                "value {} at row {row} is outside 0..{}",
                candidates[row], self.universe
            )));
        }
        let mut accepted = vec![true; candidates.len()];
        let mut keys = Vec::new();
        for (pass, chunk) in candidates.chunks(PASS).enumerate() {
            let rejected = if chunk.len() * 8 < self.buckets.len() {
                self.insert_pass_sparse(chunk)
            } else {
                self.insert_pass_dense(chunk, &mut keys)
            };
            let base = pass * PASS;
            for idx in rejected {
                accepted[base + idx as usize] = false;
            }
        }
        Ok(accepted)
    }

    /// Insert bodies, ignoring those already present; returns how many were new.
    pub fn extend(&mut self, bodies: &[u64]) -> Result<u64> {
        let mask = self.insert_new(bodies)?;
        Ok(mask.iter().filter(|a| **a).count() as u64)
    }

    /// Few candidates against many buckets: sort them and visit only the
    /// buckets they touch.
    fn insert_pass_sparse(&mut self, chunk: &[u64]) -> Vec<u64> {
        let mut keys: Vec<(u64, u64)> = chunk
            .iter()
            .enumerate()
            .map(|(i, &b)| (b, i as u64))
            .collect();
        keys.sort_unstable();
        let mut rejected = Vec::new();
        let mut packed = Vec::new();
        let mut spots = Vec::new();
        let mut start = 0;
        while start < keys.len() {
            let bucket = keys[start].0 >> LOW_BITS;
            let mut end = start;
            packed.clear();
            while end < keys.len() && keys[end].0 >> LOW_BITS == bucket {
                packed.push(((keys[end].0 & LOW_MASK) << IDX_BITS) | keys[end].1);
                end += 1;
            }
            let added = merge_bucket(
                &mut self.buckets[bucket as usize],
                &packed,
                &mut rejected,
                &mut spots,
            );
            self.len += added;
            start = end;
        }
        rejected
    }

    /// Many candidates: a parallel counting scatter into at most 2048
    /// super-buckets (the cursors stay in L1), then, per super-bucket and on
    /// both cores, a stable LSD radix sort by (bucket, low bits) and a merge
    /// of each bucket. Stability keeps equal bodies in batch order, so the
    /// first occurrence wins.
    fn insert_pass_dense(&mut self, chunk: &[u64], keys: &mut Vec<u64>) -> Vec<u64> {
        let nb = self.buckets.len();
        let shift = super_shift(nb);
        let per_super = 1usize << shift;
        let ns = nb.div_ceil(per_super);
        let local_bits = LOW_BITS + shift;
        let local_mask = (1u64 << local_bits) - 1;
        let threads = rayon::current_num_threads().clamp(1, 8);
        let part = chunk.len().div_ceil(threads).max(1);
        let hists: Vec<Vec<u32>> = chunk
            .par_chunks(part)
            .map(|c| {
                let mut h = vec![0u32; ns];
                for &b in c {
                    h[(b >> local_bits) as usize] += 1;
                }
                h
            })
            .collect();
        let mut starts = vec![0usize; ns + 1];
        let mut cursors: Vec<Vec<usize>> = vec![vec![0usize; ns]; hists.len()];
        let mut at = 0usize;
        for s in 0..ns {
            starts[s] = at;
            for (p, h) in hists.iter().enumerate() {
                cursors[p][s] = at;
                at += h[s] as usize;
            }
        }
        starts[ns] = at;
        keys.clear();
        keys.resize(chunk.len(), 0);
        let dst = SendPtr(keys.as_mut_ptr());
        chunk
            .par_chunks(part)
            .zip(cursors.into_par_iter())
            .enumerate()
            .for_each(|(p, (c, mut cur))| {
                let dst = &dst;
                let base = (p * part) as u64;
                for (i, &b) in c.iter().enumerate() {
                    let s = (b >> local_bits) as usize;
                    let pos = cur[s];
                    cur[s] += 1;
                    // SAFETY: the cursors of part p cover exactly its share of
                    // each super-bucket's range, so no two writes share a
                    // position, and every position is below chunk.len().
                    unsafe { *dst.0.add(pos) = ((b & local_mask) << IDX_BITS) | (base + i as u64) };
                }
            });
        let mut slices: Vec<&mut [u64]> = Vec::with_capacity(ns);
        let mut rest: &mut [u64] = keys;
        for s in 0..ns {
            let (head, tail) = rest.split_at_mut(starts[s + 1] - starts[s]);
            slices.push(head);
            rest = tail;
        }
        let (added, rejected, _, _) = self
            .buckets
            .par_chunks_mut(per_super)
            .zip(slices.into_par_iter())
            .fold(
                || (0u64, Vec::new(), Vec::new(), Vec::new()),
                |(mut added, mut rejected, mut scratch, mut spots), (buckets, keys)| {
                    radix_sort_stable(keys, &mut scratch, IDX_BITS, local_bits);
                    let mut i = 0;
                    while i < keys.len() {
                        let local = (keys[i] >> (IDX_BITS + LOW_BITS)) as usize;
                        let mut j = i + 1;
                        while j < keys.len() && (keys[j] >> (IDX_BITS + LOW_BITS)) as usize == local
                        {
                            j += 1;
                        }
                        added += merge_bucket(
                            &mut buckets[local],
                            &keys[i..j],
                            &mut rejected,
                            &mut spots,
                        );
                        i = j;
                    }
                    (added, rejected, scratch, spots)
                },
            )
            .map(|(a, r, _, _)| (a, r, (), ()))
            .reduce(
                || (0u64, Vec::new(), (), ()),
                |(a1, mut r1, _, _), (a2, r2, _, _)| {
                    r1.extend(r2);
                    (a1 + a2, r1, (), ())
                },
            );
        self.len += added;
        rejected
    }

    /// Serialise as: universe, len, bucket count (u64 LE each), then every
    /// bucket's member count (u32 LE), then every member's low bits (u16 LE).
    pub fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.universe.to_le_bytes())?;
        out.write_all(&self.len.to_le_bytes())?;
        out.write_all(&(self.buckets.len() as u64).to_le_bytes())?;
        let mut buf = Vec::with_capacity(1 << 16);
        for b in &self.buckets {
            buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
            if buf.len() >= 1 << 16 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        for b in &self.buckets {
            for l in b.iter() {
                buf.extend_from_slice(&l.to_le_bytes());
            }
            if buf.len() >= 1 << 16 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }

    /// Bytes [`CodeSet::write_to`] produces.
    pub fn serialized_len(&self) -> u64 {
        24 + 4 * self.buckets.len() as u64 + 2 * self.len
    }

    /// Parse what [`CodeSet::write_to`] wrote, checking every invariant.
    pub fn read_from(bytes: &[u8], expected_universe: u64) -> Result<Self> {
        let corrupt = |what: &str| CoreError::Corrupt(format!("code set section: {what}"));
        if bytes.len() < 24 {
            return Err(corrupt("truncated header"));
        }
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        let (universe, len, nb) = (word(0), word(1), word(2));
        if universe != expected_universe {
            return Err(corrupt(&format!(
                "universe {universe}, expected {expected_universe}"
            )));
        }
        let set = CodeSet::new(universe);
        if nb != set.buckets.len() as u64 {
            return Err(corrupt("bucket count does not match the universe"));
        }
        let counts_end = 24 + 4 * nb as usize;
        if len > universe || bytes.len() as u64 != counts_end as u64 + 2 * len {
            return Err(corrupt("length does not match the member count"));
        }
        let counts = &bytes[24..counts_end];
        let mut lows = &bytes[counts_end..];
        let mut buckets = Vec::with_capacity(nb as usize);
        let mut total = 0u64;
        for (b, c) in counts.chunks_exact(4).enumerate() {
            let c = u32::from_le_bytes(c.try_into().unwrap()) as usize;
            total += c as u64;
            if total > len {
                return Err(corrupt("bucket counts exceed the member count"));
            }
            let (mine, rest) = lows.split_at(2 * c);
            lows = rest;
            let mut v: Vec<u16> = Vec::with_capacity(with_slack(c));
            v.extend(
                mine.chunks_exact(2)
                    .map(|x| u16::from_le_bytes([x[0], x[1]])),
            );
            if v.windows(2).any(|w| w[0] >= w[1]) {
                return Err(corrupt(&format!("bucket {b} is not strictly increasing")));
            }
            if let Some(&last) = v.last() {
                if ((b as u64) << LOW_BITS | last as u64) >= universe {
                    return Err(corrupt(&format!(
                        "bucket {b} holds a value outside the universe"
                    )));
                }
            }
            buckets.push(v);
        }
        if total != len {
            return Err(corrupt("bucket counts do not add up to the member count"));
        }
        Ok(CodeSet {
            universe,
            buckets,
            len,
        })
    }
}

/// Bucket bits per super-bucket: the fewest that leave at most 2048 of them.
fn super_shift(buckets: usize) -> u32 {
    let mut shift = 0;
    while buckets.div_ceil(1 << shift) > 2048 {
        shift += 1;
    }
    shift
}

/// Stable LSD radix sort of `keys` by the `bits` bits above bit `from`, in
/// passes of at most 12 bits (the counters stay in L1).
fn radix_sort_stable(keys: &mut [u64], scratch: &mut Vec<u64>, from: u32, bits: u32) {
    if keys.len() < 2 {
        return;
    }
    let passes = bits.div_ceil(12);
    let width = bits.div_ceil(passes);
    scratch.clear();
    scratch.resize(keys.len(), 0);
    let mut counts = vec![0u32; 1 << width];
    let mut in_keys = true;
    for pass in 0..passes {
        let sh = from + pass * width;
        let mask = (1u64 << width) - 1;
        let (src, dst): (&[u64], &mut [u64]) = if in_keys {
            (&*keys, &mut scratch[..])
        } else {
            (&scratch[..], &mut *keys)
        };
        counts.iter_mut().for_each(|c| *c = 0);
        for &k in src {
            counts[((k >> sh) & mask) as usize] += 1;
        }
        let mut at = 0u32;
        for c in counts.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        for &k in src {
            let d = &mut counts[((k >> sh) & mask) as usize];
            dst[*d as usize] = k;
            *d += 1;
        }
        in_keys = !in_keys;
    }
    if !in_keys {
        keys.copy_from_slice(scratch);
    }
}

/// Capacity for a bucket of `len` members: room for about 1/16 more.
fn with_slack(len: usize) -> usize {
    len + len / 16 + 4
}

/// Merge packed candidates (low bits at `IDX_BITS..`, position below), sorted
/// by low bits with ties in batch order, into a bucket. Candidates already
/// present, or equal to an earlier one, go to `rejected`. New members are
/// merged in place from the back, so only the members above the first new one
/// move, and the bucket reallocates only when its slack runs out.
fn merge_bucket(
    bucket: &mut Vec<u16>,
    packed: &[u64],
    rejected: &mut Vec<u64>,
    spots: &mut Vec<(usize, u16)>,
) -> u64 {
    if bucket.is_empty() {
        bucket.reserve_exact(with_slack(packed.len()));
        for &key in packed {
            let low = (key >> IDX_BITS) as u16;
            if bucket.last() == Some(&low) {
                rejected.push(key & IDX_MASK);
            } else {
                bucket.push(low);
            }
        }
        return bucket.len() as u64;
    }
    spots.clear();
    let mut lo = 0usize;
    let mut prev: Option<u16> = None;
    for &key in packed {
        let low = (key >> IDX_BITS) as u16;
        let idx = key & IDX_MASK;
        if prev == Some(low) {
            rejected.push(idx);
            continue;
        }
        prev = Some(low);
        let pos = lo + bucket[lo..].partition_point(|&x| x < low);
        if pos < bucket.len() && bucket[pos] == low {
            rejected.push(idx);
        } else {
            spots.push((pos, low));
        }
        lo = pos;
    }
    let k = spots.len();
    if k == 0 {
        return 0;
    }
    let old_len = bucket.len();
    if bucket.capacity() < old_len + k {
        bucket.reserve_exact(with_slack(old_len + k) - old_len);
    }
    bucket.resize(old_len + k, 0);
    let mut end = old_len;
    let mut write = old_len + k;
    for &(pos, low) in spots.iter().rev() {
        let seg = end - pos;
        bucket.copy_within(pos..end, write - seg);
        write -= seg + 1;
        bucket[write] = low;
        end = pos;
    }
    k as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 20
    }

    fn check_against_model(universe: u64, batches: &[usize]) {
        let mut set = CodeSet::new(universe);
        let mut model = BTreeSet::new();
        let mut seed = 42u64;
        for &n in batches {
            let cands: Vec<u64> = (0..n).map(|_| lcg(&mut seed) % universe).collect();
            let mask = set.insert_new(&cands).unwrap();
            for (c, m) in cands.iter().zip(&mask) {
                assert_eq!(*m, model.insert(*c), "candidate {c}");
            }
            assert_eq!(set.len(), model.len() as u64);
        }
        assert!(set.iter().eq(model.iter().copied()));
        for probe in (0..universe).step_by((universe / 5000).max(1) as usize) {
            assert_eq!(set.contains(probe), model.contains(&probe));
        }
    }

    #[test]
    fn dense_and_sparse_paths_match_a_btreeset() {
        // Small universe so that duplicates are frequent in both paths.
        check_against_model(1 << 22, &[3, 10, 100_000, 7, 250_000, 1]);
        check_against_model(10_000_000_000, &[50_000, 20, 300_000]);
    }

    #[test]
    fn duplicates_within_a_batch_keep_the_first() {
        let mut set = CodeSet::new(1000);
        let mask = set.insert_new(&[5, 7, 5, 5, 9, 7]).unwrap();
        assert_eq!(mask, vec![true, true, false, false, true, false]);
        let mask = set.insert_new(&[9, 10]).unwrap();
        assert_eq!(mask, vec![false, true]);
        assert_eq!(set.len(), 4);
    }

    #[test]
    fn out_of_universe_changes_nothing() {
        let mut set = CodeSet::new(1000);
        set.insert_new(&[1, 2]).unwrap();
        let before = set.clone();
        assert!(set.insert_new(&[3, 1000]).is_err());
        assert_eq!(set, before);
        assert!(!set.contains(5000));
    }

    #[test]
    fn serialisation_round_trips_and_detects_damage() {
        let mut set = CodeSet::new(10_000_000_000);
        let mut seed = 7u64;
        let cands: Vec<u64> = (0..20_000)
            .map(|_| lcg(&mut seed) % 10_000_000_000)
            .collect();
        set.insert_new(&cands).unwrap();
        let mut bytes = Vec::new();
        set.write_to(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, set.serialized_len());
        assert_eq!(CodeSet::read_from(&bytes, 10_000_000_000).unwrap(), set);
        assert!(CodeSet::read_from(&bytes[..bytes.len() - 2], 10_000_000_000).is_err());
        assert!(CodeSet::read_from(&bytes, 100_000_000_000).is_err());
        // Swap two members of a bucket: no longer sorted.
        let counts_end = 24 + 4 * set.buckets.len();
        let first = set.buckets.iter().position(|b| b.len() >= 2).unwrap();
        let offset: usize = set.buckets[..first].iter().map(|b| b.len()).sum();
        let p = counts_end + 2 * offset;
        let mut bad = bytes.clone();
        bad.copy_within(p..p + 2, p + 2);
        bad[p..p + 2].copy_from_slice(&bytes[p + 2..p + 4]);
        assert!(CodeSet::read_from(&bad, 10_000_000_000).is_err());
    }
}
