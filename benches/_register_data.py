"""Data for the register benchmarks: a synthetic municipality of any size, its codes, and
fresh code blocks disjoint from them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from jukicore.codes import CodeBlock, CodeRegistry, resident_code_check_digit
from jukicore.synth import synthesize_municipality

LG = "131016"
PREF = "東京都"
MUNI = "千代田区"


def _codes(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    rng = np.random.default_rng(seed)
    bodies = np.unique(rng.integers(0, 10**10, size=int(n * 1.01) + 16, dtype=np.int64))
    bodies = rng.permutation(bodies)[:n].astype(np.uint64)
    return bodies * np.uint64(10) + resident_code_check_digit(bodies)


def municipality(n: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(residents, households) of about n residents, from jukicore.synth."""
    m = synthesize_municipality(n, lg_code=LG, seed=seed, as_of=dt.date(2024, 6, 1))
    return m.residents, m.households


#: Every code with_codes gave out: block() draws from it, so a block never holds them (a
#: code block from the center holds only codes never issued before).
_REGISTRY = CodeRegistry()


def with_codes(residents: pa.Table, seed: int = 7) -> pa.Table:
    codes = _codes(residents.num_rows, seed)
    _REGISTRY.add(codes)
    return residents.append_column("resident_code", pa.array(codes, pa.uint64()))


def block(n: int) -> CodeBlock:
    """A block of n fresh codes for LG, disjoint from every code with_codes gave out."""
    return _REGISTRY.allocate_block(n, LG)
