//! Check digits of the three public identifiers (DESIGN.md section 3).
//!
//! * My Number (個人番号): 11-digit body. Weights, from the rightmost body
//!   digit leftwards, are 2,3,4,5,6,7,2,3,4,5,6 (left to right:
//!   6,5,4,3,2,7,6,5,4,3,2); r = sum mod 11; check = 0 if r <= 1 else 11 - r.
//! * Resident code (住民票コード): 10-digit body. **Assumption**: the
//!   official formula is in a 2002 ministry notice we could not obtain; until
//!   it is, the My Number rule is applied to the 10 body digits (weights left to
//!   right 5,4,3,2,7,6,5,4,3,2). This constant and [`resident_code_check_digit`]
//!   are the only place the assumption lives.
//! * Local government code (団体コード): 5-digit body, weights 6,5,4,3,2 left
//!   to right, r = sum mod 11, check = (11 - r) mod 10.

use rayon::prelude::*;

use crate::error::{CoreError, Result, RowError};

/// The identifier kinds, with their body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ResidentCode,
    MyNumber,
    LgCode,
}

impl Kind {
    /// Digits of the body (without the check digit).
    pub const fn body_digits(self) -> u32 {
        match self {
            Kind::ResidentCode => 10,
            Kind::MyNumber => 11,
            Kind::LgCode => 5,
        }
    }
    /// Exclusive upper bound of bodies: 10^body_digits.
    pub const fn body_limit(self) -> u64 {
        10u64.pow(self.body_digits())
    }
    /// Exclusive upper bound of full codes (body plus check digit).
    pub const fn code_limit(self) -> u64 {
        self.body_limit() * 10
    }
    pub const fn name(self) -> &'static str {
        match self {
            Kind::ResidentCode => "resident code",
            Kind::MyNumber => "My Number",
            Kind::LgCode => "local government code",
        }
    }
    /// Check digit of a body already known to be below [`Kind::body_limit`].
    #[inline]
    pub fn check_digit_unchecked(self, body: u64) -> u8 {
        match self {
            Kind::ResidentCode | Kind::MyNumber => mod11_tabled(body),
            Kind::LgCode => lg_rule(body),
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = CoreError;

    /// The kind named as the Python API names it: `resident_code`,
    /// `my_number` or `lg_code`.
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "resident_code" => Ok(Kind::ResidentCode),
            "my_number" => Ok(Kind::MyNumber),
            "lg_code" => Ok(Kind::LgCode),
            other => Err(CoreError::Invalid(format!(
                "unknown identifier kind {other:?} (resident_code, my_number or lg_code)"
            ))),
        }
    }
}

/// Partial weighted sums (mod 11) of each 4-digit group of a body, so a
/// check digit costs three table reads instead of eleven divisions. Group g
/// covers positions 4g+1..4g+4 counted from the rightmost body digit.
fn group_tables() -> &'static [[u8; 10_000]; 3] {
    static TABLES: std::sync::OnceLock<Box<[[u8; 10_000]; 3]>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Box::new([[0u8; 10_000]; 3]);
        for (g, table) in t.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                let mut sum = 0u64;
                let mut x = v as u64;
                for k in 0..4 {
                    let n = 4 * g + k + 1;
                    if n <= 11 {
                        sum += (x % 10) * weight(n);
                    }
                    x /= 10;
                }
                *slot = (sum % 11) as u8;
            }
        }
        t
    })
}

/// Weight of the body digit at position n (1 = rightmost): n + 1 up to 6, then n - 5.
const fn weight(n: usize) -> u64 {
    if n <= 6 {
        n as u64 + 1
    } else {
        n as u64 - 5
    }
}

#[inline]
fn mod11_tabled(body: u64) -> u8 {
    let t = group_tables();
    // One 64-bit split; the rest in 32-bit arithmetic (bodies are below 10^11).
    let hi = (body / 100_000_000) as usize;
    let rest = (body - hi as u64 * 100_000_000) as u32;
    let mid = (rest / 10_000) as usize;
    let lo = (rest % 10_000) as usize;
    // Each partial sum is below 11, so the total is below 33: one table read
    // gives the check digit, without a branch (r <= 1 is unpredictable).
    const BY_SUM: [u8; 33] = {
        let mut t = [0u8; 33];
        let mut i = 0;
        while i < 33 {
            let r = i % 11;
            t[i] = if r <= 1 { 0 } else { (11 - r) as u8 };
            i += 1;
        }
        t
    };
    BY_SUM[(t[0][lo] + t[1][mid] + t[2][hi]) as usize]
}

/// Append each body's check digit in place (bodies known to be in range).
pub fn append_check_digits(kind: Kind, values: &mut [u64]) {
    values.par_chunks_mut(PAR_CHUNK).for_each(|c| {
        for v in c.iter_mut() {
            *v = *v * 10 + kind.check_digit_unchecked(*v) as u64;
        }
    });
}

/// The My Number form of the mod-11 rule, digit by digit: the digit at
/// position n (1 = the rightmost body digit) has weight n + 1 for n <= 6 and
/// n - 5 above. The reference for the tabled version.
#[cfg(test)]
fn mod11_positional(mut body: u64) -> u8 {
    let mut sum = 0u64;
    for n in 1..=11 {
        sum += (body % 10) * weight(n);
        body /= 10;
    }
    let r = sum % 11;
    if r <= 1 {
        0
    } else {
        (11 - r) as u8
    }
}

#[inline]
fn lg_rule(mut body: u64) -> u8 {
    let mut sum = 0u64;
    for w in 2..=6u64 {
        sum += (body % 10) * w;
        body /= 10;
    }
    ((11 - sum % 11) % 10) as u8
}

/// Check digit of a resident-code body (10 digits). See the module docs for
/// the documented assumption.
pub fn resident_code_check_digit(body: u64) -> Result<u8> {
    check_digit(Kind::ResidentCode, body)
}

/// Check digit of one body, refusing bodies with too many digits.
pub fn check_digit(kind: Kind, body: u64) -> Result<u8> {
    if body >= kind.body_limit() {
        return Err(CoreError::Invalid(format!(
            "a {} body has {} digits; got {body}",
            kind.name(),
            kind.body_digits()
        )));
    }
    Ok(kind.check_digit_unchecked(body))
}

/// Whether a full code (body followed by its check digit) is valid; a value
/// with too many digits is not a code at all and is refused.
pub fn is_valid(kind: Kind, code: u64) -> Result<bool> {
    if code >= kind.code_limit() {
        return Err(CoreError::Invalid(format!(
            "a {} has {} digits; got {code}",
            kind.name(),
            kind.body_digits() + 1
        )));
    }
    Ok(kind.check_digit_unchecked(code / 10) as u64 == code % 10)
}

/// Append the check digit to a body known to be in range.
#[inline]
pub fn with_check_digit(kind: Kind, body: u64) -> u64 {
    body * 10 + kind.check_digit_unchecked(body) as u64
}

const PAR_CHUNK: usize = 1 << 16;

fn out_of_range_rows(values: &[u64], limit: u64, what: &str) -> Vec<RowError> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| **v >= limit)
        .map(|(row, v)| RowError {
            row,
            reason: format!("{v} has more digits than a {what}"),
        })
        .collect()
}

/// Check digits of a column of bodies; every out-of-range row is reported.
pub fn check_digits(kind: Kind, bodies: &[u64]) -> Result<Vec<u8>> {
    let limit = kind.body_limit();
    if bodies.par_iter().any(|b| *b >= limit) {
        return Err(CoreError::InvalidRows {
            message: format!("not a {} body", kind.name()),
            rows: out_of_range_rows(bodies, limit, &format!("{} body", kind.name())),
        });
    }
    let mut out: Vec<u8> = crate::mem::fresh_vec(bodies.len());
    out.par_chunks_mut(PAR_CHUNK)
        .zip(bodies.par_chunks(PAR_CHUNK))
        .for_each(|(o, b)| {
            for (d, &v) in o.iter_mut().zip(b) {
                *d = kind.check_digit_unchecked(v);
            }
        });
    Ok(out)
}

/// Validity of a column of full codes; every out-of-range row is reported.
/// One pass: the range check rides along with the check digit.
pub fn validate(kind: Kind, codes: &[u64]) -> Result<Vec<bool>> {
    let limit = kind.code_limit();
    let mut out: Vec<bool> = crate::mem::fresh_vec(codes.len());
    let out_of_range = out
        .par_chunks_mut(PAR_CHUNK)
        .zip(codes.par_chunks(PAR_CHUNK))
        .map(|(o, c)| {
            let mut over = false;
            for (d, &v) in o.iter_mut().zip(c) {
                over |= v >= limit;
                let v = v.min(limit - 1);
                let body = v / 10;
                *d = kind.check_digit_unchecked(body) as u64 == v - body * 10;
            }
            over
        })
        .reduce(|| false, |a, b| a | b);
    if out_of_range {
        return Err(CoreError::InvalidRows {
            message: format!("not a {}", kind.name()),
            rows: out_of_range_rows(codes, limit, kind.name()),
        });
    }
    Ok(out)
}

/// Rows of a column of full codes that are out of range or fail their check
/// digit, with the reason; empty when all are valid.
pub fn invalid_rows(kind: Kind, codes: &[u64]) -> Vec<RowError> {
    let limit = kind.code_limit();
    let bad = |v: u64| v >= limit || kind.check_digit_unchecked(v / 10) as u64 != v % 10;
    if !codes.par_iter().any(|&v| bad(v)) {
        return Vec::new();
    }
    codes
        .iter()
        .enumerate()
        .filter(|(_, &v)| bad(v))
        .map(|(row, &v)| RowError {
            row,
            reason: if v >= limit {
                format!("{v} has more digits than a {}", kind.name())
            } else {
                format!(
                    "{v:0width$} has a wrong check digit (expected {})",
                    kind.check_digit_unchecked(v / 10),
                    width = kind.body_digits() as usize + 1
                )
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabled_rule_equals_the_digit_by_digit_rule() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let body = x % 100_000_000_000;
            assert_eq!(mod11_tabled(body), mod11_positional(body), "{body}");
        }
        for body in [0u64, 9, 99_999_999_999, 10_000_000_000, 12_345_678_901] {
            assert_eq!(mod11_tabled(body), mod11_positional(body));
        }
    }

    #[test]
    fn my_number_public_examples() {
        assert!(is_valid(Kind::MyNumber, 621_498_320_257).unwrap());
        assert!(is_valid(Kind::MyNumber, 123_456_789_018).unwrap());
        assert!(!is_valid(Kind::MyNumber, 123_456_789_019).unwrap());
        assert_eq!(check_digit(Kind::MyNumber, 12_345_678_901).unwrap(), 8);
    }

    #[test]
    fn lg_code_public_examples() {
        for code in [11_002u64, 131_130, 472_018] {
            assert!(is_valid(Kind::LgCode, code).unwrap(), "{code}");
        }
        assert!(!is_valid(Kind::LgCode, 131_131).unwrap());
        assert_eq!(check_digit(Kind::LgCode, 13_113).unwrap(), 0);
    }

    #[test]
    fn resident_rule_is_my_number_rule_on_ten_digits() {
        // The 10-digit body 2345678901 padded to 11 digits has the same weighted sum.
        let body = 2_345_678_901u64;
        assert_eq!(
            resident_code_check_digit(body).unwrap(),
            check_digit(Kind::MyNumber, body).unwrap()
        );
        // Hand computation: weights 5,4,3,2,7,6,5,4,3,2 on 2,3,4,5,6,7,8,9,0,1.
        let digits = [2u64, 3, 4, 5, 6, 7, 8, 9, 0, 1];
        let weights = [5u64, 4, 3, 2, 7, 6, 5, 4, 3, 2];
        let sum: u64 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
        let r = sum % 11;
        let expected = if r <= 1 { 0 } else { 11 - r };
        assert_eq!(resident_code_check_digit(body).unwrap() as u64, expected);
    }

    #[test]
    fn out_of_range_refused_with_rows() {
        assert!(check_digit(Kind::ResidentCode, 10_000_000_000).is_err());
        assert!(is_valid(Kind::LgCode, 1_000_000).is_err());
        match validate(Kind::LgCode, &[131_130, 9_999_999, 472_018, 10_000_000]) {
            Err(CoreError::InvalidRows { rows, .. }) => {
                assert_eq!(rows.iter().map(|r| r.row).collect::<Vec<_>>(), vec![1, 3]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn columns_agree_with_scalars() {
        let bodies: Vec<u64> = (0..200_000u64)
            .map(|i| i * 49_999 % 10_000_000_000)
            .collect();
        let cds = check_digits(Kind::ResidentCode, &bodies).unwrap();
        let codes: Vec<u64> = bodies
            .iter()
            .zip(&cds)
            .map(|(b, c)| b * 10 + *c as u64)
            .collect();
        assert!(validate(Kind::ResidentCode, &codes)
            .unwrap()
            .iter()
            .all(|v| *v));
        for (b, c) in bodies.iter().zip(&cds).take(1000) {
            assert_eq!(resident_code_check_digit(*b).unwrap(), *c);
        }
        let mut broken = codes.clone();
        broken[7] = broken[7] / 10 * 10 + (broken[7] % 10 + 1) % 10;
        let rows = invalid_rows(Kind::ResidentCode, &broken);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].row, 7);
        assert!(invalid_rows(Kind::ResidentCode, &codes).is_empty());
    }

    #[test]
    fn every_single_digit_error_is_detected_by_my_number_rule() {
        // A mod-11 weighted rule with weights coprime to 11 catches every
        // single-digit substitution except where 11 - r == 10 folds to 0.
        let code = 621_498_320_257u64;
        let mut caught = 0;
        let mut total = 0;
        for pos in 1..12u32 {
            let p = 10u64.pow(pos);
            let digit = code / p % 10;
            for d in 0..10u64 {
                if d == digit {
                    continue;
                }
                total += 1;
                let changed = code - digit * p + d * p;
                if !is_valid(Kind::MyNumber, changed).unwrap() {
                    caught += 1;
                }
            }
        }
        assert!(caught * 10 >= total * 9, "caught {caught} of {total}");
    }

    #[test]
    fn kinds_parse_from_their_api_names_only() {
        assert_eq!("resident_code".parse::<Kind>().unwrap(), Kind::ResidentCode);
        assert_eq!("my_number".parse::<Kind>().unwrap(), Kind::MyNumber);
        assert_eq!("lg_code".parse::<Kind>().unwrap(), Kind::LgCode);
        for bad in [
            "",
            "ResidentCode",
            "resident code",
            "LG_CODE",
            "lg_code ",
            "mynumber",
        ] {
            assert!(
                matches!(bad.parse::<Kind>(), Err(CoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
