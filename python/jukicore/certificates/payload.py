"""The signed payload of a certificate's QR code: what it says, when, by whom.

Bytes of the QR code (binary mode)::

    b"JKC1" || deflate(body) || Ed25519 signature (64 bytes)

``body`` is canonical JSON (sorted keys, no spaces, UTF-8) of the issuance number
``no``, the issuing node ``iss`` and its signing key id ``kid``, the issue time ``at``
(UTC, ISO 8601), the municipality's code ``lg`` and name ``muni``, the certifying
office ``by``, and the certificate's content ``c``
(:meth:`~jukicore.certificates.compose.Composition.to_json`: kind, scope, items, the
household's address and head, the members' printed values). The signature covers
``b"jukicore/certificate/v1\\0" || body`` (the uncompressed body: what is verified is
what is read). Deflate keeps a household's repeated names and address small; a body
of more than :data:`MAX_BODY` bytes is refused before it is inflated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jukicore.errors import InvalidInputError

from .compose import Composition

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["MAGIC", "Payload", "decode_payload", "encode_payload", "qr_png"]

MAGIC = b"JKC1"
_DOMAIN = b"jukicore/certificate/v1\0"
SIG_LEN = 64
#: The QR code's data mask (ISO/IEC 18004 allows any of the eight; the encoder's usual
#: choice by penalty score costs segno about 50 ms on a version-24 code, a sixth of the
#: issue's time budget; readers decode every mask, the tests decode a 200 dpi scan).
QR_MASK = 4
#: The largest body a payload may inflate to.
MAX_BODY = 64 * 1024


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Payload:
    """What a certificate's QR code says (see the module's text)."""

    number: str
    node_id: str
    key_id: str
    issued_at: dt.datetime
    lg_code: str
    municipality: str
    certifier: str
    composition: Composition

    def body(self) -> bytes:
        doc = {"v": 1, "no": self.number, "iss": self.node_id, "kid": self.key_id,
               "at": _iso(self.issued_at), "lg": self.lg_code, "muni": self.municipality,
               "by": self.certifier, "c": self.composition.to_json()}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()

    def to_json(self) -> dict[str, Any]:
        c = self.composition
        return {
            "number": self.number, "node_id": self.node_id, "key_id": self.key_id,
            "issued_at": _iso(self.issued_at), "lg_code": self.lg_code,
            "municipality": self.municipality, "certifier": self.certifier,
            "title": c.title, "kind": c.kind, "scope": c.scope, "wide_area": c.wide_area,
            "items": list(c.items), "address": c.address, "head": c.head,
            "members": [dict(c.rows(i)) for i in range(len(c.members))],
        }


def encode_payload(payload: Payload, key: Ed25519PrivateKey) -> bytes:
    """The QR code's bytes of ``payload``, signed with ``key``."""
    body = payload.body()
    return MAGIC + zlib.compress(body, 9) + key.sign(_DOMAIN + body)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_payload(data: bytes) -> tuple[bytes, bytes, Payload]:
    """(body, signature, payload) of QR bytes; a malformed payload is an
    :class:`InvalidInputError` (nothing is verified here)."""
    if not isinstance(data, bytes | bytearray) or not data.startswith(MAGIC) \
            or len(data) < len(MAGIC) + SIG_LEN + 8:
        raise InvalidInputError("not a jukicore certificate payload")
    packed, sig = bytes(data[len(MAGIC):-SIG_LEN]), bytes(data[-SIG_LEN:])
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(packed, MAX_BODY)
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise InvalidInputError("the payload's body is too large, cut or followed by data")
    except zlib.error as exc:
        raise InvalidInputError(f"the payload's body does not inflate: {exc}") from None
    try:
        doc = json.loads(body)
        if doc.get("v") != 1:
            raise ValueError(f"unknown payload version {doc.get('v')!r}")
        at = dt.datetime.fromisoformat(str(doc["at"]).replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise ValueError("issue time without a time zone")
        texts = [doc[k] for k in ("no", "iss", "kid", "lg", "muni", "by")]
        if not all(isinstance(t, str) and t for t in texts):
            raise ValueError("number, node, key, municipality and office are text")
        payload = Payload(doc["no"], doc["iss"], doc["kid"], at.astimezone(dt.UTC),
                          doc["lg"], doc["muni"], doc["by"], Composition.from_json(doc["c"]))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidInputError(f"not a certificate payload: {exc}") from None
    return body, sig, payload


def check_signature(body: bytes, sig: bytes, key: Ed25519PublicKey) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(sig, _DOMAIN + body)
    except InvalidSignature:
        return False
    return True


def decode_payload(data: bytes, key: Ed25519PublicKey) -> Payload:
    """The payload of QR bytes whose signature ``key`` verifies; else
    :class:`InvalidInputError`."""
    body, sig, payload = split_payload(data)
    if not check_signature(body, sig, key):
        raise InvalidInputError("the payload's signature does not verify")
    return payload


def qr_png(data: bytes, *, scale: int = 4) -> bytes:
    """The QR code (binary mode, error correction M, a quiet zone of 4 modules) of
    ``data`` as a 1-bit PNG; a payload too large for a QR code (version 40) is an
    :class:`InvalidInputError`."""
    import segno

    try:
        qr = segno.make(bytes(data), mode="byte", error="m", boost_error=False, micro=False,
                        mask=QR_MASK)
    except segno.DataOverflowError:
        raise InvalidInputError(
            f"the certificate's signed payload ({len(data)} bytes) does not fit in a QR code:"
            " ask for fewer members or items per certificate") from None
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()
