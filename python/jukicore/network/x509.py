"""A node's X.509 certificate: its Ed25519 signing key, bound to its node id.

The certificate is self-signed (signed with the node's own key): what makes it
trusted is not a certificate authority but the peer's trust store
(:class:`jukicore.network.crypto.TrustStore`), which holds the node's public key
generations. A verifier therefore accepts a certificate only when its public key is
a generation the trust store holds for the node it names (:func:`node_of`), valid at
the time that matters. It serves the PAdES signatures of certificates of residence
(:mod:`jukicore.certificates`) and, later, mutual TLS between nodes.

Contents: subject and issuer ``CN=<node id>, OU=<role>, O=jukicore``; a subject
alternative name ``urn:jukicore:node:<node id>``; not a CA; key usage digital
signature and non-repudiation (content commitment); extended key usage TLS server
and client; the subject key identifier. The serial number is derived from the key id
and the start of validity, so the same key and start give the same certificate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING

from jukicore.errors import InvalidInputError

from .crypto import ROLES, NodeKeys, check_node_id

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["NODE_URN", "node_certificate", "node_of"]

NODE_URN = "urn:jukicore:node:"
#: How long a node certificate is valid by default (a key generation is rotated well
#: within it; old certificates stay verifiable by the trust store's generations).
DEFAULT_YEARS = 10


def node_certificate(keys: NodeKeys, role: str = "municipality", *,
                     valid_from: dt.datetime | None = None,
                     years: int = DEFAULT_YEARS) -> x509.Certificate:
    """The node's self-signed X.509 certificate for its current signing key (see the
    module's text). ``valid_from``: the start of validity (default: now; give the key
    generation's ``valid_from`` for a stable certificate)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    check_node_id(keys.node_id)
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not isinstance(years, int) or not 1 <= years <= 30:
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
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        x509.NameAttribute(NameOID.COMMON_NAME, keys.node_id),
    ])
    public = keys.signing.public_key()
    serial = int.from_bytes(hashlib.sha256(
        f"{keys.signing_key_id}\0{start.isoformat()}".encode()).digest()[:16], "big") >> 1
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
            [x509.UniformResourceIdentifier(NODE_URN + keys.node_id)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(keys.signing, None)
    )


def node_of(cert: x509.Certificate) -> str | None:
    """The node id a node certificate names (its ``urn:jukicore:node:`` alternative
    name, which must agree with its common name); None when it names none."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    urns = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(NODE_URN)]
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(urns) != 1 or cns != [urns[0][len(NODE_URN):]]:
        return None
    return urns[0][len(NODE_URN):]
