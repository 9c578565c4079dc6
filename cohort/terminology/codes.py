"""Code systems, code normalisation and the concept index (codes and names -> concepts)."""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from cohort.codesystems import system_key, url_parts
from cohort.model import Code
from cohort.terminology.mappings import MappingRow

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
CVX = "http://hl7.org/fhir/sid/cvx"
ATC = "http://www.whocc.no/atc"
TEXT = "text"
UCUM = "http://unitsofmeasure.org"  # Quantity.code is a UCUM unit only under this system
_DOTLESS = {ICD10CM, ICD10}
_UPPER = {ICD10CM, ICD10, ICD10PCS, ATC}


class Systems:
    """Canonicalises code-system URIs (aliases, OIDs, URL variants)."""

    def __init__(self, aliases: Iterable[tuple[str, str]]) -> None:
        self._exact: dict[str, str] = {}
        self._globs: list[tuple[str, str]] = []
        for canonical, alias in aliases:
            self.add(canonical, alias)

    def add(self, canonical: str, alias: str) -> None:
        if "*" in alias:
            self._globs.append((system_key(alias), canonical))
        else:
            self._exact.setdefault(system_key(alias), canonical)
            self._exact.setdefault(system_key(canonical), canonical)

    def canonical(self, system: str) -> str:
        key = system_key(system)
        found = self._exact.get(key)
        if found is not None:
            return found
        for pattern, canonical in self._globs:
            if fnmatch.fnmatchcase(key, pattern):
                return canonical
        s = system.strip().rstrip("/")
        parts = url_parts(s)
        if parts is not None and parts.scheme and parts.netloc and parts.netloc in s:
            return f"{parts.scheme.lower()}://{parts.netloc.lower()}{s.split(parts.netloc, 1)[1]}"
        return s


def norm_code(system: str, code: str) -> str:
    """Comparable form of a code in a canonical system (ICD without dot, CVX without zeros)."""
    c = code.strip()
    if system in _UPPER:
        c = c.upper()
    if system in _DOTLESS:
        c = c.replace(".", "")
    elif system == CVX:
        c = c.lstrip("0") or ("0" if c else "")
    return c


def dotted(system: str, normed: str) -> str:
    """ICD-10(-CM) code with its dot after the category (`M3214` -> `M32.14`)."""
    if system in _DOTLESS and len(normed) > 3:
        return normed[:3] + "." + normed[3:]
    return normed


def spellings(system: str, code: str) -> list[str]:
    """Spellings a server may hold: ICD with and without dot, CVX with and without zero."""
    normed = norm_code(system, code)
    forms = [code.strip(), normed]
    if system == ICD10CM:
        forms.append(dotted(system, normed))
    return list(dict.fromkeys(f for f in forms if f))


def name_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex matching any of the names as whole words."""
    alts = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
    if not alts:
        return None
    body = "|".join(re.escape(a) for a in alts)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Hit:
    """What a matching row contributes: a concept (or its removal) and an ingredient."""

    concept: str
    exclude: bool
    ingredient: str = ""


@dataclass
class _NameGroup:
    hit: Hit
    names: list[str] = field(default_factory=list)
    pattern: re.Pattern[str] | None = None


class ConceptIndex:
    """Dict-backed lookup of the concept rows for one set of canonical systems."""

    def __init__(self, rows: Iterable[MappingRow], systems: Systems) -> None:
        self.exact: dict[tuple[str, str], list[Hit]] = defaultdict(list)
        self.prefix: dict[tuple[str, str], list[Hit]] = defaultdict(list)
        self.ranges: dict[str, list[tuple[str, str, Hit]]] = defaultdict(list)
        self.globs: dict[str, list[tuple[str, Hit]]] = defaultdict(list)
        names: dict[Hit, _NameGroup] = {}
        self.max_prefix = 0
        for row in rows:
            hit = Hit(row.concept, row.exclude, row.ingredient)
            system = systems.canonical(row.system)
            if system == TEXT:
                names.setdefault(hit, _NameGroup(hit)).names.append(row.code)
                continue
            if row.match == "exact":
                self.exact[(system, norm_code(system, row.code))].append(hit)
            elif row.match == "prefix":
                key = norm_code(system, row.code)
                self.prefix[(system, key)].append(hit)
                self.max_prefix = max(self.max_prefix, len(key))
            elif row.match == "range":
                lo, hi = row.code.split("-", 1)
                self.ranges[system].append((norm_code(system, lo), norm_code(system, hi), hit))
            else:
                self.globs[system].append((row.code.strip().upper(), hit))
        for group in names.values():
            group.pattern = name_pattern(group.names)
        self.names = list(names.values())

    def code_hits(self, system: str, code: str) -> list[Hit]:
        """Rows matching one coding (system already canonical)."""
        key = norm_code(system, code)
        if not key:
            return []
        hits = list(self.exact.get((system, key), ()))
        if self.prefix:
            for n in range(1, min(len(key), self.max_prefix) + 1):
                hits.extend(self.prefix.get((system, key[:n]), ()))
        for lo, hi, hit in self.ranges.get(system, ()):
            if len(key) >= len(lo) and lo <= key[: len(lo)] <= hi:
                hits.append(hit)
        if system in self.globs:
            shown = dotted(system, key).upper()
            hits.extend(h for pat, h in self.globs[system] if fnmatch.fnmatchcase(shown, pat))
        return hits

    def text_hits(self, text: str) -> list[Hit]:
        """Rows whose name occurs (whole word, any case) in the text."""
        if not text.strip():
            return []
        return [g.hit for g in self.names if g.pattern is not None and g.pattern.search(text)]

    def hits(
        self, codes: Iterable[Code], text: str, systems: Systems
    ) -> tuple[list[Hit], list[Hit]]:
        """(hits from codes, hits from names in `text` and the codings' displays)."""
        found: list[Hit] = []
        texts = [text]
        for c in codes:
            found.extend(self.code_hits(systems.canonical(c.system), c.code))
            if c.display:
                texts.append(c.display)
        return found, self.text_hits(" | ".join(t for t in texts if t))


def resolve(hits: Iterable[Hit]) -> tuple[set[str], set[str]]:
    """(concepts, ingredients) after exclusions: an exclude row removes its concept."""
    included: set[str] = set()
    excluded: set[str] = set()
    ingredients: dict[str, set[str]] = defaultdict(set)
    for h in hits:
        if h.exclude:
            excluded.add(h.concept)
        else:
            included.add(h.concept)
            if h.ingredient:
                ingredients[h.concept].add(h.ingredient)
    concepts = included - excluded
    ings = {i for c in concepts for i in ingredients.get(c, ())}
    return concepts, ings
