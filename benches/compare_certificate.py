"""Side by side: a certificate of residence issued, against the same PDF unsigned.

    python benches/compare_certificate.py               # 200 issues of each (about a minute)
    python benches/compare_certificate.py --issues 20   # quicker

Issued: ``Certificates.issue`` of a whole household (SQLite register of a synthetic
municipality): the records read and audited, the certificate composed, rendered (A4,
IPAmj明朝 subset by HarfBuzz, shaped text), its payload signed (Ed25519) and drawn as a QR
code, the PDF signed (PAdES, pyhanko), the issuance recorded, in one transaction.
Unsigned: the same household composed and rendered (no QR code, no signature, no store).
Target (issue 13): p95 of an issued certificate <= 300 ms on this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _register_data import LG, MUNI, PREF, block, municipality
from jukicore.certificates import Certificates, PhotoId, Requester, compose, render_pdf
from jukicore.certificates.payload import Payload
from jukicore.network.crypto import NodeKeys
from jukicore.register import Actor, Register, create_register

ADMIN = Actor.operator("bench", LG, "admin")
TARGET_MS = 300.0


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def setup(target: str, residents: int) -> tuple[Register, Certificates, int, dict[str, object]]:
    reg = create_register(target, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN)
    reg.import_code_block(block(residents + 10), actor=ADMIN)
    res, hh = municipality(residents)
    reg.load(res, hh, actor=ADMIN)
    reg.set_policy("quota.admin", "none", actor=ADMIN)
    table = reg.residents(actor=ADMIN)
    sizes = table.group_by("household_id").aggregate([("person_id", "count")])
    hid = sizes.sort_by([("person_id_count", "descending")]).column("household_id")[0].as_py()
    members = [r for r in table.to_pylist() if r["household_id"] == hid]
    head = next(m for m in members if m["relationship"] == "世帯主")
    certs = Certificates(reg, NodeKeys.generate(LG), mayor=f"{MUNI}長　山田　一郎",
                         key_valid_from=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    return reg, certs, int(head["resident_code"]), {"members": members, "head": head}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--issues", type=int, default=200, help="certificates of each kind")
    ap.add_argument("--residents", type=int, default=2000)
    args = ap.parse_args()
    if args.issues < 2 or args.residents < 10:
        ap.error("--issues >= 2 and --residents >= 10")
    with tempfile.TemporaryDirectory(prefix="jukicore-bench-cert-") as tmp:
        reg, certs, code, data = setup(str(Path(tmp) / "r.db"), args.residents)
        head = data["head"]
        members = data["members"]
        assert isinstance(head, dict) and isinstance(members, list)
        who = Requester(PhotoId("driver_license", "AB123"), resident_code=code,
                        name=f"{head['family_name']}{head['given_name']}")
        now = dt.datetime(2024, 6, 3, 1, 0, tzinfo=dt.UTC)
        certs.issue(code, household=True, requester=who, actor=ADMIN, now=now)  # warm-up
        issued: list[float] = []
        size = 0
        for _ in range(args.issues):
            t = time.perf_counter()
            out = certs.issue(code, household=True, requester=who, actor=ADMIN, now=now,
                              items=["relationship"])
            issued.append((time.perf_counter() - t) * 1000)
            size = len(out.pdf)
        plain: list[float] = []
        for _ in range(args.issues):
            t = time.perf_counter()
            c = compose(members, items={"relationship"}, scope="household")
            pdf = render_pdf(Payload("x", LG, "k", now, LG, f"{PREF}{MUNI}", certs.mayor, c))
            plain.append((time.perf_counter() - t) * 1000)
        reg.close()
    n = len(members)
    ok = "pass" if p95(issued) <= TARGET_MS else "FAIL"
    print(f"certificate issued (household of {n}, SQLite, {args.issues} issues): "
          f"p50 {statistics.median(issued):.1f} ms  p95 {p95(issued):.1f} ms  "
          f"(target p95 <= {TARGET_MS:.0f} ms: {ok}; PDF {size:,} bytes)")
    print(f"same PDF unsigned (compose + render, no QR, no signature): "
          f"p50 {statistics.median(plain):.1f} ms  p95 {p95(plain):.1f} ms  ({len(pdf):,} bytes)")
    print(f"ratio issued / unsigned (p95): {p95(issued) / p95(plain):.2f}x")


if __name__ == "__main__":
    main()
