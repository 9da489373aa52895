"""How long the API takes to answer, by route and method: `ledgernode_api_request_seconds`.

The middleware here is the outermost one, so the time includes the error answers that
api/errors.py makes. Labels are bounded whatever clients send: the route is the
template the router matched (`/v1/records/{id}`, never the raw path), every path no
route matches is `UNMATCHED_ROUTE`, and a method outside `METHODS` is `OTHER_METHOD`.
A streamed answer (a handler that prepares its own StreamResponse and returns when
the stream ends) is not counted: its time is the stream's life, not a request's.
"""

from __future__ import annotations

import time

from ..aio import web
from ..histogram import Histogram
from .errors import Handler

API_SECONDS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"

REQUEST_SECONDS: web.AppKey[Histogram] = web.AppKey("request_seconds", Histogram)


def request_histogram() -> Histogram:
    return Histogram("ledgernode_api_request_seconds",
                     "Time to answer an API request, by route template and method (streams not counted).",
                     API_SECONDS_BOUNDS, ("route", "method"))


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER_METHOD


@web.middleware
async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    streamed = False
    try:
        resp = await handler(request)
        streamed = not isinstance(resp, web.Response)
        return resp
    finally:
        if not streamed:
            request.app[REQUEST_SECONDS].observe(time.perf_counter() - start, route_label(request),
                                                 method_label(request.method))
