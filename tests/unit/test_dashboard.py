"""The Grafana dashboard (deploy/grafana/ledgernode.json) asks only for series a node's
/metrics renders, and only for events the node counts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.unit.test_node import Solo, running, solo, submit_and_commit  # noqa: F401 - solo is a fixture

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "ledgernode.json"
NAME = re.compile(r"\b(ledgernode_[a-z0-9_]+)\b")
EVENT = re.compile(r'event="([a-z_]+)"')
COUNTED = re.compile(r'count\("([a-z_]+)"')  # the node's event counters, as the source names them


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def exprs(dash: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template queries."""
    out = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    out += [v["query"]["query"] if isinstance(v["query"], dict) else v["query"] for v in dash["templating"]["list"]]
    return out


def rendered_names(text: str) -> set[str]:
    """The sample names a /metrics text offers: every declared series, and a histogram's
    _bucket, _sum and _count."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    dash = dashboard()
    assert dash["schemaVersion"] >= 36
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for p in panels:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"] and all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in p["targets"]), p["title"]
    assert any("histogram_quantile" in e for e in exprs(dash))


async def test_every_series_the_dashboard_uses_is_rendered(solo: Solo) -> None:  # noqa: F811 - the fixture
    async with running(solo.config()) as node:
        await submit_and_commit(node, [solo.record()])
        text = node.metrics()
    offered = rendered_names(text)
    used = {name for e in exprs(dashboard()) for name in NAME.findall(e)}
    assert {"ledgernode_height", "ledgernode_submit_to_commit_seconds_bucket", "ledgernode_api_request_seconds_bucket",
            "ledgernode_block_records_bucket", "ledgernode_block_bytes_sum", "ledgernode_peer_up",
            "ledgernode_ready", "ledgernode_rejected_total"} <= used
    assert used - offered == set()


def test_every_event_the_dashboard_uses_is_counted_by_the_node() -> None:
    source = "".join(p.read_text(encoding="utf-8") for p in (REPO / "ledgernode").rglob("*.py"))
    counted = set(COUNTED.findall(source))
    used = {event for e in exprs(dashboard()) for event in EVENT.findall(e)}
    assert {"blocks_committed", "records_committed", "round_changes"} <= used
    assert used - counted == set()
