"""asv: My Number issuance, jukicore against pure Python (hashlib HMAC; numpy has none).

JUKICORE_BENCH_IDS_N / 10 resident codes (default 1,000,000), uniqueness
checks included on both sides; both give the same numbers for the same key.
"""

from __future__ import annotations

import os

import numpy as np

from jukicore.codes import CodeRegistry, MyNumberIssuer

from . import ids_numpy
from .ids_python import PyIssuer

N = max(int(os.environ.get("JUKICORE_BENCH_IDS_N", "10000000")) // 10, 1)
KEY = bytes(range(32))


class Issue:
    params = (["jukicore", "python"],)
    param_names = ("impl",)
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0
    timeout = 600

    def setup_cache(self) -> np.ndarray:
        return CodeRegistry().generate(N)

    def setup(self, codes: np.ndarray, impl: str) -> None:
        self.issuer = MyNumberIssuer(KEY) if impl == "jukicore" else PyIssuer(KEY)
        ids_numpy.tables()  # PyIssuer validates with them: built outside the timing

    def time_issue(self, codes: np.ndarray, impl: str) -> None:
        self.issuer.issue(codes)
