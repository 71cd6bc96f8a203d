"""Side by side: the chained audit log against plain audit rows, with ratios.

    python benches/compare_audit.py                  # full: verify of 10,000,000 entries
    python benches/compare_audit.py --verify-entries 1000000 --scale 0.05   # quicker

Notifications: a day of notifications applied (``Register.apply``) and single
notifications (``Register.notify``, one transaction and one entry each), with the
chained writer (jukicore.audit) against the same with plain audit rows (an INSERT
without seq, tree state or leaf hash). Target: chained >= 90 % of plain throughput.
Append alone: entries written with ``audit.write_many`` in committed transactions of
1,000 on SQLite. Target: >= 20,000 entries/s.
Verify: ``jukicore.audit.verify`` of a SQLite log of 10,000,000 entries (read with the
Arrow bulk path, leaves hashed in Rust). Target: <= 10 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa

from _register_data import LG, MUNI, PREF, block, municipality, with_codes
from jukicore import _jukicore as core
from jukicore import audit
from jukicore.audit import chain
from jukicore.register import Actor, Register, create_register
from jukicore.store import Session, connect
from jukicore.synth.day import generate_day

ADMIN = Actor.operator("bench", LG, "admin")
DAY = dt.date(2024, 6, 3)
_PLAIN = ("INSERT INTO audit (at, actor, actor_kind, action, target, notification_id, detail)"
          " VALUES (?, ?, ?, ?, ?, ?, ?)")
_chained = audit.write_many


def _plain(s: Session, rows: Iterable[tuple[Any, ...]]) -> None:
    s.executemany(_PLAIN, list(rows))


def use(plain: bool) -> None:
    """Plain audit rows (the baseline) or the chained writer, for every caller."""
    audit.write_many = _plain if plain else _chained  # type: ignore[assignment]


def _register(target: str, res: pa.Table, hh: pa.Table) -> Register:
    reg = create_register(target, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN)
    reg.load(res, hh, actor=ADMIN)
    reg.import_code_block(block(50_000), actor=ADMIN)
    return reg


def notifications(tmp: Path, n: int, day_n: int, singles: int, repeats: int,
                  report: Callable[[str, float, float, str], None]) -> None:
    """Best of ``repeats`` runs of each, alternating which goes first, each on a fresh
    register loaded with the same residents (the machine is shared: take the minimum)."""
    res, hh = municipality(n)
    res = with_codes(res)
    best: dict[tuple[str, bool], float] = {}
    for r in range(repeats):
        for plain in ((True, False) if r % 2 else (False, True)):
            use(plain)
            reg = _register(str(tmp / f"n-{r}-{plain}.db"), res, hh)
            day = generate_day(reg, actor=ADMIN, day=DAY, n=day_n, seed=1)
            t0 = time.perf_counter()
            reg.apply(day, actor=ADMIN, today=DAY)
            took = time.perf_counter() - t0
            best["day", plain] = min(best.get(("day", plain), took), took)
            rows = generate_day(reg, actor=ADMIN, day=DAY, n=singles, seed=2,
                                mix={"name_change": 0.5, "move_within": 0.5}).to_pylist()
            t0 = time.perf_counter()
            for row in rows:
                reg.notify(actor=ADMIN, today=DAY,
                           **{k: v for k, v in row.items() if v is not None})
            took = time.perf_counter() - t0
            best["one", plain] = min(best.get(("one", plain), took), took)
            reg.close()
    use(False)
    report(f"apply {day_n:,} notifications, SQLite", best["day", False], best["day", True],
           ">= 90 % of plain")
    report(f"{singles:,} single notifications, SQLite", best["one", False],
           best["one", True], ">= 90 % of plain")


def append(tmp: Path, n: int, batch: int, repeats: int,
           report: Callable[[str, float, float, str], None]) -> None:
    best: dict[bool, float] = {}
    for r in range(repeats):
        for plain in ((True, False) if r % 2 else (False, True)):
            use(plain)
            target = str(tmp / f"a-{r}-{plain}.db")
            create_register(target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                            actor=ADMIN).close()
            be = connect(target)
            t0 = time.perf_counter()
            for start in range(0, n, batch):
                with be.session() as s:
                    audit.write_many(s, [audit.entry(s, ADMIN, "register.read",
                                                     f"{i:011d}", "purpose: bench")
                                         for i in range(start, min(n, start + batch))])
            took = time.perf_counter() - t0
            best[plain] = min(best.get(plain, took), took)
            be.close()
    use(False)
    report(f"append {n:,} entries ({batch}/commit), SQLite", best[False], best[True],
           f">= 20,000 entries/s: {n / best[False]:,.0f} entries/s")


def big_log(target: str, n: int) -> None:
    """A register whose audit log holds ``n`` entries (ingested in bulk, state hashed)."""
    create_register(target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                    actor=ADMIN).close()
    be = connect(target)
    step = 1_000_000
    with be.bulk_session() as s:
        s.execute("DELETE FROM audit")
        lv = core.MerkleLeaves()
        base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for start in range(0, n, step):
            m = min(step, n - start)
            seq = pa.array(range(start, start + m), pa.int64())
            at = pa.array([base + dt.timedelta(seconds=i) for i in range(start, start + m)],
                          pa.timestamp("us", "UTC"))
            t = pa.table({
                "seq": seq, "at": at,
                "actor": pa.array([f"operator:clerk{i % 50}@{LG}" for i in range(m)]),
                "actor_kind": pa.array(["operator"] * m),
                "action": pa.array(["register.read"] * m),
                "target": pa.array([f"{(start + i) * 7919 % 10**11:011d}" for i in range(m)]),
                "notification_id": pa.nulls(m, pa.string()),
                "detail": pa.array(["purpose: counter certificate"] * m),
            })
            for b in t.to_batches():
                lv.extend_audit(b)
            db = t.set_column(1, "at", pa.array(
                [v.strftime("%Y-%m-%d %H:%M:%S.%f") for v in at.to_pylist()]))
            s.ingest("audit", db)
        s.execute("UPDATE audit_state SET size = ?, frontier = ?, root = ?",
                  (n, lv.frontier(n).hex(), lv.root(n).hex()))
    be.close()


def verify(tmp: Path, n: int, report: Callable[[str, float, float, str], None]) -> None:
    target = str(tmp / "big.db")
    t0 = time.perf_counter()
    big_log(target, n)
    print(f"(made a log of {n:,} entries in {time.perf_counter() - t0:.1f} s)")
    be = connect(target)
    t0 = time.perf_counter()
    rep = audit.verify(be, node_id=LG, keys=[])
    took = time.perf_counter() - t0
    be.close()
    assert rep.ok and rep.entries == n, rep
    report(f"verify {n:,} entries, SQLite", took, 0.0, "<= 10 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.02, help="fraction of 1,000,000 residents")
    ap.add_argument("--notifications", type=int, default=2_000)
    ap.add_argument("--singles", type=int, default=300)
    ap.add_argument("--append-entries", type=int, default=200_000)
    ap.add_argument("--verify-entries", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jukicore-audit-bench-"))

    def report(name: str, ours: float, base: float, target: str) -> None:
        ratio = f"chained/plain throughput {base / ours:6.1%}" if base else ""
        base_s = f"{base:8.3f} s" if base else "      -   "
        print(f"{name:<44} chained {ours:8.3f} s   plain {base_s}  {ratio}  ({target})",
              flush=True)

    n = max(1000, int(1_000_000 * args.scale))
    notifications(tmp, n, min(args.notifications, n // 5), args.singles, args.repeats, report)
    append(tmp, args.append_entries, 1000, args.repeats, report)
    verify(tmp, args.verify_entries, report)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    _ = chain  # the writer under test
    main()
