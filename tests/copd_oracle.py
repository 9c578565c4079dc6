"""Independent oracle of the copd-demo trial: raw FHIR JSON in, each criterion's cell out."""

# Plain Python over the raw records, no cohort imports: it re-implements the rules as the
# criteria file (tests/data/copd_trial/mappings/trials/copd-demo.toml) and docs/rules.md,
# docs/criteria-kinds.md state them, for the records the public data and the hand-made patients
# hold (full dates, no components, inline medication codes; same-instant results tried each as
# the most recent). The structure follows tests/dkd_oracle.py.
from __future__ import annotations

import calendar
import csv
import glob
import json
import os
import re
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
OVERLAY = os.path.join(HERE, "data", "copd_trial", "mappings")
SHIPPED = os.path.join(HERE, "..", "mappings")
ACTIVE = {"active", "recurrence", "relapse"}
ONGOING = {"active", "on-hold", "intended"}
UNCONFIRMED = {"unconfirmed", "provisional", "differential"}
SNOMED = "http://snomed.info/sct"
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


class Maps:
    """Codes, names and excluded names per concept; products of systemic steroids."""

    def __init__(self) -> None:
        self.codes: dict[str, set[tuple[str, str]]] = {}
        self.names: dict[str, set[str]] = {}
        self.unnames: dict[str, set[str]] = {}
        for path in glob.glob(os.path.join(OVERLAY, "concepts", "*.csv")):
            with open(path, encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    if path.endswith("medications.csv"):
                        row = row[:1] + row[2:]  # (the ingredient column)
                    self._add(row[0], row[1], row[2], row[4] == "Y")
        # the shipped concepts the trial reads: asthma, pregnancy (exact SNOMED rows: Synthea
        # writes no ICD-10-CM), corticosteroid_systemic (codes, names; its RxNorm products)
        for name in ("conditions", "medications"):
            with open(os.path.join(SHIPPED, "concepts", f"{name}.csv"), encoding="utf-8") as fh:
                for r in csv.DictReader(row for row in fh if not row.startswith("#")):
                    shipped = r["concept"] in ("asthma", "pregnancy", "corticosteroid_systemic")
                    if shipped and r["match"] in ("exact", "") and r["verified"] != "local":
                        self._add(r["concept"], r["system"], r["code"], r["exclude"] == "Y")
        steroids = set()
        with open(os.path.join(SHIPPED, "concepts", "medications.csv"), encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r["concept"] == "corticosteroid_systemic":
                    steroids.add(r["ingredient"])
        self.steroid_products: set[str] = set()
        with open(os.path.join(SHIPPED, "medications", "products.csv"), encoding="utf-8") as fh:
            for r in csv.DictReader(row for row in fh if not row.startswith("#")):
                if r["ingredient"] in steroids and r["systemic"].upper() == "Y":
                    self.steroid_products.add(r["rxcui"])
        with open(os.path.join(SHIPPED, "rules.toml"), "rb") as fb:
            self.non_systemic = tomllib.load(fb)["exposure"]["non_systemic_words"]

    def _add(self, concept: str, system: str, code: str, exclude: bool) -> None:
        if system == "text":
            (self.unnames if exclude else self.names).setdefault(concept, set()).add(code.lower())
        elif not exclude:
            self.codes.setdefault(concept, set()).add((system, code))

    def named(self, concept: str, words: str) -> bool:
        """A name row as a whole word of the text, and no excluded name there."""
        text = words.lower()

        def said(name: str) -> bool:
            return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None

        if any(said(n) for n in self.unnames.get(concept, ())):
            return False
        return any(said(n) for n in self.names.get(concept, ()))

    def matches(self, concept: str, cc: dict[str, Any] | None) -> bool:
        if codings(cc) & self.codes.get(concept, set()):
            return True
        return self.named(concept, texts(cc))


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
                yield from bundle_entries(json.load(fh))
        elif path.endswith(".ndjson") and not os.path.basename(path).startswith("log."):
            with open(path, encoding="utf-8") as fh:
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


def texts(cc: dict[str, Any] | None) -> str:
    cc = cc or {}
    return " | ".join([cc.get("text", "")] + [c.get("display", "") for c in cc.get("coding", [])])


def status_code(cc: dict[str, Any] | None) -> str:
    for c in (cc or {}).get("coding", []):
        return c.get("code", "")
    return ""


def months_before(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def load(source: str) -> dict[str, dict[str, Any]]:
    pats: dict[str, dict[str, Any]] = {}

    def pat(pid: str) -> dict[str, Any]:
        return pats.setdefault(pid, {"cond": [], "obs": [], "med": [], "patient": {}})

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
    return pats


def cond_date(c: dict[str, Any]) -> date | None:
    return day(c.get("onsetDateTime")) or day(c.get("recordedDate"))


def on_record(c: dict[str, Any], as_of: date) -> bool:
    """A condition dated after as_of is not known yet (an undated one is)."""
    d = cond_date(c)
    return d is None or d <= as_of


def cond_active(c: dict[str, Any]) -> bool:
    if "abatementDateTime" in c:
        return False
    return status_code(c.get("clinicalStatus")) in ACTIVE


def latest(obs: list[dict[str, Any]], code: str, as_of: date) -> list[dict[str, Any]]:
    """The most recent results of a LOINC code on or before as_of: several when none orders them."""
    found = [
        o
        for o in obs
        if ("http://loinc.org", code) in codings(o.get("code"))
        and (day(o.get("effectiveDateTime")) or date.max) <= as_of
    ]
    if not found:
        return []
    top = max(o["effectiveDateTime"] for o in found)
    return [o for o in found if o["effectiveDateTime"] == top]


def judge(outcomes: set[str]) -> str:
    # same-instant results are each tried as the most recent (docs/rules.md): disagreeing is unknown
    return "unknown" if len(outcomes) != 1 else outcomes.pop()


def exposure(m: dict[str, Any], as_of: date) -> tuple[date, date] | None:
    """(start, end) of a medication record's exposure (SPEC §2), None when it starts after as_of
    or has no start; an ongoing one ends on date.max."""
    period = m.get("effectivePeriod") or {}
    start = day(m.get("effectiveDateTime") or period.get("start") or m.get("authoredOn"))
    if start is None or start > as_of:
        return None
    end = day(period.get("end"))
    if end is None:
        end = date.max if m.get("status") in ONGOING else start
    return start, end


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


def evaluate(p: dict[str, Any], as_of: date, maps: Maps) -> dict[str, str]:
    out: dict[str, str] = {}
    birth = day(p["patient"].get("birthDate"))
    if birth is None:
        out["age"] = "unknown"
    else:
        age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
        out["age"] = "pass" if 40 <= age <= 85 else "fail"
    # at least 2 exacerbation conditions, one a date, from 12 months before as_of to as_of
    start = months_before(as_of, 12)
    exac = {
        cond_date(c)
        for c in p["cond"]
        if maps.matches("copd_exacerbation", c.get("code")) and cond_date(c) is not None
    }
    out["exacerbations"] = "pass" if len({d for d in exac if start <= d <= as_of}) >= 2 else "fail"
    smoking = set()
    for o in latest(p["obs"], "72166-2", as_of):
        codes = {c for s, c in codings(o.get("valueCodeableConcept")) if s == SNOMED}
        smoking.add("fail" if codes & NEVER else "pass" if codes & EVER else "unknown")
    out["smoker"] = judge(smoking) if smoking else "unknown"
    ratios = set()
    for o in latest(p["obs"], "19926-5", as_of):
        q = o.get("valueQuantity") or {}
        v = q.get("value")
        v = v / 100 if q.get("code") == "%" else v if q.get("code") == "1" else None
        ok = v is not None and 0 <= v <= 1  # units.csv: 0-1
        ratios.add("unknown" if not ok else "pass" if v < 0.70 else "fail")
    out["fev1_fvc"] = judge(ratios) if ratios else "unknown"
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
            s == "http://www.nlm.nih.gov/research/umls/rxnorm" and c in maps.steroid_products
            for s, c in codings(cc)
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
    maps = Maps()
    pats = load(source)
    screened = {
        pid
        for pid, p in pats.items()
        if any(maps.matches("copd", c.get("code")) for c in p["cond"])
    }
    with open(candidates, encoding="utf-8-sig", newline="") as fh:
        got = {r["patient_id"]: r for r in csv.DictReader(fh)}
    for pid in sorted(screened ^ set(got)):
        out.append(f"screened differently: {pid} oracle={pid in screened} cohort={pid in got}")
    for pid in sorted(screened & set(got)):
        want = evaluate(pats[pid], as_of, maps)
        for c in CRITERIA:
            if got[pid][c] != want[c]:
                why = got[pid]["reasons"][:200]
                out.append(f"{pid} {c}: oracle {want[c]}, cohort {got[pid][c]} ({why})")
    out.append(f"{len(screened)} screened by the oracle, {len(got)} rows, {len(out)} difference(s)")
    return out


if __name__ == "__main__":
    sys.exit(main())
