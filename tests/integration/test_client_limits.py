"""Per-client token buckets on a real node (docs/security.md section 10): reads by address
and writes by signing key answer 429 rate_limited with Retry-After once their bucket is
empty, the probes never do, and /metrics counts every refusal."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ledgernode import client as sdk
from tests.integration.procs import Cluster, running

pytestmark = pytest.mark.slow

BURST = 5
LIMITS = {"read_rate_per_s": 1, "read_burst": BURST, "write_rate_per_s": 1, "write_burst": BURST}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(tmp_path_factory.mktemp("limits"), n=1, limits=LIMITS) as c:
        yield c


def get(c: Cluster, path: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(c.api(0) + path, timeout=60) as resp:  # noqa: S310 - the test's own node
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), json.loads(err.read())


def refused(c: Cluster, kind: str, by: str) -> int:
    _, _, text = get(c, "/metrics")
    sample = f'ledgernode_rate_limited_total{{kind="{kind}",by="{by}"}} '
    return int(next(line for line in text.decode().splitlines() if line.startswith(sample)).split()[-1])


def test_reads_past_the_address_burst_get_429_and_probes_never_do(node: Cluster) -> None:
    answers = [get(node, "/v1/genesis") for _ in range(BURST + 3)]
    limited = [a for a in answers if a[0] == 429]
    assert limited, [a[0] for a in answers]
    status, headers, body = limited[0]
    assert body["error"]["code"] == "rate_limited" and int(headers["Retry-After"]) >= 1
    assert all(get(node, path)[0] == 200 for path in ("/healthz", "/readyz", "/metrics") * 3)
    assert refused(node, "read", "address") >= len(limited)


def test_records_past_a_keys_burst_are_refused_in_the_batch(node: Cluster) -> None:
    client = sdk.Client(node.api(0), node.client, node.genesis.chain_id)
    body = {"content_hash": "77" * 32, "media_type": "text/plain", "size": 1, "title": "t"}
    envelopes = [client.record("evidence.notarize", f"EV-{i}", sdk.json_body("evidence.notarize", body))
                 for i in range(BURST + 3)]
    results = client.submit_batch(envelopes)["results"]
    codes = [r.get("error", {}).get("code") for r in results]
    assert codes.count("rate_limited") >= 3 and codes[:1] == [None], codes
    assert refused(node, "write", "key") >= codes.count("rate_limited")
