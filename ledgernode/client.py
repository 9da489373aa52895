"""Client SDK: build and sign records, submit them, wait for commit, fetch and verify evidence.

Two front ends over one core:

    Client       synchronous, stdlib urllib (scripts, notebooks, the CLI)
    AsyncClient  asyncio, aiohttp through `ledgernode.aio` (services)

`Core` (ledgernode/calls.py) holds everything both need: signing, the request for
each call (path, query, body, content type, timeout) and the parsing of each answer
(JSON or raw bytes, `ApiError` from the `{"error": {"code", "message"}}` body, how
long to wait before retrying a 503). The front ends only move bytes over the wire
and sleep between retries; the errors and body helpers are importable from here.

Outcomes (docs/protocol.md sections 4-5): refused at the door, `ApiError` (`.rule`
names a broken ledger rule); rejected when a block was built, `RecordRejected`;
a wait that runs out, `{"id", "status": "pending"}`. The auditors' reads return
the node's JSON as it is: saved, it verifies with `ledgernode verify --kind`.

    from ledgernode import crypto
    from ledgernode.client import Client, body_with_file

    c = Client("http://127.0.0.1:7100", crypto.load_private_key("devnet/clients/admin.pem"))
    body = body_with_file("evidence.notarize", {"title": "contract"}, Path("contract.pdf"))
    answer = c.submit(c.record("evidence.notarize", "case-42", body), wait=True)
    verdict = c.verify_evidence(c.evidence(answer["id"]), Path("devnet/genesis.json").read_bytes())
"""

from __future__ import annotations

import asyncio
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from . import crypto, sse
from .aio import URL, ClientError as AioClientError, ClientSession, ClientTimeout, TCPConnector

from .calls import (
    DEFAULT_TIMEOUT_S, EVENTS_BACKOFF_MAX_S, EVENTS_BACKOFF_S, EVENTS_IDLE_TIMEOUT_S, EVENTS_RECONNECTS_MAX,
    RETRIES_503_MAX, RETRY_AFTER_DEFAULT_S, RETRY_AFTER_MAX_S, ApiError, Call, ClientError, Core, EventFeed,
    RecordRejected, StreamEnded, TransportError, body_with_file, count_arg, error_from, hash_fields, header_map,
    id_hex, json_body, optional_count, rejection, sha256_file, with_query,
)

# The SDK's names, importable from here as before the calls moved to ledgernode/calls.py.
__all__ = [
    "AsyncClient", "Client", "ApiError", "ClientError", "RecordRejected", "StreamEnded", "TransportError",
    "EventFeed", "body_with_file", "hash_fields", "id_hex", "json_body", "rejection", "sha256_file",
    "DEFAULT_TIMEOUT_S", "EVENTS_BACKOFF_MAX_S", "EVENTS_BACKOFF_S", "EVENTS_IDLE_TIMEOUT_S",
    "EVENTS_RECONNECTS_MAX", "RETRIES_503_MAX", "RETRY_AFTER_DEFAULT_S", "RETRY_AFTER_MAX_S",
]

RESPONSE_MAX_BYTES = 32 << 20
RESPONSE_CHUNK_BYTES = 64 << 10


# -- synchronous front end -------------------------------------------------------------


def _read_bounded(stream: Any) -> bytes:
    data = stream.read(RESPONSE_MAX_BYTES + 1)
    if len(data) > RESPONSE_MAX_BYTES:
        raise TransportError(f"answer is larger than {RESPONSE_MAX_BYTES} bytes")
    return bytes(data)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class Client(Core):
    """Synchronous client over urllib. Environment proxies are not used (as with aiohttp)."""

    def __init__(self, api_url: str, key: crypto.PrivateKey | None = None,
                 chain_id: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 ca_file: str | os.PathLike[str] | None = None) -> None:
        super().__init__(api_url, key, chain_id, timeout_s, ca_file)
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if self.ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def _exchange(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.api_url + call.path, data=call.body,
                                     headers=self._headers(call), method=call.method)
        timeout = call.timeout_s or self.timeout_s
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                return resp.status, header_map(resp.headers.items()), _read_bounded(resp)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, header_map(exc.headers.items() if exc.headers else ()), _read_bounded(exc)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransportError(f"{call.method} {self.api_url}{call.path}: {reason}") from None

    def _do(self, call: Call) -> bytes:
        attempt = 0
        while True:
            status, headers, body = self._exchange(call)
            delay = self._retry_delay(status, headers, attempt)
            if delay is None:
                return self._checked(status, body)
            attempt += 1
            _sleep(delay)

    def _do_json(self, call: Call) -> dict[str, Any]:
        return self._json(call, self._do(call))

    def record(self, record_type: str, subject: str, body: Mapping[str, Any],
               refs: Iterable[str | bytes] = (), ts: int | None = None) -> bytes:
        """Envelope bytes of a record signed with this client's key (random nonce, ts = now ms)."""
        if self.chain_id is None:
            self.chain_id = self._chain_of(self.genesis())
        return self._sign(record_type, subject, body, refs, ts)

    def submit(self, envelope: bytes, wait: bool = False, timeout_ms: int | None = None) -> dict[str, Any]:
        """The committed or pending answer; RecordRejected if a block refused the record,
        ApiError if the node refused it at the door. Batch items are left as they are:
        `rejection(item)` tells a rejected one."""
        return self._outcome(self._do_json(self._submit_call(envelope, wait, timeout_ms)))

    def submit_batch(self, envelopes: Iterable[bytes], wait: bool = False,
                     timeout_ms: int | None = None) -> dict[str, Any]:
        return self._do_json(self._batch_call(envelopes, wait, timeout_ms))

    def get_record(self, record_id: str | bytes) -> dict[str, Any]:
        return self._do_json(self._get(f"/v1/records/{id_hex(record_id)}"))

    def evidence(self, record_id: str | bytes) -> dict[str, Any]:
        return self._do_json(self._get(f"/v1/records/{id_hex(record_id)}/evidence"))

    def genesis(self) -> bytes:
        return self._do(self._get("/v1/genesis", raw=True))

    def proposals(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of governance proposals by id (docs/governance.md): pass `next_after` on."""
        query = {"after": after, "limit": optional_count(limit, "limit", 1)}
        return self._do_json(self._get(with_query("/v1/governance/proposals", query)))

    def block(self, height: int) -> dict[str, Any]:
        """{"height", "header", "qc", "envelopes"} of a committed block (base64 bytes)."""
        return self._do_json(self._get(f"/v1/blocks/{count_arg(height, 'height', 1)}"))

    def status(self) -> dict[str, Any]:
        return self._do_json(self._get("/v1/status"))

    def checkpoint(self, height: int | None = None) -> dict[str, Any]:
        """{"height", "header", "qc", "log_size", "log_root"} of the head, or of `height`."""
        return self._do_json(self._checkpoint_call(height))

    def consistency(self, old_size: int, new_size: int) -> dict[str, Any]:
        """{"from", "to", "proof"}: RFC 9162 proof between two log sizes (not heights)."""
        return self._do_json(self._consistency_call(old_size, new_size))

    def history(self, subject: str, start: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of a subject's records from list position `start` (kind "subject"; `next_from` pages on)."""
        return self._do_json(self._history_call(subject, start, limit))

    def cert_status(self, number: str, at_ms: int | None = None) -> dict[str, Any]:
        """A certificate's status at `at_ms` (default: the node's now), kind "status"."""
        return self._do_json(self._status_call(number, at_ms))

    def shares(self, dataset: str) -> dict[str, Any]:
        """A dataset's grants, revocations and accesses, kind "shares"."""
        return self._do_json(self._shares_call(dataset))

    def provenance(self, record_id: str | bytes, depth: int | None = None,
                   direction: str = "back") -> dict[str, Any]:
        """The records `record_id` derives from (`back`) or that derive from it (`forward`),
        to `depth` hops (kind "provenance")."""
        return self._do_json(self._provenance_call(record_id, depth, direction))

    def equivocations(self, after: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of equivocation proofs, each checked by `verify --kind equivocation`: pass `next_after` on."""
        return self._do_json(self._equivocations_call(after, limit))

    def events(self, types: Iterable[str] | str | None = None, subject: str | None = None,
               after: str | None = None, heartbeats: bool = False) -> Iterator[sse.Event]:
        """Committed records and blocks as typed events (ledgernode/sse.py), from `after` (an
        event id; "b0": from the beginning; None: new ones only), reconnecting by itself from
        the last id seen (EVENTS_RECONNECTS_MAX, EVENTS_BACKOFF_S). Heartbeats only if asked."""
        feed = EventFeed(types, subject, after, heartbeats)
        while True:
            try:
                yield from self._stream(feed)
                error: ClientError = StreamEnded(f"{self.api_url}/v1/events: the node closed the stream")
            except ClientError as exc:
                error = exc
            _sleep(feed.retry_delay(error))

    def _stream(self, feed: EventFeed) -> Iterator[sse.Event]:
        headers = feed.headers() | self._signed("GET", feed.path)
        req = urllib.request.Request(self.api_url + feed.path, headers=headers)
        try:
            with self._opener.open(req, timeout=EVENTS_IDLE_TIMEOUT_S) as resp:
                while line := resp.readline(sse.LINE_MAX_BYTES + 1):
                    event = feed.feed(line)
                    if event is not None:
                        yield event
        except urllib.error.HTTPError as exc:
            with exc:
                raise error_from(exc.code, _read_bounded(exc)) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise TransportError(f"GET {self.api_url}{feed.path}: {getattr(exc, 'reason', exc)}") from None

    def healthy(self) -> bool:
        """True if GET /healthz answers 2xx (no retries)."""
        try:
            status, _, _ = self._exchange(self._get("/healthz", raw=True))
        except TransportError:
            return False
        return 200 <= status < 300


# -- asynchronous front end ------------------------------------------------------------


async def _asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class AsyncClient(Core):
    """asyncio client; use `async with AsyncClient(...) as c:` or call `await c.close()`."""

    def __init__(self, api_url: str, key: crypto.PrivateKey | None = None,
                 chain_id: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 ca_file: str | os.PathLike[str] | None = None) -> None:
        super().__init__(api_url, key, chain_id, timeout_s, ca_file)
        self._session: ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession(connector=TCPConnector(ssl=self.ssl_context or True))
        return self._session

    async def _exchange(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        timeout = ClientTimeout(total=call.timeout_s or self.timeout_s)
        try:
            # encoded=True: aiohttp would otherwise re-encode the path (%28 -> "(") after it was signed
            async with self._open().request(call.method, URL(self.api_url + call.path, encoded=True), data=call.body,
                                             headers=self._headers(call), timeout=timeout) as resp:
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(RESPONSE_CHUNK_BYTES):
                    size += len(chunk)
                    if size > RESPONSE_MAX_BYTES:
                        raise TransportError(f"answer is larger than {RESPONSE_MAX_BYTES} bytes")
                    chunks.append(chunk)
                return resp.status, header_map(resp.headers.items()), b"".join(chunks)
        except (AioClientError, asyncio.TimeoutError, OSError) as exc:
            raise TransportError(f"{call.method} {self.api_url}{call.path}: {exc!r}") from None

    async def _do(self, call: Call) -> bytes:
        attempt = 0
        while True:
            status, headers, body = await self._exchange(call)
            delay = self._retry_delay(status, headers, attempt)
            if delay is None:
                return self._checked(status, body)
            attempt += 1
            await _asleep(delay)

    async def _do_json(self, call: Call) -> dict[str, Any]:
        return self._json(call, await self._do(call))

    async def record(self, record_type: str, subject: str, body: Mapping[str, Any],
                     refs: Iterable[str | bytes] = (), ts: int | None = None) -> bytes:
        """As Client.record; a coroutine because it may fetch the chain id from the genesis."""
        if self.chain_id is None:
            self.chain_id = self._chain_of(await self.genesis())
        return self._sign(record_type, subject, body, refs, ts)

    async def submit(self, envelope: bytes, wait: bool = False, timeout_ms: int | None = None) -> dict[str, Any]:
        """As Client.submit (RecordRejected for a record a block refused)."""
        return self._outcome(await self._do_json(self._submit_call(envelope, wait, timeout_ms)))

    async def submit_batch(self, envelopes: Iterable[bytes], wait: bool = False,
                           timeout_ms: int | None = None) -> dict[str, Any]:
        return await self._do_json(self._batch_call(envelopes, wait, timeout_ms))

    async def get_record(self, record_id: str | bytes) -> dict[str, Any]:
        return await self._do_json(self._get(f"/v1/records/{id_hex(record_id)}"))

    async def evidence(self, record_id: str | bytes) -> dict[str, Any]:
        return await self._do_json(self._get(f"/v1/records/{id_hex(record_id)}/evidence"))

    async def genesis(self) -> bytes:
        return await self._do(self._get("/v1/genesis", raw=True))

    async def status(self) -> dict[str, Any]:
        return await self._do_json(self._get("/v1/status"))

    # The auditors' reads, as in Client.

    async def checkpoint(self, height: int | None = None) -> dict[str, Any]:
        return await self._do_json(self._checkpoint_call(height))

    async def consistency(self, old_size: int, new_size: int) -> dict[str, Any]:
        return await self._do_json(self._consistency_call(old_size, new_size))

    async def history(self, subject: str, start: int | None = None, limit: int | None = None) -> dict[str, Any]:
        return await self._do_json(self._history_call(subject, start, limit))

    async def cert_status(self, number: str, at_ms: int | None = None) -> dict[str, Any]:
        return await self._do_json(self._status_call(number, at_ms))

    async def shares(self, dataset: str) -> dict[str, Any]:
        return await self._do_json(self._shares_call(dataset))

    async def provenance(self, record_id: str | bytes, depth: int | None = None,
                         direction: str = "back") -> dict[str, Any]:
        return await self._do_json(self._provenance_call(record_id, depth, direction))

    async def block(self, height: int) -> dict[str, Any]:
        return await self._do_json(self._get(f"/v1/blocks/{count_arg(height, 'height', 1)}"))

    async def proposals(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        return await self._do_json(self._proposals_call(after, limit))

    async def equivocations(self, after: int | None = None, limit: int | None = None) -> dict[str, Any]:
        return await self._do_json(self._equivocations_call(after, limit))

    async def events(self, types: Iterable[str] | str | None = None, subject: str | None = None,
                     after: str | None = None, heartbeats: bool = False) -> AsyncIterator[sse.Event]:
        """As Client.events: typed events, reconnecting by itself from the last id seen."""
        feed = EventFeed(types, subject, after, heartbeats)
        while True:
            try:
                async for event in self._stream(feed):
                    yield event
                error: ClientError = StreamEnded(f"{self.api_url}/v1/events: the node closed the stream")
            except ClientError as exc:
                error = exc
            await _asleep(feed.retry_delay(error))

    async def _stream(self, feed: EventFeed) -> AsyncIterator[sse.Event]:
        timeout = ClientTimeout(total=None, sock_connect=self.timeout_s, sock_read=EVENTS_IDLE_TIMEOUT_S)
        try:
            headers = feed.headers() | self._signed("GET", feed.path)
            async with self._open().get(URL(self.api_url + feed.path, encoded=True), headers=headers,
                                        timeout=timeout) as resp:
                if resp.status != 200:
                    raise error_from(resp.status, await resp.content.read(RESPONSE_MAX_BYTES))
                while line := await resp.content.readline():
                    event = feed.feed(line)
                    if event is not None:
                        yield event
        except (AioClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise TransportError(f"GET {self.api_url}{feed.path}: {exc!r}") from None

    async def healthy(self) -> bool:
        try:
            status, _, _ = await self._exchange(self._get("/healthz", raw=True))
        except TransportError:
            return False
        return 200 <= status < 300
