"""jukicore._files: regular-file reads, stale temporary files, the atomic writer."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jukicore._files import STALE_AFTER_S, read_regular, remove_stale_temps, write_atomic
from jukicore.errors import FileError, JukiError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ read_regular


def test_reads_a_regular_file_and_a_link_to_one(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 100)
    link = tmp_path / "link"
    link.symlink_to(f)
    assert read_regular(f, max_bytes=100) == b"x" * 100
    assert read_regular(link, max_bytes=1000) == b"x" * 100
    (tmp_path / "empty").write_bytes(b"")
    assert read_regular(tmp_path / "empty", max_bytes=0) == b""


def _refused(path: Path, match: str, max_bytes: int = 1 << 20) -> FileError:
    with pytest.raises(FileError, match=match) as caught:
        read_regular(path, max_bytes=max_bytes)
    assert isinstance(caught.value, JukiError) and isinstance(caught.value, OSError)
    assert str(path) in str(caught.value)
    return caught.value


def test_refuses_a_directory(tmp_path: Path) -> None:
    _refused(tmp_path, "not a regular file")


def test_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "inbox.jkp"
    os.mkfifo(fifo)
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(read_regular(fifo, max_bytes=1 << 20))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():
        with open(fifo, "wb"):  # unblock the reader before failing
            pass
        pytest.fail("read_regular blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], FileError)
    assert "not a regular file" in str(outcome[0])


def test_refuses_a_dangling_link(tmp_path: Path) -> None:
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    _refused(link, "a link to nothing")


def test_refuses_a_link_to_dev_zero(tmp_path: Path) -> None:
    link = tmp_path / "zero.jkp"
    link.symlink_to("/dev/zero")
    _refused(link, "not a regular file")


def test_refuses_an_oversize_file_by_its_size(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:  # sparse: 8 GiB on paper, nothing on disk
        f.truncate(8 << 30)
    started = time.perf_counter()
    _refused(big, "more than the 1048576 allowed")
    assert time.perf_counter() - started < 5  # refused by its size, not read
    exact = tmp_path / "exact.bin"
    exact.write_bytes(b"y" * 11)
    _refused(exact, "11 bytes, more than the 10", max_bytes=10)


def test_refuses_a_missing_file_with_its_errno(tmp_path: Path) -> None:
    err = _refused(tmp_path / "missing", "cannot read")
    assert err.errno == errno.ENOENT
    assert "No such file" in str(err)


# ------------------------------------------------------------------ remove_stale_temps


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_remove_stale_temps_removes_only_dead_runs_temps(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    stale = [tmp_path / f".packet.jkp.tmp-{dead}", tmp_path / f".b.block.tmp-{dead}-0a1b2c3d"]
    kept = [tmp_path / f".packet.jkp.tmp-{live}", tmp_path / f".k.key.tmp-{live}-deadbeef"]
    others = [tmp_path / "packet.jkp", tmp_path / f"packet.jkp.tmp-{dead}",
              tmp_path / f".x.tmp-{dead}-XYZ", tmp_path / ".x.tmp-abc",
              tmp_path / f"notes.tmp-{dead}.txt", tmp_path / ".hidden"]
    for p in stale + kept + others:
        p.write_bytes(b"data")
    temp_dir = tmp_path / f".dir.tmp-{dead}"  # a directory with a temp's name
    temp_dir.mkdir()
    (temp_dir / "inside").write_bytes(b"keep")
    target = tmp_path / "precious"
    target.write_bytes(b"keep")
    link = tmp_path / f".link.tmp-{dead}"  # a link with a temp's name: never followed
    link.symlink_to(target)
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"data" for p in kept + others)
    assert (temp_dir / "inside").read_bytes() == b"keep"
    assert target.read_bytes() == b"keep" and link.is_symlink()


def test_remove_stale_temps_removes_a_live_pids_temp_once_old(tmp_path: Path) -> None:
    old = tmp_path / f".packet.jkp.tmp-{os.getppid()}"
    old.write_bytes(b"data")
    past = time.time() - STALE_AFTER_S - 60
    os.utime(old, (past, past))
    assert remove_stale_temps(tmp_path) == [old] and not old.exists()


def test_remove_stale_temps_of_a_missing_directory_is_nothing(tmp_path: Path) -> None:
    assert remove_stale_temps(tmp_path / "missing") == []


# ------------------------------------------------------------------ write_atomic

FAILING_WRITE = """
import resource, sys
from jukicore._files import write_atomic
from jukicore.errors import FileError
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_atomic(sys.argv[1], b"n" * 100_000)
except FileError as exc:
    print(exc)
    sys.exit(3)
sys.exit(0)
"""


def test_write_atomic_with_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "node.json"
    write_atomic(target, b"old content")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    done = subprocess.run([sys.executable, "-c", FAILING_WRITE, str(target)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 3, done.stderr
    assert str(target) in done.stdout and "File too large" in done.stdout
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.json"]  # no temp left


def test_write_atomic_replaces_and_sets_the_mode_of_new_files(tmp_path: Path) -> None:
    secret = tmp_path / "key.pem"
    write_atomic(secret, b"one", mode=0o600)
    assert secret.read_bytes() == b"one" and (secret.stat().st_mode & 0o777) == 0o600
    write_atomic(secret, b"two")
    assert secret.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]


def test_write_atomic_errors_are_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="cannot write") as caught:
        write_atomic(tmp_path / "no" / "such" / "f", b"x")
    assert caught.value.errno == errno.ENOENT and "No such file" in str(caught.value)
    (tmp_path / "d").mkdir()
    with pytest.raises(FileError):
        write_atomic(tmp_path / "d", b"x")  # a directory is never replaced
    assert (tmp_path / "d").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
