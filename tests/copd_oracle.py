"""Independent oracle of the copd-demo trial: raw FHIR JSON in, each criterion's cell out."""

# Plain Python over the raw records, no cohort imports: it re-implements the rules as the
# criteria file (tests/data/copd_trial/mappings/trials/copd-demo.toml) and docs/rules.md,
# docs/criteria-kinds.md state them, for the records the public data and the hand-made patients
# hold (full dates, no components, inline medication codes; same-instant results tried each as
# the most recent). What every trial's oracle does is in tests/trial_oracle.py.
from __future__ import annotations

import os
import re
import sys
import tomllib
from datetime import date, timedelta
from typing import Any

from trial_oracle import (
    LOINC,
    RXNORM,
    SHIPPED,
    SNOMED,
    UNCONFIRMED,
    Maps,
    age_on,
    codings,
    cond_active,
    cond_date,
    deceased,
    differences,
    exposure,
    in_unit,
    latest_results,
    load,
    main,
    months_before,
    on_record,
    one_outcome,
    shipped_rows,
    status_code,
    texts,
    trial_dir,
)

OVERLAY = os.path.join(trial_dir("copd_trial"), "mappings")
CRITERIA = (
    "age",
    "exacerbations",
    "smoker",
    "fev1_fvc",
    "inhaled_therapy",
    "asthma",
    "systemic_steroid",
    "prior_biologic",
    "lung_cancer",
    "pregnancy",
    "deceased",
)
# smoking status answers (the overlay's values.csv): an ever-smoker passes, a never-smoker fails
EVER = {"8517006", "449868002"}
NEVER = {"266919005"}
RATIO = {"%": 0.01, "1": 1.0}  # FEV1/FVC as a ratio (units.csv: 0-1)


class CopdMaps(Maps):
    """The trial's rows and the shipped ones it reads: asthma, pregnancy (exact SNOMED rows:
    Synthea writes no ICD-10-CM), corticosteroid_systemic (codes, names; its RxNorm
    products); the words that make a medication not systemic (rules.toml)."""

    def __init__(self) -> None:
        super().__init__(OVERLAY, shipped=("asthma", "pregnancy", "corticosteroid_systemic"))
        meds = shipped_rows("concepts/medications.csv")
        steroids = {r["ingredient"] for r in meds if r["concept"] == "corticosteroid_systemic"}
        self.steroid_products = {
            r["rxcui"]
            for r in shipped_rows("medications/products.csv")
            if r["ingredient"] in steroids and r["systemic"].upper() == "Y"
        }
        with open(os.path.join(SHIPPED, "rules.toml"), "rb") as fb:
            self.non_systemic = tomllib.load(fb)["exposure"]["non_systemic_words"]


def conditions_check(cs: list[dict[str, Any]], stale: int | None, as_of: date) -> str:
    """A `checks` condition check: fail on an established one (unknown when only unconfirmed or
    older than `stale` days); none: pass."""
    sure = [c for c in cs if status_code(c.get("verificationStatus")) not in UNCONFIRMED]
    if stale is not None:
        fresh = [c for c in sure if cond_date(c) is None or (as_of - cond_date(c)).days <= stale]
        if fresh:
            return "fail"
        return "unknown" if cs else "pass"
    return "fail" if sure else "unknown" if cs else "pass"


def evaluate(p: dict[str, Any], as_of: date, maps: CopdMaps) -> dict[str, str]:
    out: dict[str, str] = {}
    age = age_on(p["patient"], as_of)
    out["age"] = "unknown" if age is None else "pass" if 40 <= age <= 85 else "fail"
    # at least 2 exacerbation conditions, one a date, from 12 months before as_of to as_of
    start = months_before(as_of, 12)
    exac = {
        cond_date(c)
        for c in p["cond"]
        if maps.matches("copd_exacerbation", c.get("code")) and cond_date(c) is not None
    }
    out["exacerbations"] = "pass" if len({d for d in exac if start <= d <= as_of}) >= 2 else "fail"
    smoking = set()
    for o in latest_results(p["obs"], {(LOINC, "72166-2")}, as_of):
        codes = {c for s, c in codings(o.get("valueCodeableConcept")) if s == SNOMED}
        smoking.add("fail" if codes & NEVER else "pass" if codes & EVER else "unknown")
    out["smoker"] = one_outcome(smoking) if smoking else "unknown"
    ratios = set()
    for o in latest_results(p["obs"], {(LOINC, "19926-5")}, as_of):
        v = in_unit(o, RATIO)
        ok = v is not None and 0 <= v <= 1  # units.csv: 0-1
        ratios.add("unknown" if v is None or not ok else "pass" if v < 0.70 else "fail")
    out["fev1_fvc"] = one_outcome(ratios) if ratios else "unknown"
    exposures = [(m, exposure(m, as_of)) for m in p["med"]]
    on_file = [m for m, e in exposures if e is not None]
    current = any(
        e[0] <= as_of <= e[1]
        for m, e in exposures
        if e is not None and maps.matches("inhaled_maintenance", m.get("medicationCodeableConcept"))
    )
    out["inhaled_therapy"] = "pass" if current else "fail" if on_file else "unknown"
    asthma = [
        c
        for c in p["cond"]
        if maps.matches("asthma", c.get("code")) and cond_active(c) and on_record(c, as_of)
    ]
    out["asthma"] = conditions_check(asthma, None, as_of)
    # a washout of 4 weeks: an exposure ending after as_of - 28 days, by a systemic route
    out["systemic_steroid"] = "pass"
    for m, e in exposures:
        cc = m.get("medicationCodeableConcept")
        steroid = maps.matches("corticosteroid_systemic", cc) or any(
            s == RXNORM and c in maps.steroid_products for s, c in codings(cc)
        )
        words = texts(cc).lower()
        local = any(re.search(rf"(?<!\w){re.escape(w)}", words) for w in maps.non_systemic)
        if steroid and not local and e is not None and e[1] > as_of - timedelta(days=28):
            out["systemic_steroid"] = "fail"
    biologic = [m for m, e in exposures if e is not None]
    out["prior_biologic"] = (
        "fail"
        if any(
            maps.matches("asthma_copd_biologic", m.get("medicationCodeableConcept"))
            for m in biologic
        )
        else "pass"
    )
    cancer = [
        c for c in p["cond"] if maps.matches("lung_cancer", c.get("code")) and on_record(c, as_of)
    ]
    out["lung_cancer"] = conditions_check(cancer, None, as_of)
    preg = [
        c
        for c in p["cond"]
        if maps.matches("pregnancy", c.get("code")) and cond_active(c) and on_record(c, as_of)
    ]
    out["pregnancy"] = conditions_check(preg, 300, as_of)
    out["deceased"] = "fail" if deceased(p["patient"], as_of) else "pass"
    return out


def compare(source: str, as_of: date, candidates: str) -> list[str]:
    """Each difference between the oracle and candidates.csv, then a count line."""
    maps = CopdMaps()
    pats = load(source)
    screened = {
        pid
        for pid, p in pats.items()
        if any(maps.matches("copd", c.get("code")) for c in p["cond"])
    }
    return differences(pats, screened, lambda p: evaluate(p, as_of, maps), CRITERIA, candidates)


if __name__ == "__main__":
    sys.exit(main(compare))
