"""Agencies on the network: their client identities and the nodes' registry of them.

An agency (a body of the legal purposes table, e.g. ``jps``) asks the center or a
prefecture for identity confirmation info over mutual TLS. Its client identity is a
directory (:class:`AgencyIdentity`, ``jukicore agency init``)::

    agency.json       the agency id and its key id
    key.pem           its Ed25519 key, wrapped under a password (as a node's keys)
    certificate.pem   its self-signed certificate (jukicore.network.x509.agency_certificate)

The agency hands ``certificate.pem`` to the node's operator, who registers it
(``jukicore node trust-agency``): the node's ``agencies.json`` lists, per agency, the
certificates it accepts. The handshake refuses every other certificate; a registered one
authenticates its agency, which the identity services then hold to its legal purposes
(an agency asks for itself only). Removing a certificate (``--remove``) takes effect at
the server's next handshake.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jukicore._files import PRIVATE_FILE, private_dir, read_regular, write_atomic
from jukicore.errors import ConflictError, CorruptFileError, InvalidInputError, NotFoundError

from .crypto import key_id, load_private_key, save_private_key
from .node import Node, _password, check_password_policy
from .x509 import AGENCY_ID, agency_certificate, agency_of

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["AgencyIdentity", "agency_certificates", "trust_agency", "untrust_agency"]

REGISTRY = "agencies.json"
_FORMAT = "jukicore-agencies"
_MAX = 16 << 20


def certificate_der(data: bytes) -> bytes:
    """One certificate from PEM or DER bytes (InvalidInputError otherwise)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        cert = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_certificate(data))
    except ValueError as e:
        raise InvalidInputError(f"not an X.509 certificate: {e}") from None
    return cert.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class AgencyIdentity:
    """An agency's client identity (see the module's text)."""

    path: Path
    agency: str
    key: Ed25519PrivateKey
    certificate: bytes  # DER

    @classmethod
    def create(cls, path: str | os.PathLike[str], agency: str, password: str | bytes, *,
               valid_from: dt.datetime | None = None) -> AgencyIdentity:
        """Make the directory (refused when it holds an identity already)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding

        if not isinstance(agency, str) or not AGENCY_ID.fullmatch(agency):
            raise InvalidInputError(f"agency {agency!r}: an id of the legal purposes table")
        check_password_policy(password)
        p = Path(path)
        if os.path.lexists(p / "agency.json"):
            raise ConflictError(f"{p} holds an agency identity already")
        key = Ed25519PrivateKey.generate()
        der = agency_certificate(key, agency, valid_from=valid_from).public_bytes(Encoding.DER)
        private_dir(p, parents=True)
        save_private_key(key, p / "key.pem", password)
        write_atomic(p / "certificate.pem", ssl.DER_cert_to_PEM_cert(der).encode(), mode=0o644)
        doc = {"agency": agency, "key_id": key_id(key.public_key())}
        write_atomic(p / "agency.json", (json.dumps(doc, indent=2) + "\n").encode(),
                     mode=PRIVATE_FILE)
        return cls(p, agency, key, der)

    @classmethod
    def open(cls, path: str | os.PathLike[str], password: str | bytes | None) -> AgencyIdentity:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        p = Path(path)
        if not os.path.lexists(p / "agency.json"):
            raise NotFoundError(f"{p} is not an agency identity (no agency.json): run"
                                " jukicore agency init")
        try:
            doc = json.loads(read_regular(p / "agency.json", max_bytes=_MAX))
            agency = doc["agency"]
            der = certificate_der(read_regular(p / "certificate.pem", max_bytes=_MAX))
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise CorruptFileError(f"{p}: damaged agency identity: {e}") from None
        key = load_private_key(p / "key.pem", _password(password))
        if not isinstance(key, Ed25519PrivateKey) or doc.get("key_id") != key_id(
                key.public_key()):
            raise CorruptFileError(f"{p}: key.pem does not match agency.json")
        cert = x509.load_der_x509_certificate(der)
        if agency_of(cert) != agency or key_id(cert.public_key()) != doc["key_id"]:  # type: ignore[arg-type]
            raise CorruptFileError(f"{p}: certificate.pem is not {agency}'s for this key")
        return cls(p, agency, key, der)


def _registry(node: Node) -> dict[str, list[bytes]]:
    where = node.path / REGISTRY
    if not os.path.lexists(where):
        return {}
    try:
        doc = json.loads(read_regular(where, max_bytes=_MAX))
        if doc.get("format") != _FORMAT:
            raise ValueError("not a registry of agency certificates")
        return {str(a): [base64.b64decode(c, validate=True) for c in certs]
                for a, certs in doc["agencies"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise CorruptFileError(f"{where} is damaged: {e}") from None


def _save(node: Node, reg: dict[str, list[bytes]]) -> None:
    doc: dict[str, Any] = {"format": _FORMAT, "agencies": {
        a: [base64.b64encode(c).decode() for c in certs] for a, certs in sorted(reg.items())
        if certs}}
    write_atomic(node.path / REGISTRY, (json.dumps(doc, indent=2) + "\n").encode(),
                 mode=PRIVATE_FILE)


def agency_certificates(node: Node) -> dict[str, list[bytes]]:
    """Per agency, the certificates (DER) the node accepts."""
    return _registry(node)


def trust_agency(node: Node, certificate: bytes) -> str:
    """Register an agency's certificate (PEM or DER) at ``node``; returns the agency id.
    Refused: not an agency certificate, not self-signed by its key, expired, or
    registered already. Only the center and the prefectures answer agencies."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if node.role == "municipality":
        raise InvalidInputError("agencies ask the center or a prefecture, not a municipality")
    der = certificate_der(bytes(certificate))
    cert = x509.load_der_x509_certificate(der)
    agency = agency_of(cert)
    if agency is None or not AGENCY_ID.fullmatch(agency):
        raise InvalidInputError("not an agency certificate (no urn:jukicore:agency: name"
                                " agreeing with its common name)")
    key = cert.public_key()
    try:
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidSignature
        key.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        raise InvalidInputError(f"{agency}: the certificate is not self-signed by an"
                                " Ed25519 key") from None
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC):
        raise InvalidInputError(f"{agency}: the certificate expired on "
                                f"{cert.not_valid_after_utc:%Y-%m-%d}")
    with node.lock("agencies"):
        reg = _registry(node)
        if der in reg.get(agency, []):
            raise ConflictError(f"{agency}: this certificate is registered already")
        reg.setdefault(agency, []).append(der)
        _save(node, reg)
    return agency


def untrust_agency(node: Node, agency: str) -> int:
    """Stop accepting every certificate of ``agency``; how many there were."""
    with node.lock("agencies"):
        reg = _registry(node)
        if agency not in reg:
            raise NotFoundError(f"no certificate of agency {agency!r} is registered")
        n = len(reg.pop(agency))
        _save(node, reg)
    return n
