"""Request handlers: parse (inputs), call the NodeService, shape the answer (shapes).

Handlers raise on any failure; the `json_errors` middleware turns the exception
into the JSON error answer, so no handler builds an error response itself.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .. import access
from ..access import Reader
from ..aio import web
from ..auditing import answers, certificate, checkpoints
from ..auditing.bundle import build_bundle
from ..config import Limits
from ..errors import InvalidInput, NotFound
from ..families import gov
from ..genesis import Genesis
from ..members import AnyDept
from ..records import Envelope, decode_envelope
from ..service import Backpressure, Location, NodeService, Outcome, Submitted
from ..storage import Store
from . import inputs, shapes
from .auth import READER
from .errors import describe, error_body
from .events import EVENTS_HUB

log = logging.getLogger(__name__)

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROVENANCE_DEPTH_DEFAULT = 8
PROPOSALS_PAGE_MAX = 100
EQUIVOCATIONS_PAGE_MAX = 100  # the verifier checks a page of at most this many (equivocation.PAGE_MAX)
# The certificate page shows untrusted record fields: even if escaping ever
# failed, nothing on it may run or load anything.
CERTIFICATE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
CONSOLE_PATH = "/ui/"  # where GET / sends a browser (ledgernode/console)


class Views:
    def __init__(self, service: NodeService, limits: Limits, rejected: Counter[str],
                 openapi: dict[str, Any], body_timeout_s: float) -> None:
        self.service = service
        self.limits = limits
        self.rejected = rejected
        self.openapi = openapi
        self.body_timeout_s = body_timeout_s

    # -- writes ----------------------------------------------------------------

    async def post_record(self, request: web.Request) -> web.Response:
        """200 when the record is committed (already, or within ?wait), 409 when it was
        rejected after admission within ?wait, else 202."""
        wait = inputs.wait_params(request, self.limits)
        kind = inputs.body_kind(request)
        raw = inputs.single_envelope(await self._body(request), kind)
        [result] = await self.service.submit([raw])
        if isinstance(result, Exception):
            raise result
        if result.location is None and wait.enabled:
            [end] = await self.service.wait_committed([result.envelope.record_id], wait.timeout_s)
            if end is not None:
                if not isinstance(end, Location):
                    self.rejected[end.code] += 1
                return shapes.respond(shapes.outcome(end), 200 if isinstance(end, Location) else 409)
        item = shapes.submitted(result)
        return shapes.respond(item, 200 if result.location is not None else 202)

    async def post_batch(self, request: web.Request) -> web.Response:
        """200 with one result per envelope, in order; 503 only if every item was refused
        for backpressure (then nothing was admitted and the whole batch should be retried)."""
        wait = inputs.wait_params(request, self.limits)
        kind = inputs.body_kind(request)
        items = inputs.batch_items(await self._body(request), kind, self.limits)
        raws = [item for item in items if isinstance(item, bytes)]
        submitted = iter(await self.service.submit(raws) if raws else [])
        results: list[Submitted | Outcome | Exception] = [
            item if isinstance(item, InvalidInput) else next(submitted) for item in items
        ]
        if wait.enabled:
            await self._wait_batch(results, wait.timeout_s)
        refused = [r for r in results if isinstance(r, Backpressure)]
        if refused and len(refused) == len(results):
            raise refused[0]
        retry_s = max((r.retry_after_s for r in refused), default=0)
        headers = {"Retry-After": str(max(1, retry_s))} if refused else None
        return shapes.respond({"results": [self._item(r) for r in results]}, 200, headers)

    async def _wait_batch(self, results: list[Submitted | Outcome | Exception], timeout_s: float) -> None:
        """Replace the pending items of `results` by how they ended within the timeout."""
        waiting = {i: r for i, r in enumerate(results)
                   if isinstance(r, Submitted) and r.location is None}
        if not waiting:
            return
        ids = [r.envelope.record_id for r in waiting.values()]
        ends = await self.service.wait_committed(ids, timeout_s)
        for i, end in zip(waiting, ends):
            if end is not None:
                results[i] = end

    def _item(self, result: Submitted | Outcome | Exception) -> dict[str, Any]:
        if isinstance(result, Submitted):
            return shapes.submitted(result)
        if isinstance(result, Location):
            return shapes.committed(result)
        if not isinstance(result, Exception):
            self.rejected[result.code] += 1
            return shapes.rejected(result)
        _, code, message, _ = describe(result)
        if code == "internal":
            log.error("batch item failed unexpectedly", exc_info=result)
        self.rejected[code] += 1
        return error_body(code, message, result.rule if isinstance(result, InvalidInput) else None)

    async def post_faults(self, request: web.Request) -> web.Response:
        if inputs.body_kind(request) != "json":
            raise inputs.bad("bad_json", "send the fault spec as application/json")
        # The spec's fields are the node's business; the API only insists on an object.
        spec = inputs.json_object(await self._body(request), None, frozenset())
        try:
            self.service.set_faults(spec)
        except (ValueError, TypeError, KeyError) as exc:
            raise inputs.bad("bad_faults", f"fault spec rejected: {exc}") from None
        return shapes.respond({"ok": True})

    async def _body(self, request: web.Request) -> bytes:
        return await inputs.read_body(request, self.limits, self.body_timeout_s)

    # -- reads -----------------------------------------------------------------

    async def get_record(self, request: web.Request) -> web.Response:
        record_id = inputs.record_id(request.match_info["id"])
        loc = self.service.locate(record_id)
        reader = request[READER]
        if loc is not None:
            raw = self.service.store.load_envelope(loc.leaf_index)
            env = decode_envelope(raw, AnyDept.of(self.service.genesis))
            self._may_see(reader, [env])
            return shapes.respond({**shapes.record_view(env, loc), "signer_dept": self._dept(env)})
        env_pending = self.service.pending(record_id)
        if env_pending is not None:
            self._may_see(reader, [env_pending])
            return shapes.respond({**shapes.record_view(env_pending, None), "signer_dept": self._dept(env_pending)})
        rejection = self.service.rejection(record_id)
        if rejection is not None:
            if reader is not None:  # its message may name what the record was about (a grant, a department)
                rejection = dataclasses.replace(rejection, message="rejected after admission: see error.code and "
                                                "error.rule; the submitter was told why with ?wait")
            return shapes.respond(shapes.rejected(rejection))
        raise NotFound(f"record {record_id.hex()} is neither committed, pending nor recently rejected here")

    def _dept(self, env: Envelope) -> str | None:
        """The department of the record's signing key (the browser console shows it)."""
        return self.service.store.members(self.service.genesis).dept_of(env.record.key)

    async def get_evidence(self, request: web.Request) -> web.Response:
        """The bundle, against the head as its checkpoint (docs/protocol.md section 12.4)."""
        record_id = inputs.record_id(request.match_info["id"])
        return await self._answer(_bundle_for, self.service.store, self.service.genesis, record_id, request[READER])

    async def get_block(self, request: web.Request) -> web.Response:
        height = inputs.height(request.match_info["height"])
        if height > self.service.store.height:
            raise NotFound(f"no block at height {height} (head is {self.service.store.height})")
        return await self._answer(_block_for, self.service.store, self.service.genesis, height, request[READER])

    async def get_checkpoint(self, request: web.Request) -> web.Response:
        """404 `not_found` while no block is committed: there is no header or QC to show."""
        height = self.service.store.height
        if height == 0:
            raise NotFound("no block is committed yet")
        return shapes.respond(checkpoints.checkpoint(self.service.store, height))

    async def get_status(self, request: web.Request) -> web.Response:
        return shapes.respond(self.service.status())

    async def get_genesis(self, request: web.Request) -> web.Response:
        # The exact bytes: auditors pin SHA-256 of this file, so never re-serialise it.
        return web.Response(body=self.service.genesis.raw, content_type="application/json")

    async def get_health(self, request: web.Request) -> web.Response:
        return shapes.respond({"ok": True})

    async def get_ready(self, request: web.Request) -> web.Response:
        """200 when the node is caught up and reaches a quorum; 503 with the reasons when not
        (a probe's answer, not a client's error: the body is the readiness document)."""
        doc = self.service.readiness()
        return shapes.respond(doc, status=200 if doc["ready"] else 503)

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.service.metrics().encode("utf-8"),
                            headers={"Content-Type": PROMETHEUS_TYPE})

    async def get_equivocations(self, request: web.Request) -> web.Response:
        """Proofs that a validator signed two values for one slot, a page at a time."""
        after = inputs.query_int(request, "after", -1)
        limit = inputs.query_int(request, "limit", EQUIVOCATIONS_PAGE_MAX)
        if not 1 <= limit <= EQUIVOCATIONS_PAGE_MAX or after < -1:
            raise inputs.bad("bad_query", f"limit must be 1-{EQUIVOCATIONS_PAGE_MAX} and after >= -1")
        page = self.service.equivocations(after, limit)
        return shapes.respond({"equivocations": [proof for _, proof in page],
                               "next_after": page[-1][0] if len(page) == limit else None})

    async def get_proposals(self, request: web.Request) -> web.Response:
        """Governance proposals, open, applied and expired, by id (docs/governance.md)."""
        after = request.query.get("after", "")
        if after:
            after = inputs.subject(after, "after")
        limit = inputs.query_int(request, "limit", PROPOSALS_PAGE_MAX)
        if not 1 <= limit <= PROPOSALS_PAGE_MAX:
            raise inputs.bad("bad_query", f"limit must be 1-{PROPOSALS_PAGE_MAX}")
        return await self._answer(_proposals, self.service.store, self.service.genesis, after, limit)

    async def get_events(self, request: web.Request) -> web.StreamResponse:
        """The event stream (api/events.py): served by the application's hub."""
        return await request.app[EVENTS_HUB].stream(request)

    async def get_openapi(self, request: web.Request) -> web.Response:
        return shapes.respond(self.openapi)

    async def get_index(self, request: web.Request) -> web.Response:
        """Where a person or a client lands first: JSON, or for a browser the console."""
        if inputs.prefers_html(request):
            raise web.HTTPFound(CONSOLE_PATH)
        status = self.service.status()
        return shapes.respond(shapes.index_view(status, self.openapi["info"]["version"]))

    # -- auditors' answers (ledgernode/auditing; `ledgernode verify --kind ...` checks them) --

    async def _answer(self, build: Callable[..., Any], *args: Any) -> web.Response:
        """A heavy answer, built and turned into JSON bytes off the event loop (reads.py)."""
        return shapes.respond_body(await self.service.read(_json_of, build, *args))

    async def _records_answer(self, request: web.Request, build: Callable[..., Any], *args: Any,
                              about: str | None = None) -> web.Response:
        """An auditor's answer, `build(store, genesis, *args)`, refused if it holds a record
        the reader may not see, or (`about`, a subject) is about a sensitive dataset the
        reader may not read about (ledgernode/access.py)."""
        return shapes.respond_body(await self.service.read(_visible_json, request[READER], about, build,
                                                           self.service.store, self.service.genesis, *args))

    def _may_see(self, reader: Reader | None, envs: list[Envelope]) -> None:
        if reader is not None:
            store = self.service.store
            access.check_records(reader, envs, store, store.members(self.service.genesis), _ledger_time(store))

    async def get_consistency(self, request: web.Request) -> web.Response:
        """RFC 9162 consistency proof between two log sizes (tree sizes, not heights)."""
        old_size = inputs.query_int(request, "from")
        new_size = inputs.query_int(request, "to")
        return shapes.respond(checkpoints.consistency(self.service.store, old_size, new_size))

    async def get_checkpoint_at(self, request: web.Request) -> web.Response:
        height = inputs.height(request.match_info["height"])
        return shapes.respond(checkpoints.checkpoint(self.service.store, height))

    async def get_subject(self, request: web.Request) -> web.Response:
        subject = inputs.subject(request.match_info["subject"])
        start = inputs.query_int(request, "from", 0)
        limit = inputs.query_int(request, "limit", answers.SUBJECT_PAGE_DEFAULT)
        return await self._records_answer(request, answers.subject_history, subject, start, limit, about=subject)

    async def get_cert_status(self, request: web.Request) -> web.Response:
        number = inputs.subject(request.match_info["number"], "certificate number")
        at_ms = inputs.query_int(request, "at", time.time_ns() // 1_000_000)
        return await self._records_answer(request, answers.cert_status, number, at_ms)

    async def get_shares(self, request: web.Request) -> web.Response:
        dataset = inputs.subject(request.match_info["id"], "dataset id")
        return await self._records_answer(request, answers.dataset_shares, dataset, about=dataset)

    async def get_provenance(self, request: web.Request) -> web.Response:
        record_id = inputs.record_id(request.match_info["record_id"])
        depth = inputs.query_int(request, "depth", PROVENANCE_DEPTH_DEFAULT)
        direction = request.query.get("direction", "back")
        return await self._records_answer(request, answers.provenance, record_id, depth, direction)

    async def get_certificate(self, request: web.Request) -> web.Response:
        """The printable evidence certificate (HTML) with the bundle embedded; 404 until committed."""
        record_id = inputs.record_id(request.match_info["id"])
        page = await self.service.read(_certificate_page, self.service.store, self.service.genesis, record_id,
                                       request[READER])
        return web.Response(text=page, content_type="text/html", charset="utf-8",
                            headers=CERTIFICATE_HEADERS)


def _json_of(build: Callable[..., Any], *args: Any) -> bytes:
    return shapes.json_body(build(*args))


def _ledger_time(store: Store) -> int:
    """The head block's time: what a grant's expiry is judged against (ledgernode/access.py)."""
    head = store.head()
    return head.time if head is not None else 0


def _visible_json(reader: Reader | None, about: str | None, build: Callable[..., Any], store: Store,
                  genesis: Genesis, *args: Any) -> bytes:
    if reader is not None and about is not None:
        access.check_subject(reader, about, store, _ledger_time(store))
    doc = build(store, genesis, *args)
    if reader is not None:
        anyone = AnyDept.of(genesis)
        envs = [decode_envelope(base64.b64decode(entry["envelope"]), anyone) for entry in doc.get("records", [])]
        access.check_answer(reader, envs, store, store.members(genesis), _ledger_time(store))
    return shapes.json_body(doc)


def _bundle_for(store: Store, genesis: Genesis, record_id: bytes, reader: Reader | None) -> dict[str, Any]:
    """The bundle, once the reader may have it (ledgernode/access.py): checked here, on the
    reader thread just before it is built, so a record committed meanwhile is checked too."""
    if reader is not None:
        where = store.locate(record_id)
        if where is None:
            raise NotFound(f"record {record_id.hex()} is not committed")
        env = decode_envelope(store.load_envelope(where[0]), AnyDept.of(genesis))
        access.check_bundle(reader, env, store, store.members(genesis), _ledger_time(store))
    return build_bundle(store, genesis, record_id)


def _block_for(store: Store, genesis: Genesis, height: int, reader: Reader | None) -> dict[str, Any]:
    """The block view; for a reader, records it may not see withheld (ledgernode/access.py)."""
    view = shapes.block_view(store, height, genesis)
    if reader is None:
        return view
    members, anyone, now_ms = store.members(genesis), AnyDept.of(genesis), _ledger_time(store)
    withheld = []
    for i, raw in enumerate(view["envelopes"]):
        env = decode_envelope(base64.b64decode(raw), anyone)
        if not access.visible(reader, env, store, members, now_ms):
            view["envelopes"][i] = None
            view["records"][i] = {"leaf_index": view["records"][i]["leaf_index"], "id": env.record_id.hex(),
                                  "withheld": True}
            withheld.append({"index": i, "id": env.record_id.hex()})
    if withheld:
        view["withheld"] = withheld
    return view


def _certificate_page(store: Store, genesis: Genesis, record_id: bytes, reader: Reader | None) -> str:
    return certificate.render(_bundle_for(store, genesis, record_id, reader), genesis)


def _proposals(store: Store, genesis: Genesis, after: str, limit: int) -> dict[str, Any]:
    members, now = store.members(genesis), time.time_ns() // 1_000_000
    page = store.facts_of(gov.GOV, after, limit)
    return {"proposals": [gov.proposal_view(subject, fact, members, now) for subject, fact in page],
            "quorum": members.quorum, "next_after": page[-1][0] if len(page) == limit else None}
