"""Every failure of a request becomes one JSON shape: {"error": {"code", "message"}}.

The middleware here is the single place that maps exceptions to HTTP:

  InvalidInput (records, codec, state rules, our own input parsing) -> its .status, .code
  ApiError (conditions of the HTTP layer itself: 404, 408, 413, 415)  -> its .status, .code
  RateLimited (a client's token bucket is empty, throttle.py)         -> 429 + Retry-After
  Backpressure (mempool full; too many answers in flight, reads.py)   -> 503 + Retry-After
  Unauthenticated (a read not signed where reads are authenticated)   -> 401 + Accept-Signature
  access.Denied (a registered key without the right a read needs)     -> 403 forbidden, error.right
  ledgernode.errors.NotFound                                          -> 404 not_found
  ledgernode.errors.StoreCorrupt (a damaged store, found on read)     -> 503 store_damaged
  aiohttp's own HTTP errors (unknown route, wrong method, body over
  client_max_size while reading)                                      -> same status, JSON body
  anything else                                                       -> 500 internal, logged

Each error answer is counted by its code in the application's `REJECTED`
counter, which the node adds to its Prometheus metrics (see `render_rejected`).
Errors below the application (malformed HTTP, slow or oversized heads, too many
connections) are answered in the same shape by api/connections.py, with `http_code`.

An error answered before the request body was read leaves that body on the wire.
Closing at once would make the kernel reset the connection, and a client that sends
the whole body before reading (urllib, http.client) would see ECONNRESET instead of
the answer. So the answer is sent with `Connection: close`, then up to
BODY_DRAIN_MAX_BYTES of the body are read and dropped for at most BODY_DRAIN_MAX_MS,
and the connection is closed once the body ended (cleanly) or either bound ran out.
A declared Content-Length above BODY_DRAIN_MAX_BYTES, or a body that timed out (408),
is not drained at all: the connection closes right after the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Awaitable, Callable

from ..access import Denied
from ..aio import web
from ..errors import InvalidInput, NotFound, StoreCorrupt
from ..service import Backpressure, RateLimited

log = logging.getLogger(__name__)

REJECTED: web.AppKey[Counter[str]] = web.AppKey("rejected", Counter)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp raises these itself (router, body reader); give them stable codes.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    417: "expectation_failed",
    431: "header_too_large",
}
# After these the connection closes even when the body was read: a client that
# overran a limit or dripped its body gets no further requests on it.
_CLOSE_AFTER = frozenset([408, 413])
# Never drained: a body that drips too slowly would only hold the connection longer.
_NO_DRAIN = frozenset([408])
BODY_DRAIN_MAX_BYTES = 16 << 20  # unread body read and dropped after an early error answer
BODY_DRAIN_MAX_MS = 10_000  # ...for at most this long (as long as a body may take: BODY_TIMEOUT_S)


class ApiError(Exception):
    """A condition of the HTTP layer itself, not a broken ledger rule."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class Unauthenticated(ApiError):
    """A read without a valid signature where reads are authenticated (401)."""

    def __init__(self, code: str, message: str, accept_signature: str) -> None:
        super().__init__(401, code, message, {"Accept-Signature": accept_signature})


def error_body(code: str, message: str, rule: str | None = None,
               right: str | None = None) -> dict[str, dict[str, str]]:
    """The error shape; `rule` names the broken ledger rule of a `rule_violation`, `right`
    the read right a `forbidden` answer lacked."""
    error = {"code": code, "message": message}
    if rule is not None:
        error["rule"] = rule
    if right is not None:
        error["right"] = right
    return {"error": error}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None,
    rule: str | None = None, right: str | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(error_body(code, message, rule, right)),
        content_type="application/json",
        headers=headers,
    )


def http_code(status: int) -> str:
    """The error code of an HTTP status raised below the handlers (aiohttp, api/connections.py)."""
    if status >= 500:
        return "internal"
    return _HTTP_CODES.get(status, "bad_request")


async def _drain(request: web.Request) -> bool:
    """Read and drop the rest of the body within the drain bounds; True if it ended."""
    declared = request.content_length
    if declared is not None and declared > BODY_DRAIN_MAX_BYTES:
        return False
    budget = BODY_DRAIN_MAX_BYTES
    try:
        async with asyncio.timeout(BODY_DRAIN_MAX_MS / 1000):
            while not request.content.is_eof():
                chunk = await request.content.readany()
                budget -= len(chunk)
                if budget < 0 or not chunk:
                    break
    except Exception:  # noqa: BLE001 - timed out, connection lost, or a malformed chunked body
        return False
    return request.content.is_eof()


async def _answer(request: web.Request, resp: web.Response) -> web.StreamResponse:
    """`resp`; when the body is left unread, sent first, then the body drained or the
    connection closed (see the module docstring)."""
    unread = not request.content.is_eof()
    if resp.status in _CLOSE_AFTER or unread:
        resp.force_close()
    if not unread:
        return resp
    try:
        async with asyncio.timeout(BODY_DRAIN_MAX_MS / 1000):  # a client that does not read
            await resp.prepare(request)
            await resp.write_eof()
    except (ConnectionError, TimeoutError):  # gone, half-closed mid-body, or not reading
        request.protocol.force_close()
        return resp
    if resp.status in _NO_DRAIN or not await _drain(request):
        # transport.close() flushes the answer first, then drops the unread body.
        request.protocol.force_close()
    return resp


def describe(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    """(status, code, message, extra headers) for an exception raised by a handler."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message, exc.headers
    if isinstance(exc, InvalidInput):
        return exc.status, exc.code, exc.message, {}
    if isinstance(exc, Denied):
        return 403, "forbidden", exc.message, {}
    if isinstance(exc, RateLimited):
        return 429, "rate_limited", str(exc), {"Retry-After": str(max(1, exc.retry_after_s))}
    if isinstance(exc, Backpressure):
        return 503, "backpressure", str(exc), {"Retry-After": str(max(1, exc.retry_after_s))}
    if isinstance(exc, NotFound):
        return 404, "not_found", str(exc) or "not found", {}
    if isinstance(exc, StoreCorrupt):  # the node stops and re-syncs when its own loop meets it
        return 503, "store_damaged", "this node's store is damaged; ask another node", {"Retry-After": "10"}
    return 500, "internal", "internal error; the node logged the details", {}


def _from_http(exc: web.HTTPException, request: web.Request) -> web.Response:
    """JSON for the errors aiohttp raises itself (router, client_max_size)."""
    code = _HTTP_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
    if exc.status == 404:
        message = f"no route for {request.method} {request.path}"
    elif exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    else:
        message = exc.text or exc.reason
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    request.app[REJECTED][code] += 1
    return error_response(exc.status, code, message, headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await _answer(request, _from_http(exc, request))
    except Exception as exc:  # noqa: BLE001 - a bad request must never take the node down
        status, code, message, headers = describe(exc)
        if status >= 500 and code == "internal":
            log.exception("unexpected error on %s %s", request.method, request.path)
        request.app[REJECTED][code] += 1
        rule = exc.rule if isinstance(exc, InvalidInput) else None
        right = exc.right if isinstance(exc, Denied) else None
        return await _answer(request, error_response(status, code, message, headers, rule, right))


def render_rejected(counts: Counter[str], metric: str = "ledgernode_api_rejected_total") -> str:
    """Prometheus text lines for the rejection counter, one series per code."""
    lines = [
        f"# HELP {metric} HTTP requests and batch items rejected, by error code.",
        f"# TYPE {metric} counter",
    ]
    lines += [f'{metric}{{reason="{code}"}} {n}' for code, n in sorted(counts.items())]
    return "\n".join(lines) + "\n"
