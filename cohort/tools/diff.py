"""`cohort diff OUT_A OUT_B`: patients added/removed, tier and criterion changes per site."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cohort.report.kept import Lists, OutLists, read_lists
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
    # "A", "B" or "A and B": the folder's run.json does not describe the site's lists (left over
    # from an earlier run, see OutLists.complete): not compared, as another run's lists
    left_over: str = ""


@dataclass
class Folder:
    """Whose lists one folder holds, by its run.json: `stamp` (mapping version and as-of date
    of them all), `note` (a failed last run: what it left), `per_site` (each site's stamp, when
    the lists are of more than one run)."""

    stamp: str
    note: str = ""
    per_site: dict[str, str] = field(default_factory=dict)
    # (criteria_digest, mappings_digest) of the lists ("" unknown: no run.json, a run.json of an
    # earlier cohort, or lists of more than one run)
    digests: tuple[str, str] = ("", "")
    # the code_version of the lists (UNRECORDED: a run.json of a cohort before it; "" unknown)
    code: str = ""


@dataclass
class OutputDiff:
    a: Path
    b: Path
    folders: tuple[Folder, Folder]
    sites: list[SiteDiff]


NONE = "(no such criterion)"
UNRECORDED = "not recorded: an earlier cohort"


def _folder(out: Path) -> Folder:
    """The version of the lists in `out`: the last run's, unless it failed (the lists are then
    an earlier run's, or some of them: the failed run.json says whose)."""
    found = read_lists(out)
    if not found.status:
        return Folder("-")
    if not found.failed:
        return Folder(found.last.stamp(), digests=_digests(found.last), code=_code(found.last))
    mine = sorted(_sites(out) - _left_over(found, out))  # (the others: said per site)
    lists: dict[str, Lists | None] = {sid: found.sites.get(sid) for sid in mine}
    note = f"the last run ({_last_run(found)}) failed" + _left(lists)
    kinds = set(lists.values())
    if len(kinds) > 1:
        per_site = {sid: d.stamp() if d else "-" for sid, d in lists.items()}
        return Folder("(each site's below)", note, per_site)
    one = kinds.pop() if kinds else None
    return Folder(one.stamp() if one else "-", note, digests=_digests(one), code=_code(one))


def _digests(lists: Lists | None) -> tuple[str, str]:
    return (lists.criteria_digest, lists.mappings_digest) if lists else ("", "")


def _code(lists: Lists | None) -> str:
    """The lists' code_version, UNRECORDED when run.json describes them without one (a
    cohort from before it: the copy of OUT kept before an upgrade)."""
    return (lists.code_version or UNRECORDED) if lists else ""


def _changed(a: Folder, b: Folder) -> list[str]:
    """Which of the criteria and the mappings the two folders' lists were written with differ
    (said only where both run.json files give them)."""
    out = []
    for i, what in enumerate(("criteria", "mappings")):
        if a.digests[i] and b.digests[i] and a.digests[i] != b.digests[i]:
            out.append(f"{what} changed between the runs")
    if a.code and b.code and a.code != b.code:  # (an upgrade: rules may read records otherwise)
        out.append(f"cohort changed between the runs (code {a.code} -> {b.code})")
    return out


def _last_run(found: OutLists) -> str:
    run = found.last  # (a run that failed before reading the mappings has no version)
    mapping = f", mapping {run.mapping()}" if run.mapping_version else ""
    return f"as of {run.as_of or '-'}{mapping}"


def _left(lists: dict[str, Lists | None]) -> str:
    """What a failed run left in the folder, by whose lists each site holds."""
    own = [d for d in lists.values() if d and d.by_last_run]
    if not lists:
        return ""
    if None in lists.values():
        return ": run.json does not say which run wrote " + (
            "these lists" if set(lists.values()) == {None} else "some of these lists"
        )
    if len(own) == len(lists):
        return " after writing these lists"
    if own:
        return " part-way: some sites' lists are its own, the others an earlier run's"
    return ": these lists are an earlier run's"


def _sites(out: Path) -> set[str]:
    return {p.parent.name for p in out.glob("*/candidates.csv")}


def _left_over(found: OutLists, out: Path) -> set[str]:
    """Sites with lists in `out` that its run.json does not describe (none when it cannot
    tell: no run.json, or a failed run's that names no lists)."""
    return {s for s in _sites(out) if s not in found.sites} if found.complete else set()


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
    la, lb = _left_over(read_lists(a), a), _left_over(read_lists(b), b)
    sites = []
    for site in sorted(sa | sb):
        left = " and ".join(n for n, lo in (("A", la), ("B", lb)) if site in lo)
        if left:
            sites.append(SiteDiff(site, left_over=left))
            continue
        d = diff_site(site, a, b)
        d.only_in = "A" if site not in sb else "B" if site not in sa else ""
        sites.append(d)
    return OutputDiff(a, b, (_folder(a), _folder(b)), sites)


def render(d: OutputDiff) -> str:
    """The diff as text tables for the terminal."""
    lines = []
    for name, path, folder in (("A", d.a, d.folders[0]), ("B", d.b, d.folders[1])):
        lines.append(f"{name}: {path}  mapping {folder.stamp}")
        if folder.note:  # (the last run failed: the version above is not its own)
            lines.append(f"  {name}: {folder.note}")
    lines += _changed(*d.folders)
    if not d.sites:
        lines.append("no candidates.csv in either folder")
    for s in d.sites:
        lines.append("")
        if s.left_over:
            whose = "their run.json" if " and " in s.left_over else f"{s.left_over}'s run.json"
            lines.append(
                f"site {s.site}: in {s.left_over} left over from an earlier run (not in {whose}):"
                " not compared"
            )
            continue
        if s.only_in:
            lines.append(f"site {s.site}: only in {s.only_in}")
        else:
            lines.append(
                f"site {s.site}: {len(s.added)} added, {len(s.removed)} removed, "
                f"{len(s.tiers)} tier change(s), {len(s.cells)} criterion cell change(s), "
                f"{len(s.dates)} eligible_from change(s), {len(s.confirm)} to_confirm change(s)"
            )
        for name, folder in (("A", d.folders[0]), ("B", d.folders[1])):
            if s.site in folder.per_site:
                lines.append(f"  {name}'s lists: mapping {folder.per_site[s.site]}")
        if s.only_in:
            continue
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
