"""Inline-SVG trend chart of screened/likely/possible counts over the nightly runs."""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Any

from cohort.model import SiteResult
from cohort.report.run import tier_counts

SERIES = (("screened", "#455a64"), ("likely", "#2e7d32"), ("possible", "#ef8f00"))
KEYS = ("screened", "likely", "possible", "excluded")
W, H, LEFT, RIGHT, TOP, BOTTOM = 1000, 240, 46, 40, 14, 34


def site_history(site: SiteResult, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This site's runs, oldest first, one per date, ending with the current run.

    Entries without a `site` key are taken as this site's. When no entry is dated `as_of`,
    the current counts are appended, so the chart always ends with what the CSV shows;
    an entry dated `as_of` is replaced by the current counts for the same reason.
    """
    by_date: dict[str, dict[str, Any]] = {}
    for h in history:
        if h.get("site", site.site_id) != site.site_id:
            continue
        day = str(h.get("date", ""))[:10]
        if not day:
            continue
        by_date[day] = {"date": day, **{k: _int(h.get(k)) for k in KEYS}}
    current = tier_counts(site)
    today = site.as_of.isoformat()
    by_date[today] = {"date": today, **{k: current.get(k, 0) for k in KEYS}}
    return [by_date[d] for d in sorted(by_date)]


def _int(v: Any) -> int:
    try:
        return max(int(v), 0)
    except (TypeError, ValueError):
        return 0


def _x_positions(days: list[str]) -> list[float]:
    span = W - LEFT - RIGHT
    if len(days) == 1:
        return [LEFT + span / 2]
    try:
        ords = [date.fromisoformat(d).toordinal() for d in days]
    except ValueError:
        ords = list(range(len(days)))
    lo, hi = ords[0], ords[-1]
    if hi == lo:
        return [LEFT + span * i / (len(days) - 1) for i in range(len(days))]
    return [LEFT + span * (o - lo) / (hi - lo) for o in ords]


def _nice_max(v: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if v <= step * 4:
            return step * 4
    return ((v // 10000) + 1) * 10000


def _plotted(text: str) -> float | None:
    """Where a printed count is drawn: its number, 10 for "<11", the middle of a ten
    ("60–69"), nowhere for a withheld one ("*")."""
    if text.isdigit():
        return float(text)
    if text.startswith("<"):
        return 10.0
    low, sep, high = text.partition("–")
    if sep and low.isdigit() and high.isdigit():
        return (int(low) + int(high)) / 2
    return None


def trend_svg(runs: list[dict[str, Any]], *, texts: list[dict[str, str]]) -> str:
    """An SVG line chart of the runs' counts, drawn from `texts` (each run's counts as the page
    prints them) alone, so it shows nothing they hide: "<11" at 10 with a hollow dot, a ten at
    its middle, a withheld count not at all."""
    values = [{key: _plotted(t.get(key, "0")) for key, _ in SERIES} for t in texts]
    days = [r["date"] for r in runs]
    xs = _x_positions(days)
    top = _nice_max(int(max([v for row in values for v in row.values() if v is not None] + [1])))
    plot_h = H - TOP - BOTTOM

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [
        f'<svg class="trend" viewBox="0 0 {W} {H}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="screened, likely and possible per run">'
    ]
    for i in range(5):
        tick = top * i // 4
        gy = y(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" class="axis">{tick}</text>'
        )
    ticks = sorted({0, len(days) - 1, (len(days) - 1) // 2})
    for i in ticks:
        anchor = "start" if i == 0 and len(days) > 1 else "end" if i == len(days) - 1 else "middle"
        if len(days) == 1:
            anchor = "middle"
        out.append(
            f'<text x="{xs[i]:.1f}" y="{H - 12}" text-anchor="{anchor}" class="axis">'
            f"{escape(days[i])}</text>"
        )
    for key, color in SERIES:
        # one polyline per stretch of drawn points (a withheld count breaks the line)
        stretches: list[list[str]] = [[]]
        for x, row in zip(xs, values, strict=True):
            v = row[key]
            if v is None:
                stretches.append([])
            else:
                stretches[-1].append(f"{x:.1f},{y(v):.1f}")
        for pts in (p for p in stretches if p):
            out.append(
                f'<polyline class="series" data-series="{key}" fill="none" stroke="{color}" '
                f'stroke-width="2.5" stroke-linejoin="round" points="{" ".join(pts)}"/>'
            )
        for x, r, row, t in zip(xs, runs, values, texts, strict=True):
            v = row[key]
            if v is None:
                continue
            text = t.get(key, "0")
            fill = color if text.isdigit() else "#fff"
            out.append(
                f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3.5" fill="{fill}" '
                f'stroke="{color}" stroke-width="1.5"><title>{escape(r["date"])} {key}: '
                f"{escape(text)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)
