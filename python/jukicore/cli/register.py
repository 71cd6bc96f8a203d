"""``jukicore register``: the municipal resident register on SQLite or PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

from jukicore.errors import InvalidInputError
from jukicore.register import create_register, open_register
from jukicore.register._schema import RESIDENT_SCHEMA
from jukicore.register.events import EVENT_SCHEMA
from jukicore.register.notifications import fmt_code

from ._common import (
    Credentials,
    FirstAdmin,
    admin_options,
    emit_json,
    json_option,
    juki_errors,
    lg_code_arg,
    operator_options,
    progress,
    quiet_option,
    resident_code_arg,
)

__all__ = ["register"]

_store = click.argument("store", metavar="STORE")
_operator = operator_options


def _read_table(path: str, schema: pa.Schema | None = None) -> pa.Table:
    """A Parquet, Arrow IPC or CSV file as a table; CSV text columns of ``schema`` are
    read as text (a postal code ``0600000`` keeps its leading zero)."""
    p = Path(path)
    try:
        if p.suffix in (".parquet", ".pq"):
            return pq.read_table(p)
        if p.suffix in (".arrow", ".feather", ".ipc"):
            with pa.memory_map(str(p)) as src:
                return pa.ipc.open_file(src).read_all()
        if p.suffix == ".csv":
            import pyarrow.csv as pacsv

            text = {f.name: pa.string() for f in schema or () if pa.types.is_string(f.type)}
            return pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(column_types=text))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read the table: {exc}") from exc
    raise InvalidInputError(f"{path}: use .parquet, .arrow or .csv")


def _write_table(table: pa.Table, path: Path) -> None:
    if path.suffix == ".arrow":
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    else:
        pq.write_table(table, path)


@click.group()
def register() -> None:
    """The municipal resident register (住民基本台帳).

    STORE is a SQLite file path (the embedded default) or a postgresql:// URI.
    """


@register.command()
@_store
@click.option("--lg-code", required=True, callback=lg_code_arg,
              help="6-digit local government code (with its check digit); it must be the "
                   "code of --prefecture and --municipality (Japan Post's KEN_ALL).")
@click.option("--prefecture", required=True)
@click.option("--municipality", required=True)
@admin_options
@json_option
@juki_errors
def init(*, store: str, lg_code: str, prefecture: str, municipality: str,
         admin: FirstAdmin | None, as_json: bool) -> None:
    """Create an empty register in STORE, with its first admin (--admin-id, --admin-name,
    the password from --admin-password-file or $JUKICORE_ADMIN_PASSWORD, the card written
    to --admin-card, its PIN from --admin-card-pin-file or $JUKICORE_ADMIN_CARD_PIN)."""
    if admin is None:
        raise InvalidInputError("a new register needs its first admin: --admin-id (or "
                                "$JUKICORE_ADMIN_ID) with --admin-name and --admin-card")
    with create_register(store, lg_code=lg_code, prefecture=prefecture,
                         municipality=municipality, actor=admin.actor(lg_code)) as reg:
        admin.create(reg)
        info = {"store": reg.target, "lg_code": reg.lg_code, "schema_version": reg.schema_version,
                "admin": admin.id, "admin_card": admin.card}
    emit_json(info) if as_json else click.echo(f"created register {lg_code} in {store}")


@register.command()
@_store
@click.argument("residents", type=click.Path(exists=True, dir_okay=False))
@click.option("--households", type=click.Path(exists=True, dir_okay=False))
@click.option("--code-block", type=click.Path(dir_okay=False),
              help="A saved jukicore.codes CodeBlock to import into the code pool first. "
                   "Its codes move into the register: the file is left empty (a run "
                   "interrupted meanwhile is completed by the next with the same file).")
@_operator
@json_option
@quiet_option
@juki_errors
def load(*, store: str, residents: str, households: str | None, code_block: str | None,
         creds: Credentials, as_json: bool, quiet: bool) -> None:
    """Bulk-load RESIDENTS (Parquet/Arrow/CSV) into STORE.

    Every value is validated first; one bad row refuses the whole load (exit 1). A load
    of people already in the register (by resident code when given, else by name, date
    of birth, sex and address) is refused: loading the same file twice registers no one
    twice. A refused load changes nothing."""
    with open_register(store) as reg:
        actor = creds.login(reg)
        if code_block:  # handed over first: the file must never feed a second register
            reg.import_code_block_file(code_block, actor=actor)
        res = _read_table(residents, RESIDENT_SCHEMA)
        hh = _read_table(households, RESIDENT_SCHEMA) if households else None
        with progress(res.num_rows, "loading", quiet) as advance:
            report = reg.load(res, hh, actor=actor, progress=advance)
    out = {"residents": report.residents, "households": report.households}
    emit_json(out) if as_json else click.echo(
        f"loaded {report.residents:,} residents in {report.households:,} households")


@register.command()
@_store
@click.argument("events", type=click.Path(exists=True, dir_okay=False))
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The processing date (default: today).")
@click.option("--rejected", "rejected_path", type=click.Path(dir_okay=False),
              help="Write the rejected rows to this Parquet file.")
@click.option("--allow-rejections", is_flag=True,
              help="Exit 0 even when some rows are rejected (the valid rows are applied "
                   "either way).")
@_operator
@json_option
@quiet_option
@juki_errors
def apply(*, store: str, events: str, today: dt.datetime | None, rejected_path: str | None,
          allow_rejections: bool, creds: Credentials, as_json: bool, quiet: bool) -> None:
    """Apply a table of notifications (届出) from EVENTS in one transaction.

    Valid rows are applied, rejected rows change nothing and are listed. Exit status:
    0 when every row was applied (or was a duplicate), 1 when any row was rejected
    (unless --allow-rejections)."""
    with open_register(store) as reg:
        actor = creds.login(reg)
        table = _read_table(events, EVENT_SCHEMA)
        with progress(table.num_rows, "applying", quiet) as advance:
            report = reg.apply(table, actor=actor, today=today.date() if today else None,
                               progress=advance)
    if rejected_path:
        pq.write_table(report.rejected_table(), rejected_path)
    if as_json:
        codes = [fmt_code(c) for c in report.resident_codes.to_pylist()]
        emit_json({**report.summary(), "resident_codes": codes,
                   "rejected_rows": [r.__dict__ for r in report.rejected]})
    else:
        s = report.summary()
        click.echo(f"applied {s['applied']:,}, duplicates {s['duplicates']:,}, "
                   f"rejected {s['rejected']:,}")
        for r in report.rejected[:20]:
            click.echo(f"  row {r.row} ({r.notification_id}, {r.kind}): {r.error}: {r.reason}")
        if len(report.rejected) > 20:
            click.echo(f"  (and {len(report.rejected) - 20} more rejected rows)")
    if report.rejected and not allow_rejections:
        sys.exit(1)


@register.command()
@_store
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["parquet", "arrow"]), default="parquet",
              show_default=True)
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Also write the residents as of this date.")
@_operator
@json_option
@juki_errors
def export(*, store: str, out_dir: str, fmt: str, as_of: dt.datetime | None,
           creds: Credentials, as_json: bool) -> None:
    """Export the register (records incl. 除票, households, history) to OUT_DIR."""
    out = Path(out_dir)
    with open_register(store) as reg:
        actor = creds.login(reg)
        out.mkdir(parents=True, exist_ok=True)
        tables = reg.export(actor=actor)
        if as_of is not None:
            tables[f"residents_as_of_{as_of.date()}"] = reg.as_of(as_of.date(), actor=actor)
    written: dict[str, Any] = {}
    for name, table in tables.items():
        path = out / f"{name}.{fmt}"
        _write_table(table, path)
        written[name] = {"path": str(path), "rows": table.num_rows}
    if as_json:
        emit_json(written)
    else:
        for name, w in written.items():
            click.echo(f"{name}: {w['rows']:,} rows -> {w['path']}")


@register.command()
@_store
@click.argument("resident_code", callback=resident_code_arg)
@_operator
@json_option
@juki_errors
def history(*, store: str, resident_code: int, creds: Credentials, as_json: bool) -> None:
    """Show every recorded change (付随情報) of one resident (RESIDENT_CODE: 11 digits)."""
    with open_register(store) as reg:
        actor = creds.login(reg)
        rows = reg.history(resident_code, actor=actor).to_pylist()
    if as_json:
        for r in rows:  # codes are zero-padded digit strings in every output
            r["resident_code"] = fmt_code(r["resident_code"])
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['event_date']}  {r['reason']:<18} {r['item']:<16} "
                   f"{r['old_value']!s} -> {r['new_value']!s}  ({r['notification_id']})")
