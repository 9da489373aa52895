"""Consensus messages (docs/consensus.md): wire codec and signing bytes."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode import codec
from ledgernode.blocks import QC, ZERO_HASH, Header, check_qc, vote_bytes
from ledgernode.consensus import (
    BlockData, Blocks, Commit, FetchBlocks, Prepare, Proposal, RoundChange, Status,
    decode_message, encode_message,
)
from ledgernode.consensus.messages import (
    CERT_MAX, FETCH_MAX_BLOCKS, NO_ROUND, PAYLOAD_MAX_ITEMS, SIGN_PREFIX, signing_bytes,
)
from ledgernode.errors import InvalidInput
from tests.sim.cluster import keys_and_genesis, signed_copy

CHAIN = "sim"
D = bytes(range(32))
D2 = bytes(range(1, 33))
SIG = bytes(64)
BLOCK = BlockData(b"header-bytes", (b"r1", b"r2"))
# Codes a rejected message may carry: ours, or the canonical codec's.
CODEC_CODES = {"malformed", "non_canonical", "too_large", "too_deep", "trailing_bytes",
               "float", "bad_type", "bad_key", "ext_type"}


def pack(value: Any) -> bytes:
    """Canonical bytes of an arbitrary wire value (so only our checks can reject it)."""
    return codec.encode(value)


def rejects(raw: bytes, codes: set[str] | None = None) -> str:
    with pytest.raises(InvalidInput) as exc:
        decode_message(raw)
    allowed = {"bad_message"} if codes is None else codes
    assert exc.value.code in allowed, exc.value
    return exc.value.code


def prepare(h: int = 1, r: int = 0, d: bytes = D, sender: int = 1, sig: bytes = SIG) -> Prepare:
    return Prepare(CHAIN, h, r, d, sender, sig)


def rc_with_cert() -> RoundChange:
    cert = tuple(prepare(1, 0, D, s) for s in range(3))
    return RoundChange(CHAIN, 1, 1, 0, D, 2, SIG, cert, BLOCK)


def rc_plain(sender: int = 0, r: int = 1) -> RoundChange:
    return RoundChange(CHAIN, 1, r, NO_ROUND, b"", sender, SIG)


EXAMPLES = [
    prepare(),
    Commit(CHAIN, 1, 0, D, 2, SIG),
    rc_plain(),
    rc_with_cert(),
    RoundChange(CHAIN, 1, 2, 0, D, 2, SIG, tuple(prepare(1, 0, D, s) for s in range(3)), None),
    Proposal(CHAIN, 1, 0, D, 1, SIG, BLOCK, ()),
    Proposal(CHAIN, 1, 1, D, 2, SIG, BLOCK, (rc_plain(0), rc_plain(1), rc_with_cert())),
    Proposal(CHAIN, 3, 7, D, 2, SIG, BlockData(b"h", ()), ()),
    Status(CHAIN, 12, 3),
    FetchBlocks(CHAIN, 5, 16, 0),
    Blocks(CHAIN, ((BLOCK, b"qc-1"), (BlockData(b"h2", ()), b"qc-2")), 1),
    Blocks(CHAIN, (), 1),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_examples(msg: Any) -> None:
    raw = encode_message(msg)
    back = decode_message(raw)
    assert back == msg
    assert type(back) is type(msg)
    assert encode_message(back) == raw


def test_wire_layout_is_a_positional_array() -> None:
    """The wire form is a plain msgpack array starting with [kind, chain]."""
    p = prepare(h=4, r=2, sender=3)
    assert msgpack.unpackb(encode_message(p), raw=False) == ["prepare", CHAIN, 4, 2, D, 3, SIG]
    assert msgpack.unpackb(encode_message(Status(CHAIN, 9, 1)), raw=False) == ["status", CHAIN, 9, 1]
    assert msgpack.unpackb(encode_message(FetchBlocks(CHAIN, 2, 3, 1)), raw=False) == ["fetch", CHAIN, 2, 3, 1]


# -- Hypothesis ----------------------------------------------------------------

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=10**6)
chains = st.text(max_size=40)
hashes = st.binary(min_size=32, max_size=32)
sigs = st.binary(max_size=80)
blocks = st.builds(BlockData, st.binary(max_size=200), st.lists(st.binary(max_size=40), max_size=5).map(tuple))


@st.composite
def prepares_st(draw: Any, chain: str | None = None) -> Prepare:
    return Prepare(chain if chain is not None else draw(chains), draw(u64), draw(u64), draw(hashes),
                   draw(u64), draw(sigs))


@st.composite
def commits_st(draw: Any) -> Commit:
    return Commit(draw(chains), draw(u64), draw(u64), draw(hashes), draw(u64), draw(sigs))


@st.composite
def round_changes_st(draw: Any) -> RoundChange:
    prepared_round = draw(st.integers(min_value=NO_ROUND, max_value=2**63))
    return RoundChange(
        draw(chains), draw(u64), draw(u64), prepared_round, draw(st.binary(max_size=40)), draw(u64),
        draw(sigs), tuple(draw(st.lists(prepares_st(), max_size=4))), draw(st.none() | blocks),
    )


@st.composite
def proposals_st(draw: Any) -> Proposal:
    return Proposal(
        draw(chains), draw(u64), draw(u64), draw(hashes), draw(u64), draw(sigs),
        draw(st.none() | blocks), tuple(draw(st.lists(round_changes_st(), max_size=3))),
    )


messages_st = st.one_of(
    prepares_st(), commits_st(), round_changes_st(), proposals_st(),
    st.builds(Status, chains, u64, u64),
    st.builds(FetchBlocks, chains, u64, u64, u64),
    st.builds(Blocks, chains, st.lists(st.tuples(blocks, st.binary(max_size=60)), max_size=4).map(tuple), u64),
)


@settings(max_examples=300, deadline=None)
@given(messages_st)
def test_round_trip_hypothesis(msg: Any) -> None:
    raw = encode_message(msg)
    back = decode_message(raw)
    assert back == msg and type(back) is type(msg)
    assert encode_message(back) == raw


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decode_arbitrary_bytes_only_raises_invalid_input(raw: bytes) -> None:
    try:
        msg = decode_message(raw)
    except InvalidInput:
        return
    assert encode_message(msg) == raw  # anything accepted is canonical


@settings(max_examples=150, deadline=None)
@given(messages_st, st.data())
def test_truncation_and_trailing_bytes_rejected(msg: Any, data: Any) -> None:
    raw = encode_message(msg)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(InvalidInput):
        decode_message(raw[:cut])
    with pytest.raises(InvalidInput):
        decode_message(raw + b"\x00")


# -- rejections ------------------------------------------------------------------

def prep_wire(**over: Any) -> list[Any]:
    w = {"kind": "prepare", "chain": CHAIN, "h": 1, "r": 0, "d": D, "sender": 1, "sig": SIG}
    w.update(over)
    return list(w.values())


def rc_wire(cert: list[Any] | None = None, block: Any = None, prepared_round: int = NO_ROUND,
            prepared_hash: bytes = b"") -> list[Any]:
    return ["round-change", CHAIN, 1, 1, prepared_round, prepared_hash, 0, SIG,
            [] if cert is None else cert, block]


def prop_wire(just: list[Any] | None = None, block: Any = None) -> list[Any]:
    return ["proposal", CHAIN, 1, 1, D, 2, SIG, [b"h", []] if block is None else block,
            [] if just is None else just]


def test_helpers_build_valid_wires() -> None:
    assert isinstance(decode_message(pack(prep_wire())), Prepare)
    assert isinstance(decode_message(pack(rc_wire([prep_wire()], [b"h", [b"x"]], 0, D))), RoundChange)
    assert isinstance(decode_message(pack(prop_wire([rc_wire()]))), Proposal)


@pytest.mark.parametrize("wire", [
    prep_wire()[:-1],
    prep_wire() + [b""],
    ["commit", CHAIN, 1, 0, D, 1],
    rc_wire()[:-1],
    rc_wire() + [None],
    prop_wire()[:-1],
    prop_wire() + [[]],
    ["status", CHAIN, 1],
    ["status", CHAIN, 1, 2, 3],
    ["fetch", CHAIN, 1, 2],
    ["blocks", CHAIN, []],
    ["blocks", CHAIN, [], 1, 2],
    ["prepare"],
    [],
], ids=lambda w: f"{w[0] if w else 'empty'}-{len(w)}")
def test_wrong_arity_rejected(wire: list[Any]) -> None:
    rejects(pack(wire))


@pytest.mark.parametrize("kind", ["vote", "PREPARE", "roundchange", "", "round_change", "block"])
def test_unknown_kind_rejected(kind: str) -> None:
    rejects(pack([kind] + prep_wire()[1:]))


@pytest.mark.parametrize("value", [None, 7, "prepare", b"prepare", True])
def test_non_list_message_rejected(value: Any) -> None:
    rejects(pack(value))


def test_map_message_rejected() -> None:
    rejects(pack({"kind": "prepare"}), {"bad_message"} | CODEC_CODES)


@pytest.mark.parametrize("wire", [
    prep_wire(kind=1),
    prep_wire(chain=b"sim"),
    prep_wire(chain=None),
    prep_wire(h="1"),
    prep_wire(h=True),
    prep_wire(r=False),
    prep_wire(r=None),
    prep_wire(d="00" * 32),
    prep_wire(d=None),
    prep_wire(sender="1"),
    prep_wire(sender=b"\x01"),
    prep_wire(sig="sig"),
    prep_wire(sig=None),
    prep_wire(sig=[SIG]),
    ["status", CHAIN, "1", 2],
    ["fetch", CHAIN, 1, None, 2],
    ["blocks", CHAIN, "not a list", 1],
    ["blocks", CHAIN, [[None, b"qc"]], 1],
    ["blocks", CHAIN, [[[b"h", []]]], 1],
    ["blocks", CHAIN, [[[b"h", []], "qc"]], 1],
    ["blocks", CHAIN, [[[b"h"], b"qc"]], 1],
    ["blocks", CHAIN, [[[b"h", [1]], b"qc"]], 1],
    rc_wire(block=[b"h"]),
    rc_wire(block=[b"h", b"items"]),
    rc_wire(block=["h", []]),
    rc_wire(block=[b"h", ["x"]]),
    rc_wire(block=b"h"),
    rc_wire()[:8] + [None, None],
    rc_wire()[:5] + [None] + rc_wire()[6:],
    prop_wire(block=[b"h", [], []]),
    prop_wire(block=7),
    prop_wire()[:8] + [None],
    prop_wire()[:8] + [b""],
], ids=repr)
def test_wrong_types_rejected(wire: list[Any]) -> None:
    rejects(pack(wire))


@pytest.mark.parametrize("n", [0, 1, 31, 33, 64])
@pytest.mark.parametrize("kind", ["prepare", "commit"])
def test_vote_block_hash_must_be_32_bytes(kind: str, n: int) -> None:
    rejects(pack(prep_wire(kind=kind, d=bytes(n))))


@pytest.mark.parametrize("n", [0, 31, 33])
def test_proposal_block_hash_must_be_32_bytes(n: int) -> None:
    w = prop_wire()
    w[4] = bytes(n)
    rejects(pack(w))


@pytest.mark.parametrize("field", [2, 3, 5])
def test_negative_ints_rejected_in_votes(field: int) -> None:
    w = prep_wire()
    w[field] = -1
    rejects(pack(w))


@pytest.mark.parametrize("wire", [
    ["status", CHAIN, -1, 0],
    ["status", CHAIN, 1, -3],
    ["fetch", CHAIN, -1, 1, 0],
    ["fetch", CHAIN, 1, -1, 0],
    ["fetch", CHAIN, 1, 1, -1],
    ["blocks", CHAIN, [], -1],
    ["proposal", CHAIN, 1, -1, D, 2, SIG, [b"h", []], []],
    ["proposal", CHAIN, 1, 1, D, -2, SIG, [b"h", []], []],
    ["round-change", CHAIN, -5, 1, NO_ROUND, b"", 0, SIG, [], None],
    ["round-change", CHAIN, 1, 1, NO_ROUND, b"", -1, SIG, [], None],
    ["round-change", CHAIN, 1, 1, -2, b"", 0, SIG, [], None],
], ids=repr)
def test_negative_ints_rejected(wire: list[Any]) -> None:
    rejects(pack(wire))


def test_prepared_round_minus_one_is_the_only_negative_allowed() -> None:
    rc = decode_message(pack(rc_wire(prepared_round=-1)))
    assert isinstance(rc, RoundChange) and rc.prepared_round == NO_ROUND


@pytest.mark.parametrize("inner", [
    prep_wire(kind="commit"),
    ["status", CHAIN, 1, 0],
    ["fetch", CHAIN, 1, 1, 0],
    rc_wire(),
    prop_wire(),
    prep_wire(d=b"short"),
    "prepare",
    None,
], ids=repr)
def test_prepared_cert_holds_only_prepares(inner: Any) -> None:
    rejects(pack(rc_wire(cert=[prep_wire(), inner], prepared_round=0, prepared_hash=D)))


def test_prepared_cert_must_be_a_list() -> None:
    w = rc_wire()
    w[8] = None
    rejects(pack(w))
    w[8] = prep_wire()[0]
    rejects(pack(w))


@pytest.mark.parametrize("inner", [
    prep_wire(),
    prep_wire(kind="commit"),
    ["status", CHAIN, 1, 0],
    ["blocks", CHAIN, [], 0],
    7,
], ids=repr)
def test_justification_holds_only_round_changes(inner: Any) -> None:
    rejects(pack(prop_wire([rc_wire(), inner])))


def test_nested_proposal_in_justification_rejected() -> None:
    rejects(pack(prop_wire([rc_wire(), prop_wire()])))
    rejects(pack(prop_wire([prop_wire([rc_wire()])])))


def test_round_change_inside_a_prepared_cert_rejected() -> None:
    """Round changes are allowed at depth 0 and 1 only: not inside a certificate."""
    rejects(pack(prop_wire([rc_wire(cert=[rc_wire()])])))
    rejects(pack(rc_wire(cert=[rc_wire()])))


def test_oversize_prepared_cert_rejected() -> None:
    ok = pack(rc_wire(cert=[prep_wire()] * CERT_MAX, prepared_round=0, prepared_hash=D))
    assert len(decode_message(ok).prepared_cert) == CERT_MAX  # type: ignore[union-attr]
    rejects(pack(rc_wire(cert=[prep_wire()] * (CERT_MAX + 1), prepared_round=0, prepared_hash=D)))


def test_oversize_justification_rejected() -> None:
    ok = pack(prop_wire([rc_wire()] * CERT_MAX))
    assert len(decode_message(ok).justification) == CERT_MAX  # type: ignore[union-attr]
    rejects(pack(prop_wire([rc_wire()] * (CERT_MAX + 1))))


def test_oversize_blocks_rejected() -> None:
    item = [[b"h", []], b"qc"]
    ok = pack(["blocks", CHAIN, [item] * FETCH_MAX_BLOCKS, 0])
    assert len(decode_message(ok).blocks) == FETCH_MAX_BLOCKS  # type: ignore[union-attr]
    rejects(pack(["blocks", CHAIN, [item] * (FETCH_MAX_BLOCKS + 1), 0]))


def test_oversize_payload_rejected() -> None:
    ok = pack(prop_wire(block=[b"h", [b""] * PAYLOAD_MAX_ITEMS]))
    assert len(decode_message(ok).block.payload) == PAYLOAD_MAX_ITEMS  # type: ignore[union-attr]
    rejects(pack(prop_wire(block=[b"h", [b""] * (PAYLOAD_MAX_ITEMS + 1)])), {"bad_message"} | CODEC_CODES)


def test_oversize_strings_rejected_by_codec_limits() -> None:
    rejects(pack(prep_wire(chain="c" * 257)), {"bad_message"} | CODEC_CODES)
    assert decode_message(pack(prep_wire(chain="c" * 256))).chain == "c" * 256  # type: ignore[union-attr]


def test_non_canonical_and_non_data_model_bytes_rejected() -> None:
    raw = encode_message(prepare(h=1))
    # height 1 as a uint8 (0xcc 0x01) instead of a fixint: same value, not canonical.
    non_canonical = raw.replace(b"\xa3sim\x01", b"\xa3sim\xcc\x01", 1)
    assert non_canonical != raw
    rejects(non_canonical, CODEC_CODES)
    rejects(raw + b"\xc0", CODEC_CODES)
    rejects(msgpack.packb(["prepare", CHAIN, 1.0, 0, D, 1, SIG], use_bin_type=True), CODEC_CODES)
    # str sent as bin is not canonical for a str field, and a bin chain fails our check
    rejects(msgpack.packb(["prepare", CHAIN, 1, 0, D, 1, SIG], use_bin_type=False),
            {"bad_message"} | CODEC_CODES)


# -- signing bytes ---------------------------------------------------------------

def expected_bytes(kind: str, chain: str, h: int, r: int, value: Any) -> bytes:
    return b"ledgernode:consensus\n" + msgpack.packb([kind, chain, h, r, value], use_bin_type=True)


def test_sign_prefix() -> None:
    assert SIGN_PREFIX == b"ledgernode:consensus\n"


@settings(max_examples=150, deadline=None)
@given(chains, u64, u64, hashes, u64, sigs)
def test_commit_signing_bytes_are_the_commit_vote(chain: str, h: int, r: int, d: bytes, s: int,
                                                    sig: bytes) -> None:
    c = Commit(chain, h, r, d, s, sig)
    assert signing_bytes(c) == vote_bytes(chain, h, r, d)
    assert signing_bytes(c) == b"ledgernode:commit\n" + msgpack.packb([chain, h, r, d], use_bin_type=True)


@settings(max_examples=150, deadline=None)
@given(chains, u64, u64, hashes, u64, sigs, blocks)
def test_other_signing_bytes(chain: str, h: int, r: int, d: bytes, s: int, sig: bytes,
                             block: BlockData) -> None:
    assert signing_bytes(Prepare(chain, h, r, d, s, sig)) == expected_bytes("prepare", chain, h, r, d)
    assert signing_bytes(Proposal(chain, h, r, d, s, sig, block, (rc_plain(),))) == \
        expected_bytes("proposal", chain, h, r, d)
    rc = RoundChange(chain, h, r, 0, d, s, sig, (prepare(),), block)
    assert signing_bytes(rc) == expected_bytes("round-change", chain, h, r, [0, d])
    none = RoundChange(chain, h, r, NO_ROUND, b"", s, sig)
    assert signing_bytes(none) == expected_bytes("round-change", chain, h, r, [-1, b""])


def test_signing_bytes_ignore_sender_sig_and_unsigned_parts() -> None:
    base = Proposal(CHAIN, 1, 1, D, 2, b"", BLOCK, ())
    other = Proposal(CHAIN, 1, 1, D, 3, SIG, BlockData(b"other", ()), (rc_plain(),))
    assert signing_bytes(base) == signing_bytes(other)
    rc1 = RoundChange(CHAIN, 1, 2, 0, D, 0, b"")
    rc2 = RoundChange(CHAIN, 1, 2, 0, D, 1, SIG, (prepare(),), BLOCK)
    assert signing_bytes(rc1) == signing_bytes(rc2)


def test_signing_bytes_separate_kinds_and_values() -> None:
    p = Prepare(CHAIN, 1, 0, D, 1)
    variants = [
        p, Commit(CHAIN, 1, 0, D, 1), Proposal(CHAIN, 1, 0, D, 1),
        Prepare(CHAIN, 1, 0, D2, 1), Prepare(CHAIN, 2, 0, D, 1), Prepare(CHAIN, 1, 1, D, 1),
        Prepare("other", 1, 0, D, 1),
        RoundChange(CHAIN, 1, 0, NO_ROUND, b"", 1), RoundChange(CHAIN, 1, 0, 0, D, 1),
    ]
    assert len({signing_bytes(m) for m in variants}) == len(variants)


def test_q_signed_commits_form_a_valid_qc() -> None:
    keys, g = keys_and_genesis(4)
    header = Header(g.chain_id, 1, 1, ZERO_HASH, 1, 0, 0, bytes(32), g.valset_hash, bytes(32))
    d = header.block_hash
    commits = [signed_copy(keys[i], Commit(g.chain_id, 1, 2, d, i)) for i in (0, 2, 3)]
    for c in commits:  # each wire-encoded commit survives the trip with its signature
        assert decode_message(encode_message(c)) == c
    qc = QC(1, 2, d, tuple((c.sender, c.sig) for c in commits))
    check_qc(qc, header, g)
    with pytest.raises(InvalidInput) as exc:
        check_qc(QC(1, 2, d, qc.signatures[:2]), header, g)
    assert exc.value.code == "invalid_qc"
    # a Prepare signature over the same (h, r, d) is not a commit vote
    prep = signed_copy(keys[1], Prepare(g.chain_id, 1, 2, d, 1))
    with pytest.raises(InvalidInput):
        check_qc(QC(1, 2, d, qc.signatures[:2] + ((1, prep.sig),)), header, g)
