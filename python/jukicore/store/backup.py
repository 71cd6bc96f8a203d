"""Backup and restore of a node: its store and its files, in one archive.

:func:`backup_node` runs while the node keeps working. It takes

* the store: SQLite through SQLite's online backup API (one read transaction:
  a consistent copy while writers go on in the WAL); PostgreSQL through
  ``pg_dump`` (custom format) inside an exported snapshot, the very snapshot
  in which the content digest is computed;
* the node's files: ``node.json``, the key generations (encrypted at rest, as
  they are), the trust store, the outbox and inbox packets, code blocks and
  any other regular file of the node's directory (lock files, temporary files
  of running writers, links and special files are left out; the SQLite store
  and its ``-wal``/``-shm`` files are replaced by the copy);

into one uncompressed tar archive written under a temporary name and renamed
into place, so that ``OUT`` is either absent, the old archive, or complete.
Its last member, ``MANIFEST.json``, names the node, the time, the store (dialect,
kind, schema version, content digest) and the size and SHA-256 of every member.

:func:`restore_node` checks the whole archive against its manifest before it
touches anything (a damaged or foreign archive is a
:class:`~jukicore.errors.CorruptFileError`), refuses to replace an existing
node or store unless ``force``, builds the node's directory beside the target
and renames it into place, restores the database (SQLite: the file; PostgreSQL:
``pg_restore`` in one transaction into an empty database), and finally opens the
store and checks that its content digest equals the digest at backup time.

After a restore the node re-synchronizes with its peers as the sync rules say
(``docs/backup.md``): an upper store that went back answers the next packet past
its position with a *rewind* acknowledgement and the municipality sends again
what it lacks; a municipality that went back sends again the entries its
operators re-enter, and the upper stores skip the entries they hold after checking
that they are the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from jukicore._files import (
    _TEMP,
    _alive,
    _fail,
    atomic_file,
    fsync_dir,
    remove_stale_temps,
    temp_name,
    write_atomic,
)
from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    JukiError,
    MissingDependencyError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
)
from jukicore.network.node import Node, role_of
from jukicore.store.backend import (
    Backend,
    SqliteBackend,
    StoreKind,
    _PgSession,
    _SqliteSession,
    installed_version,
    is_postgres_uri,
    open_store,
    utcnow,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "backup_node", "read_manifest", "restore_node"]

FORMAT = "jukicore-node-backup"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
STORE_SQLITE = "store/store.sqlite"
STORE_PGDUMP = "store/store.pgdump"
_FILES = "node/"
#: The most a manifest may hold (a node with many packets has a long member list).
MAX_MANIFEST = 64 << 20
_SQLITE_SIDE = ("-wal", "-shm", "-journal")
_MEMBER = re.compile(r"[A-Za-z0-9._@+=-]+")


def _kind(role: str) -> str:
    return "register" if role == "municipality" else "identity"


# --------------------------------------------------------------------------- the store


def _store_kind(kind: str) -> StoreKind:
    """The register or the identity store, as a kind of store (version table, schema)."""
    if kind == "register":
        from jukicore.register.store import REGISTER
        return REGISTER
    from jukicore.identity.store import IDENTITY_STORE
    return IDENTITY_STORE


def _digest_of(backend: Backend, kind: str) -> str:
    """The content digest of the store behind ``backend`` (kept open by the caller)."""
    if kind == "register":
        from jukicore.register.store import Register
        return Register(backend).content_digest()
    from jukicore.identity.store import IdentityStore
    return IdentityStore(backend).content_digest()


def _open_and_digest(target: str, kind: str) -> str:
    """Open a store the ordinary way (migrating an older schema) and digest it."""
    backend = open_store(target, _store_kind(kind))
    try:
        return _digest_of(backend, kind)
    finally:
        backend.close()


def _sqlite_version(path: Path, kind: str) -> int:
    """The schema version recorded in a SQLite store file, read without opening it as a
    store (which would migrate it)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            table = _store_kind(kind).version_table
            row = conn.execute(f"SELECT max(version) FROM {table}").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CorruptFileError(f"{path} is not a {kind} store: {exc}") from None
    if row is None or row[0] is None:
        raise CorruptFileError(f"{path} is not a {kind} store: no schema version")
    return int(row[0])


def _sqlite_snapshot(source: str, dest: Path, kind: str) -> tuple[int, str]:
    """Copy a live SQLite store with the online backup API; (schema version, digest)."""
    # Through the store's own backend: its sessions are serialized with every other
    # backend of the file in this process (never two copies of SQLite on one file).
    backend = SqliteBackend(source, create=False)
    try:
        with backend.session(write=False) as s:
            assert isinstance(s, _SqliteSession)
            dst = sqlite3.connect(dest)
            try:
                # all pages in one step, inside one read transaction: a consistent copy
                # even while other processes write (in WAL mode writers are not blocked)
                s.query("SELECT count(*) FROM meta")
                s._conn.backup(dst)
            finally:
                dst.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back up the SQLite store {source!r}: {exc}") from None
    finally:
        backend.close()
    version = _sqlite_version(dest, kind)
    if version != _store_kind(kind).version:
        raise SchemaVersionError(
            f"the store's schema is version {version}, this jukicore's {_store_kind(kind).version}"
            ": open the node once with this jukicore (it migrates the store), then back up")
    digest = _open_and_digest(str(dest), kind)
    for side in _SQLITE_SIDE:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{dest}{side}")
    return version, digest


def _pg_bin(name: str) -> str:
    """``pg_dump`` / ``pg_restore`` of the PostgreSQL installation (as the tests find the
    server's binaries, newest major version first; ``JUKICORE_PG_BIN`` overrides)."""
    from jukicore.store.pgbin import find_pg_bin

    found = find_pg_bin()
    if found is not None and (found / name).exists():
        return str(found / name)
    which = shutil.which(name)
    if which is None:
        raise MissingDependencyError(
            f"{name} not found: install PostgreSQL's client programs (or set JUKICORE_PG_BIN)")
    return which


def _pg_conninfo(uri: str) -> tuple[str, dict[str, str]]:
    """The connection string without its password, and the environment that carries the
    password (never on a command line, where other users could read it)."""
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(uri)
    except psycopg.Error as exc:
        raise InvalidInputError(f"not a PostgreSQL URI: {exc}") from None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return psycopg.conninfo.make_conninfo("", **params), env


def _run_pg(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise _fail("run", args[0], exc) from None
    if proc.returncode != 0:
        raise StoreError(f"{what} failed: {(proc.stderr or proc.stdout).strip()}")


class _SnapshotBackend(Backend):
    """A read-only backend on one open PostgreSQL transaction (an exported snapshot), so
    the digest sees exactly what ``pg_dump`` dumps."""

    dialect = "postgresql"

    def __init__(self, conn: Any, target: str) -> None:
        self._conn = conn
        self.target = target

    @contextmanager
    def session(self, write: bool = True) -> Iterator[_PgSession]:
        if write:
            raise StoreError("a backup's snapshot is read-only")
        yield _PgSession(self._conn)

    def bulk_session(self, write: bool = True) -> Any:
        return self.session(write)

    def close(self) -> None:
        pass


def _pg_snapshot(uri: str, dest: Path, kind: str) -> tuple[int, str]:
    """``pg_dump`` a live PostgreSQL store; (schema version, digest), both of the dumped
    snapshot."""
    import psycopg

    conninfo, env = _pg_conninfo(uri)
    try:
        conn = psycopg.connect(uri, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
    try:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET DateStyle TO ISO, YMD")
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot = row[0]
        backend = _SnapshotBackend(conn, uri)
        with backend.session(write=False) as s:
            version = installed_version(s, _store_kind(kind).version_table)
        if version is None:
            raise NotFoundError(f"the database holds no {kind} store")
        if version != _store_kind(kind).version:
            raise SchemaVersionError(
                f"the store's schema is version {version}, this jukicore's "
                f"{_store_kind(kind).version}: open the node once with this jukicore (it "
                "migrates the store), then back up")
        _run_pg([_pg_bin("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                 f"--snapshot={snapshot}", f"--file={dest}", f"--dbname={conninfo}"],
                env, "pg_dump")
        digest = _digest_of(backend, kind)
        conn.execute("ROLLBACK")
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL error: {str(exc).strip()}") from None
    finally:
        conn.close()
    return version, digest


# --------------------------------------------------------------------------- archive


class _Hashing(io.RawIOBase):
    """A reader that hashes what passes through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.n = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.sha.update(data)
        self.n += len(data)
        return data


def _node_files(node: Node, skip: set[Path]) -> tuple[list[tuple[str, Path]], list[str],
                                                       list[str]]:
    """The node's regular files to archive (relative name, path), its directories, and the
    entries left out (links, special files)."""
    files: list[tuple[str, Path]] = []
    dirs: list[str] = []
    left_out: list[str] = []
    root = node.path
    for here, subdirs, names in os.walk(root, followlinks=False):
        rel_here = Path(here).relative_to(root)
        if rel_here == Path("."):
            subdirs[:] = [d for d in subdirs if d != "locks"]
        for d in list(subdirs):
            p = Path(here) / d
            if p.is_symlink():
                left_out.append(str(rel_here / d))
                subdirs.remove(d)
            elif _TEMP.match(d):  # a key generation being written
                subdirs.remove(d)
            elif not _fits(d):
                left_out.append(str(rel_here / d))
                subdirs.remove(d)
            else:
                dirs.append((rel_here / d).as_posix())
        for name in names:
            p = Path(here) / name
            rel = (rel_here / name).as_posix()
            if _TEMP.match(name) or p in skip:
                continue
            if not _fits(name):  # a name the restore would refuse
                left_out.append(rel)
                continue
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue  # removed meanwhile (a temp file renamed)
            except OSError as exc:
                raise _fail("read", p, exc) from None
            if not stat.S_ISREG(st.st_mode):
                left_out.append(rel)
                continue
            files.append((rel, p))
    return sorted(files), sorted(dirs), sorted(left_out)


def _fits(name: str) -> bool:
    return name not in (".", "..") and _MEMBER.fullmatch(name) is not None


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> dict[str, Any] | None:
    """Add one file; its manifest entry (None: the file was removed meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _fail("read", path, exc) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        info = tarfile.TarInfo(name)
        info.size = st.st_size
        info.mode = st.st_mode & 0o777
        info.mtime = int(st.st_mtime)
        h = _Hashing(f)
        try:
            tar.addfile(info, h)
        except OSError as exc:
            if isinstance(exc, FileError):
                raise
            raise _fail("archive", path, exc) from None
    return {"name": name, "size": info.size, "sha256": h.sha.hexdigest(),
            "mode": info.mode}


def backup_node(node_dir: str | os.PathLike[str], out: str | os.PathLike[str]
                ) -> dict[str, Any]:
    """Back up the node in ``node_dir`` into the archive ``out`` (see the module docs).

    The node keeps working meanwhile. Returns a summary: node, time, store (dialect,
    kind, schema version, content digest), members, archive size, seconds.
    """
    started = time.perf_counter()
    node = Node.open(node_dir)
    out = Path(out)
    if out.exists() and not out.is_file():
        raise FileError(f"cannot write {out}: not a regular file")
    with contextlib.suppress(OSError):
        if out.resolve().is_relative_to(node.path.resolve()):
            raise InvalidInputError(f"{out} is inside the node's directory: put backups "
                                    "elsewhere (else each one would hold the ones before)")
    kind = _kind(node.role)
    target = node.store_target()
    dialect = "postgresql" if is_postgres_uri(target) else "sqlite"
    skip: set[Path] = set()
    if dialect == "sqlite":
        if target.startswith("sqlite:///"):
            target = target[len("sqlite:///"):]
        skip = {Path(target)} | {Path(f"{target}{s}") for s in _SQLITE_SIDE}
    when = utcnow()
    if not out.parent.is_dir():
        raise FileError(f"cannot write {out}: {out.parent} is not a directory")
    remove_stale_temps(out.parent)  # what killed backups left behind
    # the store's copy and the archive under temporary names beside OUT
    store_file = temp_name(out.with_name(f"{out.name}.store"))
    try:
        if dialect == "sqlite":
            store_member = STORE_SQLITE
            version, digest = _sqlite_snapshot(target, store_file, kind)
        else:
            store_member = STORE_PGDUMP
            version, digest = _pg_snapshot(target, store_file, kind)
        files, dirs, left_out = _node_files(node, skip)
        members: list[dict[str, Any]] = []
        with atomic_file(out, mode=0o600) as f, tarfile.open(fileobj=f, mode="w",
                                                  format=tarfile.PAX_FORMAT) as tar:
            entry = _add_file(tar, store_member, store_file)
            assert entry is not None
            members.append(entry)
            for rel, path in files:
                entry = _add_file(tar, _FILES + rel, path)
                if entry is not None:
                    members.append(entry)
            manifest = {
                "format": FORMAT, "version": FORMAT_VERSION,
                "node_id": node.node_id, "role": node.role,
                "created_at": when.isoformat(),
                "jukicore": _jukicore_version(),
                "store": {"dialect": dialect, "kind": kind, "schema_version": version,
                          "content_digest": digest, "member": store_member,
                          "node_store": node.store},
                "dirs": dirs,
                "members": members,
            }
            raw = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(raw)
            info.mode = 0o644
            info.mtime = int(when.timestamp())
            tar.addfile(info, io.BytesIO(raw))
    finally:
        _remove_sqlite(store_file)
    return {
        "archive": str(out), "node_id": node.node_id, "role": node.role,
        "created_at": when.isoformat(),
        "store": {"dialect": dialect, "kind": kind, "schema_version": version,
                  "content_digest": digest},
        "members": len(members), "left_out": left_out,
        "bytes": out.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _jukicore_version() -> str:
    from jukicore import __version__
    return __version__


# --------------------------------------------------------------------------- restore


def _check_name(name: object, where: str) -> str:
    """A member name the restore may write: relative, no ``..``, plain characters."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        raise CorruptFileError(f"{where}: member name {name!r} is not a relative path")
    parts = name.split("/")
    if any(p in ("", ".", "..") or not _MEMBER.fullmatch(p) for p in parts):
        raise CorruptFileError(f"{where}: member name {name!r} is not a plain relative path")
    return name


@contextmanager
def _open_archive(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        fd = os.open(archive, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _fail("read", archive, exc) from None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError as exc:
        os.close(fd)
        raise _fail("read", archive, exc) from None
    if not regular:
        os.close(fd)
        raise FileError(f"cannot read {archive}: not a regular file")
    f = os.fdopen(fd, "rb")
    try:
        try:
            tar = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 (closed below)
        except (tarfile.TarError, EOFError) as exc:
            raise CorruptFileError(f"{archive} is not a jukicore backup (not a tar archive:"
                                   f" {exc})") from None
        with tar:
            yield tar
    finally:
        f.close()


def _members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    try:
        return tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileError):
            raise
        raise CorruptFileError(f"{archive} is damaged: {exc}") from None


def _load_manifest(tar: tarfile.TarFile, members: list[tarfile.TarInfo],
                   archive: Path) -> dict[str, Any]:
    found = [m for m in members if m.name == MANIFEST]
    if not found:
        raise CorruptFileError(f"{archive} is not a jukicore backup (no {MANIFEST})")
    if len(found) > 1 or not found[0].isreg() or found[0].size > MAX_MANIFEST:
        raise CorruptFileError(f"{archive}: {MANIFEST} is damaged")
    f = tar.extractfile(found[0])
    assert f is not None
    try:
        doc = json.loads(f.read())
    except (ValueError, RecursionError, tarfile.TarError, EOFError) as exc:
        raise CorruptFileError(f"{archive}: {MANIFEST} is damaged: {exc}") from None
    where = f"{archive}: {MANIFEST}"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptFileError(f"{archive} is not a jukicore backup ({MANIFEST} of another"
                               " kind)")
    if doc.get("version") != FORMAT_VERSION:
        raise CorruptFileError(f"{where}: backup format version {doc.get('version')!r}; "
                               f"this jukicore reads version {FORMAT_VERSION}")
    try:
        role = role_of(doc["node_id"])
        store = doc["store"]
        ok = (role == doc["role"] and isinstance(store, dict)
              and store["dialect"] in ("sqlite", "postgresql")
              and store["kind"] == _kind(role)
              and isinstance(store["schema_version"], int)
              and isinstance(store["content_digest"], str)
              and store["member"] == (STORE_SQLITE if store["dialect"] == "sqlite"
                                      else STORE_PGDUMP)
              and isinstance(store["node_store"], str) and store["node_store"]
              and isinstance(doc["members"], list) and isinstance(doc["dirs"], list)
              and isinstance(doc["created_at"], str))
        for m in doc["members"]:
            ok = ok and isinstance(m, dict) and isinstance(m["size"], int) and \
                isinstance(m["sha256"], str) and isinstance(m["mode"], int)
            _check_name(m["name"], where)
        for d in doc["dirs"]:
            _check_name(d, where)
    except (KeyError, TypeError, InvalidInputError) as exc:
        raise CorruptFileError(f"{where} is damaged: {exc}") from None
    if not ok:
        raise CorruptFileError(f"{where} is damaged (fields missing or of the wrong type)")
    return doc


def _verify(tar: tarfile.TarFile, members: list[tarfile.TarInfo], doc: dict[str, Any],
            archive: Path) -> None:
    """Every member present once, a regular file, of the manifest's size and SHA-256;
    nothing else in the archive."""
    listed = {m["name"]: m for m in doc["members"]}
    if len(listed) != len(doc["members"]):
        raise CorruptFileError(f"{archive}: {MANIFEST} lists a member twice")
    if doc["store"]["member"] not in listed or f"{_FILES}node.json" not in listed:
        raise CorruptFileError(f"{archive}: the store or node.json is missing")
    for name in listed:
        if name != doc["store"]["member"] and not name.startswith(_FILES):
            raise CorruptFileError(f"{archive}: unexpected member {name!r}")
    seen: set[str] = set()
    for m in members:
        if m.name == MANIFEST:
            continue
        entry = listed.get(m.name)
        if entry is None or m.name in seen or not m.isreg():
            raise CorruptFileError(f"{archive}: member {m.name!r} is not in the manifest"
                                   " (or twice, or not a file)")
        seen.add(m.name)
        if m.size != entry["size"]:
            raise CorruptFileError(f"{archive}: member {m.name!r} is {m.size} bytes, the "
                                   f"manifest says {entry['size']}")
        f = tar.extractfile(m)
        assert f is not None
        h = hashlib.sha256()
        try:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        except (tarfile.TarError, EOFError) as exc:
            raise CorruptFileError(f"{archive}: member {m.name!r} is damaged: {exc}"
                                   ) from None
        if h.hexdigest() != entry["sha256"]:
            raise CorruptFileError(f"{archive}: member {m.name!r} is damaged (SHA-256 "
                                   "differs from the manifest)")
    missing = sorted(set(listed) - seen)
    if missing:
        raise CorruptFileError(f"{archive}: members missing: {', '.join(missing[:5])}")


def read_manifest(archive: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a backup archive, after checking every member against it."""
    a = Path(archive)
    with _open_archive(a) as tar:
        members = _members(tar, a)
        doc = _load_manifest(tar, members, a)
        _verify(tar, members, doc, a)
    return doc


def _copy_member(tar: tarfile.TarFile, name: str, dest: Path, mode: int) -> None:
    member = tar.getmember(name)
    src = tar.extractfile(member)
    assert src is not None
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o700)
        os.fchmod(fd, mode & 0o700)  # the owner's bits only, whatever the umask
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if isinstance(exc, FileError):
            raise
        raise _fail("write", dest, exc) from None


def _existing_node_id(dest: Path) -> str | None:
    try:
        return Node.open(dest).node_id
    except JukiError:
        return None


#: The relations (tables, views, sequences ...) of a database outside the system schemas.
_PG_USER_RELATIONS = (
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
    " AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')")


def _pg_is_empty(uri: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            row = conn.execute(f"SELECT count(*) {_PG_USER_RELATIONS}").fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL (the database must exist and be "
                         f"empty): {str(exc).strip()}") from None
    return row is None or int(row[0]) == 0


def _sqlite_path(store: str, node_dir: Path) -> Path:
    s = store[len("sqlite:///"):] if store.startswith("sqlite:///") else store
    p = Path(s)
    return p if p.is_absolute() else node_dir / p


def _pg_empty_out(uri: str) -> None:
    """Drop every relation of a database that was empty before a restore filled it."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT n.nspname, c.relname, c.relkind {_PG_USER_RELATIONS}").fetchall()
        kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW",
                 "S": "SEQUENCE", "f": "FOREIGN TABLE"}
        for schema, name, kind in rows:
            conn.execute(psycopg.sql.SQL("DROP {} IF EXISTS {}.{} CASCADE").format(
                psycopg.sql.SQL(kinds[kind]), psycopg.sql.Identifier(schema),
                psycopg.sql.Identifier(name)))


def restore_node(archive: str | os.PathLike[str], node_dir: str | os.PathLike[str], *,
                 store: str | None = None, force: bool = False,
                 authorize: Callable[[str], object] | None = None) -> dict[str, Any]:
    """Restore the node backed up in ``archive`` into ``node_dir`` (see the module docs).

    ``authorize`` (``jukicore node restore``: an operator's login) is called with a store
    target and raises to refuse: with the restored store, once it is verified and before
    it takes its place, so that the backup's own operator accounts decide (a refusal
    leaves everything as it was); with a non-empty PostgreSQL target (``force``), whose
    old content a restore replaces in place, with that target before anything changes.
    What ``authorize`` writes (its login's entries) follows the backup's content.

    ``store``: where the store goes (a SQLite path, relative to the node, or a
    ``postgresql://`` URI of an existing empty database); by default where it was
    (``node.json``'s store). An existing node, SQLite file or non-empty database is
    replaced only with ``force`` (a node of another id never). Before anything is
    changed the whole archive is checked (:class:`CorruptFileError`) and the targets too
    (:class:`ConflictError`). Returns a summary with the verified content digest.
    """
    started = time.perf_counter()
    a = Path(archive)
    dest = Path(node_dir)
    with _open_archive(a) as tar:
        members = _members(tar, a)
        doc = _load_manifest(tar, members, a)
        _verify(tar, members, doc, a)
        info = doc["store"]
        kind, dialect = info["kind"], info["dialect"]
        current = _store_kind(kind).version
        if info["schema_version"] > current:
            raise SchemaVersionError(
                f"the backup's store has schema version {info['schema_version']}; this "
                f"jukicore knows up to {current}: upgrade jukicore")
        f = tar.extractfile(tar.getmember(_FILES + "node.json"))
        assert f is not None
        try:
            node_doc = json.loads(f.read())
            archived_id = node_doc["node_id"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise CorruptFileError(f"{a}: node.json is damaged: {exc}") from None
        if archived_id != doc["node_id"]:
            raise CorruptFileError(f"{a}: node.json names {archived_id!r}, the manifest "
                                   f"{doc['node_id']!r}")
        target = store if store is not None else info["node_store"]
        if not isinstance(target, str) or not target or "\0" in target:
            raise InvalidInputError(f"store {target!r} is not a path or a URI")
        if (dialect == "postgresql") != is_postgres_uri(target):
            raise InvalidInputError(
                f"the backup holds a {dialect} store; it cannot be restored into "
                f"{'PostgreSQL' if is_postgres_uri(target) else 'a SQLite file'}"
                " (pass --store with a target of the same kind)")

        # -- the targets: refuse before anything changes
        if os.path.lexists(dest):
            if dest.is_symlink() or not dest.is_dir():
                raise ConflictError(f"{dest} exists and is not a directory")
            if os.path.lexists(dest / "node.json"):
                existing = _existing_node_id(dest)
                if not force:
                    raise ConflictError(f"{dest} is a node already: pass --force to replace"
                                        " it with the backup")
                if existing is not None and existing != doc["node_id"]:
                    raise ConflictError(f"{dest} is node {existing}; the backup is of node "
                                        f"{doc['node_id']}: never replaced")
            elif any(dest.iterdir()):
                raise ConflictError(f"{dest} is a directory with other content: restore "
                                    "into a new or empty directory")
        sqlite_target: Path | None = None
        inside = False
        pg_clean = False
        if dialect == "sqlite":
            sqlite_target = _sqlite_path(target, dest)
            with contextlib.suppress(ValueError, OSError):
                rel = sqlite_target.resolve().relative_to(dest.resolve())
                inside = bool(rel.parts) and ".." not in rel.parts
            if not inside and os.path.lexists(sqlite_target) and not force:
                raise ConflictError(f"{sqlite_target} exists: pass --force to replace it")
        elif not _pg_is_empty(target):
            if not force:
                raise ConflictError("the target database is not empty: restore into "
                                    "an empty database, or pass --force to replace "
                                    "what the backup holds")
            pg_clean = True
            if authorize is not None:
                authorize(target)

        # -- the node's directory, built beside its place
        parent = dest.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_staging(parent, dest.name)
            staging = parent / f".{dest.name}.restore-{os.getpid()}-{os.urandom(4).hex()}"
            staging.mkdir(0o700)  # a node's directories are private (docs/crypto.md)
            os.chmod(staging, 0o700)
        except OSError as exc:
            raise _fail("write into", parent, exc) from None
        old: Path | None = None
        try:
            for d in ("keys", "outbox", "inbox", *doc["dirs"]):
                (staging / d).mkdir(parents=True, exist_ok=True)
            for m in doc["members"]:
                name = m["name"]
                if not name.startswith(_FILES):
                    continue
                rel = name[len(_FILES):]
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                if rel == "node.json" and store is not None:
                    node_doc["store"] = store
                    write_atomic(out, (json.dumps(node_doc, indent=2) + "\n").encode(),
                                 mode=0o600)
                else:
                    _copy_member(tar, name, out, m["mode"])
            migrated = info["schema_version"] != current
            if dialect == "sqlite":
                assert sqlite_target is not None
                if inside:
                    rel_store = sqlite_target.resolve().relative_to(dest.resolve())
                    db = staging / rel_store
                    db.parent.mkdir(parents=True, exist_ok=True)
                else:
                    db = temp_name(sqlite_target)
                _copy_member(tar, STORE_SQLITE, db, 0o600)
                try:
                    digest = _open_and_digest(str(db), kind)
                except BaseException:
                    if not inside:
                        _remove_sqlite(db)
                    raise
                if not migrated and digest != info["content_digest"]:
                    if not inside:
                        _remove_sqlite(db)
                    raise CorruptFileError(f"{a}: the restored store's content digest "
                                           "differs from the one at backup time")
                if authorize is not None:
                    try:
                        authorize(str(db))
                    except BaseException:
                        if not inside:
                            _remove_sqlite(db)
                        raise
                if not inside:
                    for side in _SQLITE_SIDE:  # an old WAL must never meet the new file
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(f"{sqlite_target}{side}")
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(f"{db}{side}")
                    os.replace(db, sqlite_target)
                    fsync_dir(sqlite_target.parent)
            else:
                dump = staging / ".store.pgdump"
                _copy_member(tar, STORE_PGDUMP, dump, 0o600)
                conninfo, env = _pg_conninfo(target)
                args = [_pg_bin("pg_restore"), "--single-transaction", "--exit-on-error",
                        "--no-owner", "--no-privileges"]
                if pg_clean:
                    args += ["--clean", "--if-exists"]
                _run_pg([*args, f"--dbname={conninfo}", str(dump)], env, "pg_restore")
                dump.unlink()
                digest = _open_and_digest(target, kind)
                if not migrated and digest != info["content_digest"]:
                    raise CorruptFileError(f"{a}: the restored store's content digest "
                                           "differs from the one at backup time")
                if authorize is not None and not pg_clean:
                    try:
                        authorize(target)
                    except BaseException:
                        _pg_empty_out(target)  # it was empty before
                        raise
            # -- swap the directory into place (every directory of the node private)
            for d_path, _, _ in os.walk(staging):
                os.chmod(d_path, 0o700)
            fsync_dir(staging)
            if os.path.lexists(dest):
                old = parent / f".{dest.name}.replaced-{os.getpid()}-{os.urandom(4).hex()}"
                os.rename(dest, old)
            os.rename(staging, dest)
            fsync_dir(parent)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, FileError):
                raise
            raise _fail("restore into", dest, exc) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return {
        "archive": str(a), "node": str(dest), "node_id": doc["node_id"], "role": doc["role"],
        "backup_created_at": doc["created_at"],
        "store": {"dialect": dialect, "kind": kind, "target": target,
                  "schema_version": info["schema_version"],
                  "migrated_to": current if migrated else None,
                  "content_digest": digest,
                  "digest_verified": not migrated},
        "members": len(doc["members"]),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Remove the directories that killed restores of ``name`` were building (never the
    ``.replaced-`` directory of an interrupted swap: it may be the only copy of a node)."""
    pattern = re.compile(rf"\.{re.escape(name)}\.restore-(\d+)-[0-9a-f]+")
    with contextlib.suppress(OSError):
        for e in os.scandir(parent):
            m = pattern.fullmatch(e.name)
            if m and e.is_dir(follow_symlinks=False) and not _alive(int(m.group(1))):
                shutil.rmtree(e.path, ignore_errors=True)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", *_SQLITE_SIDE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
