"""Synthetic blocks for storage tests, and the child process of the SIGKILL test.

Run as a script: `python crash_writer.py DIR [BLOCKS] [LEAVES_PER_BLOCK]` opens
the LevelDB store in DIR, resumes after its head and commits synthetic blocks,
printing `commit H` just before `Store.commit` and the bare height `H` (and
flushing) only after it has returned. Every block's contents are a pure function of its height, so the
parent can tell exactly what must (and must not) be on disk.

Imported (by test_storage.py): `synth_envelope` and `synth_block` build
unsigned but canonically encoded envelopes and a `CheckedBlock` + `QC` that
satisfy `Store.commit`'s assertions without the cost of signing.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ledgernode import codec, ledgermap
from ledgernode.blocks import QC, Block, CheckedBlock, Header
from ledgernode.records import Envelope, Record, record_id_of

CHAIN = "gov-synth"
T0 = 1_767_225_600_000
KEY_ID = "00" * 8
SIG = bytes(64)
VALSET = bytes(32)
CRASH_LEAVES = 400  # leaves per block in the crash child


def subject_of(leaf: int) -> str:
    return f"subject-{leaf % 7}"


_TEMPLATES: dict[str, tuple[bytes, bytes, bytes, bytes]] = {}
_NONCE_SLOT = b"\xc4\x10" + b"\xee" * 16  # bin8 of 16 bytes, a placeholder nonce


def _record(subject: str, nonce: bytes) -> Record:
    return Record(1, CHAIN, "trace.event", subject, {"activity": "step"}, (), T0, nonce, KEY_ID)


def synth_envelope(leaf: int, subject: str | None = None) -> Envelope:
    """A distinct, canonically encoded (unsigned) envelope for leaf number `leaf`.

    Only the nonce (the leaf number) differs between the records of one subject,
    so the record and envelope bytes are spliced from templates encoded once
    per subject (test_storage checks they equal codec.encode's output).
    """
    subject = subject_of(leaf) if subject is None else subject
    t = _TEMPLATES.get(subject)
    if t is None:
        rec = codec.encode(_record(subject, _NONCE_SLOT[2:]).to_map())
        env = codec.encode([rec, SIG])
        at, start = rec.index(_NONCE_SLOT) + 2, env.index(rec)
        t = _TEMPLATES[subject] = (rec[:at], rec[at + 16:], env[:start], env[start + len(rec):])
    nonce = leaf.to_bytes(16, "big")
    record_bytes = t[0] + nonce + t[1]
    raw = t[2] + record_bytes + t[3]
    return Envelope(_record(subject, nonce), record_bytes, SIG, raw, record_id_of(record_bytes))


def synth_block(
    store: Any,
    envs: list[Envelope],
    facts: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> tuple[CheckedBlock, QC]:
    """A block of `envs` on the store's head, as `build_block` would lay it out."""
    parent = store.head()
    frontier = store.frontier.copy()
    nodes: list[tuple[int, int, bytes]] = []
    for env in envs:
        nodes.extend(frontier.append(env.leaf_hash))
    height = 1 if parent is None else parent.height + 1
    appends = [a for offset, env in enumerate(envs)
               for a in ledgermap.record_appends(store.log_size + offset, env.record.subject, env.record.refs)]
    change = ledgermap.block_change(store.map_at(parent.state if parent else bytes(32)), appends)
    header = Header(
        CHAIN, height, T0 + height, bytes(32) if parent is None else parent.block_hash, 0,
        store.log_size, frontier.size, frontier.root(), VALSET, change.root,
    )
    header = replace(header, raw=header.encode())
    checked = CheckedBlock(Block(header, tuple(envs)), nodes, dict(facts or {}), frontier, change)
    return checked, QC(height, 0, header.block_hash, ((0, SIG),))


def crash_fact(height: int) -> tuple[tuple[str, str], dict[str, Any]]:
    return ("cert", f"crash-{height}"), {"issuer": "justice", "status": "valid", "record": f"{height:064x}"}


def crash_block_envelopes(height: int, leaves_per_block: int) -> list[Envelope]:
    """Block `height` of the crash child holds leaves [(h-1)*L, h*L)."""
    start = (height - 1) * leaves_per_block
    return [synth_envelope(i) for i in range(start, start + leaves_per_block)]


def main(argv: list[str]) -> int:
    from ledgernode.storage import Store

    directory = Path(argv[1])
    blocks = int(argv[2]) if len(argv) > 2 else 1_000_000
    per_block = int(argv[3]) if len(argv) > 3 else CRASH_LEAVES
    store = Store.open(directory)
    try:
        assert store.log_size == store.height * per_block
        print(f"start {store.height}", flush=True)
        for _ in range(blocks):
            height = store.height + 1
            key, value = crash_fact(height)
            checked, qc = synth_block(store, crash_block_envelopes(height, per_block), {key: value})
            print(f"commit {height}", flush=True)  # about to write: lets the parent aim a kill
            store.commit(checked, qc)
            print(height, flush=True)  # acknowledged: commit returned
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
