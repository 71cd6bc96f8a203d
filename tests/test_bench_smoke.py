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
