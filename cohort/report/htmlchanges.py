"""summary.html's "changes since the last run": counts, and with PHI the lists of patients."""

from __future__ import annotations

from cohort.model import Candidate, SiteResult
from cohort.report import rows
from cohort.report.htmltext import LIST_MAX, esc, section

HEAD = (
    '<thead><tr><th class="num">Rank</th><th>Patient</th><th>Tier</th><th>Change</th>'
    "<th>Why</th><th>Name</th></tr></thead>"
)
MORE = "more: the <code>change</code> column of candidates.csv"


def _why_not_compared(site: SiteResult) -> str:
    """Why there is nothing to compare with (README: the first run, the trial id changed,
    another configuration file's run into the same OUT): "the first run" alone misled."""
    prev = site.previous_tiers
    why = getattr(prev, "not_compared", "")
    if why == rows.OTHER_TRIAL:
        return (
            f"Nothing to compare with: the previous lists here were of another trial "
            f"({getattr(prev, 'trial', '')}), which this run does not compare with"
        )
    if why == rows.OTHER_CONFIG:
        return (
            "Nothing to compare with: the previous lists here were written by another "
            "configuration file, which this run does not compare with (run.json names it)"
        )
    return "No previous run of this trial to compare with (the first run)"


def _row(site: SiteResult, c: Candidate, change: str) -> str:
    # the reasons as candidates.csv gives them: a move is read with its cause, not looked up
    return (
        f'<tr class="change"><td class="num">{c.rank}</td>'
        f'<td class="pid">{esc(c.patient.id)}</td>'
        f'<td class="tier-{esc(c.tier)}">{esc(c.tier)}</td><td>{esc(change)}</td>'
        f"<td>{esc(rows.reasons(site, c))}</td><td>{esc(c.patient.name)}</td></tr>"
    )


def _move_table(site: SiteResult, tid: str, title: str, moved: list[tuple[Candidate, str]]) -> str:
    """One tier move's list, by rank (nothing when no one moved so)."""
    if not moved:
        return ""
    trs = "".join(_row(site, c, ch) for c, ch in moved[:LIST_MAX])
    more = len(moved) - LIST_MAX
    tail = f'<p class="muted">{more} {MORE}.</p>' if more > 0 else ""
    return f'<h3>{esc(title)}</h3><table id="{tid}">{HEAD}<tbody>{trs}</tbody></table>{tail}'


def _other_table(site: SiteResult, shown: list[tuple[Candidate, str]], removed: list[str]) -> str:
    """New, newly eligible and no longer eligible patients, then those no longer screened: one
    list of LIST_MAX rows."""
    if not (shown or removed):
        return ""
    names = getattr(site.previous_tiers, "names", {})
    trs = [_row(site, c, ch) for c, ch in shown[:LIST_MAX]]
    trs += [
        f'<tr class="removed"><td class="num">-</td><td class="pid">{esc(pid)}</td>'
        f'<td class="muted">(was {esc(site.previous_tiers[pid])})</td>'
        f"<td>no longer screened: {_gone(site, pid)}</td><td></td>"
        f"<td>{esc(names.get(pid, ''))}</td></tr>"
        for pid in removed[: max(LIST_MAX - len(shown), 0)]
    ]
    more = len(shown) + len(removed) - len(trs)
    tail = (
        f'<p class="muted">{more} {MORE} (and run.json for the patients no longer screened).</p>'
        if more > 0
        else ""
    )
    return (
        "<h3>New, newly eligible, no longer eligible, no longer screened</h3>"
        f'<table id="changes-table">{HEAD}<tbody>{"".join(trs)}</tbody></table>{tail}'
    )


def _gone(site: SiteResult, pid: str) -> str:
    """Why a patient has no row now, where the data says: merged into another chart."""
    into = site.merged_into.get(pid)
    if into is None:
        return "not in candidates.csv"
    return f"merged into {esc(into)} (its records are read with {esc(into)}'s)"


def changes_section(site: SiteResult, phi: bool) -> str:
    title = "Changes since the last run"
    if not rows.compared(site):
        return section(
            "changes",
            title,
            f'<p id="no-previous-run" class="muted">{esc(_why_not_compared(site))}: changes are '
            "shown from the next run on.</p>",
        )
    changed = rows.changed(site)
    new = sum(ch == "new" for _, ch in changed)
    eligible = sum(rows.is_newly_eligible(ch) for _, ch in changed)
    # each tier move is in one list only: excluded -> likely is newly eligible, not likely
    likely, unlikely = rows.likely_moves(changed)
    dropped = sum(rows.is_newly_excluded(ch) for _, ch in changed)
    removed = rows.removed_ids(site)
    other = len(changed) - new - eligible - len(likely) - len(unlikely) - dropped
    counts = [
        (new, "new"),
        (eligible, "newly eligible"),
        (len(likely), "newly likely"),
        (len(unlikely), "no longer likely"),
        (dropped, "no longer eligible"),
        (len(removed), "no longer screened"),
        (other, "other changes"),
    ]
    if phi:
        line = " · ".join(f"<b>{esc(str(n))}</b> {what}" for n, what in counts)
        summary = f'<p id="change-counts">{line}</p>'
    else:
        # exact counts, read with the trend's row of the run compared with and today's tiers,
        # tell a count the page shows as "<11" (docs/security.md); "<11" for 1-10 alone does not
        summary = (
            '<p id="change-counts" class="muted">Counts of changes are withheld on this page: '
            "read with the trend and the tier counts they could tell a count under 11. Each "
            "patient&rsquo;s change is in the <code>change</code> column of candidates.csv.</p>"
        )
    tables = ""
    if phi:
        shown = [
            (c, ch)
            for c, ch in changed
            if ch == "new" or rows.is_newly_eligible(ch) or rows.is_newly_excluded(ch)
        ]
        tables = (
            _move_table(site, "newly-likely", "Newly likely (possible → likely)", likely)
            + _move_table(
                site, "no-longer-likely", "No longer likely (likely → possible)", unlikely
            )
            + _other_table(site, shown, removed)
        )
    legend = (
        '<p class="legend">&ldquo;Newly likely&rdquo;: possible in the last run, likely now '
        "(from excluded to likely or possible is &ldquo;newly eligible&rdquo;); &ldquo;no "
        "longer likely&rdquo;: likely then, possible now. &ldquo;No longer screened&rdquo;: in "
        "the last run&rsquo;s list, not in this one (no condition the trial screens for any "
        "more: refuted, entered in error or deleted, or merged into another chart). Other "
        "changes (e.g. <i>criteria changed</i>) are in the <code>change</code> column.</p>"
    )
    return section("changes", title, summary + _other_code(site) + legend + tables)


def _other_code(site: SiteResult) -> str:
    """The first run after an upgrade: the lists compared with are another cohort's, whose
    rules may have read unchanged records otherwise (`PreviousRun.other_code`)."""
    said = getattr(site.previous_tiers, "other_code", "")
    if not said:
        return ""
    return (
        f'<p id="cohort-changed" class="muted">The last run&rsquo;s lists were written by '
        f"another version of cohort ({esc(said)}): some of these changes may be the "
        "upgrade&rsquo;s (a criterion read otherwise), not the charts&rsquo;; "
        "<code>cohort diff</code> of a copy of the earlier lists names them.</p>"
    )
