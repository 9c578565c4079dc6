"""What changed since the previous run: tiers and criterion cells from the last candidates.csv."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from cohort.model import Candidate, SiteResult
from cohort.report import rows
from cohort.report.files import excel_safe
from cohort.report.kept import Lists, lists_of
from cohort.report.rows import OTHER_CONFIG, OTHER_TRIAL

HEAD = ("rank", "patient_id", "tier", "score", "eligible_from", "reasons")
TAIL_START = "change"


class PreviousRun(dict[str, str]):
    """patient_id -> tier of the previous run, plus its criterion cells and trial id.

    A plain dict for every caller that only needs tiers; `cells` and `changed` are extra.
    """

    def __init__(self) -> None:
        super().__init__()
        # a previous candidates.csv was read (header at least): a run that screened nobody
        # is still a previous run, and everyone screened now is "new" against it
        self.found = False
        self.trial = ""
        self.criteria: list[str] = []
        self.cells: dict[str, dict[str, str]] = {}
        self.names: dict[str, str] = {}  # the previous `name` cell (PHI runs), for removed ones
        self.changed: dict[str, list[str]] = {}  # filled by `apply`: criteria that changed
        # why lists that were there are not compared with: OTHER_TRIAL, OTHER_CONFIG ("" when
        # compared, or none were there: the first run), for summary.html to say so
        self.not_compared = ""
        # the lists' own run, as OUT/run.json describes them (None: it does not say)
        self.lists: Lists | None = None
        # set by the runner when those lists were written by another version of cohort's code
        # (Lists.other_code): summary.html says that changes may be the upgrade's
        self.other_code = ""

    def forget(self, why: str) -> None:
        """Compare with nothing: the lists read are not comparable (`why`)."""
        if self.found:
            self.not_compared = why
        self.clear()
        self.cells.clear()
        self.names.clear()
        self.found = False


def not_compared(path: Path) -> PreviousRun:
    """No previous run: the lists at `path`, if any, were written by another configuration's
    run (OUT/run.json says so), which is not this one's previous run."""
    prev = PreviousRun()
    if path.is_file():
        prev.not_compared = OTHER_CONFIG
    return prev


def criterion_columns(header: list[str]) -> list[str]:
    """The per-criterion columns of a candidates.csv header (between `reasons` and `change`)."""
    try:
        start, end = header.index("reasons") + 1, header.index(TAIL_START)
    except ValueError:
        return []
    return header[start:end]


def unguard(cell: str) -> str:
    """A cell as it was before `excel_safe` prefixed it with "'" (a cell the guard would have
    left alone keeps its "'": it was recorded so)."""
    return cell[1:] if cell[:1] == "'" and excel_safe(cell[1:]) == cell else cell


def read_candidates(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(criterion columns, rows) of a candidates.csv; ([], []) when absent or unreadable."""
    # our own CSV may hold long cells (hostile 1 MB names): csv's 128 KiB default would fail
    # the read and silently mark every patient "new"
    csv.field_size_limit(64 * 1024 * 1024)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, restval="")  # (a short row: "" cells, not None)
            body = [r for r in reader if r.get("patient_id")]
            for r in body:
                # a FHIR id may start with "-", which the CSV guards against formulas as "'-":
                # ids hold no "'", so the guard is undone unambiguously (else every such
                # patient read as new, and as removed, on every run); a name is shown again
                # in summary.html's "no longer screened" list, as it was before the guard
                r["patient_id"] = unguard(r["patient_id"])
                if r.get("name"):
                    r["name"] = unguard(r["name"])
            return criterion_columns(list(reader.fieldnames or [])), body
    except (OSError, csv.Error, UnicodeDecodeError):
        return [], []


def read_previous(path: Path) -> PreviousRun:
    """The previous run's outputs for one site (`OUT/<site>/candidates.csv` and `OUT/run.json`)."""
    prev = PreviousRun()
    criteria, body = read_candidates(path)
    prev.criteria = criteria
    prev.found = bool(criteria or body)
    for r in body:
        prev[r["patient_id"]] = r.get("tier", "")
        prev.cells[r["patient_id"]] = {c: r.get(c, "") for c in criteria}
        if r.get("name"):
            prev.names[r["patient_id"]] = r["name"]
    report = run_report(path.parent.parent)
    prev.trial = outputs_trial(report)
    prev.lists = lists_of(report).get(path.parent.name)
    return prev


def outputs_trial(report: dict[str, Any]) -> str:
    """The trial whose candidate lists OUT holds, by its run.json `report` ("" when unknown).

    A failed run's run.json names the trial it tried (`trial`), and the trial of the lists it
    kept (`outputs_trial`): a first run of a new trial that failed (a copied trial file not yet
    right) made the next run compare the old trial's lists as its own."""
    return str(report.get("outputs_trial") or report.get("trial") or "")


def outputs_config(report: dict[str, Any]) -> str:
    """The configuration whose run wrote OUT's candidate lists, by its run.json `report`
    (`config`, or a failed run's `outputs_config`), as an absolute path ("" when unknown)."""
    return config_name(str(report.get("outputs_config") or report.get("config") or ""))


def config_name(path: str) -> str:
    """A configuration as run.json names it: its absolute path (not resolving links: a
    configuration behind a link that is repointed stays the same one), or the label of the
    built-in one."""
    return os.path.abspath(path) if path and not path.startswith("(") else path


class Kept(NamedTuple):
    """What OUT holds before a run: the trial and configuration whose lists they are ("" when
    unknown), the sites that have a candidates.csv, by name, and each one's lists as run.json
    describes them (what a failed run's run.json then says of the lists it keeps)."""

    trial: str
    config: str
    sites: list[str]
    lists: dict[str, Lists]


def kept_outputs(out: Path) -> Kept:
    report = run_report(out)  # (read once: the three parts describe one run.json)
    return Kept(
        outputs_trial(report),
        outputs_config(report),
        sorted(p.parent.name for p in out.glob("*/candidates.csv")),
        lists_of(report),
    )


def kept_warnings(out: Path, kept: Kept, config: str, sites: list[str]) -> list[str]:
    """run.json's warnings on lists in OUT that a run of `config` screening `sites` neither
    compares with nor replaces: another configuration's (`change` is not computed against
    them, as for another trial's), or a site's that it does not screen."""
    said = []
    if kept.config and kept.config != config:
        said.append(
            f"the candidate lists in {out} were written by another configuration "
            f"({kept.config}): `change` is not computed against them"
        )
    return said + [
        f"{out / sid} holds the lists of a site this configuration does not screen (left by an "
        "earlier run; this run.json does not describe them)"
        for sid in kept.sites
        if sid not in sites
    ]


def run_report(out: Path) -> dict[str, Any]:
    """OUT/run.json ({} when absent, unreadable or not ours)."""
    try:
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def changed_criteria(prev: PreviousRun, c: Candidate) -> list[str]:
    """Criteria whose cell differs from the previous run (criteria present in both runs)."""
    before = prev.cells.get(c.patient.id)
    if before is None:
        return []
    now = rows.statuses(c)
    return [cid for cid, old in before.items() if now.get(cid, "") not in ("", old)]


def apply(prev: dict[str, str], sr: SiteResult, trial_id: str) -> None:
    """Set `Candidate.change` for every candidate: new / tier a -> b / criteria changed: x, y.

    A previous run of another trial is not comparable: it is forgotten (no changes shown).
    """
    if isinstance(prev, PreviousRun) and prev.trial and prev.trial != trial_id:
        prev.forget(OTHER_TRIAL)
    for c in sr.candidates:
        c.change = rows.change_of(sr, c)
        if not isinstance(prev, PreviousRun):
            continue
        changed = changed_criteria(prev, c)
        if changed:
            prev.changed[c.patient.id] = changed
            if not c.change:
                c.change = "criteria changed: " + ", ".join(changed)


def other_code(prev: dict[str, str], now: str) -> str:
    """What wrote the lists a site's `change` was computed against, when that was another
    version of cohort's code than `now` (this run's `code_version`): an upgrade's first night,
    whose changes may be the new code's, not the records'. "" when it was not, or whose they
    are is unknown (nothing compared; no run.json describing them). Sets
    `PreviousRun.other_code` for summary.html."""
    if not isinstance(prev, PreviousRun) or not prev.found or prev.lists is None:
        return ""
    said = prev.lists.other_code(now)
    prev.other_code = said
    this = f"; this run's {now}" if prev.lists.code_version else ""
    return f"{said}{this}" if said else ""


def upgrade_warnings(out: Path, by_site: dict[str, str]) -> list[str]:
    """run.json's warnings of `other_code` (site -> what wrote its lists), one per writer."""
    said = []
    for what in dict.fromkeys(w for w in by_site.values() if w):
        sites = [sid for sid, w in by_site.items() if w == what]
        which = f"site {sites[0]}" if len(sites) == 1 else "sites " + ", ".join(sites)
        said.append(
            f"the lists in {out} of {which} were written by another version of cohort ({what}):"
            " the `change` column and summary.html's changes since the last run include what"
            " the upgrade changed, not only the records"
        )
    return said
