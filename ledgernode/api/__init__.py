"""The HTTP API: JSON over aiohttp.web, in front of a NodeService (docs/protocol.md).

`make_app(service, limits, debug_endpoints)` builds the application; the node
serves it with `api.server.serve_api` (connection cap, header and keep-alive
timeouts: docs/security.md section 6). Routes (all answer JSON unless noted):

  POST /v1/records             one envelope (msgpack body or {"envelope": b64}); ?wait=1
                               200 committed {"id","status","height","leaf_index","block_hash"}
                               202 pending {"id","status":"pending"}
                               409 refused by a ledger rule at admission (error.rule names it),
                               or with ?wait rejected after admission (the GET shape below)
  POST /v1/records/batch       msgpack array or {"envelopes": [b64,...]}; ?wait=1
                               200 {"results": [Committed | Pending | {"error": {...}}, ...]}
                               in input order; 503 + Retry-After only if every item met
                               backpressure (a partial refusal is 200 + Retry-After)
  GET  /v1/records/{id}        {"id","status","height","leaf_index","envelope","record"}, or for
                               a record dropped after admission (remembered `rejected_kept_ms`)
                               {"id","status":"rejected","error":{code,message,rule?},"height"}
  GET  /v1/records/{id}/evidence  docs/protocol.md section 12.4 bundle (the head as its
                               checkpoint); 404 until committed
  GET  /v1/records/{id}/certificate  printable evidence certificate (存证证书), text/html,
                               bundle embedded; 404 until committed
  GET  /v1/blocks/{height}     {"height","header","qc","envelopes"}; 400 unless an integer
                               >= 1, 404 above the head
  GET  /v1/checkpoint          {"height","header","qc","log_size","log_root"} of the head;
                               404 not_found before the first block
  GET  /v1/checkpoints/{height}  the same for any committed height; 400 unless an integer
                               >= 1, 404 above the head
  GET  /v1/proofs/consistency?from=M&to=N  RFC 9162 proof between log sizes (tree sizes)
                               M <= N; 400 for a missing/non-integer value or a bad range

  Auditors' answers (ledgernode/auditing), each with one checkpoint and an inclusion proof
  per record, checked offline by `python -m ledgernode verify FILE --kind KIND`; 404
  while the ledger is empty:
  GET  /v1/subjects/{subject}?from=POSITION&limit=N        kind "subject" (a page of its list)
  GET  /v1/certificates/{number}/status?at=MS               kind "status" (at: default now)
  GET  /v1/datasets/{id}/shares                             kind "shares"; 404 unpublished
  GET  /v1/provenance/{record_id}?depth=N&direction=D       kind "provenance" (default 8, back;
                                                            forward: every record made from it)
  Answers are ledgernode-answer/2 (docs/protocol.md section 12.5): every list is proven against
  the checkpoint's state map; 422 when one answer would have to hold too many records.
  Subjects, numbers and dataset ids are one percent-encoded path segment, 1-256 chars.

  GET  /v1/equivocations?after=SEQ&limit=N   {"equivocations": [proof, ...], "next_after"}:
                               a validator's two signed values for one slot, each checked
                               offline by `verify FILE --kind equivocation` (docs/security.md)
  GET  /v1/events?types=T,F.*&subject=S&after=ID   Server-Sent Events (api/events.py,
                               docs/protocol.md section 14): `record` per committed record
                               (id: its leaf index), `block` after its last record (id: b<height>),
                               `heartbeat` while idle, `cutoff` before the node closes the stream;
                               resumes after Last-Event-ID (or ?after=; b0: from the beginning);
                               400 bad id or filter, 503 too_many_subscribers
  GET  /v1/status, /v1/genesis (exact bytes), /healthz, /metrics (Prometheus text),
       /v1/openapi.json
  GET  /readyz                 200 {"ready": true, ...} when caught up with the peers and a
                               quorum of the validators is reachable; else 503 with "reasons"
  GET  /                       which node and chain, the head, links to the OpenAPI document
                               and docs, as JSON; a browser (Accept: text/html first) is
                               redirected to /ui/
  GET  /ui/, /ui/{asset}       the browser console's page and files (ledgernode/console)
  POST /v1/debug/faults        only with debug_endpoints; otherwise the route does not exist

Errors are {"error": {"code","message"}} (see api/errors.py), counted per code
in `app[REJECTED]`, a Counter the node may pass in (`rejected=`) to share it
with its metrics; `render_rejected` formats it for Prometheus. Every answer is timed
by route template and method (api/timing.py) into `app[REQUEST_SECONDS]`, a histogram
the node may pass in (`request_seconds=`) for the same reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import __version__
from ..aio import web
from ..config import Limits
from ..console import ROUTES as CONSOLE_ROUTES
from ..console import Console
from ..histogram import Histogram
from ..service import NodeService
from ..throttle import Throttle, throttle_of
from .auth import READ_AUTH, ReadAuth, authenticate
from .errors import REJECTED, ApiError, json_errors, render_rejected
from .events import EVENTS_HUB, EventHub
from .openapi import document
from .timing import REQUEST_SECONDS, request_histogram, timed
from .views import Views

__all__ = ["REJECTED", "REQUEST_SECONDS", "ROUTES", "DEBUG_ROUTES", "ApiError", "make_app", "render_rejected",
           "request_histogram"]

BODY_TIMEOUT_S = 10.0

# (method, path, Views method): one table drives both the router and the OpenAPI document.
ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/v1/records", "post_record"),
    ("POST", "/v1/records/batch", "post_batch"),
    ("GET", "/v1/records/{id}", "get_record"),
    ("GET", "/v1/records/{id}/evidence", "get_evidence"),
    ("GET", "/v1/records/{id}/certificate", "get_certificate"),
    ("GET", "/v1/blocks/{height}", "get_block"),
    ("GET", "/v1/checkpoint", "get_checkpoint"),
    ("GET", "/v1/checkpoints/{height}", "get_checkpoint_at"),
    ("GET", "/v1/proofs/consistency", "get_consistency"),
    ("GET", "/v1/subjects/{subject}", "get_subject"),
    ("GET", "/v1/certificates/{number}/status", "get_cert_status"),
    ("GET", "/v1/datasets/{id}/shares", "get_shares"),
    ("GET", "/v1/provenance/{record_id}", "get_provenance"),
    ("GET", "/v1/equivocations", "get_equivocations"),
    ("GET", "/v1/governance/proposals", "get_proposals"),
    ("GET", "/v1/events", "get_events"),
    ("GET", "/v1/status", "get_status"),
    ("GET", "/v1/genesis", "get_genesis"),
    ("GET", "/healthz", "get_health"),
    ("GET", "/readyz", "get_ready"),
    ("GET", "/metrics", "get_metrics"),
    ("GET", "/v1/openapi.json", "get_openapi"),
    ("GET", "/", "get_index"),
]
DEBUG_ROUTES: list[tuple[str, str, str]] = [("POST", "/v1/debug/faults", "post_faults")]


def make_app(
    service: NodeService,
    limits: Limits,
    debug_endpoints: bool = False,
    *,
    rejected: Counter[str] | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
    request_seconds: Histogram | None = None,
    reads: str = "open",
    throttle: Throttle | None = None,
) -> web.Application:
    """The API application. `rejected` counts error answers by code and `request_seconds`
    times every answer by route (api/timing.py); both are shared with the node's metrics.
    `reads`: "open" or "authenticated" (api/auth.py); `throttle`: the per-client token
    buckets, shared with the node's intake (by default, buckets of `limits`)."""
    routes = ROUTES + (DEBUG_ROUTES if debug_endpoints else [])
    # the console's routes are documented by their paths without the regular expression
    console_paths = [(m, p.replace("{asset:.+}", "{asset}")) for m, p, _ in CONSOLE_ROUTES]
    spec: dict[str, Any] = document([(m, p) for m, p, _ in routes] + console_paths, limits, __version__)
    counts: Counter[str] = rejected if rejected is not None else Counter()
    views = Views(service, limits, counts, spec, body_timeout_s)
    # timed first: the outermost middleware, so error answers are timed too
    app = web.Application(client_max_size=limits.body_max_bytes, middlewares=[timed, json_errors, authenticate])
    app[REJECTED] = counts
    app[READ_AUTH] = ReadAuth(service, reads, throttle or throttle_of(limits))
    app[REQUEST_SECONDS] = request_seconds if request_seconds is not None else request_histogram()
    hub = app[EVENTS_HUB] = EventHub(service, limits)
    app.on_shutdown.append(hub.stop)  # before aiohttp waits for handlers: streams end at once
    for method, path, name in routes:
        # allow_head=False keeps the router's routes and the OpenAPI paths one-to-one.
        if method == "GET":
            app.router.add_get(path, getattr(views, name), allow_head=False)
        else:
            app.router.add_route(method, path, getattr(views, name))
    console = Console()
    for _, path, name in CONSOLE_ROUTES:
        app.router.add_get(path, getattr(console, name), allow_head=False)
    return app
