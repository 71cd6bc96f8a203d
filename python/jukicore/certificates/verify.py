"""Offline verification of a certificate of residence: its PDF, or an image of its paper.

Everything is checked against a trust store (:class:`jukicore.network.crypto.TrustStore`)
holding the municipalities' public key generations; nothing is fetched.

A PDF passes when all of these hold, in this order:

1. it holds exactly one signature, and a QR code (an image of the page, decoded with
   ``zxing-cpp``) holding a jukicore certificate payload;
2. the payload's issuing node is a municipality of the trust store and its key id one
   of that node's generations, not revoked and valid at the payload's issue time
   (a generation retired since still verifies the certificates issued while it was
   current: a certificate outlives a key rotation);
3. the payload's Ed25519 signature verifies with that key;
4. the PDF's PAdES signature is made by that same key (its certificate's public key),
   is intact, covers the whole file (nothing appended after signing), and its signing
   time is the payload's issue time;
5. the PDF's text (``pypdf``) shows every value of the payload, and each optional
   item's label exactly as often as the payload says.

A scanned image (PNG, JPEG, ...) of the paper passes steps 1 (its QR code), 2 and 3:
the verifier then shows the payload's items, for a person to compare with the paper.

Refusals: :class:`~jukicore.errors.TamperedCertificateError` (an altered PDF or
payload) and :class:`~jukicore.errors.UntrustedCertificateError` (an unknown node or
key, a revoked key, a key not valid at the issue time).
"""

from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jukicore._files import read_regular
from jukicore.errors import (
    InvalidInputError,
    JukiError,
    MissingDependencyError,
    TamperedCertificateError,
    UntrustedCertificateError,
)

from .items import LABELS, OPTIONAL_ITEMS, RECORD_ITEMS
from .payload import MAGIC, Payload, check_signature, split_payload
from .render import text_strings

if TYPE_CHECKING:
    from jukicore.network.crypto import PeerKey, TrustStore

__all__ = ["Verified", "verify_certificate", "verify_file"]

#: The largest certificate file read (a PDF of a large household, or a scan).
MAX_FILE = 64 << 20
#: The most pixels an image to decode may have (a 600 dpi A4 scan is about 35 million).
MAX_PIXELS = 80_000_000
#: How far in the future (the issuer's clock ahead of ours) an issue time may lie.
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Verified:
    """A certificate that verified: its payload, what was checked, from what."""

    payload: Payload
    source: Literal["pdf", "image"]
    checks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "source": self.source, "checks": list(self.checks),
                **self.payload.to_json()}


def _zxing() -> Any:
    try:
        import zxingcpp
    except ImportError as exc:  # pragma: no cover - a dependency
        raise MissingDependencyError("verifying certificates needs the 'zxing-cpp' package"
                                     ) from exc
    return zxingcpp


def _decode_qr(image: Any) -> list[bytes]:
    """Every QR code's bytes found in a PIL image."""
    zx = _zxing()
    if image.mode not in ("L", "RGB"):
        image = image.convert("L")
    found = zx.read_barcodes(image, formats=zx.BarcodeFormat.QRCode)
    return [bytes(r.bytes) for r in found if r.valid]


def _payload_bytes(candidates: list[bytes]) -> bytes:
    mine = [c for c in candidates if c.startswith(MAGIC)]
    if not mine:
        raise TamperedCertificateError("no QR code with a jukicore certificate payload found")
    if len(set(mine)) > 1:
        raise TamperedCertificateError("more than one certificate payload found")
    return mine[0]


def _trusted_key(trust: TrustStore, payload: Payload) -> PeerKey:
    from jukicore.network.crypto import check_node_id

    try:
        node = check_node_id(payload.node_id)
    except InvalidInputError:
        raise TamperedCertificateError("the payload names no valid issuing node") from None
    if node not in trust:
        raise UntrustedCertificateError(f"issuer {node} is not in the trust store")
    if trust.role(node) != "municipality":
        raise UntrustedCertificateError(f"issuer {node} is a {trust.role(node)}, not a"
                                        " municipality")
    for k in trust.keys(node):
        if k.signing_key_id == payload.key_id:
            if k.revoked:
                raise UntrustedCertificateError(f"issuer {node}'s key {payload.key_id} has"
                                                " been revoked")
            if not k.valid_at(payload.issued_at):
                raise UntrustedCertificateError(
                    f"issuer {node}'s key {payload.key_id} was not valid at the issue time")
            return k
    raise UntrustedCertificateError(f"issuer {node} signed with key {payload.key_id[:40]},"
                                    " which is not in the trust store")


def _check_payload(data: bytes, trust: TrustStore, now: dt.datetime | None
                   ) -> tuple[Payload, PeerKey]:
    try:
        body, sig, payload = split_payload(data)
    except InvalidInputError as exc:
        raise TamperedCertificateError(f"the QR payload is damaged: {exc}") from None
    key = _trusted_key(trust, payload)
    if not check_signature(body, sig, key.signing_public):
        raise TamperedCertificateError("the QR payload's signature does not verify: a changed"
                                       " item, or a payload signed with another key")
    moment = now or dt.datetime.now(dt.UTC)
    if payload.issued_at > moment + CLOCK_SKEW:
        raise TamperedCertificateError("the certificate's issue time is in the future")
    return payload, key


def _raw(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def _pades(data: bytes, payload: Payload, key: PeerKey) -> None:
    from asn1crypto import keys as akeys
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = reader.embedded_signatures
        if len(sigs) != 1:
            raise TamperedCertificateError(f"the PDF holds {len(sigs)} signatures, not one")
        sig = sigs[0]
        cert = sig.signer_cert
        info: akeys.PublicKeyInfo = cert.public_key
        if info.algorithm != "ed25519" or bytes(info["public_key"]) != _raw(
                key.signing_public):
            raise UntrustedCertificateError("the PDF is not signed by the key of its QR payload")
        _exact_contents(data, sig)
        status = validate_pdf_signature(
            sig, ValidationContext(trust_roots=[cert], moment=payload.issued_at))
    except JukiError:
        raise
    except Exception as exc:  # a damaged PDF or signature: any parse error refuses it
        raise TamperedCertificateError(f"the PDF's signature cannot be read: "
                                       f"{type(exc).__name__}: {str(exc)[:200]}") from None
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    if not (status.intact and status.valid):
        raise TamperedCertificateError("the PDF's signature does not verify: the file was"
                                       " changed after signing")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise TamperedCertificateError("the PDF was changed after signing (its signature does"
                                       " not cover the whole file)")
    signed_at = status.signer_reported_dt
    if signed_at is None or abs(signed_at - payload.issued_at) > dt.timedelta(seconds=1):
        raise TamperedCertificateError("the PDF's signing time is not its payload's issue"
                                       " time")


def _exact_contents(data: bytes, sig: Any) -> None:
    """The one part of the file the signature cannot cover, its own ``/Contents``, must
    be exactly the signature (DER) written in hex of one case, then zeros: otherwise a
    changed digit's case or a changed byte of the padding would go unnoticed."""
    from asn1crypto import cms

    raw = bytes(sig.pkcs7_content)
    _, len1, start2, _ = (int(v) for v in sig.byte_range)
    written = data[len1:start2]
    if written not in (b"<" + raw.hex().encode() + b">", b"<" + raw.hex().upper().encode()
                       + b">"):
        raise TamperedCertificateError("the PDF's signature value was changed")
    used = len(cms.ContentInfo.load(raw, strict=False).dump())
    if raw[used:].strip(b"\0"):
        raise TamperedCertificateError("the PDF's signature value was changed (its padding)")


def _squash(text: str) -> str:
    return "".join(text.split())


def _pdf_text_and_qr(data: bytes) -> tuple[str, list[bytes]]:
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        texts: list[str] = []
        codes: list[bytes] = []
        for page in reader.pages:
            texts.append(page.extract_text() or "")
            for img in page.images:
                codes += _decode_qr(img.image)
    except JukiError:
        raise
    except Exception as exc:  # a damaged PDF: refused, whatever broke in reading it
        raise TamperedCertificateError(f"the PDF cannot be read: {type(exc).__name__}: "
                                       f"{str(exc)[:200]}") from None
    return "\n".join(texts), codes


def _check_text(text: str, payload: Payload) -> None:
    shown = _squash(text)
    expected = text_strings(payload)
    for s in expected:
        if _squash(s) not in shown:
            raise TamperedCertificateError(f"the PDF does not show {s[:60]!r} of its QR payload")
    joined = _squash("\n".join(expected))
    for item in OPTIONAL_ITEMS:
        for col in RECORD_ITEMS[item]:
            label = LABELS[col]
            if shown.count(label) != joined.count(label):
                raise TamperedCertificateError(
                    f"the PDF shows the item {label} other than its QR payload says")


def verify_certificate(data: bytes, trust: TrustStore, *,
                       now: dt.datetime | None = None) -> Verified:
    """Verify a certificate's PDF, or an image of its paper (see the module's text)."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidInputError("a certificate is given as bytes")
    data = bytes(data)
    if data.lstrip()[:5] == b"%PDF-":
        text, codes = _pdf_text_and_qr(data)
        payload, key = _check_payload(_payload_bytes(codes), trust, now)
        _pades(data, payload, key)
        _check_text(text, payload)
        return Verified(payload, "pdf", ("qr-payload-signature", "trusted-key",
                                         "pades-signature", "whole-file", "text-matches"))
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            codes = _decode_qr(img)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise InvalidInputError(f"neither a PDF nor a readable image: {exc}") from None
    payload, _ = _check_payload(_payload_bytes(codes), trust, now)
    return Verified(payload, "image", ("qr-payload-signature", "trusted-key"))


def verify_file(path: str | os.PathLike[str], trust: TrustStore, *,
                now: dt.datetime | None = None) -> Verified:
    """:func:`verify_certificate` of the file at ``path``."""
    return verify_certificate(read_regular(Path(path), max_bytes=MAX_FILE), trust, now=now)
