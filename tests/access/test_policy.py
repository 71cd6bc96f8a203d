"""The one deny-by-default policy (jukicore.access): the tier x actor-kind matrix, scope,
working hours and overrides, the daily read quota, the audit of denials and reads; on
SQLite and PostgreSQL (``db_target``)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jukicore.access.actors import (
    CENTER,
    EXPORT,
    ID_APPLY,
    ID_READ,
    ID_REVIEW,
    IDENTITY_PERMISSIONS,
    MUNICIPALITY,
    NOTIFY,
    OPERATE,
    PERMISSIONS,
    PREFECTURE,
    READ,
    Actor,
    refusal,
)
from jukicore.access.policy import JST, business_day
from jukicore.codes import CodeRegistry
from jukicore.errors import InvalidInputError, PermissionDeniedError
from jukicore.identity import IDENTITY_SCHEMA, IdentityStore, create_identity_store
from jukicore.register import Register, create_register
from jukicore.store.backend import content_digest

sys.path.insert(0, str(Path(__file__).parent.parent / "register"))
from regkit import LG, MUNI, PREF, make_block, tiny_municipality

OTHER = "011002"  # 札幌市
ADMIN = Actor.operator("admin", LG, "admin")
CLERK = Actor.operator("clerk1", LG, "clerk")
BOSS = Actor.operator("boss", LG, "supervisor")
#: a Tuesday, 10:00 in Japan: within a clerk's hours
WORK = dt.datetime(2026, 12, 1, 10, 0, tzinfo=JST)
NIGHT = dt.datetime(2026, 12, 1, 22, 0, tzinfo=JST)
HOLIDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=JST)  # 勤労感謝の日, a Monday


@pytest.fixture
def reg(db_target: str) -> Iterator[Register]:
    r = create_register(db_target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                        actor=ADMIN)
    r.import_code_block(make_block(100), actor=ADMIN)
    residents, households = tiny_municipality()
    r.load(residents, households, actor=ADMIN)
    yield r
    r.close()


def _digest(r: Register) -> str:
    """Everything but the audit log (which a denial adds to)."""
    from jukicore.register._schema import TABLES

    with r._b.session(write=False) as s:
        return content_digest(s, [f"SELECT * FROM {t.name} ORDER BY"
                                  f" {', '.join(t.primary_key or ('id',))}"
                                  for t in TABLES if t.name != "audit"])


def _audit(r: Register) -> list[dict[str, Any]]:
    with r._b.session(write=False) as s:
        rows = s.query("SELECT actor, actor_kind, action, target, detail FROM audit"
                       " ORDER BY id")
    return [dict(zip(("actor", "kind", "action", "target", "detail"), row, strict=True))
            for row in rows]


def _a_code(r: Register) -> str:
    with r._b.session(write=False) as s:
        return f"{int(s.scalar('SELECT min(resident_code) FROM residents')):011d}"


def test_business_days_and_holidays() -> None:
    assert business_day(dt.date(2026, 12, 1))
    assert not business_day(dt.date(2026, 11, 23))  # Labour Thanksgiving Day
    assert not business_day(dt.date(2026, 11, 29))  # a Sunday


# -- the matrix ------------------------------------------------------------------------

MATRIX = [
    # (tier, actor, permission, allowed)
    (MUNICIPALITY, Actor.operator("c", LG, "clerk"), READ, True),
    (MUNICIPALITY, Actor.operator("c", LG, "clerk"), NOTIFY, True),
    (MUNICIPALITY, Actor.operator("c", LG, "clerk"), EXPORT, False),
    (MUNICIPALITY, Actor.operator("s", LG, "supervisor"), EXPORT, True),
    (MUNICIPALITY, Actor.operator("a", LG, "admin"), EXPORT, True),
    (MUNICIPALITY, Actor.node("cs", LG, "cs"), READ, True),
    (MUNICIPALITY, Actor.node("cs", LG, "cs"), NOTIFY, False),
    (MUNICIPALITY, Actor.agency("pension"), READ, False),
    (MUNICIPALITY, Actor.private("bank"), READ, False),
    (MUNICIPALITY, Actor.operator("c", OTHER, "admin"), READ, False),  # another city
    (MUNICIPALITY, Actor.node("cs", OTHER, "cs"), READ, False),
    (MUNICIPALITY, Actor.operator("c", LG, "auditor"), READ, False),  # unknown role
]


@pytest.mark.parametrize(("tier", "actor", "permission", "allowed"), MATRIX,
                         ids=[f"{t}-{a}-{p}" for t, a, p, _ in MATRIX])
def test_register_matrix(reg: Register, tier: str, actor: Actor, permission: str,
                         allowed: bool) -> None:
    assert tier == MUNICIPALITY
    call = {READ: lambda: reg.resident(_a_code(reg), actor=actor, now=WORK),
            NOTIFY: lambda: reg.notify(actor=actor, now=WORK, kind="name_change",
                                       notification_id="m1", resident_code=_a_code(reg),
                                       event_date=dt.date(2026, 11, 30),
                                       notified_date=dt.date(2026, 11, 30),
                                       given_name="新"),
            EXPORT: lambda: reg.outbox(actor=actor, now=WORK)}[permission]
    before, entries = _digest(reg), len(_audit(reg))
    if allowed:
        call()
        return
    with pytest.raises(PermissionDeniedError) as info:
        call()
    assert permission in str(info.value) and actor.name in str(info.value)
    assert _digest(reg) == before  # nothing changed
    log = _audit(reg)
    assert len(log) == entries + 1
    assert log[-1]["action"] == "access.denied" and permission in log[-1]["detail"]
    assert log[-1]["actor"] == str(actor)


def test_private_party_is_refused_the_resident_code(reg: Register) -> None:
    bank = Actor.private("a-bank")
    code = _a_code(reg)
    for call in (lambda: reg.resident(code, actor=bank),
                 lambda: reg.history(code, actor=bank),
                 lambda: reg.residents(actor=bank)):
        with pytest.raises(PermissionDeniedError, match="private party"):
            call()
    assert [e["action"] for e in _audit(reg)[-3:]] == ["access.denied"] * 3
    # even with roles it claims, and even under a supervisor's override
    rich = Actor("private", "a-bank", LG, frozenset({"admin"})).with_override(BOSS, "x")
    with pytest.raises(PermissionDeniedError, match="private party"):
        reg.resident(code, actor=rich, now=WORK)


def test_an_unknown_actor_is_refused_and_audited(reg: Register) -> None:
    with pytest.raises(PermissionDeniedError, match="no actor"):
        reg.residents(actor="admin")  # type: ignore[arg-type]
    assert _audit(reg)[-1]["action"] == "access.denied"


# -- hours and overrides ---------------------------------------------------------------

@pytest.mark.parametrize("when", [NIGHT, HOLIDAY], ids=["22:00", "2026-11-23"])
def test_clerk_outside_hours_needs_a_supervisors_override(reg: Register,
                                                          when: dt.datetime) -> None:
    code = _a_code(reg)
    before = _digest(reg)
    with pytest.raises(PermissionDeniedError, match="override is needed"):
        reg.notify(actor=CLERK, now=when, kind="name_change", notification_id="n1",
                   resident_code=code, event_date=dt.date(2026, 11, 20),
                   notified_date=dt.date(2026, 11, 20), given_name="新")
    assert _digest(reg) == before
    assert _audit(reg)[-1]["action"] == "access.denied"
    with pytest.raises(PermissionDeniedError):
        reg.resident(code, actor=CLERK, now=when)
    # refused overrides: by the clerk themselves, by a clerk, without reason, elsewhere
    for bad in (Actor.operator("clerk1", LG, "supervisor"), Actor.operator("c2", LG, "clerk"),
                Actor.operator("boss", OTHER, "supervisor")):
        with pytest.raises(PermissionDeniedError):
            reg.resident(code, actor=CLERK.with_override(bad, "urgent"), now=when)
    with pytest.raises(PermissionDeniedError, match="no reason"):
        reg.resident(code, actor=CLERK.with_override(BOSS, "  "), now=when)
    assert _digest(reg) == before
    # a supervisor's override with a reason: allowed, and audited
    ok = CLERK.with_override(BOSS, "a death reported by the police at night")
    reg.notify(actor=ok, now=when, kind="name_change", notification_id="n1",
               resident_code=code, event_date=dt.date(2026, 11, 20),
               notified_date=dt.date(2026, 11, 20), given_name="新")
    assert _digest(reg) != before
    overrides = [e for e in _audit(reg) if e["action"] == "access.override"]
    assert len(overrides) == 1 and str(BOSS) in overrides[0]["detail"]
    assert "police" in overrides[0]["detail"] and overrides[0]["actor"] == str(CLERK)
    # within hours the same clerk needs nothing
    assert reg.resident(code, actor=CLERK, now=WORK)["given_name"] == "新"


def test_hours_are_configured_by_an_admin_only(reg: Register) -> None:
    with pytest.raises(PermissionDeniedError):
        reg.set_policy("hours.clerk", "always", actor=BOSS, now=WORK)
    with pytest.raises(InvalidInputError):
        reg.set_policy("hours.clerk", "25:00-26:00", actor=ADMIN)
    with pytest.raises(InvalidInputError):
        reg.set_policy("minutes.clerk", "1", actor=ADMIN)
    assert reg.policy_settings()["hours.clerk"] == "08:30-17:15"
    assert reg.set_policy("hours.clerk", "daily 07:00-23:00", actor=ADMIN) == \
        "daily 07:00-23:00"
    reg.resident(_a_code(reg), actor=CLERK, now=NIGHT)  # 22:00 now inside
    with pytest.raises(PermissionDeniedError):
        reg.resident(_a_code(reg), actor=CLERK,
                     now=dt.datetime(2026, 12, 1, 23, 30, tzinfo=JST))
    changes = [e for e in _audit(reg) if e["action"] == "policy.configure"]
    assert len(changes) == 1 and "daily 07:00-23:00" in changes[0]["detail"]


# -- quota -----------------------------------------------------------------------------

def test_daily_read_quota(reg: Register) -> None:
    reg.set_policy("hours.clerk", "always", actor=ADMIN)
    reg.set_policy("quota.clerk", "3", actor=ADMIN)
    code = _a_code(reg)
    for _ in range(3):
        reg.resident(code, actor=CLERK, purpose="counter")
    before = _digest(reg)
    with pytest.raises(PermissionDeniedError, match="quota"):
        reg.resident(code, actor=CLERK)
    with pytest.raises(PermissionDeniedError, match="quota"):
        reg.residents(actor=CLERK)
    with pytest.raises(PermissionDeniedError, match="quota"):  # a chosen day resets nothing
        reg.resident(code, actor=CLERK, now=dt.datetime(2030, 1, 7, 10, tzinfo=JST))
    assert _digest(reg) == before
    reads = [e for e in _audit(reg) if e["action"] == "register.read"
             and e["actor"] == str(CLERK)]
    assert len(reads) == 3 and all(e["target"] == code for e in reads)
    assert "purpose: counter" in reads[0]["detail"]
    # another clerk has their own quota; a whole-table read counts its records
    other = Actor.operator("clerk2", LG, "clerk")
    with pytest.raises(PermissionDeniedError, match="15 records asked"):
        reg.residents(actor=other)  # 15 records > 3
    reg.set_policy("quota.clerk", "20", actor=ADMIN)
    assert reg.residents(actor=other).num_rows == 15
    with pytest.raises(PermissionDeniedError, match="quota"):
        reg.residents(actor=other)  # 15 + 15 > 20


# -- reads are audited -----------------------------------------------------------------

def test_reads_leave_entries(reg: Register) -> None:
    cs = Actor.node("cs", LG, "cs")
    code = _a_code(reg)
    n = len(_audit(reg))
    reg.resident(code, actor=ADMIN, purpose="certificate")
    reg.history(code, actor=ADMIN)
    reg.residents(actor=cs)
    reg.households(actor=ADMIN)
    reg.notifications(actor=ADMIN)
    new = _audit(reg)[n:]
    assert [e["action"] for e in new] == ["register.read"] * 5
    assert [e["target"] for e in new] == [code, code, None, None, None]
    assert new[2]["detail"].startswith("15 records: residents")
    assert new[0]["detail"] == "resident record; purpose: certificate"
    # a failed lookup is a read attempt: audited too
    from jukicore.errors import NotFoundError
    with pytest.raises(NotFoundError):
        reg.resident("00000000019", actor=ADMIN)
    assert _audit(reg)[-1]["detail"].startswith("resident record (not found)")


# -- the identity store ----------------------------------------------------------------

_codes = CodeRegistry().generate(10)


def _changes() -> pa.Table:
    return pa.Table.from_pylist([{
        "seq": i + 1, "resident_code": int(_codes[i]), "previous_resident_code": None,
        "family_name": "佐藤", "given_name": "花子", "birth_date": dt.date(1980, 1, 2),
        "sex": 2, "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
        "change_date": dt.date(2024, 4, 1), "change_reason": "load"} for i in range(3)],
        schema=IDENTITY_SCHEMA)


@pytest.mark.parametrize("tier", [PREFECTURE, CENTER])
def test_identity_store_policy(db_target: str, tier: str) -> None:
    node = "130001" if tier == PREFECTURE else "center"
    st: IdentityStore = create_identity_store(db_target, node_id=node, kind=tier)
    try:
        args = {"sender": LG, "packet_id": "p1", "first_seq": 1, "last_seq": 3,
                "changes": _changes()}
        before = st.content_digest()
        refused = [
            "270008",  # another node's id
            Actor.operator("c", LG, "admin"),  # a municipality's operator
            Actor.operator("c", None, "clerk", node_id=node),  # a clerk may not apply
            Actor.agency("pension"),
            Actor.private("bank"),
        ]
        for actor in refused:
            with pytest.raises(PermissionDeniedError, match=ID_APPLY):
                st.apply_changes(actor=actor, **args)  # type: ignore[arg-type]
        assert st.content_digest() == before
        with st._b.session(write=False) as s:
            denied = s.scalar("SELECT count(*) FROM audit WHERE action = 'access.denied'")
        assert denied == len(refused)
        assert st.apply_changes(actor=node, **args).applied == 3  # the node by its id
        code = int(_codes[0])
        clerk = Actor.operator("c", None, "clerk", node_id=node)
        assert st.history(code, actor=clerk, now=WORK).num_rows == 1
        with pytest.raises(PermissionDeniedError, match=ID_REVIEW):
            st.quarantined(actor=clerk, now=WORK)
        with pytest.raises(PermissionDeniedError, match="override"):
            st.history(code, actor=clerk, now=NIGHT)
        server = Actor.node(node, None, "server")
        assert st.current(actor=server).num_rows == 3
        # an agency asks for a legal purpose (jukicore.identity.provide), never for a table
        for outsider in (Actor.agency("pension"), Actor.private("bank")):
            with pytest.raises(PermissionDeniedError, match=ID_READ):
                st.current(actor=outsider)
        with st._b.session(write=False) as s:
            reads = s.query("SELECT actor, target, detail FROM audit"
                            " WHERE action = 'identity.read' ORDER BY id")
        assert reads[0][:2] == (str(clerk), f"{code:011d}")
        assert reads[1][0] == str(server) and reads[1][2].startswith("3 records")
    finally:
        st.close()


@pytest.mark.parametrize(("tier", "place"), [(MUNICIPALITY, LG), (PREFECTURE, "130001"),
                                             (CENTER, "center")])
def test_only_admins_and_the_batch_role_run_a_nodes_jobs(tier: str, place: str) -> None:
    """node.operate (sync, keys, backup, code files, the audit log's checks from the CLI):
    admins and the batch role at every tier; the batch role grants nothing else, and an
    operator of another place is refused."""
    lg = place if tier == MUNICIPALITY else None

    def op(*roles: str, at: str = place) -> Actor:
        return Actor.operator("x", at if lg else None, *roles,
                              node_id=None if lg else at)

    assert refusal(op("admin"), OPERATE, tier, place) is None
    assert refusal(op("batch"), OPERATE, tier, place) is None
    for role in ("clerk", "supervisor"):
        why = refusal(op(role), OPERATE, tier, place)
        assert why is not None and f"grants {OPERATE}" in why
    for perm in sorted(PERMISSIONS | IDENTITY_PERMISSIONS):
        assert refusal(op("batch"), perm, tier, place) is not None, perm
    elsewhere = OTHER if lg else ("center" if place != "center" else "130001")
    assert "does not belong" in str(refusal(op("admin", at=elsewhere), OPERATE, tier, place))
    assert refusal(Actor.node(place, lg, "cs" if lg else "server"), OPERATE, tier,
                   place) is not None  # a node runs its jobs for an operator, never alone
