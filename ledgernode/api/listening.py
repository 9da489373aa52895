"""The API's listening sockets (api/server.py): accepted here rather than by asyncio, and
accept() failures counted and logged at most once per cause per LOG_LINE_S.

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
import logging
import socket
import ssl
import time
from typing import Any, Callable

from ..aio import web
from ..logs import Throttle
from .connections import LOG_LINE_S, ApiConnection, ConnectionPool

# The logger of api/server.py for every part of serving the API: log lines keep the name
# operators filter on.
log = logging.getLogger("ledgernode.api.server")

LISTEN_BACKLOG = 1_024  # connections the kernel queues until accepted (capped by somaxconn)
ACCEPT_BATCH = 64  # connections accepted per wake-up of the listening socket
TLS_HANDSHAKE_TIMEOUT_S = 10.0  # a client that starts HTTPS and never finishes its TLS handshake
ACCEPT_RETRY_MS = 1_000  # pause after accept() failed for lack of descriptors or memory
ACCEPT_ERROR_MESSAGE = "socket.accept() out of system resource"  # CPython's exact text
RESOURCE_ERRNOS = frozenset([errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])


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

    def __init__(self, runner: web.AppRunner, host: str, port: int, pool: ConnectionPool,
                 factory: Callable[[], ApiConnection], loop_errors: LoopErrors,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self.host, self.port, self.pool, self.factory = host, port, pool, factory
        self.ssl_context = ssl_context  # HTTPS (ledgernode/tls.py); None: plain HTTP
        self.loop_errors = loop_errors
        self.listeners: list[_Listener] = []
        self.connecting: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

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
            # a TLS handshake happens before the connection's own deadlines start (they start
            # when it is made), so it has a deadline of its own
            await asyncio.get_running_loop().connect_accepted_socket(
                protocol, conn, ssl=self.ssl_context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if self.ssl_context else None)
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
