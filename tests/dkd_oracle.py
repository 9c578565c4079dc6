"""Independent oracle of the dkd-demo trial: raw FHIR JSON in, each criterion's cell out."""

# Plain Python over the raw records, no cohort imports: it re-implements the rules as the
# criteria file (tests/data/dkd_trial/mappings/trials/dkd-demo.toml) and docs/rules.md state
# them, for the records the public data holds (full dates, no components; same-instant results
# tried each as the most recent).
from __future__ import annotations

import csv
import glob
import json
import lzma
import os
import sys
import tarfile
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
OVERLAY = os.path.join(HERE, "data", "dkd_trial", "mappings", "concepts")
SHIPPED = os.path.join(HERE, "..", "mappings", "concepts")
ACTIVE = {"active", "recurrence", "relapse"}
ONGOING = {"active", "on-hold", "intended"}
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


def concept_codes() -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[str]]]:
    codes: dict[str, set[tuple[str, str]]] = {}
    names: dict[str, set[str]] = {}
    for path in glob.glob(os.path.join(OVERLAY, "*.csv")):
        with open(path, encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        for row in rows:
            if path.endswith("medications.csv"):
                concept, _ing, system, code = row[:4]
            else:
                concept, system, code = row[:3]
            if system == "text":
                names.setdefault(concept, set()).add(code.lower())
            else:
                codes.setdefault(concept, set()).add((system, code))
    # the shipped pregnancy rows (exact SNOMED codes; Synthea writes no ICD-10-CM)
    with open(os.path.join(SHIPPED, "conditions.csv"), encoding="utf-8") as fh:
        shipped = list(csv.DictReader(fh))
    for row in shipped:
        if row["concept"] == "pregnancy" and row["match"] == "exact" and not row["exclude"]:
            codes.setdefault("pregnancy", set()).add((row["system"], row["code"]))
    return codes, names


def resources(source: str) -> Iterator[dict[str, Any]]:
    if source.endswith(".tar.xz"):  # the Synthea archive, read as it is shipped
        with tarfile.open(source, "r:xz") as tar:
            for member in tar:
                fh = tar.extractfile(member) if member.name.endswith(".json") else None
                if fh is not None:
                    yield from bundle_entries(json.load(fh))
        return
    for path in sorted(glob.glob(os.path.join(source, "**", "*"), recursive=True)):
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as fh:
                bundle = json.load(fh)
            yield from bundle_entries(bundle)
        elif ".ndjson" in path and not os.path.basename(path).startswith("log."):
            opener = lzma.open if path.endswith(".xz") else open
            with opener(path, "rt", encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)


def bundle_entries(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if bundle.get("resourceType") != "Bundle":
        yield bundle
        return
    for entry in bundle.get("entry", []) or []:
        yield entry.get("resource", {})


def ref_id(ref: str) -> str:
    return ref.split("/")[-1].replace("urn:uuid:", "")


def day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text and len(text) >= 10 else None


def codings(cc: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c.get("code", "")) for c in (cc or {}).get("coding", [])}


def status_code(cc: dict[str, Any] | None) -> str:
    for c in (cc or {}).get("coding", []):
        return c.get("code", "")
    return ""


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
        subject = (r.get("subject") or r.get("patient") or {}).get("reference")
        if not subject:
            continue
        p = pat(ref_id(subject))
        if t == "Condition":
            if status_code(r.get("verificationStatus")) in ("refuted", "entered-in-error"):
                continue
            p["cond"].append(r)
        elif t == "Observation" and r.get("status") not in ("cancelled", "registered"):
            p["obs"].append(r)
        elif t == "MedicationRequest":
            if r.get("status") in ("cancelled", "draft") or r.get("doNotPerform"):
                continue
            if r.get("intent") in ("proposal", "option"):
                continue
            p["med"].append(r)
        elif t == "MedicationStatement" and r.get("status") != "not-taken":
            p["med"].append(r)
        elif t == "Procedure" and r.get("status") != "not-done":
            p["proc"].append(r)
    return pats


def cond_date(c: dict[str, Any]) -> date | None:
    return day(c.get("onsetDateTime")) or day(c.get("recordedDate"))


def cond_active(c: dict[str, Any]) -> bool:
    if "abatementDateTime" in c:
        return False
    return status_code(c.get("clinicalStatus")) in ACTIVE


def latest(
    obs: list[dict[str, Any]], codes: set[tuple[str, str]], as_of: date, days: int
) -> list[float]:
    """The values of the most recent results in the window: several when nothing orders them."""
    start = as_of - timedelta(days=days)
    found: list[tuple[str, float]] = []
    for o in obs:
        if not codings(o.get("code")) & codes:
            continue
        when = o.get("effectiveDateTime") or o.get("issued")
        d = day(when)
        if d is None or not start <= d <= as_of or "valueQuantity" not in o:
            continue
        # mL/min for eGFR is mL/min/{1.73_m2} less its annotation: UCUM reads them alike
        found.append((when, float(o["valueQuantity"]["value"])))
    if not found:
        return []
    top = max(w for w, _ in found)
    return [v for w, v in found if w == top]


def judge(values: list[float], verdict: Any) -> str:
    # same-instant results are each tried as the most recent (docs/rules.md): disagreeing is unknown
    outcomes = {verdict(v) for v in values}
    return "unknown" if len(outcomes) != 1 else outcomes.pop()


def med_start(m: dict[str, Any]) -> date | None:
    period = m.get("effectivePeriod") or {}
    return day(m.get("effectiveDateTime") or period.get("start") or m.get("authoredOn"))


def med_matches(m: dict[str, Any], codes: set[tuple[str, str]], names: set[str]) -> bool:
    cc = m.get("medicationCodeableConcept") or {}
    if codings(cc) & codes:
        return True
    words = " ".join([cc.get("text", "")] + [c.get("display", "") for c in cc.get("coding", [])])
    return any(n in words.lower().replace(",", " ").split() for n in names)


def evaluate(
    p: dict[str, Any],
    as_of: date,
    codes: dict[str, set[tuple[str, str]]],
    names: dict[str, set[str]],
) -> dict[str, str]:
    out: dict[str, str] = {}
    birth = day(p["patient"].get("birthDate"))
    if birth is None:
        out["adult"] = "unknown"
    else:
        age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
        out["adult"] = "pass" if age >= 18 else "fail"
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
    current = False
    for m in p["med"]:
        if not med_matches(m, raas, raas_names):
            continue
        period = m.get("effectivePeriod") or {}
        start = med_start(m)
        end = day(period.get("end"))
        if start is None:
            continue
        if end is None:
            end = as_of if m.get("status") in ONGOING else start
        if start <= as_of <= end:
            current = True
    # "no medication record at all" is as of the date: records that start after it do not count
    on_file = [m for m in p["med"] if (med_start(m) or date.max) <= as_of]
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
    died = p["patient"].get("deceasedDateTime")
    dead = p["patient"].get("deceasedBoolean") is True or (day(died) or date.max) <= as_of
    out["deceased"] = "fail" if dead else "pass"
    return out


def main() -> int:
    source, as_of_text, candidates = sys.argv[1:4]
    lines = compare(source, date.fromisoformat(as_of_text), candidates)
    print("\n".join(lines))
    return 1 if len(lines) > 1 else 0


def compare(source: str, as_of: date, candidates: str) -> list[str]:
    """Each difference between the oracle and candidates.csv, then a count line."""
    out: list[str] = []
    codes, names = concept_codes()
    pats = load(source)
    screened = {
        pid
        for pid, p in pats.items()
        if any(codings(c.get("code")) & codes["t2dm"] for c in p["cond"])
    }
    with open(candidates, encoding="utf-8-sig", newline="") as fh:
        got = {r["patient_id"]: r for r in csv.DictReader(fh)}
    for pid in sorted(screened ^ set(got)):
        out.append(f"screened differently: {pid} oracle={pid in screened} cohort={pid in got}")
    for pid in sorted(screened & set(got)):
        want = evaluate(pats[pid], as_of, codes, names)
        for c in CRITERIA:
            if got[pid][c] != want[c]:
                why = got[pid]["reasons"][:200]
                out.append(f"{pid} {c}: oracle {want[c]}, cohort {got[pid][c]} ({why})")
    out.append(f"{len(screened)} screened by the oracle, {len(got)} rows, {len(out)} difference(s)")
    return out


if __name__ == "__main__":
    sys.exit(main())
