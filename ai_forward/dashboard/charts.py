"""Charts drawn on the server as inline SVG: no script, no fonts or files from elsewhere.

Every chart has a fixed view box and scales to its container's width, so nothing moves
when it loads; each carries a <title> and a table of the same numbers follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 200
LEFT, BOTTOM, TOP = 48, 22, 8
# Colour-blind-safe (Okabe-Ito) series colours, in order.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000")


def nice_top(value: float) -> float:
    """A round number at or above `value` for the top of the axis."""
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1) if value >= 1 else 0.01
    while step < value / 5:
        step *= 2
    top = step
    while top < value:
        top += step
    return top


def label(value: float, money: bool) -> str:
    if money:
        return f"${value:.2f}" if value >= 0.1 or value == 0 else f"${value:.4f}"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def stacked_bars(
    title: str,
    columns: Sequence[str],
    series: dict[str, list[float]],
    *,
    money: bool = False,
) -> str:
    """One bar per column, stacked by series (e.g. a day's tokens by user)."""
    names = list(series)
    totals = [sum(series[n][i] for n in names) for i in range(len(columns))]
    top = nice_top(max(totals, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(columns), 1)
    bar = max(min(slot * 0.7, 48), 1)
    parts = [axis(top, money)]
    for i, column in enumerate(columns):
        x = LEFT + i * slot + (slot - bar) / 2
        y = float(TOP + plot_h)
        for n, name in enumerate(names):
            value = series[name][i]
            if value <= 0:
                continue
            h = value / top * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[n % len(PALETTE)]}"><title>{escape(column)} {escape(name)}: '
                f"{label(value, money)}</title></rect>"
            )
        if len(columns) <= 16 or i % max(len(columns) // 8, 1) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{escape(column[-5:])}</text>"
            )
    return frame(title, "".join(parts), names)


def lines(title: str, columns: Sequence[str], series: dict[str, list[float]]) -> str:
    """One line per series over the columns (e.g. requests, errors per minute)."""
    top = nice_top(max((v for s in series.values() for v in s), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(columns) - 1, 1)
    parts = [axis(top, False)]
    for n, (name, values) in enumerate(series.items()):
        points = " ".join(
            f"{LEFT + i * step:.1f},{TOP + plot_h - v / top * plot_h:.1f}"
            for i, v in enumerate(values)
        )
        colour = PALETTE[n % len(PALETTE)]
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
    for i in range(0, len(columns), max(len(columns) // 6, 1)):
        parts.append(
            f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
            f"{escape(columns[i])}</text>"
        )
    return frame(title, "".join(parts), list(series))


def axis(top: float, money: bool) -> str:
    plot_h = HEIGHT - BOTTOM - TOP
    parts = []
    for k in range(5):
        value = top * k / 4
        y = TOP + plot_h - plot_h * k / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{label(value, money)}</text>'
        )
    return "".join(parts)


def frame(title: str, body: str, names: list[str]) -> str:
    legend = "".join(
        f'<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        f'fill="{PALETTE[n % len(PALETTE)]}"/></svg> {escape(name)}</li>'
        for n, name in enumerate(names)
    )
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img">'
        f"<title>{escape(title)}</title>{body}</svg>"
        f'<ul class="legend">{legend}</ul></figure>'
    )
