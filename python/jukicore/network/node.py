"""Nodes of the network: a municipality's communication server, a prefecture, the center.

A node is a directory::

    node.json        node id, role, store (SQLite path relative to the node, or a URI)
    keys/<n>/        key generation n: signing.pem (Ed25519) and encryption.pem (X25519),
                     password-protected PKCS#8, with their ids in keys/<n>/node.json
    trust.json       the peers' public keys (jukicore.network.crypto.TrustStore)
    outbox/          packets this node wrote, for the transport to carry
    inbox/           packets received, for ``jukicore sync apply``
    blocks/          (prefecture) code blocks received from the center
    locks/           lock files (exports per recipient, the trust store)

Every id that becomes part of a file name (node ids, block ids, the sender and
recipient in packet names) follows one rule, :func:`jukicore.network.crypto.check_path_id`.
Temporary files that a killed run left behind are removed at the start of every
command that writes into the node (:meth:`Node.clean_temps`).

Node ids: a municipality is its 6-digit local government code, a prefecture the
local government code of the prefecture (for example 130001 for Tokyo), the
center ``center``.

Relations (who may send what to whom; everything else is refused):

=================  ==============================  ===============================
kind               from                            to
=================  ==============================  ===============================
identity-changes   a municipality                  its own prefecture, the center
ack                a prefecture / the center       a municipality it receives from
code-block         the center / a prefecture       a prefecture / its municipality
=================  ==============================  ===============================
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jukicore._files import (
    PRIVATE_FILE,
    _alive,
    private_dir,
    read_regular,
    remove_stale_temps,
    write_atomic,
)
from jukicore.codes import is_valid_lg_code
from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    MisaddressedPacketError,
    NotFoundError,
)
from jukicore.network.crypto import NodeKeys, Role, TrustStore, check_node_id, check_path_id

__all__ = ["CENTER", "Node", "allowed", "check_relation", "create_node", "init_node", "role_of",
           "trust_each_other"]

CENTER = "center"
PASSWORD_ENV = "JUKICORE_NODE_PASSWORD"


_GEN_TEMP = re.compile(r"\.\d+\.tmp-(\d+)-[0-9a-f]+")
#: The most a node description or a key's ``valid_from`` file may hold.
_MAX_NODE_FILE = 1 << 20


def _os_error(action: str, path: Path, exc: OSError) -> FileError:
    err = FileError(f"cannot {action} {path}: {exc.strerror or exc}")
    err.errno = exc.errno
    err.filename = str(path)
    return err


def role_of(node_id: str) -> Role:
    """The tier a node id names (see the module docs)."""
    if not isinstance(node_id, str):
        raise InvalidInputError(f"{node_id!r} is not a node id: a 6-digit local government "
                                f"code or {CENTER!r}")
    if node_id == CENTER:
        return "center"
    if len(node_id) == 6 and node_id.isascii() and node_id.isdigit() and \
            is_valid_lg_code(node_id):
        return "prefecture" if node_id[2:5] == "000" else "municipality"
    raise InvalidInputError(
        f"{node_id!r} is not a node id: a 6-digit local government code or {CENTER!r}")


def allowed(kind: str, sender: str, recipient: str) -> bool:
    """Whether ``sender`` may send a packet of ``kind`` to ``recipient``."""
    s, r = role_of(sender), role_of(recipient)
    same_prefecture = sender[:2] == recipient[:2]
    if kind == "identity-changes":
        return s == "municipality" and (r == "center" or (r == "prefecture" and same_prefecture))
    if kind == "ack":
        return r == "municipality" and (s == "center" or (s == "prefecture" and same_prefecture))
    if kind == "code-block":
        return (s == "center" and r == "prefecture") or (
            s == "prefecture" and r == "municipality" and same_prefecture)
    return False


def check_relation(kind: str, sender: str, recipient: str) -> None:
    if not allowed(kind, sender, recipient):
        raise MisaddressedPacketError(
            f"packet refused: no {kind} relation from {sender} to {recipient}")


#: The fewest characters a new node's password may have.
MIN_PASSWORD_LENGTH = 12


def check_password_policy(password: str | bytes) -> None:
    """Refuse a password too weak to protect a node's keys (fewer than
    :data:`MIN_PASSWORD_LENGTH` characters) with an :class:`InvalidInputError` that never
    shows the password."""
    if isinstance(password, bytes):
        try:
            n = len(password.decode())
        except UnicodeDecodeError:
            n = len(password)
    else:
        n = len(password)
    if n < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"the node password is too short: a node's keys need a password of at least"
            f" {MIN_PASSWORD_LENGTH} characters (the password itself is not shown)")


def _password(password: str | bytes | None) -> str | bytes:
    if password is not None:
        return password
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    raise InvalidInputError(
        f"the node's private keys need a password: pass one, or set {PASSWORD_ENV}")


@dataclass
class Node:
    """An opened node directory."""

    path: Path
    node_id: str
    role: Role
    store: str

    @property
    def trust_path(self) -> Path:
        return self.path / "trust.json"

    @property
    def outbox(self) -> Path:
        return self.path / "outbox"

    @property
    def inbox(self) -> Path:
        return self.path / "inbox"

    def store_target(self) -> str:
        """The store as a SQLite path (resolved against the node) or a URI."""
        if "://" in self.store:
            return self.store
        return str((self.path / self.store).resolve())

    def trust(self) -> TrustStore:
        return TrustStore.load(self.trust_path)

    def save_trust(self, trust: TrustStore) -> None:
        trust.save(self.trust_path)

    @property
    def blocks(self) -> Path:
        return self.path / "blocks"

    def generations(self) -> list[Path]:
        d = self.path / "keys"
        try:
            names = [e.name for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            raise NotFoundError(f"node {self.node_id} has no keys ({d} is missing)") from None
        except OSError as exc:
            raise _os_error("list", d, exc) from None
        gens = sorted((d / n for n in names if n.isascii() and n.isdigit()),
                      key=lambda p: int(p.name))
        if not gens:
            raise NotFoundError(f"node {self.node_id} has no keys")
        return gens

    def clean_temps(self) -> list[Path]:
        """Remove the temporary files killed runs left in the node (its own directory,
        ``outbox``, ``inbox``, ``blocks``, ``keys`` and every key generation); returns
        them. Files of live processes and every other file are left alone."""
        dirs = [self.path, self.outbox, self.inbox, self.blocks, self.path / "keys"]
        with contextlib.suppress(OSError):  # no keys: generations() says so where needed
            dirs += [self.path / "keys" / e.name for e in os.scandir(self.path / "keys")
                     if e.is_dir(follow_symlinks=False) and e.name.isdigit()]
        removed: list[Path] = []
        for d in dirs:
            removed += remove_stale_temps(d)
        # key generations being written (see _new_generation) by processes now gone
        with contextlib.suppress(OSError):
            for e in os.scandir(self.path / "keys"):
                m = _GEN_TEMP.fullmatch(e.name)
                if m and e.is_dir(follow_symlinks=False) and not _alive(int(m.group(1))):
                    shutil.rmtree(e.path, ignore_errors=True)
                    removed.append(Path(e.path))
        return removed

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the node's lock ``name`` (an exclusive ``flock`` on ``locks/NAME.lock``,
        shared by every process on the machine): one export per recipient at a time,
        one writer of the trust store. Released when the block ends or the process
        dies."""
        check_path_id(name, "lock name")
        d = self.path / "locks"
        target = d / f"{name}.lock"
        try:
            private_dir(d)
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE)
        except OSError as exc:
            raise _os_error("lock", target, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def keys(self, password: str | bytes | None = None) -> list[NodeKeys]:
        """Every key generation, oldest first (the last one is current)."""
        pw = _password(password)
        return [NodeKeys.load(g, pw) for g in self.generations()]

    def current_keys(self, password: str | bytes | None = None) -> NodeKeys:
        return NodeKeys.load(self.generations()[-1], _password(password))

    def public_record(self, password: str | bytes | None = None) -> dict[str, Any]:
        """The current public keys, to hand to peers (``jukicore node trust``)."""
        keys = self.current_keys(password)
        when = self.valid_from()
        record = keys.public_record(self.role, when)
        record["certificate"] = base64.b64encode(self.certificate(keys, when)).decode()
        return record

    def certificate(self, keys: NodeKeys, valid_from: dt.datetime) -> bytes:
        """The node's X.509 certificate (DER) for a key generation: the same bytes every
        time for the same keys and start (:func:`jukicore.network.x509.node_certificate`),
        so the node needs no file for it and its peers hold the very certificate it
        presents in mutual TLS."""
        from cryptography.hazmat.primitives.serialization import Encoding

        from jukicore.network.x509 import node_certificate

        return node_certificate(keys, self.role, valid_from=valid_from).public_bytes(
            Encoding.DER)

    def valid_from(self) -> dt.datetime:
        """When the current key generation became valid."""
        where = self.generations()[-1] / "valid_from"
        try:
            when = dt.datetime.fromisoformat(
                json.loads(read_regular(where, max_bytes=_MAX_NODE_FILE)))
            if when.tzinfo is None:
                raise ValueError("no time zone")
        except (ValueError, TypeError, RecursionError) as exc:
            raise CorruptFileError(f"{where} is damaged: {exc}") from None
        return when

    def rotate(self, password: str | bytes | None = None,
               valid_from: dt.datetime | None = None) -> NodeKeys:
        """Start a new key generation; the old ones stay to open older packets."""
        pw = _password(password)
        with self.lock("keys"):
            self.clean_temps()
            self.current_keys(pw)  # the password must open the current generation
            n = int(self.generations()[-1].name) + 1
            return _new_generation(self.path, self.node_id, n, pw, valid_from)

    def info(self) -> dict[str, Any]:
        gens = self.generations()
        trust = self.trust()
        return {
            "node_id": self.node_id,
            "role": self.role,
            "store": self.store,
            "key_generations": len(gens),
            "peers": {p: trust.role(p) for p in trust},
        }

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Node:
        p = Path(path)
        where = p / "node.json"
        if not os.path.lexists(where):
            raise NotFoundError(f"{p} is not a node (no node.json): run jukicore node init")
        try:
            doc = json.loads(read_regular(where, max_bytes=_MAX_NODE_FILE))
        except (ValueError, RecursionError) as exc:  # invalid JSON or invalid UTF-8
            raise CorruptFileError(f"{where} is damaged: {exc}") from None
        try:
            node_id, role, store = doc["node_id"], doc["role"], doc["store"]
        except (KeyError, TypeError) as exc:
            raise CorruptFileError(f"{where} lacks {exc}") from None
        if not isinstance(store, str) or not store or "\0" in store:
            raise CorruptFileError(f"{where}: store {store!r} is not a path or a URI")
        try:
            actual = role_of(node_id)
        except InvalidInputError as exc:
            raise CorruptFileError(f"{where}: {exc}") from None
        if actual != role:
            raise CorruptFileError(f"{where}: {node_id} is not a {role!r}")
        return cls(p, node_id, role, store)


def _new_generation(path: Path, node_id: str, n: int, password: str | bytes,
                    valid_from: dt.datetime | None) -> NodeKeys:
    """Write generation ``n`` under a temporary directory name and rename it into place,
    so a kill leaves either no generation ``n`` or a complete one."""
    keys = NodeKeys.generate(node_id)
    d = path / "keys" / str(n)
    tmp = path / "keys" / f".{n}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    # a generation made now is valid from the start of this second: certificates of
    # residence and node certificates state times in whole seconds, and one issued in
    # the same second must fall within the key's validity
    when = (valid_from or dt.datetime.now(dt.UTC).replace(microsecond=0)).astimezone(dt.UTC)
    try:
        keys.save(tmp, password)
        write_atomic(tmp / "valid_from", json.dumps(when.isoformat()).encode(),
                     mode=PRIVATE_FILE)
        os.rename(tmp, d)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, FileError):
            raise
        raise _os_error("create key generation", d, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return keys


def init_node(path: str | os.PathLike[str], node_id: str, *, store: str | None = None,
              password: str | bytes | None = None) -> Node:
    """Create a node directory with a first key generation and an empty trust store.

    ``store`` defaults to ``store.sqlite`` inside the node; a ``postgresql://`` URI
    puts it on PostgreSQL. The store itself is not created: :func:`create_node` makes
    a whole node, store included.
    """
    return _init(Path(path), node_id, store, password, None)


def create_node(path: str | os.PathLike[str], node_id: str, *, store: str | None = None,
                password: str | bytes | None = None, prefecture: str | None = None,
                municipality: str | None = None) -> Node:
    """Create a whole node: keys, an empty trust store and its store (a municipality's
    register, named by ``prefecture`` and ``municipality``; a prefecture's or the
    center's identity store). ``node.json`` is written last: a failure at any step
    (a store that cannot be created, a full disk) removes what this call made, and a
    node directory without ``node.json`` is no node."""
    check_node_id(node_id)
    role = role_of(node_id)
    if role == "municipality" and not (prefecture and municipality):
        raise InvalidInputError("a municipality's node needs its prefecture and municipality"
                                " names (for its register)")

    def make_store(n: Node) -> None:
        if role == "municipality":
            from jukicore.register import Actor, create_register

            create_register(n.store_target(), lg_code=node_id, prefecture=prefecture or "",
                            municipality=municipality or "",
                            actor=Actor.operator("node-init", node_id, "admin")).close()
        else:
            from jukicore.identity import create_identity_store

            create_identity_store(n.store_target(), node_id=node_id, kind=role).close()

    return _init(Path(path), node_id, store, password, make_store)


def _init(p: Path, node_id: str, store: str | None, password: str | bytes | None,
          make_store: Any) -> Node:
    check_node_id(node_id)
    role = role_of(node_id)
    if (p / "node.json").exists():
        raise ConflictError(f"{p} is a node already")
    pw = _password(password)
    check_password_policy(pw)
    existed = p.is_dir()
    try:
        before = set(os.listdir(p)) if existed else set()
    except OSError as exc:
        raise _os_error("list", p, exc) from None
    try:
        try:
            # the node and its directories: 0700 whatever the umask (keys, store, packets)
            private_dir(p, parents=True)
            for sub in ("keys", "outbox", "inbox"):
                private_dir(p / sub)
        except OSError as exc:
            raise _os_error("create the node directory", p, exc) from None
        _new_generation(p, node_id, 1, pw, None)
        TrustStore().save(p / "trust.json")
        n = Node(p, node_id, role, store or "store.sqlite")
        if make_store is not None:
            make_store(n)
        doc = {"node_id": node_id, "role": role, "store": n.store,
               "created_at": dt.datetime.now(dt.UTC).isoformat()}
        write_atomic(p / "node.json", (json.dumps(doc, indent=2) + "\n").encode(),
                     mode=PRIVATE_FILE)
    except BaseException:
        _remove_made(p, existed, before)
        raise
    return n


def _remove_made(p: Path, existed: bool, before: set[str]) -> None:
    """Remove what a failed :func:`_init` made (the directory, or the entries it added)."""
    with contextlib.suppress(OSError):
        if not existed:
            shutil.rmtree(p)
            return
        for name in set(os.listdir(p)) - before:
            target = p / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()


def trust_each_other(nodes: list[Node] | tuple[Node, ...],
                     password: str | bytes | None = None) -> None:
    """Make every node trust every other node's current public keys (one site, or a test).

    Nodes run by different bodies exchange ``jukicore node public-key`` files
    instead; this is the same exchange when one operator holds every password.
    """
    records = {n.node_id: n.public_record(password) for n in nodes}
    for n in nodes:
        trust = n.trust()
        for other, record in records.items():
            if other != n.node_id:
                trust.add_record(record)
        n.save_trust(trust)
