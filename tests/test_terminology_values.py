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
    assert term.qualitative(ObsValue(string=text), ()) == expected


def test_qualitative_codes(term: Terminology) -> None:
    pos = ObsValue(codes=(Code("urn:oid:2.16.840.1.113883.6.96", "10828004"),))
    assert term.qualitative(pos, ()) == "positive"
    neg = ObsValue(codes=(Code("http://loinc.org", "LA6577-6"),))
    assert term.qualitative(neg, ()) == "negative"
    nd = ObsValue(codes=(Code("http://snomed.info/sct", "260415000"),))
    assert term.qualitative(nd, ()) == "negative"
    react = ObsValue(codes=(Code("http://snomed.info/sct", "11214006"),))
    assert term.qualitative(react, ()) == "positive"
    # unknown code with a display / text that says it
    local = ObsValue(codes=(Code("urn:local", "P", "Positive"),))
    assert term.qualitative(local, ()) == "positive"
    assert term.qualitative(ObsValue(text="Negative"), ()) == "negative"


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
    assert term.qualitative(ObsValue(), (Code(INTERP, code),)) == expected


def test_value_wins_over_interpretation_and_boolean(term: Terminology) -> None:
    assert term.qualitative(ObsValue(string="Negative"), (Code(INTERP, "A"),)) == "negative"
    assert term.qualitative(ObsValue(boolean=True), ()) == "positive"
    assert term.qualitative(ObsValue(boolean=False), ()) == "negative"
    assert term.qualitative(ObsValue(quantity=Quantity(12, unit="[IU]/mL")), ()) is None
