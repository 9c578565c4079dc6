"""Sample scenarios: a base SLE patient, named modifications with hand-written expected outcomes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cohort.samples_fhir import (
    ICD,
    LOCAL_UCI,
    RXNORM,
    SNOMED,
    Builder,
    Res,
    birth_date,
    cc,
    qty,
    rxmed,
    vq,
    vs,
)

Mod = Callable[["Builder"], object]  # return value ignored

CRITERIA = (
    "age",
    "sle_diagnosis",
    "ana_titer",
    "background_therapy",
    "sledai",
    "bilag",
    "weight",
    "prior_ianalumab",
    "washout_high_dose_cs",
    "washout_12wk",
    "washout_belimumab",
    "washout_24wk",
    "washout_b_cell_depletion",
    "hbv",
    "hcv",
    "tuberculosis",
    "immunodeficiency",
    "platelets",
    "hemoglobin",
    "neutrophils",
    "severe_lupus_nephritis",
    "live_vaccine",
    "cs_dependent_comorbidity",
    "malignancy",
    "pregnancy_lactation",
)
P, F, U = "pass", "fail", "unknown"


SLE = cc(SNOMED, "55464009", "Systemic lupus erythematosus")
HCQ = rxmed("5521", "hydroxychloroquine", "Hydroxychloroquine 200 mg tablet")
PRED = rxmed("8640", "prednisone", "Prednisone")
TACRO = rxmed("42316", "tacrolimus", "Prograf")
BELI = rxmed("1092437", "belimumab", "Benlysta")
RTX = rxmed("121191", "rituximab", "Rituxan")
LABS = {  # slot: (LOINC, display)
    "ana": ("5048-4", "Nuclear Ab [Titer] in Serum by Immunofluorescence"),
    "ana_screen": ("8061-4", "Nuclear Ab [Presence] in Serum"),
    "weight": ("29463-7", "Body weight"),
    "plt": ("777-3", "Platelets [#/volume] in Blood by Automated count"),
    "hgb": ("718-7", "Hemoglobin [Mass/volume] in Blood"),
    "anc": ("751-8", "Neutrophils [#/volume] in Blood by Automated count"),
    "creat": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    "hbsag": ("5196-1", "Hepatitis B virus surface Ag [Presence] in Serum or Plasma"),
    "hcvab": ("13955-0", "Hepatitis C virus Ab [Presence] in Serum or Plasma by Immunoassay"),
    "hiv": ("56888-1", "HIV 1+2 Ab+HIV1 p24 Ag [Presence] in Serum or Plasma by Immunoassay"),
    "antihbc": ("16933-4", "Hepatitis B virus core Ab [Presence] in Serum"),
    "hbvdna": ("29615-2", "Hepatitis B virus DNA [#/volume] (viral load) in Serum or Plasma"),
    "hcvrna": ("11259-9", "Hepatitis C virus RNA [Presence] in Serum or Plasma"),
    "igra": ("71773-6", "M. tuberculosis stimulated gamma interferon [Presence] in Blood"),
    "cd19": ("8116-6", "CD19 cells [#/volume] in Blood"),
    "hgb_molar": ("59260-0", "Hemoglobin [Moles/volume] in Blood"),
    "creat_molar": ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),
    "upcr": ("34366-5", "Protein/Creatinine [Ratio] in Urine"),
    "up24": ("2889-4", "Protein [Mass/time] in 24 hour Urine"),
    "hcg": ("2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine"),
    "hcg_quant": ("21198-7", "Choriogonadotropin.beta subunit [Units/volume] in Serum or Plasma"),
}


def base_patient(b: Builder) -> None:
    """Female, 35, SLE 3 y, ANA 1:160, current HCQ, 62 kg, normal CBC/creatinine, serology neg."""
    r = b.rng
    onset = -(1095 + r.randint(-60, 60))
    b.condition("sle", SLE, onset=onset, recorded=onset + r.randint(0, 30))
    lab(b, "ana", -(730 + r.randint(-60, 60)), vs("1:160"))
    b.med_statement("hcq", HCQ, start=-r.randint(400, 900), dosage=b.dosage(200, 2, "oral"))
    lab(
        b,
        "weight",
        -(60 + r.randint(-20, 20)),
        vq(62 + r.randint(-5, 15), "kg"),
        category="vital-signs",
    )
    cbc = -r.randint(5, 60)
    lab(b, "plt", cbc, vq(250 + r.randint(-60, 80), "10*3/uL"))
    lab(b, "hgb", cbc, vq(round(12.5 + r.uniform(-0.8, 1.2), 1), "g/dL"))
    lab(b, "anc", cbc, vq(round(4.0 + r.uniform(-1.0, 2.0), 1), "10*3/uL"))
    lab(b, "creat", cbc, vq(round(0.8 + r.uniform(-0.2, 0.2), 2), "mg/dL"))
    sero = -r.randint(60, 400)
    for slot in ("hbsag", "hcvab", "hiv"):
        lab(b, slot, sero, vs("Negative"))
    b.base = set(b.slots)


def lab(b: Builder, slot: str, when: int, value: Res, *, key: str | None = None, **kw: Any) -> Res:
    """A LOINC lab in `slot` (code looked up by `key` or the slot name)."""
    code, display = LABS[key or slot]
    return b.lab(slot, code, display, when, value, **kw)


# -- modification factories ------------------------------------------------------------------------
def sle(code: Res, onset: int | None = -1095, recorded: int | None = None) -> Mod:
    return lambda b: b.condition("sle", code, onset=onset, recorded=recorded)


def sle_verification(status: str) -> Mod:
    return lambda b: b.condition("sle", SLE, onset=-1095, verification=status)


def cond(system: str, code: str, display: str, onset: int = -400, **kw: Any) -> Mod:
    return lambda b: b.condition(None, cc(system, code, display), onset=onset, **kw)


def set_lab(slot: str, when: int, value: Res, key: str | None = None, **kw: Any) -> Mod:
    """Replace (or add) the lab in `slot`."""
    return lambda b: lab(b, slot, when, value, key=key, **kw)


def drop(*slots: str) -> Mod:
    return lambda b: b.drop(*slots)


def birth(value: str | None) -> Mod:
    def m(b: Builder) -> None:
        if value is None:
            b.patient.pop("birthDate", None)
        else:
            b.patient["birthDate"] = value

    return m


def age_years(years: int) -> Mod:
    def m(b: Builder) -> None:
        b.patient["birthDate"] = birth_date(b.as_of, years, 100)

    return m


def statement(
    med: Res,
    start: int,
    end: int | None = None,
    status: str = "completed",
    slot: str | None = None,
    mg: float | None = None,
    per_day: int = 1,
) -> Mod:
    return lambda b: b.med_statement(
        slot, med, status=status, start=start, end=end, dosage=b.dosage(mg, per_day, "oral")
    )


def admin(med: Res, when: int, mg: float | None = None, route: str = "intravenous") -> Mod:
    return lambda b: b.med_admin(None, med, when, mg=mg, route=route)


def vaccine(cvx: str, display: str, when: int) -> Mod:
    return lambda b: b.immunization(None, cvx, display, when)


def mmf_referenced(b: Builder) -> None:
    med = b.medication(
        "mmf_med",
        cc(RXNORM, "200060", "mycophenolate mofetil 500 MG Oral Tablet", "CellCept 500 mg tablet"),
        cc(RXNORM, "68149", "mycophenolate mofetil"),
        500,
    )
    b.med_statement(
        "hcq",
        {"medicationReference": {"reference": f"Medication/{med['id']}"}},
        start=-300,
        dosage=b.dosage(1000, 2, "oral"),
    )


def mtx_contained(b: Builder) -> None:
    contained = [
        {
            "resourceType": "Medication",
            "id": "med1",
            "code": cc(RXNORM, "105586", "methotrexate 10 MG Oral Tablet"),
        }
    ]
    b.med_request(
        "hcq",
        {"medicationReference": {"reference": "#med1"}},
        authored=-180,
        contained=contained,
        dosage=[{"text": "15 mg once weekly by mouth"}],
    )


def plaquenil_text(b: Builder) -> None:
    b.med_statement(
        "hcq",
        {"medicationCodeableConcept": {"text": "Plaquenil 200 mg"}},
        start=-500,
        dosage=[{"text": "1 tablet twice daily"}],
    )


def pred_request_bid(b: Builder) -> None:
    b.med_request(
        None,
        rxmed("312617", "prednisone 5 MG Oral Tablet"),
        authored=-200,
        dosage=b.dosage(5, 2, "oral"),
    )


def sledai(value: Res, when: int = -30) -> Mod:
    code = cc(LOCAL_UCI, "SLEDAI-2K", "SLEDAI-2K total score")
    return lambda b: b.obs(None, code, when, value, category="survey")


def bilag_components(b: Builder) -> None:
    comps = [
        {
            "code": cc(LOCAL_UCI, f"BILAG-2004-{organ}", f"BILAG-2004 {organ.lower()}"),
            "valueString": grade,
        }
        for organ, grade in (
            ("MUCOCUTANEOUS", "A"),
            ("MUSCULOSKELETAL", "C"),
            ("RENAL", "D"),
            ("HAEMATOLOGICAL", "E"),
        )
    ]
    b.obs(
        None,
        cc(LOCAL_UCI, "BILAG-2004", "BILAG-2004 assessment"),
        -20,
        None,
        category="survey",
        components=comps,
    )


def bilag_per_organ(b: Builder) -> None:
    for organ, grade in (("Musculoskeletal", "A"), ("Renal", "C")):
        b.obs(
            None,
            cc(LOCAL_UCI, "BILAG-2004", "BILAG-2004 assessment", f"BILAG-2004 {organ}"),
            -25,
            vs(grade),
            category="survey",
        )


@dataclass(frozen=True)
class Scenario:
    """A base patient plus modifications, with hand-declared deviations from the base outcome."""

    name: str
    mods: tuple[Mod, ...]
    expect: dict[str, str]
    tier: str
    eligible_from: int | None = None  # days after as_of
    sites: tuple[str, ...] | None = None  # None: every site
    screened: bool = True


def S(
    name: str,
    mods: list[Mod],
    expect: dict[str, str] | None = None,
    tier: str = "likely",
    ef: int | None = None,
    sites: tuple[str, ...] | None = None,
) -> Scenario:
    return Scenario(name, tuple(mods), expect or {}, tier, ef, sites)


WEIGHT_LBS = set_lab("weight", -45, vq(138, "lbs", "[lb_av]"), category="vital-signs")
NEG40 = [set_lab("ana", -200, vs("1:40"))]
TITER80 = {"valueQuantity": qty(80, "{titer}")}
RATIO320 = {"valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 320}}}
GOUT_RESOLVED = cond(SNOMED, "90560007", "Gout", clinical="resolved", abatement=-200)
MALIG = cond(ICD, "C50.911", "Malignant neoplasm of unspecified site of right female breast")

# fmt: off
SCENARIOS: list[Scenario] = [
    S("base", []),
    S("variants_icd_dotted", [sle(cc(ICD, "M32.14", "Glomerular disease in SLE")),
                              set_lab("ana", -400, vs(">1:640")),
                              WEIGHT_LBS,
                              mmf_referenced, statement(BELI, -500, -140),
                              cond(ICD, "C44.311", "Basal cell carcinoma of skin of nose")]),
    S("variants_icd_nodot", [sle(cc(ICD, "M3214")), set_lab("ana", -300, RATIO320),
                             plaquenil_text, admin(RTX, -280, 1000),
                             set_lab("cd19", -60, vq(150, "/uL"), low=qty(80, "/uL")),
                             set_lab("hbvdna", -100, vs("<10 IU/mL")),
                             cond(ICD, "D06.9", "Carcinoma in situ of cervix, unspecified")]),
    S("variants_nephritis", [sle(cc(SNOMED, "68815009", "SLE glomerulonephritis syndrome")),
                             set_lab("ana", -500, TITER80), mtx_contained,
                             set_lab("hcvab", -300, vs("Positive")),
                             set_lab("hcvrna", -250, vs("Not detected")),
                             vaccine("187", "zoster vaccine recombinant", -14),
                             GOUT_RESOLVED]),
    S("variants_steroids", [birth("1990-06"),
                            statement(rxmed("312615", "prednisone 20 MG Oral Tablet"), -150,
                                      status="active", slot="hcq", mg=20),
                            set_lab("ana_old", -900, vs("1:40"), key="ana"),
                            set_lab("ana", -200, vs("1:160"))]),
    S("cs_low_dose_bid", [pred_request_bid,
                          set_lab("weight", -30, vq(150, "[lb_av]"), category="vital-signs")]),
    S("age_11", [age_years(11)], {"age": F}, "excluded"),
    S("age_year_only_ambiguous", [birth("2014")], {"age": U}, "possible"),
    S("no_birthdate", [birth(None)], {"age": U}, "possible"),
    S("sle_recent_onset", [sle(SLE, onset=-60, recorded=-60)], {"sle_diagnosis": F}, "excluded"),
    S("sle_undated", [sle(SLE, onset=None)], {"sle_diagnosis": U}, "possible"),
    S("lupus_unspecified_only", [sle(cc(SNOMED, "200936003", "Lupus erythematosus"))],
      {"sle_diagnosis": U}, "possible"),
    S("ana_1_40", NEG40, {"ana_titer": F}, "excluded"),
    S("ana_lt_1_40", [set_lab("ana", -200, vs("<1:40"))], {"ana_titer": F}, "excluded"),
    S("ana_qualitative_positive_only", [drop("ana"), set_lab("ana_screen", -300, vs("Positive"))],
      {"ana_titer": U}, "possible"),
    S("ana_qualitative_negative_only", [drop("ana"), set_lab("ana_screen", -300, vs("Negative"))],
      {"ana_titer": F}, "excluded"),
    S("ana_newer_low_supersedes", [set_lab("ana_old", -900, vs("1:320"), key="ana"), *NEG40],
      {"ana_titer": F}, "excluded"),
    S("no_ana", [drop("ana")], {"ana_titer": U}, "possible"),
    S("background_past_only", [statement(HCQ, -1000, -365, slot="hcq")],
      {"background_therapy": F}, "excluded"),
    S("no_medication_records", [drop("hcq")], {"background_therapy": U}, "possible"),
    S("weight_low", [set_lab("weight", -40, vq(32, "kg"), category="vital-signs")],
      {"weight": F}, "excluded"),
    S("weight_old_only", [set_lab("weight", -430, vq(61, "kg"), category="vital-signs")],
      {"weight": U}, "possible"),
    S("prior_ianalumab_text", [statement({"medicationCodeableConcept": {"text": "VAY736"}},
                                         -800, -500)], {"prior_ianalumab": F}, "excluded"),
    S("high_dose_cs_5wk", [statement(PRED, -63, -35, mg=60)], {"washout_high_dose_cs": F},
      "excluded", 49),
    S("methylpred_pulse_iv", [admin(rxmed("6902", "methylprednisolone", "Solu-Medrol"), -30,
                                    1000)], {"washout_high_dose_cs": F}, "excluded", 54),
    S("cs_no_dose", [statement(PRED, -100, status="active")], {"washout_high_dose_cs": U},
      "possible"),
    S("tacrolimus_6wk", [statement(TACRO, -400, -42, mg=2, per_day=2)], {"washout_12wk": F},
      "excluded", 42),
    S("belimumab_8wk", [admin(BELI, -56, 600)], {"washout_belimumab": F}, "excluded", 28),
    S("cyclophosphamide_10wk", [admin(rxmed("1734919", "cyclophosphamide 1000 MG Injection"),
                                      -70, 1000)], {"washout_24wk": F}, "excluded", 98),
    S("plasmapheresis_3mo", [lambda b: b.procedure(None, cc(SNOMED, "20720000", "Plasmapheresis"),
                                                   -90)],
      {"washout_24wk": F}, "excluded", 78),
    S("rituximab_20wk", [admin(RTX, -140, 1000)], {"washout_b_cell_depletion": F}, "excluded", 112),
    S("rituximab_40wk_cd19_low", [admin(RTX, -280, 1000),
                                  set_lab("cd19", -60, vq(5, "/uL"), low=qty(80, "/uL"))],
      {"washout_b_cell_depletion": F}, "excluded"),
    S("two_washouts", [statement(TACRO, -400, -42), admin(BELI, -56, 600)],
      {"washout_12wk": F, "washout_belimumab": F}, "excluded", 42),
    S("washout_plus_malignancy", [admin(BELI, -56, 600), MALIG],
      {"washout_belimumab": F, "malignancy": F}, "excluded"),
    S("hbsag_positive", [set_lab("hbsag", -100, vs("Positive"))], {"hbv": F}, "excluded"),
    S("chronic_hbv_b181", [cond(ICD, "B18.1", "Chronic viral hepatitis B without delta-agent")],
      {"hbv": F}, "excluded"),
    S("hbv_dna_detected", [set_lab("hbvdna", -100, vq(2000, "[IU]/mL"))], {"hbv": F}, "excluded"),
    S("hcv_rna_detected", [set_lab("hcvab", -200, vs("Positive")),
                           set_lab("hcvrna", -190, vs("Detected"))], {"hcv": F}, "excluded"),
    S("serology_unknowns", [set_lab("antihbc", -150, vs("Positive")),
                            set_lab("hcvab", -150, vs("Reactive"))],
      {"hbv": U, "hcv": U}, "possible"),
    S("active_tb_a150", [cond(ICD, "A15.0", "Tuberculosis of lung", onset=-120)],
      {"tuberculosis": F}, "excluded"),
    S("hiv_b20", [cond(ICD, "B20", "Human immunodeficiency virus [HIV] disease")],
      {"immunodeficiency": F}, "excluded"),
    S("hiv_test_positive", [set_lab("hiv", -120, vs("Reactive"))], {"immunodeficiency": F},
      "excluded"),
    S("immunodeficiency_d839", [cond(ICD, "D83.9", "Common variable immunodeficiency, unspecified",
                                     clinical="inactive")], {"immunodeficiency": F}, "excluded"),
    S("cytopenias", [set_lab("plt", -10, vq(20, "K/uL", None)),
                     set_lab("hgb", -10, vq(7.5, "g/dL")),
                     set_lab("anc", -10, vq(0.5, "10*3/uL"))],
      {"platelets": F, "hemoglobin": F, "neutrophils": F}, "excluded"),
    S("cytopenias_alt_units", [set_lab("plt", -12, vq(20000, "/mm3")),
                               set_lab("hgb", -12, vq(75, "g/L"))],
      {"platelets": F, "hemoglobin": F}, "excluded"),
    S("si_units_fail", [drop("hgb", "creat"), set_lab("hgb_molar", -15, vq(4.8, "mmol/L")),
                        set_lab("creat_molar", -15, vq(250, "umol/L"))],
      {"hemoglobin": F, "severe_lupus_nephritis": F}, "excluded"),
    S("platelets_stale", [set_lab("plt", -200, vq(240, "10*3/uL"))], {"platelets": U}, "possible"),
    S("platelets_unconvertible", [set_lab("plt", -20, vq(250, "furlongs", None))],
      {"platelets": U}, "possible"),
    S("no_cbc", [drop("plt", "hgb", "anc")],
      {"platelets": U, "hemoglobin": U, "neutrophils": U}, "possible"),
    S("creatinine_high", [set_lab("creat", -20, vq(2.5, "mg/dL"))],
      {"severe_lupus_nephritis": F}, "excluded"),
    S("upcr_high", [set_lab("upcr", -20, vq(250, "mg/mmol"))], {"severe_lupus_nephritis": F},
      "excluded"),
    S("urine_protein_24h_high", [set_lab("up24", -25, vq(3, "g/(24.h)"))],
      {"severe_lupus_nephritis": F}, "excluded"),
    S("no_creatinine", [drop("creat")], {"severe_lupus_nephritis": U}, "possible"),
    S("live_vaccine_mmr_2wk", [vaccine("03", "measles, mumps and rubella virus vaccine", -14)],
      {"live_vaccine": F}, "excluded", 14),
    S("review_unknowns", [vaccine("188", "zoster vaccine, unspecified formulation", -14),
                          cond(ICD, "J45.909", "Unspecified asthma, uncomplicated"),
                          set_lab("hcg_quant", -10, vq(12, "m[IU]/mL")),
                          set_lab("igra", -90, vs("Positive"))],
      {"live_vaccine": U, "cs_dependent_comorbidity": U, "pregnancy_lactation": U,
       "tuberculosis": U}, "possible"),
    S("malignancy_breast", [MALIG], {"malignancy": F}, "excluded"),
    S("in_situ_d0510", [cond(ICD, "D05.10", "Intraductal carcinoma in situ of unspecified breast")],
      {"malignancy": U}, "possible"),
    S("pregnancy_z331", [cond(ICD, "Z33.1", "Pregnant state, incidental", onset=-60)],
      {"pregnancy_lactation": F}, "excluded"),
    S("hcg_positive_2wk", [set_lab("hcg", -14, vs("Positive"))], {"pregnancy_lactation": F},
      "excluded"),
    S("sledai_8_integer", [sledai({"valueInteger": 8})], {"sledai": P}, sites=("uci",)),
    S("sledai_4_integer", [sledai({"valueInteger": 4}, -40)], {"sledai": F}, "excluded",
      sites=("uci",)),
    S("bilag_components_a", [bilag_components, sledai(vq(8, "{score}"), -20)],
      {"sledai": P, "bilag": P}, sites=("uci",)),
    S("bilag_per_organ_a", [bilag_per_organ], {"bilag": P}, sites=("uci",)),
]
# fmt: on


def _no_sle(b: Builder) -> None:
    b.drop("sle", "ana", "hcq")
    if b.rng.random() < 0.4:
        b.patient["gender"] = "male"
    if b.rng.random() < 0.5:
        b.condition(None, cc(SNOMED, b.rng.choice(["195967001", "90560007"])), onset=-700)


def _bg(name: str, mod: Mod) -> Scenario:
    return Scenario(name, (mod,), {}, "", screened=False)


BACKGROUND: list[Scenario] = [
    _bg("drug_induced_lupus_icd", sle(cc(ICD, "M32.0", "Drug-induced SLE"))),
    _bg("drug_induced_lupus_snomed", sle(cc(SNOMED, "201436003", "Drug-induced SLE"))),
    _bg("sle_refuted", sle_verification("refuted")),
    _bg("sle_entered_in_error", sle_verification("entered-in-error")),
    *[_bg("no_sle", _no_sle)] * 6,
]
assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
assert all(set(s.expect) <= set(CRITERIA) for s in SCENARIOS)
