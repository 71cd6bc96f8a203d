"""asv benchmarks for bulk AES-256-GCM (Rust, aws-lc-rs) against cryptography's AESGCM loop.

Sizes are set by JUKICORE_BENCH_AEAD_RECORDS (default 1,000,000 records of
180-220 bytes; ``benches/compare_aead.py`` runs the issue's 10,000,000).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

from compare_aead import AAD, PREFIX, python_loop, records
from jukicore import _jukicore
from jukicore.network.crypto import open_records, seal_records

N = int(os.environ.get("JUKICORE_BENCH_AEAD_RECORDS", "1000000"))
KEY = bytes(range(32))
PID = bytes(16)


class BulkSeal:
    """Seal and open N records of about 200 bytes."""

    timeout = 600
    number = 1
    repeat = 3

    def setup(self) -> None:
        self.data, self.offsets = records(N, 200, 20)
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
        offs = self.offsets[: max(N // 10, 1) + 1]
        t_py = python_loop(KEY, self.data, offs)
        t0 = time.perf_counter()
        _jukicore.aead_seal(KEY, PREFIX, AAD, self.data, offs)
        return t_py / (time.perf_counter() - t0)

    track_ratio_cryptography_loop_over_rust.unit = "x"  # type: ignore[attr-defined]
