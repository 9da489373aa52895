"""Canonical msgpack (docs/protocol.md section 1): the only module that imports msgpack.

Values are nil, bool, int, str, bin, array and maps with str keys. `encode`
sorts map keys by their UTF-8 bytes, so every value has exactly one encoding.
`decode` is for bytes from outside: it bounds every size before allocating
(total bytes, str/bin length, container length, nesting depth) and accepts the
bytes only if re-encoding the decoded value gives them back exactly. That one
round-trip check rejects every non-canonical form at once: unsorted or
duplicate keys, ints or lengths not in their shortest form, str sent as bin.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import InvalidInput

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
DEPTH_HARD_MAX = 64  # no value of ours nests deeper, whatever a caller's Limits say
# msgpack.packb builds a new Packer, with a fresh 256 KiB buffer, on every call;
# every decode packs once to prove the bytes canonical, so each thread keeps one
# Packer, and drops it after a large value so its grown buffer is freed.
PACKER_BUF_BYTES = 16 << 10
PACKER_KEEP_MAX_BYTES = 1 << 20
_local = threading.local()


@dataclass(frozen=True)
class Limits:
    """Bounds for one decode. Defaults suit a record envelope or a header."""

    input_max_bytes: int = 1 << 20
    str_max_bytes: int = 1 << 16
    bin_max_bytes: int = 1 << 20
    array_max_len: int = 10_000
    map_max_len: int = 64
    depth_max: int = 8


DEFAULT_LIMITS = Limits()


def _canonical(value: Any, depth: int) -> Any:
    """Return `value` with map keys sorted; reject types outside the data model."""
    if depth > DEPTH_HARD_MAX:
        raise InvalidInput("too_deep", f"value nests deeper than {DEPTH_HARD_MAX} levels")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise InvalidInput("int_range", "int outside the 64-bit msgpack range")
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise InvalidInput("bad_key", f"map key {key!r} is not a str")
        # Code point order is UTF-8 byte order, so plain sorted() gives the canonical order.
        keys = sorted(value)
        return {k: _canonical(value[k], depth + 1) for k in keys}
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidInput("bad_type", f"{type(value).__name__} is not in the data model")


def _pack(value: Any) -> bytes:
    """msgpack bytes of `value` as it stands (maps in their own order)."""
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, buf_size=PACKER_BUF_BYTES)
    try:
        out: bytes = packer.pack(value)
    except BaseException:
        _local.packer = None  # never reuse a packer that failed half-way
        raise
    if len(out) > PACKER_KEEP_MAX_BYTES:
        _local.packer = None
    return out


def encode(value: Any) -> bytes:
    """Canonical msgpack bytes of `value`."""
    try:
        return _pack(_canonical(value, 0))
    except UnicodeEncodeError:
        # A str holding lone surrogates (e.g. from JSON "\ud800") has no UTF-8 form.
        raise InvalidInput("bad_utf8", "str is not encodable as UTF-8") from None


_SCALAR_TYPES = frozenset([type(None), bool, int, str, bytes])


def _check_item(item: Any, depth: int, depth_max: int) -> None:
    kind = type(item)
    if kind is dict or kind is list:
        _check_container(item, depth, depth_max)
    elif kind not in _SCALAR_TYPES:
        if kind is float:
            raise InvalidInput("float", "floats are not allowed")
        raise InvalidInput("bad_type", f"{kind.__name__} is not allowed")


def _check_container(value: Any, depth: int, depth_max: int) -> None:
    """Reject what the data model forbids and maps whose keys are out of order.

    Hot path (every record a node admits), hence exact type tests and no
    recursion for scalars."""
    if depth > depth_max or (value and depth + 1 > depth_max):  # items sit one level down
        raise InvalidInput("too_deep", f"nesting deeper than {depth_max}")
    if type(value) is list:
        for item in value:
            if type(item) not in _SCALAR_TYPES:
                _check_item(item, depth + 1, depth_max)
        return
    previous = None
    for key, item in value.items():
        if type(key) is not str:
            raise InvalidInput("bad_key", "map key is not a str")
        if previous is not None and key <= previous:
            raise InvalidInput("non_canonical", "map keys are not in canonical (sorted) order")
        previous = key
        if type(item) not in _SCALAR_TYPES:
            _check_item(item, depth + 1, depth_max)


def _check_decoded(value: Any, limits: Limits) -> None:
    _check_item(value, 0, min(limits.depth_max, DEPTH_HARD_MAX))


def _reject_ext(code: int, data: bytes) -> Any:
    raise InvalidInput("ext_type", f"msgpack ext type {code} is not allowed")


_BIN8, _BIN16, _BIN32 = 0xC4, 0xC5, 0xC6


def _bin_span(data: bytes, pos: int, size_max: int) -> tuple[int, int]:
    """(start, end) of the bin value whose canonical (shortest-header) encoding
    starts at `pos`; (0, -1) if there is none or it is longer than size_max."""
    tag = data[pos] if pos < len(data) else 0
    if tag == _BIN8 and pos + 2 <= len(data):
        start, size = pos + 2, data[pos + 1]
    elif tag == _BIN16 and pos + 3 <= len(data):
        start, size = pos + 3, int.from_bytes(data[pos + 1: pos + 3], "big")
        if size < 0x100:
            return 0, -1  # bin8 is shorter: not canonical
    elif tag == _BIN32 and pos + 5 <= len(data):
        start, size = pos + 5, int.from_bytes(data[pos + 1: pos + 5], "big")
        if size < 0x10000:
            return 0, -1  # bin16 is shorter: not canonical
    else:
        return 0, -1
    return (start, start + size) if size <= size_max else (0, -1)


def split_bin_pair(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, bytes] | None:
    """Fast path for the commonest input, a two-element array of bin values.

    Returns the pair when `data` is exactly the canonical encoding of
    [bin, bin] within `limits`, and None otherwise: then `decode` says what is
    wrong. It accepts only what `decode` would accept, with the same value,
    because each value has exactly one canonical encoding."""
    if type(data) is not bytes or len(data) > limits.input_max_bytes or len(data) < 5 or data[0] != 0x92:
        return None  # (decode takes other buffers too, and answers with bytes)
    start1, end1 = _bin_span(data, 1, limits.bin_max_bytes)
    if end1 < 0:
        return None
    start2, end2 = _bin_span(data, end1, limits.bin_max_bytes)
    if end2 != len(data):
        return None
    return data[start1:end1], data[start2:end2]


def decode_unwalked(data: bytes, limits: Limits) -> Any:
    """Fast path for inputs whose caller checks every type and map-key order itself.

    Returns the decoded value if `data` decodes within `limits` and re-encoding
    the value, maps in their decoded key order, gives `data` back; None on any
    failure (then `decode` names it). Unlike `decode`, it does not reject
    floats, non-str keys or unsorted maps: the caller must, before trusting
    the value as canonical."""
    if len(data) > limits.input_max_bytes:
        return None
    try:
        value = _unpack(data, limits)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError, InvalidInput):
        return None
    return value if _pack(value) == data else None


def _unpack(data: bytes, limits: Limits) -> Any:
    return msgpack.unpackb(
        data,
        raw=False,
        use_list=True,
        strict_map_key=True,
        ext_hook=_reject_ext,
        max_str_len=limits.str_max_bytes,
        max_bin_len=limits.bin_max_bytes,
        max_array_len=limits.array_max_len,
        max_map_len=limits.map_max_len,
        max_ext_len=0,
    )


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode bytes that must be canonical; raise InvalidInput otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput("bad_type", "expected bytes")
    if len(data) > limits.input_max_bytes:
        raise InvalidInput(
            "too_large", f"{len(data)} bytes exceeds {limits.input_max_bytes}", 413
        )
    data = bytes(data)
    try:
        value = _unpack(data, limits)
    except InvalidInput:
        raise
    except msgpack.ExtraData:
        raise InvalidInput("trailing_bytes", "bytes follow the encoded value") from None
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        # msgpack reports truncation, bad UTF-8, limit overruns and too-deep
        # stacks all as ValueError subclasses; the message says which.
        raise InvalidInput("malformed", f"not decodable msgpack: {exc}") from None
    _check_decoded(value, limits)
    # The walk above proved every map sorted and every value in the data model, so
    # packing the decoded value as it stands is its canonical encoding.
    if _pack(value) != data:
        raise InvalidInput("non_canonical", "bytes are not the canonical encoding")
    return value


def b64(data: bytes) -> str:
    """Standard base64 with padding: how every byte string of a JSON answer, bundle or proof
    is written (docs/protocol.md section 9)."""
    return base64.b64encode(data).decode("ascii")
