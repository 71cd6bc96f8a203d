"""Store-level behaviour on both databases: init, migrations, load, queries, permissions."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from regkit import ADMIN, CLERK, LG, MUNI, PREF, TODAY, ev, make_block, tiny_municipality

from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    JukiError,
    NotFoundError,
    PermissionDeniedError,
    SchemaVersionError,
)
from jukicore.register import (
    RESIDENT_SCHEMA,
    SCHEMA_VERSION,
    Actor,
    Register,
    create_register,
    open_register,
)


def test_create_then_open_keeps_meta(store_target: str) -> None:
    reg = create_register(store_target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                          actor=ADMIN)
    reg.close()
    with open_register(store_target) as again:
        assert (again.lg_code, again.prefecture, again.municipality) == (LG, PREF, MUNI)
        assert again.schema_version == SCHEMA_VERSION
        assert again.counts()["residents"] == 0


def test_create_twice_is_a_conflict(empty_register: Register) -> None:
    with pytest.raises(ConflictError):
        create_register(empty_register.target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                        actor=ADMIN)


def test_open_without_register_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        open_register(str(tmp_path / "nothing.db"))


def test_refuses_newer_schema(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    create_register(path, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, 'from the future', '2099-01-01')",
                 (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError):
        open_register(path)


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    create_register(path, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_create_needs_permission(store_target: str) -> None:
    with pytest.raises(PermissionDeniedError):
        create_register(store_target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                        actor=CLERK)


def test_load_round_trips_every_item(register: Register) -> None:
    residents, _ = tiny_municipality()
    out = register.residents(actor=ADMIN)
    assert out.schema == RESIDENT_SCHEMA
    assert out.num_rows == residents.num_rows
    for name in residents.column_names:
        assert out.column(name).to_pylist() == residents.column(name).to_pylist(), name
    assert out.column("resident_code").type == pa.uint64()
    assert set(out.column("status").to_pylist()) == {"resident"}
    assert register.counts()["code_pool"] == 200 - residents.num_rows
    assert register.counts()["outbox"] == residents.num_rows


def test_load_with_given_codes_and_offsets_ids(register: Register) -> None:
    residents, households = tiny_municipality(2)
    block = make_block(residents.num_rows)
    codes = pa.array(block.codes[: residents.num_rows], pa.uint64())
    report = register.load(residents.append_column("resident_code", codes), households,
                           actor=ADMIN)
    assert report.first_person_id == 16 and report.first_household_id == 7
    got = register.residents(actor=ADMIN).filter(
        pc.greater_equal(pc.field("person_id"), 16))
    assert got.column("resident_code").to_pylist() == codes.to_pylist()
    assert register.households(actor=ADMIN).num_rows == 8


def test_load_rejects_bad_input_and_changes_nothing(register: Register) -> None:
    before = register.content_digest()
    residents, households = tiny_municipality(2)
    # a household without a head
    bad = residents.set_column(
        residents.column_names.index("relationship"), "relationship",
        pa.array(["子"] * residents.num_rows))
    with pytest.raises(InvalidInputError):
        register.load(bad, None, actor=ADMIN)
    # a missing item
    names = residents.column("given_name").to_pylist()
    names[1] = None
    bad = residents.set_column(residents.column_names.index("given_name"), "given_name",
                               pa.array(names, pa.string()))
    with pytest.raises(InvalidInputError) as info:
        register.load(bad, households, actor=ADMIN)
    assert info.value.rows[0].row == 1 and info.value.rows[0].column == "given_name"
    # a resident code already in use
    used = register.residents(actor=ADMIN).column("resident_code")[0].as_py()
    codes = list(make_block(residents.num_rows).codes)
    codes[0] = used
    with pytest.raises(ConflictError):
        register.load(residents.append_column("resident_code", pa.array(codes, pa.uint64())),
                      households, actor=ADMIN)
    # an invalid check digit
    codes[0] = used + 1 if used % 10 != 9 else used - 1
    with pytest.raises(InvalidInputError):
        register.load(residents.append_column("resident_code", pa.array(codes, pa.uint64())),
                      households, actor=ADMIN)
    assert register.content_digest() == before


def test_permissions_deny_by_default(register: Register) -> None:
    before = register.content_digest()
    outsider = Actor.operator("other-city", "011002", "admin")
    agency = Actor.agency("pension-service")
    for actor in (outsider, agency, Actor.node("cs", LG, "cs")):
        with pytest.raises(PermissionDeniedError):
            register.apply([ev("name_change", "p1", resident_code=1, family_name="x")],
                           actor=actor, today=TODAY)
    with pytest.raises(PermissionDeniedError):
        register.residents(actor=agency)
    with pytest.raises(PermissionDeniedError):
        register.export(actor=CLERK)
    with pytest.raises(PermissionDeniedError):
        register.load(tiny_municipality(1)[0], actor=CLERK)
    assert register.content_digest() == before
    # what is granted works
    assert register.residents(actor=CLERK).num_rows == 15
    assert register.outbox(actor=Actor.node("cs", LG, "cs")).num_rows == 15


def test_every_change_is_audited_with_its_actor(register: Register) -> None:
    code = register.residents(actor=ADMIN).column("resident_code")[1].as_py()
    register.apply([ev("name_change", "a1", resident_code=code, given_name="花")], actor=CLERK,
                   today=TODAY)
    log = register.audit_log(actor=ADMIN)
    actions = log.column("action").to_pylist()
    assert actions[:3] == ["register.init", "register.import_code_block", "register.load"]
    last = log.slice(log.num_rows - 1).to_pylist()[0]
    assert last["action"] == "notify.name_change"
    assert last["actor"] == str(CLERK) and last["notification_id"] == "a1"
    assert last["target"] == str(code).zfill(11)


def test_export_has_records_history_households(register: Register) -> None:
    code = register.residents(actor=ADMIN).column("resident_code")[0].as_py()
    register.apply([ev("death", "x1", resident_code=code, new_head_code=register.residents(
        actor=ADMIN).column("resident_code")[1].as_py())], actor=CLERK, today=TODAY)
    out = register.export(actor=ADMIN)
    assert out["residents"].num_rows == 15  # 除票 included
    assert out["history"].num_rows >= 2
    assert out["households"].num_rows == 6


def test_purge_keeps_removed_records_for_150_years(register: Register) -> None:
    codes = register.residents(actor=ADMIN).column("resident_code").to_pylist()
    register.apply([ev("death", "d1", resident_code=codes[9])], actor=CLERK, today=TODAY)
    assert register.purge_expired(actor=ADMIN, today=TODAY) == 0
    assert register.purge_expired(actor=ADMIN, today=dt.date(2174, 6, 3)) == 0
    assert register.resident(codes[9], actor=ADMIN)["status"] == "removed"
    assert register.purge_expired(actor=ADMIN, today=dt.date(2174, 6, 4)) == 1
    with pytest.raises(NotFoundError):
        register.resident(codes[9], actor=ADMIN)


def test_errors_are_juki_errors(register: Register) -> None:
    with pytest.raises(JukiError):
        register.history(12345678901, actor=ADMIN)
