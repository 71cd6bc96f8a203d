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

import datetime as dt
import secrets
import threading
from concurrent.futures import Future
from typing import Any

import pyarrow as pa

from jukicore.access.actors import Actor
from jukicore.errors import InvalidInputError, PermissionDeniedError
from jukicore.network.service import Peer, Route, ServeContext, json_route

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


def rows_json(table: pa.Table) -> list[dict[str, Any]]:
    """An answer's rows as JSON values: codes as 11-digit strings, dates ISO 8601."""
    out = []
    for row in table.to_pylist():
        for k, v in row.items():
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

    def ask(self, request: Any) -> pa.Table:
        done: Future[pa.Table] = Future()
        self.queue.put((request, done))
        return done.result()

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
                answers = self.store.confirm_many([r for r, _ in batch])
            except BaseException as exc:  # the transaction failed: every request with it
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for (_, done), answer in zip(batch, answers, strict=True):
                if isinstance(answer, BaseException):
                    done.set_exception(answer)
                else:
                    done.set_result(answer)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(30)
        self.store.close()


def _confirm(ctx: ServeContext, peer: Peer, req: dict[str, Any]) -> dict[str, Any]:
    from jukicore.identity.provide import ConfirmRequest, FourItems, confirm

    actor = _agency(peer)
    extra = set(req) - _CONFIRM_KEYS
    if extra:
        raise InvalidInputError(f"unknown fields {sorted(extra)}; a request has "
                                f"{sorted(_CONFIRM_KEYS)}")
    purpose = req.get("purpose")
    if not isinstance(purpose, str):
        raise InvalidInputError("every request states its legal purpose (purpose)")
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
    as_of = _day(req.get("as_of"), "as_of")
    if four is None and as_of is None:
        batcher = ctx.shared("confirm-batches", lambda: _Batcher(_fresh_store(ctx)))
        table = batcher.ask(ConfirmRequest(peer.id, purpose, actor, code, rid))
    else:
        table = confirm(_store(ctx), agency=peer.id, purpose=purpose, actor=actor, code=code,
                        four=four, as_of=as_of, request_id=rid)
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
    json_route("/v1/identity/confirm", _confirm, callers=("agency",),
               serves=("prefecture", "center"), name="identity.confirm"),
    Route("/v1/identity/verify", _verify, frozenset({"agency"}),
          frozenset({"prefecture", "center"}), MAX_VERIFY_BYTES, "identity.verify"),
)
