//! The checks every stored text passes, over an Arrow string column (UTF-8
//! bytes plus `n + 1` offsets, an optional validity bitmap).
//!
//! One pass per value yields a set of flags; the Python validation turns each
//! flag into a rejected row. The rule lives here only, for a column of one
//! value or of a million: refused characters (C0 and C1 controls, DEL, bidi
//! embeddings, overrides and isolates, the BOM), a space, U+00A0 or U+3000 at
//! either end, more characters than the column's limit, an empty value.

use crate::aead::Offset;
use crate::error::{CoreError, Result};

/// The value is null (only set when a validity bitmap is given).
pub const NULL: u8 = 1;
/// The value is the empty string.
pub const EMPTY: u8 = 2;
/// The value holds a refused character ([`is_refused`]).
pub const CONTROL: u8 = 4;
/// The value starts or ends with a space, U+00A0 or U+3000.
pub const SURROUNDING: u8 = 8;
/// The value has more characters than the limit.
pub const TOO_LONG: u8 = 16;
/// The bytes are not UTF-8 (Arrow data from a C interface is not validated).
pub const NOT_UTF8: u8 = 32;

/// A character no stored text may hold: C0 controls (NUL, tab, newline ...),
/// DEL and C1 controls, bidi embeddings and overrides (U+202A..U+202E) and
/// isolates (U+2066..U+2069), the byte order mark.
pub fn is_refused(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A space no stored text may start or end with: U+0020, U+00A0, U+3000.
pub fn is_edge_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{3000}')
}

/// The flags of one value.
pub fn flags(s: &str, limit: usize) -> u8 {
    let mut out = 0;
    if s.is_empty() {
        return EMPTY;
    }
    if s.chars().any(is_refused) {
        out |= CONTROL;
    }
    if s.starts_with(is_edge_space) || s.ends_with(is_edge_space) {
        out |= SURROUNDING;
    }
    // bytes >= characters: count the characters only when the bytes exceed the limit
    if s.len() > limit && s.chars().count() > limit {
        out |= TOO_LONG;
    }
    out
}

/// The flags of every value of a string column. `offsets` (32- or 64-bit,
/// as Arrow's string and large string types have them) has `n + 1`
/// entries into `data`; `validity` is Arrow's bitmap with the column's first
/// value at bit `bit_offset` (absent: every value is valid).
pub fn column_flags<O: Offset + std::fmt::Display>(
    data: &[u8],
    offsets: &[O],
    validity: Option<(&[u8], usize)>,
    limit: usize,
) -> Result<Vec<u8>> {
    let n = offsets.len().saturating_sub(1);
    if let Some((bits, bit_offset)) = validity {
        if bits.len() * 8 < bit_offset + n {
            return Err(CoreError::Invalid(format!(
                "validity bitmap of {} bytes is too short for {n} values at bit {bit_offset}",
                bits.len()
            )));
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if let Some((bits, bit_offset)) = validity {
            let b = bit_offset + i;
            if bits[b / 8] & (1 << (b % 8)) == 0 {
                out.push(NULL);
                continue;
            }
        }
        let (start, end) = (offsets[i], offsets[i + 1]);
        let bytes = start
            .position()
            .zip(end.position())
            .filter(|(s, e)| s <= e)
            .and_then(|(s, e)| data.get(s..e))
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "offsets {start}..{end} of value {i} are outside the {} data bytes",
                    data.len()
                ))
            })?;
        out.push(match std::str::from_utf8(bytes) {
            Ok(s) => flags(s, limit),
            Err(_) => NOT_UTF8,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[Option<&str>]) -> (Vec<u8>, Vec<i32>, Vec<u8>) {
        let mut data = Vec::new();
        let mut offsets = vec![0i32];
        let mut bits = vec![0u8; values.len().div_ceil(8)];
        for (i, v) in values.iter().enumerate() {
            if let Some(s) = v {
                data.extend_from_slice(s.as_bytes());
                bits[i / 8] |= 1 << (i % 8);
            }
            offsets.push(i32::try_from(data.len()).unwrap());
        }
        (data, offsets, bits)
    }

    #[test]
    fn each_flag() {
        let values = [
            Some("山田"), None, Some(""), Some("a\tb"), Some("\u{85}"), Some("x\u{202e}"),
            Some("\u{2069}"), Some("\u{feff}y"), Some(" a"), Some("a\u{3000}"),
            Some("\u{a0}a"), Some("a b"), Some("\u{202f}"), Some("\u{2065}"), Some("ああああ"),
        ];
        let (data, offsets, bits) = column(&values);
        let got = column_flags(&data, &offsets, Some((&bits, 0)), 3).unwrap();
        assert_eq!(
            got,
            vec![0, NULL, EMPTY, CONTROL, CONTROL, CONTROL, CONTROL, CONTROL, SURROUNDING,
                 SURROUNDING, SURROUNDING, 0, 0, 0, TOO_LONG]
        );
    }

    #[test]
    fn too_long_counts_characters_not_bytes() {
        assert_eq!(flags("ああ", 2), 0); // 6 bytes, 2 characters
        assert_eq!(flags("ああa", 2), TOO_LONG);
    }

    #[test]
    fn bitmap_offset_and_slices() {
        let (data, offsets, bits) = column(&[None, Some(" x"), Some("ok")]);
        // the column starting at its second value: bit 1, offsets[1..]
        let got = column_flags(&data, &offsets[1..], Some((&bits, 1)), 10).unwrap();
        assert_eq!(got, vec![SURROUNDING, 0]);
        assert!(column_flags(&data, &offsets, Some((&[], 0)), 10).is_err());
    }

    #[test]
    fn bad_offsets_and_bytes_are_reported() {
        assert!(column_flags(b"abc", &[0, 5], None, 10).is_err());
        assert!(column_flags(b"abc", &[2, 1], None, 10).is_err());
        assert!(column_flags(b"abc", &[-1, 1], None, 10).is_err());
        assert_eq!(column_flags(b"\xff", &[0, 1], None, 10).unwrap(), vec![NOT_UTF8]);
        assert_eq!(column_flags(b"", &[0], None, 10).unwrap(), Vec::<u8>::new());
    }
}
