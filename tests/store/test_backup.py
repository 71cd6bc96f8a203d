"""Backup and restore of a node (jukicore.store.backup, ``jukicore node backup/restore``).

The drill (docs/backup.md): a network of a municipality, its prefecture and the
center; a night; a backup; more work and another night; the store destroyed;
the restore; the nodes re-synchronize. The final state must equal that of a
clone of the network that did the same work without the loss, on SQLite and on
PostgreSQL. Packet ids are random and a re-synchronization sends other packets
than an uninterrupted run, so the comparison leaves out packet ids, packet
boundaries and wall-clock columns, and checks every entry was applied once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jukicore.codes import CodeRegistry
from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    JukiError,
)
from jukicore.identity import create_identity_store, open_identity_store
from jukicore.network.node import CENTER, Node, init_node, trust_each_other
from jukicore.network.sync import apply_packet, export_changes
from jukicore.register import Actor, create_register, open_register
from jukicore.register._schema import TABLES
from jukicore.store.backend import content_digest
from jukicore.store.backup import (
    MANIFEST,
    _pg_is_empty,
    backup_node,
    read_manifest,
    restore_node,
)
from jukicore.synth import synthesize_municipality
from jukicore.synth.day import generate_day
from jukicore.testing import NO_SERVER, TempPostgres

PASSWORD = "correct horse battery staple"
MUNI, PREF = "131041", "130001"
DAY = dt.date(2024, 6, 3)
ADMIN = Actor.operator("admin", MUNI, "admin")
# counter days replayed at any hour: under a supervisor's override (audited)
CLERK = Actor.operator("clerk", MUNI, "clerk").with_override(
    Actor.operator("supervisor", MUNI, "supervisor"), "test: counter days replayed")
CS = Actor.node(MUNI, MUNI, "cs")


@pytest.fixture(autouse=True)
def node_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)


@dataclass
class Stores:
    """Where a test's stores go: SQLite files inside the nodes, or PostgreSQL databases
    (made from template0 or copied from another database), dropped after the test."""

    dialect: str
    pg: TempPostgres | None
    made: list[str] = field(default_factory=list)

    def new(self, label: str, template: str | None = None) -> str:
        if self.pg is None:
            return "store.sqlite"
        name = f"bk_{label}_{os.getpid()}_{len(self.made)}"
        self.made.append(name)
        return self.pg.create_database(name, template=template or "template0")

    def drop(self, uri: str) -> None:
        assert self.pg is not None
        self.pg.drop_database(uri.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, pg_server: TempPostgres | None
           ) -> Iterator[Stores]:
    if request.param == "postgresql" and pg_server is None:
        pytest.skip(NO_SERVER)
    s = Stores(request.param, pg_server if request.param == "postgresql" else None)
    yield s
    if s.pg is not None:
        for name in s.made:
            s.pg.drop_database(name)


@dataclass
class Net:
    muni: Node
    pref: Node
    center: Node
    carried: set[tuple[str, str]] = field(default_factory=set)

    def uppers(self) -> tuple[Node, Node]:
        return self.pref, self.center


def build(root: Path, stores: Stores, population: int = 300) -> Net:
    muni = init_node(root / "muni", MUNI, store=stores.new("muni"))
    pref = init_node(root / "pref", PREF, store=stores.new("pref"))
    center = init_node(root / "center", CENTER, store=stores.new("center"))
    create_identity_store(pref.store_target(), node_id=PREF, kind="prefecture").close()
    create_identity_store(center.store_target(), node_id=CENTER, kind="center").close()
    m = synthesize_municipality(population, lg_code=MUNI, seed=5,
                                as_of=DAY - dt.timedelta(days=1))
    with create_register(muni.store_target(), lg_code=MUNI, prefecture=m.prefecture,
                         municipality=m.name, actor=ADMIN) as reg:
        reg.import_code_block(CodeRegistry().allocate_block(population * 3, MUNI),
                              actor=ADMIN)
        reg.load(m.residents, m.households, actor=ADMIN)
    trust_each_other((muni, pref, center), PASSWORD)
    return Net(muni, pref, center)


def clone(net: Net, root: Path, stores: Stores) -> Net:
    """A copy of the whole network (files and databases): the run without the loss."""
    nodes = []
    for n in (net.muni, net.pref, net.center):
        dest = root / n.path.name
        shutil.copytree(n.path, dest)
        if stores.pg is not None:
            uri = stores.new(f"ref{n.path.name}", template=n.store.rsplit("/", 1)[1])
            doc = json.loads((dest / "node.json").read_text())
            doc["store"] = uri
            (dest / "node.json").write_text(json.dumps(doc))
        nodes.append(Node.open(dest))
    return Net(nodes[0], nodes[1], nodes[2], set(net.carried))


def day_events(net: Net, n: int, seed: int, day: dt.date) -> pa.Table:
    with open_register(net.muni.store_target()) as reg:
        return generate_day(reg, actor=ADMIN, day=day, n=n, seed=seed)


def enter(net: Net, events: pa.Table, day: dt.date) -> int:
    """The counter enters the day's notifications (the paper forms)."""
    with open_register(net.muni.store_target()) as reg:
        report = reg.apply(events, actor=CLERK, today=day)
    assert report.applied > 0
    return report.applied


def carry(src: Node, dst: Node, net: Net) -> list[Any]:
    """The transport: every packet in ``src``'s outbox for ``dst`` not carried before goes
    into ``dst``'s inbox and is applied there; returns the outcomes (or errors)."""
    results: list[Any] = []
    for p in sorted(src.outbox.glob(f"{src.node_id}-{dst.node_id}-*.jkp")):
        key = (p.name, hashlib.sha256(p.read_bytes()).hexdigest())
        if key in net.carried:
            continue
        net.carried.add(key)
        target = dst.inbox / p.name
        target.write_bytes(p.read_bytes())
        try:
            results.append(apply_packet(dst, target))
        except JukiError as exc:
            results.append(exc)
    return results


def night(net: Net, rounds: int = 4) -> list[Any]:
    """Export to both upper nodes, carry packets both ways; again until nothing is left to
    send (a rewind needs one more round)."""
    seen: list[Any] = []
    for _ in range(rounds):
        sent = False
        for peer in net.uppers():
            if export_changes(net.muni, peer.node_id) is not None:
                sent = True
            seen += carry(net.muni, peer, net)
            seen += carry(peer, net.muni, net)
        if not sent:
            return seen
    raise AssertionError(f"still sending after {rounds} rounds: {seen}")


def upper_state(node: Node) -> tuple[str, int, int]:
    """The identity store's content without packet ids and wall-clock columns; the number
    of history entries; the entries counted as applied by the packets."""
    queries = [
        "SELECT * FROM identity ORDER BY resident_code",
        "SELECT lg_code, seq, resident_code, previous_resident_code, family_name, given_name,"
        " birth_date, sex, address, status, change_date, change_reason FROM identity_history"
        " ORDER BY lg_code, seq",
        "SELECT lg_code, last_seq FROM peers ORDER BY lg_code",
        "SELECT resident_code, lg_code, retired_on, new_code, seq FROM identity_retired"
        " ORDER BY resident_code",
        "SELECT lg_code, seq, resident_code, problem FROM identity_quarantine"
        " ORDER BY lg_code, seq",
        "SELECT lg_code, seq, problem, entry FROM identity_rejected ORDER BY lg_code, seq",
        "SELECT block_id, holder, parent_id, codes, digest, sender FROM code_blocks_received"
        " ORDER BY block_id",
    ]
    with open_identity_store(node.store_target()) as st, st._b.session(write=False) as s:
        digest = content_digest(s, queries)
        history = int(s.scalar("SELECT count(*) FROM identity_history"))
        applied = int(s.scalar("SELECT coalesce(sum(applied), 0) FROM packets_applied"))
    return digest, history, applied


def muni_state(node: Node) -> str:
    """The register's content without wall-clock columns, the audit log and packet ids."""
    queries = []
    for t in TABLES:
        if t.name in ("audit", "sync_log", "code_blocks"):
            continue
        cols = [c.name for c in t.columns if c.type != "ts"]
        queries.append(f"SELECT {', '.join(cols)} FROM {t.name}"
                       f" ORDER BY {', '.join(t.primary_key or ('id',))}")
    with open_register(node.store_target()) as reg, reg._b.session(write=False) as s:
        return content_digest(s, queries)


def network_state(net: Net) -> dict[str, Any]:
    return {"muni": muni_state(net.muni), "pref": upper_state(net.pref),
            "center": upper_state(net.center)}


def destroy(node: Node, stores: Stores) -> None:
    """The disk is lost: the node's directory and its store."""
    if stores.pg is not None:
        stores.drop(node.store)
        # the operator creates an empty database of the same name to restore into
        assert stores.pg.create_database(node.store.rsplit("/", 1)[1]) == node.store
    shutil.rmtree(node.path)


def reg_digest(node: Node) -> str:
    with open_register(node.store_target()) as reg:
        return reg.content_digest()


def id_digest(node: Node) -> str:
    with open_identity_store(node.store_target()) as st:
        return st.content_digest()


def tree(path: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every regular file below ``path`` (the SQLite store left out) with its bytes."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if p.is_file() and not p.is_symlink() and not rel.startswith(skip) \
                and not rel.startswith("store.sqlite") and not rel.startswith("locks"):
            out[rel] = p.read_bytes()
    return out


# --------------------------------------------------------------------------- round trip


def test_backup_and_restore_round_trip(tmp_path: Path, stores: Stores) -> None:
    net = build(tmp_path / "net", stores)
    enter(net, day_events(net, 40, 1, DAY), DAY)
    night(net)
    for node, digest in ((net.muni, reg_digest), (net.center, id_digest)):
        before = digest(node)
        files = tree(node.path)
        archive = tmp_path / f"{node.path.name}.tar"
        summary = backup_node(node.path, archive)
        assert summary["store"]["content_digest"] == before
        assert summary["store"]["dialect"] == stores.dialect
        manifest = read_manifest(archive)
        assert manifest["node_id"] == node.node_id
        assert manifest["store"]["schema_version"] >= 1
        names = {m["name"] for m in manifest["members"]}
        assert "node/node.json" in names and "node/trust.json" in names
        assert any(n.startswith("node/keys/1/") for n in names)
        assert any(n.startswith("node/outbox/") for n in names)
        # the backup changed nothing
        assert digest(node) == before and tree(node.path) == files
        target = stores.new(f"r{node.path.name}")
        dest = tmp_path / f"restored-{node.path.name}"
        out = restore_node(archive, dest, store=target)
        assert out["store"]["digest_verified"] and out["store"]["content_digest"] == before
        restored = Node.open(dest)
        assert restored.node_id == node.node_id and restored.store == target
        assert digest(restored) == before
        got = tree(dest)
        assert got.pop("node.json") != b""
        files.pop("node.json")
        assert got == files
        # the keys still open with their password (they stay encrypted in the archive)
        assert restored.current_keys(PASSWORD).signing_key_id == \
            node.current_keys(PASSWORD).signing_key_id
        keys = sorted((dest / "keys" / "1").glob("*.pem"))
        assert keys and all(k.stat().st_mode & 0o077 == 0 for k in keys)
        assert json.loads(keys[0].read_bytes())["kdf"]["name"] == "scrypt"  # still wrapped


def test_backup_is_online_and_consistent(tmp_path: Path) -> None:
    """A backup taken while another process applies notifications is one of the states the
    store went through (never half of a transaction), and the writer is not stopped."""
    stores = Stores("sqlite", None)
    net = build(tmp_path / "net", stores, population=3000)
    log = tmp_path / "digests.txt"
    script = f"""
import datetime as dt, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from jukicore.register import Actor, open_register
from jukicore.synth.day import generate_day
admin = Actor.operator("admin", "{MUNI}", "admin")
clerk = Actor.operator("clerk", "{MUNI}", "clerk").with_override(
    Actor.operator("supervisor", "{MUNI}", "supervisor"), "test: counter days replayed")
with open({str(log)!r}, "w") as out, open_register({net.muni.store_target()!r}) as reg:
    out.write(reg.content_digest() + "\\n"); out.flush()
    for i in range(12):
        day = dt.date(2024, 6, 3) + dt.timedelta(days=i)
        ev = generate_day(reg, actor=admin, day=day, n=150, seed=i)
        reg.apply(ev, actor=clerk, today=day)
        out.write(reg.content_digest() + "\\n"); out.flush()
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while (not log.exists() or len(log.read_text().splitlines()) < 3) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        summaries = []
        while proc.poll() is None:
            summaries.append(backup_node(net.muni.path, tmp_path / f"b{len(summaries)}.tar"))
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    states = log.read_text().split()
    assert len(states) == 13
    assert summaries, "no backup ran while the writer worked"
    taken = [s["store"]["content_digest"] for s in summaries]
    assert all(t in states for t in taken)
    assert len(set(taken)) >= 2 or len(summaries) == 1
    # the last one restores to exactly its state
    last = tmp_path / f"b{len(summaries) - 1}.tar"
    out = restore_node(last, tmp_path / "restored")
    assert out["store"]["content_digest"] == taken[-1]


# --------------------------------------------------------------------------- refusals


def _damage(archive: Path, member: str) -> None:
    """Flip one byte inside ``member``'s data."""
    with tarfile.open(archive) as tar:
        info = tar.getmember(member)
        offset = info.offset_data + info.size // 2
    with open(archive, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def _rewrite(archive: Path, out: Path, change: Callable[[str, bytes], bytes | None],
             extra: dict[str, bytes] | None = None) -> None:
    """A copy of the archive with members changed (None: left out) or added."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m)
            assert f is not None
            data = change(m.name, f.read())
            if data is None:
                continue
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def _manifest_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        if name != MANIFEST:
            return data
        doc = json.loads(data)
        edit(doc)
        return json.dumps(doc).encode()
    return change


def test_damaged_or_foreign_archive_changes_nothing(tmp_path: Path, stores: Stores) -> None:
    net = build(tmp_path / "net", stores, population=100)
    archive = tmp_path / "muni.tar"
    backup_node(net.muni.path, archive)
    # an existing node to restore over (with --force), and a fresh place
    before_files = tree(net.muni.path)
    before = reg_digest(net.muni)
    bad: dict[str, Path] = {}
    for member in ("store/store.sqlite" if stores.dialect == "sqlite" else "store/store.pgdump",
                   "node/trust.json", "node/keys/1/signing.pem", MANIFEST):
        p = tmp_path / f"damaged-{member.replace('/', '_')}.tar"
        shutil.copy(archive, p)
        _damage(p, member)
        bad[member] = p
    p = tmp_path / "truncated.tar"
    p.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    bad["truncated"] = p
    p = tmp_path / "not-a-tar.tar"
    p.write_bytes(b"hello" * 1000)
    bad["not a tar"] = p
    p = tmp_path / "no-manifest.tar"
    _rewrite(archive, p, lambda n, d: None if n == MANIFEST else d)
    bad["no manifest"] = p
    p = tmp_path / "foreign.tar"
    _rewrite(archive, p, _manifest_edit(lambda d: d.update(format="something-else")))
    bad["foreign"] = p
    p = tmp_path / "future.tar"
    _rewrite(archive, p, _manifest_edit(lambda d: d.update(version=99)))
    bad["future"] = p
    p = tmp_path / "extra.tar"
    _rewrite(archive, p, lambda n, d: d, {"node/../../evil": b"x"})
    bad["extra member"] = p
    p = tmp_path / "escape.tar"

    def escape(d: dict[str, Any]) -> None:
        d["members"].append({"name": "node/../../evil", "size": 1, "sha256": "0" * 64,
                             "mode": 0o644})
    _rewrite(archive, p, _manifest_edit(escape), {"node/../../evil": b"x"})
    bad["escaping name"] = p
    p = tmp_path / "missing.tar"
    _rewrite(archive, p, lambda n, d: None if n == "node/trust.json" else d)
    bad["missing member"] = p
    p = tmp_path / "wrong-node.tar"
    _rewrite(archive, p, _manifest_edit(lambda d: d.update(node_id="012033")))
    bad["node id"] = p
    for what, path in bad.items():
        fresh = tmp_path / f"fresh-{what.replace(' ', '_')}"
        with pytest.raises(CorruptFileError):
            restore_node(path, fresh, store=None if stores.pg is None else
                         stores.new("fresh"))
        assert not fresh.exists(), what
        with pytest.raises(CorruptFileError):
            restore_node(path, net.muni.path, force=True)
        assert tree(net.muni.path) == before_files, what
        assert reg_digest(net.muni) == before, what
    assert not (tmp_path.parent / "evil").exists()
    assert not [p for p in tmp_path.iterdir() if ".restore-" in p.name]


def test_restore_refuses_to_replace_without_force(tmp_path: Path, stores: Stores) -> None:
    net = build(tmp_path / "net", stores, population=100)
    archive = tmp_path / "muni.tar"
    backup_node(net.muni.path, archive)
    at_backup = reg_digest(net.muni)
    enter(net, day_events(net, 20, 3, DAY), DAY)
    later = reg_digest(net.muni)
    files = tree(net.muni.path)
    with pytest.raises(ConflictError, match="--force"):
        restore_node(archive, net.muni.path)
    assert reg_digest(net.muni) == later and tree(net.muni.path) == files
    # a node of another id is never replaced, not even with --force
    with pytest.raises(ConflictError, match="never"):
        restore_node(archive, net.pref.path, force=True)
    assert Node.open(net.pref.path).node_id == PREF
    # a directory with other content is not a place to restore into
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(ConflictError):
        restore_node(archive, other, force=True)
    assert (other / "precious.txt").read_text() == "keep me"
    if stores.pg is not None:
        # a database that is not empty is replaced only with --force
        with pytest.raises(ConflictError, match="not empty"):
            restore_node(archive, tmp_path / "elsewhere", store=net.pref.store)
        assert Node.open(net.pref.path).node_id == PREF
        assert not (tmp_path / "elsewhere").exists()
        # a PostgreSQL dump does not go into a SQLite file
        with pytest.raises(InvalidInputError):
            restore_node(archive, tmp_path / "elsewhere", store="x.sqlite")
    else:
        outside = tmp_path / "outside.sqlite"
        outside.write_bytes(b"precious")
        with pytest.raises(ConflictError, match="exists"):
            restore_node(archive, tmp_path / "elsewhere", store=str(outside))
        assert outside.read_bytes() == b"precious"
        with pytest.raises(InvalidInputError):
            restore_node(archive, tmp_path / "elsewhere", store="postgresql://x@127.0.0.1/x")
    assert not (tmp_path / "elsewhere").exists()
    out = restore_node(archive, net.muni.path, force=True)
    assert out["store"]["content_digest"] == at_backup
    assert reg_digest(net.muni) == at_backup


def test_backup_refuses_odd_places(tmp_path: Path) -> None:
    net = build(tmp_path / "net", Stores("sqlite", None), population=50)
    with pytest.raises(InvalidInputError, match="inside the node"):
        backup_node(net.muni.path, net.muni.path / "outbox" / "b.tar")
    (tmp_path / "adir").mkdir()
    with pytest.raises(FileError):
        backup_node(net.muni.path, tmp_path / "adir")
    with pytest.raises(FileError):
        backup_node(net.muni.path, tmp_path / "missing" / "b.tar")
    assert not list(net.muni.outbox.glob("*.tar"))
    # odd entries in the node are left out and named, not archived
    os.mkfifo(net.muni.path / "inbox" / "fifo.jkp")
    (net.muni.path / "inbox" / "link.jkp").symlink_to("/etc/passwd")
    summary = backup_node(net.muni.path, tmp_path / "b.tar")
    assert summary["left_out"] == ["inbox/fifo.jkp", "inbox/link.jkp"]
    names = {m["name"] for m in read_manifest(tmp_path / "b.tar")["members"]}
    assert not {n for n in names if "fifo" in n or "link" in n}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".work-" in p.name]


def test_killed_backups_and_restores_leave_nothing_behind(tmp_path: Path) -> None:
    """What a killed backup or restore left (temporary files, a half-built node) is
    removed by the next one; a directory being built by a live process is not."""
    net = build(tmp_path / "net", Stores("sqlite", None), population=50)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / f".b.tar.tmp-{pid}-0abc1234", out / f".b.tar.store.tmp-{pid}-0abc1234"]
    for p in stale:
        p.write_bytes(b"half")
    backup_node(net.muni.path, out / "b.tar")
    assert sorted(p.name for p in out.iterdir()) == ["b.tar"]
    half = tmp_path / f".r.restore-{pid}-0abc1234"
    (half / "keys").mkdir(parents=True)
    live = tmp_path / f".r.restore-{os.getpid()}-0abc1234"
    live.mkdir()
    restore_node(out / "b.tar", tmp_path / "r")
    assert not half.exists() and live.exists()
    assert Node.open(tmp_path / "r").node_id == MUNI


def test_archive_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.tar"
    os.mkfifo(fifo)
    with pytest.raises(FileError, match="not a regular file"):
        restore_node(fifo, tmp_path / "r")  # (does not wait for a writer)
    with pytest.raises(FileError):
        read_manifest(tmp_path)
    with pytest.raises(FileError):
        restore_node(tmp_path / "missing.tar", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_cli_backup_and_restore(tmp_path: Path, cli_operator: Any) -> None:
    net = build(tmp_path / "net", Stores("sqlite", None), population=100)
    env = {**os.environ, "JUKICORE_NODE_PASSWORD": PASSWORD}

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jukicore", "node", *args],
                              env={**env, **extra}, capture_output=True, text=True,
                              check=False)

    archive = tmp_path / "m.tar"
    # no operator account at the node: refused, no archive
    done = cli("backup", str(net.muni.path), str(archive))
    assert done.returncode == 1 and "login refused" in done.stderr
    assert not archive.exists()
    cli_operator.make_admin(net.muni.store_target())
    done = cli("backup", str(net.muni.path), str(archive), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["node_id"] == MUNI and summary["store"]["kind"] == "register"
    assert summary["store"]["content_digest"] == reg_digest(net.muni)
    done = cli("restore", str(archive), str(net.muni.path))
    assert done.returncode == 1 and "--force" in done.stderr
    # the backup's own accounts decide: a wrong password changes nothing
    dest = tmp_path / "r"
    done = cli("restore", str(archive), str(dest), JUKICORE_PASSWORD="Wrong-passw0rd-here")
    assert done.returncode == 1 and "login refused" in done.stderr
    assert not dest.exists() and not list(tmp_path.glob(".r.restore-*"))
    done = cli("restore", str(archive), str(dest), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["store"]["digest_verified"] is True
    # the restored store is the backup's, then the restore's own entries
    with open_register(Node.open(dest).store_target()) as reg, reg._b.session() as s:
        tail = s.query("SELECT action, detail FROM audit ORDER BY seq DESC LIMIT 2")
    assert [a for a, _ in tail] == ["node.operate", "operator.login"]
    assert tail[0][1] == f"node restore from {archive} into {dest}"
    damaged = tmp_path / "d.tar"
    shutil.copy(archive, damaged)
    _damage(damaged, "node/node.json")
    done = cli("restore", str(damaged), str(tmp_path / "r2"))
    assert done.returncode == 1 and "damaged" in done.stderr
    assert not (tmp_path / "r2").exists()


# --------------------------------------------------------------------------- the drill


def test_drill_municipality_restored(tmp_path: Path, stores: Stores) -> None:
    """The municipality's disk is lost after a second night; its backup is of the first.
    The counter enters the lost notifications again from their forms; the next night the
    municipality sends from where its backup stood, and the upper stores skip the entries
    they hold (checked equal) and apply the rest."""
    net = build(tmp_path / "net", stores)
    d1, d2, d3 = DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    enter(net, day_events(net, 60, 1, d1), d1)
    night(net)
    archive = tmp_path / "muni.tar"
    at_backup = backup_node(net.muni.path, archive)["store"]["content_digest"]
    ref = clone(net, tmp_path / "ref", stores)

    lost = day_events(net, 60, 2, d2)  # the day's forms: kept on paper
    for n in (net, ref):
        enter(n, lost, d2)
        night(n)
    acked_before_loss = upper_state(net.center)

    destroy(net.muni, stores)
    out = restore_node(archive, net.muni.path)
    assert out["store"]["content_digest"] == at_backup == reg_digest(net.muni)

    # new work entered before the lost work would reuse sequence numbers: refused, and
    # nothing changes at the upper stores
    early = tmp_path / "early"
    shutil.copytree(net.muni.path, early)
    if stores.pg is not None:
        uri = stores.new("early", template=net.muni.store.rsplit("/", 1)[1])
        (early / "node.json").write_text(json.dumps(
            {**json.loads((early / "node.json").read_text()), "store": uri}))
    early_net = Net(Node.open(early), net.pref, net.center, set(net.carried))
    enter(early_net, day_events(early_net, 10, 9, d3), d3)
    packet = export_changes(early_net.muni, CENTER)
    assert packet is not None
    with pytest.raises(ConflictError, match="reused sequence numbers"):
        apply_packet(net.center, packet)
    assert upper_state(net.center) == acked_before_loss

    enter(net, lost, d2)  # the counter enters the lost forms again, in their order
    new = day_events(ref, 60, 3, d3)
    for n in (net, ref):
        enter(n, new, d3)
        night(n)
    assert network_state(net) == network_state(ref)
    for node in net.uppers():
        _, history, applied = upper_state(node)
        assert history == applied  # every entry applied exactly once
    with open_register(net.muni.store_target()) as reg:
        last = reg.outbox_last_seq(actor=CS)
        assert reg.sync_peers(actor=CS) == {CENTER: last, PREF: last}


def test_drill_center_restored(tmp_path: Path, stores: Stores) -> None:
    """The center's disk is lost after a second night; its backup is of the first. The
    municipality's next packet starts past what the restored center holds: the center
    answers with a rewind acknowledgement, and the municipality sends everything after it
    again."""
    net = build(tmp_path / "net", stores)
    d1, d2, d3 = DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    enter(net, day_events(net, 60, 1, d1), d1)
    night(net)
    archive = tmp_path / "center.tar"
    at_backup = backup_node(net.center.path, archive)["store"]["content_digest"]
    ref = clone(net, tmp_path / "ref", stores)
    more = day_events(net, 60, 2, d2)
    for n in (net, ref):
        enter(n, more, d2)
        night(n)

    destroy(net.center, stores)
    restore_node(archive, net.center.path)
    assert id_digest(net.center) == at_backup

    new = day_events(ref, 60, 3, d3)
    for n in (net, ref):
        enter(n, new, d3)
    seen = night(net)
    night(ref)
    rewinds = [o for o in seen if not isinstance(o, JukiError) and o.kind == "ack"
               and "rewound_from" in o.detail]
    assert len(rewinds) == 1 and rewinds[0].sender == CENTER
    assert network_state(net) == network_state(ref)
    for node in net.uppers():
        _, history, applied = upper_state(node)
        assert history == applied
    with open_register(net.muni.store_target()) as reg:
        actions = reg.audit_log(actor=CS).column("action").to_pylist()
    assert actions.count("sync.rewind") == 1


def test_a_repeated_or_old_rewind_changes_nothing(tmp_path: Path) -> None:
    """Only a rewind acknowledgement sets a municipality's position back, once per packet;
    an ordinary older acknowledgement is still ignored."""
    net = build(tmp_path / "net", Stores("sqlite", None), population=100)
    enter(net, day_events(net, 30, 1, DAY), DAY)
    night(net)
    with open_register(net.muni.store_target()) as reg:
        top = reg.sync_acked(CENTER, actor=CS)
        assert top > 2
        assert not reg.record_sync_ack(CENTER, 1, "a" * 32, actor=CS)  # older: ignored
        assert reg.sync_acked(CENTER, actor=CS) == top
        assert reg.record_sync_ack(CENTER, 2, "b" * 32, actor=CS, rewind=True)
        assert reg.sync_acked(CENTER, actor=CS) == 2
        assert not reg.record_sync_ack(CENTER, 1, "b" * 32, actor=CS, rewind=True)
        assert reg.sync_acked(CENTER, actor=CS) == 2


def test_identity_store_skips_only_equal_entries(tmp_path: Path, stores: Stores) -> None:
    """Entries sent again that a store holds are skipped when equal; a batch whose held
    entries differ is refused naming them, and changes nothing."""
    net = build(tmp_path / "net", stores, population=100)
    enter(net, day_events(net, 30, 1, DAY), DAY)
    with open_register(net.muni.store_target()) as reg:
        outbox = reg.outbox(actor=CS)
    from jukicore.identity import IDENTITY_SCHEMA

    table = outbox.select(IDENTITY_SCHEMA.names).cast(IDENTITY_SCHEMA)
    n = table.num_rows
    assert n >= 4
    with open_identity_store(net.center.store_target()) as st:
        st.apply_changes(sender=MUNI, packet_id="p1", first_seq=1, last_seq=n - 2,
                         changes=table.slice(0, n - 2), actor=st.node_id)
        held = st.content_digest()
        # the same entries again, with two new ones: the new ones apply
        res = st.apply_changes(sender=MUNI, packet_id="p2", first_seq=1, last_seq=n,
                               changes=table, actor=st.node_id)
        assert (res.applied, res.skipped) == (2, n - 2)
        after = st.content_digest()
        assert after != held
        # entry 2 with another name: refused, naming it
        rows = table.to_pylist()
        rows[1]["family_name"] += "x"
        other = pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA)
        longer = pa.Table.from_pylist([*rows, {**rows[-1], "seq": n + 1}],
                                      schema=IDENTITY_SCHEMA)
        with pytest.raises(ConflictError, match="reused sequence numbers") as err:
            st.apply_changes(sender=MUNI, packet_id="p3", first_seq=1, last_seq=n + 1,
                             changes=longer, actor=st.node_id)
        assert [(r.row, r.column) for r in err.value.rows] == [(1, "family_name")]
        with pytest.raises(ConflictError):  # wholly within what is held: refused too
            st.apply_changes(sender=MUNI, packet_id="p4", first_seq=1, last_seq=n,
                             changes=other, actor=st.node_id)
        assert st.content_digest() == after


def test_restore_of_an_older_sqlite_schema_is_not_digest_checked(tmp_path: Path) -> None:
    """A backup is checked against its digest when the store's schema is this jukicore's;
    an archive naming a newer schema than this jukicore knows is refused."""
    net = build(tmp_path / "net", Stores("sqlite", None), population=50)
    archive = tmp_path / "m.tar"
    backup_node(net.muni.path, archive)
    newer = tmp_path / "newer.tar"
    _rewrite(archive, newer, _manifest_edit(
        lambda d: d["store"].update(schema_version=d["store"]["schema_version"] + 1)))
    from jukicore.errors import SchemaVersionError

    with pytest.raises(SchemaVersionError):
        restore_node(newer, tmp_path / "n")
    assert not (tmp_path / "n").exists()
    # a SQLite copy is a valid database of the same schema
    with tarfile.open(archive) as tar:
        f = tar.extractfile("store/store.sqlite")
        assert f is not None
        (tmp_path / "copy.sqlite").write_bytes(f.read())
    conn = sqlite3.connect(tmp_path / "copy.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_cli_restore_into_postgresql_is_undone_when_the_login_is_refused(
        tmp_path: Path, pg_server: TempPostgres | None, cli_operator: Any) -> None:
    """pg_restore fills the target database before the login can be checked there: a
    refused login empties it again (it was empty before), and nothing else changes."""
    if pg_server is None:
        pytest.skip(NO_SERVER)
    stores = Stores("postgresql", pg_server)
    try:
        net = build(tmp_path / "net", stores, population=60)
        cli_operator.make_admin(net.muni.store_target())
        archive = tmp_path / "m.tar"
        backup_node(net.muni.path, archive)
        empty = stores.new("empty")
        env = {**os.environ, "JUKICORE_NODE_PASSWORD": PASSWORD}
        args = [sys.executable, "-m", "jukicore", "node", "restore", str(archive),
                str(tmp_path / "r"), "--store", empty]
        done = subprocess.run(args, env={**env, "JUKICORE_PASSWORD": "Wrong-passw0rd-here"},
                              capture_output=True, text=True, check=False)
        assert done.returncode == 1 and "login refused" in done.stderr, done.stderr
        assert _pg_is_empty(empty) and not (tmp_path / "r").exists()
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        with open_register(empty) as reg:
            assert reg.counts()["residents"] == 60
    finally:
        for name in stores.made:
            pg_server.drop_database(name)
