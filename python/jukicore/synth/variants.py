"""Agency queries with realistic spelling variants, and decoys, for recall and precision.

An agency that searches a person by name + birth date + sex + address rarely spells
the name and address exactly as the register does. :func:`spelling_variants` turns
register rows into such queries, one kind of difference (or two) at a time, and
says which kinds it applied; :func:`decoys` makes queries that must match nobody.

Kinds (:data:`VARIANT_KINDS`), each applied only where it changes the text:

``width``
    full-width digits and ASCII in the address (``1丁目2番3号`` -> ``１丁目２番３号``,
    or back), half-width katakana in kana names (``ヤマダ`` -> ``ﾔﾏﾀﾞ``, or back).
``kana``
    a given name written in hiragana is written in katakana, or the reverse (names
    in kanji are skipped).
``small_kana``
    small kana written large in kana names (``ッ`` -> ``ツ``, ``ャ`` -> ``ヤ``).
``long_vowel``
    a vowel that lengthens the kana before it written ``ー`` (``ユウコ`` -> ``ユーコ``,
    ``コウイチ`` -> ``コーイチ``, ``ケイコ`` -> ``ケーコ``, ``オオタ`` -> ``オータ``).
``space``
    a space or U+3000 inside the family or given name, or between address parts.
``itaiji``
    a 異体字 for one kanji of a name (``高`` <-> ``髙``, ``沢`` <-> ``澤``, ``辺`` <->
    ``邊``/``邉`` ..., :data:`ITAIJI`), or a variation selector (U+E0100) after one.
``address_numbers``
    the street numbers written another way (``944番地5`` / ``944-5`` / ``９４４番地の５`` /
    ``944番5``; ``2丁目`` / ``二丁目`` / ``2-``; 番地/番/号/hyphen), or ``大字`` put before the
    town (from the ``town`` column) or taken away.

Meaning is kept: no digit changes its value, and numerals that belong to a place name
(一宮, 五十嵐, 三田, 八王子, 十日町, 第2地割 ...) are never touched: only the numbers of
the street part at the end of the address (before the building) are rewritten.

The generator is plain Python over rows (a few microseconds per row): it makes test
and benchmark queries, not production data. Results depend only on the arguments
(each row has its own random stream, so sampling with ``rate`` does not change how a
kept row is spelled).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from jukicore.errors import InvalidInputError

__all__ = ["ITAIJI", "VARIANT_KINDS", "decoys", "fold_name", "spelling_variants"]

#: Every kind, in the order they are applied when a row gets more than one.
VARIANT_KINDS: tuple[str, ...] = (
    "itaiji",
    "kana",
    "small_kana",
    "long_vowel",
    "address_numbers",
    "space",
    "width",
)

_DATA_FILE = Path(__file__).resolve().parent.parent / "_data" / "synth_names.json"

# Old forms (旧字体) and other 異体字 seen in names, beyond synth_names.json.
_OLD_FORMS: dict[str, tuple[str, ...]] = {
    "沢": ("澤",), "広": ("廣",), "国": ("國",), "浜": ("濱",), "桜": ("櫻",),
    "辺": ("邊", "邉"), "斎": ("齋", "齊"), "斉": ("齊",), "崎": ("﨑", "嵜"),
    "島": ("嶋",), "寿": ("壽",), "栄": ("榮",), "恵": ("惠",), "真": ("眞",),
    "実": ("實",), "条": ("條",), "関": ("關",), "滝": ("瀧",), "竜": ("龍",),
    "黒": ("黑",), "亀": ("龜",), "万": ("萬",), "宝": ("寶",), "礼": ("禮",),
    "桧": ("檜",), "蔵": ("藏",), "横": ("橫",), "清": ("淸",), "渕": ("淵",),
    "柳": ("栁",), "館": ("舘",), "峰": ("峯",), "来": ("來",), "郎": ("郞",),
    "穂": ("穗",), "徳": ("德",), "富": ("冨",), "吉": ("𠮷",),
}


def _itaiji_table() -> dict[str, tuple[str, ...]]:
    with _DATA_FILE.open(encoding="utf-8") as fh:
        curated: dict[str, list[str]] = json.load(fh)["surname_variants"]
    table: dict[str, list[str]] = {k: list(v) for k, v in curated.items()}
    for std, forms in _OLD_FORMS.items():
        table.setdefault(std, [])
        table[std] += [f for f in forms if f not in table[std]]
    # 齊 is 斉's old form, not 斎's: 斉藤 and 斎藤 are different names, not two spellings
    table["斎"] = [f for f in table.get("斎", []) if f != "齊"]
    return {k: tuple(f for f in v if f != k) for k, v in table.items() if v}


#: Standard kanji -> its variant forms (synth_names.json's surname_variants + old forms).
ITAIJI: Mapping[str, tuple[str, ...]] = _itaiji_table()
_TO_STANDARD: dict[str, str] = {f: std for std, forms in ITAIJI.items() for f in forms}

_VS17 = "\U000e0100"
_SPACES = (" ", "\u3000")


def _is_variation_selector(ch: str) -> bool:
    o = ord(ch)
    return 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF


def _is_kanji(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x3FFFF
            or 0xF900 <= o <= 0xFAFF)


def fold_name(text: str) -> str:
    """A name reduced past every ``itaiji``, ``width`` and ``space`` variant.

    NFKC, variation selectors and spaces removed, each 異体字 of :data:`ITAIJI` written
    in its standard form. Used by :func:`decoys` to be sure a decoy's family name is
    really another name (髙橋 is not another name than 高橋).
    """
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if _is_variation_selector(ch) or ch.isspace():
            continue
        out.append(_TO_STANDARD.get(ch, ch))
    return "".join(out)


# --------------------------------------------------------------------------- kana

_HIRA = re.compile(r"^[\u3041-\u3096\u309d\u309eー]+$")
_KATA = re.compile(r"^[\u30a1-\u30f6\u30fd\u30feー]+$")
_SMALL = dict(zip("ァィゥェォッャュョヮヵヶぁぃぅぇぉっゃゅょゎゕゖ",
                  "アイウエオツヤユヨワカケあいうえおつやゆよわかけ", strict=True))
_ROWS = {
    "a": "アカサタナハマヤラワガザダバパァャヮヵ",
    "i": "イキシチニヒミリギジヂビピィヰ",
    "u": "ウクスツヌフムユルグズヅブプゥュヴ",
    "e": "エケセテネヘメレゲゼデベペェヱヶ",
    "o": "オコソトノホモヨロヲゴゾドボポォョ",
}
_VOWEL_OF: dict[str, str] = {}
for _v, _chars in _ROWS.items():
    for _c in _chars:
        _VOWEL_OF[_c] = _v
        if "\u30a1" <= _c <= "\u30f6":
            _VOWEL_OF[chr(ord(_c) - 0x60)] = _v  # hiragana
# the kana that lengthens a vowel, and the vowels it lengthens
_LENGTHENS = {"ウ": "uo", "イ": "ie", "ア": "a", "オ": "o", "エ": "e",
              "う": "uo", "い": "ie", "あ": "a", "お": "o", "え": "e"}


def _to_katakana(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)


def _to_hiragana(text: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in text)


def _half_width_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for o in range(0xFF61, 0xFFA0):
        half = chr(o)
        full = unicodedata.normalize("NFKC", half)
        if len(full) == 1 and "\u30a1" <= full <= "\u30fc":
            table.setdefault(full, half)
    for o in range(0x30A1, 0x30F7):
        full = chr(o)
        if full in table:
            continue
        nfd = unicodedata.normalize("NFD", full)
        base, marks = nfd[0], nfd[1:]
        if base in table and marks == "\u3099":
            table[full] = table[base] + "\uff9e"
        elif base in table and marks == "\u309a":
            table[full] = table[base] + "\uff9f"
    return table


_HALF_KANA = _half_width_table()


def _long_vowel(text: str) -> str:
    out = list(text)
    for j in range(1, len(text)):
        modes = _LENGTHENS.get(text[j])
        prev = out[j - 1]
        if modes and prev != "ー" and _VOWEL_OF.get(prev, "") in modes and (
            j + 1 >= len(text) or text[j + 1] not in _SMALL
        ):  # キウィ: ウ carries the small ィ, it is not a long vowel
            out[j] = "ー"
    return "".join(out)


# --------------------------------------------------------------------------- width

def _to_full_width(text: str) -> str:
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


def _to_half_width_ascii(text: str) -> str:
    return "".join(
        " " if c == "\u3000" else chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c
        for c in text
    )


def _half_kana(text: str) -> str:
    return "".join(_HALF_KANA.get(c, c) for c in text)


# --------------------------------------------------------------------------- address

_DIGITS = "0-9０-９"
_ALL_DIGITS = "0123456789０１２３４５６７８９"
_KANJI_DIGITS = "〇一二三四五六七八九"
_SEP = r"(?:番地の|番地|番|号|[-－‐−])"
_CHOME_RE = re.compile(
    rf"(?P<c>[{_DIGITS}]+|[{_KANJI_DIGITS}十]+)(?P<cw>丁目|[-－‐−])"
    rf"(?P<a>[{_DIGITS}]+)(?:{_SEP}(?P<b>[{_DIGITS}]+))?(?:番地|番|号)?$"
)
_BANCHI_RE = re.compile(
    rf"(?P<a>[{_DIGITS}]+)(?:{_SEP}(?P<b>[{_DIGITS}]+))?(?:番地|番|号)?$"
)
_PREFECTURE_RE = re.compile(r"^(?:東京都|北海道|京都府|大阪府|.{2,3}県)")


def _kanji_number(n: int) -> str | None:
    """1..99 in kanji numerals as written before 丁目 (二, 十, 十二, 二十三); else None."""
    if not 0 < n < 100:
        return None
    tens, ones = divmod(n, 10)
    head = "" if tens == 0 else "十" if tens == 1 else _KANJI_DIGITS[tens] + "十"
    return head + (_KANJI_DIGITS[ones] if ones else "")


def _parse_kanji_number(text: str) -> int:
    """The inverse of :func:`_kanji_number` (also plain digit strings like 二〇)."""
    if "十" not in text:
        return int("".join(str(_KANJI_DIGITS.index(c)) for c in text))
    tens, _, ones = text.partition("十")
    return (_KANJI_DIGITS.index(tens) if tens else 1) * 10 + (
        _KANJI_DIGITS.index(ones) if ones else 0)


def _number(text: str) -> int:
    text = unicodedata.normalize("NFKC", text)
    return int(text) if text.isdigit() else _parse_kanji_number(text)


@dataclass(frozen=True)
class _Street:
    start: int  # where the street numbers begin in the main part of the address
    chome: int | None
    a: int
    b: int | None


def _parse_street(main: str) -> _Street | None:
    m = _CHOME_RE.search(main)
    if m and m.group("cw") == "丁目":
        return _Street(m.start(), _number(m.group("c")), _number(m.group("a")),
                       _number(m.group("b")) if m.group("b") else None)
    m = _BANCHI_RE.search(main)
    if m:
        return _Street(m.start(), None, _number(m.group("a")),
                       _number(m.group("b")) if m.group("b") else None)
    return None


def _street_forms(s: _Street, after_digit: bool, full_width: bool) -> list[str]:
    """Ways to write the same street numbers (the original among them, maybe)."""
    a, b, c = s.a, s.b, s.chome
    forms: list[str]
    if c is not None:
        kc = _kanji_number(c)
        if b is not None:
            forms = [f"{c}丁目{a}番{b}号", f"{c}丁目{a}-{b}", f"{c}丁目{a}番地{b}",
                     f"{c}丁目{a}番地の{b}", f"{c}丁目{a}番{b}"]
            if not after_digit:
                forms.append(f"{c}-{a}-{b}")
            if kc:
                forms += [f"{kc}丁目{a}番{b}号", f"{kc}丁目{a}-{b}"]
        else:
            forms = [f"{c}丁目{a}番", f"{c}丁目{a}番地", f"{c}丁目{a}"]
            if not after_digit:
                forms.append(f"{c}-{a}")
            if kc:
                forms += [f"{kc}丁目{a}番", f"{kc}丁目{a}番地"]
    elif b is not None:
        forms = [f"{a}番地{b}", f"{a}番地の{b}", f"{a}番{b}", f"{a}番{b}号"]
        if not after_digit:
            forms.append(f"{a}-{b}")
    else:
        forms = [f"{a}番地", f"{a}番"]
        if not after_digit:
            forms.append(f"{a}")
    if full_width:
        forms += [_to_full_width(f) for f in forms[:2]]
    return forms


def _split_building(address: str) -> tuple[str, str]:
    """(main part, the rest from the first space on: the building)."""
    m = re.search(r"[ \u3000]", address)
    return (address, "") if m is None else (address[: m.start()], address[m.start():])


def _oaza(main: str, town: str | None, street: _Street | None) -> str | None:
    """``main`` with 大字 put before the town or taken away; None when not applicable.

    The town is looked for just before the street numbers (十日町市十日町: the second)."""
    if not town:
        return None
    bare = town.removeprefix("大字")
    i = main.rfind(bare, 0, len(main) if street is None else street.start)
    has_chome = street is not None and street.chome is not None
    if i < 0:
        return None
    if main[max(0, i - 2):i] == "大字":
        return main[: i - 2] + main[i:]
    if has_chome or main[:i].endswith("区"):
        return None  # 大字 goes with 番地 addresses of cities, towns and villages
    return main[:i] + "大字" + main[i:]


# --------------------------------------------------------------------------- rows

_NAME_FIELDS = ("family_name", "given_name")
_KANA_FIELDS = ("family_name_kana", "given_name_kana")


@dataclass
class _Row:
    fields: dict[str, str | None]
    town: str | None
    prefecture: str | None
    municipality: str | None
    # set when ``width`` follows: full-width street numbers it might turn back
    plain_digits: bool = False

    def kana_fields(self) -> list[str]:
        """Fields written in kana: the readings, and a name written in kana."""
        out = [f for f in _KANA_FIELDS if self.fields.get(f)]
        out += [f for f in _NAME_FIELDS
                if (v := self.fields.get(f)) and (_HIRA.match(v) or _KATA.match(v))]
        return out


def _apply_itaiji(row: _Row, rng: random.Random) -> bool:
    spots: list[tuple[str, int, str]] = []  # field, position, replacement
    vs_spots: list[tuple[str, int]] = []
    for f in _NAME_FIELDS:
        v = row.fields.get(f) or ""
        for i, ch in enumerate(v):
            if ch in ITAIJI:
                spots += [(f, i, form) for form in ITAIJI[ch]]
            elif ch in _TO_STANDARD:
                spots.append((f, i, _TO_STANDARD[ch]))
            if _is_kanji(ch) and not (i + 1 < len(v) and _is_variation_selector(v[i + 1])):
                vs_spots.append((f, i))
    if spots and (not vs_spots or rng.random() < 0.75):
        f, i, rep = rng.choice(spots)
        v = row.fields[f] or ""
        row.fields[f] = v[:i] + rep + v[i + 1:]
        return True
    if vs_spots:
        f, i = rng.choice(vs_spots)
        v = row.fields[f] or ""
        row.fields[f] = v[: i + 1] + _VS17 + v[i + 1:]
        return True
    return False


def _apply_kana(row: _Row, rng: random.Random) -> bool:
    v = row.fields.get("given_name")
    if not v:
        return False
    if _HIRA.match(v):
        new = _to_katakana(v)
    elif _KATA.match(v):
        new = _to_hiragana(v)
    else:
        return False
    row.fields["given_name"] = new
    return new != v


def _map_kana_fields(row: _Row, fn: Callable[[str], str]) -> bool:
    changed = False
    for f in row.kana_fields():
        v = row.fields[f] or ""
        new = fn(v)
        if new != v:
            row.fields[f] = new
            changed = True
    return changed


def _apply_small_kana(row: _Row, rng: random.Random) -> bool:
    return _map_kana_fields(row, lambda v: "".join(_SMALL.get(c, c) for c in v))


def _apply_long_vowel(row: _Row, rng: random.Random) -> bool:
    return _map_kana_fields(row, _long_vowel)


def _apply_address_numbers(row: _Row, rng: random.Random) -> bool:
    address = row.fields.get("address")
    if not address:
        return False
    main, rest = _split_building(address)
    street = _parse_street(main)
    options: list[str] = []
    if street is not None:
        old = main[street.start:]
        after_digit = street.start > 0 and main[street.start - 1] in _ALL_DIGITS
        forms = [f for f in _street_forms(street, after_digit, not row.plain_digits) if f != old]
        if forms:
            options.append(main[: street.start] + rng.choice(forms))
    oaza = _oaza(main, row.town, street)
    if oaza is not None:
        if options and rng.random() < 0.3:  # both: 大字 and the numbers
            renumbered = options[0]
            options = [_oaza(renumbered, row.town, _parse_street(renumbered)) or renumbered]
        else:
            options.append(oaza)
    if not options:
        return False
    row.fields["address"] = rng.choice(options) + rest
    return True


def _address_split_points(row: _Row, main: str) -> list[int]:
    points: set[int] = set()
    pos = 0
    if row.prefecture and main.startswith(row.prefecture):
        pos = len(row.prefecture)
    elif m := _PREFECTURE_RE.match(main):
        pos = m.end()
    if pos:
        points.add(pos)
    if row.municipality and main.startswith(row.municipality, pos):
        points.add(pos + len(row.municipality))
    if row.town and (i := main.find(row.town, pos)) > 0:
        points.update((i, i + len(row.town)))
    street = _parse_street(main)
    if street is not None:
        points.add(street.start)
    return sorted(p for p in points if 0 < p < len(main))


def _apply_space(row: _Row, rng: random.Random) -> bool:
    spots: list[tuple[str, int]] = []
    for f in _NAME_FIELDS:
        v = row.fields.get(f) or ""
        spots += [(f, i) for i in range(1, len(v)) if not _is_variation_selector(v[i])]
    address = row.fields.get("address")
    if address:
        main, _ = _split_building(address)
        spots += [("address", i) for i in _address_split_points(row, main)]
    if not spots:
        return False
    f, i = rng.choice(spots)
    v = row.fields[f] or ""
    row.fields[f] = v[:i] + rng.choice(_SPACES) + v[i:]
    return True


def _apply_width(row: _Row, rng: random.Random) -> bool:
    choices: list[tuple[str, Callable[[str], str]]] = []
    address = row.fields.get("address")
    if address:
        if re.search(r"[!-~]", address):
            choices.append(("address", _to_full_width))
        elif re.search(r"[\uff01-\uff5e]", address):
            choices.append(("address", _to_half_width_ascii))
    for f in row.kana_fields():
        v = row.fields[f] or ""
        if any(c in _HALF_KANA for c in v):
            choices.append((f, _half_kana))
        elif any("\uff61" <= c <= "\uff9f" for c in v):
            choices.append((f, lambda s: unicodedata.normalize("NFKC", s)))
    if not choices:
        return False
    picked = [c for c in choices if rng.random() < 0.5] or [rng.choice(choices)]
    changed = False
    for f, fn in picked:
        v = row.fields[f] or ""
        new = fn(v)
        changed |= new != v
        row.fields[f] = new
    return changed


_APPLY: dict[str, Callable[[_Row, random.Random], bool]] = {
    "itaiji": _apply_itaiji,
    "kana": _apply_kana,
    "small_kana": _apply_small_kana,
    "long_vowel": _apply_long_vowel,
    "address_numbers": _apply_address_numbers,
    "space": _apply_space,
    "width": _apply_width,
}


def _applicable(kind: str, row: _Row) -> bool:
    trial = _Row(dict(row.fields), row.town, row.prefecture, row.municipality)
    return _APPLY[kind](trial, random.Random(0))


# --------------------------------------------------------------------------- input

_REQUIRED = ("resident_code", "family_name", "given_name", "birth_date", "sex", "address")
_OPTIONAL_TEXT = ("family_name_kana", "given_name_kana", "town", "prefecture", "municipality")


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_rate(rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.floating | np.integer):
        raise InvalidInputError(f"rate must be a number in (0, 1], got {rate!r}")
    r = float(rate)
    if not (0.0 < r <= 1.0):  # also refuses NaN
        raise InvalidInputError(f"rate must be in (0, 1], got {rate!r}")
    return r


def _check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...]:
    if kinds is None:
        return VARIANT_KINDS
    if isinstance(kinds, str) or not isinstance(kinds, Sequence):
        raise InvalidInputError(
            f"kinds must be a sequence of kind names, got {kinds!r} "
            f"(kinds: {', '.join(VARIANT_KINDS)})")
    unknown = [k for k in kinds if k not in VARIANT_KINDS]
    if unknown:
        raise InvalidInputError(
            f"unknown variant kind(s) {unknown!r} (kinds: {', '.join(VARIANT_KINDS)})")
    if not kinds:
        raise InvalidInputError("kinds must name at least one kind (or be None for all)")
    return tuple(k for k in VARIANT_KINDS if k in kinds)


def _cast(table: pa.Table, name: str, type_: pa.DataType, accept: Callable[[Any], bool],
          what: str) -> pa.ChunkedArray:
    col = table.column(name)
    if not accept(col.type):
        raise InvalidInputError(f"column {name!r} must be {what}, not {col.type}")
    try:
        return col.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(f"column {name!r}: cannot read as {type_}: {exc}") from exc


def _people(people: Any) -> dict[str, pa.ChunkedArray]:
    from jukicore.register.store import as_arrow_table

    table = as_arrow_table(people, "people")
    missing = [c for c in _REQUIRED if c not in table.column_names]
    if missing:
        raise InvalidInputError(f"people lacks the column(s) {', '.join(missing)}")

    def is_text(t: Any) -> bool:
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                    or pa.types.is_string_view(t) or pa.types.is_null(t))

    cols = {
        "resident_code": _cast(table, "resident_code", pa.uint64(), pa.types.is_integer,
                               "an integer column (uint64)"),
        "birth_date": _cast(table, "birth_date", pa.date32(), pa.types.is_date, "a date column"),
        "sex": _cast(table, "sex", pa.int8(), pa.types.is_integer, "an integer column"),
    }
    for name in ("family_name", "given_name", "address"):
        cols[name] = _cast(table, name, pa.string(), is_text, "a string column")
    for name in _OPTIONAL_TEXT:
        if name in table.column_names:
            cols[name] = _cast(table, name, pa.string(), is_text, "a string column")
    return cols


def _sample(n: int, rate: float, seed: int, salt: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    if rate >= 1.0:
        return np.arange(n, dtype=np.int64)
    k = min(n, math.ceil(rate * n))
    rng = np.random.default_rng([seed, salt])
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def _output(cols: dict[str, pa.ChunkedArray], idx: np.ndarray[Any, np.dtype[np.int64]],
            query_ids: np.ndarray[Any, np.dtype[np.int64]], codes: pa.Array | pa.ChunkedArray,
            texts: dict[str, list[str | None]], birth: pa.Array | pa.ChunkedArray,
            variant: list[str]) -> pa.Table:
    take = pa.array(idx, type=pa.int64())
    data: dict[str, Any] = {
        "query_id": pa.array(query_ids, type=pa.int64()),
        "resident_code": codes,
        "family_name": pa.array(texts["family_name"], type=pa.string()),
        "given_name": pa.array(texts["given_name"], type=pa.string()),
    }
    for f in _KANA_FIELDS:
        if f in cols:
            data[f] = pa.array(texts[f], type=pa.string())
    data["birth_date"] = birth
    data["sex"] = cols["sex"].take(take)
    data["address"] = pa.array(texts["address"], type=pa.string())
    data["variant"] = pa.array(variant, type=pa.string())
    return pa.table(data)


def _text_fields(cols: Mapping[str, pa.ChunkedArray]) -> list[str]:
    return ["family_name", "given_name", *[f for f in _KANA_FIELDS if f in cols], "address"]


# --------------------------------------------------------------------------- API


def spelling_variants(
    people: Any,
    *,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    rate: float = 1.0,
) -> pa.Table:
    """One agency query per row of ``people`` (or a ``rate`` sample), spelled differently.

    ``people``: an Arrow table (or any Arrow PyCapsule object) with ``resident_code``
    (uint64), ``family_name``, ``given_name``, ``birth_date`` (date32), ``sex`` (int8)
    and ``address``; optional ``family_name_kana`` and ``given_name_kana`` (varied
    and returned too), and ``town``, ``prefecture``, ``municipality`` (the synthetic
    register's columns: used to find address parts and for 大字).

    ``kinds``: which of :data:`VARIANT_KINDS` may be used (default: all). Each row gets
    one kind that changes it, sometimes (one row in four) a second one; a kind that
    cannot change a row is not chosen for it; a row no requested kind can change is
    returned as is with variant ``"none"``. ``rate``: the share of rows queried, in
    (0, 1]; the sample is drawn from ``seed``.

    Returns ``query_id`` (int64: the row's position in ``people``), ``resident_code``
    (the right answer), ``family_name``, ``given_name``, [``family_name_kana``,
    ``given_name_kana``], ``birth_date``, ``sex``, ``address`` and ``variant`` (the
    kinds applied, in the order of :data:`VARIANT_KINDS`, joined by ``+``, or
    ``"none"``). Birth date and sex are never changed. The same arguments give the
    same table. Raises InvalidInputError for a bad argument (nothing else happens).
    """
    seed = _check_seed(seed)
    wanted = _check_kinds(kinds)
    rate = _check_rate(rate)
    cols = _people(people)
    n = len(cols["resident_code"])
    idx = _sample(n, rate, seed, 0)
    fields = _text_fields(cols)
    values = {f: cols[f].to_pylist() for f in fields}
    hints = {h: cols[h].to_pylist() if h in cols else [None] * n
             for h in ("town", "prefecture", "municipality")}
    texts: dict[str, list[str | None]] = {f: [] for f in fields}
    variant: list[str] = []
    for i in idx.tolist():
        row = _Row({f: values[f][i] for f in fields},
                   hints["town"][i], hints["prefecture"][i], hints["municipality"][i])
        rng = random.Random(f"jukicore-variants/{seed}/{i}")
        usable = [k for k in wanted if _applicable(k, row)]
        applied: list[str] = []
        if usable:
            count = 2 if len(usable) > 1 and rng.random() < 0.25 else 1
            chosen = set(rng.sample(usable, count))
            row.plain_digits = "width" in chosen
            for k in VARIANT_KINDS:  # a fixed order: width last, so it cannot hide the others
                if k in chosen and _APPLY[k](row, rng):
                    applied.append(k)
            if all(row.fields[f] == values[f][i] for f in fields):
                # two kinds that undid each other: keep the first alone
                row.fields = {f: values[f][i] for f in fields}
                first = applied[0] if applied else usable[0]
                applied = [first] if _APPLY[first](row, rng) else []
        for f in fields:
            texts[f].append(row.fields[f])
        variant.append("+".join(applied) or "none")
    take = pa.array(idx, type=pa.int64())
    return _output(cols, idx, idx.copy(), cols["resident_code"].take(take), texts,
                   cols["birth_date"].take(take), variant)


def _shift_date(d: dt.date, rng: random.Random) -> dt.date:
    """Another birth date an agency might hold by mistake: a day, a month or a year off,
    or the day and month swapped."""
    while True:
        how = rng.randrange(4)
        try:
            if how == 0:
                new = d + dt.timedelta(days=rng.choice((-2, -1, 1, 2)))
            elif how == 1:
                m = d.month + rng.choice((-1, 1))
                new = d.replace(year=d.year + (m - 1) // 12, month=(m - 1) % 12 + 1)
            elif how == 2:
                new = d.replace(year=d.year + rng.choice((-1, 1)))
            else:
                new = d.replace(month=d.day, day=d.month)
        except ValueError:
            continue
        if new != d:
            return new


def decoys(people: Any, *, seed: int = 0, rate: float = 1.0) -> pa.Table:
    """Queries that must match nobody in ``people``: one per row (or a ``rate`` sample).

    Each decoy is a row of ``people`` with one key item changed: the birth date (a day,
    month or year off, or day and month swapped; variant ``"decoy:birth_date"``) or the
    family name, replaced by another family name of ``people`` that is really another
    name, not a 異体字 spelling of it (with its reading when the kana columns are
    there; variant ``"decoy:family_name"``). No person of ``people`` has the decoy's
    name, birth date, sex and address (names compared through :func:`fold_name`).

    Same columns as :func:`spelling_variants`, with ``resident_code`` null and
    ``query_id`` = ``len(people)`` + the row's position, so that decoys and variants of
    the same table can be concatenated without clashing ids. Raises InvalidInputError
    for a bad argument, or for a row that no change can make a decoy of (no birth date,
    and no other family name in ``people``).
    """
    seed = _check_seed(seed)
    rate = _check_rate(rate)
    cols = _people(people)
    n = len(cols["resident_code"])
    idx = _sample(n, rate, seed, 1)
    fields = _text_fields(cols)
    values = {f: cols[f].to_pylist() for f in fields}
    births: list[dt.date | None] = cols["birth_date"].to_pylist()
    sexes: list[int | None] = cols["sex"].to_pylist()

    def key(fam: str | None, giv: str | None, b: dt.date | None, s: int | None,
            addr: str | None) -> tuple[object, ...]:
        return (fold_name(fam or ""), fold_name(giv or ""), b, s, fold_name(addr or ""))

    taken = {key(values["family_name"][j], values["given_name"][j], births[j], sexes[j],
                 values["address"][j]) for j in range(n)}
    texts: dict[str, list[str | None]] = {f: [] for f in fields}
    out_births: list[dt.date | None] = []
    variant: list[str] = []
    for i in idx.tolist():
        rng = random.Random(f"jukicore-decoys/{seed}/{i}")
        row = {f: values[f][i] for f in fields}
        birth = births[i]
        made = ""
        for _ in range(50):
            row = {f: values[f][i] for f in fields}
            birth = births[i]
            if rng.random() < 0.5 and n > 1:
                j = rng.randrange(n)
                donor = values["family_name"][j]
                if not donor or fold_name(donor) == fold_name(row["family_name"] or ""):
                    continue
                row["family_name"] = donor
                if "family_name_kana" in row:
                    row["family_name_kana"] = values["family_name_kana"][j]
                made = "decoy:family_name"
            elif birth is not None:
                birth = _shift_date(birth, rng)
                made = "decoy:birth_date"
            else:
                continue
            if key(row["family_name"], row["given_name"], birth, sexes[i],
                   row["address"]) not in taken:
                break
            made = ""
        if not made:
            raise InvalidInputError(f"row {i}: could not make a decoy that matches nobody")
        for f in fields:
            texts[f].append(row[f])
        out_births.append(birth)
        variant.append(made)
    return _output(cols, idx, idx + n, pa.nulls(len(idx), type=pa.uint64()), texts,
                   pa.array(out_births, type=pa.date32()), variant)
