"""Bulk verification: an agency's table of people answered row by row, each answer a
provision record, in one transaction.

The table (any Arrow tabular object, or a Parquet / Arrow IPC file through the CLI)
holds ``resident_code``, or the four items (``family_name``, ``given_name``,
``birth_date``, ``address`` and optionally ``sex``), or both; optionally ``since``
(the agency's date per row; or one date for all). A row with a code is answered by
its code; a row without one (or whose code is unknown) by the four items. Answers
(:data:`jukicore.identity.provide.VERIFY_ANSWERS`): with a date, ``unchanged``,
``changed`` (``changed_items``, ``change_date``, ``change_reason``) or ``moved`` (the
address changed); without one, ``found``; and in either case ``died``, ``moved_out``,
``removed`` (with ``status_date``), ``retired`` (``new_code`` where allowed),
``not_found``, ``ambiguous`` (``candidates`` where the purpose receives codes).

The lookups run in the Rust index (:mod:`jukicore.identity.index`), in parallel, in
chunks; the index is brought up to the store's state inside the request's
transaction, so the answers are those of the store as the transaction sees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore import audit
from jukicore.access.actors import ID_PROVIDE, Actor
from jukicore.errors import BadRow, InvalidInputError
from jukicore.store import Session
from jukicore.validate import coerce_column, sorted_rows, text_flags, valid_codes

from . import provide
from .provide import ANSWER_SCHEMA
from .purposes import Purpose

if TYPE_CHECKING:
    from .store import IdentityStore

Progress = Callable[[int, int], None]
CHUNK = 1 << 20
_FOUR = ("family_name", "given_name", "birth_date", "address")
_LIMITS = {"family_name": 100, "given_name": 100, "address": 400}


def _checked(table: Any, since: dt.date | None) -> tuple[pa.Table, bool, bool]:
    """The request as columns of known types: (table, by code, by four items). Every bad
    value refuses the whole request, naming each row and column."""
    from jukicore._jukicore import TEXT_CONTROL, TEXT_NOT_UTF8, TEXT_TOO_LONG
    from jukicore.register.store import as_arrow_table

    t = as_arrow_table(table, "verification request")
    names = set(t.column_names)
    by_code = "resident_code" in names
    by_four = set(_FOUR) <= names
    if not by_code and not by_four:
        raise InvalidInputError("a verification request has a resident_code column, or"
                                f" the four items {list(_FOUR)} (and sex), or both")
    partial = [c for c in (*_FOUR, "sex") if c in names and not by_four]
    if partial:
        raise InvalidInputError(f"the four items come together: {list(_FOUR)} (and sex),"
                                f" got only {partial}")
    if since is not None and "since" in names:
        raise InvalidInputError("the agency's date is a since column or one date, not both")
    n = t.num_rows
    bad: list[BadRow] = []
    cols: dict[str, pa.ChunkedArray] = {}
    if by_code:
        raw = t.column("resident_code")
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            ok = pc.match_substring_regex(raw.cast(pa.string()), r"^[0-9]{11}$")
            for i in np.flatnonzero(~np.asarray(pc.fill_null(ok, True))):
                bad.append(BadRow(int(i), "a resident code is 11 digits", "resident_code"))
        col, b = coerce_column(raw, pa.uint64(), "resident_code")
        bad += b
        values = col.to_numpy(zero_copy_only=False)
        valid = np.asarray(pc.is_valid(col))
        ok_codes = valid_codes(np.where(valid, values, 0).astype(np.uint64))
        for i in np.flatnonzero(valid & ~ok_codes):
            bad.append(BadRow(int(i), "not a valid resident code (check digit)",
                              "resident_code"))
        cols["resident_code"] = col
    if by_four:
        for name in _FOUR:
            typ = pa.date32() if name == "birth_date" else pa.string()
            col, b = coerce_column(t.column(name), typ, name)
            bad += b
            cols[name] = col
            if typ == pa.string():
                flags = text_flags(col, _LIMITS[name])
                problem = (flags & (TEXT_CONTROL | TEXT_NOT_UTF8 | TEXT_TOO_LONG)) != 0
                empty = np.asarray(pc.fill_null(pc.equal(col, ""), False))
                for i in np.flatnonzero(problem | empty):
                    bad.append(BadRow(int(i), "empty, too long or a refused character", name))
        sex = t.column("sex") if "sex" in names else pa.chunked_array([pa.nulls(n, pa.int8())])
        col, b = coerce_column(sex, pa.int8(), "sex")
        bad += b
        vals = np.asarray(pc.fill_null(col, 1))
        for i in np.flatnonzero(~np.isin(vals, (1, 2, 9))):
            bad.append(BadRow(int(i), "sex is 1, 2, 9 or null", "sex"))
        cols["sex"] = col
        # a row needs its code or all four items
        missing = np.zeros(n, dtype=bool)
        for name in _FOUR:
            missing |= np.asarray(pc.is_null(cols[name]))
        if by_code:
            missing &= np.asarray(pc.is_null(cols["resident_code"]))
        for i in np.flatnonzero(missing):
            bad.append(BadRow(int(i), "a row without a resident code needs the four items",
                              None))
    elif by_code:
        for i in np.flatnonzero(np.asarray(pc.is_null(cols["resident_code"]))):
            bad.append(BadRow(int(i), "missing resident code", "resident_code"))
    if "since" in names:
        col, b = coerce_column(t.column("since"), pa.date32(), "since")
        bad += b
        cols["since"] = col
    elif since is not None:
        cols["since"] = pa.chunked_array([pa.array([since] * n, pa.date32())], pa.date32())
    if bad:
        raise InvalidInputError("the verification request has invalid values",
                                sorted_rows(bad))
    return pa.table(cols), by_code, by_four


def verify(st: IdentityStore, table: Any, *, agency: str, purpose: str, actor: Actor | str,
           since: dt.date | None = None, progress: Progress | None = None,
           request_id: str | None = None, now: dt.datetime | None = None) -> pa.Table:
    """Answer every row of an agency's table (see the module docs): a table with ``row``
    (the request's row number), ``answer``, ``status_date``, the columns of the items the
    purpose allows, and with a date ``changed_items``; ``candidates`` for ``ambiguous``
    rows where the purpose receives codes. One provision record per answered person
    (each candidate of an ambiguous row; the code asked for a ``not_found`` one)."""
    who = st._actor(actor)
    st.policy.precheck(who, ID_PROVIDE)
    provide.check_ids(agency, purpose)
    if since is not None and (isinstance(since, dt.datetime) or not isinstance(since, dt.date)):
        raise InvalidInputError("since is a date")
    rid = provide.new_request_id(request_id)
    req, by_code, by_four = _checked(table, since)
    n = req.num_rows
    parts: list[pa.Table] = []
    counts: dict[str, int] = {}
    st.warm_index()
    with st.policy.session(who, ID_PROVIDE, now=now, bulk=True) as s:
        p = provide.gate(st, s, who, agency, purpose, four=by_four, embargo_until=None,
                         now=now)
        core = st.current_index(s)
        no = provide.open_request(s, p, request_id=rid, actor=who, agency=agency,
                                  embargo_until=None)
        for start in range(0, max(n, 1), CHUNK):
            chunk = req.slice(start, CHUNK)
            if chunk.num_rows == 0:
                break
            answers, prov = _answer(s, core, chunk, start, p, by_code, by_four)
            s.ingest("provision", _provision_table(prov, no))
            for vc in pc.value_counts(answers.column("answer")).to_pylist():
                counts[vc["values"]] = counts.get(vc["values"], 0) + vc["counts"]
            parts.append(answers)
            if progress is not None:
                progress(start + chunk.num_rows, n)
        audit.write(s, who, "identity.provide", None,
                    f"request {rid}: {agency} for {p.purpose} (v{p.version}), bulk"
                    f" verification of {n} rows: "
                    + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    schema = _schema(p, "since" in req.column_names)
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).cast(schema)


def _schema(p: Purpose, dated: bool) -> pa.Schema:
    fields = [pa.field("row", pa.int64(), False)]
    fields += [ANSWER_SCHEMA.field(c) for c in provide.allowed_columns(p)]
    if dated:
        fields.append(pa.field("changed_items", pa.list_(pa.string())))
    if "resident_code" in p.items:
        fields.append(pa.field("candidates", pa.list_(pa.uint64())))
    return pa.schema(fields)


#: Every answer of a row, and each one's number while a chunk is answered.
_ANSWER_TEXTS = pa.array(sorted(set(provide.VERIFY_ANSWERS) | {"found"}), pa.string())
_A = {a: np.int8(i) for i, a in enumerate(_ANSWER_TEXTS.to_pylist())}


def _hits(core: Any, codes: np.ndarray[Any, Any]) -> pa.Table:
    """The index's answers for ``codes`` with the record's columns as an answer names
    them (``resident_code``, ``status`` as text). The names, ``lg_code`` and
    ``change_reason`` stay dictionary-encoded over the index's dictionaries (not
    copied per row); :func:`verify` casts the answers to their schema at the end."""
    hits = pa.Table.from_batches([core.lookup(pa.array(codes, pa.uint64()))])
    found = pc.equal(hits.column("hit"), "found")
    status = pc.if_else(pc.equal(hits.column("status"), 1), "removed", "resident")
    hits = hits.append_column("resident_code",
                              pc.if_else(found, hits.column("code"), None))
    return hits.set_column(hits.schema.get_field_index("status"), "status", status)


def _answer(s: Session, core: Any, chunk: pa.Table, start: int, p: Purpose, by_code: bool,
            by_four: bool) -> tuple[pa.Table, dict[str, Any]]:
    """One chunk's answers and provision rows."""
    n = chunk.num_rows
    lookup_codes = np.zeros(n, dtype=np.uint64)
    has_code = np.zeros(n, dtype=bool)
    if by_code:
        col = chunk.column("resident_code")
        has_code = np.asarray(pc.is_valid(col))
        lookup_codes = np.asarray(pc.fill_null(col, 0)).astype(np.uint64)
    hits = _hits(core, lookup_codes)  # (no code is 0: not found)
    kind = np.asarray(hits.column("hit"))
    found = has_code & (kind == "found")
    retired = has_code & (kind == "retired")
    candidates: list[list[int] | None] = [None] * n
    target = lookup_codes.copy()
    if by_four:
        idx = np.flatnonzero(~(found | retired))
        if idx.size:
            sub = chunk.take(pa.array(idx))
            res = core.search_many(
                sub.column("family_name").combine_chunks(),
                sub.column("given_name").combine_chunks(),
                sub.column("birth_date").combine_chunks(),
                sex=pc.fill_null(sub.column("sex"), 0).combine_chunks(),
                address=sub.column("address").combine_chunks())
            status = res.column("status").to_pylist()
            matches = res.column("codes").to_pylist()
            for j, i in enumerate(idx):
                if status[j] == "match":
                    target[i] = matches[j][0]
                    found[i] = True
                elif status[j] == "ambiguous":
                    candidates[i] = sorted(matches[j])
            hits = _hits(core, np.where(found, target, lookup_codes).astype(np.uint64))
    # the answers as numbers into _ANSWER_TEXTS (texts made once, at the end, in Arrow)
    answer = np.where(found, _A["found"], np.where(retired, _A["retired"], _A["not_found"]))
    ambiguous = np.array([c is not None for c in candidates], dtype=bool)
    answer[ambiguous] = _A["ambiguous"]

    def where(col: pa.ChunkedArray, value: str) -> np.ndarray[Any, Any]:
        if pa.types.is_dictionary(col.type):  # (compared decoded: older pyarrow has no kernel)
            col = col.cast(col.type.value_type)
        return np.asarray(pc.fill_null(pc.equal(col, value), False))

    removed = found & where(hits.column("status"), "removed")
    death = where(hits.column("change_reason"), "death")
    move_out = where(hits.column("change_reason"), "move_out")
    answer[removed & death] = _A["died"]
    answer[removed & move_out] = _A["moved_out"]
    answer[removed & ~death & ~move_out] = _A["removed"]
    status_date = pc.if_else(pa.array(removed), hits.column("change_date"),
                             pc.if_else(pa.array(retired), hits.column("retired_on"),
                                        pa.nulls(n, pa.date32())))
    out: dict[str, Any] = {"row": pa.array(np.arange(start, start + n, dtype=np.int64))}
    keep = pa.array(found)
    for f in ANSWER_SCHEMA:
        if f.name in ("answer", "status_date", "new_code"):
            continue
        col = hits.column(f.name)  # its own type (dictionary texts): cast in verify()
        out[f.name] = pc.if_else(keep, col, pa.nulls(n, col.type))
    out["new_code"] = pc.if_else(pa.array(retired), hits.column("new_code"),
                                 pa.nulls(n, pa.uint64()))
    changed: list[list[str] | None] = [None] * n
    if "since" in chunk.column_names:
        since = chunk.column("since")
        dated = np.asarray(pc.is_valid(since))  # a row without its date: found, as without
        later = found & ~removed & np.asarray(pc.fill_null(
            pc.greater(hits.column("change_date"), since), False))
        same = found & ~removed & ~later & dated
        answer[same] = _A["unchanged"]
        for row, (items, moved) in _changed_items(s, np.flatnonzero(later), target, since,
                                                  p).items():
            changed[row] = items
            answer[row] = _A["moved"] if moved else _A["changed"]
        for row in np.flatnonzero(same).tolist():
            changed[row] = []
    out["answer"] = pa.DictionaryArray.from_arrays(
        pa.array(answer, pa.int8()), _ANSWER_TEXTS).cast(pa.string())
    out["status_date"] = status_date
    out["changed_items"] = pa.array(changed, pa.list_(pa.string()))
    out["candidates"] = pa.array(candidates, pa.list_(pa.uint64()))
    table = pa.table(out)
    table = table.select(_schema(p, "since" in chunk.column_names).names)
    # provision rows: every answered person (each candidate), the code asked otherwise
    asked = has_code | found
    codes_col = pa.array(np.where(asked, target, 0).astype(np.int64), pa.int64(),
                         mask=~asked)
    prov_codes = codes_col.filter(pa.array(~ambiguous))
    prov_answers = out["answer"].filter(pa.array(~ambiguous))
    if ambiguous.any():
        extra = [int(c) for i in np.flatnonzero(ambiguous) for c in candidates[i] or []]
        prov_codes = pa.concat_arrays([prov_codes, pa.array(extra, pa.int64())])
        prov_answers = pa.concat_arrays([prov_answers,
                                         pa.array(["ambiguous"] * len(extra), pa.string())])
    return table, {"codes": prov_codes, "answers": prov_answers}


def _changed_items(s: Session, rows: np.ndarray[Any, Any], codes: np.ndarray[Any, Any],
                   since: pa.ChunkedArray, p: Purpose) -> dict[int, tuple[list[str], bool]]:
    """For rows whose record changed after their ``since``: the items that differ between
    the record then (the last entry on or before that day) and now (those the purpose
    receives; ``changes`` when none of them), and whether the person moved (an address
    then, another now; a record that began after that day is changed, not moved)."""
    if rows.size == 0:
        return {}
    wanted = {int(codes[i]): i for i in rows}
    cond, params = s.any_of("h.resident_code", list(wanted))
    by_code: dict[int, list[dict[str, Any]]] = {}
    for row in provide.history(s, cond, params):
        by_code.setdefault(int(row["resident_code"]), []).append(row)
    since_list = since.to_pylist()
    out: dict[int, tuple[list[str], bool]] = {}
    for code, i in wanted.items():
        entries = by_code.get(code, [])
        day = since_list[i]
        before = None
        for e in entries:
            if e["change_date"] > day:
                break
            before = e
        now = entries[-1] if entries else None
        items = [] if now is None else provide.changed_items(before, now)
        moved = before is not None and "address" in items
        out[i] = ([it for it in items if it in p.items] or ["changes"], moved)
    return out


def _provision_table(prov: dict[str, Any], request_no: int) -> pa.Table:
    """A chunk's provision rows, in code order: the index by code (disclosure) then takes
    them in one sweep of its pages instead of one random page per row."""
    answers: pa.Array = prov["answers"]
    n = len(answers)
    return pa.table({
        "request_no": pa.repeat(pa.scalar(request_no, pa.int64()), n),
        "resident_code": prov["codes"], "answer": answers,
        "items": pa.nulls(n, pa.string()),  # those the purpose gives (provision_detail)
    }).sort_by("resident_code")


def read_table(path: str | Path) -> pa.Table:
    """An agency's request from a Parquet file or an Arrow IPC file or stream (told by
    their first bytes); anything else is an :class:`InvalidInputError`."""
    import pyarrow.parquet as pq
    from pyarrow import ipc

    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(6)
        if head[:4] == b"PAR1":
            return pq.read_table(p)
        if head == b"ARROW1":
            with ipc.open_file(p) as r:
                return r.read_all()
        with p.open("rb") as f, ipc.open_stream(f) as r:
            return r.read_all()
    except OSError:
        raise
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidInputError(f"{p}: not a Parquet or Arrow IPC file ({exc})") from None


def write_table(table: pa.Table, path: str | Path) -> None:
    """The answers to ``path`` atomically: Parquet if it ends in ``.parquet``, else an
    Arrow IPC file."""
    import pyarrow.parquet as pq
    from pyarrow import ipc

    from jukicore._files import atomic_file

    with atomic_file(path, mode=0o600) as f:
        if str(path).endswith(".parquet"):
            pq.write_table(table, f)
        else:
            with ipc.new_file(f, table.schema) as w:
                w.write_table(table)
