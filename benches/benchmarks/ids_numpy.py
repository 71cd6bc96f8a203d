"""numpy baselines for jukicore.codes: the best plain-numpy code we could write for each job.

Each function does the same job as the jukicore call it is measured against:

* :func:`generate_empty` / :func:`generate_more`: draw fresh resident codes,
  never one already issued, keep the first occurrence of a repeated draw, give
  every code its check digit, return them in draw (random) order, and record
  them in numpy's natural registry, a sorted ``uint64`` array of issued codes.
  The draws come from ``numpy.random.Generator`` (PCG64), which is *not* a
  CSPRNG and is much cheaper than jukicore's ChaCha20: this favours numpy; or
  from :class:`OsCsprng` (the operating system's CSPRNG through ``os.urandom``,
  unbiased), which does the job the issue asks for.
* :func:`is_valid_table` / :func:`is_valid_digits`: check-digit validation of a
  ``uint64`` column of 11-digit codes, refusing values with more than 11 digits
  (as jukicore does).
* :func:`check_digits` / :func:`with_check_digits`: the resident-code check
  digit of 10-digit bodies (weights 5,4,3,2,7,6,5,4,3,2, mod 11, DESIGN.md 3).

Tricks used because they made numpy faster here: work in cache-sized chunks
(intermediates stay in L2), replace per-digit arithmetic by lookups in tables
of partial weighted sums, pack each candidate's batch position into the low
bits beside its value so one in-place ``sort`` both sorts and keeps the first
occurrence of a repeat (``np.unique`` with ``return_index`` is far slower), and
search sorted candidates (``np.searchsorted`` is cache-friendly only then).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeAlias

import numpy as np
import numpy.lib.format as npformat
import numpy.typing as npt

U64: TypeAlias = npt.NDArray[np.uint64]
U8: TypeAlias = npt.NDArray[np.uint8]
Bools: TypeAlias = npt.NDArray[np.bool_]

BODY_LIMIT: Final = 10**10
CODE_LIMIT: Final = 10**11
CHUNK: Final = 1 << 16
#: Low bits that carry a candidate's position in its batch (codes need 37 bits).
IDX_BITS: Final = 27
IDX_MASK: Final = np.uint64((1 << IDX_BITS) - 1)
_SHIFT: Final = np.uint64(IDX_BITS)


@functools.cache
def tables() -> tuple[U8, U8, U8, npt.NDArray[np.uint16], npt.NDArray[np.uint16], Bools]:
    """The lookup tables (built on first use, not at import: asv imports every module)."""
    v = np.arange(100_000)
    digits = [(v // 10 ** (4 - i)) % 10 for i in range(5)]  # most significant first
    hi = sum(w * d for w, d in zip((5, 4, 3, 2, 7), digits, strict=True)) % 11
    lo = sum(w * d for w, d in zip((6, 5, 4, 3, 2), digits, strict=True)) % 11
    r = np.arange(21) % 11
    cd = np.where(r <= 1, 0, 11 - r).astype(np.uint8)  # check digit of a partial-sum total
    # Validation in one pass: a code is hi5 (first 5 body digits) and lo6 (last 5
    # body digits + check digit); index = hi_part*110 + lo_part*10 + check digit.
    th110 = (hi * 110).astype(np.uint16)
    w = np.arange(1_000_000)
    tld = (lo[w // 10] * 10 + w % 10).astype(np.uint16)
    t = np.arange(1210)
    valid = cd[t // 110 + (t % 110) // 10] == t % 10
    return hi.astype(np.uint8), lo.astype(np.uint8), cd, th110, tld, valid


_E5: Final = np.uint64(100_000)
_E6: Final = np.uint64(1_000_000)
_TEN: Final = np.uint64(10)


# --------------------------------------------------------------------------
# Check digits


def _cd_chunk(bodies: U64, th: U8, tl: U8, cd: U8) -> U8:
    hi = bodies // _E5
    lo = bodies - hi * _E5
    s = th.take(hi)
    s += tl.take(lo)
    return cd.take(s)


def check_digits(bodies: U64) -> U8:
    """Check digits of 10-digit bodies (table lookups, chunked)."""
    th, tl, cd, *_ = tables()
    out = np.empty(bodies.size, dtype=np.uint8)
    for i in range(0, bodies.size, CHUNK):
        out[i : i + CHUNK] = _cd_chunk(bodies[i : i + CHUNK], th, tl, cd)
    return out


def with_check_digits(bodies: U64) -> U64:
    """Turn bodies into full codes *in place* (``body * 10 + check digit``)."""
    th, tl, cd, *_ = tables()
    for i in range(0, bodies.size, CHUNK):
        part = bodies[i : i + CHUNK]
        check = _cd_chunk(part, th, tl, cd)
        part *= _TEN
        part += check
    return bodies


def half_invalid(n: int, rng: np.random.Generator) -> U64:
    """``n`` random codes, about half of them with a wrong last digit (so both answers occur)."""
    codes = with_check_digits(rng.integers(0, BODY_LIMIT, size=n, dtype=np.uint64))
    bad = rng.random(n) < 0.5
    wrong = codes[bad]
    codes[bad] = wrong // _TEN * _TEN + (wrong + np.uint64(1)) % _TEN
    return codes


def npy_file_bytes(a: npt.NDArray[np.generic]) -> int:
    """Size of the file ``np.save`` writes for ``a``: its header, then its bytes."""
    header = io.BytesIO()
    npformat.write_array_header_1_0(header, npformat.header_data_from_array_1_0(a))
    return header.tell() + a.nbytes


def is_valid_table(codes: U64) -> Bools:
    """Validity of 11-digit codes: three table lookups per code, chunked.

    A value with more than 11 digits makes ``take`` index past the first table,
    which is reported as ``ValueError`` (jukicore raises InvalidInputError).
    """
    *_, th110, tld, valid = tables()
    out = np.empty(codes.size, dtype=np.bool_)
    for i in range(0, codes.size, CHUNK):
        c = codes[i : i + CHUNK]
        hi = c // _E6
        lo = c - hi * _E6
        try:
            idx = th110.take(hi)
        except IndexError:
            raise ValueError("a value has more than 11 digits") from None
        idx += tld.take(lo)
        out[i : i + CHUNK] = valid.take(idx)
    return out


def is_valid_digits(codes: U64) -> Bools:
    """Validity of 11-digit codes by digit extraction (uint32 halves), chunked."""
    out = np.empty(codes.size, dtype=np.bool_)
    ten = np.uint32(10)
    for i in range(0, codes.size, CHUNK):
        c = codes[i : i + CHUNK]
        if c.size and c.max() >= CODE_LIMIT:
            raise ValueError("a value has more than 11 digits")
        body = c // _TEN
        check = (c - body * _TEN).astype(np.uint32)
        hi = (body // _E5).astype(np.uint32)
        lo = (body - hi.astype(np.uint64) * _E5).astype(np.uint32)
        s = np.zeros(c.size, dtype=np.uint32)
        for w in (2, 3, 4, 5, 6):
            q = lo // ten
            s += (lo - q * ten) * np.uint32(w)
            lo = q
        for w in (7, 2, 3, 4, 5):
            q = hi // ten
            s += (hi - q * ten) * np.uint32(w)
            hi = q
        r = s % np.uint32(11)
        out[i : i + CHUNK] = np.where(r <= 1, 0, 11 - r) == check
    return out


VALIDATORS: Final[dict[str, Callable[[U64], Bools]]] = {
    "table": is_valid_table,
    "digits": is_valid_digits,
}


# --------------------------------------------------------------------------
# Sorting and merging


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 - one lazily created pool for the process
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2)
    return _POOL


def sort_inplace(a: U64, threads: int = 1) -> None:
    """Sort ``a`` in place; with two threads, sort halves then merge them.

    ``ndarray.sort`` releases the GIL, and a stable sort (timsort) of two sorted
    runs is a single linear merge.
    """
    if threads <= 1 or a.size < 1 << 20:
        a.sort()
        return
    half = a.size // 2
    list(_pool().map(np.ndarray.sort, [a[:half], a[half:]]))
    a.sort(kind="stable")


def merge_insert(issued: U64, new_sorted: U64, positions: npt.NDArray[np.intp]) -> U64:
    """The sorted registry with ``new_sorted`` inserted (``np.insert``)."""
    return np.insert(issued, positions, new_sorted)


def merge_concat(issued: U64, new_sorted: U64, positions: npt.NDArray[np.intp]) -> U64:
    """The sorted registry with ``new_sorted`` merged (concatenate + timsort of two runs)."""
    out = np.concatenate([issued, new_sorted])
    out.sort(kind="stable")
    return out


MERGERS: Final[dict[str, Callable[[U64, U64, npt.NDArray[np.intp]], U64]]] = {
    "insert": merge_insert,
    "concat": merge_concat,
}


# --------------------------------------------------------------------------
# Generation


def _expected_repeats(draws: int, issued: int) -> float:
    return draws * issued / BODY_LIMIT + draws * draws / (2 * BODY_LIMIT)


def _packed(codes: U64) -> U64:
    """``code << 27 | position``, built chunk by chunk (no big temporaries)."""
    out = np.empty_like(codes)
    for i in range(0, codes.size, CHUNK):
        part = out[i : i + CHUNK]
        np.left_shift(codes[i : i + CHUNK], _SHIFT, out=part)
        part |= np.arange(i, i + part.size, dtype=np.uint64)
    return out


def _new_in(sorted_vals: U64, issued: U64) -> tuple[Bools, npt.NDArray[np.intp]]:
    """For sorted candidate codes: (not in the sorted ``issued`` array, insertion points)."""
    pos = np.searchsorted(issued, sorted_vals)
    if issued.size == 0:
        return np.ones(sorted_vals.size, dtype=np.bool_), pos
    return np.asarray(issued[np.minimum(pos, issued.size - 1)] != sorted_vals), pos


class OsCsprng:
    """Unbiased uniform integers from the operating system's CSPRNG, vectorised.

    Stands in for ``numpy.random.Generator`` in the generators below when the
    baseline must do the same job as jukicore: codes drawn with a CSPRNG.
    Each value is a 64-bit word from ``os.urandom``; words at or above the
    largest multiple of the range are rejected and redrawn, so ``% range`` has
    no bias.
    """

    def integers(self, low: int, high: int, size: int, dtype: type = np.uint64) -> U64:
        span = high - low
        limit = np.uint64((2**64 // span) * span)
        out = np.empty(size, dtype=np.uint64)
        filled = 0
        while filled < size:
            raw = np.frombuffer(os.urandom(8 * (size - filled)), dtype=np.uint64)
            raw = raw[raw < limit]
            out[filled:filled + raw.size] = raw % np.uint64(span) + np.uint64(low)
            filled += raw.size
        return out.astype(dtype, copy=False)


def generate_more(
    issued: U64,
    n: int,
    rng: np.random.Generator | OsCsprng,
    merge: str = "concat",
) -> tuple[U64, U64]:
    """Issue ``n`` fresh codes against the sorted ``issued`` registry.

    Returns (codes in draw order, the new sorted registry). ``issued`` itself is
    left unchanged.
    """
    parts: list[U64] = []
    fresh_vals: list[U64] = []
    fresh_pos: list[npt.NDArray[np.intp]] = []
    fresh_sorted = np.empty(0, dtype=np.uint64)
    need = n
    while need:
        draw = min(need, 1 << IDX_BITS)
        codes = with_check_digits(rng.integers(0, BODY_LIMIT, size=draw, dtype=np.uint64))
        packed = _packed(codes)
        packed.sort()
        vals = packed >> _SHIFT
        ok = np.ones(draw, dtype=np.bool_)
        ok[1:] = vals[1:] != vals[:-1]  # first occurrence of a repeat within the batch
        new, pos = _new_in(vals, issued)
        ok &= new
        if fresh_sorted.size:  # a redraw must also miss this call's earlier codes
            ok &= _new_in(vals, fresh_sorted)[0]
        keep = np.zeros(draw, dtype=np.bool_)
        keep[packed[ok] & IDX_MASK] = True
        accepted = codes[keep]
        parts.append(accepted)
        fresh_vals.append(vals[ok])
        fresh_pos.append(pos[ok])
        if len(fresh_vals) == 1:
            fresh_sorted = fresh_vals[0]
        else:
            fresh_sorted = np.sort(np.concatenate(fresh_vals))
        need -= accepted.size
    if len(fresh_vals) == 1:
        positions = fresh_pos[0]
    else:
        order = np.argsort(np.concatenate(fresh_vals), kind="stable")
        positions = np.concatenate(fresh_pos)[order]
    registry = MERGERS[merge](issued, fresh_sorted, positions)
    out = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return out, registry


def generate_empty(n: int, rng: np.random.Generator | OsCsprng,
                   threads: int = 1) -> tuple[U64, U64]:
    """Issue ``n`` fresh codes into an empty registry.

    Draws a few more than ``n`` (the expected number of repeats plus a safety
    margin), so one sort usually suffices: the first ``n`` distinct draws, in
    draw order, are the batch; later ones are discarded. Should the draws still
    fall short, the shortfall goes through :func:`generate_more`.

    Returns (codes in draw order, the sorted registry).
    """
    if n == 0:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.uint64)
    rep = _expected_repeats(n, 0)
    m = min(n + int(rep * 1.01 + 8 * rep**0.5) + 64, 1 << IDX_BITS)
    codes = with_check_digits(rng.integers(0, BODY_LIMIT, size=m, dtype=np.uint64))
    packed = _packed(codes)
    sort_inplace(packed, threads)
    # Sorted by (code, position): the first of each run of equal codes is the
    # earliest draw; every later one is a repeat.
    first = np.empty(m, dtype=np.bool_)
    first[0] = True
    for i in range(1, m, CHUNK):
        j = min(i + CHUNK, m)
        first[i:j] = (packed[i:j] >> _SHIFT) != (packed[i - 1 : j - 1] >> _SHIFT)
    keep = np.ones(m, dtype=np.bool_)
    keep[packed[~first] & IDX_MASK] = False
    unique = int(np.count_nonzero(first))
    if unique > n:
        # Drop the last `unique - n` distinct draws (all within the tail window).
        excess = unique - n
        window = excess + (m - unique)
        tail = np.flatnonzero(keep[m - window :]) + (m - window)
        cut = int(tail[-excess])
        keep[cut:] = False
        for i in range(0, m, CHUNK):
            first[i : i + CHUNK] &= (packed[i : i + CHUNK] & IDX_MASK) < np.uint64(cut)
    out = codes[keep]
    del codes, keep
    np.right_shift(packed, _SHIFT, out=packed)
    registry = packed[first]
    del packed, first
    if out.size < n:
        more, registry = generate_more(registry, n - out.size, rng)
        out = np.concatenate([out, more])
    return out, registry
