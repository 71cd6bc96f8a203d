"""The ``jukicore codes`` command line: output, exit codes, JSON, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from jukicore import ids
from jukicore.cli import main


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


def test_generate_text_json_and_registry(tmp_path: Path) -> None:
    reg = tmp_path / "center.bin"
    code, out, _ = run("codes", "generate", "5", "--registry", str(reg))
    assert code == 0
    lines = out.split()
    assert len(lines) == 5 and all(len(x) == 11 for x in lines)
    assert ids.is_valid_resident_code(lines).all()
    code, out, _ = run("codes", "generate", "3", "--registry", str(reg), "--json")
    data = json.loads(out)
    assert code == 0 and data["generated"] == 3 and data["registry_size"] == 8
    loaded = ids.CodeRegistry.load(reg)
    assert loaded.contains(lines + data["codes"]).all()


def test_generate_to_files(tmp_path: Path) -> None:
    code, _, _ = run("codes", "generate", "100", "--unrecorded", "--out", str(tmp_path / "c.npy"))
    assert code == 0
    arr = np.load(tmp_path / "c.npy")
    assert arr.dtype == np.uint64 and ids.is_valid_resident_code(arr).all()
    code, _, _ = run("codes", "generate", "10", "--unrecorded", "--out", str(tmp_path / "c.txt"))
    assert code == 0 and len((tmp_path / "c.txt").read_text().split()) == 10


def test_check_reports_bad_lines_and_exit_code(tmp_path: Path) -> None:
    good = ids.format_code(ids.CodeRegistry().generate(2)).tolist()
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


def test_block_allocate_split_show(tmp_path: Path) -> None:
    reg, tokyo, minato = tmp_path / "center.bin", tmp_path / "t.block", tmp_path / "m.block"
    code, out, _ = run("codes", "block", "allocate", "--registry", str(reg), "--holder",
                       "130001", "-n", "1000", "--out", str(tokyo), "--json")
    assert code == 0 and json.loads(out)["remaining"] == 1000
    code, out, _ = run("codes", "block", "split", str(tokyo), "--holder", "131032", "-n", "300",
                       "--out", str(minato), "--json")
    child = json.loads(out)
    assert code == 0 and child["remaining"] == 300 and child["holder"] == "131032"
    assert len(ids.CodeBlock.load(tokyo)) == 700
    assert ids.CodeRegistry.load(reg).contains(ids.CodeBlock.load(minato).codes).all()
    code, out, _ = run("codes", "block", "show", str(minato))
    assert code == 0 and "remaining: 300" in out


def test_block_errors_exit_1_and_change_nothing(tmp_path: Path) -> None:
    reg, tokyo = tmp_path / "center.bin", tmp_path / "t.block"
    run("codes", "block", "allocate", "--registry", str(reg), "--holder", "130001", "-n", "10",
        "--out", str(tokyo))
    before = tokyo.read_bytes()
    code, _, err = run("codes", "block", "split", str(tokyo), "--holder", "131032", "-n", "11",
                       "--out", str(tmp_path / "x.block"))
    assert code == 1 and "error:" in err
    code, _, err = run("codes", "block", "split", str(tokyo), "--holder", "999999", "-n", "1",
                       "--out", str(tmp_path / "x.block"))
    assert code == 1 and "local government code" in err
    assert tokyo.read_bytes() == before and not (tmp_path / "x.block").exists()
    (tmp_path / "junk.block").write_bytes(b"not a block at all")
    code, _, err = run("codes", "block", "show", str(tmp_path / "junk.block"))
    assert code == 1 and "error:" in err
