"""Files that survive crashes and files that cannot stall a run.

One writer for every file jukicore writes (packets, blocks, keys, trust
stores, node descriptions): :func:`write_atomic` writes to a temporary name
beside the target, fsyncs it, renames it over the target and fsyncs the
directory, so a reader sees either the old file or the new one, never a part.

A run killed between the write and the rename leaves its temporary file
behind; :func:`remove_stale_temps` removes those of processes that are gone,
and every command that writes into a directory calls it first.

:func:`read_regular` reads a file that someone else put there (an inbox
entry, a block file): only a regular file, never a directory, FIFO, device or
dangling link, and never more than a stated size, so an odd entry cannot hang
or exhaust a run.

Every failure is a :class:`jukicore.errors.FileError` (a ``JukiError`` and an
``OSError``) naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from jukicore.errors import FileError

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "atomic_file", "create_private_file", "fsync_dir",
           "private_dir", "read_regular", "remove_stale_temps", "temp_name", "write_atomic"]

#: The mode of a file holding secrets or personal data (stores, keys, cards, packets).
PRIVATE_FILE = 0o600
#: The mode of a directory holding such files (a node and everything in it).
PRIVATE_DIR = 0o700

#: ``.{name}.tmp-{pid}`` or ``.{name}.tmp-{pid}-{random}``: jukicore's temporary files
#: (the Rust core's container writer uses the same form).
_TEMP = re.compile(r"^\..+\.tmp-(\d+)(?:-[0-9a-f]+)?$")
#: A temporary file older than this is stale even when its pid is alive again (pid reuse).
STALE_AFTER_S = 24 * 3600


def temp_name(path: Path) -> Path:
    """The temporary name :func:`write_atomic` writes ``path`` under first."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def _fail(action: str, path: Path | str, exc: OSError) -> FileError:
    reason = exc.strerror or str(exc)
    err = FileError(f"cannot {action} {path}: {reason}")
    err.errno = exc.errno  # no .filename: OSError.__str__ would then drop the message
    return err


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that it is either the old file or complete, even across
    a crash or a full disk. ``mode`` is the new file's (0600 for secrets): a mode with no
    bits for the group and others is set exactly, whatever the umask; a wider one is
    narrowed by the umask as usual."""
    with atomic_file(path, mode=mode) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file to write ``path`` through, streaming: written under a temporary name beside
    it, made durable and renamed over ``path`` when the block ends, so that ``path`` is
    either the old file or complete, even across a crash or a full disk. An error in the
    block (or in writing) removes the temporary file and leaves ``path`` as it was."""
    target = Path(path)
    tmp = temp_name(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        if not mode & 0o077:
            try:
                os.fchmod(fd, mode)  # a private file stays private, whatever the umask
            except BaseException:
                os.close(fd)
                raise
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except FileError:
        _unlink_quietly(tmp)
        raise
    except OSError as exc:
        _unlink_quietly(tmp)
        raise _fail("write", target, exc) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(target.parent, what=f"the directory of {target}")


def private_dir(path: str | os.PathLike[str], *, parents: bool = False) -> Path:
    """Make directory ``path`` (if missing) and give it mode 0700 (:data:`PRIVATE_DIR`)
    whatever the umask: a node's directories hold keys, stores and packets. ``parents``:
    make missing parents too (with the usual umask: they are not the node's)."""
    p = Path(path)
    try:
        if parents:
            p.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(p, PRIVATE_DIR)
        if not p.is_dir():  # (a link to a directory is used as the directory)
            raise FileError(f"cannot use {p} as a directory: it is not one")
        os.chmod(p, PRIVATE_DIR)
    except FileError:
        raise
    except OSError as exc:
        raise _fail("create the directory", p, exc) from exc
    return p


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 (:data:`PRIVATE_FILE`) whatever the umask,
    unless it exists (then nothing changes; False). For files another library fills
    (a SQLite database: SQLite gives its -wal and -shm files the database's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _fail("create", Path(path), exc) from exc
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def fsync_dir(path: str | os.PathLike[str], *, what: str | None = None) -> None:
    """Make the entries of directory ``path`` durable (after a rename, link or unlink in
    it); a failure is a :class:`FileError` (``what`` names the directory in it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _fail("sync", Path(what or path), exc) from exc


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:
        return False
    return True


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed runs left in ``directory``; returns them.

    A temporary file is stale when the process that wrote it is gone, or when it is
    older than :data:`STALE_AFTER_S`. Other files are never touched.
    """
    d = Path(directory)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(d))
    except FileNotFoundError:
        return removed
    except OSError as exc:
        raise _fail("list", d, exc) from exc
    now = time.time()
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if _alive(int(m.group(1))) and now - st.st_mtime < STALE_AFTER_S:
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _fail("remove", Path(entry.path), exc) from exc
        removed.append(Path(entry.path))
    return removed


def read_regular(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The content of the regular file at ``path``, at most ``max_bytes`` long.

    Refuses (:class:`FileError`) a directory, a FIFO, a device, a socket, a dangling
    link or a file larger than ``max_bytes``, without blocking and without reading
    more than ``max_bytes + 1`` bytes. A link to a regular file is followed.
    """
    p = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.lexists(p):
            raise FileError(f"cannot read {p}: a link to nothing") from exc
        raise _fail("read", p, exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"cannot read {p}: not a regular file")
        if st.st_size > max_bytes:
            raise FileError(f"cannot read {p}: {st.st_size} bytes, more than the "
                            f"{max_bytes} allowed")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # grew after the stat
                raise FileError(f"cannot read {p}: more than the {max_bytes} bytes allowed")
        return b"".join(chunks)
    except OSError as exc:
        if isinstance(exc, FileError):
            raise
        raise _fail("read", p, exc) from exc
    finally:
        os.close(fd)
