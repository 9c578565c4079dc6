"""Metamorphic properties across the as-of date (SPEC §3-4, docs/rules.md "Windows"), checked on
the shipped uci sample: one run's store, each patient evaluated again at other as-of dates.

P1: an excluded patient's `eligible_from` E is the first day none of its time-limited fails
remains: at E (the records on file at as_of only: no new exposure) none of them fails, on E - 1
one still fails, or is unknown because an end recorded only as a month or year may be after it
(E is then the first day it surely passes). P2: a time-limited fail keeps failing up to the
day before its own E (same partial-date proviso). P3: records only accumulate as as_of
advances: `prior_ianalumab` once failing keeps failing, `sle_diagnosis` once passing passes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from researcher_helpers import ROOT, UCI

from cohort.cli import cli
from cohort.config import load_config
from cohort.evaluate import evaluate, make_context
from cohort.ingest import Loaded
from cohort.merged import merges_of
from cohort.model import PatientFacts, Result, Status
from cohort.rank import eligible_from, tier_of
from cohort.screening import add_side, screened_ids, site_extractor, site_params
from cohort.store import Store

AS_OF = date(2026, 11, 25)
PARTIAL = "recorded only as"  # (the reason of a window that a partial end may still reach)


def _setup(tmp_path: Path) -> tuple[Loaded, dict[str, PatientFacts], set[str], dict]:
    from click.testing import CliRunner

    cfg_path = tmp_path / "uci.toml"
    cfg_path.write_text(
        f'[trial]\nid = "sirius-sle-2"\nmappings = "{ROOT / "mappings"}"\n'
        f'[[sites]]\nid = "uci"\nsource = "{UCI}"\n'
    )
    args = ["--log-level", "error", "run", "--config", str(cfg_path), "--as-of", str(AS_OF)]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    cfg = load_config(cfg_path)
    loaded = Loaded.from_config(cfg)
    site = cfg.sites[0]
    facts: dict[str, PatientFacts] = {}
    with Store(tmp_path / "out" / ".cohort" / "store.sqlite") as store:
        merges = merges_of(store, site.id)
        ids = merges.survivors(screened_ids(site.id, store, loaded))
        extractor = site_extractor(site, store, loaded, AS_OF)
        for pid, records, extra in merges.records(store, site.id, ids):
            facts[pid] = add_side(extractor.facts(pid, records), extra)
    limited = {c.id for c in loaded.trial.criteria if c.time_limited}
    return loaded, facts, limited, site_params(site)


def _on_file(f: PatientFacts, cut: date) -> PatientFacts:
    """`f` with only the records that may be dated on or before `cut` (no new exposure)."""
    return replace(
        f,
        observations=[o for o in f.observations if o.when is None or o.when <= cut],
        exposures=[e for e in f.exposures if e.start is None or e.start <= cut],
        immunizations=[i for i in f.immunizations if i.when is None or i.when <= cut],
        procedures=[p for p in f.procedures if p.start is None or p.start <= cut],
    )


def test_eligible_from_and_windows_hold_across_the_as_of_date(tmp_path: Path) -> None:
    loaded, facts, limited, params = _setup(tmp_path)

    def at(f: PatientFacts, day: date) -> dict[str, Result]:
        ctx = make_context(f, loaded.term, day, loaded.rules, params)
        return {r.criterion: r for r in evaluate(loaded.trial, ctx)}

    checked = 0
    for day in (AS_OF - timedelta(days=120), AS_OF, AS_OF + timedelta(days=60)):
        for f in facts.values():
            results = list(at(f, day).values())
            e = eligible_from(results, limited) if tier_of(results) == "excluded" else None
            if e is None:
                continue
            checked += 1
            fails = [r for r in results if r.status is Status.FAIL]
            assert all(r.criterion in limited and r.eligible_from for r in fails)
            kept = _on_file(f, day)
            on_e = at(kept, e)
            assert [c for c in limited if on_e[c].status is Status.FAIL] == [], (f.patient.id, day)
            before = at(kept, e - timedelta(days=1))
            assert any(
                before[c].status is Status.FAIL
                or (before[c].status is Status.UNKNOWN and PARTIAL in before[c].reason)
                for c in limited
            ), (f.patient.id, day, e)
            for r in fails:  # P2, on the first, middle and last day of its window
                assert r.eligible_from is not None
                span = (r.eligible_from - day).days
                for probe in {day, day + timedelta(days=span // 2), r.eligible_from - timedelta(1)}:
                    then = at(kept, probe)[r.criterion]
                    assert then.status is Status.FAIL or (
                        then.status is Status.UNKNOWN and PARTIAL in then.reason
                    ), (f.patient.id, r.criterion, day, probe, then.reason)
    assert checked >= 10  # (the sample has washouts and live vaccines: not vacuous)


def test_exposures_and_diagnoses_only_accumulate_as_the_as_of_date_advances(
    tmp_path: Path,
) -> None:
    loaded, facts, _, params = _setup(tmp_path)
    days = [date(2024, 1, 1) + timedelta(days=61 * i) for i in range(20)]  # to 2027-03
    seen = {"prior_ianalumab": 0, "sle_diagnosis": 0}
    for f in facts.values():
        failed = passed = False
        for day in days:
            ctx = make_context(f, loaded.term, day, loaded.rules, params)
            st = {r.criterion: r.status for r in evaluate(loaded.trial, ctx)}
            assert not failed or st["prior_ianalumab"] is Status.FAIL, (f.patient.id, day)
            assert not passed or st["sle_diagnosis"] is Status.PASS, (f.patient.id, day)
            failed = failed or st["prior_ianalumab"] is Status.FAIL
            passed = passed or st["sle_diagnosis"] is Status.PASS
        seen["prior_ianalumab"] += failed
        seen["sle_diagnosis"] += passed
    assert seen["prior_ianalumab"] >= 1 and seen["sle_diagnosis"] >= 60
