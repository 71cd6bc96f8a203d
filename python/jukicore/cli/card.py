"""``jukicore card``: resident register cards and My Number cards at the counter."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from jukicore.errors import InvalidInputError

from ._common import Credentials, emit_json, json_option, operator_options

#: jukicore.cards.pin.PIN_KEY_ENV, named here so that the command line starts without
#: importing the cards' package (its store pulls in pyarrow)
PIN_KEY_ENV = "JUKICORE_PIN_KEY"

__all__ = ["card"]

#: Environment variable of the node's pin key file (``--pin-key``).

_store = click.argument("store", metavar="STORE")
_card_id = click.argument("card_id", metavar="CARD_ID")
_today = click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
                      help="The day of the work (default: today in Japan).")
_pin_key = click.option("--pin-key", "pin_key", metavar="FILE", envvar=PIN_KEY_ENV,
                        required=True,
                        help=f"The node's pin key file (mode 0600). Env: {PIN_KEY_ENV}.")
_pin_stdin = click.option("--pin-stdin", is_flag=True,
                          help="Read the card PIN from the first line of standard input "
                               "(else a prompt without echo; never an argument).")
_doc = click.option("--identity-document", required=True,
                    type=click.Choice(("mynumber_card", "juki_photo_card", "drivers_license",
                                       "passport", "residence_card", "other_photo_id",
                                       "two_documents")),
                    help="The document the operator checked the holder's identity with.")


def _day(today: dt.datetime | None) -> dt.date | None:
    return None if today is None else today.date()


def _noon(today: dt.datetime | None) -> dt.datetime | None:
    """``--today`` as a moment: noon in Japan that day (None: now)."""
    if today is None:
        return None
    from jukicore.access.policy import JST

    return dt.datetime.combine(today.date(), dt.time(12), JST)


def _read_pin(from_stdin: bool, *, confirm: bool = False) -> str:
    """The PIN from standard input or a prompt without echo (never from argv)."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInputError("no PIN: use --pin-stdin to read it from standard input")
    return str(click.prompt("card PIN (4 digits)", hide_input=True,
                            confirmation_prompt=confirm))


def _cards(reg: Any, pin_key: str | None) -> Any:
    from jukicore.cards import Cards, PinKey

    return Cards(reg, None if pin_key is None else PinKey.load(pin_key))


def _show(card: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        emit_json(card)
    else:
        click.echo(f"card {card['card_id']} ({card['kind']}): {what}, now {card['state']}")


@click.group()
def card() -> None:
    """Resident register cards (住基カード) and My Number cards (個人番号カード).

    STORE is the municipality's register (a SQLite file path or a postgresql:// URI).
    PINs are read without echo, or from standard input with --pin-stdin: never from the
    command line. The pin key file (--pin-key, $JUKICORE_PIN_KEY) stays outside the store.
    """


@card.command("key-create")
@click.argument("path", type=click.Path(dir_okay=False))
@json_option
def key_create(*, path: str, as_json: bool) -> None:
    """Create the node's pin key at PATH (32 random bytes, mode 0600; never over a file).
    Keep it outside the store and its backups: every PIN is checked with it."""
    from jukicore.cards import create_pin_key

    key = create_pin_key(path)
    out = {"path": str(Path(path)), "key_id": key.key_id}
    emit_json(out) if as_json else click.echo(f"created pin key {key.key_id} in {path}")


@card.command()
@_store
@click.argument("applications", type=click.Path(exists=True, dir_okay=False))
@click.option("--apply-only", is_flag=True,
              help="Record the applications (state applied) without issuing the cards.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the cards to this file (.parquet, .arrow).")
@_today
@operator_options
@json_option
def issue(*, store: str, applications: str, apply_only: bool, out: str | None,
          today: dt.datetime | None, creds: Credentials, as_json: bool) -> None:
    """Issue cards for APPLICATIONS (Parquet/Arrow/CSV: resident_code, kind, applied_on;
    or card_id of recorded applications). One bad row refuses the whole file (exit 1)."""
    import pyarrow as pa

    from jukicore.register import open_register

    from .register import _read_table, _write_table

    schema = pa.schema([("card_id", pa.string()), ("kind", pa.string()),
                        ("resident_code", pa.string())])
    table = _read_table(applications, schema)
    with open_register(store) as reg:
        actor = creds.login(reg)
        cards = _cards(reg, None)
        work = cards.apply if apply_only else cards.issue
        got = work(table, actor=actor, today=_day(today))
    if out:
        _write_table(got, Path(out))
    rows = got.to_pylist()
    for r in rows:
        r["resident_code"] = f"{r['resident_code']:011d}"
    if as_json:
        emit_json({"cards": rows})
    else:
        verb = "recorded" if apply_only else "issued"
        click.echo(f"{verb} {len(rows)} cards: " + ", ".join(r["card_id"] for r in rows))


@card.command()
@_store
@_card_id
@_pin_key
@_pin_stdin
@_today
@operator_options
@json_option
def activate(*, store: str, card_id: str, pin_key: str, pin_stdin: bool,
             today: dt.datetime | None, creds: Credentials, as_json: bool) -> None:
    """Hand CARD_ID over with the PIN its holder chooses (issued -> active)."""
    from jukicore.register import open_register

    pin = _read_pin(pin_stdin, confirm=True)
    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, pin_key).activate(card_id, pin, actor=actor, today=_day(today))
    _show(got, as_json, "handed over")


@card.command("verify-pin")
@_store
@_card_id
@_pin_key
@_pin_stdin
@click.option("--special-move", is_flag=True,
              help="For the special move-in/out (a resident register card after a move).")
@_today
@operator_options
@json_option
def verify_pin(*, store: str, card_id: str, pin_key: str, pin_stdin: bool,
               special_move: bool, today: dt.datetime | None, creds: Credentials,
               as_json: bool) -> None:
    """Check CARD_ID's PIN; prints the holder's resident code. A wrong PIN exits 1 (three
    in a row lock the card)."""
    from jukicore.register import open_register

    pin = _read_pin(pin_stdin)
    with open_register(store) as reg:
        actor = creds.login(reg)
        cards = _cards(reg, pin_key)
        check = cards.verify_pin_special_move if special_move else cards.verify_pin
        code = check(card_id, pin, actor=actor, now=_noon(today))
    out = {"card_id": card_id, "resident_code": f"{code:011d}"}
    emit_json(out) if as_json else click.echo(f"PIN correct: holder {code:011d}")


@card.command("reset-pin")
@_store
@_card_id
@_pin_key
@_pin_stdin
@_doc
@_today
@operator_options
@json_option
def reset_pin(*, store: str, card_id: str, pin_key: str, pin_stdin: bool,
              identity_document: str, today: dt.datetime | None, creds: Credentials,
              as_json: bool) -> None:
    """Set a new PIN for CARD_ID after an identity check (a locked card is active again)."""
    from jukicore.register import open_register

    pin = _read_pin(pin_stdin, confirm=True)
    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, pin_key).reset_pin(card_id, pin, identity_document=identity_document,
                                             actor=actor, today=_day(today))
    _show(got, as_json, "PIN reset")


@card.command()
@_store
@_card_id
@_today
@operator_options
@json_option
def suspend(*, store: str, card_id: str, today: dt.datetime | None, creds: Credentials,
            as_json: bool) -> None:
    """Suspend CARD_ID, reported lost (the hotline may, for any municipality)."""
    from jukicore.register import open_register

    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, None).suspend(card_id, actor=actor, today=_day(today))
    _show(got, as_json, "suspended")


@card.command()
@_store
@_card_id
@_doc
@_today
@operator_options
@json_option
def resume(*, store: str, card_id: str, identity_document: str, today: dt.datetime | None,
           creds: Credentials, as_json: bool) -> None:
    """Resume a suspended CARD_ID after an identity check at the counter."""
    from jukicore.register import open_register

    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, None).resume(card_id, identity_document=identity_document,
                                       actor=actor, today=_day(today))
    _show(got, as_json, "resumed")


@card.command("continue-use")
@_store
@_card_id
@click.option("--resident-code", required=True, help="The holder's resident code.")
@_doc
@click.option("--issued-on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="A card issued by another municipality: its issue date (then the holder "
                   "enters the PIN, and --pin-key is needed).")
@click.option("--pin-key", "pin_key", metavar="FILE", envvar=PIN_KEY_ENV, default=None,
              help=f"The node's pin key file (a card carried in). Env: {PIN_KEY_ENV}.")
@_pin_stdin
@_today
@operator_options
@json_option
def continue_use(*, store: str, card_id: str, resident_code: str, identity_document: str,
                 issued_on: dt.datetime | None, pin_key: str | None, pin_stdin: bool,
                 today: dt.datetime | None, creds: Credentials, as_json: bool) -> None:
    """Record continued use of a My Number card after a move-in (within 90 days)."""
    from jukicore.register import open_register

    pin = _read_pin(pin_stdin) if issued_on is not None else None
    if issued_on is not None and pin_key is None:
        raise InvalidInputError(f"a card carried in needs the pin key: --pin-key or"
                                f" ${PIN_KEY_ENV}")
    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, pin_key).continue_use(
            card_id, resident_code=resident_code, identity_document=identity_document,
            actor=actor, issued_on=None if issued_on is None else issued_on.date(), pin=pin,
            today=_day(today))
    _show(got, as_json, "continued use recorded")


@card.command()
@_store
@_card_id
@click.option("--reason", required=True,
              type=click.Choice(("death", "my_number_replaced", "code_change", "damaged",
                                 "holder_request", "issued_in_error", "not_collected")))
@_today
@operator_options
@json_option
def void(*, store: str, card_id: str, reason: str, today: dt.datetime | None,
         creds: Credentials, as_json: bool) -> None:
    """Void CARD_ID."""
    from jukicore.register import open_register

    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, None).void(card_id, reason, actor=actor, today=_day(today))
    _show(got, as_json, "voided")


@card.command()
@_store
@_card_id
@_today
@operator_options
@json_option
def collect(*, store: str, card_id: str, today: dt.datetime | None, creds: Credentials,
            as_json: bool) -> None:
    """Take CARD_ID back at the counter (collected)."""
    from jukicore.register import open_register

    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, None).collect(card_id, actor=actor, today=_day(today))
    _show(got, as_json, "collected")


@card.command("list")
@_store
@click.option("--resident-code", default=None, help="Only this holder's cards.")
@click.option("--state", default=None, help="Only cards in this state (on --today).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the cards to this file (.parquet, .arrow).")
@_today
@operator_options
@json_option
def list_cards(*, store: str, resident_code: str | None, state: str | None, out: str | None,
               today: dt.datetime | None, creds: Credentials, as_json: bool) -> None:
    """The cards (never a PIN), each in its state on --today."""
    from jukicore.register import open_register

    from .register import _write_table

    with open_register(store) as reg:
        actor = creds.login(reg)
        got = _cards(reg, None).list(actor=actor, resident_code=resident_code, state=state,
                                     today=_day(today))
    if out:
        _write_table(got, Path(out))
    rows = got.to_pylist()
    for r in rows:
        r["resident_code"] = f"{r['resident_code']:011d}"
    if as_json:
        emit_json({"cards": rows})
        return
    for r in rows:
        click.echo(f"{r['card_id']}  {r['kind']:<10}  {r['resident_code']}  {r['state']:<9}"
                   f"  expires {r['expires_on'] or '-'}")
    click.echo(f"{len(rows)} cards")


@card.command()
@_store
@click.argument("kind", type=click.Choice(("juki_basic", "juki_photo", "mynumber")))
@click.argument("yen", type=click.IntRange(0, 100_000))
@operator_options
@json_option
def fee(*, store: str, kind: str, yen: int, creds: Credentials, as_json: bool) -> None:
    """Set this municipality's fee for KIND (admins)."""
    from jukicore.register import open_register

    with open_register(store) as reg:
        actor = creds.login(reg)
        cards = _cards(reg, None)
        cards.set_fee(kind, yen, actor=actor)
        fees = cards.fees()
    emit_json(fees) if as_json else click.echo(
        ", ".join(f"{k} {v} yen" for k, v in fees.items()))
