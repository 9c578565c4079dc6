"""The `Terminology` facade: concepts, medications, units and values from `mappings/`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cohort.model import Code, ObsValue, Quantity
from cohort.terminology.codes import TEXT, UCUM, ConceptIndex, Systems, resolve, spellings
from cohort.terminology.labels import load_labels
from cohort.terminology.loading import (
    load_factors,
    load_products,
    load_units,
    load_values,
    raise_first,
)
from cohort.terminology.mappings import (
    REQUIRED,
    MappingRow,
    check_folder,
    load_concept_rows,
    read_csv,
    version_of,
)
from cohort.terminology.matched import RowLookup
from cohort.terminology.routes import load_routes
from cohort.terminology.rows import (
    OVERLAPS,
    RXNORM,
    KnownSystems,
    concept_problems,
    overlap_row,
    system_pair,
)
from cohort.terminology.values import Titer, parse_titer

MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "conditions": ("Condition",),
    "labs": ("Observation",),
    "medications": (*MEDICATION_TYPES, "Medication"),
    "vaccines": ("Immunization",),
    "procedures": ("Procedure",),
}


class Terminology:
    """Everything the pipeline asks about codes, names, units and result values."""

    version: str
    human_version: str

    def __init__(self, root: Path, use_unverified: bool = False) -> None:
        self.root = root
        self.use_unverified = use_unverified
        self.version, self.human_version = version_of(root)
        pairs = [
            system_pair(r) for r in read_csv(root, root / "systems.csv", REQUIRED["systems.csv"])
        ]
        self.systems = Systems(pairs)
        known = KnownSystems(pairs)  # systems.csv alone: before the rows' own systems join
        self._all_rows = load_concept_rows(root)
        for row in self._all_rows:  # every row, unverified ones too (as `mappings check`)
            raise_first(concept_problems(row, known))
        self._rows = [r for r in self._all_rows if use_unverified or r.verified != "N"]
        for row in self._rows:
            if row.system != TEXT:
                self.systems.add(row.system, row.system)
        self.index = ConceptIndex(self._rows, self.systems)
        self._groups: dict[str, set[str]] = defaultdict(set)
        for row in self._rows:
            if row.ingredient and not row.exclude:
                self._groups[row.ingredient].add(row.concept)
        self._factors = load_factors(root)
        # rxcui -> (ingredient, systemic), its RxNorm name (its strength), its `file:line`
        self._products, self._product_names, self._product_lines = load_products(root)
        self.units = load_units(root)
        self._qualitative = load_values(root, known, self.systems.canonical, use_unverified)
        if (root / OVERLAPS[0]).is_file():  # (only `mappings check` uses it; a run checks it)
            for rec in read_csv(root, root / OVERLAPS[0], OVERLAPS[1]):
                overlap_row(rec)
        self.labels = load_labels(root)
        self.routes = load_routes(root, known, self.systems.canonical, use_unverified)

    @classmethod
    def load(cls, mappings_dir: Path, use_unverified: bool = False) -> Terminology:
        check_folder(Path(mappings_dir))
        return cls(Path(mappings_dir), use_unverified)

    def check_units(self) -> None:
        """Raise the first unit of units.csv or unit_aliases.csv that UCUM cannot read (as
        `mappings check` reports it). Not part of loading: it needs the UCUM registry (~0.25 s
        to build), so a run calls it once the registry is built or about to be, before
        evaluation and before any output is written."""
        raise_first(self.units.problems())

    # -- codes and concepts ------------------------------------------------------------------
    def canonical_system(self, system: str) -> str:
        return self.systems.canonical(system)

    def _product_hits(self, codes: Iterable[Code]) -> tuple[set[str], set[str]]:
        """(systemic ingredients, non-systemic ingredients) named by RxNorm product codes."""
        systemic: set[str] = set()
        other: set[str] = set()
        for c in codes:
            if self.systems.canonical(c.system) != RXNORM:
                continue
            found = self._products.get(c.code.strip())
            if found is not None:
                (systemic if found[1] else other).add(found[0])
        return systemic, other

    def _match(self, codes: Iterable[Code], text: str) -> tuple[frozenset[str], frozenset[str]]:
        """Memoised per (codes, text): a population repeats a few thousand codings millions of
        times, and the name regexes cost ~200 us per call (bench/RESULTS.md)."""
        key = (tuple(codes), text)
        memo: dict[Any, tuple[frozenset[str], frozenset[str]]] = self.__dict__.setdefault(
            "_match_memo", {}
        )
        found = memo.get(key)
        if found is None:
            if len(memo) >= 200_000:  # bounded: free text can make every key unique
                memo.clear()
            concepts, ingredients = self._match_uncached(key[0], text)
            found = memo[key] = (frozenset(concepts), frozenset(ingredients))
        return found

    def _match_uncached(self, codes: Iterable[Code], text: str) -> tuple[set[str], set[str]]:
        codes = list(codes)
        code_hits, text_hits = self.index.hits(codes, text, self.systems)
        systemic, other = self._product_hits(codes)
        if other:
            # a topical/ophthalmic combination product: its ingredient names in the text or
            # display (e.g. "Ciprofloxacin / Dexamethasone") do not make a systemic exposure
            coded = {h.ingredient for h in code_hits if h.ingredient and not h.exclude}
            drop = other - systemic - coded
            text_hits = [h for h in text_hits if h.exclude or h.ingredient not in drop]
        concepts, ingredients = resolve([*code_hits, *text_hits])
        for ing in systemic:
            ingredients.add(ing)
            concepts |= self._groups.get(ing, set())
        return concepts, ingredients

    def product_names(self, codes: Iterable[Code]) -> list[str]:
        """The products.csv names (RxNorm SCD/SBD/pack names, e.g. "prednisone 20 MG Oral
        Tablet") of the RxNorm product codes among `codes`."""
        found = (
            self._product_names.get(c.code.strip(), "")
            for c in codes
            if self.systems.canonical(c.system) == RXNORM
        )
        return [name for name in found if name]

    def concepts_for(self, codes: Iterable[Code], text: str = "") -> frozenset[str]:
        """Every concept the codings (any system variant) or the names in `text` belong to."""
        return self._match(codes, text)[0]

    def medication_ingredients(self, codes: Iterable[Code], text: str = "") -> frozenset[str]:
        """Ingredients named by ingredient/product codes, ATC codes or generic/brand names."""
        return self._match(codes, text)[1]

    def matched_rows(self, concept: str, codes: Iterable[Code], text: str = "") -> list[str]:
        """`system|code (file:line)` of the rows through which the codings or names are of
        `concept` (`cohort explain`; built on the first call, a run never asks)."""
        lookup: RowLookup | None = self.__dict__.get("_row_lookup")
        if lookup is None:
            systemic = {
                rxcui: (ing, self._product_lines[rxcui])
                for rxcui, (ing, on) in self._products.items()
                if on
            }
            lookup = self._row_lookup = RowLookup(self._rows, self.systems, systemic, self._groups)
        return lookup.matched(concept, codes, text)

    def ingredient_groups(self, ingredient: str) -> frozenset[str]:
        return frozenset(self._groups.get(ingredient.strip().lower(), ()))

    def prednisone_factor(self, ingredient: str) -> float | None:
        return self._factors.get(ingredient.strip().lower())

    def label(self, concept: str) -> str:
        """What reasons call a concept: its labels.csv label, else its name."""
        return self.labels.get(concept, concept)

    def route_name(self, system: str, code: str) -> str:
        """The routes.csv display of a route code ("" if none): what a bare code is called."""
        return self.routes.name(system, code)

    # -- units and values --------------------------------------------------------------------
    def canonical_unit(self, concept: str) -> str | None:
        return self.units.canonical_unit(concept)

    def unit_concepts(self) -> set[str]:
        """The concepts units.csv gives a canonical unit."""
        return set(self.units.specs)

    def convert(self, q: Quantity, concept: str) -> float | None:
        # Memoised: pint costs ~180 us per conversion and lab values repeat (bench/RESULTS.md).
        memo: dict[Any, float | None] = self.__dict__.setdefault("_convert_memo", {})
        # (keyed by the fields: a tuple of strings and a float hashes and compares in C, the
        # Quantity itself through its generated __hash__ and __eq__)
        key = (q.value, q.unit, q.code, q.comparator, q.system, concept)
        if key in memo:
            return memo[key]
        if len(memo) >= 200_000:
            memo.clear()
        found = memo[key] = self.units.convert(self.ucum_only(q), concept)
        return found

    def outside(self, q: Quantity, concept: str) -> tuple[float, float | None, float | None] | None:
        """`q` converted, and the plausible range (low, high) it lies outside: why `convert`
        gave None (`Units.outside`); else None."""
        return self.units.outside(self.ucum_only(q), concept)

    def unit_readable(self, q: Quantity) -> bool:
        """Whether UCUM reads `q`'s unit, unit_aliases.csv included (`Units.readable`)."""
        return self.units.readable(self.ucum_only(q))

    def convert_to(self, q: Quantity, unit: str) -> float | None:
        """`q` in a UCUM unit that is no concept's (a dose in mg); None when not convertible."""
        return self.units.to(self.ucum_only(q), unit)

    def ucum_only(self, q: Quantity) -> Quantity:
        """`q` whose code is a UCUM unit: Quantity.code is one only when Quantity.system is UCUM
        (after canonicalising: its OID too) or absent. Under another system (a SNOMED unit code
        such as 258683005 kilogram) the code is dropped and the unit text is read instead."""
        if q.code and q.system and self.canonical_system(q.system) != UCUM:
            return Quantity(q.value, q.unit, "", q.comparator, q.system)
        return q

    def titer(self, v: ObsValue) -> Titer | None:
        if v.quantity is not None and v.quantity is not (q := self.ucum_only(v.quantity)):
            v = replace(v, quantity=q)
        return parse_titer(v)

    def qualitative_value(self, v: ObsValue) -> str | None:
        """What the value alone says (None: nothing), for a reader that must see where it and
        the interpretation disagree."""
        return self._qualitative.value(v)

    def qualitative_flag(self, interpretation: Sequence[Code]) -> str | None:
        """What the interpretation alone says (None: nothing)."""
        return self._qualitative.flag(interpretation)

    def qualitative_named(self, s: str) -> str | None:
        """The result named by result words inside a longer text ("<20 IU/mL detected")."""
        return self._qualitative.named(s)

    # -- search and inspection ---------------------------------------------------------------
    def search_tokens(
        self, concepts: Iterable[str], records: Mapping[str, set[str]] | None = None
    ) -> dict[str, list[str]]:
        """Resource type -> `system|code` tokens (exact rows, prefix expansions, products).
        A row of a file named for no records (local.csv) is searched as its concept's rows in
        other files are, else as the records the trial reads the concept as (`records`:
        `Trial.concept_records`; a site's code of a condition is a Condition), else as an
        Observation."""
        wanted = set(concepts)
        records = records or {}
        kinds: dict[str, set[str]] = defaultdict(set)
        for row in self._rows:
            kinds[row.concept].add(Path(row.file).stem)
        out: dict[str, list[str]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()

        def emit(stem: str, system: str, code: str) -> None:
            for rtype in FILE_TYPES.get(stem, ("Observation",)):
                if (rtype, f"{system}|{code}") not in seen:
                    seen.add((rtype, f"{system}|{code}"))
                    out[rtype].append(f"{system}|{code}")

        for row in self._rows:
            if row.concept not in wanted or row.exclude or row.system == TEXT:
                continue
            stem = Path(row.file).stem
            stems = [stem]
            if stem not in FILE_TYPES:  # local.csv: the file of the concept's other rows
                typed = sorted(k for k in kinds[row.concept] if k in FILE_TYPES)
                stems = typed[:1] or sorted(records.get(row.concept, ())) or stems
            system = self.systems.canonical(row.system)
            codes: list[str] = list(row.expand)
            if row.match in ("exact", "prefix"):
                codes.insert(0, row.code)
            for code in codes:
                for variant in spellings(system, code):
                    for each in stems:
                        emit(each, system, variant)
        for rxcui, (ing, systemic) in sorted(self._products.items()):
            if systemic and self._groups.get(ing, set()) & wanted:
                emit("medications", RXNORM, rxcui)
        return dict(out)

    def concept_names(self) -> set[str]:
        return {r.concept for r in self._rows}

    def ingredient_names(self) -> set[str]:
        """Every ingredient the mappings name (medications/ingredients.csv, concept rows):
        what a washout's reason calls a drug, never a record's text (report.nophi)."""
        return set(self._factors) | set(self._groups)

    def rows(self) -> list[MappingRow]:
        """Every concept row as loaded, unverified ones included (for `mappings check`)."""
        return list(self._all_rows)
