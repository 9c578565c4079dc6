"""Suggest a concept for an unmapped code: telling display words, then titer-shaped values, unit."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
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


# words that tell no concept from another: joining words, specimens of blood, LOINC's property
# and method words, SNOMED's semantic tags, and qualifiers many concepts share ("chronic pain"
# is not chronic hepatitis B, "IgE Ab" not an HCV antibody): never counted as a match
STOP = {
    "in",
    "by",
    "of",
    "the",
    "or",
    "and",
    "for",
    "with",
    "due",
    "to",
    "serum",
    "plasma",
    "blood",
    "venous",
    "arterial",
    "capillary",
    "mass",
    "volume",
    "moles",
    "units",
    "unit",
    "presence",
    "automated",
    "manual",
    "calculation",
    "method",
    "count",
    "level",
    "test",
    "ab",
    "antibody",
    "antibodies",
    "virus",
    "vaccine",
    "body",
    "chronic",
    "acute",
    "active",
    "disease",
    "disorder",
    "finding",
    "situation",
    "procedure",
    "history",
    "family",
    "personal",
    "ml",
    "mg",
    # a lab report's abbreviations of "count" and "automated" ("PLATELET CT AUTO")
    "ct",
    "auto",
    "iv",
    "po",
    "tablet",
}
# "History of X", "Family history of X" is not X: these must agree between the code's display
# and what it is compared with (the concept's name and label, or a mapped row's display)
CONTEXT = {"history", "family"}
# the specimen a display names, blood's several names as one: a stool or urine hemoglobin is
# not a blood hemoglobin, whatever its unit
SPECIMEN = {
    "blood": "blood",
    "serum": "blood",
    "plasma": "blood",
    "venous": "blood",
    "arterial": "blood",
    "capillary": "blood",
    "urine": "urine",
    "stool": "stool",
    "feces": "stool",
    "fecal": "stool",
    "csf": "csf",
    "cerebrospinal": "csf",
    "synovial": "synovial fluid",
    "pleural": "pleural fluid",
    "peritoneal": "peritoneal fluid",
    "ascites": "peritoneal fluid",
    "saliva": "saliva",
    "sputum": "sputum",
    "amniotic": "amniotic fluid",
}
# a vaccine is suggested a concept only on a strong match: a live vaccine's codes are a closed,
# verified list, and "vaccine" shared with a polysaccharide one is no evidence
STRONG = 0.8
_NOT_LIVE = re.compile(r"\b(?:non|not)[\s-]+live\b")
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


@dataclass(frozen=True)
class Said:
    """What a text says, for resemblance: its telling words (singular), numbers, context
    ("history") and specimens."""

    terms: frozenset[str]
    numbers: frozenset[str]
    context: frozenset[str]
    specimens: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Said:
        # "non-live" is one word, not "live": a display that says it is not live never counts
        # as saying live; "attenuated" says live
        raw = words(_NOT_LIVE.sub("nonlive", text.lower()))
        raw = {"live" if w == "attenuated" else w for w in raw}
        return cls(
            frozenset(_stem(w) for w in raw - STOP),
            frozenset(w for w in raw if w.isdigit()),
            frozenset(raw & CONTEXT),
            frozenset(SPECIMEN[w] for w in raw if w in SPECIMEN),
        )

    def agrees(self, other: Said) -> bool:
        """Same context, and no other number ("stage 1" is not "stage 5")."""
        if self.context != other.context:
            return False
        return not (self.numbers and other.numbers and not self.numbers & other.numbers)


class Suggester:
    """Suggests a concept from display words, titer-shaped values and unit dimensions."""

    def __init__(self, term: Terminology, concepts: Iterable[str] | None = None) -> None:
        """`concepts`: those a suggestion may name (the configured trial's; None: every one).
        Each is known by the rows a run reads: verified=N ones too with `use_unverified`."""
        self.term = term
        self.family: dict[str, set[str]] = defaultdict(set)
        self.profiles: dict[str, list[Said]] = defaultdict(list)
        wanted = None if concepts is None else set(concepts)
        for r in term.rows():
            if r.verified == "N" and not term.use_unverified:
                continue
            if wanted is not None and r.concept not in wanted:
                continue  # another trial's concept: mapping to it changes nothing here
            self.family[r.concept].add(Path(r.file).stem)
            self.profiles[r.concept].append(Said.of(r.code if r.system == TEXT else r.display))
        # a concept's name and its label ("chronic_hbv"; "chronic hepatitis B"), the words of
        # its rows' displays, and the specimens they name (none: any)
        self.names = {
            c: [Said.of(c.replace("_", " ")), Said.of(term.label(c))] for c in self.profiles
        }
        self.known = {
            c: frozenset().union(*(n.terms for n in self.names[c]), *(p.terms for p in ps))
            for c, ps in self.profiles.items()
        }
        self.specimens = {
            c: frozenset().union(*(p.specimens for p in ps)) for c, ps in self.profiles.items()
        }

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
        return not fams or _family(rtype) in fams

    def _words(self, concept: str, shown: Said, lab: bool) -> tuple[float, str]:
        """How well the display's telling words match the concept: every word of its name or
        of its label ("display words"; "heart disease" is not heart failure), or more than half
        of a row's display and its own ("display like mapped rows"; "acute bronchitis" is not
        "asthmatic bronchitis")."""
        score = 0.0
        # a lab's words the concept never uses name another analyte or property: "A1c" in
        # "Hemoglobin A1c/Hemoglobin.total", "distribution width" beside "Platelet"
        other = shown.terms - self.known[concept] if lab else frozenset()
        for name in self.names[concept]:
            if name.terms and name.terms <= shown.terms and shown.agrees(name):
                score = max(score, len(name.terms) / len(name.terms | other))
        why = "display words" if score else ""
        for p in self.profiles[concept]:
            if p.terms and shown.agrees(p):
                like = len(shown.terms & p.terms) / len(shown.terms | p.terms)
                if like > max(score, 0.5):
                    score, why = like, "display like mapped rows"
        return score, why

    def suggest(self, u: Item) -> tuple[str, str]:
        """(concept, why) on evidence: the display's telling words match the concept (strongly,
        for a vaccine), it names no other specimen, and a value's unit, if it has one, converts
        to the concept's unit; ("", "") otherwise."""
        shown = Said.of(u.display or u.code)
        family = _family(u.rtype)
        titer = any(":" in v and self.term.titer(ObsValue(string=v)) for v in u.values)
        # (a quantity without any unit says nothing of the dimension; nor does one in a unit
        # UCUM cannot read, a lab's own spelling not yet in unit_aliases.csv: it can never
        # convert, so it rules no concept out, and the words alone must match strongly)
        quantities = self._readable(u)
        unread = not quantities and bool(self._unread(u))
        best: tuple[float, str, str] = (0.0, "", "")
        for concept in self.profiles:
            if not self._in_family(concept, u.rtype):
                continue
            known = self.specimens[concept]
            if known and shown.specimens - known:
                continue  # a stool or urine hemoglobin is not a blood one
            score, first = self._words(concept, shown, family == "labs")
            if score < (STRONG if family == "vaccines" or unread else 0.5):
                continue  # a unit or values shaped alike are no evidence by themselves
            why = [first]
            unit = self.term.canonical_unit(concept) or ""
            if titer and unit == "{titer}":
                score += 0.5
                why.append("titer-like values")
            elif quantities and unit and not unit.startswith("{"):
                if all(self.term.convert(q, concept) is None for q in quantities):
                    continue  # fL is no platelet count, % no hemoglobin
                score += 0.3
                why.append(f"unit converts to {unit}")
            if score > best[0]:
                best = (score, concept, ", ".join(why))
        if best[1] and (units := self.unread_units(u, best[1])):
            best = (best[0], best[1], f"{best[2]}, {_alias_hint(units, best[1], self.term)}")
        return best[1], best[2]

    def unread_units(self, u: Item, concept: str) -> list[str]:
        """The units of the item's values UCUM cannot read, even through unit_aliases.csv, when
        `concept` compares numbers (a canonical unit that is no annotation) and no value is in
        a unit UCUM reads: once the code is mapped to it, every value would be "not
        convertible" until those units are added to unit_aliases.csv."""
        unit = self.term.canonical_unit(concept) or ""
        if not unit or unit.startswith("{") or self._readable(u):
            return []
        return self._unread(u)

    def _readable(self, u: Item) -> list[Quantity]:
        """The item's first quantities with a unit UCUM reads (alias table included)."""
        return [
            q
            for q in u.quantities[:3]
            if (q.unit.strip() or q.code.strip()) and self.term.unit_readable(q)
        ]

    def _unread(self, u: Item) -> list[str]:
        """The units, as written, of the item's first quantities UCUM cannot read."""
        found = (
            (q.unit.strip() or q.code.strip())
            for q in u.quantities[:3]
            if (q.unit.strip() or q.code.strip()) and not self.term.unit_readable(q)
        )
        return sorted(set(found))


def _alias_hint(units: list[str], concept: str, term: Terminology) -> str:
    """What to do about units UCUM cannot read (docs/mappings-howto.md section 3)."""
    named = ", ".join(f"'{x}'" for x in units)
    one = len(units) == 1
    return (
        f"UCUM cannot read unit{'' if one else 's'} {named}: add {'it' if one else 'them'} to"
        f" unit_aliases.csv as the UCUM unit {'it means' if one else 'they mean'}"
        f" ({term.canonical_unit(concept)}, or one that converts to it)"
    )


def _family(rtype: str) -> str:
    """The concept file an item's resource type is mapped in ("labs" for an Observation)."""
    return "medications" if rtype.startswith("Medication") else FAMILY.get(rtype, "labs")
