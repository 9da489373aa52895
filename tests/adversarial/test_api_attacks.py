"""Hostile clients on a node's HTTP API, against a real `python -m ledgernode run` process
(tests/integration/procs.py's Cluster, one validator: it commits alone).

The node starts with a soft RLIMIT_NOFILE of NODE_NOFILE (1024, a common default), so
that a flood of IDLE connections is more than it has file descriptors for: before
ledgernode/api/server.py, such a flood stopped its API from accepting and had asyncio
log a traceback for every failed accept() (tens of thousands of lines a second). The
limits below make the node's header and keep-alive timeouts short, so a test sees them
act within seconds.

Every attack is bounded in count (IDLE + SLOW connections, MALFORMED_EACH requests of
each kind) and in time (OPEN_MAX_S, CLOSED_WITHIN_S), targets only 127.0.0.1, and closes
all its sockets at the end.
"""

from __future__ import annotations

import http.client
import json
import re
import resource
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.procs import Cluster, wait_until

NODE_NOFILE = 1_024  # the attacked node's soft descriptor limit
IDLE = 1_500  # idle connections: more than the node may open descriptors
SLOW = 100  # connections that send a request head a line at a time, never finishing it
SLOW_CLOSED = 20  # slow heads under the cap, each of which must get 408
DRIP_EVERY_S = 0.2
HEADER_TIMEOUT_MS = 1_500
LIMITS = {"header_timeout_ms": HEADER_TIMEOUT_MS, "keepalive_timeout_ms": 2_000,
          "body_max_bytes": 64 << 10}
OVER_LIMIT_BYTES = 8 << 20  # a body far over body_max_bytes, more than socket buffers hold
MALFORMED_EACH = 30
LOG_LINES_MAX = 100  # lines an attack may add to the node's log
OPEN_MAX_S = 20.0  # bounds opening the flood, whatever the node does
CONNECT_TIMEOUT_S = 2.0
CONNECT_FAILURES_MAX = 5  # the flood stops opening after this many failed connects
HEALTH_TIMEOUT_S = 10.0
CLOSED_WITHIN_S = 30.0  # generous bound on the node closing what it must close
OWN_NOFILE = IDLE + SLOW + 512  # what this test process needs itself


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Cluster]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OWN_NOFILE:
        # raise the hard limit (root may; the machines here run as root): no skipping
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, OWN_NOFILE))
        hard = OWN_NOFILE
    own = soft if soft == resource.RLIM_INFINITY or soft >= OWN_NOFILE else OWN_NOFILE
    c = Cluster(tmp_path, n=1, limits=LIMITS)
    # The node inherits this process's limit at start; the test keeps (or gets) more.
    resource.setrlimit(resource.RLIMIT_NOFILE, (NODE_NOFILE, hard))
    try:
        c.start(0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (own, hard))
    try:
        yield c
    finally:
        try:
            c.stop_all()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def log_text(c: Cluster) -> str:
    return (c.root / "node0" / "node.log").read_text(errors="replace")


def log_lines(c: Cluster) -> int:
    return log_text(c).count("\n")


def metric(c: Cluster, name: str, reason: str | None = None) -> int:
    with urllib.request.urlopen(c.api(0) + "/metrics", timeout=HEALTH_TIMEOUT_S) as resp:
        text = resp.read().decode()
    label = re.escape(f'{{reason="{reason}"}}') if reason is not None else ""
    found = re.search(rf"^{re.escape(name)}{label} ([0-9]+)$", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def api_address(c: Cluster) -> tuple[str, int]:
    return "127.0.0.1", c.api_ports[0]


def open_flood(c: Cluster, count: int, head: bytes = b"") -> list[socket.socket]:
    """Up to `count` connections (each sending `head`), bounded in time and failures."""
    socks: list[socket.socket] = []
    failures, deadline = 0, time.monotonic() + OPEN_MAX_S
    while len(socks) < count and failures < CONNECT_FAILURES_MAX and time.monotonic() < deadline:
        try:
            s = socket.create_connection(api_address(c), timeout=CONNECT_TIMEOUT_S)
        except OSError:
            failures += 1
            continue
        socks.append(s)
        if head:
            try:
                s.sendall(head)
            except OSError:
                pass
    return socks


def closed_by_node(s: socket.socket, got: dict[socket.socket, bytes]) -> bool:
    """Whether the node has closed `s` (reading whatever it sent into `got`)."""
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
            got[s] = got.get(s, b"") + data
    except BlockingIOError:
        return False
    except OSError:  # reset: an evicted connection
        return True


def drip(socks: list[socket.socket], i: int) -> None:
    for s in socks:
        try:
            s.send(f"X-Drip-{i}: 1\r\n".encode())
        except OSError:
            pass


def error_answer(raw: bytes) -> tuple[int, str, Any]:
    """(status, Content-Type, JSON body) of one raw answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    ctype = headers.get("content-type", "")
    return int(lines[0].split()[1]), ctype, json.loads(body) if ctype.startswith("application/json") else body


def raw_request(c: Cluster, data: bytes) -> bytes:
    with socket.create_connection(api_address(c), timeout=HEALTH_TIMEOUT_S) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


def test_a_flood_of_idle_and_slow_head_connections_leaves_the_api_answering(node: Cluster) -> None:
    """IDLE + SLOW connections against a node that may open NODE_NOFILE descriptors."""
    lines_before = log_lines(node)
    held: list[socket.socket] = []
    try:
        held += open_flood(node, IDLE)
        slow = open_flood(node, SLOW, b"POST /v1/records HTTP/1.1\r\nHost: x\r\n")
        held += slow
        # more than the node may hold: it has met the flood once it evicts at its cap
        wait_until("the node to evict at its connection cap",
                   lambda: (metric(node, "ledgernode_api_connections_closed_total", "evicted") > 0, None))
        added = log_lines(node) - lines_before
        assert added < LOG_LINES_MAX, (f"the flood added {added} lines to the node's log",
                                       log_text(node)[-3000:])
        status, doc = node.request(0, "GET", "/healthz", timeout=HEALTH_TIMEOUT_S)
        assert (status, doc) == (200, {"ok": True})
        status, doc = node.request(0, "POST", "/v1/records?wait=1", node.record("during-flood"),
                                   "application/msgpack", timeout=HEALTH_TIMEOUT_S * 3)
        assert status == 200 and doc["status"] == "committed", doc
        assert len(held) == IDLE + SLOW, "the node stopped accepting connections"

        # Everything the flood holds, the node closes: evicted at its cap, or at the header timeout.
        got: dict[socket.socket, bytes] = {}
        still = list(held)
        deadline, i = time.monotonic() + CLOSED_WITHIN_S, 0
        while still and time.monotonic() < deadline:
            drip([s for s in still if s in slow], i)
            still = [s for s in still if not closed_by_node(s, got)]
            i += 1
            time.sleep(DRIP_EVERY_S)
        assert not still, f"{len(still)} of {len(held)} flood connections still open after {CLOSED_WITHIN_S} s"
        for raw in got.values():  # whatever was answered is the 408 JSON error
            status, _, body = error_answer(raw)
            assert status == 408 and body["error"]["code"] == "header_timeout", raw[:300]

        assert metric(node, "ledgernode_api_connections_closed_total", "evicted") > 0
        assert metric(node, "ledgernode_api_connections_closed_total", "header_timeout") > 0
        assert metric(node, "ledgernode_accept_errors_total") == 0
        assert node.request(0, "GET", "/healthz", timeout=HEALTH_TIMEOUT_S)[0] == 200
    finally:
        for s in held:
            s.close()
    added = log_lines(node) - lines_before
    assert added < LOG_LINES_MAX, (added, log_text(node)[-3000:])
    assert "Traceback" not in log_text(node)


def test_slow_heads_get_408_and_silent_connections_are_closed(node: Cluster) -> None:
    """Under the cap: each slowloris connection is answered 408 header_timeout JSON."""
    slow = open_flood(node, SLOW_CLOSED, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    silent = open_flood(node, SLOW_CLOSED)
    try:
        t0 = time.monotonic()
        got: dict[socket.socket, bytes] = {}
        still, i = slow + silent, 0
        while still and time.monotonic() - t0 < CLOSED_WITHIN_S:
            drip([s for s in still if s in slow], i)
            still = [s for s in still if not closed_by_node(s, got)]
            i += 1
            time.sleep(DRIP_EVERY_S)
        assert not still, f"{len(still)} slow or silent connections outlived {CLOSED_WITHIN_S} s"
        assert time.monotonic() - t0 >= HEADER_TIMEOUT_MS / 1000 * 0.9  # closed at, not before, the timeout
        for s in slow:
            status, ctype, body = error_answer(got.get(s, b"HTTP/1.1 000 none\r\n\r\n"))
            assert status == 408 and ctype.startswith("application/json"), (status, body)
            assert body["error"]["code"] == "header_timeout"
        assert not any(s in got for s in silent)  # nothing to answer: just closed
        assert metric(node, "ledgernode_api_rejected_total", "header_timeout") == SLOW_CLOSED
    finally:
        for s in slow + silent:
            s.close()


class SmallBufferConnection(http.client.HTTPConnection):
    """http.client with a small send buffer, as on a slow link: the body cannot hide in
    the kernel while the node answers."""

    def connect(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def test_clients_that_send_an_over_limit_body_before_reading_get_the_413(node: Cluster) -> None:
    body = b"\0" * OVER_LIMIT_BYTES
    req = urllib.request.Request(node.api(0) + "/v1/records", data=body,
                                 headers={"Content-Type": "application/msgpack"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=HEALTH_TIMEOUT_S * 3)
    assert err.value.code == 413
    assert json.loads(err.value.read())["error"]["code"] == "body_too_large"

    conn = SmallBufferConnection("127.0.0.1", node.api_ports[0], timeout=HEALTH_TIMEOUT_S * 3)
    try:
        conn.request("POST", "/v1/records", body=body, headers={"Content-Type": "application/msgpack"})
        resp = conn.getresponse()
        assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "body_too_large"
    finally:
        conn.close()

    # Expect: 100-continue with an over-limit length: refused before the body is invited.
    raw = raw_request(node, b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % OVER_LIMIT_BYTES)
    assert raw.startswith(b"HTTP/1.1 413 "), raw[:200]
    status, _, doc = error_answer(raw)
    assert doc["error"]["code"] == "body_too_large"
    assert metric(node, "ledgernode_api_rejected_total", "body_too_large") == 3
    assert node.request(0, "GET", "/healthz")[0] == 200


MALFORMED = {  # kind -> (request, error code)
    # 76 bytes: a NUL in the path
    "nul_in_path": (b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe/1.0\r\nAccept: */*;q=1\r\n\r\n",
                    "bad_request"),
    "bad_method": (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"),
    "header_without_colon": (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", "bad_request"),
    "bad_content_length": (b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "bad_request"),
    "unknown_version": (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", "bad_request"),
    "tls_on_http": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, "bad_request"),
    "bad_chunk_size": (b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "bad_request"),
    "bad_gzip_body": (b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                      b"Content-Encoding: gzip\r\nContent-Length: 5\r\n\r\nabcde", "bad_body"),
}


def test_malformed_requests_get_json_errors_are_counted_and_do_not_flood_the_log(node: Cluster) -> None:
    assert len(MALFORMED["nul_in_path"][0]) == 76
    lines_before = log_lines(node)
    for kind, (request, code) in MALFORMED.items():
        for _ in range(MALFORMED_EACH):
            status, ctype, body = error_answer(raw_request(node, request))
            assert status == 400 and ctype.startswith("application/json"), (kind, status, ctype, body)
            assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], kind
    added = log_text(node).splitlines()[lines_before:]
    assert len(added) <= 3, added  # one line per cause per interval at most
    assert "Traceback" not in log_text(node)
    bad_request = sum(1 for _, code in MALFORMED.values() if code == "bad_request") * MALFORMED_EACH
    assert metric(node, "ledgernode_api_rejected_total", "bad_request") == bad_request
    assert metric(node, "ledgernode_api_rejected_total", "bad_body") == MALFORMED_EACH
    assert node.request(0, "GET", "/healthz")[0] == 200
