"""The main job end to end: a synthetic municipality in a fresh SQLite register, then a day.

``run_demo`` is what ``jukicore demo`` calls: it synthesizes a municipality
(:func:`jukicore.synth.synthesize_municipality`); the center allocates a block
of fresh resident codes to the prefecture, which splits one off for the
municipality (:class:`jukicore.ids.CodeRegistry`, :class:`jukicore.ids.CodeBlock`);
the municipality loads its residents into a new SQLite register with codes from
its block, applies a generated day of notifications and returns a summary.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .actors import Actor
from .daygen import generate_day
from .store import create_register


def run_demo(
    path: str | Path,
    *,
    population: int = 100_000,
    notifications: int = 2_000,
    seed: int = 0,
    day: dt.date | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    from jukicore.ids import CodeRegistry
    from jukicore.synth import synthesize_municipality

    day = day or dt.date.today()
    t0 = time.perf_counter()
    m = synthesize_municipality(population, seed=seed, as_of=day - dt.timedelta(days=1))
    t_synth = time.perf_counter() - t0
    admin = Actor.operator("demo", m.lg_code, "admin")
    center = CodeRegistry()
    needed = population + notifications * 2 + 1000
    prefecture = center.allocate_block(2 * needed, prefecture_lg_code(m.lg_code))
    block = prefecture.split(needed, m.lg_code)
    with create_register(path, lg_code=m.lg_code, prefecture=m.prefecture,
                         municipality=m.name, actor=admin) as reg:
        reg.import_code_block(block, actor=admin)
        t1 = time.perf_counter()
        reg.load(m.residents, m.households, actor=admin,
                 progress=(lambda k: progress("load", k, m.residents.num_rows))
                 if progress else None)
        t_load = time.perf_counter() - t1
        events = generate_day(reg, actor=admin, day=day, n=notifications, seed=seed)
        t2 = time.perf_counter()
        report = reg.apply(events, actor=Actor.operator("counter-1", m.lg_code, "clerk"),
                           today=day)
        t_apply = time.perf_counter() - t2
        kinds = events.column("kind").value_counts().to_pylist()
        return {
            "register": str(path),
            "municipality": f"{m.prefecture}{m.name} ({m.lg_code})",
            "codes_issued_by_center": len(center),
            "codes_left_in_prefecture_block": len(prefecture),
            "codes_left_in_municipal_block": reg.codes_remaining(),
            "residents_loaded": m.residents.num_rows,
            "households_loaded": m.households.num_rows,
            "notifications": {k["values"]: k["counts"] for k in kinds},
            **report.summary(),
            "counts": reg.counts(),
            "seconds": {"synthesize": round(t_synth, 3), "load": round(t_load, 3),
                        "apply": round(t_apply, 3)},
        }


def prefecture_lg_code(municipal_lg_code: str) -> str:
    """The prefecture's own local government code (JIS prefecture number + 000)."""
    from jukicore.ids import lg_code_check_digit

    body = f"{municipal_lg_code[:2]}000"
    return f"{body}{lg_code_check_digit(body)}"
