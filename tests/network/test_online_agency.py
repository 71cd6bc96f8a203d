"""Agencies over the network: their certificates, their queries and bulk verifications."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from netkit import PASSWORD, Network, apply_day, point, serving

from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    NetworkError,
    PermissionDeniedError,
    UntrustedSenderError,
)
from jukicore.identity import open_identity_store
from jukicore.network.agency import (
    REGISTRY,
    AgencyIdentity,
    agency_certificates,
    trust_agency,
    untrust_agency,
)
from jukicore.network.client import AgencyClient, NodeClient
from jukicore.network.node import CENTER, Node
from jukicore.network.push import push_changes

PURPOSE = "jps-pension-benefits"  # jps's, answered at the center, code and four items


@pytest.fixture
def center_with_agency(network: Network, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The center holding the municipality's records, serving, with jps registered."""
    apply_day(network, 20, seed=11)
    ident = AgencyIdentity.create(tmp_path / "jps", "jps", PASSWORD)
    trust_agency(network.center, (ident.path / "certificate.pem").read_bytes())
    with serving(network.pref, network.center) as servers:
        point(network.muni, servers)
        with NodeClient(network.muni, PASSWORD) as c:
            push_changes(network.muni, c, password=PASSWORD)
        url = f"https://127.0.0.1:{servers[CENTER].port}"
        yield {"ident": ident, "url": url, "record": network.center.public_record(PASSWORD),
               "servers": servers}


def _provisions(center: Node) -> int:
    with sqlite3.connect(center.path / center.store) as db:
        return int(db.execute("SELECT count(*) FROM provision").fetchone()[0])


def _digest(center: Node) -> str:
    with open_identity_store(center.store_target()) as st:
        return st.content_digest()


def _a_code(center: Node) -> str:
    with sqlite3.connect(center.path / center.store) as db:
        code = db.execute("SELECT min(resident_code) FROM identity"
                          " WHERE status = 'resident'").fetchone()[0]
    return f"{code:011d}"


def test_an_agency_asks_by_code_and_the_answer_is_a_provision_record(
        network: Network, center_with_agency: dict[str, Any]) -> None:
    a = center_with_agency
    code = _a_code(network.center)
    before = _provisions(network.center)
    with AgencyClient(a["ident"], a["record"], a["url"]) as c:
        answer = c.confirm(PURPOSE, code=code, request_id="req-1")
    assert answer["request_id"] == "req-1"
    row, = answer["rows"]
    assert row["answer"] == "found" and row["resident_code"] == code
    assert row["family_name"] and row["birth_date"]
    assert _provisions(network.center) == before + 1


def test_a_bulk_verification_over_the_network_answers_as_in_process(
        network: Network, center_with_agency: dict[str, Any]) -> None:
    a = center_with_agency
    with sqlite3.connect(network.center.path / network.center.store) as db:
        codes = [r[0] for r in db.execute(
            "SELECT resident_code FROM identity ORDER BY resident_code LIMIT 50")]
    from jukicore.codes import resident_code_check_digit

    unknown = 9_876_543_210 * 10 + resident_code_check_digit(9_876_543_210)
    table = pa.table({"resident_code": pa.array([*codes, unknown], pa.uint64())})
    with AgencyClient(a["ident"], a["record"], a["url"]) as c:
        remote = c.verify(table, PURPOSE, request_id="bulk-1")
    from jukicore.access.actors import Actor

    with open_identity_store(network.center.store_target()) as st:
        local = st.verify(table, agency="jps", purpose=PURPOSE, actor=Actor.agency("jps"),
                          request_id="bulk-2")
    assert remote.equals(local)
    assert remote.num_rows == 51
    assert remote.column("answer")[50].as_py() == "not_found"


@pytest.mark.parametrize("request_doc, error", [
    ({"code": "x"}, InvalidInputError),  # no purpose
    ({"purpose": PURPOSE}, InvalidInputError),  # neither code nor four items
    ({"purpose": PURPOSE, "code": "1234"}, InvalidInputError),
    ({"purpose": PURPOSE, "code": "00000000000", "agency": "mofa"}, InvalidInputError),
    ({"purpose": PURPOSE, "four": {"family_name": "山田"}}, InvalidInputError),
    ({"purpose": PURPOSE, "four": ["x"]}, InvalidInputError),
    ({"purpose": PURPOSE, "code": "00000000000", "as_of": "yesterday"}, InvalidInputError),
    ({"purpose": "mofa-passport", "code": "00000000000"}, PermissionDeniedError),
    ({"purpose": "no-such-purpose", "code": "00000000000"}, PermissionDeniedError),
    ({"purpose": ["jps"], "code": "00000000000"}, InvalidInputError),
])
def test_bad_or_unlawful_requests_are_refused_and_record_nothing(
        network: Network, center_with_agency: dict[str, Any], request_doc: dict[str, Any],
        error: type[Exception]) -> None:
    a = center_with_agency
    before = _provisions(network.center)
    from jukicore.network.service import JSON, encode_json

    with AgencyClient(a["ident"], a["record"], a["url"]) as c, pytest.raises(error):
        c._call("/v1/identity/confirm", encode_json(request_doc), JSON)
    assert _provisions(network.center) == before


def test_a_bulk_request_without_its_purpose_or_with_other_fields_is_refused(
        network: Network, center_with_agency: dict[str, Any]) -> None:
    a = center_with_agency
    digest = _digest(network.center)
    from jukicore.network.queries import ARROW_STREAM, arrow_bytes

    table = pa.table({"resident_code": pa.array([1], pa.uint64())})
    with AgencyClient(a["ident"], a["record"], a["url"]) as c:
        for meta in ({}, {"purpose": PURPOSE, "agency": "mofa"}):
            with pytest.raises(InvalidInputError):
                c._call("/v1/identity/verify",
                        arrow_bytes(table.replace_schema_metadata(meta)), ARROW_STREAM)
        with pytest.raises(InvalidInputError):
            c._call("/v1/identity/verify", b"not arrow", ARROW_STREAM)
        with pytest.raises(InvalidInputError):
            c.verify(pa.table({"resident_code": pa.array(["12"])}), PURPOSE)
    assert _digest(network.center) == digest


def test_an_unregistered_agency_is_refused_at_the_handshake(
        network: Network, center_with_agency: dict[str, Any], tmp_path: Path) -> None:
    a = center_with_agency
    other = AgencyIdentity.create(tmp_path / "mofa", "mofa", PASSWORD)
    with AgencyClient(other, a["record"], a["url"], retry_for=0) as c, \
            pytest.raises(NetworkError):
        c.confirm("mofa-passport", code=_a_code(network.center))


def test_an_agency_removed_is_refused_from_its_next_request(
        network: Network, center_with_agency: dict[str, Any]) -> None:
    a = center_with_agency
    code = _a_code(network.center)
    with AgencyClient(a["ident"], a["record"], a["url"]) as c:
        c.confirm(PURPOSE, code=code)
        assert untrust_agency(network.center, "jps") == 1
        time.sleep(1.1)
        before = _provisions(network.center)
        with pytest.raises(UntrustedSenderError):
            c.confirm(PURPOSE, code=code)
    assert _provisions(network.center) == before


def test_an_agency_may_not_send_packets_and_a_node_may_not_query(
        network: Network, center_with_agency: dict[str, Any]) -> None:
    a = center_with_agency
    from jukicore.network.server import PACKET

    with AgencyClient(a["ident"], a["record"], a["url"]) as c, \
            pytest.raises(PermissionDeniedError):
        c._call("/v1/packets", b"JKP", PACKET)
    with NodeClient(network.muni, PASSWORD) as c, pytest.raises(PermissionDeniedError):
        c.call_json(CENTER, "/v1/identity/confirm", {"purpose": PURPOSE, "code": "1"})


def test_an_agency_certificate_is_registered_only_when_it_is_one(
        network: Network, tmp_path: Path) -> None:
    ident = AgencyIdentity.create(tmp_path / "jps", "jps", PASSWORD)
    pem = (ident.path / "certificate.pem").read_bytes()
    registry = network.center.path / REGISTRY
    import base64

    node_cert = base64.b64decode(network.muni.public_record(PASSWORD)["certificate"])
    for bad in (node_cert, b"garbage", pem.replace(b"M", b"N", 5)):
        with pytest.raises(InvalidInputError):
            trust_agency(network.center, bad)
    with pytest.raises(InvalidInputError):  # a municipality answers no agency
        trust_agency(network.muni, pem)
    assert not registry.exists() and not (network.muni.path / REGISTRY).exists()
    assert trust_agency(network.center, pem) == "jps"
    with pytest.raises(ConflictError):
        trust_agency(network.center, pem)
    assert agency_certificates(network.center) == {"jps": [ident.certificate]}


def test_an_agency_identity_refuses_odd_ids_and_a_second_creation(tmp_path: Path) -> None:
    for bad in ("", "JPS", "../x", "a" * 65, "jps\n"):
        with pytest.raises(InvalidInputError):
            AgencyIdentity.create(tmp_path / "x", bad, PASSWORD)
    assert not (tmp_path / "x").exists()
    AgencyIdentity.create(tmp_path / "jps", "jps", PASSWORD)
    with pytest.raises(ConflictError):
        AgencyIdentity.create(tmp_path / "jps", "jps", PASSWORD)
    assert AgencyIdentity.open(tmp_path / "jps", PASSWORD).agency == "jps"
    from jukicore.errors import PermissionDeniedError as Denied

    with pytest.raises(Denied):
        AgencyIdentity.open(tmp_path / "jps", "wrong password entirely")


def test_queries_arriving_together_are_each_answered_and_recorded_or_refused(
        network: Network, center_with_agency: dict[str, Any]) -> None:
    """The center answers the queries that arrive together in one transaction (group
    commit): each still gets its own answer and provision record, and a refused one
    spoils none of the others."""
    import threading

    a = center_with_agency
    with sqlite3.connect(network.center.path / network.center.store) as db:
        codes = [f"{r[0]:011d}" for r in db.execute(
            "SELECT resident_code FROM identity WHERE status = 'resident' LIMIT 40")]
    before = _provisions(network.center)
    found: list[str] = []
    refused: list[Exception] = []

    def ask(i: int) -> None:
        with AgencyClient(a["ident"], a["record"], a["url"]) as c:
            for k in range(5):
                purpose = "mofa-passport" if i == 7 else PURPOSE
                try:
                    rows = c.confirm(purpose, code=codes[(i + k) % len(codes)],
                                     request_id=f"t{i}-{k}")["rows"]
                    found.append(rows[0]["resident_code"])
                except PermissionDeniedError as exc:
                    refused.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(found) == 15 * 5 and len(refused) == 5
    assert sorted(found) == sorted(codes[(i + k) % len(codes)] for i in range(16)
                                   for k in range(5) if i != 7)
    assert _provisions(network.center) == before + 75
