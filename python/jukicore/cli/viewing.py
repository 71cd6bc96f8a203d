"""``jukicore viewing``: register viewing (住民基本台帳の一部の写しの閲覧) at a register."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from jukicore.errors import InvalidInputError

from ._common import Credentials, emit_json, json_option, operator_options

__all__ = ["viewing"]

_store = click.argument("store", metavar="STORE")
_day = click.DateTime(["%Y-%m-%d"])


def _date(value: dt.datetime | None) -> dt.date | None:
    return None if value is None else value.date()


def _desk(store: str, creds: Credentials) -> tuple[Any, Any, Any]:
    """The register at STORE, the operator logged in, and its viewing desk."""
    from jukicore.register import open_register
    from jukicore.viewing import Viewings

    reg = open_register(store)
    try:
        actor = creds.login(reg)
    except BaseException:
        reg.close()
        raise
    return reg, actor, Viewings(reg)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row for JSON: timestamps and dates as ISO text."""
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in row.items()}


def _extract_bytes(table: pa.Table, path: Path) -> bytes:
    """The list shown as the file ``path`` names: .csv (UTF-8), .parquet or .arrow."""
    sink = pa.BufferOutputStream()
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sink)
    elif path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    elif path.suffix == ".arrow":
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    else:
        raise InvalidInputError(f"{path}: the list is written as .csv, .parquet or .arrow")
    return bytes(sink.getvalue().to_pybytes())


@click.group()
def viewing() -> None:
    """Register viewing (閲覧, Basic Resident Registration Act Art. 11 and 11-2).

    Only four items are ever shown (name, address, birth date, sex): to a public body
    for its statutory duties, or to a private party for a survey, a public-interest
    welfare activity or a non-profit confirmation of residence, once another operator (a
    supervisor) approved the request. STORE is the register (a SQLite file or a
    postgresql:// URI)."""


@viewing.command()
@_store
@click.option("--kind", type=click.Choice(["public", "private"]), required=True,
              help="public: a body of the state or a local government (Art. 11); private: "
                   "a person or a corporation (Art. 11-2).")
@click.option("--requester", required=True, help="The body's or the party's name.")
@click.option("--representative", help="A corporation's representative.")
@click.option("--purpose", required=True, metavar="PURPOSE",
              help="statutory_duty (public); survey, welfare or residence_check (private).")
@click.option("--summary", required=True, help="The purpose in a sentence (published).")
@click.option("--legal-basis", help="The statute of the duty (required for a public body).")
@click.option("--handling", help="How a private party keeps what it notes (required).")
@click.option("--viewer", "viewers", multiple=True, required=True, metavar="NAME",
              help="A person who will view (repeat for each).")
@click.option("--town", "towns", multiple=True, metavar="TOWN",
              help="A town (町域) asked for (repeat; none: the whole municipality).")
@click.option("--born-from", type=_day, help="Residents born on or after this date.")
@click.option("--born-to", type=_day, help="Residents born on or before this date.")
@click.option("--from", "period_from", type=_day, required=True,
              help="The first day viewings may be held.")
@click.option("--to", "period_to", type=_day, required=True,
              help="The last day viewings may be held.")
@operator_options
@json_option
def request(*, store: str, kind: str, requester: str, representative: str | None,
            purpose: str, summary: str, legal_basis: str | None, handling: str | None,
            viewers: tuple[str, ...], towns: tuple[str, ...], born_from: dt.datetime | None,
            born_to: dt.datetime | None, period_from: dt.datetime, period_to: dt.datetime,
            creds: Credentials, as_json: bool) -> None:
    """Record a request to view the register; prints its id. A purpose the law does not
    allow is refused (exit 1, audited)."""
    reg, actor, desk = _desk(store, creds)
    with reg:
        rid = desk.request(
            kind=kind, requester=requester, representative=representative, purpose=purpose,
            summary=summary, legal_basis=legal_basis, handling=handling, viewers=list(viewers),
            towns=list(towns) or None, born_from=_date(born_from), born_to=_date(born_to),
            period_from=period_from.date(), period_to=period_to.date(), actor=actor)
    emit_json({"request_id": rid, "state": "requested"}) if as_json else click.echo(
        f"recorded viewing request {rid}: a supervisor other than {creds.operator} approves it")


def _decided(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(_plain(row))
    else:
        click.echo(f"request {row['request_id']} of {row['requester']}: {row['state']}")


@viewing.command()
@_store
@click.argument("request_id")
@click.option("--note", help="A note on the decision.")
@operator_options
@json_option
def approve(*, store: str, request_id: str, note: str | None, creds: Credentials,
            as_json: bool) -> None:
    """Approve REQUEST_ID (a supervisor; never the operator who recorded it)."""
    reg, actor, desk = _desk(store, creds)
    with reg:
        row = desk.approve(request_id, actor=actor, note=note)
    _decided(row, as_json)


@viewing.command()
@_store
@click.argument("request_id")
@click.option("--reason", required=True, help="Why the request is refused.")
@operator_options
@json_option
def refuse(*, store: str, request_id: str, reason: str, creds: Credentials,
           as_json: bool) -> None:
    """Refuse REQUEST_ID, saying why (a supervisor)."""
    reg, actor, desk = _desk(store, creds)
    with reg:
        row = desk.refuse(request_id, actor=actor, reason=reason)
    _decided(row, as_json)


@viewing.command()
@_store
@click.argument("request_id")
@click.option("--viewer", "viewers", multiple=True, required=True, nargs=2,
              metavar="NAME ID_KIND",
              help="A viewer present (named in the request) and the identity document shown:"
                   " my_number_card, driver_license, passport, residence_card, "
                   "resident_register_card_photo, other_photo_id; for a public body's viewer "
                   "also staff_id or phone_inquiry. Repeat for each.")
@click.option("--town", "towns", multiple=True, metavar="TOWN",
              help="Show only these towns (within the request's).")
@click.option("--born-from", type=_day, help="Show only residents born on or after this date.")
@click.option("--born-to", type=_day, help="Show only residents born on or before this date.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Where the list shown is written (.csv UTF-8, .parquet or .arrow; mode "
                   "0600): the four items of each resident in the range, nothing else.")
@operator_options
@json_option
def record(*, store: str, request_id: str, viewers: tuple[tuple[str, str], ...],
           towns: tuple[str, ...], born_from: dt.datetime | None,
           born_to: dt.datetime | None, out_path: str, creds: Credentials,
           as_json: bool) -> None:
    """Begin a viewing for the approved REQUEST_ID now: the list is written to --out and
    the viewing recorded (end it with `jukicore viewing finish`)."""
    from jukicore._files import PRIVATE_FILE, write_atomic

    out = Path(out_path)
    if out.suffix not in (".csv", ".parquet", ".pq", ".arrow"):
        raise click.BadParameter("the list is written as .csv, .parquet or .arrow",
                                 param_hint="--out")
    if not out.parent.is_dir():  # checked first: the viewing is recorded before the write
        raise InvalidInputError(f"{out.parent} is not a directory")
    reg, actor, desk = _desk(store, creds)
    with reg:
        v = desk.record(request_id, viewers=list(viewers), towns=list(towns) or None,
                        born_from=_date(born_from), born_to=_date(born_to), actor=actor)
    write_atomic(out, _extract_bytes(v.table, out), mode=PRIVATE_FILE)
    info = {"session_id": v.session_id, "request_id": v.request_id, "records": v.records,
            "started_at": v.started_at.isoformat(), "fee_rate": v.fee_rate, "list": str(out)}
    emit_json(info) if as_json else click.echo(
        f"viewing {v.session_id} began: {v.records:,} records in {out}")


@viewing.command()
@_store
@click.argument("session_id")
@operator_options
@json_option
def finish(*, store: str, session_id: str, creds: Credentials, as_json: bool) -> None:
    """End viewing SESSION_ID now and charge its fee (per 30 minutes started)."""
    reg, actor, desk = _desk(store, creds)
    with reg:
        row = desk.finish(session_id, actor=actor)
    if as_json:
        emit_json(_plain(row))
    else:
        click.echo(f"viewing {row['session_id']} ended: {row['periods']} x {row['fee_rate']:,}"
                   f" yen = {row['fee']:,} yen")


@viewing.command("list")
@_store
@click.option("--state", type=click.Choice(["requested", "approved", "refused"]),
              help="Only the requests in this state.")
@click.option("--sessions", is_flag=True, help="List the viewings held instead.")
@operator_options
@json_option
def list_(*, store: str, state: str | None, sessions: bool, creds: Credentials,
          as_json: bool) -> None:
    """List the requests (or, --sessions, the viewings held); no resident's data."""
    reg, actor, desk = _desk(store, creds)
    with reg:
        t = desk.sessions(actor=actor) if sessions else desk.requests(actor=actor, state=state)
    rows = [_plain(r) for r in t.to_pylist()]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        if sessions:
            click.echo(f"{r['session_id']:>5}  request {r['request_id']}  {r['started_at']}"
                       f"  {r['requester']}  {r['records']} records  fee {r['fee']}")
        else:
            click.echo(f"{r['request_id']:>5}  {r['state']:<9}  {r['kind']:<7}  {r['purpose']:<15}"
                       f"  {r['requester']}  {r['period_from']}..{r['period_to']}")


@viewing.command()
@_store
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--year", type=int, required=True)
@click.option("--half", type=click.IntRange(1, 2), required=True,
              help="1: January to June; 2: July to December.")
@click.option("--today", type=_day, default=None,
              help="The day of publication (default: today); the half-year must be over.")
@operator_options
@json_option
def publish(*, store: str, out_dir: str, year: int, half: int, today: dt.datetime | None,
            creds: Credentials, as_json: bool) -> None:
    """Publish the half-year's list of viewings in OUT_DIR as CSV (UTF-8) and PDF (A4,
    IPAmj明朝): who asked, for what, when, which residents, how many records."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reg, actor, desk = _desk(store, creds)
    with reg:
        pub = desk.publish(year, half, out, actor=actor, today=_date(today))
    info = {"period": pub.period.label, "viewings": pub.table.num_rows,
            "csv": str(pub.csv), "pdf": str(pub.pdf), "csv_sha256": pub.csv_sha256,
            "pdf_sha256": pub.pdf_sha256}
    emit_json(info) if as_json else click.echo(
        f"published {pub.period.label}: {pub.table.num_rows} viewings -> {pub.csv}, {pub.pdf}")
