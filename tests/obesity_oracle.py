"""An oracle for OBESITY-DEMO written apart from cohort (plain Python over the raw FHIR JSON, no
cohort import): who is screened and each criterion's cell, from the rules as
docs/criteria-kinds.md and docs/rules.md state them, to compare with candidates.csv cell by cell.

Run: python tests/obesity_oracle.py SOURCE AS_OF CANDIDATES.csv (SOURCE: a folder of NDJSON or
Bundles, or a .tar.xz of Bundles)."""

from __future__ import annotations

import calendar
import csv
import re
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from trial_oracle import resources  # (the raw records: archive, Bundles, NDJSON)

ROOT = Path(__file__).resolve().parent.parent
TRIAL = ROOT / "tests" / "data" / "obesity_trial" / "mappings" / "concepts"
SHIPPED = ROOT / "mappings" / "concepts"
CRITERIA = (
    "age",
    "obesity_diagnosis",
    "bmi",
    "weight_stable",
    "bariatric_procedure",
    "bariatric_history",
    "glp1_washout",
    "pancreatitis",
    "t1dm",
    "hba1c",
    "egfr",
    "pregnancy",
    "deceased",
)
ACTIVE = ("active", "recurrence", "relapse")
UNCONFIRMED = ("unconfirmed", "provisional", "differential")
POUND = 0.45359237  # kg
Codes = dict[str, set[tuple[str, str]]]  # concept -> (system, code); system "text": a name


def _rows(path: Path, med: bool = False) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            if row and row[0] != "concept":
                yield row[:1] + row[2:] if med else row


def concept_codes() -> Codes:
    """The exact codes and names (text rows) of the trial's rows and of the shipped concepts it
    reads (body_weight, pregnancy: exact rows only; the shipped ICD-10-CM prefixes are not
    needed for Synthea's SNOMED CT conditions)."""
    codes: Codes = {}
    for name in ("conditions", "labs", "procedures", "medications"):
        for row in _rows(TRIAL / f"{name}.csv", med=name == "medications"):
            codes.setdefault(f"{name}:{row[0]}", set()).add((row[1], row[2].lower()))
    for name, concept in (("labs", "body_weight"), ("conditions", "pregnancy")):
        for row in _rows(SHIPPED / f"{name}.csv"):
            if row[0] == concept and row[3] == "exact" and not row[4]:
                codes.setdefault(f"{name}:{concept}", set()).add((row[1], row[2]))
    return codes


def status(cc: dict[str, Any] | None) -> str:
    return ((cc or {}).get("coding") or [{}])[0].get("code", "")


def load(source: str) -> dict[str, dict[str, Any]]:
    pats: dict[str, dict[str, Any]] = {}

    def pat(pid: str) -> dict[str, Any]:
        return pats.setdefault(pid, {"cond": [], "obs": [], "med": [], "proc": [], "patient": {}})

    for r in resources(source):
        t = r.get("resourceType")
        if r.get("status") == "entered-in-error":
            continue
        if t == "Patient":
            pat(r["id"])["patient"] = r
            continue
        ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
        if not ref:
            continue
        p = pat(ref.split("/")[-1].removeprefix("urn:uuid:"))
        if t == "Condition" and status(r.get("verificationStatus")) != "refuted":
            p["cond"].append(r)
        elif t == "Observation" and r.get("status") not in ("cancelled", "registered"):
            p["obs"].append(r)
        elif t in ("MedicationRequest", "MedicationStatement"):
            if r.get("status") not in ("cancelled", "draft", "not-taken"):
                p["med"].append(r)
        elif t == "Procedure" and r.get("status") not in ("not-done", "preparation"):
            p["proc"].append(r)
    return pats


def matches(cc: dict[str, Any] | None, wanted: set[tuple[str, str]]) -> bool:
    cc = cc or {}
    words = [cc.get("text", "")] + [c.get("display", "") for c in cc.get("coding", [])]
    for system, code in wanted:
        if system == "text":
            if any(re.search(rf"\b{re.escape(code)}\b", w, re.IGNORECASE) for w in words):
                return True
        elif any((c.get("system"), c.get("code")) == (system, code) for c in cc.get("coding", [])):
            return True
    return False


def day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text and len(text) >= 10 else None


def cond_date(c: dict[str, Any]) -> date | None:
    return day(c.get("onsetDateTime") or c.get("recordedDate"))


def months_before(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def results(p: dict[str, Any], wanted: set[tuple[str, str]], start: date, as_of: date) -> list:
    """(when, value or None) of the matching results in [start, as_of], newest first."""
    found = []
    for o in p["obs"]:
        when = o.get("effectiveDateTime")
        d = day(when)
        if d is None or not start <= d <= as_of or not matches(o.get("code"), wanted):
            continue
        q = o.get("valueQuantity") or {}
        ok = "value" in q and (q.get("code") or q.get("unit")) and not q.get("comparator")
        factor = POUND if q.get("code") == "[lb_av]" else 1.0  # (body weight in pounds)
        found.append((when, float(q["value"]) * factor if ok else None))
    return sorted(found, key=lambda x: x[0], reverse=True)


def active(c: dict[str, Any], as_of: date) -> bool:
    d, ended = cond_date(c), day(c.get("abatementDateTime"))
    on = d is not None and d <= as_of and status(c.get("clinicalStatus")) in ACTIVE
    return on and (ended is None or ended > as_of)


def evaluate(p: dict[str, Any], codes: Codes, as_of: date) -> dict[str, str]:
    out = dict.fromkeys(CRITERIA, "pass")
    pt = p["patient"]
    birth = day(pt.get("birthDate"))
    if birth is None:
        out["age"] = "unknown"
    else:
        age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
        out["age"] = "pass" if 18 <= age <= 75 else "fail"
    died = day(pt.get("deceasedDateTime"))
    if pt.get("deceasedBoolean") or (died and died <= as_of):
        out["deceased"] = "fail"

    def conds(concept: str) -> list[dict[str, Any]]:
        return [c for c in p["cond"] if matches(c.get("code"), codes[f"conditions:{concept}"])]

    dated = [c for c in conds("obesity") if (cond_date(c) or date.max) <= as_of]
    if not dated:
        out["obesity_diagnosis"] = "fail"
    elif all(status(c.get("verificationStatus")) in UNCONFIRMED for c in dated):
        out["obesity_diagnosis"] = "unknown"

    bmi = results(p, codes["labs:bmi"], months_before(as_of, 6), as_of)
    if not bmi or bmi[0][1] is None:
        out["bmi"] = "unknown"
    else:
        comorbid = [c for c in conds("weight_comorbidity") if active(c, as_of)]
        sure = [c for c in comorbid if status(c.get("verificationStatus")) not in UNCONFIRMED]
        v = bmi[0][1]
        if v < 27 or (v < 30 and not comorbid):
            out["bmi"] = "fail"
        elif v < 30 and not sure:
            out["bmi"] = "unknown"

    weights = results(p, codes["labs:body_weight"], as_of - timedelta(days=90), as_of)
    if len(weights) < 2 or weights[0][1] is None or weights[1][1] is None:
        out["weight_stable"] = "unknown"
    elif abs(weights[0][1] - weights[1][1]) > 5:
        out["weight_stable"] = "fail"

    def done(r: dict[str, Any]) -> date | None:
        period = r.get("performedPeriod") or {}
        return day(r.get("performedDateTime") or period.get("start"))

    if any(
        matches(r.get("code"), codes["procedures:bariatric_surgery"])
        and (done(r) or date.max) <= as_of
        for r in p["proc"]
    ):
        out["bariatric_procedure"] = "fail"
    for cid, concept in (
        ("bariatric_history", "bariatric_surgery"),
        ("pancreatitis", "pancreatitis"),
        ("t1dm", "t1dm"),
    ):
        if any((cond_date(c) or date.max) <= as_of for c in conds(concept)):
            out[cid] = "fail"

    since = as_of - timedelta(days=90)
    for m in p["med"]:
        if not matches(m.get("medicationCodeableConcept"), codes["medications:glp1_ra"]):
            continue
        period = m.get("effectivePeriod") or {}
        start = day(m.get("effectiveDateTime") or period.get("start") or m.get("authoredOn"))
        end = day(period.get("end")) or (as_of if m.get("status") == "active" else start)
        if start and start <= as_of and end and end > since:
            out["glp1_washout"] = "fail"

    hba1c = results(p, codes["labs:hba1c"], as_of - timedelta(days=90), as_of)
    if not hba1c or hba1c[0][1] is None:
        out["hba1c"] = "unknown"
    elif hba1c[0][1] >= 10:
        out["hba1c"] = "fail"
    egfr = results(p, codes["labs:egfr"], as_of - timedelta(days=90), as_of)
    if not egfr or egfr[0][1] is None:
        out["egfr"] = "unknown"
    elif egfr[0][1] < 30:
        out["egfr"] = "fail"

    pregnant = [c for c in conds("pregnancy") if active(c, as_of)]
    if pregnant:
        stale = all(cond_date(c) < as_of - timedelta(days=300) for c in pregnant)  # type: ignore[operator]
        shaky = all(status(c.get("verificationStatus")) in UNCONFIRMED for c in pregnant)
        out["pregnancy"] = "unknown" if stale or shaky else "fail"
    return out


def tier(cells: dict[str, str]) -> str:
    if "fail" in cells.values():
        return "excluded"
    return "possible" if "unknown" in cells.values() else "likely"


def compare(source: str, as_of: date, candidates: str) -> list[str]:
    """Differences between the oracle and candidates.csv, then a count line."""
    codes = concept_codes()
    pats = load(source)
    screened = {
        pid: p
        for pid, p in pats.items()
        if p["patient"] and any(matches(c.get("code"), codes["conditions:obesity"]) for c in p["cond"])
    }
    with open(candidates, encoding="utf-8-sig", newline="") as fh:
        rows = {r["patient_id"]: r for r in csv.DictReader(fh)}
    lines = [f"not listed: {pid}" for pid in sorted(set(screened) - set(rows))]
    lines += [f"not screened by the oracle: {pid}" for pid in sorted(set(rows) - set(screened))]
    for pid in sorted(set(screened) & set(rows)):
        want = evaluate(screened[pid], codes, as_of)
        got = {c: rows[pid][c] for c in CRITERIA}
        for c in CRITERIA:
            if want[c] != got[c]:
                lines.append(f"{pid} {c}: oracle {want[c]}, cohort {got[c]} ({rows[pid]['reasons']})")
        if tier(want) != rows[pid]["tier"]:
            lines.append(f"{pid} tier: oracle {tier(want)}, cohort {rows[pid]['tier']}")
    n = len(lines)
    return lines + [f"{len(screened)} screened by the oracle, {len(rows)} rows, {n} difference(s)"]


def main() -> int:
    source, as_of, candidates = sys.argv[1:4]
    lines = compare(source, date.fromisoformat(as_of), candidates)
    print("\n".join(lines))
    return 0 if lines[-1].endswith(" 0 difference(s)") else 1


if __name__ == "__main__":
    sys.exit(main())
