"""Smoke test of the identifier benchmarks: ``benches/compare.py --scale small`` runs.

Timings are not asserted (they are benchmarks, not tests); this checks that the
side-by-side script and its numpy / pure-Python baselines run end to end and
report a ratio for every benchmark.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

COMPARE = Path(__file__).resolve().parent.parent / "benches" / "compare.py"
ROWS = ("validate", "gen_empty", "registry_memory", "registry_file", "gen_more", "my_number")


def compare(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(COMPARE), *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_compare_small_scale_reports_a_ratio_per_benchmark() -> None:
    proc = compare("--scale", "small", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    for name in ROWS:
        line = re.search(rf"^{name}\s+.*\s(\d+\.\d\d)x\s", proc.stdout, re.MULTILINE)
        assert line is not None, f"no ratio line for {name}:\n{proc.stdout}"
        assert float(line.group(1)) > 0


def test_compare_only_runs_the_named_benchmark() -> None:
    proc = compare("--scale", "small", "--repeat", "1", "--only", "validate")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^validate\s", proc.stdout, re.MULTILINE)
    assert not re.search(r"^gen_empty\s", proc.stdout, re.MULTILINE)


def test_compare_refuses_a_bad_option() -> None:
    proc = compare("--scale", "huge", timeout=60)
    assert proc.returncode == 2
    assert "--scale" in proc.stderr


BENCHES = COMPARE.parent


@pytest.mark.parametrize(("script", "args", "expect"), [
    ("compare_register.py", ("--scale", "0.002", "--notifications", "50", "--singles", "10",
                             "--no-postgres"), r"^bulk load 2,000 residents, SQLite .* faster"),
    ("compare_aead.py", ("--scale", "small"), r"^ratio loop / rust \(2 threads\): [\d.]+x"),
    ("compare_sync.py", ("--scale", "0.001", "--no-postgres"), r"^night \(SQLite\) .* pass"),
    ("compare_audit.py", ("--scale", "0.001", "--notifications", "50", "--singles", "5",
                          "--append-entries", "1000", "--verify-entries", "10000",
                          "--repeats", "1"), r"^verify 10,000 entries, SQLite .*chained"),
    ("compare_normalize.py", ("--scale", "small", "--repeat", "1"),
     r"^addresses\s+10,000\s.*\d+\.\d\dx .*same keys"),
    ("compare_index.py", ("--rows", "20000", "--probes", "20000", "--singles", "100",
                          "--searches", "2000"),
     r"^2,000 four-item queries with spelling variants .* recall 100\.0000% .*wrong single"
     r" matches 0 "),
    ("index_build_scale.py", ("--rows", "20000"),
     r"^snapshot read alone: one reader .* ratio [\d.]+x"),
    ("compare_certificate.py", ("--issues", "3", "--residents", "200"),
     r"^ratio issued / unsigned \(p95\): [\d.]+x"),
    ("compare_identity.py", ("--scale", "small", "--no-postgres"),
     r"^pension checks 10,000 on 20,000, SQLite .* ratio +\d+\.\d\dx .*same as SQL"),
    ("compare_network.py", ("--scale", "small"),
     r"^agency code queries over mutual TLS .*/s, p50 .* in process.*: network / in process"
     r" [\d.]+x(.|\n)*"
     r"^a night of 2000 entries pushed .*x (.|\n)*^bulk verification of 20000 rows: .*x"),
    ("compare_pin.py", ("--repeat", "3"),
     r"^ratio defaults / jukicore: [\d.]+x; jukicore p95 [\d.]+ ms (within|OVER) the 150"),
])
def test_every_bench_script_runs_at_a_small_scale(script: str, args: tuple[str, ...],
                                                  expect: str) -> None:
    """``make bench`` runs these at full scale; a script broken by a change (a password
    policy, a new login) is found here rather than after an hour of benchmarking."""
    proc = subprocess.run([sys.executable, str(BENCHES / script), *args], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(expect, proc.stdout, re.MULTILINE), proc.stdout


def test_compare_confirm_batch_reports_every_way() -> None:
    script = COMPARE.parent / "compare_confirm_batch.py"
    proc = subprocess.run([sys.executable, str(script), "--codes", "300", "--repeats", "1",
                           "--batch", "16"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    for way in ("one by one", "batch 16"):
        line = re.search(rf"^  {way}\s+(\d+\.\d) us/query .* x\s*(\d+\.\d\d)", proc.stdout,
                         re.MULTILINE)
        assert line is not None, f"no line for {way}:\n{proc.stdout}"
        assert float(line.group(1)) > 0 and float(line.group(2)) > 0
