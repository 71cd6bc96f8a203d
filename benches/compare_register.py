"""Side by side: jukicore's register against the plain-Python baselines, with ratios.

    python benches/compare_register.py            # full scale: 1,000,000 residents
    python benches/compare_register.py --scale 0.01   # quick run (10,000 residents)

Bulk load: ``Register.load`` (ADBC ingest on SQLite, COPY on PostgreSQL) against
``executemany`` of the same rows in one transaction (rows made from the Arrow
table with ``to_pylist``, which a baseline must do too). Targets: <= 15 s per
database at 1,000,000 and faster than the baseline.
Apply: a generated day of 10,000 mixed notifications on SQLite (<= 2 s).
Single notification: p99 latency through ``Register.notify`` on SQLite (<= 5 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pyarrow as pa

from _register_data import LG, MUNI, PREF, block, municipality, with_codes
from jukicore.register import Actor, Register, create_register
from jukicore.register._schema import RESIDENT_COLUMNS
from jukicore.synth.day import generate_day
from jukicore.testing import TempPostgres, find_pg_bin

ADMIN = Actor.operator("bench", LG, "admin")
DAY = dt.date(2024, 6, 3)


def _fresh(target: str) -> Register:
    return create_register(target, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN)


def _load_rows(res: pa.Table) -> pa.Table:
    n = res.num_rows
    cols: dict[str, Any] = {}
    for c in RESIDENT_COLUMNS:
        if c.name in res.column_names:
            cols[c.name] = res.column(c.name)
        elif c.name == "status":
            cols[c.name] = pa.array(["resident"] * n)
        elif c.name == "updated_on":
            cols[c.name] = res.column("address_since")
        else:
            cols[c.name] = pa.nulls(n)
    return pa.table(cols)


def baseline_executemany(target: str, res: pa.Table, hh: pa.Table) -> float:
    """Fresh register, then executemany of every resident and household in one transaction."""
    reg = _fresh(target)
    reg.close()
    rows_t = _load_rows(res)
    t0 = time.perf_counter()
    names = rows_t.column_names
    rows = list(zip(*[rows_t.column(c).to_pylist() for c in names], strict=True))
    hrows = list(zip(hh.column("household_id").to_pylist(), hh.column("head_person_id").to_pylist(),
                     hh.column("address").to_pylist(), strict=True))
    marks = ", ".join(["?"] * len(names))
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target) as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO residents ({', '.join(names)}) VALUES "
                            f"({marks.replace('?', '%s')})", rows)
            cur.executemany("INSERT INTO households (household_id, head_person_id, address)"
                            " VALUES (%s, %s, %s)", hrows)
    else:
        conn = sqlite3.connect(target, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO residents ({', '.join(names)}) VALUES ({marks})",
                         [tuple(v.isoformat() if isinstance(v, dt.date) else v for v in r)
                          for r in rows])
        conn.executemany("INSERT INTO households (household_id, head_person_id, address)"
                         " VALUES (?, ?, ?)", hrows)
        conn.execute("COMMIT")
        conn.close()
    return time.perf_counter() - t0


def jukicore_load(target: str, res: pa.Table, hh: pa.Table) -> tuple[float, Register]:
    reg = _fresh(target)
    t0 = time.perf_counter()
    reg.load(res, hh, actor=ADMIN)
    return time.perf_counter() - t0, reg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of 1,000,000 residents")
    ap.add_argument("--notifications", type=int, default=10_000)
    ap.add_argument("--singles", type=int, default=1000)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    n = max(100, int(1_000_000 * args.scale))
    res, hh = municipality(n)
    res = with_codes(res)
    n = res.num_rows
    print(f"municipality: {n:,} residents, {hh.num_rows:,} households")
    tmp = Path(tempfile.mkdtemp(prefix="jukicore-bench-"))
    results: list[tuple[str, float, float | None, str]] = []

    def report(name: str, ours: float, base: float | None, target: str) -> None:
        ratio = f"{base / ours:5.2f}x faster" if base else ""
        base_s = f"{base:8.2f} s" if base else "       -  "
        print(f"{name:<42} jukicore {ours:8.3f} s   baseline {base_s}  {ratio}  ({target})")
        results.append((name, ours, base, target))

    # SQLite bulk load
    base = baseline_executemany(str(tmp / "base.db"), res, hh)
    ours, reg = jukicore_load(str(tmp / "reg.db"), res, hh)
    report(f"bulk load {n:,} residents, SQLite", ours, base, "<= 15 s, faster than baseline")

    # PostgreSQL bulk load
    if not args.no_postgres and find_pg_bin() is not None:
        with TempPostgres(durable=True) as pg:
            base = baseline_executemany(pg.create_database("base"), res, hh)
            ours, preg = jukicore_load(pg.create_database("reg"), res, hh)
            preg.import_code_block(block(50_000), actor=ADMIN)
            report(f"bulk load {n:,} residents, PostgreSQL", ours, base,
                   "<= 15 s, faster than baseline")
            day = generate_day(preg, actor=ADMIN, day=DAY, n=min(args.notifications, n // 5),
                               seed=1)
            t0 = time.perf_counter()
            rep = preg.apply(day, actor=ADMIN, today=DAY)
            report(f"apply {day.num_rows:,} notifications, PostgreSQL",
                   time.perf_counter() - t0, None, f"{rep.summary()}")
            preg.close()
    else:
        print("PostgreSQL: skipped (no server binaries or --no-postgres)")

    # apply a day on SQLite
    reg.import_code_block(block(50_000), actor=ADMIN)
    day = generate_day(reg, actor=ADMIN, day=DAY, n=min(args.notifications, n // 5), seed=1)
    t0 = time.perf_counter()
    rep = reg.apply(day, actor=ADMIN, today=DAY)
    report(f"apply {day.num_rows:,} notifications, SQLite", time.perf_counter() - t0, None,
           f"<= 2 s; {rep.summary()}")

    # single notifications (name changes and moves) on SQLite
    singles = generate_day(reg, actor=ADMIN, day=DAY, n=args.singles, seed=2,
                           mix={"name_change": 0.5, "move_within": 0.3, "my_number": 0.2})
    lat = []
    for row in singles.to_pylist():
        fields = {k: v for k, v in row.items() if v is not None}
        t0 = time.perf_counter()
        reg.notify(actor=ADMIN, today=DAY, **fields)
        lat.append(time.perf_counter() - t0)
    arr = np.array(lat) * 1000
    print(f"{'single notification, SQLite':<42} p50 {np.percentile(arr, 50):.2f} ms  "
          f"p99 {np.percentile(arr, 99):.2f} ms  max {arr.max():.2f} ms  (p99 <= 5 ms, "
          f"{len(arr)} calls on {n:,} residents)")
    reg.close()
    for f in tmp.iterdir():
        os.remove(f)
    tmp.rmdir()


if __name__ == "__main__":
    main()
