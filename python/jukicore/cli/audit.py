"""``jukicore audit``: verify, checkpoint, prove and show a node's audit log."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from jukicore.network.node import Node

from ._common import Credentials, emit_json, json_option, operator_options
from .audit_alerts import add_alerts_command, audit_reader
from .node import password_option, read_password
from .operator import run_as_operator

_NODE = click.argument("directory", type=click.Path(exists=True, file_okay=False,
                                                    path_type=Path))


@click.group()
def audit() -> None:
    """A node's tamper-evident audit log (docs/audit.md)."""


def _open(n: Node) -> Any:
    from jukicore.store import connect

    return connect(n.store_target())


@audit.command("verify")
@_NODE
@password_option
@operator_options
@json_option
def verify(directory: Path, node_password_file: Path | None, creds: Credentials,
           as_json: bool) -> None:
    """Recompute every entry's leaf and check the sequence, the tree state and every signed
    checkpoint (against every generation of the node's keys). Exit 1 and say where for
    every edited, deleted, inserted or reordered entry and a truncated tail.

    Run by a logged-in operator with ``node.operate`` (an admin, or the ``batch`` role);
    the run is an entry of the log it checks, unless the log is too damaged to take one."""
    from jukicore.audit import verify as run

    n = Node.open(directory)
    keys = [k.signing.public_key() for k in n.keys(read_password(node_password_file))]
    run_as_operator(n.store_target(), creds, "audit verify", damaged_log_ok=True)
    be = _open(n)
    try:
        report = run(be, node_id=n.node_id, keys=keys)
    finally:
        be.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        for p in report.problems:
            click.echo(f"TAMPERED [{p.kind}] {p.message}")
        state = "OK" if report.ok else f"FAILED ({len(report.problems)} problems)"
        click.echo(f"{n.node_id}: {state}: {report.entries} entries, tree size {report.size},"
                   f" {report.checkpoints} checkpoints (latest covers"
                   f" {report.latest_checkpoint_size}), root {report.root}")
    if not report.ok:
        sys.exit(1)


@audit.command("checkpoint")
@_NODE
@password_option
@operator_options
@json_option
def checkpoint(directory: Path, node_password_file: Path | None, creds: Credentials,
               as_json: bool) -> None:
    """Sign the log's current size and root with the node's key and store the checkpoint.
    Run by a logged-in operator with ``node.operate`` (an admin, or the ``batch`` role)."""
    from jukicore.audit import chain

    n = Node.open(directory)
    key = n.current_keys(read_password(node_password_file)).signing
    run_as_operator(n.store_target(), creds, "audit checkpoint")
    be = _open(n)
    try:
        with be.session() as s:
            cp = chain.checkpoint(s, n.node_id, key)
    finally:
        be.close()
    if as_json:
        emit_json({"number": cp.number, "size": cp.size, "root": cp.root.hex(),
                   "note": cp.note})
    else:
        click.echo(cp.note, nl=False)


@audit.command("prove")
@_NODE
@click.argument("seq", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Tree size to prove against (default: the latest checkpoint's, else the"
                   " current tree's).")
@operator_options
@json_option
def prove(directory: Path, seq: int, size: int | None, creds: Credentials,
          as_json: bool) -> None:
    """The inclusion proof of entry SEQ (leaf hash, audit path, root). Run by a logged-in
    operator with ``node.operate`` (an admin, or the ``batch`` role)."""
    from jukicore.audit import chain

    n = Node.open(directory)
    run_as_operator(n.store_target(), creds, f"audit prove {seq}")
    be = _open(n)
    try:
        with be.bulk_session(write=False) as s:
            if size is None:
                cp = chain.latest_checkpoint(s)
                size = cp.size if cp is not None and cp.size > seq else None
            proof = chain.inclusion_proof(s, seq, size)
    finally:
        be.close()
    proof["verified"] = chain.verify_inclusion(proof)
    if as_json:
        emit_json(proof)
        return
    click.echo(f"entry {proof['seq']} in the tree of {proof['size']} entries")
    click.echo(f"leaf  {proof['leaf']}")
    click.echo(f"root  {proof['root']}")
    for h in proof["proof"]:
        click.echo(f"path  {h}")


@audit.command("peer-reset")
@_NODE
@click.option("--sender", required=True, help="The municipality whose kept checkpoint goes.")
@click.option("--reason", required=True, help="Why (for example: restored from the backup"
                                              " of 2024-06-01, ticket 123).")
@operator_options
@json_option
def peer_reset(directory: Path, sender: str, reason: str, creds: Credentials,
               as_json: bool) -> None:
    """Forget the audit checkpoint kept from SENDER, after SENDER restored its store from
    a backup: its shorter log is refused as a rewrite until then. An admin's decision
    (policy.configure), audited with the reason and what was forgotten; the next
    checkpoint SENDER sends is kept as a new start."""
    from jukicore.audit import chain

    from .operator import open_store_of_any_kind

    n = Node.open(directory)
    with open_store_of_any_kind(n.store_target()) as store:
        actor = creds.login(store)
        gone = chain.reset_peer_checkpoint(store, sender, actor=actor, reason=reason)
    if as_json:
        emit_json({"sender": sender, "forgotten": gone})
    elif gone is None:
        click.echo(f"no checkpoint of {sender} was kept: nothing to forget")
    else:
        click.echo(f"forgot the checkpoint of {sender} (size {gone['size']}, root"
                   f" {gone['root']}); its next checkpoint starts anew")


def _when(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or time") from None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


@audit.command("show")
@_NODE
@click.option("--by-operator", "by_operator", help="Only entries of this operator (its id).")
@click.option("--actor", help="Only entries of this actor (its name as recorded).")
@click.option("--target", help="Only entries on this record (a resident code, a code ...).")
@click.option("--action", help="Only this action (area.verb).")
@click.option("--since", help="From this UTC date/time (ISO 8601).")
@click.option("--until", help="Before this UTC date/time (ISO 8601).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@json_option
@operator_options
def show(directory: Path, by_operator: str | None, actor: str | None, target: str | None,
         action: str | None, since: str | None, until: str | None, limit: int | None,
         as_json: bool, creds: Credentials) -> None:
    """List entries, oldest first, with filters. Needs a supervisor's or an admin's login
    (--operator / --card ...); the read is itself audited."""
    from jukicore.audit.query import entries

    n = Node.open(directory)
    asked = " ".join(f"{k}={v}" for k, v in (("operator", by_operator), ("actor", actor),
                                             ("target", target), ("action", action),
                                             ("since", since), ("until", until))
                     if v is not None)
    with audit_reader(n.store_target(), creds, f"audit show {asked}".strip()):
        pass
    be = _open(n)
    try:
        with be.session(write=False) as s:
            rows = entries(s, actor=actor, operator=by_operator, target=target, action=action,
                           since=_when(since), until=_when(until), limit=limit)
    finally:
        be.close()
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['seq']:>8} {r['at']} {r['actor']} ({r['actor_kind']}) {r['action']}"
                   f" {r['target'] or '-'}" + (f" {r['detail']}" if r["detail"] else ""))


add_alerts_command(audit)
