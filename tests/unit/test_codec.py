"""Canonical msgpack (docs/protocol.md section 1): ledgernode.codec.

The encoder is checked against `ref_encode`, an independent canonical encoder
written here straight from the msgpack spec (shortest int and length forms, map
keys sorted by their UTF-8 bytes), so the tests do not just compare the module
with the msgpack library it wraps.
"""

from __future__ import annotations

import datetime
import decimal
import math
import struct
import time
import tracemalloc

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgernode import codec
from ledgernode.codec import INT_MAX, INT_MIN, Limits, decode, encode
from ledgernode.errors import InvalidInput

# Deterministic, no example database written into the work tree.
FAST = settings(
    derandomize=True, database=None, deadline=None, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ = settings(
    derandomize=True, database=None, deadline=None, max_examples=1500,
    suppress_health_check=[HealthCheck.too_slow],
)

MUTATE = settings(
    derandomize=True, database=None, deadline=None, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)

# Room for anything Hypothesis builds; the encoder itself caps nesting at 64.
WIDE = Limits(
    input_max_bytes=1 << 24, str_max_bytes=1 << 20, bin_max_bytes=1 << 20,
    array_max_len=100_000, map_max_len=100_000, depth_max=64,
)


# --------------------------------------------------------------------------
# An independent reference encoder (msgpack spec, shortest forms).
# --------------------------------------------------------------------------

def _len_head(n: int, fix_base: int | None, fix_max: int, tags: list[tuple[int, str, int]]) -> bytes:
    if fix_base is not None and n <= fix_max:
        return bytes([fix_base | n])
    for tag, fmt, limit in tags:
        if n <= limit:
            return bytes([tag]) + struct.pack(fmt, n)
    raise AssertionError("too long for msgpack")


def ref_encode(v) -> bytes:
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if v > 0:
            for tag, fmt, limit in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                                    (0xCE, ">I", 0xFFFF_FFFF), (0xCF, ">Q", 2**64 - 1)):
                if v <= limit:
                    return bytes([tag]) + struct.pack(fmt, v)
        for tag, fmt, limit in ((0xD0, ">b", 2**7), (0xD1, ">h", 2**15),
                                (0xD2, ">i", 2**31), (0xD3, ">q", 2**63)):
            if v >= -limit:
                return bytes([tag]) + struct.pack(fmt, v)
        raise AssertionError("int out of range")
    if isinstance(v, str):
        b = v.encode("utf-8")
        return _len_head(len(b), 0xA0, 31, [(0xD9, ">B", 0xFF), (0xDA, ">H", 0xFFFF),
                                           (0xDB, ">I", 0xFFFF_FFFF)]) + b
    if isinstance(v, bytes):
        return _len_head(len(v), None, 0, [(0xC4, ">B", 0xFF), (0xC5, ">H", 0xFFFF),
                                           (0xC6, ">I", 0xFFFF_FFFF)]) + v
    if isinstance(v, list):
        head = _len_head(len(v), 0x90, 15, [(0xDC, ">H", 0xFFFF), (0xDD, ">I", 0xFFFF_FFFF)])
        return head + b"".join(ref_encode(x) for x in v)
    if isinstance(v, dict):
        head = _len_head(len(v), 0x80, 15, [(0xDE, ">H", 0xFFFF), (0xDF, ">I", 0xFFFF_FFFF)])
        keys = sorted(v, key=lambda k: k.encode("utf-8"))
        return head + b"".join(ref_encode(k) + ref_encode(v[k]) for k in keys)
    raise AssertionError(f"not in the data model: {type(v)}")


def same(a, b) -> bool:
    """Equality that also tells True from 1 and b"x" from "x", recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def reorder(v):
    """The same value with every dict built in reverse insertion order."""
    if isinstance(v, list):
        return [reorder(x) for x in v]
    if isinstance(v, dict):
        return {k: reorder(v[k]) for k in reversed(list(v))}
    return v


def pairs(data: bytes):
    """Decode keeping map entries as ordered pair lists (to see wire key order)."""
    return msgpack.unpackb(data, raw=False, object_pairs_hook=list, strict_map_key=False)


def code_of(data, limits: Limits = codec.DEFAULT_LIMITS) -> str:
    with pytest.raises(InvalidInput) as info:
        decode(data, limits)
    return info.value.code


BOUNDARY_INTS = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, INT_MAX,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, INT_MIN,
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.sampled_from(BOUNDARY_INTS)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=6), children, max_size=6),
    max_leaves=30,
)


# --------------------------------------------------------------------------
# Round trip and determinism
# --------------------------------------------------------------------------

@FAST
@given(values)
def test_roundtrip_matches_reference_encoder(value):
    data = encode(value)
    assert data == ref_encode(value)
    back = decode(data, WIDE)
    assert back == value and same(back, value)
    assert encode(back) == data


@FAST
@given(
    st.dictionaries(
        st.text(max_size=6),
        scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=4), scalars, max_size=4),
        min_size=2,
        max_size=8,
    )
)
def test_encoding_ignores_dict_insertion_order(value):
    shuffled = reorder(value)
    assert list(shuffled) != list(value)  # really a different insertion order
    assert encode(shuffled) == encode(value)
    wire_keys = [k for k, _ in pairs(encode(value))]
    assert wire_keys == sorted(value, key=lambda k: k.encode("utf-8"))


def test_map_keys_sorted_by_utf8_bytes_not_by_utf16_or_case():
    # U+FF5A sorts before U+1F600 in UTF-8 (and code points) but after it in
    # UTF-16, where the emoji is the surrogate pair D83D DE00.
    value = {"\U0001f600": 1, "\uff5a": 2, "é": 3, "z": 4, "a": 5, "B": 6, "": 7}
    data = encode(value)
    assert [k for k, _ in pairs(data)] == ["", "B", "a", "z", "é", "\uff5a", "\U0001f600"]
    assert decode(data) == value
    # Canonical bytes written out by hand for a two-key map with a non-ASCII key.
    assert encode({"é": 1, "z": 2}) == b"\x82\xa1z\x02\xa2\xc3\xa9\x01"


@pytest.mark.parametrize("value", BOUNDARY_INTS)
def test_boundary_ints_use_shortest_form(value):
    data = encode(value)
    assert data == ref_encode(value)
    assert decode(data) == value


@pytest.mark.parametrize("n", [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536])
def test_length_boundaries_roundtrip(n):
    for value in ("x" * n, b"y" * n, [None] * n, {f"{i:06d}": None for i in range(n)}):
        data = encode(value)
        assert data == ref_encode(value)
        assert decode(data, WIDE) == value


def test_scalars_and_types_are_distinct():
    assert encode(True) == b"\xc3" and encode(1) == b"\x01"
    assert decode(b"\xc3") is True and decode(b"\xc2") is False and decode(b"\xc0") is None
    assert type(decode(b"\x01")) is int
    # str and bin are different values: both are canonical, neither equals the other.
    assert decode(b"\xa1a") == "a"
    assert decode(b"\xc4\x01a") == b"a"
    assert encode("a") != encode(b"a")
    # tuple/bytearray/memoryview are accepted by the encoder as list/bin.
    assert encode((1, 2)) == encode([1, 2])
    assert encode(bytearray(b"ab")) == encode(b"ab") == encode(memoryview(b"ab"))
    assert decode(bytearray(b"\x92\x01\x02")) == [1, 2]
    assert decode(memoryview(b"\x92\x01\x02")) == [1, 2]


def test_decode_rejects_non_bytes_input():
    with pytest.raises(InvalidInput) as info:
        decode("\x01")  # type: ignore[arg-type]
    assert info.value.code == "bad_type"


# --------------------------------------------------------------------------
# Non-canonical encodings
# --------------------------------------------------------------------------

NON_CANONICAL = {
    # unsorted and duplicate keys
    "unsorted keys": b"\x82\xa1b\x01\xa1a\x02",
    "unsorted non-ascii keys": b"\x82\xa2\xc3\xa9\x01\xa1z\x02",  # "é" before "z"
    "unsorted by utf16 order": b"\x82\xa4\xf0\x9f\x98\x80\x01\xa3\xef\xbd\x9a\x02",
    "duplicate keys": b"\x82\xa1a\x01\xa1a\x02",
    "duplicate identical entries": b"\x82\xa1a\x01\xa1a\x01",
    # ints not in their shortest form
    "uint8 5": b"\xcc\x05",
    "uint16 5": b"\xcd\x00\x05",
    "uint16 255": b"\xcd\x00\xff",
    "uint32 65535": b"\xce\x00\x00\xff\xff",
    "uint64 2**32-1": b"\xcf" + (2**32 - 1).to_bytes(8, "big"),
    "int8 positive 5": b"\xd0\x05",
    "int16 positive 200": b"\xd1\x00\xc8",
    "int8 -1": b"\xd0\xff",
    "int16 -128": b"\xd1\xff\x80",
    "int32 -32768": b"\xd2\xff\xff\x80\x00",
    "int64 -1": b"\xd3" + struct.pack(">q", -1),
    "int64 positive 1": b"\xd3" + struct.pack(">q", 1),
    # str / bin / array / map length headers not in their shortest form
    "str8 for 1 byte": b"\xd9\x01a",
    "str16 for 1 byte": b"\xda\x00\x01a",
    "str32 for 1 byte": b"\xdb\x00\x00\x00\x01a",
    "str16 for 40 bytes": b"\xda\x00\x28" + b"x" * 40,
    "str32 for 300 bytes": b"\xdb\x00\x00\x01\x2c" + b"x" * 300,
    "bin16 for 1 byte": b"\xc5\x00\x01a",
    "bin32 for 1 byte": b"\xc6\x00\x00\x00\x01a",
    "bin32 for 300 bytes": b"\xc6\x00\x00\x01\x2c" + b"x" * 300,
    "array16 for 1 item": b"\xdc\x00\x01\x01",
    "array32 for 1 item": b"\xdd\x00\x00\x00\x01\x01",
    "array16 for 0 items": b"\xdc\x00\x00",
    "map16 for 1 entry": b"\xde\x00\x01\xa1a\x01",
    "map32 for 1 entry": b"\xdf\x00\x00\x00\x01\xa1a\x01",
    "map16 for 0 entries": b"\xde\x00\x00",
    # non-canonical deep inside an otherwise fine value
    "nested uint8": b"\x81\xa1a\x91\xcc\x05",
    "nested unsorted": b"\x91\x82\xa1b\x01\xa1a\x02",
}


@pytest.mark.parametrize("name", sorted(NON_CANONICAL))
def test_non_canonical_rejected(name):
    data = NON_CANONICAL[name]
    # Each of these decodes with plain msgpack: only canonicality is wrong.
    msgpack.unpackb(data, raw=False, strict_map_key=False)
    assert code_of(data, WIDE) == "non_canonical"


FLOATS = {
    "float32": b"\xca" + struct.pack(">f", 1.0),
    "float64": b"\xcb" + struct.pack(">d", 1.0),
    "float64 nan": b"\xcb" + struct.pack(">d", float("nan")),
    "float in map": b"\x81\xa1a\xcb" + struct.pack(">d", 0.5),
    "float in array": b"\x91\xca\x00\x00\x00\x00",
}


@pytest.mark.parametrize("name", sorted(FLOATS))
def test_floats_rejected(name):
    assert code_of(FLOATS[name]) == "float"


EXTS = {
    "fixext1": b"\xd4\x01\x00",
    "fixext2": b"\xd5\x01\x00\x00",
    "fixext4": b"\xd6\x01" + bytes(4),
    "fixext8": b"\xd7\x01" + bytes(8),
    "fixext16": b"\xd8\x01" + bytes(16),
    "ext8": b"\xc7\x03\x01abc",
    "ext16": b"\xc8\x00\x03\x01abc",
    "ext32": b"\xc9\x00\x00\x00\x03\x01abc",
    "timestamp32 (ext -1)": b"\xd6\xff" + struct.pack(">I", 1_700_000_000),
    "timestamp64 (ext -1)": b"\xd7\xff" + bytes(8),
    "timestamp96 (ext -1)": b"\xc7\x0c\xff" + bytes(12),
    "timestamp in map": b"\x81\xa1t\xd6\xff" + bytes(4),
    "empty ext8 type 5": b"\xc7\x00\x05",
}


@pytest.mark.parametrize("name", sorted(EXTS))
def test_ext_types_rejected(name):
    # The `max_ext_len=0` bound stops most ext values inside msgpack (malformed)
    # before the ext hook sees them; a zero-length ext reaches the hook.
    assert code_of(EXTS[name]) in ("ext_type", "malformed")
    assert code_of(EXTS[name], WIDE) in ("ext_type", "malformed")


def test_zero_length_ext_reaches_ext_hook():
    assert code_of(b"\xc7\x00\x05") == "ext_type"


@pytest.mark.parametrize(
    "data, codes",
    [
        (b"\x81\xc4\x01a\x01", {"bad_key"}),               # bin key (str sent as bin)
        (b"\x81\xc4\x00\x01", {"bad_key"}),                # empty bin key
        (b"\x81\x01\x01", {"bad_key", "malformed"}),       # int key
        (b"\x81\xd0\x80\x01", {"bad_key", "malformed"}),   # negative int key
        (b"\x81\xc0\x01", {"bad_key", "malformed"}),       # nil key
        (b"\x81\xc3\x01", {"bad_key", "malformed"}),       # bool key
        (b"\x81\x90\x01", {"bad_key", "malformed"}),       # array key
        (b"\x81\x80\x01", {"bad_key", "malformed"}),       # map key
        (b"\x91\x81\xc4\x01a\x01", {"bad_key"}),           # nested bin key
    ],
)
def test_non_str_map_keys_rejected(data, codes):
    assert code_of(data) in codes


@pytest.mark.parametrize(
    "data",
    [
        b"\xa2\xff\xfe",            # not UTF-8 at all
        b"\xa2\xc0\x80",            # overlong NUL
        b"\xa3\xed\xa0\x80",        # encoded surrogate
        b"\xa1\xc3",                # truncated multi-byte sequence
        b"\xa4\xf4\x90\x80\x80",    # above U+10FFFF
        b"\x81\xa1\xff\x01",        # bad UTF-8 in a map key
    ],
)
def test_invalid_utf8_rejected(data):
    assert code_of(data) == "malformed"


@pytest.mark.parametrize("value", [None, 0, "abc", [1, [2]], {"a": b"\x00"}])
@pytest.mark.parametrize("extra", [b"\x00", b"\xc0", b"\xff", b"\x91\x01"])
def test_trailing_bytes_rejected(value, extra):
    assert code_of(encode(value) + extra) == "trailing_bytes"


@pytest.mark.parametrize(
    "value",
    [300, 2**40, -(2**40), "hello", b"\x00" * 20, [1, "two", b"3"], {"a": [1, {"b": None}]}],
)
def test_every_truncation_rejected(value):
    data = encode(value)
    for n in range(len(data)):
        assert code_of(data[:n]) == "malformed", n


def test_oversized_input_rejected_before_parsing():
    limits = Limits(input_max_bytes=16)
    ok = encode("x" * 14)
    assert len(ok) == 15 and decode(ok, limits) == "x" * 14
    exact = encode("x" * 15)
    assert len(exact) == 16 and decode(exact, limits) == "x" * 15
    with pytest.raises(InvalidInput) as info:
        decode(encode("x" * 16), limits)
    assert info.value.code == "too_large" and info.value.status == 413
    # Default limit: 1 MiB, checked on length alone (this is garbage msgpack).
    with pytest.raises(InvalidInput) as info:
        decode(b"\xc1" * ((1 << 20) + 1))
    assert info.value.code == "too_large"


@pytest.mark.parametrize(
    "limits, data",
    [
        (Limits(str_max_bytes=3), encode("abcd")),
        (Limits(bin_max_bytes=3), encode(b"abcd")),
        (Limits(array_max_len=3), encode([1, 2, 3, 4])),
        (Limits(map_max_len=3), encode({"a": 1, "b": 2, "c": 3, "d": 4})),
        (Limits(map_max_len=0), encode({"a": 1})),
        (Limits(array_max_len=0), encode([1])),
    ],
)
def test_item_limits(limits, data):
    assert code_of(data, limits) == "malformed"
    # ...and one less is fine.
    value = decode(data, WIDE)
    smaller = value[:-1] if isinstance(value, (str, bytes, list)) else dict(list(value.items())[:-1])
    assert decode(encode(smaller), limits) == smaller


HOSTILE = {
    "array32 len 2**32-1": b"\xdd\xff\xff\xff\xff",
    "map32 len 2**32-1": b"\xdf\xff\xff\xff\xff",
    "str32 len 2**32-1": b"\xdb\xff\xff\xff\xff",
    "bin32 len 2**32-1": b"\xc6\xff\xff\xff\xff",
    "ext32 len 2**32-1": b"\xc9\xff\xff\xff\xff\x01",
    "array16 len 65535": b"\xdc\xff\xff",
    "map16 len 65535": b"\xde\xff\xff",
    "nested array32": b"\x91\x91\xdd\xff\xff\xff\xff",
    "array32 of array32": b"\xdd\x00\x00\x27\x10" + b"\xdd\xff\xff\xff\xff",
}
GENEROUS = Limits(
    input_max_bytes=1 << 20, str_max_bytes=2**32 - 1, bin_max_bytes=2**32 - 1,
    array_max_len=2**32 - 1, map_max_len=2**32 - 1, depth_max=64,
)


TIMING_RUNS = 25  # interleaved; each side's fastest run is its cost without interference
WORK_FACTOR_MAX = 1_000  # measured: about 1-5; any work per declared item of a 2**32-1 header: >= 10**5


def _tame(data: bytes) -> bytes:
    """The same truncated input with every 2**32-1 / 65535 length header declaring 1 item."""
    tame = data.replace(b"\xff\xff\xff\xff", b"\x00\x00\x00\x01").replace(b"\xff\xff", b"\x00\x01")
    assert tame != data and b"\xff" not in tame
    return tame


def _fastest_refusal(data: bytes, limits: Limits) -> float:
    best = math.inf
    for _ in range(TIMING_RUNS):
        started = time.perf_counter()
        try:
            decode(data, limits)
        except InvalidInput:
            pass
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("limits", [codec.DEFAULT_LIMITS, GENEROUS], ids=["default", "generous"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_length_headers_fail_fast_without_allocating(name, limits):
    hostile, tame = HOSTILE[name], _tame(HOSTILE[name])
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as info:
            decode(hostile, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "malformed"
    assert peak < 4 << 20, f"peak {peak} bytes"
    with pytest.raises(InvalidInput):
        decode(tame, limits)
    # Work does not grow with the declared length: refusing a header that declares
    # 2**32-1 (or 65535) items costs about what refusing the same bytes declaring one
    # item costs, both measured here, interleaved, so the machine's speed cancels out.
    costs: dict[bytes, float] = {hostile: math.inf, tame: math.inf}
    for _ in range(4):
        for data in (hostile, tame):
            costs[data] = min(costs[data], _fastest_refusal(data, limits))
    assert costs[hostile] < WORK_FACTOR_MAX * costs[tame], (costs[hostile], costs[tame])


def _nested_arrays(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"


def test_depth_limit():
    assert decode(_nested_arrays(8)) is not None  # default depth_max = 8
    assert code_of(_nested_arrays(9)) == "too_deep"
    nested_maps = b"\x81\xa1a" * 9 + b"\xc0"
    assert code_of(nested_maps) == "too_deep"
    assert decode(b"\x81\xa1a" * 8 + b"\xc0") is not None
    assert decode(_nested_arrays(2), Limits(depth_max=2)) == [[None]]
    assert code_of(_nested_arrays(3), Limits(depth_max=2)) == "too_deep"
    assert code_of(b"\x91\x01", Limits(depth_max=0)) == "too_deep"


@pytest.mark.parametrize(
    "data",
    [
        _nested_arrays(100_000),
        b"\x81\xa1a" * 100_000 + b"\xc0",
        b"\x91\x81\xa1a" * 50_000 + b"\xc0",
        _nested_arrays(100_000)[:-1],  # deep and truncated
    ],
    ids=["arrays", "maps", "mixed", "truncated"],
)
@pytest.mark.parametrize("limits", [codec.DEFAULT_LIMITS, Limits(depth_max=10**6)], ids=["default", "no-depth-cap"])
def test_very_deep_nesting_is_invalid_input_not_recursion_error(data, limits):
    assert code_of(data, limits) in ("too_deep", "malformed")


def test_depth_is_also_capped_by_the_encoder_round_trip():
    # The decoder re-encodes what it decoded, and the encoder refuses more than
    # 64 levels, so even a huge depth_max cannot let deeper values through.
    assert decode(_nested_arrays(64), Limits(depth_max=100)) is not None
    assert code_of(_nested_arrays(66), Limits(depth_max=100)) == "too_deep"


# --------------------------------------------------------------------------
# Encoder rejections
# --------------------------------------------------------------------------

def _encode_code(value) -> str:
    with pytest.raises(InvalidInput) as info:
        encode(value)
    return info.value.code


@pytest.mark.parametrize(
    "value, code",
    [
        (1.5, "bad_type"),
        (0.0, "bad_type"),
        (float("nan"), "bad_type"),
        ([1, 2.0], "bad_type"),
        ({"a": {"b": 1e9}}, "bad_type"),
        ({1: "a"}, "bad_key"),
        ({b"a": 1}, "bad_key"),
        ({None: 1}, "bad_key"),
        ({(1, 2): 1}, "bad_key"),
        ({"a": {2: 1}}, "bad_key"),
        (INT_MAX + 1, "int_range"),
        (INT_MIN - 1, "int_range"),
        (2**100, "int_range"),
        ([0, -(2**70)], "int_range"),
        ({"n": 2**64}, "int_range"),
        (object(), "bad_type"),
        ({1, 2}, "bad_type"),
        (frozenset(), "bad_type"),
        (1 + 2j, "bad_type"),
        (decimal.Decimal(1), "bad_type"),
        (datetime.datetime(2024, 1, 1), "bad_type"),
        (msgpack.Timestamp(0), "bad_type"),
        ({"a": [object()]}, "bad_type"),
        ("\ud800", "bad_utf8"),
        ({"\udfff": 1}, "bad_utf8"),
        ([{"a": "ok\ud83d"}], "bad_utf8"),
    ],
)
def test_encode_rejects_values_outside_the_data_model(value, code):
    assert _encode_code(value) == code


def test_encode_never_emits_ext_types():
    # ExtType is a namedtuple: the encoder treats it as a plain 2-item array.
    data = encode(msgpack.ExtType(1, b"x"))
    assert data == b"\x92\x01\xc4\x01x" and decode(data) == [1, b"x"]


def test_encode_int_range_edges_are_accepted():
    assert decode(encode(INT_MAX)) == INT_MAX
    assert decode(encode(INT_MIN)) == INT_MIN


def test_encode_depth_cap_without_recursion_error():
    def nest(depth):
        v = None
        for _ in range(depth):
            v = [v]
        return v

    assert decode(encode(nest(64)), Limits(depth_max=64)) == nest(64)
    assert _encode_code(nest(65)) == "too_deep"
    assert _encode_code(nest(100_000)) == "too_deep"
    deep_map = None
    for _ in range(100_000):
        deep_map = {"a": deep_map}
    assert _encode_code(deep_map) == "too_deep"
    cyclic: list = []
    cyclic.append(cyclic)
    assert _encode_code(cyclic) == "too_deep"


# --------------------------------------------------------------------------
# Fuzz: decode never fails with anything but InvalidInput, and whatever it
# accepts is exactly the canonical encoding of what it returns.
# --------------------------------------------------------------------------

def _check_decode_contract(data: bytes, limits: Limits = codec.DEFAULT_LIMITS) -> None:
    try:
        value = decode(data, limits)
    except InvalidInput as exc:
        assert isinstance(exc.code, str) and exc.code
        return
    assert encode(value) == data
    assert ref_encode(value) == data


@FUZZ
@given(st.binary(max_size=48))
def test_random_bytes_decode_contract(data):
    _check_decode_contract(data)
    _check_decode_contract(data, WIDE)


@MUTATE
@given(values, st.data())
def test_mutated_encodings_decode_contract(value, draw):
    data = bytearray(encode(value))
    for _ in range(draw.draw(st.integers(1, 3))):
        op = draw.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw.draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] = draw.draw(st.integers(0, 255))
        elif op == "insert":
            data.insert(pos, draw.draw(st.integers(0, 255)))
        elif op == "delete" and pos < len(data):
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    _check_decode_contract(bytes(data))
    _check_decode_contract(bytes(data), WIDE)


# -- fast paths: they may only say "not sure", never disagree with decode ------


ENVELOPE_LIKE = Limits(input_max_bytes=1 << 17, bin_max_bytes=70_000)


def _check_split_contract(data: bytes, limits: Limits) -> None:
    pair = codec.split_bin_pair(data, limits)
    try:
        value = decode(data, limits)
    except InvalidInput:
        assert pair is None, data
        return
    if pair is not None:
        assert [pair[0], pair[1]] == value and all(type(x) is bytes for x in pair)
    elif isinstance(value, list) and len(value) == 2 and all(type(x) is bytes for x in value):
        raise AssertionError(f"fast path refused a canonical bin pair: {data[:16]!r}")


@FAST
@given(st.binary(max_size=300), st.binary(max_size=300), st.data())
def test_split_bin_pair_agrees_with_decode(a, b, draw):
    data = bytearray(encode([a, b]))
    _check_split_contract(bytes(data), ENVELOPE_LIKE)
    for _ in range(draw.draw(st.integers(1, 3))):  # then mutated
        pos = draw.draw(st.integers(0, len(data) - 1))
        op = draw.draw(st.sampled_from(["flip", "delete", "truncate", "append"]))
        if op == "flip":
            data[pos] = draw.draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos]
        elif op == "truncate":
            del data[pos:]
        else:
            data.append(draw.draw(st.integers(0, 255)))
        if not data:
            break
        _check_split_contract(bytes(data), ENVELOPE_LIKE)


@pytest.mark.parametrize("a_len", [0, 1, 255, 256, 65_535, 65_536])
def test_split_bin_pair_length_boundaries(a_len):
    data = encode([b"\x01" * a_len, b"sig"])
    _check_split_contract(data, ENVELOPE_LIKE)
    # the same pair with a longer-than-needed length header is refused by both
    if a_len < 256:
        longer = b"\x92\xc5" + a_len.to_bytes(2, "big") + b"\x01" * a_len + b"\xc4\x03sig"
        assert codec.split_bin_pair(longer, ENVELOPE_LIKE) is None
        _check_split_contract(longer, ENVELOPE_LIKE)


def test_split_bin_pair_respects_limits():
    data = encode([b"x" * 100, b"y"])
    assert codec.split_bin_pair(data, Limits(bin_max_bytes=99)) is None
    assert codec.split_bin_pair(data, Limits(input_max_bytes=len(data) - 1)) is None
    assert codec.split_bin_pair(data, Limits(bin_max_bytes=100)) == (b"x" * 100, b"y")


@MUTATE
@given(values, st.data())
def test_decode_unwalked_is_decode_without_the_walk(value, draw):
    data = bytearray(encode(value))
    for _ in range(draw.draw(st.integers(0, 2))):
        pos = draw.draw(st.integers(0, max(0, len(data) - 1)))
        if data:
            data[pos] = draw.draw(st.integers(0, 255))
    data = bytes(data)
    fast = codec.decode_unwalked(data, WIDE)
    try:
        checked = decode(data, WIDE)
    except InvalidInput:
        # what it lets through must still be an exact round trip; the caller walks it
        assert fast is None or msgpack.packb(fast, use_bin_type=True) == data
        return
    assert fast == checked


def test_decode_unwalked_leaves_order_and_floats_to_the_caller():
    unsorted = msgpack.packb({"b": 1, "a": 2})
    assert codec.decode_unwalked(unsorted, WIDE) == {"b": 1, "a": 2}
    assert codec.decode_unwalked(msgpack.packb(1.5), WIDE) == 1.5
    # but never a non-shortest form, trailing bytes, or more than the limits allow
    assert codec.decode_unwalked(b"\xcd\x00\x01", WIDE) is None
    assert codec.decode_unwalked(encode(1) + b"\x00", WIDE) is None
    assert codec.decode_unwalked(encode("x" * 10), Limits(str_max_bytes=9)) is None


def test_reused_packer_survives_failures_and_large_values():
    small = {"a": [1, "x", b"y"]}
    expected = ref_encode(small)
    with pytest.raises(InvalidInput):
        encode({"a": "\ud800"})  # lone surrogate: fails half-way through packing
    assert encode(small) == expected
    big = b"z" * (codec.PACKER_KEEP_MAX_BYTES + 1)
    assert encode([big]) == ref_encode([big])
    assert encode(small) == expected
    assert decode(expected) == small


def test_encode_from_many_threads_at_once():
    import concurrent.futures

    values = [{"n": i, "s": "v" * (i % 300), "b": bytes(i % 70)} for i in range(2_000)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(encode, values))
    assert got == [ref_encode(v) for v in values]
