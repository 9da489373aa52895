"""Proof-serving benchmark: evidence bundles per second from one node's HTTP API
whose log holds 1,000,000 records, and the size of a bundle.

    python scripts/bench_proofs.py [--dir D] [--leaves 1000000] [--seconds 10] [--clients 8]

Builds the store with scripts/bench_store.py's synthetic leaves (or reuses --dir),
serves it with the real API (ledgernode.api.make_app) in a child process, and
asks for the evidence of random records from C concurrent clients. The
synthetic records carry dummy signatures, so the bundles are the right size and
shape but do not verify; the figure is the node's cost of serving them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_store  # noqa: E402

from ledgernode import codec, crypto, genesis  # noqa: E402
from ledgernode.aio import ClientSession, web  # noqa: E402
from ledgernode.api import make_app  # noqa: E402
from ledgernode.config import Limits  # noqa: E402
from ledgernode.records import record_id_of  # noqa: E402
from ledgernode.storage import Store  # noqa: E402

SAMPLE_IDS = 5_000


def bench_genesis() -> genesis.Genesis:
    key = crypto.private_key_from_seed(bytes(32))
    raw = genesis.build(bench_store.CHAIN, [{"dept": "bench", "pubkey": key.public.raw.hex()}], [])
    return genesis.parse(raw)


class ReadOnlyService:
    """Just what GET /v1/records/{id}/evidence needs of a node."""

    def __init__(self, store: Store) -> None:
        self.store, self.genesis = store, bench_genesis()

    def locate(self, record_id: bytes) -> Any:
        return None

    def pending(self, record_id: bytes) -> Any:
        return None


async def serve(path: Path, port: int) -> None:
    store = Store.open(path)
    runner = web.AppRunner(make_app(ReadOnlyService(store), Limits()), access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def sample_ids(path: Path, count: int) -> list[str]:
    store = Store.open(path)
    rng = random.Random(7)
    ids = []
    for _ in range(count):
        outer = codec.decode(store.load_envelope(rng.randrange(store.log_size)))
        ids.append(record_id_of(outer[0]).hex())
    size = store.log_size
    store.close()
    print(f"store holds {size:,} leaves", file=sys.stderr)
    return ids


async def load(port: int, ids: list[str], seconds: float, clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    sizes: list[int] = []
    stop = time.monotonic() + seconds

    async def client(k: int) -> None:
        i = k
        async with ClientSession() as session:
            while time.monotonic() < stop:
                t = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/v1/records/{ids[i % len(ids)]}/evidence") as r:
                    body = await r.read()
                    assert r.status == 200, body[:200]
                latencies.append(time.perf_counter() - t)
                sizes.append(len(body))
                i += clients

    start = time.monotonic()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.monotonic() - start
    lat = sorted(latencies)
    return {"bundles": len(lat), "bundles_per_s": round(len(lat) / elapsed, 1), "clients": clients,
            "latency_ms": {"p50": round(lat[len(lat) // 2] * 1000, 2), "p99": round(lat[int(len(lat) * 0.99)] * 1000, 2)},
            "bundle_bytes": {"median": int(statistics.median(sizes)), "max": max(sizes)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", help="reuse (or create) the store here")
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--block", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=7790)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = Path(args.dir or tempfile.mkdtemp(prefix="ledgernode-proofs-")) / "ledger"
    if args.serve:
        asyncio.run(serve(path, args.port))
        return 0
    store = Store.open(path)
    if store.log_size < args.leaves:
        print(f"appending {args.leaves - store.log_size:,} synthetic leaves", file=sys.stderr)
        bench_store.append_phase(store, args.leaves - store.log_size, args.block)
    store.close()
    ids = sample_ids(path, SAMPLE_IDS)
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--dir", str(path.parent),
                              "--port", str(args.port)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        result = asyncio.run(load(args.port, ids, args.seconds, args.clients))
    finally:
        child.terminate()
        child.wait(timeout=30)
    result["leaves"] = args.leaves
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
