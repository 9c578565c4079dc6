"""Independent oracle of the dkd-demo trial: raw FHIR JSON in, each criterion's cell out."""

# Plain Python over the raw records, no cohort imports: it re-implements the rules as the
# criteria file (tests/data/dkd_trial/mappings/trials/dkd-demo.toml) and docs/rules.md state
# them, for the records the public data holds (full dates, no components; same-instant results
# tried each as the most recent). What every trial's oracle does is in tests/trial_oracle.py.
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from trial_oracle import (
    Maps,
    age_on,
    codings,
    cond_active,
    cond_date,
    day,
    deceased,
    differences,
    exposure,
    latest_results,
    load,
    main,
    med_matches,
    one_outcome,
    trial_dir,
)

OVERLAY = os.path.join(trial_dir("dkd_trial"), "mappings")
CRITERIA = (
    "adult",
    "ckd",
    "egfr_min",
    "egfr_max",
    "uacr",
    "hba1c",
    "raas_blocker",
    "dialysis_transplant_condition",
    "dialysis_transplant_procedure",
    "potassium",
    "pregnancy",
    "deceased",
)


def concept_maps() -> Maps:
    # the shipped pregnancy rows too (exact SNOMED codes; Synthea writes no ICD-10-CM)
    return Maps(OVERLAY, shipped=("pregnancy",))


def latest(
    obs: list[dict[str, Any]], codes: set[tuple[str, str]], as_of: date, days: int
) -> list[float]:
    """The values of the most recent results in the window: several when nothing orders them."""
    # mL/min for eGFR is mL/min/{1.73_m2} less its annotation: UCUM reads them alike
    found = latest_results(obs, codes, as_of, days, keep=lambda o: "valueQuantity" in o)
    return [float(o["valueQuantity"]["value"]) for o in found]


def judge(values: list[float], verdict: Callable[[float], str]) -> str:
    return one_outcome({verdict(v) for v in values})


def evaluate(p: dict[str, Any], as_of: date, maps: Maps) -> dict[str, str]:
    codes, names = maps.codes, maps.names
    out: dict[str, str] = {}
    age = age_on(p["patient"], as_of)
    out["adult"] = "unknown" if age is None else "pass" if age >= 18 else "fail"
    ckd = [c for c in p["cond"] if codings(c.get("code")) & codes["ckd"]]
    dated = [d for d in (cond_date(c) for c in ckd) if d is not None]
    if any(d <= as_of for d in dated):
        out["ckd"] = "pass"
    elif ckd and len(dated) < len(ckd):
        out["ckd"] = "unknown"
    else:
        out["ckd"] = "fail"
    egfr = latest(p["obs"], codes["egfr"], as_of, 90)
    out["egfr_min"] = judge(egfr, lambda v: "fail" if v < 25 else "pass")
    out["egfr_max"] = judge(egfr, lambda v: "fail" if v > 75 else "pass")
    uacr = latest(p["obs"], codes["uacr"], as_of, 180)
    out["uacr"] = judge(uacr, lambda v: "pass" if v >= 30 else "fail")
    a1c = latest(p["obs"], codes["hba1c"], as_of, 90)
    out["hba1c"] = judge(a1c, lambda v: "fail" if v > 12 else "pass")
    k = latest(p["obs"], codes["potassium"], as_of, 90)
    out["potassium"] = judge(k, lambda v: "fail" if v > 4.8 else "pass")
    raas = codes["ace_inhibitor"] | codes.get("arb", set())
    raas_names = names.get("ace_inhibitor", set()) | names.get("arb", set())
    # "no medication record at all" is as of the date: records that start after it do not count
    exposures = [(m, exposure(m, as_of)) for m in p["med"]]
    on_file = [m for m, e in exposures if e is not None]
    current = any(
        e[0] <= as_of <= e[1] for m, e in exposures if e and med_matches(m, raas, raas_names)
    )
    out["raas_blocker"] = "pass" if current else "unknown" if not on_file else "fail"
    tx = [c for c in p["cond"] if codings(c.get("code")) & codes["kidney_transplant"]]
    out["dialysis_transplant_condition"] = "fail" if tx else "pass"
    proc_codes = codes["dialysis"] | codes["kidney_transplant"]
    out["dialysis_transplant_procedure"] = "pass"
    for pr in p["proc"]:
        if not codings(pr.get("code")) & proc_codes:
            continue
        # any_record: any such procedure on or before as_of, ever
        period = pr.get("performedPeriod") or {}
        start = day(pr.get("performedDateTime") or period.get("start"))
        if start is None or start <= as_of:
            out["dialysis_transplant_procedure"] = "fail"
    preg = [c for c in p["cond"] if codings(c.get("code")) & codes["pregnancy"] and cond_active(c)]
    if any(cond_date(c) is not None and (as_of - cond_date(c)).days <= 300 for c in preg):
        out["pregnancy"] = "fail"
    elif preg:
        out["pregnancy"] = "unknown"
    else:
        out["pregnancy"] = "pass"
    out["deceased"] = "fail" if deceased(p["patient"], as_of) else "pass"
    return out


def compare(source: str, as_of: date, candidates: str) -> list[str]:
    """Each difference between the oracle and candidates.csv, then a count line."""
    maps = concept_maps()
    pats = load(source)
    screened = {
        pid
        for pid, p in pats.items()
        if any(codings(c.get("code")) & maps.codes["t2dm"] for c in p["cond"])
    }
    return differences(pats, screened, lambda p: evaluate(p, as_of, maps), CRITERIA, candidates)


if __name__ == "__main__":
    sys.exit(main(compare))
