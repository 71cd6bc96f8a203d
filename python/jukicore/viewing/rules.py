"""What the law allows a viewing (閲覧) for, who may view, the fee and the publication's
periods: the rules of register viewing, without the store.

* **Public bodies** (国又は地方公共団体の機関), Art. 11 of the Basic Resident Registration
  Act: for the duties a law or ordinance gives them (``statutory_duty``), naming the
  statute.
* **Private parties** (個人・法人), Art. 11-2: only for

  1. ``survey``: statistical surveys, public opinion polls, academic and other research
     whose public interest is high (統計調査、世論調査、学術研究その他の調査研究のうち、
     公益性が高いと認められるもの);
  2. ``welfare``: activities of public-interest bodies that contribute to residents'
     welfare (公共的団体が行う地域住民の福祉の向上に寄与する活動のうち、公益性が高いと
     認められるもの);
  3. ``residence_check``: non-profit confirmation of residence in the special cases the
     mayor sets (営利以外の目的で行う居住関係の確認のうち、訴訟の提起その他特別の事情に
     よる居住関係の確認として市町村長が定めるもの).

  Anything else (direct mail, sales, lists of names) is refused.

The fee is charged per 30 minutes started (1,000 yen by default, the policy's
``fee.viewing``); the list of viewings is published for each half-year (January to June,
July to December), as the seeds' wards do (年2回公表).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from jukicore.errors import InvalidInputError
from jukicore.validate import text_problem

__all__ = ["FEE_PERIOD", "ID_KINDS", "KINDS", "MAX_NAME", "PHOTO_IDS", "PURPOSES", "Period",
           "Purpose", "check_date", "check_names", "check_text", "fee_for", "half_year",
           "periods_started"]

#: A request's kind: ``public`` (Art. 11: 請求) or ``private`` (Art. 11-2: 申出).
KINDS: tuple[str, ...] = ("public", "private")
#: The longest text a request holds (a name, a summary).
MAX_NAME = 200
MAX_TEXT = 1000
#: The most persons a request may name as viewers, towns it may ask for.
MAX_VIEWERS = 50
MAX_TOWNS = 500
#: How long ahead a request may set its period of viewing.
MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class Purpose:
    """A purpose the law allows: its key, the kind of requester it is for, the article,
    and its statutory wording (published)."""

    key: str
    kind: str
    article: str
    wording: str


PURPOSES: dict[str, Purpose] = {p.key: p for p in (
    Purpose("statutory_duty", "public", "第11条第1項", "法令で定める事務の遂行"),
    Purpose("survey", "private", "第11条の2第1項第1号",
            "統計調査、世論調査、学術研究その他の調査研究のうち公益性が高いと認められるもの"),
    Purpose("welfare", "private", "第11条の2第1項第2号",
            "公共的団体が行う地域住民の福祉の向上に寄与する活動のうち公益性が高いと認められるもの"),
    Purpose("residence_check", "private", "第11条の2第1項第3号",
            "営利以外の目的で行う居住関係の確認のうち訴訟の提起その他特別の事情によるもの"),
)}

#: Identity documents with a photo (顔写真付きの証明書): what a private party's viewer shows.
PHOTO_IDS: dict[str, str] = {
    "my_number_card": "個人番号カード",
    "driver_license": "運転免許証",
    "passport": "旅券",
    "residence_card": "在留カード",
    "resident_register_card_photo": "写真付き住民基本台帳カード",
    "other_photo_id": "その他の顔写真付き証明書",
}
#: What a public body's viewer may also be checked by: the staff card of the body, or a
#: call to the body (電話照会).
ID_KINDS: dict[str, str] = {**PHOTO_IDS, "staff_id": "職員証", "phone_inquiry": "電話照会"}

#: The fee's unit of time.
FEE_PERIOD = dt.timedelta(minutes=30)


def periods_started(start: dt.datetime, end: dt.datetime) -> int:
    """The 30-minute periods a viewing from ``start`` to ``end`` started: the first at the
    start, another at each full 30 minutes passed (29 and 30 minutes: 1; 31 and 60: 2;
    61: 3). Exact to the microsecond: 30 minutes and one second start a second period."""
    if end < start:
        raise InvalidInputError(f"a viewing cannot end ({end.isoformat()}) before it starts"
                                f" ({start.isoformat()})")
    span = end - start
    return max(1, -(-span // FEE_PERIOD))  # whole periods, rounded up, no floats


def fee_for(start: dt.datetime, end: dt.datetime, rate: int) -> tuple[int, int]:
    """(periods started, fee in yen) of a viewing at ``rate`` yen per 30 minutes."""
    n = periods_started(start, end)
    return n, n * rate


@dataclass(frozen=True)
class Period:
    """A half-year of publication: ``year`` and ``half`` (1: January to June, 2: July to
    December); ``first`` and ``last`` are its days (Japanese dates)."""

    year: int
    half: int

    @property
    def first(self) -> dt.date:
        return dt.date(self.year, 1 if self.half == 1 else 7, 1)

    @property
    def last(self) -> dt.date:
        return dt.date(self.year, 6, 30) if self.half == 1 else dt.date(self.year, 12, 31)

    @property
    def label(self) -> str:
        """``2024H1``: the name of the publication's files."""
        return f"{self.year}H{self.half}"

    @property
    def japanese(self) -> str:
        """``2024年1月1日から2024年6月30日まで``."""
        return (f"{self.first.year}年{self.first.month}月{self.first.day}日から"
                f"{self.last.year}年{self.last.month}月{self.last.day}日まで")


def half_year(year: object, half: object) -> Period:
    """The :class:`Period`; an :class:`InvalidInputError` unless ``year`` is a year (2000 to
    9998) and ``half`` 1 or 2."""
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 9998:
        raise InvalidInputError(f"year {year!r}: a publication's year is 2000 to 9998")
    if isinstance(half, bool) or half not in (1, 2):
        raise InvalidInputError(f"half {half!r}: 1 (January to June) or 2 (July to December)")
    assert isinstance(half, int)
    return Period(year, half)


def check_text(value: object, what: str, *, required: bool = True,
               limit: int = MAX_NAME) -> str | None:
    """A text field: NFC, the store's text rule (no control characters, no surrounding
    spaces, at most ``limit`` characters); None when absent and not ``required``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInputError(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} is a text, not {type(value).__name__}")
    text = unicodedata.normalize("NFC", value)
    why = text_problem(text, limit)
    if why is not None:
        raise InvalidInputError(f"{what}: {why}")
    return text


def check_names(values: object, what: str, *, limit: int, required: bool) -> list[str] | None:
    """A list of distinct texts (viewers, towns); None when absent and not ``required``."""
    if values is None:
        if required:
            raise InvalidInputError(f"{what}: at least one is required")
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{what} is a list of texts, not {type(values).__name__}")
    out: list[str] = []
    for i, v in enumerate(values):
        t = check_text(v, f"{what}[{i}]")
        assert t is not None
        if t in out:
            raise InvalidInputError(f"{what}: {t!r} is named twice")
        out.append(t)
        if len(out) > limit:
            raise InvalidInputError(f"{what}: at most {limit}")
    if not out:
        raise InvalidInputError(f"{what}: at least one is required (or none given at all)")
    return out


def check_date(value: object, what: str, *, required: bool = False) -> dt.date | None:
    """A date (not a datetime); None when absent and not ``required``."""
    if value is None:
        if required:
            raise InvalidInputError(f"{what} is required")
        return None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidInputError(f"{what} is a date, not {type(value).__name__}")
    return value
