"""``jukicore node serve``: a node's HTTPS server, with mutual TLS 1.3.

Stack: uvicorn (with httptools) on uvloop, serving a plain ASGI application. uvicorn is
the most used ASGI server: it takes our own :mod:`ssl` context (TLS 1.3 only, our trust
anchors), stops gracefully, and takes a protocol class, which is how the client's
certificate reaches the application (:class:`_TlsHttp` puts it in the request's scope as
the ASGI TLS extension describes, ``client_cert_chain``). uvloop (libuv's event loop and
its TLS) answers about twice the requests of asyncio's own loop per core. The application
is a dict of routes: every body here is a signed packet, an Arrow stream or a small JSON
object that jukicore checks itself, and a framework's router and middleware (Starlette's,
tried first) cost a sixth of each small request and brought nothing used.

Who calls: the handshake admits only a certificate of the node's trust store or of its
registry of agencies (:mod:`jukicore.network.tls`); each request then maps the
certificate to its :class:`~jukicore.network.service.Peer` again (:class:`Acceptor`,
which rereads ``trust.json`` and ``agencies.json`` when they change, so a revoked peer or
a removed agency is refused from its next request, 403, without a restart; a peer added
is accepted after a restart or SIGHUP).

Limits: a request body larger than its route allows is refused with 413 (from its
``Content-Length`` before a byte is read, else when the stream passes the limit); a body
that does not arrive within ``body_timeout`` seconds is 408 (a slow client holds one
connection, not the server); more than ``max_concurrency`` connections and requests at
once are answered 503 at once; handlers run in a pool of worker threads.

Services: ``POST /v1/packets`` (every node: a signed packet in, its reply packet out;
:func:`_packets`), ``GET /v1/health`` (any admitted peer), the identity services of the
center and the prefectures (:mod:`jukicore.network.queries`) and the services the
counter's modules add (:func:`default_routes`).

Operations: a second listener without TLS, on loopback only (``ops_port``), serves
``/health`` and ``/metrics`` (Prometheus: requests by route and status, latency, requests
in flight, the inbox's depth, and at a municipality the entries each recipient has not
acknowledged and the lag since the first of them was sent). Every request is logged on
``jukicore.network.server`` with ``peer``, ``route``, ``status``, ``bytes`` and
``seconds`` (JSON lines with ``--log-format json``). SIGTERM or SIGINT: both listeners
stop accepting, requests in flight finish (up to ``graceful_seconds``), then the process
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jukicore._files import PRIVATE_FILE, write_atomic
from jukicore.errors import (
    InvalidInputError,
    JukiError,
    MisaddressedPacketError,
    PacketSequenceError,
    UntrustedSenderError,
)
from jukicore.network.node import Node
from jukicore.network.packet import MAX_PACKET_BYTES, Packet
from jukicore.network.service import (
    JSON,
    Peer,
    Route,
    ServeContext,
    encode_json,
    error_body,
    error_status,
)

__all__ = ["PACKET", "Acceptor", "NodeServer", "default_routes", "packet_route",
           "serve_in_thread"]

log = logging.getLogger(__name__)

PACKET = "application/vnd.jukicore.packet"
#: Loopback: where a server listens unless told otherwise, and the only place the
#: operations listener (no TLS) may listen.
LOOPBACK = "127.0.0.1"


# ----------------------------------------------------------------------------- peers


class Acceptor:
    """The certificates a node accepts, each mapped to its peer; reread when the trust
    store or the registry of agencies changes (checked at most once a second)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._by_der: dict[bytes, Peer] = {}
        self._stamp: tuple[Any, ...] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.refresh(force=True)

    def _files_stamp(self) -> tuple[Any, ...]:
        from jukicore.network.agency import REGISTRY

        out: list[Any] = []
        for p in (self.node.trust_path, self.node.path / REGISTRY):
            try:
                st = os.stat(p)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def refresh(self, *, force: bool = False) -> bool:
        """Reread the files if they changed; True when the accepted set was rebuilt."""
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return False
        with self._lock:
            self._checked = now
            stamp = self._files_stamp()
            if not force and stamp == self._stamp:
                return False
            from jukicore.network.agency import agency_certificates

            by_der: dict[bytes, Peer] = {}
            trust = self.node.trust()
            for nid in trust:
                for der in trust.certificates(nid):
                    by_der[der] = Peer("node", nid)
            if self.node.role != "municipality":
                for agency, ders in agency_certificates(self.node).items():
                    for der in ders:
                        by_der.setdefault(der, Peer("agency", agency))
            self._by_der, self._stamp = by_der, stamp
            return True

    def certificates(self) -> list[bytes]:
        return list(self._by_der)

    def peer(self, der: bytes | None) -> Peer | None:
        self.refresh()
        return None if der is None else self._by_der.get(der)


def _client_der(scope: Any) -> bytes | None:
    tls = scope.get("extensions", {}).get("tls", {})
    der = tls.get("jukicore_client_cert_der")
    if der is not None:
        return bytes(der)
    chain = tls.get("client_cert_chain") or ()
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None


def _tls_protocol(first_request_timeout: float) -> type:
    """uvicorn's httptools protocol, with the client's certificate in each request's
    scope (``scope["extensions"]["tls"]``, as the ASGI TLS extension names it), and a
    connection closed when its first request's headers have not arrived within
    ``first_request_timeout`` seconds of the handshake (idle or trickling clients do not
    hold the server's connections; later requests are under uvicorn's keep-alive
    timeout)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class _TlsHttp(HttpToolsProtocol):
        _tls: dict[str, Any] | None = None
        _first: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._first = asyncio.get_running_loop().call_later(
                first_request_timeout, self._too_slow)
            obj = transport.get_extra_info("ssl_object")
            if obj is not None:
                der = obj.getpeercert(binary_form=True)
                self._tls = {"client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der
                             else [], "tls_version": obj.version(),
                             "cipher_suite": (obj.cipher() or ("",))[0],
                             "jukicore_client_cert_der": der}  # (once per connection)

        def _too_slow(self) -> None:
            self._first = None
            if not self.transport.is_closing():
                self.transport.close()

        def on_headers_complete(self) -> None:
            if self._first is not None:
                self._first.cancel()
                self._first = None
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._first is not None:
                self._first.cancel()
                self._first = None
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._tls is not None:
                scope: dict[str, Any] = self.scope  # type: ignore[assignment]
                scope["extensions"] = {"tls": self._tls}

    return _TlsHttp


# ------------------------------------------------------------------------- metrics


@dataclass
class _Metrics:
    node: Node
    registry: Any = None
    requests: Any = None
    latency: Any = None
    in_flight: Any = None
    _children: dict[tuple[str, int], tuple[Any, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        shared = "PROMETHEUS_MULTIPROC_DIR" in os.environ  # several workers
        own = CollectorRegistry()
        self.registry = CollectorRegistry()
        metrics_to = own if shared else self.registry
        self.requests = Counter("jukicore_requests", "Requests answered, by route and status",
                                ["route", "status"], registry=metrics_to)
        self.latency = Histogram(
            "jukicore_request_seconds", "Time to answer a request, by route", ["route"],
            buckets=(.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
            registry=metrics_to)
        self.in_flight = Gauge("jukicore_requests_in_flight", "Requests being answered",
                               registry=metrics_to, multiprocess_mode="livesum")
        if shared:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        self.registry.register(_NodeCollector(self.node))

    def count(self, route: str, status: int, seconds: float) -> None:
        """One request answered (the labelled children kept: no lookup per request)."""
        key = (route, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(route, str(status)),
                                          self.latency.labels(route))
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


class _NodeCollector:
    """The node's queues, read at each scrape: the inbox's packets and, at a
    municipality, per recipient the entries not acknowledged and the lag."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        inbox = GaugeMetricFamily("jukicore_inbox_packets",
                                  "Packets waiting in the inbox (refused ones stay there)")
        try:
            inbox.add_metric([], sum(1 for e in os.scandir(self.node.inbox)
                                     if e.name.endswith(".jkp")))
        except OSError:
            inbox.add_metric([], 0)
        yield inbox
        if self.node.role != "municipality":
            return
        from jukicore.network.sync import _actor, default_recipients
        from jukicore.register import open_register

        depth = GaugeMetricFamily("jukicore_sync_pending_entries",
                                  "Outbox entries a recipient has not acknowledged",
                                  labels=["recipient"])
        lag = GaugeMetricFamily("jukicore_sync_lag_seconds", "Seconds since the first packet"
                                " a recipient has not acknowledged was sent",
                                labels=["recipient"])
        actor = _actor(self.node)
        try:
            with open_register(self.node.store_target()) as reg:
                last = reg.outbox_last_seq(actor=actor)
                for r in default_recipients(self.node.node_id):
                    depth.add_metric([r], last - reg.sync_acked(r, actor=actor))
                    lag.add_metric([r], reg.sync_lag(r, actor=actor))
        except JukiError as exc:
            log.warning("metrics: the register could not be read: %s", exc)
            return
        yield depth
        yield lag


# -------------------------------------------------------------------------- services


def _packets(ctx: ServeContext, peer: Peer, body: bytes, content_type: str
             ) -> tuple[bytes, str]:
    """A packet sent to this node: checked against the caller (the packet's sender must be
    the node the handshake authenticated), put into the inbox, applied as ``jukicore sync
    apply`` does (and archived), answered with its reply (an acknowledgement; empty for a
    code block or an acknowledgement). Sending a packet again is answered with the same
    acknowledgement and changes nothing. A gap (this store was restored from a backup) is
    answered with the rewind acknowledgement, as the file transport does."""
    from jukicore.network.sync import apply_packet, packet_name

    if content_type.split(";", maxsplit=1)[0].strip() != PACKET:
        raise InvalidInputError(f"/v1/packets takes {PACKET}, not {content_type or 'nothing'}")
    h = Packet.from_bytes(body).header
    if peer.kind != "node" or h.sender != peer.id:
        raise UntrustedSenderError(f"packet refused: it says it is from {h.sender}, but the"
                                   f" caller is {peer}")
    if h.recipient != ctx.node_id:
        raise MisaddressedPacketError(f"packet refused: addressed to {h.recipient}, this is"
                                      f" {ctx.node_id}")
    first, last = h.seq_first, h.seq_last
    name = packet_name(h.sender, h.recipient, h.kind, first, last)
    with ctx.lock(f"apply-{h.sender}"):
        path = ctx.node.inbox / name
        write_atomic(path, body, mode=PRIVATE_FILE)
        try:
            outcome = apply_packet(ctx.node, path, keys=ctx.all_keys(), archive=True)
        except PacketSequenceError as exc:
            reply = getattr(exc, "reply", None)
            if reply is None:
                raise
            return reply.read_bytes(), PACKET
    return (b"" if outcome.reply is None else outcome.reply.read_bytes()), PACKET


def packet_route() -> Route:
    return Route("/v1/packets", _packets, frozenset({"municipality", "prefecture", "center"}),
                 frozenset({"municipality", "prefecture", "center"}), MAX_PACKET_BYTES,
                 "packets")


def _health(ctx: ServeContext, peer: Peer, body: bytes, content_type: str
            ) -> tuple[bytes, str]:
    return encode_json({"node": ctx.node_id, "role": ctx.role, "status": "ok",
                        "caller": str(peer), "worker": os.getpid()}), JSON


def default_routes() -> list[Route]:
    """Every service of this version of jukicore (each node serves those of its role)."""
    from jukicore.network import queries

    routes = [packet_route(),
              Route("/v1/health", _health, frozenset({"municipality", "prefecture", "center",
                                                      "agency"}),
                    frozenset({"municipality", "prefecture", "center"}), 1024, "health"),
              *queries.ROUTES]
    from jukicore.certificates import wide_area
    from jukicore.moves import ROUTES as MOVES

    return [*routes, *wide_area.ROUTES, *MOVES]


# ---------------------------------------------------------------------------- server


def error_json(name: str, message: str) -> bytes:
    return encode_json({"error": name, "message": message})


async def _respond(send: Any, status: int, body: bytes, kind: str = JSON,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind.encode("latin-1")),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(JukiError):
    pass


@dataclass
class NodeServer:
    """A node's server (see the module's text). ``port`` 0 picks a free port
    (:attr:`port` tells which once :meth:`started` is set)."""

    node: Node
    password: str | bytes | None = None
    host: str = LOOPBACK
    port: int = 8443
    ops_port: int | None = None
    routes: list[Route] | None = None
    max_concurrency: int = 256
    body_timeout: float = 30.0
    graceful_seconds: int = 30
    #: Processes serving the port together (SO_REUSEPORT; the kernel spreads the
    #: connections): :meth:`run` starts ``workers - 1`` more, each with its own stores.
    workers: int = 1
    reuse_port: bool = False
    started: threading.Event = field(default_factory=threading.Event)
    ctx: ServeContext = field(init=False)
    _servers: list[Any] = field(default_factory=list, init=False)
    _stopping: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.ops_port is not None and not isinstance(self.ops_port, int):
            raise InvalidInputError("ops_port is a port number")
        if not isinstance(self.workers, int) or not 1 <= self.workers <= 64:
            raise InvalidInputError("workers: 1 to 64 processes")
        if self.workers > 1 and self.port == 0:
            raise InvalidInputError("several workers share one port: give it (not 0)")
        if self.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            # the workers' request metrics, summed at /metrics (set before the first
            # metric exists; inherited by the workers)
            import tempfile

            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="jukicore-metrics-")
        self.ctx = ServeContext.open(self.node, self.password)
        self.acceptor = Acceptor(self.node)
        all_routes = self.routes if self.routes is not None else default_routes()
        self._routes = {r.path: r for r in all_routes if self.ctx.role in r.serves}
        self.metrics = _Metrics(self.node)
        self.ssl = self._ssl_context()
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="jukicore-handler")
        self._warm()

    def _warm(self) -> None:
        """Import what the services use now, not in the first request (a node's server
        runs for months; the first packet of a night should not wait for imports)."""
        import importlib

        for module in ("jukicore.network.sync", "jukicore.identity", "jukicore.register",
                       "jukicore.audit.chain", "pyarrow.compute", "pyarrow.ipc"):
            importlib.import_module(module)

    def _ssl_context(self) -> ssl.SSLContext:
        from jukicore.network.tls import server_context

        keys = self.ctx.keys
        return server_context(self.node.certificate(keys, self.node.valid_from()),
                              keys.signing, self.acceptor.certificates())

    def reload(self) -> None:
        """Accept the peers and agencies added since the start (SIGHUP): their certificates
        join the handshake's trust anchors; removed ones are refused by :class:`Acceptor`."""
        self.acceptor.refresh(force=True)
        ders = self.acceptor.certificates()
        if ders:
            self.ssl.load_verify_locations(cadata=b"".join(ders))
        log.info("reloaded the trust store and the agencies (%d certificates)", len(ders),
                 extra={"step": "reload", "node": self.node.node_id})

    # -- the application

    def app(self) -> Any:
        """The services as a plain ASGI application: a route is a dict lookup by path;
        every answer, refusal included, is a JSON body or the service's own bytes."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            route = self._routes.get(scope["path"])
            if route is None:
                await _respond(send, 404, error_json("NotFoundError", f"{self.node.node_id}"
                                                     f" serves no {scope['path']}"))
                return
            method = scope["method"]
            if method != "POST" and not (method == "GET" and route.name == "health"):
                await _respond(send, 405, error_json("InvalidInputError",
                                                     f"{route.path} takes POST"))
                return
            await self._serve_request(route, scope, receive, send)

        return app

    def ops_app(self) -> Any:
        """``/health`` and ``/metrics`` (plain HTTP on loopback)."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            if scope["path"] == "/health":
                body = {"node": self.node.node_id, "role": self.ctx.role,
                        "status": "stopping" if self._stopping else "ok"}
                await _respond(send, 503 if self._stopping else 200, encode_json(body))
            elif scope["path"] == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                text = await asyncio.get_running_loop().run_in_executor(
                    None, self.metrics.render)
                await _respond(send, 200, text, CONTENT_TYPE_LATEST)
            else:
                await _respond(send, 404, error_json("NotFoundError", "/health, /metrics"))

        return app

    async def _serve_request(self, route: Route, scope: dict[str, Any], receive: Any,
                             send: Any) -> None:
        t = time.perf_counter()
        peer = self.acceptor.peer(_client_der(scope))
        status, size = 500, 0
        self.metrics.in_flight.inc()
        headers = dict(scope["headers"])
        extra: list[tuple[bytes, bytes]] = []
        try:
            try:
                if peer is None:
                    raise UntrustedSenderError("the certificate is no longer accepted here")
                if not route.admits(peer):
                    from jukicore.errors import PermissionDeniedError

                    raise PermissionDeniedError(f"{peer} may not call {route.path}")
                body = await self._body(headers, receive, route)
                size = len(body)
                content_type = headers.get(b"content-type", b"").decode("latin-1")
                if route.ahandler is not None:
                    answer, kind = await route.ahandler(self.ctx, peer, body, content_type)
                else:
                    answer, kind = await asyncio.get_running_loop().run_in_executor(
                        self._pool, route.handler, self.ctx, peer, body, content_type)
                status = 200
            except _BodyTooLarge as exc:
                status, answer, kind = 413, error_json("InvalidInputError", str(exc)), JSON
            except TimeoutError:
                status, kind = 408, JSON
                answer = error_json("InvalidInputError", f"the body did not arrive within "
                                                         f"{self.body_timeout:g} s")
                extra = [(b"connection", b"close")]
            except Exception as exc:
                status, answer, kind = error_status(exc), error_body(exc), JSON
                if status >= 500 and not isinstance(exc, JukiError):
                    log.exception("%s failed", route.path,
                                  extra={"route": route.name, "peer": str(peer)})
            await _respond(send, status, answer, kind, extra)
        finally:
            seconds = time.perf_counter() - t
            self.metrics.in_flight.dec()
            self.metrics.count(route.name, status, seconds)
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %d", peer, route.path, status,
                         extra={"step": "request", "node": self.node.node_id,
                                "peer": str(peer), "route": route.name, "status": status,
                                "bytes": size, "seconds": seconds})

    async def _body(self, headers: dict[bytes, bytes], receive: Any, route: Route) -> bytes:
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise InvalidInputError(f"Content-Length {length!r} is not a number")
            if int(length) > route.max_body:
                raise _BodyTooLarge(f"{route.path} takes at most {route.max_body} bytes;"
                                    f" this request holds {int(length)}")
        parts: list[bytes] = []
        total = 0
        async with asyncio.timeout(self.body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise InvalidInputError("the client went away before its body arrived")
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > route.max_body:
                    raise _BodyTooLarge(f"{route.path} takes at most {route.max_body} bytes")
                parts.append(chunk)
                if not message.get("more_body", False):
                    break
        return b"".join(parts)

    # -- running

    def _config(self, app: Any, port: int, tls: bool) -> Any:
        import uvicorn

        config = uvicorn.Config(
            app, host=self.host if tls else LOOPBACK, port=port,
            http=_tls_protocol(self.body_timeout) if tls else "httptools", lifespan="off",
            log_config=None, access_log=False, server_header=False, proxy_headers=False,
            limit_concurrency=self.max_concurrency, timeout_keep_alive=30,
            timeout_graceful_shutdown=self.graceful_seconds, backlog=1024)
        config.load()
        if tls:
            config.ssl = self.ssl
        return config

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM / SIGINT when run by :meth:`run`)."""
        import uvicorn

        class _Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # NodeServer handles the signals
                yield

        configs = [self._config(self.app(), self.port, True)]
        if self.ops_port is not None:
            configs.append(self._config(self.ops_app(), self.ops_port, False))
        self._servers = [_Quiet(c) for c in configs]
        sockets: list[Any] = [[self._shared_socket()] if self.reuse_port else None,
                              None][:len(self._servers)]
        tasks = [asyncio.create_task(s.serve(sockets=k))
                 for s, k in zip(self._servers, sockets, strict=True)]
        try:
            await self._run(tasks)
        finally:
            self._pool.shutdown(wait=True)
            await asyncio.to_thread(self.ctx.close)

    async def _run(self, tasks: list[asyncio.Task[None]]) -> None:
        while not all(s.started for s in self._servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        if all(s.started for s in self._servers):
            self.port = self._bound_port(self._servers[0], self.port)
            if self.ops_port is not None:
                self.ops_port = self._bound_port(self._servers[1], self.ops_port)
            log.info("%s serving on https://%s:%d", self.node.node_id, self.host, self.port,
                     extra={"step": "serve", "node": self.node.node_id, "port": self.port,
                            "ops_port": self.ops_port, "routes": sorted(self._routes)})
            self.started.set()
        await asyncio.gather(*tasks)
        for t in tasks:
            exc = t.exception()
            if exc is not None:
                raise exc
        if not self.started.is_set():
            raise JukiError(f"{self.node.node_id}: the server did not start (port taken?)")

    def _shared_socket(self) -> Any:
        """The services' listening socket, shared with the other workers (SO_REUSEPORT)."""
        import socket

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        sock.set_inheritable(True)
        return sock

    @staticmethod
    def _bound_port(server: Any, asked: int) -> int:
        for s in server.servers:
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        return asked

    def stop(self) -> None:
        """Stop accepting, finish the requests in flight, then return from :meth:`serve`."""
        self._stopping = True
        for s in self._servers:
            s.should_exit = True

    def run(self) -> None:
        """Serve in this process until SIGTERM or SIGINT (a second SIGINT forces the exit);
        SIGHUP reloads the trust store and the agencies (:meth:`reload`). With
        ``workers`` > 1, the other workers are started first (each a process serving the
        same port), stopped with this one (SIGTERM, then waited for), and reloaded with
        it; a worker whose parent is gone stops itself."""
        import multiprocessing

        children: list[Any] = []
        if self.workers > 1:
            self.reuse_port = True
            spawn = multiprocessing.get_context("spawn")
            options = {"host": self.host, "port": self.port, "max_concurrency":
                       self.max_concurrency, "body_timeout": self.body_timeout,
                       "graceful_seconds": self.graceful_seconds}
            ready = []
            for _ in range(self.workers - 1):
                up = spawn.Event()
                p = spawn.Process(target=_worker, args=(str(self.node.path), self.password,
                                                         options, os.getpid(), up),
                                  daemon=False)
                p.start()
                children.append(p)
                ready.append(up)
            # every worker listens before this one says it serves (health answers)
            deadline = time.monotonic() + 120
            for p, up in zip(children, ready, strict=True):
                while not up.wait(0.2):
                    if not p.is_alive() or time.monotonic() > deadline:
                        for c in children:
                            c.kill()
                        raise JukiError(f"{self.node.node_id}: a worker did not start")

        async def main() -> None:
            loop = asyncio.get_running_loop()

            def on_signal(sig: int) -> None:
                log.info("signal %s: stopping", signal.Signals(sig).name,
                         extra={"step": "stop", "node": self.node.node_id})
                if self._stopping and sig == signal.SIGINT:
                    for s in self._servers:
                        s.force_exit = True
                for c in children:
                    if c.pid is not None and c.is_alive():
                        os.kill(c.pid, signal.SIGTERM)
                self.stop()

            def on_hup() -> None:
                self.reload()
                for c in children:
                    if c.pid is not None and c.is_alive():
                        os.kill(c.pid, signal.SIGHUP)

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal, sig)
            loop.add_signal_handler(signal.SIGHUP, on_hup)
            await self.serve()

        try:
            _run_loop(main())
        finally:
            for c in children:
                c.join(self.graceful_seconds + 15)
                if c.is_alive():
                    c.kill()
                    c.join(5)

    async def _watch_parent(self, parent: int) -> None:
        while not self._stopping:
            if os.getppid() != parent:
                log.warning("the first worker is gone: stopping",
                            extra={"step": "stop", "node": self.node.node_id})
                self.stop()
                return
            await asyncio.sleep(1.0)


def _worker(path: str, password: str | bytes | None, options: dict[str, Any],
            parent: int, ready: Any) -> None:
    """Another worker of ``NodeServer.run`` (a spawned process); ``ready`` is set once it
    listens."""
    server = NodeServer(Node.open(path), password, ops_port=None, reuse_port=True, **options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)
        loop.add_signal_handler(signal.SIGHUP, server.reload)
        watch = asyncio.create_task(server._watch_parent(parent))
        started = asyncio.create_task(asyncio.to_thread(server.started.wait, 120))
        started.add_done_callback(lambda _: ready.set())
        await server.serve()
        watch.cancel()

    _run_loop(main())


def _run_loop(main: Any) -> None:
    """Run the server's coroutine on uvloop (libuv's event loop and its TLS, about twice
    the requests of asyncio's own per core)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def serve_in_thread(server: NodeServer, timeout: float = 30.0) -> threading.Thread:
    """Run ``server`` in a daemon thread (its own event loop); returns once it listens.
    For tests and the demo; a service runs :meth:`NodeServer.run` in its own process."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:
            errors.append(exc)
            server.started.set()

    t = threading.Thread(target=target, name=f"node-{server.node.node_id}", daemon=True)
    t.start()
    if not server.started.wait(timeout) or errors:
        server.stop()
        raise errors[0] if errors else JukiError(f"{server.node.node_id}: no start within"
                                                 f" {timeout:g} s")
    return t

