"""Smoke run of scripts/bench_store.py: its synthetic records are exact, and every phase
runs at a tiny size (the full run is `python scripts/bench_store.py`, minutes)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from ledgernode import codec
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
from tests.fixtures import load_script



def bench() -> ModuleType:
    return load_script("bench_store")


def test_synthetic_envelopes_are_canonical_records_of_the_bench_genesis() -> None:
    b = bench()
    g = b.bench_genesis()
    layout = b.Subjects(200, 30, 5, seed=3)
    gen = b.Envelopes(b.bench_keys()[1].public.key_id, layout.name_chars)
    subjects = [layout.next(i) for i in range(200)]
    for r in range(5):
        assert subjects.count(layout.ten_name(r)) == b.TEN
    for leaf in (0, 7, 199, 2**64 - 1):
        env = gen.make(leaf, subjects[leaf % 200])
        assert env.record_bytes == codec.encode(env.record.to_map())
        assert env.raw == codec.encode([env.record_bytes, b.SIG])
        assert decode_envelope(env.raw, g) == env  # chain, key and body valid; the signature is not checked


def test_phases_at_a_tiny_size(tmp_path: Path) -> None:
    b = bench()
    g = b.bench_genesis()
    store = Store.memory()
    app = b.append_phase(store, 450, 100, subjects=40, ten_subjects=4, seed=1, g=g)
    assert store.log_size == 450 and app["blocks"] == 5 and app["keys"]["p/"] == 450
    q = b.query_phase(store, g, app["layout"], 5, b.random.Random(1))
    assert q["answer_p99_ms"] > 0 and q["entry_p99_ms"] > 0
    paging = b.paging_phase(tmp_path / "paging", 230, 100, 100)
    assert paging["pages"] == paging["pages_valid"] == 3
    assert "records 201-230 of 230" in paging["claims"][-1]


def test_main_prints_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = bench()
    assert b.main(["--records", "300", "--subjects", "20", "--ten-subjects", "3", "--block", "100", "--queries", "5",
                   "--no-paging", "--dir", str(tmp_path / "db")]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["records"] == 300 and figures["ten_subjects"] == 3 and figures["store_bytes_compacted"] > 0
    assert "paging" not in figures
