"""Logging: the library logs through ``logging`` under ``jukicore`` and configures nothing on
import; the CLI's ``--log-level`` / ``--log-format`` send text or JSON lines to standard
error, with each step's counts and timings, and never into ``--json`` standard output."""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jukicore._log import JsonFormatter, TextFormatter, configure_logging
from jukicore.cli import main
from jukicore.errors import InvalidInputError
from jukicore.identity import create_identity_store
from jukicore.network.node import CENTER, init_node

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "python")}


@pytest.fixture(autouse=True)
def restore_logger() -> Iterator[None]:
    """Every test leaves the jukicore logger as it found it (the CLI configures it)."""
    logger = logging.getLogger("jukicore")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = state[0]
    logger.setLevel(state[1])
    logger.propagate = state[2]


def _records(lines: str) -> list[dict[str, object]]:
    """Every line of ``lines`` parsed as one JSON object (a line that is not fails)."""
    return [json.loads(line) for line in lines.splitlines() if line.strip()]


def test_demo_logs_json_lines_with_each_steps_figures_and_json_stdout_parses(
        tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "jukicore", "--log-level", "info", "--log-format", "json",
         "demo", "--population", "300", "--notifications", "20", "--workdir",
         str(tmp_path / "d"), "--transport", "files", "--json", "-q"],
        capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)  # stdout is the report alone
    assert summary["residents_loaded"] == 300
    records = _records(run.stderr)  # stderr is JSON lines alone
    assert records
    for r in records:
        assert {"ts", "level", "logger", "message"} <= set(r)
        assert str(r["logger"]).startswith("jukicore.")
        assert str(r["ts"]).endswith("+00:00")
    by_step: dict[str, list[dict[str, object]]] = {}
    for r in records:
        by_step.setdefault(str(r.get("step")), []).append(r)
    assert {"synthesize", "nodes", "code blocks", "load", "notifications", "export", "seal",
            "deliver", "apply-packet", "apply", "sync", "night"} <= set(by_step)
    lg_code = summary["municipality"][-7:-1]
    exports = by_step["export"]
    assert sorted(str(e["recipient"]) for e in exports) == sorted(summary["sent"])
    for e in exports + by_step["seal"]:
        assert e["node"] == lg_code and e["logger"] == "jukicore.network.sync"
        assert isinstance(e["rows"], int) and e["rows"] >= 300
        assert isinstance(e["bytes"], int) and e["bytes"] > 0
        assert isinstance(e["seconds"], float) and e["seconds"] >= 0
    for e in by_step["export"]:
        sent = summary["sent"][e["recipient"]]
        assert e["bytes"] == sent["packet_bytes"] and e["packets"] == 1
    # apply, per node: packets, rows, seconds; the changes' rows are the entries applied
    applies = by_step["apply"]
    assert {a["node"] for a in applies} == {lg_code, *summary["sent"]}
    for a in applies:
        assert a["packets"] == a["applied"] == a["archived"] == 1 and a["refused"] == 0
        assert isinstance(a["seconds"], float)
    for node, sent in summary["sent"].items():
        rows = [a["rows"] for a in by_step["apply-packet"]
                if a["node"] == node and a["kind"] == "identity-changes"]
        assert rows == [sent["entries"]]
    assert len(by_step["deliver"]) == 6 and all(d["packets"] == 1 for d in by_step["deliver"])
    (night,) = by_step["night"]
    assert night["steps"] == summary["seconds"] and night["archived"] == summary["archived"]


@pytest.fixture
def center(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_operator: Any) -> Path:
    """A center node with an identity store and an empty inbox; its admin is
    ``cli_operator``, whose login (in the environment) the CLI uses."""
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", "log-test-password")
    node = init_node(tmp_path / "center", CENTER)
    create_identity_store(node.store_target(), node_id=CENTER, kind="center").close()
    cli_operator.make_admin(node.store_target())
    return node.path


def test_log_settings_from_the_environment_and_the_default_level(center: Path) -> None:
    env = {**os.environ, "PYTHONPATH": ENV["PYTHONPATH"],
           "JUKICORE_NODE_PASSWORD": "log-test-password",
           "JUKICORE_LOG_FORMAT": "json",
           "JUKICORE_LOG_LEVEL": "INFO"}
    args = [sys.executable, "-m", "jukicore", "sync", "apply", str(center), "--json"]
    run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"packets": [], "refused": 0, "archived": 0}
    (rec,) = _records(run.stderr)
    assert rec["step"] == "apply" and rec["node"] == CENTER and rec["packets"] == 0
    # the default level (warning) says nothing of a run that went well
    env = {k: v for k, v in env.items() if not k.startswith("JUKICORE_LOG_")}
    run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert run.returncode == 0 and run.stderr == ""
    # text lines, the step's fields as key=value
    run = subprocess.run([*args[:3], "--log-level", "info", *args[3:]], capture_output=True,
                         text=True, env=env, timeout=120, check=False)
    assert run.returncode == 0
    assert " INFO jukicore.network.sync: center: 0 packets" in run.stderr
    assert "step=apply node=center packets=0" in run.stderr


def test_cli_logs_never_reach_standard_output_in_process(
        center: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In one process too (click's runner keeps stdout and stderr apart): the handler
    writes to whatever standard error is at each record."""
    result = CliRunner().invoke(main, ["--log-level", "debug", "--log-format", "json", "sync",
                                       "apply", str(center), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["packets"] == []
    (rec,) = _records(result.stderr)
    assert rec["step"] == "apply"
    # the runner's stream is closed now: a later record goes to the current stderr
    capsys.readouterr()
    logging.getLogger("jukicore.test").warning("after the run")
    out, err = capsys.readouterr()
    assert out == "" and '"message": "after the run"' in err and "Logging error" not in err


def test_unknown_level_or_format_is_a_usage_error() -> None:
    runner = CliRunner()
    for args in (["--log-format", "xml", "codes", "--help"],
                 ["--log-level", "loud", "codes", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
    result = runner.invoke(main, ["codes", "--help"], env={"JUKICORE_LOG_FORMAT": "yaml"})
    assert result.exit_code == 2
    with pytest.raises(InvalidInputError):
        configure_logging("loud")
    with pytest.raises(InvalidInputError):
        configure_logging("info", "xml")


def test_importing_jukicore_configures_no_logging() -> None:
    script = (
        "import logging\n"
        "import jukicore, jukicore.network.sync, jukicore.network.night, jukicore.cli\n"
        "import jukicore._log\n"
        "root = logging.getLogger()\n"
        "j = logging.getLogger('jukicore')\n"
        "print(len(root.handlers), root.level, len(j.handlers), j.level, j.propagate)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=ENV, timeout=60, check=True)
    assert run.stdout.split() == ["0", str(logging.WARNING), "0", "0", "True"]


def test_configure_logging_touches_only_the_jukicore_logger() -> None:
    root = logging.getLogger()
    root_state = (list(root.handlers), root.level)
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    configure_logging("debug", "json", stream=out)  # replaces, never adds a second handler
    logger = logging.getLogger("jukicore")
    assert sum(isinstance(h, logging.StreamHandler) and h.stream is out
               for h in logger.handlers) == 1
    assert logger.level == logging.DEBUG and not logger.propagate
    assert (list(root.handlers), root.level) == root_state
    logging.getLogger("jukicore.network.sync").debug("x %d", 1, extra={"step": "t", "rows": 2})
    logging.getLogger("other").warning("not ours")
    (rec,) = _records(out.getvalue())
    assert rec["message"] == "x 1" and rec["rows"] == 2 and rec["step"] == "t"


def test_formatters() -> None:
    record = logging.LogRecord("jukicore.network.sync", logging.INFO, __file__, 1, "applied %s",
                               ("p.jkp",), None)
    record.__dict__.update(step="apply", rows=3, seconds=0.5, packet="a b.jkp")
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "applied p.jkp" and doc["level"] == "INFO"
    assert doc["logger"] == "jukicore.network.sync"
    assert {k: doc[k] for k in ("step", "rows", "seconds", "packet")} == {
        "step": "apply", "rows": 3, "seconds": 0.5, "packet": "a b.jkp"}
    line = TextFormatter().format(record)
    assert line.endswith('INFO jukicore.network.sync: applied p.jkp step=apply rows=3 '
                         'seconds=0.500 packet="a b.jkp"')
    assert "\n" not in line
    record.__dict__.update(steps={"load": 0.25, "code blocks": 1.0}, nodes=["a", "b"])
    line = TextFormatter().format(record)
    assert line.endswith(' steps="{\\"load\\":0.25,\\"code blocks\\":1.0}" nodes=["a","b"]')
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in doc["exc"]


def test_the_library_never_prints() -> None:
    """Output of the library goes through logging: print() appears only in the CLI."""
    package = ROOT / "python" / "jukicore"
    offenders = []
    for path in package.rglob("*.py"):
        if "cli" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id == "print":
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []


def test_a_text_record_cannot_forge_another_line() -> None:
    """An inbox file name is anyone's text: a newline or a terminal escape in it stays
    escaped inside its one line (and JSON escapes it by itself)."""
    name = "x.jkp\n2026-01-01T00:00:00Z INFO jukicore.network.sync: forged\x1b[2J"
    record = logging.LogRecord("jukicore.network.sync", logging.WARNING, __file__, 1, "%s refused",
                               (name,), None)
    record.__dict__.update(packet=name)
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line
    assert line.endswith(r"x.jkp\n2026-01-01T00:00:00Z INFO jukicore.network.sync: forged\x1b[2J "
                         r'refused packet="x.jkp\n2026-01-01T00:00:00Z INFO jukicore.network.sync: '
                         r'forged\u001b[2J"')
    assert json.loads(JsonFormatter().format(record))["packet"] == name
