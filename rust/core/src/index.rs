//! The center's identity lookup index: the identity confirmation info of the
//! whole country (125 million rows) answered from memory, by resident code or
//! by family name + given name + birth date (+ sex, + address).
//!
//! Layout (one row per live resident code, rows in increasing code order):
//!
//! - `codes`: the codes, sorted, and a prefix directory `dir` of `2^bits + 1`
//!   offsets; a code's bucket is `code * 2^bits / 10^11` (codes are uniform,
//!   about 4 to 8 per bucket), so a lookup reads the directory and one or two
//!   cache lines of codes, not 27 steps of a binary search;
//! - `recs`: one packed 28-byte record per row ([`Rec`]: dictionary ids of the
//!   family name, the given name and the two halves of the address, birth
//!   date, change date, and the municipality, change reason, sex and status
//!   packed in one word), so the items of a row are one cache line away;
//! - six dictionaries (family name, given name, address place, address rest,
//!   municipality code, change reason): the original strings, bytes + u64
//!   offsets. An address is split at its first digit into its place
//!   (prefecture, city, town) and the rest (block and house numbers,
//!   building), both shared by many residents, so the tens of millions of
//!   distinct addresses of the country cost no dictionary entry each. The name
//!   dictionaries also hold each entry's search key ([`Keys`]) and its 64-bit
//!   hash; address keys are derived when a search compares its few
//!   candidates. Entries may repeat (an overlay folded in appends its
//!   strings); nothing relies on their uniqueness;
//! - blocking for the four-item search: per row the hash of (family key,
//!   given key, birth date); rows sorted by it under a directory of its top
//!   bits, each beside the low 32 bits of its hash. Candidates are then
//!   compared exactly on the key strings, so a collision never yields a
//!   wrong match;
//! - retired codes (a code given up by a code change): old, new, date, sorted
//!   by old.
//!
//! Updates go to an in-memory overlay ([`Index::apply_delta`]): codes added,
//! changed or removed; lookups and searches consult it first and skip the base
//! rows it masks. [`Index::save`] folds the overlay in.
//!
//! The file ([`Index::save`], [`Index::open`]) is a header (magic, kind,
//! version, n, mark, store id, section table with an xxh3 checksum per
//! section, its own checksum) and the sections, each 64-byte aligned. Opening
//! memory-maps it and uses the sections in place after verifying the header,
//! every checksum (in parallel) and every invariant a lookup relies on, so a
//! damaged or crafted file is refused ([`CoreError::Corrupt`]), never
//! half-loaded, and never makes a lookup panic.
//!
//! Row numbers ([`Row`]) name a row until the next fold: base rows are
//! `0..base_len`, overlay rows follow.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use memmap2::Mmap;
use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{CoreError, IoContext, Result, RowError};
use crate::mem::fresh_vec;

/// A row of the index (see the module documentation).
pub type Row = u32;
/// "No row" in the rows given to [`Index::gather`]: the output row is null.
pub const NO_ROW: Row = Row::MAX;

/// Resident codes are 11 digits.
pub const CODE_LIMIT: u64 = 100_000_000_000;
const KIND: &[u8; 8] = b"IDXIDENT";
const MAGIC: &[u8; 8] = b"JUKICORE";
/// The file format this build writes and reads.
pub const VERSION: u32 = 1;
const STORE_ID_MAX: usize = 256;
const FIXED: usize = 56 + STORE_ID_MAX;
const SECTIONS: usize = 9 + 6 * 5;
const ALIGN: usize = 64;
/// At most this many municipality codes, change reasons (packed ids).
pub const LG_MAX: usize = 1 << 14;
pub const REASON_MAX: usize = 1 << 13;
const MAX_BAD: usize = 100;
const PAR_MIN: usize = 4096;

// ---------------------------------------------------------------------------
// keys

/// How search keys are derived from names and addresses (the real
/// normalization lives in `normalize`). Each function appends the key of `s`
/// to `out` (which the index clears first). Two values match when their keys
/// are equal byte for byte.
pub trait Keys: Sync {
    fn name(&self, s: &str, out: &mut String);
    fn address(&self, s: &str, out: &mut String);
}

/// Keys without normalization: the value with its whitespace removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainKeys;

impl Keys for PlainKeys {
    fn name(&self, s: &str, out: &mut String) {
        out.extend(s.chars().filter(|c| !c.is_whitespace()));
    }
    fn address(&self, s: &str, out: &mut String) {
        out.extend(s.chars().filter(|c| !c.is_whitespace()));
    }
}

// ---------------------------------------------------------------------------
// input

/// The offsets of an Arrow string column: 32-bit (string) or 64-bit (large string).
#[derive(Debug, Clone, Copy)]
pub enum Offsets<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

/// An Arrow-layout string column: `n + 1` offsets into `data`, an optional
/// validity bitmap (bytes, bit offset of the first value).
#[derive(Debug, Clone, Copy)]
pub struct StrCol<'a> {
    pub data: &'a [u8],
    pub offsets: Offsets<'a>,
    pub validity: Option<(&'a [u8], usize)>,
}

impl<'a> StrCol<'a> {
    pub fn new_i32(data: &'a [u8], offsets: &'a [i32]) -> Self {
        StrCol {
            data,
            offsets: Offsets::I32(offsets),
            validity: None,
        }
    }
    pub fn new_i64(data: &'a [u8], offsets: &'a [i64]) -> Self {
        StrCol {
            data,
            offsets: Offsets::I64(offsets),
            validity: None,
        }
    }

    /// Number of values (0 for malformed offsets; [`StrCol::check`] refuses those).
    pub fn len(&self) -> usize {
        match self.offsets {
            Offsets::I32(o) => o.len().saturating_sub(1),
            Offsets::I64(o) => o.len().saturating_sub(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn range(&self, i: usize) -> (usize, usize) {
        match self.offsets {
            Offsets::I32(o) => (o[i] as usize, o[i + 1] as usize),
            Offsets::I64(o) => (o[i] as usize, o[i + 1] as usize),
        }
    }

    #[inline]
    fn is_null(&self, i: usize) -> bool {
        match self.validity {
            Some((bits, off)) => bits[(off + i) / 8] & (1 << ((off + i) % 8)) == 0,
            None => false,
        }
    }

    /// Value `i` (valid after [`StrCol::check`]).
    #[inline]
    fn bytes(&self, i: usize) -> &'a [u8] {
        let (s, e) = self.range(i);
        &self.data[s..e]
    }

    #[inline]
    fn str(&self, i: usize) -> &'a str {
        // SAFETY: `check` validated UTF-8 of every value before any `str` call.
        unsafe { std::str::from_utf8_unchecked(self.bytes(i)) }
    }

    /// Check offsets, validity length and UTF-8; nulls are refused unless
    /// `nulls_ok`. The first bad rows are returned with the column's name.
    fn check(&self, name: &str, n: usize, nulls_ok: bool) -> Result<Vec<RowError>> {
        if self.len() != n
            || matches!(self.offsets, Offsets::I32(o) if o.is_empty())
            || matches!(self.offsets, Offsets::I64(o) if o.is_empty())
        {
            return Err(CoreError::Invalid(format!(
                "column {name} has {} values (offsets {}), expected {n}",
                self.len(),
                self.len() + 1
            )));
        }
        if let Some((bits, off)) = self.validity {
            if bits.len() * 8 < off + n {
                return Err(CoreError::Invalid(format!(
                    "column {name}: validity bitmap too short"
                )));
            }
        }
        let pos = |i: usize| -> Option<usize> {
            match self.offsets {
                Offsets::I32(o) => usize::try_from(o[i]).ok(),
                Offsets::I64(o) => usize::try_from(o[i]).ok(),
            }
        };
        let bad_offsets = (0..n).into_par_iter().find_first(|&i| {
            !matches!((pos(i), pos(i + 1)), (Some(a), Some(b)) if a <= b && b <= self.data.len())
        });
        if let Some(i) = bad_offsets {
            return Err(CoreError::Invalid(format!(
                "column {name}: offsets of value {i} are outside its {} data bytes",
                self.data.len()
            )));
        }
        let bad: Vec<RowError> = (0..n)
            .into_par_iter()
            .filter_map(|i| {
                if self.is_null(i) {
                    return (!nulls_ok).then(|| RowError {
                        row: i,
                        reason: format!("{name} is null"),
                    });
                }
                simdutf8::basic::from_utf8(self.bytes(i))
                    .is_err()
                    .then(|| RowError {
                        row: i,
                        reason: format!("{name} is not UTF-8"),
                    })
            })
            .take_any(MAX_BAD)
            .collect();
        Ok(bad)
    }
}

/// Rows of identity info, one per resident code; every column has the same
/// length. `sex`: 1 male, 2 female, 9 not applicable; `status`: 0 resident,
/// 1 removed; dates in days since 1970-01-01.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub code: &'a [u64],
    pub family_name: StrCol<'a>,
    pub given_name: StrCol<'a>,
    pub address: StrCol<'a>,
    pub lg_code: StrCol<'a>,
    pub change_reason: StrCol<'a>,
    pub birth_date: &'a [i32],
    pub sex: &'a [i8],
    pub status: &'a [u8],
    pub change_date: &'a [i32],
}

/// Codes given up by a code change: `old` now answers `Retired { new, on }`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetiredCodes<'a> {
    pub old: &'a [u64],
    pub new: &'a [u64],
    pub retired_on: &'a [i32],
}

/// Everything an index is built from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub rows: Rows<'a>,
    pub retired: RetiredCodes<'a>,
    /// Which store the index reflects (opaque, at most 256 bytes).
    pub store_id: &'a str,
    /// Up to which applied packet it reflects (opaque).
    pub mark: u64,
}

// ---------------------------------------------------------------------------
// storage: owned vectors or slices of the mapped file

enum Col<T: Pod> {
    /// Owned (shared with the Arrow answers that point into it).
    Vec(Arc<Vec<T>>),
    Map {
        _map: Arc<Mmap>,
        ptr: *const T,
        len: usize,
    },
}

// SAFETY: a mapped column is an immutable view of a private read-only mapping
// that the Arc keeps alive; nothing writes through the pointer.
unsafe impl<T: Pod> Send for Col<T> {}
unsafe impl<T: Pod> Sync for Col<T> {}

impl<T: Pod> Deref for Col<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            Col::Vec(v) => v.as_slice(),
            // SAFETY: ptr/len come from a checked cast of a range of the mapping
            // (see `Mapped::col`), which lives as long as `_map`.
            Col::Map { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

impl<T: Pod> Col<T> {
    fn owned_bytes(&self) -> u64 {
        match self {
            Col::Vec(v) => (v.capacity() * std::mem::size_of::<T>()) as u64,
            Col::Map { len, .. } => (len * std::mem::size_of::<T>()) as u64,
        }
    }
}

impl<T: Pod> From<Vec<T>> for Col<T> {
    fn from(v: Vec<T>) -> Self {
        Col::Vec(Arc::new(v))
    }
}

impl<T: Pod + Send + Sync + std::panic::RefUnwindSafe> Col<T> {
    /// The column with what keeps it alive (for answers that outlive a call).
    fn shared(&self) -> Shared<T> {
        let owner: Arc<dyn Keep> = match self {
            Col::Vec(v) => v.clone(),
            Col::Map { _map, .. } => _map.clone(),
        };
        Shared {
            ptr: self.as_ptr(),
            len: self.len(),
            owner,
        }
    }
}

/// Anything that keeps bytes alive for a [`Shared`] slice.
pub trait Keep: Send + Sync + std::panic::RefUnwindSafe {}
impl<T: Send + Sync + std::panic::RefUnwindSafe + ?Sized> Keep for T {}

/// A slice of the index's memory (owned vectors or the mapped file) and its
/// owner: the slice stays valid, unchanged, for as long as `owner` lives,
/// whatever happens to the index (a fold replaces its vectors, it does not
/// write into them). Answers hand it to Arrow without copying.
pub struct Shared<T> {
    ptr: *const T,
    len: usize,
    pub owner: Arc<dyn Keep>,
}

// SAFETY: the slice is immutable and kept alive by `owner` (Send + Sync).
unsafe impl<T: Sync> Send for Shared<T> {}
unsafe impl<T: Sync> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn owned(v: Vec<T>) -> Self
    where
        T: Send + Sync + std::panic::RefUnwindSafe + 'static,
    {
        let v = Arc::new(v);
        Shared {
            ptr: v.as_ptr(),
            len: v.len(),
            owner: v,
        }
    }
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: ptr/len describe memory that `owner` keeps alive and unchanged.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// One row's items besides its code: 28 bytes, one cache line at most two.
/// The address is split in two dictionaries: its place (up to its first
/// digit: prefecture, city, town, shared by many) and the rest (block and
/// house numbers, building: shared too), so unique addresses cost no
/// dictionary entry of their own.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Rec {
    pub family: u32,
    pub given: u32,
    pub place: u32,
    pub rest: u32,
    pub birth: i32,
    pub change_date: i32,
    /// bits 0..14 municipality id, 14..27 change reason id, 27..29 sex
    /// (0: 1, 1: 2, 2: 9), bit 29 status.
    pub packed: u32,
}

impl Rec {
    #[inline]
    fn lg(&self) -> u32 {
        self.packed & (LG_MAX as u32 - 1)
    }
    #[inline]
    fn reason(&self) -> u32 {
        (self.packed >> 14) & (REASON_MAX as u32 - 1)
    }
    #[inline]
    fn sex(&self) -> i8 {
        match (self.packed >> 27) & 3 {
            0 => 1,
            1 => 2,
            _ => 9,
        }
    }
    #[inline]
    fn status(&self) -> u8 {
        ((self.packed >> 29) & 1) as u8
    }
    fn pack(lg: u32, reason: u32, sex: i8, status: u8) -> u32 {
        let s = match sex {
            1 => 0,
            2 => 1,
            _ => 2,
        };
        lg | (reason << 14) | (s << 27) | (u32::from(status) << 29)
    }
}

/// A dictionary: entries (strings), their keys and key hashes (name and address
/// dictionaries only). `base` may be mapped; `ext` holds the overlay's entries.
struct Dict {
    bytes: Col<u8>,
    offs: Col<u64>,
    kbytes: Col<u8>,
    koffs: Col<u64>,
    khash: Col<u64>,
    ext: DictExt,
}

#[derive(Default, Clone)]
struct DictExt {
    bytes: Vec<u8>,
    offs: Vec<u64>,
    kbytes: Vec<u8>,
    koffs: Vec<u64>,
    khash: Vec<u64>,
    ids: HashMap<String, u32>,
}

impl Dict {
    fn from_parts(p: DictParts) -> Self {
        Dict {
            bytes: p.bytes.into(),
            offs: p.offs.into(),
            kbytes: p.kbytes.into(),
            koffs: p.koffs.into(),
            khash: p.khash.into(),
            ext: DictExt::default(),
        }
    }
    #[inline]
    fn base_len(&self) -> usize {
        self.offs.len().saturating_sub(1)
    }
    fn len(&self) -> usize {
        self.base_len() + self.ext.offs.len().saturating_sub(1)
    }
    #[inline]
    fn get(&self, id: u32) -> &[u8] {
        let id = id as usize;
        let b = self.base_len();
        if id < b {
            &self.bytes[self.offs[id] as usize..self.offs[id + 1] as usize]
        } else {
            let i = id - b;
            &self.ext.bytes[self.ext.offs[i] as usize..self.ext.offs[i + 1] as usize]
        }
    }
    /// Entry `id` and its length: the bytes from its start, up to [`WIDE`]
    /// of them when the dictionary has that many (at least the entry).
    #[inline]
    fn get_wide(&self, id: u32) -> (&[u8], usize) {
        let i = id as usize;
        let (bytes, offs, i) = if i < self.base_len() {
            (&self.bytes[..], &self.offs[..], i)
        } else {
            (&self.ext.bytes[..], &self.ext.offs[..], i - self.base_len())
        };
        let (a, b) = (offs[i] as usize, offs[i + 1] as usize);
        (&bytes[a..b.max((a + WIDE).min(bytes.len()))], b - a)
    }
    #[inline]
    fn key(&self, id: u32) -> &[u8] {
        let id = id as usize;
        let b = self.base_len();
        if id < b {
            &self.kbytes[self.koffs[id] as usize..self.koffs[id + 1] as usize]
        } else {
            let i = id - b;
            &self.ext.kbytes[self.ext.koffs[i] as usize..self.ext.koffs[i + 1] as usize]
        }
    }
    #[inline]
    fn khash(&self, id: u32) -> u64 {
        let id = id as usize;
        let b = self.base_len();
        if id < b {
            self.khash[id]
        } else {
            self.ext.khash[id - b]
        }
    }
    /// The id of `s` among the overlay's entries, adding it (with its key) if new.
    fn ext_id(&mut self, s: &str, key: Option<&str>) -> u32 {
        if let Some(&id) = self.ext.ids.get(s) {
            return id;
        }
        let base = self.base_len();
        let e = &mut self.ext;
        if e.offs.is_empty() {
            e.offs.push(0);
            e.koffs.push(0);
        }
        e.bytes.extend_from_slice(s.as_bytes());
        e.offs.push(e.bytes.len() as u64);
        if let Some(k) = key {
            e.kbytes.extend_from_slice(k.as_bytes());
            e.koffs.push(e.kbytes.len() as u64);
            e.khash.push(xxh3_64(k.as_bytes()));
        }
        let id = (base + e.offs.len() - 2) as u32;
        e.ids.insert(s.to_owned(), id);
        id
    }
    fn memory_bytes(&self) -> u64 {
        self.bytes.owned_bytes()
            + self.offs.owned_bytes()
            + self.kbytes.owned_bytes()
            + self.koffs.owned_bytes()
            + self.khash.owned_bytes()
            + (self.ext.bytes.capacity()
                + self.ext.kbytes.capacity()
                + 8 * (self.ext.offs.capacity()
                    + self.ext.koffs.capacity()
                    + self.ext.khash.capacity())
                + self.ext.ids.capacity() * 48) as u64
    }
    /// The entries (base, then the overlay's) as bytes and `len() + 1` offsets:
    /// the index's own memory when the overlay added none, else a copy.
    fn values(&self) -> (Shared<u8>, Shared<u64>) {
        let e = &self.ext;
        if e.offs.len() <= 1 && !self.offs.is_empty() {
            return (self.bytes.shared(), self.offs.shared());
        }
        let mut bytes = self.bytes.to_vec();
        let mut offs = self.offs.to_vec();
        if offs.is_empty() {
            offs.push(0);
        }
        if e.offs.len() > 1 {
            let b0 = bytes.len() as u64;
            bytes.extend_from_slice(&e.bytes);
            offs.extend(e.offs[1..].iter().map(|o| o + b0));
        }
        (Shared::owned(bytes), Shared::owned(offs))
    }
    /// Base and overlay entries as one owned dictionary.
    fn folded(&self, keyed: bool) -> DictParts {
        let mut p = DictParts {
            bytes: self.bytes.to_vec(),
            offs: self.offs.to_vec(),
            kbytes: self.kbytes.to_vec(),
            koffs: self.koffs.to_vec(),
            khash: self.khash.to_vec(),
        };
        if p.offs.is_empty() {
            p.offs.push(0);
            if keyed {
                p.koffs.push(0);
            }
        }
        let e = &self.ext;
        if e.offs.len() > 1 {
            let (b0, k0) = (p.bytes.len() as u64, p.kbytes.len() as u64);
            p.bytes.extend_from_slice(&e.bytes);
            p.offs.extend(e.offs[1..].iter().map(|o| o + b0));
            if keyed {
                p.kbytes.extend_from_slice(&e.kbytes);
                p.koffs.extend(e.koffs[1..].iter().map(|o| o + k0));
                p.khash.extend_from_slice(&e.khash);
            }
        }
        p
    }
}

struct DictParts {
    bytes: Vec<u8>,
    offs: Vec<u64>,
    kbytes: Vec<u8>,
    koffs: Vec<u64>,
    khash: Vec<u64>,
}

// ---------------------------------------------------------------------------
// hashing helpers

/// A hasher for keys that are already uniform (codes, hashes).
#[derive(Default)]
struct MixHasher(u64);
impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        let x = (v ^ (v >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
}
type Fast = BuildHasherDefault<MixHasher>;

#[inline]
fn block_hash(fam: u64, given: u64, birth: i32, mask: u64) -> u64 {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&fam.to_le_bytes());
    b[8..16].copy_from_slice(&given.to_le_bytes());
    b[16..].copy_from_slice(&birth.to_le_bytes());
    xxh3_64(&b) & mask
}

fn dir_bits(n: usize) -> u32 {
    (n.max(1).ilog2().saturating_sub(2)).clamp(1, 26)
}

#[inline]
fn code_bucket(code: u64, bits: u32) -> usize {
    // code < 10^11 < 2^37 and bits <= 26: no overflow
    ((code << bits) / CODE_LIMIT) as usize
}

#[inline]
fn hash_bucket(h: u64, bits: u32) -> usize {
    (h >> (64 - bits)) as usize
}

/// Group `0..keys.len()` by `bucket(key)` (counting sort) and sort each group
/// by `order_key(key)`: the directory (`2^bits + 1` offsets) and the order.
fn bucket_sort(
    keys: &[u64],
    bits: u32,
    bucket: impl Fn(u64) -> usize + Sync,
    order_key: impl Fn(u64) -> u64 + Sync,
) -> (Vec<u32>, Vec<u32>) {
    let nb = 1usize << bits;
    let mut dir = vec![0u32; nb + 1];
    let buckets: Vec<u32> = keys.par_iter().map(|&k| bucket(k) as u32).collect();
    for &b in &buckets {
        dir[b as usize + 1] += 1;
    }
    for i in 0..nb {
        dir[i + 1] += dir[i];
    }
    let mut cursor = dir.clone();
    let mut order = vec![0u32; keys.len()];
    for (i, &b) in buckets.iter().enumerate() {
        let c = &mut cursor[b as usize];
        order[*c as usize] = i as u32;
        *c += 1;
    }
    drop(buckets);
    // sort every bucket; buckets are split into chunks of about 64k rows
    let mut bounds = vec![0usize];
    let mut last = 0usize;
    for b in 0..nb {
        let end = dir[b + 1] as usize;
        if end - last >= 1 << 16 {
            bounds.push(end);
            last = end;
        }
    }
    if *bounds.last().unwrap() != keys.len() {
        bounds.push(keys.len());
    }
    let mut slices = Vec::with_capacity(bounds.len());
    let mut rest: &mut [u32] = &mut order;
    for w in bounds.windows(2) {
        let (head, tail) = rest.split_at_mut(w[1] - w[0]);
        slices.push((w[0], head));
        rest = tail;
    }
    slices.into_par_iter().for_each(|(start, slice)| {
        let end = start + slice.len();
        // buckets inside [start, end)
        let mut b = dir
            .partition_point(|&d| (d as usize) <= start)
            .saturating_sub(1);
        while b < nb && (dir[b] as usize) < end {
            let (s, e) = (dir[b] as usize - start, dir[b + 1] as usize - start);
            let part = &mut slice[s..e];
            if part.len() > 1 {
                part.sort_unstable_by_key(|&i| (order_key(keys[i as usize]), i));
            }
            b += 1;
        }
    });
    (dir, order)
}

/// A dictionary and the id of a row's entry in it.
type Part<'d> = (&'d Dict, fn(&Rec) -> u32);

/// Bytes copied at once for a short value in a gather.
const WIDE: usize = 32;

/// Rows per chunk of a parallel gather.
const GATHER_CHUNK: usize = 1 << 12;

/// The text columns of [`Index::gather`] (a value is the concatenation of its
/// entries in each of its parts), given each chunk's byte count per column:
/// every chunk writes its share of offsets and bytes. Offsets are 32-bit when
/// the column's bytes allow it.
fn gather_texts<const K: usize>(
    cols: [&[Part<'_>]; K],
    rows: &[Row],
    recs: &[Rec],
    sums: &[[i64; K]],
    chunk: usize,
    seq: bool,
) -> [Texts; K] {
    let n = rows.len();
    let mut starts = Vec::with_capacity(sums.len());
    let mut total = [0i64; K];
    for s in sums {
        starts.push(total);
        for k in 0..K {
            total[k] += s[k];
        }
    }
    let mut offsets: [TextOffsets; K] = std::array::from_fn(|k| {
        if total[k] <= i64::from(i32::MAX) {
            TextOffsets::I32(vec![0i32; n + 1])
        } else {
            TextOffsets::I64(vec![0i64; n + 1])
        }
    });
    let mut data: [Vec<u8>; K] = std::array::from_fn(|k| vec![0u8; total[k] as usize]);
    enum Offs<'a> {
        I32(&'a mut [i32]),
        I64(&'a mut [i64]),
    }
    struct Piece<'a, const K: usize> {
        c: usize,
        offs: [Offs<'a>; K],
        data: [&'a mut [u8]; K],
    }
    let mut offs_iters: Vec<Box<dyn Iterator<Item = Offs<'_>>>> = offsets
        .iter_mut()
        .map(|o| -> Box<dyn Iterator<Item = Offs<'_>>> {
            match o {
                TextOffsets::I32(v) => Box::new(v[1..].chunks_mut(chunk).map(Offs::I32)),
                TextOffsets::I64(v) => Box::new(v[1..].chunks_mut(chunk).map(Offs::I64)),
            }
        })
        .collect();
    let mut data_rest: Vec<&mut [u8]> = data.iter_mut().map(|d| d.as_mut_slice()).collect();
    let mut pieces: Vec<Piece<'_, K>> = Vec::with_capacity(sums.len());
    for (c, sum) in sums.iter().enumerate() {
        let offs = std::array::from_fn(|k| offs_iters[k].next().unwrap_or(Offs::I32(&mut [])));
        let data = std::array::from_fn(|k| {
            let rest = std::mem::take(&mut data_rest[k]);
            let (head, tail) = rest.split_at_mut(sum[k] as usize);
            data_rest[k] = tail;
            head
        });
        pieces.push(Piece { c, offs, data });
    }
    drop(offs_iters);
    let fill = |p: Piece<'_, K>| {
        let a = p.c * chunk;
        let b = (a + chunk).min(n);
        let mut at = [0usize; K];
        let (mut offs, data) = (p.offs, p.data);
        for i in a..b {
            if rows[i] != NO_ROW {
                let rec = &recs[i];
                for k in 0..K {
                    for (d, id) in cols[k].iter() {
                        // names and address halves are short: one fixed-size copy
                        // (its tail is overwritten by what follows) instead of a
                        // call to memcpy per value
                        let (src, len) = d.get_wide(id(rec));
                        let dst = &mut data[k][at[k]..];
                        if len <= WIDE && src.len() >= WIDE && dst.len() >= WIDE {
                            dst[..WIDE].copy_from_slice(&src[..WIDE]);
                        } else {
                            dst[..len].copy_from_slice(&src[..len]);
                        }
                        at[k] += len;
                    }
                }
            }
            for k in 0..K {
                let end = starts[p.c][k] + at[k] as i64;
                match &mut offs[k] {
                    Offs::I32(o) => o[i - a] = end as i32,
                    Offs::I64(o) => o[i - a] = end,
                }
            }
        }
    };
    if seq {
        pieces.into_iter().for_each(fill);
    } else {
        pieces.into_par_iter().for_each(fill);
    }
    let mut out = offsets
        .into_iter()
        .zip(data)
        .map(|(offsets, data)| Texts { data, offsets });
    std::array::from_fn(|_| out.next().unwrap_or_default())
}

/// A chunk of [`Index::address_texts`]: its number, first offset, bytes, offsets.
type AddressJob<'a, O> = (usize, ((i64, &'a mut [u8]), &'a mut [O]));

/// Ask the CPU to fetch the cache line at `p` (a hint: never faults, any address).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Find `key` in `sorted[dir[b]..dir[b + 1]]`.
#[inline]
fn find_in_bucket<T: Ord + Copy>(sorted: &[T], lo: usize, hi: usize, key: T) -> Option<usize> {
    let s = &sorted[lo..hi];
    if s.len() <= 16 {
        s.iter().position(|&c| c == key).map(|p| lo + p)
    } else {
        s.binary_search(&key).ok().map(|p| lo + p)
    }
}

// ---------------------------------------------------------------------------
// dictionary encoding

/// Encode a column: per row its entry id, and the entries in first-seen order.
/// Where an address's place ends: at its first digit (ASCII or fullwidth).
#[inline]
fn address_split(b: &[u8]) -> usize {
    let fullwidth_digit =
        |i: usize| b.get(i + 1) == Some(&0xbc) && matches!(b.get(i + 2), Some(0x90..=0x99));
    b.iter()
        .enumerate()
        .position(|(i, &c)| c.is_ascii_digit() || (c == 0xef && fullwidth_digit(i)))
        .unwrap_or(b.len())
}

/// A dictionary being made: each distinct value once, in order of first
/// appearance, over any number of batches of values (the same entries and ids
/// as one batch of all of them).
struct Encoder {
    bytes: Vec<u8>,
    offs: Vec<u64>,
    ehash: Vec<u64>,
    table: Vec<u32>,
}

impl Encoder {
    fn new() -> Self {
        Encoder {
            bytes: Vec::new(),
            offs: vec![0],
            ehash: Vec::new(),
            table: vec![u32::MAX; 1024],
        }
    }

    fn len(&self) -> usize {
        self.ehash.len()
    }

    /// Back to its first `len` entries (a batch taken back).
    fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        self.ehash.truncate(len);
        self.offs.truncate(len + 1);
        self.bytes.truncate(self.offs[len] as usize);
        self.rehash(self.table.len());
    }

    /// The hash table made again, `cap` slots, from the entries.
    fn rehash(&mut self, cap: usize) {
        self.table = vec![u32::MAX; cap];
        for (e, &h) in self.ehash.iter().enumerate() {
            let mut p = (h as usize) & (cap - 1);
            while self.table[p] != u32::MAX {
                p = (p + 1) & (cap - 1);
            }
            self.table[p] = e as u32;
        }
    }

    /// The ids of the values `get(0..n)`, appended to `ids`.
    fn add<'a>(&mut self, n: usize, get: impl Fn(usize) -> &'a [u8] + Sync, ids: &mut Vec<u32>) {
        let hashes: Vec<u64> = (0..n).into_par_iter().map(|i| xxh3_64(get(i))).collect();
        ids.reserve(n);
        for (i, &h) in hashes.iter().enumerate() {
            if self.ehash.len() * 2 >= self.table.len() {
                self.rehash(self.table.len() * 2);
            }
            let cap = self.table.len();
            let v = get(i);
            let mut p = (h as usize) & (cap - 1);
            let id = loop {
                let e = self.table[p];
                if e == u32::MAX {
                    let id = self.ehash.len() as u32;
                    self.table[p] = id;
                    self.ehash.push(h);
                    self.bytes.extend_from_slice(v);
                    self.offs.push(self.bytes.len() as u64);
                    break id;
                }
                let eu = e as usize;
                if self.ehash[eu] == h
                    && &self.bytes[self.offs[eu] as usize..self.offs[eu + 1] as usize] == v
                {
                    break e;
                }
                p = (p + 1) & (cap - 1);
            };
            ids.push(id);
        }
    }
}

/// Keys and key hashes of every entry, in parallel.
fn entry_keys(
    bytes: &[u8],
    offs: &[u64],
    f: &(dyn Fn(&str, &mut String) + Sync),
) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
    let n = offs.len().saturating_sub(1);
    let keys: Vec<String> = (0..n)
        .into_par_iter()
        .map_init(String::new, |buf, i| {
            buf.clear();
            let s =
                std::str::from_utf8(&bytes[offs[i] as usize..offs[i + 1] as usize]).unwrap_or("");
            f(s, buf);
            buf.clone()
        })
        .collect();
    let khash = keys.par_iter().map(|k| xxh3_64(k.as_bytes())).collect();
    let mut kbytes = Vec::with_capacity(keys.iter().map(|k| k.len()).sum());
    let mut koffs = Vec::with_capacity(n + 1);
    koffs.push(0u64);
    for k in &keys {
        kbytes.extend_from_slice(k.as_bytes());
        koffs.push(kbytes.len() as u64);
    }
    (kbytes, koffs, khash)
}

fn keyed_dict(bytes: Vec<u8>, offs: Vec<u64>, f: &(dyn Fn(&str, &mut String) + Sync)) -> DictParts {
    let (kbytes, koffs, khash) = entry_keys(&bytes, &offs, f);
    DictParts {
        bytes,
        offs,
        kbytes,
        koffs,
        khash,
    }
}

fn plain_dict(bytes: Vec<u8>, offs: Vec<u64>) -> DictParts {
    DictParts {
        bytes,
        offs,
        kbytes: Vec::new(),
        koffs: Vec::new(),
        khash: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// the index

/// An index built from its rows in batches (the snapshot of a store read in
/// ranges): each batch's texts are made dictionary ids as it comes, so that
/// the caller need not hold every row's texts at once. One batch of all the
/// rows gives the index [`Index::build`] gives.
pub struct Builder {
    code: Vec<u64>,
    birth: Vec<i32>,
    change: Vec<i32>,
    sex: Vec<i8>,
    status: Vec<u8>,
    /// family name, given name, place, rest of the address, municipality,
    /// change reason: each row's id in its dictionary
    ids: [Vec<u32>; 6],
    enc: [Encoder; 6],
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            code: Vec::new(),
            birth: Vec::new(),
            change: Vec::new(),
            sex: Vec::new(),
            status: Vec::new(),
            ids: Default::default(),
            enc: std::array::from_fn(|_| Encoder::new()),
        }
    }

    /// Rows taken so far.
    pub fn len(&self) -> usize {
        self.code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.code.is_empty()
    }

    /// Take a batch of rows. A refused batch (bad values; the rows numbered
    /// from the first row of all batches) changes nothing.
    pub fn push(&mut self, rows: &Rows<'_>) -> Result<()> {
        let at = self.len();
        let n = check_rows(rows, "rows").map_err(|e| match e {
            CoreError::InvalidRows { message, rows } => CoreError::InvalidRows {
                message,
                rows: rows
                    .into_iter()
                    .map(|r| RowError {
                        row: r.row + at,
                        reason: r.reason,
                    })
                    .collect(),
            },
            other => other,
        })?;
        if at + n >= (u32::MAX / 2) as usize {
            return Err(CoreError::Invalid(format!(
                "rows: too many rows ({})",
                at + n
            )));
        }
        let before = self.enc.each_ref().map(Encoder::len);
        let adr = &rows.address;
        let place_of = |i: usize| {
            let b = adr.bytes(i);
            &b[..address_split(b)]
        };
        let rest_of = |i: usize| {
            let b = adr.bytes(i);
            &b[address_split(b)..]
        };
        let [e_fam, e_giv, e_place, e_rest, e_lg, e_rsn] = &mut self.enc;
        let [i_fam, i_giv, i_place, i_rest, i_lg, i_rsn] = &mut self.ids;
        let (fam, giv) = (&rows.family_name, &rows.given_name);
        let (lg, rsn) = (&rows.lg_code, &rows.change_reason);
        rayon::join(
            || {
                rayon::join(
                    || e_fam.add(n, |i| fam.bytes(i), i_fam),
                    || e_giv.add(n, |i| giv.bytes(i), i_giv),
                )
            },
            || {
                rayon::join(
                    || {
                        rayon::join(
                            || {
                                rayon::join(
                                    || e_place.add(n, place_of, i_place),
                                    || e_rest.add(n, rest_of, i_rest),
                                )
                            },
                            || e_lg.add(n, |i| lg.bytes(i), i_lg),
                        )
                    },
                    || e_rsn.add(n, |i| rsn.bytes(i), i_rsn),
                )
            },
        );
        // at most so many distinct municipalities and change reasons; past them the
        // batch is taken back (its new entries and ids), so that nothing changed
        for (what, e, max) in [
            ("municipality codes", 4, LG_MAX),
            ("change reasons", 5, REASON_MAX),
        ] {
            let count = self.enc[e].len();
            if count > max {
                for (enc, (ids, len)) in self.enc.iter_mut().zip(self.ids.iter_mut().zip(before)) {
                    enc.truncate(len);
                    ids.truncate(at);
                }
                return Err(CoreError::Invalid(format!(
                    "{count} distinct {what}, at most {max}"
                )));
            }
        }
        self.code.extend_from_slice(rows.code);
        self.birth.extend_from_slice(rows.birth_date);
        self.change.extend_from_slice(rows.change_date);
        self.sex.extend_from_slice(rows.sex);
        self.status.extend_from_slice(rows.status);
        Ok(())
    }

    /// The index of the rows taken and the retired codes.
    pub fn finish(
        self,
        retired: &RetiredCodes<'_>,
        store_id: &str,
        mark: u64,
        keys: &dyn Keys,
    ) -> Result<Index> {
        self.finish_masked(retired, store_id, mark, keys, u64::MAX)
    }

    fn finish_masked(
        self,
        retired: &RetiredCodes<'_>,
        store_id: &str,
        mark: u64,
        keys: &dyn Keys,
        hash_mask: u64,
    ) -> Result<Index> {
        store_id_ok(store_id)?;
        check_retired(retired)?;
        // rows in code order
        let n = self.code.len();
        let bits = dir_bits(n);
        let (dir, order) = bucket_sort(&self.code, bits, |c| code_bucket(c, bits), |c| c);
        let codes: Vec<u64> = order.par_iter().map(|&i| self.code[i as usize]).collect();
        let dups: Vec<RowError> = (1..n)
            .into_par_iter()
            .filter(|&i| codes[i] == codes[i - 1])
            .take_any(MAX_BAD)
            .map(|i| RowError {
                row: order[i] as usize,
                reason: format!("code {:011} appears more than once", codes[i]),
            })
            .collect();
        if !dups.is_empty() {
            return Err(invalid_rows("rows: duplicate codes", dups));
        }
        let [fam, giv, place, rest, lg, rsn] = &self.ids;
        let recs: Vec<Rec> = order
            .par_iter()
            .map(|&i| {
                let i = i as usize;
                Rec {
                    family: fam[i],
                    given: giv[i],
                    place: place[i],
                    rest: rest[i],
                    birth: self.birth[i],
                    change_date: self.change[i],
                    packed: Rec::pack(lg[i], rsn[i], self.sex[i], self.status[i]),
                }
            })
            .collect();
        drop(order);
        let Builder { code, ids, enc, .. } = self;
        drop((code, ids));
        let name = |s: &str, o: &mut String| keys.name(s, o);
        let [fam, giv, place, rest, lg, rsn] = enc.map(|e| (e.bytes, e.offs));
        let (family, given) = rayon::join(
            || keyed_dict(fam.0, fam.1, &name),
            || keyed_dict(giv.0, giv.1, &name),
        );
        let (placed, restd) = (plain_dict(place.0, place.1), plain_dict(rest.0, rest.1));
        let (lgd, reason) = (plain_dict(lg.0, lg.1), plain_dict(rsn.0, rsn.1));
        // retired codes, sorted by old; none may be a live code
        let r = retired;
        let mut ret: Vec<(u64, u64, i32)> = (0..r.old.len())
            .map(|i| (r.old[i], r.new[i], r.retired_on[i]))
            .collect();
        ret.par_sort_unstable_by_key(|t| t.0);
        let mut bad = Vec::new();
        for w in ret.windows(2) {
            if w[0].0 == w[1].0 {
                bad.push(RowError {
                    row: r.old.iter().position(|&o| o == w[0].0).unwrap_or(0),
                    reason: format!("retired code {:011} appears more than once", w[0].0),
                });
            }
        }
        for (i, &o) in r.old.iter().enumerate() {
            let b = code_bucket(o, bits);
            if find_in_bucket(&codes, dir[b] as usize, dir[b + 1] as usize, o).is_some() {
                bad.push(RowError {
                    row: i,
                    reason: format!("retired code {o:011} is also a live code"),
                });
            }
            if bad.len() >= MAX_BAD {
                break;
            }
        }
        if !bad.is_empty() {
            return Err(invalid_rows("retired codes: conflicts", bad));
        }
        let idx = Index::finish(
            store_id.to_owned(),
            mark,
            hash_mask,
            bits,
            codes,
            dir,
            recs,
            ret,
            [family, given, placed, restd, lgd, reason],
        );
        Ok(idx)
    }
}

/// The answer to a code lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Found(Row),
    Retired { new: u64, on: i32 },
    NotFound,
}

/// A four-item search: family name, given name and birth date are required.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub family_name: &'a str,
    pub given_name: &'a str,
    pub birth_date: i32,
    pub sex: Option<i8>,
    pub address: Option<&'a str>,
}

/// Searches in bulk: `sex` 0 or a null address means "not given".
#[derive(Debug, Clone, Copy)]
pub struct Queries<'a> {
    pub family_name: StrCol<'a>,
    pub given_name: StrCol<'a>,
    pub birth_date: &'a [i32],
    pub sex: Option<&'a [i8]>,
    pub address: Option<StrCol<'a>>,
}

/// The outcome of one search of a bulk search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Match(Row),
    Ambiguous(Vec<Row>),
    NotFound,
}

/// The offsets of a text column: 32-bit when its bytes allow, else 64-bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextOffsets {
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Default for TextOffsets {
    fn default() -> Self {
        TextOffsets::I32(vec![0])
    }
}

/// A string column on its way out: `n + 1` offsets from 0, monotonic, ending
/// at `data.len()`; every value is UTF-8 (the bindings rely on it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    pub data: Vec<u8>,
    pub offsets: TextOffsets,
}

impl Texts {
    pub fn value(&self, i: usize) -> &str {
        let (a, b) = match &self.offsets {
            TextOffsets::I32(o) => (o[i] as usize, o[i + 1] as usize),
            TextOffsets::I64(o) => (o[i] as usize, o[i + 1] as usize),
        };
        std::str::from_utf8(&self.data[a..b]).unwrap_or("")
    }
}

/// The items of some rows, column by column. `present[i]` is false where
/// the row was [`NO_ROW`] (the other columns then hold zeros and empty strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gathered {
    pub present: Vec<bool>,
    pub code: Vec<u64>,
    pub family_name: Texts,
    pub given_name: Texts,
    pub address: Texts,
    pub lg_code: Texts,
    pub change_reason: Texts,
    pub birth_date: Vec<i32>,
    pub sex: Vec<i8>,
    pub status: Vec<u8>,
    pub change_date: Vec<i32>,
}

/// A dictionary-encoded text item of [`Looked`] (see [`Index::dict_values`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextItem {
    FamilyName,
    GivenName,
    LgCode,
    ChangeReason,
}

/// Answers to code lookups with their items, built to be handed to Arrow
/// without copying texts: the names, the municipality code and the change
/// reason as ids into the index's dictionaries ([`Index::dict_values`]); only
/// the address (two dictionary entries joined) is copied. Rows not found hold
/// zeros (ids 0, empty addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Looked {
    /// 0 found, 1 retired, 2 not found.
    pub hit: Vec<i8>,
    pub family_name: Vec<i32>,
    pub given_name: Vec<i32>,
    pub lg_code: Vec<i32>,
    pub change_reason: Vec<i32>,
    pub birth_date: Vec<i32>,
    pub sex: Vec<i8>,
    pub status: Vec<u8>,
    pub change_date: Vec<i32>,
    /// The address (place and rest joined), copied: the one text without a
    /// dictionary of its own (empty where not found).
    pub address: Texts,
    /// Where retired (else 0).
    pub new_code: Vec<u64>,
    pub retired_on: Vec<i32>,
    pub found: usize,
    pub retired: usize,
}

#[derive(Default)]
struct Overlay {
    codes: Vec<u64>,
    recs: Vec<Rec>,
    /// code -> Some(overlay row) or None (removed)
    by_code: HashMap<u64, Option<u32>, Fast>,
    /// block hash -> overlay rows (some may be superseded: check `by_code`)
    block: HashMap<u64, Vec<u32>, Fast>,
    retired: HashMap<u64, (u64, i32), Fast>,
    masked: usize,
    live: usize,
}

/// The identity lookup index (see the module documentation).
pub struct Index {
    store_id: String,
    mark: u64,
    hash_mask: u64,
    bits: u32,
    codes: Col<u64>,
    dir: Col<u32>,
    recs: Col<Rec>,
    blk_lo: Col<u32>,
    blk_row: Col<u32>,
    bdir: Col<u32>,
    ret_old: Col<u64>,
    ret_new: Col<u64>,
    ret_on: Col<i32>,
    family: Dict,
    given: Dict,
    place: Dict,
    rest: Dict,
    lg: Dict,
    reason: Dict,
    overlay: Overlay,
}

fn invalid_rows(message: &str, mut rows: Vec<RowError>) -> CoreError {
    rows.sort_by_key(|r| r.row);
    rows.truncate(MAX_BAD);
    CoreError::InvalidRows {
        message: message.into(),
        rows,
    }
}

/// Check the row columns: lengths, strings, codes, sex, status.
fn check_rows(rows: &Rows<'_>, what: &str) -> Result<usize> {
    let n = rows.code.len();
    for (name, len) in [
        ("birth_date", rows.birth_date.len()),
        ("sex", rows.sex.len()),
        ("status", rows.status.len()),
        ("change_date", rows.change_date.len()),
    ] {
        if len != n {
            return Err(CoreError::Invalid(format!(
                "{what}: column {name} has {len} values, code has {n}"
            )));
        }
    }
    if n >= (u32::MAX / 2) as usize {
        return Err(CoreError::Invalid(format!("{what}: too many rows ({n})")));
    }
    let mut bad = Vec::new();
    for (name, col) in [
        ("family_name", &rows.family_name),
        ("given_name", &rows.given_name),
        ("address", &rows.address),
        ("lg_code", &rows.lg_code),
        ("change_reason", &rows.change_reason),
    ] {
        bad.extend(col.check(name, n, false)?);
    }
    if !bad.is_empty() {
        return Err(invalid_rows(&format!("{what}: bad text"), bad));
    }
    let bad: Vec<RowError> = (0..n)
        .into_par_iter()
        .filter_map(|i| {
            let reason = if rows.code[i] >= CODE_LIMIT {
                format!("code {} has more than 11 digits", rows.code[i])
            } else if !matches!(rows.sex[i], 1 | 2 | 9) {
                format!("sex {} is not 1, 2 or 9", rows.sex[i])
            } else if rows.status[i] > 1 {
                format!(
                    "status {} is not 0 (resident) or 1 (removed)",
                    rows.status[i]
                )
            } else if !is_lg_code(rows.lg_code.bytes(i)) {
                format!("lg_code {:?} is not 6 digits", rows.lg_code.str(i))
            } else {
                return None;
            };
            Some(RowError { row: i, reason })
        })
        .take_any(MAX_BAD)
        .collect();
    if !bad.is_empty() {
        return Err(invalid_rows(&format!("{what}: bad values"), bad));
    }
    Ok(n)
}

fn is_lg_code(b: &[u8]) -> bool {
    b.len() == 6 && b.iter().all(u8::is_ascii_digit)
}

fn check_retired(r: &RetiredCodes<'_>) -> Result<()> {
    let m = r.old.len();
    if r.new.len() != m || r.retired_on.len() != m {
        return Err(CoreError::Invalid(format!(
            "retired codes: old has {m} values, new {}, retired_on {}",
            r.new.len(),
            r.retired_on.len()
        )));
    }
    let bad: Vec<RowError> = (0..m)
        .filter(|&i| r.old[i] >= CODE_LIMIT || r.new[i] >= CODE_LIMIT || r.old[i] == r.new[i])
        .take(MAX_BAD)
        .map(|i| RowError {
            row: i,
            reason: format!(
                "retired code {} -> {} is not a code change",
                r.old[i], r.new[i]
            ),
        })
        .collect();
    if !bad.is_empty() {
        return Err(invalid_rows("retired codes: bad values", bad));
    }
    Ok(())
}

fn store_id_ok(s: &str) -> Result<()> {
    if s.len() > STORE_ID_MAX {
        return Err(CoreError::Invalid(format!(
            "store id has {} bytes, at most {STORE_ID_MAX}",
            s.len()
        )));
    }
    Ok(())
}

impl Index {
    /// Build an index (see [`Input`]); parallel. Refuses duplicate codes,
    /// columns of different lengths, nulls, invalid UTF-8 and bad values.
    pub fn build(input: &Input<'_>, keys: &dyn Keys) -> Result<Index> {
        Self::build_masked(input, keys, u64::MAX)
    }

    /// [`Index::build`] with the block hashes masked (tests force collisions
    /// with a narrow mask; the mask is saved with the index).
    #[doc(hidden)]
    pub fn build_masked(input: &Input<'_>, keys: &dyn Keys, hash_mask: u64) -> Result<Index> {
        store_id_ok(input.store_id)?;
        check_retired(&input.retired)?;
        let mut b = Builder::new();
        b.push(&input.rows)?;
        b.finish_masked(&input.retired, input.store_id, input.mark, keys, hash_mask)
    }

    /// Assemble an owned index from rows in code order: the block index.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        store_id: String,
        mark: u64,
        hash_mask: u64,
        bits: u32,
        codes: Vec<u64>,
        dir: Vec<u32>,
        recs: Vec<Rec>,
        ret: Vec<(u64, u64, i32)>,
        dicts: [DictParts; 6],
    ) -> Index {
        let [family, given, place, rest, lg, reason] = dicts.map(Dict::from_parts);
        let hashes: Vec<u64> = recs
            .par_iter()
            .map(|r| {
                block_hash(
                    family.khash(r.family),
                    given.khash(r.given),
                    r.birth,
                    hash_mask,
                )
            })
            .collect();
        let (bdir, border) =
            bucket_sort(&hashes, bits, |h| hash_bucket(h, bits), |h| h & 0xffff_ffff);
        let blk_lo: Vec<u32> = border
            .par_iter()
            .map(|&i| hashes[i as usize] as u32)
            .collect();
        drop(hashes);
        Index {
            store_id,
            mark,
            hash_mask,
            bits,
            codes: codes.into(),
            dir: dir.into(),
            recs: recs.into(),
            blk_lo: blk_lo.into(),
            blk_row: border.into(),
            bdir: bdir.into(),
            ret_old: ret.iter().map(|t| t.0).collect::<Vec<_>>().into(),
            ret_new: ret.iter().map(|t| t.1).collect::<Vec<_>>().into(),
            ret_on: ret.iter().map(|t| t.2).collect::<Vec<_>>().into(),
            family,
            given,
            place,
            rest,
            lg,
            reason,
            overlay: Overlay::default(),
        }
    }

    /// Live rows (base rows not masked by the overlay, plus live overlay rows).
    pub fn len(&self) -> usize {
        self.codes.len() - self.overlay.masked + self.overlay.live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// Name the store state the index reflects (the caller's opaque id, as at
    /// build time: after a delta it names the state the delta brought it to).
    pub fn set_store_id(&mut self, store_id: &str) -> Result<()> {
        store_id_ok(store_id)?;
        self.store_id = store_id.to_owned();
        Ok(())
    }

    pub fn mark(&self) -> u64 {
        self.mark
    }

    /// Codes and retirements the overlay holds (the caller rebuilds or saves
    /// when it grows large).
    pub fn overlay_len(&self) -> usize {
        self.overlay.by_code.len() + self.overlay.retired.len()
    }

    /// Bytes the index occupies: owned buffers, mapped sections, the overlay.
    pub fn memory_bytes(&self) -> u64 {
        let o = &self.overlay;
        self.codes.owned_bytes()
            + self.dir.owned_bytes()
            + self.recs.owned_bytes()
            + self.blk_lo.owned_bytes()
            + self.blk_row.owned_bytes()
            + self.bdir.owned_bytes()
            + self.ret_old.owned_bytes()
            + self.ret_new.owned_bytes()
            + self.ret_on.owned_bytes()
            + [
                &self.family,
                &self.given,
                &self.place,
                &self.rest,
                &self.lg,
                &self.reason,
            ]
            .iter()
            .map(|d| d.memory_bytes())
            .sum::<u64>()
            + (o.codes.capacity() * 8
                + o.recs.capacity() * 24
                + o.by_code.capacity() * 24
                + o.block.capacity() * 40
                + o.retired.capacity() * 32) as u64
    }

    #[inline]
    fn base_find(&self, code: u64) -> Option<usize> {
        if code >= CODE_LIMIT {
            return None;
        }
        let b = code_bucket(code, self.bits);
        find_in_bucket(
            &self.codes,
            self.dir[b] as usize,
            self.dir[b + 1] as usize,
            code,
        )
    }

    /// The answer for each code, in order (parallel for large inputs).
    pub fn lookup(&self, codes: &[u64]) -> Vec<Hit> {
        let mut out = vec![Hit::NotFound; codes.len()];
        if codes.len() < PAR_MIN {
            self.lookup_chunk(codes, &mut out);
        } else {
            out.par_chunks_mut(1 << 13)
                .zip(codes.par_chunks(1 << 13))
                .for_each(|(o, c)| self.lookup_chunk(c, o));
        }
        out
    }

    /// Lookups in groups of 16: the directory entries of the group are
    /// prefetched, then the code runs they point to, then each is resolved,
    /// so the cache misses of a group overlap instead of following one another.
    fn lookup_chunk(&self, codes: &[u64], out: &mut [Hit]) {
        const G: usize = 16;
        let dir: &[u32] = &self.dir;
        let sorted: &[u64] = &self.codes;
        for (cs, os) in codes.chunks(G).zip(out.chunks_mut(G)) {
            let mut bucket = [0usize; G];
            for (b, &c) in bucket.iter_mut().zip(cs) {
                *b = code_bucket(c.min(CODE_LIMIT - 1), self.bits);
                prefetch(dir.as_ptr().wrapping_add(*b));
            }
            let mut range = [(0usize, 0usize); G];
            for (r, &b) in range.iter_mut().zip(&bucket[..cs.len()]) {
                *r = (dir[b] as usize, dir[b + 1] as usize);
                prefetch(sorted.as_ptr().wrapping_add(r.0));
            }
            for ((o, &c), &(lo, hi)) in os.iter_mut().zip(cs).zip(&range) {
                *o = self.resolve(c, lo, hi);
            }
        }
    }

    #[inline]
    fn resolve(&self, code: u64, lo: usize, hi: usize) -> Hit {
        let ov = &self.overlay;
        let mut base = code < CODE_LIMIT;
        if !ov.by_code.is_empty() {
            match ov.by_code.get(&code) {
                Some(Some(r)) => return Hit::Found(self.codes.len() as u32 + r),
                Some(None) => base = false,
                None => {}
            }
        }
        if base {
            if let Some(r) = find_in_bucket(&self.codes, lo, hi, code) {
                return Hit::Found(r as u32);
            }
        }
        if !ov.retired.is_empty() {
            if let Some(&(new, on)) = ov.retired.get(&code) {
                return Hit::Retired { new, on };
            }
        }
        match self.ret_old.binary_search(&code) {
            Ok(i) => Hit::Retired {
                new: self.ret_new[i],
                on: self.ret_on[i],
            },
            Err(_) => Hit::NotFound,
        }
    }

    #[inline]
    fn rec(&self, row: Row) -> (u64, &Rec) {
        let n = self.codes.len();
        let r = row as usize;
        if r < n {
            (self.codes[r], &self.recs[r])
        } else {
            (self.overlay.codes[r - n], &self.overlay.recs[r - n])
        }
    }

    /// Whether a row is live: a base row not masked by the overlay, or the
    /// overlay's current row of its code.
    #[inline]
    fn live(&self, row: Row) -> bool {
        let n = self.codes.len();
        let ov = &self.overlay;
        if (row as usize) < n {
            ov.by_code.is_empty() || !ov.by_code.contains_key(&self.codes[row as usize])
        } else {
            ov.by_code.get(&ov.codes[row as usize - n]) == Some(&Some(row - n as u32))
        }
    }

    /// The address of a row.
    fn address_of<'s>(&'s self, r: &Rec, out: &'s mut String) -> &'s str {
        out.clear();
        out.push_str(std::str::from_utf8(self.place.get(r.place)).unwrap_or(""));
        out.push_str(std::str::from_utf8(self.rest.get(r.rest)).unwrap_or(""));
        out
    }

    /// Rows matching keys exactly, pushed onto `out` in row order. Address
    /// keys are derived for the candidates (few) rather than stored.
    #[allow(clippy::too_many_arguments)]
    fn search_keys(
        &self,
        keys: &dyn Keys,
        fk: &str,
        gk: &str,
        birth: i32,
        sex: Option<i8>,
        ak: Option<&str>,
        out: &mut Vec<Row>,
    ) {
        let h = block_hash(
            xxh3_64(fk.as_bytes()),
            xxh3_64(gk.as_bytes()),
            birth,
            self.hash_mask,
        );
        let (mut abuf, mut kbuf) = (String::new(), String::new());
        let mut matches = |row: Row| -> bool {
            let (_, r) = self.rec(row);
            r.birth == birth
                && sex.is_none_or(|s| r.sex() == s)
                && self.family.key(r.family) == fk.as_bytes()
                && self.given.key(r.given) == gk.as_bytes()
                && ak.is_none_or(|a| {
                    kbuf.clear();
                    keys.address(self.address_of(r, &mut abuf), &mut kbuf);
                    kbuf == a
                })
                && self.live(row)
        };
        let start = out.len();
        let b = hash_bucket(h, self.bits);
        let (lo, hi) = (self.bdir[b] as usize, self.bdir[b + 1] as usize);
        let los = &self.blk_lo[lo..hi];
        let first = los.partition_point(|&x| x < h as u32);
        for (k, &l) in los.iter().enumerate().skip(first) {
            if l != h as u32 {
                break;
            }
            let row = self.blk_row[lo + k];
            if matches(row) {
                out.push(row);
            }
        }
        if let Some(rows) = self.overlay.block.get(&h) {
            let n = self.codes.len() as u32;
            for &r in rows {
                if matches(n + r) {
                    out.push(n + r);
                }
            }
        }
        out[start..].sort_unstable();
        // an overlay row listed twice under one hash (re-added) appears once
        let mut w = start;
        for i in start..out.len() {
            if w == start || out[w - 1] != out[i] {
                out[w] = out[i];
                w += 1;
            }
        }
        out.truncate(w);
    }

    /// Every live row whose keys equal the query's on every item given.
    pub fn search(&self, q: &Query<'_>, keys: &dyn Keys) -> Vec<Row> {
        let (mut fk, mut gk, mut ak) = (String::new(), String::new(), String::new());
        keys.name(q.family_name, &mut fk);
        keys.name(q.given_name, &mut gk);
        let ak = q.address.map(|a| {
            keys.address(a, &mut ak);
            ak
        });
        let mut out = Vec::new();
        self.search_keys(keys, &fk, &gk, q.birth_date, q.sex, ak.as_deref(), &mut out);
        out
    }

    /// [`Index::search`] for each query of the columns, in parallel.
    pub fn search_many(&self, q: &Queries<'_>, keys: &dyn Keys) -> Result<Vec<Found>> {
        let n = q.birth_date.len();
        let mut bad = q.family_name.check("family_name", n, false)?;
        bad.extend(q.given_name.check("given_name", n, false)?);
        if let Some(a) = &q.address {
            bad.extend(a.check("address", n, true)?);
        }
        if let Some(s) = q.sex {
            if s.len() != n {
                return Err(CoreError::Invalid(format!(
                    "queries: sex has {} values, birth_date {n}",
                    s.len()
                )));
            }
            bad.extend(
                s.iter()
                    .enumerate()
                    .filter(|(_, &x)| !matches!(x, 0 | 1 | 2 | 9))
                    .take(MAX_BAD)
                    .map(|(i, x)| RowError {
                        row: i,
                        reason: format!("sex {x} is not 1, 2, 9 or 0 (not given)"),
                    }),
            );
        }
        if !bad.is_empty() {
            return Err(invalid_rows("queries: bad values", bad));
        }
        struct Bufs(String, String, String, Vec<Row>);
        Ok((0..n)
            .into_par_iter()
            .with_min_len(256)
            .map_init(
                || Bufs(String::new(), String::new(), String::new(), Vec::new()),
                |Bufs(fk, gk, ak, rows), i| {
                    fk.clear();
                    gk.clear();
                    ak.clear();
                    rows.clear();
                    keys.name(q.family_name.str(i), fk);
                    keys.name(q.given_name.str(i), gk);
                    let a = match &q.address {
                        Some(col) if !col.is_null(i) => {
                            keys.address(col.str(i), ak);
                            Some(ak.as_str())
                        }
                        _ => None,
                    };
                    let sex = q.sex.map(|s| s[i]).filter(|&s| s != 0);
                    self.search_keys(keys, fk, gk, q.birth_date[i], sex, a, rows);
                    match rows.len() {
                        0 => Found::NotFound,
                        1 => Found::Match(rows[0]),
                        _ => Found::Ambiguous(rows.clone()),
                    }
                },
            )
            .collect())
    }

    /// The items of the rows ([`NO_ROW`]: a null output row). Panics on a row
    /// number that is neither [`NO_ROW`] nor a row of this index.
    ///
    /// Two passes over the rows, in chunks on every core: the first reads each
    /// row's code and record once (prefetched in groups of 16), writes the
    /// fixed-width columns and counts each chunk's text bytes; the second
    /// (every chunk's place in every text column then known) writes the texts.
    pub fn gather(&self, rows: &[Row]) -> Gathered {
        const CH: usize = GATHER_CHUNK;
        let n = rows.len();
        let seq = n < 2 * CH;
        let cols: [&[Part<'_>]; 5] = [
            &[(&self.family, |r| r.family)],
            &[(&self.given, |r| r.given)],
            &[(&self.place, |r| r.place), (&self.rest, |r| r.rest)],
            &[(&self.lg, Rec::lg)],
            &[(&self.reason, Rec::reason)],
        ];
        let mut code = vec![0u64; n];
        let mut birth = vec![0i32; n];
        let mut sex = vec![0i8; n];
        let mut status = vec![0u8; n];
        let mut change = vec![0i32; n];
        let mut recs = vec![Rec::default(); n];
        let first = |rows: &[Row],
                     code: &mut [u64],
                     birth: &mut [i32],
                     sex: &mut [i8],
                     status: &mut [u8],
                     change: &mut [i32],
                     out: &mut [Rec]|
         -> [i64; 5] {
            let mut sums = [0i64; 5];
            for (g, rg) in rows.chunks(16).enumerate() {
                for &r in rg {
                    self.prefetch_row(r);
                }
                for (j, &r) in rg.iter().enumerate() {
                    if r == NO_ROW {
                        continue;
                    }
                    let i = g * 16 + j;
                    let (c, rec) = self.rec(r);
                    code[i] = c;
                    birth[i] = rec.birth;
                    sex[i] = rec.sex();
                    status[i] = rec.status();
                    change[i] = rec.change_date;
                    out[i] = *rec;
                    for (sum, parts) in sums.iter_mut().zip(&cols) {
                        for (d, id) in parts.iter() {
                            *sum += d.get(id(rec)).len() as i64;
                        }
                    }
                }
            }
            sums
        };
        let sums: Vec<[i64; 5]> = if seq {
            vec![first(
                rows,
                &mut code,
                &mut birth,
                &mut sex,
                &mut status,
                &mut change,
                &mut recs,
            )]
        } else {
            rows.par_chunks(CH)
                .zip(code.par_chunks_mut(CH))
                .zip(birth.par_chunks_mut(CH))
                .zip(sex.par_chunks_mut(CH))
                .zip(status.par_chunks_mut(CH))
                .zip(change.par_chunks_mut(CH))
                .zip(recs.par_chunks_mut(CH))
                .map(|((((((r, c), b), x), st), ch), o)| first(r, c, b, x, st, ch, o))
                .collect()
        };
        let chunk = if seq { n.max(1) } else { CH };
        let [family_name, given_name, address, lg_code, change_reason] =
            gather_texts(cols, rows, &recs, &sums, chunk, seq);
        Gathered {
            present: rows.iter().map(|&r| r != NO_ROW).collect(),
            code,
            family_name,
            given_name,
            address,
            lg_code,
            change_reason,
            birth_date: birth,
            sex,
            status,
            change_date: change,
        }
    }

    /// The entries of a dictionary-encoded item of [`Looked`]: bytes and
    /// offsets (`len + 1`, from the first entry's start), shared with the
    /// index (copied only when the overlay added entries).
    pub fn dict_values(&self, item: TextItem) -> (Shared<u8>, Shared<u64>) {
        match item {
            TextItem::FamilyName => self.family.values(),
            TextItem::GivenName => self.given.values(),
            TextItem::LgCode => self.lg.values(),
            TextItem::ChangeReason => self.reason.values(),
        }
    }

    /// [`Index::lookup`] and the items of the rows found in one pass, in chunks
    /// on every core, without copying any text but the address (see [`Looked`]).
    /// Output columns are allocated zeroed (fresh pages from the system, not
    /// filled) and each row's slots written once; the address's bytes in a
    /// second pass over the chunks once each chunk's place is known.
    pub fn lookup_items(&self, codes: &[u64]) -> Looked {
        const CH: usize = 1 << 16;
        let n = codes.len();
        let mut o = Looked {
            hit: fresh_vec(n),
            family_name: fresh_vec(n),
            given_name: fresh_vec(n),
            lg_code: fresh_vec(n),
            change_reason: fresh_vec(n),
            birth_date: fresh_vec(n),
            sex: fresh_vec(n),
            status: fresh_vec(n),
            change_date: fresh_vec(n),
            address: Texts::default(),
            new_code: fresh_vec(n),
            retired_on: fresh_vec(n),
            found: 0,
            retired: 0,
        };
        struct Piece<'a> {
            codes: &'a [u64],
            hit: &'a mut [i8],
            ids: [&'a mut [i32]; 4],
            birth: &'a mut [i32],
            sex: &'a mut [i8],
            status: &'a mut [u8],
            change: &'a mut [i32],
            address: &'a mut [[u32; 2]],
            new_code: &'a mut [u64],
            retired_on: &'a mut [i32],
        }
        // the address's two entries per row, then its bytes in a second pass
        // (each chunk's place in them known)
        let mut parts_of: Vec<[u32; 2]> = fresh_vec(n);
        let mut pieces = Vec::with_capacity(n.div_ceil(CH));
        {
            let mut hit = o.hit.chunks_mut(CH);
            let mut f = o.family_name.chunks_mut(CH);
            let mut g = o.given_name.chunks_mut(CH);
            let mut l = o.lg_code.chunks_mut(CH);
            let mut r = o.change_reason.chunks_mut(CH);
            let mut b = o.birth_date.chunks_mut(CH);
            let mut x = o.sex.chunks_mut(CH);
            let mut st = o.status.chunks_mut(CH);
            let mut ch = o.change_date.chunks_mut(CH);
            let mut a = parts_of.chunks_mut(CH);
            let mut nc = o.new_code.chunks_mut(CH);
            let mut ro = o.retired_on.chunks_mut(CH);
            for codes in codes.chunks(CH) {
                let (Some(hit), Some(f), Some(g), Some(l), Some(r)) =
                    (hit.next(), f.next(), g.next(), l.next(), r.next())
                else {
                    break;
                };
                let (Some(birth), Some(sex), Some(status), Some(change)) =
                    (b.next(), x.next(), st.next(), ch.next())
                else {
                    break;
                };
                let (Some(address), Some(new_code), Some(retired_on)) =
                    (a.next(), nc.next(), ro.next())
                else {
                    break;
                };
                pieces.push(Piece {
                    codes,
                    hit,
                    ids: [f, g, l, r],
                    birth,
                    sex,
                    status,
                    change,
                    address,
                    new_code,
                    retired_on,
                });
            }
        }
        let fill = |p: Piece<'_>| -> (i64, usize, usize) {
            const B: usize = 1024;
            let mut hits = [Hit::NotFound; B];
            let mut bytes = 0i64;
            let (mut found, mut retired) = (0, 0);
            let recs: &[Rec] = &self.recs;
            let ahead = |h: &Hit| {
                if let Hit::Found(r) = *h {
                    prefetch(recs.as_ptr().wrapping_add(r as usize));
                }
            };
            for (k, cs) in p.codes.chunks(B).enumerate() {
                let hs = &mut hits[..cs.len()];
                self.lookup_chunk(cs, hs);
                hs.iter().take(16).for_each(ahead);
                for j in 0..hs.len() {
                    if let Some(h) = hs.get(j + 16) {
                        ahead(h);
                    }
                    let i = k * B + j;
                    match hs[j] {
                        Hit::Found(row) => {
                            found += 1;
                            let (_, rec) = self.rec(row);
                            p.ids[0][i] = rec.family as i32;
                            p.ids[1][i] = rec.given as i32;
                            p.ids[2][i] = rec.lg() as i32;
                            p.ids[3][i] = rec.reason() as i32;
                            p.birth[i] = rec.birth;
                            p.sex[i] = rec.sex();
                            p.status[i] = rec.status();
                            p.change[i] = rec.change_date;
                            p.address[i] = [rec.place, rec.rest];
                            bytes += (self.place.get(rec.place).len()
                                + self.rest.get(rec.rest).len())
                                as i64;
                        }
                        Hit::Retired { new, on } => {
                            retired += 1;
                            p.hit[i] = 1;
                            p.new_code[i] = new;
                            p.retired_on[i] = on;
                        }
                        Hit::NotFound => p.hit[i] = 2,
                    }
                }
            }
            (bytes, found, retired)
        };
        let seq = n < PAR_MIN;
        let parts: Vec<(i64, usize, usize)> = if seq {
            pieces.into_iter().map(fill).collect()
        } else {
            pieces.into_par_iter().map(fill).collect()
        };
        o.found = parts.iter().map(|p| p.1).sum();
        o.retired = parts.iter().map(|p| p.2).sum();
        let sums: Vec<i64> = parts.iter().map(|p| p.0).collect();
        o.address = self.address_texts(&o.hit, &parts_of, &sums, CH, seq);
        o
    }

    /// The addresses of [`Index::lookup_items`]: row `i` (when `hit[i]` is 0)
    /// joins `parts[i]` (place and rest); `sums` holds each chunk's bytes, so
    /// every chunk writes its offsets and bytes in place, in parallel.
    fn address_texts(
        &self,
        hit: &[i8],
        parts: &[[u32; 2]],
        sums: &[i64],
        chunk: usize,
        seq: bool,
    ) -> Texts {
        let n = hit.len();
        let total: i64 = sums.iter().sum();
        let mut data: Vec<u8> = fresh_vec(total as usize);
        let mut starts = Vec::with_capacity(sums.len());
        let mut rest: &mut [u8] = &mut data;
        let mut at = 0i64;
        for &s in sums {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(s as usize);
            starts.push((at, head));
            rest = tail;
            at += s;
        }
        let dicts = [&self.place, &self.rest];
        // one chunk: its bytes, and its end offsets through `end(i, offset)`
        let write = |c: usize, base: i64, dst: &mut [u8], end: &mut dyn FnMut(usize, i64)| {
            let a = c * chunk;
            let b = (a + chunk).min(n);
            let mut w = 0usize;
            for i in a..b {
                if hit[i] == 0 {
                    for (d, &id) in dicts.iter().zip(&parts[i]) {
                        // short entries: one fixed-size copy whose tail the next
                        // value overwrites, instead of a call to memcpy
                        let (src, len) = d.get_wide(id);
                        let out = &mut dst[w..];
                        if len <= WIDE && src.len() >= WIDE && out.len() >= WIDE {
                            out[..WIDE].copy_from_slice(&src[..WIDE]);
                        } else {
                            out[..len].copy_from_slice(&src[..len]);
                        }
                        w += len;
                    }
                }
                end(i - a, base + w as i64);
            }
        };
        let offsets = if total <= i64::from(i32::MAX) {
            let mut offs: Vec<i32> = fresh_vec(n + 1);
            let jobs: Vec<_> = starts
                .into_iter()
                .zip(offs[1..].chunks_mut(chunk))
                .enumerate()
                .collect();
            let run = |(c, ((base, dst), o)): AddressJob<'_, i32>| {
                write(c, base, dst, &mut |i, e| o[i] = e as i32)
            };
            if seq {
                jobs.into_iter().for_each(run);
            } else {
                jobs.into_par_iter().for_each(run);
            }
            TextOffsets::I32(offs)
        } else {
            let mut offs: Vec<i64> = fresh_vec(n + 1);
            let jobs: Vec<_> = starts
                .into_iter()
                .zip(offs[1..].chunks_mut(chunk))
                .enumerate()
                .collect();
            let run = |(c, ((base, dst), o)): AddressJob<'_, i64>| {
                write(c, base, dst, &mut |i, e| o[i] = e)
            };
            if seq {
                jobs.into_iter().for_each(run);
            } else {
                jobs.into_par_iter().for_each(run);
            }
            TextOffsets::I64(offs)
        };
        Texts { data, offsets }
    }

    #[inline]
    fn prefetch_row(&self, row: Row) {
        let n = self.codes.len();
        if (row as usize) < n {
            prefetch(self.codes.as_ptr().wrapping_add(row as usize));
            prefetch(self.recs.as_ptr().wrapping_add(row as usize));
        }
    }

    /// Apply a packet's changes in the overlay: `rows` replace (or add) the
    /// rows of their codes, `removed` codes leave the index, `retired` codes
    /// answer `Retired` from now on, and the index reflects `mark`.
    /// Checked first: nothing changes when anything is refused.
    pub fn apply_delta(
        &mut self,
        rows: &Rows<'_>,
        removed: &[u64],
        retired: &RetiredCodes<'_>,
        mark: u64,
        keys: &dyn Keys,
    ) -> Result<()> {
        let n = check_rows(rows, "delta rows")?;
        check_retired(retired)?;
        let mut seen: HashMap<u64, usize, Fast> = HashMap::default();
        let mut bad = Vec::new();
        for (i, &c) in rows.code.iter().enumerate() {
            if seen.insert(c, i).is_some() {
                bad.push(RowError {
                    row: i,
                    reason: format!("code {c:011} appears more than once"),
                });
            }
        }
        for (i, &c) in removed.iter().enumerate() {
            if seen.contains_key(&c) {
                bad.push(RowError {
                    row: i,
                    reason: format!("removed code {c:011} is also a delta row"),
                });
            }
        }
        for (i, &c) in retired.old.iter().enumerate() {
            if seen.contains_key(&c) {
                bad.push(RowError {
                    row: i,
                    reason: format!("retired code {c:011} is also a delta row"),
                });
            }
        }
        if !bad.is_empty() {
            return Err(invalid_rows("delta: conflicts", bad));
        }
        // new dictionary entries must fit the packed ids
        let mut lg_new = std::collections::HashSet::new();
        let mut reason_new = std::collections::HashSet::new();
        for i in 0..n {
            lg_new.insert(rows.lg_code.str(i));
            reason_new.insert(rows.change_reason.str(i));
        }
        if self.lg.len() + lg_new.len() > LG_MAX
            || self.reason.len() + reason_new.len() > REASON_MAX
        {
            return Err(CoreError::Invalid(
                "delta: too many distinct municipality codes or change reasons".into(),
            ));
        }
        // apply
        let (mut fk, mut gk) = (String::new(), String::new());
        for i in 0..n {
            let code = rows.code[i];
            fk.clear();
            gk.clear();
            keys.name(rows.family_name.str(i), &mut fk);
            keys.name(rows.given_name.str(i), &mut gk);
            let a = rows.address.str(i);
            let (pa, ra) = a.split_at(address_split(a.as_bytes()));
            let family = self.family.ext_id(rows.family_name.str(i), Some(&fk));
            let given = self.given.ext_id(rows.given_name.str(i), Some(&gk));
            let place = self.place.ext_id(pa, None);
            let rest = self.rest.ext_id(ra, None);
            let lg = self.lg.ext_id(rows.lg_code.str(i), None);
            let reason = self.reason.ext_id(rows.change_reason.str(i), None);
            let rec = Rec {
                family,
                given,
                place,
                rest,
                birth: rows.birth_date[i],
                change_date: rows.change_date[i],
                packed: Rec::pack(lg, reason, rows.sex[i], rows.status[i]),
            };
            let h = block_hash(
                self.family.khash(family),
                self.given.khash(given),
                rec.birth,
                self.hash_mask,
            );
            let ov = &mut self.overlay;
            let r = ov.recs.len() as u32;
            ov.recs.push(rec);
            ov.codes.push(code);
            ov.block.entry(h).or_default().push(r);
            self.set_code(code, Some(r));
            self.overlay.retired.remove(&code);
        }
        for &c in removed {
            self.set_code(c, None);
        }
        for i in 0..retired.old.len() {
            let old = retired.old[i];
            self.set_code(old, None);
            self.overlay
                .retired
                .insert(old, (retired.new[i], retired.retired_on[i]));
        }
        self.mark = mark;
        Ok(())
    }

    fn set_code(&mut self, code: u64, to: Option<u32>) {
        let in_base = self.base_find(code).is_some();
        let ov = &mut self.overlay;
        let before = ov.by_code.insert(code, to);
        match before {
            None if in_base => ov.masked += 1,
            Some(Some(_)) => ov.live -= 1,
            _ => {}
        }
        if to.is_some() {
            ov.live += 1;
        }
        if before.is_none() && !in_base && to.is_none() {
            // nothing to remove: no need to remember the code
            ov.by_code.remove(&code);
        }
    }

    /// The base and overlay as one new owned index (row numbers change).
    fn folded(&self) -> Index {
        let ov = &self.overlay;
        let n = self.codes.len();
        let mut added: Vec<(u64, u32)> = ov
            .by_code
            .iter()
            .filter_map(|(&c, r)| r.map(|r| (c, r)))
            .collect();
        added.sort_unstable();
        let total = self.len();
        let mut codes = Vec::with_capacity(total);
        let mut recs = Vec::with_capacity(total);
        let mut j = 0;
        let masked = |c: u64| !ov.by_code.is_empty() && ov.by_code.contains_key(&c);
        for i in 0..n {
            let c = self.codes[i];
            while j < added.len() && added[j].0 < c {
                codes.push(added[j].0);
                recs.push(ov.recs[added[j].1 as usize]);
                j += 1;
            }
            if !masked(c) {
                codes.push(c);
                recs.push(self.recs[i]);
            }
        }
        for &(c, r) in &added[j..] {
            codes.push(c);
            recs.push(ov.recs[r as usize]);
        }
        let bits = dir_bits(codes.len());
        let mut dir = vec![0u32; (1 << bits) + 1];
        for &c in &codes {
            dir[code_bucket(c, bits) + 1] += 1;
        }
        for i in 0..(1 << bits) {
            dir[i + 1] += dir[i];
        }
        let mut ret: HashMap<u64, (u64, i32), Fast> = (0..self.ret_old.len())
            .map(|i| (self.ret_old[i], (self.ret_new[i], self.ret_on[i])))
            .collect();
        ret.extend(ov.retired.iter().map(|(&k, &v)| (k, v)));
        let mut ret: Vec<(u64, u64, i32)> = ret.into_iter().map(|(k, (a, b))| (k, a, b)).collect();
        ret.sort_unstable_by_key(|t| t.0);
        Self::finish(
            self.store_id.clone(),
            self.mark,
            self.hash_mask,
            bits,
            codes,
            dir,
            recs,
            ret,
            [
                self.family.folded(true),
                self.given.folded(true),
                self.place.folded(false),
                self.rest.folded(false),
                self.lg.folded(false),
                self.reason.folded(false),
            ],
        )
    }

    /// Fold the overlay into the base now (row numbers change).
    pub fn fold(&mut self) {
        if self.overlay_len() > 0 || self.has_ext() {
            *self = self.folded();
        }
    }

    fn has_ext(&self) -> bool {
        [
            &self.family,
            &self.given,
            &self.place,
            &self.rest,
            &self.lg,
            &self.reason,
        ]
        .iter()
        .any(|d| d.ext.offs.len() > 1)
    }

    // -----------------------------------------------------------------------
    // persistence

    fn sections(&self) -> Vec<&[u8]> {
        use bytemuck::cast_slice as b;
        let mut s: Vec<&[u8]> = vec![
            b(&self.codes),
            b(&self.dir),
            b(&self.recs),
            b(&self.blk_lo),
            b(&self.blk_row),
            b(&self.bdir),
            b(&self.ret_old),
            b(&self.ret_new),
            b(&self.ret_on),
        ];
        for d in [
            &self.family,
            &self.given,
            &self.place,
            &self.rest,
            &self.lg,
            &self.reason,
        ] {
            s.extend([
                b(&d.bytes),
                b(&d.offs),
                b(&d.kbytes),
                b(&d.koffs),
                b(&d.khash),
            ]);
        }
        s
    }

    /// Write the index to `path` atomically (a temporary beside it, synced,
    /// renamed; mode 0600). A non-empty overlay is folded in first, so the
    /// file reflects base + overlay and the current mark (row numbers change).
    pub fn save(&mut self, path: &Path) -> Result<()> {
        if cfg!(target_endian = "big") {
            return Err(CoreError::Invalid(
                "index files are little-endian only".into(),
            ));
        }
        self.fold();
        let sections = self.sections();
        let sums: Vec<u64> = sections.par_iter().map(|s| section_hash(s)).collect();
        let mut header = vec![0u8; FIXED];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(KIND);
        header[16..20].copy_from_slice(&VERSION.to_le_bytes());
        header[20..24].copy_from_slice(&(SECTIONS as u32).to_le_bytes());
        header[24..32].copy_from_slice(&(self.codes.len() as u64).to_le_bytes());
        header[32..40].copy_from_slice(&self.mark.to_le_bytes());
        header[40..48].copy_from_slice(&self.hash_mask.to_le_bytes());
        header[48..52].copy_from_slice(&self.bits.to_le_bytes());
        header[52..56].copy_from_slice(&(self.store_id.len() as u32).to_le_bytes());
        header[56..56 + self.store_id.len()].copy_from_slice(self.store_id.as_bytes());
        let table_end = FIXED + 24 * SECTIONS + 8;
        let mut at = table_end.next_multiple_of(ALIGN);
        let mut places = Vec::with_capacity(SECTIONS);
        for (s, sum) in sections.iter().zip(&sums) {
            places.push(at);
            header.extend_from_slice(&(at as u64).to_le_bytes());
            header.extend_from_slice(&(s.len() as u64).to_le_bytes());
            header.extend_from_slice(&sum.to_le_bytes());
            at = (at + s.len()).next_multiple_of(ALIGN);
        }
        let hsum = xxh3_64(&header);
        header.extend_from_slice(&hsum.to_le_bytes());
        crate::container::write_atomic(path, |w| {
            let mut write = || -> std::io::Result<()> {
                w.write_all(&header)?;
                let mut pos = header.len();
                let zeros = [0u8; ALIGN];
                for (s, &place) in sections.iter().zip(&places) {
                    w.write_all(&zeros[..place - pos])?;
                    w.write_all(s)?;
                    pos = place + s.len();
                }
                Ok(())
            };
            write().at("write", path)
        })
    }

    /// Open a saved index: memory-mapped and used in place after every check
    /// (header, per-section checksums in parallel, structure). Anything
    /// wrong is [`CoreError::Corrupt`].
    pub fn open(path: &Path) -> Result<Index> {
        if cfg!(target_endian = "big") {
            return Err(CoreError::Invalid(
                "index files are little-endian only".into(),
            ));
        }
        let file = open_regular(path).at("read", path)?;
        let len = file.metadata().at("read", path)?.len();
        let corrupt = |m: String| CoreError::Corrupt(format!("{}: {m}", path.display()));
        if len < FIXED as u64 {
            if len >= 16 && &read_head(&file)?[..8] != MAGIC {
                return Err(corrupt("not a jukicore file (bad magic)".into()));
            }
            return Err(corrupt("file is truncated (shorter than a header)".into()));
        }
        // SAFETY: a private read-only mapping of a regular file. Index files are
        // only ever replaced by a rename (never rewritten in place), so the mapped
        // bytes do not change under us unless someone writes into the file
        // directly, which the 0600 mode reserves to its owner.
        let map = unsafe { Mmap::map(&file) }.at("read", path)?;
        Self::from_map(Arc::new(map)).map_err(|e| match e {
            CoreError::Corrupt(m) => corrupt(m),
            other => other,
        })
    }

    fn from_map(map: Arc<Mmap>) -> Result<Index> {
        let bad = |m: &str| Err(CoreError::Corrupt(m.to_string()));
        let m: &[u8] = &map;
        let u32_at = |i: usize| u32::from_le_bytes(m[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(m[i..i + 8].try_into().unwrap());
        if &m[..8] != MAGIC {
            return bad("not a jukicore file (bad magic)");
        }
        if &m[8..16] != KIND {
            return bad(&format!(
                "file holds {:?}, expected an identity index {:?}",
                String::from_utf8_lossy(&m[8..16]).trim_end(),
                String::from_utf8_lossy(KIND)
            ));
        }
        let version = u32_at(16);
        if version != VERSION {
            return bad(&format!(
                "identity index format version {version} is not supported (this build reads {VERSION})"
            ));
        }
        if u32_at(20) as usize != SECTIONS {
            return bad("header is corrupted (section count)");
        }
        let table_end = FIXED + 24 * SECTIONS;
        if m.len() < table_end + 8 {
            return bad("file is truncated (section table)");
        }
        if xxh3_64(&m[..table_end]) != u64_at(table_end) {
            return bad("header checksum mismatch: the file is corrupted");
        }
        let n = u64_at(24) as usize;
        let mark = u64_at(32);
        let hash_mask = u64_at(40);
        let bits = u32_at(48);
        let sid_len = u32_at(52) as usize;
        if !(1..=26).contains(&bits) || sid_len > STORE_ID_MAX || n >= (u32::MAX / 2) as usize {
            return bad("header is corrupted (fields out of range)");
        }
        let Ok(store_id) = std::str::from_utf8(&m[56..56 + sid_len]) else {
            return bad("header is corrupted (store id)");
        };
        let mut ranges = Vec::with_capacity(SECTIONS);
        let mut prev_end = table_end + 8;
        for i in 0..SECTIONS {
            let e = FIXED + 24 * i;
            let (off, len, sum) = (u64_at(e), u64_at(e + 8), u64_at(e + 16));
            let end = off.checked_add(len);
            match end {
                Some(end) if off % 8 == 0 && off >= prev_end as u64 && end <= m.len() as u64 => {
                    ranges.push((off as usize, end as usize, sum));
                    prev_end = end as usize;
                }
                _ => return bad("file is truncated or its section table is corrupted"),
            }
        }
        if m.len() != prev_end {
            return bad("file is longer than its sections");
        }
        // the padding between sections is zero (every byte of the file is checked)
        let mut gap_start = table_end + 8;
        for &(s, e, _) in &ranges {
            if m[gap_start..s].iter().any(|&b| b != 0) {
                return bad("padding between sections is corrupted");
            }
            gap_start = e;
        }
        let failed = ranges
            .par_iter()
            .position_any(|&(s, e, sum)| section_hash(&m[s..e]) != sum);
        if let Some(i) = failed {
            return bad(&format!(
                "checksum mismatch in section {i}: the file is corrupted"
            ));
        }
        fn col<T: Pod>(map: &Arc<Mmap>, r: Option<&(usize, usize, u64)>) -> Result<Col<T>> {
            let &(s, e, _) = r.ok_or_else(|| CoreError::Corrupt("missing section".into()))?;
            let slice: &[T] = bytemuck::try_cast_slice(&map[s..e]).map_err(|_| {
                CoreError::Corrupt("a section's length or alignment does not fit its type".into())
            })?;
            Ok(Col::Map {
                _map: map.clone(),
                ptr: slice.as_ptr(),
                len: slice.len(),
            })
        }
        let mut it = ranges.iter();
        let codes: Col<u64> = col(&map, it.next())?;
        let dir: Col<u32> = col(&map, it.next())?;
        let recs: Col<Rec> = col(&map, it.next())?;
        let blk_lo: Col<u32> = col(&map, it.next())?;
        let blk_row: Col<u32> = col(&map, it.next())?;
        let bdir: Col<u32> = col(&map, it.next())?;
        let ret_old: Col<u64> = col(&map, it.next())?;
        let ret_new: Col<u64> = col(&map, it.next())?;
        let ret_on: Col<i32> = col(&map, it.next())?;
        let mut dict = |keyed: bool| -> Result<Dict> {
            let d = Dict {
                bytes: col(&map, it.next())?,
                offs: col(&map, it.next())?,
                kbytes: col(&map, it.next())?,
                koffs: col(&map, it.next())?,
                khash: col(&map, it.next())?,
                ext: DictExt::default(),
            };
            check_dict(&d, keyed)?;
            Ok(d)
        };
        let family = dict(true)?;
        let given = dict(true)?;
        let place = dict(false)?;
        let rest = dict(false)?;
        let lg = dict(false)?;
        let reason = dict(false)?;
        let idx = Index {
            store_id: store_id.to_owned(),
            mark,
            hash_mask,
            bits,
            codes,
            dir,
            recs,
            blk_lo,
            blk_row,
            bdir,
            ret_old,
            ret_new,
            ret_on,
            family,
            given,
            place,
            rest,
            lg,
            reason,
            overlay: Overlay::default(),
        };
        idx.check_structure(n)?;
        Ok(idx)
    }

    /// Every invariant a lookup, a search or a gather relies on to stay in
    /// bounds (and to answer correctly): checked at open, in parallel.
    fn check_structure(&self, n: usize) -> Result<()> {
        let bad = |m: &str| Err(CoreError::Corrupt(format!("inconsistent index: {m}")));
        let nb = 1usize << self.bits;
        if self.codes.len() != n
            || self.recs.len() != n
            || self.blk_lo.len() != n
            || self.blk_row.len() != n
            || self.dir.len() != nb + 1
            || self.bdir.len() != nb + 1
        {
            return bad("section sizes do not match the row count");
        }
        let m = self.ret_old.len();
        if self.ret_new.len() != m || self.ret_on.len() != m {
            return bad("retired code sections differ in length");
        }
        let dir_ok =
            |d: &[u32]| d[0] == 0 && d[nb] as usize == n && d.par_windows(2).all(|w| w[0] <= w[1]);
        if !dir_ok(&self.dir) || !dir_ok(&self.bdir) {
            return bad("a directory is not monotonic");
        }
        let codes = &self.codes;
        let codes_ok = (0..n)
            .into_par_iter()
            .with_min_len(1 << 16)
            .all(|i| codes[i] < CODE_LIMIT && (i == 0 || codes[i - 1] < codes[i]))
            && (0..nb).into_par_iter().with_min_len(1 << 12).all(|b| {
                (self.dir[b]..self.dir[b + 1])
                    .all(|i| code_bucket(codes[i as usize], self.bits) == b)
            });
        if !codes_ok {
            return bad("codes are not sorted or not under their directory");
        }
        if !self.ret_old.windows(2).all(|w| w[0] < w[1]) {
            return bad("retired codes are not sorted");
        }
        let (nf, ng, np, nrest, nl, nr) = (
            self.family.len() as u32,
            self.given.len() as u32,
            self.place.len() as u32,
            self.rest.len() as u32,
            self.lg.len() as u32,
            self.reason.len() as u32,
        );
        let recs_ok = self.recs.par_iter().with_min_len(1 << 16).all(|r| {
            r.family < nf
                && r.given < ng
                && r.place < np
                && r.rest < nrest
                && r.lg() < nl
                && r.reason() < nr
                && (r.packed >> 27) & 3 != 3
                && r.packed >> 30 == 0
        });
        if !recs_ok {
            return bad("a row refers to a missing dictionary entry");
        }
        if !self
            .blk_row
            .par_iter()
            .with_min_len(1 << 16)
            .all(|&r| (r as usize) < n)
        {
            return bad("a block entry refers to a missing row");
        }
        Ok(())
    }
}

/// A dictionary read from a file: offsets monotonic within its bytes,
/// entries UTF-8, keys (when keyed) one per entry.
fn check_dict(d: &Dict, keyed: bool) -> Result<()> {
    let bad = |m: &str| {
        Err(CoreError::Corrupt(format!(
            "inconsistent index dictionary: {m}"
        )))
    };
    let offsets_ok = |offs: &[u64], bytes: &[u8]| -> bool {
        offs.first() == Some(&0)
            && *offs.last().unwrap() as usize == bytes.len()
            && offs.par_windows(2).all(|w| w[0] <= w[1])
    };
    if !offsets_ok(&d.offs, &d.bytes) {
        return bad("entry offsets");
    }
    let Ok(text) = simdutf8::basic::from_utf8(&d.bytes) else {
        return bad("entries are not UTF-8");
    };
    if !d
        .offs
        .par_iter()
        .all(|&o| text.is_char_boundary(o as usize))
    {
        return bad("an entry splits a character");
    }
    if keyed {
        if !offsets_ok(&d.koffs, &d.kbytes)
            || d.koffs.len() != d.offs.len()
            || d.khash.len() + 1 != d.offs.len()
        {
            return bad("keys");
        }
    } else if !(d.kbytes.is_empty() && d.koffs.is_empty() && d.khash.is_empty()) {
        return bad("keys of an unkeyed dictionary");
    }
    Ok(())
}

/// A section's checksum: xxh3 of the xxh3 of its 64 MiB chunks (so a big
/// section is verified by every core).
fn section_hash(bytes: &[u8]) -> u64 {
    const CHUNK: usize = 64 << 20;
    let sums: Vec<u64> = bytes.par_chunks(CHUNK).map(xxh3_64).collect();
    xxh3_64(bytemuck::cast_slice(&sums))
}

fn read_head(file: &File) -> Result<[u8; 16]> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 16];
    file.read_exact_at(&mut b, 0)?;
    Ok(b)
}

fn open_regular(path: &Path) -> std::io::Result<File> {
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests;
