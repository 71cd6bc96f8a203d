"""The ``jukicore codes`` command line: output, exit codes, JSON, files."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner

from jukicore.cli import main
from jukicore.cli._common import DEBUG_ENV, JukiGroup, juki_errors
from jukicore.codes import (
    CodeBlock,
    CodeRegistry,
    format_code,
    is_valid_resident_code,
    resident_code_check_digit,
)
from jukicore.errors import ConflictError


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_help_everywhere() -> None:
    for args in ([], ["codes"], ["codes", "generate"], ["codes", "check"], ["codes", "block"],
                 ["codes", "block", "allocate"], ["codes", "block", "split"], ["demo"]):
        code, out, _ = run(*args, "--help")
        assert code == 0 and "Usage:" in out, args


def test_console_script_and_usage_error_exit_code() -> None:
    exe = Path(sys.executable).with_name("jukicore")
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "codes" in done.stdout
    done = subprocess.run([exe, "codes", "generate", "-3"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2


def test_generate_text_json_and_registry(tmp_path: Path, center_store: Path) -> None:
    reg = tmp_path / "center.bin"
    code, out, _ = run("codes", "generate", "5", "--node", str(center_store), "--registry",
                       str(reg))
    assert code == 0
    lines = out.split()
    assert len(lines) == 5 and all(len(x) == 11 for x in lines)
    assert is_valid_resident_code(lines).all()
    code, out, _ = run("codes", "generate", "3", "--node", str(center_store), "--registry",
                       str(reg), "--json")
    data = json.loads(out)
    assert code == 0 and data["generated"] == 3 and data["registry_size"] == 8
    loaded = CodeRegistry.load(reg)
    assert loaded.contains(lines + data["codes"]).all()


def test_generate_to_files(tmp_path: Path) -> None:
    code, _, _ = run("codes", "generate", "100", "--unrecorded", "--out", str(tmp_path / "c.npy"))
    assert code == 0
    arr = np.load(tmp_path / "c.npy")
    assert arr.dtype == np.uint64 and is_valid_resident_code(arr).all()
    code, _, _ = run("codes", "generate", "10", "--unrecorded", "--out", str(tmp_path / "c.txt"))
    assert code == 0 and len((tmp_path / "c.txt").read_text().split()) == 10


def test_check_reports_bad_lines_and_exit_code(tmp_path: Path) -> None:
    good = format_code(CodeRegistry().generate(2)).tolist()
    wrong = good[0][:-1] + str((int(good[0][-1]) + 1) % 10)
    code, out, _ = run("codes", "check", input="\n".join(good) + "\n")
    assert code == 0 and out == ""
    code, out, _ = run("codes", "check", "--json", input=f"{good[0]}\n{wrong}\nabc\n{good[1]}\n")
    data = json.loads(out)
    assert code == 1
    assert data["checked"] == 4 and data["invalid"] == 2
    assert [(p["line"], p["reason"]) for p in data["problems"]] == [
        (2, "wrong check digit"), (3, "not 11 ASCII digits")]
    code, out, _ = run("codes", "check", "--kind", "my-number", input="123456789018\n")
    assert code == 0
    code, out, _ = run("codes", "check", "--kind", "lg-code", input="131130\n131131\n")
    assert code == 1 and "line 2" in out


def test_block_allocate_split_show(tmp_path: Path, center_store: Path, pref_store: Path) -> None:
    reg, tokyo, minato = tmp_path / "center.bin", tmp_path / "t.block", tmp_path / "m.block"
    code, out, _ = run("codes", "block", "allocate", "--node", str(center_store), "--registry",
                       str(reg), "--holder",
                       "130001", "-n", "1000", "--out", str(tokyo), "--json")
    assert code == 0 and json.loads(out)["remaining"] == 1000
    code, out, _ = run("codes", "block", "split", "--node", str(pref_store), str(tokyo),
                       "--holder", "131032", "-n", "300",
                       "--out", str(minato), "--json")
    child = json.loads(out)
    assert code == 0 and child["remaining"] == 300 and child["holder"] == "131032"
    assert len(CodeBlock.load(tokyo)) == 700
    assert CodeRegistry.load(reg).contains(CodeBlock.load(minato).codes).all()
    code, out, _ = run("codes", "block", "show", str(minato))
    assert code == 0 and "remaining: 300" in out


def test_block_errors_exit_1_and_change_nothing(tmp_path: Path, center_store: Path,
                                                pref_store: Path) -> None:
    reg, tokyo = tmp_path / "center.bin", tmp_path / "t.block"
    run("codes", "block", "allocate", "--node", str(center_store), "--registry", str(reg),
        "--holder", "130001", "-n", "10",
        "--out", str(tokyo))
    before = tokyo.read_bytes()
    code, _, err = run("codes", "block", "split", "--node", str(pref_store), str(tokyo),
                       "--holder", "131032", "-n", "11",
                       "--out", str(tmp_path / "x.block"))
    assert code == 1 and "error:" in err
    code, _, err = run("codes", "block", "split", "--node", str(pref_store), str(tokyo),
                       "--holder", "999999", "-n", "1",
                       "--out", str(tmp_path / "x.block"))
    assert code == 2 and "check digit" in err  # a malformed code argument: a usage error
    assert tokyo.read_bytes() == before and not (tmp_path / "x.block").exists()
    (tmp_path / "junk.block").write_bytes(b"not a block at all")
    code, _, err = run("codes", "block", "show", str(tmp_path / "junk.block"))
    assert code == 1 and "error:" in err


def _subprocess(*args: str, fsize: int | None = None, stdin: bytes | None = None
                ) -> subprocess.CompletedProcess[bytes]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = dict(os.environ)
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root / "python"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "jukicore", *args], capture_output=True,
                          env=env, input=stdin, preexec_fn=limit, check=False, timeout=120)


def test_generate_needs_a_registry_or_says_nothing_is_recorded(tmp_path: Path) -> None:
    code, out, err = run("codes", "generate", "5")
    assert code == 2 and "--registry" in err and out == ""
    code, _, err = run("codes", "generate", "5", "--unrecorded", "--registry",
                       str(tmp_path / "r.bin"))
    assert code == 2 and not (tmp_path / "r.bin").exists()
    code, out, err = run("codes", "generate", "5", "--unrecorded", "--json")
    data = json.loads(out)
    assert code == 0 and data["recorded"] is False and data["registry_size"] is None
    assert "NOT recorded" in err
    assert "--unrecorded" in run("codes", "generate", "--help")[1]


def test_json_codes_are_zero_padded_strings(tmp_path: Path, center_store: Path) -> None:
    code, out, _ = run("codes", "generate", "200", "--node", str(center_store), "--registry",
                       str(tmp_path / "r.bin"),
                       "--json")
    codes_ = json.loads(out)["codes"]
    assert code == 0 and len(codes_) == 200
    assert all(isinstance(c, str) and len(c) == 11 and c.isascii() and c.isdigit()
               for c in codes_)
    padded = f"{7:010d}{resident_code_check_digit(7)}"
    code, out, _ = run("codes", "check", "--json", input=f"{padded}\n{padded[:-1]}9\n")
    problems = json.loads(out)["problems"]
    assert problems and all(isinstance(p["value"], str) for p in problems)
    assert problems[0]["value"].startswith("000000000")
    code, out, _ = run("codes", "check", "--json", "--kind", "lg-code", input="011000\n")
    assert json.loads(out)["problems"][0]["value"] == "011000"
    code, out, _ = run("codes", "block", "allocate", "--node", str(center_store), "--registry",
                       str(tmp_path / "r.bin"),
                       "--holder", "011002", "-n", "5", "--out", str(tmp_path / "b.block"),
                       "--json")
    assert code == 0 and json.loads(out)["holder"] == "011002"
    code, out, _ = run("synth", "-n", "20", "--lg-code", "011011", "--out",
                       str(tmp_path / "town"), "--json", "-q")
    assert code == 0 and json.loads(out)["lg_code"] == "011011"


def test_check_reports_a_non_utf8_line_instead_of_crashing(tmp_path: Path) -> None:
    src = tmp_path / "codes.txt"
    good = format_code(CodeRegistry().generate(1)).tolist()[0]
    src.write_bytes(b"\xff\xfe\xfd\n" + good.encode() + b"\n")
    code, out, _ = run("codes", "check", "--json", str(src))
    data = json.loads(out)
    assert code == 1 and data["checked"] == 2
    assert data["problems"] == [{"line": 1, "value": "\ufffd\ufffd\ufffd",
                                 "reason": "not UTF-8 text"}]


def test_os_errors_are_file_errors_naming_the_path(tmp_path: Path, center_store: Path) -> None:
    missing = tmp_path / "no" / "such"
    reg = tmp_path / "r.bin"
    code, _, err = run("codes", "generate", "3", "--node", str(center_store), "--registry",
                       str(reg), "--out",
                       str(missing / "c.txt"))
    assert code == 1 and err.startswith("error: ") and str(missing) in err
    assert not reg.exists()  # refused before anything was recorded
    code, _, err = run("codes", "block", "allocate", "--node", str(center_store), "--registry",
                       str(missing / "r.bin"),
                       "--holder", "130001", "-n", "5", "--out", str(tmp_path / "b.block"))
    assert code == 1 and err.startswith("error: ") and str(missing) in err
    assert not (tmp_path / "b.block").exists()
    (tmp_path / "taken.txt").write_text("mine")
    code, _, err = run("codes", "generate", "3", "--unrecorded", "--out",
                       str(tmp_path / "taken.txt"))
    assert code == 1 and "already exists" in err
    assert (tmp_path / "taken.txt").read_text() == "mine"


def test_a_full_disk_is_an_error_message_not_a_traceback(tmp_path: Path) -> None:
    out = tmp_path / "c.txt"
    done = _subprocess("codes", "generate", "100000", "--unrecorded", "--out", str(out),
                       fsize=64 * 1024)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "error: cannot write" in err and str(out) in err and "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_usage_errors_exit_2(pref_store: Path) -> None:
    for args in (["codes", "generate", "99999999999999999999", "--unrecorded"],
                 ["codes", "generate", "x", "--unrecorded"],
                 ["codes", "block", "split", "--node", str(pref_store), "/no/such.block",
                  "--holder", "131032", "-n", "1",
                  "--out", "x"],
                 ["codes", "check", "--kind", "nope"],
                 ["codes", "nope"]):
        done = _subprocess(*args)
        assert done.returncode == 2, args
        assert b"Traceback" not in done.stderr


def _probe_group() -> click.Group:
    @click.group(cls=JukiGroup)
    def root() -> None: ...

    @root.group()
    def sub() -> None: ...

    failures: dict[str, BaseException] = {
        "juki": ConflictError("two holders"),
        "os": FileNotFoundError(2, "No such file or directory", "/x/y.db"),
        "unicode": UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        "overflow": OverflowError("int too big to convert"),
        "bug": KeyError("surprise"),
    }
    for name, exc in failures.items():
        def fail(exc: BaseException = exc) -> None:
            raise exc

        sub.command(name)(fail)

    @root.command("legacy")
    @juki_errors
    def legacy() -> None:
        raise ConflictError("still caught")

    return root


@pytest.mark.parametrize(("name", "message"), [
    ("juki", "error: two holders"),
    ("os", "error: cannot use /x/y.db: No such file or directory"),
    ("unicode", "error: the input is not UTF-8 text"),
    ("overflow", "error: a number is out of range"),
    ("bug", "error: internal error: KeyError: 'surprise'"),
])
def test_one_error_boundary_covers_nested_commands(name: str, message: str) -> None:
    result = CliRunner().invoke(_probe_group(), ["sub", name])
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit)  # exited; nothing escaped
    if name == "bug":
        assert "hint:" in result.stderr and DEBUG_ENV in result.stderr
        assert len(result.stderr.strip().splitlines()) == 2


def test_the_old_decorator_still_works_and_main_is_the_boundary() -> None:
    assert isinstance(main, JukiGroup)
    result = CliRunner().invoke(_probe_group(), ["legacy"])
    assert result.exit_code == 1 and result.stderr == "error: still caught\n"
    for command in main.commands.values():  # every command group hangs under the boundary
        assert isinstance(command, click.Command)


def _operate_entries(store: Path) -> list[str]:
    from jukicore.audit.query import entries
    from jukicore.store import connect

    b = connect(store)
    try:
        with b.session(write=False) as s:
            return [f"{r['actor']} {r['detail']}" for r in entries(s, action="node.operate")]
    finally:
        b.close()


def test_recording_codes_needs_a_logged_in_operator_of_the_node(
        tmp_path: Path, center_store: Path, cli_operator: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reg, out = tmp_path / "r.bin", tmp_path / "b.block"
    allocate = ("codes", "block", "allocate", "--node", str(center_store), "--registry",
                str(reg), "--holder", "130001", "-n", "5", "--out", str(out))
    code, _, err = run("codes", "generate", "5", "--registry", str(reg))
    assert code == 2 and "--node" in err and not reg.exists()
    monkeypatch.delenv("JUKICORE_OPERATOR")
    code, _, err = run(*allocate)
    assert code == 1 and "no operator" in err
    monkeypatch.setenv("JUKICORE_OPERATOR", cli_operator.operator)
    monkeypatch.setenv("JUKICORE_PASSWORD", "Wrong-passw0rd-here")
    code, _, err = run(*allocate)
    assert code == 1 and "login refused" in err
    assert not reg.exists() and not out.exists() and _operate_entries(center_store) == []
    monkeypatch.setenv("JUKICORE_PASSWORD", cli_operator.password)
    code, _, err = run(*allocate)
    assert code == 0, err
    assert len(CodeBlock.load(out)) == 5
    assert _operate_entries(center_store) == [
        f"operator:admin1@center codes block allocate 5 to 130001 from {reg} into {out}"]


def test_codes_are_issued_at_the_center_and_split_by_the_blocks_holder(
        tmp_path: Path, center_store: Path, pref_store: Path) -> None:
    """An admin of another node is refused before logging in: no file and no entry."""
    reg, tokyo, out = tmp_path / "r.bin", tmp_path / "t.block", tmp_path / "m.block"
    code, _, err = run("codes", "block", "allocate", "--node", str(pref_store), "--registry",
                       str(reg), "--holder", "130001", "-n", "10", "--out", str(tokyo))
    assert code == 1 and "done by an operator of center" in err
    code, _, err = run("codes", "generate", "3", "--node", str(pref_store), "--registry",
                       str(reg))
    assert code == 1 and "done by an operator of center" in err
    assert not reg.exists() and not tokyo.exists()
    assert _operate_entries(pref_store) == []
    assert run("codes", "block", "allocate", "--node", str(center_store), "--registry",
               str(reg), "--holder", "130001", "-n", "10", "--out", str(tokyo))[0] == 0
    before = tokyo.read_bytes()
    code, _, err = run("codes", "block", "split", str(tokyo), "--node", str(center_store),
                       "--holder", "131032", "-n", "3", "--out", str(out))
    assert code == 1 and "done by an operator of 130001" in err
    assert tokyo.read_bytes() == before and not out.exists()
    assert len(_operate_entries(center_store)) == 1  # the allocation alone
