"""An asset's history as inline SVG, drawn on the server (portal layer).

Two panels over the same time axis: records per snapshot, and bytes (the data size of each
version, and what the asset's backups have stored so far, i.e. the running sum of the bytes
each backup added). No script and no plotting library: plain SVG elements whose colours
come from the portal's stylesheet, one point per snapshot with a tooltip.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from .web import human_bytes, when

WIDTH, PANEL_H = 900, 150
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 26, 34


@dataclass(frozen=True)
class Point:
    time: dt.datetime
    snapshot: str                 # short id
    records: int
    data_bytes: int               # the version's logical size
    stored_bytes: int | None      # running sum of bytes added by this asset's backups


def nice_ticks(top: float, count: int = 4, binary: bool = False) -> list[float]:
    """0 and a few round values (1, 2, 2.5 or 5 times a power of ten) up to at least `top`;
    `binary`: round in KiB, MiB, ... (so that byte labels read 25 KiB, not 24.4 KiB)."""
    if top <= 0:
        return [0.0, 1.0]
    unit = 1.0
    if binary:
        while top / unit >= 1024:
            unit *= 1024
        return [t * unit for t in nice_ticks(top / unit, count)]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _x_positions(points: list[Point]) -> list[float]:
    inner = WIDTH - LEFT - RIGHT
    t0, t1 = points[0].time.timestamp(), points[-1].time.timestamp()
    if t1 <= t0:
        return [LEFT + inner / 2] * len(points)
    return [LEFT + inner * (p.time.timestamp() - t0) / (t1 - t0) for p in points]


def _time_label(t: dt.datetime, span: float) -> str:
    t = t.astimezone(dt.timezone.utc)
    if span > 3 * 86400:
        return t.strftime("%Y-%m-%d")
    return t.strftime("%m-%d %H:%M") if span > 3600 else t.strftime("%H:%M:%S")


def _panel(y0: float, title: str, series: list[tuple[str, str, list[float | None], list[str]]],
           xs: list[float], fmt, points: list[Point], binary: bool = False) -> list[str]:
    inner_h = PANEL_H - TOP - BOTTOM
    top = max((v for _, _, vals, _ in series for v in vals if v is not None), default=0.0)
    ticks = nice_ticks(top, binary=binary)
    ymax = ticks[-1] or 1.0

    def y(v: float) -> float:
        return y0 + TOP + inner_h * (1 - v / ymax)

    out = [f'<text class="plot-title" x="{LEFT}" y="{y0 + 16}">{escape(title)}</text>']
    for t in ticks:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 8}" y="{y(t) + 4:.1f}" text-anchor="end">{escape(fmt(t))}</text>')
    legend_x = WIDTH - RIGHT
    for cls, label, vals, tips in reversed(series):
        out.append(f'<text class="legend {cls}" x="{legend_x}" y="{y0 + 16}" text-anchor="end">{escape(label)}</text>')
        legend_x -= 7 * len(label) + 28
        pts = [(x, y(v)) for x, v in zip(xs, vals) if v is not None]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in pts)
            out.append(f'<polyline class="line {cls}" points="{path}"/>')
        for (x, v, tip, p) in zip(xs, vals, tips, points):
            if v is None:
                continue
            out.append(f'<circle class="pt {cls}" data-snapshot="{escape(p.snapshot)}" cx="{x:.1f}" '
                       f'cy="{y(v):.1f}" r="4"><title>{escape(tip)}</title></circle>')
    return out


def _axis_bytes(v: float) -> str:
    """`25 KiB`, `1.5 MiB`: an axis label, without needless decimals."""
    text = human_bytes(v)
    return text.replace(".0 ", " ")


def history_svg(points: list[Point]) -> Markup:
    if not points:
        return Markup("")
    points = sorted(points, key=lambda p: p.time)
    xs = _x_positions(points)
    height = 2 * PANEL_H + 8
    span = points[-1].time.timestamp() - points[0].time.timestamp()
    parts = [f'<svg class="plot" viewBox="0 0 {WIDTH} {height}" '
             f'role="img" aria-label="records and bytes of {len(points)} snapshots over time" '
             f'xmlns="http://www.w3.org/2000/svg">']
    rec_tips = [f"{p.snapshot} · {when(p.time)} · {p.records:,} records" for p in points]
    parts += _panel(0, "Records", [("records", "records", [float(p.records) for p in points], rec_tips)],
                    xs, lambda v: f"{v:,.0f}", points)
    data_tips = [f"{p.snapshot} · {when(p.time)} · data size {human_bytes(p.data_bytes)}" for p in points]
    stored_tips = [f"{p.snapshot} · {when(p.time)} · stored so far {human_bytes(p.stored_bytes)}" for p in points]
    parts += _panel(PANEL_H + 8, "Bytes",
                    [("data", "data size", [float(p.data_bytes) for p in points], data_tips),
                     ("stored", "stored (sum of bytes added)",
                      [None if p.stored_bytes is None else float(p.stored_bytes) for p in points], stored_tips)],
                    xs, _axis_bytes, points, binary=True)
    base = height - 10
    labelled: list[float] = []
    order = list(range(len(points)))
    for i in [order[0], order[-1]] + order[1:-1]:          # the ends first, then what fits between
        x = xs[i]
        if labelled and min(abs(x - lx) for lx in labelled) < 120:
            continue
        labelled.append(x)
        anchor = "start" if x < LEFT + 60 else "end" if x > WIDTH - RIGHT - 60 else "middle"
        parts.append(f'<text class="tick" x="{x:.1f}" y="{base}" text-anchor="{anchor}">'
                     f'{escape(_time_label(points[i].time, span))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
