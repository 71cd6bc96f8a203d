"""asv benchmarks for the nightly synchronization (``benches/compare_sync.py`` at asv sizes).

* a night of JUKICORE_BENCH_SYNC_CHANGES changes (default 40,000, the issue's size):
  export at the municipality, verify, decrypt, apply and acknowledge at the center,
  on SQLite;
* an initial load of JUKICORE_BENCH_SYNC_RECORDS identity records (default 2,000,000;
  ``compare_sync.py`` runs the issue's 10,000,000) through packets of 1,000,000 into the
  center, on SQLite and on PostgreSQL (when its binaries exist).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

from compare_sync import initial_load, night
from jukicore.testing import TempPostgres, find_pg_bin

CHANGES = int(os.environ.get("JUKICORE_BENCH_SYNC_CHANGES", "40000"))
RECORDS = int(os.environ.get("JUKICORE_BENCH_SYNC_RECORDS", "2000000"))


class Night:
    """Export + center apply + acknowledgement of CHANGES outbox entries (SQLite)."""

    timeout = 600
    number = 1
    repeat = 1

    def setup(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jukicore-asv-"))

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def track_night_seconds(self) -> float:
        """Seconds for the night (the municipality's register is built outside the timing)."""
        return night(CHANGES, self.dir)

    track_night_seconds.unit = "s"  # type: ignore[attr-defined]


class InitialLoad:
    """RECORDS identity records through packets of 1,000,000 into the center."""

    params = (["sqlite", "postgresql"],)
    param_names = ("store",)
    timeout = 1800
    number = 1
    repeat = 1

    def setup(self, store: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jukicore-asv-"))
        self.pg: TempPostgres | None = None
        self.target: str | None = None
        if store == "postgresql":
            if find_pg_bin() is None:
                raise NotImplementedError("no PostgreSQL")
            self.pg = TempPostgres(durable=True).start()
            self.target = self.pg.create_database("center")

    def teardown(self, store: str) -> None:
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def track_load_seconds(self, store: str) -> float:
        """Seconds to apply every packet (the packets are built outside the timing)."""
        return initial_load(RECORDS, min(1_000_000, RECORDS), self.dir, self.target)

    track_load_seconds.unit = "s"  # type: ignore[attr-defined]
