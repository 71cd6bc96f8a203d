"""The pure-Python baseline of jukicore's match keys (``rust/core/src/normalize.rs``).

The same rules, written as well as pure Python allows: ``unicodedata.normalize("NFKC")``,
``jaconv.kata2hira``, one ``str.translate`` table for the removals and one for small kana
and the variant kanji (read from the same ``rust/core/data/kanji_variants.tsv``), a
regular expression for the long vowel mark, and a scan of the characters only where an
address holds a digit, a kanji numeral or 字. ``tests/identity/test_normalize.py`` checks
that it gives jukicore's keys.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import jaconv

TABLE = Path(__file__).resolve().parents[1] / "rust" / "core" / "data" / "kanji_variants.tsv"


def _variants() -> dict[int, str]:
    out: dict[int, str] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            variant, standard, _ = line.split("\t")
            out[ord(variant)] = standard
    return out


VARIANTS = _variants()
# Rust's char::is_whitespace (White_Space), not str.isspace (which adds U+001C..U+001F)
_SPACES = ("\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
           + "\u2028\u2029\u202f\u205f\u3000")
_VS = [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
_ADDRESS_REMOVED: dict[int, None] = {ord(c): None for c in _SPACES} | dict.fromkeys(_VS)
_NAME_REMOVED: dict[int, None] = _ADDRESS_REMOVED | {0x30FB: None}
_SMALL = dict(zip("ぁぃぅぇぉっゃゅょゎゕゖㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ",
                  "あいうえおつやゆよわかけくしすとぬはひふへほむらりるれろ", strict=True))
_NAME_FOLD: dict[int, str] = {ord(k): v for k, v in _SMALL.items()} | VARIANTS
_VOWEL = {c: v for v, cs in (("あ", "ぁあかがさざただなはばぱまゃやらゎわゕ"),
                             ("い", "ぃいきぎしじちぢにひびぴみりゐ"),
                             ("い", "ぇえけげせぜてでねへべぺめれゑゖ"),
                             ("う", "ぅうくぐすずっつづぬふぶぷむゅゆるゔ"),
                             ("う", "ぉおこごそぞとどのほぼぽもょよろを"))
          for c in cs}
_LONG = re.compile("([^ー]?)(ー+)")


def _stage_one(s: str, removed: dict[int, None]) -> str:
    t = unicodedata.normalize("NFKC", s)
    u = t.translate(removed)
    if len(u) != len(t):
        u = unicodedata.normalize("NFKC", u)
    return u


def _long(m: re.Match[str]) -> str:
    c = m.group(1)
    v = _VOWEL.get(c)
    return c + v * len(m.group(2)) if v else c


def name_key(s: str) -> str:
    u = jaconv.kata2hira(_stage_one(s, _NAME_REMOVED)).translate(_NAME_FOLD)
    if "ー" in u:
        u = _LONG.sub(_long, u)
    if "\u3099" in u or "\u309a" in u:
        u = unicodedata.normalize("NFKC", u)
    return u


_KD = {c: i for i, c in enumerate("〇一二三四五六七八九")}
_KM = {"十": 10, "百": 100, "千": 1000}
_KN = set(_KD) | set(_KM)
_HYPHENS = set("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d\uff70")
_DIGITS = set("0123456789")
_NUMBERISH = re.compile("[0-9〇一二三四五六七八九十百千]")
_AZA_AFTER = set("町村郡市区")
MAX_RUN = 20


def _aza(u: str) -> str:
    out: list[str] = []
    after_oaza = False
    for c in u:
        if c == "字":
            if out and out[-1] == "大":
                out.pop()
                after_oaza = True
                continue
            if after_oaza or not out or out[-1] in _AZA_AFTER:
                continue
        out.append(c)
        after_oaza = False
    return "".join(out)


def _suffix_at(v: str, i: int) -> bool:
    c = v[i : i + 2]
    return c[:1] == "号" or c in {"丁目", "地割"} or (c[:1] == "番" and c[1:] not in {"町", "丁"})


def _run_end(v: str, i: int) -> int:
    n = len(v)
    while i < n and v[i] in _KN:
        i += 1
    return i


def _converts(v: str, i: int, j: int, after_sep: bool) -> bool:
    return j - i <= MAX_RUN and (
        _suffix_at(v, j) or (after_sep and (j == len(v) or v[j] in _HYPHENS or v[j] in "のノ")))


def _number_at(v: str, i: int) -> bool:
    if i >= len(v):
        return False
    c = v[i]
    if c in _DIGITS:
        return True
    return c in _KN and _converts(v, i, _run_end(v, i), True)


def _number(run: str) -> str:
    if not any(c in _KM for c in run):
        return "".join(str(_KD[c]) for c in run)
    total = cur = 0
    seen = False
    for c in run:
        if c in _KD:
            cur = cur * 10 + _KD[c]
            seen = True
        else:
            total += (cur if seen else 1) * _KM[c]
            cur = 0
            seen = False
    return str(total + cur)


def _numbers(v: str) -> str:
    out: list[str] = []
    sep = ""  # "", "plain" or "ban"
    last_digit = False
    i, n = 0, len(v)
    while i < n:
        c = v[i]
        if c in _KN:
            j = _run_end(v, i)
            if _converts(v, i, j, sep != ""):
                out.append(_number(v[i:j]))
                last_digit = True
            else:
                if sep:  # a separator stays only between two numbers
                    out.pop()
                out.append(v[i:j])
                last_digit = False
            sep = ""
            i = j
            continue
        if c in _DIGITS:
            out.append(c)
            last_digit = True
            sep = ""
            i += 1
            continue
        if last_digit:
            nxt = v[i + 1] if i + 1 < n else ""
            step, new = 0, ""
            if c == "丁" and nxt == "目":
                step, new = 2, "plain"
            elif c == "番" and nxt == "地":
                step, new = 2, "ban"
            elif c == "番" and nxt not in ("町", "丁"):
                step, new = 1, "ban"
            elif c == "号":
                step = 1
            elif (c in "のノ" and _number_at(v, i + 1)) or c in _HYPHENS:
                step, new = 1, "plain"
            if step:
                if new:
                    out.append("-")
                    last_digit = False
                sep = new
                i += step
                continue
        elif sep:
            # after a separator, more separators are one (1番番 → 1)
            nxt = v[i + 1] if i + 1 < n else ""
            step = 0
            if c in _HYPHENS or (c in "のノ" and _number_at(v, i + 1)) or c == "号":
                step = 1
            elif (c == "丁" and nxt == "目") or (c == "番" and nxt == "地"):
                step = 2
            elif c == "番" and nxt not in ("町", "丁"):
                step = 1
            if step:
                i += step
                continue
        if sep:
            out.pop()
        out.append(c)
        last_digit = False
        sep = ""
        i += 1
    if sep:
        out.pop()
    return "".join(out)


def address_key(s: str) -> str:
    u = _stage_one(s, _ADDRESS_REMOVED).translate(VARIANTS)
    if "字" in u:
        u = _aza(u)
    if _NUMBERISH.search(u):
        u = _numbers(u)
    return u


def name_keys(values: list[str]) -> list[str]:
    return [name_key(s) for s in values]


def address_keys(values: list[str]) -> list[str]:
    return [address_key(s) for s in values]
