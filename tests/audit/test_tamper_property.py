"""Any single tampering through raw SQL is detected (Hypothesis, SQLite; the tests in
test_chain.py run each kind on both databases)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jukicore import audit
from jukicore.audit import chain
from jukicore.network.crypto import NodeKeys
from jukicore.register import Actor, create_register
from jukicore.store import connect

LG = "131016"
ADMIN = Actor.operator("admin", LG, "admin")
N = 30
KEYS = NodeKeys.generate(LG)
FIELDS = ("at", "actor", "actor_kind", "action", "target", "notification_id", "detail")


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="jukicore-tamper-"))
    path = d / "base.sqlite"
    create_register(str(path), lg_code=LG, prefecture="東京都", municipality="千代田区",
                    actor=ADMIN).close()
    be = connect(str(path))
    with be.session() as s:
        audit.write_many(s, [audit.entry(s, ADMIN, f"test.a{i % 3}", f"{i:011d}", f"d{i}",
                                         notification_id=f"n{i}" if i % 2 else None)
                             for i in range(N - 1)])
        chain.checkpoint(s, LG, KEYS.signing)  # covers 0..N-1; entry N records it
    be.close()
    yield path
    shutil.rmtree(d, ignore_errors=True)


tampers = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, N), st.sampled_from(FIELDS), st.text(max_size=5)),
    st.tuples(st.just("null"), st.integers(0, N), st.sampled_from(FIELDS[4:]), st.none()),
    st.tuples(st.just("delete"), st.integers(0, N), st.none(), st.none()),
    st.tuples(st.just("swap"), st.integers(0, N), st.integers(0, N), st.none()),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=tampers)
def test_any_single_tamper_is_detected(base: Path, t: tuple[object, ...],
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    op, k, a, b = t
    path = tmp_path_factory.mktemp("t") / "log.sqlite"
    shutil.copy(base, path)
    be = connect(str(path))
    try:
        with be.session() as s:
            if op == "edit":
                old = s.scalar(f"SELECT {a} FROM audit WHERE seq = ?", (k,))
                new = (s.ts(chain.at_micros("2001-02-03 04:05:06")[0]) if a == "at"
                       else str(b))
                if old == new:
                    return  # not a change
                s.execute(f"UPDATE audit SET {a} = ? WHERE seq = ?", (new, k))
            elif op == "null":
                if s.scalar(f"SELECT {a} FROM audit WHERE seq = ?", (k,)) is None:
                    return
                s.execute(f"UPDATE audit SET {a} = NULL WHERE seq = ?", (k,))
            elif op == "delete":
                s.execute("DELETE FROM audit WHERE seq = ?", (k,))
            else:
                if k == a:
                    return
                s.execute("UPDATE audit SET seq = -1 WHERE seq = ?", (k,))
                s.execute("UPDATE audit SET seq = ? WHERE seq = ?", (k, a))
                s.execute("UPDATE audit SET seq = ? WHERE seq = -1", (a,))
        report = audit.verify(be, node_id=LG, keys=[KEYS.signing.public_key()])
        assert not report.ok, t
        where = [(p.first_seq, p.last_seq) for p in report.problems]
        assert any(lo is not None and hi is not None and lo <= k <= hi for lo, hi in where), (
            t, report.problems)
    finally:
        be.close()


def test_the_untouched_copy_verifies(base: Path, tmp_path: Path) -> None:
    shutil.copy(base, tmp_path / "log.sqlite")
    be = connect(str(tmp_path / "log.sqlite"))
    try:
        assert audit.verify(be, node_id=LG, keys=[KEYS.signing.public_key()]).ok
    finally:
        be.close()
