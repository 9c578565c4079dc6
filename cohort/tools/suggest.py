"""Suggest a concept for an unmapped code: display words, titer-shaped values, unit dimension."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Protocol

from cohort.model import ObsValue, Quantity
from cohort.terminology import Terminology
from cohort.terminology.codes import TEXT, ConceptIndex
from cohort.tools.common import words


class Item(Protocol):
    """What the suggester reads of an unmapped code."""

    rtype: str
    system: str
    code: str
    display: str
    values: list[str]
    quantities: list[Quantity]


STOP = {
    "in",
    "by",
    "of",
    "the",
    "or",
    "and",
    "for",
    "serum",
    "plasma",
    "blood",
    "mass",
    "volume",
    "presence",
    "automated",
    "count",
    "ml",
    "mg",
    "iv",
    "po",
    "tablet",
    "test",
}
FAMILY = {
    "Condition": "conditions",
    "Observation": "labs",
    "Immunization": "vaccines",
    "Procedure": "procedures",
}


def _stem(word: str) -> str:
    """A word without a plural's `s` ("platelets" -> "platelet"; "mass", "virus" kept)."""
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> set[str]:
    """The words of a text that can tell a concept, singular: "PLATELET COUNT" and
    "Platelets [#/volume] in Blood" both give {"platelet"}."""
    return {_stem(w) for w in words(text) - STOP}


class Suggester:
    """Suggests a concept from display words, titer-shaped values and unit dimensions."""

    def __init__(self, term: Terminology) -> None:
        self.term = term
        self.family: dict[str, set[str]] = defaultdict(set)
        self.profiles: dict[str, list[set[str]]] = defaultdict(list)
        for r in term.rows():
            if r.verified == "N":
                continue
            self.family[r.concept].add(Path(r.file).stem)
            text = r.code if r.system == TEXT else r.display
            self.profiles[r.concept].append(terms(text))

        # rows a run does not read (verified=N): a code only they map is "unmapped" to the run,
        # but the row is there, waiting to be checked
        self.unverified = [
            (r, ConceptIndex([r], term.systems)) for r in term.rows() if r.verified == "N"
        ]

    def unverified_row(self, u: Item) -> tuple[str, str] | None:
        """(concept, file:line) of a verified=N row that maps the item, if one does."""
        for row, index in self.unverified:
            if u.system == TEXT:
                hits = index.text_hits(f"{u.code} | {u.display}")
            else:
                hits = index.code_hits(u.system, u.code)
            if any(not h.exclude for h in hits):
                return row.concept, f"{row.file}:{row.line}"
        return None

    def _in_family(self, concept: str, rtype: str) -> bool:
        fams = self.family[concept] - {"local"}
        want = "medications" if rtype.startswith("Medication") else FAMILY.get(rtype, "labs")
        return not fams or want in fams

    def suggest(self, u: Item) -> tuple[str, str]:
        shown = terms(u.display or u.code)
        titer = any(":" in v and self.term.titer(ObsValue(string=v)) for v in u.values)
        best: tuple[float, str, str] = (0.0, "", "")
        for concept, profiles in self.profiles.items():
            if not self._in_family(concept, u.rtype):
                continue
            name = {_stem(w) for w in concept.split("_")}
            score = len(shown & name) / len(name)
            why = ["display words"] if score else []
            disp = max((len(shown & p) / len(shown | p) for p in profiles if p), default=0.0)
            if disp > score:
                score, why = disp, ["display like mapped rows"]
            unit = self.term.canonical_unit(concept) or ""
            if titer and unit == "{titer}":
                score += 0.5
                why.append("titer-like values")
            elif (
                u.quantities
                and unit
                and not unit.startswith("{")
                and any(self.term.convert(q, concept) is not None for q in u.quantities[:3])
            ):
                score += 0.3
                why.append(f"unit converts to {unit}")
            if score > best[0]:
                best = (score, concept, ", ".join(why))
        return (best[1], best[2]) if best[0] >= 0.5 else ("", "")
