"""Sample scenario helpers: a base SLE patient, modification factories, the Scenario record."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cohort.samples.fhir import (
    LOCAL_UCI,
    RXNORM,
    SNOMED,
    Builder,
    Res,
    birth_date,
    cc,
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
    "deceased",
    "active_record",
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


YEAR, MONTH = 4, 7  # a date recorded to the year ("2026") or the month ("2026-09") only


def partial(precision: int, mod: Mod, *paths: str) -> Mod:
    """`mod`, with the dates at `paths` (dotted, in the resource it returns) recorded to the year
    or month only, as EHRs hold a patient-reported onset or a medication stopped "in September".
    The day is cut from the date `mod` builds relative to as_of, so no day is left anywhere."""

    def m(b: Builder) -> None:
        res = mod(b)
        assert isinstance(res, dict)
        for path in paths:
            *parents, leaf = path.split(".")
            node = res
            for key in parents:
                node = node[key]
            node[leaf] = node[leaf][:precision]

    return m


def outside_lab(precision: int, slot: str, when: int, value: Res, **kw: Any) -> Mod:
    """`set_lab`, as a result transcribed from an outside report dated to the year or month
    only: its effectiveDateTime cut (`partial`) and no `issued`, which the lab builder writes
    from the same day (an instant is never partial, and a full one would give the day back)."""
    cut = partial(precision, set_lab(slot, when, value, **kw), "effectiveDateTime")

    def m(b: Builder) -> None:
        cut(b)
        res = b.first(slot)
        assert res is not None
        del res["issued"]

    return m


def died(when: int) -> Mod:
    """Patient.deceasedDateTime `when` days from as_of (returns the Patient, for `partial`)."""

    def m(b: Builder) -> Res:
        b.patient["deceasedDateTime"] = b.d(when)
        return b.patient

    return m


def replaced_chart(*slots: str) -> Mod:
    """The patient's chart as an EHR leaves it after merging two charts of one person: an old
    Patient (same demographics, its own MRN, active false, link replaced-by this one) holding
    the records in `slots`, and this Patient linking back to it (replaces). The old chart's id
    is this one's with "-old"; its records follow it in the output."""

    def m(b: Builder) -> None:
        old_id = f"{b.pid}-old"
        old: Res = copy.deepcopy(b.patient)
        old["id"] = old_id
        old["identifier"][0]["value"] = f"{b.site.upper()}{b.rng.randint(1000000, 9999999)}"
        old["active"] = False
        old["link"] = [{"other": {"reference": f"Patient/{b.pid}"}, "type": "replaced-by"}]
        b.patient["link"] = [{"other": {"reference": f"Patient/{old_id}"}, "type": "replaces"}]
        b.slots["old_chart"] = [old]
        for slot in slots:
            moved = b.slots.pop(slot)
            for res in moved:
                res["subject"] = {"reference": f"Patient/{old_id}"}
            b.slots[f"old_chart.{slot}"] = moved
            b.base.discard(slot)

    return m


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
    # built after the shuffled population and left undecorated: adding one changes no earlier
    # patient's id, records or decorations (the shipped samples only gain rows)
    appended: bool = False


def S(
    name: str,
    mods: list[Mod],
    expect: dict[str, str] | None = None,
    tier: str = "likely",
    ef: int | None = None,
    sites: tuple[str, ...] | None = None,
    appended: bool = False,
) -> Scenario:
    return Scenario(name, tuple(mods), expect or {}, tier, ef, sites, appended=appended)
