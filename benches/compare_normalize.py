"""Side by side: jukicore's match keys (Rust, one column call) against the pure-Python pipeline.

    python benches/compare_normalize.py                  # 1,000,000 names and 1,000,000 addresses
    python benches/compare_normalize.py --scale small    # every size / 100: a smoke test
    python benches/compare_normalize.py --one-thread     # Rust on one thread (RAYON_NUM_THREADS=1)

The issue's target: normalization at least 5x the best pure-Python pipeline (unicodedata +
jaconv + a variant table, ``benches/_normalize_py.py``) on the same strings, same results.

The strings: the family names, given names and addresses of a synthetic municipality
(``jukicore.synth``), repeated and varied (variant kanji, half-width katakana, full-width
digits, kanji numerals, 番地の / 大字 spellings, spaces) up to the size. Both sides get the
same strings: jukicore a ``pyarrow`` string array, Python a ``list[str]``; the keys are
checked equal before any timing. Each figure is the median of ``--repeat`` runs of
``time.perf_counter`` around the call alone; the runs alternate. Ratio: Python / jukicore.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

FULL = 1_000_000
TARGET = 5.0


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=("full", "small"), default="full",
                    help="full: 1,000,000 names and addresses; small: every size / 100")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    ap.add_argument("--one-thread", action="store_true",
                    help="run jukicore on one thread (sets RAYON_NUM_THREADS=1)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def variants(base: list[str], n: int, kind: str) -> list[str]:
    """``n`` strings: ``base`` repeated, every other copy respelled."""
    import jaconv

    import _normalize_py as ref

    back = {v: k for k, v in ((chr(k), v) for k, v in ref.VARIANTS.items())}
    to_variant = str.maketrans({k: v for k, v in back.items() if len(k) == 1})
    full_width = str.maketrans("0123456789-", "０１２３４５６７８９－")
    kanji = str.maketrans("0123456789", "〇一二三四五六七八九")
    out: list[str] = []
    i = 0
    while len(out) < n:
        s = base[i % len(base)]
        k = (i // len(base) + i) % 6
        if k == 1:
            s = s.translate(to_variant)
        elif k == 2:
            s = jaconv.z2h(jaconv.hira2kata(s)) if kind == "name" else s.translate(full_width)
        elif k == 3:
            s = (s[:1] + "\u3000" + s[1:]) if kind == "name" else s.replace("-", "番地の", 1)
        elif k == 4 and kind == "address":
            s = s.replace("町", "町大字", 1).translate(kanji).replace("-", "丁目", 1)
        out.append(s)
        i += 1
    return out


def _timed(fn: Callable[..., Any], *args: Any) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> int:
    args = _parse()
    if args.one_thread:
        os.environ["RAYON_NUM_THREADS"] = "1"  # read when jukicore's pool starts
    import pyarrow as pa

    import _normalize_py as ref
    import jukicore
    from jukicore import _jukicore
    from jukicore.synth import synthesize_municipality

    n = FULL if args.scale == "full" else FULL // 100
    res = synthesize_municipality(20_000 if args.scale == "full" else 2_000, seed=1).residents
    names = variants([v for c in ("family_name", "given_name")
                      for v in res.column(c).to_pylist() if v], n, "name")
    addresses = variants([v for v in res.column("address").to_pylist() if v], n, "address")
    threads = "1 thread" if args.one_thread else f"{os.cpu_count()} cores"
    print(f"jukicore match keys vs pure Python, scale {args.scale}, {args.repeat} run(s) each, "
          f"jukicore on {threads}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"Python {platform.python_version()}, jukicore {jukicore.__version__}")
    rows = []
    for label, values, rust, py in (
        ("names", names, _jukicore.name_keys, ref.name_keys),
        ("addresses", addresses, _jukicore.address_keys, ref.address_keys),
    ):
        arr = pa.array(values, pa.string())
        got = rust(arr).to_pylist()
        want = py(values)
        if got != want:
            bad = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
            raise SystemExit(f"{label}: keys differ at {bad}: {values[bad]!r} -> jukicore "
                             f"{got[bad]!r}, Python {want[bad]!r}")
        changed = sum(a != b for a, b in zip(values, got, strict=True))
        del got, want
        jk: list[float] = []
        pt: list[float] = []
        for r in range(args.repeat):
            order = [(jk, rust, arr), (pt, py, values)]
            for times, fn, x in order if r % 2 == 0 else order[::-1]:
                times.append(_timed(fn, x))
        j, p = statistics.median(jk), statistics.median(pt)
        rows.append((label, len(values), j, p, changed))
        print(f"  {label}: jukicore runs {' '.join(f'{x:.3f}' for x in jk)}; "
              f"Python runs {' '.join(f'{x:.3f}' for x in pt)}")
    print()
    print(f"{'keys':<10} {'strings':>10} {'jukicore':>10} {'python':>10} {'ratio':>8}  target")
    for label, count, j, p, changed in rows:
        ratio = p / j if j > 0 else float("inf")
        verdict = ("pass" if ratio >= TARGET else "FAIL") if args.scale == "full" else "-"
        print(f"{label:<10} {count:>10,} {j:>9.3f}s {p:>9.3f}s {ratio:>7.2f}x  "
              f">= {TARGET:.0f}x: {verdict}  (same keys; {changed:,} differ from their input)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
