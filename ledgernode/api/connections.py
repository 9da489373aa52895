"""One API connection and the pool of them (api/server.py): bounded in number, in time and
in head size, with protocol-level failures answered in the API's JSON error shape
{"error": {"code", "message"}}.

Connections
  number  at most the pool's cap open at once (api/capacity.py). A connection arriving at
          the cap is still accepted, so the listen backlog never fills: the connection
          that has waited longest for a request (idle between requests, or with a head
          still arriving) is closed to make room ("evicted"); only when every open
          connection is busy with a request is the newcomer answered 503
          too_many_connections and closed at once ("refused").
  time    a new connection must deliver its first request head within
          limits.header_timeout_ms; between requests a connection may stay idle
          limits.keepalive_timeout_ms, and a head that has started arriving must then be
          complete within header_timeout_ms. A head still incomplete at its deadline gets
          408 header_timeout; a connection that sent nothing is just closed. An answer
          the client does not take within SEND_TIMEOUT_MS is dropped with its connection
          ("send_timeout"), so a client that never reads cannot pin a descriptor.
  size    a request head (line and headers) over HEAD_MAX_BYTES gets 431 header_too_large.
  Expect  `Expect: 100-continue` with a Content-Length over limits.body_max_bytes gets 413
          body_too_large instead of `100 Continue`; another expectation gets 417.

Malformed HTTP (bad request line, header syntax, lines over aiohttp's 8190 bytes),
which aiohttp answers in text/plain, is answered 400 bad_request in the JSON shape.
Every error answered here is counted by code in the app's REJECTED counter (so in
ledgernode_api_rejected_total); connections the node closed are counted by reason
(CLOSE_REASONS). Nothing here writes a traceback per request: at most one line per
cause per LOG_LINE_S.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import Counter
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from ..aio import web
from ..config import Limits
from ..logs import Throttle
from .errors import error_body, error_response, http_code
from .inputs import declared_too_large

# The logger of api/server.py for every part of serving the API: log lines keep the name
# operators filter on.
log = logging.getLogger("ledgernode.api.server")

HEAD_MAX_BYTES = 64 << 10  # request line and headers of one request
SEND_TIMEOUT_MS = 60_000  # longest a client may take to read one response
LOG_LINE_S = 10.0  # at most one log line per cause per this long
MESSAGE_MAX_CHARS = 200  # of a parser error quoted back to the client and in the log
CLOSE_REASONS = ("evicted", "refused", "header_timeout", "keepalive_timeout",
                 "header_too_large", "send_timeout")

# A connection waits for a request head, or handles requests, or (answered with
# Connection: close) waits for its last answer to go out before it closes.
_HEAD, _BUSY, _CLOSING = "head", "busy", "closing"
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def raw_answer(status: int, code: str, message: str, headers: tuple[str, ...] = ()) -> bytes:
    """A whole HTTP/1.1 error answer in the JSON shape, for the transport directly."""
    body = json.dumps(error_body(code, message)).encode()
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _one_line(text: object) -> str:
    """A parser's message (which may quote the client's bytes) as one bounded line."""
    line = " ".join(str(text).split())
    return line if len(line) <= MESSAGE_MAX_CHARS else line[:MESSAGE_MAX_CHARS - 3] + "..."


class ConnectionPool:
    """The open connections of one ApiServer, the cap, and what was closed and why."""

    def __init__(self, cap: int, limits: Limits, rejected: Counter[str]) -> None:
        self.cap = cap
        self.limits = limits
        self.header_timeout_s = limits.header_timeout_ms / 1000
        self.keepalive_timeout_s = limits.keepalive_timeout_ms / 1000
        self.open: set[ApiConnection] = set()
        self.pending = 0  # accepted and admitted, transport not made yet
        self.idle: dict[ApiConnection, None] = {}  # waiting for a request, longest-waiting first
        self.closed: Counter[str] = Counter()
        self.rejected = rejected
        self.lines = Throttle(log, LOG_LINE_S)
        self.busy_answer = raw_answer(
            503, "too_many_connections",
            f"the node serves at most {cap} API connections and all are busy; retry later",
            ("Retry-After: 1",))

    def admit(self) -> bool:
        """Room for one more connection, evicting the longest-waiting idle one if need be."""
        if len(self.open) + self.pending < self.cap:
            return True
        victim = next(iter(self.idle), None)
        if victim is None:
            return False
        self.closed["evicted"] += 1
        self.lines.log(logging.WARNING, "evicted",
                       "API at its cap of %d connections: closing the longest-idle ones "
                       "to admit new ones (ledgernode_api_connections_closed_total in /metrics)",
                       self.cap)
        victim.abort()
        return True

    def refuse(self, conn: socket.socket) -> None:
        """Answer 503 on a just-accepted socket and close it, without a transport."""
        self.closed["refused"] += 1
        self.rejected["too_many_connections"] += 1
        self.lines.log(logging.WARNING, "refused",
                       "API at its cap of %d connections, all busy: answering new ones 503",
                       self.cap)
        try:
            conn.send(self.busy_answer)
        except OSError:
            pass
        conn.close()

    def wrap(self, handler: Handler) -> Handler:
        """The app's request handler, behind what is decided before routing."""
        limits, rejected = self.limits, self.rejected

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            conn = request.protocol
            if isinstance(conn, ApiConnection):
                conn.busy()
            expect = request.headers.get("Expect")
            if expect is not None:
                # aiohttp would send "100 Continue" before any handler or middleware runs.
                refusal = declared_too_large(request, limits)
                if refusal is None and expect.lower() != "100-continue":
                    refusal_status, code, message = 417, "expectation_failed", \
                        f"Expect: {_one_line(expect)} is not supported; send 100-continue or none"
                elif refusal is not None:
                    refusal_status, code, message = refusal.status, refusal.code, refusal.message
                else:
                    return await handler(request)
                rejected[code] += 1
                resp = error_response(refusal_status, code, message)
                resp.force_close()
                return resp
            return await handler(request)

        return handle


class ApiConnection(web.RequestHandler):
    """aiohttp's HTTP/1.1 connection, with the node's bounds (module docstring)."""

    def __init__(self, pool: ConnectionPool, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.pool = pool
        self.phase = _HEAD
        self.fresh = True  # no request yet: the header timeout runs from accept()
        self.head_bytes = 0  # of the request head now arriving
        self.made = False  # connection_made ran
        self.deadline: asyncio.TimerHandle | None = None

    # -- states ------------------------------------------------------------------

    def _wait_head(self, timeout_s: float) -> None:
        self.phase = _HEAD
        self.head_bytes = 0
        self.pool.idle.pop(self, None)
        self.pool.idle[self] = None
        self._set_deadline(timeout_s)

    def busy(self) -> None:
        """A request was parsed: no head deadline, not evictable, until it is answered."""
        self.phase = _BUSY
        self.pool.idle.pop(self, None)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _set_deadline(self, timeout_s: float) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self._loop.call_later(timeout_s, self._on_deadline)

    def _forget(self) -> None:
        self.pool.open.discard(self)
        self.pool.idle.pop(self, None)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def abort(self) -> None:
        """Close now, dropping whatever was not sent yet."""
        transport = self.transport
        self._forget()
        self.force_close()
        if transport is not None:
            transport.abort()

    def _shut(self) -> None:
        """Close after the buffered output, or at once if there is any: a client that does
        not read would otherwise keep the descriptor open (asyncio flushes before closing)."""
        transport = self.transport
        self._forget()
        self.force_close()  # also ends aiohttp's task for this connection
        if transport is not None and transport.get_write_buffer_size():
            transport.abort()

    def _refuse_head(self, status: int, code: str, message: str, reason: str) -> None:
        """Answer a request whose head never became a request, and close."""
        self.pool.closed[reason] += 1
        self.pool.rejected[code] += 1
        if self.transport is not None:
            try:
                self.transport.write(raw_answer(status, code, message))
            except (OSError, RuntimeError):  # already going away
                pass
        self._shut()

    def _on_deadline(self) -> None:
        self.deadline = None
        if self.transport is None or self._force_close:
            return
        if self.phase == _CLOSING:  # its last answer did not go out within SEND_TIMEOUT_MS
            self.pool.closed["send_timeout"] += 1
            self.abort()
        elif self.phase != _HEAD:
            return
        elif self.head_bytes:
            self._refuse_head(408, "header_timeout",
                              f"request head not received within {self.pool.limits.header_timeout_ms} ms",
                              "header_timeout")
        else:
            self.pool.closed["header_timeout" if self.fresh else "keepalive_timeout"] += 1
            self._shut()

    # -- aiohttp's protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.pool.pending -= 1  # admitted when accepted (api/listening.py)
        self.made = True
        super().connection_made(transport)
        self.pool.open.add(self)
        self._wait_head(self.pool.header_timeout_s)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.phase != _HEAD or not data:
            super().data_received(data)
            return
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a head (or a parse error) completed
            self.busy()
            return
        if self.transport is None or self._force_close:
            return
        if not self.head_bytes and not self.fresh:
            # The idle wait is over: the head itself gets header_timeout_ms.
            self._set_deadline(self.pool.header_timeout_s)
        self.head_bytes += len(data)
        if self.head_bytes > HEAD_MAX_BYTES:
            self._refuse_head(431, "header_too_large",
                              f"request head exceeds {HEAD_MAX_BYTES} bytes", "header_too_large")

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_MS / 1000):
                result = await super().finish_response(request, resp, start_time)
        except TimeoutError:
            self.pool.closed["send_timeout"] += 1
            self.abort()
            return resp, True
        if self.transport is None or self._force_close or self._messages:
            return result  # gone, or a pipelined request follows at once
        if not self._close and resp.keep_alive and request.content.is_eof():
            self.fresh = False  # the next request may follow: wait for its head
            self._wait_head(self.pool.keepalive_timeout_s)
        else:  # aiohttp closes the transport next, once this answer is out
            self.phase = _CLOSING
            self._set_deadline(SEND_TIMEOUT_MS / 1000)
        return result

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse or handle, in the JSON shape."""
        code = http_code(status)
        if isinstance(exc, ConnectionError):  # the client went away mid-answer: nobody to tell
            resp = error_response(status, code, "connection lost")
            resp.force_close()
            return resp
        if status >= 500:
            text = "internal error; the node logged the details"
            if self.pool.lines.log(logging.ERROR, f"http-{status}",
                                   "API request failed below the handlers: %s", _one_line(repr(exc))):
                log.debug("details of the failure above", exc_info=exc)
        else:
            text = _one_line(message or exc or HTTPStatus(status).phrase)
            self.pool.lines.log(logging.INFO, f"http-{status}",
                                "malformed HTTP request (answered %d %s, counted in /metrics): %s",
                                status, code, text)
        self.pool.rejected[code] += 1
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response "
                                  "with the error message")
        resp = error_response(status, code, text)
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error reports: one line per kind per LOG_LINE_S, no traceback."""
        what = str(args[0]) if args else "error"
        try:
            text = what % args[1:] if len(args) > 1 else what
        except (TypeError, ValueError):
            text = what
        exc = kw.get("exc_info")
        self.pool.lines.log(logging.ERROR, f"aiohttp-{what}", "API connection: %s: %s",
                            _one_line(text),
                            _one_line(repr(exc)) if isinstance(exc, BaseException) else "-")
