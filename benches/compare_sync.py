"""The nightly synchronization at scale, against its targets.

* night: a municipality's night of 40,000 identity-info changes end to end:
  export (read the outbox, encrypt, sign), then at the center verify, decrypt,
  apply and acknowledge, on SQLite. Target: <= 3 s.
* initial load: 10,000,000 identity records through packets (1,000,000 per
  packet) into the center: verify, decrypt and apply every packet, on SQLite and
  on PostgreSQL (a throwaway server with fsync on and its default settings).
  Target: <= 120 s each. The packets are built beforehand (not timed): they are
  what the municipalities send; they are applied as ``jukicore sync apply`` does
  (each packet verified and decrypted while the one before it is applied).

Usage: python benches/compare_sync.py [--scale 1.0] [--no-postgres]
(``--scale 0.01`` is a quick run: 400 changes and 100,000 records.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from jukicore.codes import CodeRegistry
from jukicore.identity import IDENTITY_SCHEMA, create_identity_store
from jukicore.network.node import CENTER, Node, init_node, trust_each_other
from jukicore.network.packet import Packet
from jukicore.network.sync import ApplyOutcome, apply_packet, apply_packets, export_changes

PASSWORD = "bench-node-password"  # the node password policy: >= 12 characters
MUNI = "131041"


def _nodes(root: Path, center_store: str | None = None) -> tuple[Node, Node]:
    os.environ["JUKICORE_NODE_PASSWORD"] = PASSWORD
    muni = init_node(root / "muni", MUNI)
    center = init_node(root / "center", CENTER, store=center_store)
    create_identity_store(center.store_target(), node_id=CENTER, kind="center").close()
    trust_each_other((muni, center), PASSWORD)
    return muni, center


def night(changes: int, root: Path) -> float:
    """Export + center apply + acknowledgement of ``changes`` outbox entries (SQLite)."""
    from jukicore.register import Actor, create_register
    from jukicore.synth import synthesize_municipality

    muni, center = _nodes(root)
    m = synthesize_municipality(changes, lg_code=MUNI, seed=3,
                                as_of=dt.date.today() - dt.timedelta(days=1))
    admin = Actor.operator("bench", MUNI, "admin")
    with create_register(muni.store_target(), lg_code=MUNI,
                         prefecture=m.prefecture, municipality=m.name, actor=admin) as reg:
        reg.import_code_block(CodeRegistry().allocate_block(changes, MUNI), actor=admin)
        reg.load(m.residents, m.households, actor=admin)  # one outbox entry per resident
    t = time.perf_counter()
    packet = export_changes(muni, CENTER)
    assert packet is not None
    target = center.inbox / packet.name
    shutil.copy(packet, target)
    outcome = apply_packet(center, target)
    assert outcome.detail["applied"] == changes and outcome.reply is not None
    shutil.copy(outcome.reply, muni.inbox / outcome.reply.name)
    apply_packet(muni, muni.inbox / outcome.reply.name)
    return time.perf_counter() - t


def _records(start: int, n: int, codes: np.ndarray, rng: np.random.Generator) -> pa.Table:
    families = np.array(["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"])
    givens = np.array(["花子", "太郎", "翔", "陽菜", "蓮", "結衣", "大翔", "美咲"])
    towns = np.array(["西新宿", "歌舞伎町", "高田馬場", "四谷", "神楽坂", "大久保"])
    return pa.table({
        "seq": np.arange(start + 1, start + n + 1, dtype=np.int64),
        "resident_code": pa.array(codes[start:start + n], pa.uint64()),
        "previous_resident_code": pa.nulls(n, pa.uint64()),
        "family_name": pa.array(families[rng.integers(0, 8, n)]),
        "given_name": pa.array(givens[rng.integers(0, 8, n)]),
        "birth_date": pa.array(rng.integers(-25000, 19500, n).astype("int32"), pa.date32()),
        "sex": pa.array(rng.integers(1, 3, n).astype("int8")),
        "address": pa.compute.binary_join_element_wise(
            pa.array(np.char.add("東京都新宿区", towns[rng.integers(0, 6, n)])),
            pa.array(rng.integers(1, 9, n).astype(str)), "丁目"),
        "status": pa.array(np.full(n, "resident")),
        "change_date": pa.array(np.full(n, 19800, dtype="int32"), pa.date32()),
        "change_reason": pa.array(np.full(n, "load")),
    }, schema=IDENTITY_SCHEMA)


def initial_load(total: int, per_packet: int, root: Path, center_store: str | None) -> float:
    muni, center = _nodes(root, center_store)
    keys = muni.current_keys(PASSWORD)
    trust = muni.trust()
    codes = CodeRegistry().generate(total)
    rng = np.random.default_rng(0)
    paths = []
    for start in range(0, total, per_packet):
        n = min(per_packet, total - start)
        p = center.inbox / f"load-{start:012d}.jkp"
        p.write_bytes(Packet.build(
            kind="identity-changes", table=_records(start, n, codes, rng), sender=keys,
            recipient=CENTER, trust_store=trust, seq_first=start + 1,
            seq_last=start + n).to_bytes())
        paths.append(p)
    t = time.perf_counter()
    for p, outcome in apply_packets(center, paths):  # as `jukicore sync apply` does
        if not isinstance(outcome, ApplyOutcome) or outcome.status != "applied":
            raise SystemExit(f"{p.name} was not applied: {outcome}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    changes = max(100, int(40_000 * args.scale))
    total = max(10_000, int(10_000_000 * args.scale))
    per_packet = min(1_000_000, total)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("night (SQLite)", f"{changes:,} changes", night(changes, Path(tmp) / "n"),
                     3.0))
        secs = initial_load(total, per_packet, Path(tmp) / "s", None)
        rows.append(("initial load (SQLite)", f"{total:,} records", secs, 120.0))
        if not args.no_postgres:
            from jukicore.testing import TempPostgres, find_pg_bin

            if find_pg_bin() is not None:
                pg = TempPostgres(durable=True).start()  # fsync on, as a center runs it
                try:
                    uri = pg.create_database("center")
                    secs = initial_load(total, per_packet, Path(tmp) / "p", uri)
                    rows.append(("initial load (PostgreSQL)", f"{total:,} records", secs, 120.0))
                finally:
                    pg.stop()
    print(f"{'benchmark':28} {'size':>20} {'seconds':>9} {'target':>8}  result"
          + ("" if args.scale == 1 else "  (targets are for --scale 1)"))
    for name, size, secs, target in rows:
        ok = "pass" if secs <= target else "FAIL"
        print(f"{name:28} {size:>20} {secs:9.2f} {target:8.1f}  {ok}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
