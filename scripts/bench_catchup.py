"""Catch-up speed against the network's commit rate, measured in one run (docs/performance.md).

A temporary 4-node devnet on 127.0.0.1; node 3 is stopped; RECORDS pre-signed
records are committed by the other three (batches with ?wait, several clients),
which gives the network's commit rate; node 3 is started again and the time
from its first block fetched to its log matching node 0's gives the catch-up
rate. Prints one JSON line: both rates and their ratio.

    python scripts/bench_catchup.py [--records 60000] [--base-port 24600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledgernode import codec, crypto, devnet  # noqa: E402
from ledgernode.aio import ClientSession, ClientTimeout  # noqa: E402
from ledgernode.bench import HEALTH_MAX_S, _launch, log, presign  # noqa: E402

BATCH = 500
CLIENTS = 6
POLL_S = 0.05
CATCHUP_MAX_S = 600.0
REQUEST_TIMEOUT_S = 120.0


async def load(apis: list[str], envs: list[bytes]) -> float:
    """Commit every envelope (batches with ?wait across the given nodes); seconds taken."""
    batches = [envs[i:i + BATCH] for i in range(0, len(envs), BATCH)]
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def client(session: ClientSession, n: int) -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            async with session.post(apis[n % len(apis)] + "/v1/records/batch?wait=1&timeout_ms=30000",
                                    data=codec.encode(batch), headers={"Content-Type": "application/msgpack"}) as r:
                doc = await r.json()
                if r.status != 200 or any(x.get("status") != "committed" for x in doc["results"]):
                    queue.put_nowait(batch)  # not all committed in time: send again (duplicates are cheap)

    start = time.monotonic()
    async with ClientSession(timeout=ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
        await asyncio.gather(*(client(session, n) for n in range(CLIENTS)))
    return time.monotonic() - start


async def log_size(session: ClientSession, api: str) -> int:
    async with session.get(api + "/v1/status") as r:
        return int((await r.json())["log_size"])


async def catch_up(api: str, target: int) -> tuple[float, int]:
    """Seconds from the node's first record to `target` records, and where it started."""
    async with ClientSession(timeout=ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
        deadline = time.monotonic() + CATCHUP_MAX_S
        start_size = await log_size(session, api)
        first = None
        while True:
            size = await log_size(session, api)
            now = time.monotonic()
            if first is None and size > start_size:
                first = (now, size)
            if size >= target:
                assert first is not None
                return now - first[0], first[1]
            if now > deadline:
                raise RuntimeError(f"catch-up did not finish in {CATCHUP_MAX_S} s ({size:,} of {target:,})")
            await asyncio.sleep(POLL_S)


def run(records: int, base_port: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ledgernode-catchup-") as tmp:
        root = Path(tmp)
        net, procs = _launch(root, 4, base_port, {})
        try:
            key = crypto.load_private_key(root / net.clients[0].key_file)
            log(f"catch-up bench: pre-signing {records:,} records")
            envs = presign(key, net.chain_id, records, "c")
            lagging = net.nodes[3]
            os.kill(procs[3].pid, signal.SIGTERM)
            procs.pop(3).wait(timeout=60)
            log("catch-up bench: node 3 stopped; the other three commit the records")
            commit_s = asyncio.run(load([n.api for n in net.nodes[:3]], envs))
            target = asyncio.run(_size(net.nodes[0].api))
            log(f"catch-up bench: {target:,} records committed in {commit_s:.1f} s; starting node 3")
            procs[3] = devnet.start_node(net, lagging)
            devnet.wait_healthy(net, {3: procs[3]}, threading.Event(), set(), HEALTH_MAX_S)
            catchup_s, from_size = asyncio.run(catch_up(lagging.api, target))
        finally:
            devnet.stop_nodes(procs)
    network_rate = records / commit_s
    catchup_rate = (target - from_size) / catchup_s if catchup_s > 0 else float("inf")
    return {"records": records, "network_commit_per_s": round(network_rate), "catchup_per_s": round(catchup_rate),
            "catchup_s": round(catchup_s, 2), "ratio": round(catchup_rate / network_rate, 2)}


async def _size(api: str) -> int:
    async with ClientSession(timeout=ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
        return await log_size(session, api)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=60_000, help="records the lagging node must fetch (default 60000)")
    p.add_argument("--base-port", type=int, default=24600, help="devnet base port (default 24600)")
    args = p.parse_args()
    print(json.dumps(run(args.records, args.base_port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
