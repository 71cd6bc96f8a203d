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

/// Lead bytes of the UTF-8 sequences that may be refused characters: C0
/// controls and DEL (themselves), `C2` (U+0080..U+00BF), `E2` (U+2000..U+2FFF),
/// `EF` (U+F000..U+FFFF).
const SUSPECT: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[0x7f] = true;
    t[0xc2] = true;
    t[0xe2] = true;
    t[0xef] = true;
    t
};

/// Whether valid UTF-8 `b` holds a refused character ([`is_refused`]), read
/// from the bytes (a lead byte is never a continuation byte, so the sequence
/// starting at a suspect byte is a whole character).
fn has_refused(b: &[u8]) -> bool {
    // first a branch-free pass the compiler vectorizes: most texts hold no suspect byte
    let suspect = b.iter().fold(false, |acc, &c| {
        acc | (c < 0x20) | (c == 0x7f) | (c == 0xc2) | (c == 0xe2) | (c == 0xef)
    });
    suspect
        && b.iter().enumerate().any(|(i, &c)| {
            SUSPECT[usize::from(c)]
                && match c {
                    0xc2 => matches!(b.get(i + 1), Some(0x80..=0x9f)),
                    0xe2 => matches!(
                        (b.get(i + 1), b.get(i + 2)),
                        (Some(0x80), Some(0xaa..=0xae)) | (Some(0x81), Some(0xa6..=0xa9))
                    ),
                    0xef => b.get(i + 1) == Some(&0xbb) && b.get(i + 2) == Some(&0xbf),
                    _ => true, // C0 control or DEL
                }
        })
}

/// Whether valid UTF-8 `b` starts or ends with a space, U+00A0 or U+3000.
fn has_edge_space(b: &[u8]) -> bool {
    let starts =
        b.first() == Some(&b' ') || b.starts_with(b"\xc2\xa0") || b.starts_with(b"\xe3\x80\x80");
    starts || b.last() == Some(&b' ') || b.ends_with(b"\xc2\xa0") || b.ends_with(b"\xe3\x80\x80")
}

/// The flags of valid UTF-8 bytes.
fn utf8_flags(b: &[u8], limit: usize) -> u8 {
    if b.is_empty() {
        return EMPTY;
    }
    let mut out = 0;
    if has_refused(b) {
        out |= CONTROL;
    }
    if has_edge_space(b) {
        out |= SURROUNDING;
    }
    // bytes >= characters: count the characters (the bytes that start one) only when
    // the bytes exceed the limit
    if b.len() > limit && b.iter().filter(|&&x| (x as i8) >= -0x40).count() > limit {
        out |= TOO_LONG;
    }
    out
}

/// The flags of one value.
pub fn flags(s: &str, limit: usize) -> u8 {
    utf8_flags(s.as_bytes(), limit)
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
    let mut ranges = Vec::with_capacity(n);
    for (i, w) in offsets.windows(2).enumerate() {
        let range = w[0]
            .position()
            .zip(w[1].position())
            .filter(|(s, e)| s <= e && *e <= data.len())
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "offsets {}..{} of value {i} are outside the {} data bytes",
                    w[0],
                    w[1],
                    data.len()
                ))
            })?;
        ranges.push(range);
    }
    // one UTF-8 validation of the whole data (SIMD) when every value starts on a character
    let all_utf8 = match (ranges.first(), ranges.last()) {
        (Some(&(start, _)), Some(&(_, end))) if start <= end => {
            simdutf8::basic::from_utf8(&data[start..end]).is_ok_and(|whole| {
                ranges.iter().all(|&(s, e)| {
                    s >= start
                        && e <= end
                        && whole.is_char_boundary(s - start)
                        && whole.is_char_boundary(e - start)
                })
            })
        }
        _ => false,
    };
    let mut out = Vec::with_capacity(n);
    for (i, &(s, e)) in ranges.iter().enumerate() {
        if let Some((bits, bit_offset)) = validity {
            let b = bit_offset + i;
            if bits[b / 8] & (1 << (b % 8)) == 0 {
                out.push(NULL);
                continue;
            }
        }
        let bytes = &data[s..e];
        out.push(if all_utf8 || simdutf8::basic::from_utf8(bytes).is_ok() {
            utf8_flags(bytes, limit)
        } else {
            NOT_UTF8
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A string column in Arrow's layout (data, offsets, validity bitmap); also the
    /// match keys' tests' (`normalize`).
    pub(crate) fn column(values: &[Option<&str>]) -> (Vec<u8>, Vec<i32>, Vec<u8>) {
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
            Some("山田"),
            None,
            Some(""),
            Some("a\tb"),
            Some("\u{85}"),
            Some("x\u{202e}"),
            Some("\u{2069}"),
            Some("\u{feff}y"),
            Some(" a"),
            Some("a\u{3000}"),
            Some("\u{a0}a"),
            Some("a b"),
            Some("\u{202f}"),
            Some("\u{2065}"),
            Some("ああああ"),
        ];
        let (data, offsets, bits) = column(&values);
        let got = column_flags(&data, &offsets, Some((&bits, 0)), 3).unwrap();
        assert_eq!(
            got,
            vec![
                0,
                NULL,
                EMPTY,
                CONTROL,
                CONTROL,
                CONTROL,
                CONTROL,
                CONTROL,
                SURROUNDING,
                SURROUNDING,
                SURROUNDING,
                0,
                0,
                0,
                TOO_LONG
            ]
        );
    }

    #[test]
    fn the_byte_scan_agrees_with_the_character_rules_for_every_character() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let mut buf = [0u8; 4];
            let s: &str = c.encode_utf8(&mut buf);
            let want = if is_refused(c) { CONTROL } else { 0 }
                | if is_edge_space(c) { SURROUNDING } else { 0 };
            assert_eq!(flags(s, 10), want, "U+{:04X}", u32::from(c));
            // inside a longer text too, and at its ends
            let inner = format!("a{s}b");
            assert_eq!(
                flags(&inner, 10),
                want & CONTROL,
                "U+{:04X} inside",
                u32::from(c)
            );
            let end = format!("ab{s}");
            assert_eq!(flags(&end, 10), want, "U+{:04X} at the end", u32::from(c));
        }
    }

    #[test]
    fn values_that_split_a_character_are_not_utf8() {
        let data = "山".as_bytes(); // E5 B1 B1
        let got = column_flags(data, &[0, 1, 3], None, 10).unwrap();
        assert_eq!(got, vec![NOT_UTF8, NOT_UTF8]);
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
        assert_eq!(
            column_flags(b"\xff", &[0, 1], None, 10).unwrap(),
            vec![NOT_UTF8]
        );
        assert_eq!(column_flags(b"", &[0], None, 10).unwrap(), Vec::<u8>::new());
    }
}
