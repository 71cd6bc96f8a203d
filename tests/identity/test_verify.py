"""Bulk verification and the four-item search through the lookup index (both databases):
answers per row, provision records, spelling variants found, decoys not, the index
kept as current as the store and rebuilt when its file is damaged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from jukicore.access.actors import Actor
from jukicore.codes import CodeRegistry
from jukicore.errors import InvalidInputError, PermissionDeniedError
from jukicore.identity.provide import FourItems
from jukicore.identity.store import IDENTITY_SCHEMA, IdentityStore, create_identity_store
from jukicore.synth import decoys, spelling_variants, synthesize_municipality

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
JPS = Actor.agency("jps")
LOAD_DAY = dt.date(2024, 4, 1)


def _load(st: IdentityStore, people: pa.Table, sender: str) -> None:
    n = people.num_rows
    t = pa.table({
        "seq": pa.array(np.arange(1, n + 1), pa.int64()),
        "resident_code": people.column("resident_code"),
        "previous_resident_code": pa.nulls(n, pa.uint64()),
        "family_name": people.column("family_name"), "given_name": people.column("given_name"),
        "birth_date": people.column("birth_date"), "sex": people.column("sex"),
        "address": people.column("address"), "status": pa.array(["resident"] * n),
        "change_date": pa.array([LOAD_DAY] * n, pa.date32()),
        "change_reason": pa.array(["load"] * n)})
    st.apply_changes(sender=sender, packet_id="load", first_seq=1, last_seq=n,
                     changes=t.cast(IDENTITY_SCHEMA), actor=st.node_id)


@pytest.fixture(scope="module")
def people() -> pa.Table:
    m = synthesize_municipality(1500, seed=7, as_of=dt.date(2024, 3, 1))
    r = m.residents
    codes = CodeRegistry().generate(r.num_rows)
    return r.append_column("resident_code", pa.array(codes, pa.uint64()))


@pytest.fixture
def center(db_target: str, people: pa.Table, tmp_path: Path) -> Iterator[IdentityStore]:
    st = create_identity_store(db_target, node_id="center", kind="center")
    st.use_index(tmp_path / "center.index")
    _load(st, people, people.column("lg_code")[0].as_py())
    yield st
    st.close()


def test_spelling_variants_are_found_and_decoys_are_not(center: IdentityStore,
                                                         people: pa.Table) -> None:
    queries = spelling_variants(people, seed=3)
    fakes = decoys(people, seed=4, rate=0.3)
    both = pa.concat_tables([queries.select(fakes.column_names).cast(fakes.schema), fakes])
    req = both.drop_columns(["resident_code", "query_id", "variant"])
    out = center.verify(req, agency="jps", purpose="jps-pension-benefits", actor=JPS, now=NOW)
    assert out.num_rows == both.num_rows
    truth = both.column("resident_code").to_pylist()
    got = out.column("resident_code").to_pylist()
    answers = out.column("answer").to_pylist()
    real = [i for i, t in enumerate(truth) if t is not None]
    right = sum(1 for i in real if got[i] == truth[i])
    wrong = [i for i in range(len(truth)) if got[i] is not None and got[i] != truth[i]]
    assert wrong == []  # never a single wrong person
    assert right / len(real) >= 0.995, {answers[i] for i in real if got[i] != truth[i]}
    assert all(answers[i] == "not_found" for i in range(len(truth)) if truth[i] is None)
    with center._b.session(write=False) as s:
        n, found = s.query("SELECT count(*), sum(CASE WHEN answer = 'found' THEN 1 ELSE 0"
                           " END) FROM provision")[0]
    assert (n, found) == (both.num_rows, right)


def test_verify_by_code_against_the_agencys_date(center: IdentityStore,
                                                 people: pa.Table) -> None:
    codes = [int(c) for c in people.column("resident_code").to_pylist()[:4]]
    sender = people.column("lg_code")[0].as_py()
    n = people.num_rows
    row = {"previous_resident_code": None, "family_name": "山田", "given_name": "花子",
           "birth_date": dt.date(1950, 1, 1), "sex": 2, "status": "resident"}
    new_code = int(CodeRegistry().generate(1)[0])
    changes = [
        {**row, "seq": n + 1, "resident_code": codes[0], "address": "東京都千代田区1-1",
         "change_date": dt.date(2025, 1, 1), "change_reason": "move_in"},
        {**row, "seq": n + 2, "resident_code": codes[1], "address": "x",
         "status": "removed", "change_date": dt.date(2025, 2, 1), "change_reason": "death"},
        {**row, "seq": n + 3, "resident_code": new_code, "previous_resident_code": codes[2],
         "address": "y", "change_date": dt.date(2025, 3, 1), "change_reason": "code_change"},
    ]
    old = {c["resident_code"]: c for c in people.slice(0, 4).to_pylist()}
    for c in changes:  # the person's own items, but the address and status
        src = old[c["resident_code"]] if c["resident_code"] in old else old[codes[2]]
        c.update({k: src[k] for k in ("family_name", "given_name", "birth_date", "sex")})
        if c["change_reason"] == "code_change":
            c["address"] = src["address"]
    center.apply_changes(sender=sender, packet_id="day2", first_seq=n + 1, last_seq=n + 3,
                         changes=pa.Table.from_pylist(changes, schema=IDENTITY_SCHEMA),
                         actor="center")
    unknown = int(CodeRegistry().generate(1)[0])
    req = pa.table({"resident_code": pa.array([*codes, unknown], pa.uint64())})
    seen: list[tuple[int, int]] = []
    out = center.verify(req, agency="jps", purpose="jps-pension-benefits", actor=JPS,
                        since=dt.date(2024, 12, 31), now=NOW,
                        progress=lambda d, t: seen.append((d, t)))
    assert out.column("answer").to_pylist() == ["moved", "died", "retired", "unchanged",
                                                "not_found"]
    # a date per row; a row without one is answered as without a date
    per_row = req.append_column("since", pa.array([dt.date(2025, 6, 1), None, None, None,
                                                   None], pa.date32()))
    got = center.verify(per_row, agency="jps", purpose="jps-pension-benefits", actor=JPS,
                        now=NOW)
    assert got.column("answer").to_pylist() == ["unchanged", "died", "retired", "found",
                                                "not_found"]
    assert out.column("changed_items").to_pylist()[0] == ["address"]
    assert out.column("new_code").to_pylist()[2] == new_code
    assert out.column("status_date").to_pylist()[1] == dt.date(2025, 2, 1)
    assert seen[-1] == (5, 5)
    # a purpose with fewer items: no codes, no new code, no change information
    arch = center.verify(req, agency="mlit", purpose="mlit-architect-licence",
                         actor=Actor.agency("mlit"), now=NOW)
    assert "resident_code" not in arch.column_names and "new_code" not in arch.column_names
    assert arch.column("answer").to_pylist() == ["found", "died", "retired", "found",
                                                 "not_found"]
    # the provision records: one per row, the codes asked
    with center._b.session(write=False) as s:
        rows = s.query("SELECT resident_code, answer, items FROM provision_detail WHERE"
                       " agency = 'mlit' ORDER BY request_no, resident_code")
    expected = dict(zip([*codes, unknown], ["found", "died", "retired", "found", "not_found"],
                        strict=True))
    assert {int(c): a for c, a, _i in rows} == expected and len(rows) == 5
    items = {a: i for _c, a, i in rows}
    assert items["retired"] == "" and items["not_found"] == ""
    assert items["found"] == "name,birth_date,address"


def test_a_single_search_by_the_four_items(center: IdentityStore, people: pa.Table) -> None:
    p = people.slice(5, 1).to_pylist()[0]
    four = FourItems(p["family_name"], p["given_name"], p["birth_date"],
                     p["address"].replace("番地", "-"), p["sex"])
    t = center.confirm(agency="jps", purpose="jps-pension-benefits", actor=JPS, four=four,
                       now=NOW)
    assert t.column("resident_code").to_pylist() == [p["resident_code"]]
    wrong_day = FourItems(p["family_name"], p["given_name"], dt.date(1900, 1, 1),
                          p["address"])
    t = center.confirm(agency="jps", purpose="jps-pension-benefits", actor=JPS,
                       four=wrong_day, now=NOW)
    assert t.column("answer").to_pylist() == ["not_found"]
    with pytest.raises(PermissionDeniedError, match="resident code only"):
        center.confirm(agency="soumu", purpose="soumu-onkyu", actor=Actor.agency("soumu"),
                       four=four, now=NOW)


def test_two_people_matching_are_both_candidates_never_one(center: IdentityStore,
                                                          people: pa.Table) -> None:
    p = people.slice(0, 1).to_pylist()[0]
    twin = int(CodeRegistry().generate(1)[0])
    n = people.num_rows
    center.apply_changes(
        sender=p["lg_code"], packet_id="twin", first_seq=n + 1, last_seq=n + 1,
        changes=pa.Table.from_pylist([{
            "seq": n + 1, "resident_code": twin, "previous_resident_code": None,
            "family_name": p["family_name"].replace("高", "髙"), "given_name": p["given_name"],
            "birth_date": p["birth_date"], "sex": p["sex"], "address": p["address"],
            "status": "resident", "change_date": dt.date(2025, 1, 1),
            "change_reason": "move_in"}], schema=IDENTITY_SCHEMA), actor="center")
    req = pa.table({k: [p[k]] for k in ("family_name", "given_name", "address")}
                   | {"birth_date": pa.array([p["birth_date"]], pa.date32())})
    out = center.verify(req, agency="jps", purpose="jps-pension-benefits", actor=JPS, now=NOW)
    assert out.column("answer").to_pylist() == ["ambiguous"]
    assert out.column("resident_code").to_pylist() == [None]
    assert sorted(out.column("candidates").to_pylist()[0]) == sorted([p["resident_code"], twin])
    with center._b.session(write=False) as s:
        got = s.query("SELECT resident_code FROM provision WHERE answer = 'ambiguous'")
    assert sorted(int(c) for (c,) in got) == sorted([p["resident_code"], twin])


def test_bad_requests_change_nothing(center: IdentityStore) -> None:
    before = center.content_digest()
    bad: list[Any] = [
        pa.table({"x": [1]}),
        pa.table({"resident_code": ["123"]}),
        pa.table({"resident_code": pa.array([12345678901], pa.uint64())}),
        pa.table({"family_name": ["a"], "given_name": ["b"]}),
        pa.table({"family_name": ["a"], "given_name": ["b"], "birth_date": ["x"],
                  "address": ["c"]}),
        pa.table({"family_name": [""], "given_name": ["b"],
                  "birth_date": pa.array([dt.date(1990, 1, 1)]), "address": ["c"]}),
        pa.table({"family_name": ["a"], "given_name": ["b"], "sex": [4],
                  "birth_date": pa.array([dt.date(1990, 1, 1)]), "address": ["c"]}),
        "not a table",
    ]
    for t in bad:
        with pytest.raises(InvalidInputError):
            center.verify(t, agency="jps", purpose="jps-pension-benefits", actor=JPS, now=NOW)
    with pytest.raises(PermissionDeniedError):
        center.verify(pa.table({"resident_code": pa.array([1], pa.uint64())}),
                      agency="jps", purpose="jps-pension-benefits",
                      actor=Actor.private("bank"), now=NOW)
    assert center.content_digest() == before


def test_the_index_follows_the_store_and_survives_damage(center: IdentityStore,
                                                         people: pa.Table,
                                                         tmp_path: Path) -> None:
    code = int(people.column("resident_code")[0].as_py())
    req = pa.table({"resident_code": pa.array([code], pa.uint64())})

    def answer() -> str:
        out = center.verify(req, agency="jps", purpose="jps-pension-benefits", actor=JPS,
                            now=NOW)
        return str(out.column("answer")[0])

    assert answer() == "found"
    assert center._index is not None and center._index.rebuilt == 1
    p = people.slice(0, 1).to_pylist()[0]
    n = people.num_rows
    center.apply_changes(
        sender=p["lg_code"], packet_id="death", first_seq=n + 1, last_seq=n + 1,
        changes=pa.Table.from_pylist([{
            "seq": n + 1, "resident_code": code, "previous_resident_code": None,
            "family_name": p["family_name"], "given_name": p["given_name"],
            "birth_date": p["birth_date"], "sex": p["sex"], "address": p["address"],
            "status": "removed", "change_date": dt.date(2025, 1, 1),
            "change_reason": "death"}], schema=IDENTITY_SCHEMA), actor="center")
    assert answer() == "died" and center._index.rebuilt == 1  # caught up, not rebuilt
    center.save_index()
    path = tmp_path / "center.index"
    # another process opens the saved file: no rebuild
    center.use_index(path)
    assert answer() == "died" and center._index.rebuilt == 0
    # a damaged file: detected and rebuilt, the answer unchanged
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    center.use_index(path)
    assert answer() == "died" and center._index.rebuilt == 1
    # a truncated file, and another store's index: rebuilt too
    path.write_bytes(path.read_bytes()[:100])
    center.use_index(path)
    assert answer() == "died" and center._index.rebuilt == 1
    other = create_identity_store(tmp_path / "pref.db", node_id="130001", kind="prefecture")
    try:
        _load(other, people.slice(0, 10), p["lg_code"])
        other.use_index(path)
        other.save_index()
    finally:
        other.close()
    center.use_index(path)
    assert answer() == "died" and center._index.rebuilt == 1


def test_an_index_ahead_of_a_restored_store_is_rebuilt(tmp_path: Path,
                                                       people: pa.Table) -> None:
    """A store restored from an older copy: its index file (saved later, further on) is
    not trusted, the answers are the restored store's."""
    import shutil

    db = tmp_path / "c.db"
    st = create_identity_store(db, node_id="center", kind="center")
    few = people.slice(0, 20)
    _load(st, few, few.column("lg_code")[0].as_py())
    st.close()
    shutil.copy(db, tmp_path / "copy.db")
    from jukicore.identity import open_identity_store

    p = few.slice(0, 1).to_pylist()[0]
    with open_identity_store(db) as st:
        st.apply_changes(
            sender=p["lg_code"], packet_id="death", first_seq=21, last_seq=21,
            changes=pa.Table.from_pylist([{
                "seq": 21, "resident_code": p["resident_code"], "previous_resident_code": None,
                "family_name": p["family_name"], "given_name": p["given_name"],
                "birth_date": p["birth_date"], "sex": p["sex"], "address": p["address"],
                "status": "removed", "change_date": dt.date(2025, 1, 1),
                "change_reason": "death"}], schema=IDENTITY_SCHEMA), actor="center")
        assert st.save_index() == 2
    index_file = Path(f"{db}.index")
    assert index_file.exists()
    shutil.copy(tmp_path / "copy.db", db)  # the restore: back to before the death
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    with open_identity_store(db) as st:
        out = st.verify(pa.table({"resident_code": pa.array([p["resident_code"]], pa.uint64())}),
                        agency="jps", purpose="jps-pension-benefits", actor=JPS, now=NOW)
        assert out.column("answer").to_pylist() == ["found"]
        assert st._index is not None and st._index.rebuilt == 1


def test_an_empty_request_answers_nothing(center: IdentityStore) -> None:
    out = center.verify(pa.table({"resident_code": pa.array([], pa.uint64())}),
                        agency="jps", purpose="jps-pension-benefits", actor=JPS, now=NOW)
    assert out.num_rows == 0 and "answer" in out.column_names
    with center._b.session(write=False) as s:
        assert s.scalar("SELECT count(*) FROM provision") == 0


def test_a_service_takes_the_nightly_save_and_the_store_forgets_what_it_holds(
        tmp_path: Path, people: pa.Table) -> None:
    """Two processes on one store: the service's index reopens the file the nightly job
    saved further on (no rebuild); the store keeps only the touched codes after it."""
    from jukicore.identity import open_identity_store

    db = tmp_path / "c.db"
    few = people.slice(0, 30)
    lg = few.column("lg_code")[0].as_py()
    with create_identity_store(db, node_id="center", kind="center") as st:
        _load(st, few, lg)
    service = open_identity_store(db)
    nightly = open_identity_store(db)
    try:
        req = pa.table({"resident_code": few.column("resident_code").slice(0, 1)})
        ask = {"agency": "jps", "purpose": "jps-pension-benefits", "actor": JPS, "now": NOW}
        assert service.verify(req, **ask).column("answer").to_pylist() == ["found"]
        p = few.slice(0, 1).to_pylist()[0]
        nightly.apply_changes(
            sender=lg, packet_id="death", first_seq=31, last_seq=31,
            changes=pa.Table.from_pylist([{
                "seq": 31, "resident_code": p["resident_code"], "previous_resident_code": None,
                "family_name": p["family_name"], "given_name": p["given_name"],
                "birth_date": p["birth_date"], "sex": p["sex"], "address": p["address"],
                "status": "removed", "change_date": dt.date(2025, 1, 1),
                "change_reason": "death"}], schema=IDENTITY_SCHEMA), actor="center")
        assert nightly.save_index() == 2
        with nightly._b.session(write=False) as s:
            assert s.scalar("SELECT count(*) FROM identity_touched") == 0
        assert service.verify(req, **ask).column("answer").to_pylist() == ["died"]
        assert service._index is not None and service._index.rebuilt == 1  # its first only
    finally:
        service.close()
        nightly.close()


def test_the_snapshot_is_split_only_with_readers_of_the_same_state(tmp_path: Path,
                                                                    people: pa.Table) -> None:
    """A build reads the current info in ranges of the code space, its own session and a
    side reader taking them in turn, the reader used only when its last packet applied
    is the session's (a reader that opened after another packet would mix two states).
    Shown with readers of other stores: one at the same packet number and id (its
    ranges taken), one a packet further on (not used)."""
    from jukicore.identity.index import (
        _COLUMNS,
        _SNAPSHOT,
        CODE_SPACE,
        PIECES,
        StoreIndex,
        _compact,
    )

    lg = people.column("lg_code")[0].as_py()
    stores = [create_identity_store(tmp_path / f"{name}.db", node_id="center", kind="center")
              for name in ("a", "same", "later")]
    try:
        a, same, later = stores
        _load(a, people, lg)
        _load(same, people.slice(0, 40), lg)  # packet 1, "load", as a's
        _load(later, people.slice(0, 40), lg)
        p = people.slice(0, 1).to_pylist()[0]
        later.apply_changes(sender=lg, packet_id="next", first_seq=41, last_seq=41,
                            changes=pa.Table.from_pylist([{
                                **{k: p[k] for k in ("family_name", "given_name",
                                                     "birth_date", "sex", "address")},
                                "seq": 41, "resident_code": p["resident_code"],
                                "previous_resident_code": None, "status": "removed",
                                "change_date": dt.date(2025, 1, 1), "change_reason": "death"}],
                                schema=IDENTITY_SCHEMA), actor="center")
        sql = f"SELECT {', '.join(_COLUMNS)} FROM identity"

        def snapshot(s: Any, readers: list[Any]) -> pa.Table:
            return pa.concat_tables(list(StoreIndex._snapshot(s, readers))).sort_by(
                "resident_code")

        with a._b.bulk_session(write=False) as s, same._b.bulk_session(write=False) as r1, \
                later._b.bulk_session(write=False) as r2:
            whole = _compact(s.fetch_arrow(sql, (), _SNAPSHOT)).sort_by("resident_code")
            theirs = _compact(r1.fetch_arrow(sql, (), _SNAPSHOT)).sort_by("resident_code")
            # the pieces go to the readers in turn: odd pieces from the side reader
            piece = pa.compute.divide(pa.compute.cast(whole.column("resident_code"),
                                                      pa.int64()), CODE_SPACE // PIECES)
            of = pa.compute.divide(pa.compute.cast(theirs.column("resident_code"),
                                                   pa.int64()), CODE_SPACE // PIECES)
            mine = whole.filter(pa.compute.equal(pa.compute.bit_wise_and(piece, 1), 0))
            from_r1 = theirs.filter(pa.compute.equal(pa.compute.bit_wise_and(of, 1), 1))
            assert from_r1.num_rows and mine.num_rows
            expect = pa.concat_tables([mine, from_r1]).sort_by("resident_code")
            assert snapshot(s, [r1]).equals(expect)
            assert not expect.equals(whole)
            assert snapshot(s, [r2]).equals(whole)
            assert snapshot(s, []).equals(whole)
        # a store's own side reader: the same rows as one read, and the index built so
        a.use_index(None)
        a.warm_index()
        assert a._index is not None and a._index.rebuilt == 1
        out = a.verify(pa.table({"resident_code": people.column("resident_code")}),
                       agency="jps", purpose="jps-pension-benefits", actor=JPS, now=NOW)
        assert set(out.column("answer").to_pylist()) == {"found"}
    finally:
        for st in stores:
            st.close()
