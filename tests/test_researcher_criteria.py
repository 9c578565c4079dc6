"""A researcher's edits of a criteria file, as docs/criteria-kinds.md describes them: every
mistake is an error of `cohort mappings check` and stops `cohort run` (exit 4) with the same
message, at the line of the key; valid edits (months, a second trial's titer) read as written.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest
from researcher_helpers import TRIAL, check_all, copy_mappings, edit, run_uci

from cohort.criteria.base import Criterion
from cohort.criteria.loading import load_trial
from cohort.criteria.registry import KINDS
from cohort.model import Result

TRIAL_MISTAKES = [
    (
        "manual_when_unknown as text",
        "manual_when_unknown = true",
        'manual_when_unknown = "false"',
        "manual",
        "criterion 'sledai': key 'manual_when_unknown': expected true or false, got the text "
        "'false' (write true or false without quotes)",
    ),
    (
        "missing_hint a number",
        'missing_hint = "CBC within 90 days"',
        "missing_hint = 90",
        "missing",
        "criterion 'platelets': key 'missing_hint': expected a text in quotes, got a whole number",
    ),
    (
        "misspelt meta key",
        "manual_when_unknown = true",
        "manual_when_unknow = true",
        "manual",
        "criterion 'sledai': key 'manual_when_unknow': not a parameter of kind 'lab_latest' "
        "(did you mean 'manual_when_unknown'?)",
    ),
    (
        "a number in quotes",
        "fail_below = 8.0",
        'fail_below = "8.0"',
        "fail",
        "criterion 'hemoglobin': key 'fail_below': expected a number, got the text '8.0' "
        "(write the number without quotes)",
    ),
    (
        "a titer in quotes",
        "min_titer = 80",
        'min_titer = "1:160"',
        "min_titer",
        "criterion 'ana_titer': key 'min_titer': expected a number, got the text '1:160' "
        "(write the dilution's denominator as a number, without quotes: min_titer = 160)",
    ),
    (
        "a titer's denominator in quotes",
        "min_titer = 80",
        'min_titer = "160"',
        "min_titer",
        "criterion 'ana_titer': key 'min_titer': expected a number, got the text '160' "
        "(write the number without quotes)",
    ),
    (
        "result misspelt",
        'result = "positive", then = "fail", label = "HBsAg"',
        'result = "postive", then = "fail", label = "HBsAg"',
        "result",
        "criterion 'hbv': key 'checks[1].result': 'postive': must be one of 'positive', "
        "'negative', 'indeterminate'",
    ),
    (
        "numeric misspelt",
        'numeric = "detected", then = "fail", label = "HBV DNA"',
        'numeric = "detect", then = "fail", label = "HBV DNA"',
        "numeric",
        "criterion 'hbv': key 'checks[2].numeric': 'detect': must be 'detected'",
    ),
    (
        # (a window is a condition check's too: only a condition dated within it counts)
        "latest on a condition check",
        '{ condition = ["active_tb"], active = true,',
        '{ condition = ["active_tb"], active = true, latest = false,',
        "{",
        "criterion 'tuberculosis': key 'checks[0].latest': only a lab check takes it "
        "(a condition check would ignore it)",
    ),
    (
        "two windows",
        "window_days = 90\nfail_below = 25",
        "window_days = 90\nwindow_weeks = 4\nfail_below = 25",
        "window_weeks",
        "criterion 'platelets': key 'window_weeks': give one window, not both window_days and "
        "window_weeks",
    ),
    (
        "alt key misspelt",
        'alt = { concepts = ["aiha"], fail_below = 7.0 }',
        'alt = { concepts = ["aiha"], fail_bellow = 7.0 }',
        "alt",
        "criterion 'hemoglobin': key 'alt.fail_bellow': unknown key (did you mean 'fail_below'?)",
    ),
    (
        "measure without its limit",
        '{ concepts = ["upcr"], fail_above = 2.0 }',
        '{ concepts = ["upcr"] }',
        "{",
        "criterion 'severe_lupus_nephritis': key 'measures[1].fail_above': required",
    ),
    (
        "latest_only as text",
        "latest_only = false",
        'latest_only = "false"',
        "latest_only",
        "criterion 'severe_lupus_nephritis': key 'latest_only': expected true or false, got the "
        "text 'false' (write true or false without quotes)",
    ),
    (
        "latest_only misspelt",
        "latest_only = false",
        "latest_onyl = true",
        "latest_onyl",
        "criterion 'severe_lupus_nephritis': key 'latest_onyl': not a parameter of kind "
        "'labs_exceed' (did you mean 'latest_only'?)",
    ),
    (
        "lab_concepts without lab_default_lln",
        'lab_concepts = ["cd19_count"]\nlab_default_lln = 80',
        'lab_concepts = ["cd19_count"]\n',
        "lab_concepts",
        "criterion 'washout_b_cell_depletion': key 'lab_concepts': needs 'lab_default_lln' too",
    ),
    (
        "excluded_routes of a concept the criterion does not list",
        'excluded_routes = { immunoglobulin = ["intramuscular", "im"] }',
        'excluded_routes = { immunoglobuline = ["intramuscular", "im"] }',
        "excluded_routes",
        "criterion 'washout_24wk': key 'excluded_routes.immunoglobuline': not one of the "
        "criterion's concepts (did you mean 'immunoglobulin'?)",
    ),
    (
        "excluded_routes with no route word",
        'excluded_routes = { immunoglobulin = ["intramuscular", "im"] }',
        'excluded_routes = { immunoglobulin = ["intramuscular", ""] }',
        "excluded_routes",
        "criterion 'washout_24wk': key 'excluded_routes.immunoglobulin': expected a non-empty "
        'list of route words in quotes, e.g. ["intramuscular"]',
    ),
    (
        "[trial] key misspelt",
        "manual = [",
        "manuals = [",
        "manuals",
        "[trial] key 'manuals': unknown key (did you mean 'manual'?)",
    ),
    (
        "[[criteria]] misspelt",
        '[[criteria]]\nid = "pregnancy_lactation"',
        '[[critera]]\nid = "pregnancy_lactation"',
        "[[",
        "unknown table or key 'critera' (did you mean 'criteria'?)",
    ),
    (
        "empty concept list",
        'concepts = ["platelets"]',
        "concepts = []",
        "concepts",
        "criterion 'platelets': key 'concepts': empty list: name at least one concept",
    ),
    (
        "a window out of the calendar",
        "window_days = 90\nfail_below = 25",
        "window_days = 9000000\nfail_below = 25",
        "window_days",
        "criterion 'platelets': key 'window_days': 9000000 is more than 100 years",
    ),
    (
        "a verificationStatus that is not one of an unconfirmed diagnosis",
        'unconfirmed_verification = ["unconfirmed", "provisional", "differential"]',
        'unconfirmed_verification = ["provisional", "refuted"]',
        "unconfirmed_verification",
        "criterion 'sle_diagnosis': key 'unconfirmed_verification': 'refuted' is not a Condition"
        " verificationStatus that leaves a diagnosis unconfirmed (must be one of 'unconfirmed',"
        " 'provisional', 'differential')",
    ),
    (
        "a verificationStatus that is not one of an unconfirmed exclusion condition",
        "# no established finding: unknown (the coordinator confirms it), not fail; as "
        'sle_diagnosis\nunconfirmed_verification = ["unconfirmed", "provisional", "differential"]',
        'unconfirmed_verification = ["provisional", "refuted"]',
        "unconfirmed_verification",
        "criterion 'hbv': key 'unconfirmed_verification': 'refuted' is not a Condition"
        " verificationStatus that leaves a diagnosis unconfirmed (must be one of 'unconfirmed',"
        " 'provisional', 'differential')",
    ),
    (
        "unconfirmed_verification on a result criterion without alt conditions",
        "window_days = 90\nfail_below = 25",
        'window_days = 90\nfail_below = 25\nunconfirmed_verification = ["provisional"]',
        "unconfirmed_verification",
        "criterion 'platelets': key 'unconfirmed_verification': needs 'alt' too",
    ),
    (
        "unconfirmed_verification as one word, not a list",
        "fail_below = 7.0 }   # autoimmune hemolytic anemia\n# an AIHA not confirmed: a value "
        "between the two limits is unknown (confirm the AIHA)\n"
        'unconfirmed_verification = ["unconfirmed", "provisional", "differential"]',
        'fail_below = 7.0 }\nunconfirmed_verification = "provisional"',
        "unconfirmed_verification",
        "criterion 'hemoglobin': key 'unconfirmed_verification': expected a list, got the text "
        "'provisional' (write a list, e.g. [\"provisional\"])",
    ),
    (
        "unknown concept in a check",
        '{ lab = ["hiv_test"]',
        '{ lab = ["hiv_tst"]',
        "{",
        "criterion 'immunodeficiency': key 'checks[1].lab': unknown concept 'hiv_tst' "
        "(did you mean 'hiv_test'?)",
    ),
    (
        "an id that is a fixed column of candidates.csv",
        'id = "neutrophils"',
        'id = "sex"',
        "id",
        "criterion 'sex': key 'id': 'sex' is already a column of candidates.csv (its header "
        "would name it twice): choose another id",
    ),
    (
        "an id that is the change column",
        'id = "platelets"',
        'id = "change"',
        "id",
        "criterion 'change': key 'id': 'change' is already a column of candidates.csv (its header "
        "would name it twice): choose another id",
    ),
    (
        "an id with a space after it (its own column beside the real one)",
        'id = "platelets"',
        'id = "platelets "',
        "id",
        "criterion 'platelets ': key 'id': 'platelets ' ends with a space: an id is letters "
        "a-z or A-Z, digits and _, starting with a letter (it names a column of candidates.csv) "
        "(did you mean 'platelets'?)",
    ),
    (
        "an id with a space before it",
        'id = "neutrophils"',
        'id = " neutrophils"',
        "id",
        "criterion ' neutrophils': key 'id': ' neutrophils' starts with a space: an id is "
        "letters a-z or A-Z, digits and _, starting with a letter (it names a column of "
        "candidates.csv) "
        "(did you mean 'neutrophils'?)",
    ),
    (
        "an id with a zero-width space pasted after it",
        'id = "hbv"',
        'id = "hbv\\u200b"',
        "id",
        "criterion 'hbv\u200b': key 'id': 'hbv\\u200b' ends with U+200B ZERO WIDTH SPACE: an id "
        "is letters a-z or A-Z, digits and _, starting with a letter (it names a column of "
        "candidates.csv) "
        "(did you mean 'hbv'?)",
    ),
    (
        "an id with a hyphen",
        'id = "washout_12wk"',
        'id = "washout-12wk"',
        "id",
        "criterion 'washout-12wk': key 'id': 'washout-12wk' holds '-': an id is letters "
        "a-z or A-Z, digits and _, starting with a letter (it names a column of candidates.csv) "
        "(did you mean 'washout_12wk'?)",
    ),
    (
        "an age range whose maximum is below its minimum",
        "min_years = 12",
        "min_years = 12\nmax_years = 10",
        "max_years",
        "criterion 'age': key 'max_years': 10 is below min_years = 12: no age would pass",
    ),
    (
        "a negative maximum age",
        "min_years = 12",
        "min_years = 12\nmax_years = -75",
        "max_years",
        "criterion 'age': key 'max_years': -75 is negative",
    ),
    # a sign typed by mistake: every patient with a readable BILAG grade has at least -1 A
    # grades, so `bilag` passed for all of them (accepted without an error before)
    (
        "a negative number of A grades",
        "min_a = 1",
        "min_a = -1",
        "min_a",
        "criterion 'bilag': key 'min_a': -1 is negative",
    ),
    (
        "a negative number of B grades",
        "min_b = 2",
        "min_b = -2",
        "min_b",
        "criterion 'bilag': key 'min_b': -2 is negative",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [c[1:] for c in TRIAL_MISTAKES],
    ids=[c[0] for c in TRIAL_MISTAKES],
)
def test_a_criteria_file_mistake_is_the_same_located_error_for_check_and_run(
    old: str, new: str, marker: str, message: str, tmp_path: Path
) -> None:
    """Each mistake was accepted without a word by `check` and `run` (a string "false" read as
    true, a misspelt result or table never matched, a window on a condition check did nothing,
    two windows: the days won), crashed the run (a measure without its limit, a window of
    9000000 days), or was located at the criterion's id line (`run`) but at another line by
    `check`, with another key."""
    _refused_by_check_and_run(tmp_path, old, new, marker, message)


def test_a_duplicated_id_names_the_duplicate(tmp_path: Path) -> None:
    """The duplicate of an id was reported at the first criterion's line ("criterion id missing
    or duplicated"), not at the one to fix."""
    m = copy_mappings(tmp_path)
    first = edit(m / TRIAL, 'id = "platelets"', 'id = "platelets"', "id")
    line = edit(m / TRIAL, 'id = "neutrophils"', 'id = "platelets"', "id")
    code, lines = check_all(m)
    assert code == 4
    assert (
        f"error: {m / TRIAL}:{line}: criterion 'platelets': key 'id': duplicated: criterion "
        f"'platelets' is also on line {first}"
    ) in lines


def test_check_lists_every_mistake_of_a_criteria_file(tmp_path: Path) -> None:
    """`check` stopped at the first mistake of a criteria file; now it lists them all (and
    `run` stops at the first of them)."""
    m = copy_mappings(tmp_path)
    a = edit(m / TRIAL, "min_years = 12", 'min_years = "12"', "min")
    b = edit(m / TRIAL, 'concepts = ["hemoglobin"]', 'concepts = ["haemoglobin"]', "concepts")
    code, lines = check_all(m)
    assert code == 4
    errors = [ln for ln in lines if ln.startswith(f"error: {m / TRIAL}")]
    assert [e.split(":")[2] for e in errors] == [str(a), str(b)]
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.splitlines() == [f"cohort: {errors[0]}"]


def test_check_lists_a_misspelt_concept_beside_another_mistake_of_its_criterion(
    tmp_path: Path,
) -> None:
    """The B-cell washout edited twice, a window key misspelt and a concept misspelt: `check`
    named the window only (concepts were looked up only in a criterion with no other mistake),
    so the researcher fixed it, ran `check` again and only then learnt of the concept."""
    m = copy_mappings(tmp_path)
    a = edit(m / TRIAL, 'concepts = ["b_cell_depleting"]', 'concepts = ["b_cell_depletng"]', "c")
    b = edit(m / TRIAL, "window_weeks = 36", "window_week = 36", "window")
    code, lines = check_all(m)
    assert code == 4
    errors = [ln for ln in lines if ln.startswith(f"error: {m / TRIAL}")]
    assert errors == [
        f"error: {m / TRIAL}:{a}: criterion 'washout_b_cell_depletion': key 'concepts': unknown "
        "concept 'b_cell_depletng' (did you mean 'b_cell_depleting'?)",
        f"error: {m / TRIAL}:{b}: criterion 'washout_b_cell_depletion': key 'window_week': not a "
        "parameter of kind 'washout' (did you mean 'window_weeks'?)",
    ]


def test_a_copied_trial_file_must_carry_its_own_id(tmp_path: Path) -> None:
    """A trial file copied to start a second trial kept `id = "sirius-sle-2"`: it ran, and since
    runs are compared by the file's id while run.json holds the config's, the `change` column
    of that trial stayed empty for ever."""
    m = copy_mappings(tmp_path)
    shutil.copy(m / TRIAL, m / "trials" / "my-trial.toml")
    code, lines = check_all(m)
    path = m / "trials" / "my-trial.toml"
    assert code == 4
    assert (
        f"error: {path}:7: [trial] key 'id': 'sirius-sle-2' but the file is my-trial.toml: they "
        "must be the same (the config's [trial] id names the file, and runs are compared by it)"
    ) in lines
    code, output = run_uci(tmp_path, m, trial="my-trial")
    assert code == 4 and "[trial] key 'id': 'sirius-sle-2' but the file is" in output


def test_a_concept_with_only_unverified_rows_warns_and_runs(tmp_path: Path) -> None:
    """`check` called it a warning ("concept is empty ... a run needs use_unverified") but `run`
    refused it as an unknown concept (exit 4) with a wrong "did you mean"."""
    m = copy_mappings(tmp_path)
    with (m / "concepts" / "labs.csv").open("a", encoding="utf-8") as fh:
        fh.write("anti_sm,http://loinc.org,18323-6,exact,,Sm Ab,test,N,\n")
    with (m / TRIAL).open("a", encoding="utf-8") as fh:
        fh.write(
            '\n[[criteria]]\nid = "anti_sm"\ntype = "exclusion"\nkind = "checks"\n'
            'checks = [ { lab = ["anti_sm"], then = "unknown" } ]\n'
        )
    code, lines = check_all(m)
    assert code == 0, lines
    assert any("key 'checks[0].lab': concept 'anti_sm' is empty" in ln for ln in lines)
    code, output = run_uci(tmp_path, m)
    assert code == 0, output


def test_washout_and_high_dose_take_a_window_in_months() -> None:
    """docs/criteria-kinds.md: "Windows are window_days, window_weeks or window_months"; a
    washout or high_dose refused window_months ("not a parameter ... did you mean
    'window_days'?"). Months are calendar months; eligible_from is the first passing day."""
    from criteria_helpers import ago, context, medication

    from cohort.criteria.base import Span

    crit = Criterion(
        "washout_months",
        "washout",
        "exclusion",
        "No belimumab in 3 months",
        {"concepts": ["belimumab"], "window_months": 3},
        time_limited=True,
    )

    def given(days: int) -> Result:
        admin = medication(
            "MedicationAdministration", text="belimumab", status="completed", when=ago(days)
        )
        return KINDS["washout"].fn(crit, context(admin))

    r = given(20)
    assert r.status.value == "fail" and r.eligible_from == date(2027, 2, 5)
    assert r.reason.endswith("within 3 months (until 2027-02-05)")
    assert given(100).status.value == "pass"
    # a clamped month end: 6 months after Aug 31 passes from Mar 1 (on Feb 28 the window
    # still starts on Aug 28, before the end)
    six = Span(months=6)
    assert six.after(date(2026, 8, 31)) == date(2027, 3, 1)
    assert six.before(date(2027, 2, 28)) < date(2026, 8, 31) <= six.before(date(2027, 3, 1))
    assert Span(days=84).after(date(2026, 9, 30)) == date(2026, 12, 23)


def test_month_windows_load_for_washout_and_high_dose(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    edit(
        m / TRIAL,
        'concepts = ["belimumab"]\nwindow_weeks = 12',
        'concepts = ["belimumab"]\nwindow_months = 3',
        "window",
    )
    edit(m / TRIAL, "window_weeks = 12\nmax_daily_mg", "window_months = 3\nmax_daily_mg", "w")
    trial = load_trial(m / TRIAL)
    assert {c.id: c.params.get("window_months") for c in trial.criteria}["washout_belimumab"] == 3


def test_a_titer_reason_names_the_trial_s_concept() -> None:
    """The `titer` kind said "ANA titer ..." and "no ANA result" whatever the concepts: a second
    trial's anti-dsDNA criterion read "no ANA result" in candidates.csv and explain."""
    from criteria_helpers import context, patient

    crit = Criterion(
        "dsdna",
        "titer",
        "inclusion",
        "anti-dsDNA titer >= 1:10",
        {
            "titer_concepts": ["anti_dsdna_titer"],
            "screen_concepts": ["anti_dsdna"],
            "min_titer": 10,
        },
    )
    r = KINDS["titer"].fn(crit, context(patient()))
    assert r.reason == "no anti_dsdna_titer result"  # (the first titer concept by default)
    named = dataclasses.replace(crit, params={**crit.params, "label": "anti-dsDNA"})
    assert KINDS["titer"].fn(named, context(patient())).reason == "no anti-dsDNA result"


@pytest.mark.parametrize(
    ("concept", "key"),
    [
        ("hemoglobin", "concepts"),  # lab_latest
        ("creatinine", "measures[2].concepts"),  # labs_exceed
        ("cd19_count", "lab_concepts"),  # washout's lab after the window
        ("hcg", "checks[2].lab"),  # a check with a quantitative cut-off
    ],
)
def test_a_number_compared_needs_the_concept_s_unit(concept: str, key: str, tmp_path: Path) -> None:
    """A units.csv line deleted (or never written for a new lab concept) left every result with
    a unit unconvertible: the criterion went unknown for every patient (no `likely` candidate
    left at either sample site) while `check` and `run` said nothing."""
    m = copy_mappings(tmp_path)
    units = m / "units.csv"
    lines = units.read_text(encoding="utf-8").splitlines(keepends=True)
    units.write_text("".join(ln for ln in lines if not ln.startswith(f"{concept},")))
    message = (
        f"key '{key}': concept '{concept}' has no unit in units.csv, so no result with a unit "
        f"can be compared with a number (add a line '{concept},<UCUM unit>,...')"
    )
    code, out = check_all(m)
    assert code == 4 and [ln for ln in out if message in ln], out
    code, output = run_uci(tmp_path, m)
    assert code == 4 and message in output


def test_a_criteria_file_not_in_utf8_is_an_error(tmp_path: Path) -> None:
    """A criteria file saved as Windows-1252 (Notepad, an accented title) crashed `check` and
    `run` with a UnicodeDecodeError traceback (exit 1); then it read "not UTF-8 text (invalid
    start byte)", with no line or byte, where a mapping CSV and a configuration name both."""
    m = copy_mappings(tmp_path)
    path = m / TRIAL
    old = path.read_bytes()
    line = old[: old.index(b'title = "Age >= 12 years"')].count(b"\n") + 1
    path.write_bytes(old.replace(b'title = "Age >= 12 years"', b'title = "\xc2ge"'))
    expected = f"{path}:{line}: not UTF-8 text (byte 0xc2): save it as UTF-8"
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.splitlines() == [f"cohort: error: {expected}"]


def test_unconfirmed_verification_of_checks_without_a_condition_check_is_an_error() -> None:
    """On a `checks` criterion it applies to its condition checks: with none it would do
    nothing, silently."""
    from cohort.criteria.problems import rule_problems

    labs_only = {"checks": [{"lab": ["hbsag"]}], "unconfirmed_verification": ["provisional"]}
    assert list(rule_problems("checks", labs_only)) == [
        ("unconfirmed_verification", "no condition check in 'checks' for it to apply to")
    ]
    with_condition = {**labs_only, "checks": [{"condition": ["chronic_hbv"]}, {"lab": ["hbsag"]}]}
    assert list(rule_problems("checks", with_condition)) == []


def _refused_by_check_and_run(
    tmp_path: Path, old: str, new: str, marker: str, message: str
) -> None:
    """The edit is an error of `check` at the line of `marker`, and `run` stops (exit 4) with
    that very line as its one line of output."""
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, old, new, marker)
    expected = f"{m / TRIAL}:{line}: {message}"
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, "\n".join(lines)
    code, output = run_uci(tmp_path, m)
    assert code == 4, output
    assert output.splitlines() == [f"cohort: error: {expected}"]


OTHER_RECORDS = [
    (
        "a procedure among a washout's medication concepts",
        '"ctla4_fc", "baff_other"]\nprocedures = ["plasmapheresis"]',
        '"ctla4_fc", "baff_other", "plasmapheresis"]',
        '"ctla4_fc"',
        "criterion 'washout_24wk': key 'concepts': concept 'plasmapheresis' is mapped for "
        "Procedure records only (procedures.csv), but 'concepts' of kind 'washout' reads "
        "medication records (did you mean 'procedures'?)",
    ),
    (
        "a lab concept as a washout's medication",
        'concepts = ["belimumab"]',
        'concepts = ["platelets"]',
        "concepts",
        "criterion 'washout_belimumab': key 'concepts': concept 'platelets' is mapped for "
        "Observation records only (labs.csv), but 'concepts' of kind 'washout' reads medication "
        "records",
    ),
    (
        "a medication concept as a live vaccine",
        'immunizations = ["live_vaccine"]',
        'immunizations = ["live_vaccine", "belimumab"]',
        "immunizations",
        "criterion 'live_vaccine': key 'immunizations': concept 'belimumab' is mapped for "
        "medication records only (medications.csv), but 'immunizations' of kind 'washout' reads "
        "Immunization records (did you mean 'concepts'?)",
    ),
    (
        "a lab concept as a check's condition",
        '{ condition = ["chronic_hbv"]',
        '{ condition = ["hbsag"]',
        "{",
        "criterion 'hbv': key 'checks[0].condition': concept 'hbsag' is mapped for Observation "
        "records only (labs.csv), but 'condition' of a condition check reads Condition records "
        "(did you mean 'lab'?)",
    ),
    (
        "a condition concept as a check's lab",
        '{ lab = ["hiv_test"]',
        '{ lab = ["hiv"]',
        "{",
        "criterion 'immunodeficiency': key 'checks[1].lab': concept 'hiv' is mapped for "
        "Condition records only (conditions.csv), but 'lab' of a lab check reads Observation "
        "records (did you mean 'condition'?)",
    ),
    (
        "a lab concept as a check's exception",
        'unless = ["malignancy_exception"], then = "fail", label = "malignancy",',
        'unless = ["hcg"], then = "fail", label = "malignancy",',
        "unless",
        "criterion 'malignancy': key 'checks[0].unless': concept 'hcg' is mapped for Observation "
        "records only (labs.csv), but 'unless' of a condition check reads Condition records",
    ),
    (
        "a lab concept as lab_latest's alt condition",
        'alt = { concepts = ["aiha"], fail_below = 7.0 }',
        'alt = { concepts = ["hemoglobin"], fail_below = 7.0 }',
        "alt",
        "criterion 'hemoglobin': key 'alt.concepts': concept 'hemoglobin' is mapped for "
        "Observation records only (labs.csv), but 'concepts' of alt reads Condition records",
    ),
    (
        "a condition concept as a titer's screen",
        'screen_concepts = ["ana_screen"]',
        'screen_concepts = ["sle"]',
        "screen",
        "criterion 'ana_titer': key 'screen_concepts': concept 'sle' is mapped for Condition "
        "records only (conditions.csv), but 'screen_concepts' of kind 'titer' reads Observation "
        "records",
    ),
    (
        "a condition concept as a diagnosis's uncertain one is fine, a medication is not",
        'uncertain_concepts = ["lupus_unspecified"]',
        'uncertain_concepts = ["lupus_unspecified", "antimalarial"]',
        "uncertain",
        "criterion 'sle_diagnosis': key 'uncertain_concepts': concept 'antimalarial' is mapped "
        "for medication records only (medications.csv), but 'uncertain_concepts' of kind "
        "'diagnosis' reads Condition records",
    ),
    (
        "a lab concept among the screening concepts",
        'screen_concepts = ["sle", "lupus_unspecified"]',
        'screen_concepts = ["sle", "platelets"]',
        "screen",
        "[trial] key 'screen_concepts': concept 'platelets' is mapped for Observation records "
        "only (labs.csv), but 'screen_concepts' of the [trial] table reads Condition records",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [c[1:] for c in OTHER_RECORDS],
    ids=[c[0] for c in OTHER_RECORDS],
)
def test_a_concept_mapped_for_other_records_than_its_key_reads_is_an_error(
    old: str, new: str, marker: str, message: str, tmp_path: Path
) -> None:
    """Each key reads one sort of record (a washout's `concepts` medication records, its
    `procedures` Procedures, a check's `condition` Conditions...). Plasmapheresis moved from
    `procedures` into `concepts` passed `check` and `run` (exit 0): it matched no medication
    record, so a patient with plasmapheresis 3 months ago went from excluded to likely."""
    _refused_by_check_and_run(tmp_path, old, new, marker, message)


def test_a_concept_with_a_row_for_the_records_its_key_reads_is_accepted(tmp_path: Path) -> None:
    """A concept with one row in a file of the records the key reads (`tst`: labs.csv and
    vaccines.csv), or a row in local.csv (a site's own codes, of any record), is accepted."""
    m = copy_mappings(tmp_path)
    edit(
        m / TRIAL,
        'immunizations = ["live_vaccine"]',
        'immunizations = ["live_vaccine", "tst"]',
        "i",
    )
    edit(m / TRIAL, '{ lab = ["igra"]', '{ lab = ["igra", "tst"]', "{")
    with (m / "concepts" / "local.csv").open("a", encoding="utf-8") as fh:
        fh.write(
            "plasmapheresis,http://example.org/fhir/uci/pharmacy,PLEX,exact,,PLEX,site,local,\n"
        )
    edit(m / TRIAL, '"baff_other"]\nprocedures', '"baff_other", "plasmapheresis"]\nprocedures', "b")
    code, lines = check_all(m)
    assert code == 0 and not [ln for ln in lines if ln.startswith("error")], lines
    code, output = run_uci(tmp_path, m)
    assert code == 0, output


def test_every_concept_key_says_which_records_it_reads() -> None:
    """registry.py: every concept list of every kind and inline table names the records its
    kind's function reads it against, one of the concept files' records."""
    from cohort.criteria.registry import (
        ALT,
        CONCEPT_KEYS,
        CONDITION_CHECK,
        HEAD_READS,
        LAB_CHECK,
        MEASURE,
        RECORDS,
    )
    from cohort.terminology.core import FILE_TYPES

    assert set(RECORDS) == set(FILE_TYPES)
    for name, spec in KINDS.items():
        keys = {k for k in {**spec.required, **spec.optional} if k in CONCEPT_KEYS}
        assert set(spec.reads) == keys, name
    for table in (ALT, MEASURE, CONDITION_CHECK, LAB_CHECK):
        assert set(table.reads) == {k for k in table.keys if k in CONCEPT_KEYS}, table.name
    assert set(HEAD_READS) == {"screen_concepts"}
    every = [*HEAD_READS.values()]
    every += [r for spec in KINDS.values() for r in spec.reads.values()]
    every += [r for t in (ALT, MEASURE, CONDITION_CHECK, LAB_CHECK) for r in t.reads.values()]
    assert set(every) <= set(RECORDS)


NOT_FINITE = [
    (
        "fail_below nan",
        "window_days = 90\nfail_below = 25",
        "window_days = 90\nfail_below = nan",
        "fail_below",
        "criterion 'platelets': key 'fail_below': expected a finite number, got nan",
    ),
    (
        "fail_below inf",
        "window_days = 90\nfail_below = 25",
        "window_days = 90\nfail_below = inf",
        "fail_below",
        "criterion 'platelets': key 'fail_below': expected a finite number, got inf",
    ),
    (
        "pass_at_least nan",
        "pass_at_least = 6",
        "pass_at_least = nan",
        "pass",
        "criterion 'sledai': key 'pass_at_least': expected a finite number, got nan",
    ),
    (
        "max_daily_mg nan",
        "max_daily_mg = 40",
        "max_daily_mg = nan",
        "max",
        "criterion 'washout_high_dose_cs': key 'max_daily_mg': expected a finite number, got nan",
    ),
    (
        "min_titer -inf",
        "min_titer = 80",
        "min_titer = -inf",
        "min",
        "criterion 'ana_titer': key 'min_titer': expected a finite number, got -inf",
    ),
    (
        "lab_default_lln nan",
        "lab_default_lln = 80",
        "lab_default_lln = +nan",
        "lab",
        "criterion 'washout_b_cell_depletion': key 'lab_default_lln': expected a finite number, "
        "got nan",
    ),
    (
        "positive_at nan",
        "positive_at = 25,",
        "positive_at = nan,",
        "positive",
        "criterion 'pregnancy_lactation': key 'checks[2].positive_at': expected a finite number, "
        "got nan",
    ),
    (
        "fail_above inf",
        '{ concepts = ["upcr"], fail_above = 2.0 }',
        '{ concepts = ["upcr"], fail_above = inf }',
        "{",
        "criterion 'severe_lupus_nephritis': key 'measures[1].fail_above': expected a finite "
        "number, got inf",
    ),
    (
        "alt fail_below nan",
        'alt = { concepts = ["aiha"], fail_below = 7.0 }',
        'alt = { concepts = ["aiha"], fail_below = nan }',
        "alt",
        "criterion 'hemoglobin': key 'alt.fail_below': expected a finite number, got nan",
    ),
    (
        "a number too big for a float",
        "window_days = 90\nfail_below = 25",
        "window_days = 90\nfail_below = 1e400",
        "fail_below",
        "criterion 'platelets': key 'fail_below': expected a finite number, got inf",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [c[1:] for c in NOT_FINITE],
    ids=[c[0] for c in NOT_FINITE],
)
def test_a_number_that_is_not_finite_is_an_error_of_the_criteria_file(
    old: str, new: str, marker: str, message: str, tmp_path: Path
) -> None:
    """TOML writes `nan` and `inf`: `fail_below = nan` on platelets passed `check` and `run`
    (exit 0), and a count of 20 passed the >= 25 rule (every comparison with nan is false);
    `inf` made every result fail, `-inf` every titer pass."""
    _refused_by_check_and_run(tmp_path, old, new, marker, message)


@pytest.mark.usefixtures("in_tmp")
def test_a_criteria_file_is_named_from_the_working_folder_as_the_mapping_csvs_are(
    tmp_path: Path,
) -> None:
    """Run from the folder holding the mappings copy, a CSV's mistake read `mappings/units.csv:3`
    but the criteria file's `/tmp/.../mappings/trials/sirius-sle-2.toml:24`: the same folder named
    two ways in one listing. Both now read from the working folder, in `check` and in `run`."""
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, "min_years = 12", 'min_years = "12"', "min")
    code, lines = check_all(m)
    assert code == 4
    named = f"error: mappings/{TRIAL}:{line}: criterion 'age': key 'min_years'"
    assert [ln for ln in lines if ln.startswith(named)], lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and f"cohort: {named}" in output


@pytest.mark.usefixtures("in_tmp")
def test_an_unreadable_criteria_file_is_named_from_the_working_folder(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    (m / TRIAL).write_bytes(b'[trial]\nid = "sirius-sle-2"\ntitle = "\xc2ge"\n')
    code, lines = check_all(m)
    assert code == 4 and any(
        ln.startswith(f"error: mappings/{TRIAL}:3: not UTF-8 text") for ln in lines
    ), lines
