"""asv benchmarks of identity confirmation at the center (``benches/compare_identity.py``
at small sizes): a bulk verification of 10,000 codes with its provision records, one
confirmation by code, and the reopen of the lookup index from its file (SQLite).

JUKICORE_BENCH_IDENTITY_RECORDS sets the store's size (default 50,000).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benches/

import compare_identity as ci
from jukicore.identity import create_identity_store

RECORDS = int(os.environ.get("JUKICORE_BENCH_IDENTITY_RECORDS", "50000"))
CHECKS = 10_000


class Identity:
    """A center store of RECORDS synthetic people, its index on file."""

    timeout = 600
    number = 1
    repeat = 5

    def setup_cache(self) -> str:
        tmp = tempfile.mkdtemp(prefix="jukicore-asv-identity-")
        ppl = ci.people(RECORDS, min(RECORDS, 20_000), 2)
        st = create_identity_store(Path(tmp) / "center.db", node_id=ci.CENTER, kind="center")
        ci.load(st, ppl)
        st.use_index(Path(tmp) / "center.index")
        st.save_index()
        st.close()
        codes = np.asarray(ppl.column("resident_code"))[:CHECKS]
        np.save(Path(tmp) / "codes.npy", codes)
        return tmp

    def setup(self, tmp: str) -> None:
        from jukicore.identity import open_identity_store

        # a copy per run: verify and confirm write provision records
        self.dir = Path(tempfile.mkdtemp(prefix="jukicore-asv-identity-run-"))
        for f in ("center.db", "center.index"):
            shutil.copy(Path(tmp) / f, self.dir / f)
        self.st = open_identity_store(self.dir / "center.db")
        self.st.use_index(self.dir / "center.index")
        codes = np.load(Path(tmp) / "codes.npy")
        self.req = pa.table({"resident_code": pa.array(codes, pa.uint64())})
        self.one = int(codes[0])

    def teardown(self, tmp: str) -> None:
        self.st.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_verify_10k_codes(self, tmp: str) -> None:
        """store.verify of 10,000 codes (index reopened on the first use, answers,
        provision records, one transaction)."""
        self.st.verify(self.req, agency="jps", purpose=ci.PURPOSE, actor=ci.JPS,
                       since=ci.SINCE, now=ci.NOW)

    def time_confirm_one_code(self, tmp: str) -> None:
        """One confirmation by code with its provision record."""
        self.st.confirm(agency="jps", purpose=ci.PURPOSE, actor=ci.JPS, code=self.one,
                        now=ci.NOW)

    def time_index_reopen(self, tmp: str) -> Any:
        """use_index on the saved file and one lookup (memory-mapped, not rebuilt)."""
        self.st.use_index(self.dir / "center.index")
        with self.st._b.session(write=False) as s:
            return self.st.current_index(s).lookup(self.one)
