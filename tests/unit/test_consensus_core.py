"""The PBFT-lite replica (docs/consensus.md), driven directly, one input at a time.

n = 4 validators, so f = 1 and Q = 3. At height 1 the primary of round r is
(1 + r) % 4: validator 1 in round 0, 2 in round 1, 3 in round 2, 0 in round 3.
Every message fed in is really signed by the test key of its sender.
"""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError, replace
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode import codec, merkle
from ledgernode.blocks import QC, ZERO_HASH, Header, check_qc, decode_header, vote_bytes
from ledgernode.consensus import (
    BlockData, Blocks, ChainBlocks, Commit, Config, Equivocation, FetchBlocks, PersistedState, Prepare,
    Proposal, Ready, Replica, RoundChange, Status, decode_message, encode_message,
)
from ledgernode.consensus.core import ROUND_WINDOW
from ledgernode.consensus.messages import NO_ROUND, Signed, signed_part, signing_bytes
from ledgernode.consensus.state import Height
from ledgernode.errors import InvalidInput
from ledgernode.members import ValidatorSet
from tests.fixtures import seeded_key
from tests.sim.cluster import cached_verify, keys_and_genesis, signed_copy

KEYS, G = keys_and_genesis(4)
CHAIN = G.chain_id
BLOCKS = ChainBlocks(G, cached_verify)  # the block view the runtime passes, as in the simulation
N, F, Q = 4, 1, 3


# -- builders ----------------------------------------------------------------------

def make_block(height: int = 1, prev: bytes = ZERO_HASH, items: tuple[bytes, ...] = (b"r1",),
               prior: tuple[bytes, ...] = (), time: int | None = None, proposer: int = 1) -> BlockData:
    """A block with a real header: log over `prior` leaves then `items`."""
    f = merkle.Frontier()
    for leaf in prior:
        f.append(merkle.leaf_hash(leaf))
    start = f.size
    for leaf in items:
        f.append(merkle.leaf_hash(leaf))
    header = Header(CHAIN, height, height if time is None else time, prev, proposer, start, f.size,
                    f.root(), G.valset_hash, bytes(32))
    return BlockData(header.encode(), tuple(items))


def bhash(block: BlockData) -> bytes:
    return decode_header(block.header).block_hash


A = make_block(items=(b"r1",))
B = make_block(items=(b"r2",))
HA, HB = bhash(A), bhash(B)
A2 = make_block(2, HA, (b"r3",), prior=(b"r1",))  # height 2 on top of A
HA2 = bhash(A2)


def new_replica(index: int = 0, persisted: PersistedState | None = None, committed: int = 0,
                last: Header | None = None, verify: Any = cached_verify, **cfg: Any) -> Replica:
    cfg.setdefault("resend_ticks", 1000)  # keep periodic resends out of the way unless asked for
    return Replica(Config(G, index, **cfg), KEYS[index], committed, last, persisted, verify, blocks=BLOCKS)


def prep(sender: int, d: bytes, r: int = 0, h: int = 1, chain: str = CHAIN) -> Prepare:
    return signed_copy(KEYS[sender], Prepare(chain, h, r, d, sender))


def com(sender: int, d: bytes, r: int = 0, h: int = 1) -> Commit:
    return signed_copy(KEYS[sender], Commit(CHAIN, h, r, d, sender))


def rc(sender: int, r: int, h: int = 1, prepared: tuple[int, BlockData | None, tuple[Prepare, ...]] | None = None,
       prepared_hash: bytes | None = None) -> RoundChange:
    if prepared is None:
        msg = RoundChange(CHAIN, h, r, NO_ROUND, b"", sender)
    else:
        pr, block, cert = prepared
        d = prepared_hash if prepared_hash is not None else bhash(block)  # type: ignore[arg-type]
        msg = RoundChange(CHAIN, h, r, pr, d, sender, b"", cert, block)
    return signed_copy(KEYS[sender], msg)


def cert(d: bytes, r: int = 0, senders: tuple[int, ...] = (0, 1, 3), h: int = 1) -> tuple[Prepare, ...]:
    return tuple(prep(s, d, r, h) for s in senders)


def prop(sender: int, block: BlockData | None, r: int = 0, h: int = 1,
         just: tuple[RoundChange, ...] = (), d: bytes | None = None) -> Proposal:
    d = d if d is not None else bhash(block)  # type: ignore[arg-type]
    return signed_copy(KEYS[sender], Proposal(CHAIN, h, r, d, sender, b"", block, just))


def qc_for(block: BlockData, signers: tuple[int, ...] = (0, 1, 2), r: int = 0) -> QC:
    h = decode_header(block.header)
    return QC(h.height, r, h.block_hash, tuple((s, com(s, h.block_hash, r, h.height).sig) for s in signers))


def sent(ready: Ready, cls: type) -> list[Any]:
    return [m for _, m in ready.messages if isinstance(m, cls)]


def sig_ok(msg: Any) -> bool:
    return G.validators[msg.sender].pubkey.verify(msg.sig, signing_bytes(msg))


def is_empty(ready: Ready) -> bool:
    return ready == Ready()


def state_of(rep: Replica) -> tuple[Any, ...]:
    """Everything a dropped message must leave alone: the whole per-height state (a deep
    copy, so later changes show) and what the replica keeps across heights."""
    return (copy.deepcopy(rep.cur), rep.cur.state.encode(), rep.committed_height, rep.last_hash,
            rep.fetching, rep.vote_from)


def backup_with_proposal(block: BlockData = A) -> tuple[Replica, Ready]:
    rep = new_replica(0)
    ready = rep.on_message(prop(1, block))
    assert ready.dropped == () and ready.validate == ((1, 0, block),)
    return rep, ready


def backup_prepared(block: BlockData = A) -> tuple[Replica, Ready]:
    """Replica 0 with proposal validated and Q prepares: it has just sent its Commit."""
    rep, _ = backup_with_proposal(block)
    d = bhash(block)
    rep.on_block_validated(1, 0, d, True)
    rep.on_message(prep(1, d))
    ready = rep.on_message(prep(2, d))
    return rep, ready


# -- basics ------------------------------------------------------------------------

def test_quorum_parameters() -> None:
    rep = new_replica(0)
    assert (rep.n, rep.f, rep.q) == (N, F, Q)
    assert (rep.height, rep.round, rep.committed_height) == (1, 0, 0)
    assert rep.primary(rep.round) == 1 and rep.cur.state.prepared_round == NO_ROUND
    assert rep.cur.evidence_keys == set() and rep.cur.suspects == frozenset()


def test_primary_is_height_plus_round_mod_n() -> None:
    rep = new_replica(0)
    for r in range(12):
        assert rep.primary(r) == (1 + r) % N
    assert not rep.is_primary
    rep.on_block_fetched(A, qc_for(A))
    assert rep.height == 2
    for r in range(12):
        assert rep.primary(r) == (2 + r) % N
    assert rep.is_primary is False and rep.primary(2) == 0


def test_replica_key_must_match_its_index() -> None:
    with pytest.raises(AssertionError):
        Replica(Config(G, 0), KEYS[1], 0, None, blocks=BLOCKS)


def test_runtime_messages_are_not_for_the_replica() -> None:
    rep = new_replica(0)
    for msg in (FetchBlocks(CHAIN, 1, 4, 1), Blocks(CHAIN, (), 1)):
        assert rep.on_message(msg).dropped == ("bad_message",)


# -- round 0, the happy path ----------------------------------------------------------

def test_primary_builds_and_proposes_when_records_are_available() -> None:
    rep = new_replica(1)
    assert rep.is_primary
    assert rep.on_records_available(0).build is None
    ready = rep.on_records_available(5)
    assert ready.build == (1, 0)
    assert rep.on_records_available(5).build is None  # already building
    assert is_empty(rep.on_block_built(1, 1, A))  # not the round we asked for
    ready = rep.on_block_built(1, 0, A)
    (p,) = sent(ready, Proposal)
    assert ready.messages == ((None, p),)
    assert (p.height, p.round, p.block_hash, p.block, p.sender, p.justification) == (1, 0, HA, A, 1, ())
    assert sig_ok(p)
    assert ready.persist is not None and ready.persist.signed[("proposal", 0)] == codec.encode(HA)
    assert ready.validate == ((1, 0, A),)
    assert is_empty(rep.on_block_built(1, 0, B))  # one proposal per round


def test_backup_accepts_a_proposal_from_the_primary_only() -> None:
    rep = new_replica(0)
    for sender in (2, 3):
        ready = rep.on_message(prop(sender, A))
        assert ready.dropped == ("not_primary",)
        assert ready.validate == () and ready.messages == ()
    assert rep.cur.proposals == {}
    ready = rep.on_message(prop(1, A))
    assert ready.dropped == () and ready.validate == ((1, 0, A),)
    assert ready.messages == () and ready.persist is None  # nothing is signed before validation
    assert rep.cur.proposals[0].block == A


@pytest.mark.parametrize("case", ["no_block", "hash_mismatch", "wrong_height", "wrong_prev"])
def test_proposal_whose_block_does_not_extend_our_chain_is_dropped(case: str) -> None:
    rep = new_replica(0)
    if case == "no_block":
        p, code = prop(1, None, d=HA), "bad_message"
    elif case == "hash_mismatch":
        p, code = prop(1, A, d=HB), "bad_proposal"
    elif case == "wrong_height":
        p, code = prop(1, make_block(2, ZERO_HASH)), "bad_proposal"
    else:
        p, code = prop(1, make_block(1, b"\x01" * 32)), "bad_proposal"
    ready = rep.on_message(p)
    assert ready.dropped == (code,)
    assert ready.validate == () and rep.cur.proposals == {}


def test_validated_block_is_prepared_and_persisted_before_sending() -> None:
    rep, _ = backup_with_proposal()
    ready = rep.on_block_validated(1, 0, HA, True)
    (p,) = sent(ready, Prepare)
    assert ready.messages == ((None, p),)
    assert (p.chain, p.height, p.round, p.block_hash, p.sender) == (CHAIN, 1, 0, HA, 0)
    assert sig_ok(p)
    assert ready.persist is not None
    assert ready.persist.signed == {("prepare", 0): codec.encode(HA)}
    # the saved bytes carry the slot, so a restarted replica knows it
    assert PersistedState.decode(ready.persist.encode()).signed[("prepare", 0)] == codec.encode(HA)
    assert ready.commits == () and ready.validate == ()
    # validating again signs nothing new
    again = rep.on_block_validated(1, 0, HA, True)
    assert sent(again, Commit) == [] and again.persist is None


def test_invalid_block_is_not_prepared() -> None:
    rep, _ = backup_with_proposal()
    ready = rep.on_block_validated(1, 0, HA, False)
    assert ready.dropped == ("invalid_block",)
    assert ready.messages == () and ready.persist is None and rep.cur.state.signed == {}


@pytest.mark.parametrize("args", [(2, 0, HA), (1, 1, HA), (1, 0, HB)])
def test_validation_answer_for_another_proposal_is_ignored(args: tuple[int, int, bytes]) -> None:
    rep, _ = backup_with_proposal()
    assert is_empty(rep.on_block_validated(*args, True))
    assert rep.cur.state.signed == {}


def test_quorum_of_prepares_records_prepared_state_and_sends_commit() -> None:
    rep, _ = backup_with_proposal()
    rep.on_block_validated(1, 0, HA, True)
    ready = rep.on_message(prep(1, HA))
    assert ready.messages == () and rep.cur.state.prepared_round == NO_ROUND  # 2 of Q = 3
    ready = rep.on_message(prep(3, HA))
    st_ = rep.cur.state
    assert (st_.prepared_round, st_.prepared_hash, st_.prepared_block) == (0, HA, A)
    assert sorted(p.sender for p in st_.prepared_cert) == [0, 1, 3]
    assert all(sig_ok(p) and p.block_hash == HA and p.round == 0 for p in st_.prepared_cert)
    (c,) = sent(ready, Commit)
    assert ready.messages == ((None, c),)
    assert (c.height, c.round, c.block_hash, c.sender) == (1, 0, HA, 0)
    assert G.validators[0].pubkey.verify(c.sig, vote_bytes(CHAIN, 1, 0, HA))
    assert ready.persist is not None
    assert ready.persist.signed[("commit", 0)] == codec.encode(HA)
    assert ready.persist.prepared_round == 0 and ready.persist.prepared_block == A
    assert rep.cur.state.prepared_round == 0
    # a fourth prepare changes nothing
    assert rep.on_message(prep(2, HA)).messages == ()


def test_prepares_before_validation_wait_for_it() -> None:
    rep, _ = backup_with_proposal()
    for s in (1, 2, 3):
        assert rep.on_message(prep(s, HA)).messages == ()
    assert rep.cur.state.prepared_round == NO_ROUND
    ready = rep.on_block_validated(1, 0, HA, True)
    kinds = [type(m).__name__ for _, m in ready.messages]
    assert kinds == ["Prepare", "Commit"]
    assert rep.cur.state.prepared_round == 0


def test_prepares_for_another_block_do_not_count() -> None:
    rep, _ = backup_with_proposal()
    rep.on_block_validated(1, 0, HA, True)
    for s in (1, 2, 3):
        assert sent(rep.on_message(prep(s, HB)), Commit) == []
    assert rep.cur.state.prepared_round == NO_ROUND


def test_quorum_of_commits_commits_with_a_valid_qc() -> None:
    rep, _ = backup_prepared()
    assert rep.on_message(com(1, HA)).commits == ()  # own + 1 = 2 < Q
    assert rep.height == 1
    ready = rep.on_message(com(3, HA))
    assert len(ready.commits) == 1
    block, qc = ready.commits[0]
    assert block == A
    assert (qc.height, qc.round, qc.block_hash) == (1, 0, HA)
    assert sorted(s for s, _ in qc.signatures) == [0, 1, 3]
    check_qc(qc, decode_header(A.header), G)  # real signature checks
    assert decode_message(encode_message(com(3, HA))) == com(3, HA)
    assert (rep.height, rep.round, rep.committed_height, rep.last_hash) == (2, 0, 1, HA)
    assert ready.persist is not None and ready.persist.height == 2 and ready.persist.signed == {}
    assert rep.cur.state.prepared_round == NO_ROUND
    # late votes for the committed height are ignored
    assert rep.on_message(com(2, HA)).commits == ()


def test_commits_alone_decide_a_known_block() -> None:
    """Q commits prove Q validators prepared the block: no own vote needed, but the
    records must be ones we validated (the signature binds only the header hash)."""
    rep, _ = backup_with_proposal()
    rep.on_message(com(1, HA))
    rep.on_message(com(2, HA))
    ready = rep.on_message(com(3, HA))
    assert ready.commits == () and rep.cur.decided == (0, HA)  # proposal not validated yet
    ready = rep.on_block_validated(1, 0, HA, True)
    assert [b for b, _ in ready.commits] == [A]
    check_qc(ready.commits[0][1], decode_header(A.header), G)


def test_a_tampered_copy_of_the_proposal_is_never_committed() -> None:
    """Same signed header, other records: validation fails, so Q commits make the
    replica fetch the certified block instead of committing the copy it holds."""
    tampered = BlockData(A.header, A.payload + (b"r-injected",))
    rep = new_replica(0)
    ready = rep.on_message(replace(prop(1, A), block=tampered))
    assert ready.validate == ((1, 0, tampered),)
    rep.on_block_validated(1, 0, HA, False)
    for s in (1, 2, 3):
        assert rep.on_message(com(s, HA)).commits == ()
    assert rep.cur.decided == (0, HA)
    ready = rep.on_block_fetched(A, qc_for(A, (1, 2, 3)))
    assert [b for b, _ in ready.commits] == [A]


def test_commits_for_an_unknown_block_fetch_it() -> None:
    rep = new_replica(0)
    for s in (1, 2, 3):
        assert rep.on_message(com(s, HA)).commits == ()
    assert rep.cur.decided == (0, HA) and rep.height == 1
    ready = rep.on_tick()
    assert ready.fetch is not None and ready.fetch[0] in (1, 2, 3) and ready.fetch[1] == 1
    ready = rep.on_block_fetched(A, qc_for(A, (1, 2, 3)))
    assert [b for b, _ in ready.commits] == [A] and rep.height == 2


def test_ready_is_frozen_and_persists_a_copy_of_the_state_at_that_input() -> None:
    rep, _ = backup_with_proposal()
    ready = rep.on_block_validated(1, 0, HA, True)
    with pytest.raises(FrozenInstanceError):
        setattr(ready, "persist", None)  # what the runtime must not be able to do
    assert ready.persist is not None and ready.persist is not rep.cur.state
    saved = ready.persist.encode()
    rep.on_message(prep(1, HA))
    assert sent(rep.on_message(prep(2, HA)), Commit)  # signs and prepares: the live state changes ...
    assert rep.cur.state.prepared_round == 0 and ("commit", 0) in rep.cur.state.signed
    assert ready.persist.encode() == saved  # ... the Ready already returned does not
    assert ready.persist.signed == {("prepare", 0): codec.encode(HA)} and ready.persist.prepared_round == NO_ROUND


def test_a_commit_starts_the_next_height_from_a_fresh_state() -> None:
    """Everything of height 1 (votes, slots, evidence keys, the decided hash) goes at once."""
    rep, _ = backup_prepared()
    rep.on_message(prep(3, HB))
    rep.on_message(prep(3, HA))  # an equivocation at height 1
    rep.on_message(rc(1, 3))
    assert rep.cur.evidence_keys and rep.cur.seen and rep.cur.round_changes
    ready = rep.on_block_fetched(A, qc_for(A))
    assert [b for b, _ in ready.commits] == [A]
    assert rep.cur == Height(PersistedState(2), rep.turns.suspects(2), rep.turns.is_probe(2), rep.cfg.resend_ticks)
    assert ready.persist == PersistedState(2)


class _RefusingQCs:
    """A block view that decodes headers as the runtime does and accepts no QC."""

    def header(self, raw: bytes) -> Header:
        return decode_header(raw)

    def check_qc(self, qc: QC, block: BlockData, validators: ValidatorSet) -> None:
        raise InvalidInput("invalid_qc", "this view accepts no certificate")


def test_the_core_judges_blocks_through_the_view_it_is_given() -> None:
    rep = Replica(Config(G, 0), KEYS[0], 0, None, None, cached_verify, blocks=_RefusingQCs())
    ready = rep.on_block_fetched(A, qc_for(A))  # a valid QC, refused by the view
    assert ready.dropped == ("invalid_qc",) and ready.commits == () and rep.height == 1


# -- dropped inputs --------------------------------------------------------------------

def _garbled(msg: Any) -> Any:
    return replace(msg, sig=bytes([msg.sig[0] ^ 1]) + msg.sig[1:])


BAD_SIG_CASES = {
    "prepare_flipped": lambda: _garbled(prep(1, HA)),
    "prepare_empty_sig": lambda: replace(prep(1, HA), sig=b""),
    "prepare_wrong_key": lambda: replace(prep(2, HA), sender=1),
    "prepare_other_value": lambda: replace(prep(1, HA), block_hash=HB),
    "commit_flipped": lambda: _garbled(com(1, HA)),
    "commit_is_a_prepare_sig": lambda: replace(com(1, HA), sig=prep(1, HA).sig),
    "proposal_flipped": lambda: _garbled(prop(1, A)),
    "round_change_flipped": lambda: _garbled(rc(1, 1)),
    "round_change_other_value": lambda: replace(rc(1, 1), prepared_round=0, prepared_hash=HA,
                                                prepared_cert=cert(HA), prepared_block=A),
    "sender_out_of_range": lambda: replace(prep(1, HA), sender=4),
    "sender_far_out_of_range": lambda: replace(prep(1, HA), sender=10**9),
    "future_height": lambda: _garbled(prep(1, HA, h=3)),
}


@pytest.mark.parametrize("case", sorted(BAD_SIG_CASES))
def test_bad_signature_is_dropped_and_changes_nothing(case: str) -> None:
    rep, _ = backup_with_proposal()
    rep.on_block_validated(1, 0, HA, True)
    before = state_of(rep)
    ready = rep.on_message(BAD_SIG_CASES[case]())
    assert ready.dropped == ("bad_signature",)
    assert ready.messages == () and ready.persist is None and ready.fetch is None
    assert ready.evidence == () and ready.validate == () and ready.commits == ()
    assert state_of(rep) == before
    # the slot stays free: a validly signed message for it is accepted, not evidence
    ok = rep.on_message(prep(1, HA))
    assert ok.dropped == () and ok.evidence == ()


def test_message_for_another_chain_is_dropped() -> None:
    rep, _ = backup_with_proposal()
    before = state_of(rep)
    other = signed_copy(KEYS[1], Prepare("other-chain", 1, 0, HA, 1))
    assert rep.on_message(other).dropped == ("wrong_chain",)
    assert rep.on_message(Status("other-chain", 9, 1)).dropped == ("wrong_chain",)
    assert rep.on_message(signed_copy(KEYS[1], Commit("other-chain", 1, 0, HA, 1))).dropped == ("wrong_chain",)
    assert state_of(rep) == before


def test_round_beyond_the_window_is_dropped() -> None:
    rep = new_replica(0)
    ready = rep.on_message(prep(1, HA, r=ROUND_WINDOW + 1))
    assert ready.dropped == ("round_window",)
    assert rep.cur.seen == {} and rep.cur.prepares == {}
    assert rep.on_message(rc(2, ROUND_WINDOW + 1)).dropped == ("round_window",)
    assert rep.cur.round_changes == {}
    ready = rep.on_message(prep(1, HA, r=ROUND_WINDOW))
    assert ready.dropped == () and (ROUND_WINDOW, HA) in rep.cur.prepares


# Regression: a validly signed message with tampered unsigned parts (block,
# justification, prepared_cert) must not claim the sender's slot and shadow the
# genuine message that follows it.
@pytest.mark.parametrize("case", ["proposal_block", "proposal_justification", "round_change_cert"])
def test_rejected_unsigned_parts_do_not_block_the_genuine_message(case: str) -> None:
    rep = new_replica(0)
    if case == "proposal_block":
        genuine: Any = prop(1, A)
        tampered = replace(genuine, block=B)  # primary's signature, another (unsigned) block
        code = "bad_proposal"
    elif case == "proposal_justification":
        genuine = justified(1, B, (rc(1, 1), rc(2, 1), rc(3, 1)))
        tampered = replace(genuine, justification=genuine.justification[:2])
        code = "bad_justification"
    else:
        genuine = rc(1, 1, prepared=(0, A, cert(HA)))
        tampered = replace(genuine, prepared_cert=genuine.prepared_cert[:2])
        code = "bad_round_change"
    assert sig_ok(tampered)
    assert rep.on_message(tampered).dropped == (code,)
    ready = rep.on_message(genuine)
    if isinstance(genuine, Proposal):
        assert ready.validate == ((1, genuine.round, genuine.block),)
    else:
        assert rep.cur.round_changes.get(1) == genuine


def test_own_messages_echoed_back_are_ignored() -> None:
    rep, _ = backup_with_proposal()
    mine = prep(0, HB)
    assert is_empty(rep.on_message(mine))
    assert (0, "prepare", 0) not in rep.cur.seen


# -- equivocation and duplicates ---------------------------------------------------------

EQUIVOCATIONS: dict[str, tuple[Callable[[], Signed], Callable[[], Signed]]] = {
    "prepare": (lambda: prep(1, HA), lambda: prep(1, HB)),
    "commit": (lambda: com(2, HA), lambda: com(2, HB)),
    "proposal": (lambda: prop(1, A), lambda: prop(1, B)),
    "round-change": (lambda: rc(3, 1), lambda: rc(3, 1, prepared=(0, A, cert(HA)))),
}


@pytest.mark.parametrize("kind", sorted(EQUIVOCATIONS))
def test_two_values_for_one_slot_are_evidence(kind: str) -> None:
    first_f, second_f = EQUIVOCATIONS[kind]
    first, second = first_f(), second_f()
    rep = new_replica(0)
    r1 = rep.on_message(first)
    assert r1.evidence == () and r1.dropped == ()
    r2 = rep.on_message(second)
    # evidence keeps what the signatures cover, not attached blocks or certificates
    ev = Equivocation(first.sender, kind, 1, first.round, signed_part(first), signed_part(second))
    assert r2.evidence == (ev,)
    assert rep.cur.evidence_keys == {(first.sender, kind, first.round)}  # reported once per slot
    assert r2.dropped == ("equivocation",)
    assert r2.validate == () and r2.messages == ()
    # the second value has no effect
    if kind == "prepare":
        assert (0, HB) not in rep.cur.prepares
    if kind == "proposal":
        assert rep.cur.proposals[0].block_hash == HA
    # a third copy of either is a duplicate (the first) or dropped without new evidence
    assert is_empty(rep.on_message(first))
    again = rep.on_message(second)
    assert again.evidence == () and again.dropped == ("equivocation",)
    assert rep.cur.evidence_keys == {(first.sender, kind, first.round)}


def test_equivocation_evidence_is_signed_by_the_sender() -> None:
    rep = new_replica(0)
    rep.on_message(prep(1, HA))
    (ev,) = rep.on_message(prep(1, HB)).evidence
    assert sig_ok(ev.first) and sig_ok(ev.second)
    assert signing_bytes(ev.first) != signing_bytes(ev.second)
    assert (ev.sender, ev.kind, ev.height, ev.round) == (1, "prepare", 1, 0)


def test_same_value_in_another_round_or_kind_is_not_evidence() -> None:
    rep = new_replica(0)
    for m in (prep(1, HA), prep(1, HB, r=1), com(1, HA), com(1, HB, r=1)):
        ready = rep.on_message(m)
        assert ready.evidence == () and ready.dropped == ()
    assert rep.cur.evidence_keys == set()


@pytest.mark.parametrize("make", [lambda: prep(1, HA), lambda: com(2, HA), lambda: rc(3, 1)],
                         ids=["prepare", "commit", "round-change"])
def test_duplicates_are_idempotent(make: Any) -> None:
    rep, _ = backup_with_proposal()
    rep.on_block_validated(1, 0, HA, True)
    msg = make()
    rep.on_message(msg)
    before = state_of(rep)
    for _ in range(3):
        assert is_empty(rep.on_message(msg))
    assert state_of(rep) == before


def test_duplicate_proposal_is_validated_once() -> None:
    rep, _ = backup_with_proposal()
    assert is_empty(rep.on_message(prop(1, A)))


def test_duplicate_prepares_do_not_make_a_quorum() -> None:
    rep, _ = backup_with_proposal()
    rep.on_block_validated(1, 0, HA, True)
    for _ in range(5):
        assert sent(rep.on_message(prep(1, HA)), Commit) == []
    assert rep.cur.state.prepared_round == NO_ROUND


# -- round timer ---------------------------------------------------------------------

def ticks_to_round(rep: Replica, target: int, limit: int = 10_000) -> tuple[int, Ready]:
    n = 0
    while True:
        ready = rep.on_tick()
        n += 1
        if rep.round >= target:
            return n, ready
        assert n < limit, "round timer never fired"


def test_idle_replica_keeps_its_round() -> None:
    rep = new_replica(0, round_timeout_ticks=3)
    for _ in range(100):
        assert sent(rep.on_tick(), RoundChange) == []
    assert rep.round == 0


@pytest.mark.parametrize("lone", ["prepare", "commit", "round-change"])
def test_one_lying_validator_cannot_wake_an_idle_height(lone: str) -> None:
    """A single signed vote or round change proves nothing (its sender may lie): the timer
    stays off. From f + 1 validators one is honest, so the height has work: it runs."""
    rep = new_replica(0, round_timeout_ticks=3)
    make: dict[str, Callable[[int], Signed]] = {
        "prepare": lambda s: prep(s, HA), "commit": lambda s: com(s, HA), "round-change": lambda s: rc(s, 1)}
    rep.on_message(make[lone](2))
    for _ in range(100):
        assert sent(rep.on_tick(), RoundChange) == []
    assert rep.round == 0
    rep.on_message(make[lone](3))  # f + 1 = 2 senders
    if lone == "round-change":
        assert rep.round == 1  # f + 1 round changes above us: we join them at once
    else:
        assert ticks_to_round(rep, 1)[0] == 3


def test_round_timer_moves_to_the_next_round_and_broadcasts_a_round_change() -> None:
    base = 7
    rep = new_replica(0, round_timeout_ticks=base, resend_ticks=1000)
    assert rep.on_records_available(3).build is None  # not the primary
    n, ready = ticks_to_round(rep, 1)
    assert n == base and rep.round == 1
    (m,) = sent(ready, RoundChange)
    assert ready.messages == ((None, m),)
    assert (m.height, m.round, m.prepared_round, m.prepared_hash, m.sender) == (1, 1, NO_ROUND, b"", 0)
    assert m.prepared_cert == () and m.prepared_block is None and sig_ok(m)
    assert ready.persist is not None and ready.persist.round == 1
    assert ready.persist.signed[("round-change", 1)] == codec.encode([NO_ROUND, b""])


def test_round_timeout_doubles_per_round() -> None:
    base = 5
    rep = new_replica(0, round_timeout_ticks=base, resend_ticks=1000)
    rep.on_records_available(1)
    ticks = [ticks_to_round(rep, r)[0] for r in (1, 2, 3, 4)]
    assert ticks == [base, 2 * base, 4 * base, 8 * base]


def test_round_timeout_doubling_is_capped() -> None:
    rep = new_replica(0, round_timeout_ticks=2, round_timeout_doublings_max=2, resend_ticks=1000)
    rep.on_records_available(1)
    assert [ticks_to_round(rep, r)[0] for r in (1, 2, 3, 4, 5)] == [2, 4, 8, 8, 8]


def _after(proposers: list[int], index: int, **cfg: Any) -> Replica:
    """Replica `index` at height len(proposers) + 1, where height i + 1 was proposed by proposers[i]."""
    height = len(proposers)
    last = decode_header(make_block(height, proposer=proposers[-1]).header)
    cfg.setdefault("resend_ticks", 1000)
    return Replica(Config(G, index, **cfg), KEYS[index], height, last, None, cached_verify,
                   recent_proposers=tuple(enumerate(proposers, 1)), blocks=BLOCKS)


def test_a_primary_that_missed_its_last_turn_is_skipped_at_once() -> None:
    # height 3 was validator 3's turn and validator 0 proposed it; height 7 is 3's turn again
    rep = _after([1, 2, 0, 0, 1, 2], 0, round_timeout_ticks=40)
    assert rep.primary(0) == 3 and rep.cur.suspects == {3}
    ready = rep.on_records_available(1)
    assert rep.round == 1 and [m.round for m in sent(ready, RoundChange)] == [1]
    assert rep.timeout_ticks() == 80  # the next primary (0) gets the full timer


@pytest.mark.parametrize("ahead", [1, 2])
def test_a_replica_that_is_catching_up_does_not_skip(ahead: int) -> None:
    """The height is decided already when f + 1 peers show a committed height >= ours:
    a round change there would cost a synced write per height fetched. One peer alone
    (it may lie) does not stop the skipping."""
    rep = _after([1, 2, 0, 0, 1, 2], 0, round_timeout_ticks=40)
    for sender in (1, 2)[:ahead]:
        rep.on_message(Status(CHAIN, 7, sender))
    rep.on_records_available(1)
    assert rep.round == (0 if ahead == 2 else 1)


def test_while_it_catches_up_one_peer_ahead_is_enough_not_to_skip() -> None:
    """Right after a fetched commit the other links may not be back yet: one peer showing
    a committed height >= ours is enough then."""
    rep = _after([1, 2, 0, 0, 1, 2], 0, round_timeout_ticks=40)
    rep.fetched_last = True  # as on_block_fetched leaves it
    rep.on_message(Status(CHAIN, 9, 1))
    rep.on_records_available(1)
    assert rep.round == 0


def test_the_skipped_primary_builds_nothing_for_its_turn() -> None:
    rep = _after([1, 2, 0, 0, 1, 2], 3, round_timeout_ticks=40)
    ready = rep.on_records_available(1)
    assert ready.build is None and rep.round == 1


def test_a_primary_that_proposed_its_last_turn_gets_the_full_timer() -> None:
    rep = _after([1, 2, 3, 0, 1, 2], 0, round_timeout_ticks=40)
    assert rep.cur.suspects == frozenset()
    rep.on_records_available(1)
    assert rep.round == 0 and ticks_to_round(rep, 1)[0] == 40


def test_a_suspect_gets_a_probe_turn_with_half_the_timer() -> None:
    # height 131 is validator 3's turn and a probe (131 // 4 = 32); it missed height 127
    proposers = [(h + 1) % 4 if h % 4 == 3 else h % 4 for h in range(1, 131)]
    rep = _after(proposers, 3, round_timeout_ticks=40)
    assert rep.cur.suspects == {3} and rep.cur.probe
    assert rep.on_records_available(1).build == (131, 0)  # it may try its turn
    other = _after(proposers, 0, round_timeout_ticks=40)
    other.on_records_available(1)
    assert other.round == 0 and ticks_to_round(other, 1)[0] == 20


def test_round_change_after_prepared_carries_the_certificate_and_block() -> None:
    rep, _ = backup_prepared()
    _, ready = ticks_to_round(rep, 1)
    (m,) = sent(ready, RoundChange)
    assert (m.round, m.prepared_round, m.prepared_hash, m.prepared_block) == (1, 0, HA, A)
    assert sorted(p.sender for p in m.prepared_cert) == [0, 1, 2] and sig_ok(m)
    # another replica accepts it as a valid round change
    other = new_replica(3)
    assert other.on_message(m).dropped == ()


def test_f_plus_one_round_changes_jump_to_the_smallest_higher_round() -> None:
    rep = new_replica(0, resend_ticks=1000)
    ready = rep.on_message(rc(1, 5))
    assert rep.round == 0 and sent(ready, RoundChange) == []  # f = 1 is not enough
    ready = rep.on_message(rc(2, 2))
    assert rep.round == 2
    (m,) = sent(ready, RoundChange)
    assert (m.round, m.sender) == (2, 0) and sig_ok(m)
    assert ready.persist is not None and ready.persist.round == 2
    # round changes for rounds at or below ours never pull it back or forward
    rep.on_message(rc(3, 1))
    assert rep.round == 2


def test_round_changes_from_one_sender_count_once() -> None:
    rep = new_replica(0)
    rep.on_message(rc(1, 2))
    rep.on_message(rc(1, 3))
    assert rep.round == 0


def test_resend_repeats_what_was_signed_this_round() -> None:
    rep2 = new_replica(0, resend_ticks=3)
    rep2.on_message(prop(1, A))
    (p,) = sent(rep2.on_block_validated(1, 0, HA, True), Prepare)
    outs = [rep2.on_tick() for _ in range(3)]
    assert outs[0].messages == () and outs[1].messages == ()
    assert (None, p) in outs[2].messages
    assert (None, Status(CHAIN, 0, 0)) in outs[2].messages
    assert outs[2].persist is None  # nothing new is signed


# -- new primary: round > 0 -------------------------------------------------------------

def primary_of_round_1_after_round_changes(*rcs: RoundChange) -> tuple[Replica, list[Ready]]:
    rep = new_replica(2, resend_ticks=1000)
    return rep, [rep.on_message(m) for m in rcs]


def test_new_primary_with_a_quorum_of_round_changes_builds_and_proposes() -> None:
    rep, readies = primary_of_round_1_after_round_changes(rc(0, 1), rc(3, 1))
    assert readies[0].build is None and rep.round == 1
    ready = readies[1]
    assert ready.build == (1, 1)  # own round change + 2 others = Q, none prepared
    (own,) = sent(ready, RoundChange)
    assert own.sender == 2 and own.round == 1
    block = make_block(items=(b"r9",), proposer=2)
    ready = rep.on_block_built(1, 1, block)
    (p,) = sent(ready, Proposal)
    assert (p.round, p.block, p.block_hash, p.sender) == (1, block, bhash(block), 2) and sig_ok(p)
    assert len(p.justification) == Q
    assert sorted(j.sender for j in p.justification) == [0, 2, 3]
    assert all(j.round == 1 and j.height == 1 and sig_ok(j) for j in p.justification)
    assert ready.validate == ((1, 1, block),)
    assert ready.persist is not None and ("proposal", 1) in ready.persist.signed

    # a backup still in round 0 accepts it, moves to round 1 and prepares it
    backup = new_replica(0)
    wire = decode_message(encode_message(p))
    r = backup.on_message(wire)
    assert r.dropped == () and r.validate == ((1, 1, block),) and backup.round == 1
    r = backup.on_block_validated(1, 1, bhash(block), True)
    (pr,) = sent(r, Prepare)
    assert (pr.round, pr.block_hash) == (1, bhash(block))


def test_new_primary_ignores_a_built_block_it_did_not_ask_for() -> None:
    rep, _ = primary_of_round_1_after_round_changes(rc(0, 1))
    assert is_empty(rep.on_block_built(1, 1, A))
    assert is_empty(rep.on_block_built(1, 0, A))


def test_new_primary_reproposes_the_prepared_block_without_building() -> None:
    prepared = rc(0, 1, prepared=(0, A, cert(HA)))
    rep, readies = primary_of_round_1_after_round_changes(prepared, rc(3, 1))
    assert all(r.build is None for r in readies)
    (p,) = sent(readies[-1], Proposal)
    assert (p.round, p.block_hash, p.block) == (1, HA, A) and sig_ok(p)
    assert len(p.justification) == Q
    j0 = p.justification[0]
    assert (j0.sender, j0.prepared_round, j0.prepared_hash) == (0, 0, HA)
    assert j0.prepared_cert == prepared.prepared_cert
    assert readies[-1].validate == ((1, 1, A),)
    # a backup accepts the re-proposal
    backup = new_replica(3)
    assert backup.on_message(p).validate == ((1, 1, A),)


def test_new_primary_reproposes_the_block_of_the_highest_prepared_round() -> None:
    # height 1, round 2: primary is 3
    rep = new_replica(3, resend_ticks=1000)
    readies = [
        rep.on_message(rc(0, 2, prepared=(0, A, cert(HA, 0)))),
        rep.on_message(rc(1, 2, prepared=(1, B, cert(HB, 1, (0, 1, 2))))),
    ]
    assert rep.round == 2 and all(r.build is None for r in readies)
    (p,) = sent(readies[-1], Proposal)
    assert (p.round, p.block_hash, p.block) == (2, HB, B)


def test_new_primary_without_the_prepared_block_does_not_build() -> None:
    stripped = rc(0, 1, prepared=(0, None, cert(HA)), prepared_hash=HA)
    rep, readies = primary_of_round_1_after_round_changes(stripped, rc(3, 1))
    assert rep.round == 1
    assert all(r.build is None and sent(r, Proposal) == [] for r in readies)


def justified(r: int, block: BlockData, rcs: tuple[RoundChange, ...]) -> Proposal:
    return prop((1 + r) % N, block, r=r, just=rcs)


@pytest.mark.parametrize("case", [
    "too_few", "duplicate_sender", "other_round", "bad_rc_signature", "fresh_block_when_prepared",
    "none",
])
def test_backup_rejects_an_unjustified_round_1_proposal(case: str) -> None:
    prepared = rc(0, 1, prepared=(0, A, cert(HA)))
    rcs = {
        "too_few": (rc(0, 1), rc(3, 1)),
        "duplicate_sender": (rc(0, 1), rc(3, 1), rc(3, 1)),
        "other_round": (rc(0, 1), rc(3, 1), rc(1, 2)),
        "bad_rc_signature": (rc(0, 1), rc(3, 1), _garbled(rc(1, 1))),
        "fresh_block_when_prepared": (prepared, rc(3, 1), rc(1, 1)),
        "none": (),
    }[case]
    rep = new_replica(0)
    before = rep.round
    ready = rep.on_message(justified(1, B, rcs))
    assert ready.dropped == ("bad_justification",)
    assert ready.validate == () and rep.cur.proposals == {} and rep.round == before


def test_backup_accepts_a_justified_reproposal_and_a_fresh_block_when_none_prepared() -> None:
    prepared = rc(0, 1, prepared=(0, A, cert(HA)))
    rep = new_replica(0)
    assert rep.on_message(justified(1, A, (prepared, rc(3, 1), rc(1, 1)))).validate == ((1, 1, A),)
    rep = new_replica(0)
    assert rep.on_message(justified(1, B, (rc(2, 1), rc(3, 1), rc(1, 1)))).validate == ((1, 1, B),)


def test_justification_with_a_broken_round_change_is_rejected() -> None:
    bad_cert = rc(0, 1, prepared=(0, A, cert(HA, senders=(0, 1))))  # 2 prepares < Q
    rep = new_replica(3)
    ready = rep.on_message(justified(1, A, (bad_cert, rc(3, 1), rc(1, 1))))
    assert ready.dropped in (("bad_justification",), ("bad_round_change",))
    assert ready.validate == ()


@pytest.mark.parametrize("case", [
    "to_round_0", "prepared_data_without_round", "prepared_round_not_below", "short_cert",
    "cert_for_other_block", "cert_for_other_round", "cert_duplicate_sender", "cert_bad_sig",
    "block_not_matching_hash", "block_on_other_parent",
])
def test_invalid_round_changes_are_dropped(case: str) -> None:
    other_parent = make_block(1, b"\x07" * 32)
    msg = {
        "to_round_0": lambda: rc(1, 0),
        "prepared_data_without_round": lambda: signed_copy(
            KEYS[1], RoundChange(CHAIN, 1, 1, NO_ROUND, HA, 1)),
        "prepared_round_not_below": lambda: rc(1, 1, prepared=(1, A, cert(HA, 1))),
        "short_cert": lambda: rc(1, 1, prepared=(0, A, cert(HA, senders=(0, 1)))),
        "cert_for_other_block": lambda: rc(1, 1, prepared=(0, A, cert(HB))),
        "cert_for_other_round": lambda: rc(1, 2, prepared=(0, A, cert(HA, 1))),
        "cert_duplicate_sender": lambda: rc(1, 1, prepared=(0, A, cert(HA, senders=(0, 1, 1)))),
        "cert_bad_sig": lambda: rc(1, 1, prepared=(0, A, cert(HA)[:2] + (_garbled(prep(3, HA)),))),
        "block_not_matching_hash": lambda: rc(1, 1, prepared=(0, B, cert(HA)), prepared_hash=HA),
        "block_on_other_parent": lambda: rc(1, 1, prepared=(0, other_parent, cert(bhash(other_parent)))),
    }[case]()
    rep = new_replica(0)
    ready = rep.on_message(msg)
    assert ready.dropped == ("bad_round_change",)
    assert rep.cur.round_changes == {} and ready.messages == ()


# -- persist before send, and restarts ---------------------------------------------------

def proposal_at(r: int, block: BlockData) -> Proposal:
    """The (equivocation-capable) primary's proposal of `block` at (1, r), justified for r > 0."""
    return justified(r, block, (rc(1, r), rc(2, r), rc(3, r))) if r else prop(1, block)


@pytest.mark.parametrize("r", [0, 1])
def test_restarted_replica_never_prepares_a_different_block_for_a_signed_slot(r: int) -> None:
    rep = new_replica(0)
    assert rep.on_message(proposal_at(r, A)).validate == ((1, r, A),)
    ready = rep.on_block_validated(1, r, HA, True)
    (first,) = sent(ready, Prepare)
    assert first.round == r
    assert ready.persist is not None and ("prepare", r) in ready.persist.signed
    saved = ready.persist.encode()

    restarted = new_replica(0, persisted=PersistedState.decode(saved))
    assert (restarted.height, restarted.round) == (1, r)
    ready = restarted.on_message(proposal_at(r, B))  # the primary's other block for (1, r)
    assert ready.validate == ((1, r, B),)
    ready = restarted.on_block_validated(1, r, HB, True)
    assert sent(ready, Prepare) == [] and ready.messages == ()
    assert restarted.cur.state.signed[("prepare", r)] == codec.encode(HA)
    for s in (1, 2, 3):  # others' prepares for B never make it sign a Prepare for B
        assert sent(restarted.on_message(prep(s, HB, r)), Prepare) == []
    for _ in range(3 * restarted.cfg.resend_ticks):  # nor does a resend
        assert all(not (isinstance(m, Prepare) and m.block_hash == HB) for _, m in restarted.on_tick().messages)

    # re-feeding A (to a replica restarted from the same bytes) gives the byte-identical Prepare
    again = new_replica(0, persisted=PersistedState.decode(saved))
    again.on_message(proposal_at(r, A))
    ready = again.on_block_validated(1, r, HA, True)
    (second,) = sent(ready, Prepare)
    assert encode_message(second) == encode_message(first)


def test_restarted_prepared_replica_never_commits_another_block_in_that_round() -> None:
    rep, ready = backup_prepared(A)
    (c1,) = sent(ready, Commit)
    assert ready.persist is not None
    saved = ready.persist.encode()
    restarted = new_replica(0, persisted=PersistedState.decode(saved))
    assert restarted.cur.state.prepared_round == 0 and restarted.cur.state.prepared_block == A
    restarted.on_message(prop(1, B))
    r = restarted.on_block_validated(1, 0, HB, True)
    assert r.messages == ()
    for s in (1, 2, 3):
        r = restarted.on_message(prep(s, HB))
        assert sent(r, Commit) == [] and sent(r, Prepare) == []
    assert restarted.cur.state.prepared_hash == HA
    # Q commits for A still commit A from the persisted prepared block
    restarted2 = new_replica(0, persisted=PersistedState.decode(saved))
    committed = [b for s in (1, 2, 3) for b, _ in restarted2.on_message(com(s, HA)).commits]
    assert committed == [A]  # the persisted prepared block is what it commits
    assert c1.sig == com(0, HA).sig  # and its Commit was the deterministic vote


def test_restart_keeps_the_round_and_the_round_change_slot() -> None:
    rep = new_replica(0, round_timeout_ticks=3, resend_ticks=1000)
    rep.on_records_available(1)
    _, ready = ticks_to_round(rep, 1)
    (m,) = sent(ready, RoundChange)
    assert ready.persist is not None
    restarted = new_replica(0, persisted=PersistedState.decode(ready.persist.encode()))
    assert restarted.round == 1
    # a round-0 proposal is now too old to accept
    assert restarted.on_message(prop(1, A)).validate == ()
    # it re-signs the identical round change if it must move to round 1 again
    assert restarted.cur.state.signed[("round-change", 1)] == codec.encode(m.value)


def test_persisted_state_for_another_height_is_ignored() -> None:
    stale = PersistedState(1, 3, {("prepare", 3): codec.encode(HA)})
    rep = new_replica(0, persisted=stale, committed=1, last=decode_header(A.header))
    assert (rep.height, rep.round, rep.cur.state.signed) == (2, 0, {})


def test_persisted_state_round_trip() -> None:
    empty = PersistedState(1)
    assert PersistedState.decode(empty.encode()) == empty
    full = PersistedState(7, 2, {("prepare", 0): codec.encode(HA), ("round-change", 2): codec.encode([0, HA]),
                                 ("commit", 0): codec.encode(HA)},
                          0, HA, cert(HA), A)
    back = PersistedState.decode(full.encode())
    assert back == full
    assert back.encode() == full.encode()
    # and the state a real replica persisted after preparing
    _, ready = backup_prepared()
    assert ready.persist is not None
    assert PersistedState.decode(ready.persist.encode()) == ready.persist


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 2**40), round_=st.integers(0, 2**20),
    slots=st.dictionaries(st.tuples(st.sampled_from(["prepare", "commit", "proposal", "round-change"]),
                                    st.integers(0, 1000)), st.binary(max_size=40), max_size=8),
    prepared_round=st.integers(NO_ROUND, 1000), prepared_hash=st.binary(max_size=32),
    n_cert=st.integers(0, 3), block=st.none() | st.builds(
        BlockData, st.binary(max_size=64), st.lists(st.binary(max_size=16), max_size=4).map(tuple)),
)
def test_persisted_state_round_trip_hypothesis(height: int, round_: int, slots: dict[tuple[str, int], bytes],
                                                prepared_round: int, prepared_hash: bytes, n_cert: int,
                                                block: BlockData | None) -> None:
    state = PersistedState(height, round_, slots, prepared_round, prepared_hash, cert(HA)[:n_cert], block)
    assert PersistedState.decode(state.encode()) == state


# -- catch-up ------------------------------------------------------------------------

def test_fetched_block_with_valid_qc_is_committed() -> None:
    rep = new_replica(0)
    qc = qc_for(A, (0, 2, 3))
    ready = rep.on_block_fetched(A, qc)
    assert ready.commits == ((A, qc),) and ready.dropped == ()
    assert (rep.height, rep.committed_height, rep.last_hash) == (2, 1, HA)
    ready = rep.on_block_fetched(A2, qc_for(A2, (1, 2, 3), r=4))
    assert [b for b, _ in ready.commits] == [A2] and rep.height == 3 and rep.last_hash == HA2


@pytest.mark.parametrize("case", ["two_sigs", "bad_sig", "duplicate_signer", "unknown_signer", "other_block",
                                  "prepare_sigs"])
def test_fetched_block_with_a_bad_qc_is_dropped(case: str) -> None:
    good = qc_for(A)
    qc = {
        "two_sigs": replace(good, signatures=good.signatures[:2]),
        "bad_sig": replace(good, signatures=good.signatures[:2] + ((2, _garbled(com(2, HA)).sig),)),
        "duplicate_signer": replace(good, signatures=good.signatures[:2] + (good.signatures[1],)),
        "unknown_signer": replace(good, signatures=good.signatures[:2] + ((4, good.signatures[0][1]),)),
        "other_block": qc_for(B),
        "prepare_sigs": replace(good, signatures=tuple((s, prep(s, HA).sig) for s in (0, 1, 2))),
    }[case]
    rep = new_replica(0)
    before = state_of(rep)
    ready = rep.on_block_fetched(A, qc)
    assert ready.dropped == ("invalid_qc",) and ready.commits == ()
    assert state_of(rep) == before and rep.committed_height == 0


@pytest.mark.parametrize("block", [A2, make_block(1, b"\x01" * 32), make_block(3, HA)],
                         ids=["height_2_first", "wrong_prev", "skips_a_height"])
def test_fetched_block_that_is_not_next_is_dropped(block: BlockData) -> None:
    rep = new_replica(0)
    ready = rep.on_block_fetched(block, qc_for(block))
    assert ready.dropped == ("fetch_not_next",) and ready.commits == ()
    assert rep.height == 1


def test_fetched_block_already_committed_is_not_next() -> None:
    rep = new_replica(0)
    rep.on_block_fetched(A, qc_for(A))
    assert rep.on_block_fetched(A, qc_for(A)).dropped == ("fetch_not_next",)


@pytest.mark.parametrize("msg", [
    lambda: prep(1, HA, h=3), lambda: com(2, HA, h=3), lambda: rc(3, 1, h=5), lambda: prop(3, A2, h=3),
], ids=["prepare", "commit", "round-change", "proposal"])
def test_valid_message_two_heights_ahead_triggers_fetch(msg: Any) -> None:
    rep = new_replica(0)
    m = msg()
    ready = rep.on_message(m)
    assert ready.fetch == (m.sender, 1) and ready.dropped == ()
    assert rep.cur.future == {}  # only h + 1 is buffered
    assert rep.height == 1 and rep.round == 0


def test_fetch_is_not_repeated_until_it_times_out() -> None:
    rep = new_replica(0, fetch_timeout_ticks=4, resend_ticks=1000)
    assert rep.on_message(prep(1, HA, h=3)).fetch == (1, 1)
    assert rep.on_message(prep(2, HA, h=3)).fetch is None
    for _ in range(4):
        rep.on_tick()
    assert rep.on_message(prep(3, HA, h=3)).fetch == (3, 1)


def test_status_from_a_peer_ahead_triggers_fetch() -> None:
    rep = new_replica(0)
    assert rep.on_message(Status(CHAIN, 0, 2)).fetch is None  # behind us
    assert rep.on_message(Status(CHAIN, 5, 0)).fetch is None  # ourselves
    assert rep.on_message(Status(CHAIN, 5, 4)).fetch is None  # not a validator
    assert rep.on_message(Status(CHAIN, 1, 2)).fetch == (2, 1)


def test_next_height_messages_are_buffered_and_replayed_after_commit() -> None:
    rep = new_replica(0)
    p2 = prop(2, A2, h=2)  # primary of (2, 0) is 2
    ready = rep.on_message(p2)
    assert ready.fetch == (2, 1) and ready.validate == ()
    assert rep.cur.future == {2: [p2]}
    ready = rep.on_block_fetched(A, qc_for(A))
    assert [b for b, _ in ready.commits] == [A]
    assert ready.validate == ((2, 0, A2),)
    assert rep.cur.proposals[0] == p2


def test_next_height_buffer_is_bounded_per_sender() -> None:
    from ledgernode.consensus.core import FUTURE_MAX_PER_SENDER

    rep = new_replica(0)
    for r in range(FUTURE_MAX_PER_SENDER + 10):
        rep.on_message(prep(1, HA2, r, h=2))
    assert len(rep.cur.future[1]) == FUTURE_MAX_PER_SENDER
    assert [m.round for m in rep.cur.future[1]] == list(range(FUTURE_MAX_PER_SENDER))


def test_bad_signature_at_next_height_is_not_buffered() -> None:
    rep = new_replica(0)
    ready = rep.on_message(_garbled(prop(2, A2, h=2)))
    assert ready.dropped == ("bad_signature",) and ready.fetch is None and rep.cur.future == {}


def test_message_from_far_behind_gets_a_status_reply() -> None:
    rep = new_replica(0)
    rep.on_block_fetched(A, qc_for(A))
    rep.on_block_fetched(A2, qc_for(A2))
    assert rep.height == 3
    ready = rep.on_message(prep(1, HA, h=1))
    assert ready.messages == ((1, Status(CHAIN, 2, 0)),)
    assert is_empty(rep.on_message(prep(1, HA2, h=2)))  # one height behind: ignored quietly


def test_next_height_buffer_keeps_one_block_per_sender() -> None:
    rep = new_replica(0)
    p2 = prop(2, A2, h=2)
    rep.on_message(p2)
    later = prop(2, A2, r=4, h=2)  # validator 2 is primary of (2, 0) and (2, 4): validly signed
    assert rep.on_message(later).dropped == ()
    assert [m for m in rep.cur.future[2] if isinstance(m, Proposal)] == [p2]  # one block per sender


def test_restart_in_a_later_round_resends_the_same_round_change() -> None:
    rep = new_replica(0)
    for _ in range(rep.timeout_ticks()):
        ready = rep.on_tick() if rep.cur.pending_records else rep.on_records_available(1)
    while rep.round == 0:
        ready = rep.on_tick()
    assert rep.round == 1 and ready.persist is not None
    sent = rep.cur.round_changes[0]
    again = Replica(rep.cfg, rep.key, 0, None, PersistedState.decode(ready.persist.encode()), rep.verify,
                    blocks=rep.blocks)
    assert again.round == 1 and again.cur.round_changes[0] == sent  # byte-identical, ready for resends


def test_a_replica_whose_store_lost_blocks_follows_then_keeps_what_it_signed() -> None:
    """Signing state for height 2 (prepare for A2 signed) while the store is back at 0: no
    signature at height 1, and at height 2 only what was signed before."""
    ahead = PersistedState(2, 0, {("prepare", 0): codec.encode(HA2)})
    rep = new_replica(0, ahead, committed=0)
    assert rep.vote_from == 2 and rep.height == 1
    assert rep.on_message(prop(1, A)).validate  # it follows height 1 ...
    out = rep.on_block_validated(1, 0, HA, True)
    assert sent(out, Prepare) == [] and out.persist is None  # ... without signing
    for s in (1, 2, 3):
        rep.on_message(com(s, HA))
    assert rep.height == 2 and rep.cur.state.signed == {("prepare", 0): codec.encode(HA2)}  # taken up again
    other = make_block(2, HA, (b"rX",), prior=(b"r1",))
    assert rep.on_message(prop(2, other, h=2)).validate
    assert sent(rep.on_block_validated(2, 0, bhash(other), True), Prepare) == []  # never a second value
    rep.on_message(prop(2, A2, r=1, h=2))  # (a round-1 proposal needs a justification: dropped)
    assert rep.cur.state.signed == {("prepare", 0): codec.encode(HA2)}


# -- validator sets per height (docs/governance.md section 6) ------------------------------


class _GrowingSet(ChainBlocks):
    """Height 2 is certified by the genesis set plus one more key."""

    def __init__(self, extra: Any) -> None:
        super().__init__(G, cached_verify)
        self.bigger = ValidatorSet((*G.validator_set.keys, extra.public))

    def validators_after(self, block: BlockData, current: ValidatorSet) -> ValidatorSet:
        return self.bigger if decode_header(block.header).height == 1 else current


def test_a_follower_signs_nothing_and_commits_on_the_validators_quorum() -> None:
    outsider = seeded_key("not-a-validator")
    rep = Replica(Config(G, 0), outsider, 0, None, None, cached_verify, blocks=BLOCKS,
                  validators=G.validator_set)
    assert rep.me is None and not rep.is_primary
    ready = rep.on_message(prop(1, A))
    assert ready.validate and not ready.messages
    ready = rep.on_block_validated(1, 0, HA, True)
    assert not ready.messages and ready.persist is None  # no prepare: nothing signed, nothing kept
    for s in (0, 2, 3):
        ready = rep.on_message(com(s, HA))
    assert [decode_header(b.header).height for b, _ in ready.commits] == [1]
    assert not rep.on_tick().messages  # not even a Status: it names no validator


def test_the_next_height_is_counted_over_the_set_its_parent_approved() -> None:
    joining = seeded_key("joining-validator")
    rep = Replica(Config(G, 0), KEYS[0], 0, None, None, cached_verify, blocks=_GrowingSet(joining))
    rep.on_message(prop(1, A))
    rep.on_block_validated(1, 0, HA, True)
    # a vote of the joining validator (index 4) for height 2 arrives before we commit 1
    early = signed_copy(joining, Commit(CHAIN, 2, 0, HA2, 4))
    assert rep.on_message(early).dropped == ()
    for s in (1, 2):
        rep.on_message(prep(s, HA))
    for s in (1, 2):
        rep.on_message(com(s, HA))
    assert rep.height == 2 and (rep.n, rep.f, rep.q) == (5, 1, 4)
    assert rep.cur.commits == {(0, HA2): {4: early}}  # replayed under the new set, and valid there
    assert rep.primary(0) == 2  # (h + r) % n over the set of h
