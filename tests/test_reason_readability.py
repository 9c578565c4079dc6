"""Reasons as a coordinator reads them in candidates.csv (QA review): no criterion id said twice
("malignancy: malignancy: ..."), a vaccine of uncertain live status named with its date, and
units in readable power notation ("x10^3/uL", not UCUM's "10*3/uL")."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from criteria_helpers import (
    SNOMED,
    ago,
    condition,
    context,
    criterion,
    days_before,
    immunization,
    medication,
    observation,
    qty,
    run,
)

from cohort.criteria.ids import says_id
from cohort.criteria.registry import KINDS
from cohort.report.nophi import WITHHELD, public_result
from cohort.terminology.units import readable_unit

BREAST = "Malignant neoplasm of unspecified site of right female breast"


# --- 1. the criterion's id is not said again before what follows it -----------------------------
@pytest.mark.parametrize(
    ("cid", "name", "says"),
    [
        ("malignancy", "malignancy", True),
        ("malignancy", "Malignancy", True),
        ("prior_ianalumab", "prior ianalumab", True),
        ("prior_ianalumab", "Prior Ianalumab", True),
        ("prior_ianalumab", "prior_ianalumab", False),  # a name is written with spaces
        ("prior_ianalumab", "ianalumab", False),
        ("malignancy", "history of malignancy", False),
        ("hcv", "HCV antibody", False),  # a name beginning with the id is another name
    ],
)
def test_says_id_is_the_id_in_words_case_insensitive(cid: str, name: str, says: bool) -> None:
    assert says_id(cid, name) is says


def test_a_malignancy_reason_quotes_the_cancer_without_repeating_the_criterion() -> None:
    """"malignancy: malignancy: Malignant neoplasm ..." in candidates.csv (sample uci-p0046)."""
    r = run("malignancy", condition("C50.911", text=BREAST, onset="2019-04-02"))
    assert r.reason == f"{BREAST}, onset 2019-04-02"


def test_a_check_label_saying_the_id_is_dropped_before_another_name() -> None:
    """The rule is the id's words, not the word "malignancy": a label of another case before
    the concept it matched goes too, in an unknown's reason as in a fail's."""
    chk = {"condition": ["in_situ_neoplasm"], "then": "unknown", "label": "Malignancy"}
    r = run("malignancy", condition("D05.10", onset="2021-03-04"), params={"checks": [chk]})
    assert r.reason == "carcinoma in situ, onset 2021-03-04"
    shaky = condition("D05.10", onset="2021-03-04", verification="provisional")
    params = {"checks": [chk], "unconfirmed_verification": ["provisional"]}
    r = run("malignancy", shaky, params=params)
    assert r.reason == "carcinoma in situ condition recorded as provisional: confirm the diagnosis"


def test_a_check_label_of_other_words_is_kept() -> None:
    cond = condition("Z85.3", text="Personal history of malignant neoplasm of breast",
                     recorded="2020-01-02")  # fmt: skip
    assert run("malignancy", cond).reason == (
        "history of malignancy: Personal history of malignant neoplasm of breast, "
        "recorded 2020-01-02"
    )


def test_prior_ianalumab_names_the_record_once() -> None:
    """"prior_ianalumab: prior ianalumab: VAY736" (sample uci-p0058)."""
    stmt = medication("MedicationStatement", None, text="VAY736", status="completed",
                      start="2024-09-16", end="2025-07-13")  # fmt: skip
    assert run("prior_ianalumab", stmt).reason == "VAY736 from 2024-09-16 to 2025-07-13"


def test_any_record_under_another_id_still_says_prior() -> None:
    crit = dataclasses.replace(criterion("prior_ianalumab"), id="no_study_drug")
    stmt = medication("MedicationStatement", None, text="VAY736", status="completed",
                      start="2024-09-16", end="2025-07-13")  # fmt: skip
    r = KINDS[crit.kind].fn(crit, context(stmt))
    assert r.reason == "prior ianalumab: VAY736 from 2024-09-16 to 2025-07-13"


def test_no_phi_withholds_the_record_named_alone() -> None:
    stmt = medication("MedicationStatement", None, text="VAY736 per Dr Lee", status="completed",
                      start="2024-09-16")  # fmt: skip
    r = run("prior_ianalumab", stmt)
    assert r.reason == "VAY736 per Dr Lee on 2024-09-16"
    assert public_result(r).reason == f"{WITHHELD} on 2024-09-16"


# --- 2. a vaccine that may be live: which, when, and until when if live --------------------------
def _zoster(when: str | None, text: str | None = None) -> dict:
    im = immunization("188", when)  # zoster vaccine, unspecified formulation: may be live
    if text is not None:
        im["vaccineCode"]["text"] = text
    return im


def test_an_uncertain_vaccine_is_named_with_its_date_and_the_day_it_would_clear() -> None:
    """"vaccine of uncertain live status in window" named neither vaccine nor date."""
    r = run("live_vaccine", _zoster(ago(14), "zoster vaccine, unspecified formulation"))
    assert str(r.status) == "unknown" and r.eligible_from is None
    clear = days_before(14) + timedelta(weeks=4)
    assert r.reason == (
        f"zoster vaccine, unspecified formulation on {ago(14)} may be live "
        f"(within 4 weeks, until {clear} if live)"
    )


def test_an_uncertain_vaccine_coded_only_is_named_by_its_code() -> None:
    r = run("live_vaccine", _zoster("2026-11-11"))
    assert r.reason == "CVX 188 on 2026-11-11 may be live (within 4 weeks, until 2026-12-09 if live)"


def test_an_uncertain_vaccine_text_is_cut_at_a_word() -> None:
    long = "zoster vaccine " + "recombinant or live formulation unknown " * 4
    r = run("live_vaccine", _zoster("2026-11-11", long))
    named = r.reason.split(" on 2026-11-11 ")[0]
    assert named.endswith("…") and len(named) <= 80
    assert long.startswith(named.removesuffix("…")) and long[len(named) - 1] == " "


def test_an_uncertain_vaccine_of_a_partial_date_says_so() -> None:
    """Recorded only as 2026-10 against a window from 2026-10-28: maybe in it; if live, it
    clears 4 weeks after the month's last day."""
    r = run("live_vaccine", _zoster("2026-10"))
    assert str(r.status) == "unknown"
    assert r.reason == (
        "CVX 188 recorded only as 2026-10 may be live "
        "(cannot tell if within 4 weeks, until 2026-11-28 if live)"
    )


def test_a_partial_date_reaching_past_as_of_clears_from_as_of() -> None:
    """2026-11 with as_of 2026-11-25: a day after as_of is no record yet, so no later end."""
    r = run("live_vaccine", _zoster("2026-11"))
    assert r.reason == (
        "CVX 188 recorded only as 2026-11 may be live (within 4 weeks, until 2026-12-23 if live)"
    )


def test_two_uncertain_vaccines_are_each_named() -> None:
    r = run("live_vaccine", _zoster("2026-11-11"), _zoster("2026-11-01"))
    assert "CVX 188 on 2026-11-11 may be live" in r.reason
    assert "CVX 188 on 2026-11-01 may be live" in r.reason


def test_no_phi_withholds_an_uncertain_vaccines_text_but_keeps_the_dates() -> None:
    r = run("live_vaccine", _zoster("2026-11-11", "zoster per Dr Lee"))
    assert public_result(r).reason == (
        f"{WITHHELD} on 2026-11-11 may be live (within 4 weeks, until 2026-12-09 if live)"
    )


def test_an_uncertain_vaccine_coded_in_snomed_is_named_by_its_code() -> None:
    im = immunization("21", "2026-11-11")
    im["vaccineCode"] = {"coding": [{"system": SNOMED, "code": "836389008"}]}  # vaccinia
    r = run("live_vaccine", im)
    assert r.reason.startswith("code 836389008 on 2026-11-11 may be live")


# --- 3. units in readable power notation ---------------------------------------------------------
@pytest.mark.parametrize(
    ("unit", "shown"),
    [
        ("10*3/uL", "x10^3/uL"),
        ("10*9/L", "x10^9/L"),
        ("10*12/L", "x10^12/L"),
        ("10*-3", "x10^-3"),
        ("{titer}", ""),
        ("{ratio}", ""),
        ("{score}", ""),
        ("1", ""),
        ("", ""),
        ("mg/dL", "mg/dL"),
        ("g/dL", "g/dL"),
        ("mg/mg", "mg/mg"),
        ("/uL", "/uL"),
        ("m[IU]/mL", "mIU/mL"),  # the international unit without UCUM's brackets
        ("[IU]/L", "IU/L"),
        ("mL/min/{1.73_m2}", "mL/min/{1.73_m2}"),  # an annotation inside a unit stays
    ],
)
def test_readable_unit(unit: str, shown: str) -> None:
    assert readable_unit(unit) == shown


def test_a_low_platelet_count_reads_in_the_titles_notation() -> None:
    o = observation("777-3", "2026-11-13", valueQuantity=qty(20, "10*3/uL"))
    r = run("platelets", o)
    assert r.reason == "platelets 20 x10^3/uL < 25 on 2026-11-13"
    assert "x10^3/uL" in criterion("platelets").title
    [ev] = r.evidence
    assert ev.unit == "10*3/uL"  # evidence.csv keeps the concept's UCUM unit


def test_a_low_anc_reads_in_the_titles_notation() -> None:
    o = observation("751-8", "2026-11-15", valueQuantity=qty(0.5, "10*3/uL"))
    assert run("neutrophils", o).reason == "ANC 0.5 x10^3/uL < 0.8 on 2026-11-15"


def test_an_unconvertible_result_names_the_unit_readably_and_quotes_the_recorded_one() -> None:
    o = observation("777-3", ago(10), valueQuantity=qty(240, "cells/hpf"))
    assert run("platelets", o).reason == "value/unit '240 cells/hpf' not convertible to x10^3/uL"
