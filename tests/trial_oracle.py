"""What the trial oracles share: raw FHIR records, concept rows, dates and results, compared."""

# Plain Python over the raw records, no cohort imports: an oracle is written apart from the code
# it checks. Each trial's oracle (tests/dkd_oracle.py, copd_oracle.py, ...) keeps its own
# criteria's rules and builds them from these: reading the records (Bundles, NDJSON, the Synthea
# archive), the trial's mapping rows, the latest result in a window, a quantity in one unit, and
# candidates.csv compared cell by cell.
from __future__ import annotations

import calendar
import csv
import glob
import json
import lzma
import os
import re
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, timedelta
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.join(HERE, "..", "mappings")
ACTIVE = {"active", "recurrence", "relapse"}
ONGOING = {"active", "on-hold", "intended"}
UNCONFIRMED = {"unconfirmed", "provisional", "differential"}
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

Patients = dict[str, dict[str, Any]]


def trial_dir(name: str) -> str:
    """A trial's folder of test data (tests/data/<name>: its mappings and hand-made data)."""
    return os.path.join(HERE, "data", name)


# -- records


def resources(source: str) -> Iterator[dict[str, Any]]:
    """Every resource of a source: the Synthea archive as shipped, else a folder's .json Bundles
    (or single resources) and .ndjson / .ndjson.xz files (not a Bulk export's log.ndjson)."""
    if source.endswith(".tar.xz"):
        with tarfile.open(source, "r:xz") as tar:
            for member in tar:
                raw = tar.extractfile(member) if member.name.endswith(".json") else None
                if raw is not None:
                    yield from bundle_entries(json.load(raw))
        return
    for path in sorted(glob.glob(os.path.join(source, "**", "*"), recursive=True)):
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as fh:
                yield from bundle_entries(json.load(fh))
        elif path.endswith((".ndjson", ".ndjson.xz")):
            if os.path.basename(path).startswith("log."):
                continue
            opener: Any = lzma.open if path.endswith(".xz") else open
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


def load(source: str) -> Patients:
    """Each patient's records the rules read (docs/rules.md drops the others): "patient" (the
    Patient resource), "cond", "obs", "med" (requests and statements), "proc" and "imm"."""
    pats: Patients = {}

    def pat(pid: str) -> dict[str, Any]:
        empty: dict[str, Any] = {"cond": [], "obs": [], "med": [], "proc": [], "imm": []}
        return pats.setdefault(pid, {**empty, "patient": {}})

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
        elif t == "Immunization" and r.get("status") != "not-done":
            p["imm"].append(r)
    return pats


def ref_id(ref: str) -> str:
    return ref.split("/")[-1].replace("urn:uuid:", "")


def day(text: str | None) -> date | None:
    """A full date's day (None for no date or a partial one: see `days`)."""
    return date.fromisoformat(text[:10]) if text and len(text) >= 10 else None


def days(text: str | None) -> tuple[date, date] | None:
    """A date, full or partial (YYYY-MM, YYYY), as its first and last day (docs/rules.md)."""
    if not text or len(text) < 4:
        return None
    if len(text) >= 10:
        return day(text), day(text)  # type: ignore[return-value]
    y = int(text[:4])
    if len(text) >= 7:
        m = int(text[5:7])
        return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])
    return date(y, 1, 1), date(y, 12, 31)


def codings(cc: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c.get("code", "")) for c in (cc or {}).get("coding", [])}


def texts(cc: dict[str, Any] | None) -> str:
    cc = cc or {}
    return " | ".join([cc.get("text", "")] + [c.get("display", "") for c in cc.get("coding", [])])


def status_code(cc: dict[str, Any] | None) -> str:
    for c in (cc or {}).get("coding", []):
        return c.get("code", "")
    return ""


# -- the trial's mapping rows


class Maps:
    """Codes, names and excluded names per concept: the trial's own rows (`overlay`, its
    mappings folder, rows without a header as they are appended to the shipped files) and, of
    the shipped files, the exact rows of the concepts in `shipped` (their prefix rows kept
    apart, in `prefixes`, for `prefixed`)."""

    def __init__(self, overlay: str, shipped: Iterable[str] = ()) -> None:
        self.codes: dict[str, set[tuple[str, str]]] = {}
        self.names: dict[str, set[str]] = {}
        self.unnames: dict[str, set[str]] = {}
        self.prefixes: dict[str, set[tuple[str, str]]] = {}
        for path in glob.glob(os.path.join(overlay, "concepts", "*.csv")):
            with open(path, encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    if path.endswith("medications.csv"):
                        row = row[:1] + row[2:]  # (the ingredient column)
                    self._add(row[0], row[1], row[2], row[4] == "Y")
        wanted = set(shipped)
        for name in ("conditions", "medications") if wanted else ():
            for r in shipped_rows(f"concepts/{name}.csv"):
                if r["concept"] not in wanted or r["verified"] == "local":
                    continue
                if r["match"] in ("exact", ""):
                    self._add(r["concept"], r["system"], r["code"], r["exclude"] == "Y")
                elif r["match"] == "prefix" and r["exclude"] != "Y":
                    self.prefixes.setdefault(r["concept"], set()).add((r["system"], r["code"]))

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
        """A code of the concept among the codings, else one of its names in the texts."""
        if codings(cc) & self.codes.get(concept, set()):
            return True
        return self.named(concept, texts(cc))

    def prefixed(self, concept: str, cc: dict[str, Any] | None, system: str) -> bool:
        """A code of `system` among the codings that starts with one of the concept's shipped
        prefix rows of a system ending so (the shipped rows name ICD-10-CM by its URI)."""
        starts = [p for s, p in self.prefixes.get(concept, ()) if s.endswith(system)]
        return any(c.startswith(p) for s, c in codings(cc) if s.endswith(system) for p in starts)


def med_matches(m: dict[str, Any], codes: set[tuple[str, str]], names: set[str]) -> bool:
    """A medication record's code among `codes`, else one of `names` as a word of its text or
    a display (words split at spaces and commas: "losartan 50 mg", not "losartan/hctz")."""
    cc = m.get("medicationCodeableConcept") or {}
    if codings(cc) & codes:
        return True
    words = " ".join([cc.get("text", "")] + [c.get("display", "") for c in cc.get("coding", [])])
    return any(n in words.lower().replace(",", " ").split() for n in names)


def shipped_rows(name: str) -> Iterator[dict[str, str]]:
    """The rows of a shipped mappings file (`name` from mappings/), its # lines skipped."""
    with open(os.path.join(SHIPPED, name), encoding="utf-8") as fh:
        yield from csv.DictReader(row for row in fh if not row.startswith("#"))


# -- dates, conditions, exposures


def months_before(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def age_on(patient: dict[str, Any], as_of: date) -> int | None:
    """Whole years from birthDate to as_of (None without a birthDate)."""
    birth = day(patient.get("birthDate"))
    if birth is None:
        return None
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))


def deceased(patient: dict[str, Any], as_of: date) -> bool:
    """deceasedBoolean true, or a deceasedDateTime on or before as_of."""
    died = day(patient.get("deceasedDateTime"))
    return patient.get("deceasedBoolean") is True or (died or date.max) <= as_of


def cond_date(c: dict[str, Any]) -> date | None:
    return day(c.get("onsetDateTime")) or day(c.get("recordedDate"))


def cond_active(c: dict[str, Any]) -> bool:
    if "abatementDateTime" in c:
        return False
    return status_code(c.get("clinicalStatus")) in ACTIVE


def on_record(c: dict[str, Any], as_of: date) -> bool:
    """A condition dated after as_of is not known yet (an undated one is)."""
    d = cond_date(c)
    return d is None or d <= as_of


def exposure(m: dict[str, Any], as_of: date) -> tuple[date, date] | None:
    """(start, end) of a medication record's exposure (SPEC §2), None when it starts after as_of
    or has no start; an ongoing one ends on date.max, one neither ongoing nor ended on its
    start."""
    period = m.get("effectivePeriod") or {}
    start = day(m.get("effectiveDateTime") or period.get("start") or m.get("authoredOn"))
    if start is None or start > as_of:
        return None
    end = day(period.get("end"))
    if end is None:
        end = date.max if m.get("status") in ONGOING else start
    return start, end


# -- results


def result_time(o: dict[str, Any]) -> str | None:
    """When a result was taken: effectiveDateTime, else issued."""
    return o.get("effectiveDateTime") or o.get("issued")


def latest_results(
    obs: list[dict[str, Any]],
    codes: set[tuple[str, str]],
    as_of: date,
    days: int | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The most recent results of the codes on or before as_of (and within `days` before it,
    when given), of those `keep` keeps: several when nothing orders them (the same instant).
    A result is an Observation or one of its components (a blood pressure's systolic), which
    takes the Observation's date: the one of the codes, read as `in_unit` reads it."""
    start = as_of - timedelta(days=days) if days is not None else date.min
    found: list[tuple[str, dict[str, Any]]] = []
    for o in obs:
        when = result_time(o)
        d = day(when)
        if when is None or d is None or not start <= d <= as_of:
            continue
        for part in [o, *(o.get("component") or [])]:
            if codings(part.get("code")) & codes and (keep is None or keep(part)):
                found.append((when, part))
    if not found:
        return []
    top = max(when for when, _ in found)
    return [part for when, part in found if when == top]


def in_unit(o: dict[str, Any], factors: Mapping[str, float]) -> float | None:
    """A result's valueQuantity in one unit: its value times the factor of its UCUM code (None
    with no value, or a unit `factors` does not name)."""
    q = o.get("valueQuantity") or {}
    v, factor = q.get("value"), factors.get(q.get("code", ""))
    return None if v is None or factor is None else float(v) * factor


def one_outcome(outcomes: set[str]) -> str:
    """Same-instant results are each tried as the most recent (docs/rules.md): disagreeing is
    unknown."""
    return "unknown" if len(outcomes) != 1 else next(iter(outcomes))


# -- compared with cohort


def candidates(path: str) -> dict[str, dict[str, str]]:
    """candidates.csv's rows by patient_id."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return {r["patient_id"]: r for r in csv.DictReader(fh)}


def differences(
    pats: Patients,
    screened: set[str],
    want: Callable[[dict[str, Any]], dict[str, str]],
    criteria: Iterable[str],
    path: str,
) -> list[str]:
    """Each difference between the oracle (`screened`, `want`: a patient's cells) and
    candidates.csv at `path`, then a count line."""
    out: list[str] = []
    got = candidates(path)
    for pid in sorted(screened ^ set(got)):
        out.append(f"screened differently: {pid} oracle={pid in screened} cohort={pid in got}")
    for pid in sorted(screened & set(got)):
        cells = want(pats[pid])
        for c in criteria:
            if got[pid][c] != cells[c]:
                why = got[pid]["reasons"][:200]
                out.append(f"{pid} {c}: oracle {cells[c]}, cohort {got[pid][c]} ({why})")
    out.append(f"{len(screened)} screened by the oracle, {len(got)} rows, {len(out)} difference(s)")
    return out


def main(compare: Callable[[str, date, str], list[str]]) -> int:
    """An oracle run as a script: SOURCE AS_OF CANDIDATES_CSV; exit 1 on a difference."""
    source, as_of_text, path = sys.argv[1:4]
    lines = compare(source, date.fromisoformat(as_of_text), path)
    print("\n".join(lines))
    return 1 if len(lines) > 1 else 0
