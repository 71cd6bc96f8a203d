"""Operator cards: an operator's Ed25519 private key in its own file, wrapped under its PIN.

The card file (mode 0600, written through :func:`jukicore._files.write_atomic`) is UTF-8
JSON::

    {"format": "jukicore-operator-card", "version": 1,
     "operator_id": "...",
     "public_key": base64(raw Ed25519 public key, 32 bytes),
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": base64(16 bytes)},
     "nonce": base64(12 bytes),
     "wrapped_key": base64(AES-256-GCM(kek, nonce, raw private key (32 bytes), aad))}

``kek = scrypt(PIN as UTF-8, salt, n, r, p, 32 bytes)``; ``aad`` binds the format, the
operator id, the public key and the KDF parameters
(``b"jukicore-operator-card/v1\\0" || operator_id || b"\\0" || public_key || b"\\0" ||
"scrypt:n:r:p" || b"\\0" || salt``), so none of them can be swapped. A card is read only
with n from 2**15 (:data:`MIN_SCRYPT_N`) to 2**20, r at most 32 and p at most 16; the
private key must match the public key. A wrong PIN, a changed byte, an unknown version
all fail the same way (:class:`~jukicore.errors.CorruptFileError` for a file that is not
a card, :class:`~jukicore.errors.PermissionDeniedError` when the PIN does not open it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jukicore._files import read_regular, write_atomic
from jukicore.errors import CorruptFileError, InvalidInputError, PermissionDeniedError

__all__ = [
    "CARD_FORMAT",
    "MIN_PIN_LENGTH",
    "MIN_SCRYPT_N",
    "Card",
    "check_pin",
    "create_card",
    "key_id_of",
    "load_card",
    "public_key_bytes",
    "verify_signature",
]

CARD_FORMAT = "jukicore-operator-card"
CARD_VERSION = 1
MIN_PIN_LENGTH = 6
MAX_PIN_LENGTH = 1024
MIN_SCRYPT_N = 2**15
MAX_SCRYPT_N = 2**20
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_CARD_BYTES = 1 << 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_pin(pin: object) -> str:
    """A card PIN: text of 6 to 1024 characters (the message never contains it)."""
    if not isinstance(pin, str) or not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
        raise InvalidInputError(
            f"a card PIN is {MIN_PIN_LENGTH} to {MAX_PIN_LENGTH} characters")
    return pin


def key_id_of(public_key: bytes) -> str:
    """A card key's id: the first 16 bytes of SHA-256 over its raw public key, hex."""
    return hashlib.sha256(b"jukicore-operator-card-key\0" + public_key).hexdigest()[:32]


def _aad(operator_id: str, public: bytes, n: int, r: int, p: int, salt: bytes) -> bytes:
    return b"\0".join([b"jukicore-operator-card/v1", operator_id.encode(), public,
                       f"scrypt:{n}:{r}:{p}".encode(), salt])


def _kek(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(pin.encode("utf-8"))


@dataclass(frozen=True)
class Card:
    """An opened operator card: signs login challenges."""

    operator_id: str
    _private: Any  # Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._private.sign(message))


def public_key_bytes(card: Card) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(card._private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the card's (``public_key``, raw) over ``message``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def create_card(path: str | os.PathLike[str], operator_id: str, pin: str, *,
                n: int = MIN_SCRYPT_N) -> Card:
    """A new card for ``operator_id``: a fresh key pair, written to ``path`` (mode 0600)
    wrapped under ``pin``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    check_pin(pin)
    if not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N or n & (n - 1):
        raise InvalidInputError("scrypt's n is a power of two from 2**15 to 2**20")
    key = Ed25519PrivateKey.generate()
    card = Card(operator_id, key)
    public = card.public_key
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    wrapped = AESGCM(_kek(pin, salt, n, SCRYPT_R, SCRYPT_P)).encrypt(
        nonce, raw, _aad(operator_id, public, n, SCRYPT_R, SCRYPT_P, salt))
    doc = {"format": CARD_FORMAT, "version": CARD_VERSION, "operator_id": operator_id,
           "public_key": _b64(public),
           "kdf": {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
           "nonce": _b64(nonce), "wrapped_key": _b64(wrapped)}
    write_atomic(Path(path), (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)
    return card


def load_card(path: str | os.PathLike[str], pin: str) -> Card:
    """Open the card at ``path`` with ``pin``."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = read_regular(path, max_bytes=_MAX_CARD_BYTES)
    bad = CorruptFileError(f"{os.fspath(path)} is not an operator card of a known version")
    try:
        doc = json.loads(data.decode("utf-8"))
        if (not isinstance(doc, dict) or doc.get("format") != CARD_FORMAT
                or doc.get("version") != CARD_VERSION):
            raise bad
        kdf = doc["kdf"]
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
        if (kdf.get("name") != "scrypt" or not all(type(v) is int for v in (n, r, p))
                or not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N or n & (n - 1)
                or not 1 <= r <= 32 or not 1 <= p <= 16):
            raise bad
        operator_id = doc["operator_id"]
        if not isinstance(operator_id, str):
            raise bad
        public = base64.b64decode(doc["public_key"], validate=True)
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        wrapped = base64.b64decode(doc["wrapped_key"], validate=True)
        if len(public) != 32 or len(nonce) != 12 or len(salt) < 16:
            raise bad
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(pin, str) or not pin:
        raise PermissionDeniedError("the card's PIN does not open it")
    try:
        raw = AESGCM(_kek(pin, salt, n, r, p)).decrypt(
            nonce, wrapped, _aad(operator_id, public, n, r, p, salt))
        key = Ed25519PrivateKey.from_private_bytes(raw)
    except (InvalidTag, ValueError):
        raise PermissionDeniedError("the card's PIN does not open it") from None
    card = Card(operator_id, key)
    if card.public_key != public:
        raise bad
    return card
