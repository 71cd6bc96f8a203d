"""Identity confirmation at scale: pension checks by code, four-item queries with spelling
variants, and the lookup index built from the store.

    python benches/compare_identity.py                  # full: 3,000,000 records
    python benches/compare_identity.py --scale small    # a smoke run (seconds)
    python benches/compare_identity.py --records 5000000 --checks 2000000 --pg URI
    python benches/compare_identity.py --records 2000000 --checks 36000000 --queries 10000

With more checks than records, the codes checked are drawn with replacement.

1. **Pension checks by code**: a center identity store (SQLite file, and PostgreSQL: a
   throwaway server with fsync on, or ``--pg URI``) loaded with N synthetic records
   (``apply_changes``, change reason ``load``, batches of up to 1,000,000 per
   municipality), then ``store.verify`` of M codes for ``jps-pension-benefits`` with the
   agency's date: the whole call is timed (index brought up to the store, answers,
   provision records written in the same transaction). Alternative, same run, same
   answers (checked): plain SQL done by the database itself: the codes staged in a
   temporary table, joined with the identity table (and the retired codes), provision
   rows written with ``INSERT ... SELECT``, the answers read back as Arrow. The issue's
   target: 36,000,000 checks against 125,000,000 records in <= 5 minutes per database;
   the projection for 36M is linear in the checks.
2. **Four-item queries with spelling variants** (SQLite): Q queries, 90 % from
   ``jukicore.synth.spelling_variants`` over people of the store, 10 % ``decoys`` (from
   whole municipalities, so that a decoy matches nobody in the store), answered by
   ``verify`` by the four items. Reported: time, recall on the variants (target >=
   99.5 %), wrong single matches (target 0).
3. **The index**: the first ``current_index`` of the SQLite store (snapshot read, build,
   save to its file), the file's size, ``memory_bytes()``, the reopen (``use_index`` on
   the same file, then one lookup: memory-mapped, not rebuilt) and the process's max RSS.
   Targets at 125M: build <= 3 min, reopen <= 5 s, <= 8 GB; projected linearly here.

Synthetic people: ``--base`` municipalities of ``--muni-size`` residents from
``jukicore.synth.synthesize_municipality`` (real names, dates, addresses); the rest of
the N are copies of them moved to other real municipalities (the prefecture and
municipality at the head of the address, ``lg_code``, ``prefecture`` and
``municipality`` replaced: the same streets in another city), so that no two people
share the four items more often than in the synthesized towns. Every person gets a
fresh resident code from ``CodeRegistry().generate``; the rows are shuffled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore.access.actors import Actor
from jukicore.codes import CodeRegistry
from jukicore.identity import IDENTITY_SCHEMA, IdentityStore, create_identity_store
from jukicore.synth import decoys, municipalities, spelling_variants, synthesize_municipality

CENTER = "center"
JPS = Actor.agency("jps")
PURPOSE = "jps-pension-benefits"
AS_OF = dt.date(2024, 3, 1)  # the synthetic registers' date
LOAD_DAY = dt.date(2024, 4, 1)  # the change date of every loaded record
SINCE = dt.date(2025, 4, 1)  # the pension service's date: after the load, so "unchanged"
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
BATCH = 1_000_000
PENSION_CHECKS = 36_000_000
NATION = 125_000_000
UNKNOWN_SHARE = 0.005  # codes the store never saw, among the checks

SCALES = {
    "small": {"records": 20_000, "checks": 10_000, "queries": 4_000, "muni_size": 4_000,
              "base": 2},
    "full": {"records": 3_000_000, "checks": 1_500_000, "queries": 1_000_000,
             "muni_size": 200_000, "base": 3},
}


def _timed(f: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


# ------------------------------------------------------------------------- the people

def _moved(base: pa.Table, pref: str, name: str, lg: str) -> pa.Table:
    """``base``'s residents with their address moved to municipality (pref, name, lg)."""
    head = str(base.column("prefecture")[0]) + str(base.column("municipality")[0])
    assert pc.all(pc.starts_with(base.column("address"), head)).as_py(), head
    rest = pc.utf8_slice_codeunits(base.column("address"), len(head))
    n = base.num_rows
    out = base.set_column(base.schema.get_field_index("address"), "address",
                          pc.binary_join_element_wise(pa.array([pref + name] * n), rest, ""))
    for col, v in (("prefecture", pref), ("municipality", name), ("lg_code", lg)):
        out = out.set_column(out.schema.get_field_index(col), col,
                             pa.array([v] * n, out.schema.field(col).type))
    return out.cast(base.schema)


def people(n: int, muni_size: int, base: int, seed: int = 1) -> pa.Table:
    """N synthetic residents with fresh codes, shuffled (see the module docs)."""
    bases = []
    for b in range(min(base, -(-n // muni_size))):
        m = synthesize_municipality(min(muni_size, n), seed=seed + b, as_of=AS_OF)
        r = m.residents
        # the synthetic register holds every resident; the store gets the residents only
        if "status" in r.column_names:
            r = r.filter(pc.equal(r.column("status"), "resident"))
        keep = [c for c in ("family_name", "given_name", "family_name_kana",
                            "given_name_kana", "birth_date", "sex", "address", "town",
                            "prefecture", "municipality", "lg_code") if c in r.column_names]
        bases.append(r.select(keep))
    used = {str(t.column("lg_code")[0]) for t in bases}
    others = municipalities()
    rng = np.random.default_rng(seed)
    order = rng.permutation(others.num_rows)
    parts, total, k, o = [], 0, 0, 0
    while total < n:
        src = bases[k % len(bases)]
        if k >= len(bases):
            while str(others.column("lg_code")[int(order[o])]) in used:
                o += 1
            row = others.slice(int(order[o]), 1).to_pylist()[0]
            used.add(row["lg_code"])
            src = _moved(src, row["prefecture"], row["name"], row["lg_code"])
        take = min(src.num_rows, n - total)
        parts.append(src.slice(0, take))
        total += take
        k += 1
    t = pa.concat_tables(parts).combine_chunks()
    t = t.take(pa.array(rng.permutation(t.num_rows)))
    codes = CodeRegistry().generate(t.num_rows)
    return t.append_column("resident_code", pa.array(codes, pa.uint64()))


def load(st: IdentityStore, ppl: pa.Table) -> float:
    """Apply every person as a 'load' entry of their municipality, in batches."""
    t0 = time.perf_counter()
    lgs = ppl.column("lg_code")
    for lg in pc.unique(lgs).to_pylist():
        mine = ppl.filter(pc.equal(lgs, lg))
        for start in range(0, mine.num_rows, BATCH):
            part = mine.slice(start, BATCH)
            k = part.num_rows
            changes = pa.table({
                "seq": pa.array(np.arange(start + 1, start + k + 1), pa.int64()),
                "resident_code": part.column("resident_code"),
                "previous_resident_code": pa.nulls(k, pa.uint64()),
                "family_name": part.column("family_name"),
                "given_name": part.column("given_name"),
                "birth_date": part.column("birth_date"), "sex": part.column("sex"),
                "address": part.column("address"),
                "status": pa.array(["resident"] * k),
                "change_date": pa.array([LOAD_DAY] * k, pa.date32()),
                "change_reason": pa.array(["load"] * k)}).cast(IDENTITY_SCHEMA)
            st.apply_changes(sender=lg, packet_id=f"load-{lg}-{start}", first_seq=start + 1,
                             last_seq=start + k, changes=changes, actor=st.node_id)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------- 1. by code

_ANSWER_SQL = (
    "CASE WHEN i.resident_code IS NULL THEN CASE WHEN t.resident_code IS NULL THEN"
    " 'not_found' ELSE 'retired' END WHEN i.status = 'removed' THEN CASE i.change_reason"
    " WHEN 'death' THEN 'died' WHEN 'move_out' THEN 'moved_out' ELSE 'removed' END"
    " WHEN i.change_date > ? THEN 'changed' ELSE 'unchanged' END")
_FROM = (" FROM bench_req r LEFT JOIN identity i ON i.resident_code = r.resident_code"
         " LEFT JOIN identity_retired t ON t.resident_code = r.resident_code")
_BASE_SCHEMA = pa.schema([
    pa.field("row", pa.int64()), pa.field("answer", pa.string()),
    pa.field("resident_code", pa.int64()), pa.field("family_name", pa.string()),
    pa.field("given_name", pa.string()), pa.field("birth_date", pa.date32()),
    pa.field("sex", pa.int8()), pa.field("address", pa.string()),
    pa.field("status", pa.string()), pa.field("change_date", pa.date32()),
    pa.field("change_reason", pa.string()), pa.field("new_code", pa.int64())])


def baseline_sql(st: IdentityStore, codes: pa.Array) -> tuple[float, pa.Table]:
    """The plain-SQL alternative: stage, join, INSERT ... SELECT the provision rows, read
    the answers; one transaction. (No 'changed' items: every record here is unchanged
    since the agency's date, and the benchmark checks that the answers agree.)"""
    p = next(x for x in st.purposes() if x.purpose == PURPOSE)
    t0 = time.perf_counter()
    with st._b.bulk_session() as s:
        s.execute("CREATE TEMPORARY TABLE bench_req (row BIGINT, resident_code BIGINT)")
        s.ingest("bench_req", pa.table({
            "row": pa.array(np.arange(len(codes), dtype=np.int64)),
            "resident_code": pc.cast(codes, pa.int64())}), temporary=True)
        # the same records as jukicore writes: the request once, one narrow row per code
        no = int(s.query(
            "INSERT INTO provision_request (request_id, at, agency, purpose_id,"
            " purpose_version, legal_basis, actor, embargo_until) VALUES (?, ?, ?, ?, ?, ?,"
            " ?, NULL) RETURNING request_no",
            ("bench-sql", s.ts(dt.datetime.now(dt.UTC)), "jps", p.purpose, p.version,
             p.legal_basis, str(JPS)))[0][0])
        s.execute(
            "INSERT INTO provision (request_no, resident_code, answer, items)"
            f" SELECT ?, r.resident_code, {_ANSWER_SQL}, NULL{_FROM} ORDER BY r.row",
            (no, s.d(SINCE)))
        out = s.fetch_arrow(
            f"SELECT r.row, {_ANSWER_SQL} AS answer, i.resident_code, i.family_name, i.given_name,"
            " i.birth_date, i.sex, i.address, i.status, i.change_date, i.change_reason,"
            f" t.new_code{_FROM} ORDER BY r.row", (s.d(SINCE),), _BASE_SCHEMA)
        s.execute("DROP TABLE bench_req")
    return time.perf_counter() - t0, out


def pension(st: IdentityStore, ppl: pa.Table, checks: int, label: str, n: int,
            report: Callable[..., None]) -> None:
    rng = np.random.default_rng(5)
    unknown = max(1, int(checks * UNKNOWN_SHARE))
    known = ppl.column("resident_code").take(
        pa.array(rng.choice(ppl.num_rows, checks - unknown,
                            replace=checks - unknown > ppl.num_rows)))
    stranger = CodeRegistry()
    stranger.add(np.asarray(ppl.column("resident_code")))
    codes = pa.concat_arrays([known.combine_chunks(),
                              pa.array(stranger.generate(unknown), pa.uint64())])
    codes = codes.take(pa.array(rng.permutation(len(codes))))
    req = pa.table({"resident_code": codes})

    def ours() -> pa.Table:
        return st.verify(req, agency="jps", purpose=PURPOSE, actor=JPS, since=SINCE, now=NOW)

    t_ours, out = _timed(ours)
    t_base, base = baseline_sql(st, codes)
    same = (out.column("answer").equals(base.column("answer"))
            and pc.cast(out.column("resident_code"), pa.int64()).equals(
                base.column("resident_code"))
            and out.column("family_name").equals(base.column("family_name")))
    if not same:
        raise SystemExit(f"{label}: jukicore and the plain SQL disagree")
    counts = Counter(out.column("answer").to_pylist())
    rate = checks / t_ours
    report(f"pension checks {checks:,} on {n:,}, {label}", t_ours, t_base,
           f"{rate:,.0f} checks/s, 36M projected {PENSION_CHECKS / rate / 60:.1f} min"
           f" (target <= 5 min); answers {dict(sorted(counts.items()))}, same as SQL")


# ------------------------------------------------------------------------- 2. four items

def four_items(st: IdentityStore, ppl: pa.Table, queries: int, muni_size: int,
               report: Callable[..., None]) -> None:
    n_fake = max(1, queries // 10)
    n_var = queries - n_fake
    t_gen = time.perf_counter()
    variants = spelling_variants(ppl.slice(0, min(n_var, ppl.num_rows)), seed=3)
    # decoys from whole municipalities: each must match nobody of its town (the others
    # have other addresses)
    fakes: list[pa.Table] = []
    lgs = ppl.column("lg_code")
    for lg in pc.unique(lgs).to_pylist():
        town = ppl.filter(pc.equal(lgs, lg))
        want = n_fake - sum(f.num_rows for f in fakes)
        if want <= 0:
            break
        fakes.append(decoys(town, seed=4, rate=min(1.0, want / town.num_rows)))
    fake = pa.concat_tables(fakes)
    fake = fake.slice(0, n_fake)
    cols = ["resident_code", "family_name", "given_name", "birth_date", "sex", "address",
            "variant"]
    both = pa.concat_tables([variants.select(cols), fake.select(cols).cast(
        variants.select(cols).schema)])
    t_gen = time.perf_counter() - t_gen
    req = both.select(["family_name", "given_name", "birth_date", "sex", "address"])
    t, out = _timed(lambda: st.verify(req, agency="jps", purpose=PURPOSE, actor=JPS, now=NOW))
    truth = np.asarray(pc.fill_null(pc.cast(both.column("resident_code"), pa.int64()), -1))
    got = np.asarray(pc.fill_null(pc.cast(out.column("resident_code"), pa.int64()), -1))
    real = truth >= 0
    right = int(np.sum(real & (got == truth)))
    wrong = int(np.sum((got >= 0) & (got != truth)))
    answers = np.asarray(out.column("answer"))
    ambiguous = int(np.sum(real & (answers == "ambiguous")))
    recall = right / max(1, int(real.sum()))
    missed = Counter(np.asarray(both.column("variant"))[real & (got != truth)].tolist())
    report(f"four-item queries {both.num_rows:,} ({int(real.sum()):,} variants,"
           f" {int((~real).sum()):,} decoys)", t, None,
           f"{both.num_rows / t:,.0f} queries/s; recall {recall:.2%} (target >= 99.5 %:"
           f" {'met' if recall >= 0.995 else 'NOT met'}), wrong single matches {wrong}"
           f" (target 0), ambiguous variants {ambiguous}; queries made in {t_gen:.1f} s")
    if missed:
        print(f"    missed variants by kind: {dict(missed.most_common(8))}")


# ------------------------------------------------------------------------- 3. the index

def index(st: IdentityStore, path: Path, ppl: pa.Table, n: int,
          report: Callable[..., None]) -> None:
    st.use_index(path)
    t_build, _ = _timed(st.warm_index)  # what a request does first: the bulk read path
    assert st._index is not None and st._index.core is not None
    core = st._index.core
    size = path.stat().st_size
    mem = core.memory_bytes()
    rss_build = _rss_gb()
    code = int(ppl.column("resident_code")[0].as_py())

    def reopen() -> Any:
        st.use_index(path)  # a new StoreIndex on the same file: opened, not rebuilt
        with st._b.session(write=False) as s:
            return st.current_index(s).lookup(code)

    t_open, hit = _timed(reopen)
    assert hit["hit"] == "found", hit
    assert st._index is not None and st._index.rebuilt == 0, "the index was rebuilt"
    # where the build's time goes, each step again on its own
    from jukicore._jukicore import IdentityIndexCore
    from jukicore.identity.index import StoreIndex, _row_arrays

    with st._b.bulk_session(write=False) as s, st._b.side_readers(1) as side:
        t_read, parts = _timed(lambda: list(StoreIndex._snapshot(s, side)))
    t_core, again = _timed(lambda: IdentityIndexCore.build_from_pieces(
        (_row_arrays(p) for p in parts), store_id="again", mark=0))
    t_save, _ = _timed(lambda: again.save(path.with_suffix(".again")))
    os.remove(path.with_suffix(".again"))
    scale = NATION / n
    report(f"index build from the store, {n:,} records", t_build, None,
           f"snapshot + build + save; 125M projected {t_build * scale / 60:.1f} min"
           f" (target <= 3 min); again step by step: snapshot read {t_read:.2f} s, core"
           f" build {t_core:.2f} s, save {t_save:.2f} s")
    report(f"index reopen + one lookup, {n:,} records", t_open, None,
           "memory-mapped, not rebuilt (target at 125M <= 5 s)")
    print(f"index file {size / 1e6:,.1f} MB ({size / n:.0f} B/record, 125M projected"
          f" {size * scale / 1e9:.1f} GB); memory_bytes {mem / 1e6:,.1f} MB (125M projected"
          f" {mem * scale / 1e9:.1f} GB, target <= 8 GB); process max RSS after the build"
          f" {rss_build:.2f} GB (with the synthetic people)")


# ------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=tuple(SCALES), default="full")
    ap.add_argument("--records", type=int, help="N records in the store")
    ap.add_argument("--checks", type=int, help="M codes checked")
    ap.add_argument("--queries", type=int, help="four-item queries")
    ap.add_argument("--muni-size", type=int, help="residents per synthesized municipality")
    ap.add_argument("--base", type=int, help="municipalities synthesized (the rest copies)")
    ap.add_argument("--pg", metavar="URI", help="an empty PostgreSQL database to use")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    args = ap.parse_args(argv)
    cfg = dict(SCALES[args.scale])
    for k in cfg:
        v = getattr(args, k)
        if v is not None:
            cfg[k] = v
    # more checks than records: codes drawn with replacement (an agency's whole file, at a
    # size of store this machine holds twice, as SQLite and PostgreSQL)
    n, checks = cfg["records"], cfg["checks"]
    t, ppl = _timed(lambda: people(n, cfg["muni_size"], cfg["base"]))
    n = ppl.num_rows
    print(f"people: {n:,} ({min(cfg['base'], -(-n // cfg['muni_size']))} synthesized"
          f" municipalities of <= {cfg['muni_size']:,}, the rest moved copies) in {t:.1f} s")

    def report(name: str, ours: float, base: float | None, note: str) -> None:
        alt = (f"plain SQL {base:8.2f} s  ratio {base / ours:5.2f}x" if base
               else " " * 31)
        print(f"{name:<52} jukicore {ours:8.2f} s  {alt}  {note}")

    tmp = Path(tempfile.mkdtemp(prefix="jukicore-bench-identity-"))
    try:
        if args.only in (None, "sqlite"):
            st = create_identity_store(tmp / "center.db", node_id=CENTER, kind="center")
            secs = load(st, ppl)
            report(f"load {n:,} records, SQLite", secs, None, "apply_changes, 'load'")
            index(st, tmp / "center.index", ppl, n, report)
            pension(st, ppl, checks, "SQLite", n, report)
            four_items(st, ppl, cfg["queries"], cfg["muni_size"], report)
            st.close()
            os.remove(tmp / "center.db")
        if args.only in (None, "postgresql") and not args.no_postgres:
            postgres(args.pg, ppl, checks, n, report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"process max RSS {_rss_gb():.2f} GB; load average"
          f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def postgres(uri: str | None, ppl: pa.Table, checks: int, n: int,
             report: Callable[..., None]) -> None:
    from jukicore.testing import TempPostgres, find_pg_bin

    server = None
    if uri is None:
        if find_pg_bin() is None:
            print("PostgreSQL: skipped (no server binaries; give --pg URI)")
            return
        server = TempPostgres(durable=True).start()  # fsync on, as a center runs it
        uri = server.create_database("center")
    try:
        st = create_identity_store(uri, node_id=CENTER, kind="center")
        secs = load(st, ppl)
        report(f"load {n:,} records, PostgreSQL", secs, None, "apply_changes, 'load'")
        t, _ = _timed(st.warm_index)
        report(f"index build (in memory), PostgreSQL, {n:,}", t, None, "")
        pension(st, ppl, checks, "PostgreSQL", n, report)
        st.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
