"""The inbox archive: ``sync apply`` moves each packet it applied (or found applied before)
into ``archive/YYYY-MM-DD/``; refused packets stay; a crash between the apply's commit and
the move is finished by the next run; a name taken in the archive is never overwritten."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from netkit import MUNI, PREF, Network, apply_day, deliver

from jukicore.errors import TamperedPacketError
from jukicore.identity import open_identity_store
from jukicore.network import sync
from jukicore.network.night import run_night
from jukicore.network.node import CENTER, Node
from jukicore.network.sync import apply_inbox, apply_packet, archive_dir, export_changes
from jukicore.register import Actor, open_register

BOTH = pytest.mark.parametrize("identity_target", ["sqlite", "postgresql"], indirect=True)
ROOT = Path(__file__).resolve().parents[2]
CS = Actor.node(MUNI, MUNI, "cs")


def _digest(node: Node) -> str:
    with open_identity_store(node.store_target()) as st:
        return st.content_digest()


def _cli(*args: str) -> tuple[int, dict[str, object], str]:
    """``jukicore ARGS --json -q`` in its own process: exit code, the JSON report, stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    run = subprocess.run([sys.executable, "-m", "jukicore", *args, "--json", "-q"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.stdout, run.stderr
    return run.returncode, json.loads(run.stdout), run.stderr


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _inbox(node: Node) -> list[str]:
    return sorted(p.name for p in node.inbox.iterdir())


def _archive(node: Node) -> dict[str, bytes]:
    """Every archived packet by ``DAY/NAME``, with its bytes."""
    top = archive_dir(node)
    if not top.exists():
        return {}
    return {f"{d.name}/{p.name}": p.read_bytes() for d in top.iterdir() for p in d.iterdir()}


def _center_packet(net: Network, n: int = 20, seed: int = 3) -> Path:
    apply_day(net, n, seed=seed)
    packet = export_changes(net.muni, CENTER)
    assert packet is not None
    return packet


def test_a_night_leaves_every_inbox_empty(tmp_path: Path) -> None:
    summary = run_night(tmp_path / "night", population=300, notifications=20, seed=2,
                        password="archive-night-pw")
    nodes = [Node.open(p) for p in (tmp_path / "night").iterdir() if (p / "node.json").exists()]
    assert len(nodes) == 3
    for node in nodes:
        assert _inbox(node) == [], node.node_id
        assert all(k.startswith(_today() + "/") for k in _archive(node))
    archived = {n.node_id: _archive(n) for n in nodes}
    # center: the changes; prefecture: the center's block and the changes; municipality:
    # the prefecture's block and two acknowledgements.
    assert {k: len(v) for k, v in archived.items()} == summary["archived"]
    assert sorted(len(v) for v in archived.values()) == [1, 2, 3]
    lg = next(n.node_id for n in nodes if n.role == "municipality")
    kinds = sorted(key.split("/")[1].split("-", 2)[2].split("-")[0] for key in archived[lg])
    assert kinds == ["ack", "ack", "code"]


def test_sync_apply_archives_what_it_applied(full_network: Network) -> None:
    net = full_network
    packet = _center_packet(net)
    inbox_copy = deliver(packet, net.center)
    code, report, _ = _cli("sync", "apply", str(net.center.path))
    assert code == 0
    (entry,) = report["packets"]  # type: ignore[misc]
    assert entry["status"] == "applied" and report["archived"] == 1
    archived = Path(entry["archived"])
    assert archived == archive_dir(net.center) / _today() / packet.name
    assert archived.read_bytes() == packet.read_bytes()
    assert not inbox_copy.exists() and _inbox(net.center) == []
    # The acknowledgement, applied at the municipality, is archived there too.
    deliver(Path(entry["reply"]), net.muni)
    code, report, _ = _cli("sync", "apply", str(net.muni.path))
    assert code == 0 and report["packets"][0]["status"] == "applied"  # type: ignore[index]
    assert _inbox(net.muni) == [] and len(_archive(net.muni)) == 1
    with open_register(net.muni.store_target()) as reg:
        assert reg.sync_acked(CENTER, actor=CS) > 0
    # A second night finds the inbox empty: nothing is verified again.
    code, report, _ = _cli("sync", "apply", str(net.center.path))
    assert code == 0 and report["packets"] == []


@BOTH
def test_a_redelivered_packet_is_recognized_and_archived_beside_the_first(
        network: Network) -> None:
    packet = _center_packet(network)
    deliver(packet, network.center)
    assert _cli("sync", "apply", str(network.center.path))[0] == 0
    first = archive_dir(network.center) / _today() / packet.name
    first_inode = first.stat().st_ino
    applied = _digest(network.center)
    # The transport delivers the same packet again (a retry after a lost confirmation).
    deliver(packet, network.center)
    code, report, _ = _cli("sync", "apply", str(network.center.path))
    assert code == 0
    (entry,) = report["packets"]  # type: ignore[misc]
    assert entry["status"] == "already-applied"
    second = Path(entry["archived"])
    assert second.name == packet.name.removesuffix(".jkp") + ".1.jkp"
    assert second.read_bytes() == packet.read_bytes()
    assert first.stat().st_ino == first_inode  # the first archived copy was not replaced
    assert _inbox(network.center) == []
    assert _digest(network.center) == applied


@BOTH
def test_kill_between_commit_and_move_is_finished_by_the_next_run(network: Network) -> None:
    """The apply committed, the run died before moving the packet (simulated: the packet is
    applied through the library without archiving, as a killed run leaves it)."""
    packet = _center_packet(network)
    entry = deliver(packet, network.center)
    assert apply_packet(network.center, entry).status == "applied"  # archive=False
    assert _inbox(network.center) == [packet.name]
    committed = _digest(network.center)
    code, report, _ = _cli("sync", "apply", str(network.center.path))
    assert code == 0
    assert report["packets"][0]["status"] == "already-applied"  # type: ignore[index]
    assert _inbox(network.center) == []
    assert list(_archive(network.center)) == [f"{_today()}/{packet.name}"]
    assert _digest(network.center) == committed  # nothing applied twice


@BOTH
def test_kill_between_link_and_unlink_leaves_one_archived_copy(network: Network) -> None:
    """A run killed after linking the packet into the archive (on an earlier day) and before
    removing it from the inbox: the next run removes the inbox entry and archives no
    second copy."""
    packet = _center_packet(network)
    entry = deliver(packet, network.center)
    apply_packet(network.center, entry)
    committed = _digest(network.center)
    earlier = archive_dir(network.center) / "2024-06-03"
    earlier.mkdir(parents=True)
    os.link(entry, earlier / packet.name)
    code, report, _ = _cli("sync", "apply", str(network.center.path))
    assert code == 0
    assert report["packets"][0]["archived"] == str(earlier / packet.name)  # type: ignore[index]
    assert _inbox(network.center) == []
    assert list(_archive(network.center)) == [f"2024-06-03/{packet.name}"]
    assert (earlier / packet.name).read_bytes() == packet.read_bytes()
    assert _digest(network.center) == committed


def test_a_name_taken_in_the_archive_is_never_overwritten(network: Network) -> None:
    packet = _center_packet(network)
    deliver(packet, network.center)
    day = archive_dir(network.center) / _today()
    day.mkdir(parents=True)
    (day / packet.name).write_bytes(b"someone else's file")
    stem = packet.name.removesuffix(".jkp")
    (day / f"{stem}.1.jkp").write_bytes(b"another one")
    results = dict(apply_inbox(network.center))
    (outcome,) = results.values()
    assert not isinstance(outcome, Exception) and outcome.status == "applied"
    assert outcome.archived == day / f"{stem}.2.jkp"
    assert (day / packet.name).read_bytes() == b"someone else's file"
    assert (day / f"{stem}.1.jkp").read_bytes() == b"another one"
    assert (day / f"{stem}.2.jkp").read_bytes() == packet.read_bytes()
    assert _inbox(network.center) == []


@BOTH
def test_refused_packets_stay_in_the_inbox(network: Network) -> None:
    packet = _center_packet(network)
    raw = packet.read_bytes()
    (network.center.inbox / "a-flipped.jkp").write_bytes(raw[:-70] + bytes([raw[-70] ^ 1])
                                                         + raw[-69:])
    deliver(packet, network.pref).rename(network.pref.inbox / "for-the-center.jkp")
    before = _digest(network.center), _digest(network.pref)
    code, report, _ = _cli("sync", "apply", str(network.center.path))
    assert code == 1 and report["refused"] == 1 and report["archived"] == 0
    code, report, _ = _cli("sync", "apply", str(network.pref.path))
    assert code == 1
    assert report["packets"][0]["error"] == "MisaddressedPacketError"  # type: ignore[index]
    assert _inbox(network.center) == ["a-flipped.jkp"]
    assert _inbox(network.pref) == ["for-the-center.jkp"]
    assert _archive(network.center) == {} and _archive(network.pref) == {}
    assert (_digest(network.center), _digest(network.pref)) == before
    # The good packet arriving later applies and is archived; the refused one stays.
    deliver(packet, network.center)
    code, report, _ = _cli("sync", "apply", str(network.center.path))
    assert code == 1 and report["archived"] == 1
    assert _inbox(network.center) == ["a-flipped.jkp"]


def test_packets_given_outside_the_inbox_stay_where_they_are(network: Network) -> None:
    packet = _center_packet(network)
    code, report, _ = _cli("sync", "apply", str(network.center.path), str(packet))
    assert code == 0
    assert report["packets"][0]["status"] == "applied"  # type: ignore[index]
    assert report["packets"][0]["archived"] is None  # type: ignore[index]
    assert packet.exists() and _archive(network.center) == {}


def test_an_archive_that_is_not_a_directory_is_reported_and_the_packet_stays(
        network: Network, tmp_path: Path) -> None:
    """A node whose archive/ is a link elsewhere: the packet applies (it cannot be undone),
    the move is refused, reported, exit 1; the packet stays in the inbox for the next
    run, which finds it applied and archives it once the archive is fixed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    archive_dir(network.center).symlink_to(elsewhere, target_is_directory=True)
    packet = _center_packet(network)
    deliver(packet, network.center)
    code, report, _ = _cli("sync", "apply", str(network.center.path))
    assert code == 1
    (entry,) = report["packets"]  # type: ignore[misc]
    assert entry["status"] == "applied" and entry["archived"] is None
    assert "not a directory" in entry["archive_error"]
    assert _inbox(network.center) == [packet.name] and list(elsewhere.iterdir()) == []
    archive_dir(network.center).unlink()
    code, report, _ = _cli("sync", "apply", str(network.center.path))
    assert code == 0 and report["packets"][0]["status"] == "already-applied"  # type: ignore[index]
    assert _inbox(network.center) == []


def test_an_entry_replaced_after_it_was_read_is_not_archived(network: Network) -> None:
    """The transport replaced the inbox entry between the read and the move: the new file is
    left for the next run (it may not be the packet that was applied)."""
    packet = _center_packet(network)
    entry = deliver(packet, network.center)
    stamp = sync._stamp(entry)
    apply_packet(network.center, entry)
    tmp = entry.with_name(".replacement")
    tmp.write_bytes(b"a different file")
    tmp.replace(entry)
    assert sync._archive_entry(network.center, entry, stamp, dt.date(2024, 6, 3)) is None
    assert entry.read_bytes() == b"a different file"
    assert _archive(network.center) == {}


def test_archived_packets_of_a_prefecture_include_code_blocks(network: Network) -> None:
    """A code block applied at the prefecture and its redelivery are both archived."""
    from jukicore.codes import CodeRegistry
    from jukicore.network.sync import send_code_block

    block = CodeRegistry().allocate_block(100, PREF)
    sent = send_code_block(network.center, block)
    deliver(sent, network.pref)
    outcomes = [o for _, o in apply_inbox(network.pref)]
    deliver(sent, network.pref)
    outcomes += [o for _, o in apply_inbox(network.pref)]
    assert [getattr(o, "status", o) for o in outcomes] == ["applied", "already-applied"]
    assert _inbox(network.pref) == [] and len(_archive(network.pref)) == 2


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_apply_logs_each_packet_and_a_summary_per_node(network: Network) -> None:
    packet = _center_packet(network)
    raw = packet.read_bytes()
    (network.center.inbox / "a-flipped.jkp").write_bytes(raw[:-70] + bytes([raw[-70] ^ 1])
                                                         + raw[-69:])
    deliver(packet, network.center)
    keep, logger = _Keep(), logging.getLogger("jukicore.network.sync")
    logger.addHandler(keep)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        list(apply_inbox(network.center))
        with pytest.raises(TamperedPacketError):
            apply_packet(network.center, network.center.inbox / "a-flipped.jkp")
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    fields = [(r.levelno, r.__dict__.get("step"), r.__dict__.get("status"),
               r.__dict__.get("packet")) for r in keep.records]
    assert fields == [  # (in name order: the packet's name starts with digits)
        (logging.INFO, "apply-packet", "applied", packet.name),
        (logging.WARNING, "apply-packet", "refused", "a-flipped.jkp"),
        (logging.INFO, "apply", None, None),
        (logging.WARNING, "apply-packet", "refused", "a-flipped.jkp")]
    applied, summary = keep.records[0].__dict__, keep.records[2].__dict__
    assert applied["rows"] == summary["rows"] > 0 and applied["node"] == CENTER
    assert applied["archived"] == str(archive_dir(network.center) / _today() / packet.name)
    assert {k: summary[k] for k in ("packets", "applied", "already_applied", "refused",
                                    "archived")} == {
        "packets": 2, "applied": 1, "already_applied": 0, "refused": 1, "archived": 1}
    assert keep.records[1].__dict__["error"] == "TamperedPacketError"
    assert keep.records[3].__dict__["error"] == "TamperedPacketError"
