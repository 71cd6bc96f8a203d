//! My Number (個人番号) issuance at the center.
//!
//! Construction. The 11-digit body of a resident's number is derived from
//! their resident code by a keyed pseudo-random function held by the center:
//!
//! ```text
//! tag     = HMAC-SHA-256(key, "jukicore/my-number/v1" || 0x00 || code (u64 BE) || k (u32 BE))
//! body    = the first of the four 64-bit big-endian words of tag that is below
//!           L = floor(2^64 / 10^11) * 10^11, reduced mod 10^11 (no bias);
//!           none below L (probability ~ 2^-110): counter k is skipped
//! number  = body * 10 + check digit (DESIGN.md section 3)
//! ```
//!
//! `k` starts at 0 and is raised while the derived number was ever issued
//! before (to anyone, including numbers retired after a leak), so every number
//! is unique forever. Without the key, HMAC is a pseudo-random function: a
//! number cannot be computed from a code, nor a code from a number. The
//! issuer keeps the set of every number ever issued, the set of resident codes
//! holding one, and the set of retired numbers; it never stores the mapping,
//! which the key recomputes: a replacement request names the leaked number,
//! and the issuer checks it was derived for that code before retiring it.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use rayon::prelude::*;
use sha2::Sha256;

use crate::checkdigit::{self, Kind};
use crate::codeset::CodeSet;
use crate::container::{self, Section};
use crate::error::{CoreError, Result, RowError};

const KIND: &[u8; 8] = b"MYNUMISS";
const VERSION: u32 = 1;
const DOMAIN: &[u8] = b"jukicore/my-number/v1\x00";
const BODY_LIMIT: u64 = 100_000_000_000;
const ACCEPT_BELOW: u64 = (u64::MAX / BODY_LIMIT) * BODY_LIMIT;
/// How many counters a replacement searches for the leaked number.
const MAX_COUNTER_SEARCH: u32 = 4096;
pub const MIN_KEY_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

pub struct Issuer {
    /// The keyed HMAC state (ipad/opad already absorbed), cloned per message.
    key: HmacSha256,
    numbers: CodeSet,
    holders: CodeSet,
    retired: CodeSet,
}

impl Issuer {
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() < MIN_KEY_BYTES {
            return Err(CoreError::Invalid(format!(
                "the issuing key must have at least {MIN_KEY_BYTES} bytes, got {}",
                key.len()
            )));
        }
        Ok(Issuer {
            key: HmacSha256::new_from_slice(key)
                .map_err(|e| CoreError::Invalid(format!("unusable issuing key: {e}")))?,
            numbers: CodeSet::new(BODY_LIMIT),
            holders: CodeSet::new(Kind::ResidentCode.body_limit()),
            retired: CodeSet::new(BODY_LIMIT),
        })
    }

    /// Numbers ever issued (current and retired).
    pub fn issued_count(&self) -> u64 {
        self.numbers.len()
    }

    /// Resident codes holding a number.
    pub fn holder_count(&self) -> u64 {
        self.holders.len()
    }

    pub fn retired_count(&self) -> u64 {
        self.retired.len()
    }

    pub fn memory_bytes(&self) -> u64 {
        self.numbers.memory_bytes() + self.holders.memory_bytes() + self.retired.memory_bytes()
    }

    /// The body derived for `code` at counter `k`, if one of the tag's words
    /// is usable.
    fn derive(&self, code: u64, k: u32) -> Option<u64> {
        let mut msg = [0u8; DOMAIN.len() + 12];
        msg[..DOMAIN.len()].copy_from_slice(DOMAIN);
        msg[DOMAIN.len()..DOMAIN.len() + 8].copy_from_slice(&code.to_be_bytes());
        msg[DOMAIN.len() + 8..].copy_from_slice(&k.to_be_bytes());
        let mut mac = self.key.clone();
        mac.update(&msg);
        let tag = mac.finalize().into_bytes();
        tag.chunks_exact(8)
            .map(|w| u64::from_be_bytes(w.try_into().unwrap()))
            .find(|&v| v < ACCEPT_BELOW)
            .map(|v| v % BODY_LIMIT)
    }

    /// The next usable (counter, body) at or after counter `k`.
    fn candidate(&self, code: u64, mut k: u32) -> (u32, u64) {
        loop {
            if let Some(b) = self.derive(code, k) {
                return (k, b);
            }
            k += 1;
        }
    }

    /// Issue one number to each resident code. Invalid codes, codes repeated
    /// in the input and codes that already hold a number are all reported by
    /// row, and then nothing is issued.
    pub fn issue(&mut self, codes: &[u64]) -> Result<Vec<u64>> {
        let rows = checkdigit::invalid_rows(Kind::ResidentCode, codes);
        if !rows.is_empty() {
            return Err(CoreError::InvalidRows {
                message: "invalid resident codes".into(),
                rows,
            });
        }
        // Record the holders first (first occurrences only); on any conflict
        // put the set back as it was.
        let saved = self.holders.clone();
        let first = self.holders.insert_new(&bodies_of(codes))?;
        if first.par_iter().any(|f| !f) {
            let conflicts: Vec<RowError> = (0..codes.len())
                .filter(|&i| !first[i])
                .map(|i| RowError {
                    row: i,
                    reason: if saved.contains(codes[i] / 10) {
                        format!("{:011} already holds a My Number", codes[i])
                    } else {
                        format!("{:011} appears more than once", codes[i])
                    },
                })
                .collect();
            self.holders = saved;
            return Err(CoreError::Conflict {
                message: "resident codes that cannot be issued a number".into(),
                rows: conflicts,
            });
        }
        drop(saved);
        drop(first);
        // First round straight into the output; only collisions stay pending.
        let mut out: Vec<u64> = codes.par_iter().map(|&c| self.candidate(c, 0).1).collect();
        let fresh = self.numbers.insert_new(&out)?;
        let mut pending: Vec<(usize, u32)> = fresh
            .iter()
            .enumerate()
            .filter(|(_, ok)| !**ok)
            .map(|(i, _)| (i, self.candidate(codes[i], 0).0 + 1))
            .collect();
        drop(fresh);
        while !pending.is_empty() {
            let cands: Vec<(u32, u64)> = pending
                .par_iter()
                .map(|&(i, k)| self.candidate(codes[i], k))
                .collect();
            let bodies: Vec<u64> = cands.iter().map(|c| c.1).collect();
            let fresh = self.numbers.insert_new(&bodies)?;
            let mut next = Vec::new();
            for ((&(i, _), &(k, body)), ok) in pending.iter().zip(&cands).zip(fresh) {
                if ok {
                    out[i] = body;
                } else {
                    next.push((i, k + 1));
                }
            }
            pending = next;
        }
        checkdigit::append_check_digits(Kind::MyNumber, &mut out);
        Ok(out)
    }

    /// Replace a leaked number: the leaked number must have been issued to
    /// `code` and not be retired already. It is retired for good and a fresh
    /// number is returned.
    pub fn replace(&mut self, code: u64, leaked: u64) -> Result<u64> {
        if !checkdigit::is_valid(Kind::ResidentCode, code)? {
            return Err(CoreError::Invalid(format!(
                "{code:011} is not a valid resident code"
            )));
        }
        if !checkdigit::is_valid(Kind::MyNumber, leaked)? {
            return Err(CoreError::Invalid(format!(
                "{leaked:012} is not a valid My Number"
            )));
        }
        let leaked_body = leaked / 10;
        if !self.holders.contains(code / 10) || !self.numbers.contains(leaked_body) {
            return Err(CoreError::Invalid(format!(
                "{leaked:012} was not issued to resident code {code:011}"
            )));
        }
        if self.retired.contains(leaked_body) {
            return Err(CoreError::Conflict {
                message: format!("{leaked:012} was already replaced"),
                rows: vec![],
            });
        }
        let mut k = 0;
        let mut found = false;
        while k < MAX_COUNTER_SEARCH {
            let (kk, body) = self.candidate(code, k);
            if body == leaked_body {
                found = true;
                break;
            }
            k = kk + 1;
        }
        if !found {
            return Err(CoreError::Invalid(format!(
                "{leaked:012} was not issued to resident code {code:011}"
            )));
        }
        let mut k = 0;
        let body = loop {
            let (kk, body) = self.candidate(code, k);
            if !self.numbers.contains(body) {
                break body;
            }
            k = kk + 1;
        };
        self.numbers.extend(&[body])?;
        self.retired.extend(&[leaked_body])?;
        Ok(checkdigit::with_check_digit(Kind::MyNumber, body))
    }

    /// Save the issuer's state (never the key).
    pub fn save(&self, path: &Path) -> Result<()> {
        let sets = [&self.numbers, &self.holders, &self.retired];
        let sections: Vec<Section<'_>> = sets
            .iter()
            .map(|s| {
                let s: &CodeSet = s;
                Section {
                    len: s.serialized_len(),
                    write: Box::new(move |w: &mut dyn Write| s.write_to(w)),
                }
            })
            .collect();
        container::write(path, KIND, VERSION, &sections)
    }

    pub fn load(key: &[u8], path: &Path) -> Result<Self> {
        let mut issuer = Issuer::new(key)?;
        let c = container::read(path, KIND, &[VERSION])?;
        if c.sections() != 3 {
            return Err(CoreError::Corrupt(
                "a My Number issuer file has three sections".into(),
            ));
        }
        issuer.numbers = CodeSet::read_from(c.section(0), BODY_LIMIT)?;
        issuer.holders = CodeSet::read_from(c.section(1), Kind::ResidentCode.body_limit())?;
        issuer.retired = CodeSet::read_from(c.section(2), BODY_LIMIT)?;
        Ok(issuer)
    }
}

fn bodies_of(codes: &[u64]) -> Vec<u64> {
    codes.par_iter().map(|c| c / 10).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::collections::HashSet;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_numbers_are_valid_unique_and_keyed() {
        let codes = Registry::new().generate(100_000).unwrap();
        let mut a = Issuer::new(KEY).unwrap();
        let nums = a.issue(&codes).unwrap();
        assert!(checkdigit::validate(Kind::MyNumber, &nums)
            .unwrap()
            .iter()
            .all(|v| *v));
        assert_eq!(nums.iter().collect::<HashSet<_>>().len(), nums.len());
        // Same key, same state: same numbers. Another key: different numbers.
        let mut b = Issuer::new(KEY).unwrap();
        assert_eq!(b.issue(&codes).unwrap(), nums);
        let mut c = Issuer::new(b"another key, another key, another").unwrap();
        let other = c.issue(&codes).unwrap();
        assert!(other.iter().zip(&nums).filter(|(x, y)| x == y).count() < 5);
    }

    #[test]
    fn refusals_change_nothing() {
        let codes = Registry::new().generate(10).unwrap();
        let mut a = Issuer::new(KEY).unwrap();
        a.issue(&codes[..5]).unwrap();
        let before = (a.issued_count(), a.holder_count());
        let mut input = codes[4..].to_vec();
        input.push(codes[6]);
        match a.issue(&input) {
            Err(CoreError::Conflict { rows, .. }) => {
                assert_eq!(rows.iter().map(|r| r.row).collect::<Vec<_>>(), vec![0, 6])
            }
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
        assert!(matches!(
            a.issue(&[codes[7] + 1]),
            Err(CoreError::InvalidRows { .. })
        ));
        assert_eq!((a.issued_count(), a.holder_count()), before);
        assert!(Issuer::new(b"short").is_err());
    }

    #[test]
    fn replacement_retires_for_good() {
        let codes = Registry::new().generate(3).unwrap();
        let mut a = Issuer::new(KEY).unwrap();
        let nums = a.issue(&codes).unwrap();
        let new = a.replace(codes[0], nums[0]).unwrap();
        assert_ne!(new, nums[0]);
        assert!(checkdigit::is_valid(Kind::MyNumber, new).unwrap());
        assert_eq!(a.issued_count(), 4);
        // The leaked number cannot be replaced twice, nor by another resident.
        assert!(a.replace(codes[0], nums[0]).is_err());
        assert!(a.replace(codes[1], nums[2]).is_err());
        let newer = a.replace(codes[0], new).unwrap();
        assert!(![nums[0], new].contains(&newer));
    }

    #[test]
    fn state_round_trips_without_the_key() {
        let dir = std::env::temp_dir().join(format!("jkc-mn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("issuer.bin");
        let codes = Registry::new().generate(1000).unwrap();
        let mut a = Issuer::new(KEY).unwrap();
        let nums = a.issue(&codes[..500]).unwrap();
        a.replace(codes[0], nums[0]).unwrap();
        a.save(&p).unwrap();
        let mut b = Issuer::load(KEY, &p).unwrap();
        assert_eq!(
            (b.issued_count(), b.holder_count(), b.retired_count()),
            (501, 500, 1)
        );
        assert_eq!(
            a.issue(&codes[500..]).unwrap(),
            b.issue(&codes[500..]).unwrap()
        );
        assert!(b.issue(&codes[..1]).is_err());
    }
}
