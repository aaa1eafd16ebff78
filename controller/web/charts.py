"""Timelines drawn on the server as inline SVG: no script, no CDN, readable with JavaScript off.

A chart is a frame with a y axis scaled to its data, a time axis, lines (a series, broken where a
value is missing), dots, a shaded interval, a dashed reference line, and vertical marks for
events (decisions, retrains), each with a ``<title>`` that the browser shows on hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import TypeVar

from markupsafe import Markup

Point = tuple[datetime, float | None]
T = TypeVar("T")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[Point]
    css: str
    dots: bool = True
    line: bool = True


@dataclass(frozen=True)
class Band:
    """An interval around a series: ``(time, low, high)``."""

    label: str
    points: Sequence[tuple[datetime, float | None, float | None]]
    css: str


@dataclass(frozen=True)
class Mark:
    """A vertical line at an event."""

    at: datetime
    label: str
    css: str


@dataclass(frozen=True)
class Chart:
    title: str
    series: Sequence[Series]
    band: Band | None = None
    marks: Sequence[Mark] = ()
    reference: tuple[str, float] | None = None
    """A dashed horizontal line: ``(label, value)``, e.g. the baseline."""
    y_format: Callable[[float], str] = field(default=lambda v: f"{v:.3g}")
    y_floor: float | None = None
    width: int = 980
    height: int = 190


LEFT, RIGHT, TOP, BOTTOM = 58, 12, 22, 26


def render(chart: Chart) -> Markup:
    """The chart as an ``<svg>`` element (an empty frame saying so when there is nothing to draw)."""
    times = [t for s in chart.series for t, v in s.points if v is not None]
    values = [v for s in chart.series for _, v in s.points if v is not None and math.isfinite(v)]
    if chart.band is not None:
        for t, lo, hi in chart.band.points:
            values += [v for v in (lo, hi) if v is not None and math.isfinite(v)]
            times.append(t)
    if chart.reference is not None:
        values.append(chart.reference[1])
    w, h = chart.width, chart.height
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(chart.title)}">',
        f'<text class="chart-title" x="{LEFT}" y="14">{escape(chart.title)}</text>',
    ]
    if not times or not values:
        parts.append(f'<text class="chart-empty" x="{w / 2:.0f}" y="{h / 2:.0f}">no data yet</text></svg>')
        return Markup("".join(parts))
    t0, t1 = min(times).timestamp(), max(times).timestamp()
    if t1 - t0 < 1:
        t0, t1 = t0 - 3600, t1 + 3600
    lo, hi = min(values), max(values)
    if chart.y_floor is not None:
        lo = min(lo, chart.y_floor)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    if chart.y_floor is not None:
        lo = max(lo, chart.y_floor)
    plot_w, plot_h = w - LEFT - RIGHT, h - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (t.timestamp() - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * plot_h

    parts.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>')
    for i in range(4):
        v = lo + (hi - lo) * i / 3
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="tick" x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(chart.y_format(v))}</text>'
        )
    for i in range(4):
        at = datetime.fromtimestamp(t0 + (t1 - t0) * i / 3, UTC)
        anchor = "start" if i == 0 else "end" if i == 3 else "middle"
        parts.append(
            f'<text class="tick" x="{x(at):.1f}" y="{h - 8}" text-anchor="{anchor}">{at:%Y-%m-%d %H:%M}</text>'
        )
    if chart.band is not None:
        ends: list[tuple[datetime, tuple[float, float] | None]] = []
        for t, a, b in chart.band.points:
            low, high = _finite(a), _finite(b)
            ends.append((t, None if low is None or high is None else (low, high)))
        for run in _runs(ends):
            upper = " ".join(f"{x(t):.1f},{y(b):.1f}" for t, (_, b) in run)
            lower = " ".join(f"{x(t):.1f},{y(a):.1f}" for t, (a, _) in reversed(run))
            parts.append(
                f'<polygon class="band {chart.band.css}" points="{upper} {lower}">'
                f"<title>{escape(chart.band.label)}</title></polygon>"
            )
    if chart.reference is not None:
        label, value = chart.reference
        parts.append(
            f'<line class="reference" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}">'
            f"<title>{escape(label)} {escape(chart.y_format(value))}</title></line>"
        )
    for mark in chart.marks:
        mx = x(mark.at)
        parts.append(
            f'<line class="mark {mark.css}" x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" y2="{TOP + plot_h}">'
            f"<title>{escape(mark.label)}</title></line>"
        )
    for s in chart.series:
        present = [(t, v) for t, v in s.points if v is not None and math.isfinite(v)]
        d = " ".join(
            ("M" if i == 0 else "L") + f"{x(t):.1f},{y(v):.1f}"
            for run in _runs([(t, _finite(v)) for t, v in s.points])
            for i, (t, v) in enumerate(run)
        )
        if d and s.line:
            parts.append(f'<path class="line {s.css}" d="{d}"><title>{escape(s.label)}</title></path>')
        if s.dots:
            parts.extend(
                f'<circle class="dot {s.css}" cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.2">'
                f"<title>{escape(s.label)} {escape(chart.y_format(v))} at {t:%Y-%m-%d %H:%M}</title></circle>"
                for t, v in present
            )
    parts.append(_legend(chart, w))
    parts.append("</svg>")
    return Markup("".join(parts))


def _runs(points: Sequence[tuple[datetime, T | None]]) -> list[list[tuple[datetime, T]]]:
    """The points split where a value is missing, so a line or a band never bridges a gap."""
    runs: list[list[tuple[datetime, T]]] = [[]]
    for t, v in points:
        if v is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((t, v))
    return [r for r in runs if r]


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _legend(chart: Chart, width: int) -> str:
    items = [(s.label, f"line {s.css}") for s in chart.series]
    if chart.band is not None:
        items.append((chart.band.label, f"band {chart.band.css}"))
    items += sorted({(m.css.replace("mark-", ""), f"mark {m.css}") for m in chart.marks})
    out, at = [], width - RIGHT
    for label, css in reversed(items):
        at -= 8 + 7 * len(label) + 14
        out.append(
            f'<rect class="swatch {css}" x="{at}" y="6" width="10" height="10"/>'
            f'<text class="legend" x="{at + 14}" y="15">{escape(label)}</text>'
        )
    return "".join(out)
