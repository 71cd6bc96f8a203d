"""Card PINs: Argon2id over an HMAC keyed outside the store.

A PIN has four digits: 10^4 values fall to any offline search of a slow hash alone,
whatever its cost. So the store holds ``Argon2id(HMAC-SHA256(pin key, card id || 0 ||
PIN))``: without the pin key, which the node keeps in a file of its own (mode 0600, never
in the store or its backups), a copy of the store gives nothing to search. Argon2id is the
second wall, for a thief who has both (docs/cards.md: the cost and why).

The key file is two lines of text::

    jukicore-card-pin-key/v1
    <64 hex digits: the 32-byte key>
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

from jukicore._files import read_regular, write_atomic
from jukicore.errors import ConflictError, CorruptFileError, FileError, InvalidInputError

__all__ = ["ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM", "ARGON2_TIME_COST", "KEY_HEADER",
           "PinKey", "create_pin_key", "hasher"]

KEY_HEADER = "jukicore-card-pin-key/v1"
KEY_BYTES = 32
#: Argon2id's cost (docs/cards.md): OWASP's first recommended setting (19 MiB, 2 passes,
#: one lane); about 30-40 ms a verification here.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19456
ARGON2_PARALLELISM = 1


@lru_cache(maxsize=1)
def hasher() -> Any:
    """The one Argon2id hasher of card PINs (argon2-cffi's PasswordHasher)."""
    from argon2 import PasswordHasher, Type

    return PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                          parallelism=ARGON2_PARALLELISM, hash_len=32, salt_len=16,
                          type=Type.ID)


class PinKey:
    """The node's pin key (32 bytes). Build it with :meth:`load` (a key file) or
    :func:`create_pin_key`; its bytes are never shown."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise InvalidInputError(f"a pin key is {KEY_BYTES} bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return f"PinKey(id={self.key_id})"

    @property
    def key_id(self) -> str:
        """A short id of the key (not the key): cards record which key their PIN is under."""
        return hashlib.sha256(b"jukicore-card-pin-key-id\0" + self._key).hexdigest()[:16]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PinKey:
        """The key in the key file at ``path``. A missing or unreadable file is a
        :class:`FileError`; a file readable by the group or others, or not a key file, a
        :class:`CorruptFileError`."""
        p = Path(path)
        data = read_regular(p, max_bytes=4096)
        mode = os.stat(p).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise CorruptFileError(f"{p}: a pin key file must be private (mode 0600), not"
                                   f" {stat.S_IMODE(mode):04o}")
        try:
            header, hexkey, *rest = data.decode("ascii").split("\n")
            key = bytes.fromhex(hexkey)
        except (UnicodeDecodeError, ValueError):
            raise CorruptFileError(f"{p} is not a card pin key file") from None
        if header != KEY_HEADER or len(key) != KEY_BYTES or any(r.strip() for r in rest):
            raise CorruptFileError(f"{p} is not a card pin key file of a known version")
        return cls(key)

    def _mac(self, card_id: str, pin: str) -> bytes:
        return hmac.new(self._key, card_id.encode() + b"\0" + pin.encode(),
                        hashlib.sha256).digest()

    def hash(self, card_id: str, pin: str) -> str:
        """The stored form of ``pin`` for ``card_id`` (Argon2id's encoded string)."""
        return str(hasher().hash(self._mac(card_id, pin)))

    def verify(self, stored: str, card_id: str, pin: str) -> bool:
        """Whether ``pin`` is the PIN of ``card_id`` (argon2's verify: constant time)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return bool(hasher().verify(stored, self._mac(card_id, pin)))
        except VerificationError:
            return False
        except InvalidHashError:
            raise CorruptFileError(f"card {card_id}: the stored PIN is damaged") from None


def create_pin_key(path: str | os.PathLike[str]) -> PinKey:
    """A new random pin key written to ``path`` (mode 0600, atomically). An existing file
    is never overwritten (:class:`ConflictError`): losing a key makes every PIN under it
    unverifiable."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        raise ConflictError(f"{p} exists: a pin key is never written over a file")
    key = secrets.token_bytes(KEY_BYTES)
    try:
        write_atomic(p, f"{KEY_HEADER}\n{key.hex()}\n".encode(), mode=0o600)
    except OSError as exc:
        raise FileError(f"cannot write {p}: {exc.strerror or exc}") from exc
    return PinKey(key)


#: Where a node's server finds its pin key when it is not beside the node (``pin.key``).
PIN_KEY_ENV = "JUKICORE_PIN_KEY"


def node_pin_key(node_path: str | os.PathLike[str]) -> PinKey:
    """A municipality node's pin key, which checks the PINs of the cards it issued (for
    another municipality's wide-area certificate or special move-in): the file
    ``$JUKICORE_PIN_KEY`` names (``jukicore node serve --pin-key``), else ``pin.key`` in
    the node's directory (as ``jukicore demo`` makes it). None there is an
    :class:`InvalidInputError` saying so (a photo ID then serves the wide-area
    certificate)."""
    from pathlib import Path

    named = os.environ.get(PIN_KEY_ENV)
    path = Path(named) if named else Path(node_path) / "pin.key"
    if not named and not path.exists():
        raise InvalidInputError(
            f"this node has no pin key (${PIN_KEY_ENV}, or pin.key in {node_path}): a card"
            " and its PIN cannot be checked here; identify the requester by a photo ID")
    return PinKey.load(path)
