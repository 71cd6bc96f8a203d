"""The lookup index of an identity store: the Rust core's index (``jukicore_core::index``)
over the store's current identity info, kept as current as the store.

The index is built from the store's Arrow snapshot (the current info and the retired
codes, read in one transaction), keeps match keys of the names and addresses
(:mod:`jukicore.identity.normalize`) for the search by the four items, and lives in a
checksummed file that is memory-mapped when opened: a restart does not rebuild it.

It is an index over the store, never the record. Each time it is used, inside the
transaction of the request, it is compared with the store:

* the store numbers its packets in the order applied (``packets_applied.mark``) and
  notes the codes each one changed (``identity_touched``); an index behind the store
  first reopens its file if another process saved it further on (the nightly
  ``jukicore identity index``), then takes in the current info of the codes changed
  since (an overlay in memory); far behind (more than :data:`REBUILD_FRACTION` of its
  size), or behind what the store still keeps of those codes (a save drops the codes of
  the packets the saved file holds), it is rebuilt;
* an index of another store, of a store restored to an older or another state (its
  packet at the index's mark is not the one it was built or brought up to with), or a
  file that is truncated, corrupted or of another version, is rebuilt (and saved);
  nothing it held is trusted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore._jukicore import IdentityIndexCore
from jukicore._threads import in_order
from jukicore.errors import CorruptFileError, FileError, NotFoundError
from jukicore.store import Session

__all__ = ["REBUILD_FRACTION", "TOUCHED_FROM", "StoreIndex"]

log = logging.getLogger("jukicore.identity.index")

#: An index behind the store by more changed codes than this fraction of its size (and
#: more than :data:`REBUILD_MIN`) is rebuilt rather than brought up to date by overlay.
REBUILD_FRACTION = 0.05
REBUILD_MIN = 100_000

#: The ``meta`` key of the first packet number whose touched codes the store still keeps
#: (:meth:`IdentityStore.save_index` drops those its saved index holds).
TOUCHED_FROM = "index_touched_from"

#: The current info's columns, in the order of ``IdentityIndexCore.build``'s.
_COLUMNS = ("resident_code", "family_name", "given_name", "address", "lg_code",
            "change_reason", "birth_date", "sex", "status", "change_date")
#: The current info as read (every column NOT NULL, so the bulk read may go in batches).
_SNAPSHOT = pa.schema([pa.field(name, t, False) for name, t in (
    ("resident_code", pa.uint64()), ("family_name", pa.string()),
    ("given_name", pa.string()), ("address", pa.string()), ("lg_code", pa.string()),
    ("change_reason", pa.string()), ("birth_date", pa.date32()), ("sex", pa.int8()),
    ("status", pa.string()), ("change_date", pa.date32()))])
#: Side readers: the backend's ``side_readers`` (more read sessions for one large read).
SideReaders = Callable[[int], AbstractContextManager[list[Session]]]
#: Where the snapshot is split between readers: resident codes are 11 digits whose first
#: ten are random, so equal ranges of the code hold about as many people each.
CODE_SPACE = 100_000_000_000
_RETIRED = pa.schema([pa.field("resident_code", pa.uint64()),
                      pa.field("new_code", pa.uint64()), pa.field("retired_on", pa.date32())])


def _mark_of(s: Session) -> tuple[int, str]:
    """The store's last packet applied: its number and id ((0, "") before any)."""
    rows = s.query("SELECT mark, packet_id FROM packets_applied WHERE mark IS NOT NULL"
                   " ORDER BY mark DESC LIMIT 1")
    return (0, "") if not rows else (int(rows[0][0]), str(rows[0][1]))


def _packet_at(s: Session, mark: int) -> str:
    if mark == 0:
        return ""
    rows = s.query("SELECT packet_id FROM packets_applied WHERE mark = ?", (mark,))
    return "" if not rows else str(rows[0][0])


#: The most bytes a ``string`` array holds (32-bit offsets); a longer text column is made
#: one ``large_string`` array (the whole country's addresses are about 3 GB).
TEXT_LIMIT = (1 << 31) - 1

#: The snapshot is read in this many ranges of the code space (about 2,000,000 people each
#: for the whole country), each made compact and handed to the core's builder as it
#: arrives (``build_from_pieces``), so that a build holds a few ranges' rows, never all.
PIECES = 64


def whole(col: pa.ChunkedArray, limit: int = TEXT_LIMIT) -> pa.Array:
    """``col`` as one array; texts of more than ``limit`` bytes as ``large_string``."""
    if pa.types.is_string(col.type) and col.nbytes > limit:
        col = col.cast(pa.large_string())
    return col.combine_chunks()


def _compact(rows: pa.Table) -> pa.Table:
    """Current info as read (:data:`_SNAPSHOT`) with ``status`` as the core takes it
    (``uint8``: 0 resident, 1 removed)."""
    i = rows.schema.get_field_index("status")
    return rows.set_column(i, pa.field("status", pa.uint8(), False),
                           pc.cast(pc.equal(rows.column(i), "removed"), pa.uint8()))


def _row_arrays(piece: pa.Table) -> tuple[pa.Array, ...]:
    """A compact piece's columns as ``IdentityIndexCore.build``'s ten, in its order."""
    return tuple(whole(piece.column(c)) for c in _COLUMNS)


def _retired(retired: pa.Table) -> dict[str, pa.Array]:
    """Retired codes as read (:data:`_RETIRED`) as the core's ``retired_*`` arguments."""
    return {"retired_old": retired.column("resident_code").combine_chunks(),
            "retired_new": retired.column("new_code").combine_chunks(),
            "retired_on": retired.column("retired_on").combine_chunks()}


def _columns(rows: pa.Table) -> dict[str, Any]:
    """A compact table's columns as ``IdentityIndexCore.apply_delta`` takes them."""
    cols = dict(zip(_COLUMNS, _row_arrays(rows), strict=True))
    cols["code"] = cols.pop("resident_code")
    return cols


class StoreIndex:
    """The index of one identity store, optionally persisted at ``path``."""

    def __init__(self, node_id: str, path: str | Path | None) -> None:
        self.node_id = node_id
        self.path = None if path is None else Path(path)
        self.core: IdentityIndexCore | None = None
        self._lock = threading.Lock()
        self.rebuilt = 0  #: how many times this object built the index from the store
        self._opened: int | None = None  # the file's mtime when last opened or written

    def _store_id(self, packet: str) -> str:
        return f"{self.node_id}|{packet}"

    def current(self, s: Session, side: SideReaders | None = None) -> IdentityIndexCore:
        """The index, as current as the store is in transaction ``s`` (a request first
        calls this in a read transaction, so that a build or a long catch-up never runs
        inside its write transaction; there it is a check, or a short catch-up).
        ``side``: the backend's side readers, with which a build reads the snapshot in
        parallel (see :meth:`_snapshot`)."""
        with self._lock:
            mark, _packet = _mark_of(s)
            core = self.core
            if self.path is not None and (core is None or core.mark < mark):
                # the file (another process's save: the nightly job) may be further on
                saved = self._open_file()
                if saved is not None and (core is None or core.mark < saved.mark <= mark):
                    core = saved
            if core is not None and (
                    core.mark > mark
                    or core.store_id != self._store_id(_packet_at(s, core.mark))):
                log.warning("the index %s is not of this store's state: rebuilding it",
                            self.path or "in memory")
                core = None
            if core is not None and core.mark < mark:
                core = self._catch_up(s, core, mark)
            if core is None:
                core = self._build(s, mark, side)
            self.core = core
            return core

    def _open_file(self) -> IdentityIndexCore | None:
        """The index in the file, if there is one and it is whole (else None: rebuilt)."""
        assert self.path is not None
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if stamp == self._opened:
            return None  # the file this object opened or wrote last
        self._opened = stamp
        try:
            return IdentityIndexCore.open(self.path)
        except CorruptFileError as exc:
            log.warning("the index %s is unusable (%s): rebuilding it", self.path, exc)
            return None

    def _build(self, s: Session, mark: int, side: SideReaders | None) -> IdentityIndexCore:
        retired = s.fetch_arrow("SELECT resident_code, new_code, retired_on FROM"
                                " identity_retired", (), _RETIRED)
        store_id = self._store_id(_packet_at(s, mark))
        # the pieces go into the core as they are read: the whole snapshot's texts are
        # never held at once (at 125,000,000 people they would not fit beside the build)
        with side(1) if side is not None else nullcontext([]) as readers, \
                closing(self._snapshot(s, readers)) as pieces:
            core = IdentityIndexCore.build_from_pieces(
                (_row_arrays(p) for p in pieces), **_retired(retired),
                store_id=store_id, mark=mark)
        self.rebuilt += 1
        if self.path is not None:
            try:
                self._write(core)
            except FileError as exc:  # answers go on from memory; the next use tries again
                log.warning("cannot write the index %s (%s): kept in memory", self.path, exc)
        return core

    @staticmethod
    def _snapshot(s: Session, readers: Sequence[Session]) -> Generator[pa.Table, None, None]:
        """The current info in ``s``'s state, as compact pieces (:func:`_compact`) in code
        ranges (yielded as read; at most a few alive at a time), in
        :data:`PIECES` ranges of the code space shared between ``s`` and the side readers
        that see the very same state (their last packet applied is ``s``'s: every change
        of the current info comes with a packet number, in its transaction); read by
        ``s`` alone when none does."""
        state = _mark_of(s)
        same = [r for r in readers if _mark_of(r) == state]
        sql = f"SELECT {', '.join(_COLUMNS)} FROM identity"
        cuts = [CODE_SPACE * i // PIECES for i in range(1, PIECES)]
        ranges = list(zip([None, *cuts], [*cuts, None], strict=True))

        def reader(r: Session) -> Callable[[tuple[int | None, int | None]], pa.Table]:
            def read(bounds: tuple[int | None, int | None]) -> pa.Table:
                lo, hi = bounds
                cond = [c for c, v in (("resident_code >= ?", lo), ("resident_code < ?", hi))
                        if v is not None]
                return _compact(r.fetch_arrow(f"{sql} WHERE {' AND '.join(cond)}",
                                              tuple(v for v in bounds if v is not None),
                                              _SNAPSHOT))
            return read

        yield from in_order([reader(r) for r in (s, *same)], ranges, name="jukicore-snapshot")

    def _catch_up(self, s: Session, core: IdentityIndexCore,
                  mark: int) -> IdentityIndexCore | None:
        """Take in the codes changed after the index's mark (None: too many, rebuild)."""
        since = core.mark
        kept = s.scalar("SELECT value FROM meta WHERE key = ?", (TOUCHED_FROM,))
        if kept is not None and since + 1 < int(kept):
            return None  # the codes it missed are no longer kept: rebuild
        n = int(s.scalar("SELECT count(*) FROM identity_touched WHERE mark > ?", (since,)))
        if n > max(REBUILD_MIN, int(len(core) * REBUILD_FRACTION)):
            return None
        codes = [int(c) for (c,) in s.query(
            "SELECT DISTINCT resident_code FROM identity_touched WHERE mark > ?", (since,))]
        cond, params = s.any_of("resident_code", codes)
        rows = s.fetch_arrow(f"SELECT {', '.join(_COLUMNS)} FROM identity WHERE {cond}",
                             params, _SNAPSHOT)
        retired = s.fetch_arrow("SELECT resident_code, new_code, retired_on FROM"
                                f" identity_retired WHERE {cond}", params, _RETIRED)
        present = set(rows.column("resident_code").to_pylist())
        gone = pa.array(sorted(set(codes) - present), pa.uint64())
        core.apply_delta(
            removed=gone, **_retired(retired), mark=mark,
            store_id=self._store_id(_packet_at(s, mark)), **_columns(_compact(rows)))
        return core

    def save(self, s: Session) -> int:
        """Bring the index up to the store and write it to its file (the overlay folded
        in); returns its mark. An index without a path is a :class:`NotFoundError`."""
        if self.path is None:
            raise NotFoundError("this index has no file: give the store an index path")
        core = self.current(s)
        with self._lock:
            self._write(core)
        return core.mark

    def _write(self, core: IdentityIndexCore) -> None:
        assert self.path is not None
        core.save(self.path)
        self._opened = self.path.stat().st_mtime_ns

    def lookup(self, s: Session, codes: np.ndarray[Any, Any]) -> pa.RecordBatch:
        return self.current(s).lookup(pa.array(codes, pa.uint64()))
