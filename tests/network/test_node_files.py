"""A damaged node (node.json, trust.json, key files) gives a typed JukiError through the API
and ``error: ...`` with exit code 1 through the CLI, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from netkit import PASSWORD, Network, apply_day

from jukicore.errors import JukiError
from jukicore.network.node import CENTER, Node
from jukicore.network.sync import apply_packets, export_changes, sync_status

ROOT = Path(__file__).resolve().parents[2]


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    def damage(node: Path) -> None:
        target = node / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        target.write_bytes(data)
    return damage


def _replace_by(rel: str, kind: str) -> Callable[[Path], None]:
    def damage(node: Path) -> None:
        target = node / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        if kind == "dir":
            target.mkdir()
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "dangling":
            target.symlink_to(node / "nowhere")
        elif kind == "zero":
            target.symlink_to("/dev/zero")
    return damage


DAMAGES: dict[str, Callable[[Path], None]] = {
    "node.json not UTF-8": _write("node.json", b'{"node_id": "\xff\xfe"}'),
    "node.json not JSON": _write("node.json", b"{nope"),
    "node.json a list": _write("node.json", b"[1, 2]"),
    "node.json node_id a number": _write(
        "node.json", b'{"node_id": 131041, "role": "municipality", "store": "s.sqlite"}'),
    "node.json node_id a path": _write(
        "node.json", b'{"node_id": "../x", "role": "municipality", "store": "s.sqlite"}'),
    "node.json store a number": _write(
        "node.json", b'{"node_id": "131041", "role": "municipality", "store": 5}'),
    "node.json wrong role": _write(
        "node.json", b'{"node_id": "131041", "role": "center", "store": "s.sqlite"}'),
    "node.json nested too deep": _write("node.json", b"[" * 500_000),
    "node.json a directory": _replace_by("node.json", "dir"),
    "node.json a FIFO": _replace_by("node.json", "fifo"),
    "node.json a dangling link": _replace_by("node.json", "dangling"),
    "node.json /dev/zero": _replace_by("node.json", "zero"),
    "trust.json not UTF-8": _write("trust.json", b"\xff\xfe\x00"),
    "trust.json not JSON": _write("trust.json", b"{"),
    "trust.json peers a list": _write(
        "trust.json", b'{"format": "jukicore-trust-store", "version": 1, "peers": [1]}'),
    "trust.json bad key": _write(
        "trust.json", b'{"format": "jukicore-trust-store", "version": 1, "peers": '
                      b'{"center": {"role": "center", "keys": [{"signing_public": "!!",'
                      b' "encryption_public": "", "valid_from": "x"}]}}}'),
    "trust.json used not a bool": _write(
        "trust.json", b'{"format": "jukicore-trust-store", "version": 1, "peers": '
                      b'{"center": {"role": "center", "keys": [{"signing_public": '
                      b'"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "encryption_public": '
                      b'"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "valid_from": '
                      b'"2024-01-01T00:00:00Z", "used": "yes"}]}}}'),
    "trust.json nested too deep": _write("trust.json", b"[" * 500_000),
    "trust.json a directory": _replace_by("trust.json", "dir"),
    "trust.json a FIFO": _replace_by("trust.json", "fifo"),
    "keys missing": lambda node: shutil.rmtree(node / "keys"),
    "keys a file": _write("keys", b"x"),
    "key node.json not UTF-8": _write("keys/1/node.json", b"\xff"),
    "key node.json nested too deep": _write("keys/1/node.json", b"{\"a\":" * 300_000),
    "key node.json a list": _write("keys/1/node.json", b"[]"),
    "signing.pem garbage": _write("keys/1/signing.pem", b"-----BEGIN nothing"),
    "signing.pem a directory": _replace_by("keys/1/signing.pem", "dir"),
    "signing.pem a FIFO": _replace_by("keys/1/signing.pem", "fifo"),
    "signing.pem missing": lambda node: (node / "keys/1/signing.pem").unlink(),
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    return subprocess.run([sys.executable, "-m", "jukicore", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_a_damaged_node_gives_typed_errors(network: Network, damage: str) -> None:
    apply_day(network, 5, seed=31)
    path = network.muni.path
    DAMAGES[damage](path)

    def api() -> None:
        node = Node.open(path)
        export_changes(node, CENTER, password=PASSWORD)
        list(apply_packets(node, [], password=PASSWORD))
        node.public_record(PASSWORD)
        sync_status(node)
        node.info()

    with pytest.raises(JukiError):
        api()
    other = ("node", "public-key", str(path)) if damage.startswith(("key", "signing")) \
        else ("node", "show", str(path))
    for args in (("sync", "export", str(path), "--to", CENTER), other):
        run = _cli(*args)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert run.stderr.startswith("error: "), run.stderr
        assert "Traceback" not in run.stderr


def test_a_damaged_valid_from_and_password_file(network: Network, tmp_path: Path) -> None:
    path = network.muni.path
    (path / "keys/1/valid_from").write_bytes(b'"yesterday"')
    with pytest.raises(JukiError, match="valid_from"):
        Node.open(path).public_record(PASSWORD)
    pw = tmp_path / "pw"
    pw.write_bytes(b"\xff\xfe")
    run = _cli("node", "public-key", str(network.center.path), "--node-password-file", str(pw))
    assert run.returncode == 1 and run.stderr.startswith("error: ") and "UTF-8" in run.stderr
    record = tmp_path / "rec.json"
    record.write_bytes(b"[1]")
    run = _cli("node", "trust", str(path), str(record))
    assert run.returncode == 1 and run.stderr.startswith("error: "), run.stderr


# -- creating a node: all of it or nothing ----------------------------------------------------

_UNREACHABLE = "postgresql://jukicore@127.0.0.1:1/none"  # nothing listens on port 1


def test_create_node_makes_a_whole_node(db_target: str, tmp_path: Path) -> None:
    from jukicore.identity import open_identity_store
    from jukicore.network.node import create_node
    from jukicore.register import open_register

    store = None if db_target.endswith(".db") else db_target
    muni = create_node(tmp_path / "muni", "131016", store=store, password=PASSWORD,
                       prefecture="東京都", municipality="千代田区")
    with open_register(Node.open(muni.path).store_target()) as reg:
        assert (reg.lg_code, reg.municipality) == ("131016", "千代田区")
    if store is None:
        center = create_node(tmp_path / "center", CENTER, password=PASSWORD)
        with open_identity_store(center.store_target()) as st:
            assert (st.node_id, st.kind) == (CENTER, "center")


@pytest.mark.parametrize("existed", [False, True])
def test_a_node_whose_store_cannot_be_made_leaves_nothing(tmp_path: Path,
                                                          existed: bool) -> None:
    """The store is made before node.json: when it fails, the keys, trust store and
    folders made for the node are removed again (an existing folder keeps only what it
    held), and the same command can be run again."""
    from jukicore.network.node import create_node

    target = tmp_path / "pref"
    if existed:
        target.mkdir()
        (target / "README").write_text("the operator's notes\n")
    with pytest.raises(JukiError):
        create_node(target, "130001", store=_UNREACHABLE, password=PASSWORD)
    if existed:
        assert sorted(os.listdir(target)) == ["README"]
    else:
        assert not target.exists()
    node = create_node(target, "130001", password=PASSWORD)
    assert Node.open(node.path).node_id == "130001"


def test_a_municipality_node_needs_its_names(tmp_path: Path) -> None:
    from jukicore.errors import InvalidInputError
    from jukicore.network.node import create_node

    with pytest.raises(InvalidInputError, match="prefecture and municipality"):
        create_node(tmp_path / "m", "131016", password=PASSWORD)
    assert not (tmp_path / "m").exists()


def test_cli_node_init_that_fails_leaves_no_half_node(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    done = _cli("node", "init", str(tmp_path / "pref"), "--id", "130001", "--store",
                _UNREACHABLE)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pref").exists()
