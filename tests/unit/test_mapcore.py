"""The compiled state-map descent (ledgernode/_mapcore.c) against maptree's Python descent.

maptree.py is the definition; the compiled descent must compute exactly what the Python
one computes on the same map: the same root, the same new nodes in bytes and decoded, in
the same order, and the same replaced nodes, on random batches of writes, deletes and
record-list appends. Errors raised by the store or by an update come out of it unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode import codec, maptree, statemap
from ledgernode.errors import StoreCorrupt
from ledgernode.maptree import COMPILED, Batch, MemoryNodeStore, StateMap

@pytest.fixture
def compiled() -> None:
    """The tests of the compiled descent need it built: `pip install -e .` builds it
    (setup.py) where a C compiler, Python's headers and OpenSSL's are, as on CI. Built or
    not, they do not pass silently."""
    if not COMPILED:
        pytest.fail("the compiled descent is not built (setup.py): install a C compiler, Python's and OpenSSL's "
                    "headers and run `pip install -e .`, reading its output")


needs_compiled = pytest.mark.usefixtures("compiled")


def _value(n: int) -> bytes:
    return codec.encode({"n": n})


def _appender(leaves: list[int]) -> maptree.Update:
    def append(current: bytes | None, edge: bytes) -> tuple[bytes, bytes]:
        value, new_edge, _ = statemap.list_append(current, edge, leaves, edge_checked=True)
        return value, new_edge
    return append


# A change: set a value, delete, or append leaf indexes to a record list (an Update).
CHANGE = st.one_of(st.integers(0, 50).map(lambda n: ("set", n)), st.just(("delete", 0)),
                   st.lists(st.integers(0, 1 << 40), min_size=1, max_size=3, unique=True).map(
                       lambda xs: ("append", sorted(xs))))


def _paths(draw: Any) -> list[bytes]:
    """A pool of paths that share long prefixes (deep tiles, collapses) and random ones."""
    base = draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=6, unique=True))
    pool = list(base)
    for p in base:
        for i in draw(st.lists(st.integers(0, 255) | st.integers(200, 255), max_size=3)):
            q = bytearray(p)
            q[i // 8] ^= 0x80 >> (i % 8)
            pool.append(bytes(q))
    return list(dict.fromkeys(pool))


@st.composite
def _blocks(draw: Any) -> tuple[list[bytes], list[list[tuple[int, tuple[str, Any]]]]]:
    pool = _paths(draw)
    blocks = draw(st.lists(st.lists(st.tuples(st.integers(0, 1 << 16), CHANGE), max_size=30), max_size=6))
    return pool, blocks


def _batch(m: StateMap, pool: list[bytes], block: list[tuple[int, tuple[str, Any]]],
           lists: dict[bytes, int]) -> Batch:
    """The paths at odd places of the pool hold record lists (appended to, or deleted),
    those at even places plain values (set or deleted)."""
    updates: dict[bytes, maptree.Change] = {}
    for i, (what, arg) in block:
        p, is_list = pool[i % len(pool)], i % len(pool) % 2 == 1
        if what == "delete":
            updates[p] = None
        elif not is_list:
            updates[p] = _value(arg if what == "set" else len(arg))
        else:
            arg = [arg] if what == "set" else arg
            start = lists.get(p, 0)
            updates[p] = _appender([start + x for x in arg])
            lists[p] = start + arg[-1] + 1
    return m.prepare_updates(updates)


def _same(a: Batch, b: Batch) -> None:
    assert a.base == b.base and a.root == b.root
    assert list(a.nodes.items()) == list(b.nodes.items())
    assert list(a.parsed.items()) == list(b.parsed.items())
    assert a.replaced == b.replaced


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(_blocks())
def test_compiled_and_python_descents_agree_node_for_node(case: Any) -> None:
    pool, blocks = case
    fast, slow = StateMap(MemoryNodeStore(), compiled=True), StateMap(MemoryNodeStore(), compiled=False)
    lists_fast: dict[bytes, int] = {}
    lists_slow: dict[bytes, int] = {}
    for block in blocks:
        a, b = _batch(fast, pool, block, lists_fast), _batch(slow, pool, block, lists_slow)
        _same(a, b)
        fast.commit(a)
        slow.commit(b)
    entries = {p: v for p in pool if (v := slow.get(p)) is not None}
    assert fast.root == slow.root == statemap.root_of(entries)


@needs_compiled
def test_a_map_built_by_one_descent_is_changed_alike_by_the_other() -> None:
    store = MemoryNodeStore()
    m = StateMap(store, compiled=False)
    m.apply({statemap.path("subject", f"s{i}"): _value(i) for i in range(3000)})
    changes = {statemap.path("subject", f"s{i}"): (None if i % 3 else _value(i + 1)) for i in range(0, 3000, 7)}
    _same(StateMap(store, m.root, compiled=True).prepare(changes), m.prepare(changes))


@needs_compiled
def test_store_and_update_errors_come_out_unchanged() -> None:
    store = MemoryNodeStore()
    m = StateMap(store)
    ps = [statemap.path("subject", f"s{i}") for i in range(100)]
    m.apply({p: _value(1) for p in ps})
    top = store.nodes.pop(m.root)
    with pytest.raises(StoreCorrupt, match="not stored"):
        m.prepare({ps[0]: _value(2)})
    store.nodes[m.root] = top[:-1] + bytes([top[-1] ^ 1])
    with pytest.raises(StoreCorrupt, match="does not hash"):
        m.prepare({ps[0]: _value(2)})
    store.nodes[m.root] = top

    def fails(current: bytes | None, edge: bytes) -> tuple[bytes, bytes]:
        raise KeyError("from the update")

    with pytest.raises(KeyError, match="from the update"):
        m.prepare_updates({ps[3]: fails})

    def lies(current: bytes | None, edge: bytes) -> Any:
        return b"not a tuple"

    with pytest.raises(AssertionError, match="value bytes, attached bytes"):
        m.prepare_updates({ps[3]: lies})
    assert m.get(ps[3]) == _value(1)  # nothing was written by the failed descents


@needs_compiled
def test_the_compiled_descent_refuses_what_only_a_bug_would_hand_it() -> None:
    out = maptree._Writes()
    args = (lambda h: (h, b""), out)
    with pytest.raises(AssertionError, match="32-byte path"):
        maptree._mapcore.update(*args, statemap.EMPTY_ROOT, 0, [(b"short", None)])
    with pytest.raises(AssertionError, match="a root is 32 bytes"):
        maptree._mapcore.update(*args, b"x", 0, [])
    with pytest.raises(AssertionError, match="a tile is"):
        maptree._mapcore.update(*args, bytes(range(32)), 2, [(bytes(32), None)])
    with pytest.raises(AssertionError, match="kind"):
        maptree._mapcore.update(*args, bytes(range(32)), 7, [(bytes(32), None)])


@needs_compiled
def test_an_update_that_empties_the_callers_list_of_changes_changes_nothing_the_descent_reads() -> None:
    store = MemoryNodeStore()
    m = StateMap(store, compiled=False)
    ps = sorted(statemap.path("subject", f"s{i}") for i in range(40))
    m.apply({p: _value(1) for p in ps})
    changes: list[tuple[bytes, maptree.Change]] = []

    def clears(current: bytes | None, edge: bytes) -> tuple[bytes, bytes]:
        changes.clear()  # the descent holds its own copy of the list
        return _value(2), b""

    changes.extend((p, clears) for p in ps)
    out = maptree._Writes()
    root = maptree._mapcore.update(store.node, out, m.root, 2, changes)[0]
    assert root == m.prepare({p: _value(2) for p in ps}).root


@needs_compiled
def test_configure_refuses_bad_arguments_and_keeps_what_it_had() -> None:
    before = StateMap().prepare({bytes(32): _value(1)}).root
    with pytest.raises(AssertionError, match="configure"):
        maptree._mapcore.configure(statemap.EMPTY_ROOT, b"x" * 10, b"y" * 65, b"z", b"", StoreCorrupt,
                                   maptree._checked_list_append)
    assert StateMap().prepare({bytes(32): _value(1)}).root == before


def test_asking_for_the_compiled_descent_where_it_is_not_built_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maptree, "COMPILED", False)
    with pytest.raises(ValueError, match="not built"):
        StateMap(compiled=True)


# -- record lists ----------------------------------------------------------------------


def _python_append(value: bytes | None, edge: bytes, leaves: list[int]) -> Any:
    try:
        return statemap.list_append(value, edge, leaves, edge_checked=True)
    except Exception as exc:  # the compiled one must raise the same
        return type(exc), str(exc)


def _compiled_append(value: bytes | None, edge: bytes, leaves: list[int]) -> Any:
    try:
        return maptree._mapcore.list_append(value, edge, leaves)
    except Exception as exc:
        return type(exc), str(exc)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40), min_size=1, max_size=5))
def test_compiled_and_python_list_appends_agree(appends: list[list[int]]) -> None:
    value: bytes | None = None
    edge, size = b"", 0
    for leaves in appends:
        fast, slow = _compiled_append(value, edge, leaves), _python_append(value, edge, leaves)
        assert fast == slow
        value, edge, _ = slow
        size += len(leaves)
        assert statemap.parse_list_value(value)[0] == size


@needs_compiled
@pytest.mark.parametrize("case", [
    (None, bytes(32), [1]),  # a new list given an edge: the Python one ignores it
    (statemap.list_value([1, 2, 3]), bytes(32), [4]),  # an edge of 1 hash for n = 3 (2 set bits)
    (statemap.list_value([1]), bytes(31), [4]),
    (codec.encode({"n": 1}), b"", [4]),  # not a record list
    (codec.encode({"n": 1, "root": bytes(32), "x": 1}), b"", [4]),
    (b"\x82\xa1n\xcc\x05\xa4root\xc4\x20" + bytes(32), bytes(64), [4]),  # n = 5 not in its smallest encoding
    (None, b"", [-1]), (None, b"", [2**64]), (None, b"", [True]), (None, b"", ["1"]),
    (None, b"", []),
    (statemap.list_value([2**64 - 2]), statemap.list_append(None, b"", [2**64 - 2])[1], [2**64 - 1]),
])
def test_lists_not_as_statemap_writes_them_go_to_python(case: tuple[Any, bytes, list[Any]]) -> None:
    assert _compiled_append(*case) == _python_append(*case)
