"""The consensus driver (ledgernode/consensus/driver.py, docs/consensus.md "The driver"):
each `Ready` becomes effects in the contract's order, answers reach the replica at
once, and the Readys it answers with follow in the order they were queued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from ledgernode import codec, merkle
from ledgernode.blocks import QC, ZERO_HASH, Header, decode_header
from ledgernode.consensus import (
    Answer, BlockData, ChainBlocks, Commit, Config, Driver, Effect, Effects, Equivocation, Event,
    PersistedState, Prepare, Proposal, Ready, Replica, RoundChange, Status, next_effect,
)
from ledgernode.consensus.driver import (
    BlockBuilt, BlockFetched, Build, Dropped, Evidence, Fetch, MempoolSize, NothingToBuild, PeerMessage, Persist,
    RecordsChanged, Send, StoreCommit, Tick, Validate,
)
from tests.sim.cluster import cached_verify, keys_and_genesis

KEYS, G = keys_and_genesis(4)
BLOCKS = ChainBlocks(G, cached_verify)


def make_block(height: int = 1, items: tuple[bytes, ...] = (b"r1",), salt: int = 0) -> BlockData:
    f = merkle.Frontier()
    for item in items:
        f.append(merkle.leaf_hash(item))
    header = Header(G.chain_id, height, height + salt, ZERO_HASH, 1, 0, f.size, f.root(), G.valset_hash, ZERO_HASH)
    return BlockData(header.encode(), items)


def bhash(block: BlockData) -> bytes:
    return decode_header(block.header).block_hash


A, B, C = make_block(items=(b"r1",)), make_block(items=(b"r2",)), make_block(items=(b"r3",))
QC_A = QC(1, 0, bhash(A), ())
QC_B = QC(2, 0, bhash(B), ())
STATE = PersistedState(1, 0, {("prepare", 0): bhash(A)})
STATUS = [Status(G.chain_id, k, 0) for k in range(6)]  # distinct messages to follow through the order
EV = Equivocation(2, "prepare", 1, 0, Prepare(G.chain_id, 1, 0, bhash(A), 2), Prepare(G.chain_id, 1, 0, bhash(B), 2))

EVERY_FIELD = Ready(
    commits=((A, QC_A), (B, QC_B)), persist=STATE, messages=((None, STATUS[0]), (3, STATUS[1])),
    validate=((1, 0, A), (1, 1, B)), build=(1, 2), fetch=(3, 2), evidence=(EV,), dropped=("bad_signature", "stale"),
)


class ScriptedReplica:
    """Stands in for a `Replica`: records each input and answers with the next Ready
    scripted for that input (an empty one when none is left)."""

    def __init__(self, **script: list[Ready]) -> None:
        self.blocks = BLOCKS
        self.script = script
        self.calls: list[tuple[Any, ...]] = []

    def _answer(self, name: str, *args: Any) -> Ready:
        self.calls.append((name, *args))
        queue = self.script.get(name, [])
        return queue.pop(0) if queue else Ready()

    def on_tick(self) -> Ready:
        return self._answer("on_tick")

    def on_records_available(self, count: int) -> Ready:
        return self._answer("on_records_available", count)

    def on_message(self, msg: Any) -> Ready:
        return self._answer("on_message", msg)

    def on_block_built(self, height: int, round_: int, block: BlockData) -> Ready:
        return self._answer("on_block_built", height, round_, block)

    def on_nothing_to_build(self, height: int, round_: int) -> Ready:
        return self._answer("on_nothing_to_build", height, round_)

    def on_block_validated(self, height: int, round_: int, block_hash: bytes, ok: bool) -> Ready:
        return self._answer("on_block_validated", height, round_, block_hash, ok)

    def on_block_fetched(self, block: BlockData, qc: QC) -> Ready:
        return self._answer("on_block_fetched", block, qc)


def driver_for(replica: ScriptedReplica) -> Driver:
    return Driver(cast(Replica, replica))


def answer(effect: Effect, mempool: int = 7, valid: bool = True, built: BlockData | None = None) -> Answer:
    match effect:
        case MempoolSize():
            return mempool
        case Validate():
            return valid
        case Build():
            return built
    return None


def drive(effects: Effects, respond: Callable[[Effect], Answer] = answer,
          replica: ScriptedReplica | None = None) -> list[tuple[Effect, int]]:
    """Every effect, with how many replica inputs had happened when it was yielded."""
    seen: list[tuple[Effect, int]] = []
    reply: Answer = None
    while (effect := next_effect(effects, reply)) is not None:
        seen.append((effect, len(replica.calls) if replica else 0))
        reply = respond(effect)
    return seen


def test_a_ready_with_every_field_set_comes_out_in_the_contract_order() -> None:
    replica = ScriptedReplica()
    effects = [e for e, _ in drive(driver_for(replica).apply(EVERY_FIELD))]
    assert effects == [
        StoreCommit(A, QC_A), StoreCommit(B, QC_B), MempoolSize(), Persist(STATE),
        Send(None, STATUS[0]), Send(3, STATUS[1]), Validate(1, 0, A), Validate(1, 1, B), Build(1, 2),
        Fetch(3, 2), Evidence(EV), Dropped("bad_signature"), Dropped("stale"),
    ]


def test_answers_reach_the_replica_at_once_and_their_readys_follow_in_order() -> None:
    replica = ScriptedReplica(
        on_records_available=[Ready(messages=((None, STATUS[2]),))],
        on_block_validated=[Ready(messages=((None, STATUS[3]),)), Ready(messages=((None, STATUS[4]),))],
    )
    valid = iter([True, False])
    seen = drive(driver_for(replica).apply(EVERY_FIELD),
                 lambda e: next(valid) if isinstance(e, Validate) else answer(e, mempool=5), replica)
    assert replica.calls == [
        ("on_records_available", 5),
        ("on_block_validated", 1, 0, bhash(A), True), ("on_block_validated", 1, 1, bhash(B), False),
    ]
    # How many inputs the replica had taken when each effect came out: the mempool size
    # and each verdict reach it before the next effect does.
    assert [(type(e).__name__, n) for e, n in seen[:13]] == [
        ("StoreCommit", 0), ("StoreCommit", 0), ("MempoolSize", 0), ("Persist", 1), ("Send", 1), ("Send", 1),
        ("Validate", 1), ("Validate", 2), ("Build", 3), ("Fetch", 3), ("Evidence", 3), ("Dropped", 3),
        ("Dropped", 3),
    ]
    # the follow-up Readys run after the whole first one, in the order they were queued
    assert [e for e, _ in seen[13:]] == [Send(None, STATUS[2]), Send(None, STATUS[3]), Send(None, STATUS[4])]


def test_a_commit_asks_for_the_mempool_once_and_nothing_else_does() -> None:
    replica = ScriptedReplica()
    one = [e for e, _ in drive(driver_for(replica).apply(Ready(commits=((A, QC_A),))))]
    assert one == [StoreCommit(A, QC_A), MempoolSize()] and replica.calls == [("on_records_available", 7)]
    none = [e for e, _ in drive(driver_for(replica).apply(replace_commits(EVERY_FIELD)))]
    assert MempoolSize() not in none and len(replica.calls) == 3  # the two verdicts only


def replace_commits(ready: Ready) -> Ready:
    return Ready((), ready.persist, ready.messages, ready.validate, ready.build, ready.fetch, ready.evidence,
                 ready.dropped)


def test_a_block_built_at_once_goes_to_the_replica_and_its_ready_follows() -> None:
    proposal = Proposal(G.chain_id, 1, 2, bhash(C), 0, b"", C)
    replica = ScriptedReplica(on_block_built=[Ready(persist=STATE, messages=((None, proposal),))])
    seen = drive(driver_for(replica).apply(Ready(build=(1, 2))), lambda e: answer(e, built=C), replica)
    assert replica.calls == [("on_block_built", 1, 2, C)]
    assert [e for e, _ in seen] == [Build(1, 2), Persist(STATE), Send(None, proposal)]


def test_a_block_built_later_comes_back_as_an_event() -> None:
    replica = ScriptedReplica()
    driver = driver_for(replica)
    assert [e for e, _ in drive(driver.apply(Ready(build=(1, 2))))] == [Build(1, 2)]
    assert replica.calls == []  # None: nothing is handed to the replica now
    drive(driver.handle(BlockBuilt(1, 2, C)))
    drive(driver.handle(NothingToBuild(1, 3)))
    assert replica.calls == [("on_block_built", 1, 2, C), ("on_nothing_to_build", 1, 3)]


@pytest.mark.parametrize(("event", "call"), [
    (Tick(), ("on_tick",)),
    (RecordsChanged(4), ("on_records_available", 4)),
    (PeerMessage(2, STATUS[5]), ("on_message", STATUS[5])),
    (BlockBuilt(1, 0, A), ("on_block_built", 1, 0, A)),
    (NothingToBuild(1, 0), ("on_nothing_to_build", 1, 0)),
    (BlockFetched(A, QC_A), ("on_block_fetched", A, QC_A)),
], ids=lambda v: type(v).__name__)
def test_each_event_is_one_replica_input_taken_when_handled(event: Event, call: tuple[Any, ...]) -> None:
    replica = ScriptedReplica(**{call[0]: [Ready(messages=((None, STATUS[0]),))]})
    effects = driver_for(replica).handle(event)
    assert replica.calls == [call]  # the replica took the event; nothing is applied yet
    assert [e for e, _ in drive(effects)] == [Send(None, STATUS[0])]


@pytest.mark.parametrize(("ready", "wrong"), [
    (Ready(commits=((A, QC_A),)), "seven"),
    (Ready(validate=((1, 0, A),)), 1),
    (Ready(build=(1, 0)), A.header),
], ids=["mempool", "validate", "build"])
def test_an_answer_of_the_wrong_type_fails_at_once(ready: Ready, wrong: Any) -> None:
    replica = ScriptedReplica()
    with pytest.raises(TypeError):
        drive(driver_for(replica).apply(ready), lambda e: wrong if not isinstance(e, StoreCommit) else None)
    assert replica.calls == []


def test_a_real_replica_alone_commits_and_sends_no_signature_before_it_is_safe() -> None:
    """Safe: saved by a Persist before, or at a height a StoreCommit before committed (a
    Ready that commits persists the next height's state: docs/consensus.md)."""
    keys, genesis = keys_and_genesis(1)
    blocks = ChainBlocks(genesis, cached_verify)
    replica = Replica(Config(genesis, 0), keys[0], 0, None, None, cached_verify, blocks=blocks)
    f = merkle.Frontier()
    f.append(merkle.leaf_hash(b"r1"))
    built = BlockData(Header(genesis.chain_id, 1, 1, ZERO_HASH, 0, 0, 1, f.root(), genesis.valset_hash, ZERO_HASH).encode(),
                      (b"r1",))
    persisted: dict[tuple[int, str, int], bytes] = {}
    effects: list[Effect] = []
    committed = [0]

    def respond(effect: Effect) -> Answer:
        effects.append(effect)
        match effect:
            case Persist(state):
                persisted.update({(state.height, *slot): value for slot, value in state.signed.items()})
            case StoreCommit(block, _):
                committed[0] = decode_header(block.header).height
            case Send(_, Prepare() | Commit() | RoundChange() | Proposal() as msg):
                slot = (msg.height, msg.kind, msg.round)
                saved = persisted.get(slot) == codec.encode(msg.value) or msg.height <= committed[0]
                assert saved, f"{slot} sent before it was saved"
        return answer(effect, mempool=0, built=built)

    drive(Driver(replica).handle(RecordsChanged(1)), respond)
    commits = [e for e in effects if isinstance(e, StoreCommit)]
    assert [c.block for c in commits] == [built] and commits[0].qc.block_hash == bhash(built)
    assert replica.height == 2 and sum(isinstance(e, Send) for e in effects) >= 3  # proposal, prepare, commit
