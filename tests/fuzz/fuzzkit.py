"""Shared pieces of the fuzz suite: the Hypothesis settings, malformed values, and oracles.

Profiles (``JUKICORE_HYPOTHESIS_PROFILE``, shared with the model-based test):

* ``ci`` (the default): few examples per test, derandomized so that every run tries the
  same inputs and a failure reproduces; the whole fuzz suite stays within about two
  minutes on a 2-core machine, both databases included.
* ``nightly``: many more examples, random (seeded from the clock), for a long run::

      JUKICORE_HYPOTHESIS_PROFILE=nightly pytest tests/fuzz

The settings are built here and applied per test (``@FUZZ``, ``@fuzz(n)``) rather than
loaded globally, so this suite never changes another suite's Hypothesis profile.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from jukicore import errors

PROFILE = os.environ.get("JUKICORE_HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "nightly"):
    raise RuntimeError(f"JUKICORE_HYPOTHESIS_PROFILE is ci or nightly, not {PROFILE!r}")
NIGHTLY = PROFILE == "nightly"
#: Nightly runs try this many times the CI examples.
NIGHTLY_FACTOR = 50


def fuzz(ci_examples: int, **kw: Any) -> settings:
    """Settings of one fuzz test: ``ci_examples`` examples in CI, many more at night.

    Stores are built once per test function (they are expensive, above all on PostgreSQL)
    and every example checks the store's content digest around itself, hence the
    function-scoped-fixture health check is off.
    """
    if not NIGHTLY:
        kw.setdefault("database", None)  # derandomized: nothing to remember between runs
        # CI: stop at the first failure of a test and shrink only that one (the time budget
        # holds while a regression is being fixed); nightly runs report every distinct bug.
        kw.setdefault("report_multiple_bugs", False)
    return settings(
        max_examples=ci_examples * (NIGHTLY_FACTOR if NIGHTLY else 1),
        derandomize=not NIGHTLY,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **kw,
    )


# -- stores ----------------------------------------------------------------------------------


class _Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class Stores(Generic[S]):
    """One store per test function, replaced after an example that may have spoilt it.

    ``make_target()`` gives a fresh location (tests/fuzz/conftest.py: ``targets``) and
    ``build(target)`` a store there. An example that fails (a malformed value applied, a
    digest that moved, a store that can no longer be read) spoils the store and the next
    example gets a new one, so each failure is the example's own and Hypothesis shrinks
    against a clean store; passing examples share one store (a store is expensive).
    """

    def __init__(self, make_target: Callable[[], str], build: Callable[[str], S]) -> None:
        self._make_target = make_target
        self._build = build
        self._store: S | None = None

    def get(self) -> S:
        if self._store is None:
            self._store = self._build(self._make_target())
        return self._store

    @contextmanager
    def example(self) -> Iterator[S]:
        try:
            yield self.get()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None


# -- what an error must be ------------------------------------------------------------------


def assert_refused(exc: BaseException, *, invalid: bool = True) -> None:
    """A refusal is a JukiError; a refusal of malformed input is also a ValueError."""
    assert isinstance(exc, errors.JukiError), f"untyped error {type(exc).__name__}: {exc}"
    if invalid:
        assert isinstance(exc, ValueError), \
            f"malformed input refused with {type(exc).__name__}, not a ValueError: {exc}"


def error_class(name: str) -> type[BaseException] | None:
    """The jukicore error class an ApplyReport names (None: not one of jukicore's)."""
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def names_column(exc: BaseException, column: str | set[str]) -> bool:
    """Whether an error names the column (in ``rows`` or, for a scalar, in its message)."""
    cols = {column} if isinstance(column, str) else column
    rows = getattr(exc, "rows", ())
    if any(getattr(r, "column", None) in cols for r in rows):
        return True
    return any(c in str(exc) for c in cols)


# -- malformed scalars ----------------------------------------------------------------------

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1


def digit_strings(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


def malformed_digit_text(n: int) -> st.SearchStrategy[str]:
    """Strings that look like an n-digit code and are not one."""
    good = digit_strings(n)
    return st.one_of(
        good.map(lambda s: s.translate(FULLWIDTH)),
        good.map(lambda s: s.translate(ARABIC_INDIC)),
        good.map(lambda s: s.translate(DEVANAGARI)),
        good.map(lambda s: f" {s}"), good.map(lambda s: f"{s} "), good.map(lambda s: f"+{s}"),
        good.map(lambda s: f"-{s}"), good.map(lambda s: s[:-1]), good.map(lambda s: s + "0"),
        good.map(lambda s: s[:3] + "-" + s[3:]), good.map(lambda s: s + "\x00"),
        good.map(lambda s: s[:2] + "\ud800" + s[3:]),  # a lone surrogate
        digit_strings(n + 1), digit_strings(max(n - 1, 0)), st.just(""), st.just(" " * n),
        st.just("1e10"), st.just("0x" + "1" * (n - 2)), st.text(max_size=n + 3),
    )


def odd_ints(n: int) -> st.SearchStrategy[int]:
    """Integers that are not an n-digit code: negative, too long, beyond int64/uint64."""
    return st.one_of(
        st.integers(max_value=-1), st.integers(min_value=10**n, max_value=10**(n + 3)),
        st.sampled_from([-1, -(2**63), 10**n, I64_MAX, 2**63, U64_MAX, 2**64, 2**80]),
    )


def not_an_int_or_str() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
        st.binary(max_size=13), st.just({"code": 1}), st.just(1 + 2j), st.just(object()),
    )


def nested() -> st.SearchStrategy[Any]:
    """Nested sequences: an element of a column that is itself a column."""
    return st.one_of(st.lists(st.integers(0, 9), min_size=1, max_size=3),
                     st.just([[1, 2], [3]]), st.just((12345678901,)))


# -- check-digit oracles (DESIGN.md section 3, written out independently of the Rust core) --


def _mod11(body: str, weights: tuple[int, ...]) -> int:
    r = sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


def oracle_check_digit(kind: str, body: int) -> int:
    if kind == "resident_code":
        return _mod11(f"{body:010d}", (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
    if kind == "my_number":
        return _mod11(f"{body:011d}", (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
    r = sum(int(d) * w for d, w in zip(f"{body:05d}", (6, 5, 4, 3, 2), strict=True)) % 11
    return (11 - r) % 10


def with_check(kind: str, body: int) -> int:
    return body * 10 + oracle_check_digit(kind, body)


def wrong_check(kind: str, body: int) -> int:
    """A code of the right length whose check digit is wrong."""
    return body * 10 + (oracle_check_digit(kind, body) + 1) % 10


# -- text and dates that must never enter a store -------------------------------------------

TODAY = dt.date(2024, 6, 3)

#: Names that no field may hold (surrounding spaces, control characters, NUL, lone
#: surrogates, only blanks); what each must be refused for is the issue's section 4.
BAD_NAMES = ["", " ", "\u3000", " 山田", "山田 ", "\u3000山田", "山\x00田", "山田\n", "\t山田",
             "山\x1b田", "山\x7f田", "山\ud800田", "\udfff"]
#: Readings that are not full-width katakana.
BAD_KANA = ["ﾔﾏﾀﾞ", "やまだ", "Yamada", "ヤマダ1", "ヤマダ ", " ヤマダ", "ヤマ\x00ダ", "山田",
            "ﾔマダ", "ヤマダ\ud800"]
#: Postal codes that are not seven ASCII digits.
BAD_POSTAL = ["１０００００５", "١٠٠٠٠٠٥", "100-0005", "100000", "10000055", " 1000005",
              "1000005 ", "10000\x005", "abcdefg", "", "१००००००"]
#: Dates no notification may carry: far past, and in the future of the processing day.
ANCIENT_DATES = [dt.date(1, 1, 1), dt.date(1800, 1, 1)]
FUTURE_DATES = [TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=400),
                dt.date(9999, 12, 31)]
