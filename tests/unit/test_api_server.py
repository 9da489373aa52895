"""How the API is served (ledgernode.api.server, with api/capacity.py, api/connections.py
and api/listening.py): real sockets on 127.0.0.1 against the app of
ledgernode.api.make_app over the fake node, served by serve_api.

Timeouts are short here (LIMITS below); the waits that bound them are long (WAIT_S), so a
loaded machine makes a test slower, never wrong.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from ledgernode.api import REJECTED, make_app
from ledgernode.api import connections as api_connections, listening as api_listening
from ledgernode.api.capacity import API_CONNECTIONS_FLOOR, FD_RESERVE, connections_max
from ledgernode.api.connections import HEAD_MAX_BYTES
from ledgernode.api.errors import BODY_DRAIN_MAX_BYTES
from ledgernode.api.listening import ACCEPT_ERROR_MESSAGE, LoopErrors
from ledgernode.api.server import ApiServer, serve_api
from ledgernode.config import Limits
from tests.fixtures import until
from tests.unit.api_fake import LIMITS as FAKE_LIMITS, FakeNode, make_net, notarize

WAIT_S = 30.0  # bounds a wait for something that must happen; never an expected duration
LIMITS = dataclasses.replace(FAKE_LIMITS, header_timeout_ms=600, keepalive_timeout_ms=900,
                             api_connections_max=64)
MSGPACK = "application/msgpack"


@asynccontextmanager
async def served(limits: Limits = LIMITS, node: FakeNode | None = None,
                 body_timeout_s: float = 10.0) -> AsyncIterator[ApiServer]:
    app = make_app(node or FakeNode(make_net()), limits, body_timeout_s=body_timeout_s)
    server = await serve_api(app, ("127.0.0.1", 0), limits)
    try:
        yield server
    finally:
        async with asyncio.timeout(WAIT_S):  # a stop that hangs fails the test, never the run
            await server.stop()


def rejected(server: ApiServer) -> Counter[str]:
    return server.runner.app[REJECTED]


async def connect(server: ApiServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(WAIT_S):
        return await asyncio.open_connection("127.0.0.1", server.port)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (a reset after an answer counts as the end)."""
    out = b""
    try:
        async with asyncio.timeout(WAIT_S):
            while chunk := await reader.read(65536):
                out += chunk
    except ConnectionResetError:
        pass
    return out


def answer(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def assert_error(raw: bytes, status: int, code: str) -> dict[str, str]:
    got, headers, body = answer(raw)
    assert got == status, raw[:300]
    assert headers["content-type"].startswith("application/json"), headers
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body
    return headers


GET_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def one_answer(reader: asyncio.StreamReader) -> tuple[int, Any]:
    """One keep-alive answer with a Content-Length body."""
    async with asyncio.timeout(WAIT_S):
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers, _ = answer(head)
        body = await reader.readexactly(int(headers["content-length"]))
    return status, json.loads(body)


# -- the cap and its default ----------------------------------------------------------


def test_connections_max_is_the_soft_fd_limit_minus_the_reserve_or_the_config() -> None:
    assert FD_RESERVE == 1_000 + 2 * 256 + 128 + 3 * 64
    assert connections_max(Limits(), nofile_soft=20_000) == 20_000 - FD_RESERVE
    assert connections_max(Limits(), nofile_soft=1_024) == API_CONNECTIONS_FLOOR
    assert connections_max(Limits(api_connections_max=77), nofile_soft=20_000) == 77
    assert Limits().api_connections_max == 0  # derived unless configured
    assert Limits().header_timeout_ms == 10_000 and Limits().keepalive_timeout_ms == 30_000


async def test_serves_the_app_and_reports_its_connections_in_metrics() -> None:
    async with served() as server:
        status, doc = await asyncio.to_thread(
            lambda: _urlopen(f"http://127.0.0.1:{server.port}/healthz"))
        assert (status, doc) == (200, {"ok": True})
        text = server.render_metrics()
        assert "ledgernode_api_connections_max 64" in text
        for reason in api_connections.CLOSE_REASONS:
            assert f'ledgernode_api_connections_closed_total{{reason="{reason}"}} 0' in text
        assert "ledgernode_accept_errors_total 0" in text


def _urlopen(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_at_the_cap_the_longest_idle_connection_makes_room() -> None:
    async with served(dataclasses.replace(LIMITS, api_connections_max=4,
                                          header_timeout_ms=60_000)) as server:
        idle = [await connect(server) for _ in range(4)]
        await until(lambda: server.connections == 4, "four open connections")
        reader, writer = await connect(server)
        writer.write(GET_HEALTH)
        assert await one_answer(reader) == (200, {"ok": True})
        assert await read_all(idle[0][0]) == b""  # the oldest was closed to admit the new one
        assert server.closed["evicted"] == 1 and server.connections == 4
        for r, w in idle[1:]:  # the others are still served
            w.write(GET_HEALTH)
            assert await one_answer(r) == (200, {"ok": True})
            w.close()
        writer.close()


async def test_at_the_cap_with_every_connection_busy_a_new_one_gets_503() -> None:
    async with served(dataclasses.replace(LIMITS, api_connections_max=2)) as server:
        busy = []
        for _ in range(2):  # each holds a handler: a body that has not arrived yet
            r, w = await connect(server)
            w.write(b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                    b"Content-Length: 100\r\n\r\n\x92")
            busy.append((r, w))
        await until(lambda: server.connections == 2 and not server.pool.idle, "two busy connections")
        reader, writer = await connect(server)
        headers = assert_error(await read_all(reader), 503, "too_many_connections")
        assert headers["retry-after"] == "1" and headers["connection"] == "close"
        assert server.closed["refused"] == 1 and rejected(server)["too_many_connections"] == 1
        writer.close()
        for _, w in busy:
            w.close()


# -- time bounds -------------------------------------------------------------------


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout() -> None:
    async with served() as server:
        t0 = time.monotonic()
        reader, writer = await connect(server)
        await until(lambda: server.connections == 1, "the connection to be counted")
        assert await read_all(reader) == b""
        assert time.monotonic() - t0 >= LIMITS.header_timeout_ms / 1000 * 0.9
        assert server.closed["header_timeout"] == 1 and server.connections == 0
        writer.close()


DRIP_EVERY_S = 0.1  # a slow client's pace: one header line this often until it is answered


async def _drip_until_answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send one more header line whenever the server has said nothing for DRIP_EVERY_S; return
    its answer once it comes (up to the close), within WAIT_S."""
    out, drips = b"", 0
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), DRIP_EVERY_S)
            except TimeoutError:
                writer.write(f"X-Drip-{drips}: 1\r\n".encode())
                drips += 1
                continue
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk


async def test_a_slowloris_head_gets_408_header_timeout() -> None:
    async with served() as server:
        reader, writer = await connect(server)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        t0 = time.monotonic()
        raw = await _drip_until_answered(reader, writer)
        assert_error(raw, 408, "header_timeout")
        assert time.monotonic() - t0 < WAIT_S
        assert server.closed["header_timeout"] == 1 and rejected(server)["header_timeout"] == 1
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() -> None:
    async with served() as server:
        reader, writer = await connect(server)
        writer.write(GET_HEALTH)
        assert await one_answer(reader) == (200, {"ok": True})
        # A witness opened now that sends nothing is closed at the head timeout, by the
        # server's own clock; the kept-alive connection, idle as long, must still serve.
        witness_reader, witness_writer = await connect(server)
        assert await read_all(witness_reader) == b""
        witness_writer.close()
        writer.write(GET_HEALTH)
        assert await one_answer(reader) == (200, {"ok": True})
        t0 = time.monotonic()
        assert await read_all(reader) == b""
        assert time.monotonic() - t0 >= LIMITS.keepalive_timeout_ms / 1000 * 0.9
        assert server.closed["keepalive_timeout"] == 1 and server.closed["header_timeout"] == 1
        writer.close()


async def test_a_slow_head_after_a_kept_alive_request_gets_the_header_timeout() -> None:
    async with served(dataclasses.replace(LIMITS, keepalive_timeout_ms=60_000)) as server:
        reader, writer = await connect(server)
        writer.write(GET_HEALTH)
        assert await one_answer(reader) == (200, {"ok": True})
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ...and never the blank line
        assert_error(await read_all(reader), 408, "header_timeout")
        writer.close()


async def test_a_head_over_the_size_limit_gets_431() -> None:
    async with served(dataclasses.replace(LIMITS, header_timeout_ms=60_000)) as server:
        reader, writer = await connect(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Filler: " + b"a" * 4000 + b"\r\n"
        try:
            for _ in range(HEAD_MAX_BYTES // len(line) + 2):
                writer.write(line)
                await writer.drain()
                if server.closed["header_too_large"]:
                    break  # answered: the rest would only be refused
        except ConnectionError:
            pass
        assert_error(await read_all(reader), 431, "header_too_large")
        assert server.closed["header_too_large"] == 1
        writer.close()


async def test_a_client_that_never_reads_its_answer_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_connections, "SEND_TIMEOUT_MS", 300)
    async with served(dataclasses.replace(LIMITS, header_timeout_ms=60_000)) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        for _ in range(200):  # pipelined, never read: the answers pile up unsent
            writer.write(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: server.closed["send_timeout"] == 1, "the stuck answer to be abandoned")
        await until(lambda: server.connections == 0, "the connection to close")
        writer.close()


async def test_a_closing_connection_whose_last_answer_is_not_read_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answered with Connection: close, the answer stuck unsent: the descriptor is freed
    after SEND_TIMEOUT_MS, not when (if ever) the client reads."""
    monkeypatch.setattr(api_connections, "SEND_TIMEOUT_MS", 300)
    async with served(dataclasses.replace(LIMITS, header_timeout_ms=60_000)) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        await until(lambda: server.connections == 1, "the connection to open")
        [conn] = server.pool.open
        assert conn.transport is not None
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.sendall(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await until(lambda: server.closed["send_timeout"] == 1, "the unread answer to be dropped")
        await until(lambda: not server.runner.server.connections, "the connection to close")
        sock.close()


# -- what aiohttp would answer itself -------------------------------------------------


async def test_malformed_http_gets_json_400_one_log_line_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with served() as server:
        with caplog.at_level(logging.DEBUG):
            for _ in range(20):
                reader, writer = await connect(server)
                writer.write(b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n")  # a NUL in the path
                assert_error(await read_all(reader), 400, "bad_request")  # and closed
                writer.close()
        assert rejected(server)["bad_request"] == 20
        mine = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert len(mine) == 1, [r.getMessage() for r in mine]
        assert "malformed HTTP request" in mine[0].getMessage() and not mine[0].exc_info
        assert "\n" not in mine[0].getMessage()


async def test_expect_100_continue_over_the_limit_gets_413_and_no_continue() -> None:
    async with served() as server:
        reader, writer = await connect(server)
        writer.write(b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                     b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (LIMITS.body_max_bytes + 1))
        raw = await read_all(reader)
        assert raw.startswith(b"HTTP/1.1 413 "), raw[:100]  # never "100 Continue"
        assert_error(raw, 413, "body_too_large")
        assert rejected(server)["body_too_large"] == 1
        writer.close()


async def test_expect_100_continue_within_the_limit_continues() -> None:
    node = FakeNode(make_net())
    raw_env = notarize(node.net, "expect")
    async with served(node=node) as server:
        reader, writer = await connect(server)
        writer.write(b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                     b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(raw_env))
        async with asyncio.timeout(WAIT_S):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(raw_env)
        status, doc = await one_answer(reader)
        assert status == 202 and doc["status"] == "pending"
        writer.close()


async def test_an_unknown_expectation_gets_417() -> None:
    async with served() as server:
        reader, writer = await connect(server)
        writer.write(b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: teapot\r\n\r\n")
        assert_error(await read_all(reader), 417, "expectation_failed")
        writer.close()


# -- over-limit bodies: the client reads its 413 --------------------------------------

OVER = 4 << 20  # far over the 64 KiB limit, more than socket buffers take, within the drain


class SmallBufferConnection(http.client.HTTPConnection):
    """http.client with a small send buffer: the body cannot hide in the kernel."""

    def connect(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def _http_client_post(port: int, body: bytes) -> tuple[int, Any]:
    conn = SmallBufferConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        conn.request("POST", "/v1/records", body=body, headers={"Content-Type": MSGPACK})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.parametrize("size", [OVER, 12 << 20])
async def test_urllib_sending_an_over_limit_body_reads_the_413(size: int) -> None:
    async with served() as server:
        status, doc = await asyncio.to_thread(
            _urlopen, f"http://127.0.0.1:{server.port}/v1/records", b"\0" * size,
            {"Content-Type": MSGPACK})
        assert status == 413 and doc["error"]["code"] == "body_too_large", doc
        assert await asyncio.to_thread(_urlopen, f"http://127.0.0.1:{server.port}/healthz") == (
            200, {"ok": True})


async def test_http_client_sending_an_over_limit_body_reads_the_413() -> None:
    async with served() as server:
        status, doc = await asyncio.to_thread(_http_client_post, server.port, b"\0" * OVER)
        assert status == 413 and doc["error"]["code"] == "body_too_large", doc


async def test_a_body_declared_beyond_the_drain_is_not_waited_for() -> None:
    async with served() as server:
        reader, writer = await connect(server)
        writer.write(b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                     b"Content-Length: %d\r\n\r\n" % (BODY_DRAIN_MAX_BYTES + 1) + b"\0" * 1000)
        assert_error(await read_all(reader), 413, "body_too_large")
        writer.close()


# -- loop-level errors ---------------------------------------------------------------


async def test_accept_errors_become_one_line_per_interval_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The context CPython 3.11's selector loop hands to call_exception_handler when
    accept() fails with EMFILE (asyncio/selector_events.py, _accept_connection)."""
    loop = asyncio.get_running_loop()
    async with served() as server:
        assert isinstance(loop.get_exception_handler(), LoopErrors)
        listening = socket.socket()
        try:
            with caplog.at_level(logging.DEBUG):
                for _ in range(500):
                    loop.call_exception_handler({
                        "message": ACCEPT_ERROR_MESSAGE,
                        "exception": OSError(24, "Too many open files"),
                        "socket": listening,
                    })
        finally:
            listening.close()
        lines = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert len(lines) == 1 and not lines[0].exc_info, [r.getMessage() for r in lines]
        assert "cannot accept connections" in lines[0].getMessage()
        assert "ledgernode_accept_errors_total 500" in server.render_metrics()
    assert loop.get_exception_handler() is None  # put back as it was


class Exhausted:
    """A listening socket whose accept() fails as in a process out of descriptors."""

    def __init__(self, real: socket.socket) -> None:
        self.real, self.calls = real, 0

    def fileno(self) -> int:
        return self.real.fileno()

    def getsockname(self) -> Any:
        return self.real.getsockname()

    def accept(self) -> tuple[socket.socket, Any]:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        self.real.close()


async def test_the_api_listener_out_of_descriptors_pauses_logs_once_then_recovers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(api_listening, "ACCEPT_RETRY_MS", 100)
    async with served() as server:
        [listener] = server.site.listeners
        real = listener.sock
        listener.sock = Exhausted(real)  # type: ignore[assignment]
        with caplog.at_level(logging.DEBUG):
            reader, writer = await connect(server)  # queued by the kernel, not accepted
            writer.write(GET_HEALTH)
            await until(lambda: listener.sock.calls >= 5, "five failed accepts")  # type: ignore[attr-defined]
        calls = listener.sock.calls  # type: ignore[attr-defined]
        # one accept() per retry (asyncio's loop makes `backlog` of them per wake-up), one line
        assert 2 <= calls <= 15, calls
        lines = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert len(lines) == 1 and "cannot accept connections" in lines[0].getMessage(), lines
        assert f"ledgernode_accept_errors_total {calls}" in server.render_metrics()
        listener.sock = real  # descriptors are back: the waiting client is served
        assert await one_answer(reader) == (200, {"ok": True})
        writer.close()


async def test_other_loop_errors_are_passed_on_at_most_once_per_interval() -> None:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    try:
        async with served():
            for _ in range(50):
                loop.call_exception_handler({"message": "Exception in callback x",
                                             "exception": ValueError("bad fd")})
            loop.call_exception_handler({"message": "something else"})
        assert [c["message"] for c in seen] == ["Exception in callback x", "something else"]
        assert loop.get_exception_handler() is not None  # the test's own handler is back
    finally:
        loop.set_exception_handler(None)


async def test_stop_closes_open_connections_and_the_port() -> None:
    async with served(dataclasses.replace(LIMITS, header_timeout_ms=60_000)) as server:
        reader, _ = await connect(server)
        port = server.port
        await until(lambda: server.connections == 1, "the connection to open")
        await server.stop()
        assert await read_all(reader) == b""
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
