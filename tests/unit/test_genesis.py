"""Genesis parsing and checks (docs/protocol.md section 3)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Callable

import pytest

from ledgernode import crypto
from ledgernode.errors import InvalidInput
from ledgernode.genesis import (
    DEFAULT_PARAMS,
    FORMAT,
    GENESIS_MAX_BYTES,
    Signer,
    build,
    parse,
    role_allows,
)
from tests.fixtures import Net, seeded_key

VALIDATOR_KEYS = [seeded_key(f"genesis-validator-{i}") for i in range(10)]
CLIENT_KEYS = [seeded_key(f"genesis-client-{i}") for i in range(3)]

# Small-order points and non-canonical encodings (RFC 8032 decoding).
IDENTITY = "01" + "00" * 31  # the neutral element (order 1)
ORDER_2 = "ec" + "ff" * 30 + "7f"  # y = p - 1, x = 0 (order 2)
ORDER_4 = "00" * 32  # y = 0 (order 4)
ORDER_4_NEG = "00" * 31 + "80"  # y = 0 with the sign bit (the other order-4 point)
NON_CANONICAL_Y = "ed" + "ff" * 30 + "7f"  # y = p: not reduced mod p
IDENTITY_NEG_ZERO = "01" + "00" * 30 + "80"  # identity with sign bit set for x = 0


def make_doc(n: int = 4) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "chain_id": "gov-devnet",
        "validators": [
            {"dept": f"d{i}", "name": f"Dept {i}", "pubkey": VALIDATOR_KEYS[i].public.raw.hex()}
            for i in range(n)
        ],
        "clients": [
            {"dept": "d0", "pubkey": CLIENT_KEYS[0].public.raw.hex(), "roles": ["evidence.*", "cert.issue"]},
            {"dept": "d1" if n > 1 else "d0", "pubkey": CLIENT_KEYS[1].public.raw.hex(), "roles": ["*"]},
        ],
        "params": {"record_ts_window_ms": 300_000, "block_max_records": 100},
    }


def to_raw(doc: Any) -> bytes:
    return json.dumps(doc, indent=1).encode("utf-8")


def expect_bad(raw: bytes, *needles: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse(raw)
    assert info.value.code == "bad_genesis"
    for needle in needles:
        assert needle in info.value.message, (needle, info.value.message)
    return info.value


# -- accepting ----------------------------------------------------------------


def test_parse_accepts_valid_file() -> None:
    raw = to_raw(make_doc())
    g = parse(raw)
    assert g.raw == raw
    assert g.chain_id == "gov-devnet"
    assert g.n == 4
    assert [v.dept for v in g.validators] == ["d0", "d1", "d2", "d3"]
    assert [v.name for v in g.validators] == ["Dept 0", "Dept 1", "Dept 2", "Dept 3"]
    assert [v.pubkey.raw for v in g.validators] == [k.public.raw for k in VALIDATOR_KEYS[:4]]
    assert g.depts == frozenset({"d0", "d1", "d2", "d3"})
    assert g.record_ts_window_ms == 300_000
    assert g.block_max_records == 100
    # validators sign with role "*" and carry their index; clients carry their roles
    assert len(g.signers) == 6
    for i, key in enumerate(VALIDATOR_KEYS[:4]):
        signer = g.signers[key.public.key_id]
        assert (signer.dept, signer.roles, signer.validator) == (f"d{i}", ("*",), i)
        assert signer.pubkey.raw == key.public.raw
    c0 = g.signers[CLIENT_KEYS[0].public.key_id]
    assert (c0.dept, c0.roles, c0.validator) == ("d0", ("evidence.*", "cert.issue"), None)
    c1 = g.signers[CLIENT_KEYS[1].public.key_id]
    assert (c1.dept, c1.roles, c1.validator) == ("d1", ("*",), None)


def test_defaults_when_params_clients_and_name_absent() -> None:
    doc = make_doc(1)
    del doc["params"], doc["clients"], doc["validators"][0]["name"]
    g = parse(to_raw(doc))
    assert g.record_ts_window_ms == DEFAULT_PARAMS["record_ts_window_ms"]
    assert g.block_max_records == DEFAULT_PARAMS["block_max_records"]
    assert list(g.signers) == [VALIDATOR_KEYS[0].public.key_id]
    assert g.validators[0].name == "d0"


def test_partial_params_keep_other_default() -> None:
    doc = make_doc()
    doc["params"] = {"block_max_records": 7}
    g = parse(to_raw(doc))
    assert g.block_max_records == 7
    assert g.record_ts_window_ms == DEFAULT_PARAMS["record_ts_window_ms"]


def test_genesis_hash_is_sha256_of_exact_bytes() -> None:
    raw = to_raw(make_doc())
    g = parse(raw)
    assert g.genesis_hash == hashlib.sha256(raw).hexdigest()
    assert len(g.genesis_hash) == 64 and g.genesis_hash == g.genesis_hash.lower()
    # the same document serialised differently is a different file with another hash
    compact = json.dumps(make_doc(), separators=(",", ":")).encode()
    g2 = parse(compact)
    assert g2.chain_id == g.chain_id and g2.valset_hash == g.valset_hash
    assert g2.genesis_hash == hashlib.sha256(compact).hexdigest() != g.genesis_hash
    g3 = parse(raw + b"\n")
    assert g3.genesis_hash != g.genesis_hash


def _independent_valset_hash(pubkeys: list[bytes]) -> bytes:
    # msgpack array (fixarray for n <= 15) of bin8 values, written out by hand
    assert len(pubkeys) <= 15
    packed = bytes([0x90 | len(pubkeys)]) + b"".join(b"\xc4\x20" + pk for pk in pubkeys)
    return hashlib.sha256(b"ledgernode:valset\n" + packed).digest()


@pytest.mark.parametrize("n", [1, 4, 7])
def test_valset_hash_over_raw_pubkeys_in_order(n: int) -> None:
    g = parse(to_raw(make_doc(n)))
    assert g.valset_hash == _independent_valset_hash([k.public.raw for k in VALIDATOR_KEYS[:n]])
    assert g.valset_hash == crypto.H("valset", b"".join(
        [bytes([0x90 | n])] + [b"\xc4\x20" + k.public.raw for k in VALIDATOR_KEYS[:n]]))


def test_valset_hash_depends_on_order_and_keys_only() -> None:
    doc = make_doc()
    base = parse(to_raw(doc)).valset_hash
    renamed = copy.deepcopy(doc)
    for i, v in enumerate(renamed["validators"]):
        v["name"] = f"Other {i}"
    renamed["chain_id"] = "other-chain"
    renamed["clients"] = []
    assert parse(to_raw(renamed)).valset_hash == base
    swapped = copy.deepcopy(doc)
    swapped["validators"][0], swapped["validators"][1] = swapped["validators"][1], swapped["validators"][0]
    assert parse(to_raw(swapped)).valset_hash != base


EXPECTED_F_Q = {1: (0, 1), 2: (0, 2), 3: (0, 3), 4: (1, 3), 5: (1, 4), 6: (1, 5),
                7: (2, 5), 8: (2, 6), 9: (2, 7), 10: (3, 7)}


@pytest.mark.parametrize("n", range(1, 11))
def test_quorum_and_f(n: int) -> None:
    g = parse(to_raw(make_doc(n)))
    assert g.n == n
    assert (g.f, g.quorum) == EXPECTED_F_Q[n]
    assert 3 * g.f < n  # at most f Byzantine out of n
    assert 2 * g.quorum - n >= g.f + 1  # two quorums share an honest validator
    assert g.quorum <= n - g.f  # the honest validators alone form a quorum


def test_build_round_trips_through_parse() -> None:
    net = Net()
    g = net.genesis
    assert g.chain_id == "gov-test"
    assert g.n == 4 and g.quorum == 3 and g.f == 1
    assert g.genesis_hash == hashlib.sha256(g.raw).hexdigest()
    doc = json.loads(g.raw)
    assert doc["format"] == FORMAT and doc["params"] == DEFAULT_PARAMS
    with pytest.raises(InvalidInput) as info:
        build("bad chain id!", [], [])
    assert info.value.code == "bad_genesis"


def test_exactly_max_bytes_is_accepted() -> None:
    raw = to_raw(make_doc())
    padded = raw + b" " * (GENESIS_MAX_BYTES - len(raw))
    assert len(padded) == GENESIS_MAX_BYTES
    assert parse(padded).chain_id == "gov-devnet"


# -- rejecting ----------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return mutate


def _delete(path: list[Any]) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return mutate


REJECTS: list[tuple[str, Mutation, tuple[str, ...]]] = [
    # format
    ("format-wrong", _set(["format"], "ledgernode-genesis/1"), ("format",)),
    ("format-missing", _delete(["format"]), ("format",)),
    ("format-not-str", _set(["format"], 1), ("format",)),
    # chain_id
    ("chain-missing", _delete(["chain_id"]), ("chain_id",)),
    ("chain-not-str", _set(["chain_id"], 5), ("chain_id",)),
    ("chain-empty", _set(["chain_id"], ""), ("chain_id",)),
    ("chain-space", _set(["chain_id"], "gov devnet"), ("chain_id",)),
    ("chain-newline", _set(["chain_id"], "gov-devnet\n"), ("chain_id",)),
    ("chain-too-long", _set(["chain_id"], "c" * 65), ("chain_id",)),
    # validators
    ("validators-missing", _delete(["validators"]), ("validators",)),
    ("validators-empty", _set(["validators"], []), ("validators",)),
    ("validators-not-list", _set(["validators"], {"d0": "x"}), ("validators",)),
    ("validator-not-object", _set(["validators", 2], "d2"), ("validators[2]",)),
    ("validator-name-long", _set(["validators", 1, "name"], "n" * 257), ("validators[1]", "name")),
    ("validator-name-not-str", _set(["validators", 1, "name"], 7), ("validators[1]", "name")),
    # dept ids
    ("dept-missing", _delete(["validators", 1, "dept"]), ("validators[1]", "dept")),
    ("dept-not-str", _set(["validators", 1, "dept"], 1), ("validators[1]", "dept")),
    ("dept-empty", _set(["validators", 1, "dept"], ""), ("validators[1]", "dept")),
    ("dept-leading-dash", _set(["validators", 1, "dept"], "-d1"), ("validators[1]", "dept")),
    ("dept-slash", _set(["validators", 1, "dept"], "d/1"), ("validators[1]", "dept")),
    ("dept-space", _set(["validators", 1, "dept"], "d 1"), ("validators[1]", "dept")),
    ("dept-unicode", _set(["validators", 1, "dept"], "司法"), ("validators[1]", "dept")),
    ("dept-newline", _set(["validators", 1, "dept"], "d1\n"), ("validators[1]", "dept")),
    ("dept-too-long", _set(["validators", 1, "dept"], "d" * 65), ("validators[1]", "dept")),
    # pubkeys
    ("pubkey-missing", _delete(["validators", 0, "pubkey"]), ("validators[0]", "pubkey")),
    ("pubkey-not-str", _set(["validators", 0, "pubkey"], 12), ("validators[0]", "pubkey")),
    ("pubkey-non-hex", _set(["validators", 0, "pubkey"], "zz" * 32), ("validators[0]", "pubkey")),
    ("pubkey-upper-hex", _set(["validators", 0, "pubkey"], VALIDATOR_KEYS[0].public.raw.hex().upper()),
     ("validators[0]", "pubkey")),
    ("pubkey-short", _set(["validators", 0, "pubkey"], "ab" * 31), ("validators[0]", "pubkey")),
    ("pubkey-long", _set(["validators", 0, "pubkey"], "ab" * 33), ("validators[0]", "pubkey")),
    ("pubkey-0x", _set(["validators", 0, "pubkey"], "0x" + "ab" * 31), ("validators[0]", "pubkey")),
    ("pubkey-newline", _set(["validators", 0, "pubkey"], VALIDATOR_KEYS[0].public.raw.hex() + "\n"),
     ("validators[0]", "pubkey")),
    ("pubkey-identity", _set(["validators", 0, "pubkey"], IDENTITY), ("validators[0]", "small order")),
    ("pubkey-order-2", _set(["validators", 3, "pubkey"], ORDER_2), ("validators[3]", "small order")),
    ("pubkey-order-4", _set(["validators", 3, "pubkey"], ORDER_4), ("validators[3]", "small order")),
    ("pubkey-order-4-neg", _set(["validators", 3, "pubkey"], ORDER_4_NEG), ("validators[3]",)),
    ("pubkey-noncanonical-y", _set(["validators", 3, "pubkey"], NON_CANONICAL_Y), ("validators[3]", "canonical")),
    ("pubkey-neg-zero-x", _set(["validators", 3, "pubkey"], IDENTITY_NEG_ZERO), ("validators[3]", "canonical")),
    ("client-pubkey-identity", _set(["clients", 1, "pubkey"], IDENTITY), ("clients[1]", "small order")),
    ("client-pubkey-non-hex", _set(["clients", 0, "pubkey"], "g" * 64), ("clients[0]", "pubkey")),
    ("validator-duplicate-pubkey",
     _set(["validators", 2, "pubkey"], VALIDATOR_KEYS[0].public.raw.hex()), ("validators[2]", "pubkey")),
    ("client-reuses-validator-pubkey",
     _set(["clients", 0, "pubkey"], VALIDATOR_KEYS[1].public.raw.hex()), ("clients[0]", "pubkey")),
    ("client-duplicate-pubkey",
     _set(["clients", 1, "pubkey"], CLIENT_KEYS[0].public.raw.hex()), ("clients[1]", "pubkey")),
    # clients
    ("clients-not-list", _set(["clients"], {"x": 1}), ("clients",)),
    ("client-not-object", _set(["clients", 0], "d0"), ("clients[0]",)),
    ("client-dept-unknown", _set(["clients", 0, "dept"], "d9"), ("clients[0]", "dept")),
    ("client-dept-missing", _delete(["clients", 0, "dept"]), ("clients[0]", "dept")),
    ("client-roles-missing", _delete(["clients", 0, "roles"]), ("clients[0]", "roles")),
    ("client-roles-empty", _set(["clients", 0, "roles"], []), ("clients[0]", "roles")),
    # a key entry holds at most 32 roles (ROLES_MAX), which the verifier checks: more is refused here
    ("client-roles-33", _set(["clients", 0, "roles"], [f"cert.r{i}" for i in range(33)]), ("clients[0]", "roles")),
    ("client-roles-str", _set(["clients", 0, "roles"], "cert.*"), ("clients[0]", "roles")),
    ("client-role-not-str", _set(["clients", 0, "roles"], ["cert.*", 3]), ("clients[0]", "roles")),
    ("client-role-upper", _set(["clients", 0, "roles"], ["Cert.*"]), ("clients[0]", "roles")),
    ("client-role-star-no-dot", _set(["clients", 0, "roles"], ["cert*"]), ("clients[0]", "roles")),
    ("client-role-star-middle", _set(["clients", 0, "roles"], ["cert.*.issue"]), ("clients[0]", "roles")),
    ("client-role-leading-star", _set(["clients", 0, "roles"], ["*.issue"]), ("clients[0]", "roles")),
    ("client-role-empty-str", _set(["clients", 0, "roles"], [""]), ("clients[0]", "roles")),
    ("client-role-double-dot", _set(["clients", 0, "roles"], ["cert..issue"]), ("clients[0]", "roles")),
    ("client-role-newline", _set(["clients", 0, "roles"], ["cert.*\n"]), ("clients[0]", "roles")),
    # params
    ("params-not-object", _set(["params"], [1, 2]), ("params",)),
    ("params-unknown", _set(["params", "block_max_bytes"], 10), ("params", "block_max_bytes")),
    ("params-zero", _set(["params", "block_max_records"], 0), ("params", "block_max_records")),
    ("params-negative", _set(["params", "record_ts_window_ms"], -1), ("params", "record_ts_window_ms")),
    ("params-bool", _set(["params", "block_max_records"], True), ("params", "block_max_records")),
    ("params-float", _set(["params", "block_max_records"], 10.0), ("params", "block_max_records")),
    ("params-str", _set(["params", "record_ts_window_ms"], "600000"), ("params", "record_ts_window_ms")),
    ("params-null", _set(["params", "record_ts_window_ms"], None), ("params", "record_ts_window_ms")),
]


@pytest.mark.parametrize("mutate,needles", [(m, n) for _, m, n in REJECTS], ids=[i for i, _, _ in REJECTS])
def test_rejects_bad_field(mutate: Mutation, needles: tuple[str, ...]) -> None:
    doc = make_doc()
    parse(to_raw(doc))  # the unmutated document is fine
    mutate(doc)
    expect_bad(to_raw(doc), *needles)


@pytest.mark.parametrize("raw", [
    b"",
    b"{",
    b"{\"format\": \"ledgernode-genesis/2\",}",
    b"\xff\xfe{}",
    b"\xef\xbb\xbf{}",  # UTF-8 BOM
    b"nul",
    b"{'format': 1}",
], ids=["empty", "truncated", "trailing-comma", "not-utf8", "bom", "bad-literal", "single-quotes"])
def test_rejects_non_json(raw: bytes) -> None:
    expect_bad(raw, "JSON")


def test_rejects_deeply_nested_json_as_bad_genesis() -> None:
    # Within the size limit, but deeper than the JSON parser's recursion limit.
    raw = b"[" * 200_000 + b"]" * 200_000
    assert len(raw) <= GENESIS_MAX_BYTES
    expect_bad(raw)


def test_rejects_huge_json_integer_as_bad_genesis() -> None:
    doc = to_raw(make_doc()).replace(b"300000", b"3" * 5000)
    expect_bad(doc)


@pytest.mark.parametrize("raw", [b"[]", b"\"genesis\"", b"42", b"null"])
def test_rejects_non_object_top_level(raw: bytes) -> None:
    expect_bad(raw, "top level")


def test_rejects_oversize_file() -> None:
    raw = to_raw(make_doc())
    padded = raw + b" " * (GENESIS_MAX_BYTES + 1 - len(raw))
    assert len(padded) == GENESIS_MAX_BYTES + 1
    expect_bad(padded, "larger", str(GENESIS_MAX_BYTES))


# -- roles ----------------------------------------------------------------------


@pytest.mark.parametrize("role,record_type,allowed", [
    ("cert.*", "cert.issue", True),
    ("cert.*", "cert.revoke", True),
    ("cert.*", "certx", False),
    ("cert.*", "certx.issue", False),
    ("cert.*", "cert", False),
    ("cert.*", "dataset.publish", False),
    ("*", "cert.issue", True),
    ("*", "trace.event", True),
    ("*", "anything.at.all", True),
    ("cert.issue", "cert.issue", True),
    ("cert.issue", "cert.issuer", False),
    ("cert.issue", "cert.revoke", False),
    ("cert.issue", "cert", False),
    ("evidence.notarize", "evidence.notarize", True),
])
def test_role_allows(role: str, record_type: str, allowed: bool) -> None:
    assert role_allows(role, record_type) is allowed


def test_signer_allows_any_of_its_roles() -> None:
    key = seeded_key("signer")
    signer = Signer("d0", ("evidence.*", "cert.issue"), key.public)
    assert signer.allows("evidence.notarize")
    assert signer.allows("cert.issue")
    assert not signer.allows("cert.revoke")
    assert not signer.allows("dataset.publish")
    assert not Signer("d0", (), key.public).allows("cert.issue")


def test_parsed_roles_drive_signer_allows() -> None:
    g = parse(to_raw(make_doc()))
    c0 = g.signers[CLIENT_KEYS[0].public.key_id]
    assert c0.allows("evidence.notarize") and c0.allows("cert.issue")
    assert not c0.allows("cert.suspend") and not c0.allows("share.grant")
    for key in VALIDATOR_KEYS[:4]:
        v = g.signers[key.public.key_id]
        assert all(v.allows(t) for t in ("cert.issue", "share.grant", "trace.event", "x.y"))


def test_duplicate_json_keys_are_refused() -> None:
    from tests.fixtures import Net

    raw = Net().genesis.raw
    doubled = raw.replace(b'"chain_id": "gov-test"', b'"chain_id": "gov-test", "chain_id": "other"', 1)
    assert doubled != raw
    with pytest.raises(InvalidInput) as info:
        parse(doubled)
    assert info.value.code == "bad_genesis" and "twice" in info.value.message
