"""Line charts as SVG, with no plotting library: `bench --plot` (throughput and latency
over time) and scripts/plot_load.py (throughput and p99 against offered load).

A chart has one x axis (from 0) and two y axes: the left series' scale on the left, the right
series' on the right, each axis in its series' colour, ticks at 1, 2 or 5 times a power
of ten. A point whose y is None is a gap in its line (no sample there). `document`
stacks charts into one SVG file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 760, 380  # one chart, in SVG user units (px)
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 70, 50, 60
TICKS = 5  # about this many ticks on each axis
FONT = "font-family='sans-serif' font-size='12'"


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: tuple[tuple[float, float | None], ...]  # (x, y); y None: no sample
    dashed: bool = False


@dataclass(frozen=True)
class Chart:
    title: str
    x_label: str
    left: Series
    right: Series
    left_label: str
    right_label: str
    marks: tuple[tuple[float, str], ...] = ()  # vertical lines at x, with a caption


def ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """Round values from at most `low` to at least `high`, about `count` steps apart."""
    if not high > low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    out = [first]
    while out[-1] < high - step * 1e-9:
        out.append(first + len(out) * step)
    return [round(v, 12) for v in out]


def _label(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:g}"


class _Frame:
    """Maps data to the plot area of one chart drawn at `top`."""

    def __init__(self, top: float, xs: list[float], left: list[float], right: list[float]) -> None:
        self.top = top
        self.x_ticks = ticks(min([0.0, *xs]), max(xs, default=1.0))  # times and loads start at 0
        self.l_ticks = ticks(0.0, max(left, default=1.0))  # rates and latencies start at 0
        self.r_ticks = ticks(0.0, max(right, default=1.0))
        self.w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        self.h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(self, v: float) -> float:
        lo, hi = self.x_ticks[0], self.x_ticks[-1]
        return MARGIN_LEFT + (v - lo) / (hi - lo) * self.w

    def y(self, v: float, scale: list[float]) -> float:
        lo, hi = scale[0], scale[-1]
        return self.top + MARGIN_TOP + self.h - (v - lo) / (hi - lo) * self.h


def _line(frame: _Frame, series: Series, scale: list[float]) -> list[str]:
    """One polyline per run of points with samples, and a dot on each point."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in series.points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append((frame.x(x), frame.y(y, scale)))
    dash = " stroke-dasharray='6 4'" if series.dashed else ""
    out = [f"<g class='series' data-label={quoteattr(series.label)}>"]
    for run in runs:
        if len(run) > 1:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            out.append(f"<polyline fill='none' stroke='{series.color}' stroke-width='2'{dash} points='{pts}'/>")
        out += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{series.color}'/>" for x, y in run]
    return out + ["</g>"]


def _axes(f: _Frame, c: Chart) -> list[str]:
    top, bottom = f.top + MARGIN_TOP, f.top + MARGIN_TOP + f.h
    left, right = MARGIN_LEFT, MARGIN_LEFT + f.w
    out = [f"<rect x='{left}' y='{top}' width='{f.w}' height='{f.h}' fill='none' stroke='#888'/>"]
    for v in f.x_ticks:
        x = f.x(v)
        out.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{bottom}' stroke='#eee'/>")
        out.append(f"<text x='{x:.1f}' y='{bottom + 16}' text-anchor='middle' {FONT}>{_label(v)}</text>")
    for v in f.l_ticks:
        y = f.y(v, f.l_ticks)
        out.append(f"<line x1='{left}' y1='{y:.1f}' x2='{right}' y2='{y:.1f}' stroke='#eee'/>")
        out.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='{c.left.color}' {FONT}>"
                   f"{_label(v)}</text>")
    for v in f.r_ticks:
        y = f.y(v, f.r_ticks)
        out.append(f"<text x='{right + 6}' y='{y + 4:.1f}' fill='{c.right.color}' {FONT}>{_label(v)}</text>")
    mid = top + f.h / 2
    out += [
        f"<text x='{WIDTH / 2}' y='{f.top + 22}' text-anchor='middle' font-family='sans-serif' font-size='15'>"
        f"{escape(c.title)}</text>",
        f"<text x='{WIDTH / 2}' y='{bottom + 40}' text-anchor='middle' {FONT}>{escape(c.x_label)}</text>",
        f"<text x='16' y='{mid}' text-anchor='middle' fill='{c.left.color}' transform='rotate(-90 16 {mid})' "
        f"{FONT}>{escape(c.left_label)}</text>",
        f"<text x='{WIDTH - 16}' y='{mid}' text-anchor='middle' fill='{c.right.color}' "
        f"transform='rotate(90 {WIDTH - 16} {mid})' {FONT}>{escape(c.right_label)}</text>",
    ]
    return out


def _legend(f: _Frame, c: Chart) -> list[str]:
    width = 48 + 7 * max(len(c.left.label), len(c.right.label))  # about 7 units a character
    out = [f"<rect x='{MARGIN_LEFT + 4}' y='{f.top + MARGIN_TOP + 4}' width='{width}' height='36' "
           "fill='white' fill-opacity='0.8'/>"]
    for k, s in enumerate((c.left, c.right)):
        y = f.top + MARGIN_TOP + 16 + 16 * k
        dash = " stroke-dasharray='6 4'" if s.dashed else ""
        out.append(f"<line x1='{MARGIN_LEFT + 10}' y1='{y - 4}' x2='{MARGIN_LEFT + 34}' y2='{y - 4}' "
                   f"stroke='{s.color}' stroke-width='2'{dash}/>")
        out.append(f"<text x='{MARGIN_LEFT + 40}' y='{y}' {FONT}>{escape(s.label)}</text>")
    return out


def chart_elements(c: Chart, top: float = 0.0) -> list[str]:
    """The SVG elements of one chart drawn `top` units down the page."""
    xs = [x for s in (c.left, c.right) for x, _ in s.points] + [x for x, _ in c.marks]
    f = _Frame(top, xs, [y for _, y in c.left.points if y is not None],
               [y for _, y in c.right.points if y is not None])
    out = [f"<g class='chart' data-title={quoteattr(c.title)}>", *_axes(f, c)]
    for x, caption in c.marks:
        px = f.x(x)
        out.append(f"<line x1='{px:.1f}' y1='{top + MARGIN_TOP}' x2='{px:.1f}' y2='{top + MARGIN_TOP + f.h}' "
                   "stroke='#555' stroke-dasharray='2 3'/>")
        out.append(f"<text x='{px + 4:.1f}' y='{top + MARGIN_TOP + f.h - 6}' fill='#555' {FONT}>"
                   f"{escape(caption)}</text>")
    out += _line(f, c.left, f.l_ticks) + _line(f, c.right, f.r_ticks) + _legend(f, c)
    return out + ["</g>"]


def document(charts: list[Chart]) -> str:
    """One SVG file holding `charts` one above the other."""
    height = HEIGHT * max(1, len(charts))
    body = [e for k, c in enumerate(charts) for e in chart_elements(c, k * HEIGHT)]
    return "\n".join([
        "<?xml version='1.0' encoding='UTF-8'?>",
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' viewBox='0 0 {WIDTH} {height}'>",
        f"<rect width='{WIDTH}' height='{height}' fill='white'/>",
        *body, "</svg>", ""])
