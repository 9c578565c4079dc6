"""SPEC §2-4 read literally, criterion by criterion: each boundary the spec states (cut-offs,
window edges, calendar months, missing data, the spec's exceptions) on the real trial file.

Written by the spec audit; the cases the code already met pin the checked behaviour, the tests
of the audit's fixes follow at the end. Where the spec is ambiguous the case follows the reading
documented in docs/rules.md (e.g. an exposure ending exactly on as_of - N is outside the window)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from criteria_helpers import (
    AS_OF,
    FLOWSHEET,
    SNOMED,
    ago,
    component,
    condition,
    dosage,
    immunization,
    medication,
    observation,
    patient,
    procedure,
    qty,
    run,
    screened,
    status,
)


def mg(v: float) -> dict:
    return qty(v, "mg", "mg")


# --- age -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("born", "expected"),
    [
        ("2014-11-25", "pass"),  # 12th birthday on as_of
        ("2014-11-26", "fail"),  # 12 tomorrow
        ("2014", "unknown"),
        ("2013", "pass"),
        ("2015", "fail"),
        (None, "unknown"),
    ],
)
def test_age(born, expected):
    assert status("age", patient(born)) == expected


def test_age_site_18():
    assert status("age", patient("2008-11-25"), site={"min_age": 18}) == "pass"
    assert status("age", patient("2008-11-26"), site={"min_age": 18}) == "fail"


# --- sle_diagnosis ---------------------------------------------------------------------------
def test_sle_six_months_edges():
    six = "2026-05-25"
    assert status("sle_diagnosis", condition("M32.9", onset=six)) == "pass"
    assert status("sle_diagnosis", condition("M32.9", onset="2026-05-26")) == "fail"
    assert status("sle_diagnosis", condition("M32.9", recorded=six)) == "pass"
    # onset wins over recordedDate
    assert (
        status("sle_diagnosis", condition("M32.9", onset="2026-06-01", recorded="2020-01-01"))
        == "fail"
    )
    assert status("sle_diagnosis", condition("M32.9")) == "unknown"
    assert status("sle_diagnosis") == "fail"
    assert status("sle_diagnosis", condition("M32.0", onset="2020-01-01")) == "fail"
    assert status("sle_diagnosis", condition("M32.14", onset="2020-01-01")) == "pass"
    assert status("sle_diagnosis", condition("68815009", SNOMED, onset="2020-01-01")) == "pass"
    assert (
        status("sle_diagnosis", condition("M32.9", onset="2020-01-01", verification="refuted"))
        == "fail"
    )


def test_sle_month_end():
    # as_of 2026-08-31: 6 months before is 2026-02-28
    assert (
        status("sle_diagnosis", condition("M32.9", onset="2026-02-28"), as_of=date(2026, 8, 31))
        == "pass"
    )
    assert (
        status("sle_diagnosis", condition("M32.9", onset="2026-03-01"), as_of=date(2026, 8, 31))
        == "fail"
    )


# --- ana ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"valueString": "1:80"}, "pass"),
        ({"valueString": "1:79"}, "fail"),
        ({"valueString": ">=1:80"}, "pass"),
        ({"valueString": "<=1:80"}, "unknown"),
        ({"valueString": "<1:160"}, "unknown"),
        ({"valueString": ">1:40"}, "unknown"),
        ({"valueString": "Negative"}, "fail"),
        ({"valueQuantity": qty(80, "{titer}", "{titer}", comparator=">=")}, "pass"),
    ],
)
def test_ana(value, expected):
    assert status("ana_titer", observation("5048-4", ago(10), **value)) == expected


def test_ana_qualitative():
    assert status("ana_titer", observation("8061-4", ago(10), valueString="Positive")) == "unknown"
    assert status("ana_titer", observation("8061-4", ago(10), valueString="Negative")) == "fail"
    assert status("ana_titer") == "unknown"


# --- background_therapy ------------------------------------------------------------------------
def test_background_current_edges():
    hcq = "5521"
    assert (
        status(
            "background_therapy",
            medication(code=hcq, status="completed", start=ago(30), end=ago(0)),
        )
        == "pass"
    )
    assert (
        status(
            "background_therapy",
            medication(code=hcq, status="completed", start=ago(30), end=ago(1)),
        )
        == "fail"
    )
    assert (
        status("background_therapy", medication(code=hcq, status="active", start=ago(0))) == "pass"
    )
    assert (
        status("background_therapy", medication(code=hcq, status="on-hold", start=ago(400)))
        == "pass"
    )
    assert (
        status("background_therapy", medication(code=hcq, status="intended", start=ago(400)))
        == "pass"
    )
    assert (
        status("background_therapy", medication(code=hcq, status="stopped", start=ago(400)))
        == "fail"
    )
    assert (
        status("background_therapy", medication(code=hcq, status="active", start=ago(-1)))
        == "unknown"
    )
    assert (
        status(
            "background_therapy",
            medication(
                code="8640", status="active", start=ago(10), dosages=[dosage(mg(5), route="oral")]
            ),
        )
        == "pass"
    )
    assert (
        status("background_therapy", medication(code="6851", status="active", start=ago(10)))
        == "pass"
    )
    assert (
        status(
            "background_therapy",
            medication(text="mizoribine 50 mg", status="active", start=ago(10)),
        )
        == "pass"
    )
    assert (
        status("background_therapy", medication(code="1256", status="active", start=ago(10)))
        == "pass"
    )
    assert (
        status("background_therapy", medication(code="27169", status="active", start=ago(10)))
        == "pass"
    )
    assert (
        status("background_therapy", medication(code="68149", status="active", start=ago(10)))
        == "pass"
    )
    assert status("background_therapy") == "unknown"
    # dropped records are no records
    assert (
        status(
            "background_therapy",
            medication("MedicationRequest", code=hcq, status="draft", authored=ago(10)),
        )
        == "unknown"
    )
    assert (
        status("background_therapy", medication(code=hcq, status="not-taken", start=ago(10)))
        == "unknown"
    )
    assert (
        status(
            "background_therapy",
            medication("MedicationRequest", code=hcq, status="active", authored=ago(10)),
        )
        == "pass"
    )


# --- sledai / bilag / weight -------------------------------------------------------------------
def sledai(v, days):
    return observation(
        "SLEDAI-2K", ago(days), FLOWSHEET, valueQuantity=qty(v, "{score}", "{score}")
    )


def test_sledai():
    assert status("sledai", sledai(6, 90)) == "pass"
    assert status("sledai", sledai(5, 10)) == "fail"
    r = run("sledai", sledai(8, 91))
    assert r.status == "unknown" and r.manual
    assert status("sledai", observation("SLEDAI-2K", ago(3), FLOWSHEET, valueInteger=6)) == "pass"


def test_bilag():
    def b(*grades, days=10):
        return observation(
            "BILAG-2004",
            ago(days),
            FLOWSHEET,
            components=[component(f"x{i}", valueString=g) for i, g in enumerate(grades)],
        )

    assert status("bilag", b("A", "C")) == "pass"
    assert status("bilag", b("B", "B")) == "pass"
    assert status("bilag", b("B", "C")) == "fail"
    assert status("bilag", b("A", days=90)) == "pass"
    assert run("bilag", b("A", days=91)).manual


def test_weight():
    assert (
        status("weight", observation("29463-7", "2025-11-25", valueQuantity=qty(35, "kg", "kg")))
        == "pass"
    )
    assert (
        status("weight", observation("29463-7", "2025-11-24", valueQuantity=qty(35, "kg", "kg")))
        == "unknown"
    )
    assert (
        status("weight", observation("29463-7", ago(1), valueQuantity=qty(34.9, "kg", "kg")))
        == "fail"
    )
    assert (
        status("weight", observation("29463-7", ago(1), valueQuantity=qty(35000, "g", "g")))
        == "pass"
    )
    assert (
        status(
            "weight",
            observation("29463-7", ago(1), valueQuantity=qty(77.16179176470588, "lb", "[lb_av]")),
        )
        == "pass"
    )
    assert (
        status("weight", observation("29463-7", ago(1), valueQuantity=qty(35, "stone-ish")))
        == "unknown"
    )


# --- exposures ---------------------------------------------------------------------------------
def test_prior_ianalumab():
    assert (
        status(
            "prior_ianalumab",
            medication(text="VAY736 study drug", status="completed", start="2019-01-01"),
        )
        == "fail"
    )
    assert (
        status("prior_ianalumab", medication(text="ianalumab", status="completed", start=ago(-3)))
        == "pass"
    )
    assert status("prior_ianalumab") == "pass"


@pytest.mark.parametrize(
    ("cid", "code", "weeks"),
    [
        ("washout_belimumab", "1092437", 12),
        ("washout_12wk", "42316", 12),
        ("washout_12wk", "9524", 12),
        ("washout_24wk", "3002", 24),
        ("washout_b_cell_depletion", "121191", 36),
    ],
)
def test_washout_edges(cid, code, weeks):
    n = 7 * weeks
    ended_in = medication(code=code, status="completed", start=ago(n + 30), end=ago(n - 1))
    r = run(cid, ended_in)
    assert r.status == "fail"
    assert r.eligible_from == AS_OF + timedelta(days=1)
    # documented boundary: end exactly as_of - N passes (eligible_from = E + N is the first passing day)
    assert (
        status(cid, medication(code=code, status="completed", start=ago(n + 30), end=ago(n)))
        == "pass"
    )
    assert run(cid, medication(code=code, status="active", start=ago(n + 30))).eligible_from is None


def test_washout_24wk_procedure_and_others():
    assert status("washout_24wk", procedure("20720000", when=ago(10))) == "fail"
    assert status("washout_24wk", procedure("20720000", when=ago(10), status="not-done")) == "pass"
    for name in [
        "anifrolumab",
        "Saphnelo",
        "abatacept",
        "dapirolizumab pegol",
        "atacicept",
        "IVIG",
        "Hizentra",
        "belatacept",
    ]:
        assert (
            status("washout_24wk", medication(text=name, status="completed", when=ago(10)))
            == "fail"
        ), name
    assert (
        status(
            "washout_24wk",
            medication(text="tetanus immune globulin", status="completed", when=ago(10)),
        )
        == "pass"
    )


def test_b_cell_lab():
    dose = medication(code="121191", status="completed", when=ago(300))
    low = observation("8116-6", ago(20), valueQuantity=qty(50, "/uL", "/uL"))
    ok = observation(
        "8116-6", ago(20), valueQuantity=qty(50, "/uL", "/uL"), ref_low=qty(40, "/uL", "/uL")
    )
    assert status("washout_b_cell_depletion", dose, low) == "fail"
    assert status("washout_b_cell_depletion", dose, ok) == "pass"
    assert (
        status(
            "washout_b_cell_depletion",
            dose,
            observation("8116-6", ago(20), valueQuantity=qty(80, "/uL", "/uL")),
        )
        == "pass"
    )
    assert status("washout_b_cell_depletion", dose) == "pass"
    assert (
        status(
            "washout_b_cell_depletion",
            medication(text="inebilizumab", status="completed", when=ago(10)),
        )
        == "fail"
    )


def test_high_dose():
    def cs(v, **kw):
        return medication(
            code="8640", status="active", start=ago(10), dosages=[dosage(mg(v), **kw)]
        )

    assert status("washout_high_dose_cs", cs(40)) == "pass"
    assert status("washout_high_dose_cs", cs(41)) == "fail"
    assert status("washout_high_dose_cs", cs(20, frequency=2)) == "pass"
    assert status("washout_high_dose_cs", cs(21, frequency=2)) == "fail"
    assert (
        status("washout_high_dose_cs", medication(code="8640", status="active", start=ago(10)))
        == "unknown"
    )
    # methylprednisolone 32 mg = 40 prednisone-eq
    assert (
        status(
            "washout_high_dose_cs",
            medication(code="6902", status="active", start=ago(10), dosages=[dosage(mg(32))]),
        )
        == "pass"
    )
    assert (
        status(
            "washout_high_dose_cs",
            medication(code="6902", status="active", start=ago(10), dosages=[dosage(mg(33))]),
        )
        == "fail"
    )
    # dexamethasone 6 mg = 40 prednisone-eq (0.75 mg = 5 mg; the factor 6.67 is rounded), 7 mg = 46.7
    assert (
        status(
            "washout_high_dose_cs",
            medication(code="3264", status="active", start=ago(10), dosages=[dosage(mg(6))]),
        )
        == "pass"
    )
    assert (
        status(
            "washout_high_dose_cs",
            medication(code="3264", status="active", start=ago(10), dosages=[dosage(mg(7))]),
        )
        == "fail"
    )
    # ended exactly 12 weeks ago: documented boundary
    r = run(
        "washout_high_dose_cs",
        medication(
            code="8640", status="completed", start=ago(100), end=ago(83), dosages=[dosage(mg(60))]
        ),
    )
    assert r.status == "fail" and r.eligible_from == AS_OF + timedelta(days=1)
    assert status("washout_high_dose_cs", cs(100, route="topical")) == "pass"


# --- live vaccine --------------------------------------------------------------------------------
def test_live_vaccine():
    r = run("live_vaccine", immunization("03", ago(27)))
    assert r.status == "fail" and r.eligible_from == AS_OF + timedelta(days=1)
    assert status("live_vaccine", immunization("03", ago(28))) == "pass"
    assert status("live_vaccine", immunization("3", ago(1))) == "fail"
    assert status("live_vaccine", immunization("187", ago(1))) == "pass"
    assert status("live_vaccine", immunization("188", ago(1))) == "unknown"
    assert status("live_vaccine", immunization("03", ago(1), status="not-done")) == "pass"
    assert status("live_vaccine", immunization("03", ago(-1))) == "pass"


# --- infections ----------------------------------------------------------------------------------
def pos(code, days=10, **kw):
    return observation(code, ago(days), valueString="Positive", **kw)


def neg(code, days=10, **kw):
    return observation(code, ago(days), valueString="Negative", **kw)


def test_hbv():
    assert status("hbv", condition("B18.1", onset="2020-01-01")) == "fail"
    assert status("hbv", condition("B18.1", onset="2020-01-01", clinical="resolved")) == "pass"
    assert status("hbv", condition("B18.1", onset="2020-01-01", clinical="relapse")) == "fail"
    assert status("hbv", condition("B18.1", onset="2020-01-01", clinical="recurrence")) == "fail"
    assert status("hbv", condition("B18.1", onset="2020-01-01", clinical=None)) == "pass"
    assert status("hbv", pos("5196-1")) == "fail"
    assert status("hbv", pos("5196-1", 20), neg("5196-1", 5)) == "pass"
    assert (
        status("hbv", observation("29615-2", ago(5), valueQuantity=qty(25, "IU/mL", "[IU]/mL")))
        == "fail"
    )
    assert (
        status(
            "hbv",
            observation(
                "29615-2", ago(5), valueQuantity=qty(10, "IU/mL", "[IU]/mL", comparator="<")
            ),
        )
        == "pass"
    )
    assert status("hbv", observation("29615-2", ago(5), valueString="Not detected")) == "pass"
    assert status("hbv", pos("16933-4")) == "unknown"
    assert status("hbv", pos("16933-4"), pos("5196-1")) == "fail"
    assert status("hbv") == "pass"


def test_hcv():
    assert status("hcv", condition("B18.2", onset="2020-01-01")) == "fail"
    assert status("hcv", pos("11259-9")) == "fail"
    assert status("hcv", pos("16128-1")) == "unknown"
    assert status("hcv", pos("16128-1", 20), neg("11259-9", 10)) == "pass"
    assert status("hcv", pos("16128-1", 20), neg("11259-9", 20)) == "pass"  # same day RNA
    assert status("hcv", pos("16128-1", 10), neg("11259-9", 20)) == "unknown"
    # "HCV antibody positive with no later RNA": a later negative antibody is no RNA
    assert status("hcv", pos("16128-1", 300), neg("16128-1", 10)) == "unknown"


def test_tb():
    assert status("tuberculosis", condition("A15.0", onset="2020-01-01")) == "fail"
    assert status("tuberculosis", condition("Z22.7", onset="2020-01-01")) == "pass"
    assert status("tuberculosis", pos("71773-6", days=365)) == "unknown"
    assert (
        status("tuberculosis", observation("71773-6", "2025-11-25", valueString="Positive"))
        == "unknown"
    )
    assert (
        status("tuberculosis", observation("71773-6", "2025-11-24", valueString="Positive"))
        == "pass"
    )


def test_immunodeficiency():
    assert (
        status("immunodeficiency", condition("B20", onset="2020-01-01", clinical="inactive"))
        == "fail"
    )
    assert status("immunodeficiency", condition("D84.9", onset="2020-01-01")) == "fail"
    assert status("immunodeficiency", pos("56888-1", days=3000)) == "fail"
    assert status("immunodeficiency", neg("56888-1")) == "pass"


# --- blood counts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cid", "code", "value", "unit", "expected"),
    [
        ("platelets", "777-3", 25, "10*3/uL", "pass"),
        ("platelets", "777-3", 24.9, "10*3/uL", "fail"),
        ("platelets", "777-3", 25000, "/uL", "pass"),
        ("platelets", "777-3", 25, "10*9/L", "pass"),
        ("hemoglobin", "718-7", 8.0, "g/dL", "pass"),
        ("hemoglobin", "718-7", 7.99, "g/dL", "fail"),
        ("hemoglobin", "718-7", 80, "g/L", "pass"),
        ("hemoglobin", "59260-0", 4.9648, "mmol/L", "pass"),
        ("neutrophils", "751-8", 0.8, "10*3/uL", "pass"),
        ("neutrophils", "751-8", 0.79, "10*3/uL", "fail"),
        ("neutrophils", "751-8", 800, "/uL", "pass"),
        ("neutrophils", "751-8", 0.8, "10*9/L", "pass"),
        ("neutrophils", "751-8", 50, "%", "unknown"),
    ],
)
def test_counts(cid, code, value, unit, expected):
    assert status(cid, observation(code, ago(90), valueQuantity=qty(value, unit, unit))) == expected


def test_counts_window_and_none():
    assert (
        status(
            "platelets", observation("777-3", ago(91), valueQuantity=qty(10, "10*3/uL", "10*3/uL"))
        )
        == "unknown"
    )
    assert status("platelets") == "unknown"


def test_hemoglobin_aiha():
    # ICD-10-CM D59.11 is a verified aiha code: the rule holds as a default run reads it
    low = observation("718-7", ago(5), valueQuantity=qty(7.5, "g/dL", "g/dL"))
    aiha = condition("D59.11", onset="2020-01-01")
    assert status("hemoglobin", low) == "fail"
    assert status("hemoglobin", low, aiha) == "pass"
    resolved = condition("D59.11", onset="2020-01-01", clinical="resolved")
    assert status("hemoglobin", low, resolved) == "fail"
    very_low = observation("718-7", ago(5), valueQuantity=qty(6.9, "g/dL", "g/dL"))
    assert status("hemoglobin", very_low, aiha) == "fail"


# --- nephritis -------------------------------------------------------------------------------------
def cr(v, unit="mg/dL", days=10):
    code = "2160-0" if unit == "mg/dL" else "14682-9"
    return observation(code, ago(days), valueQuantity=qty(v, unit, unit))


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ([cr(2.0)], "pass"),
        ([cr(2.01)], "fail"),
        ([cr(176.84, "umol/L")], "pass"),
        ([cr(176.9, "umol/L")], "fail"),
        (
            [
                cr(1.0),
                observation("2889-4", ago(5), valueQuantity=qty(2.0, "g/(24.h)", "g/(24.h)")),
            ],
            "pass",
        ),
        (
            [
                cr(1.0),
                observation("2889-4", ago(5), valueQuantity=qty(2001, "mg/(24.h)", "mg/(24.h)")),
            ],
            "fail",
        ),
        (
            [cr(1.0), observation("2890-2", ago(5), valueQuantity=qty(2.0, "mg/mg", "mg/mg"))],
            "pass",
        ),
        ([cr(1.0), observation("2890-2", ago(5), valueQuantity=qty(2001, "mg/g", "mg/g"))], "fail"),
        (
            [cr(1.0), observation("34366-5", ago(5), valueQuantity=qty(227, "mg/mmol", "mg/mmol"))],
            "fail",
        ),
        (
            [cr(1.0), observation("34366-5", ago(5), valueQuantity=qty(225, "mg/mmol", "mg/mmol"))],
            "pass",
        ),
        ([observation("2890-2", ago(5), valueQuantity=qty(3, "mg/mg", "mg/mg"))], "fail"),
        ([observation("2890-2", ago(5), valueQuantity=qty(1, "mg/mg", "mg/mg"))], "unknown"),
        ([cr(3.0, days=91)], "unknown"),
        ([cr(2.5, days=90)], "fail"),
        # "within 90 days ... creatinine > 2.0 mg/dL -> fail": not only the most recent result
        ([cr(3.0, days=40), cr(1.0, days=10)], "fail"),
        ([cr(1.9, days=40), cr(1.0, days=10)], "pass"),
        ([], "unknown"),
    ],
)
def test_nephritis(resources, expected):
    assert status("severe_lupus_nephritis", *resources) == expected


# --- comorbidities, malignancy, pregnancy -------------------------------------------------------------
def test_cs_comorbidity():
    assert status("cs_dependent_comorbidity", condition("J45.909", onset="2020-01-01")) == "unknown"
    assert status("cs_dependent_comorbidity", condition("M1A.09", onset="2020-01-01")) == "unknown"
    assert status("cs_dependent_comorbidity", condition("L50.8", onset="2020-01-01")) == "unknown"
    assert (
        status(
            "cs_dependent_comorbidity",
            condition("J45.909", onset="2020-01-01", clinical="resolved"),
        )
        == "pass"
    )
    assert status("cs_dependent_comorbidity") == "pass"


def test_malignancy():
    assert (
        status("malignancy", condition("C50.911", onset="2020-01-01", clinical="resolved"))
        == "fail"
    )
    assert status("malignancy", condition("C44.311", onset="2020-01-01")) == "pass"
    assert status("malignancy", condition("C44.01", onset="2020-01-01")) == "pass"
    assert status("malignancy", condition("C44.91", onset="2020-01-01")) == "pass"
    assert status("malignancy", condition("C44.321", onset="2020-01-01")) == "fail"  # SCC
    assert status("malignancy", condition("D06.9", onset="2020-01-01")) == "pass"
    assert status("malignancy", condition("254701007", SNOMED, onset="2020-01-01")) == "pass"
    assert status("malignancy", condition("Z85.3", onset="2020-01-01")) == "fail"
    assert status("malignancy", condition("D05.10", onset="2020-01-01")) == "unknown"
    assert status("malignancy", condition("C7A.010", onset="2020-01-01")) == "fail"


def test_pregnancy():
    assert status("pregnancy_lactation", condition("Z33.1", onset=ago(30))) == "fail"
    assert status("pregnancy_lactation", condition("O09.90", onset=ago(30))) == "fail"
    assert (
        status("pregnancy_lactation", condition("Z33.1", onset=ago(300), clinical="resolved"))
        == "pass"
    )
    assert status("pregnancy_lactation", condition("169750002", SNOMED, onset=ago(30))) == "fail"
    assert status("pregnancy_lactation", pos("2106-3", days=30)) == "fail"
    assert status("pregnancy_lactation", pos("2106-3", days=31)) == "pass"
    assert (
        status(
            "pregnancy_lactation",
            observation("21198-7", ago(3), valueQuantity=qty(25, "mIU/mL", "m[IU]/mL")),
        )
        == "fail"
    )
    assert (
        status(
            "pregnancy_lactation",
            observation("21198-7", ago(3), valueQuantity=qty(24, "mIU/mL", "m[IU]/mL")),
        )
        == "unknown"
    )
    assert (
        status(
            "pregnancy_lactation",
            observation("21198-7", ago(3), valueQuantity=qty(4, "mIU/mL", "m[IU]/mL")),
        )
        == "pass"
    )
    assert status("pregnancy_lactation", neg("2106-3")) == "pass"
    assert status("pregnancy_lactation") == "pass"


# --- reading rules ---------------------------------------------------------------------------------
def test_reading_rules():
    plt = dict(valueQuantity=qty(10, "10*3/uL", "10*3/uL"))
    assert status("platelets", observation("777-3", ago(5), status="cancelled", **plt)) == "unknown"
    assert (
        status("platelets", observation("777-3", ago(5), status="registered", **plt)) == "unknown"
    )
    assert (
        status("platelets", observation("777-3", ago(5), status="entered-in-error", **plt))
        == "unknown"
    )
    assert status("platelets", observation("777-3", ago(5), status="preliminary", **plt)) == "fail"
    assert status("platelets", observation("777-3", ago(-1), **plt)) == "unknown"
    assert status("platelets", observation("777-3", None, **plt)) == "unknown"
    assert status("platelets", observation("777-3", ago(5), date_field="issued", **plt)) == "fail"
    assert (
        status(
            "platelets", observation("777-3", ago(5), system="urn:oid:2.16.840.1.113883.6.1", **plt)
        )
        == "fail"
    )
    assert (
        status("platelets", observation("777-3", ago(5), system="https://loinc.org/", **plt))
        == "fail"
    )
    assert (
        status("hbv", condition("B18.1", onset="2020-01-01", verification="entered-in-error"))
        == "pass"
    )
    assert status("hbv", condition("B18.1", onset="2020-01-01", verification="refuted")) == "pass"
    # a provisional diagnosis is no established finding: unknown (confirm), not fail
    assert (
        status("hbv", condition("B18.1", onset="2020-01-01", verification="provisional"))
        == "unknown"
    )


# --- ambiguous points: the reading docs/rules.md documents ------------------------------------------
def test_screened_whatever_the_date_of_the_sle_condition():
    # SPEC §5 names the screened patients without a date; sle_diagnosis then ignores it
    future = condition("M32.9", onset=ago(-10))
    assert screened(future)
    assert status("sle_diagnosis", future) == "fail"


def test_titer_coded_positive_without_dilution_is_not_a_titer():
    older = observation("5048-4", ago(300), valueString="1:40")
    newer = observation("5048-4", ago(10), valueString="Positive")
    assert status("ana_titer", older, newer) == "fail"
    assert status("ana_titer", newer) == "unknown"


def test_bilag_reads_the_latest_assessment_only():
    def b(grade, days):
        return observation(
            "BILAG-2004", ago(days), FLOWSHEET, components=[component("x", valueString=grade)]
        )

    assert status("bilag", b("A", 60), b("C", 10)) == "fail"


def test_history_of_other_skin_cancer_fails():
    assert status("malignancy", condition("Z85.828", onset="2020-01-01")) == "fail"


def test_eligible_from_not_held_back_by_a_criterion_that_would_then_be_unknown():
    high = medication(
        code="8640",
        status="completed",
        start=ago(40),
        end=ago(20),
        dosages=[dosage(mg(60))],
    )
    no_dose = medication(code="8640", status="active", start=ago(10))
    r = run("washout_high_dose_cs", high, no_dose)
    assert r.status == "fail"
    assert r.eligible_from == AS_OF + timedelta(days=84 - 20)


# --- fixes found by the audit ----------------------------------------------------------------------
def test_b_cell_eligible_from_empty_when_cd19_already_low_after_last_dose():
    """SPEC §4: "eligible_from: ... the first date on which all of them pass, assuming no new
    exposure"; §3 washout_b_cell_depletion: "later, but most recent CD19 B-cell count since the
    last dose below the lower limit of normal → fail". A dose 100 days ago with a CD19 count of
    10/uL since: the criterion still fails on last dose + 36 weeks (the same count is still the
    most recent), yet eligible_from was that date; now it is empty (no known date)."""
    dose = medication(code="121191", status="completed", when=ago(100))
    low = observation("8116-6", ago(20), valueQuantity=qty(10, "/uL", "/uL"))
    r = run("washout_b_cell_depletion", dose, low)
    assert r.status == "fail"
    assert r.eligible_from is None
    assert "CD19 B-cell count" in r.reason
    # a count within the limit since the dose, or none: the washout end stands
    ok = observation("8116-6", ago(20), valueQuantity=qty(150, "/uL", "/uL"))
    assert run("washout_b_cell_depletion", dose, ok).eligible_from == AS_OF + timedelta(days=152)
    assert run("washout_b_cell_depletion", dose).eligible_from == AS_OF + timedelta(days=152)


def test_b_cell_lower_limit_is_the_results_own_reference_low_without_unit():
    """SPEC §3: "lower limit of normal — the result's own referenceRange.low when present, else a
    default in the criteria file". A referenceRange.low of 100 written without a unit (in the
    result's unit) was ignored and the default 80 used: a count of 90/uL passed; now it fails."""
    dose = medication(code="121191", status="completed", when=ago(300))
    count = observation(
        "8116-6", ago(20), valueQuantity=qty(90, "/uL", "/uL"), ref_low={"value": 100}
    )
    r = run("washout_b_cell_depletion", dose, count)
    assert r.status == "fail"
    assert "lower limit 100" in r.reason


def test_b_cell_reference_low_that_cannot_be_converted_is_unknown():
    """SPEC §2: "a unit that cannot be converted makes that result unknown, never a guess"; §3: the
    lower limit is "the result's own referenceRange.low when present". A reference low in a unit
    that cannot be converted made the criterion compare with the default 80 (a guess: pass for
    90/uL); now it is unknown."""
    dose = medication(code="121191", status="completed", when=ago(300))
    count = observation(
        "8116-6",
        ago(20),
        valueQuantity=qty(90, "/uL", "/uL"),
        ref_low=qty(100, "cells", "cells"),
    )
    assert status("washout_b_cell_depletion", dose, count) == "unknown"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (medication(code="42316", status="active", start=ago(10)), "fail"),  # oral tacrolimus
        (
            medication(
                code="42316",
                status="active",
                start=ago(10),
                dosages=[dosage(route="Topical route")],
            ),
            "pass",
        ),
        (
            medication(text="tacrolimus 0.1 % Topical Ointment", status="active", start=ago(10)),
            "pass",
        ),
        (
            medication(
                text="cyclosporine 0.05 % Ophthalmic Emulsion", status="active", start=ago(10)
            ),
            "pass",
        ),
        (medication(text="Neoral (cyclosporine) 100 mg", status="active", start=ago(10)), "fail"),
    ],
)
def test_washout_12wk_counts_systemic_calcineurin_inhibitors_only(resource, expected):
    """SPEC §3 washout_12wk: "calcineurin inhibitor, JAK/other kinase inhibitor, or a DMARD not
    allowed as background, within 12 weeks → fail" (the protocol's washout of systemic
    immunosuppressants). The terminology reference says of tacrolimus "exclude topical tacrolimus
    by dose form/route", and a topical or ophthalmic product code already gives no group
    (products.csv systemic=N); but the same product recorded by ingredient code or name with a
    topical/ophthalmic route or form excluded the patient. The trial file now sets
    systemic_only = true for washout_12wk."""
    assert status("washout_12wk", resource) == expected


def _vaccine(system: str, code: str, days: int = 10) -> dict:
    res = immunization("03", ago(days))
    res["vaccineCode"] = {"coding": [{"system": system, "code": code}]}
    return res


ATC = "http://www.whocc.no/atc"


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        (SNOMED, "871831003", "fail"),  # MMR vaccine product
        (SNOMED, "2221000221107", "fail"),  # live attenuated varicella
        (SNOMED, "836402002", "fail"),  # BCG
        (ATC, "J07BD52", "fail"),  # MMR
        (ATC, "J07BK02", "fail"),  # zoster, live
        (ATC, "J07BB03", "fail"),  # influenza, live attenuated
        (ATC, "J07BL01", "fail"),  # yellow fever
        (ATC, "J07BK03", "pass"),  # zoster recombinant: not live
        (ATC, "J07AP03", "pass"),  # typhoid polysaccharide: not live
        (SNOMED, "836389008", "unknown"),  # any vaccinia antigen: ACAM2000 or MVA-BN
        (ATC, "J07BA03", "pass"),  # Japanese encephalitis live: UNVERIFIED in the reference
    ],
)
def test_live_vaccine_coded_in_snomed_or_atc(system: str, code: str, expected: str) -> None:
    """SPEC §3 live_vaccine: "a live/attenuated vaccine (CVX) given within 4 weeks → fail". The
    terminology reference (terminology/vaccines.csv) gives, in its VERIFIED rows, the SNOMED
    vaccine product and ATC codes of each live vaccine next to the CVX code, but the mappings held
    only the CVX codes: an MMR or BCG recorded with its SNOMED or ATC code (non-US EHRs, GECCO
    data) passed. Now those codes map to live_vaccine (the non-live ones to non_live_vaccine, the
    SNOMED 'any vaccinia antigen' product, which also covers the non-replicating MVA vaccine, to
    live_vaccine_uncertain); the UNVERIFIED ATC row is kept with verified=N."""
    assert status("live_vaccine", _vaccine(system, code)) == expected
    assert status("live_vaccine", _vaccine(system, code, days=28)) == "pass"


def test_background_therapy_ongoing_without_start_date_is_unknown_not_fail():
    """SPEC §3: each criterion is "fail (it rules the patient out) or unknown (the data can't
    tell)"; §2: an exposure is "open (ongoing) while status is active" and "current when its
    interval contains the as-of date". An active hydroxychloroquine statement with no effective
    date (its start unknown) made background_therapy fail, "no current qualifying therapy",
    excluding the patient; the data cannot tell it had not started by as_of: now unknown."""
    hcq = medication(code="5521", status="active")
    r = run("background_therapy", hcq)
    assert r.status == "unknown"
    assert "start date" in r.reason
    # with a dated current one it passes
    assert status("background_therapy", hcq, medication(code="5521", start=ago(5))) == "pass"


@pytest.mark.parametrize(
    ("cid", "resource"),
    [
        ("washout_belimumab", medication(code="1092437", status="active")),
        ("washout_belimumab", medication(code="1092437", status="completed")),
        ("washout_b_cell_depletion", medication(text="rituximab", status="completed")),
        ("washout_24wk", procedure("20720000")),
        ("live_vaccine", immunization("03", None)),
        (
            "washout_high_dose_cs",
            medication(code="8640", status="completed", dosages=[dosage(mg(60))]),
        ),
        ("washout_high_dose_cs", medication(code="8640", status="completed")),
    ],
)
def test_washout_with_an_undated_exposure_is_unknown_not_pass(cid, resource):
    """SPEC §3: "pass (the patient is fine on it) ... unknown (the data can't tell)"; washouts:
    "<drug> within N weeks → fail", no data → pass. A record of the drug (or procedure, or live
    vaccine) with no date at all is data, but cannot be placed in the window: it was ignored as
    "outside window or undated" and the washout passed; now it is unknown (a dated exposure in
    the window still fails, and an undated corticosteroid at or under 40 mg/day still passes)."""
    r = run(cid, resource)
    assert r.status == "unknown"
    assert "undated" in r.reason
    # (a fail in the window still wins)
    if cid == "washout_belimumab":
        dated = medication(code="1092437", status="completed", when=ago(10))
        assert status(cid, resource, dated) == "fail"


def test_undated_low_dose_corticosteroid_passes_high_dose_washout():
    low = medication(code="8640", status="completed", dosages=[dosage(mg(10))])
    assert status("washout_high_dose_cs", low) == "pass"
