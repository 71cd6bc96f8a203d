"""The online network: nodes' servers over mutual TLS 1.3 on loopback, the client, push."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from netkit import MUNI, PASSWORD, PREF, Network, apply_day, serving

from jukicore.errors import (
    InvalidInputError,
    MisaddressedPacketError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    UntrustedSenderError,
)
from jukicore.identity import open_identity_store
from jukicore.network.client import NodeClient, peer_addresses, set_peer_address
from jukicore.network.crypto import NodeKeys
from jukicore.network.node import CENTER, Node, init_node
from jukicore.network.push import push_changes
from jukicore.network.server import PACKET, NodeServer
from jukicore.network.sync import export_changes, sync_status
from jukicore.network.tls import client_context
from jukicore.network.x509 import node_certificate


def _held(node: Node) -> tuple[int, str]:
    """What an identity store holds: its count and content digest."""
    with open_identity_store(node.store_target()) as st:
        return st.count(), st.content_digest()


def _last(net: Network) -> int:
    return int(sync_status(net.muni)["outbox_last_seq"])


def _raw(node: Node, port: int, request: bytes, *, keys: NodeKeys | None = None,
         role: str = "municipality", server: Node | None = None,
         pause_after: int | None = None, pause: float = 0.0) -> bytes:
    """One HTTP/1.1 exchange over mutual TLS, written by hand (a client that misbehaves)."""
    own = keys or node.current_keys(PASSWORD)
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = (node.certificate(own, node.valid_from()) if keys is None else
            node_certificate(own, role).public_bytes(Encoding.DER))
    assert server is not None
    ctx = client_context(cert, own.signing, _own_cert(server))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            ctx.wrap_socket(raw) as s:
        if pause_after is None:
            s.sendall(request)
        else:
            s.sendall(request[:pause_after])
            time.sleep(pause)
            with contextlib.suppress(OSError):
                s.sendall(request[pause_after:])
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ssl.SSLError:
                raise  # (TLS 1.3: a refused client certificate is told after the handshake)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
        return out


def _refused(node: Node, port: int, **kw: Any) -> bool:
    """Whether the server refuses ``node`` in the TLS handshake: an alert, or the
    connection closed without a byte of HTTP (TLS 1.3 tells the client after its part)."""
    try:
        return _raw(node, port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", **kw) == b""
    except ssl.SSLError:
        return True


def _own_cert(node: Node) -> list[bytes]:
    return [node.certificate(node.current_keys(PASSWORD), node.valid_from())]


# --------------------------------------------------------------------- the handshake


def test_a_night_pushed_over_mutual_tls_is_applied_once_and_acknowledged(
        network: Network) -> None:
    apply_day(network, 40, seed=1)
    last = _last(network)
    with serving(network.pref, network.center) as servers:
        from netkit import point

        point(network.muni, servers)
        with NodeClient(network.muni, PASSWORD) as c:
            first = push_changes(network.muni, c, password=PASSWORD)
            held = _held(network.center)
            again = push_changes(network.muni, c, password=PASSWORD)
    assert {r: v["status"] for r, v in first.items()} == {PREF: "sent", CENTER: "sent"}
    assert all(v["acked_seq"] == last for v in first.values())
    assert {v["status"] for v in again.values()} == {"up-to-date"}
    assert _held(network.center) == held
    assert sync_status(network.muni)["pending"] == {PREF: 0, CENTER: 0}
    # the packets went through the recipients' inboxes into their archives
    assert not list(network.center.inbox.iterdir())
    assert not list(network.muni.inbox.iterdir())


def test_a_packet_sent_twice_is_answered_with_the_same_acknowledgement(
        network: Network) -> None:
    apply_day(network, 20, seed=2)
    packet = export_changes(network.muni, CENTER, password=PASSWORD)
    assert packet is not None
    with serving(network.center) as servers:
        from netkit import point

        point(network.muni, servers)
        with NodeClient(network.muni, PASSWORD) as c:
            one = c.send_packet(CENTER, packet.read_bytes())
            held = _held(network.center)
            two = c.send_packet(CENTER, packet.read_bytes())
    from jukicore.network.packet import Packet

    h1, h2 = Packet.from_bytes(one).header, Packet.from_bytes(two).header
    assert (h1.kind, h1.seq_last) == (h2.kind, h2.seq_last) == ("ack", _last(network))
    assert _held(network.center) == held


def test_a_peer_without_a_trusted_certificate_is_refused_at_the_handshake(
        network: Network, tmp_path: Path) -> None:
    stranger = init_node(tmp_path / "stranger", "131059")  # another municipality
    stranger_keys = stranger.current_keys(PASSWORD)
    with serving(network.center) as servers:
        port = servers[CENTER].port
        # a node the center does not trust, presenting its own certificate
        assert _refused(stranger, port, server=network.center)
        # a certificate naming a trusted node, but made with another key
        assert _refused(network.muni, port, keys=NodeKeys.generate(MUNI),
                        server=network.center)
        # no client certificate at all
        plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        plain.check_hostname, plain.verify_mode = False, ssl.CERT_NONE
        with pytest.raises((ssl.SSLError, httpx.HTTPError, OSError)):
            httpx.get(f"https://127.0.0.1:{port}/v1/health", verify=plain).raise_for_status()
        # TLS 1.2 is not spoken
        old = client_context(stranger.certificate(stranger_keys, stranger.valid_from()),
                             stranger_keys.signing, _own_cert(network.center))
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLError):
            old.wrap_socket(raw).do_handshake()
        # the trusted municipality gets through
        reply = _raw(network.muni, port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
                     server=network.center)
    assert reply.startswith(b"HTTP/1.1 200")
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["caller"] == f"node:{MUNI}"


def test_a_client_accepts_only_the_peer_it_calls(network: Network) -> None:
    """The prefecture's server (trusted by the municipality) cannot answer for the center."""
    with serving(network.pref, network.center) as servers:
        set_peer_address(network.muni, CENTER, f"https://127.0.0.1:{servers[PREF].port}")
        with NodeClient(network.muni, PASSWORD, retry_for=0) as c, \
                pytest.raises(NetworkError):
            c.call_json(CENTER, "/v1/health", {})


def test_a_revoked_peer_is_refused_from_its_next_request(network: Network) -> None:
    with serving(network.center) as servers:
        from netkit import point

        point(network.muni, servers)
        with NodeClient(network.muni, PASSWORD, retry_for=0) as c:
            assert c.call_json(CENTER, "/v1/health", {})["status"] == "ok"
            trust = network.center.trust()
            trust.revoke(MUNI, trust.current(MUNI).signing_key_id)
            network.center.save_trust(trust)
            time.sleep(1.1)  # the server rereads its trust store at most once a second
            with pytest.raises(UntrustedSenderError):
                c.call_json(CENTER, "/v1/health", {})


# ------------------------------------------------------------------------ refusals


def test_a_packet_from_another_sender_than_the_caller_is_refused(network: Network) -> None:
    """The prefecture relays the municipality's packet: the center refuses it (the TLS
    peer must be the packet's signer), and nothing changes."""
    apply_day(network, 10, seed=3)
    packet = export_changes(network.muni, CENTER, password=PASSWORD)
    assert packet is not None
    held = _held(network.center)
    with serving(network.center) as servers:
        from netkit import point

        point(network.pref, servers)
        with NodeClient(network.pref, PASSWORD) as c, pytest.raises(UntrustedSenderError):
            c.send_packet(CENTER, packet.read_bytes())
    assert _held(network.center) == held
    assert not list(network.center.inbox.iterdir())


def test_a_packet_for_another_node_is_refused(network: Network) -> None:
    apply_day(network, 10, seed=4)
    packet = export_changes(network.muni, PREF, password=PASSWORD)
    assert packet is not None
    with serving(network.center) as servers:
        set_peer_address(network.muni, PREF, f"https://127.0.0.1:{servers[CENTER].port}")
        # the municipality's client pins the prefecture's certificate: it will not even
        # talk to the center's server under the prefecture's name
        with NodeClient(network.muni, PASSWORD, retry_for=0) as c, pytest.raises(NetworkError):
            c.send_packet(PREF, packet.read_bytes())
        # sent to the center, addressed to the prefecture: refused by the center
        set_peer_address(network.muni, CENTER, f"https://127.0.0.1:{servers[CENTER].port}")
        held = _held(network.center)
        with NodeClient(network.muni, PASSWORD) as c, pytest.raises(MisaddressedPacketError):
            c.call(CENTER, "/v1/packets", packet.read_bytes(), PACKET)
    assert _held(network.center) == held


def test_garbage_and_wrong_content_types_are_refused_and_change_nothing(
        network: Network) -> None:
    held = _held(network.center)
    with serving(network.center) as servers:
        from netkit import point

        point(network.muni, servers)
        with NodeClient(network.muni, PASSWORD) as c:
            for body, kind in ((b"", PACKET), (b"\x00" * 100, PACKET),
                               (b"JKPK" + b"\xff" * 60, PACKET),
                               (b"{}", "application/json")):
                with pytest.raises((InvalidInputError, ValueError)):
                    c.call(CENTER, "/v1/packets", body, kind)
            # a service the center does not offer, and one the caller may not use
            with pytest.raises(NotFoundError):
                c.call_json(CENTER, "/v1/no-such-service", {})
            with pytest.raises(PermissionDeniedError):
                c.call_json(CENTER, "/v1/identity/confirm", {"purpose": "x", "code": "1"})
    assert _held(network.center) == held
    assert not list(network.center.inbox.iterdir())


def test_an_oversized_body_is_refused_before_it_is_read(network: Network) -> None:
    held = _held(network.center)
    with serving(network.center) as servers:
        port = servers[CENTER].port
        huge = 3 << 30
        # announced too large: 413 at once, though no byte of the body follows
        reply = _raw(network.muni, port, (
            f"POST /v1/packets HTTP/1.1\r\nHost: x\r\nContent-Type: {PACKET}\r\n"
            f"Content-Length: {huge}\r\n\r\n").encode(), server=network.center)
        assert reply.startswith(b"HTTP/1.1 413")
        assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"] == "InvalidInputError"
        # chunked, without a length, passing the limit of a JSON service
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))
        reply = _raw(network.muni, port, (
            b"POST /v1/health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"), server=network.center)
        assert reply.split(b"\r\n")[0] in (b"HTTP/1.1 413 Request Entity Too Large",
                                           b"HTTP/1.1 413 Content Too Large",
                                           b"HTTP/1.1 405 Method Not Allowed")
    assert _held(network.center) == held
    assert not list(network.center.inbox.iterdir())


def test_a_slow_client_times_out_and_does_not_hold_the_server(network: Network) -> None:
    with serving(network.center, body_timeout=1.0) as servers:
        from netkit import point

        port = servers[CENTER].port
        point(network.muni, servers)
        result: dict[str, bytes] = {}

        def slow() -> None:
            body = b"x" * 1000
            result["slow"] = _raw(network.muni, port, (
                f"POST /v1/packets HTTP/1.1\r\nHost: x\r\nContent-Type: {PACKET}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body,
                server=network.center, pause_after=150, pause=3.0)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        # meanwhile, others are answered
        with NodeClient(network.muni, PASSWORD) as c:
            for _ in range(5):
                assert c.call_json(CENTER, "/v1/health", {})["status"] == "ok"
        t.join(30)
    assert result["slow"].startswith(b"HTTP/1.1 408")


def test_a_connection_that_sends_no_request_is_closed(network: Network) -> None:
    """Idle or trickling connections of a trusted peer do not hold the server: the first
    request's headers must arrive within the timeout of the handshake."""
    with serving(network.center, body_timeout=1.0) as servers:
        port = servers[CENTER].port
        t = time.monotonic()
        assert _raw(network.muni, port, b"", server=network.center) == b""  # nothing sent
        idle = time.monotonic() - t
        t = time.monotonic()
        trickle = _raw(network.muni, port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
                       server=network.center, pause_after=10, pause=3.0)
        assert trickle == b""
    assert 0.9 <= idle < 10


def test_many_concurrent_clients_are_all_answered(network: Network) -> None:
    with serving(network.center, max_concurrency=8) as servers:
        from netkit import point

        point(network.muni, servers)
        answers: list[str] = []
        failures: list[BaseException] = []

        def worker() -> None:
            try:
                with NodeClient(network.muni, PASSWORD, retry_for=30, backoff=0.05) as c:
                    for _ in range(10):
                        answers.append(c.call_json(CENTER, "/v1/health", {})["status"])
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not failures
    assert answers == ["ok"] * 240


# --------------------------------------------------------------- store and forward


class FakeClock:
    """Simulated time: a sleep moves it on at once; ``at`` runs when it passes a moment."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events: list[tuple[float, Any]] = []
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for when, action in list(self.events):
            if self.now >= when:
                self.events.remove((when, action))
                action()


def test_an_84_minute_outage_the_municipality_keeps_working_and_catches_up_in_order(
        network: Network) -> None:
    """The center is down for 84 minutes (simulated): the municipality registers its day,
    the push keeps trying with backoff, and when the center is back every entry arrives
    once, in order; the prefecture, up all along, got everything at once."""
    from netkit import free_port

    apply_day(network, 30, seed=5)
    port = free_port()
    clock = FakeClock()
    holder: dict[str, Any] = {}

    def center_back() -> None:
        from jukicore.network.server import serve_in_thread

        holder["server"] = NodeServer(network.center, PASSWORD, port=port)
        holder["thread"] = serve_in_thread(holder["server"])

    with serving(network.pref) as servers:
        from netkit import point

        point(network.muni, servers)
        set_peer_address(network.muni, CENTER, f"https://127.0.0.1:{port}")  # down
        # a first push during the outage: the prefecture gets it, the center is reported
        with NodeClient(network.muni, PASSWORD, retry_for=60, clock=clock,
                        sleep=clock.sleep) as c:
            first = push_changes(network.muni, c, password=PASSWORD)
        assert first[PREF]["status"] == "sent" and first[CENTER]["status"] == "failed"
        held_before = _held(network.center)
        # the day goes on
        apply_day(network, 30, seed=6, day=dt.date(2024, 6, 4))
        last = _last(network)
        # the night's push waits out the outage: the center comes back at minute 84
        clock.events.append((clock.now + 84 * 60, center_back))
        try:
            with NodeClient(network.muni, PASSWORD, retry_for=2 * 3600, clock=clock,
                            sleep=clock.sleep, max_backoff=300) as c:
                pushed = push_changes(network.muni, c, password=PASSWORD)
        finally:
            if "server" in holder:
                holder["server"].stop()
                holder["thread"].join(60)
    assert held_before[0] == 0
    assert pushed[CENTER]["status"] == "sent" and pushed[CENTER]["acked_seq"] == last
    assert pushed[PREF]["acked_seq"] == last
    assert clock.now >= 84 * 60
    assert max(clock.sleeps) <= 300  # the backoff is capped
    # every entry once: the center holds what the prefecture holds
    with open_identity_store(network.center.store_target()) as c_st, \
            open_identity_store(network.pref.store_target()) as p_st:
        assert c_st.last_seq(MUNI) == p_st.last_seq(MUNI) == last
        assert c_st.count() == p_st.count()


def test_a_push_that_cannot_reach_a_recipient_loses_nothing(network: Network) -> None:
    from netkit import free_port

    apply_day(network, 20, seed=7)
    set_peer_address(network.muni, CENTER, f"https://127.0.0.1:{free_port()}")
    set_peer_address(network.muni, PREF, f"https://127.0.0.1:{free_port()}")
    clock = FakeClock()
    with NodeClient(network.muni, PASSWORD, retry_for=5, clock=clock, sleep=clock.sleep) as c:
        out = push_changes(network.muni, c, password=PASSWORD)
    assert {v["status"] for v in out.values()} == {"failed"}
    assert all("no answer after" in v["error"] for v in out.values())
    assert sync_status(network.muni)["pending"] == {PREF: _last(network),
                                                    CENTER: _last(network)}


# --------------------------------------------------------------------- operations


def test_health_and_metrics_on_the_loopback_operations_port(network: Network) -> None:
    apply_day(network, 10, seed=8)
    with serving(network.muni, network.center, ops_port=0) as servers:
        from netkit import point

        point(network.muni, servers)
        with NodeClient(network.muni, PASSWORD) as c:
            c.call_json(CENTER, "/v1/health", {})
            with pytest.raises(PermissionDeniedError):
                c.call_json(CENTER, "/v1/identity/confirm", {})
        ops = servers[CENTER].ops_port
        health = httpx.get(f"http://127.0.0.1:{ops}/health")
        metrics = httpx.get(f"http://127.0.0.1:{ops}/metrics").text
        muni_metrics = httpx.get(
            f"http://127.0.0.1:{servers[MUNI].ops_port}/metrics").text
    assert health.status_code == 200 and health.json()["node"] == CENTER
    assert 'jukicore_requests_total{route="health",status="200"} 1.0' in metrics
    assert 'jukicore_requests_total{route="identity.confirm",status="403"} 1.0' in metrics
    assert "jukicore_request_seconds_bucket" in metrics
    pending = _last(network)
    assert f'jukicore_sync_pending_entries{{recipient="{CENTER}"}} {pending:.1f}' in muni_metrics
    assert "jukicore_sync_lag_seconds" in muni_metrics


def test_the_operations_port_listens_on_loopback_only(network: Network) -> None:
    srv = NodeServer(network.center, PASSWORD, host="127.0.0.1", port=0, ops_port=0)
    cfg = srv._config(srv.ops_app(), 0, False)
    assert cfg.host == "127.0.0.1"
    srv2 = NodeServer(network.center, PASSWORD, host="0.0.0.0", port=0, ops_port=0)
    assert srv2._config(srv2.ops_app(), 0, False).host == "127.0.0.1"


def test_each_request_is_logged_with_its_fields(network: Network,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="jukicore.network.server"), \
            serving(network.center) as servers:
        from netkit import point

        point(network.muni, servers)
        with NodeClient(network.muni, PASSWORD) as c:
            c.call_json(CENTER, "/v1/health", {})
    recs = [r for r in caplog.records if getattr(r, "step", None) == "request"]
    assert recs
    r = recs[-1]
    assert (r.peer, r.route, r.status) == (f"node:{MUNI}", "health", 200)  # type: ignore[attr-defined]
    assert r.seconds >= 0  # type: ignore[attr-defined]


# ----------------------------------------------------------------- address book


def test_the_address_book_takes_only_trusted_peers_and_https_urls(network: Network) -> None:
    before = peer_addresses(network.muni)
    for peer, url in ((CENTER, "http://127.0.0.1:1"), (CENTER, "https://h:1/path"),
                      (CENTER, "https://u:p@h:1"), (CENTER, "https://h:99999"),
                      ("131059", "https://127.0.0.1:1"), ("../x", "https://h:1")):
        with pytest.raises((InvalidInputError, NotFoundError)):
            set_peer_address(network.muni, peer, url)
    assert peer_addresses(network.muni) == before
    set_peer_address(network.muni, CENTER, "https://127.0.0.1:8443/")
    assert peer_addresses(network.muni) == {**before, CENTER: "https://127.0.0.1:8443"}
    with NodeClient(network.muni, PASSWORD) as c, pytest.raises(NotFoundError):
        c.call_json(PREF, "/v1/health", {})


def test_a_trust_store_record_with_someone_elses_certificate_is_refused(
        network: Network, tmp_path: Path) -> None:
    import base64

    other = init_node(tmp_path / "other", "131059")
    record = network.muni.public_record(PASSWORD)
    record["certificate"] = other.public_record(PASSWORD)["certificate"]
    trust = network.center.trust()
    before = trust.to_json()
    with pytest.raises(InvalidInputError):
        trust.add_record(record)
    record["certificate"] = base64.b64encode(b"not a certificate").decode()
    with pytest.raises(InvalidInputError):
        trust.add_record(record)
    assert trust.to_json() == before


def test_a_trust_store_made_before_certificates_takes_them_from_the_same_record(
        network: Network) -> None:
    record = network.muni.public_record(PASSWORD)
    without = {k: v for k, v in record.items() if k != "certificate"}
    trust = network.center.trust()
    doc = trust.to_json()
    for k in doc["peers"][MUNI]["keys"]:
        k["certificate"] = None
    from jukicore.network.crypto import TrustStore

    old = TrustStore.from_json(doc)
    assert old.certificates(MUNI) == []
    from jukicore.errors import ConflictError

    with pytest.raises(ConflictError):
        old.add_record(without)  # the same keys again, and nothing new
    old.add_record(record)
    assert old.certificates(MUNI) == [base64_der(record)]


def base64_der(record: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode(record["certificate"])
