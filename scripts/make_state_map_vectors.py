"""Write tests/vectors/state-map.json: state map test vectors for other implementations.

    python scripts/make_state_map_vectors.py [--check]

Deterministic: every key comes from a fixed seed (SHA-256 of a label, as in
tests/fixtures.py) and every search below takes the first name that qualifies, so
the file is the same on every run. `--check` writes nothing and exits 1 if the file
differs from what the code produces now (tests/unit/test_statemap.py does the same).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ledgernode import codec, crypto, statemap
from ledgernode.statemap import Leaf, Proof, list_value, path, proof_to_json
from ledgernode.maptree import StateMap

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "state-map.json"
FORMAT = "ledgernode-state-map-vectors/1"
DEPTS = ("justice", "market", "health", "customs")
CLIENT_ROLES = ["dataset.*", "share.*", "cert.*", "evidence.*", "trace.*"]
SEARCH_MAX = 1 << 20  # every search below succeeds far sooner; this only bounds a mistake
NAME_PREFIX_BITS = 16  # shared by the named pair of "long shared prefix"

DESCRIPTION = [
    "Test vectors for the ledgernode state map (docs/protocol.md, 'State map (version 2)').",
    "Each map lists its entries: namespace, name (hex of the 32-byte record id for refby, else the str),",
    "path = H('map-path', msgpack([namespace, name])) in hex, value = base64 of the value bytes, and",
    "decoded = those bytes decoded, with every bin shown as lowercase hex (information only).",
    "Entries with namespace and name null have paths chosen directly, to reach the deepest tree.",
    "root is the map's root. Each proof case gives the path it is checked for, the entry as an answer",
    "carries it ({'value': base64 or null, 'proof': {...}}) and expected: true if verify(root, path,",
    "value, proof) must accept it, false if it must refuse it; note says why. kind is presence,",
    "absence-empty (null leaf), absence-leaf (another entry's leaf), invalid, or malformed (not",
    "the exact JSON form of a proof: such a proof is invalid, not unusable).",
]


def seeded_pubkey(label: str) -> bytes:
    return crypto.private_key_from_seed(hashlib.sha256(label.encode()).digest()).public.raw


def record_id(label: str) -> bytes:
    """A stand-in record id: a fixed 32-byte hash per label."""
    return crypto.tagged_hash("record", label.encode())


def readable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [readable(v) for v in value]
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    return value


Entry = tuple[str | None, str | bytes | None, bytes, bytes]  # namespace, name, path, value bytes


def named(namespace: str, name: str | bytes, value: Any) -> Entry:
    return namespace, name, path(namespace, name), codec.encode(value)


def key_value(label: str, dept: str, roles: list[str], until: int | None = None) -> dict[str, Any]:
    return {"pubkey": seeded_pubkey(label), "dept": dept, "roles": roles, "from": 0, "until": until}


def dept_entry(dept: str) -> Entry:
    return named("dept", dept, {"name": f"Dept {dept}", "from": 0})


def validator_key_entry(i: int) -> Entry:
    label = f"validator-{i}"
    return named("key", crypto.key_id(seeded_pubkey(label)), key_value(label, DEPTS[i], ["*"]))


def first(candidates: Iterator[Any], ok: Callable[[Any], bool]) -> Any:
    for _, candidate in zip(range(SEARCH_MAX), candidates):
        if ok(candidate):
            return candidate
    raise AssertionError("no candidate qualified")


def numbered(template: str, start: int = 0) -> Iterator[str]:
    n = start
    while True:
        yield template.format(n)
        n += 1


def build(entries: list[Entry]) -> StateMap:
    m = StateMap()
    m.apply((p, value) for _, _, p, value in entries)
    assert m.root == statemap.root_of({p: value for _, _, p, value in entries})
    return m


def has_empty_subtree(entries: list[Entry]) -> bool:
    """Whether the tree has an inner node with an empty child (then some absence proof
    ends at a null leaf)."""
    def split_once_empty(paths: list[bytes], depth: int) -> bool:
        if len(paths) < 2:
            return False
        left = [p for p in paths if not statemap.bit(p, depth)]
        right = [p for p in paths if statemap.bit(p, depth)]
        return not left or not right or split_once_empty(left, depth + 1) or split_once_empty(right, depth + 1)
    return split_once_empty([p for _, _, p, _ in entries], 0)


def three_entries() -> list[Entry]:
    """The map of the docs' worked example: a dept, a key and a subject's record list. The
    subject is the first LIC-2026-NNNN that leaves the tree an empty subtree, so that both
    kinds of absence proof exist."""
    fixed = [dept_entry("justice"), validator_key_entry(0)]
    name = first(numbered("LIC-2026-{:04d}", 1),
                 lambda n: has_empty_subtree(fixed + [("subject", n, path("subject", n), list_value([0, 5]))]))
    return fixed + [("subject", name, path("subject", name), list_value([0, 5]))]


def mixed_entries() -> list[Entry]:
    """Twenty entries across the five namespaces, with values shaped as the design's table."""
    validators = [{"dept": d, "name": f"Dept {d}", "pubkey": seeded_pubkey(f"validator-{i}")}
                  for i, d in enumerate(DEPTS)]
    entries = [named("validators", "", {"validators": validators, "since": 1})]
    entries += [dept_entry(d) for d in DEPTS]
    entries += [validator_key_entry(i) for i in range(len(DEPTS))]
    for i, dept in enumerate(DEPTS):
        roles = ["*"] if i == 0 else CLIENT_ROLES
        label = f"client-{i}"
        until = 57 if i == 3 else None  # one key revoked at leaf 57
        entries.append(named("key", crypto.key_id(seeded_pubkey(label)), key_value(label, dept, roles, until)))
    lists = {"LIC-2026-0001": [0, 3, 9], "EV-2026-0001": [1], "batch-7": [2, 4, 5, 6], "DS-health-2026": [7, 8]}
    entries += [("subject", name, path("subject", name), list_value(leaves)) for name, leaves in lists.items()]
    referenced = {"EV-2026-0001": [3, 9], "batch-7": [5], "DS-health-2026": [8, 9]}
    entries += [("refby", record_id(label), path("refby", record_id(label)), list_value(leaves))
                for label, leaves in referenced.items()]
    return entries


def named_pair_entries() -> list[Entry]:
    """Two subjects whose paths share their first NAME_PREFIX_BITS bits (found by search)."""
    shift = statemap.PATH_BITS - NAME_PREFIX_BITS
    base = path("subject", "TRACE-0")
    other = first(numbered("TRACE-{}", 1),
                  lambda n: int.from_bytes(path("subject", n), "big") >> shift == int.from_bytes(base, "big") >> shift)
    return [("subject", "TRACE-0", base, list_value([11])),
            ("subject", other, path("subject", other), list_value([12, 13]))]


def flip(data: bytes, i: int) -> bytes:
    """`data` with bit i flipped (most significant first, as a path's bits)."""
    out = bytearray(data)
    out[i // 8] ^= 0x80 >> (i % 8)
    return bytes(out)


def deepest_pair_entries() -> list[Entry]:
    """Two paths that differ only in bit 255: each proof has the most siblings, 256."""
    base = path("subject", "DEEP-A")
    return [(None, None, base, list_value([20])), (None, None, flip(base, 255), list_value([21]))]


def entry_json(entry: Entry) -> dict[str, Any]:
    namespace, name, p, value = entry
    shown = name.hex() if isinstance(name, bytes) else name
    return {"namespace": namespace, "name": shown, "path": p.hex(), "value": codec.b64(value),
            "decoded": readable(codec.decode(value))}


def case(kind: str, note: str, p: bytes, value: bytes | None, proof: Any, expected: bool,
         who: tuple[str | None, str | bytes | None] = (None, None)) -> dict[str, Any]:
    doc = proof_to_json(proof) if isinstance(proof, Proof) else proof
    name = who[1].hex() if isinstance(who[1], bytes) else who[1]
    return {"kind": kind, "note": note, "namespace": who[0], "name": name, "path": p.hex(),
            "entry": {"value": None if value is None else codec.b64(value), "proof": doc}, "expected": expected}


def presence_cases(m: StateMap, entries: list[Entry]) -> list[dict[str, Any]]:
    out = []
    for ns, name, p, value in entries:
        proof = m.prove(p)
        out.append(case("presence", f"the entry, its leaf at depth {len(proof.siblings)}", p, value, proof, True,
                        (ns, name)))
    return out


def absence_case(m: StateMap, kind: str, template: str, min_depth: int = 0) -> dict[str, Any]:
    """The first subject name of `template` absent from the map whose proof is of `kind`,
    with at least `min_depth` siblings."""
    want_empty = kind == "absence-empty"

    def fits(name: str) -> bool:
        proof = m.prove(path("subject", name))
        return (m.get(path("subject", name)) is None and (proof.leaf is None) == want_empty
                and len(proof.siblings) >= min_depth)

    name = first(numbered(template), fits)
    p = path("subject", name)
    proof = m.prove(p)
    if want_empty:
        note = f"no entry: the walk ends at an empty subtree at depth {len(proof.siblings)}"
    else:
        note = f"no entry: the subtree at depth {len(proof.siblings)} holds another entry only"
    return case(kind, note, p, None, proof, True, ("subject", name))


def invalid_cases(m: StateMap, entries: list[Entry]) -> list[dict[str, Any]]:
    """The design's three tamperings, on the deepest entry's proof, plus two wrong claims."""
    ns, name, p, value = max(entries, key=lambda e: len(m.prove(e[2]).siblings))
    proof = m.prove(p)
    s = proof.siblings
    other_value = next(v for _, _, q, v in entries if q != p) if len(entries) > 1 else codec.encode({})
    out = [
        case("invalid", "siblings[0] has its lowest bit flipped: the root differs", p, value,
             Proof(proof.leaf, (flip(s[0], 255),) + s[1:]), False, (ns, name)),
        case("invalid", "the value is another one than the entry's: its value_hash differs from the leaf's",
             p, other_value, proof, False, (ns, name)),
        case("invalid", "siblings truncated: the root's other child is missing", p, value,
             Proof(proof.leaf, s[:-1]), False, (ns, name)),
        case("invalid", "a present entry claimed absent: the leaf's path is the path itself", p, None, proof, False,
             (ns, name)),
    ]
    return out


def malformed_cases(m: StateMap, entry: Entry) -> list[dict[str, Any]]:
    ns, name, p, value = entry
    good = proof_to_json(m.prove(p))
    leaf = dict(good["leaf"])
    bad: list[tuple[str, Any]] = [
        ("a sibling in upper-case hex", {**good, "siblings": [good["siblings"][0].upper()] + good["siblings"][1:]}),
        ("an extra key in the proof", {**good, "depth": len(good["siblings"])}),
        ("a sibling of 62 hex characters", {**good, "siblings": [good["siblings"][0][:62]] + good["siblings"][1:]}),
        ("a leaf without value_hash", {**good, "leaf": {"path": leaf["path"]}}),
        ("a leaf path that is an array, not a str", {**good, "leaf": {**leaf, "path": [leaf["path"]]}}),
    ]
    return [case("malformed", why + ": not the exact JSON form", p, value, doc, False, (ns, name)) for why, doc in bad]


def map_doc(title: str, note: str, entries: list[Entry], proofs: list[dict[str, Any]], m: StateMap) -> dict[str, Any]:
    return {"title": title, "note": note, "entries": [entry_json(e) for e in entries], "root": m.root.hex(),
            "proofs": proofs}


def empty_map() -> dict[str, Any]:
    m = StateMap()
    p = path("subject", "LIC-2026-0001")
    value = list_value([0])
    proofs = [
        case("absence-empty", "the empty map: d = 0 and a null leaf", p, None, m.prove(p), True,
             ("subject", "LIC-2026-0001")),
        case("invalid", "the empty map holds nothing, whatever the value", p, value, m.prove(p), False,
             ("subject", "LIC-2026-0001")),
        case("invalid", "a leaf at d = 0 would be a one-entry map, not the empty one", p, value,
             Proof(Leaf(p, statemap.value_hash(value)), ()), False, ("subject", "LIC-2026-0001")),
    ]
    return map_doc("empty", "no entries: the root is 32 zero bytes", [], proofs, m)


def one_entry_map() -> dict[str, Any]:
    entries: list[Entry] = [("subject", "LIC-2026-0001", path("subject", "LIC-2026-0001"), list_value([0]))]
    m = build(entries)
    p = entries[0][2]
    q = path("subject", "LIC-2026-0002")
    proofs = presence_cases(m, entries) + [
        case("absence-leaf", "d = 0: the whole map is another entry's leaf", q, None, m.prove(q), True,
             ("subject", "LIC-2026-0002")),
        case("invalid", "a wrong value for the one entry", p, list_value([1]), m.prove(p), False,
             ("subject", "LIC-2026-0001")),
        case("invalid", "an empty sibling added under the leaf: a one-entry subtree is never deeper", p,
             entries[0][3], Proof(m.prove(p).leaf, (statemap.EMPTY_ROOT,)), False, ("subject", "LIC-2026-0001")),
        case("invalid", "a null leaf at d = 0 claims the empty map", q, None, Proof(None, ()), False,
             ("subject", "LIC-2026-0002")),
    ]
    return map_doc("one entry", "the root is the entry's leaf hash", entries, proofs, m)


def full_map(title: str, note: str, entries: list[Entry], malformed: bool = False) -> dict[str, Any]:
    m = build(entries)
    proofs = presence_cases(m, entries)
    proofs.append(absence_case(m, "absence-empty", "LIC-2026-9{:03d}"))
    proofs.append(absence_case(m, "absence-leaf", "LIC-2026-9{:03d}"))
    proofs += invalid_cases(m, entries)
    if malformed:
        proofs += malformed_cases(m, entries[0])
    return map_doc(title, note, entries, proofs, m)


def named_pair_map() -> dict[str, Any]:
    entries = named_pair_entries()
    m = build(entries)
    proofs = presence_cases(m, entries) + [absence_case(m, "absence-empty", "TRACE-X{}", 8)] + invalid_cases(m, entries)
    note = f"two subjects whose paths share their first {NAME_PREFIX_BITS} bits: a chain of inner nodes"
    return map_doc("long shared prefix", note, entries, proofs, m)


def deepest_pair_map() -> dict[str, Any]:
    entries = deepest_pair_entries()
    m = build(entries)
    near = flip(entries[0][2], 254)
    over = proof_to_json(m.prove(entries[0][2]))
    over["siblings"] = [statemap.EMPTY_ROOT.hex()] + over["siblings"]
    proofs = presence_cases(m, entries) + [
        case("absence-empty", "a path differing from both in bit 254: a null leaf at depth 255", near, None,
             m.prove(near), True),
        case("malformed", "257 siblings: more than a proof may hold", entries[0][2], entries[0][3], over, False),
    ]
    note = "two paths differing only in their last bit (chosen, not computed from names): d = 256"
    return map_doc("deepest pair", note, entries, proofs, m)


def build_vectors() -> dict[str, Any]:
    maps = [
        empty_map(),
        one_entry_map(),
        full_map("three entries", "a dept, a key and a record list: the worked example of docs/protocol.md",
                 three_entries(), malformed=True),
        named_pair_map(),
        deepest_pair_map(),
        full_map("twenty entries", "every namespace, values shaped as the design's table", mixed_entries()),
    ]
    return {"format": FORMAT, "description": DESCRIPTION, "maps": maps}


def render() -> str:
    return json.dumps(build_vectors(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT}: {'up to date' if same else 'differs from the code'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
