"""Identity confirmation over the network: an agency's queries to the center or a prefecture.

Two services, served by the center and the prefectures, called by agencies only (a
certificate registered with ``jukicore node trust-agency``):

``POST /v1/identity/confirm`` (JSON)
    ``{"purpose": P, "code": "12345678901"}`` or ``{"purpose": P, "four": {"family_name",
    "given_name", "birth_date", "address", "sex"?}}``, with ``"as_of": "YYYY-MM-DD"`` (by
    code) and ``"request_id"`` optional. Answers ``{"request_id", "rows": [...]}``: the rows
    of :func:`jukicore.identity.provide.confirm` (codes as 11-digit strings, dates ISO).
    Queries by code that arrive together are answered in one transaction (group commit,
    :class:`_Batcher`), each exactly as alone.

``POST /v1/identity/verify`` (Arrow IPC stream)
    The agency's table (as :func:`jukicore.identity.verify.verify` takes it) with the
    request in its schema's metadata: ``purpose`` (required), ``since`` and
    ``request_id`` (optional). Answers the answer table as an Arrow IPC stream.

The agency is the one its certificate names (the request cannot name another), and the
purpose is stated in every request; the identity store's gate (legal purposes, items,
tiers, hours, quotas) decides as for a local call, and every answer is recorded as a
provision in the answer's own transaction. Any other field in a request is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import threading
from concurrent.futures import Future
from typing import Any

import pyarrow as pa

from jukicore.access.actors import Actor
from jukicore.errors import InvalidInputError, PermissionDeniedError
from jukicore.network.service import (
    JSON,
    MAX_JSON_BYTES,
    Peer,
    Route,
    ServeContext,
    decode_json,
    encode_json,
)

__all__ = ["ARROW_STREAM", "MAX_VERIFY_BYTES", "ROUTES", "arrow_bytes", "read_arrow",
           "rows_json"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: The most a bulk verification request may hold (100 million codes are 1.1 GB as text;
#: split a larger file).
MAX_VERIFY_BYTES = 2 << 30
_CONFIRM_KEYS = frozenset({"purpose", "code", "four", "as_of", "request_id"})
_FOUR_KEYS = frozenset({"family_name", "given_name", "birth_date", "address", "sex"})
_VERIFY_META = frozenset({b"purpose", b"since", b"request_id"})


def _store(ctx: ServeContext) -> Any:
    from jukicore.identity import open_identity_store

    return ctx.shared("identity", lambda: open_identity_store(ctx.node.store_target()))


def _fresh_store(ctx: ServeContext) -> Any:
    from jukicore.identity import open_identity_store

    return open_identity_store(ctx.node.store_target())


def _agency(peer: Peer) -> Actor:
    if peer.kind != "agency":
        raise PermissionDeniedError(f"{peer} is no agency")
    return Actor.agency(peer.id)


def _day(value: Any, name: str) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} is a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def rows_json(table: pa.Table | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An answer's rows (a table, or its rows as dicts) as JSON values: codes as 11-digit
    strings, dates ISO 8601."""
    out = []
    for given in table.to_pylist() if isinstance(table, pa.Table) else table:
        row = dict(given)
        for k, v in given.items():
            if k in ("resident_code", "new_code") and v is not None:
                row[k] = f"{v:011d}"
            elif isinstance(v, dt.date):
                row[k] = v.isoformat()
            elif isinstance(v, list):
                row[k] = [f"{c:011d}" if isinstance(c, int) and k == "candidates" else c
                          for c in v]
        out.append(row)
    return out


class _Batcher:
    """Group commit of single queries by code: the requests that arrive while a batch is
    being answered wait in a queue and are answered together in the next one
    (:func:`jukicore.identity.provide.confirm_many`: one transaction, each request with
    its own provision record and audit entry, each refusal on its own). Nobody waits for
    a batch to fill: a request alone is answered at once."""

    MAX = 64

    def __init__(self, store: Any) -> None:
        import queue

        self.store = store
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="jukicore-confirm-batches",
                                       daemon=True)
        self.thread.start()

    def ask(self, request: Any) -> dict[str, Any]:
        """The answer (from a worker thread: waits for its batch)."""
        done: Future[dict[str, Any]] = Future()
        self.queue.put((request, done.set_result, done.set_exception))
        return done.result()

    def ask_async(self, request: Any) -> asyncio.Future[dict[str, Any]]:
        """The answer, awaited in the event loop (the batch's thread resolves it)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, Any]] = loop.create_future()

        def result(value: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(_resolve, done, value, None)

        def error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_resolve, done, None, exc)

        self.queue.put((request, result, error))
        return done

    def _run(self) -> None:
        import queue

        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.MAX:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                batch.append(item)
            try:
                answers = self.store.confirm_many([r for r, _, _ in batch], as_rows=True)
            except BaseException as exc:  # the transaction failed: every request with it
                for _, _, error in batch:
                    error(exc)
                continue
            for (_, result, error), answer in zip(batch, answers, strict=True):
                if isinstance(answer, BaseException):
                    error(answer)
                else:
                    result(answer)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(30)
        self.store.close()


def _resolve(done: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if not done.done():
        if exc is None:
            done.set_result(value)
        else:
            done.set_exception(exc)


def _parse_confirm(ctx: ServeContext, peer: Peer, body: bytes, content_type: str
                   ) -> tuple[Any, dict[str, Any]]:
    """(a ConfirmRequest for the batch, or None) and the checked request."""
    from jukicore.identity.provide import ConfirmRequest

    if content_type.split(";", maxsplit=1)[0].strip() != JSON:
        raise InvalidInputError(f"/v1/identity/confirm takes {JSON}")
    req = decode_json(body)
    _agency(peer)
    extra = set(req) - _CONFIRM_KEYS
    if extra:
        raise InvalidInputError(f"unknown fields {sorted(extra)}; a request has "
                                f"{sorted(_CONFIRM_KEYS)}")
    if not isinstance(req.get("purpose"), str):
        raise InvalidInputError("every request states its legal purpose (purpose)")
    if req.get("four") is None and req.get("as_of") is None:
        code = req.get("code")
        if code is not None and not isinstance(code, str | int):
            raise InvalidInputError("code is an 11-digit resident code")
        req["request_id"] = req.get("request_id") or os.urandom(8).hex()
        return ConfirmRequest(peer.id, req["purpose"], _agency(peer), code,
                              req["request_id"]), req
    return None, req


def _answer(rid: str, row: dict[str, Any]) -> tuple[bytes, str]:
    return encode_json({"request_id": rid, "rows": rows_json([row])}), JSON


def _batcher(ctx: ServeContext) -> _Batcher:
    return ctx.shared("confirm-batches", lambda: _Batcher(_fresh_store(ctx)))


def _confirm_route(ctx: ServeContext, peer: Peer, body: bytes, content_type: str
                   ) -> tuple[bytes, str]:
    single, req = _parse_confirm(ctx, peer, body, content_type)
    if single is not None:
        return _answer(req["request_id"], _batcher(ctx).ask(single))
    return encode_json(_confirm(ctx, peer, req)), JSON


async def _confirm_async(ctx: ServeContext, peer: Peer, body: bytes, content_type: str
                         ) -> tuple[bytes, str]:
    single, req = _parse_confirm(ctx, peer, body, content_type)
    if single is not None:
        return _answer(req["request_id"], await _batcher(ctx).ask_async(single))
    answer = await asyncio.get_running_loop().run_in_executor(None, _confirm, ctx, peer, req)
    return encode_json(answer), JSON


def _confirm(ctx: ServeContext, peer: Peer, req: dict[str, Any]) -> dict[str, Any]:
    """A query by the four items, or by code as of a date (checked by
    :func:`_parse_confirm`): answered alone, in a worker thread."""
    from jukicore.identity.provide import FourItems, confirm

    four = None
    if req.get("four") is not None:
        f = req["four"]
        if not isinstance(f, dict) or set(f) - _FOUR_KEYS:
            raise InvalidInputError(f"four holds {sorted(_FOUR_KEYS)}")
        try:
            four = FourItems(f.get("family_name"), f.get("given_name"),  # type: ignore[arg-type]
                             _day(f.get("birth_date"), "birth_date"),  # type: ignore[arg-type]
                             f.get("address"), f.get("sex"))  # type: ignore[arg-type]
        except TypeError as e:
            raise InvalidInputError(f"four: {e}") from None
    code = req.get("code")
    if code is not None and not isinstance(code, str | int):
        raise InvalidInputError("code is an 11-digit resident code")
    rid = req.get("request_id") or secrets.token_hex(8)
    table = confirm(_store(ctx), agency=peer.id, purpose=req["purpose"], actor=_agency(peer),
                    code=code, four=four, as_of=_day(req.get("as_of"), "as_of"),
                    request_id=rid)
    return {"request_id": rid, "rows": rows_json(table)}


def arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def read_arrow(body: bytes, what: str) -> pa.Table:
    try:
        with pa.ipc.open_stream(pa.py_buffer(body)) as r:
            return r.read_all()
    except (pa.ArrowException, ValueError) as e:
        raise InvalidInputError(f"the {what} is not an Arrow IPC stream: {e}") from None


def _verify(ctx: ServeContext, peer: Peer, body: bytes, content_type: str
            ) -> tuple[bytes, str]:
    from jukicore.identity.verify import verify

    actor = _agency(peer)
    if content_type.split(";", maxsplit=1)[0].strip() != ARROW_STREAM:
        raise InvalidInputError(f"/v1/identity/verify takes {ARROW_STREAM}")
    table = read_arrow(body, "verification request")
    meta = table.schema.metadata or {}
    extra = set(meta) - _VERIFY_META
    if extra:
        names = sorted(k.decode("utf-8", "replace") for k in extra)
        raise InvalidInputError(f"unknown request fields {names}")
    if b"purpose" not in meta:
        raise InvalidInputError("every request states its legal purpose (purpose in the"
                                " schema's metadata)")
    try:
        fields = {k.decode(): v.decode() for k, v in meta.items()}
    except UnicodeDecodeError:
        raise InvalidInputError("the request's metadata is not UTF-8") from None
    answer = verify(_store(ctx), table.replace_schema_metadata(None), agency=peer.id,
                    purpose=fields["purpose"], actor=actor,
                    since=_day(fields.get("since"), "since"),
                    request_id=fields.get("request_id") or None)
    return arrow_bytes(answer), ARROW_STREAM


ROUTES: tuple[Route, ...] = (
    Route("/v1/identity/confirm", _confirm_route, frozenset({"agency"}),
          frozenset({"prefecture", "center"}), MAX_JSON_BYTES, "identity.confirm",
          _confirm_async),
    Route("/v1/identity/verify", _verify, frozenset({"agency"}),
          frozenset({"prefecture", "center"}), MAX_VERIFY_BYTES, "identity.verify"),
)
