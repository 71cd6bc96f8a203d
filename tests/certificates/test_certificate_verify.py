"""Offline verification of certificates: a genuine one passes (PDF, and a scan of its
paper); a changed byte, an appended change, a changed item (a payload re-signed with
an unknown key, a tampered payload), an unknown node or key and a revoked key are
refused. Issued on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import pytest
from certkit import CLERK, KEY_FROM, NOW, pdf_png, requester
from regkit import code_of

from jukicore.certificates import Certificates, verify_certificate, verify_file
from jukicore.certificates.payload import MAGIC, SIG_LEN, encode_payload, qr_png, split_payload
from jukicore.certificates.render import render_pdf
from jukicore.certificates.sign import sign_pdf
from jukicore.errors import (
    InvalidInputError,
    TamperedCertificateError,
    UntrustedCertificateError,
)
from jukicore.network.crypto import NodeKeys, TrustStore
from jukicore.network.x509 import node_certificate, node_of
from jukicore.register import Register

LATER = NOW + dt.timedelta(days=30)


@pytest.fixture
def issued(register: Register, certs: Certificates) -> bytes:
    return certs.issue(code_of(register, 1), household=True, items=["relationship"],
                       requester=requester(register, 1), actor=CLERK, now=NOW).pdf


def test_a_genuine_certificate_verifies(issued: bytes, trust: TrustStore,
                                        tmp_path: Path) -> None:
    v = verify_certificate(issued, trust, now=LATER)
    assert v.source == "pdf" and "pades-signature" in v.checks
    doc = v.to_json()
    assert doc["ok"] and doc["issued_at"] == "2024-06-03T01:00:00Z"
    assert doc["title"] == "世帯全員の住民票の写し" and len(doc["members"]) == 2
    assert doc["members"][0]["氏名"] == "鈴木\u3000太郎"
    assert doc["items"] == ["relationship"]
    (tmp_path / "c.pdf").write_bytes(issued)
    assert verify_file(tmp_path / "c.pdf", trust, now=LATER).payload == v.payload


def test_a_scan_of_the_paper_verifies(issued: bytes, trust: TrustStore,
                                      tmp_path: Path) -> None:
    pages = pdf_png(issued, tmp_path, dpi=200)
    found = []
    for page in pages:
        try:
            found.append(verify_certificate(page.read_bytes(), trust, now=LATER))
        except TamperedCertificateError:
            continue  # a page without the QR code
    assert len(found) == 1 and found[0].source == "image"
    assert found[0].payload == verify_certificate(issued, trust, now=LATER).payload


@pytest.mark.parametrize("where", ["start", "content", "signature", "padding", "case", "end"])
def test_a_changed_byte_is_refused(issued: bytes, trust: TrustStore, where: str) -> None:
    data = bytearray(issued)
    sig = issued.index(b"/Contents <") + len(b"/Contents <")
    end = issued.index(b">", sig)
    at = {"start": 20, "content": len(data) // 3, "signature": sig + 200,
          "padding": end - 5, "end": len(data) - 30,
          "case": next(i for i in range(sig, end) if chr(data[i]) in "ABCDEF")}[where]
    data[at] = ord(chr(data[at]).lower()) if where == "case" else data[at] ^ 0x01
    with pytest.raises((TamperedCertificateError, UntrustedCertificateError,
                        InvalidInputError)):
        verify_certificate(bytes(data), trust, now=LATER)


def test_an_appended_change_is_refused(issued: bytes, trust: TrustStore) -> None:
    # a later incremental update (here: a new Info dictionary) after the signature
    import io

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(issued))
    w.trailer["/Info"] = w.add_object(generic.DictionaryObject(
        {generic.NameObject("/Title"): generic.TextStringObject("偽物")}))
    out = io.BytesIO()
    w.write(out)
    with pytest.raises(TamperedCertificateError, match="changed after signing"):
        verify_certificate(out.getvalue(), trust, now=LATER)


def _payload(issued: bytes) -> bytes:
    from jukicore.certificates.verify import _pdf_text_and_qr

    return next(c for c in _pdf_text_and_qr(issued)[1] if c.startswith(MAGIC))


def _reissue(issued: bytes, keys: NodeKeys, payload_bytes: bytes) -> bytes:
    """A PDF rendered from a payload and signed with ``keys`` (a forger's)."""
    _, _, payload = split_payload(payload_bytes)
    pdf = render_pdf(payload, qr_png(payload_bytes))
    return sign_pdf(pdf, keys, node_certificate(keys, valid_from=KEY_FROM),
                    when=payload.issued_at)


def test_a_changed_item_re_signed_with_an_unknown_key_is_refused(
        issued: bytes, trust: TrustStore) -> None:
    from dataclasses import replace

    _, _, payload = split_payload(_payload(issued))
    c = payload.composition
    first = (c.members[0][0].replace("太郎", "次郎"), *c.members[0][1:])
    forged = replace(payload, composition=replace(c, members=(first, *c.members[1:])))
    mallory = NodeKeys.generate("131016")
    # the forger's own key, claiming the municipality's key id: the signature fails
    data = encode_payload(forged, mallory.signing)
    with pytest.raises((TamperedCertificateError, UntrustedCertificateError)):
        verify_certificate(_reissue(issued, mallory, data), trust, now=LATER)
    # the forger's key id: not in the trust store
    forged2 = replace(forged, key_id=mallory.signing_key_id)
    with pytest.raises(UntrustedCertificateError, match="not in the trust store"):
        verify_certificate(_reissue(issued, mallory, encode_payload(forged2, mallory.signing)),
                           trust, now=LATER)


def test_a_tampered_payload_is_refused(issued: bytes, trust: TrustStore,
                                       keys: NodeKeys) -> None:
    raw = _payload(issued)
    body = zlib.decompress(raw[len(MAGIC):-SIG_LEN])
    changed = body.replace("太郎".encode(), "次郎".encode())
    assert changed != body
    data = MAGIC + zlib.compress(changed) + raw[-SIG_LEN:]  # the old signature
    with pytest.raises(TamperedCertificateError, match="signature"):
        verify_certificate(_reissue(issued, keys, data), trust, now=LATER)
    # the municipality's own key re-signing a payload that differs from the PDF's text
    _, _, payload = split_payload(raw)
    from dataclasses import replace

    good_qr = qr_png(encode_payload(replace(payload, certifier="偽の区長"), keys.signing))
    pdf = sign_pdf(render_pdf(payload, good_qr), keys,
                   node_certificate(keys, valid_from=KEY_FROM), when=payload.issued_at)
    with pytest.raises(TamperedCertificateError, match="does not show"):
        verify_certificate(pdf, trust, now=LATER)


def test_unknown_node_or_key_is_refused(issued: bytes, keys: NodeKeys) -> None:
    with pytest.raises(UntrustedCertificateError, match="not in the trust store"):
        verify_certificate(issued, TrustStore(), now=LATER)
    other = TrustStore()
    other.add_record(NodeKeys.generate("131016").public_record("municipality", KEY_FROM))
    with pytest.raises(UntrustedCertificateError, match="not in the trust store"):
        verify_certificate(issued, other, now=LATER)
    prefecture = TrustStore()  # the same key, trusted as another tier's
    rec = keys.public_record("prefecture", KEY_FROM)
    prefecture.add_record(rec)
    with pytest.raises(UntrustedCertificateError, match="not a municipality"):
        verify_certificate(issued, prefecture, now=LATER)


def test_a_revoked_key_is_refused(issued: bytes, trust: TrustStore,
                                  keys: NodeKeys) -> None:
    trust.revoke("131016", keys.signing_key_id)
    with pytest.raises(UntrustedCertificateError, match="revoked"):
        verify_certificate(issued, trust, now=LATER)


def test_a_rotated_key_still_verifies_what_it_signed(issued: bytes, trust: TrustStore,
                                                     ) -> None:
    newer = NodeKeys.generate("131016")
    trust.add_record(newer.public_record("municipality", NOW + dt.timedelta(days=1)))
    assert verify_certificate(issued, trust, now=LATER + dt.timedelta(days=365)).payload


def test_a_key_not_valid_at_the_issue_time_is_refused(issued: bytes,
                                                      keys: NodeKeys) -> None:
    late = TrustStore()
    late.add_record(keys.public_record("municipality", NOW + dt.timedelta(hours=1)))
    with pytest.raises(UntrustedCertificateError, match="not valid at the issue time"):
        verify_certificate(issued, late, now=LATER)


def test_an_issue_time_in_the_future_is_refused(issued: bytes, trust: TrustStore) -> None:
    with pytest.raises(TamperedCertificateError, match="future"):
        verify_certificate(issued, trust, now=NOW - dt.timedelta(hours=1))


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7\n garbage", b"not a certificate",
                                  b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_garbage_is_refused(data: bytes, trust: TrustStore) -> None:
    with pytest.raises((TamperedCertificateError, InvalidInputError)):
        verify_certificate(data, trust, now=LATER)


def test_node_certificate(keys: NodeKeys) -> None:
    from cryptography.hazmat.primitives import serialization

    cert = node_certificate(keys, valid_from=KEY_FROM)
    assert node_of(cert) == "131016"
    assert cert == node_certificate(keys, valid_from=KEY_FROM)  # reproducible
    raw = serialization.PublicFormat.Raw
    assert cert.public_key().public_bytes(serialization.Encoding.Raw, raw) == \
        keys.signing.public_key().public_bytes(serialization.Encoding.Raw, raw)
    cert.verify_directly_issued_by(cert)  # self-signed with the node's key
    with pytest.raises(InvalidInputError):
        node_certificate(keys, "agency")
    with pytest.raises(InvalidInputError):
        node_certificate(keys, valid_from=dt.datetime(2024, 1, 1))
    leap = node_certificate(keys, valid_from=dt.datetime(2024, 2, 29, tzinfo=dt.UTC))
    assert leap.not_valid_after_utc.date() == dt.date(2034, 2, 28)


@pytest.fixture(scope="module")
def standalone() -> tuple[bytes, TrustStore]:
    """A certificate made without a store (compose, render, sign), and its trust store."""
    from test_render import payload, record

    from jukicore.certificates import compose

    keys = NodeKeys.generate("131016")
    p = payload(compose([record()], items={"relationship"}))
    p = replace_key(p, keys)
    pdf = sign_pdf(render_pdf(p, qr_png(encode_payload(p, keys.signing))), keys,
                   node_certificate(keys, valid_from=KEY_FROM), when=p.issued_at)
    trust = TrustStore()
    trust.add_record(keys.public_record("municipality", KEY_FROM))
    return pdf, trust


def replace_key(p: object, keys: NodeKeys) -> object:
    from dataclasses import replace

    return replace(p, key_id=keys.signing_key_id)  # type: ignore[type-var]


def test_the_standalone_certificate_verifies(standalone: tuple[bytes, TrustStore]) -> None:
    pdf, trust = standalone
    assert verify_certificate(pdf, trust, now=LATER).source == "pdf"


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_any_changed_bytes_are_refused(standalone: tuple[bytes, TrustStore],
                                            data: st.DataObject) -> None:
    """Random changes anywhere (flipped bytes, a cut, bytes inserted): refused with a
    certificate or input error, never passed, never another exception."""
    from jukicore.errors import CertificateRefusedError

    pdf, trust = standalone
    b = bytearray(pdf)
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    at = data.draw(st.integers(0, len(b) - 1))
    if how == "flip":
        b[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del b[at:at + data.draw(st.integers(1, 64))]
    else:
        b[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    with pytest.raises((CertificateRefusedError, InvalidInputError)):
        verify_certificate(bytes(b), trust, now=LATER)
