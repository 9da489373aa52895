"""ledgernode/consensus/turns.py: who is skipped, from committed proposers alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ledgernode.consensus.turns import PROBE_EVERY_TURNS, TURNS_LOOKBACK, Turns


def _reference_missed(chain: list[int], n: int, validator: int) -> int:
    """From the whole chain (chain[i] proposed height i + 1): the validator's turns, latest
    first, counted while it did not propose them."""
    turns = [t for t in range(1, len(chain) + 1) if t % n == validator][::-1][:TURNS_LOOKBACK]
    count = 0
    for t in turns:
        if chain[t - 1] == validator:
            break
        count += 1
    return count


def _turns_of(chain: list[int], n: int, f: int) -> Turns:
    return Turns(n, f, ((h, chain[h - 1]) for h in Turns.window(n, len(chain))))


@settings(max_examples=200, deadline=None)
@given(st.integers(4, 7).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.integers(0, n - 1), max_size=6 * n * TURNS_LOOKBACK), st.integers(0, 300))))
def test_agrees_with_the_whole_chain_from_any_restart_point(case: tuple[int, list[int], int]) -> None:
    n, chain, restart = case
    f = (n - 1) // 3
    restart = min(restart, len(chain))
    turns = _turns_of(chain[:restart], n, f)  # a replica restarted at `restart`, then committed the rest
    for h in range(restart + 1, len(chain) + 1):
        turns.record(h, chain[h - 1])
    assert len(turns.proposers) <= n * TURNS_LOOKBACK
    missed = {v: _reference_missed(chain, n, v) for v in range(n)}
    for v in range(n):
        assert turns.missed(v, len(chain) + 1) == missed[v]
    suspects = {v for v in range(n) if missed[v]}
    assert turns.suspects(len(chain) + 1) == (suspects if len(suspects) <= f else set())


def test_a_validator_that_proposed_other_heights_but_missed_its_turn_is_a_suspect() -> None:
    # n = 4: validator 3's turns are heights 3 and 7; someone else proposed both
    chain = [1, 2, 0, 0, 1, 2, 1, 0]
    turns = _turns_of(chain, 4, 1)
    assert turns.missed(3, 9) == 2 and turns.missed(0, 9) == 0
    assert turns.suspects(9) == {3}


def test_a_block_reproposed_later_still_names_its_proposer_so_a_slow_turn_is_no_miss() -> None:
    chain = [1, 2, 3, 0]  # height 3 (validator 3's turn) committed its own block, whatever the round
    assert _turns_of(chain, 4, 1).suspects(5) == frozenset()


def test_more_than_f_suspects_skip_nobody() -> None:
    chain = [0, 0, 0, 0, 0, 0, 0, 0]  # 1, 2 and 3 all missed their turns: the network failed
    turns = _turns_of(chain, 4, 1)
    assert [turns.missed(v, 9) for v in range(4)] == [0, 2, 2, 2]
    assert turns.suspects(9) == frozenset()


def test_history_before_height_one_counts_as_no_miss() -> None:
    turns = Turns(4, 1)
    assert turns.suspects(1) == frozenset() and turns.missed(3, 3) == 0


def test_misses_are_counted_back_at_most_the_lookback() -> None:
    n = 4
    chain = [0] * (n * (TURNS_LOOKBACK + 3))
    assert _turns_of(chain, n, 1).missed(1, len(chain) + 1) == TURNS_LOOKBACK


def test_each_validator_gets_a_probe_turn_every_probe_period() -> None:
    turns = Turns(4, 1)
    for v in range(4):
        probes = [h for h in range(1, 4 * PROBE_EVERY_TURNS * 3) if h % 4 == v and turns.is_probe(h)]
        gaps = {b - a for a, b in zip(probes, probes[1:])}
        assert gaps == {4 * PROBE_EVERY_TURNS}


def test_proposers_are_recorded_in_height_order() -> None:
    turns = Turns(4, 1, [(1, 0), (2, 1)])
    with pytest.raises(AssertionError):
        turns.record(4, 0)
    with pytest.raises(AssertionError):
        turns.record(2, 0)
