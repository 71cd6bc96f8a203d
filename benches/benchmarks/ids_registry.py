"""asv: resident-code generation and the registry's size, jukicore against numpy.

Moderate scale for tracking over time: JUKICORE_BENCH_IDS_N codes (default
10,000,000). The issue's full-scale targets (125,000,000 codes) are checked by
``benches/compare.py``. numpy baselines: :mod:`benchmarks.ids_numpy`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from jukicore.codes import CodeRegistry

from . import ids_numpy

N = int(os.environ.get("JUKICORE_BENCH_IDS_N", "10000000"))
#: 1,000,000 new codes against 125,000,000 issued, scaled to N.
MORE = max(N // 125, 1)
IMPLS = ["jukicore", "numpy"]
Issued = tuple[np.ndarray, np.ndarray]


def _issued() -> Issued:
    """N issued codes (random order) and the same codes sorted."""
    codes = CodeRegistry().generate(N)
    return codes, np.sort(codes)


class GenerateEmpty:
    """Issue N fresh codes into an empty registry."""

    params = (["jukicore", "numpy", "numpy-2threads"],)
    param_names = ("impl",)
    number = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, impl: str) -> None:
        self.rng = np.random.default_rng()
        ids_numpy.tables()  # built outside the timing

    def time_generate(self, impl: str) -> None:
        if impl == "jukicore":
            CodeRegistry().generate(N)
        else:
            ids_numpy.generate_empty(N, self.rng, threads=2 if impl == "numpy-2threads" else 1)


class GenerateMore:
    """Issue N/125 fresh codes against N already issued (numpy: pre-sorted array)."""

    params = (["jukicore", "numpy-insert", "numpy-concat"],)
    param_names = ("impl",)
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0
    timeout = 600

    def setup_cache(self) -> Issued:
        return _issued()

    def setup(self, issued: Issued, impl: str) -> None:
        self.rng = np.random.default_rng()
        ids_numpy.tables()  # built outside the timing
        if impl == "jukicore":
            self.reg = CodeRegistry()
            self.reg.add(issued[0])

    def time_generate(self, issued: Issued, impl: str) -> None:
        if impl == "jukicore":
            self.reg.generate(MORE)
        else:
            ids_numpy.generate_more(issued[1], MORE, self.rng, impl.removeprefix("numpy-"))


class RegistrySize:
    """Bytes of the registry of N codes: in memory, and saved to a file.

    numpy's registry is the sorted uint64 array: as many bytes as the codes in
    any order, so the codes are not sorted nor the .npy written to measure it.
    """

    params = (IMPLS,)
    param_names = ("impl",)
    unit = "bytes"
    timeout = 600

    def setup_cache(self) -> np.ndarray:
        return CodeRegistry().generate(N)

    def track_memory_bytes(self, codes: np.ndarray, impl: str) -> int:
        if impl == "numpy":
            return int(codes.nbytes)
        reg = CodeRegistry()
        reg.add(codes)
        return reg.memory_bytes()

    def track_file_bytes(self, codes: np.ndarray, impl: str) -> int:
        if impl == "numpy":
            return ids_numpy.npy_file_bytes(codes)
        with tempfile.TemporaryDirectory(prefix="jukicore-asv-") as tmp:
            path = Path(tmp) / "registry"
            reg = CodeRegistry()
            reg.add(codes)
            reg.save(path)
            return path.stat().st_size
