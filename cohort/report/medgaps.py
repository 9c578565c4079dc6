"""What a site's medication records could not tell, for run.json and the log: records whose
referenced Medication is not in the data, and records that name no drug (extract.medref).

SPEC §2: "The connector copes and says what it could not get". These counted only where a
server did not return a Medication (source.fhir.medications); a file export without its
Medications said nothing. Counts by resource type only: no patient, no record, no Medication id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from cohort.model import Candidate, PatientFacts

__all__ = ["add_medication_gaps", "gaps_of"]

log = logging.getLogger("cohort")

Gap = tuple[str, bool, bool]  # (type, Medication not in the data, named by the display)


def gaps_of(facts: PatientFacts) -> tuple[Gap, ...]:
    """A patient's records whose Medication is not in the data, or that name no drug."""
    if not facts.unresolved and not facts.unnamed:
        return ()
    unnamed = {u.ref for u in facts.unnamed}
    out = [(ref.partition("/")[0], True, ref not in unnamed) for ref in facts.unresolved]
    missing = set(facts.unresolved)
    out += [(u.ref.partition("/")[0], False, False) for u in facts.unnamed if u.ref not in missing]
    return tuple(out)


def _types(counts: dict[str, dict[str, int]], key: str) -> str:
    return ", ".join(f"{t} {n[key]}" for t, n in sorted(counts.items()) if n[key])


def add_medication_gaps(site: str, candidates: Iterable[Candidate], report: dict[str, Any]) -> None:
    """Count the screened patients' gaps into run.json's `report` (`sites.<site>.
    unresolved_medications`, by type) with a warning each, logged."""
    counts: dict[str, dict[str, int]] = {}
    for c in candidates:
        for rtype, absent, named in c.medication_gaps:
            n = counts.setdefault(rtype, {"not_in_data": 0, "by_display": 0, "no_drug": 0})
            n["not_in_data"] += absent
            n["by_display"] += absent and named
            n["no_drug"] += not named
    if not counts:
        return
    said = []
    missing = sum(n["not_in_data"] for n in counts.values())
    if missing:
        shown = sum(n["by_display"] for n in counts.values())
        said.append(
            f"{missing} medication record(s) of screened patients reference a Medication that"
            f" is not in the data ({_types(counts, 'not_in_data')}): {shown} read by the"
            f" reference's display, {missing - shown} naming no drug"
        )
    if none := sum(n["no_drug"] for n in counts.values()):
        said.append(
            f"{none} medication record(s) of screened patients name no drug"
            f" ({_types(counts, 'no_drug')}: the Medication not in the data or dropped, no"
            " display): a medication criterion they could change is unknown"
        )
    entry = report["sites"][site]
    entry["unresolved_medications"] = counts
    entry.setdefault("warnings", []).extend(said)
    report["warnings"] += [f"{site}: {w}" for w in said]
    for w in said:
        log.warning("site %s: %s", site, w)
