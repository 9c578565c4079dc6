"""Reasons a study coordinator can act on (QA review of the sample run): an indeterminate result
with its value, date and the equivocal range; a prior study drug and a washout drug with their
dates; an unconvertible value's `missing` item; a value reported with a comparator against a
limit in words. docs/rules.md."""

from __future__ import annotations

from datetime import date

import pytest
from checks_helpers import ANTI_HBC, HCG_QUAL, HCG_QUANT, lab
from criteria_helpers import (
    ago,
    condition,
    criterion,
    immunization,
    medication,
    observation,
    qty,
    run,
    terminology,
    trial,
)

from cohort.criteria.ids import without_id
from cohort.model import Candidate, CriterionInfo, NoValue, Patient, Result, SiteResult, Status
from cohort.report import rows
from cohort.report.nophi import WITHHELD, public_result, reason_wording

TACROLIMUS, RITUXIMAB, BELIMUMAB = "42316", "121191", "1092437"


# --- 1. a lab check's result that decides nothing: its value, date and why -----------------------
def test_an_indeterminate_hcg_gives_its_value_date_and_the_equivocal_range() -> None:
    """uci-p0073: "hCG result indeterminate or unreadable" beside 12 mIU/mL between 5 and 25."""
    hcg = lab(HCG_QUANT, 10, {"valueQuantity": qty(12, "mIU/mL", "m[IU]/mL")})
    r = run("pregnancy_lactation", hcg)
    assert str(r.status) == "unknown"
    assert r.reason == f"hCG 12 mIU/mL on {ago(10)}: indeterminate (5-25)"
    assert without_id("pregnancy_lactation", r.reason) == r.reason


def test_an_unreadable_result_says_unreadable_and_quotes_it() -> None:
    r = run("pregnancy_lactation", lab(HCG_QUAL, 10, {"valueString": "see report"}))
    assert str(r.status) == "unknown"
    assert r.reason == f"hCG result 'see report' on {ago(10)}: unreadable"
    # --no-phi: the record's text is withheld, the rest stays
    assert public_result(r).reason == f"hCG result '{WITHHELD}' on {ago(10)}: unreadable"


def test_a_result_word_indeterminate_is_said_once() -> None:
    r = run("hbv", lab(ANTI_HBC, 30, {"valueString": "Indeterminate"}))
    assert str(r.status) == "unknown"
    assert r.reason == f"anti-HBc indeterminate on {ago(30)}"


def test_a_value_its_interpretation_contradicts_says_so() -> None:
    o = lab(ANTI_HBC, 30, {"valueString": "Negative"}, interpretation="POS")
    r = run("hbv", o)
    assert str(r.status) == "unknown"
    assert r.reason == f"anti-HBc 'Negative' on {ago(30)}: value and interpretation disagree"


def test_a_comparator_on_either_side_of_the_cut_offs_says_it_cannot_tell() -> None:
    hcg = lab(HCG_QUANT, 10, {"valueQuantity": qty(30, "mIU/mL", "m[IU]/mL", "<")})
    r = run("pregnancy_lactation", hcg)
    assert (str(r.status), r.unconvertible) == ("unknown", "")
    assert r.reason == f"hCG <30 mIU/mL on {ago(10)}: cannot tell vs 5-25"


def test_an_unconvertible_hcg_says_so_and_asks_for_a_readable_value() -> None:
    hcg = lab(HCG_QUANT, 10, {"valueQuantity": qty(12, "furlongs")})
    r = run("pregnancy_lactation", hcg)
    assert str(r.status) == "unknown"
    assert r.reason == "hCG value/unit '12 furlongs' not convertible to mIU/mL"
    assert r.unconvertible == "hCG"
    # beside a pregnancy condition only unknown (to review), the gap is not the value alone
    stale = condition("Z33.1", onset="1995-03-02")
    assert run("pregnancy_lactation", hcg, stale).unconvertible == ""


def test_no_lab_check_reason_says_indeterminate_or_unreadable_any_more() -> None:
    for value in ({"valueQuantity": qty(12, "mIU/mL", "m[IU]/mL")}, {"valueString": "??"}):
        reason = run("pregnancy_lactation", lab(HCG_QUANT, 5, value)).reason
        assert "indeterminate or unreadable" not in reason


# --- 2. prior_ianalumab: the record with its dates --------------------------------------------
def _vay736(**kw: str) -> dict:
    kw.setdefault("status", "completed")
    return medication("MedicationStatement", None, text="VAY736", **kw)


@pytest.mark.parametrize(
    ("dates", "said"),
    [
        ({"start": "2024-09-16", "end": "2025-07-13"}, "VAY736 from 2024-09-16 to 2025-07-13"),
        ({"when": "2024-09-16"}, "VAY736 on 2024-09-16"),
        ({"start": "2024-09", "status": "active"}, "VAY736 from 2024-09, ongoing"),
        ({}, "VAY736, no date recorded"),
    ],
)
def test_prior_study_drug_reason_gives_the_records_dates(dates: dict, said: str) -> None:
    r = run("prior_ianalumab", _vay736(**dates))
    assert (str(r.status), r.reason) == ("fail", said)


def test_prior_study_drug_names_the_latest_record() -> None:
    old = _vay736(start="2022-01-03", end="2022-05-01")
    new = _vay736(start="2024-09-16", end="2025-07-13")
    assert run("prior_ianalumab", old, new).reason == "VAY736 from 2024-09-16 to 2025-07-13"


# --- 3. washouts: the drug (mapped ingredient) and its last date ------------------------------
def _stmt(code: str, start: str, end: str | None = None, text: str | None = None) -> dict:
    status = "completed" if end else "active"
    return medication(code=code, text=text, status=status, start=start, end=end)


def test_a_washout_names_the_ingredient_its_class_and_the_last_date() -> None:
    """uci-p0010: "calcineurin inhibitor within 12 weeks (until 2027-01-06)" named no drug."""
    r = run("washout_12wk", _stmt(TACROLIMUS, ago(100), ago(10)))
    assert str(r.status) == "fail"
    assert r.reason == (
        f"tacrolimus (calcineurin inhibitor) last {ago(10)}, within 12 weeks "
        f"(until {r.eligible_from})"
    )


def test_a_single_day_exposure_is_on_its_day() -> None:
    admin = medication("MedicationAdministration", RITUXIMAB, status="completed", when=ago(100))
    r = run("washout_b_cell_depletion", admin)
    assert r.reason == (
        f"rituximab (B-cell depleting therapy) on {ago(100)}, within 36 weeks "
        f"(until {r.eligible_from})"
    )


def test_an_ingredient_its_class_label_says_already_is_not_repeated() -> None:
    r = run("washout_belimumab", medication(code=BELIMUMAB, status="completed", when=ago(10)))
    assert r.reason == f"belimumab on {ago(10)}, within 12 weeks (until {r.eligible_from})"


def test_an_ongoing_washout_drug_gives_its_start() -> None:
    r = run("washout_12wk", _stmt(TACROLIMUS, ago(100)))
    assert r.reason == (
        f"tacrolimus (calcineurin inhibitor) since {ago(100)}, within 12 weeks "
        "(ongoing or no known end)"
    )


def test_a_vaccine_washout_gives_its_day() -> None:
    r = run("live_vaccine", immunization("03", ago(10)))
    assert r.reason == f"CVX 03 on {ago(10)}, within 4 weeks (until {r.eligible_from})"


def test_no_phi_keeps_the_mapped_ingredient_but_never_the_records_text() -> None:
    """The drug is the mappings' ingredient name, fixed wording: --no-phi keeps it, while the
    record's own text (a brand name with a note) is never quoted."""
    text = "Prograf per Dr Lee"
    r = run("washout_12wk", _stmt(TACROLIMUS, ago(100), ago(10), text=text))
    assert "Prograf" not in r.reason and "Lee" not in r.reason
    wording = reason_wording(terminology(), trial().criteria)
    assert public_result(r, wording).reason == r.reason
    # a record whose text is the ingredient alone: the ingredient is still no record text
    alone = medication(
        status="completed", start=ago(100), end=ago(10), code=None, text="tacrolimus"
    )
    r = run("washout_12wk", alone)
    assert r.reason.startswith("tacrolimus (calcineurin inhibitor) last ")
    assert public_result(r, wording).reason == r.reason


def test_a_washout_record_coded_by_text_names_the_mapped_ingredient() -> None:
    # a brand name the mappings read: the ingredient it maps to, never the brand
    r = run("washout_12wk", medication(status="completed", start=ago(100), end=ago(10),
                                       text="Prograf"))  # fmt: skip
    assert r.reason.startswith("tacrolimus (calcineurin inhibitor) last ")


# --- 4. `missing` of an unknown from a value/unit that cannot be converted ----------------------
HINT = "CBC within 90 days"
INFOS = [
    CriterionInfo("platelets", "exclusion", "Platelets >= 25", missing_hint=HINT),
    CriterionInfo("neutrophils", "exclusion", "ANC", missing_hint="CBC with differential"),
]


def _missing(*results: Result) -> list[str]:
    c = Candidate(Patient("p1", "1990-01-01", "female"), list(results), tier="possible")
    site = SiteResult("uci", "UCI", date(2026, 11, 25), list(INFOS), [], [c])
    return rows.missing_items(site, c)


def test_an_unconvertible_value_asks_for_a_readable_one_not_the_test() -> None:
    """uci-p0053: `missing` asked for a "CBC within 90 days" beside its platelet count of
    '250 furlongs': the coordinator would order a CBC that exists."""
    r = run("platelets", observation("777-3", ago(10), valueQuantity=qty(250, "furlongs")))
    assert str(r.status) == "unknown"
    assert r.unconvertible == "platelets"
    assert _missing(r) == ["platelets: readable value/unit (check the lab's unit)"]


def test_a_missing_result_still_asks_for_the_hint() -> None:
    r = run("platelets")
    assert (str(r.status), r.unconvertible) == ("unknown", "")
    assert _missing(r) == [HINT]


def test_the_unconvertible_result_is_named_by_its_label() -> None:
    r = run("neutrophils", observation("751-8", ago(10), valueQuantity=qty(1.2, "cells/hpf")))
    assert _missing(r) == ["ANC: readable value/unit (check the lab's unit)"]


def test_any_kind_can_say_so_through_the_result() -> None:
    r = Result("neutrophils", Status.UNKNOWN, "x", unconvertible="ANC")
    assert _missing(r) == ["ANC: readable value/unit (check the lab's unit)"]
    # which of the two `missing` asks for is what the result says its results are, whatever
    # its reason's words (they once decided it: a quoted or reworded reason misled it)
    quoted = "ANC '1.2 outside the plausible range' cannot be read"
    r = Result("neutrophils", Status.UNKNOWN, quoted, unconvertible="ANC")
    assert _missing(r) == ["ANC: readable value/unit (check the lab's unit)"]
    r = Result("neutrophils", Status.UNKNOWN, "x", unconvertible="ANC", no_value=NoValue.IMPLAUSIBLE)
    assert _missing(r) == ["ANC: plausible value (check the result)"]
    # a pass or fail never adds a missing item
    assert _missing(Result("neutrophils", Status.FAIL, "x", unconvertible="ANC")) == []


def test_labs_exceed_says_so_only_when_every_gap_is_an_unconvertible_value() -> None:
    creat = observation("2160-0", ago(3), valueQuantity=qty(1, "furlongs"))
    r = run("severe_lupus_nephritis", creat)
    assert str(r.status) == "unknown"
    assert r.unconvertible == "creatinine"
    params = {"measures": [
        {"concepts": ["creatinine"], "fail_above": 3},
        {"concepts": ["upcr"], "fail_above": 2, "required": True},
    ]}  # fmt: skip
    r = run("severe_lupus_nephritis", creat, params=params)
    assert str(r.status) == "unknown"
    assert r.unconvertible == ""  # a measure with no result: the hint asks for it


def test_cd19_count_after_the_last_dose_unconvertible_says_so() -> None:
    admin = medication("MedicationAdministration", RITUXIMAB, status="completed", when=ago(300))
    cd19 = observation("8116-6", ago(5), valueQuantity=qty(50, "%", "%"))
    r = run("washout_b_cell_depletion", admin, cd19)
    assert (str(r.status), r.unconvertible) == ("unknown", "CD19 B-cell count")


# --- 5. a value reported with a comparator against a limit --------------------------------------
def test_a_titer_below_its_reported_dilution_says_below_and_the_limit() -> None:
    """uci-p0005: "ana_titer: <1:40 < 1:80 on 2026-05-09"."""
    r = run("ana_titer", observation("5048-4", ago(20), valueString="<1:40"))
    assert str(r.status) == "fail"
    assert r.reason == f"ANA titer below 1:40 (limit 1:80) on {ago(20)}"
    # candidates.csv writes "ana_titer: " before it, the id in words left out
    assert without_id("ana_titer", r.reason) == f"below 1:40 (limit 1:80) on {ago(20)}"


def test_a_titer_without_comparator_keeps_its_wording() -> None:
    r = run("ana_titer", observation("5048-4", ago(20), valueString="1:40"))
    assert r.reason == f"ANA titer 1:40 < 1:80 on {ago(20)}"


def test_a_titer_above_its_reported_dilution_passes_in_words() -> None:
    r = run("ana_titer", observation("5048-4", ago(20), valueString=">1:1280"))
    assert (str(r.status), r.reason) == ("pass", f"ANA titer above 1:1280 (limit 1:80) on {ago(20)}")


def test_a_lab_value_with_a_comparator_against_its_limit_in_words() -> None:
    low = observation("777-3", ago(10), valueQuantity=qty(20, "10*3/uL", "10*3/uL", "<"))
    r = run("platelets", low)
    assert (str(r.status), r.reason) == (
        "fail",
        f"platelets below 20 x10^3/uL (limit 25) on {ago(10)}",
    )
    assert without_id("platelets", r.reason) == f"below 20 x10^3/uL (limit 25) on {ago(10)}"
    high = observation("777-3", ago(10), valueQuantity=qty(30, "10*3/uL", "10*3/uL", ">="))
    assert run("platelets", high).reason == "platelets at least 30 x10^3/uL (limit 25)"
    plain = observation("777-3", ago(10), valueQuantity=qty(20, "10*3/uL", "10*3/uL"))
    assert run("platelets", plain).reason == f"platelets 20 x10^3/uL < 25 on {ago(10)}"


def test_a_limit_exceeded_by_a_comparator_value_in_words() -> None:
    creat = observation("2160-0", ago(3), valueQuantity=qty(5, "mg/dL", "mg/dL", ">"))
    r = run("severe_lupus_nephritis", creat)
    assert str(r.status) == "fail"
    assert f"creatinine above 5 mg/dL (limit {_creatinine_limit()}) on {ago(3)}" in r.reason


def _creatinine_limit() -> str:
    m = next(m for m in criterion("severe_lupus_nephritis").params["measures"]
             if "creatinine" in m["concepts"])  # fmt: skip
    return f"{float(m['fail_above']):g}"


def test_a_cd19_count_below_a_reported_bound_in_words() -> None:
    admin = medication("MedicationAdministration", RITUXIMAB, status="completed", when=ago(300))
    cd19 = observation("8116-6", ago(5), valueQuantity=qty(5, "/uL", "/uL", "<"))
    r = run("washout_b_cell_depletion", admin, cd19)
    assert (str(r.status), r.reason) == (
        "fail",
        f"CD19 B-cell count below 5 /uL (lower limit 80) on {ago(5)} since last dose {ago(300)}",
    )


@pytest.mark.parametrize(
    ("reason", "shown"),
    [
        ("ANA titer below 1:40 (limit 1:80) on 2026-05-09", "below 1:40 (limit 1:80) on 2026-05-09"),
        ("ANA titer above 1:1280 (limit 1:80)", "above 1:1280 (limit 1:80)"),
        ("ANA titer at least 1:160 (limit 1:80)", "at least 1:160 (limit 1:80)"),
        ("ANA titer at most 1:40 (limit 1:80)", "at most 1:40 (limit 1:80)"),
        ("ANA titer belowground", "ANA titer belowground"),  # a word, not a value
        ("ANA titer below normal", "ANA titer below normal"),  # no value follows
    ],
)
def test_the_id_in_words_before_a_value_in_words_is_left_out(reason: str, shown: str) -> None:
    assert without_id("ana_titer", reason) == shown


# --- 6. a value that converts but is outside the plausible range (units.csv): not "unconvertible" --
PLT_RANGE = "outside the plausible range 0-5000 x10^3/uL (check the result)"


def test_an_implausible_value_s_evidence_note_and_missing_item_say_so() -> None:
    """A platelet count of 32500 10*3/uL is in the concept's unit: its evidence note said "unit
    or value cannot be converted" and `missing` asked to check the lab's unit."""
    o = observation("777-3", ago(10), valueQuantity=qty(32500, "10*3/uL"))
    r = run("platelets", o)
    assert str(r.status) == "unknown"
    [ev] = r.evidence
    assert (ev.value, ev.unit, ev.note) == ("32500", "10*3/uL", f"32500 x10^3/uL {PLT_RANGE}")
    assert _missing(r) == ["platelets: plausible value (check the result)"]
    # an older implausible one, set aside, says so too; a unit that does not convert still
    # says that
    older = observation("777-3", ago(20), valueQuantity=qty(32500, "10*3/uL"))
    furlongs = observation("777-3", ago(30), valueQuantity=qty(250, "furlongs"))
    newest = observation("777-3", ago(5), valueQuantity=qty(250, "10*3/uL"))
    r = run("platelets", newest, older, furlongs)
    notes = {e.date: e.note for e in r.ignored}
    assert notes[ago(20)] == f"superseded by a newer result; 32500 x10^3/uL {PLT_RANGE}"
    assert notes[ago(30)] == "superseded by a newer result; unit or value cannot be converted"


def test_labs_exceed_names_an_implausible_value_and_its_range() -> None:
    creat = observation("2160-0", ago(3), valueQuantity=qty(500, "mg/dL"))
    r = run("severe_lupus_nephritis", creat)
    assert str(r.status) == "unknown"
    said = "500 mg/dL outside the plausible range 0-40 mg/dL (check the result)"
    assert r.reason == f"creatinine {said}"
    assert [e.note for e in r.evidence] == [said]
    assert r.no_value is NoValue.IMPLAUSIBLE
    assert _missing(r) == ["creatinine: plausible value (check the result)"]
    furlongs = observation("2160-0", ago(3), valueQuantity=qty(1, "furlongs"))
    assert run("severe_lupus_nephritis", furlongs).reason == "creatinine not convertible"


def test_a_lab_check_names_an_implausible_value_and_its_range() -> None:
    hcg = lab(HCG_QUANT, 10, {"valueQuantity": qty(6000000, "mIU/mL", "m[IU]/mL")})
    r = run("pregnancy_lactation", hcg)
    assert str(r.status) == "unknown"
    said = "6000000 mIU/mL outside the plausible range 0-5000000 mIU/mL (check the result)"
    assert r.reason == f"hCG {said}"
    assert r.unconvertible == "hCG"
    # its note says why it decides nothing, as lab_latest's does: no "result unreadable" first
    assert [e.note for e in r.evidence] == [said]
    assert _missing(r) == ["hCG: plausible value (check the result)"]
    # one whose unit does not convert still says it is unreadable, and why
    furlongs = lab(HCG_QUANT, 10, {"valueQuantity": qty(12, "furlongs")})
    r = run("pregnancy_lactation", furlongs)
    assert [e.note for e in r.evidence] == ["result unreadable; unit or value cannot be converted"]
    assert _missing(r) == ["hCG: readable value/unit (check the lab's unit)"]


def test_a_lab_check_asks_for_a_plausible_value_only_if_every_unread_result_is_one() -> None:
    """hCG reads every result in its window (`latest = false`): the unknown rests on each one
    unread, and the newest alone names it. One beside it whose unit does not convert still
    needs the lab's unit checked."""
    newest = lab(HCG_QUANT, 5, {"valueQuantity": qty(6000000, "mIU/mL", "m[IU]/mL")})
    older = lab(HCG_QUANT, 10, {"valueQuantity": qty(12, "furlongs")})
    r = run("pregnancy_lactation", newest, older)
    assert str(r.status) == "unknown"
    assert r.reason.startswith("hCG 6000000 mIU/mL outside the plausible range")
    assert (r.unconvertible, r.no_value) == ("hCG", NoValue.UNCONVERTIBLE)
    assert _missing(r) == ["hCG: readable value/unit (check the lab's unit)"]
    also = lab(HCG_QUANT, 10, {"valueQuantity": qty(7000000, "mIU/mL", "m[IU]/mL")})
    r = run("pregnancy_lactation", newest, also)
    assert (r.unconvertible, r.no_value) == ("hCG", NoValue.IMPLAUSIBLE)
    assert _missing(r) == ["hCG: plausible value (check the result)"]


def test_an_implausible_value_whose_recorded_unit_says_not_convertible_is_still_one() -> None:
    """The reason quotes the unit as recorded: its words "not convertible" had `missing` (which
    searched the reason) ask to check the lab's unit of a count that converts."""
    o = observation("777-3", ago(10), valueQuantity=qty(32500000, "/uL not convertible", "/uL"))
    r = run("platelets", o)
    assert str(r.status) == "unknown"
    assert r.reason == f"32500 x10^3/uL (recorded 32500000 /uL not convertible) {PLT_RANGE}"
    assert (r.unconvertible, r.no_value) == ("platelets", NoValue.IMPLAUSIBLE)
    assert _missing(r) == ["platelets: plausible value (check the result)"]


def test_a_cd19_count_after_the_last_dose_names_an_implausible_value_and_its_range() -> None:
    admin = medication("MedicationAdministration", RITUXIMAB, status="completed", when=ago(300))
    cd19 = observation("8116-6", ago(5), valueQuantity=qty(50000, "/uL", "/uL"))
    r = run("washout_b_cell_depletion", admin, cd19)
    said = "50000 /uL outside the plausible range 0-20000 /uL (check the result)"
    assert (str(r.status), r.unconvertible) == ("unknown", "CD19 B-cell count")
    assert r.reason == f"CD19 B-cell count after last dose {said}"
    assert [e.note for e in r.evidence if e.ref == f"Observation/{cd19['id']}"] == [said]
    cd19 = observation("8116-6", ago(5), valueQuantity=qty(50, "%", "%"))
    r = run("washout_b_cell_depletion", admin, cd19)
    assert r.reason == "CD19 B-cell count after last dose not convertible"
    assert [e.note for e in r.evidence if e.ref == f"Observation/{cd19['id']}"] == [
        "unit cannot be converted"
    ]
