"""A node's X.509 certificate: its Ed25519 signing key, bound to its node id.

The certificate is self-signed (signed with the node's own key): what makes it
trusted is not a certificate authority but the peer's trust store
(:class:`jukicore.network.crypto.TrustStore`), which holds the node's public key
generations. A verifier therefore accepts a certificate only when its public key is
a generation the trust store holds for the node it names (:func:`node_of`), valid at
the time that matters. It serves the PAdES signatures of certificates of residence
(:mod:`jukicore.certificates`) and mutual TLS between nodes (:mod:`jukicore.network.tls`);
agencies have certificates of the same form (:func:`agency_certificate`).

Contents: subject and issuer ``CN=<node id>, OU=<role>, O=jukicore``; a subject
alternative name ``urn:jukicore:node:<node id>``; not a CA; key usage digital
signature and non-repudiation (content commitment); extended key usage TLS server
and client; the subject key identifier. The serial number is derived from the key id
and the start of validity, so the same key and start give the same certificate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import TYPE_CHECKING

from jukicore.errors import InvalidInputError

from .crypto import ROLES, NodeKeys, check_node_id

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["AGENCY_URN", "NODE_URN", "agency_certificate", "agency_of", "node_certificate",
           "node_of"]

NODE_URN = "urn:jukicore:node:"
AGENCY_URN = "urn:jukicore:agency:"
#: An agency id (as the legal purposes table has them).
AGENCY_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: How long a node certificate is valid by default (a key generation is rotated well
#: within it; old certificates stay verifiable by the trust store's generations).
DEFAULT_YEARS = 10


def node_certificate(keys: NodeKeys, role: str = "municipality", *,
                     valid_from: dt.datetime | None = None,
                     years: int = DEFAULT_YEARS) -> x509.Certificate:
    """The node's self-signed X.509 certificate for its current signing key (see the
    module's text). ``valid_from``: the start of validity (default: now; give the key
    generation's ``valid_from`` for a stable certificate)."""
    check_node_id(keys.node_id)
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return _self_signed(keys.signing, keys.node_id, role, NODE_URN + keys.node_id,
                        keys.signing_key_id, valid_from, years)


def agency_certificate(key: Ed25519PrivateKey, agency: str, *,
                       valid_from: dt.datetime | None = None,
                       years: int = DEFAULT_YEARS) -> x509.Certificate:
    """An agency's self-signed certificate for mutual TLS: as a node's, with ``CN=<agency
    id>, OU=agency`` and the alternative name ``urn:jukicore:agency:<agency id>``. A node
    accepts it only when its operator registered it (:mod:`jukicore.network.agency`)."""
    from .crypto import key_id

    if not isinstance(agency, str) or not AGENCY_ID.fullmatch(agency):
        raise InvalidInputError(f"agency {agency!r}: an id of the legal purposes table")
    return _self_signed(key, agency, "agency", AGENCY_URN + agency,
                        key_id(key.public_key()), valid_from, years)


def _self_signed(key: Ed25519PrivateKey, cn: str, ou: str, urn: str, kid: str,
                 valid_from: dt.datetime | None, years: int) -> x509.Certificate:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not isinstance(years, int) or isinstance(years, bool) or not 1 <= years <= 30:
        raise InvalidInputError("a node certificate is valid for 1 to 30 years")
    start = (valid_from or dt.datetime.now(dt.UTC))
    if start.tzinfo is None:
        raise InvalidInputError("valid_from must be timezone-aware")
    start = start.astimezone(dt.UTC).replace(microsecond=0)
    try:
        end = start.replace(year=start.year + years)
    except ValueError:  # 29 February
        end = start.replace(year=start.year + years, day=28)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jukicore"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])
    public = key.public_key()
    serial = int.from_bytes(hashlib.sha256(
        f"{kid}\0{start.isoformat()}".encode()).digest()[:16], "big") >> 1
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial or 1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(urn)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, None)
    )


def node_of(cert: x509.Certificate) -> str | None:
    """The node id a node certificate names (its ``urn:jukicore:node:`` alternative
    name, which must agree with its common name); None when it names none."""
    return _named(cert, NODE_URN)


def agency_of(cert: x509.Certificate) -> str | None:
    """The agency id an agency certificate names (``urn:jukicore:agency:``, agreeing with
    its common name); None when it names none."""
    return _named(cert, AGENCY_URN)


def _named(cert: x509.Certificate, prefix: str) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    urns = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(prefix)]
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(urns) != 1 or cns != [urns[0][len(prefix):]]:
        return None
    return urns[0][len(prefix):]
