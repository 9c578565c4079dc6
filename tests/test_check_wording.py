"""Wording of the `checks` and `lab_latest` reasons a coordinator reads in candidates.csv (QA
review): a later concept, a note, "detected", the condition and its date, no repeated name."""

from __future__ import annotations

from pathlib import Path

import pytest
from checks_helpers import (
    ANTI_HBC,
    HBSAG,
    HBV_DNA,
    HCV_AB,
    HCV_RNA,
    HCV_RNA_QUAL,
    IGRA,
    POSITIVE,
    lab,
)
from criteria_helpers import ICD, SNOMED, ago, condition, observation, qty, run
from researcher_helpers import TRIAL, check_all, copy_mappings, edit

from cohort.criteria.problems import table_problems
from cohort.criteria.registry import LAB_CHECK
from cohort.model import Result


# --- 1. unless_later: "(no later <concept>)" after the date -------------------------------------
def test_hcv_antibody_without_later_rna_says_so_after_the_date() -> None:
    """"HCV antibody without later RNA positive on ..." read as if the RNA were positive."""
    r = run("hcv", lab(HCV_AB, 300, POSITIVE))
    assert (str(r.status), r.reason) == (
        "unknown",
        f"HCV antibody positive on {ago(300)} (no later HCV RNA)",
    )


def test_unless_later_names_the_later_concepts_label() -> None:
    chk = {"lab": ["anti_hbc"], "latest": False, "unless_later": ["hbv_dna"], "then": "unknown"}
    r = run("hbv", lab(ANTI_HBC, 40, POSITIVE), params={"checks": [chk]})
    assert r.reason == f"anti-HBc positive on {ago(40)} (no later HBV DNA)"
    # a later result of it cancels the finding, as before
    later = lab(HBV_DNA, 10, {"valueString": "Not detected"})
    assert str(run("hbv", lab(ANTI_HBC, 40, POSITIVE), later, params={"checks": [chk]}).status) \
        == "pass"


# --- 2. note: an instruction in parentheses after the date --------------------------------------
@pytest.mark.parametrize(
    ("cid", "resource", "reason"),
    [
        ("hbv", lab(ANTI_HBC, 30, POSITIVE), f"anti-HBc positive on {ago(30)} (review HBV status)"),
        ("tuberculosis", lab(IGRA, 30, POSITIVE), f"IGRA positive on {ago(30)} (evaluate for TB)"),
        (
            "malignancy",
            condition("D05.10", onset="2021-03-04"),
            "carcinoma in situ, onset 2021-03-04 (review per protocol)",
        ),
        (
            "cs_dependent_comorbidity",
            condition("J45.909", onset="2019-05-06"),
            "asthma, onset 2019-05-06 (needs systemic CS?)",
        ),
    ],
)
def test_a_checks_note_follows_the_date_in_parentheses(cid: str, resource: dict, reason: str) -> None:
    assert run(cid, resource).reason == reason


def test_note_and_no_later_share_one_parenthesis() -> None:
    chk = {"lab": ["hcv_ab"], "latest": False, "unless_later": ["hcv_rna"], "then": "unknown",
           "note": "order HCV RNA"}  # fmt: skip
    r = run("hcv", lab(HCV_AB, 300, POSITIVE), params={"checks": [chk]})
    assert r.reason == f"HCV antibody positive on {ago(300)} (no later HCV RNA, order HCV RNA)"


def test_an_indeterminate_result_reason_has_no_note() -> None:
    # the note is about a finding: a result that decides nothing says what it is itself
    r = run("hbv", lab(ANTI_HBC, 30, {"valueString": "see report"}))
    assert r.reason == f"anti-HBc result 'see report' on {ago(30)}: unreadable"


def test_note_is_validated_as_a_short_text() -> None:
    entry = {"lab": ["hbsag"], "note": ""}
    assert list(table_problems(LAB_CHECK, entry, "checks[0]")) == [
        ("checks[0].note", "empty: write the instruction, or leave the key out")
    ]
    entry = {"lab": ["hbsag"], "note": "(review)"}
    assert list(table_problems(LAB_CHECK, entry, "checks[0]")) == [
        ("checks[0].note", "'(review)': write it without parentheses (the reason adds them)")
    ]


def test_a_note_that_is_no_text_is_a_located_error(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, 'note = "evaluate for TB"', "note = 5", "note")
    code, lines = check_all(m)
    assert code == 4
    assert (
        f"error: {m / TRIAL}:{line}: criterion 'tuberculosis': key 'checks[1].note': expected a "
        "text in quotes, got a whole number"
    ) in lines


# --- 3. a viral load check says "detected" ------------------------------------------------------
@pytest.mark.parametrize(
    ("cid", "resource", "reason"),
    [
        ("hbv", lab(HBV_DNA, 30, {"valueQuantity": qty(250, "IU/mL")}), "HBV DNA detected"),
        ("hbv", lab(HBV_DNA, 30, {"valueString": "<20 IU/mL HBV DNA detected"}), "HBV DNA detected"),
        ("hcv", lab(HCV_RNA, 30, {"valueString": "1250 IU/mL"}), "HCV RNA detected"),
        ("hcv", lab(HCV_RNA_QUAL, 30, {"valueString": "Detected"}), "HCV RNA detected"),
        # no `numeric = "detected"`: an antigen is positive
        ("hbv", lab(HBSAG, 30, POSITIVE), "HBsAg positive"),
    ],
)
def test_a_load_check_says_detected(cid: str, resource: dict, reason: str) -> None:
    assert run(cid, resource).reason == f"{reason} on {ago(30)}"


def test_a_load_check_for_a_negative_says_not_detected() -> None:
    chk = {"lab": ["hbv_dna"], "result": "negative", "numeric": "detected", "then": "unknown"}
    r = run("hbv", lab(HBV_DNA, 30, {"valueString": "Not detected"}), params={"checks": [chk]})
    assert r.reason == f"HBV DNA not detected on {ago(30)}"


# --- 4. condition checks name the condition found and its date ----------------------------------
@pytest.mark.parametrize(
    ("cid", "cond", "reason"),
    [
        ("pregnancy_lactation", condition("Z33.1", onset="2026-09-01"), "pregnancy, onset 2026-09-01"),
        ("pregnancy_lactation", condition("Z39.1", onset="2026-10-02"), "lactation, onset 2026-10-02"),
        # no onset: the recorded date, said so; neither: no date
        ("pregnancy_lactation", condition("Z33.1", recorded="2026-09-03"),
         "pregnancy, recorded 2026-09-03"),
        ("pregnancy_lactation", condition("Z33.1"), "pregnancy"),
        ("pregnancy_lactation", condition("Z33.1", onset="2026-09"), "pregnancy, onset 2026-09"),
        ("hbv", condition("B18.1", onset="2020-01-01"), "chronic hepatitis B, onset 2020-01-01"),
        ("malignancy", condition("C50.911", onset="2019-02-03"), "malignancy, onset 2019-02-03"),
        ("immunodeficiency", condition("B20", onset="2018-04-05"), "HIV infection, onset 2018-04-05"),
    ],
)  # fmt: skip
def test_a_condition_reason_names_the_condition_and_its_date(
    cid: str, cond: dict, reason: str
) -> None:
    """"pregnancy_lactation: pregnancy or lactation condition" named neither which nor when."""
    r = run(cid, cond)
    assert (str(r.status), r.reason) == ("fail", reason)


def test_a_checks_own_label_stays_beside_the_matched_concept() -> None:
    chk = {"condition": ["pregnancy", "lactation"], "active": True, "label": "pregnancy status"}
    r = run("pregnancy_lactation", condition("Z39.1", onset="2026-10-02"), params={"checks": [chk]})
    assert r.reason == "pregnancy status: lactation, onset 2026-10-02"


def test_the_malignancy_safety_net_keeps_its_label_and_names_the_concept() -> None:
    cond = condition("X1", "http://ehr.example.org/problems", text="Acute myeloid leukemia",
                     onset="2024-05-06")  # fmt: skip
    r = run("malignancy", cond)
    assert (str(r.status), r.reason) == (
        "unknown",
        # (quote_text: and the text that names the cancer)
        "possible malignancy not in the mappings: condition named as a cancer: Acute myeloid "
        "leukemia, onset 2024-05-06 (confirm)",
    )


def test_the_most_recent_of_several_matching_conditions_is_named() -> None:
    old = condition("Z33.1", onset="2026-03-01")
    new = condition("77386006", "http://snomed.info/sct", onset="2026-09-01")
    r = run("pregnancy_lactation", old, new)
    assert r.reason == "pregnancy, onset 2026-09-01"
    assert len(r.evidence) == 2  # both listed


def test_a_pregnancy_and_a_lactation_are_each_named() -> None:
    """Pregnancy and lactation are two checks (each its own `stale_after_days`): both found,
    both named, as any two failing checks are."""
    old = condition("Z33.1", onset="2026-03-01")
    new = condition("Z39.1", onset="2026-10-02")
    r = run("pregnancy_lactation", old, new)
    assert r.reason == "pregnancy, onset 2026-03-01, lactation, onset 2026-10-02"
    assert len(r.evidence) == 2


def test_an_unconfirmed_condition_names_the_matched_concept() -> None:
    cond = condition("Z33.1", onset="2026-09-01", verification="provisional")
    r = run("pregnancy_lactation", cond)
    assert r.reason == "pregnancy condition recorded as provisional: confirm the diagnosis"


# --- 5. a lab whose unit cannot be converted names the concept once -----------------------------
def test_an_unconvertible_platelet_count_names_platelets_once() -> None:
    """"platelets: platelets: value/unit ..." in candidates.csv: the criterion's column already
    names the concept when it is the criterion's own."""
    o = observation("777-3", ago(10), valueQuantity=qty(240, "cells/hpf"))
    r = run("platelets", o)
    assert str(r.status) == "unknown"
    assert r.reason == "value/unit '240 cells/hpf' not convertible to x10^3/uL"


def test_an_unconvertible_result_of_another_name_still_names_its_concept() -> None:
    o = observation("751-8", ago(10), valueQuantity=qty(1.2, "cells/hpf"))
    r = run("neutrophils", o)
    assert r.reason == "ANC value/unit '1.2 cells/hpf' not convertible to x10^3/uL"


def test_a_result_with_no_unit_says_so() -> None:
    """A platelet count recorded as a bare number read "value/unit '20 ' not convertible to
    x10^3/uL", a stray space where the unit was; the reason now says the unit is missing."""
    o = observation("777-3", ago(10), valueQuantity={"value": 20})
    r = run("platelets", o)
    assert str(r.status) == "unknown"
    assert r.reason == "value '20' (no unit) not convertible to x10^3/uL"


def test_a_result_outside_the_plausible_range_says_so_not_that_its_unit_does_not_convert() -> None:
    """A platelet count of 32500 in 10*3/uL (a typo, or /uL recorded as 10*3/uL) read
    "value/unit '32500 10*3/uL' not convertible to x10^3/uL": untrue, as it is already in that
    unit; it is no value because units.csv's plausible range (0-5000) rules it out."""
    o = observation("777-3", ago(10), valueQuantity=qty(32500, "10*3/uL"))
    r = run("platelets", o)
    assert str(r.status) == "unknown"
    assert r.reason == "32500 x10^3/uL outside the plausible range 0-5000 x10^3/uL (check the result)"
    o = observation("718-7", ago(10), valueQuantity=qty(125, "g/dL"))
    r = run("hemoglobin", o)
    assert r.reason == "125 g/dL outside the plausible range 0-30 g/dL (check the result)"
    # converted from another unit: the number compared with the range, and as recorded
    o = observation("751-8", ago(10), valueQuantity=qty(900000, "/uL"))
    r = run("neutrophils", o)
    assert r.reason == (
        "ANC 900 x10^3/uL (recorded 900000 /uL) outside the plausible range 0-500 x10^3/uL"
        " (check the result)"
    )



# --- 6. quote_text: a condition check's reason quotes the condition as written -----------------
BREAST = "Malignant neoplasm of breast"
LONG = (
    "Malignant neoplasm of upper-outer quadrant of right female breast, estrogen receptor "
    "positive, stage IIA"
)


@pytest.mark.parametrize(
    ("cond", "reason"),
    [
        # candidates.csv writes "malignancy: " before it: the label, the id again, is dropped
        (condition("C50.911", text=BREAST, onset="2019-04-02"),
         f"{BREAST}, onset 2019-04-02"),
        # Synthea writes the display as the text too: quoted once
        (condition("254837009", "http://snomed.info/sct", text=f"{BREAST} (disorder)",
                   display=f"{BREAST} (disorder)", onset="2019-04-02"),
         f"{BREAST} (disorder), onset 2019-04-02"),
        (condition("Z85.3", text="Personal history of malignant neoplasm of breast",
                   recorded="2020-01-02"),
         "history of malignancy: Personal history of malignant neoplasm of breast, "
         "recorded 2020-01-02"),
        # no text: the concept alone, as before
        (condition("C50.911", onset="2019-02-03"), "malignancy, onset 2019-02-03"),
        # a text that only repeats the concept's name says nothing more
        (condition("C50.911", text="Malignancy", onset="2019-02-03"), "malignancy, onset 2019-02-03"),
        (condition("D05.10", text="Lobular carcinoma in situ of breast", onset="2021-03-04"),
         "carcinoma in situ: Lobular carcinoma in situ of breast, onset 2021-03-04 "
         "(review per protocol)"),
    ],
)  # fmt: skip
def test_a_malignancy_reason_names_the_cancer(cond: dict, reason: str) -> None:
    """"malignancy, onset 2019-04-02" named the concept, not the cancer the coordinator reads
    about in the chart."""
    assert run("malignancy", cond).reason == reason


def test_a_long_condition_text_is_cut_at_a_word_in_reason_and_evidence_alike() -> None:
    r = run("malignancy", condition("C50.911", text=LONG, onset="2019-04-02"))
    quoted = r.reason.removesuffix(", onset 2019-04-02")
    assert quoted == (
        "Malignant neoplasm of upper-outer quadrant of right female breast, estrogen…"
    )
    assert len(quoted) <= 80 and LONG.startswith(quoted.removesuffix("…"))
    assert [e.value for e in r.evidence] == [quoted]


def test_a_check_without_quote_text_names_the_concept_alone() -> None:
    cond = condition("Z33.1", text="Pregnant state, incidental", onset="2026-09-01")
    assert run("pregnancy_lactation", cond).reason == "pregnancy, onset 2026-09-01"


@pytest.mark.parametrize(
    "cond",
    [
        condition("C50.911", text=BREAST, onset="2019-04-02"),
        condition("254837009", "http://snomed.info/sct", text=BREAST, display=BREAST,
                  onset="2019-04-02"),
        condition("C50.911", text=LONG, onset="2019-04-02"),
    ],
)  # fmt: skip
def test_no_phi_withholds_the_quoted_condition_text(cond: dict) -> None:
    from cohort.report.nophi import WITHHELD, public_result

    r = public_result(run("malignancy", cond))
    assert r.reason == f"{WITHHELD}, onset 2019-04-02"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('label = "malignancy", quote_text = true', 'label = "malignancy", quote_text = "yes"',
         "'checks[0].quote_text': expected true or false, got the text 'yes' (write true or "
         "false without quotes)"),
    ],
)  # fmt: skip
def test_quote_text_is_validated(old: str, new: str, message: str, tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, old, new, "{") if "{" in new else edit(m / TRIAL, old, new, "label")
    code, lines = check_all(m)
    expected = f"error: {m / TRIAL}:{line}: criterion 'malignancy': key {message}"
    assert code == 4 and expected in lines, "\n".join(lines)


def test_quote_text_on_a_lab_check_is_an_error(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, '{ lab = ["hiv_test"],', '{ lab = ["hiv_test"], quote_text = true,', "{")
    code, lines = check_all(m)
    expected = (
        f"error: {m / TRIAL}:{line}: criterion 'immunodeficiency': key 'checks[1].quote_text': "
        "only a condition check takes it (a lab check would ignore it)"
    )
    assert code == 4 and expected in lines, "\n".join(lines)


# --- 7. a condition set aside by a check's `unless` names what set it aside ----------------------
# "listed exception" on every such row: a breast DCIS set aside by the safety net (it is an
# in-situ carcinoma, which its own check reviews) read as allowed by the protocol, whose only
# exceptions are BCC of skin and cervical CIS.
EXCEPTION = "set aside as basal cell carcinoma of skin or cervical carcinoma in situ"
IN_SITU = "set aside as carcinoma in situ (reviewed by the carcinoma in situ check)"
NAMED = ["malignancy_named"]


def _aside(r: Result) -> list[tuple[str, str]]:
    return [(e.concept, e.note) for e in r.ignored if e.note.startswith("set aside")]


def test_an_in_situ_carcinoma_set_aside_by_the_safety_net_names_the_check_reviewing_it() -> None:
    dcis = condition("D05.10", text="Intraductal carcinoma in situ of breast", onset="2025-10-21")
    r = run("malignancy", dcis)
    assert str(r.status) == "unknown"  # the in-situ check's: "review per protocol"
    assert r.reason.startswith("carcinoma in situ: Intraductal carcinoma in situ of breast")
    assert _aside(r) == [("malignancy_named", IN_SITU)]


@pytest.mark.parametrize(
    "cond",
    [
        condition("254701007", SNOMED, text="Basal cell carcinoma of skin of nose"),
        condition("C44.91", text="Basal cell carcinoma of skin, unspecified"),
        condition("D06.9", text="Carcinoma in situ of cervix, unspecified"),
    ],
)
def test_a_protocol_exception_is_named_by_its_label(cond: dict) -> None:
    r = run("malignancy", cond)
    assert str(r.status) == "pass"
    aside = _aside(r)
    assert aside and {note for _, note in aside} == {EXCEPTION}
    assert ("malignancy_named", EXCEPTION) in aside


def test_without_another_check_of_the_concept_no_check_is_named() -> None:
    """Any criteria file: the `unless` concept's label, and a reviewing check only where one of
    the criterion's other checks has that concept in its `condition`."""
    dcis = condition("D05.10", text="Intraductal carcinoma in situ of breast")
    alone = [{"condition": NAMED, "unless": ["in_situ_neoplasm"], "then": "unknown"}]
    r = run("malignancy", dcis, params={"checks": alone})
    assert (str(r.status), _aside(r)) == ("pass", [("malignancy_named", "set aside as carcinoma in situ")])
    # the reviewing check named by its label, else by its concept's
    for other, word in (({"label": "CIS"}, "CIS"), ({}, "carcinoma in situ")):
        review = {"condition": ["in_situ_neoplasm"], "then": "unknown", **other}
        r = run("malignancy", dcis, params={"checks": [*alone, review]})
        want = f"set aside as carcinoma in situ (reviewed by the {word} check)"
        assert (str(r.status), _aside(r)) == ("unknown", [("malignancy_named", want)])


def test_a_check_that_sets_the_record_aside_too_is_not_named_as_reviewing_it() -> None:
    """A BCC of skin coded also as a carcinoma in situ of skin: the in-situ check sets it aside
    as the protocol's exception too, so the safety net names both concepts and no reviewing
    check (none reviews it)."""
    bcc = condition("254701007", SNOMED, text="Basal cell carcinoma in situ of skin")
    bcc["code"]["coding"].append({"system": ICD, "code": "D04.9"})
    r = run("malignancy", bcc)
    assert str(r.status) == "pass"
    assert _aside(r) == [
        ("in_situ_neoplasm", EXCEPTION),
        ("malignancy_named", f"{EXCEPTION}, and as carcinoma in situ"),
    ]


def test_an_antibody_set_aside_for_a_later_rna_is_noted_by_its_label() -> None:
    """evidence.csv noted the set-aside antibody "followed by hcv_rna", the concept's name in
    the mapping files: a coordinator reads the label there, as in the reason."""
    later = lab(HCV_RNA, 10, {"valueString": "Not detected"})
    r = run("hcv", lab(HCV_AB, 300, POSITIVE), later)
    assert str(r.status) == "pass"
    assert [e.note for e in r.ignored] == ["followed by a later HCV RNA result"]
