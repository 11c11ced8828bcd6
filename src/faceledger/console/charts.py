"""Charts as inline SVG, drawn on the server: no script, nothing fetched, readable without colour.

Each chart carries a ``<title>`` and ``aria-label`` and is paired in the
templates with a table of the same numbers, so a screen reader (or a zoomed
page) loses nothing. Values are escaped; labels come from the ledger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

W, H = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 56
COLOURS = ("#1f5fa8", "#c0561b", "#2e8540", "#7b3fa0", "#8a6d00", "#a8324a")


def _frame(title: str, body: str, height: int = H) -> Markup:
    t = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{t}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{t}</title>'
        f'<text x="{LEFT}" y="18" class="chart-title">{t}</text>{body}</svg>')


def bar_chart(title: str, items: Sequence[tuple[str, float]]) -> Markup:
    """One bar per (label, value); an empty chart says so."""
    if not items:
        return _frame(title, f'<text x="{LEFT}" y="{H // 2}">no data in this period</text>')
    top = max(v for _, v in items) or 1
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / len(items)
    bw = max(4.0, step * 0.7)
    parts = [f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#333"/>',
             f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{_num(top)}</text>',
             f'<text x="{LEFT - 6}" y="{H - BOTTOM}" text-anchor="end">0</text>']
    for i, (label, value) in enumerate(items):
        h = plot_h * value / top
        x = LEFT + i * step + (step - bw) / 2
        y = H - BOTTOM - h
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{colour}">'
                     f'<title>{escape(label)}: {_num(value)}</title></rect>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{_num(value)}</text>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                     f'{escape(label[:18])}</text>')
    return _frame(title, "".join(parts))


def line_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *,
               x_label: str, y_label: str, x_log: bool = False, y_log: bool = False) -> Markup:
    """Lines through (x, y) points; log axes take log10 of positive values (others are dropped)."""
    def tx(v: float) -> float | None:
        return (math.log10(v) if v > 0 else None) if x_log else v

    def ty(v: float) -> float | None:
        return (math.log10(v) if v > 0 else None) if y_log else v

    pts = [[(a, b) for a, b in ((tx(x), ty(y)) for x, y in s) if a is not None and b is not None]
           for _, s in series]
    flat = [p for s in pts for p in s]
    if not flat:
        return _frame(title, f'<text x="{LEFT}" y="{H // 2}">no data</text>')
    x0, x1 = min(p[0] for p in flat), max(p[0] for p in flat)
    y0, y1 = min(p[1] for p in flat), max(p[1] for p in flat)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(v: float) -> float:
        return LEFT + plot_w * (v - x0) / (x1 - x0)

    def sy(v: float) -> float:
        return H - BOTTOM - plot_h * (v - y0) / (y1 - y0)

    def tick(v: float, log: bool) -> str:
        return f"1e{v:.0f}" if log else _num(v)

    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>',
             f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{tick(y1, y_log)}</text>',
             f'<text x="{LEFT - 6}" y="{H - BOTTOM}" text-anchor="end">{tick(y0, y_log)}</text>',
             f'<text x="{LEFT}" y="{H - BOTTOM + 16}" text-anchor="start">{tick(x0, x_log)}</text>',
             f'<text x="{W - RIGHT}" y="{H - BOTTOM + 16}" text-anchor="end">{tick(x1, x_log)}</text>',
             f'<text x="{LEFT + plot_w / 2}" y="{H - 18}" text-anchor="middle">{escape(x_label)}</text>',
             f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
             f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>']
    for i, ((name, _), s) in enumerate(zip(series, pts, strict=True)):
        if not s:
            continue
        colour = COLOURS[i % len(COLOURS)]
        d = " ".join(f"{'M' if j == 0 else 'L'}{sx(a):.1f},{sy(b):.1f}" for j, (a, b) in enumerate(s))
        dash = ' stroke-dasharray="6 4"' if i % 2 else ""
        parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
                     f'<title>{escape(name)}</title></path>')
        parts.append(f'<text x="{W - RIGHT - 4}" y="{TOP + 16 + 16 * i}" text-anchor="end" '
                     f'fill="{colour}">{escape(name)}</text>')
    return _frame(title, "".join(parts))


def _num(v: float) -> str:
    v = v + 0.0  # no "-0"
    return f"{v:g}" if abs(v) < 1e6 else f"{v:.3g}"
