"""Instructions (valgrind's callgrind) of applying notifications, for comparing two
commits on a shared, noisy machine: instruction counts repeat where times do not.

    benches/instructions_register.py TREE [TREE ...]

For each TREE (a checkout of jukicore with its extension built into
TREE/python/jukicore), three runs under callgrind: the setup alone (a register of
5,000 residents, a day of 1,000 notifications and 200 single ones generated), the
setup and ``Register.apply`` of the day, the setup and 200 ``Register.notify`` calls.
The work's instructions are a run's total less the setup's; the last tree is the
baseline of the printed ratios. User-space instructions only: the fsync of each
commit (I/O) is not counted, so this measures the CPU work, not the latency.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WORK = ("none", "apply", "single")


def _child(tree: str, what: str) -> None:
    sys.path.insert(0, str(Path(tree) / "benches"))
    import compare_register as cr
    from _register_data import block, municipality, with_codes

    try:
        from jukicore.synth.day import generate_day
    except ImportError:  # a tree from before synth.day
        from jukicore.register import generate_day  # type: ignore[attr-defined,no-redef]
    res, hh = municipality(5000)
    _, reg = cr.jukicore_load(str(Path(tempfile.mkdtemp()) / "r.db"), with_codes(res), hh)
    reg.import_code_block(block(5_000), actor=cr.ADMIN)
    day = generate_day(reg, actor=cr.ADMIN, day=cr.DAY, n=1000, seed=1)
    singles = generate_day(reg, actor=cr.ADMIN, day=cr.DAY, n=200, seed=2,
                           mix={"name_change": 0.5, "move_within": 0.3, "my_number": 0.2})
    rows = [{k: v for k, v in r.items() if v is not None} for r in singles.to_pylist()]
    if what == "apply":
        reg.apply(day, actor=cr.ADMIN, today=cr.DAY)
    elif what == "single":
        for fields in rows:
            reg.notify(actor=cr.ADMIN, today=cr.DAY, **fields)


def _count(tree: str, what: str) -> int:
    out = Path(tempfile.mkdtemp()) / "cg.out"
    env = {**os.environ, "PYTHONPATH": str(Path(tree) / "python"), "PYTHONHASHSEED": "0"}
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          sys.executable, __file__, "--child", tree, what],
                         cwd=tree, env=env, capture_output=True, text=True, check=True)
    m = re.search(r"Collected : (\d+)", run.stderr)
    if m is None:
        raise SystemExit(f"no instruction count from callgrind:\n{run.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3])
        return
    trees = sys.argv[1:] or ["."]
    work: dict[str, dict[str, int]] = {}
    for tree in trees:
        total = {what: _count(tree, what) for what in WORK}
        work[tree] = {w: total[w] - total["none"] for w in WORK[1:]}
        print(f"{tree}: apply 1,000 {work[tree]['apply']:,} instructions,"
              f" 200 single notifications {work[tree]['single']:,}", flush=True)
    base = trees[-1]
    for tree in trees[:-1]:
        for w in WORK[1:]:
            print(f"{w:<6} {tree} / {base}: {work[tree][w] / work[base][w]:.3f}")


if __name__ == "__main__":
    main()
