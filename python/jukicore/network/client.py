"""The client side of the network: a node (or an agency) calling another node.

:class:`NodeClient` calls a node's peers with the node's own certificate over mutual
TLS 1.3, trusting for each peer only that peer's certificates
(:func:`jukicore.network.tls.client_context`). Where a peer listens is the node's
address book ``peers.json`` (``jukicore node peer DIR PEER URL``). :class:`AgencyClient`
does the same for an agency (its identity directory, the server's public record).

Timeouts: 5 s to connect, ``timeout`` (default 60 s) to send and to wait for the answer.
Retries: a call that failed before anything reached the peer (no connection, a refused
handshake, a server saying 503 because it is full or stopping) is tried again; one that
may have reached it (the connection broke, the answer did not come in time, 502/504) is
tried again only when it is *idempotent*: every service that changes state takes the same
request twice without doing it twice (a packet sent again is answered with the same
acknowledgement; the counter's services carry request ids), so calls are idempotent by
default; an agency's query is not (each answer is a provision the resident can see).
Between tries the client waits ``backoff`` seconds doubling up to ``max_backoff``, with
jitter, until ``retry_for`` seconds have passed since the first try; then it raises
:class:`~jukicore.errors.NetworkError`. A refusal by the peer (4xx with a jukicore error)
is raised at once as the same class of :mod:`jukicore.errors`.

``clock`` and ``sleep`` may be given (tests simulate an outage of hours without waiting).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jukicore._files import PRIVATE_FILE, read_regular, write_atomic
from jukicore.errors import (
    CorruptFileError,
    InvalidInputError,
    NetworkError,
    NotFoundError,
)
from jukicore.network.crypto import check_node_id
from jukicore.network.node import Node
from jukicore.network.service import JSON, decode_json, encode_json, raise_error

if TYPE_CHECKING:
    import ssl

    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["ADDRESS_BOOK", "AgencyClient", "NodeClient", "Transport", "peer_addresses",
           "set_peer_address"]

log = logging.getLogger(__name__)

ADDRESS_BOOK = "peers.json"
_FORMAT = "jukicore-peers"
#: The HTTP statuses that mean "not done, try later".
_UNAVAILABLE = frozenset({503})
_MAYBE_DONE = frozenset({502, 504})


def _check_url(url: str) -> str:
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        raise InvalidInputError("a peer's address is an https:// URL")
    u = urlsplit(url)
    if u.scheme != "https" or not u.hostname or u.path not in ("", "/") or u.query \
            or u.fragment or u.username or u.password:
        raise InvalidInputError(f"{url!r}: a peer's address is https://HOST:PORT (no path,"
                                " no credentials)")
    try:
        u.port  # noqa: B018  (a bad port raises)
    except ValueError:
        raise InvalidInputError(f"{url!r}: not a port") from None
    return url.rstrip("/")


def peer_addresses(node: Node) -> dict[str, str]:
    """The node's address book: peer node id -> https://HOST:PORT."""
    where = node.path / ADDRESS_BOOK
    if not os.path.lexists(where):
        return {}
    try:
        doc = json.loads(read_regular(where, max_bytes=1 << 20))
        if doc.get("format") != _FORMAT:
            raise ValueError("not an address book")
        return {check_node_id(k): _check_url(v) for k, v in doc["peers"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise CorruptFileError(f"{where} is damaged: {e}") from None


def set_peer_address(node: Node, peer: str, url: str | None) -> None:
    """Record where ``peer`` listens (None: forget it). The peer must be trusted."""
    check_node_id(peer)
    if peer not in node.trust():
        raise NotFoundError(f"{peer} is not in the trust store: trust it first")
    with node.lock("peers"):
        book = peer_addresses(node)
        if url is None:
            book.pop(peer, None)
        else:
            book[peer] = _check_url(url)
        doc = {"format": _FORMAT, "peers": dict(sorted(book.items()))}
        write_atomic(node.path / ADDRESS_BOOK, (json.dumps(doc, indent=2) + "\n").encode(),
                     mode=PRIVATE_FILE)


@dataclass
class Transport:
    """Calls to one kind of caller's peers: the identity it presents, the retry policy,
    one HTTP/1.1 connection pool per peer."""

    certificate: bytes
    key: Ed25519PrivateKey
    name: str
    timeout: float = 60.0
    retry_for: float = 60.0
    backoff: float = 0.25
    max_backoff: float = 30.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _clients: dict[str, httpx.Client] = field(default_factory=dict, repr=False)

    def _client(self, peer: str, url: str, server_certs: list[bytes]) -> httpx.Client:
        import httpx

        from jukicore.network.tls import client_context

        c = self._clients.get(peer)
        if c is None:
            ctx: ssl.SSLContext = client_context(self.certificate, self.key, server_certs)
            c = httpx.Client(base_url=url, verify=ctx, http2=False, trust_env=False,
                             timeout=httpx.Timeout(self.timeout, connect=5.0),
                             limits=httpx.Limits(max_connections=16,
                                                 max_keepalive_connections=16),
                             headers={"user-agent": "jukicore"})
            self._clients[peer] = c
        return c

    def request(self, peer: str, url: str, server_certs: list[bytes], path: str,
                body: bytes, content_type: str, *, idempotent: bool = True
                ) -> tuple[bytes, str]:
        """POST ``body`` to ``path`` at ``peer`` (see the module's text for the retries)."""
        import httpx

        client = self._client(peer, url, server_certs)
        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            why: str
            try:
                r = client.post(path, content=body, headers={"content-type": content_type})
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                why = f"cannot connect: {e}"
            except httpx.TransportError as e:  # the request may have reached the peer
                if not idempotent:
                    raise NetworkError(f"{peer}{path}: {type(e).__name__}: {e} (the request"
                                       " may have been answered; not tried again)") from None
                why = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    return r.content, r.headers.get("content-type", "")
                if r.status_code in _UNAVAILABLE or (idempotent and r.status_code in
                                                     _MAYBE_DONE | {408}):
                    why = f"HTTP {r.status_code}"
                else:
                    raise_error(r.status_code, r.content, f"{peer}{path}")
                    raise AssertionError("unreachable")
            waited = self.clock() - start
            pause = min(self.max_backoff, self.backoff * 2 ** min(attempt - 1, 30))
            pause *= 0.5 + random.random() / 2
            if waited + pause > self.retry_for:
                raise NetworkError(f"{peer}{path}: no answer after {attempt} tries in "
                                   f"{waited:.0f} s ({why})")
            log.warning("%s%s: try %d failed (%s); again in %.1f s", peer, path, attempt, why,
                        pause, extra={"step": "retry", "peer": peer, "route": path,
                                      "attempt": attempt, "seconds": pause})
            self.sleep(pause)

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()


class NodeClient:
    """A node calling its peers (see the module's text)."""

    def __init__(self, node: Node, password: str | bytes | None = None, *,
                 addresses: dict[str, str] | None = None, **policy: Any) -> None:
        self.node = node
        keys = node.current_keys(password)
        self.transport = Transport(node.certificate(keys, node.valid_from()), keys.signing,
                                   node.node_id, **policy)
        self._addresses = dict(addresses) if addresses is not None else None
        self._targets: dict[str, tuple[str, list[bytes]]] = {}

    def address(self, peer: str) -> str:
        book = self._addresses if self._addresses is not None else peer_addresses(self.node)
        try:
            return _check_url(book[peer])
        except KeyError:
            raise NotFoundError(f"no address for {peer}: jukicore node peer "
                                f"{self.node.path} {peer} https://HOST:PORT") from None

    def _target(self, peer: str) -> tuple[str, list[bytes]]:
        """Where ``peer`` listens and the certificates it may present: read once per
        client (its connections are made from them once)."""
        found = self._targets.get(peer)
        if found is None:
            check_node_id(peer)
            certs = self.node.trust().certificates(peer)
            if not certs:
                raise NotFoundError(f"no certificate of {peer} in the trust store (trust its"
                                    " public record again: records carry certificates now)")
            found = self._targets[peer] = (self.address(peer), certs)
        return found

    def call(self, peer: str, path: str, body: bytes, content_type: str, *,
             idempotent: bool = True) -> tuple[bytes, str]:
        url, certs = self._target(peer)
        return self.transport.request(peer, url, certs, path, body, content_type,
                                      idempotent=idempotent)

    def call_json(self, peer: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON service of ``peer``: the request object in, the answer object out (the
        peer's refusal raised as its class of :mod:`jukicore.errors`)."""
        answer, _ = self.call(peer, path, encode_json(body), JSON)
        return decode_json(answer, "answer")

    def send_packet(self, peer: str, packet: bytes) -> bytes:
        """Deliver a packet to ``peer``; its reply packet (empty when it has none)."""
        from jukicore.network.server import PACKET

        answer, _ = self.call(peer, "/v1/packets", packet, PACKET)
        return answer

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AgencyClient:
    """An agency calling the center or a prefecture for identity confirmation info.

    ``server``: the node's public record (``jukicore node public-key``: its id and
    certificate); ``url``: where it listens."""

    def __init__(self, identity: Any, server: dict[str, Any] | str | Path, url: str,
                 **policy: Any) -> None:
        import base64

        if not isinstance(server, dict):
            try:
                server = json.loads(read_regular(server, max_bytes=1 << 20))
            except (ValueError, RecursionError) as e:
                raise InvalidInputError(f"{server}: not a node's public record: {e}") from None
        try:
            self.server_id = check_node_id(server["node_id"])  # type: ignore[index]
            self._server_cert = base64.b64decode(server["certificate"],  # type: ignore[index]
                                                 validate=True)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(f"not a node's public record with a certificate: {e}"
                                    ) from None
        self.url = _check_url(url)
        self.agency = identity.agency
        self.transport = Transport(identity.certificate, identity.key, identity.agency,
                                   **policy)

    def _call(self, path: str, body: bytes, content_type: str) -> tuple[bytes, str]:
        return self.transport.request(self.server_id, self.url, [self._server_cert], path,
                                      body, content_type, idempotent=False)

    def confirm(self, purpose: str, *, code: str | int | None = None,
                four: dict[str, Any] | None = None, as_of: str | None = None,
                request_id: str | None = None) -> dict[str, Any]:
        """One query (``/v1/identity/confirm``): ``{"request_id", "rows"}``."""
        req: dict[str, Any] = {"purpose": purpose}
        for k, v in (("code", code), ("four", four), ("as_of", as_of),
                     ("request_id", request_id)):
            if v is not None:
                req[k] = v
        answer, _ = self._call("/v1/identity/confirm", encode_json(req), JSON)
        return decode_json(answer, "answer")

    def verify(self, table: Any, purpose: str, *, since: str | None = None,
               request_id: str | None = None) -> Any:
        """Bulk verification (``/v1/identity/verify``): the answer table."""
        import pyarrow as pa

        from jukicore.network.queries import ARROW_STREAM, arrow_bytes, read_arrow
        from jukicore.register.store import as_arrow_table

        t = as_arrow_table(table, "verification request")
        meta = {"purpose": purpose}
        if since is not None:
            meta["since"] = since
        if request_id is not None:
            meta["request_id"] = request_id
        t = t.replace_schema_metadata(meta)
        answer, _ = self._call("/v1/identity/verify", arrow_bytes(t), ARROW_STREAM)
        out: pa.Table = read_arrow(answer, "answer")
        return out

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> AgencyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
