"""Named consensus scenarios, each a deterministic simulated run."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ledgernode.blocks import QC, decode_header
from ledgernode.consensus import (
    BlockData, ChainBlocks, Commit, Config, Prepare, Proposal, Replica, RoundChange,
)
from ledgernode.consensus.messages import NO_ROUND

from .cluster import Cluster, Faults, cached_verify, keys_and_genesis, signed_copy


def _ok(result: dict[str, list[str]]) -> None:
    assert {k: v for k, v in result.items() if v} == {}


def _crash_primary_when(step: str) -> dict[str, list[str]]:
    c = Cluster(seed=3, n=4, faults=Faults(), records=30)
    assert c.run_until(lambda: c.height(0) >= 2, 2000)
    h = c.height(0) + 1
    p = (h + 0) % c.n
    host = c.hosts[p]
    others = [i for i in range(c.n) if i != p]
    if step == "proposal_to_some":  # the proposal reaches one replica only
        c.net.filter = lambda s, d, m: not (s == p and isinstance(m, Proposal) and d != others[0])
    conds = {
        "before_proposal": lambda: True,
        "proposal_to_some": lambda: 0 in host.replica.cur.proposals,
        "after_prepare": lambda: host.replica.cur.prepares,
        "after_commit": lambda: ("commit", 0) in host.replica.cur.state.signed,
    }
    assert c.run_until(lambda: host.replica.height == h and bool(conds[step]()), 4000)
    c.crash(p, 10_000)  # never comes back
    c.net.filter = None
    c.faults.byzantine = {p: "silent"}  # judge only the survivors
    result = c.run(c.now + 3000)
    return result


@pytest.mark.parametrize("step", ["before_proposal", "proposal_to_some", "after_prepare", "after_commit"])
def test_primary_crashes_at_each_step(step: str) -> None:
    _ok(_crash_primary_when(step))


def commit_then_primary_dies(replica_class: type = Replica) -> dict[str, list[str]]:
    """Commits reach only replica `lucky`; it commits, the primary dies: the block must
    survive into the next round at the same height."""
    c = Cluster(seed=5, n=7, faults=Faults(), records=20, replica_class=replica_class)
    assert c.run_until(lambda: c.height(0) >= 2, 2000)
    h = c.height(0) + 1
    p = h % c.n
    lucky = (p + 1) % c.n
    c.net.filter = lambda s, d, m: not (isinstance(m, Commit) and d != lucky)
    assert c.run_until(lambda: c.height(lucky) >= h, 4000)
    committed = c.hosts[lucky].disk.chain[h - 1][0].header
    c.crash(p, 10_000)
    c.faults.byzantine = {p: "silent"}
    # Nothing leaves `lucky` until the others decide height h by themselves, so they
    # cannot simply fetch its block: the round change must carry it.
    c.net.filter = lambda s, d, m: s != lucky
    rest = [i for i in c.honest if i != lucky]
    assert c.run_until(lambda: all(c.height(i) >= h for i in rest), c.now + 3000)
    c.net.filter = None
    result = c.run(c.now + 3000)
    for i in c.honest:
        if c.height(i) >= h and c.hosts[i].disk.chain[h - 1][0].header != committed:
            result["K1"].append(f"replica {i} committed another block at height {h}")
    return result


def test_commit_on_one_then_primary_dies() -> None:
    _ok(commit_then_primary_dies())


def test_f_silent_primaries_in_a_row() -> None:
    # n = 7, f = 2: validators 3 and 4 never propose; at heights 3 and 10 they are
    # the primaries of rounds 0 and 1 in a row.
    c = Cluster(seed=11, n=7, faults=Faults(byzantine={3: "silent_primary", 4: "silent_primary"}), records=60)
    _ok(c.run(6000))
    rounds = [qc.round for _, qc in c.hosts[0].disk.chain]
    assert max(rounds) >= 2, "some height needed two round changes"


def test_equivocating_primary() -> None:
    c = Cluster(seed=13, n=4, faults=Faults(byzantine={1: "equivocate"}), records=30)
    _ok(c.run(6000))
    for i in c.honest:
        assert any(e.sender == 1 for e in c.evidence[i]), f"replica {i} kept no evidence"


def _prepared_rc(keys: list[Any], g: Any, sender: int, height: int, round_: int,
                 prepared_round: int, block: BlockData) -> RoundChange:
    h = decode_header(block.header).block_hash
    cert = tuple(signed_copy(keys[i], Prepare("sim", height, prepared_round, h, i)) for i in range(g.quorum))
    rc = RoundChange("sim", height, round_, prepared_round, h, sender, b"", cert, block)
    return signed_copy(keys[sender], rc)


def test_every_round_change_order_gives_the_same_reproposal() -> None:
    n, height, round_ = 7, 1, 3
    keys, g = keys_and_genesis(n)
    primary = (height + round_) % n
    cluster = Cluster(seed=1, n=n, faults=Faults(), records=0)
    blocks = [cluster.hosts[0].make_block(1, [b"r" + bytes([i]) * 8], salt=i) for i in range(3)]
    # A consistent history: block 0 was prepared by Q replicas, some in round 0 and
    # some again in round 2; the other replicas never prepared. Any Q of these round
    # changes holds at least one prepared certificate, so every order must re-propose it.
    others = [i for i in range(n) if i != primary]
    rcs = [_prepared_rc(keys, g, s, height, round_, pr, blocks[0])
           for s, pr in zip(others[: g.quorum], [2, 0, 2, 0, 0])]
    rcs += [signed_copy(keys[i], RoundChange("sim", height, round_, NO_ROUND, b"", i))
            for i in others[g.quorum:]]
    expected = decode_header(blocks[0].header).block_hash
    outcomes = set()
    orders = list(itertools.permutations(rcs))
    assert len(orders) == 720
    for order in orders:
        r = Replica(Config(g, primary), keys[primary], 0, None, None, cached_verify,
                    blocks=ChainBlocks(g, cached_verify))
        proposals = []
        for rc in order:
            ready = r.on_message(rc)
            proposals += [m for _, m in ready.messages if isinstance(m, Proposal)]
        if proposals:
            outcomes.add(proposals[0].block_hash)
    assert outcomes == {expected}


def test_replica_down_for_1000_heights_catches_up_and_rejects_forgery() -> None:
    c = Cluster(seed=17, n=4, faults=Faults(), records=1000, block_items_max=1)
    c.crash(3, 10**9)
    assert c.run_until(lambda: c.height(0) >= 1000, 60_000)
    host = c.hosts[3]
    host.up = True
    host.boot()
    assert host.replica.height == 1
    # a forged block 1: the real header with a QC signed by only one validator
    block, qc = c.hosts[0].disk.chain[0]
    forged = QC(qc.height, qc.round, qc.block_hash, qc.signatures[:1])
    ready = host.replica.on_block_fetched(block, forged)
    assert ready.dropped == ("invalid_qc",) and not ready.commits
    # a block whose prev does not link to our chain
    ready = host.replica.on_block_fetched(*c.hosts[0].disk.chain[5])
    assert ready.dropped == ("fetch_not_next",) and not ready.commits
    del c.restart_at[3]
    assert c.run_until(lambda: c.height(3) >= c.height(0) >= 1000, c.now + 20_000)
    assert [b.header for b, _ in host.disk.chain] == [b.header for b, _ in c.hosts[0].disk.chain][: c.height(3)]


def test_tampered_payload_from_a_byzantine_primary() -> None:
    """One replica gets the primary's genuine signature over other records: it must
    neither commit them nor fall behind for good."""
    c = Cluster(seed=19, n=4, faults=Faults(byzantine={2: "tamper_payload"}), records=40)
    _ok(c.run(8000))
