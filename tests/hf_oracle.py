"""Independent oracle of the hf-demo trial: raw FHIR JSON in, each criterion's cell out."""

# Plain Python over the raw records, no cohort imports: it re-implements the rules as the
# criteria file (tests/data/hf_trial/mappings/trials/hf-demo.toml) and docs/rules.md state them,
# for the records the public data holds (full dates; the systolic pressure a component of the
# blood pressure panel; same-instant results tried each as the most recent). The structure is
# tests/dkd_oracle.py's; the record readers are tests/trial_oracle.py's (no cohort imports).
from __future__ import annotations

import calendar
import csv
import glob
import os
import sys
from datetime import date, timedelta
from typing import Any

from trial_oracle import (
    codings,
    day,
    differences,
    load,
    main,
    med_matches,
    months_before,
    status_code,
)

HERE = os.path.dirname(os.path.abspath(__file__))
OVERLAY = os.path.join(HERE, "data", "hf_trial", "mappings", "concepts")
SHIPPED = os.path.join(HERE, "..", "mappings", "concepts")
ONGOING = {"active", "on-hold", "intended"}
CRITERIA = (
    "age",
    "hf_diagnosis",
    "nt_probnp",
    "lvef",
    "loop_diuretic",
    "flu_vaccine",
    "recent_mi",
    "egfr",
    "potassium",
    "sbp",
    "deceased",
)
Codes = dict[str, set[tuple[str, str]]]


def concept_codes() -> tuple[Codes, dict[str, set[str]], dict[str, set[str]]]:
    """Exact codes and text names per concept (the overlay's rows), and the shipped
    heart_failure rows: its exact SNOMED code and its ICD-10-CM prefix."""
    codes: Codes = {}
    names: dict[str, set[str]] = {}
    prefixes: dict[str, set[str]] = {}
    for path in glob.glob(os.path.join(OVERLAY, "*.csv")):
        with open(path, encoding="utf-8") as fh:
            for row in csv.reader(fh):
                if path.endswith("medications.csv"):
                    concept, _ing, system, code = row[:4]
                else:
                    concept, system, code = row[:3]
                if system == "text":
                    names.setdefault(concept, set()).add(code.lower())
                else:
                    codes.setdefault(concept, set()).add((system, code))
    with open(os.path.join(SHIPPED, "conditions.csv"), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["concept"] != "heart_failure" or row["exclude"]:
                continue
            if row["match"] == "prefix":
                prefixes.setdefault("heart_failure", set()).add(row["code"])
            else:
                codes.setdefault("heart_failure", set()).add((row["system"], row["code"]))
    return codes, names, prefixes


def is_hf(c: dict[str, Any], codes: Codes, prefixes: dict[str, set[str]]) -> bool:
    if codings(c.get("code")) & codes["heart_failure"]:
        return True
    icd = {code for system, code in codings(c.get("code")) if system.endswith("icd-10-cm")}
    return any(code.startswith(p) for code in icd for p in prefixes.get("heart_failure", ()))


def days(text: str | None) -> tuple[date | None, date]:
    """A possibly partial date (YYYY-MM-DD, YYYY-MM, YYYY) as its first and last day."""
    if not text:
        return None, date.max
    if len(text) >= 10:
        return date.fromisoformat(text[:10]), date.fromisoformat(text[:10])
    if len(text) == 7:
        y, m = int(text[:4]), int(text[5:7])
        return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])
    return date(int(text[:4]), 1, 1), date(int(text[:4]), 12, 31)


def cond_date(c: dict[str, Any]) -> date | None:
    return day(c.get("onsetDateTime")) or day(c.get("recordedDate"))


def latest(
    obs: list[dict[str, Any]], codes: set[tuple[str, str]], as_of: date, start: date
) -> list[float | None]:
    """The values of the most recent results in [start, as_of], an Observation's own or a
    component's (which takes its parent's date): several when nothing orders them."""
    found: list[tuple[str, float | None]] = []
    for o in obs:
        when = o.get("effectiveDateTime") or o.get("issued")
        d = day(when)
        if d is None or not start <= d <= as_of:
            continue
        parts = [o] + list(o.get("component") or [])
        for part in parts:
            quantity = part.get("valueQuantity")
            if codings(part.get("code")) & codes and quantity is not None:
                # a number without a unit (Synthea writes some blood pressure components so,
                # the UCUM system alone) is no value in the concept's unit (docs/rules.md)
                unit = quantity.get("code") or quantity.get("unit")
                found.append((when, float(quantity["value"]) if unit else None))
    if not found:
        return []
    top = max(w for w, _ in found)
    return [v for w, v in found if w == top]


def judge(values: list[float | None], verdict: Any) -> str:
    # same-instant results are each tried as the most recent (docs/rules.md): disagreeing is
    # unknown, and so is a most recent value that cannot be read in the concept's unit
    outcomes = {"unknown" if v is None else verdict(v) for v in values}
    return "unknown" if len(outcomes) != 1 else outcomes.pop()


def med_start(m: dict[str, Any]) -> date | None:
    period = m.get("effectivePeriod") or {}
    return day(m.get("effectiveDateTime") or period.get("start") or m.get("authoredOn"))


def evaluate(
    p: dict[str, Any],
    as_of: date,
    codes: Codes,
    names: dict[str, set[str]],
    prefixes: dict[str, set[str]],
) -> dict[str, str]:
    out: dict[str, str] = {}
    birth = day(p["patient"].get("birthDate"))
    if birth is None:
        out["age"] = "unknown"
    else:
        age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
        out["age"] = "pass" if 40 <= age <= 85 else "fail"
    hf = [cond_date(c) for c in p["cond"] if is_hf(c, codes, prefixes)]
    confirmed = [
        cond_date(c)
        for c in p["cond"]
        if is_hf(c, codes, prefixes)
        and status_code(c.get("verificationStatus")) not in ("unconfirmed", "provisional", "differential")
    ]
    if any(d and d <= as_of for d in confirmed):
        out["hf_diagnosis"] = "pass"
    elif any(d and d <= as_of for d in hf) or any(d is None for d in hf):
        out["hf_diagnosis"] = "unknown"
    else:
        out["hf_diagnosis"] = "fail"  # none, or only dated after as_of: no diagnosis yet
    year_ago, days_90 = months_before(as_of, 12), as_of - timedelta(days=90)
    nt = latest(p["obs"], codes["nt_probnp"], as_of, year_ago)
    out["nt_probnp"] = judge(nt, lambda v: "pass" if v >= 600 else "fail")
    ef = latest(p["obs"], codes["lvef"], as_of, year_ago)
    out["lvef"] = judge(ef, lambda v: "fail" if v > 40 else "pass")
    current = False
    for m in p["med"]:
        if not med_matches(m, codes["loop_diuretic"], names.get("loop_diuretic", set())):
            continue
        start = med_start(m)
        end = day((m.get("effectivePeriod") or {}).get("end"))
        if start is None:
            continue
        if end is None:
            end = as_of if m.get("status") in ONGOING else start
        if start <= as_of <= end:
            current = True
    # "no medication record at all" is as of the date: records that start after it do not count
    on_file = [m for m in p["med"] if (med_start(m) or date.max) <= as_of]
    out["loop_diuretic"] = "pass" if current else "unknown" if not on_file else "fail"
    flu = [
        days(i.get("occurrenceDateTime"))
        for i in p["imm"]
        if codings(i.get("vaccineCode")) & codes["influenza_vaccine"]
    ]
    # a partial date (2025-11) is in the window when every day it stands for is
    if any(first and year_ago <= first and last <= as_of for first, last in flu):
        out["flu_vaccine"] = "pass"
    elif any(first is None or (first <= as_of and last >= year_ago) for first, last in flu):
        out["flu_vaccine"] = "unknown"
    else:
        out["flu_vaccine"] = "fail"
    mi = [
        days(c.get("onsetDateTime") or c.get("recordedDate"))
        for c in p["cond"]
        if codings(c.get("code")) & codes["acute_mi"]
    ]
    mi = [(first, last) for first, last in mi if first is None or first <= as_of]  # on record
    if any(first and days_90 <= first for first, _ in mi):
        out["recent_mi"] = "fail"
    elif any(first is None or last >= days_90 for first, last in mi):
        out["recent_mi"] = "unknown"  # undated, or a partial date across the window's start
    else:
        out["recent_mi"] = "pass"
    egfr = latest(p["obs"], codes["egfr"], as_of, days_90)
    out["egfr"] = judge(egfr, lambda v: "fail" if v < 20 else "pass")
    k = latest(p["obs"], codes["potassium"], as_of, days_90)
    out["potassium"] = judge(k, lambda v: "fail" if v > 5.0 else "pass")
    sbp = latest(p["obs"], codes["sbp"], as_of, days_90)
    out["sbp"] = judge(sbp, lambda v: "fail" if v < 95 else "pass")
    died = p["patient"].get("deceasedDateTime")
    dead = p["patient"].get("deceasedBoolean") is True or (day(died) or date.max) <= as_of
    out["deceased"] = "fail" if dead else "pass"
    return out


def compare(source: str, as_of: date, candidates: str) -> list[str]:
    """Each difference between the oracle and candidates.csv, then a count line."""
    codes, names, prefixes = concept_codes()
    pats = load(source)
    screened = {pid for pid, p in pats.items() if any(is_hf(c, codes, prefixes) for c in p["cond"])}

    def want(p: dict[str, Any]) -> dict[str, str]:
        return evaluate(p, as_of, codes, names, prefixes)

    return differences(pats, screened, want, CRITERIA, candidates)


if __name__ == "__main__":
    sys.exit(main(compare))
