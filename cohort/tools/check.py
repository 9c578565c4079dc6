"""`cohort mappings check`: validate every mapping and criteria file, naming file, line and key."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.criteria.trial import load_trial
from cohort.errors import MappingError
from cohort.extract import ReadingRules
from cohort.terminology import Terminology
from cohort.terminology.codes import TEXT, Systems, norm_code, system_key
from cohort.terminology.mappings import (
    CONCEPT_COLUMNS,
    MappingRow,
    concept_row,
    display_path,
    parse_number,
    read_csv,
    version_of,
)
from cohort.terminology.units import parse_ucum
from cohort.tools.common import ICD10CM, Findings, code_problem, concept_refs


@dataclass
class CheckReport:
    """Outcome of a check: located errors and warnings, and the mapping version checked."""

    findings: Findings
    version: str
    human_version: str
    rows: int = 0
    unverified: int = 0
    trials: list[str] = field(default_factory=list)


class _SystemCheck:
    """Known systems from systems.csv; suggests the canonical URI for a misspelt one."""

    def __init__(self, root: Path, f: Findings) -> None:
        pairs: list[tuple[str, str]] = []
        for rec in _records(root, root / "systems.csv", ("canonical", "alias"), f):
            if not rec.get("canonical") or not rec.get("alias"):
                f.error(
                    rec.where, f"column '{'alias' if rec.get('canonical') else 'canonical'}': empty"
                )
                continue
            pairs.append((rec.get("canonical"), rec.get("alias")))
        self.systems = Systems(pairs)
        self.canonicals = {c for c, _ in pairs}
        self.keys = {system_key(a): c for c, a in pairs if "*" not in a}
        self.keys.update({system_key(c): c for c in self.canonicals})

    def check(self, where: str, column: str, system: str, verified: str, f: Findings) -> str:
        """The canonical system (as best known); records an error or warning when unknown."""
        canonical = self.systems.canonical(system)
        if canonical in self.canonicals or system == TEXT:
            return canonical
        close = difflib.get_close_matches(system_key(system), list(self.keys), n=1, cutoff=0.8)
        if close:
            f.error(
                where,
                f"column '{column}': unknown code system '{system}' "
                f"(did you mean '{self.keys[close[0]]}'?)",
            )
            return self.keys[close[0]]
        if verified != "local":
            f.warn(
                where,
                f"column '{column}': code system '{system}' is not in systems.csv "
                "(add it there, or mark a site's own rows verified=local)",
            )
        return canonical


def _records(root: Path, path: Path, required: tuple[str, ...], f: Findings) -> Iterator[Any]:
    try:
        yield from read_csv(root, path, required)
    except MappingError as exc:
        f.errors.append(str(exc))


def _concept_rows(root: Path, sc: _SystemCheck, f: Findings) -> list[MappingRow]:
    rows: list[MappingRow] = []
    for path in sorted((root / "concepts").glob("*.csv")):
        medication = path.stem == "medications"
        required = CONCEPT_COLUMNS + (("ingredient",) if medication else ())
        shown = display_path(root, path)
        unverified: list[str] = []
        for rec in _records(root, path, required, f):
            try:
                row = concept_row(rec, shown, medication=medication)
            except MappingError as exc:
                msg = str(exc)
                if "unknown match kind" in msg:
                    hint = difflib.get_close_matches(
                        rec.get("match"), ["exact", "prefix", "range", "glob"], n=1
                    )
                    msg += f" (did you mean '{hint[0]}'?)" if hint else ""
                f.errors.append(msg)
                continue
            rows.append(row)
            if row.verified == "N":
                unverified.append(str(row.line))
            if row.system == TEXT:
                continue
            system = sc.check(rec.where, "system", row.system, row.verified, f)
            _check_code(rec.where, system, row, f)
        if unverified:
            f.warn(
                shown,
                f"column 'verified': {len(unverified)} unverified row(s) (verified=N, "
                f"ignored unless use_unverified) on line(s) {', '.join(unverified)}",
            )
    return rows


def _check_code(where: str, system: str, row: MappingRow, f: Findings) -> None:
    codes: list[str] = []
    if row.match == "exact":
        codes = [row.code]
    elif row.match in ("prefix", "range") and system == ICD10CM:
        codes = row.code.split("-") if row.match == "range" else [row.code]
    for code in codes:
        problem = code_problem(system, code)
        if problem:
            f.error(where, f"column 'code': {problem}")


def _conflicts(rows: list[MappingRow], sc: _SystemCheck, f: Findings) -> None:
    """Same system+code mapped (not excluded) to different concepts of one resource family."""
    groups: dict[tuple[str, str, str], list[MappingRow]] = defaultdict(list)
    for r in rows:
        if r.system == TEXT or r.match != "exact" or r.verified == "N":
            continue
        system = sc.systems.canonical(r.system)
        groups[(Path(r.file).stem, system, norm_code(system, r.code))].append(r)
    for (_, system, code), grp in sorted(groups.items()):
        excluded = {r.concept for r in grp if r.exclude}
        included = {r.concept: r for r in grp if not r.exclude}
        if excluded or len(included) < 2 or _intentional(set(included)):
            continue
        where = "; ".join(f"{r.file}:{r.line} ({r.concept})" for r in included.values())
        first = next(iter(included.values()))
        f.warn(
            f"{first.file}:{first.line}",
            f"column 'code': {system}|{code} is mapped to "
            f"{len(included)} concepts: {where} (intended? add exclude=Y to one of them)",
        )


def _intentional(concepts: set[str]) -> bool:
    """An exception/history/uncertain pair (`malignancy` + `malignancy_exception`) is by design."""
    names = sorted(concepts)
    return len(names) == 2 and names[1].startswith(names[0] + "_")


def _check_trial(path: Path, rows: list[MappingRow], f: Findings) -> None:
    shown = str(path)
    try:
        load_trial(path)  # structure: kinds, keys, types (the first problem, located)
    except MappingError as exc:
        f.errors.append(str(exc))
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError):
        return  # already reported by load_trial
    lines = text.splitlines()
    known = {r.concept for r in rows}
    active = {r.concept for r in rows if r.verified != "N"}

    def line_of(name: str, start: int) -> int:
        pat = re.compile(r"""["']""" + re.escape(name) + r"""["']""")
        return next((i + 1 for i in range(start, len(lines)) if pat.search(lines[i])), start + 1)

    def report(where_line: int, label: str, key: str, name: str) -> None:
        where = f"{shown}:{where_line}"
        if name not in known:
            hint = difflib.get_close_matches(name, sorted(known), n=1)
            f.error(
                where,
                f"{label}key '{key}': unknown concept '{name}'"
                + (f" (did you mean '{hint[0]}'?)" if hint else ""),
            )
        elif name not in active:
            f.warn(
                where,
                f"{label}key '{key}': concept '{name}' is empty "
                "(only unverified rows; a run needs use_unverified)",
            )

    head = data.get("trial") if isinstance(data.get("trial"), dict) else {}
    trial_line = next((i for i, ln in enumerate(lines) if ln.strip() == "[trial]"), 0)
    for name in head.get("screen_concepts", []) if isinstance(head, dict) else []:
        report(line_of(str(name), trial_line), "[trial] ", "screen_concepts", str(name))
    for crit in data.get("criteria", []) if isinstance(data.get("criteria"), list) else []:
        if not isinstance(crit, dict):
            continue
        cid = str(crit.get("id", ""))
        id_re = re.compile(r"""^\s*id\s*=\s*["']""" + re.escape(cid) + r"""["']""")
        start = next((i for i, ln in enumerate(lines) if id_re.match(ln)), 0)
        for key, name in concept_refs(crit):
            report(line_of(name, start), f"criterion '{cid}': ", key, name)


def _check_units(root: Path, known: set[str], f: Findings) -> None:
    for rec in _records(root, root / "units.csv", ("concept", "unit", "molar_mass_g_per_mol"), f):
        if rec.get("concept") not in known:
            f.warn(rec.where, f"column 'concept': no concept rows for '{rec.get('concept')}'")
        if not rec.get("unit") or parse_ucum(rec.get("unit")) is None:
            f.error(rec.where, f"column 'unit': UCUM cannot parse '{rec.get('unit')}'")
        try:
            parse_number(rec, "molar_mass_g_per_mol")
        except MappingError as exc:
            f.errors.append(str(exc))
    for rec in _records(root, root / "unit_aliases.csv", ("alias", "ucum"), f):
        if not rec.get("ucum") or parse_ucum(rec.get("ucum")) is None:
            f.error(rec.where, f"column 'ucum': UCUM cannot parse '{rec.get('ucum')}'")


def _check_values_products(root: Path, sc: _SystemCheck, f: Findings) -> None:
    for rec in _records(root, root / "values.csv", ("kind", "system", "code", "result"), f):
        if rec.get("kind") in ("code", "interpretation") and rec.get("system"):
            system = sc.check(rec.where, "system", rec.get("system"), "Y", f)
            problem = code_problem(system, rec.get("code"))
            if problem:
                f.error(rec.where, f"column 'code': {problem}")
    ingredients = {
        r.get("ingredient").lower()
        for r in _records(root, root / "medications/ingredients.csv", ("ingredient",), f)
    }
    cols = ("rxcui", "ingredient", "display", "systemic")
    for rec in _records(root, root / "medications/products.csv", cols, f):
        problem = code_problem("http://www.nlm.nih.gov/research/umls/rxnorm", rec.get("rxcui"))
        if problem:
            f.error(rec.where, f"column 'rxcui': {problem}")
        if rec.get("ingredient").lower() not in ingredients:
            f.warn(
                rec.where,
                f"column 'ingredient': '{rec.get('ingredient')}' is not in "
                "medications/ingredients.csv",
            )


def check_mappings(root: Path, trial: str | None = None) -> CheckReport:
    """Every problem in the mappings folder (and its trial files), not just the first."""
    f = Findings()
    if not root.is_dir():
        raise MappingError(f"{root}: mappings folder not found")
    version, human = version_of(root)
    sc = _SystemCheck(root, f)
    rows = _concept_rows(root, sc, f)
    _conflicts(rows, sc, f)
    known = {r.concept for r in rows}
    _check_units(root, known, f)
    _check_values_products(root, sc, f)
    try:
        ReadingRules.load(root / "rules.toml")
    except MappingError as exc:
        f.errors.append(str(exc))
    trials = sorted((root / "trials").glob("*.toml"))
    if trial:
        trials = [root / "trials" / f"{trial}.toml"]
        if not trials[0].is_file():
            f.error(str(trials[0]), "criteria file not found")
            trials = []
    for path in trials:
        _check_trial(path, rows, f)
    if not f.errors:
        try:  # anything the loader rejects that the checks above did not name
            Terminology.load(root)
        except MappingError as exc:
            f.errors.append(str(exc))
    return CheckReport(
        findings=f,
        version=version,
        human_version=human,
        rows=len(rows),
        unverified=sum(r.verified == "N" for r in rows),
        trials=[p.stem for p in trials],
    )
