"""`cohort explain PATIENT_ID`: every criterion for one patient, with the evidence used and ignored.

Prints to the terminal of an authorised user; nothing here logs (patient data is PHI).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from cohort.asof import today
from cohort.codeversion import code_version
from cohort.config import Config, SiteConfig
from cohort.criteria.base import Criterion
from cohort.criteria.dropped import unclaimed
from cohort.criteria.trial import site_title
from cohort.errors import ArgumentError
from cohort.evaluate import evaluate, is_screened, make_context
from cohort.merged import Merges, Side, merges_of
from cohort.model import (
    Candidate,
    Code,
    ConditionFact,
    DroppedFact,
    Evidence,
    ExposureFact,
    ImmunizationFact,
    PatientFacts,
    ProcedureFact,
    Result,
    Status,
    UnreadableFact,
)
from cohort.rank import rank
from cohort.report.kept import Lists, OutLists, read_lists
from cohort.runner import Loaded
from cohort.safetext import printable
from cohort.screening import add_side, last_seen, site_extractor, site_params
from cohort.store import Store
from cohort.terminology import Terminology
from cohort.tools.common import open_store
from cohort.tools.sites import chosen_sites, config_label, listed_elsewhere


def rule_summary(c: Criterion, site: SiteConfig) -> str:
    """`kind: key=value, ...` from the trial file (plus a site override of the minimum age)."""
    parts = []
    for key, value in c.params.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown = "[" + ", ".join(value) + "]"
        elif isinstance(value, list | dict):
            shown = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            shown = str(value).lower()  # as the trial file writes it
        else:
            shown = str(value)
        parts.append(f"{key}={shown}")
    if c.kind == "age" and site.min_age is not None:
        parts.append(f"site min_age={site.min_age}")
    if c.manual_when_unknown:
        parts.append("manual_when_unknown=true")
    return f"{c.kind}: " + ", ".join(parts)


def _evidence_line(e: Evidence) -> str:
    value = " ".join(x for x in (e.value, e.unit) if x)
    cells = [e.ref, e.concept, value, e.date]
    text = "  ".join(x for x in cells if x)
    note = e.full_note  # (with the value as recorded when it shows it converted)
    return printable(f"{text}  -- {note}" if note else text)


def _codings(facts: PatientFacts) -> dict[str, tuple[list[Code], str]]:
    """ref -> the codings and names each record is matched to concepts by (an Observation's
    components' too: a panel's component is what a lab concept's row maps)."""
    out: dict[str, tuple[list[Code], str]] = {}
    records: list[
        ConditionFact
        | DroppedFact
        | ExposureFact
        | ImmunizationFact
        | ProcedureFact
        | UnreadableFact
    ] = [
        *facts.conditions,
        *facts.exposures,
        *facts.immunizations,
        *facts.procedures,
        *facts.unreadable,
        *facts.unnamed,
        *facts.dropped,  # (by the codes its concepts are read by: the fact's, when it reads)
    ]
    for r in records:
        out[r.ref] = (list(r.codes), r.text)
    for o in facts.observations:
        codes, texts = list(o.codes), [o.text]
        for part_codes, part_text, _ in o.components:
            codes += part_codes
            texts.append(part_text)
        out[o.ref] = (codes, " | ".join(t for t in texts if t))
    return out


def _matched(
    term: Terminology, e: Evidence, codings: dict[str, tuple[list[Code], str]]
) -> list[str]:
    """The `matched:` line under an evidence line: the mapping rows its record is of its
    concept through (none for a record no row maps, such as the Patient)."""
    codes, text = codings.get(e.ref, ([], ""))
    if not e.concept or not (codes or text):
        return []
    rows = term.matched_rows(e.concept, codes, text)
    return [f"    matched: {printable('; '.join(rows))}"] if rows else []


def _find(
    store: Store, cfg: Config, out: Path, pid: str, site_id: str | None
) -> tuple[SiteConfig, str, Merges, list, Side | None]:
    """(site, the patient as screening reads it, the site's merges, records, side facts):
    a merged chart's patient is the one that replaced it, read with its records
    (cohort/merged.py)."""
    for site in chosen_sites(cfg, site_id):
        merges = merges_of(store, site.id)
        target = merges.into.get(pid, pid)
        for got, resources, extra in merges.records(store, site.id, [target]):
            return site, got, merges, resources, extra
    where = f"site {site_id}" if site_id else "any site"
    # a patient of a site taken out of the configuration, whose list is still in OUT: not
    # explained from the store (its site's settings went with it), said rather than denied
    elsewhere = listed_elsewhere(cfg, out, pid)
    if elsewhere:
        ids = ", ".join(s.id for s in cfg.sites)
        where += f" of {config_label(cfg)} (its sites: {ids}){elsewhere}"
    raise ArgumentError(f"patient '{pid}' is not in the local store for {where}")


NOTE = "note: this may not match candidates.csv: "


def _undated(out: Path, site: str, found: OutLists, lists: Lists | None) -> str:
    """Why `site` is judged as of today though `out` may hold its lists, for the note (""
    when it holds none: nothing to differ from); `lists`: run.json's description of them."""
    if lists is not None:  # (run.json edited by hand, or damaged)
        return f"run.json gives no readable as-of date for site {site}'s lists"
    if found.failed:
        return "the last run failed and run.json does not say which run wrote the lists kept"
    folder = out / site
    if not (folder / "candidates.csv").exists():
        return ""
    if found.status == "success":  # (a site put back: its folder is a run's before the last)
        earlier = f"{folder} holds site {site}'s lists from an earlier run"
        return f"{earlier}, which run.json does not describe"
    if not (out / "run.json").exists():  # (a run that exited 11, or removed by hand)
        return f"there is no run.json in {out} to say which run wrote site {site}'s lists"
    # (not JSON, or of no finished run: cohort writes run.json last, with its status)
    return f"run.json is damaged and does not say which run wrote site {site}'s lists"


def judged_on(out: Path, site: str, as_of: date | None, mapping: str) -> tuple[date, str, str]:
    """(the day to judge on, what the first line adds about it, a note line or ""): without
    `as_of`, the day of `site`'s lists in `out` (run.json: the last run's, or after a failed
    run the lists it kept), else today; `explain` is asked why the CSV says what it says. The
    note says what may still make it differ from the CSV (`mapping`: the version read now), or
    why the day is today beside lists in `out` (`_undated`)."""
    if as_of is not None:
        return as_of, "", ""
    found = read_lists(out)
    lists = found.sites.get(site)
    try:
        day = date.fromisoformat(lists.as_of) if lists else None
    except ValueError:
        day = None
    if lists is None or day is None:
        undated = _undated(out, site, found, lists)
        return today(), "", (f"{NOTE}{undated} (judged as of today)" if undated else "")
    said = (
        " (the run's, from run.json)"
        if lists.by_last_run
        else f" (the lists', from run.json: the last run, as of {found.last.as_of},"
        " failed and kept them)"
    )
    why: list[str] = []
    if lists.store_changed_since:
        why.append(
            f"a run that failed since they were written read site {site}'s records into the store"
        )
    if lists.mapping_version and lists.mapping_version != mapping:
        why.append(f"the mappings are not the lists' ({lists.mapping()})")
    other = lists.other_code(code_version())
    if other:  # (an upgrade since they were written: its rules may read records otherwise)
        why.append(f"cohort's code is not the lists' ({other.removeprefix('code ')})")
    return day, said, (NOTE + "; ".join(why) if why else "")


def explain_patient(
    cfg: Config, out: Path, pid: str, as_of: date | None, site_id: str | None = None
) -> str:
    """The explanation as text: reuses the runner's extraction and the criteria evaluation.
    Without `as_of`, as of the day of the patient's site's lists (`judged_on`).

    Values, reasons and notes quote the data: their control characters (an ANSI escape
    sequence, a CR) and bidirectional controls are shown as escapes, one line each."""
    chosen_sites(cfg, site_id, out)  # (a --site the configuration lacks: before any reading)
    loaded = Loaded.from_config(cfg)
    with open_store(cfg, out) as store:
        site, target, merges, resources, extra = _find(store, cfg, out, pid, site_id)
        as_of, said, note = judged_on(out, site.id, as_of, loaded.term.version)
        extractor = site_extractor(site, store, loaded, as_of)
        facts = merges.mark(add_side(extractor.facts(target, resources), extra))
    olds = merges.olds.get(target, [])
    ctx = make_context(facts, loaded.term, as_of, loaded.rules, site_params(site))
    results = evaluate(loaded.trial, ctx)
    time_limited = {c.id for c in loaded.trial.criteria if c.time_limited}
    cand = rank(
        [Candidate(patient=facts.patient, results=results, last_seen=last_seen(facts, as_of))],
        as_of,
        time_limited,
    )[0]
    screened = is_screened(loaded.trial, ctx)
    lines = [
        f"patient {target} at site {site.id}, as of {as_of.isoformat()}"
        + said
        + f": tier {cand.tier}"
        + (f", eligible from {cand.eligible_from}" if cand.eligible_from else "")
        + ("" if screened else " (NOT screened: no condition of the screening concepts)"),
        f"trial {loaded.trial.id}; mapping version {loaded.term.version}"
        + (f" ({loaded.term.human_version})" if loaded.term.human_version else ""),
    ]
    if olds:
        lines.insert(
            1,
            f"merged charts: read with the records of {', '.join(olds)} (Patient.link"
            f" replaced-by or replaces: merged into {target})",
        )
    if note:  # (after the trial line: both say what the explanation was read with)
        lines.insert(2 + bool(olds), note)
    lines += _outcome_lines(results)
    codings = _codings(facts)
    by_id: dict[str, Result] = {r.criterion: r for r in results}
    for crit in loaded.trial.criteria:
        r = by_id[crit.id]
        title = site_title(crit, site.min_age)
        lines += ["", f"[{r.status.value}] {crit.id} - {title} ({crit.type})"]
        lines.append(f"  rule: {rule_summary(crit, site)}")
        lines.append(
            f"  reason: {printable(r.reason)}" + (" (to confirm manually)" if r.manual else "")
        )
        if r.eligible_from:
            lines.append(f"  passes from: {r.eligible_from}")
        for word, shown_ev in (("used", r.evidence), ("ignored", r.ignored)):
            for e in shown_ev:
                lines.append(f"  {word}: {_evidence_line(e)}")
                lines += _matched(loaded.term, e, codings)
    # (the dropped records of a criterion's concepts are among its ignored rows: evaluate)
    rest = unclaimed(loaded.trial.criteria, ctx)
    if rest:
        lines += ["", "records dropped by the reading rules (no criterion concept):"]
        lines += [f"  {d.ref}  -- {printable(d.why)}" for d in rest]
    return "\n".join(lines)


def _outcome_lines(results: list[Result]) -> list[str]:
    """Which criteria decide the tier, before ~26 blocks of detail: a researcher asking "why
    is this patient excluded?" reads the answer first (manual-only unknowns apart)."""
    out = []
    for status, word in ((Status.FAIL, "fails"), (Status.UNKNOWN, "unknown")):
        ids = [r.criterion for r in results if r.status is status and not r.manual]
        if ids:
            out.append(f"{word}: {', '.join(ids)}")
    manual = [r.criterion for r in results if r.manual]
    if manual:
        out.append(f"to confirm manually: {', '.join(manual)}")
    return out
