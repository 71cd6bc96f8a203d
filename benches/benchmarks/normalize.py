"""asv benchmarks for the match keys of names and addresses (Rust) against the pure-Python
pipeline of ``benches/_normalize_py.py``.

Sizes are set by JUKICORE_BENCH_NORMALIZE (default 1,000,000 names and as many addresses;
``benches/compare_normalize.py`` prints the side by side with its ratio).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

import _normalize_py as ref
from compare_normalize import variants
from jukicore import _jukicore
from jukicore.synth import synthesize_municipality

N = int(os.environ.get("JUKICORE_BENCH_NORMALIZE", "1000000"))


class MatchKeys:
    """Name and address keys of N synthetic, respelled strings."""

    timeout = 600
    number = 1
    repeat = 3

    def setup(self) -> None:
        res = synthesize_municipality(min(max(N // 50, 100), 20_000), seed=1).residents
        names = [v for c in ("family_name", "given_name") for v in res.column(c).to_pylist() if v]
        self.names = variants(names, N, "name")
        self.addresses = variants([v for v in res.column("address").to_pylist() if v], N,
                                  "address")
        self.name_arr = pa.array(self.names, pa.string())
        self.address_arr = pa.array(self.addresses, pa.string())

    def time_rust_name_keys(self) -> None:
        _jukicore.name_keys(self.name_arr)

    def time_rust_address_keys(self) -> None:
        _jukicore.address_keys(self.address_arr)

    def track_ratio_python_over_rust_names(self) -> float:
        """How many times faster the Rust name keys are than the Python pipeline."""
        return _ratio(ref.name_keys, self.names, _jukicore.name_keys, self.name_arr)

    track_ratio_python_over_rust_names.unit = "x"  # type: ignore[attr-defined]

    def track_ratio_python_over_rust_addresses(self) -> float:
        """How many times faster the Rust address keys are than the Python pipeline."""
        return _ratio(ref.address_keys, self.addresses, _jukicore.address_keys, self.address_arr)

    track_ratio_python_over_rust_addresses.unit = "x"  # type: ignore[attr-defined]


def _ratio(py: object, values: list[str], rust: object, arr: pa.Array) -> float:
    t0 = time.perf_counter()
    py(values)  # type: ignore[operator]
    t_py = time.perf_counter() - t0
    t0 = time.perf_counter()
    rust(arr)  # type: ignore[operator]
    return t_py / (time.perf_counter() - t0)
