"""``jukicore operator``: operator accounts of a store (a register or an identity store).

Every command but ``bootstrap`` is done by a logged-in admin of the store's node
(``--operator``, ``--password-file``/``$JUKICORE_PASSWORD``, ``--card``,
``--card-pin-file``/``$JUKICORE_CARD_PIN``) and is audited. A new operator's password
comes from ``--new-password-file`` or ``$JUKICORE_NEW_PASSWORD`` (else a prompt), a new
card's PIN from ``--new-card-pin-file`` or ``$JUKICORE_NEW_CARD_PIN``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from jukicore.access import operators as ops
from jukicore.errors import NotFoundError

from ._common import (
    Credentials,
    FirstAdmin,
    admin_options,
    emit_json,
    json_option,
    juki_errors,
    operator_options,
    read_secret,
    resident_code_arg,
)

__all__ = ["login_and_record", "open_store_of_any_kind", "operator", "run_as_operator"]

NEW_PASSWORD_ENV = "JUKICORE_NEW_PASSWORD"
NEW_CARD_PIN_ENV = "JUKICORE_NEW_CARD_PIN"

_store = click.argument("store", metavar="STORE")
_id = click.argument("operator_id", metavar="ID")
_new_password = click.option(
    "--new-password-file", type=click.Path(dir_okay=False),
    help=f"File holding the operator's new password (else ${NEW_PASSWORD_ENV}, else a "
         "prompt on a terminal).")
_new_pin = click.option(
    "--new-card-pin-file", type=click.Path(dir_okay=False),
    help=f"File holding the new card's PIN (else ${NEW_CARD_PIN_ENV}, else a prompt on a "
         "terminal).")
_card_out = click.option("--card-out", required=True, type=click.Path(dir_okay=False),
                         help="Where the new card is written (a new file, mode 0600).")


@contextmanager
def open_store_of_any_kind(store: str) -> Iterator[Any]:
    """The register or identity store at ``store``."""
    from jukicore.identity import open_identity_store
    from jukicore.register import open_register

    try:
        opened: Any = open_register(store)
    except NotFoundError as exc:
        if "holds no register" not in str(exc):
            raise
        try:
            opened = open_identity_store(store)
        except NotFoundError:
            raise NotFoundError(f"{store} holds no register and no identity store") from None
    with opened:
        yield opened


def login_and_record(store: Any, creds: Credentials, permission: str, action: str,
                     what: str) -> Any:
    """Log ``creds`` in at ``store`` and let the one policy decide whether that operator
    may do ``permission``; then commit an ``action`` entry naming ``what``, before
    anything else is done or shown. A refusal is an ``access.denied`` entry and
    :class:`PermissionDeniedError` (exit 1). Returns the operator's actor."""
    from jukicore import audit as log

    actor = creds.login(store)
    with store.policy.session(actor, permission) as s:
        log.write(s, actor, action, None, what)
    return actor


def run_as_operator(target: str, creds: Credentials, what: str, *,
                    place: str | None = None, damaged_log_ok: bool = False) -> Any:
    """Log ``creds`` in at the store ``target`` for the node's job ``what``
    (:func:`login_and_record` with ``node.operate``: admins, the ``batch`` role; the
    entry is ``node.operate``). Returns the operator's actor.

    ``place``: the job is done at that node only (its id or municipality code); a store
    of another node is refused before anyone logs in, and nothing is written.

    ``damaged_log_ok`` (``audit verify``): when the store's audit log is too damaged to
    take an entry, the credentials and the permission are checked without writing
    anything and the job runs all the same (saying so on standard error), since finding
    out what was damaged is its job."""
    from jukicore.access.actors import OPERATE, refusal
    from jukicore.errors import (
        ConflictError,
        CorruptFileError,
        PermissionDeniedError,
        StoreError,
    )

    with open_store_of_any_kind(target) as store:
        if place is not None and store.policy.place != place:
            raise PermissionDeniedError(f"{what}: done by an operator of {place}; {target}"
                                        f" is the store of {store.policy.place}")
        try:
            return login_and_record(store, creds, OPERATE, "node.operate", what)
        except (CorruptFileError, ConflictError, StoreError) as exc:
            # (a damaged tree state; or a row put where the next entry goes)
            if not damaged_log_ok:
                raise
            actor = creds.check(store)
            why = refusal(actor, OPERATE, store.policy.tier, store.policy.place)
            if why is not None:
                raise PermissionDeniedError(f"{OPERATE} refused: {why}") from None
            click.echo(f"warning: this run of {what!r} by {actor} could not be audited: "
                       f"{exc}", err=True)
            return actor


@click.group()
def operator() -> None:
    """Operator accounts: each person acting at a node, with a password and a card."""


@operator.command()
@_store
@_id
@click.option("--name", required=True, help="The operator's name.")
@click.option("--roles", required=True, help="Comma-separated roles (clerk, supervisor, admin"
                                             " ...).")
@click.option("--resident-code", callback=lambda c, p, v: None if v is None else
              resident_code_arg(c, p, v),
              help="The operator's own resident code (monitoring of own records).")
@_card_out
@_new_password
@_new_pin
@operator_options
@json_option
@juki_errors
def create(*, store: str, operator_id: str, name: str, roles: str, resident_code: int | None,
           card_out: str, new_password_file: str | None, new_card_pin_file: str | None,
           creds: Credentials, as_json: bool) -> None:
    """Create operator ID at STORE's node and write its card to --card-out."""
    password = read_secret(new_password_file, NEW_PASSWORD_ENV, "new operator's password",
                           "--new-password-file")
    pin = read_secret(new_card_pin_file, NEW_CARD_PIN_ENV, "new card's PIN",
                      "--new-card-pin-file")
    ops.check_password(password, operator_id)
    with open_store_of_any_kind(store) as st:
        session = _session(st, creds)
        ops.create_operator(st, session, operator_id, name=name, roles=roles,
                            password=password, card_path=card_out, card_pin=pin,
                            resident_code=resident_code)
    _done(as_json, {"created": operator_id, "card": card_out},
          f"created operator {operator_id}; card written to {card_out}")


def _session(store: Any, creds: Credentials) -> ops.OperatorSession:
    session: ops.OperatorSession = creds.session(store)
    return session


def _done(as_json: bool, obj: dict[str, Any], text: str) -> None:
    emit_json(obj) if as_json else click.echo(text)


@operator.command()
@_store
@_id
@operator_options
@json_option
@juki_errors
def disable(*, store: str, operator_id: str, creds: Credentials, as_json: bool) -> None:
    """Disable operator ID: it cannot log in until enabled."""
    with open_store_of_any_kind(store) as st:
        ops.disable_operator(st, _session(st, creds), operator_id)
    _done(as_json, {"disabled": operator_id}, f"disabled operator {operator_id}")


@operator.command()
@_store
@_id
@operator_options
@json_option
@juki_errors
def enable(*, store: str, operator_id: str, creds: Credentials, as_json: bool) -> None:
    """Enable operator ID again (and lift a lock)."""
    with open_store_of_any_kind(store) as st:
        ops.enable_operator(st, _session(st, creds), operator_id)
    _done(as_json, {"enabled": operator_id}, f"enabled operator {operator_id}")


@operator.command()
@_store
@_id
@_card_out
@_new_pin
@operator_options
@json_option
@juki_errors
def recard(*, store: str, operator_id: str, card_out: str, new_card_pin_file: str | None,
           creds: Credentials, as_json: bool) -> None:
    """Give operator ID a new card (written to --card-out); its old card is refused."""
    pin = read_secret(new_card_pin_file, NEW_CARD_PIN_ENV, "new card's PIN",
                      "--new-card-pin-file")
    with open_store_of_any_kind(store) as st:
        ops.recard_operator(st, _session(st, creds), operator_id, card_path=card_out,
                            card_pin=pin)
    _done(as_json, {"recarded": operator_id, "card": card_out},
          f"new card of operator {operator_id} written to {card_out}")


@operator.command()
@_store
@_id
@_new_password
@operator_options
@json_option
@juki_errors
def passwd(*, store: str, operator_id: str, new_password_file: str | None,
           creds: Credentials, as_json: bool) -> None:
    """Set operator ID's password."""
    password = read_secret(new_password_file, NEW_PASSWORD_ENV, "new password",
                           "--new-password-file")
    ops.check_password(password, operator_id)
    with open_store_of_any_kind(store) as st:
        ops.set_password(st, _session(st, creds), operator_id, password)
    _done(as_json, {"password_set": operator_id}, f"password of operator {operator_id} set")


@operator.command("list")
@_store
@operator_options
@json_option
@juki_errors
def list_(*, store: str, creds: Credentials, as_json: bool) -> None:
    """List the operators of STORE's node."""
    with open_store_of_any_kind(store) as st:
        infos = ops.list_operators(st, _session(st, creds))
    if as_json:
        emit_json([{**i.__dict__, "roles": list(i.roles)} for i in infos])
        return
    for i in infos:
        state = "enabled" if i.enabled else "disabled"
        if i.locked_until is not None:
            state += f", locked until {i.locked_until.isoformat(timespec='seconds')}"
        click.echo(f"{i.id:<16} {','.join(i.roles):<24} {state:<10} {i.name}")


@operator.command()
@_store
@admin_options
@json_option
@juki_errors
def bootstrap(*, store: str, admin: FirstAdmin | None, as_json: bool) -> None:
    """Create the first admin of STORE when it has no operator (a store made before
    operators existed); refused once any operator exists."""
    if admin is None:
        raise click.UsageError("give --admin-id (or $JUKICORE_ADMIN_ID)")
    with open_store_of_any_kind(store) as st:
        admin.create(st)
    _done(as_json, {"admin": admin.id, "card": admin.card},
          f"created the first admin {admin.id}; card {admin.card}")
