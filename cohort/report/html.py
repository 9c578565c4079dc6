"""summary.html for one site: one self-contained page (inline CSS and SVG, no scripts)."""

from __future__ import annotations

from datetime import date
from typing import Any

from cohort.model import Candidate, SiteResult
from cohort.report import rows
from cohort.report.htmlchanges import changes_section
from cohort.report.htmltext import LIST_MAX
from cohort.report.htmltext import esc as _e
from cohort.report.htmltext import section as _section
from cohort.report.htmltext import shown_count as _count
from cohort.report.run import criterion_funnel, tier_counts
from cohort.report.suppress import LESS, WITHHELD, PageCounts, approx, page_counts
from cohort.report.trend import KEYS, SERIES, site_history, trend_svg

TOP_N = 25
STATUS_ORDER = ("pass", "unknown", "fail")
CSS = """
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1c2529;background:#f4f6f8;margin:0;padding:24px}
main{max-width:1180px;margin:0 auto}
header,section{background:#fff;border:1px solid #dde3e8;border-radius:8px;padding:16px 20px;
margin-bottom:16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
.meta{color:#52616b;margin:0}.meta b{color:#1c2529;font-weight:600}
.banner{margin:10px 0 0;padding:6px 10px;border-radius:6px;font-weight:600}
.banner.phi{background:#fdecea;color:#8e1c12}.banner.nophi{background:#e8f1fb;color:#0d3c6e}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{flex:1 1 150px;border-radius:8px;padding:10px 14px;border-left:6px solid #455a64;
background:#f7f9fa}.card .n{display:block;font-size:28px;font-weight:700}
.card.likely{border-color:#2e7d32}.card.possible{border-color:#ef8f00}
.card.excluded{border-color:#c62828}.card .l{color:#52616b;text-transform:capitalize}
.legend{color:#52616b;margin:0 0 8px}.sw{display:inline-block;width:11px;height:11px;
border-radius:2px;vertical-align:-1px;margin:0 4px 0 10px}
.funnel-group{display:grid;grid-template-columns:270px 1fr 290px;gap:10px;align-items:center;
padding:3px 0;border-bottom:1px solid #eef1f3}
.crit{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.cid{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.kind{font-size:11px;color:#6b7a84;margin-left:4px}
.track{display:flex;height:16px;background:#eef1f3;border-radius:3px;overflow:hidden}
.bar{height:100%}.bar.pass,.sw.pass{background:#2e7d32}.bar.unknown,.sw.unknown{background:#f2a900}
.bar.fail,.sw.fail{background:#c62828}
.bar.masked{background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.45) 0 3px,
transparent 3px 6px)}
.nums{font-variant-numeric:tabular-nums;color:#38464f;font-size:13px;white-space:nowrap}
.nums .f{color:#c62828}.nums .u{color:#a86b00}.nums .p{color:#2e7d32}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e8ec;vertical-align:top}
th{background:#f0f3f5;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.tier-likely{color:#2e7d32;font-weight:600}td.tier-possible{color:#a86b00;font-weight:600}
td.tier-excluded{color:#c62828}.muted{color:#6b7a84}
ol.upcoming{margin:0;padding-left:20px}svg.trend{width:100%;height:auto;display:block}
table.narrow{width:auto;min-width:50%}
svg .grid{stroke:#e3e8ec}svg .axis{font-size:11px;fill:#6b7a84}
td.pid{white-space:nowrap}
.bar,.sw,.track,.banner,.card,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}
@page{margin:12mm}
@media print{body{background:#fff;padding:0;font-size:11px}main{max-width:none}
header,section{border:0;border-radius:0;padding:0;margin:0 0 12px}
h2,h3{break-after:avoid}.funnel-group,tr,.card,li,svg.trend{break-inside:avoid}
thead{display:table-header-group}.funnel-group{grid-template-columns:190px 1fr 240px}
.crit{white-space:normal;overflow:visible}
.card .n{font-size:20px}}
"""


def _header(site: SiteResult, phi: bool) -> str:
    fresh = _e(site.data_freshness or "unknown")
    try:
        lag = (site.as_of - date.fromisoformat(site.data_freshness[:10])).days
        fresh += f' <span class="muted">({lag} day{"" if lag == 1 else "s"} before as-of)</span>'
    except ValueError:
        pass
    banner = (
        '<p class="banner phi">Contains patient-identifying information: care team only.</p>'
        if phi
        else '<p class="banner nophi">No patient-level data: counts from 1 to 10 are shown as '
        "&lt;11, and counts that would let one be worked out from the others as *.</p>"
    )
    trial = (
        f"Trial <b>{_e(site.trial_title or site.trial_id)}</b> ({_e(site.trial_id)}) · "
        if site.trial_id
        else ""
    )
    return (
        f"<header><h1>{_e(site.site_name)} — trial candidates</h1>"
        f'<p class="meta">{trial}Site <b>{_e(site.site_id)}</b> · as of <b id="as-of">'
        f"{_e(site.as_of.isoformat())}</b> · mapping version <b>{_e(site.mapping_version or '-')}"
        f"</b> · data freshness <b>{fresh}</b>{_produced(site)}</p>{banner}</header>"
    )


def _produced(site: SiteResult) -> str:
    """When the run that wrote the page started, in UTC to the minute ("" when not given)."""
    at = site.produced
    if len(at) < 16:
        return ""
    return f' · produced <b id="produced">{_e(at[:10])} {_e(at[11:16])} UTC</b>'


def _tiers(site: SiteResult, masked: PageCounts | None) -> str:
    counts = tier_counts(site)
    texts = masked.tiers if masked else {k: str(n) for k, n in counts.items()}
    cards = "".join(
        f'<div class="card {_e(k)}" data-tier="{_e(k)}"><span class="n">'
        f'{_e(texts[k])}</span><span class="l">{_e(k)}</span></div>'
        for k in counts
    )
    return _section("tiers", "Patients screened, by tier", f'<div class="cards">{cards}</div>')


def _funnel(site: SiteResult, masked: PageCounts | None) -> str:
    total = max(len(site.candidates), 1)
    groups = []
    for i, f in enumerate(criterion_funnel(site)):
        texts = masked.funnel[i] if masked else {k: str(f[k]) for k in (*STATUS_ORDER, "remaining")}
        # widths from the printed counts only (a hidden one drawn as 10): on the no-PHI page
        # exact widths would give away what the text hides
        units = {st: f[st] if masked is None else _units(texts[st]) for st in STATUS_ORDER}
        whole = total if masked is None else max(sum(units.values()), 1)
        bars = []
        for st in STATUS_ORDER:
            hidden = texts[st] in (LESS, WITHHELD)
            cls = f"bar {st}" + (" masked" if hidden else "")
            bars.append(
                f'<div class="{cls}" data-status="{st}" data-count="{_e(texts[st])}" '
                f'style="width:{100 * units[st] / whole:.2f}%" title="{st}: {_e(texts[st])}">'
                "</div>"
            )
        nums = (
            f'<span class="p">{_e(texts["pass"])} pass</span> · '
            f'<span class="u">{_e(texts["unknown"])} unknown</span> · '
            f'<span class="f">{_e(texts["fail"])} fail</span> · '
            f"{_e(texts['remaining'])} left"
        )
        kind = f["type"] + (", manual" if f["manual"] else "")
        groups.append(
            f'<div class="funnel-group" data-criterion="{_e(f["id"])}">'
            f'<div class="crit" title="{_e(f["title"])}"><span class="cid">{_e(f["id"])}</span>'
            f'<span class="kind">{_e(kind)}</span><br><span class="muted">{_e(f["title"])}'
            f'</span></div><div class="track">{"".join(bars)}</div><div class="nums">{nums}</div>'
            "</div>"
        )
    legend = (
        '<p class="legend">Per criterion, all screened patients:<span class="sw pass"></span>pass'
        '<span class="sw unknown"></span>unknown<span class="sw fail"></span>fail; '
        "&ldquo;left&rdquo; = patients failing none of the criteria down to this one.</p>"
    )
    return f'<section id="funnel"><h2>Criteria funnel</h2>{legend}{"".join(groups)}</section>'


def _units(text: str) -> int:
    """Bar width units of a printed count: the number, or 10 for a hidden one."""
    return int(text) if text.isdigit() else 10


def _candidates(site: SiteResult, phi: bool) -> str:
    top = [c for c in rows.ranked(site) if c.tier in ("likely", "possible")][:TOP_N]
    manual = set(site.manual_items)
    head = ["Rank", "Patient", "Tier", "Score", "Missing", "To confirm"] + (["Name"] if phi else [])
    body = []
    for c in top:
        confirm = [x for x in rows.to_confirm_items(site, c) if x not in manual]
        cells = [
            f'<td class="num">{c.rank}</td>',
            f'<td class="pid">{_e(c.patient.id)}</td>',
            f'<td class="tier-{_e(c.tier)}">{_e(c.tier)}</td>',
            f'<td class="num">{rows.fmt_score(c.score)}</td>',
            f"<td>{_e('; '.join(rows.missing_items(site, c)))}</td>",
            f"<td>{_e('; '.join(confirm))}</td>",
        ] + ([f"<td>{_e(c.patient.name)}</td>"] if phi else [])
        body.append(
            f'<tr class="candidate" data-patient-id="{_e(c.patient.id)}">{"".join(cells)}</tr>'
        )
    if not body:
        body.append(
            f'<tr class="empty"><td colspan="{len(head)}">No likely or possible candidates.'
            "</td></tr>"
        )
    note = (
        '<p class="legend">Also to confirm for everyone at screening: '
        f"{_e('; '.join(site.manual_items))}.</p>"
        if site.manual_items
        else ""
    )
    more = sum(c.tier in ("likely", "possible") for c in site.candidates) - len(top)
    tail = f'<p class="muted">{more} more in candidates.csv.</p>' if more > 0 else ""
    ths = "".join(f"<th{' class=num' if h in ('Rank', 'Score') else ''}>{h}</th>" for h in head)
    return (
        f'<section id="top"><h2>Top candidates</h2>{note}<table id="candidates"><thead><tr>{ths}'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>{tail}</section>"
    )


def _dated(site: SiteResult) -> list[Candidate]:
    """The patients with an eligibility date, by date then rank."""
    return sorted(
        (c for c in site.candidates if c.eligible_from),
        key=lambda c: (c.eligible_from, c.rank),
    )


def _per_day(dated: list[Candidate]) -> dict[str, int]:
    """Patients per eligibility date (the `--no-phi` list), in date order."""
    per_day: dict[str, int] = {}
    for c in dated:
        day = rows.fmt_date(c.eligible_from)
        per_day[day] = per_day.get(day, 0) + 1
    return per_day


def _upcoming(site: SiteResult, phi: bool) -> str:
    dated = _dated(site)
    if not dated:
        return _section("upcoming", "Upcoming eligibility dates", '<p class="muted">None.</p>')
    if phi:
        items = "".join(
            f'<li data-date="{_e(rows.fmt_date(c.eligible_from))}"><b>'
            f"{_e(rows.fmt_date(c.eligible_from))}</b> — {_e(c.patient.id)} (rank {c.rank}"
            f"{', ' + _e(c.patient.name) if c.patient.name else ''}): "
            f"{_e(rows.reasons(site, c))}</li>"
            for c in dated[:LIST_MAX]
        )
        more = len(dated) - LIST_MAX
    else:
        per_day = _per_day(dated)
        items = "".join(
            f'<li data-date="{_e(d)}"><b>{_e(d)}</b> — {_e(_count(n, True))} patient(s)</li>'
            for d, n in list(per_day.items())[:LIST_MAX]
        )
        more = len(per_day) - LIST_MAX
    tail = (
        ""
        if more <= 0
        else f'<p class="muted">{more} more: the <code>eligible_from</code> column of '
        "candidates.csv.</p>"
        if phi
        else f'<p class="muted">{more} later dates not listed.</p>'
    )
    return (
        '<section id="upcoming"><h2>Upcoming eligibility dates</h2><p class="legend">Excluded only '
        "by washouts, recent vaccines or recent conditions: eligible from these dates if nothing "
        "new is given.</p>"
        f'<ol class="upcoming">{items}</ol>{tail}</section>'
    )


def _trend(site: SiteResult, history: list[dict[str, Any]], masked: PageCounts | None) -> str:
    runs = site_history(site, history)
    legend = "".join(
        f'<span class="sw" style="background:{color}"></span>{key}' for key, color in SERIES
    )
    if masked is None:
        texts = [{k: str(r[k]) for k in KEYS} for r in runs]
    else:
        # this run as the tier cards print it; past runs by their ten, so that two runs
        # cannot be subtracted to tell a small change
        today = site.as_of.isoformat()
        texts = [
            {k: masked.tiers.get(k, "0") if r["date"] == today else approx(r[k]) for k in KEYS}
            for r in runs
        ]
    head = "<th>date</th>" + "".join(f'<th class="num">{k}</th>' for k in KEYS)
    trs = "".join(
        f"<tr><td>{_e(r['date'])}</td>"
        + "".join(f'<td class="num">{_e(t[k])}</td>' for k in KEYS)
        + "</tr>"
        for r, t in reversed(list(zip(runs, texts, strict=True))[-10:])
    )
    note = "" if len(runs) > 1 else '<p class="muted">The trend builds up from the next run.</p>'
    if masked is not None:
        note += (
            '<p class="muted">Past runs are shown by their ten (e.g. 60–69), this run as above.</p>'
        )
    return (
        f'<section id="trend"><h2>Trend over runs</h2><p class="legend">{legend}</p>'
        f"{trend_svg(runs, texts=texts)}{note}"
        f'<table id="trend-table" class="narrow"><thead><tr>{head}</tr>'
        f"</thead><tbody>{trs}</tbody></table></section>"
    )


def summary_html(site: SiteResult, *, history: list[dict[str, Any]], phi: bool = True) -> str:
    """The site's summary page; with `phi=False` it holds counts only, 1-10 shown as "<11"."""
    # the upcoming dates list excluded patients: their counts bound excluded from below
    days = [] if phi else list(_per_day(_dated(site)).values())
    masked = None if phi else page_counts(tier_counts(site), criterion_funnel(site), days)
    parts = [_header(site, phi), _tiers(site, masked), _funnel(site, masked)]
    if phi:
        parts.append(_candidates(site, phi))
    parts += [changes_section(site, phi), _upcoming(site, phi), _trend(site, history, masked)]
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(site.site_name)} — candidates as of {_e(site.as_of.isoformat())}</title>"
        f"<style>{CSS}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )
