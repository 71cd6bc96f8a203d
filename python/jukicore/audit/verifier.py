"""Verification of a store's audit log against its tree state and signed checkpoints."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore import _jukicore as core
from jukicore._threads import in_order
from jukicore.errors import JukiError

from . import chain

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from jukicore.store import Backend, Session

__all__ = ["Problem", "VerifyReport", "verify", "verify_session"]

_DETAIL = re.compile(r"checkpoint (\d+) size (\d+) root (\S+)")


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` (``missing``, ``duplicate``, ``unnumbered``, ``mismatch``,
    ``truncated``, ``state``, ``checkpoint``), a message, and where: the entries
    ``first_seq`` .. ``last_seq`` (inclusive) and/or the checkpoint number."""

    kind: str
    message: str
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoint: int | None = None


@dataclass
class VerifyReport:
    node_id: str
    entries: int = 0           # rows in the audit table
    size: int = 0              # the tree size the state row records
    root: str = ""             # hex root of the recomputed tree of all consecutive entries
    checkpoints: int = 0
    latest_checkpoint_size: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def verify(backend: Backend, *, node_id: str, keys: list[Ed25519PublicKey]) -> VerifyReport:
    """Check a store's whole audit log (read with the store's Arrow bulk path): every leaf
    recomputed, ``seq`` gap-free and ordered, the tree state, every checkpoint's signature
    (``keys``: every generation of the node's signing keys) and root, checkpoints that
    grow, entries recording checkpoints that are gone, and a tail truncated below the
    latest checkpoint. Nothing is written."""
    with backend.bulk_session(write=False) as s, backend.side_readers(1) as others:
        return verify_session(s, node_id=node_id, keys=keys, readers=others)


_COLS = ", ".join(chain.LEAF_COLUMNS)


#: Entries per read when the log is read by several sessions at once (each holds one).
PARALLEL_CHUNK = 1_000_000


def _read(s: Session, report: VerifyReport, readers: Sequence[Session] = ()
          ) -> tuple[core.MerkleLeaves, np.ndarray, list[tuple[int, str | None]]]:
    """Every numbered entry in ``seq`` order, hashed, and the ``(seq, detail)`` of the
    ``audit.checkpoint`` entries among them. The next ranges are read (by ``s`` and the
    side ``readers`` in turn, one thread each) while this one is hashed: the bulk reads
    and the Rust hashing overlap. The ranges end at the ``seq`` read first, so a side
    reader's newer snapshot reads the same entries (entries are never rewritten; one
    rewritten between the two reads is the tampering verify reports anyway)."""
    lv = core.MerkleLeaves()
    recorded: list[tuple[int, str | None]] = []
    top = s.scalar("SELECT max(seq) FROM audit")
    if top is None or int(top) < 0:
        return lv, np.zeros(0, dtype=np.int64), recorded
    step = chain.READ_CHUNK if not readers else PARALLEL_CHUNK
    end = int(top) + 1
    starts = range(0, end, step)

    def fetcher(session: Session) -> Callable[[int], pa.Table]:
        def fetch(start: int) -> pa.Table:
            return session.fetch_arrow(
                f"SELECT {_COLS} FROM audit WHERE seq >= ? AND seq < ? ORDER BY seq",
                (start, min(start + step, end)), chain.LEAF_SCHEMA)
        return fetch

    seqs: list[np.ndarray] = []
    fetchers = [fetcher(r) for r in (s, *readers)]
    for t in in_order(fetchers, starts, name="jukicore-audit-read"):
        for b in t.to_batches():
            try:
                lv.extend_audit(b)
            except JukiError as exc:  # a null in a required column, a huge text
                report.problems.append(Problem("mismatch", f"unreadable entry: {exc}"))
                lv.extend_audit(_placeholder(b))
        seqs.append(t.column("seq").to_numpy())
        marks = t.filter(pc.equal(t.column("action"), chain.CHECKPOINT_ACTION))
        recorded += zip(marks.column("seq").to_pylist(), marks.column("detail").to_pylist(),
                        strict=True)
    return lv, (np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)), recorded


def _placeholder(b: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with nulls in at replaced (its leaves will not match: reported)."""
    at = b.column("at").fill_null(0)
    return pa.RecordBatch.from_arrays(
        [b.column("seq").fill_null(-1), at, *(b.column(n) for n in chain.TEXT_FIELDS)],
        schema=b.schema)


def _gaps(seq: np.ndarray, report: VerifyReport) -> int:
    """Report missing and duplicate numbers; returns how many leading entries are numbered
    0, 1, 2, ... (the part of the tree that can be recomputed)."""
    n = len(seq)
    expected = np.arange(n, dtype=np.int64)
    bad = np.flatnonzero(seq != expected)
    contiguous = int(bad[0]) if len(bad) else n
    steps = np.diff(np.concatenate((np.array([-1], dtype=np.int64), seq)))
    for i in np.flatnonzero(steps != 1):
        prev = -1 if i == 0 else int(seq[i - 1])
        cur = int(seq[i])
        if cur <= prev:
            report.problems.append(Problem(
                "duplicate", f"entry seq {cur} appears more than once (inserted)", cur, cur))
        else:
            report.problems.append(Problem(
                "missing", f"entries seq {prev + 1}..{cur - 1} are missing (deleted)",
                prev + 1, cur - 1))
    return contiguous


def verify_session(s: Session, *, node_id: str, keys: list[Ed25519PublicKey],
                   readers: Sequence[Session] = ()) -> VerifyReport:
    """:func:`verify` in an open session (``readers``: side sessions that read entries in
    parallel, :meth:`~jukicore.store.Backend.side_readers`)."""
    report = VerifyReport(node_id)
    p = report.problems
    report.entries = int(s.scalar("SELECT count(*) FROM audit"))
    # (two queries, each a search of the seq index; "IS NULL OR < 0" scans the table)
    unnumbered = sorted(int(r[0]) for q in ("seq IS NULL", "seq < 0")
                        for r in s.query(f"SELECT id FROM audit WHERE {q}"))
    if unnumbered:
        p.append(Problem("unnumbered", f"{len(unnumbered)} entries have no sequence number"
                         f" (inserted outside the writer): row ids {unnumbered[:10]}"))
    lv, seq, recorded = _read(s, report, readers)
    good = _gaps(seq, report)
    all_root = lv.root(good)
    report.root = all_root.hex()

    # -- the checkpoints ------------------------------------------------------------
    cps = s.query("SELECT number, size, root, note FROM audit_checkpoint ORDER BY number")
    report.checkpoints = len(cps)
    signed: list[tuple[int, int, bytes]] = []  # (number, size, root) of valid checkpoints
    expected_number = 1
    for raw_number, size, root, note in cps:
        number = int(raw_number)
        if number != expected_number:
            p.append(Problem("checkpoint", f"checkpoints {expected_number}..{number - 1} are"
                             " missing (deleted)", checkpoint=expected_number))
        expected_number = number + 1
        try:
            n = chain.verify_note(note, node_id, keys)
        except JukiError as exc:
            p.append(Problem("checkpoint", f"checkpoint {number}: {exc} (edited or forged)",
                             checkpoint=number))
            continue
        if (n.size, n.root.hex()) != (int(size), root):
            p.append(Problem("checkpoint", f"checkpoint {number}: its size/root columns differ"
                             " from its signed note (edited)", checkpoint=number))
        if signed and n.size < signed[-1][1]:
            p.append(Problem("checkpoint", f"checkpoint {number} covers {n.size} entries, fewer"
                             f" than checkpoint {signed[-1][0]} ({signed[-1][1]})",
                             checkpoint=number))
            continue
        signed.append((number, n.size, n.root))
    if signed:
        report.latest_checkpoint_size = signed[-1][1]
    checkable = [c for c in signed if c[1] <= good]
    roots = lv.roots([c[1] for c in checkable])
    ok_below = 0  # entries below this seq match a checkpoint
    for (number, size, root), got in zip(checkable, roots, strict=True):
        if got == root:
            ok_below = size
        else:
            p.append(Problem(
                "mismatch", f"entries seq {ok_below}..{size - 1} do not match checkpoint"
                f" {number} (an entry there was edited, deleted, inserted or reordered)",
                ok_below, size - 1, number))
    for number, size, _root in signed:
        if size > report.entries and size > good:
            p.append(Problem(
                "truncated", f"checkpoint {number} covers {size} entries; the log holds"
                f" {report.entries}: the tail seq {report.entries}..{size - 1} was removed",
                report.entries, size - 1, number))
        elif size > good:
            p.append(Problem(
                "mismatch", f"checkpoint {number} (size {size}) cannot be recomputed: entries"
                f" from seq {good} are missing or misnumbered", good, size - 1, number))

    # -- entries that record checkpoints ----------------------------------------------
    by_number = {c[0]: c for c in signed}
    stored = {int(r[0]) for r in cps}
    for sq, detail in recorded:
        m = _DETAIL.fullmatch(detail or "")
        if not m:
            continue
        num, size = int(m.group(1)), int(m.group(2))
        c = by_number.get(num)
        if num not in stored:
            p.append(Problem("checkpoint", f"checkpoint {num}, recorded by entry seq {sq}, is"
                             " gone (deleted)", checkpoint=num))
        elif c is not None and (c[1] != size or chain.checkpoint_detail(*c) != detail):
            p.append(Problem("checkpoint", f"checkpoint {num} differs from its record in"
                             f" entry seq {sq} (replaced)", checkpoint=num))

    # -- the tree state -----------------------------------------------------------------
    rows = s.query("SELECT size, frontier, root FROM audit_state WHERE id = 1")
    if not rows:
        p.append(Problem("state", "the tree state row is gone"))
        return report
    size, frontier, root = int(rows[0][0]), rows[0][1], rows[0][2]
    report.size = size
    if size < 0:
        return report  # entries numbered by the migration, not hashed yet
    try:
        consistent = core.merkle_frontier_root(size, bytes.fromhex(frontier)) == bytes.fromhex(
            root)
    except (ValueError, JukiError):
        consistent = False
    if not consistent:
        p.append(Problem("state", "the tree state row is damaged (its root is not its"
                         " frontier's)"))
    if size != len(seq):
        first = min(size, len(seq))
        gone = size > len(seq) and not any(q.kind == "missing" for q in p)
        p.append(Problem(
            "truncated" if gone else "state",
            f"the tree state records {size} entries; the log holds {len(seq)} numbered ones",
            first, max(size, len(seq)) - 1))
    elif size == good and report.root != root:
        p.append(Problem(
            "mismatch", f"entries seq {ok_below}..{size - 1} do not match the tree state (an"
            " entry there was edited, inserted or reordered)",
            ok_below, size - 1))
    return report
