"""Equivocation proofs (docs/security.md section 5): one validator key signed two
different values for one (type, height, round); built by a node, checked offline.

A proof is a JSON object anyone can check against the genesis file alone:

  {"format": "ledgernode-equivocation/1", "chain_id", "validator", "dept",
   "kind": "proposal" | "prepare" | "commit" | "round-change", "height", "round",
   "first": b64, "second": b64, "epochs": [...]}

`first` and `second` are the two consensus messages as sent (`encode_message`,
docs/consensus.md), carrying only what their signatures cover (no attached
block or certificate). The check decodes both, requires the same chain,
sender, kind, height and round as the proof claims, two different signed
values, and a valid signature on each by the key of that validator in the set of
that height: the genesis set, or the one `epochs` leads to (docs/protocol.md
section 12.2; absent means none, as in proofs made before sets could change).
`GET /v1/equivocations` answers `{"equivocations": [proof, ...], "next_after"}`;
`verify FILE --kind equivocation` takes one proof or such a page.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from . import codec
from .auditing.checks import CheckFailed, Verdict, clean, run_checks
from .auditing.epochs import check_epochs
from .auditing.parse import EQUIVOCATION_FORMAT as FORMAT, Unusable
from .consensus.messages import Signed, decode_message, encode_message, signing_bytes
from .errors import InvalidInput
from .genesis import Genesis

PAGE_MAX = 100  # proofs checked from one page file
KIND_NAMES = {"proposal": ("提议", "proposal"), "prepare": ("准备票", "prepare vote"),
              "commit": ("提交票", "commit vote"), "round-change": ("换轮请求", "round change")}


def encode_pair(first: Signed, second: Signed) -> bytes:
    """How a node keeps a case on disk: the two messages as sent."""
    return codec.encode([encode_message(first), encode_message(second)])


def to_json(raw: bytes, genesis: Genesis,
            epochs: Callable[[int], list[dict[str, Any]]] = lambda height: []) -> dict[str, Any]:
    """The proof for a case kept as `encode_pair` bytes; `epochs(height)`: the changes of
    the validator set up to that height (auditing/epochs.py) from the node's store (by
    default none: the genesis set)."""
    first_raw, second_raw = codec.decode(raw)
    first = decode_message(first_raw)
    assert first.kind in KIND_NAMES, "a node keeps only signed messages as evidence"
    sender, height, round_ = first.sender, first.height, first.round  # type: ignore[union-attr]
    changes = epochs(height)
    epoch = check_epochs(changes, genesis).at(height)[1]  # ours, so it holds
    return {
        "format": FORMAT, "chain_id": genesis.chain_id, "validator": sender,
        "dept": epoch.validators[sender].dept, "kind": first.kind, "height": height, "round": round_,
        "first": codec.b64(first_raw), "second": codec.b64(second_raw), "epochs": changes,
    }


def _message(doc: dict[str, Any], which: str) -> Signed:
    value = doc.get(which)
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None:
        raise CheckFailed(which, f"第{'一' if which == 'first' else '二'}条消息缺失或已损坏",
                          f"the {which} message is missing or damaged (not base64)")
    try:
        msg = decode_message(raw)
    except InvalidInput as exc:
        raise CheckFailed(which, "消息无法解码", f"the {which} message does not decode", exc.message) from None
    if msg.kind not in KIND_NAMES:
        raise CheckFailed(which, "这不是签名的共识消息", f"the {which} message is not a signed consensus message",
                          f"kind {msg.kind!r}")
    return msg  # type: ignore[return-value]


def _check_case(doc: Any, genesis: Genesis) -> tuple[Signed, Signed]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckFailed("format", "不是双重签名证明", "not an equivocation proof", f"format must be {FORMAT!r}")
    first, second = _message(doc, "first"), _message(doc, "second")
    claimed = (genesis.chain_id, doc.get("validator"), doc.get("kind"), doc.get("height"), doc.get("round"))
    for which, msg in (("first", first), ("second", second)):
        if (msg.chain, msg.sender, msg.kind, msg.height, msg.round) != claimed:
            raise CheckFailed(which, "消息与证明所述的链、验证节点、类型、高度或轮次不符",
                              f"the {which} message is not for the chain, validator, kind, height and round "
                              "the proof names", f"{(msg.chain, msg.sender, msg.kind, msg.height, msg.round)} "
                              f"!= {claimed}")
    if codec.encode(first.value) == codec.encode(second.value):
        raise CheckFailed("values", "两条消息签的是同一个值：不构成双重签名",
                          "both messages sign the same value: that is no equivocation")
    validators = check_epochs(doc.get("epochs", []), genesis).at(first.height)[1].validators
    if not 0 <= first.sender < len(validators):
        raise CheckFailed("validator", "该高度的验证节点集合中没有该验证节点",
                          "the validator set of that height has no such validator")
    if doc.get("chain_id") != genesis.chain_id or doc.get("dept") != validators[first.sender].dept:
        raise CheckFailed("genesis", "证明所写的链或部门与创世文件不符",
                          "the proof's chain or department is not the genesis file's",
                          f"chain_id {clean(doc.get('chain_id'))}, dept {clean(doc.get('dept'))}")
    key = validators[first.sender].pubkey
    for which, msg in (("first", first), ("second", second)):
        if not key.verify(msg.sig, signing_bytes(msg)):
            raise CheckFailed(which, "该消息的签名不是此验证节点的密钥所签",
                              f"the {which} message's signature is not by this validator's key")
    return first, second


def verify_equivocations(doc: dict[str, Any], genesis: Genesis) -> Verdict:
    """One proof, or a page `{"equivocations": [...]}` of them: each must hold."""
    cases = doc.get("equivocations") if "equivocations" in doc else [doc]
    if not isinstance(cases, list) or not cases:
        raise Unusable("this file holds no equivocation proof (an empty page?)")
    if len(cases) > PAGE_MAX:
        raise Unusable(f"a page holds at most {PAGE_MAX} proofs")
    verdict = Verdict()
    found: list[tuple[Signed, Signed]] = []

    def check(i: int, case: Any) -> None:
        try:
            found.append(_check_case(case, genesis))
        except CheckFailed as exc:
            raise exc.within(f"第 {i + 1} 个证明", f"proof {i + 1} of {len(cases)}") from None

    steps = [(f"proof-{i + 1}", f"第 {i + 1} 个双重签名证明成立", f"equivocation proof {i + 1} holds",
              (lambda i=i, c=c: check(i, c))) for i, c in enumerate(cases)]
    if not run_checks(verdict, steps):
        return verdict
    claims: list[dict[str, Any]] = []
    zh: list[str] = []
    en: list[str] = []
    for (first, _), case in zip(found, cases):
        zh_kind, en_kind = KIND_NAMES[first.kind]
        dept = clean(case["dept"])  # checked against the set of its height above
        zh.append(f"验证节点 {first.sender}（{dept}）在高度 {first.height} 第 {first.round} 轮签了两个不同的{zh_kind}")
        en.append(f"validator {first.sender} ({dept}) signed two different {en_kind}s at height "
                  f"{first.height} round {first.round}")
        claims.append({"validator": first.sender, "dept": dept, "kind": first.kind, "height": first.height,
                       "round": first.round, "zh": zh[-1], "en": en[-1]})
    verdict.facts["claim"] = {"kind": "equivocation", "zh": "；".join(zh), "en": "; ".join(en), "cases": claims}
    return verdict
