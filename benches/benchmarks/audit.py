"""asv benchmarks of the tamper-evident audit log (SQLite): chained against plain rows.

JUKICORE_BENCH_AUDIT_ENTRIES sets the size of the verified log (default 10,000,000, the
issue's target: <= 10 s). benches/compare_audit.py prints the same side by side with
ratios in one run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

import compare_audit as ca
from jukicore import audit
from jukicore.register import create_register
from jukicore.store import connect

VERIFY_N = int(os.environ.get("JUKICORE_BENCH_AUDIT_ENTRIES", "10000000"))
APPEND_N = 20_000


class AuditAppend:
    """Append APPEND_N entries in committed transactions of 1,000 (target: >= 20,000/s),
    with the chained writer and with plain audit rows."""

    params = (["chained", "plain"],)
    param_names = ("writer",)
    number = 1
    repeat = 3
    timeout = 300

    def setup(self, writer: str) -> None:
        self.tmp = tempfile.mkdtemp(prefix="jukicore-asv-audit-")
        self.target = str(Path(self.tmp) / "a.db")
        create_register(self.target, lg_code=ca.LG, prefecture=ca.PREF,
                        municipality=ca.MUNI, actor=ca.ADMIN).close()
        ca.use(writer == "plain")
        self.be = connect(self.target)

    def teardown(self, writer: str) -> None:
        ca.use(False)
        self.be.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_append(self, writer: str) -> None:
        for start in range(0, APPEND_N, 1000):
            with self.be.session() as s:
                audit.write_many(s, [audit.entry(s, ca.ADMIN, "register.read", f"{i:011d}",
                                                 "purpose: bench")
                                     for i in range(start, start + 1000)])


class AuditVerify:
    """jukicore.audit.verify of a log of VERIFY_N entries (target: <= 10 s)."""

    number = 1
    repeat = 1
    timeout = 1800

    def setup_cache(self) -> Any:
        tmp = tempfile.mkdtemp(prefix="jukicore-asv-verify-")
        target = str(Path(tmp) / "big.db")
        ca.big_log(target, VERIFY_N)
        return target

    def time_verify(self, target: str) -> None:
        be = connect(target)
        try:
            assert audit.verify(be, node_id=ca.LG, keys=[]).ok
        finally:
            be.close()
