"""Result criteria: ana_titer (`titer`), weight/sledai/platelets/hemoglobin/neutrophils
(`lab_latest`), bilag (`grades`), severe_lupus_nephritis (`labs_exceed`); docs/rules.md."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from criteria_helpers import (
    FLOWSHEET,
    LOINC,
    SNOMED,
    ago,
    cc,
    component,
    condition,
    facts,
    observation,
    qty,
    run,
    status,
)

ANA_TITER = "5048-4"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ANA_SCREEN = "8061-4"


def ana(value: dict[str, Any], days: int = 20, code: str = ANA_TITER, **kw: Any) -> dict:
    return observation(code, ago(days), **value, **kw)


# --- ana_titer ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"valueString": "1:160"}, "pass"),
        ({"valueString": "1:80"}, "pass"),  # threshold is >= 1:80
        ({"valueString": ">1:640"}, "pass"),
        ({"valueString": "1:40"}, "fail"),
        ({"valueString": "<1:40"}, "fail"),
        ({"valueString": "<1:80"}, "fail"),  # below 1:80
        ({"valueString": ">1:40"}, "unknown"),  # cannot tell
        ({"valueString": "Negative"}, "fail"),
        ({"valueRatio": {"numerator": qty(1), "denominator": qty(160)}}, "pass"),
        ({"valueRatio": {"numerator": qty(1), "denominator": qty(40)}}, "fail"),
        ({"valueQuantity": qty(160, "{titer}", "{titer}")}, "pass"),
        ({"valueQuantity": qty(320, "titer")}, "pass"),
        ({"valueQuantity": qty(40, "{titer}", "{titer}")}, "fail"),
    ],
)
def test_ana_titer_representations(value: dict, expected: str) -> None:
    assert status("ana_titer", ana(value)) == expected


@pytest.mark.parametrize("code", ["5048-4", "29953-7", "20401-6"])
def test_ana_titer_codes(code: str) -> None:
    assert status("ana_titer", ana({"valueString": "1:320"}, code=code)) == "pass"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"valueString": "Positive"}, "unknown"),
        ({"valueString": "Negative"}, "fail"),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "10828004"}]}}, "unknown"),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "260385009"}]}}, "fail"),
    ],
)
def test_ana_qualitative_only(value: dict, expected: str) -> None:
    assert status("ana_titer", ana(value, code=ANA_SCREEN)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # positive at a dilution of 1:80 or more: the titer is at least that, whether the lab
        # wrote the end titer or the dilution it screened at
        ("Positive 1:160", "pass"),
        ("POSITIVE (1:80)", "pass"),
        ("Positive, titer >1:640", "pass"),
        ("1:320", "pass"),  # a dilution alone on the screen code
        # positive at a lower dilution: at least 1:40 tells nothing against 1:80
        ("Positive at 1:40", "unknown"),
        ("Positive <1:80", "unknown"),
        # negative at any dilution is a negative screen
        ("Negative 1:80", "fail"),
        ("Negative <1:40", "fail"),
    ],
)
def test_ana_screen_result_with_a_dilution(value: str, expected: str) -> None:
    """SPEC: "most recent ANA titer >= 1:80 -> pass ... only a qualitative positive -> unknown".
    A screen result that names its dilution was unreadable ("Positive 1:160": no titer code, no
    result word alone) and the patient unknown; positive at 1:80 or more is a titer >= 1:80."""
    r = run("ana_titer", ana({"valueString": value}, code=ANA_SCREEN))
    assert r.status == expected, r.reason


def test_ana_screen_positive_at_a_dilution_is_the_most_recent_titer() -> None:
    """It decides over an older titer, as a newer titer would; a newer titer decides over it."""
    old_titer = ana({"valueString": "1:40"}, days=300)
    screen = ana({"valueString": "Positive 1:160"}, days=30, code=ANA_SCREEN)
    r = run("ana_titer", old_titer, screen)
    assert r.status == "pass" and "1:160" in r.reason
    assert [e.ref for e in r.evidence] == [f"Observation/{screen['id']}"]
    new_titer = ana({"valueString": "1:40"}, days=5)
    assert status("ana_titer", screen, new_titer) == "fail"


def test_ana_qualitative_by_interpretation_only() -> None:
    o = ana({}, code=ANA_SCREEN, interpretation="POS")
    assert status("ana_titer", o) == "unknown"


def test_no_ana_is_unknown() -> None:
    assert status("ana_titer") == "unknown"


@pytest.mark.parametrize(
    ("older", "newer", "expected"),
    [
        ("1:160", "1:40", "fail"),
        ("1:40", "1:160", "pass"),
        ("<1:40", ">1:640", "pass"),
    ],
)
def test_ana_newer_titer_supersedes_older(older: str, newer: str, expected: str) -> None:
    r = run(
        "ana_titer", ana({"valueString": older}, days=400), ana({"valueString": newer}, days=10)
    )
    assert r.status == expected


def test_ana_newer_negative_titer_supersedes_older_positive_titer() -> None:
    r = run(
        "ana_titer",
        ana({"valueString": "1:160"}, days=400),
        ana({"valueString": "Negative"}, days=10),
    )
    assert r.status == "fail"


def test_ana_titer_beats_newer_qualitative() -> None:
    # with a titer, the titer decides; the qualitative screen only matters with no titer
    assert (
        status(
            "ana_titer",
            ana({"valueString": "1:160"}, days=300),
            ana({"valueString": "Negative"}, days=5, code=ANA_SCREEN),
        )
        == "pass"
    )


def test_ana_newer_qualitative_decides_among_qualitative() -> None:
    assert (
        status(
            "ana_titer",
            ana({"valueString": "Positive"}, days=300, code=ANA_SCREEN),
            ana({"valueString": "Negative"}, days=5, code=ANA_SCREEN),
        )
        == "fail"
    )


@pytest.mark.parametrize("obs_status", ["entered-in-error", "cancelled", "registered"])
def test_ana_dropped_status_is_ignored(obs_status: str) -> None:
    assert (
        status(
            "ana_titer",
            ana({"valueString": "1:160"}, days=300),
            ana({"valueString": "1:40"}, days=5, status=obs_status),
        )
        == "pass"
    )


def test_ana_undated_titer_is_ignored() -> None:
    o = observation(ANA_TITER, None, valueString="1:160")
    r = run("ana_titer", o)
    assert r.status == "unknown"
    assert any(e.ref == f"Observation/{o['id']}" for e in r.ignored)


def test_ana_after_as_of_is_ignored() -> None:
    assert status("ana_titer", ana({"valueString": "1:40"}, days=-3)) == "unknown"


# --- weight ------------------------------------------------------------------------------------
def weight(value: dict, days: int = 30) -> dict:
    return observation("29463-7", ago(days), valueQuantity=value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (qty(60, "kg", "kg"), "pass"),
        (qty(35, "kg", "kg"), "pass"),
        (qty(34.9, "kg", "kg"), "fail"),
        (qty(60, "kg"), "pass"),  # unit text only
        (qty(60, "Kg"), "pass"),
        (qty(80, "lb", "[lb_av]"), "pass"),  # 36.3 kg
        (qty(75, "lb", "[lb_av]"), "fail"),  # 34.0 kg
        (qty(80, "lbs"), "pass"),
        (qty(75, "lbs"), "fail"),
        (qty(60000, "g", "g"), "pass"),
        (qty(60, "stones-ish"), "unknown"),  # unconvertible
        ({"value": 60}, "unknown"),  # no unit at all
    ],
)
def test_weight_units(value: dict, expected: str) -> None:
    assert status("weight", weight(value)) == expected


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("2025-11-25", "pass"),  # exactly 12 calendar months: inclusive
        ("2025-11-24", "unknown"),  # outside 12 months
        ("2026-11-25", "pass"),
    ],
)
def test_weight_window(date: str, expected: str) -> None:
    o = observation("29463-7", date, valueQuantity=qty(60, "kg", "kg"))
    assert status("weight", o) == expected


def test_weight_most_recent_decides() -> None:
    assert (
        status("weight", weight(qty(60, "kg", "kg"), 200), weight(qty(30, "kg", "kg"), 5)) == "fail"
    )
    assert (
        status("weight", weight(qty(30, "kg", "kg"), 200), weight(qty(60, "kg", "kg"), 5)) == "pass"
    )


def test_weight_entered_in_error_ignored() -> None:
    bad = observation(
        "29463-7", ago(1), valueQuantity=qty(20, "kg", "kg"), status="entered-in-error"
    )
    assert status("weight", weight(qty(60, "kg", "kg")), bad) == "pass"


def test_weight_none_is_unknown() -> None:
    assert status("weight") == "unknown"


# --- sledai / bilag (manual when unknown) ------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"valueInteger": 8}, "pass"),
        ({"valueInteger": 6}, "pass"),
        ({"valueInteger": 4}, "fail"),
        ({"valueQuantity": qty(10, "{score}", "{score}")}, "pass"),
    ],
)
def test_sledai_local_code(value: dict, expected: str) -> None:
    r = run("sledai", observation("SLEDAI-2K", ago(20), FLOWSHEET, **value))
    assert r.status == expected
    assert r.manual is False


def test_sledai_unknown_is_manual() -> None:
    r = run("sledai")
    assert r.status == "unknown"
    assert r.manual is True


def test_sledai_outside_90_days_is_manual_unknown() -> None:
    r = run("sledai", observation("SLEDAI-2K", ago(91), FLOWSHEET, valueInteger=10))
    assert (r.status, r.manual) == ("unknown", True)


def test_sledai_day_90_is_inside() -> None:
    assert status("sledai", observation("SLEDAI-2K", ago(90), FLOWSHEET, valueInteger=10)) == "pass"


def bilag(*grades: str, days: int = 20) -> dict:
    comps = [component(f"organ{i}", valueString=g) for i, g in enumerate(grades)]
    return observation("BILAG-2004", ago(days), FLOWSHEET, components=comps)


@pytest.mark.parametrize(
    ("grades", "expected"),
    [
        (("A", "C", "D"), "pass"),
        (("B", "B", "C"), "pass"),
        (("B", "C", "D"), "fail"),
        (("C", "D", "E"), "fail"),
    ],
)
def test_bilag_grades(grades: tuple[str, ...], expected: str) -> None:
    r = run("bilag", bilag(*grades))
    assert r.status == expected
    assert r.manual is False


def test_bilag_unknown_is_manual() -> None:
    r = run("bilag")
    assert (r.status, r.manual) == ("unknown", True)
    # the concept and the window's start, not the title spliced into a sentence
    assert r.reason == "no BILAG-2004 assessment since 2026-08-27"


def test_bilag_one_assessment_recorded_twice_counts_each_organ_once() -> None:
    """A preliminary and a final copy of one assessment on one day (the same organ systems):
    each organ's grade counts once, the final copy's where they differ; one B is not two."""
    grades = [component("renal", valueString="B"), component("mucocutaneous", valueString="C")]
    prelim = observation("BILAG-2004", ago(10), FLOWSHEET, status="preliminary", components=grades)
    final = observation("BILAG-2004", ago(10), FLOWSHEET, status="final", components=grades)
    assert status("bilag", final) == "fail"
    r = run("bilag", prelim, final)
    assert r.status == "fail" and "0 A and 1 B" in r.reason, r.reason
    # the final copy's grade wins over the preliminary one's for the same organ
    amended = [component("renal", valueString="A"), component("mucocutaneous", valueString="C")]
    first = observation("BILAG-2004", ago(10), FLOWSHEET, status="preliminary", components=amended)
    assert status("bilag", first, final) == "fail"
    # different organ systems on the same day still add up
    other = [component("musculoskeletal", valueString="B")]
    more = observation("BILAG-2004", ago(10), FLOWSHEET, components=other)
    assert status("bilag", final, more) == "pass"


def test_bilag_components_under_one_code_named_by_text_are_separate_organs() -> None:
    """SPEC §3 bilag: >= 2 organ systems graded B pass. A site that codes each organ under the
    assessment's one flowsheet code names the organ in the text, as it does for separate
    results ("BILAG-2004 Renal"): two components so named are two organ systems, not one."""
    renal = {"code": cc("BILAG-2004", FLOWSHEET, text="Renal"), "valueString": "B"}
    msk = {"code": cc("BILAG-2004", FLOWSHEET, text="Musculoskeletal"), "valueString": "B"}
    assessment = observation("BILAG-2004", ago(10), FLOWSHEET, components=[renal, msk])
    r = run("bilag", assessment)
    assert r.status == "pass", r.reason
    assert "0 A and 2 B" in r.reason
    # the same organ recorded twice (a preliminary and a final copy) is still one organ
    prelim = observation("BILAG-2004", ago(10), FLOWSHEET, status="preliminary", components=[renal])
    final = observation("BILAG-2004", ago(10), FLOWSHEET, components=[renal])
    assert status("bilag", prelim, final) == "fail"


def organ(grade: str, text: str | None = None, code: str = "BILAG-2004", **kw: str) -> dict:
    """A BILAG component: the organ named by `text` (and a display) under `code`."""
    return {"code": cc(code, FLOWSHEET, text=text, **kw), "valueString": grade}


def bilag_copies(*copies: tuple[str, list[dict]]) -> list[dict]:
    """Copies (status, components) of one assessment on one day."""
    return [
        observation("BILAG-2004", ago(10), FLOWSHEET, status=st, components=c) for st, c in copies
    ]


def test_bilag_an_organ_s_own_code_is_one_organ_whatever_its_text_in_each_copy() -> None:
    # a site coding each organ under a code of its own: the code names the organ; a copy that
    # adds a display or writes the text otherwise is the same organ, not a second B
    copies = bilag_copies(
        ("preliminary", [organ("B", None, "renal", display="Renal"), organ("C", None, "msk")]),
        ("final", [organ("B", None, "renal"), organ("C", "Musculoskeletal", "msk")]),
    )
    r = run("bilag", *copies)
    assert (r.status, r.reason) == ("fail", f"0 A and 1 B on {ago(10)}")


def test_bilag_organs_named_under_one_code_ignore_case_and_spacing() -> None:
    copies = bilag_copies(
        ("preliminary", [organ("B", "Renal"), organ("C", "Musculoskeletal")]),
        ("final", [organ("B", "RENAL "), organ("C", "musculoskeletal")]),
    )
    r = run("bilag", *copies)
    assert (r.status, r.reason) == ("fail", f"0 A and 1 B on {ago(10)}")


@pytest.mark.parametrize(
    ("unnamed", "named", "expected"),
    [
        # one named B: the unnamed B is a second organ or the renal one again: cannot tell
        ("B", ("B", "C"), "unknown"),
        ("A", ("C", "C"), "unknown"),
        # either way the outcome is the same
        ("C", ("B", "B"), "pass"),
        ("B", ("A", "C"), "pass"),
        ("C", ("C", "C"), "fail"),
    ],
)
def test_bilag_a_component_without_a_name_beside_organs_named_under_its_code(
    unnamed: str, named: tuple[str, str], expected: str
) -> None:
    # under a code whose components name their organs by text, one with no text names none
    renal, msk = named
    components = [organ(renal, "Renal"), organ(msk, "Musculoskeletal"), organ(unnamed)]
    r = run("bilag", *bilag_copies(("final", components)))
    assert r.status == expected, r.reason
    if expected == "unknown":
        assert "no organ named" in r.reason, r.reason
        assert r.manual is True


def test_bilag_latest_assessment_decides() -> None:
    assert status("bilag", bilag("A", days=60), bilag("C", "C", days=10)) == "fail"


# --- platelets / hemoglobin / neutrophils ------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (qty(150, "K/uL"), "pass"),
        (qty(20, "K/uL"), "fail"),
        (qty(25, "K/uL"), "pass"),  # not < 25
        (qty(24.9, "x10E3/uL"), "fail"),
        (qty(150, "x10E3/uL"), "pass"),
        (qty(20, "x10(3)/mcL"), "fail"),  # Oracle Health (Cerner) style: mcL for uL
        (qty(240, "x10(3)/mcL"), "pass"),
        (qty(240, "K/mcL"), "pass"),
        (qty(20000, "/mcL"), "fail"),
        (qty(20000, "/mm3", "/mm3"), "fail"),
        (qty(150000, "/mm3", "/mm3"), "pass"),
        (qty(20, "10*9/L", "10*9/L"), "fail"),
        (qty(150, "10*9/L", "10*9/L"), "pass"),
        (qty(150, "10*3/uL", "10*3/uL"), "pass"),
        (qty(150, "G/L"), "pass"),
        (qty(84, "K/ul"), "pass"),  # K/uL's alias whatever the case, not UCUM's kelvin per uL
        (qty(20, "K/ul"), "fail"),
        (qty(150, "%"), "unknown"),  # unconvertible
        (qty(150, "furlongs"), "unknown"),
        ({"value": 150}, "unknown"),  # no unit
    ],
)
def test_platelets_units(value: dict, expected: str) -> None:
    assert status("platelets", observation("777-3", ago(10), valueQuantity=value)) == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [(90, "fail"), (91, "unknown"), (0, "fail")],
)
def test_platelets_window(days: int, expected: str) -> None:
    o = observation("777-3", ago(days), valueQuantity=qty(10, "K/uL"))
    assert status("platelets", o) == expected


def test_platelets_newest_in_window_decides() -> None:
    low_old = observation("777-3", ago(200), valueQuantity=qty(10, "K/uL"))
    ok_new = observation("26515-7", ago(30), valueQuantity=qty(200, "K/uL"))
    assert status("platelets", low_old, ok_new) == "pass"
    low_new = observation("777-3", ago(5), valueQuantity=qty(10, "K/uL"))
    assert status("platelets", ok_new, low_new) == "fail"


def test_platelets_newest_unconvertible_is_unknown() -> None:
    ok = observation("777-3", ago(30), valueQuantity=qty(200, "K/uL"))
    odd = observation("777-3", ago(5), valueQuantity=qty(200, "bananas"))
    assert status("platelets", ok, odd) == "unknown"


def test_platelets_entered_in_error_distractor() -> None:
    ok = observation("777-3", ago(30), valueQuantity=qty(200, "K/uL"))
    bad = observation("777-3", ago(5), valueQuantity=qty(5, "K/uL"), status="entered-in-error")
    assert status("platelets", ok, bad) == "pass"


def test_platelets_date_from_issued_and_period() -> None:
    a = observation("777-3", ago(10), date_field="issued", valueQuantity=qty(10, "K/uL"))
    b = observation("777-3", ago(10), date_field="effectivePeriod", valueQuantity=qty(10, "K/uL"))
    assert status("platelets", a) == "fail"
    assert status("platelets", b) == "fail"


@pytest.mark.parametrize("cid", ["platelets", "hemoglobin", "neutrophils"])
def test_cbc_none_is_unknown(cid: str) -> None:
    assert status(cid) == "unknown"


@pytest.mark.parametrize(
    ("code", "value", "expected"),
    [
        ("718-7", qty(12, "g/dL", "g/dL"), "pass"),
        ("718-7", qty(8.0, "g/dL", "g/dL"), "pass"),
        ("718-7", qty(7.9, "g/dL", "g/dL"), "fail"),
        ("718-7", qty(7.5, "g/dl"), "fail"),
        ("718-7", qty(75, "g/L", "g/L"), "fail"),
        ("718-7", qty(120, "g/L", "g/L"), "pass"),
        ("59260-0", qty(4.5, "mmol/L", "mmol/L"), "fail"),  # 7.25 g/dL
        ("59260-0", qty(5.5, "mmol/L", "mmol/L"), "pass"),  # 8.86 g/dL
        ("718-7", qty(12, "%"), "unknown"),
    ],
)
def test_hemoglobin_units(code: str, value: dict, expected: str) -> None:
    assert status("hemoglobin", observation(code, ago(10), valueQuantity=value)) == expected


AIHA_ICD = "D59.11"
AIHA_SNOMED = "413603009"
# The aiha SNOMED code (413603009, a single public source) is kept with verified=N: these tests
# of the rule load it as a run with `use_unverified = true` would (the default:
# test_hemoglobin_aiha_by_default_reads_the_verified_icd_code_only).
LOOSE = {"use_unverified": True}


@pytest.mark.parametrize(
    ("hb", "aiha", "expected"),
    [
        (7.5, None, "fail"),
        (7.5, condition(AIHA_ICD), "pass"),  # threshold 7.0 with active AIHA
        (7.5, condition(AIHA_SNOMED, SNOMED), "pass"),
        (6.9, condition(AIHA_ICD), "fail"),
        (7.0, condition(AIHA_ICD), "pass"),
        (7.5, condition(AIHA_ICD, clinical="resolved"), "fail"),  # not active
        (7.5, condition(AIHA_ICD, abatement=ago(10)), "fail"),  # abated before as_of
        (7.5, condition(AIHA_ICD, verification="refuted"), "fail"),
        (7.5, condition(AIHA_ICD, clinical="recurrence"), "pass"),
    ],
)
def test_hemoglobin_aiha_threshold(hb: float, aiha: dict | None, expected: str) -> None:
    o = observation("718-7", ago(10), valueQuantity=qty(hb, "g/dL", "g/dL"))
    extra = [aiha] if aiha else []
    assert status("hemoglobin", o, *extra, **LOOSE) == expected


def test_hemoglobin_aiha_by_default_reads_the_verified_icd_code_only() -> None:
    """By default (no use_unverified) the ICD-10-CM D59.1x codes (verified: CMS FY2021) lower
    the limit to 7.0; the single-source SNOMED code does not."""
    o = observation("718-7", ago(10), valueQuantity=qty(7.5, "g/dL", "g/dL"))
    assert status("hemoglobin", o, condition(AIHA_ICD)) == "pass"
    assert status("hemoglobin", o, condition(AIHA_SNOMED, SNOMED)) == "fail"


def test_drug_induced_aiha_lowers_the_hemoglobin_limit() -> None:
    """ICD-10-CM D59.0 Drug-induced autoimmune hemolytic anemia is an autoimmune hemolytic anemia
    (SPEC hemoglobin: < 7.0 g/dL when an active AIHA condition is present); audit condaudit."""
    hb = observation("718-7", ago(5), valueQuantity=qty(7.5, "g/dL", "g/dL"))
    r = run("hemoglobin", hb, condition("D59.0", onset=ago(100)))
    assert str(r.status) == "pass", r.reason  # 7.5 >= 7.0 with an active AIHA
    assert status("hemoglobin", hb, condition("D59.2")) == "fail"  # drug-induced nonautoimmune


def test_hemoglobin_aiha_without_clinical_status_is_not_active() -> None:
    # SPEC: active = clinicalStatus active/recurrence/relapse, so the 8.0 threshold applies
    o = observation("718-7", ago(10), valueQuantity=qty(7.5, "g/dL", "g/dL"))
    assert status("hemoglobin", o, condition(AIHA_ICD, clinical=None)) == "fail"


@pytest.mark.parametrize("verification", ["provisional", "differential", "unconfirmed"])
@pytest.mark.parametrize(("hb", "expected"), [(7.5, "unknown"), (6.9, "fail"), (8.0, "pass")])
def test_hemoglobin_unconfirmed_aiha_does_not_lower_the_limit(
    hb: float, expected: str, verification: str
) -> None:
    """An AIHA condition recorded as provisional/differential/unconfirmed is no established
    AIHA (as for sle_diagnosis, unconfirmed_verification): a hemoglobin between the two limits
    passes only with the AIHA, so it is unknown, naming the condition; below 7.0 or from 8.0
    the AIHA changes nothing."""
    o = observation("718-7", ago(10), valueQuantity=qty(hb, "g/dL", "g/dL"))
    aiha = condition(AIHA_ICD, onset=ago(100), verification=verification, rid="c-aiha")
    r = run("hemoglobin", o, aiha)
    assert str(r.status) == expected, r.reason
    if expected == "unknown":
        assert f"recorded as {verification}" in r.reason
        assert "autoimmune hemolytic anemia" in r.reason  # aiha, by its label
        assert "Condition/c-aiha" in [e.ref for e in r.evidence]
    # a confirmed (or unstated) AIHA beside it lowers the limit as before
    for sure in ("confirmed", None):
        other = condition(AIHA_ICD, onset=ago(50), verification=sure)
        assert status("hemoglobin", o, aiha, other) == ("fail" if hb < 7 else "pass")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (qty(2.5, "K/uL"), "pass"),
        (qty(0.5, "K/uL"), "fail"),
        (qty(0.8, "10*3/uL", "10*3/uL"), "pass"),
        (qty(0.79, "x10E3/uL"), "fail"),
        (qty(500, "cells/uL"), "fail"),
        (qty(1500, "/uL", "/uL"), "pass"),
        (qty(0.5, "10*9/L", "10*9/L"), "fail"),
        (qty(60, "%"), "unknown"),  # a percentage is not an absolute count
    ],
)
def test_neutrophils_units(value: dict, expected: str) -> None:
    assert status("neutrophils", observation("751-8", ago(10), valueQuantity=value)) == expected


def test_neutrophil_percent_code_is_not_anc() -> None:
    o = observation("26511-6", ago(10), valueQuantity=qty(60, "%", "%"))
    assert status("neutrophils", o) == "unknown"


# --- severe_lupus_nephritis --------------------------------------------------------------------
def creat(value: dict, days: int = 10, code: str = "2160-0") -> dict:
    return observation(code, ago(days), valueQuantity=value)


def upcr(value: dict, days: int = 10) -> dict:
    return observation("2890-2", ago(days), valueQuantity=value)


def prot24(value: dict, days: int = 10) -> dict:
    return observation("2889-4", ago(days), valueQuantity=value)


@pytest.mark.parametrize(
    ("value", "code", "expected"),
    [
        (qty(1.0, "mg/dL", "mg/dL"), "2160-0", "pass"),
        (qty(2.0, "mg/dL", "mg/dL"), "2160-0", "pass"),  # not > 2.0
        (qty(2.1, "mg/dL", "mg/dL"), "2160-0", "fail"),
        (qty(2.5, "mg/dl"), "2160-0", "fail"),
        (qty(88, "umol/L", "umol/L"), "14682-9", "pass"),
        (qty(176.84, "umol/L", "umol/L"), "14682-9", "pass"),  # = 2.0 mg/dL exactly
        (qty(177, "umol/L", "umol/L"), "14682-9", "fail"),
        (qty(200, "µmol/L"), "14682-9", "fail"),
        (qty(1.0, "mg/dL", "mg/dL"), "38483-4", "pass"),
        (qty(1.0, "furlongs"), "2160-0", "unknown"),
    ],
)
def test_nephritis_creatinine(value: dict, code: str, expected: str) -> None:
    assert status("severe_lupus_nephritis", creat(value, code=code)) == expected


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        (upcr(qty(2.5, "mg/mg", "mg/mg")), "fail"),
        (upcr(qty(1.5, "mg/mg", "mg/mg")), "pass"),
        (upcr(qty(2.0, "mg/mg", "mg/mg")), "pass"),
        (upcr(qty(2500, "mg/g", "mg/g")), "fail"),
        (upcr(qty(1500, "mg/g creat")), "pass"),
        (upcr(qty(250, "mg/mmol", "mg/mmol")), "fail"),  # 2.21 mg/mg
        (upcr(qty(200, "mg/mmol creat")), "pass"),  # 1.77 mg/mg
        (prot24(qty(2.5, "g/d", "g/d")), "fail"),
        (prot24(qty(1.5, "g/(24.h)", "g/(24.h)")), "pass"),
        (prot24(qty(3000, "mg/24hr")), "fail"),
        (prot24(qty(500, "mg/24 h")), "pass"),
        (prot24(qty(2.5, "g/day")), "fail"),
    ],
)
def test_nephritis_proteinuria_with_normal_creatinine(measure: dict, expected: str) -> None:
    assert status("severe_lupus_nephritis", measure, creat(qty(0.9, "mg/dL", "mg/dL"))) == expected


def test_nephritis_reasons_carry_each_results_date() -> None:
    """Output audit: "creatinine 2.5 mg/dL > 2" without the result's date, where the other lab
    fails say "... on 2026-11-13"."""
    r = run("severe_lupus_nephritis", creat(qty(2.5, "mg/dL", "mg/dL"), days=12))
    assert (r.status, r.reason) == ("fail", f"creatinine 2.5 mg/dL > 2 on {ago(12)}")
    r = run(
        "severe_lupus_nephritis",
        upcr(qty(2.5, "mg/mg", "mg/mg"), days=20),
        creat(qty(2.1, "mg/dL", "mg/dL"), days=3),
    )
    assert r.reason == f"UPCR 2.5 mg/mg > 2 on {ago(20)}, creatinine 2.1 mg/dL > 2 on {ago(3)}"
    r = run("severe_lupus_nephritis", creat(qty(1.5, "mg/dL", "mg/dL", comparator=">"), days=3))
    assert (r.status, r.reason) == (
        "unknown",
        f"creatinine >1.5 mg/dL on {ago(3)}: cannot tell vs 2",
    )


def test_nephritis_proteinuria_fails_without_creatinine() -> None:
    assert status("severe_lupus_nephritis", upcr(qty(3, "mg/mg", "mg/mg"))) == "fail"


def test_nephritis_normal_proteinuria_without_creatinine_is_unknown() -> None:
    assert (
        status(
            "severe_lupus_nephritis",
            upcr(qty(0.5, "mg/mg", "mg/mg")),
            prot24(qty(0.3, "g/d", "g/d")),
        )
        == "unknown"
    )


def test_nephritis_no_data_is_unknown() -> None:
    assert status("severe_lupus_nephritis") == "unknown"


@pytest.mark.parametrize(("days", "expected"), [(90, "pass"), (91, "unknown")])
def test_nephritis_creatinine_window(days: int, expected: str) -> None:
    assert status("severe_lupus_nephritis", creat(qty(1.0, "mg/dL", "mg/dL"), days)) == expected


def timed(value: dict, timing: dict[str, Any], **kw: Any) -> dict:
    """A creatinine dated only by effectiveTiming (FHIR R4 Observation.effective[x])."""
    return observation("2160-0", None, valueQuantity=value, effectiveTiming=timing, **kw)


def test_nephritis_creatinine_dated_by_its_timing() -> None:
    """A result dated by effectiveTiming alone was undated and ignored (a creatinine of 3 in
    the window passed unseen: unknown, none in the window). Its earliest event dates it
    (2026-09-30, 56 days before as_of: in the 90-day window), not the first listed; without
    events, repeat.boundsPeriod.start."""
    high = qty(3.0, MG, MG)
    r = run("severe_lupus_nephritis",
            timed(high, {"event": ["2026-10-01T08:00:00Z", "2026-09-30"]}))  # fmt: skip
    assert (r.status, r.reason) == ("fail", "creatinine 3 mg/dL > 2 on 2026-09-30")
    r = run("severe_lupus_nephritis",
            timed(high, {"repeat": {"boundsPeriod": {"start": "2026-10-10"}}}))  # fmt: skip
    assert (r.status, r.reason) == ("fail", "creatinine 3 mg/dL > 2 on 2026-10-10")
    # its earliest event 2026-08-26 is 91 days before as_of: outside the window, though the
    # event listed first (2026-11-20) is in it
    r = run("severe_lupus_nephritis", timed(high, {"event": ["2026-11-20", "2026-08-26"]}))
    assert r.status == "unknown"
    assert status("severe_lupus_nephritis",
                  timed(qty(1.0, MG, MG), {"event": ["2026-11-20", "2026-08-27"]})) == "pass"  # fmt: skip


def test_nephritis_creatinine_with_a_malformed_timing() -> None:
    """An event that is no dateTime (a number) reads as no date, as a malformed
    effectivePeriod does: `issued` dates the result; else it is undated (no creatinine in the
    window: unknown) and a record whose date does not read."""
    high = qty(3.0, MG, MG)
    for bad in ({"effectiveTiming": {"event": [5]}}, {"effectivePeriod": {"start": 5}}):
        issued = {**bad, "issued": "2026-10-12T09:00:00Z"}
        r = run("severe_lupus_nephritis", observation("2160-0", None, valueQuantity=high, **issued))
        assert (r.status, r.reason) == ("fail", "creatinine 3 mg/dL > 2 on 2026-10-12"), bad
        undated = observation("2160-0", None, valueQuantity=high, **bad)
        r = run("severe_lupus_nephritis", undated)
        assert (r.status, r.reason) == ("unknown", "no creatinine in window"), bad
        [f] = facts(undated).unreadable
        assert (f.ref, f.why) == (f"Observation/{undated['id']}", "its date does not read"), bad


def test_nephritis_old_high_proteinuria_outside_window_ignored() -> None:
    assert (
        status(
            "severe_lupus_nephritis",
            upcr(qty(5, "mg/mg", "mg/mg"), days=120),
            creat(qty(1.0, "mg/dL", "mg/dL")),
        )
        == "pass"
    )


MG = "mg/dL"


def test_nephritis_any_creatinine_in_the_window_above_the_limit_fails() -> None:
    """SPEC §3: "within 90 days: ... serum creatinine > 2.0 mg/dL -> fail", not "most recent":
    creatinine 3.0 forty days ago fails though a 1.0 ten days ago is newer (it passed)."""
    high = creat(qty(3.0, MG, MG), 40)
    r = run("severe_lupus_nephritis", high, creat(qty(1.0, MG, MG), 10))
    assert r.status == "fail", r.reason
    assert r.reason == f"creatinine 3 mg/dL > 2 on {ago(40)}"
    shown = {e.ref: e for e in r.evidence}
    ev = shown[f"Observation/{high['id']}"]
    assert (ev.value, ev.unit, ev.date) == ("3", MG, ago(40))
    assert "above" in ev.note
    # the newer result is read too: the reading rests on every result of the window
    assert len(r.evidence) == 2
    # the order of the two does not matter
    assert (
        status("severe_lupus_nephritis", creat(qty(1.0, MG, MG), 40), creat(qty(3.0, MG, MG), 10))
        == "fail"
    )


def test_nephritis_every_result_within_its_limit_passes() -> None:
    r = run(
        "severe_lupus_nephritis",
        creat(qty(1.9, MG, MG), 80),
        creat(qty(1.0, MG, MG), 10),
        upcr(qty(1.5, "mg/mg", "mg/mg"), 70),
        upcr(qty(0.5, "mg/mg", "mg/mg"), 5),
    )
    assert (r.status, r.reason) == ("pass", "no value above its limit")
    assert len(r.evidence) == 4


def test_nephritis_an_older_proteinuria_in_the_window_above_the_limit_fails() -> None:
    r = run(
        "severe_lupus_nephritis",
        upcr(qty(2.5, "mg/mg", "mg/mg"), 60),
        upcr(qty(1.0, "mg/mg", "mg/mg"), 5),
        creat(qty(1.0, MG, MG), 5),
    )
    assert (r.status, r.reason) == ("fail", f"UPCR 2.5 mg/mg > 2 on {ago(60)}")


def test_nephritis_names_the_most_recent_result_above_the_limit() -> None:
    r = run(
        "severe_lupus_nephritis",
        creat(qty(2.6, MG, MG), 70),
        creat(qty(2.2, MG, MG), 30),
        creat(qty(1.0, MG, MG), 3),
    )
    assert (r.status, r.reason) == ("fail", f"creatinine 2.2 mg/dL > 2 on {ago(30)}")
    above = [e.date for e in r.evidence if "above" in e.note]
    assert above == [ago(30), ago(70)]


def test_nephritis_a_result_above_the_limit_outside_the_window_is_not_read() -> None:
    r = run("severe_lupus_nephritis", creat(qty(3.0, MG, MG), 91), creat(qty(1.0, MG, MG), 10))
    assert r.status == "pass", r.reason


@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        # a result that cannot be converted may be above the limit: unknown...
        ([creat(qty(1.0, "furlongs"), 40), creat(qty(1.0, MG, MG), 10)], "unknown"),
        ([creat(qty(1.0, MG, MG), 40), creat(qty(1.0, "furlongs"), 10)], "unknown"),
        ([creat(qty(1.5, MG, MG, comparator=">"), 40), creat(qty(1.0, MG, MG), 10)], "unknown"),
        # ...unless another result of the window already fails
        ([creat(qty(1.0, "furlongs"), 10), creat(qty(3.0, MG, MG), 40)], "fail"),
        ([creat(qty(1.0, "furlongs"), 10), upcr(qty(3, "mg/mg", "mg/mg"), 60)], "fail"),
        ([creat(qty(1.0, MG, MG), 10), upcr(qty(1, "bananas"), 60)], "unknown"),
    ],
)
def test_nephritis_an_unreadable_result_in_the_window(labs: list[dict], expected: str) -> None:
    assert status("severe_lupus_nephritis", *labs) == expected


def test_nephritis_unknown_names_the_unreadable_older_result() -> None:
    r = run(
        "severe_lupus_nephritis",
        creat(qty(1.0, "furlongs"), 40),
        creat(qty(1.0, MG, MG), 10),
    )
    assert r.status == "unknown"
    assert "creatinine not convertible" in r.reason
    assert any(e.note == "unit or value cannot be converted" for e in r.evidence)


LATEST_ONLY = {"latest_only": True}


def test_nephritis_latest_only_reads_each_measure_s_most_recent_result() -> None:
    # the criteria file's option: the reading before SPEC's, one result per measure
    older_high = creat(qty(3.0, MG, MG), 60)
    r = run("severe_lupus_nephritis", older_high, creat(qty(1.0, MG, MG), 5), params=LATEST_ONLY)
    assert r.status == "pass", r.reason
    assert [e.note for e in r.evidence] == ["most recent"]
    assert [e.note for e in r.ignored] == ["superseded by a newer result"]
    r = run(
        "severe_lupus_nephritis",
        creat(qty(1.0, MG, MG), 60),
        creat(qty(3.0, MG, MG), 5),
        params=LATEST_ONLY,
    )
    assert (r.status, r.reason) == ("fail", f"creatinine 3 mg/dL > 2 on {ago(5)}")
    # an unreadable older result is superseded, not unknown
    older_bad = creat(qty(1.0, "furlongs"), 40)
    newer = creat(qty(1.0, MG, MG), 10)
    assert status("severe_lupus_nephritis", older_bad, newer, params=LATEST_ONLY) == "pass"


def test_nephritis_unconvertible_upcr_makes_unknown() -> None:
    assert (
        status(
            "severe_lupus_nephritis", upcr(qty(1.0, "bananas")), creat(qty(1.0, "mg/dL", "mg/dL"))
        )
        == "unknown"
    )


def test_nephritis_entered_in_error_distractor() -> None:
    bad = observation(
        "2160-0", ago(2), valueQuantity=qty(4.0, "mg/dL", "mg/dL"), status="entered-in-error"
    )
    assert status("severe_lupus_nephritis", bad, creat(qty(1.0, "mg/dL", "mg/dL"))) == "pass"


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        (creat(qty(0.2, "mmol/L", "mmol/L"), code="14682-9"), "fail"),  # 200 umol/L
        (creat(qty(0.1, "mmol/L", "mmol/L"), code="14682-9"), "pass"),
    ],
)
def test_nephritis_creatinine_mmol(measure: dict, expected: str) -> None:
    assert status("severe_lupus_nephritis", measure) == expected


@pytest.mark.parametrize(("value", "expected"), [(2.5, "fail"), (1.0, "pass")])
def test_nephritis_upcr_g_per_g(value: float, expected: str) -> None:
    assert (
        status(
            "severe_lupus_nephritis",
            upcr(qty(value, "g/g", "g/g")),
            creat(qty(1.0, "mg/dL", "mg/dL")),
        )
        == expected
    )


def test_sledai_bare_number_quantity() -> None:
    assert (
        status("sledai", observation("SLEDAI-2K", ago(5), FLOWSHEET, valueQuantity={"value": 9}))
        == "pass"
    )


def test_sledai_entered_in_error_distractor() -> None:
    ok = observation("SLEDAI-2K", ago(30), FLOWSHEET, valueInteger=10)
    bad = observation("SLEDAI-2K", ago(5), FLOWSHEET, valueInteger=2, status="entered-in-error")
    assert status("sledai", ok, bad) == "pass"


@pytest.mark.parametrize(
    ("cid", "code", "ok", "low"),
    [
        ("hemoglobin", "718-7", qty(12, "g/dL", "g/dL"), qty(5, "g/dL", "g/dL")),
        ("neutrophils", "751-8", qty(3, "K/uL"), qty(0.1, "K/uL")),
    ],
)
def test_cbc_entered_in_error_distractor(cid: str, code: str, ok: dict, low: dict) -> None:
    good = observation(code, ago(30), valueQuantity=ok)
    bad = observation(code, ago(2), valueQuantity=low, status="entered-in-error")
    assert status(cid, good, bad) == "pass"


def test_nephritis_24h_protein_mg_per_day_text() -> None:
    assert (
        status(
            "severe_lupus_nephritis",
            prot24(qty(2500, "mg/day")),
            creat(qty(1.0, "mg/dL", "mg/dL")),
        )
        == "fail"
    )


@pytest.mark.parametrize(
    ("when", "expected"),
    [("2027-02-28", "pass"), ("2027-02-27", "unknown")],
)
def test_weight_12_months_from_leap_day(when: str, expected: str) -> None:
    o = observation("29463-7", when, valueQuantity=qty(60, "kg", "kg"))
    assert run("weight", o, as_of=date(2028, 2, 29)).status == expected


# --- value comparators (valueQuantity.comparator) ----------------------------------------------
# "<30" is some value below 30: it fails "< 25" only when every such value does, passes when
# none does, else the data cannot tell (unknown), as the titer kind reads "<1:80" / ">1:40".
@pytest.mark.parametrize(
    ("cid", "code", "value", "expected"),
    [
        ("platelets", "777-3", qty(20, "10*3/uL", "10*3/uL", comparator="<"), "fail"),
        ("platelets", "777-3", qty(25, "10*3/uL", "10*3/uL", comparator="<"), "fail"),
        ("platelets", "777-3", qty(30, "10*3/uL", "10*3/uL", comparator="<"), "unknown"),
        ("platelets", "777-3", qty(25, "10*3/uL", "10*3/uL", comparator="<="), "unknown"),
        ("platelets", "777-3", qty(20, "10*3/uL", "10*3/uL", comparator=">"), "unknown"),
        ("platelets", "777-3", qty(25, "10*3/uL", "10*3/uL", comparator=">="), "pass"),
        ("platelets", "777-3", qty(1000, "10*3/uL", "10*3/uL", comparator=">="), "pass"),
        ("neutrophils", "751-8", qty(1000, "cells/uL", comparator="<"), "unknown"),
        ("neutrophils", "751-8", qty(500, "cells/uL", comparator="<"), "fail"),
        ("hemoglobin", "718-7", qty(90, "g/L", "g/L", comparator="<"), "unknown"),
        ("hemoglobin", "718-7", qty(6, "g/dL", "g/dL", comparator=">"), "unknown"),
        ("weight", "29463-7", qty(40, "kg", "kg", comparator="<"), "unknown"),
        ("weight", "29463-7", qty(30, "kg", "kg", comparator=">"), "unknown"),
        ("weight", "29463-7", qty(35, "kg", "kg", comparator=">"), "pass"),
        ("weight", "29463-7", qty(35, "kg", "kg", comparator="<"), "fail"),
    ],
)
def test_lab_latest_reads_the_comparator(cid: str, code: str, value: dict, expected: str) -> None:
    r = run(cid, observation(code, ago(10), valueQuantity=value))
    assert r.status == expected
    assert r.evidence[0].value.startswith(value["comparator"])  # shown as reported


def test_hemoglobin_comparator_between_the_aiha_limits_is_unknown() -> None:
    # "<7.5" is below 8.0 but may be above the 7.0 limit that an active AIHA sets
    o = observation("718-7", ago(10), valueQuantity=qty(7.5, "g/dL", "g/dL", comparator="<"))
    assert status("hemoglobin", o) == "fail"
    assert status("hemoglobin", o, condition(AIHA_ICD)) == "unknown"
    low = observation("718-7", ago(10), valueQuantity=qty(7, "g/dL", "g/dL", comparator="<"))
    assert status("hemoglobin", low, condition(AIHA_ICD)) == "fail"


@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        ([creat(qty(3, "mg/dL", "mg/dL", comparator="<"))], "unknown"),
        ([creat(qty(2, "mg/dL", "mg/dL", comparator="<"))], "pass"),
        ([creat(qty(0.3, "mg/dL", "mg/dL", comparator="<"))], "pass"),
        ([creat(qty(1.5, "mg/dL", "mg/dL", comparator=">"))], "unknown"),
        ([creat(qty(2, "mg/dL", "mg/dL", comparator=">"))], "fail"),
        ([creat(qty(2, "mg/dL", "mg/dL", comparator=">="))], "unknown"),
        (
            [creat(qty(1, "mg/dL", "mg/dL")), upcr(qty(3, "mg/mg", "mg/mg", comparator="<"))],
            "unknown",
        ),
        ([creat(qty(1, "mg/dL", "mg/dL")), prot24(qty(5, "g/d", "g/d", comparator=">"))], "fail"),
    ],
)
def test_nephritis_reads_the_comparator(labs: list[dict], expected: str) -> None:
    assert status("severe_lupus_nephritis", *labs) == expected


# --- most recent within a day ------------------------------------------------------------------
@pytest.mark.parametrize(("first_id", "second_id"), [("b", "a"), ("a", "b")])
def test_same_day_results_most_recent_is_the_later_time(first_id: str, second_id: str) -> None:
    # a CBC at 08:00 (platelets 20) rechecked at 14:00 (30, clumping excluded): SPEC's most
    # recent result is the 14:00 one, whatever the resources' ids
    day = ago(10)
    early = observation(
        "777-3", f"{day}T08:00:00Z", valueQuantity=qty(20, "10*3/uL", "10*3/uL"), rid=first_id
    )
    late = observation(
        "777-3", f"{day}T14:00:00Z", valueQuantity=qty(30, "10*3/uL", "10*3/uL"), rid=second_id
    )
    r = run("platelets", early, late)
    assert r.status == "pass"
    assert r.evidence[0].ref == f"Observation/{second_id}"


def test_same_day_results_compare_instants_across_time_zones() -> None:
    # 23:00 at -08:00 is 07:00Z the next day: later than 08:00Z on the same calendar date
    day = ago(10)
    late = observation(
        "718-7", f"{day}T23:00:00-08:00", valueQuantity=qty(9, "g/dL", "g/dL"), rid="a"
    )
    early = observation("718-7", f"{day}T08:00:00Z", valueQuantity=qty(7, "g/dL", "g/dL"), rid="b")
    assert status("hemoglobin", late, early) == "pass"


def test_same_day_qualitative_most_recent_is_the_later_time() -> None:
    day = ago(10)
    pos = observation("5196-1", f"{day}T08:00:00Z", valueString="Positive", rid="z")
    neg = observation("5196-1", f"{day}T14:00:00Z", valueString="Negative", rid="a")
    assert status("hbv", pos, neg) == "pass"


def test_times_are_read_only_when_two_results_share_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    # the time of day orders the results of one day only: with every result on a day of its
    # own no time is parsed (a parse per Observation was most of the cost of reading one)
    import cohort.criteria.ordering as ordering

    calls: list[str] = []
    parse = ordering.instant_of

    def counted(stamp: str) -> float | None:
        calls.append(stamp)
        return parse(stamp)

    monkeypatch.setattr(ordering, "instant_of", counted)
    older = observation(
        "777-3", f"{ago(20)}T14:00:00Z", valueQuantity=qty(20, "10*3/uL", "10*3/uL"), rid="a"
    )
    newer = observation(
        "777-3", f"{ago(10)}T08:00:00Z", valueQuantity=qty(30, "10*3/uL", "10*3/uL"), rid="b"
    )
    assert status("platelets", older, newer) == "pass"
    assert calls == []
    later = observation(
        "777-3", f"{ago(10)}T09:00:00Z", valueQuantity=qty(20, "10*3/uL", "10*3/uL"), rid="c"
    )
    assert status("platelets", older, newer, later) == "fail"
    assert calls


# --- a result without a value ------------------------------------------------------------------
def test_newer_record_without_value_does_not_hide_the_most_recent_count() -> None:
    # "specimen clotted": the Observation has no value, only a dataAbsentReason; the most recent
    # platelet count in the window is the older one
    absent = observation("777-3", ago(5), dataAbsentReason=cc("error", DATA_ABSENT))
    count = observation("777-3", ago(20), valueQuantity=qty(20, "10*3/uL", "10*3/uL"))
    r = run("platelets", absent, count)
    assert r.status == "fail"
    assert r.evidence[0].ref == count["resourceType"] + "/" + count["id"]
    assert status("platelets", absent) == "unknown"  # no count at all


def test_record_without_value_but_with_interpretation_is_still_read() -> None:
    o = observation(
        "5196-1", ago(5), interpretation="POS", dataAbsentReason=cc("unknown", DATA_ABSENT)
    )
    assert status("hbv", o) == "fail"


# --- results carried as components of a panel (docs/rules.md "Panels and components") ----------
K_UL = "10*3/uL"


def cbc_panel(days: int, platelets: float, hgb: float, anc: float) -> dict[str, Any]:
    """A CBC w/ auto differential panel (LOINC 58410-2, mapped to no concept), its results
    carried as components."""
    return observation(
        "58410-2",
        ago(days),
        components=[
            component("777-3", LOINC, valueQuantity=qty(platelets, K_UL, K_UL)),
            component("718-7", LOINC, valueQuantity=qty(hgb, "g/dL", "g/dL")),
            component("751-8", LOINC, valueQuantity=qty(anc, K_UL, K_UL)),
        ],
    )


@pytest.mark.parametrize(
    ("cid", "why", "index"),
    [
        ("platelets", "platelets 10", 0),
        ("hemoglobin", "hemoglobin 6", 1),
        ("neutrophils", "ANC 0.3", 2),
    ],
)
def test_cbc_panel_component_results_are_read_by_the_lab_criteria(
    cid: str, why: str, index: int
) -> None:
    panel = cbc_panel(5, platelets=10, hgb=6, anc=0.3)
    r = run(cid, panel)
    assert r.status == "fail", r.reason  # was unknown: "no platelets result since ..."
    assert why in r.reason
    assert r.evidence[0].ref == f"Observation/{panel['id']}#component[{index}]"


def test_cbc_panel_component_newer_than_a_separate_count_decides() -> None:
    count = observation("777-3", ago(20), valueQuantity=qty(10, K_UL, K_UL))
    assert status("platelets", count, cbc_panel(5, platelets=200, hgb=12, anc=3)) == "pass"
    assert status("platelets", count, cbc_panel(30, platelets=200, hgb=12, anc=3)) == "fail"


def test_upcr_component_above_limit_fails_severe_lupus_nephritis() -> None:
    upcr_panel = observation(
        "UPCR-PANEL",
        ago(5),
        FLOWSHEET,
        components=[
            component("2888-6", LOINC, valueQuantity=qty(150, "mg/dL", "mg/dL")),  # urine protein
            component("2161-8", LOINC, valueQuantity=qty(30, "mg/dL", "mg/dL")),  # urine creat.
            component("2890-2", LOINC, valueQuantity=qty(5, "mg/mg", "mg/mg")),  # UPCR
        ],
    )
    creatinine = observation("2160-0", ago(5), valueQuantity=qty(1.0, "mg/dL", "mg/dL"))
    r = run("severe_lupus_nephritis", upcr_panel, creatinine)
    assert r.status == "fail", r.reason  # was pass: "no value above its limit"


def test_ana_titer_in_a_component_is_the_most_recent_titer() -> None:
    # the newest ANA, an IFA screen with its titer as a component; a year-old 1:40 after it
    newest = observation(
        ANA_SCREEN,
        ago(5),
        valueString="Positive",
        components=[component(ANA_TITER, LOINC, valueString="1:320")],
    )
    older = ana({"valueString": "1:40"}, days=400)
    r = run("ana_titer", newest, older)
    assert r.status == "pass", r.reason  # was fail: "ANA titer 1:40 < 1:80"


def test_bilag_component_that_maps_to_the_assessment_is_counted_once() -> None:
    # were a grade's component coded as the assessment itself, it is both a result of its own
    # and a component of the assessment: one B, not two
    assessment = observation(
        "BILAG-2004",
        ago(10),
        FLOWSHEET,
        components=[component("BILAG-2004", valueString="B"), component("renal", valueString="C")],
    )
    r = run("bilag", assessment)
    assert r.status == "fail", r.reason
    assert "0 A and 1 B" in r.reason
