"""Titers in every shape and qualitative results from codes, strings and interpretations."""

from pathlib import Path

import pytest

from cohort.model import Code, ObsValue, Quantity
from cohort.terminology import Terminology, Titer

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.fixture(scope="module")
def term() -> Terminology:
    return Terminology.load(MAPPINGS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:160", Titer(160, "")),
        ("1/160", Titer(160, "")),
        (" 1 : 80 ", Titer(80, "")),
        ("<1:40", Titer(40, "<")),
        (">1:640", Titer(640, ">")),
        (">=1:80", Titer(80, ">=")),
        ("≥1:80", Titer(80, ">=")),
        ("<=1:40", Titer(40, "<=")),
        ("160", Titer(160, "")),
        ("Positive 1:320 speckled", Titer(320, "")),
        ("Negative", None),
        ("", None),
        ("1:160 and 1:320", None),
    ],
)
def test_titer_strings(term: Terminology, text: str, expected: Titer | None) -> None:
    assert term.titer(ObsValue(string=text)) == expected


def test_titer_ratio_and_quantity(term: Terminology) -> None:
    ratio = ObsValue(ratio=(Quantity(1), Quantity(160)))
    assert term.titer(ratio) == Titer(160, "")
    lt = ObsValue(ratio=(Quantity(1, comparator="<"), Quantity(40)))
    assert term.titer(lt) == Titer(40, "<")
    assert term.titer(ObsValue(quantity=Quantity(160, unit="{titer}"))) == Titer(160, "")
    gt = ObsValue(quantity=Quantity(640, code="{titer}", comparator=">"))
    assert term.titer(gt) == Titer(640, ">")
    assert term.titer(ObsValue(quantity=Quantity(160, unit="U/mL"))) is None
    assert term.titer(ObsValue(ratio=(Quantity(1), Quantity(0)))) is None
    # 1e300 / 1e-300 overflows to inf: no titer (it passed ana_titer; found by fuzzing)
    assert term.titer(ObsValue(ratio=(Quantity(1e-300), Quantity(1e300)))) is None
    assert term.titer(ObsValue(ratio=(Quantity(1e300), Quantity(1e-300)))) is None  # 1:0
    assert str(Titer(160, "")) == "1:160"
    assert str(Titer(640, ">")) == ">1:640"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Positive", "positive"),
        ("REACTIVE", "positive"),
        ("Detected", "positive"),
        ("Negative", "negative"),
        ("Non-reactive", "negative"),
        ("Nonreactive", "negative"),
        ("not detected", "negative"),
        ("Not  Detected.", "negative"),
        ("Indeterminate", "indeterminate"),
        ("Equivocal", "indeterminate"),
        ("see note", None),
    ],
)
def test_qualitative_strings(term: Terminology, text: str, expected: str | None) -> None:
    assert term.qualitative_value(ObsValue(string=text)) == expected


def test_qualitative_codes(term: Terminology) -> None:
    pos = ObsValue(codes=(Code("urn:oid:2.16.840.1.113883.6.96", "10828004"),))
    assert term.qualitative_value(pos) == "positive"
    neg = ObsValue(codes=(Code("http://loinc.org", "LA6577-6"),))
    assert term.qualitative_value(neg) == "negative"
    nd = ObsValue(codes=(Code("http://snomed.info/sct", "260415000"),))
    assert term.qualitative_value(nd) == "negative"
    react = ObsValue(codes=(Code("http://snomed.info/sct", "11214006"),))
    assert term.qualitative_value(react) == "positive"
    # unknown code with a display / text that says it
    local = ObsValue(codes=(Code("urn:local", "P", "Positive"),))
    assert term.qualitative_value(local) == "positive"
    assert term.qualitative_value(ObsValue(text="Negative")) == "negative"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("POS", "positive"),
        ("DET", "positive"),
        ("A", "positive"),
        ("NEG", "negative"),
        ("ND", "negative"),
        ("N", "negative"),
        ("IND", "indeterminate"),
        ("H", None),
    ],
)
def test_qualitative_interpretation(term: Terminology, code: str, expected: str | None) -> None:
    assert term.qualitative_flag((Code(INTERP, code),)) == expected


def test_value_boolean_and_quantity(term: Terminology) -> None:
    assert term.qualitative_value(ObsValue(boolean=True)) == "positive"
    assert term.qualitative_value(ObsValue(boolean=False)) == "negative"
    assert term.qualitative_value(ObsValue(quantity=Quantity(12, unit="[IU]/mL"))) is None


def test_qualitative_parts_keep_value_and_interpretation_apart(term: Terminology) -> None:
    # a reader that must see a contradiction gets each side (checks.classify)
    assert term.qualitative_value(ObsValue(string="Negative")) == "negative"
    assert term.qualitative_flag((Code(INTERP, "A"),)) == "positive"
    load = ObsValue(quantity=Quantity(20, unit="[IU]/mL", comparator="<"))
    assert term.qualitative_value(load) is None
    assert term.qualitative_flag((Code(INTERP, "DET"),)) == "positive"
    assert term.qualitative_flag((Code(INTERP, "H"),)) is None
    assert term.qualitative_value(ObsValue()) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<20 IU/mL HBV DNA detected", "positive"),
        ("Detected, below the limit of quantitation", "positive"),
        ("<20 IU/mL not detected", "negative"),
        ("Target Not  Detected.", "negative"),  # the longer phrase, never its "detected"
        ("<20 IU/mL undetected", "negative"),  # a word inside another is not that word
        ("HCV Ab non-reactive (S/CO 0.1)", "negative"),
        ("detected; repeat not detected", "indeterminate"),
        ("<20 IU/mL", None),
        ("", None),
    ],
)
def test_result_words_inside_a_text(term: Terminology, text: str, expected: str | None) -> None:
    assert term.qualitative_named(text) == expected


def _values(tmp_path: Path, text: str) -> Path:
    """A copy of the shipped mappings whose values.csv is `text`."""
    from researcher_helpers import copy_mappings

    m = copy_mappings(tmp_path)
    (m / "values.csv").write_text(text, encoding="utf-8")
    return m


def test_unverified_value_rows_are_read_only_with_use_unverified(tmp_path: Path) -> None:
    """A values.csv row marked verified=N counts only with use_unverified (as concept rows do);
    `local` wording counts, and a folder whose values.csv predates the column reads as verified."""
    m = _values(
        tmp_path,
        "kind,system,code,result,source,verified\n"
        "code,http://snomed.info/sct,10828004,positive,ddcc,N\n"
        "string,,Pozitiv,positive,a site's wording,local\n",
    )
    pos = ObsValue(codes=(Code("http://snomed.info/sct", "10828004"),))
    assert Terminology.load(m).qualitative_value(pos) is None
    assert Terminology.load(m, use_unverified=True).qualitative_value(pos) == "positive"
    assert Terminology.load(m).qualitative_value(ObsValue(string="pozitiv")) == "positive"
    old = _values(tmp_path / "old", "kind,system,code,result,source\ncode,http://snomed.info/sct,10828004,positive,x\n")
    assert Terminology.load(old).qualitative_value(pos) == "positive"


def test_no_result_words_name_nothing_inside_a_text(tmp_path: Path) -> None:
    # an empty list of words must not become a pattern that matches everywhere
    m = _values(tmp_path, "kind,system,code,result,source,verified\n")
    assert Terminology.load(m).qualitative_named("<20 IU/mL detected") is None


@pytest.mark.parametrize("row", ["string,,Pos,positive,x,maybe", "string,,Pos,positive,x"])
def test_value_row_verified_flag_must_be_known(tmp_path: Path, row: str) -> None:
    """An unknown flag, or a row that leaves the column's cell out, names file, line and column."""
    from cohort.errors import MappingError

    m = _values(tmp_path, f"kind,system,code,result,source,verified\n{row}\n")
    with pytest.raises(MappingError, match=r"values\.csv:2: column 'verified'"):
        Terminology.load(m)


def test_shipped_value_rows_are_all_flagged() -> None:
    """Every shipped row says whether it was checked: codes against their cited public source
    (Y), wording either the display of such a code (Y) or a spelling of one (local)."""
    import csv

    rows = list(csv.DictReader((MAPPINGS / "values.csv").open(encoding="utf-8")))
    assert rows and {r["verified"] for r in rows} <= {"Y", "local"}
    assert all(r["verified"] == "Y" for r in rows if r["kind"] != "string")
    displays = {r["code"] for r in rows if r["kind"] == "string" and r["verified"] == "Y"}
    assert displays >= {"Positive", "Negative", "Detected", "Not detected", "Equivocal"}


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("http://snomed.info/sct", "52101004", "positive"),  # Present (qualifier value)
        ("http://snomed.info/sct", "2667000", "negative"),  # Absent (qualifier value)
        ("http://loinc.org", "LA9633-4", "positive"),  # Present
        ("http://loinc.org", "LA9634-2", "negative"),  # Absent
    ],
)
def test_presence_answer_codes(term: Terminology, system: str, code: str, expected: str) -> None:
    assert term.qualitative_value(ObsValue(codes=(Code(system, code),))) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Present", "positive"), ("Absent", "negative"), ("Undetectable", "negative")],
)
def test_presence_wording(term: Terminology, text: str, expected: str) -> None:
    assert term.qualitative_value(ObsValue(string=text)) == expected


@pytest.mark.parametrize(
    "system",
    [
        "urn:oid:2.16.840.1.113883.5.83",  # the HL7 v3 ObservationInterpretation OID
        "http://hl7.org/fhir/v3/ObservationInterpretation",  # its FHIR STU3 URI
    ],
)
def test_interpretation_under_other_names_of_the_system(term: Terminology, system: str) -> None:
    assert term.qualitative_flag((Code(system, "POS"),)) == "positive"
    assert term.qualitative_flag((Code(system, "NEG"),)) == "negative"


def test_titer_quantity_code_is_ucum_only_under_the_ucum_system(term: Terminology) -> None:
    local = Quantity(160, unit="{titer}", code="T", system="urn:local:units")
    assert term.titer(ObsValue(quantity=local)) == Titer(160, "")
    ucum = Quantity(160, unit="{titer}", code="T", system="http://unitsofmeasure.org")
    assert term.titer(ObsValue(quantity=ucum)) is None
