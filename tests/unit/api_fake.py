"""A fake NodeService over a real memory Store, shared by the HTTP API tests.

The fake admits envelopes the way a node does at the door (decode, signer,
ledger rules against the store), keeps a mempool, and commits it on demand
with tests.fixtures.commit_records, so every answer comes from real records,
blocks, QCs and proofs. Fixtures `net`, `node` and `client` are in conftest.py.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from ledgernode import aio
from ledgernode.api import make_app
from ledgernode.config import Limits
from ledgernode.errors import InvalidInput
from ledgernode.genesis import Genesis, build, parse
from ledgernode.reads import Reads
from ledgernode.records import Envelope, check_signer, decode_envelope
from ledgernode.service import Backpressure, Location, Outcome, Rejection, Submitted, locate_in
from ledgernode.state import BlockState
from ledgernode.storage import Store
from tests.fixtures import DEPTS, T0, Net, commit_records, content, seeded_key

_T = TypeVar("_T")

REPO = Path(__file__).resolve().parents[2]
LIMITS = Limits(body_max_bytes=64 * 1024, batch_max_records=8, wait_default_ms=2_000,
                wait_max_ms=3_000)
MSGPACK = {"Content-Type": "application/msgpack"}
LIMITED = seeded_key("client-limited")  # registered, may submit evidence.* only
STRANGER = seeded_key("client-stranger")  # not in the genesis


def make_net() -> Net:
    """tests.fixtures.Net plus one client whose roles allow evidence.* only."""
    net = Net()
    raw = build(
        net.chain_id,
        [{"dept": DEPTS[i], "name": f"Dept {DEPTS[i]}", "pubkey": k.public.raw.hex()}
         for i, k in enumerate(net.validators)],
        [{"dept": DEPTS[i], "pubkey": k.public.raw.hex(),
          "roles": ["*"] if i == 0 else ["dataset.*", "share.*", "cert.*", "evidence.*", "trace.*"]}
         for i, k in enumerate(net.clients)]
        + [{"dept": DEPTS[1], "pubkey": LIMITED.public.raw.hex(), "roles": ["evidence.*"]}],
    )
    net.genesis = parse(raw)
    return net


class FakeNode:
    """A NodeService with a mempool and a manual `commit`, no consensus."""

    def __init__(self, net: Net, capacity: int = 100) -> None:
        self.net = net
        self.genesis: Genesis = net.genesis
        self.store = Store.memory()
        self.mempool: dict[bytes, Envelope] = {}
        self.capacity = capacity
        self.changed = asyncio.Condition()
        self.faults: dict[str, Any] | None = None
        self.broken = False
        self.ready = True
        self.rejections: dict[bytes, Rejection] = {}  # set by tests: records dropped after admission
        self.proofs: list[dict[str, Any]] = []  # set by tests: equivocation proofs the node keeps
        self.reads = Reads(lambda name: None)

    async def submit(self, raws: list[bytes]) -> list[Submitted | Exception]:
        out: list[Submitted | Exception] = []
        for raw in raws:
            try:
                out.append(self._admit(raw))
            except (InvalidInput, Backpressure) as exc:
                out.append(exc)
        return out

    def _admit(self, raw: bytes) -> Submitted:
        env = decode_envelope(raw, self.genesis)
        signer = check_signer(env, self.genesis)
        loc = self.locate(env.record_id)
        if loc is not None or env.record_id in self.mempool:
            return Submitted(env, loc)
        if len(self.mempool) >= self.capacity:
            raise Backpressure("mempool is full", retry_after_s=2)
        BlockState(self.store, self.genesis, T0).admit(env, signer)
        self.mempool[env.record_id] = env
        return Submitted(env, None)

    async def commit(self) -> None:
        raws = [env.raw for env in self.mempool.values()]
        self.mempool.clear()
        commit_records(self.net, self.store, raws)
        async with self.changed:
            self.changed.notify_all()

    async def reject(self, rejection: Rejection) -> None:
        """Drop a pending record as the block builder would, waking its waiters."""
        self.mempool.pop(rejection.record_id, None)
        self.rejections[rejection.record_id] = rejection
        async with self.changed:
            self.changed.notify_all()

    def _outcome(self, record_id: bytes) -> Outcome | None:
        if record_id in self.mempool:  # admitted again after a rejection: pending once more
            return self.locate(record_id)
        return self.locate(record_id) or self.rejections.get(record_id)

    async def wait_committed(
        self, record_ids: list[bytes], timeout_s: float
    ) -> list[Outcome | None]:
        async def all_ended() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: all(self._outcome(r) for r in record_ids))

        try:
            await asyncio.wait_for(all_ended(), timeout_s)
        except TimeoutError:
            pass
        return [self._outcome(r) for r in record_ids]

    async def wait_height(self, height: int, timeout_s: float) -> None:
        async def moved() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: self.store.height > height)

        try:
            await asyncio.wait_for(moved(), timeout_s)
        except TimeoutError:
            pass

    def locate(self, record_id: bytes) -> Location | None:
        return locate_in(self.store, record_id)

    def pending(self, record_id: bytes) -> Envelope | None:
        return self.mempool.get(record_id)

    def rejection(self, record_id: bytes) -> Rejection | None:
        return self.rejections.get(record_id)

    def equivocations(self, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        return [(seq, proof) for seq, proof in enumerate(self.proofs) if seq > after][:limit]

    async def read(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await self.reads.run(fn, *args)

    def status(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("status exploded")
        return {"height": self.store.height, "round": 0, "primary": 1, "mempool": len(self.mempool),
                "peers": {1: "up"}, "head_hash": bytes(32), "tag": b"\x01\x02"}

    def readiness(self) -> dict[str, Any]:
        reasons = [] if self.ready else ["catching up: height 0, a peer is at 9"]
        return {"ready": self.ready, "height": self.store.height, "peer_height": 9, "validators_reachable": 4,
                "quorum": 3, "reasons": reasons}

    def metrics(self) -> str:
        return f"ledgernode_height {self.store.height}\n"

    def set_faults(self, spec: dict[str, Any]) -> None:
        if "bogus" in spec:
            raise ValueError("unknown fault 'bogus'")
        self.faults = spec


def notarize(net: Net, label: str, client: int = 0, **kw: Any) -> bytes:
    return net.record(client, "evidence.notarize", f"EV-{label}", {
        "content_hash": content(label), "media_type": "application/pdf", "size": 10, "title": label,
    }, **kw)


def rid(raw: bytes, net: Net) -> str:
    return decode_envelope(raw, net.genesis).record_id.hex()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@asynccontextmanager
async def serve(node: FakeNode, limits: Limits = LIMITS, debug: bool = False,
                **kw: Any) -> AsyncIterator[aio.TestClient]:
    app = make_app(node, limits, debug, **kw)
    async with aio.TestClient(aio.TestServer(app)) as client:
        yield client


async def error_of(resp: aio.ClientResponse, status: int, code: str) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert resp.content_type == "application/json"
    keys = {"code", "message", "rule"} if code == "rule_violation" else {"code", "message"}
    assert set(body) == {"error"} and set(body["error"]) == keys, body
    if code == "rule_violation":
        assert isinstance(body["error"]["rule"], str) and body["error"]["rule"], body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body
