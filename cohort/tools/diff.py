"""`cohort diff OUT_A OUT_B`: patients added/removed, tier and criterion changes per site."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cohort.tools.changes import read_candidates
from cohort.tools.common import table


@dataclass
class SiteDiff:
    site: str
    added: list[tuple[str, str]] = field(default_factory=list)  # (patient, tier in B)
    removed: list[tuple[str, str]] = field(default_factory=list)  # (patient, tier in A)
    tiers: list[tuple[str, str, str]] = field(default_factory=list)  # (patient, a, b)
    cells: list[tuple[str, str, str, str]] = field(default_factory=list)  # (pid, crit, a, b)
    dates: list[tuple[str, str, str]] = field(default_factory=list)  # eligible_from (pid, a, b)
    # to_confirm items only in A, only in B (a criterion made manual, or no longer)
    confirm: list[tuple[str, str, str]] = field(default_factory=list)
    criteria_removed: list[str] = field(default_factory=list)  # columns of A only
    criteria_added: list[str] = field(default_factory=list)  # columns of B only
    only_in: str = ""  # "A" or "B" when the site exists in one folder only


@dataclass
class OutputDiff:
    a: Path
    b: Path
    versions: tuple[str, str]
    sites: list[SiteDiff]


NONE = "(no such criterion)"


def _version(out: Path) -> str:
    try:
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "-"
    if not isinstance(report, dict):  # (a run.json that is valid JSON, but not ours)
        return "-"
    human = str(report.get("mapping_human_version") or "")
    return f"{report.get('mapping_version', '-')}" + (f" ({human})" if human else "")


def _sites(out: Path) -> set[str]:
    return {p.parent.name for p in out.glob("*/candidates.csv")}


def diff_site(site: str, a: Path, b: Path) -> SiteDiff:
    """Compare one site's candidates.csv in two output folders."""
    d = SiteDiff(site)
    crit_a, rows_a = read_candidates(a / site / "candidates.csv")
    crit_b, rows_b = read_candidates(b / site / "candidates.csv")
    by_a = {r["patient_id"]: r for r in rows_a}
    by_b = {r["patient_id"]: r for r in rows_b}
    d.added = [(p, by_b[p].get("tier", "")) for p in sorted(set(by_b) - set(by_a))]
    d.removed = [(p, by_a[p].get("tier", "")) for p in sorted(set(by_a) - set(by_b))]
    shared = [c for c in crit_b if c in crit_a]
    d.criteria_removed = [c for c in crit_a if c not in crit_b]
    d.criteria_added = [c for c in crit_b if c not in crit_a]
    for pid in sorted(set(by_a) & set(by_b)):
        ra, rb = by_a[pid], by_b[pid]
        if ra.get("tier") != rb.get("tier"):
            d.tiers.append((pid, ra.get("tier", ""), rb.get("tier", "")))
        if ra.get("eligible_from", "") != rb.get("eligible_from", ""):
            d.dates.append((pid, ra.get("eligible_from", ""), rb.get("eligible_from", "")))
        ca, cb = _items(ra.get("to_confirm", "")), _items(rb.get("to_confirm", ""))
        if ca != cb:
            d.confirm.append(
                (pid, "; ".join(sorted(ca - cb)) or "-", "; ".join(sorted(cb - ca)) or "-")
            )
        for c in shared:
            if ra.get(c, "") != rb.get(c, ""):
                d.cells.append((pid, c, ra.get(c, ""), rb.get(c, "")))
        # a criterion taken out (or added) changes a tier only where it did not pass
        d.cells += [
            (pid, c, ra.get(c, ""), NONE) for c in d.criteria_removed if ra.get(c) != "pass"
        ]
        d.cells += [(pid, c, NONE, rb.get(c, "")) for c in d.criteria_added if rb.get(c) != "pass"]
    return d


def _items(cell: str) -> set[str]:
    return {x.strip() for x in cell.split("; ") if x.strip()}


def diff_outputs(a: Path, b: Path) -> OutputDiff:
    """Every site found in either folder (OUT/<site>/candidates.csv)."""
    sa, sb = _sites(a), _sites(b)
    sites = []
    for site in sorted(sa | sb):
        d = diff_site(site, a, b)
        d.only_in = "A" if site not in sb else "B" if site not in sa else ""
        sites.append(d)
    return OutputDiff(a, b, (_version(a), _version(b)), sites)


def render(d: OutputDiff) -> str:
    """The diff as text tables for the terminal."""
    lines = [f"A: {d.a}  mapping {d.versions[0]}", f"B: {d.b}  mapping {d.versions[1]}"]
    if not d.sites:
        lines.append("no candidates.csv in either folder")
    for s in d.sites:
        lines.append("")
        if s.only_in:
            lines.append(f"site {s.site}: only in {s.only_in}")
            continue
        lines.append(
            f"site {s.site}: {len(s.added)} added, {len(s.removed)} removed, "
            f"{len(s.tiers)} tier change(s), {len(s.cells)} criterion cell change(s), "
            f"{len(s.dates)} eligible_from change(s), {len(s.confirm)} to_confirm change(s)"
        )
        if s.criteria_removed:
            lines.append(
                f"  criteria only in A (not in B's trial): {', '.join(s.criteria_removed)}"
            )
        if s.criteria_added:
            lines.append(f"  criteria only in B (new in B's trial): {', '.join(s.criteria_added)}")
        body: list[tuple[str, ...]] = [(p, "added", "", t) for p, t in s.added]
        body += [(p, "removed", t, "") for p, t in s.removed]
        body += [(p, "tier", a, b) for p, a, b in s.tiers]
        body += [(p, "eligible_from", a or "-", b or "-") for p, a, b in s.dates]
        body += [(p, "to_confirm", a, b) for p, a, b in s.confirm]
        body += [(p, c, a, b) for p, c, a, b in s.cells]
        if body:
            lines += table(("patient", "what", "A", "B"), body)
    return "\n".join(lines)
