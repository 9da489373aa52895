"""ledgernode/storage/generations.py: a bounded memory of immutable values."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from ledgernode.storage.generations import Generations


def _key(i: int) -> bytes:
    return i.to_bytes(4, "big")


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 40), st.lists(st.tuples(st.sampled_from(["get", "put", "update"]),
                                              st.lists(st.integers(0, 60), max_size=50)), max_size=60))
def test_it_holds_at_most_its_bound_and_never_a_wrong_value(values_max: int,
                                                            steps: list[tuple[str, list[int]]]) -> None:
    memory = Generations(values_max)
    for op, ks in steps:
        if op == "get":
            for k in ks:
                assert memory.get(_key(k)) in (None, _key(k) * 2)
        elif op == "put":
            for k in ks:
                memory.put(_key(k), _key(k) * 2)
        else:
            memory.update({_key(k): _key(k) * 2 for k in ks})
        assert len(memory) <= 2 * memory.generation_max <= values_max + 1


def test_what_was_used_within_the_last_generation_stays() -> None:
    memory = Generations(10)  # generations of 5
    memory.put(b"top", b"root node")
    for i in range(40):
        memory.put(_key(i), b"x")
        assert memory.get(b"top") == b"root node"  # read again every time: never dropped
    memory.update({_key(100 + i): b"y" for i in range(20)})  # more than a generation: its last ones
    assert [memory.get(_key(100 + i)) for i in range(20)] == [None] * 16 + [b"y"] * 4
