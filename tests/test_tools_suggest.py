"""`cohort mappings coverage`'s suggested concept: made on evidence only (QA review of the
public Synthea bundles: a stool hemoglobin, HbA1c, TSH and a polysaccharide vaccine were
suggested as hemoglobin, hemoglobin, hCG and live vaccine)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cohort.model import Code, Quantity
from cohort.terminology import Terminology
from cohort.tools.coverage import Unmapped
from cohort.tools.suggest import Suggester

ROOT = Path(__file__).resolve().parent.parent
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
CVX = "http://hl7.org/fhir/sid/cvx"


@pytest.fixture(scope="module")
def sug(tmp_path_factory: pytest.TempPathFactory) -> Suggester:
    """The shipped mappings less their row of LOINC 777-3, the automated platelet count:
    a platelet count not yet mapped, as a site's data may hold one."""
    m = tmp_path_factory.mktemp("sug") / "mappings"
    shutil.copytree(ROOT / "mappings", m)
    labs = m / "concepts" / "labs.csv"
    lines = labs.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [t for t in lines if not t.startswith("platelets,http://loinc.org,777-3,")]
    assert len(kept) == len(lines) - 1
    labs.write_text("".join(kept), encoding="utf-8")
    term = Terminology.load(m)
    assert not term.concepts_for([Code(LOINC, "777-3")])
    return Suggester(term)


def lab(code: str, display: str, unit: str = "", *values: float, system: str = LOINC) -> Unmapped:
    """An unmapped Observation as coverage.py collects it: display, values and units."""
    qs = [Quantity(v, unit, unit) for v in values] if unit else []
    u = Unmapped("syn617", "Observation", system, code, display)
    u.values = [f"{v:g} {unit}".strip() for v in values]
    u.units = {unit} if unit else set()
    u.quantities = qs
    return u


def other(rtype: str, system: str, code: str, display: str) -> Unmapped:
    return Unmapped("syn617", rtype, system, code, display)


# the unsafe ones: accepted, each would count patients under a concept a criterion excludes on
UNSAFE = [
    lab(
        "57905-2",
        "Hemoglobin.gastrointestinal [Presence] in Stool by Immunologic method",
        "ng/mL",
        55.0,
        120.0,
    ),
    lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.6, 6.1),
    lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),  # no unit: words alone
    lab("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 2.1, 3.4),
    lab("5794-3", "Hemoglobin [Presence] in Urine by Test strip"),
    other("Immunization", CVX, "33", "pneumococcal polysaccharide vaccine, 23 valent"),
]

WRONG = [
    lab("32623-1", "Platelet mean volume [Entitic volume] in Blood by Automated count", "fL", 10.3),
    lab(
        "32207-3",
        "Platelet distribution width [Entitic volume] in Blood by Automated count",
        "fL",
        370.0,
    ),
    lab("10834-0", "Globulin [Mass/volume] in Serum by calculation", "g/L", 28.0),
    lab("26464-8", "White Blood Cell (Elevated)", "K/uL", 7.2),
    lab("14959-1", "Microalbumin Creatinine Ratio", "mg/g", 12.0),
    lab("5804-0", "Protein [Mass/volume] in Urine by Test strip", "mg/dL", 30.0),
    lab("20454-5", "Protein [Presence] in Urine by Test strip"),
    lab("8302-2", "Body Height", "cm", 170.0),
    lab("39156-5", "Body Mass Index", "kg/m2", 27.0),
    *(
        lab(code, f"{name} IgE Ab in Serum", "kU/L", 0.2)
        for code, name in [
            ("6075-6", "Cladosporium herbarum"),
            ("6082-2", "Codfish"),
            ("6085-5", "Common Ragweed"),
            ("6095-4", "American house dust mite"),
            ("6106-9", "Egg white"),
            ("6158-0", "Latex"),
            ("6189-5", "White oak"),
            ("6206-7", "Peanut"),
            ("6246-3", "Shrimp"),
            ("6248-9", "Soybean"),
            ("6273-7", "Walnut"),
            ("6276-0", "Wheat"),
            ("6833-8", "Cat dander"),
            ("6844-5", "Honey bee"),
            ("7258-7", "Cow milk"),
        ]
    ),
    other("Condition", SCT, "82423001", "Chronic pain"),
    other("Condition", SCT, "40055000", "Chronic sinusitis (disorder)"),
    other("Condition", SCT, "698754002", "Chronic paralysis due to lesion of spinal cord"),
    other("Condition", SCT, "124171000119105", "Chronic intractable migraine without aura"),
    other("Condition", SCT, "428251008", "History of appendectomy"),
    other("Condition", SCT, "399211009", "History of myocardial infarction (situation)"),
    other("Condition", SCT, "53741008", "Coronary Heart Disease"),
    other("Condition", SCT, "10509002", "Acute bronchitis (disorder)"),
    other("Condition", SCT, "431855005", "Chronic kidney disease stage 1 (disorder)"),
    other("Condition", SCT, "185086009", "Chronic obstructive bronchitis (disorder)"),
    other("Immunization", CVX, "140", "Influenza, seasonal, injectable, preservative free"),
    other("Immunization", CVX, "10", "poliovirus vaccine, inactivated"),
]


@pytest.mark.parametrize("u", UNSAFE + WRONG, ids=lambda u: f"{u.code}:{u.display[:30]}")
def test_no_suggestion_without_evidence(sug: Suggester, u: Unmapped) -> None:
    """A shared generic word ("chronic", "history", "Ab", "vaccine", "disease"), a unit that
    converts with another analyte's or specimen's words, or a unit that does not convert at
    all, is no evidence for a concept."""
    assert sug.suggest(u) == ("", ""), (u.code, u.display)


def test_a_platelet_count_not_yet_mapped_is_still_suggested(sug: Suggester) -> None:
    u = lab("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 250.0, 180.0)
    concept, why = sug.suggest(u)
    assert concept == "platelets", why
    assert "unit converts to 10*3/uL" in why


def test_a_local_platelet_code_in_another_unit_is_still_suggested(sug: Suggester) -> None:
    u = lab("PLT", "Platelets", "10*9/L", 210.0, system="http://example.org/lab")
    concept, why = sug.suggest(u)
    assert concept == "platelets" and "unit converts to 10*3/uL" in why, why


def test_a_local_hemoglobin_in_g_per_l_is_still_suggested(sug: Suggester) -> None:
    u = lab("HGB", "HEMOGLOBIN", "g/L", 131.0, system="http://example.org/lab")
    assert sug.suggest(u)[0] == "hemoglobin"


@pytest.mark.parametrize(
    ("u", "concept"),
    [
        (other("Condition", SCT, "88805009", "Chronic congestive heart failure (disorder)"),
         "heart_failure"),
        (lab("55277-8", "HIV status"), "hiv_test"),
        (other("Condition", SCT, "1", "History of tuberculosis (situation)"), "tb_history"),
        (other("Immunization", CVX, "998", "dengue tetravalent vaccine, live"), "live_vaccine"),
        (other("Immunization", CVX, "997", "cholera vaccine, attenuated, oral"), "live_vaccine"),
        # (says "live" only to say it is not)
        (other("Immunization", CVX, "999", "zoster vaccine, non-live"), "non_live_vaccine"),
    ],
    ids=lambda x: x if isinstance(x, str) else x.display[:30],
)
def test_right_suggestions_stay(sug: Suggester, u: Unmapped, concept: str) -> None:
    assert sug.suggest(u)[0] == concept, sug.suggest(u)


def test_a_titer_code_is_still_suggested_by_its_values(sug: Suggester) -> None:
    u = lab("ANA-T", "ANA TITER", system="http://example.org/lab")
    u.values = ["1:160", "1:80"]
    concept, why = sug.suggest(u)
    assert concept == "ana_titer" and "titer-like values" in why, why
