"""Authenticated reads and TLS against real nodes (docs/security.md sections 8-10): four
validators serving HTTPS and linking over TLS, with `reads = "authenticated"`; every read
route unsigned, with a bad, replayed, stale or unknown-key signature, from the wrong
department and from the right one, over mutual TLS with a registered key's certificate;
and answers given out still verify offline. Then a man in the middle between two nodes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgernode import client as sdk, crypto, httpsig, sse
from ledgernode.verify import verify_file
from tests.integration.procs import Cluster, running, wait_until
from tests.unit.test_tls import relay

pytestmark = pytest.mark.slow

MARKET, HEALTH, AUDITOR = 0, 1, 2  # Cluster.clients
OPEN = ["/healthz", "/readyz", "/metrics", "/v1/status", "/v1/genesis", "/v1/openapi.json", "/"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("reads")
    clients = [("market", ["dataset.*", "share.*"]), ("health", ["evidence.*"]), ("customs", ["audit.read"])]
    with running(root, reads="authenticated", tls=True, clients=clients) as c:
        yield c


def sdk_client(c: Cluster, key: crypto.PrivateKey | None) -> sdk.Client:
    return sdk.Client(c.api(0), key, c.genesis.chain_id, ca_file=c.ca_file)


@pytest.fixture(scope="module")
def ledger(cluster: Cluster) -> dict[str, Any]:
    """Records of the justice client (the owner) and of market (the grantee), committed."""
    justice = sdk_client(cluster, cluster.client)
    market = sdk_client(cluster, cluster.clients[MARKET][2])
    now = int(time.time() * 1000)
    ids: dict[str, Any] = {}

    def put(client: sdk.Client, name: str, rtype: str, subject: str, body: dict[str, Any],
            refs: tuple[str, ...] = ()) -> None:
        answer = client.submit(client.record(rtype, subject, sdk.json_body(rtype, body), refs), wait=True)
        assert answer["status"] == "committed", answer
        ids[name] = answer

    put(justice, "evidence", "evidence.notarize", "EV-1", {"content_hash": "44" * 32, "media_type": "text/plain",
                                                            "size": 3, "title": "t"})
    put(justice, "odd", "evidence.notarize", "case(17)!*", {"content_hash": "66" * 32, "media_type": "text/plain",
                                                             "size": 3, "title": "odd subject"})
    data = {"title": "case files", "content_hash": "11" * 32, "schema_hash": "22" * 32}
    put(justice, "publish", "dataset.publish", "DS-S", {**data, "classification": "sensitive"})
    put(justice, "grant", "share.grant", "DS-S", {"to_dept": "market", "purpose": "case 17 investigation",
                                                  "legal_basis": "Art. 12", "expires": now + 86_400_000})
    put(market, "access", "share.access", "DS-S", {"grant": ids["grant"]["id"], "purpose": "case 17",
                                                   "content_hash": "33" * 32}, refs=(ids["evidence"]["id"],))
    put(justice, "internal", "dataset.publish", "DS-I", {**data, "classification": "internal"})
    return ids


def raw_get(c: Cluster, path: str, headers: dict[str, str] | None = None,
            ctx: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(c.api(0) + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60, context=ctx or c.ssl_context) as resp:
            body = resp.read()
            return resp.status, dict(resp.headers), (json.loads(body) if body[:1] in (b"{", b"[") else body)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), json.loads(err.read())


def signed(key: crypto.PrivateKey, path: str, now_s: int | None = None) -> dict[str, str]:
    target, _, query = path.partition("?")
    return httpsig.sign_request(key, "GET", target, f"?{query}", int(time.time()) if now_s is None else now_s)


def read_routes(ids: dict[str, Any]) -> list[str]:
    rid, height = ids["grant"]["id"], ids["grant"]["height"]
    return [f"/v1/records/{rid}", f"/v1/records/{rid}/evidence", f"/v1/records/{rid}/certificate",
            f"/v1/blocks/{height}", "/v1/checkpoint", f"/v1/checkpoints/{height}",
            f"/v1/proofs/consistency?from=1&to={ids['evidence']['leaf_index'] + 1}", "/v1/subjects/DS-S",
            "/v1/certificates/C-1/status", "/v1/datasets/DS-S/shares", f"/v1/provenance/{rid}",
            "/v1/equivocations", "/v1/governance/proposals", "/v1/events?after=b0"]


def test_every_read_route_needs_a_signature_and_probes_do_not(cluster: Cluster, ledger: dict[str, Any]) -> None:
    for path in OPEN:
        status, _, _ = raw_get(cluster, path)
        assert status == 200, path
    for path in read_routes(ledger):
        status, headers, body = raw_get(cluster, path)
        assert status == 401, (path, status, body)
        assert body["error"]["code"] == "unauthenticated" and "Signature-Input" in body["error"]["message"]
        assert headers.get("Accept-Signature", "").startswith('rd=("@method" "@path" "@query")')


def test_bad_replayed_stale_and_unknown_signatures_are_refused(cluster: Cluster, ledger: dict[str, Any]) -> None:
    key, path = cluster.clients[HEALTH][2], "/v1/checkpoint"
    headers = signed(key, path)
    forged = dict(headers, Signature="rd=:" + base64.b64encode(bytes(64)).decode() + ":")
    assert raw_get(cluster, path, forged)[2]["error"]["code"] == "bad_signature"
    assert raw_get(cluster, path, headers)[0] == 200
    assert raw_get(cluster, path, headers)[2]["error"]["code"] == "replayed"
    stale = signed(key, path, int(time.time()) - httpsig.PAST_S - 60)
    assert raw_get(cluster, path, stale)[2]["error"]["code"] == "signature_expired"
    assert raw_get(cluster, path, signed(crypto.generate_private_key(), path))[2]["error"]["code"] == "unknown_key"
    moved = signed(key, "/v1/checkpoints/1")  # signed for another path
    assert raw_get(cluster, path, moved)[2]["error"]["code"] == "bad_signature"


def test_sensitive_dataset_records_only_for_owner_grantee_and_auditor(
        cluster: Cluster, ledger: dict[str, Any]) -> None:
    keys = {"justice": cluster.client, **{d: k for d, _, k in cluster.clients}}
    grant, height = ledger["grant"]["id"], ledger["grant"]["height"]
    for path in (f"/v1/records/{grant}", "/v1/datasets/DS-S/shares", "/v1/subjects/DS-S"):
        for dept in ("justice", "market", "customs"):
            status, _, body = raw_get(cluster, path, signed(keys[dept], path))
            assert status == 200, (path, dept, body)
        status, _, body = raw_get(cluster, path, signed(keys["health"], path))
        assert status == 403 and body["error"]["right"] == "dataset:DS-S", (path, body)
        assert "health" in body["error"]["message"]
    path = "/v1/datasets/DS-I/shares"  # an internal dataset: any registered key
    assert raw_get(cluster, path, signed(keys["health"], path))[0] == 200
    path = f"/v1/blocks/{height}"
    _, _, block = raw_get(cluster, path, signed(keys["health"], path))
    assert grant in [w["id"] for w in block["withheld"]] and None in block["envelopes"]
    _, _, full = raw_get(cluster, path, signed(keys["market"], path))
    assert "withheld" not in full and None not in full["envelopes"]
    assert full["header"] == block["header"] and full["qc"] == block["qc"]


def test_bundles_for_the_parties_and_auditors_and_they_verify_offline(
        cluster: Cluster, ledger: dict[str, Any], tmp_path: Path) -> None:
    keys = {"justice": cluster.client, **{d: k for d, _, k in cluster.clients}}
    path = f"/v1/records/{ledger['evidence']['id']}/evidence"
    status, _, body = raw_get(cluster, path, signed(keys["market"], path))
    assert status == 403 and body["error"]["right"] == "party"
    for dept in ("justice", "customs"):
        assert raw_get(cluster, path, signed(keys[dept], path))[0] == 200
    bundle = sdk_client(cluster, keys["justice"]).evidence(ledger["evidence"]["id"])
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    assert verify_file(tmp_path / "bundle.json", cluster.genesis).valid
    shares = sdk_client(cluster, keys["market"]).shares("DS-S")
    (tmp_path / "shares.json").write_text(json.dumps(shares))
    assert verify_file(tmp_path / "shares.json", cluster.genesis, "shares").valid


def test_mutual_tls_with_a_registered_keys_certificate_is_that_keys_reader(
        cluster: Cluster, ledger: dict[str, Any]) -> None:
    assert cluster.ca_file is not None
    ca_dir = cluster.ca_file.parent
    ca = crypto.TlsIdentity((ca_dir / "ca.crt").read_bytes(), (ca_dir / "ca.key").read_bytes())
    path = "/v1/datasets/DS-S/shares"
    for who, expected in ((MARKET, 200), (HEALTH, 403)):
        ident = crypto.make_tls_cert(ca, f"client-{who}", [], client=True, key=cluster.clients[who][2])
        cert, key = ca_dir / f"client{who}.crt", ca_dir / f"client{who}.key"
        cert.write_bytes(ident.cert_pem)
        key.write_bytes(ident.key_pem)
        ctx = ssl.create_default_context(cafile=str(cluster.ca_file))
        ctx.load_cert_chain(cert, key)
        status, _, body = raw_get(cluster, path, ctx=ctx)
        assert status == expected, body


def test_plain_http_is_not_served_on_the_tls_ports(cluster: Cluster) -> None:
    url = cluster.api(0).replace("https://", "http://") + "/healthz"
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=30)  # noqa: S310 - the test's own node


def test_the_cli_signs_reads_with_key_over_https(cluster: Cluster, ledger: dict[str, Any], tmp_path: Path) -> None:
    key_file = tmp_path / "market.pem"
    crypto.save_private_key(key_file, cluster.clients[MARKET][2])
    out = tmp_path / "shares.json"
    base = [sys.executable, "-m", "ledgernode", "shares", "DS-S", "--api", cluster.api(0),
            "--cacert", str(cluster.ca_file), "--out", str(out)]
    refused = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "unauthenticated" in refused.stderr
    done = subprocess.run(base + ["--key", str(key_file)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["dataset"] == "DS-S"


def metric(c: Cluster, i: int, sample: str) -> float:
    status, _, body = raw_get_node(c, i, "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def raw_get_node(c: Cluster, i: int, path: str) -> tuple[int, dict[str, str], Any]:
    with urllib.request.urlopen(c.api(i) + path, timeout=60, context=c.ssl_context) as resp:  # noqa: S310
        return resp.status, dict(resp.headers), resp.read()


class Relay:
    """A man in the middle on its own loop (tests/unit/test_tls.py's relay): terminates TLS
    with `cert`/`key` (valid under the network's CA: another node's) and opens its own TLS
    connection to 127.0.0.1:`upstream`."""

    def __init__(self, cert: Path, key: Path, upstream: int) -> None:
        self.listen = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.listen.load_cert_chain(cert, key)
        self.dial = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.dial.check_hostname, self.dial.verify_mode = False, ssl.CERT_NONE
        self.upstream, self.port = upstream, 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(relay(self.listen, self.upstream, self.dial))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def test_a_node_in_the_middle_with_another_nodes_certificate_is_refused(cluster: Cluster) -> None:
    """Node 3 is made to dial node 0 through a relay presenting node 2's certificate, which
    node 3's CA accepts: node 0 refuses the handshake, whose signature covers node 2's
    certificate, not its own; node 3 links again once its address is put back."""
    assert cluster.ca_file is not None
    tls_dir = cluster.ca_file.parent
    relay = Relay(tls_dir / "node2.crt", tls_dir / "node2.key", cluster.peer_ports[0])
    config = cluster.root / "node3" / "node.toml"
    text = config.read_text()
    real = f"127.0.0.1:{cluster.peer_ports[0]}"
    refused = 'ledgernode_events_total{event="peer_refused"}'
    up = 'ledgernode_peer_up{peer="0",key_id="%s"}' % cluster.keys[0].public.key_id
    before = metric(cluster, 0, refused)
    try:
        config.write_text(text.replace(real, f"127.0.0.1:{relay.port}"))
        os.kill(cluster.procs[3].pid, signal.SIGHUP)
        wait_until("node 0 refusing the relayed handshakes",
                   lambda: (metric(cluster, 0, refused) >= before + 2, metric(cluster, 0, refused)))
        assert metric(cluster, 3, up) == 0
    finally:
        config.write_text(text)
        os.kill(cluster.procs[3].pid, signal.SIGHUP)
        relay.stop()
    wait_until("node 3's link to node 0 up again", lambda: (metric(cluster, 3, up) == 1, metric(cluster, 3, up)))


def test_answers_about_a_sensitive_dataset_say_nothing_to_others(cluster: Cluster, ledger: dict[str, Any]) -> None:
    health = cluster.clients[HEALTH][2]
    path = "/v1/subjects/DS-S?from=999999"  # a page past the end would still say how many records it has
    status, _, body = raw_get(cluster, path, signed(health, path))
    assert status == 403 and body["error"]["right"] == "dataset:DS-S"
    path = f"/v1/provenance/{ledger['evidence']['id']}?direction=forward"  # reaches the sensitive access record
    status, _, body = raw_get(cluster, path, signed(health, path))
    assert status == 403 and body["error"]["right"] == "answer", body
    assert "DS-S" not in body["error"]["message"] and ledger["access"]["id"] not in body["error"]["message"]
    status, _, body = raw_get(cluster, path, signed(cluster.clients[MARKET][2], path))
    assert status == 200 and {r["id"] for r in body["records"]} >= {ledger["access"]["id"]}


def test_the_event_stream_leaves_out_what_its_reader_may_not_see(cluster: Cluster, ledger: dict[str, Any]) -> None:
    last = max(r["height"] for r in ledger.values())

    def subjects(key: crypto.PrivateKey) -> set[str]:
        seen: set[str] = set()
        for event in sdk_client(cluster, key).events(after="b0"):
            if isinstance(event, sse.RecordEvent):
                seen.add(str(event.subject))
            elif isinstance(event, sse.BlockEvent) and event.height >= last:
                return seen
        raise AssertionError("the stream ended")

    assert "DS-S" not in subjects(cluster.clients[HEALTH][2]) and "DS-I" in subjects(cluster.clients[HEALTH][2])
    assert "DS-S" in subjects(cluster.clients[MARKET][2])


async def test_the_async_sdk_signs_reads_of_paths_it_must_percent_encode(
        cluster: Cluster, ledger: dict[str, Any]) -> None:
    async with sdk.AsyncClient(cluster.api(0), cluster.client, cluster.genesis.chain_id,
                               ca_file=cluster.ca_file) as client:
        page = await client.history("case(17)!*")
        assert [r["id"] for r in page["records"]] == [ledger["odd"]["id"]]
        assert (await client.shares("DS-S"))["dataset"] == "DS-S"
