"""asv benchmarks of the online network (``benches/compare_network.py`` at asv sizes).

* a night of JUKICORE_BENCH_NET_CHANGES entries (default 40,000, the issue's size) pushed
  over mutual TLS to the prefecture and the center (each ``jukicore node serve`` in its
  own process) and acknowledged;
* single agency code queries over mutual TLS against a center of
  JUKICORE_BENCH_NET_RECORDS records (default 50,000): queries per second and p99.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

from compare_network import bench_night, bench_queries

CHANGES = int(os.environ.get("JUKICORE_BENCH_NET_CHANGES", "40000"))
RECORDS = int(os.environ.get("JUKICORE_BENCH_NET_RECORDS", "50000"))


class NightPush:
    """A night pushed to both recipients over the network (the nodes built outside)."""

    timeout = 900
    number = 1
    repeat = 1

    def setup(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jukicore-asv-net-"))

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def track_push_seconds(self) -> float:
        return float(bench_night(self.dir, CHANGES)["network_s"])

    track_push_seconds.unit = "s"  # type: ignore[attr-defined]


class AgencyQueries:
    """Single code queries over mutual TLS (the center in its own processes)."""

    timeout = 900
    number = 1
    repeat = 1

    def setup(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jukicore-asv-net-"))
        self.result = bench_queries(self.dir, RECORDS, 5.0, 16)

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def track_queries_per_second(self) -> float:
        return float(self.result["qps"])

    track_queries_per_second.unit = "queries/s"  # type: ignore[attr-defined]

    def track_p99_ms(self) -> float:
        return float(self.result["p99_ms"])

    track_p99_ms.unit = "ms"  # type: ignore[attr-defined]
