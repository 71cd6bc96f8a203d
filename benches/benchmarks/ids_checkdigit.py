"""asv: check-digit validation of a uint64 column, jukicore against two numpy validators.

JUKICORE_BENCH_IDS_N codes (default 10,000,000), about half of them valid.
"""

from __future__ import annotations

import os

import numpy as np

from jukicore.codes import is_valid_resident_code

from . import ids_numpy

N = int(os.environ.get("JUKICORE_BENCH_IDS_N", "10000000"))


class Validate:
    params = (["jukicore", "numpy-table", "numpy-digits"],)
    param_names = ("impl",)
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0
    timeout = 600

    def setup_cache(self) -> np.ndarray:
        return ids_numpy.half_invalid(N, np.random.default_rng(0))

    def setup(self, codes: np.ndarray, impl: str) -> None:
        ids_numpy.tables()  # built outside the timing

    def time_validate(self, codes: np.ndarray, impl: str) -> None:
        if impl == "jukicore":
            is_valid_resident_code(codes)
        else:
            ids_numpy.VALIDATORS[impl.removeprefix("numpy-")](codes)
