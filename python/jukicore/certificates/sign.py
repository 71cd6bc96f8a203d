"""The municipality's PAdES signature on a certificate (``pyhanko``), with its node's
Ed25519 key and the node's X.509 certificate (:func:`jukicore.network.x509.node_certificate`).

The signature is PAdES baseline B-B (``ETSI.CAdES.detached``, SHA-512 digest), without a
time-stamp authority (the counter works offline): the signing time is the issue time,
which the QR payload carries too and the verifier compares.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

    from jukicore.network.crypto import NodeKeys

__all__ = ["sign_pdf"]

FIELD = "MunicipalitySignature"


def _signer(keys: NodeKeys, cert: x509.Certificate) -> Any:
    from asn1crypto import keys as akeys
    from asn1crypto import x509 as ax509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der = keys.signing.private_bytes(serialization.Encoding.DER,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    return signers.SimpleSigner(
        signing_cert=ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=akeys.PrivateKeyInfo.load(der),
        cert_registry=SimpleCertificateStore())  # type: ignore[no-untyped-call]


def sign_pdf(pdf: bytes, keys: NodeKeys, cert: x509.Certificate, *,
             when: dt.datetime, reason: str | None = None) -> bytes:
    """``pdf`` signed (an incremental update) by ``keys``' signing key, certified by
    ``cert``, at ``when``."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    class _AtTime(signers.PdfSigner):
        """A signer whose signing time is the issue time, not the clock's."""

        def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False
                                 ) -> Any:
            session = super().init_signing_session(pdf_out, existing_fields_only)
            session.system_time = when
            return session

    meta = signers.PdfSignatureMetadata(
        field_name=FIELD, md_algorithm="sha512", subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason, location=None)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = _AtTime(meta, signer=_signer(keys, cert)).sign_pdf(writer)
    return bytes(out.getvalue())
