"""Reasons as coordinators read them (QA review): a window in the unit the trial file gives it,
sle_diagnosis's cut-off said as one, the corticosteroid without a usable dose named and dated,
background_therapy's fail saying what was found but not counted; docs/rules.md."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest
from criteria_helpers import (
    ICD,
    KINDS,
    ago,
    condition,
    context,
    criterion,
    dosage,
    immunization,
    medication,
    mg,
    run,
    terminology,
    trial,
)

from cohort.criteria.base import Span, window_span
from cohort.model import Result
from cohort.report.nophi import WITHHELD, public_result, reason_wording

PREDNISONE, HCQ, TRIAMCINOLONE = "8640", "5521", "10759"


def _with_window(cid: str, window: dict[str, int], *resources: dict[str, Any]) -> Result:
    """`cid` of the shipped trial file with its window replaced by `window` (one key only)."""
    crit = criterion(cid)
    params = {k: v for k, v in crit.params.items() if not k.startswith("window_")}
    crit = dataclasses.replace(crit, params={**params, **window})
    return KINDS[crit.kind].fn(crit, context(*resources))


# --- 1. windows in the unit the file gives -----------------------------------------------------
@pytest.mark.parametrize(
    ("window", "said"),
    [
        ({"window_weeks": 12}, "12 weeks"),
        ({"window_weeks": 1}, "1 week"),
        ({"window_days": 84}, "84 days"),  # days stay days, a multiple of 7 or not
        ({"window_days": 90}, "90 days"),
        ({"window_months": 6}, "6 months"),
        ({"window_months": 1}, "1 month"),
    ],
)
def test_a_window_is_said_in_the_unit_the_trial_file_gives(window: dict, said: str) -> None:
    assert str(window_span(window)) == said


def test_a_window_in_weeks_is_the_same_days() -> None:
    # only the wording differs: the window, its start and eligible_from are as many days
    weeks, days = window_span({"window_weeks": 12}), window_span({"window_days": 84})
    assert weeks.before(date(2026, 11, 25)) == days.before(date(2026, 11, 25))
    assert weeks.after(date(2026, 10, 1)) == days.after(date(2026, 10, 1)) == date(2026, 12, 24)
    assert Span(days=84).days == weeks.days


def test_washout_reasons_say_the_protocol_weeks() -> None:
    r = run("washout_belimumab", medication(code="1092437", status="completed", when=ago(10)))
    assert r.reason == f"belimumab on {ago(10)}, within 12 weeks (until {r.eligible_from})"
    r = run("live_vaccine", immunization("03", ago(10)))
    assert r.reason == f"CVX 03 on {ago(10)}, within 4 weeks (until 2026-12-13)"


def test_washout_in_days_in_the_file_says_days() -> None:
    r = _with_window(
        "washout_belimumab",
        {"window_days": 90},
        medication(code="1092437", status="completed", when=ago(10)),
    )
    assert r.reason == f"belimumab on {ago(10)}, within 90 days (until {r.eligible_from})"


def test_high_dose_reason_says_weeks() -> None:
    r = run(
        "washout_high_dose_cs",
        medication(
            code=PREDNISONE, status="completed", start=ago(30), end=ago(20), dosages=[dosage(mg(60))]
        ),
    )
    assert r.status == "fail"
    assert r.reason == (
        f"prednisone 60 mg/day prednisone-equivalent > 40 within 12 weeks (until {r.eligible_from})"
    )


# --- 2. sle_diagnosis: the cut-off said as one ------------------------------------------------
def test_sle_too_recent_says_the_months_and_the_cutoff() -> None:
    r = run("sle_diagnosis", condition("M32.9", ICD, onset="2026-06-25"))
    assert r.status == "fail"
    assert r.reason == (
        "diagnosed 2026-06-25, less than 6 months before the as-of date"
        " (needs on or before 2026-05-25)"
    )


def test_sle_too_recent_says_the_criterions_own_months() -> None:
    crit = criterion("sle_diagnosis")
    crit = dataclasses.replace(crit, params={**crit.params, "min_months": 1})
    r = KINDS[crit.kind].fn(crit, context(condition("M32.9", ICD, onset="2026-11-01")))
    assert r.reason == (
        "diagnosed 2026-11-01, less than 1 month before the as-of date"
        " (needs on or before 2026-10-25)"
    )


# --- 3. washout_high_dose_cs: the corticosteroid without a usable dose named -------------------
def _no_dose(**kw: Any) -> dict[str, Any]:
    line = dosage()
    line["text"] = "20 mg daily per Dr Lee"  # the dosage's free text: never in a reason
    kw.setdefault("status", "active")
    return medication(dosages=[line], **kw)


def test_no_usable_dose_names_the_ingredient_and_its_start() -> None:
    record = _no_dose(code=PREDNISONE, text="pred per Dr Lee", start="2026-10-01")
    r = run("washout_high_dose_cs", record)
    assert r.status == "unknown"
    assert r.reason == "prednisone from 2026-10-01 in window without a usable dose"
    assert "Dr Lee" not in r.reason
    # the ingredient's name is the mappings' (fixed wording): --no-phi keeps it
    wording = reason_wording(terminology(), trial().criteria)
    assert public_result(r, wording).reason == r.reason


def test_no_usable_dose_on_one_day() -> None:
    r = run(
        "washout_high_dose_cs",
        _no_dose(code=PREDNISONE, status="completed", when="2026-11-01"),
    )
    assert r.reason == "prednisone on 2026-11-01 in window without a usable dose"


def test_no_usable_dose_of_a_brand_in_text_names_its_ingredient() -> None:
    # QA p81: "Medrol dosepak" is methylprednisolone by the mappings' text entries
    r = run("washout_high_dose_cs", _no_dose(code=None, text="Medrol dosepak", start="2026-11-01"))
    assert r.reason == "methylprednisolone from 2026-11-01 in window without a usable dose"


class _NoIngredients:
    """The shipped terminology, but knowing no exposure's ingredient."""

    def __getattr__(self, name: str) -> Any:
        return getattr(terminology(), name)

    def medication_ingredients(self, codes: Any, text: str = "") -> frozenset[str]:
        return frozenset()


def test_no_usable_dose_without_an_ingredient_quotes_the_evidence_value_withheld_by_no_phi() -> None:
    # no ingredient known: the record as its evidence shows it, a free text evidence value
    # which --no-phi withholds where the reason quotes it
    ctx = context(_no_dose(code=None, text="Medrol per Dr Lee", start="2026-11-01"))
    ctx = dataclasses.replace(ctx, term=_NoIngredients())
    r = KINDS["high_dose"].fn(criterion("washout_high_dose_cs"), ctx)
    assert r.status == "unknown"
    value = r.evidence[0].value
    assert "Medrol per Dr Lee" in value
    assert r.reason == f"{value} from 2026-11-01 in window without a usable dose"
    public = public_result(r, reason_wording(terminology(), trial().criteria)).reason
    assert public == f"{WITHHELD} from 2026-11-01 in window without a usable dose"


def test_no_usable_dose_with_several_says_how_many_more() -> None:
    r = run(
        "washout_high_dose_cs",
        _no_dose(code=PREDNISONE, start="2026-10-01"),
        _no_dose(code=PREDNISONE, start="2026-10-15"),
    )
    assert r.reason.endswith("in window without a usable dose (and 1 more)"), r.reason


# --- 4. background_therapy: what was found but not counted -------------------------------------
def test_background_fail_names_the_last_therapy_and_its_end() -> None:
    r = run(
        "background_therapy",
        medication(code=HCQ, status="completed", start="2025-01-01", end="2026-10-01"),
        medication(code=PREDNISONE, status="completed", start="2025-01-01", end="2026-03-01"),
    )
    assert r.status == "fail"
    # the drug by the mappings' name, its group after it (as a washout's fail names it)
    assert r.reason == (
        "no current qualifying therapy (last: hydroxychloroquine (antimalarial), ended 2026-10-01)"
    )


def test_background_fail_names_the_drug_by_the_mappings_not_the_record_text() -> None:
    """The record's free text is not quoted: --no-phi keeps the reason whole."""
    record = medication(
        code=HCQ, text="Plaquenil per Dr Lee", status="completed", start="2025-01-01", end="2026-10-01"
    )
    r = run("background_therapy", record)
    assert r.status == "fail"
    assert "Dr Lee" not in r.reason and "Plaquenil" not in r.reason
    assert "hydroxychloroquine (antimalarial)" in r.reason
    wording = reason_wording(terminology(), trial().criteria)
    assert public_result(r, wording).reason == r.reason


def test_background_fail_by_a_label_that_names_the_drug_says_it_once() -> None:
    record = medication(text="belimumab", status="completed", start="2025-01-01", end="2026-10-01")
    r = run("background_therapy", record, params={"concepts": ["belimumab"]})
    assert (r.status, r.reason) == (
        "fail",
        "no current qualifying therapy (last: belimumab, ended 2026-10-01)",
    )


def test_background_fail_without_a_known_ingredient_names_the_group() -> None:
    # a record of the group by a code whose ingredient the mappings do not know
    ctx = context(medication(code=HCQ, status="completed", start="2025-01-01", end="2026-10-01"))
    ctx = dataclasses.replace(ctx, term=_NoIngredients())
    r = KINDS["current_medication"].fn(criterion("background_therapy"), ctx)
    assert r.reason == "no current qualifying therapy (last: antimalarial, ended 2026-10-01)"


def test_background_fail_on_topical_only_says_it_is_not_counted() -> None:
    cream = medication(code=TRIAMCINOLONE, text="triamcinolone 0.1% cream", start=ago(100))
    r = run("background_therapy", cream)
    assert r.status == "fail"
    assert r.reason == (
        "no current qualifying therapy (triamcinolone not counted: not systemic by route or form)"
    )


def test_background_fail_without_any_qualifying_record_is_unchanged() -> None:
    r = run("background_therapy", medication(code="6809", status="active", start=ago(100)))
    assert (r.status, r.reason) == ("fail", "no current qualifying therapy")
