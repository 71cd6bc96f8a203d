"""Operator accounts: two factors, lockout, sessions, audited administration, on SQLite
and PostgreSQL (a municipality's register and an identity store)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from jukicore.access import operators as op
from jukicore.access.cards import MIN_SCRYPT_N, load_card
from jukicore.errors import (
    AuthenticationError,
    ConflictError,
    CorruptFileError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.identity import create_identity_store
from jukicore.register import SCHEMA_VERSION, Actor, Register, create_register, open_register

LG = "131016"
ADMIN_PW = "Admin-passw0rd-Long"
CLERK_PW = "Clerk-passw0rd-Long"
PIN = "card-pin-1"
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def reg(db_target: str, tmp_path: Path) -> Iterator[Register]:
    r = create_register(db_target, lg_code=LG, prefecture="東京都", municipality="千代田区",
                        actor=Actor.operator("setup", LG, "admin"))
    op.bootstrap_admin(r, "admin1", name="First Admin", password=ADMIN_PW,
                       card_path=tmp_path / "admin1.card", card_pin=PIN, now=T0)
    try:
        yield r
    finally:
        r.close()


def _admin(reg: Register, tmp_path: Path, now: dt.datetime = T0) -> op.OperatorSession:
    return op.login(reg, "admin1", ADMIN_PW, tmp_path / "admin1.card", PIN, now=now)


def _clerk(reg: Register, tmp_path: Path, roles: str = "clerk") -> op.OperatorSession:
    admin = _admin(reg, tmp_path)
    op.create_operator(reg, admin, "clerk1", name="A Clerk", roles=roles, password=CLERK_PW,
                       card_path=tmp_path / "clerk1.card", card_pin=PIN, now=T0)
    return admin


def _audit(reg: Register, action: str | None = None) -> list[tuple[str, str, str, str]]:
    with reg._b.session(write=False) as s:
        rows = s.query("SELECT actor, action, target, detail FROM audit ORDER BY id")
    return [r for r in rows if action is None or r[1] == action]


def _digests(reg: Register) -> tuple[str, str]:
    return reg.content_digest(), op.operators_digest(reg)


def test_login_gives_the_accounts_actor_and_is_audited(reg: Register, tmp_path: Path) -> None:
    _clerk(reg, tmp_path)
    session = op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1.card", PIN, now=T0)
    actor = session.actor(now=T0)
    assert actor == Actor("operator", "clerk1", LG, frozenset({"clerk"}))
    assert session.node_id == LG and session.expires_at == T0 + op.DEFAULT_SESSION_TTL
    logins = _audit(reg, "operator.login")
    assert [r[2] for r in logins] == ["admin1", "clerk1"]


def test_every_failure_is_the_same_error_and_is_audited(reg: Register, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    admin = _clerk(reg, tmp_path)
    clerk_card, admin_card = tmp_path / "clerk1.card", tmp_path / "admin1.card"
    attempts = [
        ("nobody", CLERK_PW, clerk_card, PIN),           # unknown id
        ("clerk1", "Wrong-passw0rd-Long", clerk_card, PIN),  # wrong password
        ("clerk1", CLERK_PW, admin_card, PIN),           # another operator's card
        ("clerk1", CLERK_PW, clerk_card, "wrong-pin-9"),  # wrong PIN
    ]
    caplog.set_level(logging.DEBUG)
    messages = set()
    before = reg.content_digest()
    for operator_id, pw, card, pin in attempts:
        with pytest.raises(AuthenticationError) as ei:
            op.login(reg, operator_id, pw, card, pin, now=T0)
        messages.add(str(ei.value))
    op.disable_operator(reg, admin, "clerk1", now=T0)
    with pytest.raises(AuthenticationError) as ei:
        op.login(reg, "clerk1", CLERK_PW, clerk_card, PIN, now=T0)
    messages.add(str(ei.value))
    assert len(messages) == 1 and isinstance(ei.value, PermissionDeniedError)
    failed = _audit(reg, "operator.login_failed")
    assert [r[2] for r in failed] == ["nobody", "clerk1", "clerk1", "clerk1", "clerk1"]
    assert [r[3].split(" (")[0] for r in failed] == [
        "unknown operator", "wrong password", "wrong card", "card refused", "account disabled"]
    # no secret anywhere: errors, audit, log records
    text = " ".join(messages) + repr(_audit(reg)) + caplog.text
    for secret in (CLERK_PW, "Wrong-passw0rd-Long", ADMIN_PW, PIN, "wrong-pin-9"):
        assert secret not in text
    # only audit entries were added (and the disable); the residents did not change
    assert reg.content_digest() != before  # the audit table is part of the digest
    with reg._b.session(write=False) as s:
        assert s.scalar("SELECT count(*) FROM residents") == 0


def test_disabled_then_enabled(reg: Register, tmp_path: Path) -> None:
    admin = _clerk(reg, tmp_path)
    op.disable_operator(reg, admin, "clerk1", now=T0)
    with pytest.raises(AuthenticationError):
        op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1.card", PIN, now=T0)
    op.enable_operator(reg, admin, "clerk1", now=T0)
    op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1.card", PIN, now=T0)
    assert [r[1] for r in _audit(reg) if r[2] == "clerk1" and r[1].startswith("operator.")
            ] == ["operator.create", "operator.disable", "operator.login_failed",
                  "operator.enable", "operator.login"]
    with pytest.raises(ConflictError):  # an admin does not lock themselves out
        op.disable_operator(reg, admin, "admin1", now=T0)


def test_disabling_ends_open_sessions(reg: Register, tmp_path: Path) -> None:
    """A session opened before its account was disabled works no more (every workflow
    asks the policy, which asks the account), and the refusal is audited."""
    admin = _clerk(reg, tmp_path, roles="supervisor")
    clerk = op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1.card", PIN, now=T0)
    reg.residents(actor=clerk.actor(T0), now=T0)  # the session works
    op.disable_operator(reg, admin, "clerk1", now=T0)
    before = _digests(reg)
    with pytest.raises(PermissionDeniedError, match="account clerk1 is disabled"):
        reg.residents(actor=clerk.actor(T0), now=T0)
    with pytest.raises(PermissionDeniedError, match="disabled"):
        reg.notify(actor=clerk.actor(T0), now=T0, notification_id="n1", kind="death",
                   notified_date=T0.date(), event_date=T0.date(),
                   resident_code=10_000_000_009)
    assert _digests(reg) == before
    denied = _audit(reg, "access.denied")
    assert len(denied) == 2 and all("disabled" in d[3] for d in denied)
    op.enable_operator(reg, admin, "clerk1", now=T0)
    reg.residents(actor=clerk.actor(T0), now=T0)  # the same session, once enabled again


def test_locked_after_five_failures_for_fifteen_minutes(reg: Register, tmp_path: Path
                                                        ) -> None:
    card = tmp_path / "admin1.card"
    for i in range(op.MAX_FAILURES):
        with pytest.raises(AuthenticationError):
            op.login(reg, "admin1", f"Wrong-passw0rd-{i}", card, PIN,
                     now=T0 + dt.timedelta(seconds=i))
    # the right password is refused while locked, and does not extend the lock
    locked_at = T0 + dt.timedelta(seconds=op.MAX_FAILURES - 1)
    with pytest.raises(AuthenticationError):
        op.login(reg, "admin1", ADMIN_PW, card, PIN, now=locked_at + dt.timedelta(minutes=14))
    assert _audit(reg, "operator.login_failed")[-1][3] == "account locked"
    assert "locked after 5" in _audit(reg, "operator.login_failed")[-2][3]
    session = op.login(reg, "admin1", ADMIN_PW, card, PIN,
                       now=locked_at + op.LOCK_DURATION)
    assert session.operator_id == "admin1"


def test_success_resets_the_failure_count(reg: Register, tmp_path: Path) -> None:
    card = tmp_path / "admin1.card"
    for _ in range(2):
        for i in range(op.MAX_FAILURES - 1):
            with pytest.raises(AuthenticationError):
                op.login(reg, "admin1", f"Wrong-passw0rd-{i}", card, PIN, now=T0)
        op.login(reg, "admin1", ADMIN_PW, card, PIN, now=T0)  # never locked: 4 + 4


def test_expired_session_refuses_use(reg: Register, tmp_path: Path) -> None:
    session = op.login(reg, "admin1", ADMIN_PW, tmp_path / "admin1.card", PIN, now=T0,
                       ttl=dt.timedelta(hours=1))
    assert session.actor(now=T0 + dt.timedelta(minutes=59)).name == "admin1"
    later = T0 + dt.timedelta(hours=1)
    with pytest.raises(AuthenticationError, match="expired"):
        session.actor(now=later)
    before = op.operators_digest(reg)
    with pytest.raises(PermissionDeniedError, match="session expired"):
        op.create_operator(reg, session, "late1", name="Late", roles="clerk",
                           password=CLERK_PW, card_path=tmp_path / "late.card",
                           card_pin=PIN, now=later)
    assert op.operators_digest(reg) == before and not (tmp_path / "late.card").exists()
    denied = _audit(reg, "access.denied")
    assert len(denied) == 1 and denied[0][2] == "late1"
    assert denied[0][3].startswith("operator.create")
    with pytest.raises(InvalidInputError):
        op.login(reg, "admin1", ADMIN_PW, tmp_path / "admin1.card", PIN, now=T0,
                 ttl=dt.timedelta(0))


def test_recard_refuses_the_old_card(reg: Register, tmp_path: Path) -> None:
    admin = _clerk(reg, tmp_path)
    op.recard_operator(reg, admin, "clerk1", card_path=tmp_path / "clerk1-new.card",
                       card_pin="new-pin-42", now=T0)
    with pytest.raises(AuthenticationError):
        op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1.card", PIN, now=T0)
    op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1-new.card", "new-pin-42", now=T0)
    assert len(_audit(reg, "operator.recard")) == 1
    with pytest.raises(ConflictError):  # never written over an existing file
        op.recard_operator(reg, admin, "clerk1", card_path=tmp_path / "clerk1-new.card",
                           card_pin=PIN, now=T0)


def test_set_password(reg: Register, tmp_path: Path) -> None:
    admin = _clerk(reg, tmp_path)
    op.set_password(reg, admin, "clerk1", "Fresh-passw0rd-99", now=T0)
    with pytest.raises(AuthenticationError):
        op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1.card", PIN, now=T0)
    op.login(reg, "clerk1", "Fresh-passw0rd-99", tmp_path / "clerk1.card", PIN, now=T0)
    assert [r[2] for r in _audit(reg, "operator.password")] == ["clerk1"]
    with pytest.raises(NotFoundError):
        op.set_password(reg, admin, "ghost", "Fresh-passw0rd-99", now=T0)


def test_only_an_admin_administers(reg: Register, tmp_path: Path) -> None:
    _clerk(reg, tmp_path, roles="clerk,supervisor")
    clerk = op.login(reg, "clerk1", CLERK_PW, tmp_path / "clerk1.card", PIN, now=T0)
    before = _digests(reg)
    calls = [
        lambda: op.create_operator(reg, clerk, "x1", name="X", roles="admin",
                                   password=CLERK_PW, card_path=tmp_path / "x.card",
                                   card_pin=PIN, now=T0),
        lambda: op.disable_operator(reg, clerk, "admin1", now=T0),
        lambda: op.enable_operator(reg, clerk, "clerk1", now=T0),
        lambda: op.set_password(reg, clerk, "admin1", "Taken-over-passw0rd", now=T0),
        lambda: op.recard_operator(reg, clerk, "admin1", card_path=tmp_path / "y.card",
                                   card_pin=PIN, now=T0),
        lambda: op.list_operators(reg, clerk, now=T0),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError, match="not an admin"):
            call()
    after_ops = op.operators_digest(reg)
    assert after_ops == before[1]
    assert not (tmp_path / "x.card").exists() and not (tmp_path / "y.card").exists()
    assert [r[3].split(":")[0] for r in _audit(reg, "access.denied")] == [
        "operator.create", "operator.disable", "operator.enable", "operator.password",
        "operator.recard"]
    with pytest.raises(PermissionDeniedError):  # not a session at all
        op.disable_operator(reg, Actor.operator("admin1", LG, "admin"), "clerk1")  # type: ignore[arg-type]


def test_a_session_of_another_node_is_refused(reg: Register, db_target: str,
                                              tmp_path: Path, pg_databases: object) -> None:
    other_target = (str(tmp_path / "other.db") if "://" not in db_target
                    else pg_databases("other"))  # type: ignore[operator]
    other = create_register(other_target, lg_code="131024", prefecture="東京都",
                            municipality="中央区", actor=Actor.operator("s", "131024", "admin"))
    with other:
        op.bootstrap_admin(other, "admin1", name="Other", password=ADMIN_PW,
                           card_path=tmp_path / "other.card", card_pin=PIN, now=T0)
        foreign = op.login(other, "admin1", ADMIN_PW, tmp_path / "other.card", PIN, now=T0)
    with pytest.raises(PermissionDeniedError, match="session of node 131024"):
        op.disable_operator(reg, foreign, "admin1", now=T0)
    # the other node's card does not log in here either, though the id and password match
    with pytest.raises(AuthenticationError):
        op.login(reg, "admin1", ADMIN_PW, tmp_path / "other.card", PIN, now=T0)


@pytest.mark.parametrize(("password", "reason"), [
    ("Short-1", "too short"),
    ("alllowercaseletters", "one kind"),
    ("123456789012345", "one kind"),
    ("My-clerk1-Passw0rd", "operator id"),
    ("A1" * 600, "too long"),
])
def test_password_policy(reg: Register, tmp_path: Path, password: str, reason: str) -> None:
    admin = _admin(reg, tmp_path)
    before = _digests(reg)
    with pytest.raises(InvalidInputError, match=reason) as ei:
        op.create_operator(reg, admin, "clerk1", name="C", roles="clerk", password=password,
                           card_path=tmp_path / "c.card", card_pin=PIN, now=T0)
    assert password not in str(ei.value)
    assert _digests(reg) == before and not (tmp_path / "c.card").exists()
    with pytest.raises(InvalidInputError, match=reason):
        op.set_password(reg, admin, "clerk1", password, now=T0)
    assert _digests(reg) == before


def test_bad_account_input_changes_nothing(reg: Register, tmp_path: Path) -> None:
    admin = _admin(reg, tmp_path)
    before = _digests(reg)
    bad = [dict(operator_id="bad id"), dict(roles="root"), dict(roles=""),
           dict(card_pin="12345"), dict(name=" "), dict(resident_code=10**11)]
    for change in bad:
        args: dict[str, object] = dict(operator_id="clerk1", name="C", roles="clerk",
                                       password=CLERK_PW, card_path=tmp_path / "c.card",
                                       card_pin=PIN, now=T0)
        args.update(change)
        with pytest.raises(InvalidInputError):
            op.create_operator(reg, admin, **args)  # type: ignore[arg-type]
    (tmp_path / "taken.card").write_text("mine")
    with pytest.raises(ConflictError):
        op.create_operator(reg, admin, "clerk1", name="C", roles="clerk", password=CLERK_PW,
                           card_path=tmp_path / "taken.card", card_pin=PIN, now=T0)
    assert (tmp_path / "taken.card").read_text() == "mine"
    with pytest.raises(ConflictError):
        op.create_operator(reg, admin, "admin1", name="C", roles="clerk", password=CLERK_PW,
                           card_path=tmp_path / "c.card", card_pin=PIN, now=T0)
    assert _digests(reg) == before and not (tmp_path / "c.card").exists()
    with pytest.raises(ConflictError):  # bootstrap only into a store without operators
        op.bootstrap_admin(reg, "admin2", name="B", password=ADMIN_PW,
                           card_path=tmp_path / "b.card", card_pin=PIN)
    assert _digests(reg) == before and not (tmp_path / "b.card").exists()


def test_card_file_is_private_and_strongly_wrapped(reg: Register, tmp_path: Path) -> None:
    path = tmp_path / "admin1.card"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["kdf"]["name"] == "scrypt" and doc["kdf"]["n"] >= MIN_SCRYPT_N == 2**15
    assert PIN not in path.read_text()
    # a weakened KDF, a swapped id or a flipped byte: not a card, or refused
    weak = dict(doc, kdf=dict(doc["kdf"], n=2**10))
    (tmp_path / "weak.card").write_text(json.dumps(weak))
    with pytest.raises(CorruptFileError):
        load_card(tmp_path / "weak.card", PIN)
    swapped = dict(doc, operator_id="clerk1")
    (tmp_path / "swapped.card").write_text(json.dumps(swapped))
    with pytest.raises(PermissionDeniedError):
        load_card(tmp_path / "swapped.card", PIN)
    with pytest.raises(AuthenticationError):
        op.login(reg, "admin1", ADMIN_PW, tmp_path / "weak.card", PIN, now=T0)
    (tmp_path / "garbage.card").write_bytes(b"\xff\x00not a card")
    with pytest.raises(AuthenticationError):
        op.login(reg, "admin1", ADMIN_PW, tmp_path / "garbage.card", PIN, now=T0)


def test_an_old_password_hash_is_replaced_at_login(reg: Register, tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(ADMIN_PW)
    with reg._b.session() as s:
        s.execute("UPDATE operator SET password_hash = ? WHERE id = 'admin1'", (old,))
    _admin(reg, tmp_path)
    with reg._b.session(write=False) as s:
        new = s.scalar("SELECT password_hash FROM operator WHERE id = 'admin1'")
    assert new != old and new.startswith("$argon2id$")
    assert not op.PASSWORD_HASHER.check_needs_rehash(new)
    _admin(reg, tmp_path)


def test_list_operators(reg: Register, tmp_path: Path) -> None:
    admin = _clerk(reg, tmp_path)
    infos = op.list_operators(reg, admin, now=T0)
    assert [(i.id, i.roles, i.enabled, i.lg_code) for i in infos] == [
        ("admin1", ("admin",), True, LG), ("clerk1", ("clerk",), True, LG)]
    assert "password" not in repr(infos)


def test_identity_store_operators(db_target: str, tmp_path: Path) -> None:
    with create_identity_store(db_target, node_id="130001", kind="prefecture") as store:
        op.bootstrap_admin(store, "padmin", name="Pref Admin", password=ADMIN_PW,
                           card_path=tmp_path / "p.card", card_pin=PIN)
        session = op.login(store, "padmin", ADMIN_PW, tmp_path / "p.card", PIN)
        assert session.node_id == "130001" and session.actor().lg_code is None
        with pytest.raises(AuthenticationError):
            op.login(store, "padmin", CLERK_PW, tmp_path / "p.card", PIN)
        with store._b.session(write=False) as s:
            actions = [r[0] for r in s.query("SELECT action FROM audit ORDER BY id")]
    assert actions[-3:] == ["operator.create", "operator.login", "operator.login_failed"]


def test_a_store_from_before_operators_gains_the_table(db_target: str, tmp_path: Path
                                                      ) -> None:
    with create_register(db_target, lg_code=LG, prefecture="東京都", municipality="千代田区",
                         actor=Actor.operator("setup", LG, "admin")) as r, r._b.session() as s:
        s.execute("DROP TABLE operator")  # back to version 6: later versions' tables go too
        s.execute("DROP TABLE policy_config")
        s.execute("DROP INDEX audit_actor_action_at")
        s.execute("DROP TABLE certificate_issuance")
        s.execute("DELETE FROM schema_version WHERE version >= 7")
    with open_register(db_target) as r:
        assert r.schema_version == SCHEMA_VERSION
        op.bootstrap_admin(r, "admin1", name="A", password=ADMIN_PW,
                           card_path=tmp_path / "a.card", card_pin=PIN)
        op.login(r, "admin1", ADMIN_PW, tmp_path / "a.card", PIN)
