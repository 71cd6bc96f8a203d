"""``jukicore certificate``: certificates of residence (住民票の写し, 除票の写し)."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from jukicore.errors import InvalidInputError, JukiError

from ._common import Credentials, emit_json, json_option, juki_errors, operator_options
from .card import PIN_KEY_ENV
from .node import password_option, read_password

__all__ = ["certificate"]


def _when(value: str | None, what: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{what}: an ISO 8601 time with its zone") from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{what}: give the time zone (e.g. +09:00 or Z)")
    return when


@click.group()
def certificate() -> None:
    """Certificates of residence: issue at the counter, verify offline."""


@certificate.command("issue")
@click.argument("node_dir", metavar="NODE", type=click.Path(exists=True, file_okay=False,
                                                              path_type=Path))
@click.argument("codes", metavar="RESIDENT_CODE...", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where the signed PDF is written (atomically; an existing file is "
                   "replaced).")
@click.option("--household", is_flag=True, help="The whole household of RESIDENT_CODE.")
@click.option("--removed", is_flag=True, help="A copy of the removed record (除票の写し).")
@click.option("--items", default="", help="Optional items, comma-separated: relationship,"
              " domicile, resident_code, my_number, the Article 7 items, the foreign "
              "residents' items, or the groups article7 and foreign. Default: none.")
@click.option("--photo-id", metavar="KIND:NUMBER",
              help="The requester's photo ID as the operator saw it (kinds: driver_license,"
                   " passport, my_number_card, resident_card_photo, residence_card, "
                   "special_permanent_resident_certificate, other_official_photo_id).")
@click.option("--card-id", help="The requester's card (its PIN is checked: --pin-file).")
@click.option("--pin-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the requester's card PIN (with --card-id).")
@click.option("--pin-key", "pin_key", metavar="FILE", envvar=PIN_KEY_ENV,
              help=f"The node's pin key file, to check a card's PIN (with --card-id). "
                   f"Env: {PIN_KEY_ENV}.")
@click.option("--requester-name", help="The name the photo ID shows.")
@click.option("--requester-code", help="The requester's own resident code (registered here).")
@click.option("--proxy-for", help="A proxy: the principal's resident code.")
@click.option("--letter", help="A proxy: the reference of the letter of attorney.")
@click.option("--home", "home", metavar="LG_CODE",
              help="Wide-area issuance (広域交付): RESIDENT_CODE is a resident of this other"
                   " municipality, asked over the network (NODE's client, its trust store"
                   " and address book). The card's PIN is then checked there.")
@click.option("--request-id", "request_id", metavar="ID",
              help="With --home: resume a wide-area request cut off after it was sent (the"
                   " id a failed run printed); default: a new one.")
@click.option("--mayor", help="The certifier as printed (default: <municipality>長).")
@click.option("--office", help="A line printed under the certifier.")
@password_option
@operator_options
@json_option
@juki_errors
def issue(*, node_dir: Path, codes: tuple[str, ...], out: Path, household: bool,
          removed: bool, items: str, photo_id: str | None, card_id: str | None,
          pin_file: Path | None, pin_key: str | None, requester_name: str | None,
          requester_code: str | None, proxy_for: str | None, letter: str | None,
          home: str | None, request_id: str | None,
          mayor: str | None, office: str | None,
          node_password_file: Path | None, creds: Credentials, as_json: bool) -> None:
    """Issue a certificate of RESIDENT_CODE (several: chosen members of one household)
    from the municipality NODE's register, signed with the node's current key.

    The requester is identified by --photo-id (with --requester-name) or by --card-id
    and its PIN; their right rests on --requester-code (the person or a household
    member) or, for a proxy, on --proxy-for with --letter. With --home, a wide-area
    certificate of a resident of that municipality (the person or their household; no
    proxy, no removed record, never the domicile). A refusal changes nothing (exit 1)."""
    from jukicore._files import write_atomic
    from jukicore.certificates import Certificates, PhotoId, Requester
    from jukicore.certificates.items import expand_items
    from jukicore.network.node import Node
    from jukicore.register import open_register

    chosen = expand_items(items)
    if (photo_id is None) == (card_id is None):
        raise InvalidInputError("identify the requester by --photo-id or by --card-id")
    if home is None and request_id is not None:
        raise InvalidInputError("--request-id resumes a wide-area request: give --home too")
    if home is not None and removed:
        raise InvalidInputError("a removed record (除票) is not issued by a wide-area request:"
                                " ask the municipality that holds it")
    n = Node.open(node_dir)
    if n.role != "municipality":
        raise InvalidInputError(f"{node_dir} is a {n.role}'s node, not a municipality's")
    pw = read_password(node_password_file)
    keys = n.current_keys(pw)
    valid_from = _when(n.public_record(pw)["valid_from"], "valid_from")
    with open_register(n.store_target()) as reg:
        actor = creds.login(reg)
        identity: Any
        cards = None
        if photo_id is not None:
            kind, _, number = photo_id.partition(":")
            identity = PhotoId(kind, number)
        elif home is not None:  # the card is the residence municipality's: it checks the PIN
            identity = _pin_only(card_id or "", pin_file)
        else:
            cards, identity = _card_pin(reg, pin_key, card_id or "", pin_file)
        requester = Requester(identity, name=requester_name, resident_code=requester_code,
                              proxy_for=proxy_for, letter=letter)
        certs = Certificates(reg, keys, mayor=mayor, office=office, key_valid_from=valid_from,
                             cards=cards)
        if home is not None:
            issued, request_id = _wide_area(certs, node_dir, pw, home, request_id, codes,
                                            requester=requester, actor=actor, items=chosen,
                                            household=household)
        else:
            issued = certs.issue(list(codes) if len(codes) > 1 else codes[0],
                                 requester=requester, actor=actor, items=chosen,
                                 household=household, removed=removed)
    write_atomic(out, issued.pdf)
    row = issued.record.to_pylist()[0]
    row["member_codes"] = [str(c).zfill(11) for c in row["member_codes"]]
    for k in ("subject_code", "requester_code", "principal_code"):
        row[k] = None if row[k] is None else str(row[k]).zfill(11)
    row["pdf"] = str(out)
    if home is not None:
        row["home"], row["request_id"] = home, request_id
    if as_json:
        emit_json(row)
    else:
        wide = f", wide-area from {home}, request {request_id}" if home is not None else ""
        click.echo(f"issued {row['issuance_id']} ({len(row['member_codes'])} member(s), fee"
                   f" {row['fee']} yen{wide}) -> {out}")


@contextlib.contextmanager
def call_for(node_dir: Path, password: str | bytes | None) -> Iterator[Any]:
    """``call(peer, path, body) -> answer`` of the node at ``node_dir``: its network client
    (:class:`jukicore.network.client.NodeClient`: the node's certificate, trust store and
    address book), closed when the block ends."""
    from jukicore.network.client import NodeClient
    from jukicore.network.node import Node

    with NodeClient(Node.open(node_dir), password) as client:
        yield client.call_json


def _wide_area(certs: Any, node_dir: Path, password: str | bytes | None, home: str,
               request_id: str | None, codes: tuple[str, ...], **kw: Any
               ) -> tuple[Any, str]:
    """A wide-area certificate asked of ``home`` and its request id; a failure names the
    request id to resume with."""
    from jukicore.certificates.wide_area import new_request_id

    if len(codes) != 1:
        raise InvalidInputError("a wide-area certificate is of one person or of their whole"
                                " household (--household): give one resident code")
    rid = request_id or new_request_id(certs.register.lg_code)
    try:
        with call_for(node_dir, password) as call:
            return certs.issue_wide_area(codes[0], home=home, call=call, request_id=rid,
                                         **kw), rid
    except JukiError:
        click.echo(f"wide-area request {rid}: if {home} may have answered, run the same"
                   f" command with --request-id {rid} to resume", err=True)
        raise


def _pin_only(card_id: str, pin_file: Path | None) -> Any:
    from jukicore.certificates import CardPin

    from ._common import read_secret

    pin = read_secret(pin_file, "JUKICORE_REQUESTER_PIN", "the requester's card PIN",
                      "--pin-file")
    return CardPin(card_id, pin)


def _card_pin(reg: Any, pin_key: str | None, card_id: str,
              pin_file: Path | None) -> tuple[Any, Any]:
    """The cards service of the register (with the node's pin key) and the requester's
    card and PIN, which the issuance has checked by that service."""
    from jukicore.cards import Cards, PinKey
    from jukicore.certificates import CardPin

    from ._common import read_secret

    if pin_key is None:
        raise InvalidInputError(f"--card-id needs the node's pin key: --pin-key or"
                                f" ${PIN_KEY_ENV}")
    pin = read_secret(pin_file, "JUKICORE_REQUESTER_PIN", "the requester's card PIN",
                      "--pin-file")
    return Cards(reg, PinKey.load(pin_key)), CardPin(card_id, pin)


@certificate.command("verify")
@click.argument("files", metavar="FILE...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", "trust_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The trust store with the municipalities' public keys (a node's "
                   "trust.json).")
@click.option("--now", "now_text", help="Verify as of this time (ISO 8601 with zone; "
                                        "default: the clock).")
@json_option
@juki_errors
def verify(*, files: tuple[Path, ...], trust_path: Path, now_text: str | None,
           as_json: bool) -> None:
    """Verify certificates offline: a PDF (its PAdES signature, its QR payload's
    signature and that the two agree), or an image of the paper (its QR payload).
    Exit 0 when every FILE verifies, 1 when any is refused."""
    from jukicore.certificates import verify_file
    from jukicore.network.crypto import TrustStore

    trust = TrustStore.load(trust_path)
    now = _when(now_text, "--now")
    results: list[dict[str, Any]] = []
    failed = 0
    for f in files:
        try:
            doc = verify_file(f, trust, now=now).to_json()
        except JukiError as exc:
            failed += 1
            doc = {"ok": False, "error": type(exc).__name__, "reason": str(exc)}
        doc["file"] = str(f)
        results.append(doc)
    if as_json:
        emit_json(results if len(results) > 1 else results[0])
    else:
        for doc in results:
            if doc["ok"]:
                names = ", ".join(m["氏名"] for m in doc["members"])
                click.echo(f"{doc['file']}: OK {doc['title']} {doc['number']} issued by"
                           f" {doc['municipality']} ({doc['node_id']}) at {doc['issued_at']}:"
                           f" {names} [{doc['source']}]")
            else:
                click.echo(f"{doc['file']}: REFUSED ({doc['error']}): {doc['reason']}")
    if failed:
        sys.exit(1)


@certificate.command("list")
@click.argument("node_dir", metavar="NODE", type=click.Path(exists=True, file_okay=False,
                                                              path_type=Path))
@click.option("--since", "since_text", help="Only those issued from this time (ISO 8601).")
@operator_options
@json_option
@juki_errors
def list_(*, node_dir: Path, since_text: str | None, creds: Credentials,
          as_json: bool) -> None:
    """The certificates issued at NODE's register (supervisors and admins; audited)."""
    from jukicore.certificates.schema import ISSUANCE_SCHEMA
    from jukicore.certificates.service import Certificates
    from jukicore.network.node import Node
    from jukicore.register import open_register

    n = Node.open(node_dir)
    with open_register(n.store_target()) as reg:
        actor = creds.login(reg)
        table = Certificates.issuances_of(reg, actor=actor, since=_when(since_text, "--since"))
    rows = table.to_pylist()
    for r in rows:
        r["member_codes"] = [str(c).zfill(11) for c in r["member_codes"]]
        for k in ("subject_code", "requester_code", "principal_code"):
            r[k] = None if r[k] is None else str(r[k]).zfill(11)
    if as_json:
        emit_json(rows)
        return
    assert table.schema == ISSUANCE_SCHEMA
    for r in rows:
        click.echo(f"{r['issued_at']:%Y-%m-%d %H:%M} {r['issuance_id']} {r['kind']}/{r['scope']}"
                   f" {','.join(r['member_codes'])} right={r['right_kind']} fee={r['fee']}")
