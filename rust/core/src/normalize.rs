//! Match keys of Japanese names and addresses.
//!
//! A key is derived, never stored in place of the text: two spellings of one
//! name or address give one key, so a lookup index can compare keys. Stored
//! strings are never changed. The Python reference pipeline in
//! `benches/_normalize_py.py` implements the same rules and is tested to give
//! the same keys.
//!
//! # Common first stage (names and addresses)
//!
//! 1. NFKC: full-width ASCII and digits become half width, half-width katakana
//!    full width (ｶﾞ → ガ), compatibility ideographs with a canonical mapping
//!    their unified form (U+FA10 塚 → 塚).
//! 2. Removed: every White_Space character (ASCII spaces and controls
//!    U+0009..U+000D, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
//!    U+202F, U+205F, U+3000) and the variation selectors U+FE00..U+FE0F and
//!    U+E0100..U+E01EF (an IVS such as 辻 + U+E0100 keys as 辻). Names also
//!    lose the middle dot ・ (U+30FB; ･ U+FF65 is ・ after NFKC).
//!    When anything was removed, NFKC runs again (a removed space may have
//!    separated a base from a combining mark: か゛ is か, space, U+3099 after
//!    NFKC, then が).
//! 3. Variant kanji (異体字, 旧字体) fold to their standard form through the
//!    table `rust/core/data/kanji_variants.tsv` (compiled in; sources and
//!    licenses in its header and in docs/normalization.md): 髙 → 高, 﨑 → 崎,
//!    邊 → 辺, 齋 → 斎, 齊 → 斉 (斎 and 斉 stay apart), 學 → 学, 驛 → 駅 ...
//!
//! # Name keys ([`name_key`])
//!
//! 4. Katakana U+30A1..U+30F6 and the iteration marks ヽ ヾ become hiragana
//!    (ア → あ, ヴ → ゔ, ヵ → ゕ, ヽ → ゝ); ヷ..ヺ stay (as jaconv's `kata2hira`).
//! 5. Small kana become full size: ぁぃぅぇぉっゃゅょゎゕゖ → あいうえおつやゆよわかけ,
//!    and the small katakana extension ㇰ..ㇿ (U+31F0..U+31FF) → くしすとぬはひふへほむらりるれろ.
//! 6. The long vowel mark ー (U+30FC; ｰ after NFKC) becomes the vowel of the
//!    kana before it: a-row → あ, i-row → い, u-row → う, e-row → い, o-row →
//!    う (ユーコ = ゆうこ, コーイチ = こういち, ケーコ = けいこ); after ん, at the
//!    start or after anything that is not kana it is dropped. 〜 and ～ are
//!    not touched.
//! 7. A combining voiced or semi-voiced mark (U+3099, U+309A) left in the key
//!    (after a kana that had no precomposed voiced form, ㇰ + U+3099) is composed
//!    by one more NFKC, now that ㇰ is く (→ ぐ).
//!
//! # Address keys ([`address_key`])
//!
//! After the common stage (no middle-dot removal, no kana folding):
//!
//! 4. 大字 is removed wherever it appears. 字 is removed where it begins a
//!    locality component: at the start of the key, right after a removed 大字
//!    (or a removed 字), or right after 町, 村, 郡, 市 or 区 (風連町字大町 → 風連町大町);
//!    elsewhere (赤字, 十字路, 大町字 after a name that does not end in one of
//!    those) it stays.
//! 5. A run of kanji numerals 〇一二三四五六七八九十百千 becomes Arabic only where
//!    it is a number of the address: directly followed by 丁目, 番地, 番 (but not
//!    番町 or 番丁, place names: 三番町), 号 or 地割; or directly after a separator
//!    of a number (the "-" of rule 6 below) and followed by the end, a hyphen-like
//!    character, の or ノ. Place names stay: 一宮, 五十嵐, 三田, 八王子, 四日市,
//!    十日町, 九段, 六本木, 二俣川. A run without 十百千 is read digit by digit
//!    (一〇五 → 105, 〇五 → 05); with them as a number (二十三 → 23, 百五 → 105,
//!    千二百 → 1200). Runs of more than 20 numerals stay as they are.
//! 6. After an ASCII digit: 丁目 → "-", 番地 → "-", 番 (not 番町/番丁) → "-", 号 is
//!    dropped, and every hyphen-like character (- ‐ ‑ ‒ – — ― − ー －
//!    ｰ) → "-". After such a "-", further hyphen-like characters are dropped
//!    and の / ノ before a number (an ASCII digit or a kanji numeral run that rule
//!    5 converts in a separator's context) is dropped; の / ノ between a digit and
//!    such a number → "-" (1の2 → 1-2, 1の三 → 1-3). 地割 stays (1地割).
//! 7. A separator's "-" stays only between two numbers: at the end or before
//!    anything else it goes (944番地 → 944, 1丁目2番 → 1-2, 1-2-3- → 1-2-3,
//!    十日町一丁目 → 十日町1, 944番地 パレス101号 → 944パレス101), so an address
//!    written with or without its last separator, or with its building after
//!    番地 or after a hyphen, has one key (十日町1丁目 and 十日町1番地 share it).
//!
//! So 1丁目2番3号 = 1-2-3 = １－２－３ = 一丁目二番地三 = 1丁目2番地の3, and
//! 北海道名寄市風連町大町944番地5 = 北海道名寄市風連町大字大町944-5 =
//! 北海道名寄市風連町大町９４４番地の５. Both keys are idempotent: the key of a
//! key is itself.

use std::sync::LazyLock;

use rayon::prelude::*;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use crate::aead::Offset;
use crate::error::{CoreError, Result};

/// The variant table (see the module documentation), compiled in.
const VARIANTS_TSV: &str = include_str!("../data/kanji_variants.tsv");

/// (variant, standard) pairs sorted by variant.
static VARIANTS: LazyLock<Vec<(char, char)>> = LazyLock::new(|| parse_variants(VARIANTS_TSV));

fn parse_variants(text: &str) -> Vec<(char, char)> {
    let mut out: Vec<(char, char)> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut cols = l.split('\t').map(|c| c.chars());
            let mut one = |what: &str| {
                let mut c = cols
                    .next()
                    .unwrap_or_else(|| panic!("kanji_variants.tsv: no {what} in {l:?}"));
                match (c.next(), c.next()) {
                    (Some(ch), None) => ch,
                    _ => panic!("kanji_variants.tsv: {what} of {l:?} is not one character"),
                }
            };
            (one("variant"), one("standard"))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The standard form of a variant kanji, or the character itself.
#[inline]
pub fn fold_variant(c: char) -> char {
    if (c as u32) < 0x3400 {
        return c;
    }
    let table = &*VARIANTS;
    match table.binary_search_by_key(&c, |&(v, _)| v) {
        Ok(i) => table[i].1,
        Err(_) => c,
    }
}

/// White_Space characters (removed from keys).
#[inline]
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

#[inline]
fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}')
}

fn name_removed(c: char) -> bool {
    is_space(c) || is_variation_selector(c) || c == '\u{30fb}'
}

fn address_removed(c: char) -> bool {
    is_space(c) || is_variation_selector(c)
}

/// Reusable buffers of one thread's work.
#[derive(Default)]
struct Scratch {
    a: String,
    b: String,
    chars: Vec<char>,
}

enum Held {
    Input,
    A,
    B,
}

fn nfkc_into(s: &str, out: &mut String) {
    out.clear();
    if is_nfkc_quick(s.chars()) == IsNormalized::Yes {
        out.push_str(s);
    } else {
        out.extend(s.nfkc());
    }
}

/// Stage one: NFKC, removals, NFKC again if anything was removed. Says which
/// buffer holds the result.
fn stage_one(s: &str, removed: fn(char) -> bool, sc: &mut Scratch) -> Held {
    let first = if is_nfkc_quick(s.chars()) == IsNormalized::Yes {
        Held::Input
    } else {
        sc.a.clear();
        sc.a.extend(s.nfkc());
        Held::A
    };
    let src: &str = match first {
        Held::Input => s,
        _ => &sc.a,
    };
    if !src.chars().any(removed) {
        return first;
    }
    sc.b.clear();
    sc.b.extend(src.chars().filter(|&c| !removed(c)));
    if is_nfkc_quick(sc.b.chars()) == IsNormalized::Yes {
        return Held::B;
    }
    let b = std::mem::take(&mut sc.b);
    nfkc_into(&b, &mut sc.a);
    sc.b = b;
    Held::A
}

fn held<'a>(s: &'a str, sc: &'a Scratch, h: Held) -> &'a str {
    match h {
        Held::Input => s,
        Held::A => &sc.a,
        Held::B => &sc.b,
    }
}

/// Katakana U+30A1..U+30F6, ヽ and ヾ to hiragana, small kana to full size.
#[inline]
fn fold_kana(c: char) -> char {
    let c = match c {
        '\u{30a1}'..='\u{30f6}' | 'ヽ' | 'ヾ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
        _ => c,
    };
    match c {
        'ぁ' => 'あ',
        'ぃ' => 'い',
        'ぅ' => 'う',
        'ぇ' => 'え',
        'ぉ' => 'お',
        'っ' => 'つ',
        'ゃ' => 'や',
        'ゅ' => 'ゆ',
        'ょ' => 'よ',
        'ゎ' => 'わ',
        'ゕ' => 'か',
        'ゖ' => 'け',
        'ㇰ' => 'く',
        'ㇱ' => 'し',
        'ㇲ' => 'す',
        'ㇳ' => 'と',
        'ㇴ' => 'ぬ',
        'ㇵ' => 'は',
        'ㇶ' => 'ひ',
        'ㇷ' => 'ふ',
        'ㇸ' => 'へ',
        'ㇹ' => 'ほ',
        'ㇺ' => 'む',
        'ㇻ' => 'ら',
        'ㇼ' => 'り',
        'ㇽ' => 'る',
        'ㇾ' => 'れ',
        'ㇿ' => 'ろ',
        _ => c,
    }
}

/// The kana a long vowel mark after `c` (a hiragana) stands for.
fn long_vowel(c: char) -> Option<char> {
    const A: &str = "ぁあかがさざただなはばぱまゃやらゎわゕ";
    const I: &str = "ぃいきぎしじちぢにひびぴみりゐ";
    const U: &str = "ぅうくぐすずっつづぬふぶぷむゅゆるゔ";
    const E: &str = "ぇえけげせぜてでねへべぺめれゑゖ";
    const O: &str = "ぉおこごそぞとどのほぼぽもょよろを";
    if !('\u{3041}'..='\u{3096}').contains(&c) {
        return None;
    }
    if A.contains(c) {
        Some('あ')
    } else if I.contains(c) || E.contains(c) {
        Some('い')
    } else if U.contains(c) || O.contains(c) {
        Some('う')
    } else {
        None // ん
    }
}

fn name_key_with(s: &str, out: &mut String, sc: &mut Scratch) {
    out.clear();
    let h = stage_one(s, name_removed, sc);
    let src = held(s, sc, h);
    let mut last: Option<char> = None;
    let mut marks = false;
    for c in src.chars() {
        let c = fold_kana(c);
        let c = if c == '\u{30fc}' {
            match last.and_then(long_vowel) {
                Some(v) => v,
                None => continue,
            }
        } else {
            fold_variant(c)
        };
        marks |= matches!(c, '\u{3099}' | '\u{309a}');
        out.push(c);
        last = Some(c);
    }
    if marks {
        let key = std::mem::take(out);
        nfkc_into(&key, out);
    }
}

/// Clear `out` and write the match key of a family or given name.
pub fn name_key(s: &str, out: &mut String) {
    name_key_with(s, out, &mut Scratch::default());
}

#[inline]
fn kanji_digit(c: char) -> Option<u8> {
    Some(match c {
        '〇' => 0,
        '一' => 1,
        '二' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

#[inline]
fn kanji_multiplier(c: char) -> Option<u128> {
    match c {
        '十' => Some(10),
        '百' => Some(100),
        '千' => Some(1000),
        _ => None,
    }
}

#[inline]
fn is_kanji_numeral(c: char) -> bool {
    kanji_digit(c).is_some() || kanji_multiplier(c).is_some()
}

#[inline]
fn is_hyphen(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
            | '\u{30fc}'
            | '\u{ff0d}'
            | '\u{ff70}'
    )
}

/// Runs of more kanji numerals than this stay as they are.
const MAX_RUN: usize = 20;

/// Whether a number suffix (丁目, 番地, 番 but not 番町/番丁, 号, 地割) starts at `i`.
fn suffix_at(v: &[char], i: usize) -> bool {
    match v.get(i) {
        Some('丁') => v.get(i + 1) == Some(&'目'),
        Some('番') => !matches!(v.get(i + 1), Some('町' | '丁')),
        Some('号') => true,
        Some('地') => v.get(i + 1) == Some(&'割'),
        _ => false,
    }
}

/// The end of the kanji numeral run starting at `i`.
fn run_end(v: &[char], i: usize) -> usize {
    i + v[i..].iter().take_while(|&&c| is_kanji_numeral(c)).count()
}

/// Whether the kanji numeral run `v[i..j]` is converted: followed by a number
/// suffix, or (after a separator of a number) by the end, a hyphen, の or ノ.
fn converts(v: &[char], i: usize, j: usize, after_sep: bool) -> bool {
    j - i <= MAX_RUN
        && (suffix_at(v, j)
            || (after_sep
                && match v.get(j) {
                    None => true,
                    Some(&c) => is_hyphen(c) || c == 'の' || c == 'ノ',
                }))
}

/// Whether a number the key writes in digits starts at `i` in a separator's
/// context: an ASCII digit or a converted kanji run.
fn number_at(v: &[char], i: usize) -> bool {
    match v.get(i) {
        Some(c) if c.is_ascii_digit() => true,
        Some(&c) if is_kanji_numeral(c) => converts(v, i, run_end(v, i), true),
        _ => false,
    }
}

/// Write kanji numerals as Arabic digits.
fn write_number(run: &[char], out: &mut String) {
    if run.iter().all(|&c| kanji_digit(c).is_some()) {
        out.extend(
            run.iter()
                .filter_map(|&c| kanji_digit(c))
                .map(|d| char::from(b'0' + d)),
        );
        return;
    }
    let (mut total, mut cur, mut seen) = (0u128, 0u128, false);
    for &c in run {
        if let Some(d) = kanji_digit(c) {
            cur = cur * 10 + u128::from(d);
            seen = true;
        } else if let Some(m) = kanji_multiplier(c) {
            total += if seen { cur } else { 1 } * m;
            cur = 0;
            seen = false;
        }
    }
    total += cur;
    out.push_str(&total.to_string());
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// The last character written is not a number's separator.
    None,
    /// A "-" from 丁目, a hyphen or の.
    Plain,
    /// A "-" from 番 or 番地.
    Ban,
}

fn address_key_with(s: &str, out: &mut String, sc: &mut Scratch) {
    out.clear();
    let mut v = std::mem::take(&mut sc.chars);
    v.clear();
    let h = stage_one(s, address_removed, sc);
    let src = held(s, sc, h);
    // variants folded, then 大字 and 字 removed
    let mut after_oaza = false;
    for c in src.chars().map(fold_variant) {
        if c == '字' {
            if v.last() == Some(&'大') {
                v.pop();
                after_oaza = true;
                continue;
            }
            if after_oaza || matches!(v.last(), None | Some('町' | '村' | '郡' | '市' | '区'))
            {
                continue;
            }
        }
        v.push(c);
        after_oaza = false;
    }
    // numbers and separators
    let mut sep = Sep::None;
    let mut last_digit = false; // the last character written is an ASCII digit
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        if is_kanji_numeral(c) {
            let j = run_end(&v, i);
            if converts(&v, i, j, sep != Sep::None) {
                write_number(&v[i..j], out);
                last_digit = true;
            } else {
                drop_separator(out, sep);
                out.extend(&v[i..j]);
                last_digit = false;
            }
            sep = Sep::None;
            i = j;
            continue;
        }
        if c.is_ascii_digit() {
            out.push(c);
            last_digit = true;
            sep = Sep::None;
            i += 1;
            continue;
        }
        if last_digit {
            let (step, new_sep) = match c {
                '丁' if v.get(i + 1) == Some(&'目') => (2, Sep::Plain),
                '番' if v.get(i + 1) == Some(&'地') => (2, Sep::Ban),
                '番' if !matches!(v.get(i + 1), Some('町' | '丁')) => (1, Sep::Ban),
                '号' => (1, Sep::None),
                'の' | 'ノ' if number_at(&v, i + 1) => (1, Sep::Plain),
                c if is_hyphen(c) => (1, Sep::Plain),
                _ => (0, Sep::None),
            };
            if step > 0 {
                if new_sep != Sep::None {
                    out.push('-');
                    last_digit = false;
                }
                sep = new_sep;
                i += step;
                continue;
            }
        } else if sep != Sep::None {
            // after a separator, more separators are one: hyphens, の before a number,
            // and 丁目 / 番地 / 番 (not 番町, 番丁) / 号 written twice (1番番 → 1)
            let step = match c {
                c if is_hyphen(c) => 1,
                'の' | 'ノ' if number_at(&v, i + 1) => 1,
                '丁' if v.get(i + 1) == Some(&'目') => 2,
                '番' if v.get(i + 1) == Some(&'地') => 2,
                '番' if !matches!(v.get(i + 1), Some('町' | '丁')) => 1,
                '号' => 1,
                _ => 0,
            };
            if step > 0 {
                i += step;
                continue;
            }
        }
        drop_separator(out, sep);
        out.push(c);
        last_digit = false;
        sep = Sep::None;
        i += 1;
    }
    drop_separator(out, sep);
    sc.chars = v;
}

/// A separator's "-" stays only between two numbers: before anything else (a
/// building's name, the end) it goes (944番地 パレス → 944パレス, 1丁目 → 1).
fn drop_separator(out: &mut String, sep: Sep) {
    if sep != Sep::None {
        out.pop();
    }
}

/// Clear `out` and write the match key of an address.
pub fn address_key(s: &str, out: &mut String) {
    address_key_with(s, out, &mut Scratch::default());
}

/// Rows per parallel task.
const CHUNK: usize = 4096;

/// The keys of every value of a string column: `values` and `offsets` (`n + 1`
/// entries, 32- or 64-bit) as Arrow has them, `validity` Arrow's bitmap with
/// the column's first value at bit `bit_offset` (absent: every value is valid).
/// A null value gets an empty key (the caller keeps the column's validity).
fn column_keys<O: Offset + std::fmt::Display>(
    values: &[u8],
    offsets: &[O],
    validity: Option<(&[u8], usize)>,
    key: fn(&str, &mut String, &mut Scratch),
) -> Result<(Vec<u8>, Vec<i64>)> {
    let n = offsets.len().saturating_sub(1);
    if let Some((bits, bit_offset)) = validity {
        if bits.len() * 8 < bit_offset + n {
            return Err(CoreError::Invalid(format!(
                "validity bitmap of {} bytes is too short for {n} values at bit {bit_offset}",
                bits.len()
            )));
        }
    }
    let valid = |i: usize| {
        validity.is_none_or(|(bits, off)| {
            let b = off + i;
            bits[b / 8] & (1 << (b % 8)) != 0
        })
    };
    let range = |i: usize| -> Result<(usize, usize)> {
        let (s, e) = (offsets[i], offsets[i + 1]);
        s.position()
            .zip(e.position())
            .filter(|(s, e)| s <= e && *e <= values.len())
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "offsets {s}..{e} of value {i} are outside the {} data bytes",
                    values.len()
                ))
            })
    };
    // one chunk of rows: its keys' bytes and their ends
    let chunk = |start: usize| -> Result<(Vec<u8>, Vec<usize>)> {
        let end = (start + CHUNK).min(n);
        let mut sc = Scratch::default();
        let mut one = String::new();
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(end - start);
        for i in start..end {
            if valid(i) {
                let (s, e) = range(i)?;
                let text = simdutf8::basic::from_utf8(&values[s..e]).map_err(|_| {
                    CoreError::Invalid(format!("value {i} of the column is not UTF-8"))
                })?;
                key(text, &mut one, &mut sc);
                bytes.extend_from_slice(one.as_bytes());
            }
            ends.push(bytes.len());
        }
        Ok((bytes, ends))
    };
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let parts: Vec<Result<(Vec<u8>, Vec<usize>)>> = if n > CHUNK {
        starts.par_iter().map(|&s| chunk(s)).collect()
    } else {
        starts.iter().map(|&s| chunk(s)).collect()
    };
    let mut data = Vec::with_capacity(
        parts
            .iter()
            .map(|p| p.as_ref().map_or(0, |(b, _)| b.len()))
            .sum(),
    );
    let mut out_offsets = Vec::with_capacity(n + 1);
    out_offsets.push(0i64);
    for part in parts {
        // the first error in row order
        let (bytes, ends) = part?;
        let base = data.len();
        data.extend_from_slice(&bytes);
        out_offsets.extend(ends.iter().map(|&e| (base + e) as i64));
    }
    Ok((data, out_offsets))
}

/// The name keys ([`name_key`]) of a string column: UTF-8 bytes and `n + 1`
/// offsets as Arrow has them, optional validity (bitmap, bit offset). Returns
/// the keys' bytes and `n + 1` 64-bit offsets; a null value gets an empty key
/// (keep the input's validity). Invalid UTF-8 or offsets: `CoreError::Invalid`
/// naming the first such row.
pub fn name_keys<O: Offset + std::fmt::Display>(
    values: &[u8],
    offsets: &[O],
    validity: Option<(&[u8], usize)>,
) -> Result<(Vec<u8>, Vec<i64>)> {
    column_keys(values, offsets, validity, name_key_with)
}

/// The address keys ([`address_key`]) of a string column, as [`name_keys`].
pub fn address_keys<O: Offset + std::fmt::Display>(
    values: &[u8],
    offsets: &[O],
    validity: Option<(&[u8], usize)>,
) -> Result<(Vec<u8>, Vec<i64>)> {
    column_keys(values, offsets, validity, address_key_with)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tests::column;

    fn nk(s: &str) -> String {
        let mut out = String::from("junk");
        name_key(s, &mut out);
        out
    }

    fn ak(s: &str) -> String {
        let mut out = String::from("junk");
        address_key(s, &mut out);
        out
    }

    #[test]
    fn the_table_is_sorted_without_chains_or_nfkc_targets() {
        let t = &*VARIANTS;
        assert!(t.len() > 300, "{} pairs", t.len());
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        for &(v, s) in t {
            assert!(
                t.binary_search_by_key(&s, |&(x, _)| x).is_err(),
                "{v} -> {s} chains"
            );
            assert_eq!(s.to_string().nfkc().collect::<String>(), s.to_string());
            assert!(v as u32 >= 0x3400, "{v}");
        }
    }

    #[test]
    fn name_rule_1_nfkc() {
        assert_eq!(nk("ＡＢＣ１２３"), "ABC123");
        assert_eq!(nk("ｶﾞｸ"), "がく");
        assert_eq!(nk("\u{fa10}本"), "塚本");
        assert_eq!(nk("か゛"), "が"); // the spacing mark: NFKC, space removed, NFKC
    }

    #[test]
    fn name_rule_2_removals() {
        assert_eq!(nk(" 山\u{3000}田\t"), "山田");
        assert_eq!(nk("辻\u{e0100}"), "辻");
        assert_eq!(nk("葛\u{fe00}"), "葛");
        assert_eq!(nk("ジョン・スミス"), "じよんすみす");
        assert_eq!(nk("ｼﾞｮﾝ･ｽﾐｽ"), "じよんすみす");
        assert_eq!(nk("波〜"), "波〜");
    }

    #[test]
    fn name_rule_3_kana() {
        assert_eq!(nk("ヤマダ"), "やまだ");
        assert_eq!(nk("キョウコ"), nk("きようこ"));
        assert_eq!(nk("ぁぃぅぇぉっゃゅょゎゕゖ"), "あいうえおつやゆよわかけ");
        assert_eq!(nk("ァィゥェォッャュョヮヵヶ"), "あいうえおつやゆよわかけ");
        assert_eq!(
            nk("ㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"),
            "くしすとぬはひふへほむらりるれろ"
        );
        assert_eq!(nk("ヴ"), "ゔ");
        assert_eq!(nk("ヷ"), "ヷ");
        assert_eq!(nk("サヽキ"), "さゝき");
        assert_eq!(nk("ㇰ\u{3099}"), "ぐ");
    }

    #[test]
    fn name_rule_4_long_vowel() {
        assert_eq!(nk("ユーコ"), nk("ゆうこ"));
        assert_eq!(nk("コーイチ"), "こういち");
        assert_eq!(nk("ケーコ"), "けいこ");
        assert_eq!(nk("サーヤ"), "さあや");
        assert_eq!(nk("ミーナ"), "みいな");
        assert_eq!(nk("ｷｰｽ"), "きいす");
        assert_eq!(nk("ユーー"), "ゆうう");
        assert_eq!(nk("ンー"), "ん");
        assert_eq!(nk("ー"), "");
        assert_eq!(nk("山ー"), "山");
        assert_eq!(nk("チャーリー"), "ちやありい");
        assert_eq!(nk("〜～"), "〜~"); // ～ is ~ after NFKC, neither is a long vowel
    }

    #[test]
    fn name_rule_5_variants() {
        for (v, s) in [
            ("髙橋", "高橋"),
            ("山﨑", "山崎"),
            ("山嵜", "山崎"),
            ("渡邊", "渡辺"),
            ("渡邉", "渡辺"),
            ("齋藤", "斎藤"),
            ("齊藤", "斉藤"),
            ("澤田", "沢田"),
            ("櫻井", "桜井"),
            ("廣田", "広田"),
            ("國分", "国分"),
            ("濱田", "浜田"),
            ("小嶋", "小島"),
            ("德永", "徳永"),
            ("瀨川", "瀬川"),
            ("冨田", "富田"),
            ("惠子", "恵子"),
            ("龍馬", "竜馬"),
            ("槇原", "槙原"),
            ("𠮷田", "吉田"),
            ("學", "学"),
            ("藝", "芸"),
            ("驛", "駅"),
        ] {
            assert_eq!(nk(v), s, "{v}");
            assert_eq!(nk(s), s, "{s} is standard");
        }
        // different standard characters stay apart
        assert_ne!(nk("斉藤"), nk("斎藤"));
        assert_ne!(nk("高"), nk("髙橋"));
        assert_eq!(nk("辻"), nk("辻\u{e0101}"));
    }

    #[test]
    fn name_edge_cases() {
        assert_eq!(nk(""), "");
        assert_eq!(nk("   "), "");
        assert_eq!(nk("Smith"), "Smith");
        assert_eq!(nk("O'Brien"), "O'Brien");
    }

    #[test]
    fn address_common_stage() {
        assert_eq!(ak("東京都　千代田区 霞が関"), "東京都千代田区霞が関");
        assert_eq!(ak("櫻木町"), "桜木町");
        assert_eq!(ak("辻\u{e0100}堂"), "辻堂");
        assert_eq!(ak("ﾃｽﾄ・ビル"), "テスト・ビル"); // no kana folding, dot kept
        assert_eq!(ak(""), "");
        assert_eq!(ak("123 Main St"), "123MainSt");
    }

    #[test]
    fn address_numbers_are_canonical() {
        let want = "1-2-3";
        for s in [
            "1丁目2番3号",
            "1-2-3",
            "１－２－３",
            "一丁目二番地三",
            "1丁目2番地の3",
            "1‐2‐3",
            "1−2−3",
            "1ー2ー3",
            "1ｰ2ｰ3",
            "1—2―3",
            "1の2の3",
            "一丁目二番三号",
            "1-2-3-",
            "1丁目-2-3",
        ] {
            assert_eq!(ak(s), want, "{s}");
        }
        assert_eq!(ak("十日町一丁目"), "十日町1");
        assert_eq!(ak("944番地"), "944");
        assert_eq!(ak("1丁目2番"), "1-2");
        assert_eq!(ak("二十三番地"), "23");
        assert_eq!(ak("百五番地"), "105");
        assert_eq!(ak("千二百番地"), "1200");
        assert_eq!(ak("一〇五番地"), "105");
        assert_eq!(ak("二千三百四十五番"), "2345");
        assert_eq!(ak("第一地割"), "第1地割");
        assert_eq!(ak("3号"), "3");
    }

    #[test]
    fn address_place_names_keep_their_numerals() {
        for s in [
            "一宮市",
            "五十嵐",
            "三田",
            "八王子市",
            "四日市市",
            "十日町市",
            "九段北",
            "六本木",
            "二俣川",
            "千代田区三番町",
            "仙台市青葉区一番町",
            "三番丁",
        ] {
            assert_eq!(ak(s), s, "{s}");
        }
        assert_eq!(ak("千代田区三番町5番地"), "千代田区三番町5");
        assert_eq!(ak("六本木六丁目10番1号"), "六本木6-10-1");
        assert_eq!(ak("九段北一丁目三田ビル"), "九段北1三田ビル");
    }

    #[test]
    fn address_oaza_and_aza() {
        let want = ak("北海道名寄市風連町大町944番地5");
        assert_eq!(want, "北海道名寄市風連町大町944-5");
        assert_eq!(ak("北海道名寄市風連町大字大町944-5"), want);
        assert_eq!(ak("北海道名寄市風連町大町９４４番地の５"), want);
        assert_eq!(ak("北海道名寄市風連町字大町944の5"), want);
        assert_eq!(ak("字大町"), "大町");
        assert_eq!(ak("大字熊野字北原"), "熊野字北原");
        assert_eq!(ak("某村大字字北原"), "某村北原");
        assert_eq!(ak("十字路"), "十字路");
        assert_eq!(ak("赤字町"), "赤字町");
        assert_eq!(ak("大大字字"), ""); // 大字 removed twice
    }

    const CORPUS: &[&str] = &[
        "",
        "ユーコ",
        "ンー",
        "か゛",
        "ㇰ\u{3099}ー",
        "ﾃﾞｰﾀ",
        "  a  ",
        "1丁目2番3号",
        "十日町一丁目",
        "1-2-3-",
        "1-",
        "2番三の4",
        "2番地の三号",
        "大大字字",
        "町字字X",
        "一二三四五六七八九〇一二三四五六七八九〇一番",
        "千千千千千千千千千千千千千千千千千千千千番",
        "九千九百九十九番地九千九百九十九",
        "1--2",
        "1の-2",
        "-1-",
        "a\u{0308}¨",
        "北海道名寄市風連町大字大町９４４番地の５",
        "髙﨑\u{fa10}ヴァイオリン・ケーキ",
    ];

    #[test]
    fn keys_are_idempotent() {
        for s in CORPUS {
            let (n, a) = (nk(s), ak(s));
            assert_eq!(nk(&n), n, "name {s:?}");
            assert_eq!(ak(&a), a, "address {s:?}");
        }
        // and over every pair of some tricky characters
        let alphabet: Vec<char> = "1一十番地丁目号の-ー字大町 ゛ヵ\u{3099}ン"
            .chars()
            .collect();
        for &x in &alphabet {
            for &y in &alphabet {
                for &z in &alphabet {
                    let s: String = [x, y, z].iter().collect();
                    let (n, a) = (nk(&s), ak(&s));
                    assert_eq!(nk(&n), n, "name {s:?}");
                    assert_eq!(ak(&a), a, "address {s:?}");
                }
            }
        }
    }

    fn strings(data: &[u8], offsets: &[i64]) -> Vec<String> {
        offsets
            .windows(2)
            .map(|w| String::from_utf8(data[w[0] as usize..w[1] as usize].to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn columns_match_the_scalar_keys_serial_and_parallel() {
        for n in [0, 3, CHUNK * 2 + 17] {
            let values: Vec<Option<&str>> = (0..n)
                .map(|i| {
                    if i % 7 == 3 {
                        None
                    } else {
                        Some(CORPUS[i % CORPUS.len()])
                    }
                })
                .collect();
            let (data, offsets, bits) = column(&values);
            let (kd, ko) = name_keys(&data, &offsets, Some((&bits, 0))).unwrap();
            let (ad, ao) = address_keys(&data, &offsets, None).unwrap();
            assert_eq!(ko.len(), n + 1);
            let (names, addrs) = (strings(&kd, &ko), strings(&ad, &ao));
            for (i, v) in values.iter().enumerate() {
                assert_eq!(names[i], v.map(nk).unwrap_or_default(), "row {i}");
                assert_eq!(addrs[i], ak(v.unwrap_or("")), "row {i}");
            }
        }
    }

    #[test]
    fn columns_refuse_bad_bytes_offsets_and_bitmaps() {
        let err = name_keys(b"ab\xff", &[0i64, 2, 3], None).unwrap_err();
        assert!(err.to_string().contains("value 1"), "{err}");
        let err = address_keys("山".as_bytes(), &[0i32, 1], None).unwrap_err();
        assert!(err.to_string().contains("value 0"), "{err}");
        assert!(name_keys(b"abc", &[0i32, 5], None).is_err());
        assert!(name_keys(b"abc", &[2i32, 1], None).is_err());
        assert!(name_keys(b"abc", &[0i32, 1, 2], Some((&[][..], 0))).is_err());
        // a null row's bytes are not read
        let (d, o) = name_keys(b"a\xff", &[0i32, 1, 2], Some((&[0b01][..], 0))).unwrap();
        assert_eq!((d, o), (b"a".to_vec(), vec![0, 1, 1]));
        // an error in a late chunk of a parallel column names its row
        let n = CHUNK * 3;
        let mut data = vec![b'a'; n];
        data[CHUNK * 2 + 5] = 0xff;
        let offsets: Vec<i64> = (0..=n as i64).collect();
        let err = address_keys(&data, &offsets, None).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("value {}", CHUNK * 2 + 5)),
            "{err}"
        );
    }
}

/// The index's keys ([`crate::index::Keys`]): [`name_key`] and [`address_key`]
/// (which clear `out` first, as the index does before asking for a key).
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchKeys;

impl crate::index::Keys for MatchKeys {
    fn name(&self, s: &str, out: &mut String) {
        name_key(s, out);
    }
    fn address(&self, s: &str, out: &mut String) {
        address_key(s, out);
    }
}
