"""Sample scenario tables: screened scenarios with hand-declared outcomes, background patients."""

from __future__ import annotations

from cohort.samples.fhir import ICD, SNOMED, Builder, cc, qty, rxmed, vq, vs
from cohort.samples.scenarios import (
    BELI,
    CRITERIA,
    HCQ,
    MONTH,
    PRED,
    RTX,
    SLE,
    TACRO,
    YEAR,
    F,
    Mod,
    P,
    S,
    Scenario,
    U,
    admin,
    age_years,
    bilag_components,
    bilag_per_organ,
    birth,
    cond,
    died,
    drop,
    mmf_referenced,
    mtx_contained,
    outside_lab,
    partial,
    plaquenil_text,
    pred_request_bid,
    replaced_chart,
    set_lab,
    sle,
    sle_verification,
    sledai,
    statement,
    vaccine,
)

WEIGHT_LBS = set_lab("weight", -45, vq(138, "lbs", "[lb_av]"), category="vital-signs")
NEG40 = [set_lab("ana", -200, vs("1:40"))]
TITER80 = {"valueQuantity": qty(80, "{titer}")}
RATIO320 = {"valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 320}}}
GOUT_RESOLVED = cond(SNOMED, "90560007", "Gout", clinical="resolved", abatement=-200)
MALIG = cond(ICD, "C50.911", "Malignant neoplasm of unspecified site of right female breast")


def beli_sc(start: int, end: int) -> Mod:
    """A completed belimumab MedicationStatement (subcutaneous) from `start` to `end`."""
    return lambda b: b.med_statement(
        None,
        BELI,
        status="completed",
        start=start,
        end=end,
        dosage=b.dosage(None, route="subcutaneous"),
    )


def A(
    name: str,
    mods: list[Mod],
    expect: dict[str, str] | None = None,
    tier: str = "likely",
    ef: int | None = None,
) -> Scenario:
    """An appended scenario (Scenario.appended), at every site."""
    return S(name, mods, expect, tier, ef, appended=True)


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
    # partial dates as EHRs record them (docs/rules.md): appended, so earlier patients keep theirs.
    # Offsets are relative to as_of; the outcomes are declared for the default as_of 2026-11-25.
    A("sle_onset_year_ambiguous",  # onset "2026": Jan 1 is before as_of - 6 months, Dec 31 after
      [partial(YEAR, sle(SLE, onset=-183, recorded=-30), "onsetDateTime")],
      {"sle_diagnosis": U}, "possible"),
    A("sle_onset_month_over_6mo",  # onset "2026-03": even Mar 31 is before 2026-05-25
      [partial(MONTH, sle(SLE, onset=-240, recorded=-200), "onsetDateTime")]),
    A("belimumab_end_month_ambiguous",  # end "2026-09": Sep 1-2 outside 12 weeks, Sep 3-30 within
      [partial(MONTH, beli_sc(-400, -84), "effectivePeriod.end", "dateAsserted")],
      {"washout_belimumab": U}, "possible"),
    A("belimumab_end_month_in_window",  # end "2026-10": every day within; Oct 31 + 12 weeks
      [partial(MONTH, beli_sc(-300, -40), "effectivePeriod.end", "dateAsserted")],
      {"washout_belimumab": F}, "excluded", 59),
    A("varicella_vaccine_month_ambiguous",  # "2026-10": Oct 1-28 outside 4 weeks, Oct 29-31 within
      [partial(MONTH, vaccine("21", "varicella virus vaccine", -28), "occurrenceDateTime")],
      {"live_vaccine": U}, "possible"),
    # results dated to the month, as transcribed from an outside report (no issued instant); the
    # set lab replaces the base patient's, so it is the only one of its kind
    A("hemoglobin_low_month_ambiguous",  # "2026-11": 7.5 fails on Nov 1-25, after as_of on 26-30
      [outside_lab(MONTH, "hgb", -10, vq(7.5, "g/dL"))],
      {"hemoglobin": U}, "possible"),
    A("weight_month_at_window_start",  # "2025-11": Nov 1-24 before the 12 months, 25-30 within
      [outside_lab(MONTH, "weight", -370, vq(64, "kg"), category="vital-signs")],
      {"weight": U}, "possible"),
    # Patient.deceased: died 3 days before as_of (after the base patient's last record), and a
    # death dated to the month of as_of ("2026-11": Nov 1-25 on or before it, 26-30 after)
    A("deceased_otherwise_likely", [died(-3)], {"deceased": F}, "excluded"),
    A("deceased_month_ambiguous", [partial(MONTH, died(-10), "deceasedDateTime")],
      {"deceased": U}, "possible"),
    # a merged chart: the base SLE diagnosis (~3 years back) on the old chart, replaced by this
    # one, which holds only a recent SLE entry (60 days: alone it would fail); one candidate row
    A("merged_chart_sle_on_old_chart", [replaced_chart("sle"), sle(SLE, onset=-60, recorded=-60)]),
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
