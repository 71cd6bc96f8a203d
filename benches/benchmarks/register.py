"""asv benchmarks for the resident register (SQLite; PostgreSQL when its binaries exist).

Sizes are set by JUKICORE_BENCH_RESIDENTS (default 1,000,000, the issue's target).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

import numpy as np

from _register_data import LG, MUNI, PREF, block, municipality, with_codes
from jukicore.register import Actor, create_register
from jukicore.synth.day import generate_day
from jukicore.testing import TempPostgres, find_pg_bin

N = int(os.environ.get("JUKICORE_BENCH_RESIDENTS", "1000000"))
ADMIN = Actor.operator("bench", LG, "admin")
DAY = dt.date(2024, 6, 3)


class BulkLoad:
    """Load N residents with their households into a fresh register."""

    params = (["sqlite", "postgresql"],)
    param_names = ("store",)
    timeout = 600
    number = 1
    repeat = 1

    def setup_cache(self) -> Any:
        res, hh = municipality(N)
        return with_codes(res), hh

    def setup(self, data: Any, store: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="jukicore-asv-")
        self.pg: TempPostgres | None = None
        if store == "postgresql":
            if find_pg_bin() is None:
                raise NotImplementedError("no PostgreSQL")
            self.pg = TempPostgres(durable=True).start()
            self.target = self.pg.create_database("bench")
        else:
            self.target = str(Path(self.dir) / "reg.db")
        self.reg = create_register(self.target, lg_code=LG, prefecture=PREF,
                                   municipality=MUNI, actor=ADMIN)

    def teardown(self, data: Any, store: str) -> None:
        self.reg.close()
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_load(self, data: Any, store: str) -> None:
        res, hh = data
        self.reg.load(res, hh, actor=ADMIN)


class ApplyDay:
    """A day of 10,000 mixed notifications, and single notifications, on SQLite."""

    timeout = 900
    number = 1
    repeat = 1

    def setup(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="jukicore-asv-")
        res, hh = municipality(N)
        self.reg = create_register(str(Path(self.dir) / "reg.db"), lg_code=LG,
                                   prefecture=PREF, municipality=MUNI, actor=ADMIN)
        self.reg.load(with_codes(res), hh, actor=ADMIN)
        self.reg.import_code_block(block(50_000), actor=ADMIN)
        self.day = generate_day(self.reg, actor=ADMIN, day=DAY, n=10_000, seed=1)
        self.singles = [
            {k: v for k, v in row.items() if v is not None}
            for row in generate_day(self.reg, actor=ADMIN, day=DAY, n=500, seed=2,
                                    mix={"name_change": 0.6, "move_within": 0.4}).to_pylist()
        ]

    def teardown(self) -> None:
        self.reg.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_apply_day(self) -> None:
        self.reg.apply(self.day, actor=ADMIN, today=DAY)

    def track_single_notification_p99_ms(self) -> float:
        lat = []
        for fields in self.singles:
            t0 = time.perf_counter()
            self.reg.notify(actor=ADMIN, today=DAY, **fields)
            lat.append(time.perf_counter() - t0)
        return float(np.percentile(np.array(lat) * 1000, 99))

    track_single_notification_p99_ms.unit = "ms"  # type: ignore[attr-defined]
