"""Evidence bundles (docs/protocol.md section 8): NotFound, exact shape and encodings,
proofs against the committing block, and the worked example in docs/protocol.md."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledgernode import codec, crypto, merkle
from ledgernode.auditing.bundle import FORMAT, build_bundle
from ledgernode.codec import b64
from ledgernode.blocks import QC, build_block, decode_header, decode_qc, qc_from_json, vote_bytes
from ledgernode.errors import NotFound
from ledgernode.genesis import parse
from ledgernode.records import decode_envelope, sign_record
from ledgernode.storage import Store
from ledgernode.verify import verify_bundle
from tests.fixtures import Net, T0, commit_records, content, seeded_key

REPO = Path(__file__).resolve().parents[2]
HEX64 = re.compile(r"[0-9a-f]{64}")
B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
BUNDLE_KEYS = {"format", "chain_id", "genesis_hash", "record_id", "envelope", "leaf_index", "block", "inclusion",
               "epochs", "state"}


@pytest.fixture(scope="module")
def ledger() -> tuple[Net, Store, list[bytes]]:
    """Three blocks of 3, 5 and 2 records (10 leaves) in a memory store."""
    net = Net()
    store = Store.memory()
    raws: list[bytes] = []
    sizes = [3, 5, 2]
    for height, size in enumerate(sizes, start=1):
        block = [
            net.record(i % 4, "evidence.notarize", f"EV-{height}-{i}", {
                "content_hash": content(f"file {height}/{i}"), "media_type": "application/pdf",
                "size": 1000 + i, "title": f"item {i}"}, ts=T0 + height)
            for i in range(size)
        ]
        commit_records(net, store, block, time_ms=T0 + height)
        raws += block
    return net, store, raws


def _is_b64(text: Any) -> bool:
    return isinstance(text, str) and bool(B64.fullmatch(text))


def _is_hex32(text: Any) -> bool:
    return isinstance(text, str) and bool(HEX64.fullmatch(text))


def test_unknown_record_is_not_found(ledger: tuple[Net, Store, list[bytes]]) -> None:
    net, store, _ = ledger
    with pytest.raises(NotFound, match="ab" * 32):
        build_bundle(store, net.genesis, bytes.fromhex("ab" * 32))
    # Signed and well formed, but never committed.
    raw = net.record(0, "evidence.notarize", "never", {
        "content_hash": content("never"), "media_type": "text/plain", "size": 1, "title": "t"})
    with pytest.raises(NotFound):
        build_bundle(store, net.genesis, decode_envelope(raw, net.genesis).record_id)
    with pytest.raises(NotFound):
        build_bundle(Store.memory(), net.genesis, bytes(32))


def test_bundle_shape_is_exactly_design_section_6(ledger: tuple[Net, Store, list[bytes]]) -> None:
    net, store, raws = ledger
    env = decode_envelope(raws[4], net.genesis)
    bundle = build_bundle(store, net.genesis, env.record_id)

    assert set(bundle) == BUNDLE_KEYS
    assert bundle["format"] == FORMAT == "ledgernode-evidence/2"
    assert bundle["chain_id"] == net.chain_id
    # 32-byte hashes and ids: lowercase hex.
    assert _is_hex32(bundle["genesis_hash"])
    assert bundle["genesis_hash"] == hashlib.sha256(net.genesis.raw).hexdigest()
    assert _is_hex32(bundle["record_id"])
    assert bundle["record_id"] == crypto.H("record", env.record_bytes).hex()
    # Other byte strings: standard base64 with padding, decoding to the exact bytes.
    assert _is_b64(bundle["envelope"])
    assert base64.b64decode(bundle["envelope"], validate=True) == raws[4]
    assert type(bundle["leaf_index"]) is int and bundle["leaf_index"] == 4

    block = bundle["block"]
    assert set(block) == {"header", "qc"}
    assert _is_b64(block["header"])
    header = decode_header(base64.b64decode(block["header"], validate=True))
    assert header.height == 2 and (header.log_start, header.log_size) == (3, 8)
    assert header.raw == store.load_header(2).raw

    qc = block["qc"]
    assert set(qc) == {"height", "round", "block_hash", "signatures"}
    assert type(qc["height"]) is int and qc["height"] == 2
    assert type(qc["round"]) is int and qc["round"] == 0
    assert _is_hex32(qc["block_hash"]) and qc["block_hash"] == header.block_hash.hex()
    assert [s["validator"] for s in qc["signatures"]] == list(range(net.genesis.quorum))
    for s in qc["signatures"]:
        assert set(s) == {"validator", "sig"}
        assert type(s["validator"]) is int
        assert _is_b64(s["sig"]) and len(base64.b64decode(s["sig"])) == crypto.SIGNATURE_BYTES
        assert net.validators[s["validator"]].public.verify(
            base64.b64decode(s["sig"]), vote_bytes(net.chain_id, 2, 0, header.block_hash))

    assert isinstance(bundle["inclusion"], list)
    assert all(_is_hex32(p) for p in bundle["inclusion"])
    # Version 2 (docs/protocol.md section 12.4): no epochs yet; the head as checkpoint, the
    # consistency proof from the record's block to it, the signer's key entry in its state.
    assert bundle["epochs"] == []
    state = bundle["state"]
    assert set(state) == {"checkpoint", "consistency", "key"} and set(state["checkpoint"]) == {"header", "qc"}
    head = decode_header(base64.b64decode(state["checkpoint"]["header"], validate=True))
    assert head.raw == store.head().raw and head.height > header.height
    assert state["consistency"] == [h.hex() for h in store.consistency_proof(header.log_size, head.log_size)]
    assert set(state["key"]) == {"value", "proof"} and set(state["key"]["proof"]) == {"leaf", "siblings"}
    key = codec.decode(base64.b64decode(state["key"]["value"], validate=True))
    signer = net.genesis.signers[env.record.key]
    assert key == {"pubkey": signer.pubkey.raw, "dept": signer.dept, "roles": list(signer.roles), "from": 0,
                   "until": None}
    assert crypto.key_id(key["pubkey"]) == env.record.key
    # JSON all the way down, and unchanged by a JSON round trip.
    assert json.loads(json.dumps(bundle)) == bundle
    assert verify_bundle(json.loads(json.dumps(bundle)), net.genesis).valid


def test_every_leaf_is_proven_against_its_own_block(ledger: tuple[Net, Store, list[bytes]]) -> None:
    net, store, raws = ledger
    reference = merkle.MemoryTree()
    for raw in raws:
        reference.append(merkle.leaf_hash(raw))
    for index, raw in enumerate(raws):
        env = decode_envelope(raw, net.genesis)
        bundle = build_bundle(store, net.genesis, env.record_id)
        header = decode_header(base64.b64decode(bundle["block"]["header"]))
        assert bundle["leaf_index"] == index
        assert header.log_start <= index < header.log_size  # the block that committed it
        assert header.log_root == merkle.root(reference, header.log_size)
        expected = merkle.inclusion_proof(reference, index, header.log_size)
        assert bundle["inclusion"] == [h.hex() for h in expected]
        assert verify_bundle(bundle, net.genesis).valid


def test_qc_json_and_wire_forms(ledger: tuple[Net, Store, list[bytes]]) -> None:
    net, store, _ = ledger
    qc = store.load_qc(3)
    # JSON form (bundles, API).
    doc = qc.to_json()
    assert qc_from_json(json.loads(json.dumps(doc))) == qc
    # msgpack form (storage, wire): a canonical map, signatures as [index, sig] pairs.
    raw = qc.encode()
    assert decode_qc(raw) == qc
    m = codec.decode(raw)
    assert list(m) == ["block_hash", "height", "round", "signatures"]
    assert m["block_hash"] == qc.block_hash and isinstance(m["block_hash"], bytes)
    assert m["signatures"] == [[i, s] for i, s in qc.signatures]
    assert raw == store.kv.get(b"q/" + (3).to_bytes(8, "big"))


def test_b64_is_standard_with_padding() -> None:
    assert b64(b"\xfb\xff") == "+/8="
    assert b64(b"\xfb\xff\xfe\x00") == "+//+AA=="
    assert b64(b"") == ""


# -- the worked example of docs/protocol.md ------------------------------------------


def worked_example() -> dict[str, str]:
    """The values printed in docs/protocol.md's worked example (all deterministic)."""
    net = Net()
    g = net.genesis
    signer = seeded_key("client-0")  # = net.clients[0]: dept justice, roles ["*"]
    body = {"content_hash": hashlib.sha256(b"hello, ledger\n").digest(), "media_type": "text/plain",
            "size": 14, "title": "greeting"}
    env1 = sign_record(signer, net.chain_id, "evidence.notarize", "EV-2026-0001", body, T0, bytes(range(16)))
    d1 = decode_envelope(env1, g)
    env2 = sign_record(signer, net.chain_id, "trace.event", "batch-7", {"activity": "harvested"}, T0 + 1,
                       bytes(range(16, 32)), refs=(d1.record_id,))
    d2 = decode_envelope(env2, g)
    store = Store.memory()
    # Height 1, round 0: the proposer is validator (1 + 0) % 4 = 1.
    checked, rejected = build_block([d1, d2], None, store, store.frontier, g, T0 + 500, 1)
    assert not rejected
    header = checked.block.header
    vb = vote_bytes(net.chain_id, 1, 0, header.block_hash)
    qc = QC(1, 0, header.block_hash, tuple((i, net.validators[i].sign(vb)) for i in range(g.quorum)))
    store.commit(checked, qc)
    bundle = build_bundle(store, g, d1.record_id)
    return {
        "seed": hashlib.sha256(b"client-0").hexdigest(),
        "pubkey": signer.public.raw.hex(),
        "key_id": signer.public.key_id,
        "genesis_hash": g.genesis_hash,
        "valset": g.valset_hash.hex(),
        "record_bytes": d1.record_bytes.hex(),
        "sig": d1.sig.hex(),
        "record_id": d1.record_id.hex(),
        "envelope": env1.hex(),
        "envelope_b64": b64(env1),
        "leaf_hash": d1.leaf_hash.hex(),
        "record2_id": d2.record_id.hex(),
        "envelope2": env2.hex(),
        "leaf_hash2": d2.leaf_hash.hex(),
        "log_root": header.log_root.hex(),
        "header": header.raw.hex(),
        "header_b64": b64(header.raw),
        "block_hash": header.block_hash.hex(),
        "vote_bytes": vb.hex(),
        "qc_msgpack": qc.encode().hex(),
        **{f"vote_sig_{i}": s.hex() for i, s in qc.signatures},
        "bundle": json.dumps(bundle, indent=2),
    }


def test_protocol_doc_worked_example_matches_the_code() -> None:
    doc = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    flat = re.sub(r"\s+", "", doc)  # long hex is wrapped across lines in the doc
    ex = worked_example()
    missing = [name for name, value in ex.items() if re.sub(r"\s+", "", value) not in flat]
    assert not missing, f"docs/protocol.md is out of step with the code for: {missing}"
    assert Net().genesis.raw.decode() in doc  # the example genesis file, byte for byte


def test_protocol_doc_bundle_verifies_against_its_genesis(tmp_path: Path) -> None:
    """The bundle and genesis printed in docs/protocol.md, copied out as a reader would."""
    doc = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    genesis_text = re.search(r"### 10\.1.*?```json\n(.*?)```", doc, re.S).group(1)
    bundle_text = re.search(r"### 10\.5.*?```json\n(.*?)```", doc, re.S).group(1)
    genesis = parse(genesis_text.encode("utf-8"))
    assert genesis.genesis_hash in doc
    original = tmp_path / "hello.txt"
    original.write_bytes(b"hello, ledger\n")
    verdict = verify_bundle(json.loads(bundle_text), genesis, original)
    assert verdict.valid, verdict.checks
