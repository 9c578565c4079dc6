"""mappings/rules.toml as a researcher edits it: a mistake stops `check` and `run` alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from researcher_helpers import check_all, copy_mappings, edit, run_uci

RULE_MISTAKES = [
    (
        "missing_status_is_active = false",
        'missing_status_is_active = "false"',
        "[condition] key 'missing_status_is_active': expected true or false (without quotes), "
        "got 'false'",
    ),
    (
        "[drop_verification]",
        "[drop_verifcation]",
        "[drop_verifcation]: unknown table (did you mean 'drop_verification'?)",
    ),
    (
        'Observation = ["cancelled"',
        'Observaton = ["cancelled"',
        "[drop_status] key 'Observaton': not a resource type these rules apply to (did you mean "
        "'Observation'?)",
    ),
    (
        'active = ["active", "recurrence", "relapse"]',
        'active = "active"',
        "[condition] key 'active': expected a list of texts, e.g. [\"a\", \"b\"], got 'active'",
    ),
    ("ongoing = ", "ongoin = ", "[exposure] key 'ongoin': unknown key (did you mean 'ongoing'?)"),
    # a status word FHIR R4 does not have for the type matches no record: `canceled` stopped
    # cancelled Observations from being dropped, without a word
    (
        'Observation = ["cancelled"',
        'Observation = ["canceled"',
        "[drop_status] key 'Observation': 'canceled' is not an Observation status in FHIR R4 "
        "(did you mean 'cancelled'?)",
    ),
    (
        '"*" = ["entered-in-error"]',
        '"*" = ["entered_in_error"]',
        "[drop_status] key '*': 'entered_in_error' is not a status of any type these rules "
        "apply to in FHIR R4 (did you mean 'entered-in-error'?)",
    ),
    (
        'Procedure = ["not-done"]',
        'Patient = ["inactive"]\nProcedure = ["not-done"]',
        "[drop_status] key 'Patient': 'inactive' is not a Patient status in FHIR R4 (a Patient "
        "has no status)",
    ),
    (
        'Immunization = ["not-done"]',
        'Immunization = ["Not-Done"]',
        "[drop_status] key 'Immunization': 'Not-Done' is not an Immunization status in FHIR R4 "
        "(did you mean 'not-done'?)",
    ),
    (
        'Condition = ["refuted"',
        'Condition = ["refused"',
        "[drop_verification] key 'Condition': 'refused' is not a Condition verificationStatus "
        "in FHIR R4 (did you mean 'refuted'?)",
    ),
    (
        'active = ["active", "recurrence", "relapse"]',
        'active = ["active", "reccurence", "relapse"]',
        "[condition] key 'active': 'reccurence' is not a Condition clinicalStatus in FHIR R4 "
        "(did you mean 'recurrence'?)",
    ),
    (
        'MedicationRequest = ["proposal", "option"]',
        'MedicationRequest = ["proposal", "opton"]',
        "[drop_intent] key 'MedicationRequest': 'opton' is not a MedicationRequest intent in "
        "FHIR R4 (did you mean 'option'?)",
    ),
    (
        'MedicationRequest = ["proposal"',
        'MedicationStatement = ["proposal"',
        "[drop_intent] key 'MedicationStatement': not a resource type these rules apply to "
        "(did you mean 'MedicationRequest'?)",
    ),
    (
        'ongoing = ["active", "on-hold", "intended"]',
        'ongoing = ["active", "onhold", "intended"]',
        "[exposure] key 'ongoing': 'onhold' is not a MedicationStatement, MedicationRequest or "
        "MedicationAdministration status in FHIR R4 (did you mean 'on-hold'?)",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "message"), RULE_MISTAKES, ids=[r[1] for r in RULE_MISTAKES]
)
def test_a_reading_rules_mistake_stops_check_and_run(
    old: str, new: str, message: str, tmp_path: Path
) -> None:
    """rules.toml ("Researchers may edit; `cohort mappings check` validates") took any table,
    key or resource type and any value: a misspelt one was ignored and "false" in quotes was
    true, each changing who counts as a candidate without a word."""
    _stops_check_and_run(tmp_path, old, new, message, str(tmp_path / "mappings"))


def _stops_check_and_run(tmp_path: Path, old: str, new: str, message: str, named: str) -> None:
    """`old` edited to `new` in a copy of rules.toml: `check` lists, and `run` stops at,
    `message` at the line edited, the file named as `named`/rules.toml."""
    m = copy_mappings(tmp_path)
    line = edit(m / "rules.toml", old, new, new[:3])
    expected = f"{named}/rules.toml:{line}: {message}"
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.splitlines() == [f"cohort: error: {expected}"]


def test_a_line_separator_inside_a_toml_string_does_not_shift_the_line_named(
    tmp_path: Path,
) -> None:
    """TOML ends lines at LF or CRLF only; the line finder split at U+2028 too (which a TOML
    string may hold), so every error below such a string named the line after the right one."""
    m = copy_mappings(tmp_path)
    # (in a list of words, not of statuses: a status word holding it is an error of its own)
    edit(m / "rules.toml", "non_systemic_words = [", "non_systemic_wordz = [", "z")
    new = 'non_systemic_words = ["cream\u2028x"]\nongoin = '
    line = edit(m / "rules.toml", "ongoing = ", new, "ongoin")
    code, lines = check_all(m)
    expected = f"{m / 'rules.toml'}:{line}: [exposure] key 'ongoin': unknown key"
    assert code == 4 and any(ln.startswith(f"error: {expected}") for ln in lines), lines


@pytest.mark.usefixtures("in_tmp")
def test_a_reading_rules_mistake_names_the_file_from_the_working_folder(tmp_path: Path) -> None:
    """As the mapping CSVs are: `mappings/rules.toml:LINE`, not the folder's absolute path."""
    _stops_check_and_run(tmp_path, *RULE_MISTAKES[0], "mappings")


def test_a_reading_rules_file_saved_in_a_windows_code_page_names_the_line_and_byte(
    tmp_path: Path,
) -> None:
    """rules.toml saved as "ANSI" (Notepad, a word with an accent): `check` and `run` said
    "cannot read reading rules: 'utf-8' codec can't decode byte 0xe9 in position 1234: ...",
    a Python message with no line, where every other mapping file names its line and byte."""
    m = copy_mappings(tmp_path)
    line = edit(m / "rules.toml", "non_systemic_words = [", "# caf\u00e9\nnon_systemic_words = [", "#")
    path = m / "rules.toml"
    path.write_bytes(path.read_text(encoding="utf-8").encode("cp1252"))
    expected = f"{m}/rules.toml:{line}: not UTF-8 text (byte 0xe9): save it as UTF-8"
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.splitlines() == [f"cohort: error: {expected}"]
