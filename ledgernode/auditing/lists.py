"""State-map entries, record lists and signing keys in bundles and answers
(docs/protocol.md sections 11 and 12), each built beside its check.

- An entry `{"value", "proof"}` shows one path of the checkpoint's state map: present
  with its value bytes, or absent. The verifier computes the path itself from the
  namespace and the name it expects, so an entry cannot stand in for another.
- A `list` `{"entry", "from", "positions", "list_inclusion"}` shows positions
  `from, from + 1, ...` of a record list (a subject's records, or a record's
  referrers) and proves each listed leaf index in the list's tree. A list that covers
  positions 0 to n - 1 is complete: nothing about the subject was left out.
- A `key` entry says who could sign at a leaf: the pubkey, dept and roles, and the
  leaf range [from, until) in which the key could sign.
Every failure is a CheckFailed naming the check it belongs to (`list`, `key`).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

from .. import codec, crypto, merkle, statemap
from ..codec import b64
from ..errors import InvalidInput
from ..genesis import GOVERNANCE_PREFIX, ROLES_MAX, role_allows
from ..records import RECORD_SIGN_PREFIX, Envelope
from ..maptree import StateMap
from .checks import CheckFailed
from .parse import hash_list
from .reader import LedgerReader

ENTRY_KEYS = frozenset(["value", "proof"])
LIST_KEYS = frozenset(["entry", "from", "positions", "list_inclusion"])
KEY_KEYS = frozenset(["pubkey", "dept", "roles", "from", "until"])


# -- built by a node ----------------------------------------------------------------------


def entry_doc(state: StateMap, namespace: str, name: str | bytes) -> dict[str, Any]:
    return _entry(state, namespace, name)[0]


def _entry(state: StateMap, namespace: str, name: str | bytes) -> tuple[dict[str, Any], bytes | None]:
    value, proof = state.get_and_prove(statemap.path(namespace, name))
    return {"value": None if value is None else b64(value), "proof": statemap.proof_to_json(proof)}, value


def entry_value(state: StateMap, namespace: str, name: str | bytes) -> bytes:
    """The value of an entry the node knows is present (a signer's key)."""
    value = state.get(statemap.path(namespace, name))
    assert value is not None, f"no {namespace} entry for a name the ledger holds"
    return value


def list_size(state: StateMap, namespace: str, name: str | bytes) -> int:
    value = state.get(statemap.path(namespace, name))
    return 0 if value is None else statemap.parse_list_value(value)[0]


def list_doc(lists: LedgerReader, state: StateMap, namespace: str, name: str | bytes, start: int,
             count: int) -> tuple[dict[str, Any], list[int], int]:
    """The `list` of positions [start, start + count) (cut at the list's end), the leaf
    indexes listed there in log order, and the list's size."""
    entry, value = _entry(state, namespace, name)  # one walk for the size and the proof
    n = 0 if value is None else statemap.parse_list_value(value)[0]
    start = min(max(start, 0), n)
    end = min(n, start + max(count, 0))
    nodes = lists.list_nodes(statemap.path(namespace, name))
    leaves = nodes.leaves(start, end) if end > start else []
    proofs = [[h.hex() for h in merkle.inclusion_proof(nodes, pos, n)] for pos in range(start, end)]
    doc = {"entry": entry, "from": start, "positions": list(range(start, end)), "list_inclusion": proofs}
    return doc, leaves, n


# -- checked offline ------------------------------------------------------------------------


def _exact(doc: Any, keys: frozenset[str], part: str, zh: str, en: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.keys() != keys:
        raise CheckFailed(part, f"{zh}已损坏（字段不对）", f"{en} is damaged (its fields are wrong)",
                          f"must be an object with exactly the keys {sorted(keys)}")
    return doc


def check_entry(doc: Any, root: bytes, namespace: str, name: str | bytes, part: str,
                zh: str, en: str) -> bytes | None:
    """The value bytes `doc` proves for (namespace, name) under `root`; None if it proves absence."""
    doc = _exact(doc, ENTRY_KEYS, part, zh, en)
    value: bytes | None = None
    try:
        if doc["value"] is not None:
            if not isinstance(doc["value"], str):
                raise ValueError("value must be base64 text or null")
            value = binascii.a2b_base64(doc["value"].encode("ascii"), strict_mode=True)
            codec.decode(value, statemap.VALUE_LIMITS)  # canonical msgpack, or it proves nothing
        proof = statemap.proof_from_json(doc["proof"])
    except (ValueError, UnicodeEncodeError, binascii.Error, InvalidInput) as exc:
        detail = exc.message if isinstance(exc, InvalidInput) else str(exc)
        raise CheckFailed(part, f"{zh}已损坏", f"{en} is damaged", detail) from None
    p = statemap.path(namespace, name)
    if value is not None and proof.leaf is not None and proof.leaf.path != p:
        raise CheckFailed(part, f"{zh}是另一个条目（例如另一个密钥的条目），不是所需的那个",
                          f"{en} is the entry of another name (e.g. another key's entry), not the one needed",
                          f"the proof's leaf is at another path than the {namespace} entry's")
    if not statemap.verify(root, p, value, proof):
        raise CheckFailed(part, f"{zh}与检查点的状态根不符（证明被改动，或属于另一个检查点）",
                          f"{en} does not match the checkpoint's state root (the proof was altered, or it is "
                          "from another checkpoint)", f"the {namespace} entry's proof does not lead to the state root")
    return value


@dataclass(frozen=True)
class ListShown:
    n: int
    start: int
    count: int

    @property
    def complete(self) -> bool:
        return self.start == 0 and self.count == self.n


def check_list(doc: Any, root: bytes, namespace: str, name: str | bytes, leaves: list[int],
               zh: str, en: str) -> ListShown:
    """Check that `doc` proves `leaves` (in order) at consecutive positions of the list
    (namespace, name) in the state under `root`."""
    doc = _exact(doc, LIST_KEYS, "list", zh, en)
    value = check_entry(doc["entry"], root, namespace, name, "list", zh, en)
    n, list_root = 0, bytes(32)
    if value is not None:
        try:
            n, list_root = statemap.parse_list_value(value)
        except InvalidInput as exc:
            raise CheckFailed("list", f"{zh}的条目不是记录列表", f"{en}'s entry is not a record list",
                              exc.message) from None
    start, positions, proofs = doc["from"], doc["positions"], doc["list_inclusion"]
    if type(start) is not int or not 0 <= start <= n:
        raise CheckFailed("list", f"{zh}的起点超出列表", f"{en} starts outside the list",
                          f"from must be an int in [0, {n}]")
    if (not isinstance(positions, list) or not all(type(x) is int for x in positions)
            or positions != list(range(start, start + len(leaves))) or start + len(leaves) > n):
        raise CheckFailed("list", f"{zh}的位置不连续，或与记录数不符（有记录被略去）",
                          f"{en}'s positions skip one or do not match its records (a record was left out)",
                          f"positions must be {start}, {start + 1}, ... one per record, within n = {n}")
    if any(b <= a for a, b in zip(leaves, leaves[1:])):
        raise CheckFailed("list", f"{zh}的记录没有按日志顺序排列", f"{en}'s records are not in log order",
                          "leaf indexes must strictly increase")
    if not isinstance(proofs, list) or len(proofs) != len(leaves):
        raise CheckFailed("list", f"{zh}的列表证明数与记录数不符", f"{en} has not one list proof per record",
                          "list_inclusion must hold one proof per position")
    for pos, leaf, proof_doc in zip(positions, leaves, proofs):
        proof = hash_list(proof_doc, "list", f"{zh}的列表证明", f"{en}'s list proof")
        if not merkle.verify_inclusion(statemap.list_leaf_hash(leaf), pos, n, proof, list_root):
            raise CheckFailed("list", f"{zh}第 {pos} 位的证明不成立（记录被替换，或证明被改动）",
                              f"{en}'s proof for position {pos} fails (a record was swapped, or the proof altered)",
                              f"list_inclusion does not prove leaf {leaf} at position {pos}")
    return ListShown(n, start, len(leaves))


# -- who could sign ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyEntry:
    pubkey: crypto.PublicKey
    dept: str
    roles: tuple[str, ...]
    from_leaf: int
    until: int | None


def _key_bad(detail: str) -> CheckFailed:
    return CheckFailed("key", "签名密钥的条目已损坏", "the signing key's entry is damaged", detail)


def parse_key(value: bytes) -> KeyEntry:
    m = codec.decode(value, statemap.VALUE_LIMITS)
    if not isinstance(m, dict) or m.keys() != KEY_KEYS:
        raise _key_bad(f"a key entry has exactly the keys {sorted(KEY_KEYS)}")
    roles, until = m["roles"], m["until"]
    if (not isinstance(m["pubkey"], bytes) or not isinstance(m["dept"], str)
            or not isinstance(roles, list) or not 1 <= len(roles) <= ROLES_MAX
            or not all(isinstance(r, str) for r in roles) or type(m["from"]) is not int or m["from"] < 0
            or not (until is None or (type(until) is int and until >= m["from"]))):
        raise _key_bad("pubkey bin, dept str, roles [str], from int >= 0, until int >= from or nil")
    try:
        pubkey = crypto.load_public_key(m["pubkey"])
    except InvalidInput as exc:
        raise _key_bad(exc.message) from None
    return KeyEntry(pubkey, m["dept"], tuple(roles), m["from"], until)


def check_signed(env: Envelope, leaf: int, key: KeyEntry, validators: frozenset[bytes], zh: str,
                 en: str) -> None:
    """The record at `leaf` was signed by `key` while it could sign records of its type;
    a `gov.*` record by a key of `validators`, the set certifying its block
    (docs/protocol.md section 13)."""
    rec = env.record
    if key.pubkey.key_id != rec.key:
        raise CheckFailed("key", f"{zh}的签名密钥条目属于另一个密钥", f"{en}'s key entry is another key's",
                          f"key_id(pubkey) is {key.pubkey.key_id}, the record names {rec.key}")
    if leaf < key.from_leaf or (key.until is not None and leaf >= key.until):
        raise CheckFailed("key", f"{zh}签名时该密钥不可用（尚未加入或已被吊销）",
                          f"{en} was signed when its key could not sign (not yet added, or revoked)",
                          f"leaf {leaf} is outside the key's [{key.from_leaf}, {key.until})")
    if rec.type.startswith(GOVERNANCE_PREFIX) and key.pubkey.raw not in validators:
        raise CheckFailed("key", f"{zh}是治理记录，但签名者不是验证节点",
                          f"{en} is a governance record not signed by a validator",
                          f"{rec.type} must be signed by a validator of the set certifying its block")
    if not any(role_allows(role, rec.type) for role in key.roles):
        raise CheckFailed("key", f"{zh}的签名密钥无权签署这类记录",
                          f"{en}'s signing key is not allowed to sign this type of record",
                          f"roles {list(key.roles)} do not allow {rec.type}")
    if not key.pubkey.verify(env.sig, RECORD_SIGN_PREFIX + env.record_bytes):
        raise CheckFailed("key", f"{zh}的签名与其内容不符（记录或签名被改动）",
                          f"{en}'s signature does not match its bytes (the record or the signature was altered)",
                          "record signature does not verify under the key entry's pubkey")
