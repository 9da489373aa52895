"""The checkers must catch deliberately broken replicas: a checker that cannot fail is a defect."""

from __future__ import annotations

from .mutants import MUTANTS
from .scenarios import run_seed
from .test_scenarios import commit_then_primary_dies


def _caught(seeds: range, **kw: object) -> list[tuple[int, list[str]]]:
    caught = []
    for seed in seeds:
        _, result = run_seed(seed, **kw)
        safety = [k for k, v in result.items() if v and k != "K5"]
        if safety:
            caught.append((seed, safety))
    return caught


def test_quorum_minus_one_is_caught() -> None:
    assert _caught(range(3), replica_class=MUTANTS["commit_at_q_minus_1"])


def test_round_change_without_certificate_is_caught() -> None:
    # Random runs expose it only rarely (2 of 300 seeds once); this scenario always does.
    result = commit_then_primary_dies(MUTANTS["round_change_without_cert"])
    assert result["K1"], "a forgetful round change must let a second block commit at one height"


def test_no_persistence_before_send_is_caught() -> None:
    caught = _caught(range(10), mutation="no_persist")
    assert any("K4" in kinds for _, kinds in caught)


def test_a_skipped_map_update_is_caught() -> None:
    caught = _caught(range(3), mutation="skips_map_update")
    assert len(caught) == 3 and all("K6" in kinds for _, kinds in caught), caught


def test_correct_replica_passes_the_same_runs() -> None:
    assert not _caught(range(3))
    assert commit_then_primary_dies()["K1"] == []
