"""`cohort mappings import-valueset`: add a FHIR ValueSet's codes to a concept CSV."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.criteria.trial import concept_refs
from cohort.errors import MappingError, shown_path
from cohort.lockfiles import data_files
from cohort.safetext import printable
from cohort.terminology.codes import ConceptIndex, Systems, norm_code
from cohort.terminology.mappings import MappingRow, load_concept_rows, read_csv
from cohort.terminology.rows import code_problem
from cohort.tools.common import Findings
from cohort.tools.csvedit import append_rows, header_of, key_problem
from cohort.tools.filechecks import check_labels
from cohort.tools.rowchecks import concept_typo, ingredient_typo, trial_names
from cohort.tools.vsread import load_valueset, valueset_codes

_ING = ("ingredient",)
_HEADER = "concept,system,code,match,exclude,display,source,verified"


@dataclass
class ImportResult:
    path: Path
    added: int = 0
    skipped: list[str] = field(default_factory=list)
    # codes the concept maps already (apart: a second import of a large set lists thousands)
    already: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def source_of(vs: dict[str, Any]) -> str:
    """`ValueSet <url>|<version> (<title>)`, what the rows' `source` column keeps."""
    url = str(vs.get("url") or vs.get("id") or "?")
    version = f"|{vs['version']}" if vs.get("version") else ""
    title = vs.get("title") or vs.get("name") or ""
    expanded = " expansion" if (vs.get("expansion") or {}).get("contains") else ""
    return f"ValueSet {url}{version}{expanded}" + (f" ({title})" if title else "")


def _target(root: Path, concept: str, target: Path | None) -> Path:
    if target is not None:
        inside = root / target
        path = target if target.is_absolute() or not inside.is_file() else inside
        if not path.is_file():
            raise MappingError(
                f"{path}: concept file not found: leave out --file (the concept's file, else "
                f"concepts/local.csv), or start it with the header line {_HEADER}"
            )
        # a file the folder does not load as concept rows (units.csv has a `concept` column
        # too) would take rows that are broken there, or that nothing reads
        if path.suffix != ".csv" or path.resolve().parent != (root / "concepts").resolve():
            raise MappingError(
                f"--file {path}: not a concept file of {shown_path(root)} (a .csv in "
                "concepts/): nothing was written"
            )
        return path
    for row in load_concept_rows(root):
        if row.concept == concept:
            return root / "concepts" / Path(row.file).name
    return root / "concepts" / "local.csv"


def known_concepts(root: Path) -> set[str]:
    """The concepts of the concept rows and those the criteria files name (a criteria file that
    does not read adds none: `mappings check` reports it)."""
    known = {r.concept for r in load_concept_rows(root)}
    for path in data_files(root / "trials", "*.toml"):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            continue
        known |= {name for _, name in concept_refs(data)}
    return known


def _unknown(concept: str, root: Path, known: set[str]) -> MappingError:
    """A concept not `known` (to the rows or the criteria), and the ones it may be a typo of."""
    near = difflib.get_close_matches(concept, sorted(known), n=3)
    named = [f"'{n}'" for n in near]
    listed = " or ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    hint = f" (did you mean {listed}?)" if near else ""
    return MappingError(
        f"--concept '{concept}': no concept row or criteria file in {shown_path(root)} names "
        f"it{hint}; give --new-concept to start a concept of that name"
    )


def _refuse_typos(root: Path, concept: str, ingredient: str, rows: list[MappingRow]) -> None:
    """Refuse, as `check` would then report (rowchecks' own tests), a new concept a typo away
    from one a criteria file names (an error: `run` stops on its rows) and an ingredient a
    typo away from one `ingredients.csv` lists (its doses lose their prednisone factor and
    products)."""
    names = trial_names(data_files(root / "trials", "*.toml"))
    if names is not None and concept not in {r.concept for r in rows}:
        used, commented = names
        labelled = check_labels(root, None, Findings())
        near = None if concept in labelled | commented else concept_typo(concept, used)
        if near is not None:
            raise MappingError(
                f"--concept '{concept}' is a typo away from '{near}', which a criteria "
                f"file names: `check` and `run` stop on rows of '{concept}' until a criteria "
                "file names it (name it there first, or pick another name); nothing was written"
            )
    listed = root / "medications" / "ingredients.csv"
    if ingredient and listed.is_file():
        known = {(r.get("ingredient") or "").strip().lower() for r in read_csv(root, listed, _ING)}
        if (near := ingredient_typo(ingredient, known)) is not None:
            raise MappingError(
                f"--ingredient '{ingredient}' is not in medications/ingredients.csv (did you "
                f"mean '{near}'?): the rows' doses would have no prednisone equivalent; "
                "nothing was written"
            )


def _exact_rows(
    rows: list[MappingRow], systems: Systems
) -> dict[tuple[str, str], list[MappingRow]]:
    """The `exact` rows by (canonical system, code as compared): where a code is mapped."""
    out: dict[tuple[str, str], list[MappingRow]] = defaultdict(list)
    for r in rows:
        if r.match == "exact":
            system = systems.canonical(r.system)
            out[(system, norm_code(system, r.code))].append(r)
    return out


def import_valueset(
    file: Path,
    concept: str,
    root: Path,
    target: Path | None = None,
    *,
    ingredient: str = "",
    verified: bool = False,
    new_concept: bool = False,
) -> ImportResult:
    """Append the ValueSet's codes as `exact` rows of `concept`; codes the concept's rows map
    (an exact, prefix, range or glob row) or exclude are skipped, and a code mapped to another
    concept is added and named in a note. A `concept` no row or criteria file names is refused
    unless `new_concept`: a typo's rows would reach no criterion, and the import would look done."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", concept):
        raise MappingError(f"--concept '{concept}': use a-z, 0-9 and _ (e.g. ana_titer)")
    vs = load_valueset(file)
    systems = Systems(
        (r.get("canonical"), r.get("alias"))
        for r in read_csv(root, root / "systems.csv", ("canonical", "alias"))
    )

    def compared(system: str, code: str) -> tuple[str, str]:
        canonical = systems.canonical(system)
        return canonical, norm_code(canonical, code)

    listed = valueset_codes(vs, file, compared)
    if not new_concept and concept not in (known := known_concepts(root)):
        raise _unknown(concept, root, known)
    path = _target(root, concept, target)
    if "ingredient" in header_of(path) and not ingredient:
        raise MappingError(f"{path}: column 'ingredient': give --ingredient for this file")
    ingredient = ingredient.strip().lower()
    rows = load_concept_rows(root)
    _refuse_typos(root, concept, ingredient, rows)
    index = ConceptIndex(rows, systems)
    where = _exact_rows(rows, systems)
    res = ImportResult(path, skipped=list(listed.skipped))
    source = source_of(vs)
    added: set[tuple[str, str]] = set()
    new: list[dict[str, str]] = []
    for system, code, display in listed.codes:
        shown = printable(f"{system}|{code}")
        problem = key_problem("system", system) or key_problem("code", code)
        if problem:
            res.skipped.append(f"{shown}: {problem}")
            continue
        canonical = systems.canonical(system)
        key = (canonical, norm_code(canonical, code))
        hits = index.code_hits(canonical, code)
        if any(h.concept == concept and h.exclude for h in hits):
            res.skipped.append(f"{shown}: excluded from '{concept}' by an exclude=Y row")
            continue
        if key in added or any(h.concept == concept for h in hits):
            res.already.append(f"{shown}: already mapped to '{concept}'")
            continue
        problem = code_problem(canonical, code)
        if problem:
            res.skipped.append(f"{shown}: {problem}")
            continue
        added.add(key)
        for other in sorted({h.concept for h in hits if not h.exclude} - {concept}):
            at = next((f" ({r.file}:{r.line})" for r in where[key] if r.concept == other), "")
            res.notes.append(
                f"{shown}: also mapped to '{other}'{at}: added; delete the new row if the code "
                f"is not one of '{concept}'"
            )
        new.append(
            {
                "concept": concept,
                "ingredient": ingredient,
                "system": canonical,
                "code": code,
                "match": "exact",
                "display": display,
                "source": source,
                "verified": "Y" if verified else "N",
            }
        )
    res.added = append_rows(path, new)
    return res
