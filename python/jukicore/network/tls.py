"""Mutual TLS 1.3 between nodes (and agencies): the contexts and who is on the other end.

Every node presents its X.509 certificate (:meth:`jukicore.network.node.Node.certificate`:
self-signed by its current Ed25519 signing key, the same bytes its peers received in its
public record) and requires one from the other end. What a side accepts is exactly a set
of certificates, each its own trust anchor:

* a server accepts the certificates of its trust store (every peer's generations that are
  neither revoked nor past their grace after a rotation) and of its registry of agencies
  (:mod:`jukicore.network.agency`); anything else is refused in the handshake, before a
  byte of HTTP;
* a client accepts only the certificates of the one node it calls, so that a trusted
  node cannot pose as another (there are no host names to check: the certificate names
  the node).

TLS 1.3 only (no older version, no renegotiation, no compression). The private key goes
to OpenSSL through a temporary file in a private directory, encrypted under a one-time
password and removed as soon as OpenSSL has read it.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from jukicore.errors import NotFoundError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["client_context", "server_context"]


def _identity(ctx: ssl.SSLContext, certificate: bytes, key: Ed25519PrivateKey) -> None:
    from cryptography.hazmat.primitives import serialization

    once = secrets.token_bytes(32)
    pem_key = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(once))
    with tempfile.TemporaryDirectory(prefix="jukicore-tls-") as d:
        cert_path, key_path = Path(d) / "cert.pem", Path(d) / "key.pem"
        for path, data in ((cert_path, ssl.DER_cert_to_PEM_cert(certificate).encode()),
                           (key_path, pem_key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert_path, key_path, password=once)


def _accept(ctx: ssl.SSLContext, certificates: Iterable[bytes], whom: str) -> None:
    ders = list(dict.fromkeys(certificates))
    if not ders:
        raise NotFoundError(f"no certificate to accept from {whom}: trust a peer first"
                            " (jukicore node trust with a record that has a certificate)")
    ctx.load_verify_locations(cadata=b"".join(ders))


def _base(purpose: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx


def server_context(certificate: bytes, key: Ed25519PrivateKey,
                   accepted: Iterable[bytes]) -> ssl.SSLContext:
    """A server's context: it presents ``certificate`` and requires a client certificate
    among ``accepted`` (DER)."""
    ctx = _base(ssl.PROTOCOL_TLS_SERVER)
    _identity(ctx, certificate, key)
    _accept(ctx, accepted, "clients")
    return ctx


def client_context(certificate: bytes, key: Ed25519PrivateKey,
                   server_certificates: Iterable[bytes]) -> ssl.SSLContext:
    """A client's context: it presents ``certificate`` and accepts only a server that
    presents one of ``server_certificates`` (the one peer it calls)."""
    ctx = _base(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the pinned certificates name the node (no host names)
    _identity(ctx, certificate, key)
    _accept(ctx, server_certificates, "the server")
    return ctx
