"""asv benchmarks for bulk AES-256-GCM (Rust, aws-lc-rs) against cryptography's AESGCM loop.

Sizes are set by JUKICORE_BENCH_AEAD_RECORDS (default 1,000,000 records of
180-220 bytes; ``benches/compare_aead.py`` runs the issue's 10,000,000).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa

from jukicore import _jukicore
from jukicore.crypto import open_records, seal_records

N = int(os.environ.get("JUKICORE_BENCH_AEAD_RECORDS", "1000000"))
KEY = bytes(range(32))
PREFIX = b"\x00\x00\x00\x01"
AAD = b""  # as packets of format 2 seal records: the AAD is the 8-byte row index only
PID = bytes(16)


def _records(n: int) -> tuple[pa.Buffer, np.ndarray]:
    rng = np.random.default_rng(1)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(rng.integers(180, 221, size=n, dtype=np.int64), out=offsets[1:])
    return pa.py_buffer(rng.integers(0, 256, size=int(offsets[-1]), dtype=np.uint8)), offsets


class BulkSeal:
    """Seal and open N records of about 200 bytes."""

    timeout = 600
    number = 1
    repeat = 3

    def setup(self) -> None:
        self.data, self.offsets = _records(N)
        self.column = pa.Array.from_buffers(
            pa.large_binary(), N, [None, pa.py_buffer(self.offsets), self.data])
        self.sealed = seal_records(KEY, PID, 0, "address", self.column)

    def time_rust_seal(self) -> None:
        _jukicore.aead_seal(KEY, PREFIX, AAD, self.data, self.offsets)

    def time_rust_seal_one_thread(self) -> None:
        _jukicore.aead_seal(KEY, PREFIX, AAD, self.data, self.offsets, parallel=False)

    def time_seal_records_arrow(self) -> None:
        seal_records(KEY, PID, 0, "address", self.column)

    def time_open_records_arrow(self) -> None:
        open_records(KEY, PID, 0, "address", self.sealed, type=pa.large_binary())

    def track_ratio_cryptography_loop_over_rust(self) -> float:
        """How many times faster the Rust bulk seal is than the AESGCM loop (on N // 10)."""
        import time

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        n = max(N // 10, 1)
        offs = self.offsets[: n + 1]
        mv = memoryview(self.data)
        recs = [mv[offs[i]:offs[i + 1]].tobytes() for i in range(n)]
        enc = AESGCM(KEY).encrypt
        t0 = time.perf_counter()
        out: Any = [enc(PREFIX + i.to_bytes(8, "big"), r, AAD + i.to_bytes(8, "big"))
                    for i, r in enumerate(recs)]
        t_py = time.perf_counter() - t0
        del out
        t0 = time.perf_counter()
        _jukicore.aead_seal(KEY, PREFIX, AAD, self.data, offs)
        return t_py / (time.perf_counter() - t0)

    track_ratio_cryptography_loop_over_rust.unit = "x"  # type: ignore[attr-defined]
