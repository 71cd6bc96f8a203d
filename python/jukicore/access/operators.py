"""Operator accounts and their two factors: a password and an operator card.

Every person who acts at a node has an account in that node's store (a municipality's
register, a prefecture's or the center's identity store): the ``operator`` table
(:data:`OPERATOR_TABLE`, created by schema version 7 of both store kinds). An operator
logs in with both factors (:func:`login`) and gets an :class:`OperatorSession`, whose
:meth:`~OperatorSession.actor` is the :class:`~jukicore.access.Actor` every workflow
takes; the session expires (default 8 hours).

* **Password**: Argon2id (``argon2-cffi``, :data:`PASSWORD_HASHER`); a hash made with
  older parameters is replaced at the next successful login. Policy
  (:func:`check_password`): at least 12 characters, not all of one class (lower case,
  upper case, digits, others), not containing the operator id.
* **Card**: an Ed25519 private key in its own file (:mod:`jukicore.access.cards`,
  mode 0600, wrapped under a key derived from the card's PIN with scrypt); the
  account holds its public key. A login signs a fresh random challenge bound to the
  operator id, the node and the time (:func:`login_challenge`), and the signature is
  verified with the account's key.
* **Failures**: an unknown id, a wrong password, a wrong or unreadable card, a wrong PIN,
  a disabled or locked account all raise the same :class:`AuthenticationError` and write
  an ``operator.login_failed`` audit entry (committed although the login fails; its
  detail says which check failed, never a secret). After :data:`MAX_FAILURES`
  consecutive failures the account is locked for :data:`LOCK_DURATION`.
* **Administration** (:func:`create_operator`, :func:`disable_operator`,
  :func:`enable_operator`, :func:`recard_operator`, :func:`set_password`,
  :func:`list_operators`): only by a logged-in ``admin`` of the same node, each
  audited (``operator.create`` ...); a refusal writes ``access.denied``.
  :func:`bootstrap_admin` creates the first admin of a store that has no operator.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jukicore import audit
from jukicore.access.actors import POLICY, Actor
from jukicore.access.cards import (
    Card,
    create_card,
    load_card,
    public_key_bytes,
    verify_signature,
)
from jukicore.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    JukiError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.store import Backend, Column, Ddl, Session, Table, utcnow

__all__ = [
    "DEFAULT_SESSION_TTL",
    "LOCK_DURATION",
    "MAX_FAILURES",
    "MIN_PASSWORD_LENGTH",
    "OPERATOR_TABLE",
    "PASSWORD_HASHER",
    "OperatorInfo",
    "OperatorSession",
    "bootstrap_admin",
    "check_credentials",
    "check_password",
    "create_operator",
    "disable_operator",
    "enable_operator",
    "list_operators",
    "login",
    "login_challenge",
    "migration_statements",
    "operator_roles",
    "operators_digest",
    "recard_operator",
    "set_password",
]

#: The operator accounts of a store (every store kind).
OPERATOR_TABLE = Table("operator", (
    Column("id", "text", False),
    Column("name", "text", False),
    Column("lg_code", "text"),            # the municipality's code; null at a prefecture/center
    Column("node_id", "text"),            # the node the account belongs to
    Column("roles", "text", False),       # comma-separated
    Column("enabled", "bool", False),
    Column("resident_code", "int"),       # the operator's own residence record (monitoring)
    Column("password_hash", "text", False),
    Column("card_public_key", "blob", False),
    Column("created_at", "ts", False),
    Column("disabled_at", "ts"),
    Column("failed_logins", "small", False),  # consecutive failures since the last success
    Column("locked_until", "ts"),
), ("id",))

_COLS = OPERATOR_TABLE.names


def migration_statements(ddl: Ddl) -> list[str]:
    """Schema version 7 of every store kind: the operator table."""
    return [ddl.create_table(OPERATOR_TABLE)]


MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_FAILURES = 5
LOCK_DURATION = dt.timedelta(minutes=15)
DEFAULT_SESSION_TTL = dt.timedelta(hours=8)
#: An operator id: letters, digits, ``.``, ``_``, ``-``; 1 to 64 characters.
MAX_ID_LENGTH = 64


def _hasher() -> Any:
    from argon2 import PasswordHasher
    from argon2.profiles import RFC_9106_LOW_MEMORY

    # RFC 9106's second recommendation (Argon2id, t=3, m=64 MiB, p=4).
    return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


#: The one Argon2id hasher of operator passwords.
PASSWORD_HASHER: Any = _hasher()

_REFUSED = ("login refused: unknown operator, wrong password or card, or the account is"
            " disabled or locked")


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise InvalidInputError("now must be timezone-aware")
    return now.astimezone(dt.UTC)


def _read_ts(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _backend(store: object) -> Backend:
    if isinstance(store, Backend):
        return store
    b = getattr(store, "_b", None)
    if isinstance(b, Backend):
        return b
    raise InvalidInputError(f"not a store: {type(store).__name__} (give a Register, an"
                            " IdentityStore or a jukicore.store.Backend)")


def _node(s: Session) -> tuple[str, str | None]:
    """(node id, municipality code or None) of the store."""
    meta = dict(s.query("SELECT key, value FROM meta WHERE key IN ('node_id', 'lg_code')"))
    if "lg_code" in meta:  # a municipality's register: its node is its code
        return str(meta["lg_code"]), str(meta["lg_code"])
    return str(meta.get("node_id", "")), None


def operator_roles() -> frozenset[str]:
    """The roles an operator account may hold (those the access policy knows, at any
    tier: ``provider`` grants something at a prefecture or the center only)."""
    return frozenset(role for _tier, kind, role in POLICY if kind == "operator")


def check_operator_id(operator_id: object) -> str:
    if (not isinstance(operator_id, str) or not 0 < len(operator_id) <= MAX_ID_LENGTH
            or not operator_id.isascii()
            or not all(c.isalnum() or c in "._-" for c in operator_id)):
        raise InvalidInputError(
            f"an operator id is 1 to {MAX_ID_LENGTH} ASCII letters, digits, '.', '_' or '-'")
    return operator_id


def _check_roles(roles: Sequence[str] | str) -> tuple[str, ...]:
    items = [r.strip() for r in roles.split(",")] if isinstance(roles, str) else list(roles)
    known = operator_roles()
    if not items or any(r not in known for r in items):
        raise InvalidInputError(f"an operator's roles are one or more of {sorted(known)}")
    return tuple(sorted(set(items)))


def check_password(password: object, operator_id: str | None = None) -> str:
    """Raise :class:`InvalidInputError` unless ``password`` meets the policy (at least 12
    characters, at most 1024, not all of one class, not containing the operator id). The
    message never contains the password."""
    if not isinstance(password, str):
        raise InvalidInputError("a password is text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters")
    classes = {("lower" if c.islower() else "upper" if c.isupper() else
                "digit" if c.isdigit() else "other") for c in password}
    if len(classes) < 2:
        raise InvalidInputError("the password is all of one kind of character: mix lower"
                                " case, upper case, digits or other characters")
    if operator_id and operator_id.casefold() in password.casefold():
        raise InvalidInputError("the password must not contain the operator id")
    return password


@dataclass(frozen=True)
class OperatorInfo:
    """An account as listed (no password hash, no key)."""

    id: str
    name: str
    lg_code: str | None
    node_id: str | None
    roles: tuple[str, ...]
    enabled: bool
    resident_code: int | None
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    locked_until: dt.datetime | None
    card_key_id: str


@dataclass(frozen=True)
class OperatorSession:
    """A logged-in operator at one node, until ``expires_at``.

    :meth:`actor` gives the :class:`~jukicore.access.Actor` to pass to workflows; it
    refuses an expired session (:class:`AuthenticationError`)."""

    operator_id: str
    node_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    _actor: Actor = field(repr=False)
    session_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def expired(self, now: dt.datetime | None = None) -> bool:
        return _now(now) >= self.expires_at

    def actor(self, now: dt.datetime | None = None) -> Actor:
        """The logged-in operator as an actor; refused once the session has expired."""
        if self.expired(now):
            raise AuthenticationError(
                f"the session of operator {self.operator_id} expired at"
                f" {self.expires_at.isoformat(timespec='seconds')}: log in again")
        return self._actor

    @property
    def roles(self) -> frozenset[str]:
        return self._actor.roles


def login_challenge(operator_id: str, node_id: str, now: dt.datetime,
                    nonce: bytes | None = None) -> bytes:
    """The bytes an operator card signs at a login: a fresh 32-byte random nonce bound
    to the operator id, the node and the time."""
    nonce = secrets.token_bytes(32) if nonce is None else nonce
    return b"\0".join([b"jukicore-operator-login/v1", operator_id.encode(), node_id.encode(),
                       now.astimezone(dt.UTC).isoformat().encode(), nonce])


def _row(s: Session, operator_id: str) -> dict[str, Any] | None:
    rows = s.query(f"SELECT {', '.join(_COLS)} FROM operator WHERE id = ?", (operator_id,))
    return dict(zip(_COLS, rows[0], strict=True)) if rows else None


def _actor_of(row: dict[str, Any]) -> Actor:
    """The account's actor: of its municipality, else of its node (a prefecture, the
    center), where the policy checks that it acts."""
    lg = row["lg_code"]
    return Actor("operator", row["id"], lg,
                 frozenset(r for r in str(row["roles"]).split(",") if r),
                 None if lg is not None else row["node_id"])


def _audit(s: Session, actor: Actor | str, action: str, target: str | None,
           detail: str | None, now: dt.datetime) -> None:
    kind = None if isinstance(actor, Actor) else "operator"
    audit.write_many(s, [audit.entry(s, actor, action, target, detail, at=s.ts(now),
                                     actor_kind=kind)])


def _shown_id(operator_id: object) -> str:
    """The claimed id as recorded (printable, bounded): it is untrusted input."""
    text = operator_id if isinstance(operator_id, str) else repr(operator_id)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text[:MAX_ID_LENGTH] or "?"


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for an unknown id (the same time as a known one)."""
    return str(PASSWORD_HASHER.hash(secrets.token_hex(16)))


def _verify_password(stored: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(PASSWORD_HASHER.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def login(store: object, operator_id: str, password: str, card: str | os.PathLike[str],
          card_pin: str, *, now: dt.datetime | None = None,
          ttl: dt.timedelta = DEFAULT_SESSION_TTL) -> OperatorSession:
    """Log ``operator_id`` in at ``store``'s node with both factors: its ``password`` and
    its operator ``card`` file (opened with ``card_pin``), which signs a fresh challenge.

    Any failure raises the one :class:`AuthenticationError` and commits an
    ``operator.login_failed`` entry; success commits ``operator.login`` and returns a
    session expiring after ``ttl``. ``now`` (default: the clock) is the time of the login.
    """
    b = _backend(store)
    now = _now(now)
    if ttl <= dt.timedelta(0):
        raise InvalidInputError("a session's lifetime must be positive")
    result = _attempt(b, operator_id, password, card, card_pin, now, ttl)
    if isinstance(result, OperatorSession):
        return result
    raise AuthenticationError(_REFUSED)


def check_credentials(store: object, operator_id: str, password: str,
                      card: str | os.PathLike[str], card_pin: str, *,
                      now: dt.datetime | None = None) -> Actor:
    """The same checks as :func:`login` (both factors, a lock, a disabled account), in a
    read-only transaction: nothing is written, neither an entry nor a failure count.

    Only for reading a store whose audit log can take no entry (a damaged tree state),
    where :func:`login` itself fails: ``jukicore audit verify`` must still run there to
    say what was damaged. Anyone able to damage the log can write the operator table too,
    so the failure count it skips protects nothing then."""
    b = _backend(store)
    now = _now(now)
    result = _attempt(b, operator_id, password, card, card_pin, now, DEFAULT_SESSION_TTL,
                      record=False)
    if isinstance(result, OperatorSession):
        return result.actor(now)
    raise AuthenticationError(_REFUSED)


def _attempt(b: Backend, operator_id: object, password: object,
             card: str | os.PathLike[str], card_pin: object,
             now: dt.datetime, ttl: dt.timedelta = DEFAULT_SESSION_TTL, *,
             record: bool = True) -> OperatorSession | str:
    # The card first (outside the transaction: scrypt is slow); its failure is recorded.
    loaded: Card | None = None
    card_problem = None
    try:
        loaded = load_card(card, card_pin if isinstance(card_pin, str) else "")
    except JukiError as exc:
        card_problem = f"card refused ({type(exc).__name__})"
    oid = operator_id if isinstance(operator_id, str) else ""
    with b.session(write=record) as s:
        node_id, _lg = _node(s)
        row = _row(s, oid) if oid else None
        stored_hash = row["password_hash"] if row else _dummy_hash()
        pw_ok = isinstance(password, str) and _verify_password(stored_hash, password)
        reason = None
        if row is None:
            reason = "unknown operator"
        else:
            locked = _read_ts(row["locked_until"])
            if locked is not None and now < locked:
                reason = "account locked"
            elif not pw_ok:
                reason = "wrong password"
            elif card_problem is not None:
                reason = card_problem
            else:
                assert loaded is not None
                challenge = login_challenge(oid, node_id, now)
                if loaded.operator_id != oid or not verify_signature(
                        bytes(row["card_public_key"]), challenge, loaded.sign(challenge)):
                    reason = "wrong card"
                elif not bool(row["enabled"]):
                    reason = "account disabled"
        if reason is not None and not record:
            return reason
        if reason is not None:
            if row is not None and reason != "account locked":
                failures = int(row["failed_logins"]) + 1
                if failures >= MAX_FAILURES:
                    s.execute("UPDATE operator SET failed_logins = 0, locked_until = ?"
                              " WHERE id = ?", (s.ts(now + LOCK_DURATION), oid))
                    reason += f"; locked after {failures} consecutive failures"
                else:
                    s.execute("UPDATE operator SET failed_logins = ?, locked_until = NULL"
                              " WHERE id = ?", (failures, oid))
            shown = _shown_id(operator_id)
            who = str(_actor_of(row)) if row is not None else f"operator:{shown}"
            _audit(s, who, "operator.login_failed", shown, reason, now)
            return reason
        assert row is not None and isinstance(password, str)
        actor = _actor_of(row)
        session = OperatorSession(oid, node_id, now, now + ttl, actor)
        if not record:
            return session
        new_hash = (PASSWORD_HASHER.hash(password)
                    if PASSWORD_HASHER.check_needs_rehash(row["password_hash"]) else None)
        s.execute("UPDATE operator SET failed_logins = 0, locked_until = NULL,"
                  " password_hash = COALESCE(?, password_hash) WHERE id = ?", (new_hash, oid))
        _audit(s, actor, "operator.login", oid,
               f"node {node_id}; session until {session.expires_at.isoformat()}", now)
        return session


# -- administration ---------------------------------------------------------------------


def _admin(s: Session, session: OperatorSession, action: str, target: str,
           now: dt.datetime) -> tuple[Actor, str, str | None] | str:
    """The acting admin, the node and its municipality code, or why it is refused."""
    if not isinstance(session, OperatorSession):
        return "no operator session"
    node_id, lg = _node(s)
    if session.expired(now):
        return "session expired"
    if session.node_id != node_id:
        return f"session of node {session.node_id}, not {node_id}"
    row = _row(s, session.operator_id)
    if row is None or not bool(row["enabled"]):
        return "acting operator unknown or disabled"
    actor = _actor_of(row)
    if "admin" not in actor.roles:
        return "not an admin"
    return actor, node_id, lg


def _administer(store: object, session: OperatorSession, action: str, target: str,
                now: dt.datetime | None,
                work: Callable[[Session, Actor, str, str | None, dt.datetime], str | None]
                ) -> None:
    """Run ``work`` as ``session``'s admin in one transaction with its audit entry; a
    refusal commits ``access.denied`` and raises :class:`PermissionDeniedError`."""
    b = _backend(store)
    now = _now(now)
    with b.session() as s:
        got = _admin(s, session, action, target, now)
        if not isinstance(got, str):
            actor, node_id, lg = got
            detail = work(s, actor, node_id, lg, now)
            _audit(s, actor, action, target, detail, now)
            return
        who: Actor | str = (session._actor if isinstance(session, OperatorSession)
                            else "unauthenticated")
        _audit(s, who, "access.denied", target, f"{action}: {got}", now)
    raise PermissionDeniedError(f"{action} {target} refused: {got}")


def _insert(s: Session, operator_id: str, name: str, lg: str | None, node_id: str,
            roles: tuple[str, ...], password_hash: str, public_key: bytes,
            resident_code: int | None, now: dt.datetime) -> None:
    if _row(s, operator_id) is not None:
        raise ConflictError(f"operator {operator_id} exists already")
    s.execute(f"INSERT INTO operator ({', '.join(_COLS)}) VALUES"
              f" ({', '.join('?' * len(_COLS))})",
              (operator_id, name, lg, node_id, ",".join(roles), True, resident_code,
               password_hash, public_key, s.ts(now), None, 0, None))


def _check_new(operator_id: str, name: str, roles: Sequence[str] | str, password: str,
               card_pin: str, resident_code: int | None) -> tuple[str, tuple[str, ...]]:
    check_operator_id(operator_id)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInputError("an operator needs a name (at most 200 characters)")
    r = _check_roles(roles)
    check_password(password, operator_id)
    from jukicore.access.cards import check_pin

    check_pin(card_pin)
    if resident_code is not None and not (isinstance(resident_code, int)
                                          and 0 < resident_code < 10**11):
        raise InvalidInputError("an operator's resident code is an 11-digit number")
    return name.strip(), r


def create_operator(store: object, session: OperatorSession, operator_id: str, *,
                    name: str, roles: Sequence[str] | str, password: str,
                    card_path: str | os.PathLike[str], card_pin: str,
                    resident_code: int | None = None, now: dt.datetime | None = None) -> None:
    """Create an account at ``store``'s node (by a logged-in admin of that node) and write
    its card to ``card_path`` (a new file, mode 0600, opened with ``card_pin``).

    Invalid input is an :class:`InvalidInputError`, an existing id or card file a
    :class:`ConflictError`: nothing is written then. If the database refuses after the
    card file was written, the file is removed."""
    name, r = _check_new(operator_id, name, roles, password, card_pin, resident_code)
    path = Path(card_path)
    if path.exists() or path.is_symlink():
        raise ConflictError(f"{path} exists: a new card is never written over a file")
    pw_hash = PASSWORD_HASHER.hash(password)

    def work(s: Session, actor: Actor, node_id: str, lg: str | None,
             at: dt.datetime) -> str:
        if _row(s, operator_id) is not None:
            raise ConflictError(f"operator {operator_id} exists already")
        card = create_card(path, operator_id, card_pin)
        try:
            _insert(s, operator_id, name, lg, node_id, r, pw_hash,
                    public_key_bytes(card), resident_code, at)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return f"roles {','.join(r)}; card key {card.key_id}"

    try:
        _administer(store, session, "operator.create", operator_id, now, work)
    except BaseException:
        if path.exists() and _card_of(store, operator_id) is None:
            path.unlink(missing_ok=True)  # the transaction failed at commit
        raise


def _card_of(store: object, operator_id: str) -> bytes | None:
    with _backend(store).session(write=False) as s:
        rows = s.query("SELECT card_public_key FROM operator WHERE id = ?", (operator_id,))
    return bytes(rows[0][0]) if rows else None


def bootstrap_admin(store: object, operator_id: str, *, name: str, password: str,
                    card_path: str | os.PathLike[str], card_pin: str,
                    resident_code: int | None = None, now: dt.datetime | None = None) -> None:
    """Create the first admin of a store that has no operator yet (a new store, or one
    migrated from before operators existed); refused (:class:`ConflictError`) once any
    operator exists.

    The card: a new one is written to ``card_path`` (mode 0600); a file already there
    must be this operator's card, opened by ``card_pin`` (one person's card for the
    stores they set up), else nothing is done."""
    name, r = _check_new(operator_id, name, ("admin",), password, card_pin, resident_code)
    path = Path(card_path)
    existing: Card | None = None
    if path.exists() or path.is_symlink():
        try:
            existing = load_card(path, card_pin)
        except JukiError:
            existing = None
        if existing is None or existing.operator_id != operator_id:
            raise ConflictError(f"{path} exists and is not {operator_id}'s card opened by"
                                " the PIN given: a new card is never written over a file")
    pw_hash = PASSWORD_HASHER.hash(password)
    at = _now(now)
    b = _backend(store)
    try:
        with b.session() as s:
            if s.scalar("SELECT count(*) FROM operator"):
                raise ConflictError("this store has operators already: its admins create"
                                    " the others (jukicore operator create)")
            node_id, lg = _node(s)
            card = existing or create_card(path, operator_id, card_pin)
            _insert(s, operator_id, name, lg, node_id, r, pw_hash, public_key_bytes(card),
                    resident_code, at)
            _audit(s, Actor("operator", operator_id, lg, frozenset(r)), "operator.create",
                   operator_id, f"first admin; card key {card.key_id}", at)
    except BaseException:
        if existing is None and path.exists() and _card_of(store, operator_id) is None:
            path.unlink(missing_ok=True)
        raise


def _existing(s: Session, operator_id: str) -> dict[str, Any]:
    row = _row(s, operator_id)
    if row is None:
        raise NotFoundError(f"no operator {operator_id} at this node")
    return row


def disable_operator(store: object, session: OperatorSession, operator_id: str, *,
                     now: dt.datetime | None = None) -> None:
    """Disable an account: it cannot log in until enabled again."""
    def work(s: Session, actor: Actor, node_id: str, lg: str | None,
             at: dt.datetime) -> None:
        _existing(s, operator_id)
        if operator_id == actor.name:
            raise ConflictError("an admin cannot disable their own account")
        s.execute("UPDATE operator SET enabled = ?, disabled_at = ? WHERE id = ?",
                  (False, s.ts(at), operator_id))

    _administer(store, session, "operator.disable", operator_id, now, work)


def enable_operator(store: object, session: OperatorSession, operator_id: str, *,
                    now: dt.datetime | None = None) -> None:
    """Enable a disabled account (and lift a lock)."""
    def work(s: Session, actor: Actor, node_id: str, lg: str | None,
             at: dt.datetime) -> None:
        _existing(s, operator_id)
        s.execute("UPDATE operator SET enabled = ?, disabled_at = NULL, failed_logins = 0,"
                  " locked_until = NULL WHERE id = ?", (True, operator_id))

    _administer(store, session, "operator.enable", operator_id, now, work)


def recard_operator(store: object, session: OperatorSession, operator_id: str, *,
                    card_path: str | os.PathLike[str], card_pin: str,
                    now: dt.datetime | None = None) -> None:
    """Issue a new card (written to ``card_path``, a new file); the old card is refused
    from then on."""
    from jukicore.access.cards import check_pin

    check_operator_id(operator_id)
    check_pin(card_pin)
    path = Path(card_path)
    if path.exists() or path.is_symlink():
        raise ConflictError(f"{path} exists: a new card is never written over a file")
    written: list[bytes] = []

    def work(s: Session, actor: Actor, node_id: str, lg: str | None,
             at: dt.datetime) -> str:
        _existing(s, operator_id)
        card = create_card(path, operator_id, card_pin)
        written.append(public_key_bytes(card))
        s.execute("UPDATE operator SET card_public_key = ? WHERE id = ?",
                  (public_key_bytes(card), operator_id))
        return f"new card key {card.key_id}"

    try:
        _administer(store, session, "operator.recard", operator_id, now, work)
    except BaseException:
        if written and _card_of(store, operator_id) != written[0]:
            path.unlink(missing_ok=True)
        raise


def set_password(store: object, session: OperatorSession, operator_id: str,
                 password: str, *, now: dt.datetime | None = None) -> None:
    """Set an operator's password (policy: :func:`check_password`)."""
    check_operator_id(operator_id)
    check_password(password, operator_id)
    pw_hash = PASSWORD_HASHER.hash(password)

    def work(s: Session, actor: Actor, node_id: str, lg: str | None,
             at: dt.datetime) -> None:
        _existing(s, operator_id)
        s.execute("UPDATE operator SET password_hash = ? WHERE id = ?", (pw_hash, operator_id))

    _administer(store, session, "operator.password", operator_id, now, work)


def list_operators(store: object, session: OperatorSession, *,
                   now: dt.datetime | None = None) -> list[OperatorInfo]:
    """Every account of the node (for a logged-in admin of it)."""
    from jukicore.access.cards import key_id_of

    b = _backend(store)
    at = _now(now)
    with b.session(write=False) as s:
        got = _admin(s, session, "operator.list", "", at)
        if not isinstance(got, str):
            rows = s.query(f"SELECT {', '.join(_COLS)} FROM operator ORDER BY id")
    if isinstance(got, str):
        raise PermissionDeniedError(f"operator list refused: {got}")
    out = []
    for values in rows:
        r = dict(zip(_COLS, values, strict=True))
        out.append(OperatorInfo(
            r["id"], r["name"], r["lg_code"], r["node_id"],
            tuple(x for x in str(r["roles"]).split(",") if x), bool(r["enabled"]),
            None if r["resident_code"] is None else int(r["resident_code"]),
            _read_ts(r["created_at"]) or at, _read_ts(r["disabled_at"]),
            _read_ts(r["locked_until"]), key_id_of(bytes(r["card_public_key"]))))
    return out


def operators_digest(store: object) -> str:
    """SHA-256 over the operator table (a register's ``content_digest`` does not cover
    it): equal digests mean no account changed."""
    from jukicore.store import content_digest

    with _backend(store).session(write=False) as s:
        return content_digest(s, [f"SELECT {', '.join(_COLS)} FROM operator ORDER BY id"])
