"""``jukicore sync``: export, apply and follow the nightly packets."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jukicore.errors import JukiError
from jukicore.network.node import Node
from jukicore.network.packet import MAX_PACKET_BYTES

from ._common import (
    Credentials,
    emit_json,
    json_option,
    juki_errors,
    operator_options,
    progress,
    quiet_option,
)
from .node import password_option, read_password
from .operator import run_as_operator


@click.group()
def sync() -> None:
    """The nightly synchronization between municipalities, prefectures and the center."""


@sync.command("export")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "recipients", multiple=True,
              help="Recipient node (repeatable). Default: the municipality's prefecture and "
                   "the center.")
@password_option
@operator_options
@json_option
@juki_errors
def export(directory: Path, recipients: tuple[str, ...], node_password_file: Path | None,
           creds: Credentials, as_json: bool) -> None:
    """Pack the changes each recipient has not acknowledged into the node's outbox.

    Run by a logged-in operator with ``node.operate`` (an admin, or the ``batch`` role)."""
    from jukicore.network.crypto import check_node_id
    from jukicore.network.node import check_relation
    from jukicore.network.sync import default_recipients, export_changes

    n = Node.open(directory)
    pw = read_password(node_password_file)
    if not recipients:
        recipients = default_recipients(n.node_id)
    for r in recipients:  # bad input is refused before anyone logs in: nothing written
        check_node_id(r)
        check_relation("identity-changes", n.node_id, r)
    run_as_operator(n.store_target(), creds, f"sync export --to {','.join(recipients)}")
    out: dict[str, str | None] = {}
    for r in recipients:
        written = export_changes(n, r, password=pw)
        out[r] = None if written is None else str(written)
    if as_json:
        emit_json(out)
        return
    for r, where in out.items():
        click.echo(f"{r}: {where or 'nothing to send'}")


@sync.command("apply")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("packets", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--max-packet-bytes", type=click.IntRange(min=1), default=MAX_PACKET_BYTES,
              show_default=True, help="Refuse packet files larger than this.")
@password_option
@operator_options
@json_option
@quiet_option
@juki_errors
def apply(directory: Path, packets: tuple[Path, ...], max_packet_bytes: int,
          node_password_file: Path | None, creds: Credentials, as_json: bool, quiet: bool) -> None:
    """Verify and apply PACKETS (default: every packet in the node's inbox, in order).

    A packet applied before is reported and skipped (its acknowledgement is written
    again). A refused packet changes nothing and makes the exit code 1; the others
    are still applied. An inbox entry that is not a regular file (a directory, a
    dangling link, a FIFO, a device), or larger than its framing or --max-packet-bytes,
    is refused without being read.

    Each packet of the inbox applied (or found applied before) is moved into the node's
    archive/YYYY-MM-DD/ folder; refused ones stay in the inbox. Packets given outside
    the inbox stay where they are.

    Run by a logged-in operator with ``node.operate`` (an admin, or the ``batch`` role).
    """
    from jukicore.network.sync import apply_packets, inbox_packets

    n = Node.open(directory)
    pw = read_password(node_password_file)
    todo = list(packets) or inbox_packets(n)
    run_as_operator(n.store_target(), creds,
                    f"sync apply ({len(todo)} packets{', from the inbox' if not packets else ''})")
    # (the packets among them that lie in the inbox are archived once applied)
    runs = apply_packets(n, todo, password=pw, max_bytes=max_packet_bytes, archive=True)
    results, failed = [], 0
    with progress(len(todo), "applying", quiet) as advance:
        # raises if our keys don't open
        for p, outcome in runs:
            if isinstance(outcome, JukiError):
                failed += 1
                results.append({"packet": str(p), "status": "refused",
                                "error": type(outcome).__name__, "reason": str(outcome)})
            else:
                failed += outcome.archive_error is not None
                results.append(outcome.as_dict())
            advance(1)
    if as_json:
        emit_json({"packets": results, "refused": sum(r["status"] == "refused"
                                                      for r in results),
                   "archived": sum(r.get("archived") is not None for r in results)})
    else:
        for r in results:
            extra = r.get("reason") or ", ".join(
                f"{k} {v}" for k, v in r.items() if k in ("applied", "skipped", "acked_seq"))
            where = r.get("archive_error") or (
                f"archived to {r['archived']}" if r.get("archived") else "")
            click.echo(f"{Path(r['packet']).name}: {r['status']}"
                       + (f" ({extra})" if extra else "") + (f"; {where}" if where else ""))
    sys.exit(1 if failed else 0)


@sync.command("status")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@operator_options
@json_option
@juki_errors
def status(directory: Path, creds: Credentials, as_json: bool) -> None:
    """What was sent and acknowledged (municipality) or applied (prefecture, center).

    Run by a logged-in operator with ``node.operate`` (an admin, or the ``batch`` role)."""
    from jukicore.network.sync import sync_status

    node = Node.open(directory)
    run_as_operator(node.store_target(), creds, "sync status")
    info = sync_status(node)
    if as_json:
        emit_json(info)
        return
    for k, v in info.items():
        click.echo(f"{k}: {v}")


@sync.command("quarantine")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sender", default=None, help="Only the entries of this municipality.")
@operator_options
@json_option
@juki_errors
def quarantine(directory: Path, sender: str | None, creds: Credentials,
               as_json: bool) -> None:
    """Entries a prefecture or the center kept out of its current info, for an operator to
    follow up: quarantined (they break a rule of who holds a record) and rejected (a value
    fails the validation), each with its problem (see docs/sync.md).

    Read by a logged-in operator who may review them (``identity.review``: supervisors and
    admins); the read is audited."""
    from jukicore.identity import open_identity_store

    node = Node.open(directory)
    if node.role == "municipality":
        raise click.UsageError("a municipality keeps no quarantine: give a prefecture or the "
                               "center")
    with open_identity_store(node.store_target()) as store:
        actor = creds.login(store)
        rows = store.quarantined(sender, actor=actor).to_pylist()
        rejected = store.rejected(sender, actor=actor).to_pylist()
    for r in rows:
        for k in ("resident_code", "previous_resident_code"):
            if r[k] is not None:
                r[k] = f"{r[k]:011d}"
    if as_json:
        emit_json({"node_id": node.node_id, "quarantined": rows, "rejected": rejected})
        return
    for r in rows:
        click.echo(f"{r['lg_code']} #{r['seq']} {r['resident_code']} {r['change_reason']} "
                   f"{r['change_date']}: {r['problem']}")
    for r in rejected:
        click.echo(f"{r['lg_code']} #{r['seq']} rejected: {r['problem']}: {r['entry']}")
    click.echo(f"{len(rows)} quarantined, {len(rejected)} rejected", err=True)


retry_option = click.option(
    "--retry-for", default=600.0, show_default=True, type=click.FloatRange(min=0),
    help="Seconds to keep trying a recipient that cannot be reached.")


@sync.command("push")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "recipients", multiple=True,
              help="Recipient node (repeatable). Default: the municipality's prefecture and "
                   "the center.")
@retry_option
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds to wait for each answer.")
@password_option
@operator_options
@json_option
@juki_errors
def push(directory: Path, recipients: tuple[str, ...], retry_for: float, timeout: float,
         node_password_file: Path | None, creds: Credentials, as_json: bool) -> None:
    """Send what each recipient has not acknowledged over the network and record their
    acknowledgements (the recipients' addresses: ``node peer``).

    A recipient that cannot be reached is tried again for --retry-for seconds, then
    reported (exit code 1): nothing is lost, the next push sends everything it has not
    acknowledged, in order, and it applies each entry once. Run by a logged-in operator
    with ``node.operate`` (an admin, or the ``batch`` role)."""
    from jukicore.network.client import NodeClient
    from jukicore.network.crypto import check_node_id
    from jukicore.network.node import check_relation
    from jukicore.network.push import push_changes
    from jukicore.network.sync import default_recipients

    n = Node.open(directory)
    pw = read_password(node_password_file)
    recipients = recipients or default_recipients(n.node_id)
    for r in recipients:  # bad input is refused before anyone logs in: nothing written
        check_node_id(r)
        check_relation("identity-changes", n.node_id, r)
    run_as_operator(n.store_target(), creds, f"sync push --to {','.join(recipients)}")
    with NodeClient(n, pw, retry_for=retry_for, timeout=timeout) as client:
        out = push_changes(n, client, recipients=recipients, password=pw)
    if as_json:
        emit_json(out)
    else:
        for r, res in out.items():
            click.echo(f"{r}: {res['status']}" + (f" ({res['rows']} entries, acknowledged"
                                                  f" up to {res.get('acked_seq')})"
                                                  if res["status"] == "sent" else "")
                       + (f": {res['error']}" if "error" in res else ""))
    sys.exit(1 if any(r["status"] == "failed" for r in out.values()) else 0)


@sync.command("send")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("packets", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@retry_option
@password_option
@operator_options
@json_option
@juki_errors
def send(directory: Path, packets: tuple[Path, ...], retry_for: float,
         node_password_file: Path | None, creds: Credentials, as_json: bool) -> None:
    """Send packets of the node's outbox (code blocks, acknowledgements) to the recipients
    they name, over the network, and take their replies.

    Run by a logged-in operator with ``node.operate`` (an admin, or the ``batch`` role)."""
    from jukicore.network.client import NodeClient
    from jukicore.network.push import send_packet_file

    n = Node.open(directory)
    pw = read_password(node_password_file)
    run_as_operator(n.store_target(), creds, f"sync send ({len(packets)} packets)")
    results = []
    with NodeClient(n, pw, retry_for=retry_for) as client:
        for p in packets:
            results.append({"packet": str(p), **send_packet_file(n, client, p, password=pw)})
    if as_json:
        emit_json(results)
    else:
        for r in results:
            click.echo(f"{Path(r['packet']).name}: sent to {r['recipient']}")
