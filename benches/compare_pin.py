"""Side by side: one card PIN verification at jukicore's Argon2id cost against argon2-cffi's
PasswordHasher defaults, with the ratio.

    python benches/compare_pin.py              # 50 verifications each
    python benches/compare_pin.py --repeat 5   # quicker

jukicore (jukicore.cards.pin): Argon2id over HMAC-SHA256(pin key, card id || PIN), cost
t=2, m=19 MiB, p=1; the HMAC is part of the time measured. Defaults: PasswordHasher()
(RFC 9106's second recommended setting: t=3, m=64 MiB, p=4) over the PIN alone. Target
(issue 13): one verification <= 150 ms; the report prints the median and p95 of each,
and whether jukicore's p95 is within the target.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from argon2 import PasswordHasher

from jukicore.cards.pin import (
    ARGON2_MEMORY_KIB,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    PinKey,
)

TARGET_MS = 150.0


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm up (allocator, caches)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def _p95(ms: list[float]) -> float:
    return ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=50, help="verifications of each")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat is at least 1")
    key = PinKey(bytes(range(32)))
    card_id, pin = "131016-000000001", "2580"
    stored = key.hash(card_id, pin)
    default = PasswordHasher()
    stored_default = default.hash(pin)
    ours = _times(lambda: key.verify(stored, card_id, pin), args.repeat)
    theirs = _times(lambda: default.verify(stored_default, pin), args.repeat)
    mo, md = statistics.median(ours), statistics.median(theirs)
    print(f"PIN verification, {args.repeat} each (median, p95 in ms)")
    print(f"jukicore  argon2id t={ARGON2_TIME_COST} m={ARGON2_MEMORY_KIB} KiB"
          f" p={ARGON2_PARALLELISM} + HMAC   {mo:8.1f} {_p95(ours):8.1f}")
    print(f"defaults  argon2id t={default.time_cost} m={default.memory_cost} KiB"
          f" p={default.parallelism}          {md:8.1f} {_p95(theirs):8.1f}")
    verdict = "within" if _p95(ours) <= TARGET_MS else "OVER"
    print(f"ratio defaults / jukicore: {md / mo:.2f}x; jukicore p95 {_p95(ours):.1f} ms"
          f" {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
