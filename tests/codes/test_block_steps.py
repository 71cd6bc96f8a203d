"""Two-file code steps (block split, block allocation) under crashes and failed writes.

Each step writes an intent first; a crash or a failed write at any point leaves no code
in two blocks and no code in a block that the registry does not record, and the next
command on the same file completes the step.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jukicore.cli import main
from jukicore.codes import (
    CodeBlock,
    CodeRegistry,
    allocate_block_file,
    split_block_file,
)
from jukicore.errors import ConflictError, InvalidInputError

ROOT = Path(__file__).resolve().parents[2]

#: Runs the CLI and kills the process right after its k-th durable write (an intent,
#: a block file or the registry): a real process death between two steps.
CRASH_AFTER = """
import os, sys
from jukicore import codes
from jukicore.cli import main
k = int(sys.argv[1])
count = 0
def after():
    global count
    count += 1
    if count == k:
        os._exit(17)
real_write = codes.write_atomic
def write(*a, **kw):
    real_write(*a, **kw)
    after()
codes.write_atomic = write
real_save = codes.CodeRegistry.save
def save(self, path):
    real_save(self, path)
    after()
codes.CodeRegistry.save = save
main(sys.argv[2:])
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    return env


def _cli(*args: str, fsize: int | None = None, crash_after: int | None = None
         ) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    if crash_after is not None:
        cmd = [sys.executable, "-c", CRASH_AFTER, str(crash_after), *args]
    else:
        cmd = [sys.executable, "-m", "jukicore", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=False,
                          preexec_fn=limit, timeout=120)


def _raw_block(path: Path) -> CodeBlock | None:
    """The block file as it is on disk, without completing anything."""
    return CodeBlock.from_bytes(path.read_bytes()) if path.exists() else None


def _raw_registry(path: Path) -> CodeRegistry:
    return CodeRegistry._load_raw(path)


def _intent(path: Path) -> Path:
    return path.with_name(f".{path.name}.intent")


def _temps(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".tmp-" in p.name]


def _make_parent(tmp_path: Path, n: int = 1000) -> tuple[Path, Path, np.ndarray]:
    reg, parent = tmp_path / "center.bin", tmp_path / "tokyo.block"
    allocate_block_file(reg, n, "130001", parent)
    return reg, parent, CodeBlock.load(parent).codes.copy()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_split_killed_after_each_write_never_duplicates_and_is_completed(
        tmp_path: Path, k: int, pref_store: Path) -> None:
    reg, parent, original = _make_parent(tmp_path)
    child = tmp_path / "minato.block"
    done = _cli("codes", "block", "split", "--node", str(pref_store), str(parent), "--holder",
                "131032", "-n", "300",
                "--out", str(child), crash_after=k)
    assert done.returncode == 17, done.stderr
    # On disk, before anyone completes anything: no code in two blocks.
    p, c = _raw_block(parent), _raw_block(child)
    assert p is not None
    held = [p.codes] + ([c.codes] if c is not None else [])
    every = np.concatenate(held)
    assert np.unique(every).size == every.size
    assert np.isin(every, original).all()
    assert _intent(parent).exists()  # the step is recorded
    # The next command on the parent completes the step.
    result = CliRunner().invoke(main, ["codes", "block", "show", str(parent)])
    assert result.exit_code == 0 and "remaining: 700" in result.stdout
    assert not _intent(parent).exists()
    p, c = _raw_block(parent), _raw_block(child)
    assert p is not None and c is not None
    assert len(c) == 300 and c.holder == "131032" and c.parent_id == p.block_id
    assert not np.intersect1d(p.codes, c.codes).size
    assert np.array_equal(np.sort(np.concatenate([p.codes, c.codes])), np.sort(original))
    assert _raw_registry(reg).contains(c.codes).all()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_allocate_killed_after_each_write_never_leaves_unrecorded_codes(
        tmp_path: Path, k: int, center_store: Path) -> None:
    reg, out = tmp_path / "center.bin", tmp_path / "tokyo.block"
    CodeRegistry().save(reg)
    done = _cli("codes", "block", "allocate", "--node", str(center_store), "--registry", str(reg),
                "--holder", "130001",
                "-n", "500", "--out", str(out), crash_after=k)
    assert done.returncode == 17, done.stderr
    block = _raw_block(out)
    if block is not None:  # a block on disk: every code of it is recorded as issued
        assert _raw_registry(reg).contains(block.codes).all()
    assert _intent(reg).exists()
    # The next command on the registry completes the allocation.
    result = CliRunner().invoke(main, ["codes", "generate", "2", "--node", str(center_store),
                                       "--registry", str(reg)])
    assert result.exit_code == 0, result.output
    block = _raw_block(out)
    assert block is not None and len(block) == 500 and block.holder == "130001"
    registry = _raw_registry(reg)
    assert registry.contains(block.codes).all() and len(registry) == 502
    fresh = [c for c in result.stdout.split()]
    assert not np.isin(CodeBlock.load(out).codes, np.array(fresh, dtype=np.uint64)).any()
    assert not _intent(reg).exists()


def test_allocate_with_a_failed_registry_write_changes_nothing(tmp_path: Path,
                                                               center_store: Path) -> None:
    reg, out = tmp_path / "center.bin", tmp_path / "tokyo.block"
    big = CodeRegistry()
    big.generate(300_000)
    big.save(reg)
    before = reg.read_bytes()
    assert len(before) > 768 * 1024 > center_store.stat().st_size
    done = _cli("codes", "block", "allocate", "--node", str(center_store), "--registry", str(reg),
                "--holder", "130001",
                "-n", "100", "--out", str(out), fsize=768 * 1024)  # (the store is smaller)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: cannot write") and str(reg) in done.stderr
    assert "Traceback" not in done.stderr
    assert reg.read_bytes() == before
    assert not out.exists() and not _intent(reg).exists() and not _temps(tmp_path)


def test_split_with_a_failed_write_changes_nothing(tmp_path: Path, pref_store: Path) -> None:
    _, parent, _ = _make_parent(tmp_path, 200_000)
    before = parent.read_bytes()
    assert len(before) > 768 * 1024 > pref_store.stat().st_size
    child = tmp_path / "minato.block"
    done = _cli("codes", "block", "split", "--node", str(pref_store), str(parent), "--holder",
                "131032", "-n", "10",
                "--out", str(child), fsize=768 * 1024)  # (the store is smaller)
    assert done.returncode == 1 and "error: cannot write" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert parent.read_bytes() == before
    assert not child.exists() and not _intent(parent).exists() and not _temps(tmp_path)


def test_concurrent_splits_of_one_file_never_share_a_code(tmp_path: Path,
                                                          pref_store: Path) -> None:
    _, parent, original = _make_parent(tmp_path, 2000)
    procs = [
        subprocess.Popen([sys.executable, "-m", "jukicore", "codes", "block", "split",
                          "--node", str(pref_store), str(parent), "--holder", "131032", "-n",
                              "100",
                          "--out", str(tmp_path / f"child{i}.block")], env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    blocks = [CodeBlock.load(parent)] + [CodeBlock.load(tmp_path / f"child{i}.block")
                                             for i in range(4)]
    every = np.concatenate([b.codes for b in blocks])
    assert every.size == 2000 and np.unique(every).size == 2000
    assert np.array_equal(np.sort(every), np.sort(original))


def test_a_block_file_is_never_overwritten(tmp_path: Path) -> None:
    reg, parent, _ = _make_parent(tmp_path)
    other = tmp_path / "other.block"
    other.write_bytes(b"user data")
    before, reg_before = parent.read_bytes(), reg.read_bytes()
    with pytest.raises(ConflictError, match="already exists"):
        split_block_file(parent, 10, "131032", other)
    with pytest.raises(ConflictError, match="already exists"):
        allocate_block_file(reg, 10, "130001", other)
    assert parent.read_bytes() == before and reg.read_bytes() == reg_before
    assert other.read_bytes() == b"user data"


def test_roll_forward_never_overwrites_a_block_that_took_the_name(tmp_path: Path,
                                                                  pref_store: Path) -> None:
    _, parent, original = _make_parent(tmp_path)
    child = tmp_path / "minato.block"
    done = _cli("codes", "block", "split", "--node", str(pref_store), str(parent), "--holder",
                "131032", "-n", "300",
                "--out", str(child), crash_after=2)  # intent and parent written, no child
    assert done.returncode == 17 and not child.exists()
    intruder = CodeBlock.from_codes(original[:0], "131032")
    intruder.save(child)
    with pytest.raises(ConflictError, match="another block"):
        CodeBlock.load(parent)
    assert CodeBlock.load(child).block_id == intruder.block_id  # untouched
    assert _intent(parent).exists()  # kept: the codes are in no block, never in two


def test_the_new_block_file_is_never_the_registry_or_the_parent(tmp_path: Path,
                                                                center_store: Path) -> None:
    reg = tmp_path / "center.bin"
    with pytest.raises(InvalidInputError, match="must differ"):
        allocate_block_file(reg, 10, "130001", reg)  # would overwrite the registry
    assert not reg.exists()
    allocate_block_file(reg, 10, "130001", tmp_path / "t.block")
    before = reg.read_bytes()
    with pytest.raises(InvalidInputError, match="must differ"):
        allocate_block_file(reg, 10, "130001", tmp_path / ".center.bin.intent")
    link = tmp_path / "alias.block"
    link.symlink_to(tmp_path / "new.block")
    (tmp_path / "new.block").write_bytes(b"")
    (tmp_path / "new.block").unlink()  # a dangling link is still an existing name
    with pytest.raises(ConflictError):
        split_block_file(tmp_path / "t.block", 1, "131032", link)
    assert reg.read_bytes() == before and len(CodeBlock.load(tmp_path / "t.block")) == 10
    result = CliRunner().invoke(main, ["codes", "block", "allocate", "--node", str(center_store),
                                       "--registry", str(reg),
                                       "--holder", "130001", "-n", "5", "--out", str(reg)])
    assert result.exit_code == 1 and reg.read_bytes() == before
