"""``jukicore agency``: an agency's side of identity confirmation over the network."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ._common import emit_json, json_option, juki_errors
from .node import password_option, read_password


@click.group()
def agency() -> None:
    """An agency's client identity, its queries and bulk verifications over the network."""


F = TypeVar("F", bound=Callable[..., Any])


def _identity(directory: Path, password_file: Path | None) -> Any:
    from jukicore.network.agency import AgencyIdentity

    return AgencyIdentity.open(directory, read_password(password_file))


_server = [
    click.option("--server-record", required=True,
                 type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="The node's public record (its `node public-key` file)."),
    click.option("--url", required=True, help="Where the node listens: https://HOST:PORT."),
    click.option("--purpose", required=True,
                 help="The legal purpose of this request (every request states one)."),
]


def server_options(f: F) -> F:
    for opt in reversed(_server):
        f = opt(f)
    return f


@agency.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--agency", "agency_id", required=True,
              help="The agency's id in the legal purposes table (e.g. jps).")
@password_option
@juki_errors
def init(directory: Path, agency_id: str, node_password_file: Path | None) -> None:
    """Make the agency's client identity: an Ed25519 key (wrapped under the password from
    --node-password-file or $JUKICORE_NODE_PASSWORD) and its certificate, certificate.pem, which
    the node's operator registers with ``node trust-agency``."""
    from jukicore.network.agency import AgencyIdentity
    from jukicore.network.node import _password

    pw = read_password(node_password_file)
    ident = AgencyIdentity.create(directory, agency_id, _password(pw))
    click.echo(f"{ident.agency}: {ident.path / 'certificate.pem'}")


@agency.command("confirm")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@server_options
@click.option("--code", help="A resident code (11 digits).")
@click.option("--four", "four_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON file with family_name, given_name, birth_date, address (and sex).")
@click.option("--as-of", help="The record as it was on this date (with --code).")
@click.option("--request-id", help="The agency's id for this request.")
@password_option
@json_option
@juki_errors
def confirm(directory: Path, server_record: Path, url: str, purpose: str, code: str | None,
            four_file: Path | None, as_of: str | None, request_id: str | None,
            node_password_file: Path | None, as_json: bool) -> None:
    """Ask the node for one person's identity confirmation info."""
    from jukicore._files import read_regular
    from jukicore.network.client import AgencyClient

    if (code is None) == (four_file is None):
        raise click.UsageError("give --code or --four")
    four = None
    if four_file is not None:
        try:
            four = json.loads(read_regular(four_file, max_bytes=1 << 16))
        except (ValueError, RecursionError) as e:
            raise click.BadParameter(f"{four_file}: not JSON: {e}") from None
    with AgencyClient(_identity(directory, node_password_file), server_record, url) as c:
        answer = c.confirm(purpose, code=code, four=four, as_of=as_of, request_id=request_id)
    if as_json:
        emit_json(answer)
        return
    for row in answer["rows"]:
        click.echo(" ".join(f"{k}={v}" for k, v in row.items() if v is not None))


@agency.command("verify")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@server_options
@click.option("--in", "source", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The agency's table: Parquet or Arrow IPC.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The answers: Parquet if it ends in .parquet, else Arrow IPC.")
@click.option("--since", help="The agency's date: changes after it are reported.")
@click.option("--request-id", help="The agency's id for this request.")
@password_option
@json_option
@juki_errors
def verify(directory: Path, server_record: Path, url: str, purpose: str, source: Path,
           out: Path, since: str | None, request_id: str | None,
           node_password_file: Path | None, as_json: bool) -> None:
    """Verify a whole table of the agency's records against the node's."""
    from jukicore.identity.verify import read_table, write_table
    from jukicore.network.client import AgencyClient

    table = read_table(source)
    with AgencyClient(_identity(directory, node_password_file), server_record, url,
                      timeout=3600.0) as c:
        answer = c.verify(table, purpose, since=since, request_id=request_id)
    write_table(answer, out)
    counts = {v["values"]: v["counts"]
              for v in answer.column("answer").value_counts().to_pylist()}
    if as_json:
        emit_json({"rows": answer.num_rows, "answers": counts, "out": str(out)})
    else:
        click.echo(f"{answer.num_rows} rows: {counts} -> {out}")
