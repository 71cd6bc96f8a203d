"""Keys, trust and record encryption for the packets nodes exchange.

Outside the hot path everything uses ``cryptography``: Ed25519 signing keys,
X25519 encryption keys, HKDF-SHA256, AES-256-GCM for the data-key wrap, and
password-protected PKCS#8 PEM files for private keys. Bulk record encryption
runs in Rust (``_jukicore.aead_seal`` / ``aead_open``, hardware AES-GCM).
The constructions are documented in ``docs/crypto.md``; in short:

* **key id**: ``SHA-256(b"jukicore-key-id/v1\\0" || algorithm || b"\\0" ||
  raw public key)``, first 16 bytes, hex (32 characters).
* **data-key wrap** (a fresh 32-byte AES key per packet, for one recipient):
  ephemeral X25519 key ``e``; ``shared = X25519(e, recipient)``;
  ``kek = HKDF-SHA256(ikm=shared, salt=e_pub || recipient_pub,
  info=b"jukicore/v1/data-key-wrap\\0" || context)``;
  ``blob = e_pub || AES-256-GCM(kek, nonce=0^96, data_key, aad=context)``
  (80 bytes). The KEK is used once (fresh ``e``), so the fixed nonce is safe.
  ``context`` binds sender, recipient, key ids and packet id.
* **records** (scheme 2, packets of format 2): each column of a packet has its
  own key ``HKDF-SHA256(ikm=data_key, info=b"jukicore/v2/record-key\0" ||
  context)``, where ``context`` binds packet id, slot, column name, row count
  and the column's null pattern; record ``i`` is sealed under nonce
  ``slot || u64_be(i)`` (the slot, unique per column of a packet, as a 4-byte
  prefix) with AAD ``u64_be(i)``. The context is bound once per column, not
  hashed again into every record (an 8-byte AAD is one GHASH block, not six).
  Scheme 1 (packets of format 1, opened still) sealed every record under the
  data key itself with AAD ``b"jukicore/v1/record\0" || context || u64_be(i)``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jukicore._files import private_dir, read_regular, write_atomic
from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    UntrustedSenderError,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )

__all__ = [
    "DATA_KEY_LEN",
    "ROLES",
    "WRAPPED_KEY_LEN",
    "NodeKeys",
    "PeerKey",
    "RecordCipher",
    "TrustStore",
    "check_certificate",
    "check_node_id",
    "check_path_id",
    "key_id",
    "load_private_key",
    "new_data_key",
    "open_records",
    "private_keys_by_id",
    "save_private_key",
    "seal_records",
    "unwrap_data_key",
    "wrap_context",
    "wrap_data_key",
]

DATA_KEY_LEN = 32
WRAPPED_KEY_LEN = 32 + DATA_KEY_LEN + 16
ROLES = ("municipality", "prefecture", "center")
Role = Literal["municipality", "prefecture", "center"]
#: The one rule for every id that becomes part of a file name (node ids, block ids, the
#: sender and recipient in packet names): 1 to 64 of ``A-Z a-z 0-9 . _ -``, starting with
#: a letter or digit. No separator, no NUL, no ``..`` alone, no newline.
_PATH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: How long after learning of a rotation a packet signed with the retired key (and dated
#: before the rotation) is still accepted: packets in flight when the peer rotated.
RETIRED_KEY_GRACE = dt.timedelta(hours=48)
_WRAP_INFO = b"jukicore/v1/data-key-wrap\0"
_RECORD_AAD = b"jukicore/v1/record\0"
_RECORD_KEY_INFO = b"jukicore/v2/record-key\0"
#: The most a node's small files (trust store, key files, node descriptions) may hold.
_MAX_SMALL_FILE = 16 << 20
_TRUST_FORMAT = "jukicore-trust-store"
_TRUST_VERSION = 1


def _crypto() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without the dependency
        raise MissingDependencyError(
            "jukicore's keys and packets need the 'cryptography' package"
        ) from e


def _utc(when: dt.datetime | None) -> dt.datetime:
    if when is None:
        return dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        raise InvalidInputError("times must be timezone-aware (UTC)")
    return when.astimezone(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("naive time")
    return when.astimezone(dt.UTC)


def check_path_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it may be used in a file name: 1 to 64 characters of
    ``A-Z a-z 0-9 . _ -``, the first a letter or digit (so no path separator, no
    ``..``, no NUL, no newline, nothing absolute). Else :class:`InvalidInputError`."""
    if not isinstance(value, str) or _PATH_ID.fullmatch(value) is None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 \
            else repr(value[:80]) + "..."
        raise InvalidInputError(
            f"invalid {what} {shown}: 1 to 64 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit")
    return value


def check_node_id(node_id: object) -> str:
    """Return ``node_id`` if it is a valid node id (:func:`check_path_id`'s rule)."""
    return check_path_id(node_id, "node id")


# --------------------------------------------------------------------------- keys


def _raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _algorithm(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return b"ed25519" if isinstance(key, Ed25519PublicKey) else b"x25519"


def key_id(public_key: Ed25519PublicKey | X25519PublicKey) -> str:
    """The id of a public key: 16 bytes of a domain-separated SHA-256, as 32 hex digits."""
    h = hashlib.sha256(b"jukicore-key-id/v1\0" + _algorithm(public_key) + b"\0")
    h.update(_raw_public(public_key))
    return h.digest()[:16].hex()


def _password(password: str | bytes) -> bytes:
    pw = password.encode() if isinstance(password, str) else bytes(password)
    if not pw:
        raise InvalidInputError("a private key file needs a non-empty password")
    return pw


#: How private key files are wrapped (docs/crypto.md): scrypt (RFC 7914) with these
#: parameters derives an AES-256-GCM key from the password. N = 2^15, r = 8 (32 MiB of
#: memory per guess), p = 1: the parameters of the scrypt paper for interactive use.
KEY_FILE_FORMAT = "jukicore-private-key"
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
#: The weakest and strongest parameters a key file may name (a file that asks for more
#: memory than this is refused before any work: it could exhaust the machine).
_SCRYPT_MIN_N, _SCRYPT_MAX_N = 1 << 14, 1 << 20
_SCRYPT_MAX_R, _SCRYPT_MAX_P = 32, 16
_SCRYPT_MAX_MEMORY = 1 << 30


def _wrap_aad(n: int, r: int, p: int) -> bytes:
    return f"{KEY_FILE_FORMAT}/v1\0scrypt n={n} r={r} p={p}\0aes-256-gcm".encode()


#: Wrapping keys this process derived (or made), by a hash of their inputs: a process
#: that opened a key file once (or wrote it) opens it again without paying scrypt again.
#: It holds what the process holds anyway (the password, the keys); an offline guesser
#: still pays the full cost per guess.
_DERIVED: OrderedDict[bytes, bytes] = OrderedDict()
_DERIVED_MAX = 256
_DERIVED_LOCK = threading.Lock()


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    memo = hashlib.sha256(b"%d/%d/%d\0%d:" % (n, r, p, len(salt)) + salt + password).digest()
    with _DERIVED_LOCK:
        key = _DERIVED.get(memo)
        if key is not None:
            _DERIVED.move_to_end(memo)
            return key
    key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password)
    with _DERIVED_LOCK:
        _DERIVED[memo] = key
        while len(_DERIVED) > _DERIVED_MAX:
            _DERIVED.popitem(last=False)
    return key


def save_private_key(
    key: Ed25519PrivateKey | X25519PrivateKey, path: str | os.PathLike[str], password: str | bytes
) -> None:
    """Write a private key wrapped under the password (scrypt, AES-256-GCM; the format in
    docs/crypto.md), mode 0600 whatever the umask, atomically."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt, nonce = os.urandom(16), os.urandom(12)
    wrapping = _scrypt(_password(password), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(wrapping).encrypt(nonce, der, _wrap_aad(SCRYPT_N, SCRYPT_R, SCRYPT_P))
    doc = {"format": KEY_FILE_FORMAT, "version": 1,
           "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "aes-256-gcm", "nonce": base64.b64encode(nonce).decode()},
           "key": base64.b64encode(sealed).decode()}
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n", mode=0o600)


def _unwrap(p: Path, data: bytes, password: bytes) -> bytes:
    """The PKCS#8 DER inside a key file of :data:`KEY_FILE_FORMAT`."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        doc = json.loads(data)
        if doc["format"] != KEY_FILE_FORMAT or doc["version"] != 1:
            raise ValueError(f"unknown format {doc['format']!r} version {doc['version']!r}")
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "aes-256-gcm":
            raise ValueError(f"unknown kdf {kdf['name']!r} or cipher {cipher['name']!r}")
        n, r, par = kdf["n"], kdf["r"], kdf["p"]
        if not all(type(v) is int for v in (n, r, par)):
            raise ValueError("scrypt parameters must be integers")
        if not (_SCRYPT_MIN_N <= n <= _SCRYPT_MAX_N and n & (n - 1) == 0
                and 1 <= r <= _SCRYPT_MAX_R and 1 <= par <= _SCRYPT_MAX_P
                and 128 * r * n <= _SCRYPT_MAX_MEMORY):
            raise ValueError(f"scrypt parameters out of bounds (n={n} r={r} p={par})")
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        sealed = base64.b64decode(doc["key"], validate=True)
        if len(salt) < 16 or len(nonce) != 12 or len(sealed) < 17:
            raise ValueError("salt, nonce or key of the wrong size")
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise CorruptFileError(f"{p} is not a readable private key file: {e}") from None
    try:
        return AESGCM(_scrypt(password, salt, n, r, par)).decrypt(
            nonce, sealed, _wrap_aad(n, r, par))
    except InvalidTag:
        raise PermissionDeniedError(
            f"wrong password for private key file {p} (or the file was altered)") from None


def load_private_key(
    path: str | os.PathLike[str], password: str | bytes
) -> Ed25519PrivateKey | X25519PrivateKey:
    """Read a private key written by :func:`save_private_key`, or an older key file
    (password-protected PKCS#8 PEM with PBKDF2 of 2,048 iterations, as jukicore wrote them
    before), which is then written again in the current format (scrypt) under the same
    password, atomically: its weak wrapping lasts until its first use. A node directory
    that cannot be written keeps the old file (a warning says so).

    A wrong password raises :class:`PermissionDeniedError`; a damaged file or a
    key of another type raises :class:`CorruptFileError`.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    p = Path(path)
    if not os.path.lexists(p):
        raise NotFoundError(f"no private key file at {p}")
    data = read_regular(p, max_bytes=_MAX_SMALL_FILE)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=_password(password))
        else:
            key = serialization.load_der_private_key(_unwrap(p, data, _password(password)),
                                                     password=None)
    except (ValueError, TypeError) as e:
        if "password" in str(e).lower() or "decrypt" in str(e).lower():
            raise PermissionDeniedError(f"wrong password for private key file {p}") from e
        raise CorruptFileError(f"{p} is not a readable private key file: {e}") from e
    if not isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        raise CorruptFileError(f"{p} holds a {type(key).__name__}, not an Ed25519/X25519 key")
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            save_private_key(key, p, password)
        except FileError as exc:
            logging.getLogger(__name__).warning(
                "%s keeps its old, weaker wrapping (PBKDF2, 2,048 iterations): %s", p, exc)
    return key


def check_certificate(der: bytes, node_id: str, signing_public: Ed25519PublicKey) -> None:
    """Refuse (:class:`InvalidInputError`) a certificate that is not ``node_id``'s for this
    signing key: not DER X.509, naming another node, holding another key, or not
    self-signed by that key."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from .x509 import node_of

    try:
        cert = x509.load_der_x509_certificate(bytes(der))
        key = cert.public_key()
    except (ValueError, TypeError) as e:
        raise InvalidInputError(f"{node_id}: not an X.509 certificate: {e}") from None
    if node_of(cert) != node_id:
        raise InvalidInputError(f"the certificate names {node_of(cert)!r}, not {node_id!r}")
    if not isinstance(key, Ed25519PublicKey) or _raw_public(key) != _raw_public(
            signing_public):
        raise InvalidInputError(f"{node_id}: the certificate holds another key than the"
                                " signing key it comes with")
    try:
        signing_public.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        raise InvalidInputError(f"{node_id}: the certificate is not signed by its key"
                                ) from None


@dataclass(frozen=True)
class NodeKeys:
    """One generation of a node's private keys: Ed25519 to sign, X25519 to receive.

    Keep retired generations (to open packets sent to their encryption key) by
    saving each in its own directory.
    """

    node_id: str
    signing: Ed25519PrivateKey
    encryption: X25519PrivateKey

    @classmethod
    def generate(cls, node_id: str) -> NodeKeys:
        _crypto()
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        return cls(check_node_id(node_id), Ed25519PrivateKey.generate(),
                   X25519PrivateKey.generate())

    @property
    def signing_key_id(self) -> str:
        return key_id(self.signing.public_key())

    @property
    def encryption_key_id(self) -> str:
        return key_id(self.encryption.public_key())

    def public_record(
        self, role: Role, valid_from: dt.datetime | None = None
    ) -> dict[str, Any]:
        """The public half as a JSON-able dict, for a peer's :meth:`TrustStore.add_record`."""
        if role not in ROLES:
            raise InvalidInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        return {
            "node_id": self.node_id,
            "role": role,
            "signing_public": base64.b64encode(_raw_public(self.signing.public_key())).decode(),
            "encryption_public": base64.b64encode(
                _raw_public(self.encryption.public_key())
            ).decode(),
            "valid_from": _iso(_utc(valid_from)),
        }

    def save(self, directory: str | os.PathLike[str], password: str | bytes) -> None:
        """Write ``signing.pem``, ``encryption.pem`` (wrapped, 0600) and ``node.json`` (0600)
        in ``directory`` (made 0700)."""
        d = private_dir(directory, parents=True)
        pw = _password(password)
        save_private_key(self.signing, d / "signing.pem", pw)
        save_private_key(self.encryption, d / "encryption.pem", pw)
        meta = {"node_id": self.node_id, "signing_key_id": self.signing_key_id,
                "encryption_key_id": self.encryption_key_id}
        write_atomic(d / "node.json", json.dumps(meta, indent=2).encode() + b"\n", mode=0o600)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], password: str | bytes) -> NodeKeys:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        d = Path(directory)
        if not os.path.lexists(d / "node.json"):
            raise NotFoundError(f"no node keys in {d}")
        try:
            meta = json.loads(read_regular(d / "node.json", max_bytes=_MAX_SMALL_FILE))
            node_id = check_node_id(meta["node_id"])
        except (ValueError, KeyError, TypeError, RecursionError) as e:  # InvalidInputError too
            raise CorruptFileError(f"{d / 'node.json'} is damaged: {e}") from e
        signing = load_private_key(d / "signing.pem", password)
        encryption = load_private_key(d / "encryption.pem", password)
        if not isinstance(signing, Ed25519PrivateKey) or not isinstance(
            encryption, X25519PrivateKey
        ):
            raise CorruptFileError(f"{d}: signing.pem / encryption.pem hold the wrong key types")
        keys = cls(node_id, signing, encryption)
        if (keys.signing_key_id, keys.encryption_key_id) != (
            meta.get("signing_key_id"), meta.get("encryption_key_id")
        ):
            raise CorruptFileError(f"{d}: node.json does not match the key files")
        return keys


# ------------------------------------------------------------------ trust store


@dataclass(frozen=True)
class PeerKey:
    """One generation of a peer's public keys and when it may be used.

    ``retired_learned_at`` is when this trust store learned of the rotation that
    retired the generation (the recipient's clock); ``used`` says that a packet signed
    with it has been accepted. Both serve the retired-key rule of
    :meth:`TrustStore.verifying_key`.
    """

    signing_public: Ed25519PublicKey
    encryption_public: X25519PublicKey
    valid_from: dt.datetime
    retired_at: dt.datetime | None = None
    revoked: bool = False
    retired_learned_at: dt.datetime | None = None
    used: bool = False
    #: The generation's X.509 certificate (DER; :mod:`jukicore.network.x509`), which the
    #: peer presents in mutual TLS; None for a generation trusted before certificates.
    certificate: bytes | None = None

    @property
    def signing_key_id(self) -> str:
        return key_id(self.signing_public)

    @property
    def encryption_key_id(self) -> str:
        return key_id(self.encryption_public)

    def valid_at(self, when: dt.datetime) -> bool:
        """Whether a packet created at ``when`` may carry this key's signature."""
        if self.revoked or when < self.valid_from:
            return False
        return self.retired_at is None or when < self.retired_at

    def grace_ends(self) -> dt.datetime | None:
        """When this retired generation stops verifying anything (None while current):
        :data:`RETIRED_KEY_GRACE` after the later of its retirement and the moment the
        rotation was learned."""
        if self.retired_at is None:
            return None
        learned = self.retired_learned_at or self.retired_at
        return max(learned, self.retired_at) + RETIRED_KEY_GRACE

    def _to_json(self) -> dict[str, Any]:
        return {
            "signing_public": base64.b64encode(_raw_public(self.signing_public)).decode(),
            "encryption_public": base64.b64encode(_raw_public(self.encryption_public)).decode(),
            "signing_key_id": self.signing_key_id,
            "encryption_key_id": self.encryption_key_id,
            "valid_from": _iso(self.valid_from),
            "retired_at": None if self.retired_at is None else _iso(self.retired_at),
            "retired_learned_at": None if self.retired_learned_at is None
            else _iso(self.retired_learned_at),
            "revoked": self.revoked,
            "used": self.used,
            "certificate": None if self.certificate is None
            else base64.b64encode(self.certificate).decode(),
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> PeerKey:
        sign, enc = _public_pair(d["signing_public"], d["encryption_public"])

        def when(name: str) -> dt.datetime | None:
            v = d.get(name)
            return None if v is None else _parse_iso(v)

        cert = d.get("certificate")
        key = cls(sign, enc, _parse_iso(d["valid_from"]), when("retired_at"),
                  _strict_bool(d.get("revoked", False)), when("retired_learned_at"),
                  _strict_bool(d.get("used", False)),
                  None if cert is None else base64.b64decode(cert, validate=True))
        if (key.signing_key_id, key.encryption_key_id) != (
            d.get("signing_key_id", key.signing_key_id),
            d.get("encryption_key_id", key.encryption_key_id),
        ):
            raise ValueError("key ids do not match the keys")
        return key


def _strict_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, not {v!r}")
    return v


def _public_pair(signing_b64: str, encryption_b64: str) -> tuple[Ed25519PublicKey, X25519PublicKey]:
    _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    return (Ed25519PublicKey.from_public_bytes(base64.b64decode(signing_b64, validate=True)),
            X25519PublicKey.from_public_bytes(base64.b64decode(encryption_b64, validate=True)))


@dataclass
class _Peer:
    role: Role
    keys: list[PeerKey] = field(default_factory=list)


class TrustStore:
    """The peers a node accepts packets from, with their key generations.

    Rotation: adding a new generation for a peer retires its current one at the
    new one's ``valid_from``. Retired keys still verify packets created while
    they were current (old packets stay verifiable); new packets must be
    signed with, and encrypted to, the current generation. A revoked key
    verifies nothing. Which peer may send what to whom (the relations) is the
    caller's check; :meth:`role` gives the peer's tier.
    """

    def __init__(self) -> None:
        self._peers: dict[str, _Peer] = {}

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._peers

    def __len__(self) -> int:
        return len(self._peers)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._peers))

    def role(self, node_id: str) -> Role:
        return self._peer(node_id).role

    def keys(self, node_id: str) -> tuple[PeerKey, ...]:
        """Every key generation of a peer, oldest first."""
        return tuple(self._peer(node_id).keys)

    def _peer(self, node_id: str) -> _Peer:
        try:
            return self._peers[node_id]
        except KeyError:
            raise NotFoundError(f"node {node_id!r} is not in the trust store") from None

    def add(
        self,
        node_id: str,
        role: Role,
        signing_public: Ed25519PublicKey,
        encryption_public: X25519PublicKey,
        valid_from: dt.datetime | None = None,
        certificate: bytes | None = None,
    ) -> PeerKey:
        """Trust a peer's key generation (a new peer, or a rotation of a known one), with
        its X.509 ``certificate`` (DER) for mutual TLS.

        Refused with :class:`ConflictError` (and nothing changed) when the peer is
        known with another role, the key is already known, or ``valid_from`` is
        not after the current generation's. The one exception: a known generation
        trusted without a certificate takes the certificate of the same keys (a trust
        store made before certificates, brought up to date by the same record again).
        A certificate that is not the peer's (another key, another node id, not
        parseable) is :class:`InvalidInputError`.
        """
        check_node_id(node_id)
        if role not in ROLES:
            raise InvalidInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        when = _utc(valid_from)
        if certificate is not None:
            check_certificate(certificate, node_id, signing_public)
        new = PeerKey(signing_public, encryption_public, when, certificate=certificate)
        peer = self._peers.get(node_id)
        if peer is not None and certificate is not None:
            for i, g in enumerate(peer.keys):
                if (g.signing_key_id, g.encryption_key_id, g.valid_from) == (
                        new.signing_key_id, new.encryption_key_id, when) \
                        and g.certificate is None and peer.role == role:
                    peer.keys[i] = replace(g, certificate=certificate)
                    return peer.keys[i]
        known = {k for p in self._peers.values() for g in p.keys
                 for k in (g.signing_key_id, g.encryption_key_id)}
        if new.signing_key_id in known or new.encryption_key_id in known:
            raise ConflictError(f"a key of this generation for {node_id!r} is already trusted")
        if peer is None:
            self._peers[node_id] = _Peer(role, [new])
            return new
        if peer.role != role:
            raise ConflictError(f"node {node_id!r} is trusted as a {peer.role}, not a {role}")
        current = self._current_index(peer)
        if current is not None:
            cur = peer.keys[current]
            if when <= cur.valid_from:
                raise ConflictError(
                    f"a new key for {node_id!r} must become valid after the current one "
                    f"({_iso(cur.valid_from)})"
                )
            peer.keys[current] = replace(cur, retired_at=when,
                                         retired_learned_at=dt.datetime.now(dt.UTC))
        peer.keys.append(new)
        return new

    def add_record(self, record: dict[str, Any]) -> PeerKey:
        """Trust a peer from its :meth:`NodeKeys.public_record`."""
        try:
            sign, enc = _public_pair(record["signing_public"], record["encryption_public"])
            valid_from = _parse_iso(record["valid_from"])
            node_id, role = record["node_id"], record["role"]
            cert = record.get("certificate")
            der = None if cert is None else base64.b64decode(cert, validate=True)
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise InvalidInputError(f"not a node's public record: {e}") from e
        return self.add(node_id, role, sign, enc, valid_from, der)

    def certificates(self, node_id: str | None = None) -> list[bytes]:
        """The X.509 certificates (DER) that mutual TLS accepts: of every generation of
        ``node_id`` (or of every peer) that is neither revoked nor past its grace
        period after a rotation, and that came with a certificate."""
        now = dt.datetime.now(dt.UTC)
        out = []
        for nid in ([node_id] if node_id is not None else sorted(self._peers)):
            for k in self._peer(nid).keys:
                ends = k.grace_ends()
                if k.certificate is not None and not k.revoked and (ends is None or now < ends):
                    out.append(k.certificate)
        return out

    def revoke(self, node_id: str, signing_key_id: str) -> None:
        """Stop trusting a (compromised) key generation for anything, even old packets."""
        peer = self._peer(node_id)
        for i, k in enumerate(peer.keys):
            if k.signing_key_id == signing_key_id:
                peer.keys[i] = replace(k, revoked=True)
                return
        raise NotFoundError(f"node {node_id!r} has no key {signing_key_id}")

    @staticmethod
    def _current_index(peer: _Peer) -> int | None:
        for i in range(len(peer.keys) - 1, -1, -1):
            k = peer.keys[i]
            if not k.revoked and k.retired_at is None:
                return i
        return None

    def current(self, node_id: str) -> PeerKey:
        """The generation to encrypt to (and to expect new packets to be signed with)."""
        peer = self._peer(node_id)
        i = self._current_index(peer)
        if i is None:
            raise NotFoundError(f"node {node_id!r} has no current (unretired, unrevoked) key")
        return peer.keys[i]

    def verifying_key(self, node_id: str, signing_key_id: str, at: dt.datetime, *,
                      now: dt.datetime | None = None) -> PeerKey:
        """The generation that may verify a packet of ``node_id`` signed with
        ``signing_key_id`` and created at ``at``.

        Raises :class:`UntrustedSenderError` (a ``PermissionDeniedError``) for an
        unknown sender, an unknown or revoked key, a key that was not current at
        ``at``, and a retired key (rotated out) once the peer has been seen using a
        newer generation or once :data:`RETIRED_KEY_GRACE` has passed since the
        rotation took effect and was learned (``now``, default the clock). A retired
        key therefore cannot sign new entries by dating them before its retirement:
        only packets in flight at the rotation still pass.
        """
        peer = self._peers.get(node_id)
        if peer is None:
            raise UntrustedSenderError(f"unknown sender {node_id!r}: not in the trust store")
        for i, k in enumerate(peer.keys):
            if k.signing_key_id == signing_key_id:
                if k.revoked:
                    raise UntrustedSenderError(
                        f"sender {node_id!r} key {signing_key_id} has been revoked"
                    )
                if not k.valid_at(at):
                    raise UntrustedSenderError(
                        f"sender {node_id!r} key {signing_key_id} was not current at {_iso(at)}"
                    )
                ends = k.grace_ends()
                if ends is not None:
                    if any(n.used for n in peer.keys[i + 1:]):
                        raise UntrustedSenderError(
                            f"sender {node_id!r} key {signing_key_id} is retired and the "
                            "sender already signs with a newer key")
                    if _utc(now) >= ends:
                        raise UntrustedSenderError(
                            f"sender {node_id!r} key {signing_key_id} is retired and its "
                            f"grace period for packets in flight ended at {_iso(ends)}")
                return k
        raise UntrustedSenderError(
            f"sender {node_id!r} signed with key {signing_key_id}, which is not in the trust store"
        )

    def note_used(self, node_id: str, signing_key_id: str) -> bool:
        """Record that a packet signed with this key of ``node_id`` was accepted; True
        when that is news (the caller then saves the store). From then on the peer's
        older generations verify nothing (see :meth:`verifying_key`)."""
        peer = self._peer(node_id)
        for i, k in enumerate(peer.keys):
            if k.signing_key_id == signing_key_id:
                if k.used:
                    return False
                peer.keys[i] = replace(k, used=True)
                return True
        raise NotFoundError(f"node {node_id!r} has no key {signing_key_id}")

    # ------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _TRUST_FORMAT,
            "version": _TRUST_VERSION,
            "peers": {
                node: {"role": p.role, "keys": [k._to_json() for k in p.keys]}
                for node, p in sorted(self._peers.items())
            },
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store as JSON (atomically: a crash leaves the old file or the new one;
        mode 0600, as every file of a node)."""
        data = json.dumps(self.to_json(), indent=2, ensure_ascii=False).encode() + b"\n"
        write_atomic(path, data, mode=0o600)

    @classmethod
    def from_json(cls, doc: Any) -> TrustStore:
        if not isinstance(doc, dict) or doc.get("format") != _TRUST_FORMAT:
            raise CorruptFileError("not a jukicore trust store")
        if doc.get("version") != _TRUST_VERSION:
            raise CorruptFileError(f"unsupported trust store version {doc.get('version')!r}")
        store = cls()
        try:
            for node, p in doc["peers"].items():
                check_node_id(node)
                if p["role"] not in ROLES:
                    raise ValueError(f"unknown role {p['role']!r}")
                store._peers[node] = _Peer(p["role"], [PeerKey._from_json(k) for k in p["keys"]])
                for k in store._peers[node].keys:
                    if k.certificate is not None:
                        check_certificate(k.certificate, node, k.signing_public)
        except (KeyError, ValueError, TypeError, AttributeError, InvalidInputError) as e:
            raise CorruptFileError(f"damaged trust store: {e}") from e
        return store

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustStore:
        p = Path(path)
        if not os.path.lexists(p):
            raise NotFoundError(f"no trust store at {p}")
        raw = read_regular(p, max_bytes=_MAX_SMALL_FILE)
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as e:  # also invalid UTF-8
            raise CorruptFileError(f"{p} is not valid JSON: {e}") from e
        return cls.from_json(doc)


# -------------------------------------------------------------- data-key wrap


def new_data_key() -> bytes:
    """A fresh random 32-byte AES-256 data key (one per packet)."""
    return os.urandom(DATA_KEY_LEN)


def wrap_context(
    sender: str, sender_key_id: str, recipient: str, recipient_key_id: str, packet_id: bytes
) -> bytes:
    """The unambiguous (length-prefixed) binding a wrapped data key is tied to."""
    parts = [p.encode() for p in (sender, sender_key_id, recipient, recipient_key_id)]
    parts.append(bytes(packet_id))
    return b"".join(struct.pack(">H", len(p)) + p for p in parts)


def _kek(shared: bytes, eph_pub: bytes, recipient_pub: bytes, context: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub,
                info=_WRAP_INFO + context).derive(shared)


def wrap_data_key(data_key: bytes, recipient: X25519PublicKey, context: bytes) -> bytes:
    """Wrap ``data_key`` for ``recipient`` (ephemeral X25519 + HKDF + AES-256-GCM)."""
    _crypto()
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(data_key) != DATA_KEY_LEN:
        raise InvalidInputError(f"a data key is {DATA_KEY_LEN} bytes")
    eph = X25519PrivateKey.generate()
    eph_pub = _raw_public(eph.public_key())
    kek = _kek(eph.exchange(recipient), eph_pub, _raw_public(recipient), context)
    return eph_pub + AESGCM(kek).encrypt(bytes(12), bytes(data_key), context)


def unwrap_data_key(blob: bytes, recipient: X25519PrivateKey, context: bytes) -> bytes:
    """Recover a data key wrapped by :func:`wrap_data_key`; refuses with
    :class:`CorruptFileError` if the blob, the key or the context differ."""
    _crypto()
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) != WRAPPED_KEY_LEN:
        raise CorruptFileError(f"a wrapped data key is {WRAPPED_KEY_LEN} bytes, got {len(blob)}")
    eph_pub = bytes(blob[:32])
    try:
        shared = recipient.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        kek = _kek(shared, eph_pub, _raw_public(recipient.public_key()), context)
        return AESGCM(kek).decrypt(bytes(12), bytes(blob[32:]), context)
    except (InvalidTag, ValueError) as e:
        raise CorruptFileError("the wrapped data key does not open (tampered or not ours)") from e


# ------------------------------------------------------------ record columns


def _pa() -> Any:
    import pyarrow as pa

    return pa


def _np() -> Any:
    import numpy as np

    return np


def _as_array(column: Any, name: str) -> pa.Array:
    pa = _pa()
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not isinstance(column, pa.Array):
        raise InvalidInputError(f"column {name!r} is not a pyarrow Array or ChunkedArray")
    return column


def _validity_digest(arr: pa.Array) -> bytes:
    np = _np()
    if arr.null_count == 0:
        return hashlib.sha256(b"no-nulls").digest()
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    return hashlib.sha256(np.packbits(mask).tobytes()).digest()


#: Record schemes: 2 (per-column key, AAD = row index), 1 (data key, long AAD; open only
#: in practice, for packets of format 1).
RECORD_SCHEMES = (1, 2)


def _record_context(packet_id: bytes, slot: int, name: str, arr: pa.Array) -> bytes:
    nb = name.encode()
    return (bytes(packet_id) + struct.pack(">IH", slot, len(nb)) + nb
            + struct.pack(">Q", len(arr)) + _validity_digest(arr))


def _record_key_and_aad(scheme: int, data_key: bytes, packet_id: bytes, slot: int, name: str,
                        arr: pa.Array) -> tuple[bytes, bytes]:
    """The AES key and the AAD prefix of a column's records under ``scheme``."""
    context = _record_context(packet_id, slot, name, arr)
    if scheme == 1:
        return data_key, _RECORD_AAD + context
    if scheme != 2:
        raise InvalidInputError(f"unknown record scheme {scheme}; one of {RECORD_SCHEMES}")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=_RECORD_KEY_INFO + context).derive(data_key)
    return key, b""


def seal_records(
    data_key: bytes, packet_id: bytes, slot: int, name: str, column: Any, *,
    parallel: bool = True, scheme: int = 2,
) -> pa.Array:
    """Encrypt every value of ``column`` (binary, string or fixed-width) into a
    ``large_binary`` column of ``ct || tag`` records; nulls stay null.

    ``(data_key, slot)`` must never be used twice: :class:`RecordCipher` hands out
    slots. Values are read in place from the column's buffers (no copy).
    """
    from jukicore import _jukicore

    arr = _as_array(column, name)
    if not 0 <= slot < 2**32:
        raise InvalidInputError("a column slot is a 32-bit unsigned number")
    key, aad = _record_key_and_aad(scheme, data_key, packet_id, slot, name, arr)
    # The column crosses into Rust through the Arrow C data interface (no copy); the type
    # check (binary, string or fixed-width) and the result's nulls are the core's.
    try:
        return _jukicore.aead_seal_array(key, struct.pack(">I", slot), aad, arr,
                                         parallel=parallel)
    except InvalidInputError as e:
        raise InvalidInputError(f"column {name!r}: {e}") from None


def open_records(
    data_key: bytes,
    packet_id: bytes,
    slot: int,
    name: str,
    column: Any,
    *,
    type: pa.DataType,
    parallel: bool = True,
    scheme: int = 2,
) -> pa.Array:
    """Decrypt a column sealed by :func:`seal_records` back to ``type``.

    A record that fails authentication (wrong key, altered, moved to another
    row, column or packet, or a changed null pattern) raises
    :class:`CorruptFileError` naming the first failing row; nothing is returned.
    """
    from jukicore import _jukicore

    arr = _as_array(column, name)
    key, aad = _record_key_and_aad(scheme, data_key, packet_id, slot, name, arr)
    try:
        return _jukicore.aead_open_array(key, struct.pack(">I", slot), aad, arr, type,
                                         parallel=parallel)
    except CorruptFileError as e:
        raise CorruptFileError(f"column {name!r}: {e}") from None
    except InvalidInputError as e:
        raise InvalidInputError(f"column {name!r}: {e}") from None


class RecordCipher:
    """Seals the columns of one packet under one fresh data key.

    Each column gets its own slot (the 4-byte nonce prefix), so no
    (key, nonce) pair is ever used twice; sealing a column name twice is refused.
    """

    def __init__(self, data_key: bytes, packet_id: bytes, *, scheme: int = 2) -> None:
        if scheme not in RECORD_SCHEMES:
            raise InvalidInputError(f"unknown record scheme {scheme}; one of {RECORD_SCHEMES}")
        if len(data_key) != DATA_KEY_LEN:
            raise InvalidInputError(f"a data key is {DATA_KEY_LEN} bytes")
        if len(packet_id) != 16:
            raise InvalidInputError("a packet id is 16 bytes")
        self._key = bytes(data_key)
        self._packet_id = bytes(packet_id)
        self._scheme = scheme
        self._slots: dict[str, int] = {}

    @property
    def slots(self) -> dict[str, int]:
        return dict(self._slots)

    def seal(self, name: str, column: Any) -> tuple[int, pa.Array]:
        """Encrypt a column; returns (its slot, the ``large_binary`` ciphertext column)."""
        if name in self._slots:
            raise ConflictError(f"column {name!r} was already sealed under this data key")
        slot = len(self._slots)
        sealed = seal_records(self._key, self._packet_id, slot, name, column,
                              scheme=self._scheme)
        self._slots[name] = slot
        return slot, sealed

    def open(self, name: str, slot: int, column: Any, type: pa.DataType) -> pa.Array:
        """Decrypt a column this packet's data key sealed (see :func:`open_records`)."""
        return open_records(self._key, self._packet_id, slot, name, column, type=type,
                            scheme=self._scheme)


def private_keys_by_id(keys: NodeKeys | Iterable[NodeKeys]) -> dict[str, NodeKeys]:
    """Index a node's key generations by encryption key id."""
    gens = [keys] if isinstance(keys, NodeKeys) else list(keys)
    return {k.encryption_key_id: k for k in gens}
