//! Canonical JSON of records, and their SHA-256 digests.
//!
//! The bytes are exactly those of Python's
//! `json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))`
//! for objects of strings, integers, booleans, ISO dates (`"YYYY-MM-DD"`), lists and
//! nested objects, so that a digest computed here for a whole column of records equals
//! the one Python computes for a single record (a register stores these digests: they
//! may never change). Strings are written as UTF-8; `"`, `\` and the control characters
//! U+0000..U+001F are escaped as Python escapes them (`\n`, `\r`, `\t`, `\b`, `\f`, or
//! `\u00XX`); nothing else is escaped.
//!
//! A record is built with [`Record`]: [`Record::key`] before each value, in the key
//! order the caller sorted, and one of the `push_*` calls (or [`Record::open`] /
//! [`Record::close`] of a nested list or object) for the value.

use std::io::Write;

use sha2::{Digest, Sha256};

use crate::{CoreError, Result};

/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT: i64 = 719_468;

/// (year, month, day) of a day counted from 1970-01-01 (negative before), proleptic
/// Gregorian; the civil-from-days algorithm of H. Hinnant.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One JSON document being written (a reusable buffer).
#[derive(Default)]
pub struct Record {
    buf: Vec<u8>,
    /// For each open list or object: whether it already holds an element.
    filled: Vec<bool>,
    /// A key was written; the next value is its value (no separator).
    keyed: bool,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a new document (the buffer is kept).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.filled.clear();
        self.keyed = false;
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Before an element of the open list or object: a comma unless it is the first.
    fn element(&mut self) {
        if let Some(filled) = self.filled.last_mut() {
            if *filled {
                self.buf.push(b',');
            }
            *filled = true;
        }
    }

    /// Before a value: after a key nothing, else it is an element.
    fn value_start(&mut self) {
        if self.keyed {
            self.keyed = false;
        } else {
            self.element();
        }
    }

    /// Open an object (`b'{'`) or a list (`b'['`), as a value.
    pub fn open(&mut self, bracket: u8) {
        self.value_start();
        self.buf.push(bracket);
        self.filled.push(false);
    }

    /// Close the innermost object (`b'}'`) or list (`b']'`).
    pub fn close(&mut self, bracket: u8) {
        self.filled.pop();
        self.buf.push(bracket);
    }

    /// The key of the next value of the open object.
    pub fn key(&mut self, key: &str) {
        self.element();
        push_json_str(&mut self.buf, key);
        self.buf.push(b':');
        self.keyed = true;
    }

    pub fn push_str(&mut self, s: &str) {
        self.value_start();
        push_json_str(&mut self.buf, s);
    }

    pub fn push_raw(&mut self, literal: &str) {
        self.value_start();
        self.buf.extend_from_slice(literal.as_bytes());
    }

    pub fn push_int(&mut self, v: i64) {
        self.value_start();
        let _ = write!(self.buf, "{v}");
    }

    pub fn push_uint(&mut self, v: u64) {
        self.value_start();
        let _ = write!(self.buf, "{v}");
    }

    pub fn push_bool(&mut self, v: bool) {
        self.push_raw(if v { "true" } else { "false" });
    }

    pub fn push_null(&mut self) {
        self.push_raw("null");
    }

    /// A date (days since 1970-01-01) as Python's `date.isoformat()`; Python's dates
    /// span the years 1 to 9999 only, so any other is refused.
    pub fn push_date(&mut self, days: i64) -> Result<()> {
        let (y, m, d) = civil_from_days(days);
        if !(1..=9999).contains(&y) {
            return Err(CoreError::Invalid(format!(
                "a date in the year {y} has no ISO form here (years 1 to 9999)"
            )));
        }
        self.value_start();
        let _ = write!(self.buf, "\"{y:04}-{m:02}-{d:02}\"");
        Ok(())
    }

    /// SHA-256 of the document, as 64 lowercase hex digits.
    pub fn sha256_hex(&self) -> String {
        hex(&Sha256::digest(&self.buf))
    }
}

/// A JSON string literal, as Python's `json.dumps(s, ensure_ascii=False)`.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(y: i64, m: u32, d: u32) -> i64 {
        // inverse of civil_from_days, by search around an estimate (tests only)
        let mut n = (y - 1970) * 365 + (y - 1970) / 4;
        loop {
            let (yy, mm, dd) = civil_from_days(n);
            match (yy, mm, dd).cmp(&(y, m, d)) {
                std::cmp::Ordering::Equal => return n,
                std::cmp::Ordering::Less => n += 1,
                std::cmp::Ordering::Greater => n -= 1,
            }
        }
    }

    #[test]
    fn dates_as_python_isoformat() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_423), (2025, 12, 1));
        let mut r = Record::new();
        r.push_date(days(1, 1, 1)).unwrap();
        assert_eq!(r.bytes(), b"\"0001-01-01\"");
        r.clear();
        assert!(r.push_date(days(1, 1, 1) - 1).is_err());
        assert!(r.push_date(days(9999, 12, 31) + 1).is_err());
    }

    #[test]
    fn strings_escaped_as_python_json() {
        let mut out = Vec::new();
        push_json_str(&mut out, "a\"b\\c\nd\te\u{1}f\u{7f}山田\u{2028}\u{8}\u{c}\r");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\te\\u0001f\u{7f}山田\u{2028}\\b\\f\\r\""
        );
    }

    #[test]
    fn objects_lists_and_keys() {
        // json.dumps({"a": 1, "b": [{"x": None, "y": "z"}, None], "c": True, "d": []},
        //            ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        let mut r = Record::new();
        r.open(b'{');
        r.key("a");
        r.push_int(1);
        r.key("b");
        r.open(b'[');
        r.open(b'{');
        r.key("x");
        r.push_null();
        r.key("y");
        r.push_str("z");
        r.close(b'}');
        r.push_null();
        r.close(b']');
        r.key("c");
        r.push_bool(true);
        r.key("d");
        r.open(b'[');
        r.close(b']');
        r.close(b'}');
        assert_eq!(
            std::str::from_utf8(r.bytes()).unwrap(),
            r#"{"a":1,"b":[{"x":null,"y":"z"},null],"c":true,"d":[]}"#
        );
        r.clear();
        r.open(b'{');
        r.close(b'}');
        assert_eq!(r.bytes(), b"{}");
        // sha256("{}")
        assert_eq!(
            r.sha256_hex(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
