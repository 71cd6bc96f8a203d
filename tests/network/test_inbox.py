"""Nothing in an inbox stops the night: odd entries are refused one by one, the rest apply;
ids used in paths follow one rule; temporary files of killed runs are cleaned."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest
from netkit import MUNI, PASSWORD, PREF, Network, apply_day, block_bytes, deliver

from jukicore._files import temp_name
from jukicore.codes import CodeBlock, CodeRegistry
from jukicore.errors import FileError, InvalidInputError, JukiError, TamperedPacketError
from jukicore.identity import open_identity_store
from jukicore.network.crypto import check_node_id, check_path_id
from jukicore.network.node import CENTER, Node
from jukicore.network.packet import MAGIC, Packet, PacketHeader
from jukicore.network.sync import (
    BLOCK_SCHEMA,
    apply_packet,
    apply_packets,
    export_changes,
    packet_name,
)

BOTH = pytest.mark.parametrize("identity_target", ["sqlite", "postgresql"], indirect=True)
ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30


def _digest(node: Node) -> str:
    with open_identity_store(node.store_target()) as st:
        return st.content_digest()


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    return subprocess.run([sys.executable, "-m", "jukicore", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


# VmHWM: the peak resident set of this process's own memory since its exec (getrusage's
# maxrss would also count the parent's size at the fork: the test runner's, gigabytes late
# in the suite).
_PEAK = ("import re, runpy, sys\n"
         "sys.argv = ['jukicore', *sys.argv[1:]]\n"
         "try:\n"
         "    runpy.run_module('jukicore', run_name='__main__')\n"
         "finally:\n"
         "    status = open('/proc/self/status').read()\n"
         "    sys.stderr.write('\\npeak-rss-kib=%s\\n'"
         " % re.search(r'VmHWM:\\s*(\\d+)', status).group(1))\n")


def _cli_peak(*args: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], int]:
    """``jukicore ARGS`` in a subprocess, and the peak memory (KiB) of that process alone
    (RUSAGE_CHILDREN would count every earlier child of the test run too)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    run = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True,
                         text=True, env=env, timeout=timeout, check=False)
    peak = [line for line in run.stderr.splitlines() if line.startswith("peak-rss-kib=")]
    assert peak, run.stderr
    return run, int(peak[-1].split("=", 1)[1])


def _framed_but_huge(path: Path, size: int) -> None:
    """A sparse file whose framing announces exactly its (huge) size: only a size limit
    stops a reader from reading all of it."""
    header = b"{}"
    prefix = struct.pack(">8sHI", MAGIC, 2, len(header)) + header + struct.pack(">H", 80)
    prefix += bytes(80)
    plen = size - len(prefix) - 8 - 64
    with path.open("wb") as f:
        f.write(prefix + struct.pack(">Q", plen))
        f.truncate(size)


def _odd_entries(inbox: Path) -> dict[str, str]:
    """Every kind of odd inbox entry, by name, with the error class expected for it."""
    (inbox / "a-directory.jkp").mkdir()
    (inbox / "b-dangling.jkp").symlink_to(inbox / "nowhere")
    os.mkfifo(inbox / "c-fifo.jkp")
    (inbox / "d-zero.jkp").symlink_to("/dev/zero")
    with (inbox / "e-huge-garbage.jkp").open("wb") as f:
        f.truncate(3 * GIB)  # sparse: takes no disk
    _framed_but_huge(inbox / "f-huge-framed.jkp", 3 * GIB)
    (inbox / "g-short.jkp").write_bytes(b"JUKIPKT")
    header = b"[" * 500_000  # JSON nested past Python's recursion limit
    (inbox / "h-nested-header.jkp").write_bytes(
        struct.pack(">8sHI", MAGIC, 2, len(header)) + header + struct.pack(">H", 80)
        + bytes(80) + struct.pack(">Q", 0) + bytes(64))
    return {"a-directory.jkp": "FileError", "b-dangling.jkp": "FileError",
            "c-fifo.jkp": "FileError", "d-zero.jkp": "FileError",
            "e-huge-garbage.jkp": "TamperedPacketError",
            "f-huge-framed.jkp": "FileError", "g-short.jkp": "TamperedPacketError",
            "h-nested-header.jkp": "TamperedPacketError"}


@BOTH
def test_odd_inbox_entries_are_refused_one_by_one_and_the_rest_applies(
        network: Network) -> None:
    apply_day(network, 20, seed=11)
    packet = export_changes(network.muni, CENTER)
    assert packet is not None
    good = deliver(packet, network.center).rename(network.center.inbox / "z-good.jkp")
    # (named to sort after every odd entry: they must not stop the run)
    expected = _odd_entries(network.center.inbox)
    before = _digest(network.center)
    t = time.monotonic()
    run, peak_kib = _cli_peak("sync", "apply", str(network.center.path), "--json", "--quiet")
    assert time.monotonic() - t < 120  # the FIFO did not hang the run
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    by_name = {Path(r["packet"]).name: r for r in report["packets"]}
    assert report["refused"] == len(expected)
    for name, error in expected.items():
        assert by_name[name]["status"] == "refused"
        assert by_name[name]["error"] == error, by_name[name]
        assert name in by_name[name]["reason"] or "packet refused" in by_name[name]["reason"]
    assert by_name[good.name]["status"] == "applied"
    # The 3 GB files were not read: the run stayed far below their size.
    assert peak_kib < 1024 * 1024
    assert _digest(network.center) != before
    # Nothing changed for the refused entries: applying them alone changes nothing.
    after = _digest(network.center)
    odd = [network.center.inbox / n for n in expected]
    results = dict(apply_packets(network.center, odd))
    assert all(isinstance(r, JukiError) for r in results.values())
    assert _digest(network.center) == after


def test_packet_read_refuses_each_kind_without_reading_it(tmp_path: Path) -> None:
    expected = _odd_entries(tmp_path)
    for name, error in expected.items():
        t = time.monotonic()
        with pytest.raises(JukiError) as info:
            Packet.read(tmp_path / name)
        assert type(info.value).__name__ == error
        assert time.monotonic() - t < 5
    with pytest.raises(FileError, match="a link to nothing"):
        Packet.read(tmp_path / "b-dangling.jkp")
    with pytest.raises(FileError, match="not a regular file"):
        Packet.read(tmp_path / "c-fifo.jkp")
    with pytest.raises(FileError, match="more than the"):
        Packet.read(tmp_path / "f-huge-framed.jkp")
    with pytest.raises(FileError):
        Packet.read(tmp_path / "missing.jkp")
    with pytest.raises(FileError, match="not a valid path"):
        Packet.read(str(tmp_path / "nul\0.jkp"))


def test_packet_read_checks_the_size_against_the_framing(network: Network,
                                                         tmp_path: Path) -> None:
    apply_day(network, 10, seed=12)
    packet = export_changes(network.muni, CENTER)
    assert packet is not None
    data = packet.read_bytes()
    assert Packet.read(packet).to_bytes() == data
    with pytest.raises(FileError, match="more than the 100 allowed"):
        Packet.read(packet, max_bytes=100)
    (tmp_path / "long.jkp").write_bytes(data + b"\0" * 10)
    with pytest.raises(TamperedPacketError, match="length mismatch"):
        Packet.read(tmp_path / "long.jkp")
    (tmp_path / "short.jkp").write_bytes(data[:-1])
    with pytest.raises(TamperedPacketError, match="length mismatch"):
        Packet.read(tmp_path / "short.jkp")
    # A link to a good packet is followed.
    (tmp_path / "link.jkp").symlink_to(packet)
    assert Packet.read(tmp_path / "link.jkp").header == Packet.from_bytes(data).header
    before = _digest(network.center)
    with pytest.raises(FileError, match="more than the"):
        apply_packet(network.center, deliver(packet, network.center), max_bytes=len(data) - 1)
    assert _digest(network.center) == before


# --------------------------------------------------------------------------- ids in paths

BAD_IDS = ["../../../x", "../x", "..", ".", "/etc/passwd", "/tmp/x", "a/b", "a\\b", "a\0b",
           "", "x" * 65, "x" * 10_000, "abc\n", "\nabc", " abc", "-abc", ".hidden",
           "ａｂｃ", "a b", 12, None]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_one_rule_for_every_id_in_a_path(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        check_path_id(bad, "block id")
    with pytest.raises(InvalidInputError):
        check_node_id(bad)
    with pytest.raises(InvalidInputError):
        packet_name(MUNI, bad, "ack", 1, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        packet_name(bad, MUNI, "ack", 1, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", ["center", "131041", "a", "x" * 64, "a.b-c_d",
                                  "0123456789abcdef0123456789abcdef"])
def test_good_ids_pass(good: str) -> None:
    assert check_path_id(good) == good


@pytest.mark.parametrize("bad", ["../x", "/etc/x", "a\0b", "", "x" * 65, "abc\n"])
def test_header_with_a_malformed_node_is_refused(bad: str) -> None:
    doc = {"version": 2, "packet_id": "00" * 16, "kind": "ack",
           "sender": {"node": bad, "key_id": "k"}, "recipient": {"node": MUNI, "key_id": "k"},
           "sequence": [1, 1], "created_at": "2024-06-03T00:00:00Z", "rows": 1,
           "encrypted": [], "schema": ""}
    with pytest.raises(TamperedPacketError, match="malformed node"):
        PacketHeader.from_json_bytes(json.dumps(doc).encode())
    doc["sender"], doc["recipient"] = {"node": MUNI, "key_id": "k"}, {"node": bad,
                                                                       "key_id": "k"}
    with pytest.raises(TamperedPacketError, match="malformed node"):
        PacketHeader.from_json_bytes(json.dumps(doc).encode())


def _tree(root: Path) -> set[str]:
    """Every path under ``root`` but the nodes' lock files (created on first use)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if "locks" not in p.parts}


@BOTH
@pytest.mark.parametrize("bad", ["../../../x", "/tmp/jukicore-escape", "..", "x" * 65,
                                 "a\nb"])
def test_a_code_block_id_cannot_write_outside_the_node(network: Network, tmp_path: Path,
                                                       bad: str) -> None:
    codes = CodeRegistry().allocate_block(20, PREF).codes
    with pytest.raises(InvalidInputError, match="block id"):  # jukicore builds no such block
        CodeBlock.from_codes(codes, PREF, block_id=bad)
    # Built by hand (a buggy or hostile center): signed, trusted, and still refused.
    table = pa.table({"seq": pa.array([1], pa.int64()),
                      "block": pa.array([block_bytes(codes, PREF, bad)], pa.large_binary())},
                     schema=BLOCK_SCHEMA)
    raw = Packet.build(kind="code-block", table=table,
                       sender=network.center.current_keys(PASSWORD), recipient=PREF,
                       trust_store=network.center.trust(), seq_first=1, seq_last=1).to_bytes()
    path = network.pref.inbox / "evil.jkp"
    path.write_bytes(raw)
    before = _tree(tmp_path)
    with pytest.raises(TamperedPacketError, match="block"):
        apply_packet(network.pref, path)
    assert _tree(tmp_path) == before
    assert not Path("/tmp/jukicore-escape.block").exists()
    # Same at a municipality (a prefecture's block for it).
    table = pa.table({"seq": pa.array([1], pa.int64()),
                      "block": pa.array([block_bytes(codes[:10], MUNI, bad)],
                                        pa.large_binary())},
                     schema=BLOCK_SCHEMA)
    path = network.muni.inbox / "evil.jkp"
    path.write_bytes(Packet.build(
        kind="code-block", table=table, sender=network.pref.current_keys(PASSWORD),
        recipient=MUNI, trust_store=network.pref.trust(), seq_first=1,
        seq_last=1).to_bytes())
    before = _tree(tmp_path)
    with pytest.raises(TamperedPacketError, match="block"):
        apply_packet(network.muni, path)
    assert _tree(tmp_path) == before


# --------------------------------------------------------------------------- stale temps


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(network: Network) -> None:
    node = network.muni
    (node.path / "blocks").mkdir(exist_ok=True)
    # A real run killed between writing its temporary file and the rename.
    script = textwrap.dedent("""
        import os, sys
        from pathlib import Path
        from jukicore._files import temp_name
        for d in sys.argv[1:]:
            temp_name(Path(d) / "x.jkp").write_bytes(b"half a packet")
        os.kill(os.getpid(), 9)
    """)
    dirs = [node.path, node.outbox, node.inbox, node.path / "blocks", node.path / "keys",
            node.path / "keys" / "1"]
    proc = subprocess.run([sys.executable, "-c", script, *map(str, dirs)],
                          env={**os.environ, "PYTHONPATH": str(ROOT / "python")},
                          check=False)
    assert proc.returncode == -signal.SIGKILL
    pid = _dead_pid()
    stale = [d / f".y.jkp.tmp-{pid}" for d in dirs]
    for p in stale:
        p.write_bytes(b"stale")
    killed = [p for d in dirs for p in d.iterdir() if ".tmp-" in p.name]
    assert len(killed) == 2 * len(dirs)
    # A half-written key generation of a killed rotation.
    half_gen = node.path / "keys" / f".2.tmp-{pid}-0011aabb"
    half_gen.mkdir()
    (half_gen / "signing.pem").write_bytes(b"half")
    # A live process's temporary file and every other file stay.
    live = temp_name(node.outbox / "z.jkp")
    live.write_bytes(b"being written")
    keep = node.outbox / ".not-a-temp"
    keep.write_bytes(b"x")
    apply_day(network, 5, seed=13)
    run = _cli("sync", "export", str(node.path), "--to", CENTER)
    assert run.returncode == 0, run.stderr
    assert not any(p.exists() for p in killed)
    assert not half_gen.exists()
    assert live.exists() and keep.exists()
    assert [g.name for g in node.generations()] == ["1"]


@pytest.mark.parametrize("command", ["export", "apply", "rotate", "trust"])
def test_every_writing_command_cleans_first(network: Network, tmp_path: Path,
                                            command: str) -> None:
    node = network.muni
    stale = node.outbox / f".x.jkp.tmp-{_dead_pid()}"
    stale.write_bytes(b"stale")
    if command == "export":
        apply_day(network, 3, seed=14)
        export_changes(node, CENTER)
    elif command == "apply":
        list(apply_packets(node, []))
    elif command == "rotate":
        node.rotate(PASSWORD)
    else:
        record = tmp_path / "rec.json"
        run = _cli("node", "public-key", str(network.center.path), "--out", str(record))
        assert run.returncode == 0, run.stderr
        run = _cli("node", "trust", str(node.path), str(record))
        assert run.returncode == 1  # the center's key is trusted already: refused...
        assert "already trusted" in run.stderr
    assert not stale.exists()  # ...but the node was cleaned first
