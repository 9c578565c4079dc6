"""`cohort mappings import-valueset`: add a FHIR ValueSet's codes to a concept CSV."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.criteria.trial import concept_refs
from cohort.errors import MappingError, shown_path
from cohort.lockfiles import data_files
from cohort.safetext import printable
from cohort.terminology.codes import Systems, norm_code
from cohort.terminology.mappings import load_concept_rows, read_csv
from cohort.terminology.rows import code_problem
from cohort.tools.csvedit import append_rows, header_of, key_problem


@dataclass
class ImportResult:
    path: Path
    added: int = 0
    skipped: list[str] = field(default_factory=list)


def _contains(items: Any) -> Iterator[dict[str, Any]]:
    """`expansion.contains`, depth first (nested `contains` included, abstract ones skipped)."""
    for item in items or ():
        if not isinstance(item, dict):
            continue
        if item.get("code") and item.get("system") and not item.get("abstract"):
            yield item
        yield from _contains(item.get("contains"))


def valueset_codes(vs: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(system, code, display) from the expansion, else from `compose.include[].concept`."""
    if vs.get("resourceType") != "ValueSet":
        raise MappingError("not a FHIR ValueSet (resourceType is not 'ValueSet')")
    expansion = vs.get("expansion") or {}
    found = [
        (str(c["system"]), str(c["code"]), str(c.get("display", "")))
        for c in _contains(expansion.get("contains"))
    ]
    if found:
        return found
    for inc in (vs.get("compose") or {}).get("include") or ():
        for c in inc.get("concept") or () if isinstance(inc, dict) else ():
            if isinstance(c, dict) and c.get("code") and inc.get("system"):
                found.append((str(inc["system"]), str(c["code"]), str(c.get("display", ""))))
    if not found:
        raise MappingError("the ValueSet has no expansion.contains or compose.include.concept")
    return found


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
            raise MappingError(f"{path}: concept file not found")
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
    """Append the ValueSet's codes as `exact` rows of `concept`; existing codes are skipped.
    A `concept` no row or criteria file names is refused unless `new_concept`: a typo's rows
    would reach no criterion, and the import would look done."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", concept):
        raise MappingError(f"--concept '{concept}': use a-z, 0-9 and _ (e.g. ana_titer)")
    try:
        vs = json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise MappingError(f"{file}: cannot read the ValueSet ({type(exc).__name__})") from exc
    if not isinstance(vs, dict):
        raise MappingError(f"{file}: not a FHIR ValueSet")
    try:
        codes = valueset_codes(vs)
    except MappingError as exc:
        raise MappingError(f"{file}: {exc}") from None
    if not new_concept and concept not in (known := known_concepts(root)):
        raise _unknown(concept, root, known)
    path = _target(root, concept, target)
    if "ingredient" in header_of(path) and not ingredient:
        raise MappingError(f"{path}: column 'ingredient': give --ingredient for this file")
    systems = Systems(
        (r.get("canonical"), r.get("alias"))
        for r in read_csv(root, root / "systems.csv", ("canonical", "alias"))
    )
    have = {
        (r.concept, systems.canonical(r.system), norm_code(systems.canonical(r.system), r.code))
        for r in load_concept_rows(root)
    }
    res = ImportResult(path)
    source = source_of(vs)
    new: list[dict[str, str]] = []
    for system, code, display in codes:
        problem = key_problem("system", system) or key_problem("code", code)
        if problem:
            res.skipped.append(f"{printable(f'{system}|{code}')}: {problem}")
            continue
        canonical = systems.canonical(system)
        key = (concept, canonical, norm_code(canonical, code))
        if key in have:
            res.skipped.append(f"{system}|{code}: already mapped to '{concept}'")
            continue
        problem = code_problem(canonical, code)
        if problem:
            res.skipped.append(f"{system}|{code}: {problem}")
            continue
        have.add(key)
        new.append(
            {
                "concept": concept,
                "ingredient": ingredient.lower(),
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
