"""What the fast paths must not change: batch read caches, durability settings, checkpoints.

``apply`` reads the rows' residents, households and notification ids up front; later
rows of a batch must still see what earlier rows changed. SQLite runs WAL checkpoints
in a background thread with its own connection; the durability setting is explicit.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from regkit import (
    ADDR,
    ADMIN,
    CLERK,
    LG,
    MUNI,
    PREF,
    TODAY,
    code_of,
    ev,
    make_block,
    make_code,
    move_in,
    tiny_municipality,
)

from jukicore.register import Register, create_register, open_register
from jukicore.store.backend import WAL_AUTOCHECKPOINT_PAGES, SqliteBackend

NEW_ADDRESS = f"{PREF}{MUNI}{ADDR['town']}{ADDR['street']}"


def _move_in(nid: str, code: int, **kw: Any) -> dict[str, Any]:
    """Today's move-in of someone joining a household, carrying ``code``."""
    return move_in(nid, event_date=TODAY, resident_code=code, relationship="同居人", **kw)


def test_later_rows_see_changes_to_prefetched_records(register: Register) -> None:
    c1, c10, c13 = code_of(register, 1), code_of(register, 10), code_of(register, 13)
    rep = register.apply([
        ev("code_change", "c1", resident_code=c1),
        ev("name_change", "n1", resident_code=c1, given_name="次郎"),  # the old code: gone
        ev("death", "d13", resident_code=c13, new_head_code=code_of(register, 14)),
        ev("name_change", "n13", resident_code=c13, given_name="三郎"),  # removed
        ev("move_within", "w10", resident_code=c10, **ADDR),  # alone: the household moves
        _move_in("i1", make_code(7001), household_id=4),  # joins at the new address: ok
        _move_in("i2", make_code(7002), household_id=4, street="9丁目9番9号"),  # elsewhere
        ev("name_change", "n10", resident_code=c10, given_name="四郎"),  # moved: still ok
    ], actor=CLERK, today=TODAY)
    assert rep.applied == 5, rep.rejected
    assert [r.notification_id for r in rep.rejected] == ["n1", "n13", "i2"]
    assert rep.rejected[0].error == "ConflictError" and "retired" in rep.rejected[0].reason
    assert rep.rejected[2].error == "ConflictError"
    res = {r["person_id"]: r for r in register.residents(actor=ADMIN, include_removed=True)
           .to_pylist()}
    assert res[1]["resident_code"] != c1 and res[1]["given_name"] != "次郎"
    assert res[10]["address"] == NEW_ADDRESS and res[10]["given_name"] == "四郎"
    assert res[14]["relationship"] == "世帯主"
    joined = [r for r in res.values() if r["resident_code"] == make_code(7001)]
    assert joined and joined[0]["household_id"] == 4
    hh = register.households(actor=ADMIN).to_pylist()
    assert next(h for h in hh if h["household_id"] == 4)["address"] == NEW_ADDRESS

def test_prefetched_ids_keep_apply_idempotent(register: Register) -> None:
    c3 = code_of(register, 3)
    first = register.apply([ev("name_change", "x1", resident_code=c3, given_name="甲"),
                            ev("name_change", "x2", resident_code=c3, given_name="乙")],
                           actor=CLERK, today=TODAY)
    digest = register.content_digest()
    again = register.apply([ev("name_change", "x2", resident_code=c3, given_name="乙"),
                            ev("name_change", "x1", resident_code=c3, given_name="甲"),
                            ev("name_change", "x3", resident_code=c3, given_name="丙")],
                           actor=CLERK, today=TODAY)
    assert (first.applied, again.applied, again.duplicates) == (2, 1, 2)
    assert digest != register.content_digest()

def test_sqlite_durability_settings(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    create_register(path, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN).close()
    b = SqliteBackend(path)
    conn = b._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT_PAGES
    b.close()
    full = SqliteBackend(path, synchronous="full")
    assert full._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    full.close()
    with pytest.raises(ValueError):
        SqliteBackend(path, synchronous="OFF")

def test_sqlite_checkpoints_in_the_background(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    reg = create_register(path, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN)

    residents, households = tiny_municipality()
    reg.import_code_block(make_block(50), actor=ADMIN)
    reg.load(residents, households, actor=ADMIN)
    ckpt = reg._b.checkpointer  # type: ignore[attr-defined]
    assert ckpt is not None
    for i in range(5):
        reg.notify(actor=CLERK, today=TODAY, **ev("name_change", f"n{i}",
                                                  resident_code=code_of(reg, 3),
                                                  given_name=f"名{i}"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the thread catches up with every committed frame
        r = ckpt.last_result
        if r is not None and r[1] == r[2] and r[1] > 0:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"no complete background checkpoint: {ckpt.last_result}")
    # a bulk (ADBC) session while the checkpointer exists, then more notifications
    assert reg.residents(actor=ADMIN).num_rows == residents.num_rows
    reg.notify(actor=CLERK, today=TODAY, **ev("name_change", "n9",
                                              resident_code=code_of(reg, 3), given_name="九"))
    thread = ckpt._thread
    reg.close()
    assert thread is None or not thread.is_alive()
    with open_register(path) as again:
        assert again.resident(code_of(again, 3), actor=ADMIN)["given_name"] == "九"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
