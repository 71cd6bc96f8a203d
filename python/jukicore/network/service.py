"""Services a node offers over the network: routes, callers, and errors on the wire.

A service is a :class:`Route`: a path under ``/v1/``, the roles of the nodes that
serve it, the roles of the callers it admits (``municipality``, ``prefecture``,
``center`` or ``agency``), and a handler. The handler runs in a worker thread with the
serving node's :class:`ServeContext` and the :class:`Peer` that the mutual-TLS
handshake authenticated (its certificate, checked against the node's trust store or
its registry of agency certificates); it takes the request's body and answers bytes.
:func:`json_route` makes a route whose handler takes and answers JSON objects.

Refusals travel as JSON ``{"error": CLASS, "message": TEXT}`` with an HTTP status
(:func:`error_status`): the client raises the same class of :mod:`jukicore.errors`
(:func:`raise_error`), so a caller across the network sees the one exception hierarchy
as a caller in the same process does. A caller of another role than the route admits is
refused before its body is read (:class:`PermissionDeniedError`, 403).

:func:`call_local` runs a route exactly as the server does (the role check, the body
limit, the handler, the errors' round trip through JSON) without a network, for
tests of a service's logic and for a node that asks itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from jukicore import errors
from jukicore.errors import InvalidInputError, JukiError, PermissionDeniedError
from jukicore.network.crypto import NodeKeys
from jukicore.network.node import Node, role_of

__all__ = [
    "CALLER_ROLES",
    "JSON",
    "MAX_JSON_BYTES",
    "Peer",
    "Route",
    "ServeContext",
    "call_local",
    "decode_json",
    "encode_json",
    "error_body",
    "error_status",
    "json_route",
    "raise_error",
]

log = logging.getLogger(__name__)

JSON = "application/json"
#: The most a JSON request or answer may hold (bulk data travels as Arrow IPC).
MAX_JSON_BYTES = 1 << 20
CALLER_ROLES = ("municipality", "prefecture", "center", "agency")
PeerKind = Literal["node", "agency"]
T = TypeVar("T")


@dataclass(frozen=True)
class Peer:
    """Who is calling, as its certificate says: a node (``id`` its node id) or an agency
    (``id`` its agency id of the legal purposes table)."""

    kind: PeerKind
    id: str

    @property
    def role(self) -> str:
        """``municipality``, ``prefecture``, ``center`` or ``agency``."""
        return "agency" if self.kind == "agency" else role_of(self.id)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass
class ServeContext:
    """The serving node: its directory, its keys (unlocked once, when the server starts)
    and a lock per name for handlers that must not run twice at once."""

    node: Node
    keys: NodeKeys
    password: str | bytes | None = None
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _all_keys: list[NodeKeys] = field(default_factory=list, repr=False)
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, node: Node, password: str | bytes | None = None) -> ServeContext:
        every = node.keys(password)
        return cls(node, every[-1], password, _all_keys=every)

    def all_keys(self) -> list[NodeKeys]:
        """Every key generation, oldest first (packets to a retired one still open)."""
        return list(self._all_keys) or [self.keys]

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def role(self) -> str:
        return role_of(self.node.node_id)

    def lock(self, name: str) -> threading.Lock:
        """One in-process lock per ``name`` (handlers run in a thread pool)."""
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """One object per ``name`` for the server's life (an open store: its sessions are
        serialized, so the worker threads may share it), made on first use."""
        with self.lock(f"shared-{name}"):
            if name not in self._shared:
                self._shared[name] = make()
            return self._shared[name]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close what :meth:`shared` opened."""
        for obj in self._shared.values():
            close = getattr(obj, "close", None)
            if close is not None:
                close()
        self._shared.clear()


Handler = Callable[[ServeContext, Peer, bytes, str], tuple[bytes, str]]
AsyncHandler = Callable[[ServeContext, Peer, bytes, str], Awaitable[tuple[bytes, str]]]


@dataclass(frozen=True)
class Route:
    """One service: ``handler(ctx, peer, body, content_type) -> (answer, content_type)``."""

    path: str
    handler: Handler
    callers: frozenset[str]
    serves: frozenset[str]
    #: The most the request body may hold (a larger one is refused with 413 unread).
    max_body: int = MAX_JSON_BYTES
    name: str = ""
    #: The same service as a coroutine the server awaits in its event loop instead of
    #: running ``handler`` in a worker thread (for a handler that only hands the work
    #: on, e.g. to a batch: it must not block). ``call_local`` runs ``handler``.
    ahandler: AsyncHandler | None = None

    def __post_init__(self) -> None:
        if not self.path.startswith("/v1/"):
            raise InvalidInputError(f"route {self.path!r}: paths start with /v1/")
        bad = set(self.callers) - set(CALLER_ROLES)
        if bad or not self.callers:
            raise InvalidInputError(f"route {self.path}: callers are of {CALLER_ROLES}")
        if not self.serves or set(self.serves) - set(CALLER_ROLES[:3]):
            raise InvalidInputError(f"route {self.path}: served by nodes of "
                                    f"{CALLER_ROLES[:3]}")

    def admits(self, peer: Peer) -> bool:
        return peer.role in self.callers


def encode_json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                      default=_default).encode()


def _default(v: Any) -> Any:
    import datetime as dt

    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    if isinstance(v, bytes):
        import base64

        return base64.b64encode(v).decode()
    raise TypeError(f"{type(v).__name__} is not JSON")


def decode_json(body: bytes, what: str = "request") -> dict[str, Any]:
    """A JSON object from a body (at most :data:`MAX_JSON_BYTES`), or InvalidInputError."""
    if len(body) > MAX_JSON_BYTES:
        raise InvalidInputError(f"the {what} holds more than {MAX_JSON_BYTES} bytes of JSON")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise InvalidInputError(f"the {what} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"the {what} is not a JSON object")
    return doc


def json_route(path: str, handler: Callable[[ServeContext, Peer, dict[str, Any]],
                                            Mapping[str, Any]], *,
               callers: tuple[str, ...] | frozenset[str],
               serves: tuple[str, ...] | frozenset[str], name: str = "") -> Route:
    """A route whose handler takes the request's JSON object and answers one."""

    def run(ctx: ServeContext, peer: Peer, body: bytes, content_type: str
            ) -> tuple[bytes, str]:
        if content_type.split(";", maxsplit=1)[0].strip() != JSON:
            raise InvalidInputError(f"{path} takes {JSON}, not {content_type or 'nothing'}")
        return encode_json(dict(handler(ctx, peer, decode_json(body)))), JSON

    return Route(path, run, frozenset(callers), frozenset(serves), MAX_JSON_BYTES,
                 name or path.removeprefix("/v1/"))


# ------------------------------------------------------------------ errors on the wire

#: HTTP status per error class (the first that matches, in this order).
_STATUS: tuple[tuple[type[JukiError], int], ...] = (
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.PacketSequenceError, 409),
    (errors.ConflictError, 409),
    (errors.PacketRefusedError, 422),
    (errors.CertificateRefusedError, 422),
    (errors.InvalidInputError, 400),
    (errors.CorruptFileError, 400),
)


def error_status(exc: BaseException) -> int:
    """The HTTP status a refusal travels with (500 for anything not a JukiError)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 503 if isinstance(exc, errors.StoreError) else (
        400 if isinstance(exc, JukiError) else 500)


def error_body(exc: BaseException) -> bytes:
    """``{"error": CLASS, "message": TEXT}``: CLASS a name of :mod:`jukicore.errors`
    (``JukiError`` for an error of another kind, whose text is not sent)."""
    if isinstance(exc, JukiError):
        name = type(exc).__name__
        if getattr(errors, name, None) is not type(exc):
            name = next(c.__name__ for c in type(exc).__mro__
                        if getattr(errors, c.__name__, None) is c)
        return encode_json({"error": name, "message": str(exc)})
    return encode_json({"error": "JukiError", "message": "internal error (see the server's log)"})


def raise_error(status: int, body: bytes, where: str) -> None:
    """Raise the error a refusal's body names (the class of :mod:`jukicore.errors`, or
    :class:`JukiError`), its message prefixed with where it came from."""
    try:
        doc = json.loads(body)
        name, message = str(doc["error"]), str(doc["message"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise JukiError(f"{where} answered HTTP {status}: "
                        f"{body[:200].decode('utf-8', 'replace')}") from None
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, JukiError)):
        cls = JukiError
    raise cls(f"{where}: {message}")


def call_local(ctx: ServeContext, routes: list[Route] | tuple[Route, ...], peer: Peer,
               path: str, body: bytes | Mapping[str, Any], content_type: str = JSON
               ) -> Any:
    """Run ``path`` as the server would for ``peer`` (see the module's text): the answer's
    bytes, or its JSON object when the answer is JSON; a refusal is raised."""
    if not isinstance(body, bytes):
        body = encode_json(dict(body))
    try:
        route = next((r for r in routes if r.path == path), None)
        if route is None:
            raise errors.NotFoundError(f"no service {path}")
        if ctx.role not in route.serves:
            raise errors.NotFoundError(f"a {ctx.role} serves no {path}")
        if not route.admits(peer):
            raise PermissionDeniedError(f"{peer} may not call {path}")
        if len(body) > route.max_body:
            raise InvalidInputError(f"{path} takes at most {route.max_body} bytes")
        answer, kind = route.handler(ctx, peer, body, content_type)
    except Exception as exc:
        if not isinstance(exc, JukiError):
            log.exception("%s failed", path, extra={"path": path, "peer": str(peer)})
        raise_error(error_status(exc), error_body(exc), f"{ctx.node_id}{path}")
        raise  # unreachable
    return decode_json(answer, "answer") if kind == JSON else answer
