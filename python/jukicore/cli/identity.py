"""``jukicore identity``: agencies' identity confirmation at a prefecture or the center.

Every command logs its operator in at the node's identity store: ``query`` and ``verify``
answer an agency's request (role ``provider``) for a legal purpose, writing the
provision records; ``disclose`` shows a resident who received their data (clerks,
supervisors, admins); ``purposes`` lists and (admins) changes the legal purposes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ._common import (
    Credentials,
    _with_options,
    emit_json,
    json_option,
    operator_options,
    progress,
    quiet_option,
    resident_code_arg,
)

#: The lookup index's file in a node's directory (memory-mapped; rebuilt when unusable).
INDEX_FILE = "identity.index"

_NODE = click.argument("directory", metavar="NODE",
                       type=click.Path(exists=True, file_okay=False, path_type=Path))


def _day(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"a date is YYYY-MM-DD, got {value!r}") from None


def _code(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    return None if value is None else resident_code_arg(ctx, param, value)


def _fmt(v: Any) -> Any:
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _rows(table: Any) -> list[dict[str, Any]]:
    """Rows for output: codes as 11-digit strings, dates as ISO text."""
    out = []
    for r in table.to_pylist():
        for k in ("resident_code", "new_code"):
            if r.get(k) is not None:
                r[k] = f"{r[k]:011d}"
        out.append({k: _fmt(v) for k, v in r.items()})
    return out


@contextmanager
def _store(directory: Path) -> Iterator[Any]:
    from jukicore.identity import open_identity_store
    from jukicore.network.node import Node

    n = Node.open(directory)
    if n.role not in ("prefecture", "center"):
        from jukicore.errors import InvalidInputError

        raise InvalidInputError(f"{directory} is a {n.role} node: agencies ask a prefecture"
                                " or the center")
    with open_identity_store(n.store_target()) as st:
        st.use_index(Path(directory) / INDEX_FILE)
        yield st


@click.group()
def identity() -> None:
    """Identity confirmation for agencies, provision records, disclosure (docs/identity.md)."""


_request = [
    click.option("--agency", required=True, help="The agency asking (an id of the legal"
                 " purposes table, e.g. jps)."),
    click.option("--purpose", required=True, help="Its legal purpose (e.g."
                 " jps-pension-benefits): `jukicore identity purposes list NODE`."),
]


def _request_options(f: Any) -> Any:
    return _with_options(f, _request)


@identity.command()
@_NODE
@_request_options
@click.option("--code", callback=_code, help="Ask by resident code (11 digits).")
@click.option("--family", "family_name", help="Family name (a search by the four items).")
@click.option("--given", "given_name", help="Given name.")
@click.option("--birth", "birth_date", callback=_day, help="Date of birth, YYYY-MM-DD.")
@click.option("--sex", type=click.Choice(["1", "2", "9"]), help="1 male, 2 female, 9 other"
              " (optional in a search).")
@click.option("--address", help="Address.")
@click.option("--as-of", callback=_day, help="The record as it stood on that date (by code).")
@click.option("--since", callback=_day, help="What changed after that date (by code).")
@click.option("--embargo-until", callback=_day, help="Hide this provision from the"
              " resident's disclosure until that date (purposes with an embargo only).")
@operator_options
@json_option
def query(directory: Path, agency: str, purpose: str, code: int | None,
          family_name: str | None, given_name: str | None, birth_date: dt.date | None,
          sex: str | None, address: str | None, as_of: dt.date | None,
          since: dt.date | None, embargo_until: dt.date | None, creds: Credentials,
          as_json: bool) -> None:
    """Answer an agency's request: by --code, or by --family, --given, --birth, --address
    (and --sex). Only the items its purpose allows; one provision record per answer."""
    from jukicore.identity.provide import FourItems

    four_given = [v is not None for v in (family_name, given_name, birth_date, address, sex)]
    if code is not None and any(four_given):
        raise click.UsageError("ask by --code or by the four items, not both")
    four = None
    if code is None:
        if not all(four_given[:4]):
            raise click.UsageError("give --code, or --family, --given, --birth and --address")
        assert family_name and given_name and birth_date and address
        four = FourItems(family_name, given_name, birth_date, address,
                         None if sex is None else int(sex))
        if since is not None or as_of is not None:
            raise click.UsageError("--since and --as-of ask by --code")
    if since is not None and (as_of is not None or embargo_until is not None):
        raise click.UsageError("--since goes alone")
    with _store(directory) as st:
        actor = creds.login(st)
        if since is not None:
            table = st.changes_since(agency=agency, purpose=purpose, actor=actor, code=code,
                                     since=since)
        else:
            table = st.confirm(agency=agency, purpose=purpose, actor=actor, code=code,
                               four=four, as_of=as_of, embargo_until=embargo_until)
    rows = _rows(table)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo("  ".join(f"{k}={v}" for k, v in r.items() if v is not None))


@identity.command()
@_NODE
@_request_options
@click.argument("source", metavar="IN", type=click.Path(exists=True, dir_okay=False,
                                                        path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where the answers go (Parquet if it ends in .parquet, else Arrow IPC).")
@click.option("--since", callback=_day, help="The agency's date: unchanged / changed since.")
@operator_options
@json_option
@quiet_option
def verify(directory: Path, agency: str, purpose: str, source: Path, out: Path,
           since: dt.date | None, creds: Credentials, as_json: bool, quiet: bool) -> None:
    """Verify an agency's table IN (Parquet or Arrow IPC): by resident_code, by the four
    items (family_name, given_name, birth_date, address, sex), or both; each row answered,
    each answer a provision record. Exit 1 if the request is refused."""
    from jukicore.identity.verify import read_table, write_table

    table = read_table(source)
    with _store(directory) as st:
        actor = creds.login(st)
        with progress(table.num_rows, "verify", quiet) as advance:
            answers = st.verify(table, agency=agency, purpose=purpose, actor=actor,
                                since=since, progress=lambda done, total: advance(done))
    write_table(answers, out)
    counts: dict[str, int] = {}
    for a in answers.column("answer").to_pylist():
        counts[a] = counts.get(a, 0) + 1
    if as_json:
        emit_json({"rows": answers.num_rows, "answers": counts, "out": str(out)})
    else:
        click.echo(f"{answers.num_rows} rows answered: "
                   + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" -> {out}")


@identity.command()
@_NODE
@click.argument("resident_code", callback=resident_code_arg)
@operator_options
@json_option
def disclose(directory: Path, resident_code: int, creds: Credentials, as_json: bool) -> None:
    """Show a resident (RESIDENT_CODE) every provision of their data: who, when, why, which
    items (those under an embargo from its date on)."""
    with _store(directory) as st:
        actor = creds.login(st)
        table = st.disclose(resident_code, actor=actor)
    rows = _rows(table)
    for r in rows:
        r["at"] = r["at"].isoformat() if isinstance(r["at"], dt.datetime) else r["at"]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no provision of this resident's data is on record")
    for r in rows:
        click.echo(f"{r['at']}  {r['agency']} ({r['agency_name']})  {r['purpose']}:"
                   f" {r['legal_basis']}  items: {r['items'] or '-'}  [{r['answer']}]")


@identity.command("index")
@_NODE
@operator_options
@json_option
def index_(directory: Path, creds: Credentials, as_json: bool) -> None:
    """Bring the node's lookup index up to its store and write its file (NODE/identity.index):
    the nightly job after `sync apply`, so that the first request of the day finds it
    current. Run by an operator with ``node.operate``."""
    from jukicore.access.actors import OPERATE

    from .operator import login_and_record

    with _store(directory) as st:
        login_and_record(st, creds, OPERATE, "node.operate", "identity index")
        mark = st.save_index()
        size = (Path(directory) / INDEX_FILE).stat().st_size
    if as_json:
        emit_json({"mark": mark, "bytes": size})
    else:
        click.echo(f"index current up to packet number {mark}: {size} bytes")


@identity.group()
def purposes() -> None:
    """The legal purposes (versioned; changed by admins only, audited)."""


@purposes.command("list")
@_NODE
@operator_options
@json_option
def list_(directory: Path, creds: Credentials, as_json: bool) -> None:
    """The legal purposes in force at the node."""
    with _store(directory) as st:
        creds.login(st)
        found = st.purposes()
    if as_json:
        emit_json([p.as_dict() for p in found])
        return
    for p in found:
        click.echo(f"{p.purpose} v{p.version} ({p.agency}): {', '.join(p.items)}; search"
                   f" {p.search}; {p.legal_basis}")


@purposes.command("set")
@_NODE
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_options
@json_option
def set_(directory: Path, file: Path, creds: Credentials, as_json: bool) -> None:
    """Put the purpose in FILE (JSON, the fields of `purposes list --json`) in force as
    its next version."""
    from jukicore._files import read_regular
    from jukicore.errors import InvalidInputError
    from jukicore.identity.purposes import Purpose

    try:
        raw = json.loads(read_regular(file, max_bytes=1 << 20))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{file}: not JSON ({exc})") from None
    purpose = Purpose.from_dict(raw)
    with _store(directory) as st:
        actor = creds.login(st)
        done = st.set_purpose(purpose, actor=actor)
    if as_json:
        emit_json(done.as_dict())
    else:
        click.echo(f"{done.purpose} v{done.version} in force")


@purposes.command("close")
@_NODE
@click.argument("purpose")
@operator_options
def close(directory: Path, purpose: str, creds: Credentials) -> None:
    """Take PURPOSE out of force (the law no longer lists it)."""
    with _store(directory) as st:
        actor = creds.login(st)
        st.close_purpose(purpose, actor=actor)
    click.echo(f"{purpose} taken out of force")

