"""Checkpoints and consistency proofs (docs/verification.md section 2.3): built from a
node's ledger, checked offline.

A checkpoint is a header with its QC and a summary (height, log size and root);
every answer carries one, and two saved checkpoints with a consistency proof
between their log sizes show that the ledger only grew between them
(`python -m ledgernode verify-consistency OLD NEW PROOF`).
"""

from __future__ import annotations

from typing import Any

from ..blocks import Header
from ..codec import b64
from ..errors import InvalidInput, NotFound
from ..genesis import Genesis
from .checks import CHECKPOINT, CheckFailed, Checks, Verdict, Where, plural
from .parse import Unusable, describe
from .epochs import Epochs, check_epochs, epochs_doc
from .proofs import certified, extends
from .reader import LedgerReader

# -- built by a node ----------------------------------------------------------------------


def checkpoint(store: LedgerReader, height: int | None = None) -> dict[str, Any]:
    """Header + QC at `height` (default: the head); NotFound if there is none."""
    height = store.height if height is None else height
    if not 1 <= height <= store.height:
        raise NotFound(f"no block at height {height} (head is {store.height})")
    header = store.load_header(height)
    return {
        "height": height, "header": b64(header.raw), "qc": store.load_qc(height).to_json(),
        "log_size": header.log_size, "log_root": header.log_root.hex(), "epochs": epochs_doc(store, height),
    }


def consistency(store: LedgerReader, old_size: int, new_size: int) -> dict[str, Any]:
    if not 0 <= old_size <= new_size <= store.log_size:
        raise InvalidInput("bad_range", f"need 0 <= from <= to <= {store.log_size} (the log size)")
    return {"from": old_size, "to": new_size,
            "proof": [h.hex() for h in store.consistency_proof(old_size, new_size)]}


# -- checked offline ------------------------------------------------------------------------


def check_checkpoint(cp: Any, genesis: Genesis, where: Where = CHECKPOINT, epochs: Epochs | None = None) -> Header:
    """Header decodes, belongs to this chain, carries a valid QC, and matches its summary."""
    if not isinstance(cp, dict):
        raise CheckFailed("checkpoint", f"{where.zh}缺失或不是对象", f"{where.en} is missing or not an object",
                          "checkpoint must be an object")
    if epochs is None:  # a checkpoint saved on its own carries the changes of the set up to it
        epochs = check_epochs(cp.get("epochs", []), genesis)
    header = certified(cp, genesis, where, epochs)
    summary = {"log_size": header.log_size, "log_root": header.log_root.hex(), "height": header.height}
    if any(name in cp and cp[name] != value for name, value in summary.items()):
        raise CheckFailed("checkpoint", f"{where.zh}的摘要（日志大小、日志根或高度）与其签名的区块头不符（摘要被改动）",
                          f"{where.en}'s summary (log size, log root or height) differs from its signed header "
                          "(the summary was altered)", "checkpoint log_size/log_root/height differ from its header")
    return header


def _require_shapes(old: Any, new: Any, proof_doc: Any) -> None:
    """Unusable (exit 2) for a file that is not a checkpoint / proof at all, e.g. an error answer."""
    for doc, label, marks in ((old, "old checkpoint", ("header", "qc")), (new, "new checkpoint", ("header", "qc")),
                              (proof_doc, "proof", ("proof",))):
        if not isinstance(doc, dict) or "error" in doc or not any(key in doc for key in marks):
            what = describe(doc) if isinstance(doc, dict) else "not a JSON object"
            raise Unusable(f"the {label} file is {what or 'not a ' + label}, not a "
                           f"{'consistency proof' if label == 'proof' else 'checkpoint'} (expected: "
                           "verify-consistency OLD-CHECKPOINT NEW-CHECKPOINT PROOF)")


def _consistent(a: Header, b: Header, proof_doc: dict[str, Any]) -> None:
    if a.log_size > b.log_size:
        raise CheckFailed("order", f"两个检查点的顺序似乎颠倒了：“旧”检查点（高度 {a.height}，日志大小 {a.log_size}）"
                          f"比“新”检查点（高度 {b.height}，日志大小 {b.log_size}）更新。请先给旧的、再给新的",
                          f"the checkpoints look swapped: the old one (height {a.height}, log size {a.log_size}) is "
                          f"newer than the new one (height {b.height}, log size {b.log_size}). Give the older "
                          "checkpoint first: python -m ledgernode verify-consistency OLDER.json NEWER.json PROOF.json "
                          "--genesis genesis.json", f"old log size {a.log_size} > new log size {b.log_size}")
    if proof_doc.get("from") != a.log_size or proof_doc.get("to") != b.log_size:
        raise CheckFailed("proof", "一致性证明不是这两个检查点之间的（日志大小不对应）",
                          "the consistency proof is not for these two checkpoints (its log sizes differ from theirs)",
                          f"the proof is from {proof_doc.get('from')!r} to {proof_doc.get('to')!r}, the checkpoints "
                          f"have log sizes {a.log_size} and {b.log_size}: fetch "
                          f"/v1/proofs/consistency?from={a.log_size}&to={b.log_size}")
    extends(a, b, proof_doc.get("proof"), CheckFailed(
        "proof", "一致性证明不成立：新检查点不是旧检查点的延续（账本被改写、来自不同账本，或证明被改动）",
        "the consistency proof fails: the new checkpoint does not extend the old one (the ledger was rewritten, "
        "they are from different ledgers, or the proof was altered)",
        "consistency proof does not connect the two log roots"))


class _ConsistencyChecks(Checks):
    LABELS = {"consistency": ("新检查点是旧检查点的延续", "the newer checkpoint extends the older one")}
    a: Header  # the old checkpoint's header, once checked
    b: Header  # the new one's

    def __init__(self, old: Any, new: Any, proof_doc: dict[str, Any], genesis: Genesis) -> None:
        super().__init__()
        self.old, self.new, self.proof_doc, self.genesis = old, new, proof_doc, genesis

    def check_consistency(self) -> None:
        self.a = check_checkpoint(self.old, self.genesis, Where("旧检查点", "the old checkpoint"))
        self.b = check_checkpoint(self.new, self.genesis, Where("新检查点", "the new checkpoint"))
        _consistent(self.a, self.b, self.proof_doc)

    def conclude(self) -> dict[str, Any]:
        a, b = self.a, self.b
        return {
            "claim": {"zh": f"账本日志从 {a.log_size} 条记录（高度 {a.height}）增长到 {b.log_size} 条（高度 {b.height}），"
                            "已有记录未被改写",
                      "en": f"log grew from {plural(a.log_size, 'leaf').replace('leafs', 'leaves')} (height "
                            f"{a.height}) to {b.log_size} (height {b.height}) without rewriting",
                      "old_height": a.height, "old_log_size": a.log_size,
                      "new_height": b.height, "new_log_size": b.log_size},
            "old": {"height": a.height, "log_size": a.log_size},
            "new": {"height": b.height, "log_size": b.log_size},
        }


def verify_consistency_files(old: Any, new: Any, proof_doc: Any, genesis: Genesis) -> Verdict:
    """Two saved checkpoints and a consistency proof: the ledger only grew between them.
    Unusable (exit 2) if a file is not a checkpoint or proof at all."""
    _require_shapes(old, new, proof_doc)
    return _ConsistencyChecks(old, new, proof_doc, genesis).run()
