"""Kind `recent_record`: an inclusion that needs a record in a window ("an influenza vaccination
within the last 12 months", "an echocardiogram within 6 months"): the inclusion counterpart of
a washout, for Immunization and Procedure records; docs/criteria-kinds.md."""

from __future__ import annotations

import dataclasses

from criteria_helpers import ago, context, criterion, immunization, procedure
from researcher_helpers import check_all, copy_mappings, edit

from cohort.criteria.registry import KINDS
from cohort.model import Result

# MMR (CVX 03, a verified row of the shipped `live_vaccine`) stands in for any vaccine, and
# Plasmapheresis (SNOMED 20720000) for any procedure
MMR, PLASMA = "03", "20720000"


def _run(params: dict, *resources: dict) -> Result:
    crit = dataclasses.replace(criterion("live_vaccine"), kind="recent_record", params=params)
    return KINDS["recent_record"].fn(crit, context(*resources))


VACCINE = {"immunizations": ["live_vaccine"], "window_months": 12}


def test_a_vaccination_in_the_window_passes() -> None:
    r = _run(VACCINE, immunization(MMR, ago(30)))
    assert (str(r.status), r.reason) == ("pass", f"live vaccine on {ago(30)}, within 12 months")
    assert [e.note for e in r.evidence] == ["within window"]


def test_none_fails() -> None:
    r = _run(VACCINE)
    assert (str(r.status), r.reason) == ("fail", "no live vaccine within 12 months")


def test_only_an_older_one_fails_naming_it() -> None:
    # 12 calendar months before 2026-11-25 is 2025-11-25: the window's first day
    r = _run(VACCINE, immunization(MMR, "2025-11-24"))
    assert (str(r.status), r.reason) == (
        "fail",
        "no live vaccine within 12 months (last on 2025-11-24)",
    )
    assert [e.note for e in r.ignored] == ["outside window (before 2025-11-25)"]
    assert str(_run(VACCINE, immunization(MMR, "2025-11-25")).status) == "pass"


def test_one_after_as_of_is_no_record_yet() -> None:
    assert str(_run(VACCINE, immunization(MMR, ago(-3))).status) == "fail"


def test_a_partial_date_across_the_window_start_is_unknown() -> None:
    r = _run(VACCINE, immunization(MMR, "2025-11"))
    assert (str(r.status), r.reason) == (
        "unknown",
        "live vaccine recorded only as 2025-11: cannot tell if within 12 months",
    )
    # beside a sure one, it changes nothing
    assert str(_run(VACCINE, immunization(MMR, "2025-11"), immunization(MMR, ago(5))).status) == (
        "pass"
    )


def test_an_undated_one_is_unknown() -> None:
    r = _run(VACCINE, immunization(MMR, None))
    assert (str(r.status), r.reason) == (
        "unknown",
        "live vaccine undated: cannot tell if within 12 months",
    )


def test_a_vaccination_not_done_does_not_count() -> None:
    r = _run(VACCINE, immunization(MMR, ago(30), status="not-done"))
    assert str(r.status) == "fail"


def test_a_procedure_in_the_window_passes() -> None:
    params = {"procedures": ["plasmapheresis"], "window_days": 90}
    r = _run(params, procedure(PLASMA, when=ago(90)))
    assert (str(r.status), r.reason) == ("pass", f"plasmapheresis on {ago(90)}, within 90 days")
    assert str(_run(params, procedure(PLASMA, when=ago(91))).status) == "fail"
    # a procedure still going on at as_of, started before the window, is within it
    ongoing = procedure(PLASMA, start="2020-01-01", status="in-progress")
    assert str(_run(params, ongoing).status) == "pass"


def test_a_criteria_file_needs_a_window_and_records(tmp_path) -> None:
    mappings = copy_mappings(tmp_path)
    trial = mappings / "trials" / "sirius-sle-2.toml"
    edit(
        trial,
        '[[criteria]]\nid = "live_vaccine"',
        '[[criteria]]\nid = "vaccinated"\ntype = "inclusion"\nkind = "recent_record"\n'
        'immunizations = ["live_vaccine"]\n\n[[criteria]]\nid = "examined"\n'
        'type = "inclusion"\nkind = "recent_record"\nwindow_days = 30\n\n'
        '[[criteria]]\nid = "live_vaccine"',
        "vaccinated",
    )
    code, lines = check_all(mappings)
    errors = [e for e in lines if "'vaccinated'" in e or "'examined'" in e]
    assert code == 4
    assert any(
        "criterion 'vaccinated': key 'window_days': kind 'recent_record' needs window_days, "
        "window_weeks or window_months" in e
        for e in errors
    ), errors
    assert any(
        "criterion 'examined': key 'immunizations': kind 'recent_record' needs at least one of "
        "procedures, immunizations" in e
        for e in errors
    ), errors
