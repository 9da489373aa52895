"""SVG line charts (ledgernode.charts): well-formed, both series drawn, gaps kept, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ledgernode.charts import Chart, Series, document, ticks

SVG = "{http://www.w3.org/2000/svg}"


def test_ticks_are_round_and_cover_the_range() -> None:
    assert ticks(0, 93) == [0, 20, 40, 60, 80, 100]
    assert ticks(0, 4700) == [0, 1000, 2000, 3000, 4000, 5000]
    assert ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert ticks(3, 3) == [3, 3.2, 3.4, 3.6, 3.8, 4.0]  # an empty range still has an axis
    for lo, hi in ((0.3, 0.31), (2.2, 87.3), (0, 1e6 + 1)):
        t = ticks(lo, hi)
        assert t[0] <= lo and t[-1] >= hi and 2 <= len(t) <= 12, (lo, hi, t)


def test_a_document_of_two_charts_parses_and_holds_both_series_of_each() -> None:
    left = Series("records/s", "#1f77b4", tuple((float(t), 100.0 * t) for t in range(10)))
    right = Series("p50 <ms> & more", "#d62728", ((0.0, None), (1.0, 5.0), (2.0, 7.0), (3.0, None), (4.0, 2.0),
                                                  (5.0, 3.0), (6.0, 4.0)), dashed=True)
    chart = Chart('bench "batch"', "seconds", left, right, "throughput", "latency", ((2.5, "window opens"),))
    root = ET.fromstring(document([chart, chart]).encode())
    assert root.tag == f"{SVG}svg" and root.get("height") == "760"
    charts = root.findall(f"{SVG}g[@class='chart']")
    assert [c.get("data-title") for c in charts] == ['bench "batch"'] * 2
    for c in charts:
        series = {g.get("data-label"): g for g in c.findall(f"{SVG}g[@class='series']")}
        assert set(series) == {"records/s", "p50 <ms> & more"}
        assert len(series["records/s"].findall(f"{SVG}polyline")) == 1
        assert len(series["records/s"].findall(f"{SVG}circle")) == 10
        # the right series has a gap at x=3: two lines, one dot per sample
        assert len(series["p50 <ms> & more"].findall(f"{SVG}polyline")) == 2
        assert len(series["p50 <ms> & more"].findall(f"{SVG}circle")) == 5
        texts = [t.text for t in c.iter(f"{SVG}text")]
        assert "window opens" in texts and "p50 <ms> & more" in texts and "1,000" in texts  # the left axis reaches 900


def test_a_series_higher_on_the_page_has_larger_values() -> None:
    up = Series("up", "#000", ((0.0, 0.0), (1.0, 10.0)))
    root = ET.fromstring(document([Chart("t", "x", up, up, "a", "b")]).encode())
    line = root.find(f".//{SVG}polyline")
    assert line is not None
    (x0, y0), (x1, y1) = [tuple(map(float, p.split(","))) for p in (line.get("points") or "").split()]
    assert x1 > x0 and y1 < y0  # SVG's y grows downwards


def test_a_chart_without_samples_still_draws_its_axes() -> None:
    empty = Series("none yet", "#000", ())
    root = ET.fromstring(document([Chart("t", "x", empty, empty, "a", "b")]).encode())
    assert root.find(f".//{SVG}polyline") is None and root.find(f".//{SVG}rect") is not None
