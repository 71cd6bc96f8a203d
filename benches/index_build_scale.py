"""The lookup index built from a SQLite identity store of the whole country's size.

    python benches/index_build_scale.py --rows 125000000 --cache /big/rows.arrow \
        --db /big/center.db

The store is a center identity store whose current info (``identity``) holds ``--rows``
people: the synthetic rows of ``benches/compare_index.py`` (the same ``--cache`` file,
written there on first use), put in directly in code order through the bulk path (ADBC
ingest). Loading 125,000,000 people through ``apply_changes`` would also write their
history, twice the disk; its speed is ``benches/compare_identity.py``'s figure, and the
index build reads only the current info.

Timed, in this order (the database file in the page cache, as after the night's load):

1. ``IdentityStore.warm_index``: what the first request of a service does: the snapshot
   read in 64 code ranges by two readers, each range handed to the index's builder as it
   arrives, the names' and addresses' match keys, the save to ``<db>.index``. Target at
   125,000,000: <= 3 min.
2. The reopen: a new store object on the same files, ``current_index`` and one lookup
   (memory-mapped, not rebuilt). Target <= 5 s.
3. Side by side, the snapshot read alone through one reader and through two (ratio).

``--db``: where the store is made (and kept, so that a second run reuses it: its rows
are not loaded again); by default a temporary directory, removed at the end.
``--fill-only``: make the store and stop (at 125,000,000 the store takes about 20 GB
and the cache file 11 GB; the cache may be removed before the timed run).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).parent))

from compare_index import synthesized
from jukicore.identity import create_identity_store, open_identity_store
from jukicore.identity.index import StoreIndex

STEP = 1 << 22


def _timed(f: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def fill(db: Path, rows: int, cache: Path | None) -> None:
    """A center store whose current info is the synthetic rows, in code order."""
    cols = synthesized(rows, cache)
    order = pc.sort_indices(cols["code"])
    st = create_identity_store(db, node_id="center", kind="center")
    reasons = {"出生": "birth", "転入": "move_in", "転居": "move_within",
               "氏名変更": "name_change", "職権記載": "load"}
    try:
        for a in range(0, rows, STEP):  # a transaction each: the WAL stays one slice long
            with st._b.bulk_session() as s:
                idx = order.slice(a, STEP)
                take = {k: pc.take(v, idx) for k, v in cols.items()}
                n = len(idx)
                status = pc.if_else(pc.equal(take["status"], 1), "removed", "resident")
                reason = pc.take(pa.array(list(reasons.values())), pc.index_in(
                    take["change_reason"], pa.array(list(reasons))))
                part = pa.table({
                    "resident_code": take["code"].cast(pa.int64()),
                    "family_name": take["family_name"].cast(pa.string()),
                    "given_name": take["given_name"].cast(pa.string()),
                    "birth_date": take["birth_date"], "sex": take["sex"],
                    "address": take["address"].cast(pa.string()),
                    "status": status, "change_date": take["change_date"],
                    "change_reason": pc.if_else(pc.equal(status, "removed"), "death",
                                                reason),
                    "lg_code": take["lg_code"].cast(pa.string()),
                    "seq": pa.array(np.arange(a + 1, a + n + 1), pa.int64()),
                    "held_since": take["change_date"]})
                s.ingest("identity", s.for_db(part))
                print(f"\r  loaded {a + n:,} of {rows:,}", end="", flush=True)
        print()
    finally:
        st.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cache", type=Path, help="compare_index's Arrow IPC file of the rows")
    ap.add_argument("--db", type=Path, help="where to make (or find) the store")
    ap.add_argument("--fill-only", action="store_true",
                    help="make the store and stop (then the cache file may go: disk)")
    args = ap.parse_args(argv)
    tmp = None if args.db else Path(tempfile.mkdtemp(prefix="jukicore-bench-index-"))
    db = args.db or (tmp / "center.db")  # type: ignore[operator]
    try:
        if not db.exists():
            t, _ = _timed(lambda: fill(db, args.rows, args.cache))
            size = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
            print(f"store filled with {args.rows:,} people in {t:.0f} s ({size / 1e9:.1f} GB)")
        if args.fill_only:
            return 0
        index = Path(f"{db}.index")
        index.unlink(missing_ok=True)
        st = open_identity_store(db)
        try:
            t_build, _ = _timed(st.warm_index)
            assert st._index is not None and st._index.core is not None
            n = len(st._index.core)
            print(f"warm_index (64 code ranges by two readers, into the builder as read; "
                  f"save) of {n:,} people: "
                  f"{t_build:.1f} s = {t_build / 60:.2f} min (target <= 3 min at "
                  f"125,000,000); file {index.stat().st_size / 1e9:.2f} GB, memory_bytes "
                  f"{st._index.core.memory_bytes() / 1e9:.2f} GB")
        finally:
            st.close()
        code = None
        with open_identity_store(db) as again:
            with again._b.session(write=False) as s:
                code = int(s.scalar("SELECT min(resident_code) FROM identity"))

            def reopen() -> Any:
                with again._b.session(write=False) as s:
                    return again.current_index(s).lookup(code)

            t_open, hit = _timed(reopen)
            assert hit["hit"] == "found" and again._index is not None
            assert again._index.rebuilt == 0, "the index was rebuilt"
            print(f"reopen + one lookup: {t_open:.2f} s (target <= 5 s)")
            reads = []
            for k in (0, 1):
                with again._b.bulk_session(write=False) as s, \
                        again._b.side_readers(k) as side:
                    t, got = _timed(lambda: sum(p.num_rows for p in StoreIndex._snapshot(
                        s, side)))  # (each piece let go as read)
                    reads.append(t)
                    assert got == n
            print(f"snapshot read alone: one reader {reads[0]:.1f} s, two readers "
                  f"{reads[1]:.1f} s, ratio {reads[0] / reads[1]:.2f}x")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"process max RSS {rss:.1f} GB")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
