"""Side by side: bulk AES-256-GCM in Rust against the best Python alternatives, with ratios.

    python benches/compare_aead.py                 # full scale: 10,000,000 records of ~200 B
    python benches/compare_aead.py --scale small   # 100,000 records

1. Rust bulk seal (``_jukicore.aead_seal``, both cores, records read in place
   from an Arrow column's buffers) against a per-record Python loop with
   ``cryptography``'s ``AESGCM`` on the same records, nonces and AAD. The loop
   gets its records as a ready list of ``bytes`` (built outside the timing,
   which favours it). Target: Rust >= 10x faster.
2. Rust single-thread seal of 256-byte records against
   ``openssl speed -evp aes-256-gcm -bytes 256 -seconds 3`` (one core; also the
   ``-aead`` TLS-like variant, which includes per-record IV set-up and tag as
   ours does). Target: >= 50% of openssl's throughput.
3. Interoperability: a sample of the Rust output decrypts with ``AESGCM``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jukicore import _jukicore
from jukicore.network.crypto import seal_records

PREFIX = b"\x00\x00\x00\x01"
# As packets of format 2 seal records: the column's context is bound into the column's own
# key (derived once per column), so a record's AAD is its 8-byte row index alone.
AAD = b""
CHUNK = 1_000_000


def records(n: int, mean: int, spread: int, seed: int = 1) -> tuple[pa.Buffer, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(mean - spread, mean + spread + 1, size=n, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = rng.integers(0, 256, size=int(offsets[-1]), dtype=np.uint8)
    return pa.py_buffer(data), offsets


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def python_loop(key: bytes, data: pa.Buffer, offsets: np.ndarray) -> float:
    """Seconds for the per-record AESGCM loop (list building excluded), chunk by chunk."""
    enc = AESGCM(key).encrypt
    mv = memoryview(data)
    n = len(offsets) - 1
    total = 0.0
    for start in range(0, n, CHUNK):
        end = min(start + CHUNK, n)
        recs = [mv[offsets[i]:offsets[i + 1]].tobytes() for i in range(start, end)]
        t0 = time.perf_counter()
        out = [enc(PREFIX + i.to_bytes(8, "big"), r, AAD + i.to_bytes(8, "big"))
               for i, r in zip(range(start, end), recs, strict=True)]
        total += time.perf_counter() - t0
        del out, recs
    return total


def openssl_speed(aead: bool) -> float | None:
    """openssl's single-core AES-256-GCM throughput at 256-byte blocks, in bytes/s."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    cmd = [exe, "speed", "-evp", "aes-256-gcm", "-bytes", "256", "-seconds", "3"]
    if aead:
        cmd.insert(2, "-aead")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    m = re.search(r"^aes-256-gcm\s+([\d.]+)k\s*$", out, re.IGNORECASE | re.MULTILINE)
    return float(m.group(1)) * 1000 if m else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["full", "small"], default="full")
    args = ap.parse_args()
    n = 10_000_000 if args.scale == "full" else 100_000
    key = os.urandom(32)
    bulk(n, key, 3)
    one_core(2_000_000 if args.scale == "full" else 200_000, key)


def bulk(n: int, key: bytes, runs: int) -> None:
    print(f"# bulk AES-256-GCM, {n:,} records of 180-220 bytes, AAD = {len(AAD)} B prefix "
          f"+ 8 B row index (as in packets), {os.cpu_count()} cores")

    data, offsets = records(n, 200, 20)
    mb = data.size / 1e6
    t_rust = best_of(runs, lambda: _jukicore.aead_seal(key, PREFIX, AAD, data, offsets))
    t_rust1 = best_of(runs, lambda: _jukicore.aead_seal(key, PREFIX, AAD, data, offsets,
                                                        parallel=False))
    column = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), data])
    t_arrow = best_of(runs, lambda: seal_records(key, bytes(16), 1, "address", column))
    t_py = python_loop(key, data, offsets)
    print(f"rust aead_seal (2 threads)      {t_rust:8.3f} s  {mb / t_rust:8.1f} MB/s")
    print(f"rust aead_seal (1 thread)       {t_rust1:8.3f} s  {mb / t_rust1:8.1f} MB/s")
    print(f"crypto.seal_records (Arrow col) {t_arrow:8.3f} s  {mb / t_arrow:8.1f} MB/s")
    print(f"cryptography AESGCM loop        {t_py:8.3f} s  {mb / t_py:8.1f} MB/s")
    print(f"ratio loop / rust (2 threads): {t_py / t_rust:.1f}x  (target >= 10x)")
    print(f"ratio loop / seal_records:     {t_py / t_arrow:.1f}x")

    ct, co = _jukicore.aead_seal(key, PREFIX, AAD, data, offsets)
    rng = np.random.default_rng(2)
    mv = memoryview(data)
    for pick in rng.integers(0, n, size=1000):
        i = int(pick)
        idx = i.to_bytes(8, "big")
        plain = AESGCM(key).decrypt(PREFIX + idx, ct[co[i]:co[i + 1]].tobytes(), AAD + idx)
        assert plain == mv[offsets[i]:offsets[i + 1]].tobytes()
    print("interop: 1,000 random Rust-sealed records decrypt with cryptography's AESGCM: ok")


def one_core(n256: int, key: bytes) -> None:
    d256 = pa.py_buffer(np.zeros(n256 * 256, dtype=np.uint8))
    o256 = np.arange(n256 + 1, dtype=np.int64) * 256
    t256 = best_of(3, lambda: _jukicore.aead_seal(key, PREFIX, b"", d256, o256, parallel=False))
    rust256 = n256 * 256 / t256
    print(f"\n# one core, 256-byte records ({n256:,}); rust AAD = 8-byte row index only")
    print(f"rust aead_seal (1 thread)                 {rust256 / 1e6:8.1f} MB/s")
    for aead in (False, True):
        ossl = openssl_speed(aead)
        label = "openssl speed -evp aes-256-gcm" + (" -aead" if aead else "")
        if ossl is None:
            print(f"{label:41s} unavailable")
            continue
        print(f"{label:41s} {ossl / 1e6:8.1f} MB/s   rust = {100 * rust256 / ossl:.0f}% "
              "(target >= 50%)")


if __name__ == "__main__":
    main()
