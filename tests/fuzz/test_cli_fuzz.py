"""Fuzz the command line: the bad values of the API suites through ``codes``, ``register``,
``node`` and ``sync``.

Property (README's conventions): exit code 1 for a refused input or a rejected row, 2 for a
usage error (a bad option value, a malformed code argument), never a Python traceback, and
the files and stores unchanged. Commands run in-process through click's CliRunner (an
exception escaping the command is a traceback); what could hang or exhaust memory runs in
a subprocess with a timeout and a memory limit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from fuzzcases import (
    LOAD_CASES,
    base_event,
    draw_case,
    load_table,
    new_register,
    node_json_variants,
    trust_json_variants,
    with_value,
)
from fuzzkit import (
    ARABIC_INDIC,
    FULLWIDTH,
    Stores,
    fuzz,
    with_check,
    wrong_check,
)
from hypothesis import assume, given
from hypothesis import strategies as st
from regkit import ADMIN, LG, MUNI, PREF, make_block, tiny_municipality

from jukicore.cli import main
from jukicore.codes import is_valid_resident_code
from jukicore.network.node import CENTER, init_node, trust_each_other
from jukicore.network.sync import export_changes
from jukicore.register import Register, create_register, open_register

PASSWORD = "fuzz horse battery staple"
TODAY = "2024-06-03"


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def assert_exit(result: Result, codes: set[int], what: str) -> None:
    """The exit code is one of ``codes`` and nothing escaped as a traceback."""
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), \
        f"{what}: traceback {type(exc).__name__}: {exc}\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"{what}: {result.stderr}"
    assert result.exit_code in codes, \
        f"{what}: exit {result.exit_code}, expected {sorted(codes)}\n{result.stderr}"


def malformed_code_args(width: int) -> list[str]:
    good = "1" * width
    return [good.translate(FULLWIDTH), good.translate(ARABIC_INDIC), f" {good}", f"+{good}",
            f"-{good[1:]}", good[:-1], good + "0", "abc", "", "1e5", "0x" + good[2:],
            str(2**64 - 1), str(2**64), good[:3] + "-" + good[3:], good + "\n"]


# -- codes -------------------------------------------------------------------------------------


@fuzz(40)
@given(lines=st.lists(st.one_of(
    st.integers(0, 10**10 - 1).map(lambda b: f"{with_check('resident_code', b):011d}"),
    st.integers(0, 10**10 - 1).map(lambda b: f"{wrong_check('resident_code', b):011d}"),
    st.sampled_from(malformed_code_args(11)).filter(lambda s: s.strip())), max_size=6))
def test_codes_check(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    result = run("codes", "check", "--json", "-", input=text)
    assert_exit(result, {0, 1}, "codes check")
    bad = [line for line in lines if not (len(line.strip()) == 11 and line.strip().isascii()
                                          and line.strip().isdigit()
                                          and is_valid_resident_code(line.strip()))]
    assert result.exit_code == (1 if bad else 0), (lines, result.stdout)
    assert json.loads(result.stdout)["invalid"] == len(bad)


@fuzz(10)
@given(content=st.sampled_from([b"\xff\xfe1234567890\n", b"1234\x00567890\n", b"\x80" * 11,
                                "１２３４５６７８９０１\n".encode(), b"\n" * 5]))
def test_codes_check_odd_files(tmp_path: Path, content: bytes) -> None:
    """A file of invalid UTF-8, NUL bytes or non-ASCII digits: exit 1, no traceback."""
    path = tmp_path / "codes.txt"
    path.write_bytes(content)
    result = run("codes", "check", path)
    assert_exit(result, {0} if not content.strip() else {1}, f"codes check {content!r}")


@fuzz(20)
@given(args=st.sampled_from([
    ["codes", "check", "--kind", "zip-code", "-"], ["codes", "check", "--kind", "", "-"],
    ["codes", "check", "/nonexistent/file"],
    ["codes", "generate", "-1"], ["codes", "generate", "abc"], ["codes", "generate", "1.5"],
    ["codes", "generate", "１０"], ["codes", "generate", ""], ["codes", "generate", "1e3"],
    ["codes", "generate"], ["codes", "generate", "3", "--bogus"],
    ["codes", "block", "allocate", "-n", "0", "--holder", LG],
    ["codes", "block", "allocate", "-n", "x", "--holder", LG],
    ["codes", "block", "allocate", "-n", "-5", "--holder", LG],
    ["register", "history"], ["register", "init", "x.db"],
    ["sync", "apply"], ["node", "init", "d"]]))
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    before = sorted(tmp_path.rglob("*"))
    result = run(*[a if a != "x.db" else str(tmp_path / a) for a in args], input="")
    assert_exit(result, {2}, " ".join(args))
    assert sorted(tmp_path.rglob("*")) == before


@pytest.fixture
def center_files(tmp_path: Path, center_store: Path) -> tuple[Path, Path]:
    """A registry file and a block of 20 codes for 131016, saved (by ``cli_operator``, an
    admin of ``center_store``, whose login the later commands use too)."""
    registry = tmp_path / "center.bin"
    result = run("codes", "block", "allocate", "--node", center_store, "--registry", registry,
                 "--holder", LG, "-n", "20", "--out", tmp_path / "m.block")
    assert result.exit_code == 0, result.output
    (tmp_path / "node").write_text(str(center_store))
    return registry, tmp_path / "m.block"


def _node_of(registry: Path) -> str:
    return (registry.parent / "node").read_text()


def _snapshot(*paths: Path) -> dict[Path, bytes | None]:
    return {p: p.read_bytes() if p.exists() else None for p in paths}


@fuzz(30)
@given(holder=st.one_of(st.sampled_from(malformed_code_args(6)), st.integers(0, 99999).map(
    lambda b: f"{wrong_check('lg_code', b):06d}")), op=st.sampled_from(["allocate", "split"]))
def test_codes_block_bad_holder(center_files: tuple[Path, Path], holder: str, op: str) -> None:
    registry, block = center_files
    out = registry.parent / "child.block"
    before = _snapshot(registry, block, out)
    node = _node_of(registry)
    if op == "allocate":
        result = run("codes", "block", "allocate", "--node", node, "--registry", registry,
                     "--holder", holder, "-n", "3", "--out", out)
    else:
        result = run("codes", "block", "split", block, "--node", node, "--holder", holder,
                     "-n", "3", "--out", out)
    well_formed = len(holder) == 6 and holder.isascii() and holder.isdigit()
    assert_exit(result, {1, 2} if well_formed else {2}, f"block {op} --holder {holder!r}")
    assert _snapshot(registry, block, out) == before


@fuzz(30)
@given(data=st.data())
def test_codes_files_corrupted(center_files: tuple[Path, Path], data: st.DataObject) -> None:
    """A damaged registry or block file: exit 1, no file changed."""
    registry, block = center_files
    originals = _snapshot(registry, block)
    try:
        _damaged_codes_file(registry, block, data)
    finally:
        for p, content in originals.items():
            assert content is not None
            p.write_bytes(content)


def _damaged_codes_file(registry: Path, block: Path, data: st.DataObject) -> None:
    victim = data.draw(st.sampled_from([registry, block]), label="file")
    raw = victim.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip", "empty", "append"]), label="how")
    at = data.draw(st.integers(0, len(raw) - 1), label="at")
    damaged = {"truncate": raw[:at], "flip": raw[:at] + bytes([raw[at] ^ 0x41]) + raw[at + 1:],
               "empty": b"", "append": raw + b"\0junk"}[how]
    victim.write_bytes(damaged)
    out = registry.parent / "child.block"
    before = _snapshot(registry, block, out)
    node = _node_of(registry)
    commands = [["codes", "block", "show", block],
                ["codes", "block", "split", block, "--node", node, "--holder", "131024", "-n",
                 "2", "--out", out],
                ["codes", "block", "allocate", "--node", node, "--registry", registry,
                 "--holder", LG, "-n", "2", "--out", out],
                ["codes", "generate", "2", "--node", node, "--registry", registry]]
    for args in commands:
        uses = victim in args
        result = run(*args)
        assert_exit(result, {1} if uses else {0, 1}, f"{args[1:3]} on a {how} {victim.name}")
        if uses:
            assert _snapshot(registry, block, out) == before, f"{args[1:3]} changed files"
        else:  # the command did not read the damaged file: put things back
            out.unlink(missing_ok=True)
            before = _snapshot(registry, block, out)


def test_codes_generate_beyond_the_code_space(tmp_path: Path) -> None:
    """More codes than the code space holds: refused up front (a usage error, exit 2, as
    the count is out of its range; or 1), not generated chunk by chunk until memory runs
    out."""
    done = _jukicore_cli(["codes", "generate", str(10**10 + 1), "--out",
                          str(tmp_path / "c.npy")], timeout=60, memory=1536 << 20)
    assert done.returncode in (1, 2), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "c.npy").exists()


def _jukicore_cli(args: list[str], *, timeout: float, memory: int,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m jukicore ARGS`` with an address-space limit (bytes) and a timeout."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        return subprocess.run([sys.executable, "-m", "jukicore", *args], capture_output=True,
                              text=True, timeout=timeout, preexec_fn=limit, check=False,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        pytest.fail(f"jukicore {' '.join(args[:2])} hung for {timeout} s")


# -- register ----------------------------------------------------------------------------------


@pytest.fixture
def registers(targets: Callable[[], str], cli_operator: Any) -> Iterator[Stores[Register]]:
    """Loaded registers whose first admin is the CLI's operator (tests/conftest.py)."""
    from jukicore.access.operators import bootstrap_admin

    def build(target: str) -> Register:
        reg = new_register(target, loaded=True)
        bootstrap_admin(reg, cli_operator.operator, name="Admin",
                        password=cli_operator.password, card_path=cli_operator.card,
                        card_pin=cli_operator.pin)
        return reg

    stores = Stores(targets, build)
    yield stores
    stores.close()


def _digest(reg: Register) -> str:
    """The register's content but the operators' logins and the records of access (a
    command refused after its login leaves the login's entry, and a read or a refusal
    its own entry, and nothing else)."""
    from jukicore.access.policy import ACCESS_ACTIONS
    from jukicore.register._schema import TABLES
    from jukicore.store import content_digest

    left_out = ", ".join(f"'{a}'" for a in sorted({"operator.login", *ACCESS_ACTIONS}))
    queries = [f"SELECT {', '.join(t.names)} FROM {t.name}"
               + (f" WHERE action NOT IN ({left_out})" if t.name == "audit" else "")
               + f" ORDER BY {', '.join(t.primary_key or ('id',))}" for t in TABLES]
    with reg._b.session(write=False) as s:
        return content_digest(s, queries)


@fuzz(15)
@given(lg=st.one_of(st.sampled_from(malformed_code_args(6)), st.integers(0, 99999).map(
    lambda b: f"{wrong_check('lg_code', b):06d}"), st.sampled_from(["271004", "011002"])))
def test_register_init_bad_lg_code(tmp_path: Path, lg: str) -> None:
    """A malformed or wrong local government code, or one of another municipality than the
    names given: refused, and no store created."""
    store = tmp_path / f"new{len(list(tmp_path.iterdir()))}.db"  # one per example
    result = run("register", "init", store, "--lg-code", lg, "--prefecture", PREF,
                 "--municipality", MUNI)
    well_formed = len(lg) == 6 and lg.isascii() and lg.isdigit()
    assert_exit(result, {1, 2} if well_formed else {2}, f"register init --lg-code {lg!r}")
    assert not store.exists(), "a refused init left a store behind"


@fuzz(15)
@given(data=st.data())
def test_register_load_bad_value(registers: Stores[Register], tmp_path: Path,
                                 data: st.DataObject) -> None:
    column = data.draw(st.sampled_from(sorted(LOAD_CASES)), label="column")
    value = data.draw(st.sampled_from(LOAD_CASES[column]), label="value")
    # `register load` checks dates against the clock's today, not the suite's fixed TODAY:
    # a date "in the future" of 2024-06-03 that has passed since is no bad value here
    assume(not (isinstance(value, dt.date) and dt.date.fromisoformat(TODAY) < value
                <= dt.date.today()))
    base = load_table()
    row = data.draw(st.integers(0, base.num_rows - 1), label="row")
    path = tmp_path / "residents.parquet"
    pq.write_table(with_value(base, column, row, value), path)
    with registers.example() as reg:
        before = _digest(reg)
        result = run("register", "load", reg.target, path, "--json", "-q")
        assert_exit(result, {1}, f"register load with {column}={value!r} at row {row}")
        assert _digest(reg) == before


@fuzz(15)
@given(data=st.data())
def test_register_apply_bad_row(registers: Stores[Register], tmp_path: Path,
                                data: st.DataObject) -> None:
    """One bad notification among the file's rows: exit 1, the row rejected by position."""
    kind, column, value = draw_case(data)
    with registers.example() as reg:
        try:
            table = pa.Table.from_pylist([{**base_event(reg, kind), column: value}])
        except (pa.ArrowException, ValueError, OverflowError):
            return  # not representable in a file
        path = tmp_path / "events.parquet"
        pq.write_table(table, path)
        before = _digest(reg)
        result = run("register", "apply", reg.target, path, "--today", TODAY, "--json", "-q")
        assert_exit(result, {1}, f"register apply {kind} with {column}={value!r}")
        assert _digest(reg) == before


@fuzz(20)
@given(code=st.sampled_from([*malformed_code_args(11), "00000000000"]))
def test_register_history_bad_code(registers: Stores[Register], code: str) -> None:
    with registers.example() as reg:
        before = _digest(reg)
        result = run("register", "history", reg.target, code)
        assert_exit(result, {1} if code == "00000000000" else {2},
                    f"register history {code!r}")
        assert _digest(reg) == before


def test_register_commands_never_create_a_store(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    for args in (["history", typo, "00000000000"], ["load", typo, tmp_path / "x.parquet"],
                 ["apply", typo, tmp_path / "x.parquet"], ["export", typo, tmp_path / "out"]):
        pq.write_table(pa.table({"a": [1]}), tmp_path / "x.parquet")
        result = run("register", *args)
        assert_exit(result, {1, 2}, f"register {args[0]} on a missing store")
        assert not typo.exists(), f"register {args[0]} created {typo}"


# -- node and sync -----------------------------------------------------------------------------


@pytest.fixture
def net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_operator: Any
        ) -> dict[str, Path]:
    """A municipality (tiny register) and the center, trusting each other; the
    municipality's changes exported to the center. ``cli_operator`` is the center's
    admin (whose login ``sync apply`` uses)."""
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    from jukicore.identity import create_identity_store

    muni = init_node(tmp_path / "muni", LG)
    center = init_node(tmp_path / "center", CENTER)
    create_identity_store(center.store_target(), node_id=CENTER, kind="center").close()
    with create_register(muni.store_target(), lg_code=LG, prefecture=PREF, municipality=MUNI,
                         actor=ADMIN) as reg:
        reg.import_code_block(make_block(50), actor=ADMIN)
        residents, households = tiny_municipality()
        reg.load(residents, households, actor=ADMIN)
    trust_each_other((muni, center))
    cli_operator.make_admin(center.store_target())
    packet = export_changes(muni, CENTER)
    assert packet is not None
    return {"muni": muni.path, "center": center.path, "packet": packet}


def _center_digest(center: Path) -> str:
    from jukicore.identity import open_identity_store
    from jukicore.network.node import Node

    with open_identity_store(Node.open(center).store_target()) as store:
        return store.content_digest()


@fuzz(15)
@given(node_id=st.sampled_from([*malformed_code_args(6), "131017", "999999", "Center", "CENTER",
                                "../x", "center\x00"]))
def test_node_init_bad_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node_id: str) -> None:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    d = tmp_path / f"node{len(list(tmp_path.iterdir()))}"  # one per example
    result = run("node", "init", d, "--id", node_id, "--prefecture", PREF,
                 "--municipality", MUNI)
    assert_exit(result, {1, 2}, f"node init --id {node_id!r}")
    assert not d.exists(), "a refused node init left a directory behind"


@fuzz(20)
@given(data=st.data())
def test_sync_apply_damaged(net: dict[str, Path], data: st.DataObject) -> None:
    raw = net["packet"].read_bytes()
    at = data.draw(st.integers(0, len(raw) - 1), label="at")
    how = data.draw(st.sampled_from(["truncate", "flip", "append"]), label="how")
    damaged = {"truncate": raw[:at], "flip": raw[:at] + bytes([raw[at] ^ 0x5A]) + raw[at + 1:],
               "append": raw + b"\0"}[how]
    target = net["center"] / "inbox" / "damaged.jkp"
    target.write_bytes(damaged)
    before = _center_digest(net["center"])
    try:
        result = run("sync", "apply", net["center"], "--json", "-q")
        assert_exit(result, {1}, f"sync apply of a {how} packet")
    finally:
        target.unlink()
    assert _center_digest(net["center"]) == before


def test_sync_apply_odd_inbox_entries(net: dict[str, Path]) -> None:
    """A directory, a dangling link, a FIFO, a link to /dev/zero and a sparse 3 GB file in the
    inbox: each refused with a clear message (exit 1, no traceback), no hang, bounded
    memory, and the valid packet beside them applied."""
    inbox = net["center"] / "inbox"
    (inbox / "a-directory.jkp").mkdir()
    (inbox / "b-dangling.jkp").symlink_to(inbox / "nowhere")
    os.mkfifo(inbox / "c-fifo.jkp")
    (inbox / "d-zero.jkp").symlink_to("/dev/zero")
    with open(inbox / "e-huge.jkp", "wb") as f:
        f.truncate(3 << 30)  # sparse: no disk used
    (inbox / "f-valid.jkp").write_bytes(net["packet"].read_bytes())
    done = _jukicore_cli(["sync", "apply", str(net["center"]), "--json", "-q"], timeout=120,
                         memory=2560 << 20)  # below the 3 GB file: reading it all fails
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, done.stderr[-3000:]
    packets = {Path(p["packet"]).name: p for p in json.loads(done.stdout)["packets"]}
    assert packets["f-valid.jkp"]["status"] == "applied", packets
    assert all(p["status"] == "refused" for n, p in packets.items() if n != "f-valid.jkp")


@fuzz(20)
@given(data=st.data())
def test_node_files_corrupted_cli(net: dict[str, Path], data: st.DataObject) -> None:
    which = data.draw(st.sampled_from(["node.json", "trust.json"]), label="file")
    node = data.draw(st.sampled_from(["muni", "center"]), label="node")
    path = net[node] / which
    good = path.read_bytes()
    variants = (node_json_variants if which == "node.json" else trust_json_variants)(
        json.loads(good))
    path.write_bytes(data.draw(st.sampled_from(variants), label="content"))
    try:
        for args in (["node", "show", net[node]], ["sync", "status", net[node]],
                     ["sync", "export" if node == "muni" else "apply", net[node]]):
            result = run(*args)
            assert_exit(result, {0, 1}, f"{' '.join(map(str, args[:2]))} with a damaged {which}")
    finally:
        path.write_bytes(good)


@fuzz(15)
@given(record=st.sampled_from([b"", b"{", b"[]", b"null", b'{"node_id": "center"}',
                               b'{"node_id": 5, "role": "center"}', b"\xff\xfe",
                               b'{"node_id": "../x", "role": "center", "signing_public": "A",'
                               b' "encryption_public": "A", "valid_from": "2020-01-01"}']))
def test_node_trust_bad_record(net: dict[str, Path], record: bytes) -> None:
    path = net["muni"].parent / "record.json"
    path.write_bytes(record)
    trust = net["muni"] / "trust.json"
    before = trust.read_bytes()
    result = run("node", "trust", net["muni"], path)
    assert_exit(result, {1, 2}, f"node trust {record!r}")
    assert trust.read_bytes() == before


@fuzz(10)
@given(to=st.sampled_from([*malformed_code_args(6), "131024", "999999", "Center", "../x"]))
def test_sync_export_bad_recipient(net: dict[str, Path], to: str) -> None:
    muni = net["muni"]
    with open_register(str(muni / "store.sqlite")) as reg:
        before = reg.content_digest()
    outbox = sorted((muni / "outbox").iterdir())
    result = run("sync", "export", muni, "--to", to)
    assert_exit(result, {1, 2}, f"sync export --to {to!r}")
    assert sorted((muni / "outbox").iterdir()) == outbox
    with open_register(str(muni / "store.sqlite")) as reg:
        assert reg.content_digest() == before
