"""``jukicore node``: create nodes, exchange public keys, rotate keys."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from jukicore._files import read_regular, write_atomic
from jukicore.errors import InvalidInputError
from jukicore.network.node import PASSWORD_ENV, Node, create_node, role_of

from ._common import (
    Credentials,
    FirstAdmin,
    admin_options,
    emit_json,
    json_option,
    juki_errors,
    operator_options,
)
from .card import PIN_KEY_ENV

password_option = click.option(
    "--node-password-file", "node_password_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"File holding the password of the node's private keys (else ${PASSWORD_ENV}, "
         "else a prompt on a terminal).")


def read_password(password_file: Path | None) -> str | None:
    """The keys' password: a file, the environment, or a prompt on a terminal."""
    if password_file is not None:
        raw = read_regular(password_file, max_bytes=1 << 16)
        try:
            return raw.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError:
            raise InvalidInputError(f"{password_file}: the password file is not UTF-8"
                                    ) from None
    if os.environ.get(PASSWORD_ENV):
        return None  # the node layer reads the environment itself
    if sys.stdin.isatty():
        return str(click.prompt("password of the node's private keys", hide_input=True))
    raise click.UsageError(f"no password: use --node-password-file or set {PASSWORD_ENV}")


@click.group()
def node() -> None:
    """Nodes: a municipality's communication server, a prefecture, the center."""


@node.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--id", "node_id", required=True,
              help="A municipality's or prefecture's 6-digit local government code, or 'center'.")
@click.option("--store", help="SQLite file inside the node (default store.sqlite) or a "
                              "postgresql:// URI.")
@click.option("--prefecture", help="Prefecture name (a municipality's register).")
@click.option("--municipality", help="Municipality name (a municipality's register).")
@password_option
@admin_options
@json_option
@juki_errors
def init(directory: Path, node_id: str, store: str | None, prefecture: str | None,
         municipality: str | None, node_password_file: Path | None, admin: FirstAdmin | None,
         as_json: bool) -> None:
    """Create a node in DIRECTORY: keys, an empty trust store, and its store, with the
    store's first admin when --admin-id (or $JUKICORE_ADMIN_ID) is given (else later:
    ``jukicore operator bootstrap``)."""
    if role_of(node_id) == "municipality" and not (prefecture and municipality):
        raise click.UsageError("a municipality needs --prefecture and --municipality")
    n = create_node(directory, node_id, store=store, password=read_password(node_password_file),
                    prefecture=prefecture, municipality=municipality)
    if admin is not None:
        from .operator import open_store_of_any_kind

        with open_store_of_any_kind(n.store_target()) as st:
            admin.create(st)
    _show(n, as_json)


@node.command("show")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
@juki_errors
def show(directory: Path, as_json: bool) -> None:
    """Describe the node in DIRECTORY."""
    _show(Node.open(directory), as_json)


@node.command("public-key")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the public record here (default: standard output).")
@password_option
@juki_errors
def public_key(directory: Path, out: Path | None, node_password_file: Path | None) -> None:
    """Print the node's current public keys, for its peers' ``node trust``."""
    record = Node.open(directory).public_record(read_password(node_password_file))
    text = json.dumps(record, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        write_atomic(out, text.encode())


@node.command("trust")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("record", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_options
@json_option
@juki_errors
def trust(directory: Path, record: Path, creds: Credentials, as_json: bool) -> None:
    """Trust a peer's public keys (a file written by its ``node public-key``).

    A newer record of a known peer is a key rotation: its old keys keep
    verifying packets made while they were current. Done by a logged-in operator with
    ``node.operate`` (an admin, or the ``batch`` role), audited with the peer and its key.
    """
    from .operator import run_as_operator

    n = Node.open(directory)
    try:
        doc: Any = json.loads(read_regular(record, max_bytes=1 << 20))
    except (ValueError, RecursionError) as exc:  # not JSON, or not UTF-8
        raise click.BadParameter(f"{record} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{record} is not a node's public record (not an object)")
    run_as_operator(n.store_target(), creds,
                    f"node trust {str(doc.get('node_id'))[:40]!r} (signing key "
                    f"{str(doc.get('signing_key_id'))[:80]!r})")
    with n.lock("trust"):
        n.clean_temps()
        store = n.trust()
        key = store.add_record(doc)
        n.save_trust(store)
    info = {"node_id": doc.get("node_id"), "role": doc.get("role"),
            "signing_key_id": key.signing_key_id}
    if as_json:
        emit_json(info)
    else:
        click.echo(f"trusting {info['role']} {info['node_id']} (key {key.signing_key_id})")


@node.command("rotate")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@password_option
@operator_options
@juki_errors
def rotate(directory: Path, node_password_file: Path | None, creds: Credentials) -> None:
    """Start a new key generation (hand the new public key to every peer). Done by a
    logged-in operator with ``node.operate`` (an admin, or the ``batch`` role)."""
    from .operator import run_as_operator

    n = Node.open(directory)
    pw = read_password(node_password_file)
    run_as_operator(n.store_target(), creds, "node rotate")
    keys = n.rotate(pw)
    click.echo(f"new signing key {keys.signing_key_id}; run 'jukicore node public-key' "
               "and have every peer trust it")


def _show(n: Node, as_json: bool) -> None:
    info = n.info()
    if as_json:
        emit_json(info)
        return
    for k, v in info.items():
        click.echo(f"{k}: {v}")


@node.command("backup")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@operator_options
@json_option
@juki_errors
def backup(directory: Path, out: Path, creds: Credentials, as_json: bool) -> None:
    """Back up the node in DIRECTORY into the archive OUT, while the node keeps working.

    The archive (tar) holds the store (SQLite: an online copy; PostgreSQL: pg_dump), the
    node's files (keys stay encrypted) and a manifest with every member's SHA-256. Done
    by a logged-in operator with ``node.operate`` (an admin, or the ``batch`` role); the
    backup's entry is in the archive too.
    """
    from jukicore.store.backup import backup_node

    from .operator import run_as_operator

    run_as_operator(Node.open(directory).store_target(), creds, f"node backup to {out}")
    summary = backup_node(directory, out)
    if as_json:
        emit_json(summary)
        return
    st = summary["store"]
    click.echo(f"backed up node {summary['node_id']} ({st['dialect']} {st['kind']} store, "
               f"schema v{st['schema_version']}, {summary['members']} members, "
               f"{summary['bytes']} bytes) into {summary['archive']} in "
               f"{summary['seconds']} s")
    click.echo(f"content digest: {st['content_digest']}")
    for name in summary["left_out"]:
        click.echo(f"left out (a link, a special file or an odd name): {name}", err=True)


@node.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--store", "store", help="Where the store goes: a SQLite path (relative to "
              "the node) or the postgresql:// URI of an existing empty database; default: "
              "where it was.")
@click.option("--force", is_flag=True, help="Replace an existing node (of the same id), "
              "SQLite file or non-empty database.")
@operator_options
@json_option
@juki_errors
def restore(archive: Path, directory: Path, store: str | None, force: bool,
            creds: Credentials, as_json: bool) -> None:
    """Restore a node from ARCHIVE (written by ``node backup``) into DIRECTORY.

    The whole archive is checked first; nothing changes if it is damaged or foreign.
    The restored store's content digest is checked against the one at backup time. Then
    the operator logs in at the restored store (its accounts as backed up) and needs
    ``node.operate`` (an admin, or the ``batch`` role) before the node takes its place;
    a refusal changes nothing. (A non-empty PostgreSQL target, replaced in place with
    --force, is where the operator logs in first.) See docs/backup.md for the
    re-synchronization with the node's peers.
    """
    from jukicore.store.backup import restore_node

    from .operator import run_as_operator

    def authorize(target: str) -> None:
        run_as_operator(target, creds, f"node restore from {archive} into {directory}")

    summary = restore_node(archive, directory, store=store, force=force, authorize=authorize)
    if as_json:
        emit_json(summary)
        return
    st = summary["store"]
    click.echo(f"restored node {summary['node_id']} from the backup of "
               f"{summary['backup_created_at']} into {summary['node']} "
               f"({st['dialect']} store at {st['target']}) in {summary['seconds']} s")
    if st["digest_verified"]:
        click.echo(f"content digest verified: {st['content_digest']}")
    else:
        click.echo(f"store migrated from schema v{st['schema_version']} to "
                   f"v{st['migrated_to']}")


@node.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (mutual TLS 1.3). The dedicated line's address in"
                   " production; loopback for a test.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="Port for the services (0: any free port, logged at the start).")
@click.option("--ops-port", type=click.IntRange(0, 65535), default=None,
              help="Port for /health and /metrics (Prometheus), plain HTTP on 127.0.0.1 only."
                   " Default: none.")
@click.option("--max-concurrency", default=256, show_default=True,
              type=click.IntRange(min=1),
              help="Connections and requests at once; more are answered 503 at once.")
@click.option("--body-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0.1), help="Seconds a request body may take to arrive.")
@click.option("--graceful-seconds", default=30, show_default=True,
              type=click.IntRange(min=0),
              help="On SIGTERM, how long requests in flight may take to finish.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes serving the port together (one per core; /metrics sums them).")
@click.option("--pin-key", "pin_key", envvar=PIN_KEY_ENV,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A municipality's PIN key file: its cards' PINs checked for another "
                   "municipality's wide-area certificate. Env: JUKICORE_PIN_KEY.")
@password_option
@juki_errors
def serve(directory: Path, host: str, port: int, ops_port: int | None, max_concurrency: int,
          body_timeout: float, graceful_seconds: int, workers: int, pin_key: Path | None,
          node_password_file: Path | None) -> None:
    """Serve the node's services over mutual TLS 1.3 until SIGTERM or SIGINT.

    Peers and agencies authenticate with their certificates (the trust store; the
    agencies registered with ``node trust-agency``); SIGHUP rereads both. Every request is
    logged (``--log-level info --log-format json`` for JSON lines). See docs/network.md
    for the systemd unit and the runbook."""
    from jukicore.network.server import NodeServer

    n = Node.open(directory)
    if pin_key is not None:  # read by the services that check cards (and the workers)
        os.environ[PIN_KEY_ENV] = str(pin_key.resolve())
    server = NodeServer(n, read_password(node_password_file), host=host, port=port,
                        ops_port=ops_port, max_concurrency=max_concurrency,
                        body_timeout=body_timeout, graceful_seconds=graceful_seconds,
                        workers=workers)
    click.echo(f"{n.node_id}: serving on https://{host}:{port}"
               + (f", operations on http://127.0.0.1:{ops_port}" if ops_port is not None
                  else ""), err=True)
    server.run()


@node.command("peer")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("peer_id", required=False)
@click.argument("url", required=False)
@click.option("--forget", is_flag=True, help="Remove PEER_ID from the address book.")
@json_option
@juki_errors
def peer(directory: Path, peer_id: str | None, url: str | None, forget: bool,
         as_json: bool) -> None:
    """Where the node's peers listen (the address book, peers.json).

    ``node peer DIR PEER https://HOST:PORT`` records an address; ``node peer DIR`` lists
    them. The peer must be trusted: what is reached there must present its certificate."""
    from jukicore.network.client import peer_addresses, set_peer_address

    n = Node.open(directory)
    if peer_id is not None:
        if forget == (url is not None):
            raise click.UsageError("give PEER_ID and URL, or PEER_ID with --forget")
        set_peer_address(n, peer_id, None if forget else url)
    book = peer_addresses(n)
    if as_json:
        emit_json(book)
        return
    for k, v in book.items():
        click.echo(f"{k} {v}")


@node.command("trust-agency")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("certificate", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--remove", "remove", default=None, metavar="AGENCY",
              help="Stop accepting every certificate of this agency.")
@operator_options
@json_option
@juki_errors
def trust_agency(directory: Path, certificate: Path | None, remove: str | None,
                 creds: Credentials, as_json: bool) -> None:
    """Accept an agency's certificate (its ``certificate.pem`` from ``agency init``) at the
    center or a prefecture, or stop accepting an agency's (--remove).

    Done by a logged-in operator with ``node.operate``, audited; a running server takes it
    at its next request (a removal) or after SIGHUP (an addition)."""
    from jukicore.network.agency import trust_agency as add
    from jukicore.network.agency import untrust_agency

    from .operator import run_as_operator

    if (certificate is None) == (remove is None):
        raise click.UsageError("give a CERTIFICATE file, or --remove AGENCY")
    n = Node.open(directory)
    if certificate is not None:
        data = read_regular(certificate, max_bytes=1 << 20)
        from jukicore.network.agency import certificate_der

        certificate_der(data)  # bad input refused before anyone logs in
        run_as_operator(n.store_target(), creds, f"node trust-agency {certificate.name[:80]!r}")
        out: dict[str, Any] = {"agency": add(n, data), "status": "accepted"}
    else:
        assert remove is not None
        run_as_operator(n.store_target(), creds, f"node trust-agency --remove {remove[:64]!r}")
        out = {"agency": remove, "status": "removed", "certificates": untrust_agency(n, remove)}
    if as_json:
        emit_json(out)
    else:
        click.echo(f"{out['agency']}: {out['status']}")
