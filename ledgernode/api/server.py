"""How the node serves its HTTP API: one listening socket whose connections are bounded
in number, in time and in head size, and whose protocol-level failures answer in the
API's JSON error shape {"error": {"code", "message"}}.

    server = await serve_api(app, ("127.0.0.1", 7100), limits)   # listening
    server.port; server.render_metrics()                         # Prometheus text
    await server.stop()

Where each part lives:
  api/capacity.py     how many connections may be open at once: limits.api_connections_max,
                      or derived from the soft RLIMIT_NOFILE minus FD_RESERVE
  api/connections.py  one connection (ApiConnection: header, keep-alive and send timeouts,
                      head size, Expect, malformed HTTP in the JSON shape) and the pool of
                      them (ConnectionPool: the cap, eviction and refusal, closes by reason)
  api/listening.py    the listening sockets, accepted by the node itself (ApiSite), and
                      accept() failures and other loop errors logged without a flood
                      (LoopErrors)
  api/server.py       serve_api, which puts them together, and the running ApiServer

Every error answered there is counted by code in the app's REJECTED counter (so in
ledgernode_api_rejected_total); connections the node closed are counted by reason,
and accept() failures, in `render_metrics()`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from typing import Any

from ..aio import web
from ..config import Limits
from .capacity import FD_RESERVE, connections_max, fd_soft_limit
from .connections import CLOSE_REASONS, ApiConnection, ConnectionPool
from .errors import REJECTED
from .events import EVENTS_HUB
from .listening import ApiSite, LoopErrors

log = logging.getLogger(__name__)


class ApiServer:
    """A running API: `port`, `render_metrics()`, `await stop()`."""

    def __init__(self, runner: web.AppRunner, site: ApiSite, pool: ConnectionPool,
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
        hub = self.runner.app.get(EVENTS_HUB)  # the event streams' gauges and counters
        return "\n".join(lines) + "\n" + (hub.render_metrics() if hub is not None else "")

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            await self.runner.cleanup()
        finally:
            self.loop_errors.uninstall()


async def serve_api(app: web.Application, address: tuple[str, int], limits: Limits,
                    ssl_context: ssl.SSLContext | None = None) -> ApiServer:
    """Serve `app` on `address` ("host", port; port 0 picks a free one) within `limits`,
    over HTTPS with `ssl_context` (ledgernode/tls.py)."""
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
    pool = ConnectionPool(cap, limits, rejected)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    server = runner.server
    assert server is not None
    server.request_handler = pool.wrap(server.request_handler)
    handler_kwargs: dict[str, Any] = dict(
        loop=loop,
        # aiohttp's own idle timer is only a backstop behind api/connections.py's deadlines.
        keepalive_timeout=(limits.keepalive_timeout_ms + limits.header_timeout_ms) / 1000,
        access_log=None,
        lingering_time=0,  # an unread body is drained by api/errors.py, or the connection closes
    )

    def factory() -> ApiConnection:
        return ApiConnection(pool, server, **handler_kwargs)

    loop_errors = LoopErrors.install(loop)
    site = ApiSite(runner, address[0], address[1], pool, factory, loop_errors, ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        loop_errors.uninstall()
        raise
    return ApiServer(runner, site, pool, loop_errors)
