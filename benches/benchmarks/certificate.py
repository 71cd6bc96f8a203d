"""asv benchmarks of certificates of residence: one issued (compose, render, sign, QR,
record) against the same PDF rendered unsigned. benches/compare_certificate.py prints
the same side by side with p95 and the ratio in one run (target: p95 <= 300 ms)."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

import compare_certificate as cc
from jukicore.certificates import PhotoId, Requester, compose, render_pdf
from jukicore.certificates.payload import Payload

NOW = dt.datetime(2024, 6, 3, 1, 0, tzinfo=dt.UTC)


class Certificate:
    """A whole household's certificate (the largest household of 2,000 residents)."""

    params = (["issued", "unsigned"],)
    param_names = ("kind",)
    number = 1
    repeat = 20
    timeout = 300

    def setup(self, kind: str) -> None:
        self.tmp = tempfile.mkdtemp(prefix="jukicore-asv-cert-")
        self.reg, self.certs, self.code, data = cc.setup(str(Path(self.tmp) / "r.db"), 2000)
        head: Any = data["head"]
        self.members: Any = data["members"]
        self.who = Requester(PhotoId("driver_license", "AB123"), resident_code=self.code,
                             name=f"{head['family_name']}{head['given_name']}")

    def teardown(self, kind: str) -> None:
        self.reg.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_certificate(self, kind: str) -> None:
        if kind == "issued":
            self.certs.issue(self.code, household=True, requester=self.who, actor=cc.ADMIN,
                             now=NOW, items=["relationship"])
        else:
            c = compose(self.members, items={"relationship"}, scope="household")
            render_pdf(Payload("x", cc.LG, "k", NOW, cc.LG, "東京都千代田区", self.certs.mayor,
                               c))
