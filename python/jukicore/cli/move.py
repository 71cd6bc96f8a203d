"""``jukicore move``: the special move-in/out (転入転出の特例) between two municipalities.

``move out`` at the old municipality records a move-out filed by mail or online with a
card; ``move in`` at the new one moves the resident in with the card and its PIN,
fetching the move-out data from the old municipality over the network; ``move resume``
sends the confirmations a crash or an outage left pending; ``move list`` shows both.
NODE is the municipality's node directory (its register, its pin key ``pin.key``, its
keys for the network).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from ._common import (
    Credentials,
    emit_json,
    json_option,
    lg_code_arg,
    operator_options,
    resident_code_arg,
)
from .card import _read_pin
from .node import password_option, read_password

__all__ = ["call_for", "move"]

_node = click.argument("node_dir", metavar="NODE",
                       type=click.Path(exists=True, file_okay=False, path_type=Path))
_today = click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
                      help="The day of the notification (default: today in Japan).")
_date = click.DateTime(["%Y-%m-%d"])


def call_for(node_dir: Path, password: str | None) -> Any:
    """The network client through which NODE reaches another node: a
    :class:`jukicore.network.client.NodeClient` with the node's keys, certificate, trust
    store and address book (``jukicore node peer``). Use it as a context manager; its
    ``call_json`` is the ``call(peer, path, body)`` of :mod:`jukicore.moves`. The one
    place where the CLI wires the network."""
    from jukicore.network.client import NodeClient
    from jukicore.network.node import Node

    return NodeClient(Node.open(node_dir), password)


def _day(today: dt.datetime | None) -> dt.date | None:
    return None if today is None else today.date()


def _open(node_dir: Path, creds: Credentials, *, pin_key: bool) -> tuple[Any, Any, Any]:
    """The node's register, its SpecialMoves and the logged-in operator's actor."""
    from jukicore.moves import SpecialMoves, node_pin_key
    from jukicore.network.node import Node
    from jukicore.register import open_register

    node = Node.open(node_dir)
    if node.role != "municipality":
        raise click.UsageError(f"{node_dir} is a {node.role}'s node: the special move-in/out"
                               " is a municipality's")
    key = node_pin_key(node.path) if pin_key else None
    reg = open_register(node.store_target())
    try:
        actor = creds.login(reg)
        return reg, SpecialMoves(reg, key), actor
    except BaseException:
        reg.close()
        raise


def _show(record: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        emit_json(record)
    else:
        click.echo(line)


@click.group()
def move() -> None:
    """The special move-in/out (転入転出の特例): a move-out filed by mail or online with a
    My Number card or a resident register card, the move-in at the new municipality with
    the card and its PIN, the move-out data fetched over the network."""


@move.command("out")
@_node
@click.option("--notification-id", required=True, help="The move-out notification's id.")
@click.option("--resident-code", required=True, callback=resident_code_arg,
              help="The resident moving out (11 digits).")
@click.option("--card-id", required=True, help="The card the move-out was filed with.")
@click.option("--to", "destination_lg", required=True, callback=lg_code_arg,
              help="The new municipality's local government code (the only one served).")
@click.option("--destination", required=True, help="The new address as filed.")
@click.option("--planned", "planned_on", required=True, type=_date,
              help="The planned move-out date (at most 14 days after the filing).")
@click.option("--filed-on", type=_date, default=None,
              help="The day the filing arrived (default: --today).")
@click.option("--by", "filed_by", type=click.Choice(("mail", "online")), default="mail",
              show_default=True, help="How the move-out was filed.")
@click.option("--new-head-code", callback=lambda c, p, v: None if v is None else
              resident_code_arg(c, p, v), default=None,
              help="The household's new head when its head leaves members behind.")
@_today
@operator_options
@json_option
def out(*, node_dir: Path, notification_id: str, resident_code: int, card_id: str,
        destination_lg: str, destination: str, planned_on: dt.datetime,
        filed_on: dt.datetime | None, filed_by: str, new_head_code: int | None,
        today: dt.datetime | None, creds: Credentials, as_json: bool) -> None:
    """Record a special move-out (特例転出) at the old municipality NODE: the usual move-out
    notification and the move-out data kept for the new municipality (--to)."""
    reg, moves, actor = _open(node_dir, creds, pin_key=False)
    with reg:
        got = moves.move_out(notification_id=notification_id, resident_code=resident_code,
                             card_id=card_id, destination_lg=destination_lg,
                             destination=destination, planned_on=planned_on.date(),
                             filed_on=_day(filed_on), filed_by=filed_by,
                             new_head_code=new_head_code, actor=actor, today=_day(today))
    _show(got, as_json, f"special move-out {got['move_out_id']} of {got['resident_code']}"
                        f" to {got['destination_lg']}, planned {got['planned_on']}: open")


@move.command("in")
@_node
@click.option("--notification-id", required=True, help="The move-in notification's id.")
@click.option("--from", "from_lg", required=True, callback=lg_code_arg,
              help="The municipality the resident moved out of.")
@click.option("--resident-code", required=True, callback=resident_code_arg,
              help="The resident code the card holds (11 digits).")
@click.option("--card-id", required=True, help="The card presented.")
@click.option("--arrival", "moved_in_on", required=True, type=_date,
              help="The day the resident began to live here (転入日).")
@click.option("--postal-code", required=True)
@click.option("--town", required=True)
@click.option("--street", required=True)
@click.option("--building", default=None)
@click.option("--household-id", type=click.IntRange(min=1), default=None,
              help="Join this household (with --relationship); else a new household.")
@click.option("--relationship", default=None, help="Relationship to the household's head.")
@click.option("--pin-stdin", is_flag=True,
              help="Read the card's PIN from the first line of standard input (else a "
                   "prompt without echo; never an argument).")
@_today
@password_option
@operator_options
@json_option
def in_(*, node_dir: Path, notification_id: str, from_lg: str, resident_code: int,
        card_id: str, moved_in_on: dt.datetime, postal_code: str, town: str, street: str,
        building: str | None, household_id: int | None, relationship: str | None,
        pin_stdin: bool, today: dt.datetime | None, node_password_file: Path | None,
        creds: Credentials, as_json: bool) -> None:
    """The special move-in (特例転入) at the new municipality NODE: within 14 days of the
    arrival and 30 of the planned move-out date; exit 0 once recorded (the confirmation to
    the old municipality may stay pending: see ``move resume``)."""
    pin = _read_pin(pin_stdin)
    with call_for(node_dir, read_password(node_password_file)) as client:
        reg, moves, actor = _open(node_dir, creds, pin_key=True)
        with reg:
            got = moves.move_in(notification_id=notification_id, from_lg=from_lg,
                                resident_code=resident_code, card_id=card_id, pin=pin,
                                moved_in_on=moved_in_on.date(), postal_code=postal_code,
                                town=town, street=street, building=building,
                                household_id=household_id, relationship=relationship,
                                call=client.call_json, actor=actor, today=_day(today))
    extra = "" if got["state"] == "confirmed" else f" ({got['last_error']}; run move resume)"
    _show(got, as_json, f"special move-in {got['move_in_id']} of {got['resident_code']}"
                        f" from {got['from_lg']}: {got['state']}{extra}")


@move.command("resume")
@_node
@password_option
@operator_options
@json_option
def resume(*, node_dir: Path, node_password_file: Path | None, creds: Credentials,
           as_json: bool) -> None:
    """Send again every confirmation a crash or an outage left pending at NODE. Exit 1
    while any stays pending."""
    with call_for(node_dir, read_password(node_password_file)) as client:
        reg, moves, actor = _open(node_dir, creds, pin_key=False)
        with reg:
            rows = moves.resume(client.call_json, actor=actor).to_pylist()
    pending = [r for r in rows if r["state"] != "confirmed"]
    if as_json:
        emit_json({"move_ins": rows, "pending": len(pending)})
    else:
        for r in rows:
            click.echo(f"{r['move_in_id']} from {r['from_lg']}: {r['state']}"
                       + (f" ({r['last_error']})" if r["state"] != "confirmed" else ""))
        if not rows:
            click.echo("nothing pending")
    if pending:
        raise SystemExit(1)


@move.command("list")
@_node
@click.option("--incoming", is_flag=True, help="The move-ins recorded here (else the "
                                                 "move-outs filed here).")
@operator_options
@json_option
def list_(*, node_dir: Path, incoming: bool, creds: Credentials, as_json: bool) -> None:
    """The special move-outs filed at NODE (never their data), or its move-ins."""
    reg, moves, actor = _open(node_dir, creds, pin_key=False)
    with reg:
        table = (moves.move_ins if incoming else moves.move_outs)(actor=actor)
    rows = table.to_pylist()
    for r in rows:
        r["resident_code"] = f"{r['resident_code']:011d}"
    if as_json:
        emit_json({"move_ins" if incoming else "move_outs": rows})
        return
    for r in rows:
        key = "move_in_id" if incoming else "move_out_id"
        peer = r["from_lg"] if incoming else r["destination_lg"]
        click.echo(f"{r[key]} {r['resident_code']} {'from' if incoming else 'to'} {peer}:"
                   f" {r['state']}")
