"""The hits timeline of a source: an inline SVG drawn on the server.

No script and no external resource (the dashboard's CSP allows neither, and
the machine may have no internet): stacked bars per day, one colour per
classification, with a ``<title>`` on each bar for the numbers on hover.
Every text in the drawing goes through ``markupsafe.escape``.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Iterable

from markupsafe import Markup, escape

from canary.hits.hit import Classification, Hit

# Most alarming first: the bottom of each stack, and the legend's order.
ORDER = (Classification.CREDENTIAL_USE, Classification.HUMAN, Classification.AUTOMATED,
         Classification.RESOLVER_RECHECK, Classification.INTERNAL, Classification.UNMATCHED)
COLOURS = {
    Classification.CREDENTIAL_USE: "#b42318",
    Classification.HUMAN: "#e8590c",
    Classification.AUTOMATED: "#6741d9",
    Classification.RESOLVER_RECHECK: "#1c7ed6",
    Classification.INTERNAL: "#868e96",
    Classification.UNMATCHED: "#ced4da",
}
WIDTH, HEIGHT = 960, 280  # drawn about 1:1 in the page, so the text keeps its size
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 12, 84  # margins: axis labels left, day labels and legend below
LEGEND_COLUMNS = 3


def daily_counts(hits: Iterable[Hit], end: date, days: int) -> dict[date, Counter]:
    """Hits per UTC day and classification, for the ``days`` days ending with ``end``."""
    first = end - timedelta(days=days - 1)
    counts: dict[date, Counter] = {first + timedelta(days=i): Counter() for i in range(days)}
    for hit in hits:
        day = hit.at.date()
        if day in counts:
            counts[day][hit.classification] += 1
    return counts


def _step(peak: int) -> int:
    """The smallest round gridline step (1, 2, 5, 10, 20...) giving at most 4 lines up to ``peak``."""
    scale = 1
    while True:
        for base in (1, 2, 5):
            if -(-peak // (base * scale)) <= 4:
                return base * scale
        scale *= 10


def timeline_svg(hits: Iterable[Hit], *, end: date, days: int = 30, label: str = "") -> Markup:
    counts = daily_counts(hits, end, days)
    totals = Counter()
    for per_day in counts.values():
        totals.update(per_day)
    peak = max((sum(c.values()) for c in counts.values()), default=0)
    step = _step(max(peak, 1))
    top_value = max(step * ((peak + step - 1) // step), step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / days
    bar_w = max(slot * 0.72, 1.0)
    title = f"Hits per day, {days} days to {end:%Y-%m-%d} (UTC)" + (f": {label}" if label else "")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'role="img" aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    for value in range(0, top_value + 1, step):  # gridlines and their labels
        y = TOP + plot_h - plot_h * value / top_value
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e9ecef"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{value}</text>')
    for i, (day, per_day) in enumerate(counts.items()):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y = TOP + plot_h
        for cls in ORDER:
            n = per_day.get(cls, 0)
            if not n:
                continue
            h = plot_h * n / top_value
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                       f'fill="{COLOURS[cls]}" class="bar"><title>{day:%Y-%m-%d}: {n} {escape(cls.value)}'
                       f'</title></rect>')
        if i % 5 == 0 or i == days - 1:
            out.append(f'<text x="{LEFT + i * slot + slot / 2:.1f}" y="{TOP + plot_h + 16}" '
                       f'text-anchor="middle" class="axis">{day:%d/%m}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#adb5bd"/>')
    column = plot_w / LEGEND_COLUMNS
    for i, cls in enumerate(ORDER):  # legend, with the total of each class over the period
        x = LEFT + (i % LEGEND_COLUMNS) * column
        y = HEIGHT - 44 + (i // LEGEND_COLUMNS) * 22
        out.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" rx="2" fill="{COLOURS[cls]}"/>')
        text = f"{cls.value} ({totals.get(cls, 0)})"
        out.append(f'<text x="{x + 18:.1f}" y="{y + 11}" class="legend">{escape(text)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
