"""Records and envelopes (docs/protocol.md sections 4 and 5): decoding, body schemas, signers.

The body-schema tests here are the ones every registered type meets; what is
particular to a type is tested with its family (tests/unit/test_families_<family>.py),
whose example bodies these tests use."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgernode import codec, crypto
from ledgernode.errors import InvalidInput
from ledgernode.families import TYPES
from ledgernode.genesis import build, parse
from ledgernode.records import (
    ENVELOPE_LIMITS,
    ENVELOPE_MAX_BYTES,
    RECORD_KEYS,
    RECORD_SIGN_PREFIX,
    REFS_MAX,
    TEXT_MAX_CHARS,
    Envelope,
    check_body,
    check_signer,
    decode_envelope,
    record_id_of,
    sign_record,
)
from tests.fixtures import T0, Net, content, seeded_key
from tests.unit.test_families_gov import signer_key
from tests.unit.test_families_registry import BODIES, FAMILY_BAD_VALUES, FULL_BODIES

NET = Net()
G = NET.genesis
CLIENT = NET.clients[0]  # dept "justice", role "*"

TRACE_FULL = FULL_BODIES["trace.event"]


def sign(record: dict[str, Any], key: crypto.PrivateKey = CLIENT) -> bytes:
    """Envelope of an arbitrary record map (canonically encoded), signed by `key`."""
    record_bytes = codec.encode(record)
    return codec.encode([record_bytes, key.sign(RECORD_SIGN_PREFIX + record_bytes)])


def base_map(**changes: Any) -> dict[str, Any]:
    m = {
        "v": 1, "chain": G.chain_id, "type": "evidence.notarize", "subject": "EV-1",
        "body": dict(BODIES["evidence.notarize"]), "refs": [], "ts": T0,
        "nonce": bytes(range(16)), "key": CLIENT.public.key_id,
    }
    m.update(changes)
    return m


def reject(raw: bytes, code: str = "invalid_record", needle: str | None = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        decode_envelope(raw, G)
    assert info.value.code == code, info.value
    if needle is not None:
        assert needle in info.value.message, info.value.message
    return info.value


# -- round trip ---------------------------------------------------------------


def test_decode_accepts_what_sign_record_makes() -> None:
    ref = content("input")
    nonce = b"\x07" * 16
    raw = sign_record(CLIENT, G.chain_id, "cert.issue", "CERT-001", BODIES["cert.issue"], T0, nonce, (ref,))
    env = decode_envelope(raw, G)
    r = env.record
    assert (r.v, r.chain, r.type, r.subject, r.ts, r.nonce, r.key) == (
        1, "gov-test", "cert.issue", "CERT-001", T0, nonce, CLIENT.public.key_id)
    assert r.body == BODIES["cert.issue"]
    assert r.refs == (ref,)
    assert env.raw == raw
    # the envelope is canonical [record_bytes, sig] and record_bytes is the canonical record map
    assert msgpack.unpackb(raw, raw=False) == [env.record_bytes, env.sig]
    assert env.record_bytes == codec.encode(r.to_map())
    assert set(msgpack.unpackb(env.record_bytes, raw=False)) == RECORD_KEYS
    assert len(env.sig) == 64
    assert CLIENT.public.verify(env.sig, b"ledgernode:record\n" + env.record_bytes)
    assert env.leaf_hash == hashlib.sha256(b"\x00" + raw).digest()
    signer = check_signer(env, G)
    assert signer is G.signers[CLIENT.public.key_id]
    assert signer.dept == "justice"


def test_record_id_is_tagged_hash_of_record_bytes() -> None:
    env = decode_envelope(NET.record(0, "trace.event", "LOT-1", BODIES["trace.event"]), G)
    expected = hashlib.sha256(b"ledgernode:record\n" + env.record_bytes).digest()
    assert env.record_id == expected == record_id_of(env.record_bytes)
    assert env.record_id == crypto.H("record", env.record_bytes)


def test_record_id_does_not_depend_on_signature() -> None:
    env = decode_envelope(NET.record(0, "trace.event", "LOT-1", BODIES["trace.event"]), G)
    for sig in (bytes(64), b"\x01" * 64, NET.validators[0].sign(b"other"), b"short"):
        other = decode_envelope(codec.encode([env.record_bytes, sig]), G)
        assert other.record_id == env.record_id
        assert other.record == env.record
        assert other.raw != env.raw and other.leaf_hash != env.leaf_hash
        with pytest.raises(InvalidInput) as info:
            check_signer(other, G)
        assert info.value.code == "bad_signature"


def test_record_id_changes_with_any_record_field() -> None:
    a = decode_envelope(sign(base_map()), G)
    b = decode_envelope(sign(base_map(nonce=bytes(range(1, 17)))), G)
    c = decode_envelope(sign(base_map(ts=T0 + 1)), G)
    assert len({a.record_id, b.record_id, c.record_id}) == 3


# -- envelope shape and encoding ---------------------------------------------


def test_rejects_non_canonical_envelope() -> None:
    env = decode_envelope(sign(base_map()), G)
    rb, sig = env.record_bytes, env.sig
    rb_hdr = b"\xc4" + bytes([len(rb)]) if len(rb) < 256 else b"\xc5" + len(rb).to_bytes(2, "big")
    canonical = b"\x92" + rb_hdr + rb + b"\xc4\x40" + sig
    assert canonical == env.raw
    # array16 header for a 2-element array
    reject(b"\xdc\x00\x02" + rb_hdr + rb + b"\xc4\x40" + sig, "non_canonical")
    # bin16 / bin32 length for the 64-byte signature
    reject(b"\x92" + rb_hdr + rb + b"\xc5\x00\x40" + sig, "non_canonical")
    reject(b"\x92" + rb_hdr + rb + b"\xc6\x00\x00\x00\x40" + sig, "non_canonical")
    # trailing and missing bytes
    reject(env.raw + b"\x00", "trailing_bytes")
    reject(env.raw[:-1], "malformed")


def test_rejects_non_canonical_record_bytes() -> None:
    m = base_map()
    # keys in reverse order, correctly signed: only canonical form is acceptable
    unsorted = msgpack.packb(dict(sorted(m.items(), reverse=True)), use_bin_type=True)
    assert unsorted != codec.encode(m) and msgpack.unpackb(unsorted, raw=False) == m
    raw = codec.encode([unsorted, CLIENT.sign(RECORD_SIGN_PREFIX + unsorted)])
    reject(raw, "non_canonical")
    # an int not in its shortest form (size 12345 as uint64)
    canonical = codec.encode(m)
    packed_size = msgpack.packb(12_345)
    assert canonical.count(packed_size) == 1
    long_form = canonical.replace(packed_size, b"\xcf" + (12_345).to_bytes(8, "big"))
    raw = codec.encode([long_form, CLIENT.sign(RECORD_SIGN_PREFIX + long_form)])
    reject(raw, "non_canonical")


def test_rejects_float_in_record() -> None:
    m = base_map()
    m["ts"] = 1.5
    packed = msgpack.packb(dict(sorted(m.items())), use_bin_type=True)
    reject(codec.encode([packed, CLIENT.sign(RECORD_SIGN_PREFIX + packed)]), "float")


@pytest.mark.parametrize("outer", [
    {"record": b"x", "sig": b"y"},
    [b"only-one"],
    [b"a", b"b", b"c"],
    [],
    ["record as str", b"sig"],
    [b"record", "sig as str"],
    [b"record", None],
    b"just bytes",
    7,
], ids=["map", "one", "three", "empty", "str-record", "str-sig", "nil-sig", "bin", "int"])
def test_rejects_wrong_outer_shape(outer: Any) -> None:
    reject(codec.encode(outer), "invalid_record", "envelope")


def test_rejects_record_bytes_not_a_map() -> None:
    for inner in ([1, 2], "record", 5):
        reject(codec.encode([codec.encode(inner), bytes(64)]), "invalid_record")


@pytest.mark.parametrize("key", sorted(RECORD_KEYS))
def test_rejects_missing_record_key(key: str) -> None:
    m = base_map()
    del m[key]
    reject(sign(m), "invalid_record", "keys")


def test_rejects_extra_record_key() -> None:
    reject(sign(base_map(extra="x")), "invalid_record", "keys")
    reject(sign(base_map(sig=b"\x00" * 64)), "invalid_record", "keys")


@pytest.mark.parametrize("v", [0, 2, -1, True, "1", None, b"\x01"])
def test_rejects_wrong_version(v: Any) -> None:
    reject(sign(base_map(v=v)), "invalid_record", "v must be 1")


def test_rejects_wrong_chain() -> None:
    err = reject(sign(base_map(chain="other-chain")), "wrong_chain")
    assert "other-chain" in err.message
    reject(sign(base_map(chain="")), "wrong_chain")


@pytest.mark.parametrize("field,value", [
    ("chain", b"gov-test"), ("type", 1), ("subject", b"EV-1"), ("key", None),
])
def test_rejects_non_str_fields(field: str, value: Any) -> None:
    reject(sign(base_map(**{field: value})), "invalid_record", field)


def test_subject_length_bounds() -> None:
    reject(sign(base_map(subject="")), "invalid_record", "subject")
    reject(sign(base_map(subject="s" * 257)), "invalid_record", "subject")
    assert decode_envelope(sign(base_map(subject="s" * 256)), G).record.subject == "s" * 256
    # characters, not bytes: 256 CJK chars (768 UTF-8 bytes) are fine
    assert decode_envelope(sign(base_map(subject="证" * 256)), G).record.subject == "证" * 256
    reject(sign(base_map(subject="证" * 257)), "invalid_record", "subject")


@pytest.mark.parametrize("key", [
    "ABCDEF0123456789", "0123456789abcde", "0123456789abcdef0", "g123456789abcdef",
    "0123456789abcdef\n", " 0123456789abcde", "", "0123-456789abcde",
])
def test_rejects_bad_key_id_format(key: str) -> None:
    reject(sign(base_map(key=key)), "invalid_record", "key")


@pytest.mark.parametrize("ts", [-1, True, False, "1767225600000", None, 2**63, b"\x00"])
def test_rejects_bad_ts(ts: Any) -> None:
    reject(sign(base_map(ts=ts)), "invalid_record", "ts")


def test_ts_bounds_accepted() -> None:
    assert decode_envelope(sign(base_map(ts=0)), G).record.ts == 0
    assert decode_envelope(sign(base_map(ts=2**63 - 1)), G).record.ts == 2**63 - 1


@pytest.mark.parametrize("nonce", [b"\x00" * 15, b"\x00" * 17, b"", "0123456789abcdef", 5, None])
def test_rejects_bad_nonce(nonce: Any) -> None:
    reject(sign(base_map(nonce=nonce)), "invalid_record", "nonce")


@pytest.mark.parametrize("refs", [
    [b"\x01" * 31], [b"\x01" * 33], [content("a"), b""], ["ab" * 32], [None], b"\x01" * 32, {"r": 1},
], ids=["31", "33", "empty", "hex-str", "nil", "bin-not-array", "map"])
def test_rejects_malformed_refs(refs: Any) -> None:
    reject(sign(base_map(refs=refs)), "invalid_record", "ref")


def test_rejects_duplicate_refs() -> None:
    reject(sign(base_map(refs=[content("a"), content("b"), content("a")])), "invalid_record", "twice")


def test_refs_count_limit() -> None:
    refs = [content(f"r{i}") for i in range(REFS_MAX)]
    env = decode_envelope(sign(base_map(refs=refs)), G)
    assert env.record.refs == tuple(refs)
    with pytest.raises(InvalidInput) as info:
        decode_envelope(sign(base_map(refs=refs + [content("one-more")])), G)
    assert info.value.code in {"malformed", "invalid_record"}  # codec's array bound or the record rule


def test_rejects_oversized_envelope() -> None:
    env = decode_envelope(sign(base_map()), G)
    # pad the (unchecked here) signature so the envelope is exactly the limit, then one more
    overhead = len(codec.encode([env.record_bytes, b""])) - 2
    sig_len = ENVELOPE_MAX_BYTES - overhead - 3  # bin16 header
    at_limit = codec.encode([env.record_bytes, b"\x00" * sig_len])
    assert len(at_limit) == ENVELOPE_MAX_BYTES
    assert decode_envelope(at_limit, G).record_id == env.record_id
    over = codec.encode([env.record_bytes, b"\x00" * (sig_len + 1)])
    assert len(over) == ENVELOPE_MAX_BYTES + 1
    err = reject(over, "too_large")
    assert err.status == 413
    reject(env.raw + b"\x00" * ENVELOPE_MAX_BYTES, "too_large")


def test_rejects_non_bytes_input() -> None:
    with pytest.raises(InvalidInput):
        decode_envelope("not bytes", G)  # type: ignore[arg-type]


# -- body schemas ---------------------------------------------------------------


# values each base kind must refuse (a kind a family declares: its own test file)
BAD_VALUES: dict[str, list[Any]] = {
    "text": [5, None, b"text", ["a"], "t" * (TEXT_MAX_CHARS + 1), True],
    "hash": [b"\x00" * 31, b"\x00" * 33, b"", "ab" * 32, None, 7],
    "time": [-1, True, False, "123", None, 2**63, b"\x01"],
    "dept": ["nowhere", "", "JUSTICE", 5, None, b"justice", ["justice"], {"d": "justice"}],
    **FAMILY_BAD_VALUES,
}


def test_every_type_has_a_valid_body_here() -> None:
    assert set(BODIES) == set(TYPES)
    kinds = {f.kind.name for rtype in TYPES.values() for f in rtype.fields}
    assert kinds <= set(BAD_VALUES)


@pytest.mark.parametrize("rtype", sorted(TYPES))
def test_each_type_accepts_its_body(rtype: str) -> None:
    for body in (BODIES[rtype], FULL_BODIES[rtype]):
        raw = NET.record(0, rtype, "SUBJ-1", body, key=signer_key(rtype))
        env = decode_envelope(raw, G)
        assert env.record.type == rtype and env.record.body == body
        assert check_signer(env, G).dept == "justice"


MISSING_CASES = [(t, f.name) for t, rtype in TYPES.items() for f in rtype.fields if f.required]
WRONG_KIND_CASES = [
    (t, f.name, i) for t, rtype in TYPES.items() for f in rtype.fields
    for i in range(len(BAD_VALUES[f.kind.name]))
]


@pytest.mark.parametrize("rtype,field", MISSING_CASES, ids=[f"{t}.{f}" for t, f in MISSING_CASES])
def test_rejects_missing_body_field(rtype: str, field: str) -> None:
    body = dict(FULL_BODIES[rtype])
    del body[field]
    reject(NET.record(0, rtype, "SUBJ-1", body), "invalid_record", repr(field))


@pytest.mark.parametrize("rtype", sorted(TYPES))
def test_rejects_extra_body_field(rtype: str) -> None:
    reject(NET.record(0, rtype, "SUBJ-1", {**BODIES[rtype], "note": "x"}), "invalid_record", "'note'")
    if "location" not in TYPES[rtype].field_names:
        # a field of another type is still an extra field
        reject(NET.record(0, rtype, "SUBJ-1", {**BODIES[rtype], "location": "x"}), "invalid_record", "location")


@pytest.mark.parametrize("rtype,field,i", WRONG_KIND_CASES,
                         ids=[f"{t}.{f}-{i}" for t, f, i in WRONG_KIND_CASES])
def test_rejects_wrong_kind(rtype: str, field: str, i: int) -> None:
    (kind,) = [f.kind.name for f in TYPES[rtype].fields if f.name == field]
    body = {**FULL_BODIES[rtype], field: BAD_VALUES[kind][i]}
    reject(NET.record(0, rtype, "SUBJ-1", body), "invalid_record", f"body.{field}")


@pytest.mark.parametrize("body", [[], "body", None, b"\x00", 1])
def test_rejects_body_not_a_map(body: Any) -> None:
    reject(NET.record(0, "evidence.notarize", "EV-1", body), "invalid_record", "body")


def test_rejects_unknown_type() -> None:
    for rtype in ("cert.transfer", "cert", "", "CERT.ISSUE", "evidence.*"):
        reject(NET.record(0, rtype, "X-1", {}), "invalid_record", "unknown record type")


# -- signers ----------------------------------------------------------------


def test_check_signer_unknown_key() -> None:
    stranger = seeded_key("stranger")
    raw = sign_record(stranger, G.chain_id, "evidence.notarize", "EV-1", BODIES["evidence.notarize"],
                      T0, bytes(16))
    env = decode_envelope(raw, G)
    with pytest.raises(InvalidInput) as info:
        check_signer(env, G)
    assert (info.value.code, info.value.status) == ("unknown_key", 403)


def test_check_signer_role_denied() -> None:
    limited = [seeded_key("limited-0"), seeded_key("limited-1")]
    raw_genesis = build(
        "gov-test",
        [{"dept": "justice", "name": "J", "pubkey": NET.validators[0].public.raw.hex()}],
        [{"dept": "justice", "pubkey": limited[0].public.raw.hex(), "roles": ["evidence.*"]},
         {"dept": "justice", "pubkey": limited[1].public.raw.hex(), "roles": ["cert.issue", "trace.event"]}],
    )
    g = parse(raw_genesis)
    body_cert = {**BODIES["cert.revoke"]}

    def verdict(key: crypto.PrivateKey, rtype: str, body: dict[str, Any]) -> str | None:
        env = decode_envelope(sign_record(key, "gov-test", rtype, "S-1", body, T0, bytes(16)), g)
        try:
            check_signer(env, g)
        except InvalidInput as exc:
            assert exc.status == 403 or exc.code != "role_denied"
            return exc.code
        return None

    assert verdict(limited[0], "evidence.notarize", BODIES["evidence.notarize"]) is None
    assert verdict(limited[0], "cert.issue", BODIES["cert.issue"]) == "role_denied"
    assert verdict(limited[1], "cert.issue", BODIES["cert.issue"]) is None
    assert verdict(limited[1], "trace.event", BODIES["trace.event"]) is None
    assert verdict(limited[1], "cert.revoke", body_cert) == "role_denied"
    assert verdict(limited[1], "evidence.notarize", BODIES["evidence.notarize"]) == "role_denied"
    # the validator key of the same genesis may sign anything
    assert verdict(NET.validators[0], "cert.revoke", body_cert) is None


def test_check_signer_bad_signature() -> None:
    env = decode_envelope(sign(base_map()), G)
    assert check_signer(env, G).dept == "justice"
    flipped = bytearray(env.sig)
    flipped[10] ^= 0x01
    cases = [
        bytes(flipped),
        CLIENT.sign(env.record_bytes),  # no domain prefix
        CLIENT.sign(b"ledgernode:commit\n" + env.record_bytes),  # wrong domain
        NET.clients[1].sign(RECORD_SIGN_PREFIX + env.record_bytes),  # another registered key
        env.sig[:63],
        env.sig + b"\x00",
        b"",
    ]
    for sig in cases:
        bad = decode_envelope(codec.encode([env.record_bytes, sig]), G)
        with pytest.raises(InvalidInput) as info:
            check_signer(bad, G)
        assert info.value.code == "bad_signature"


def test_check_signer_key_claims_other_client() -> None:
    # record names client 1's key id but is signed by client 0
    m = base_map(key=NET.clients[1].public.key_id)
    env = decode_envelope(sign(m, CLIENT), G)
    with pytest.raises(InvalidInput) as info:
        check_signer(env, G)
    assert info.value.code == "bad_signature"


@pytest.mark.parametrize("index", range(4))
def test_validator_keys_sign_every_type(index: int) -> None:
    key = NET.validators[index]
    for rtype, body in BODIES.items():
        env = decode_envelope(NET.record(0, rtype, "S-1", body, key=key), G)
        signer = check_signer(env, G)
        assert signer.roles == ("*",)
        assert signer.validator == index
        assert signer.dept == G.validators[index].dept


# -- mutation -------------------------------------------------------------------

BASES = [
    NET.record(0, "cert.issue", "CERT-42", BODIES["cert.issue"]),
    NET.record(1, "share.grant", "DS-7", BODIES["share.grant"], refs=(content("r1"), content("r2"))),
    NET.record(0, "trace.event", "LOT-3", TRACE_FULL, refs=(content("in"),)),
]
ORIGINALS = [decode_envelope(raw, G) for raw in BASES]


def _judge(mutated: bytes, original: Envelope) -> None:
    try:
        env = decode_envelope(mutated, G)
        check_signer(env, G)
    except InvalidInput:
        return
    # practically impossible: the mutation was accepted, so it must say the same thing
    assert env.record == original.record
    assert env.record_bytes == original.record_bytes
    assert env.record_id == original.record_id


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(BASES) - 1), data=st.data())
def test_random_byte_mutation_rejected_or_identical(which: int, data: st.DataObject) -> None:
    base = BASES[which]
    pos = data.draw(st.integers(0, len(base) - 1), label="pos")
    mask = data.draw(st.integers(1, 255), label="mask")
    mutated = bytearray(base)
    mutated[pos] ^= mask
    _judge(bytes(mutated), ORIGINALS[which])


def test_every_single_bit_flip_rejected_or_identical() -> None:
    base, original = BASES[0], ORIGINALS[0]
    for pos in range(len(base)):
        for bit in range(8):
            mutated = bytearray(base)
            mutated[pos] ^= 1 << bit
            _judge(bytes(mutated), original)


# -- the fast path agrees with the checked path ------------------------------

from ledgernode.records import _record_fast, _record_from_map  # noqa: E402

MUTATIONS = settings(
    derandomize=True, database=None, deadline=None, max_examples=400,
    suppress_health_check=[HealthCheck.too_slow],
)


def _checked_record(record_bytes: bytes) -> Any:
    """The record by the generic path, or the InvalidInput code it raises."""
    try:
        record = _record_from_map(codec.decode(record_bytes, ENVELOPE_LIMITS))
        if record.chain != G.chain_id:
            return "wrong_chain"
        check_body(record.type, record.body, G.depts)
        return record
    except InvalidInput as exc:
        return exc.code


_ODD_VALUES = [1.0, 1.5, True, None, b"", "", -1, 2**40, [], {}, "x" * 5, b"\x00" * 32]


def _canonical_map(rtype: str) -> dict[str, Any]:
    m = dict(sorted(base_map(type=rtype, body=dict(sorted(BODIES[rtype].items()))).items()))
    assert msgpack.packb(m, use_bin_type=True) == codec.encode(m)  # starts canonical
    return m


def _typed(value: Any) -> Any:
    """`value` with every leaf paired with its exact type, for comparisons in which
    True == 1 and 1 == 1.0 must not pass."""
    import dataclasses

    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_typed(v) for v in value])
    return (type(value).__name__, value)


def _agree(m: dict[str, Any]) -> None:
    """The fast path accepts only what the checked path accepts, as the same record."""
    record_bytes = msgpack.packb(m, use_bin_type=True)  # key order and forms as given
    checked = _checked_record(record_bytes)
    fast = _record_fast(record_bytes, G)
    # a nested body (gov.propose's args) is taken by the checked path only
    nested = isinstance(m.get("type"), str) and m["type"] in TYPES and TYPES[m["type"]].nested
    if fast is not None:
        assert not nested and _typed(fast) == _typed(checked), (m, checked)  # True is not 1 here
    elif not isinstance(checked, str) and not nested:
        raise AssertionError(f"fast path refused a valid record: {m}")
    # and decode_envelope gives the checked path's answer either way
    raw = codec.encode([record_bytes, bytes(64)])
    try:
        got = decode_envelope(raw, G).record
    except InvalidInput as exc:
        got = exc.code
    assert got == checked


@pytest.mark.parametrize("rtype", sorted(BODIES))
def test_fast_record_path_every_single_change(rtype: str) -> None:
    _agree(_canonical_map(rtype))
    fields = sorted(_canonical_map(rtype))
    body_fields = sorted(BODIES[rtype])
    for value in _ODD_VALUES:
        for name in fields:
            m = _canonical_map(rtype)
            m[name] = value
            _agree(m)
        for name in body_fields:
            m = _canonical_map(rtype)
            m["body"][name] = value
            _agree(m)


@MUTATIONS
@given(st.sampled_from(sorted(BODIES)), st.data())
def test_fast_record_path_never_disagrees(rtype: str, draw: Any) -> None:
    m = _canonical_map(rtype)
    for _ in range(draw.draw(st.integers(0, 3))):
        op = draw.draw(st.sampled_from(["field", "body", "drop", "extra", "reorder", "body_reorder"]))
        if op == "field":
            m[draw.draw(st.sampled_from(sorted(m)))] = draw.draw(st.sampled_from(_ODD_VALUES))
        elif op == "body" and isinstance(m.get("body"), dict) and m["body"]:
            m["body"][draw.draw(st.sampled_from(sorted(m["body"])))] = draw.draw(st.sampled_from(_ODD_VALUES))
        elif op == "drop" and m:
            del m[draw.draw(st.sampled_from(sorted(m)))]
        elif op == "extra":
            m[draw.draw(st.sampled_from(["zz", "a", "body2", "location"]))] = 1
        elif op == "reorder":
            m = dict(reversed(list(m.items())))
        elif op == "body_reorder" and isinstance(m.get("body"), dict):
            m["body"] = dict(reversed(list(m["body"].items())))
    _agree(m)


def test_decoded_record_and_envelope_are_ordinary_frozen_dataclasses() -> None:
    import dataclasses

    from ledgernode.records import Record

    raw = NET.record(0, "trace.event", "LOT-9", TRACE_FULL, refs=(content("a"),))
    env = decode_envelope(raw, G)
    r = env.record
    built = Record(r.v, r.chain, r.type, r.subject, dict(r.body), r.refs, r.ts, r.nonce, r.key)
    assert r == built and repr(r) == repr(built) and dataclasses.asdict(r) == dataclasses.asdict(built)
    assert isinstance(r.refs, tuple)
    assert env == Envelope(built, env.record_bytes, env.sig, raw, record_id_of(env.record_bytes))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.subject = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.raw = b""  # type: ignore[misc]
    assert dataclasses.replace(r, subject="LOT-10").subject == "LOT-10"
