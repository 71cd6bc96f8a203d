"""Side by side: agency queries by resident code answered one by one (``confirm``, one
transaction each) against group commit (``confirm_many``, one transaction per batch).

    python benches/compare_confirm_batch.py                 # 5,000 codes, batches 32, 64
    python benches/compare_confirm_batch.py --codes 20000 --batch 16 --batch 128

A center's SQLite store holds ``--codes`` residents (with some died, moved out and
retired codes); each way answers every code once (by ``jps`` for its pension purpose,
every tenth by ``mofa`` for passports) on a fresh copy of that store. Best of
``--repeats`` runs, alternating the order (the machine is shared: take the minimum).
Target of the online network: >= 2,000 queries/s on two cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from jukicore.access.actors import Actor
from jukicore.codes import CodeRegistry
from jukicore.identity.provide import ConfirmRequest
from jukicore.identity.store import (
    IDENTITY_SCHEMA,
    create_identity_store,
    open_identity_store,
)

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
JPS, MOFA = Actor.agency("jps"), Actor.agency("mofa")


def make_store(path: Path, codes: list[int]) -> None:
    rows = [{"seq": i + 1, "resident_code": c, "previous_resident_code": None,
             "family_name": "髙橋", "given_name": f"花子{i}", "birth_date": dt.date(1980, 1, 2),
             "sex": 2, "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
             "change_date": dt.date(2024, 4, 1), "change_reason": "load"}
            for i, c in enumerate(codes)]
    n = len(rows)
    for i in range(0, n, 50):  # every 50th dies, every 50th (offset 25) moves out abroad
        rows.append({**rows[i], "seq": len(rows) + 1, "status": "removed",
                     "change_reason": "death", "change_date": dt.date(2025, 6, 1)})
        if i + 25 < n:
            rows.append({**rows[i + 25], "seq": len(rows) + 1, "status": "removed",
                         "change_reason": "move_out", "change_date": dt.date(2025, 8, 1)})
    with create_identity_store(str(path), node_id="center", kind="center") as st:
        st.apply_changes(sender="131016", packet_id="load", first_seq=1, last_seq=len(rows),
                         changes=pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA),
                         actor="center")


def requests(codes: list[int]) -> list[ConfirmRequest]:
    return [ConfirmRequest("mofa", "mofa-passport", MOFA, c) if i % 10 == 9 else
            ConfirmRequest("jps", "jps-pension-benefits", JPS, c)
            for i, c in enumerate(codes)]


def one_by_one(path: Path, reqs: list[ConfirmRequest]) -> tuple[float, float]:
    """(wall, CPU) seconds."""
    with open_identity_store(str(path)) as st:
        t0, c0 = time.perf_counter(), time.process_time()
        for r in reqs:
            st.confirm(agency=r.agency, purpose=r.purpose, actor=r.actor, code=r.code,
                       now=NOW)
        return time.perf_counter() - t0, time.process_time() - c0


def batched(path: Path, reqs: list[ConfirmRequest], size: int) -> tuple[float, float]:
    """(wall, CPU) seconds."""
    with open_identity_store(str(path)) as st:
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(reqs), size):
            out = st.confirm_many(reqs[i:i + size], now=NOW)
            assert all(isinstance(o, pa.Table) for o in out)
        return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codes", type=int, default=5000)
    ap.add_argument("--batch", type=int, action="append")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = args.batch or [32, 64]
    codes = [int(c) for c in CodeRegistry().generate(args.codes)]
    reqs = requests(codes)
    ways = ["one by one", *[f"batch {b}" for b in sizes]]
    best = {w: float("inf") for w in ways}
    cpu = {w: float("inf") for w in ways}
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base.db"
        make_store(base, codes)
        for r in range(args.repeats):
            order = ways if r % 2 == 0 else ways[::-1]
            for w in order:
                path = Path(d) / f"{r}-{w.replace(' ', '_')}.db"
                shutil.copyfile(base, path)
                took, used = (one_by_one(path, reqs) if w == "one by one"
                              else batched(path, reqs, int(w.split()[1])))
                best[w], cpu[w] = min(best[w], took), min(cpu[w], used)
                path.unlink()
    print(f"confirm by resident code, SQLite, {len(reqs):,} queries, best of {args.repeats}")
    base_us = best["one by one"] / len(reqs) * 1e6
    for w in ways:
        us = best[w] / len(reqs) * 1e6
        print(f"  {w:<12} {us:8.1f} us/query  {len(reqs) / best[w]:9,.0f} queries/s"
              f"  x{base_us / us:5.2f}  (CPU {cpu[w] / len(reqs) * 1e6:6.1f} us/query)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
