"""How the node serves its HTTP API: one listening socket whose connections are bounded
in number, in time and in head size, and whose protocol-level failures answer in the
API's JSON error shape {"error": {"code", "message"}}.

    server = await serve_api(app, ("127.0.0.1", 7100), limits)   # listening
    server.port; server.render_metrics()                         # Prometheus text
    await server.stop()

Connections
  number  at most `connections_max(limits)` open at once: limits.api_connections_max,
          or when that is 0 (the default) the process's soft RLIMIT_NOFILE minus
          FD_RESERVE (LevelDB's table files, two sockets per possible peer validator,
          logs and the rest, sockets being accepted or closed), at least
          API_CONNECTIONS_FLOOR. A connection arriving at
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
ledgernode_api_rejected_total); connections the node closed are counted by reason,
and accept() failures, in `render_metrics()`. Nothing here writes a traceback per
request: at most one line per cause per LOG_LINE_S.

accept() failures: CPython 3.11's asyncio/selector_events.py (`_accept_connection`)
reports EMFILE, ENFILE, ENOBUFS and ENOMEM from accept() through
loop.call_exception_handler, message "socket.accept() out of system resource", whose
default handler logs an ERROR with a traceback on the `asyncio` logger; and it keeps
calling accept() up to `backlog` times per wake-up after the first failure, logging and
scheduling a retry each time, so one exhausted process writes thousands of tracebacks a
second. It also accepts a whole backlog's worth of sockets before any protocol can see
the cap. So the API's listening sockets are bound by asyncio but accepted here
(_Listener): ACCEPT_BATCH per wake-up, each admitted or refused before a transport is
made, a pause of ACCEPT_RETRY_MS after a failure for lack of resources, one line per
LOG_LINE_S. For the process's other listeners (the peer port), the loop's exception
handler is replaced while an ApiServer runs (LoopErrors): the same accept failures
become one line per LOG_LINE_S (all counted), and any other loop error is passed on
(to the previous handler) at most once per cause per LOG_LINE_S.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import time
from collections import Counter
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from ..aio import web
from ..config import Limits
from ..genesis import VALIDATORS_MAX
from ..logs import Throttle
from .errors import REJECTED, error_body, error_response, http_code
from .inputs import declared_too_large

try:
    import resource
except ImportError:  # pragma: no cover - not on POSIX
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

FD_RESERVE_LEVELDB = 1_000  # LevelDB's default max_open_files: table files it may keep open
FD_RESERVE_PEERS = 2 * VALIDATORS_MAX  # an inbound and an outbound link per other validator
FD_RESERVE_OTHER = 128  # logs, stdio, epoll, listening sockets, thread pools, files read at start
LISTEN_BACKLOG = 1_024  # connections the kernel queues until accepted (capped by somaxconn)
ACCEPT_BATCH = 64  # connections accepted per wake-up of the listening socket
ACCEPT_RETRY_MS = 1_000  # pause after accept() failed for lack of descriptors or memory
# Sockets accepted but not yet counted open, and evicted ones not yet closed: at most a
# few batches (a transport is made, and an aborted one closed, one loop turn later).
FD_RESERVE_ACCEPT = 3 * ACCEPT_BATCH
FD_RESERVE = FD_RESERVE_LEVELDB + FD_RESERVE_PEERS + FD_RESERVE_OTHER + FD_RESERVE_ACCEPT
API_CONNECTIONS_FLOOR = 256  # the derived cap never goes below this, whatever the fd limit
FD_UNLIMITED = 1 << 20  # stands for RLIM_INFINITY when deriving the cap
HEAD_MAX_BYTES = 64 << 10  # request line and headers of one request
SEND_TIMEOUT_MS = 60_000  # longest a client may take to read one response
LOG_LINE_S = 10.0  # at most one log line per cause per this long
MESSAGE_MAX_CHARS = 200  # of a parser error quoted back to the client and in the log
ACCEPT_ERROR_MESSAGE = "socket.accept() out of system resource"  # CPython's exact text
RESOURCE_ERRNOS = frozenset([errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
CLOSE_REASONS = ("evicted", "refused", "header_timeout", "keepalive_timeout",
                 "header_too_large", "send_timeout")

# A connection waits for a request head, or handles requests, or (answered with
# Connection: close) waits for its last answer to go out before it closes.
_HEAD, _BUSY, _CLOSING = "head", "busy", "closing"
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def connections_max(limits: Limits, nofile_soft: int | None = None) -> int:
    """limits.api_connections_max, or derived from the soft fd limit (module docstring)."""
    if limits.api_connections_max:
        return limits.api_connections_max
    return max(API_CONNECTIONS_FLOOR, fd_soft_limit(nofile_soft) - FD_RESERVE)


def fd_soft_limit(nofile_soft: int | None = None) -> int:
    if nofile_soft is None:
        if resource is None:  # pragma: no cover
            return API_CONNECTIONS_FLOOR + FD_RESERVE
        nofile_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile_soft == resource.RLIM_INFINITY:
            nofile_soft = FD_UNLIMITED
    return nofile_soft


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


class _Pool:
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

    def __init__(self, pool: _Pool, manager: web.Server, **kwargs: Any) -> None:
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
        self.pool.pending -= 1  # admitted when accepted (_Listener)
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


class LoopErrors:
    """The event loop's exception handler while ApiServers run (module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.previous = loop.get_exception_handler()
        self.users = 0
        self.accept_errors = 0
        self.lines = Throttle(log, LOG_LINE_S)
        self.seen: dict[str, list[float]] = {}  # cause -> [last reported s, held back since]

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> LoopErrors:
        current = loop.get_exception_handler()
        errors = current if isinstance(current, LoopErrors) else cls(loop)
        if errors is not current:
            loop.set_exception_handler(errors)
        errors.users += 1
        return errors

    def uninstall(self) -> None:
        self.users -= 1
        if self.users <= 0 and self.loop.get_exception_handler() is self:
            self.loop.set_exception_handler(self.previous)

    def accept_failed(self, exc: OSError, where: Any) -> None:
        """Count a failed accept(); one line per errno per LOG_LINE_S."""
        self.accept_errors += 1
        try:
            address = where.getsockname() if where is not None else "?"
        except OSError:
            address = "?"
        self.lines.log(logging.ERROR, f"accept-{exc.errno}",
                       "cannot accept connections on %s: %s (out of file descriptors or "
                       "memory?); ledgernode_accept_errors_total in /metrics counts them",
                       address, exc.strerror or exc)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == ACCEPT_ERROR_MESSAGE and isinstance(exc, OSError):
            self.accept_failed(exc, context.get("socket"))
            return
        cause = f"{context.get('message')}|{type(exc).__name__}"
        now = time.monotonic()
        seen = self.seen.get(cause)
        if seen is not None and now - seen[0] < LOG_LINE_S:
            seen[1] += 1
            return
        if seen is None and len(self.seen) >= 100:
            self.seen.pop(next(iter(self.seen)))
        held = int(seen[1]) if seen is not None else 0
        self.seen[cause] = [now, 0]
        if held:
            context = {**context, "message": f"{context.get('message')} "
                                             f"(+{held} more in the last {LOG_LINE_S:g} s)"}
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


class _Listener:
    """Accepts on one listening socket, deciding about the cap before a transport exists.

    asyncio's own accept loop (selector_events._accept_connection) takes up to `backlog`
    sockets per wake-up before any protocol sees them, and on EMFILE keeps calling accept()
    and logging; this one takes ACCEPT_BATCH, admits or refuses each at once, and pauses
    ACCEPT_RETRY_MS after a failure for lack of resources."""

    def __init__(self, site: ApiSite, sock: socket.socket) -> None:
        self.site, self.sock = site, sock
        self.loop = asyncio.get_running_loop()
        self.retry: asyncio.TimerHandle | None = None
        self.loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self.site.loop_errors.accept_failed(exc, self.sock)
                if exc.errno in RESOURCE_ERRNOS:
                    self.loop.remove_reader(self.sock.fileno())
                    self.retry = self.loop.call_later(ACCEPT_RETRY_MS / 1000, self._resume)
                return
            self.site.take(conn)

    def _resume(self) -> None:
        self.retry = None
        self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
        else:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class ApiSite(web.BaseSite):
    """A TCP site whose connections are ApiConnections, accepted by _Listeners."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, pool: _Pool,
                 factory: Callable[[], ApiConnection], loop_errors: LoopErrors) -> None:
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self.host, self.port, self.pool, self.factory = host, port, pool, factory
        self.loop_errors = loop_errors
        self.listeners: list[_Listener] = []
        self.connecting: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        # asyncio binds (every address of the host) but never accepts: each socket is
        # listened and accepted on through a duplicate descriptor by a _Listener.
        self._server = await loop.create_server(
            self.factory, self.host, self.port, backlog=self._backlog, reuse_address=True,
            start_serving=False)
        for listening in self._server.sockets:
            dup = socket.fromfd(listening.fileno(), listening.family, listening.type)
            dup.setblocking(False)
            dup.listen(self._backlog)  # asyncio listens only when it serves itself
            self.listeners.append(_Listener(self, dup))

    def take(self, conn: socket.socket) -> None:
        """A just-accepted socket: served, or refused when the cap leaves no room."""
        conn.setblocking(False)
        if not self.pool.admit():
            self.pool.refuse(conn)
            return
        self.pool.pending += 1
        task = asyncio.get_running_loop().create_task(self._connect(conn))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        made: list[ApiConnection] = []

        def protocol() -> ApiConnection:
            made.append(self.factory())
            return made[0]

        try:
            await asyncio.get_running_loop().connect_accepted_socket(protocol, conn)
        except (Exception, asyncio.CancelledError) as exc:  # reset at once, or stopping
            if not (made and made[0].made):
                self.pool.pending -= 1
                conn.close()
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def stop(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []
        for task in list(self.connecting):
            task.cancel()
        await super().stop()


class ApiServer:
    """A running API: `port`, `render_metrics()`, `await stop()`."""

    def __init__(self, runner: web.AppRunner, site: ApiSite, pool: _Pool,
                 loop_errors: LoopErrors) -> None:
        self.runner, self.site, self.pool, self.loop_errors = runner, site, pool, loop_errors
        self.stopped = False

    @property
    def port(self) -> int:
        server: Any = self.site._server  # an asyncio.Server: it has sockets
        assert server is not None and server.sockets
        return int(server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self.pool.open)

    @property
    def connections_max(self) -> int:
        return self.pool.cap

    @property
    def closed(self) -> Counter[str]:
        return self.pool.closed

    def render_metrics(self) -> str:
        """Prometheus text: open connections, the cap, closes by reason, accept() failures."""
        p = "ledgernode_api_connections"
        lines = [
            f"# HELP {p} API connections open now.", f"# TYPE {p} gauge", f"{p} {len(self.pool.open)}",
            f"# HELP {p}_max Most API connections open at once (limits.api_connections_max, "
            "or derived from the file-descriptor limit).",
            f"# TYPE {p}_max gauge", f"{p}_max {self.pool.cap}",
            f"# HELP {p}_closed_total API connections the node closed, by reason.",
            f"# TYPE {p}_closed_total counter",
        ]
        lines += [f'{p}_closed_total{{reason="{r}"}} {self.pool.closed[r]}' for r in CLOSE_REASONS]
        lines += [
            "# HELP ledgernode_accept_errors_total accept() failures on the node's listening "
            "sockets (out of file descriptors or memory).",
            "# TYPE ledgernode_accept_errors_total counter",
            f"ledgernode_accept_errors_total {self.loop_errors.accept_errors}",
        ]
        return "\n".join(lines) + "\n"

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            await self.runner.cleanup()
        finally:
            self.loop_errors.uninstall()


async def serve_api(app: web.Application, address: tuple[str, int], limits: Limits) -> ApiServer:
    """Serve `app` on `address` ("host", port; port 0 picks a free one) within `limits`."""
    loop = asyncio.get_running_loop()
    cap = connections_max(limits)
    room = fd_soft_limit() - FD_RESERVE
    if limits.api_connections_max and limits.api_connections_max > room:
        log.warning("limits.api_connections_max = %d leaves fewer than %d of the %d file "
                    "descriptors this process may open for LevelDB, peers and logs; "
                    "raise the limit (ulimit -n) or lower the cap",
                    limits.api_connections_max, FD_RESERVE, fd_soft_limit())
    rejected = app.get(REJECTED)
    if rejected is None:
        rejected = Counter()
    pool = _Pool(cap, limits, rejected)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    server = runner.server
    assert server is not None
    server.request_handler = pool.wrap(server.request_handler)
    handler_kwargs: dict[str, Any] = dict(
        loop=loop,
        # aiohttp's own idle timer is only a backstop behind the deadlines above.
        keepalive_timeout=(limits.keepalive_timeout_ms + limits.header_timeout_ms) / 1000,
        access_log=None,
        lingering_time=0,  # an unread body is drained by api/errors.py, or the connection closes
    )

    def factory() -> ApiConnection:
        return ApiConnection(pool, server, **handler_kwargs)

    loop_errors = LoopErrors.install(loop)
    site = ApiSite(runner, address[0], address[1], pool, factory, loop_errors)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        loop_errors.uninstall()
        raise
    return ApiServer(runner, site, pool, loop_errors)
