"""Load and validate a trial's criteria file (TOML); errors name the file, line and key.

`check_trial` finds every problem (what `cohort mappings check` lists); `load_trial` raises the
first of them (what stops `cohort run`): one set of rules, one message for both, at the line of
the key itself. The kinds, their parameters and the rules between them are in registry.py.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.criteria.base import Criterion
from cohort.criteria.ids import id_problem
from cohort.criteria.problems import rule_problems, table_problems
from cohort.criteria.quoted import quoted_hint
from cohort.criteria.reads import HEAD, Reader, readers, records_problem
from cohort.criteria.registry import (
    CHECK_KEYS,
    CONCEPT_KEYS,
    CONDITION_CHECK,
    KINDS,
    Table,
    numeric_concepts,
    tables_of,
)
from cohort.criteria.titles import hint_problems, title_problems
from cohort.criteria.trial import Trial, concept_refs
from cohort.errors import MappingError, did_you_mean, shown_path
from cohort.report.columns import FIXED_COLUMNS
from cohort.tomllines import TomlLines
from cohort.tomlsyntax import loads
from cohort.utf8 import utf8_text

# keys every criterion may have besides its kind's parameters, and their types
_META: dict[str, type] = {
    "id": str,
    "type": str,
    "kind": str,
    "title": str,
    "missing_hint": str,
    "manual_when_unknown": bool,
}
_HEAD: dict[str, type] = {"id": str, "title": str, "screen_concepts": list, "manual": list}
_TOP = ("trial", "criteria")
Files = Mapping[str, Collection[str]]  # concept -> the concept files of its rows


@dataclass
class TrialCheck:
    """Every problem of a criteria file, in file order, and the trial when there is none."""

    trial: Trial | None
    errors: list[MappingError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Problems:
    def __init__(self, where: TomlLines) -> None:
        self.where = where
        self.found: list[tuple[int, MappingError]] = []
        self.warnings: list[tuple[int, str]] = []

    def criterion(self, index: int, cid: str, key: str, msg: str, warn: bool = False) -> None:
        line = self.where.key_line(index, cid, key)
        name = f"'{cid}'" if cid else f"#{index + 1}"
        text = f"{self.where.shown}:{line}: criterion {name}: key '{key}': {msg}"
        if warn:
            self.warnings.append((line, text))
        else:
            self.found.append((line, MappingError(text)))

    def head(self, key: str, msg: str, warn: bool = False) -> None:
        line = self.where.head_line(key)
        text = f"{self.where.shown}:{line}: [trial] key '{key}': {msg}"
        if warn:
            self.warnings.append((line, text))
        else:
            self.found.append((line, MappingError(text)))

    def file(self, line: int, msg: str) -> None:
        at = f":{line}" if line else ""
        self.found.append((line, MappingError(f"{self.where.shown}{at}: {msg}")))


def _hint(key: str, known: Iterable[str]) -> str:
    hint = did_you_mean(key, known)
    return f" ({hint})" if hint else ""


def _type_problem(key: str, value: Any, want: Any) -> str | None:
    wants = want if isinstance(want, tuple) else (want,)
    ok = isinstance(value, wants) and not (isinstance(value, bool) and bool not in wants)
    if ok and isinstance(value, float) and not math.isfinite(value):
        # TOML writes nan and inf: every comparison with nan is false (a count of 20 passed
        # `fail_below = nan`), and inf or -inf fails or passes every result
        return f"expected a finite number, got {value}"
    if ok:
        if list in wants and key.rsplit(".", 1)[-1] in CONCEPT_KEYS:
            if not all(isinstance(v, str) for v in value):
                return "expected a list of concept names"
            if not value:
                return "empty list: name at least one concept"
        return None
    expected = _tname(wants)
    if isinstance(value, str):
        how = quoted_hint(key, value, expected)
        return f"expected {expected}, got the text '{value}'" + (f" ({how})" if how else "")
    if isinstance(value, bool):
        return f"expected {expected}, got {str(value).lower()}"
    if isinstance(value, float) and int in wants:
        return f"expected {expected}, got {value:g}"
    return f"expected {expected}, got {_tname((type(value),))}"


def _tname(wants: tuple[type, ...]) -> str:
    if float in wants:
        return "a number"
    return {
        list: "a list",
        dict: "a table",
        int: "a whole number",
        bool: "true or false",
        str: "a text in quotes",
    }.get(wants[0], wants[0].__name__)


def _check_criterion(
    p: _Problems, index: int, raw: Any, seen: dict[str, int]
) -> tuple[str, dict[str, Any]] | None:
    """Report a criterion's problems; its id and parameters when it has none."""
    if not isinstance(raw, dict):
        p.file(p.where.key_line(index, "", "id"), f"criterion #{index + 1} is not a table")
        return None
    before = len(p.found)
    cid: str = raw["id"] if isinstance(raw.get("id"), str) else ""
    if not cid:
        p.criterion(index, "", "id", "missing: each criterion needs an id (its column name)")
    elif cid in seen:
        line = p.where.key_line(seen[cid], cid, "id")
        p.criterion(index, cid, "id", f"duplicated: criterion '{cid}' is also on line {line}")
    else:
        seen[cid] = index
    if cid and (problem := id_problem(cid)):
        p.criterion(index, cid, "id", problem)
    if cid in FIXED_COLUMNS:
        p.criterion(
            index,
            cid,
            "id",
            f"'{cid}' is already a column of candidates.csv (its header would name it twice): "
            "choose another id",
        )
    for key, want in _META.items():
        if key in raw and key != "id":
            problem = _type_problem(key, raw[key], want)
            if problem:
                p.criterion(index, cid, key, problem)
    kind = raw.get("kind")
    if kind not in KINDS:
        what = f"unknown kind '{kind}'" if kind is not None else "missing"
        hint = _hint(str(kind), KINDS) if kind is not None else ""
        p.criterion(index, cid, "kind", what + (hint or f"; one of {', '.join(KINDS)}"))
        return None
    if raw.get("type") not in ("inclusion", "exclusion"):
        what = "missing: it" if "type" not in raw else f"'{raw['type']}':"
        p.criterion(index, cid, "type", f"{what} must be 'inclusion' or 'exclusion'")
    spec = KINDS[kind]
    params = {k: v for k, v in raw.items() if k not in _META}
    for key in spec.required:
        if key not in params:
            p.criterion(index, cid, key, f"required by kind '{kind}'")
    allowed = {**spec.required, **spec.optional}
    for key, value in params.items():
        if key not in allowed:
            hint = _hint(key, [*allowed, *_META])
            p.criterion(index, cid, key, f"not a parameter of kind '{kind}'{hint}")
            continue
        problem = _type_problem(key, value, allowed[key])
        if problem:
            p.criterion(index, cid, key, problem)
    for key, table, entry in tables_of(kind, params):
        _check_table(p, index, cid, key, table, entry)
    if len(p.found) == before:  # names and types right: the rules between parameters
        for key, msg in rule_problems(kind, params):
            p.criterion(index, cid, key, msg)
    return (cid, params) if len(p.found) == before else None


def _check_table(p: _Problems, index: int, cid: str, key: str, table: Table, entry: Any) -> None:
    if not isinstance(entry, dict):
        p.criterion(index, cid, key, "expected a table: { key = value, ... }")
        return
    if key.startswith("checks[") and ("condition" in entry) == ("lab" in entry):
        p.criterion(index, cid, key, "needs exactly one of 'condition' or 'lab'")
        return
    allowed = table.keys
    for k, v in entry.items():
        if k not in allowed:
            if k in CHECK_KEYS:
                cond = table is CONDITION_CHECK
                other, this = ("lab", "condition") if cond else ("condition", "lab")
                msg = f"only a {other} check takes it (a {this} check would ignore it)"
            else:
                msg = "unknown key" + _hint(k, allowed)
            p.criterion(index, cid, f"{key}.{k}", msg)
            continue
        problem = _type_problem(f"{key}.{k}", v, allowed[k])
        if problem:
            p.criterion(index, cid, f"{key}.{k}", problem)
    for k, msg in table_problems(table, entry, key):
        p.criterion(index, cid, k, msg)


def _check_concepts(
    p: _Problems,
    index: int,
    cid: str,
    params: Mapping[str, Any],
    known: set[str],
    active: set[str] | None,
    units: set[str] | None,
    kind: str,
    files: Files | None,
) -> None:
    _check_names(p, index, cid, params, known, active, kind, files)
    for key, name in numeric_concepts(kind, params):
        if units is not None and name in known and name not in units:
            p.criterion(
                index,
                cid,
                key,
                f"concept '{name}' has no unit in units.csv, so no result with a unit can be "
                f"compared with a number (add a line '{name},<UCUM unit>,...')",
            )


def _check_names(
    p: _Problems,
    index: int,
    cid: str,
    params: Mapping[str, Any],
    known: set[str],
    active: set[str] | None,
    kind: str,
    files: Files | None,
) -> None:
    """Every concept name the parameters hold that no mapping row has, or whose rows all map
    other records than its key reads (criteria/reads.py), or only unverified rows; looked up in
    a criterion with other mistakes too, so `check` lists them at once."""
    reads = readers(kind, params) if files is not None else {}
    for key, name in concept_refs(params):
        if found := _name_problem(name, reads.get(key), known, active, files):
            p.criterion(index, cid, key, found[0], warn=found[1])


def _name_problem(
    name: str, reader: Reader | None, known: set[str], active: set[str] | None, files: Files | None
) -> tuple[str, bool] | None:
    """What is wrong with a concept a key names, and whether it is only a warning."""
    if name not in known:
        return f"unknown concept '{name}'" + _hint(name, sorted(known)), False
    if reader and files and (why := records_problem(reader, name, files.get(name, ()))):
        return why, False
    if active is not None and name not in active:
        return f"concept '{name}' is empty (only unverified rows; a run needs use_unverified)", True
    return None


def _check_title(p: _Problems, index: int, cid: str, raw: dict[str, Any]) -> None:
    """A warning for each threshold or window the title, or the missing hint, no longer says
    (criteria/titles.py)."""
    for problem in title_problems(raw):
        p.criterion(index, cid, "title", problem, warn=True)
    for problem in hint_problems(raw):
        p.criterion(index, cid, "missing_hint", problem, warn=True)


def check_trial(
    path: Path,
    known: set[str] | None = None,
    active: set[str] | None = None,
    units: set[str] | None = None,
    files: Files | None = None,
) -> TrialCheck:
    """Every problem of a criteria file. `known`: the concept names of the mapping rows (all of
    them); `active`: those with rows a run uses (a known concept outside it is a warning);
    `units`: the concepts units.csv gives a unit; `files`: the concept files of each concept's
    rows (terminology.mappings.concept_files; a concept of other records than its key reads is
    an error)."""
    shown = shown_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            unread = MappingError(f"{shown}: cannot read criteria file: {exc.strerror}")
        else:  # (as every mapping file's: csvfile.read_bytes)
            unread = MappingError(f"{shown}: cannot be read ({exc.__class__.__name__})")
        return TrialCheck(None, [unread])
    try:
        text = utf8_text(raw, shown, MappingError)
        data = loads(text, shown, MappingError)
    except MappingError as exc:
        return TrialCheck(None, [exc])
    where = TomlLines(path, text)
    p = _Problems(where)
    for key in data:
        if key not in _TOP:
            p.file(where.top_line(key), f"unknown table or key '{key}'" + _hint(key, _TOP))
    head = data.get("trial")
    if not isinstance(head, dict) or "id" not in head:
        p.file(where.head_line("id"), "missing [trial] table with an 'id'")
        head = head if isinstance(head, dict) else {}
    for key, value in head.items():
        if key not in _HEAD:
            p.head(key, "unknown key" + _hint(key, _HEAD))
        elif problem := _type_problem(key, value, _HEAD[key]):
            p.head(key, problem)
    if isinstance(head.get("id"), str) and head["id"] != path.stem:
        p.head(
            "id",
            f"'{head['id']}' but the file is {path.name}: they must be the same (the config's "
            "[trial] id names the file, and runs are compared by it)",
        )
    screen = head.get("screen_concepts")
    if "id" in head and "screen_concepts" not in head:
        p.head("screen_concepts", "list the concepts that define who is screened")
    raw_criteria = data.get("criteria", [])
    if not isinstance(raw_criteria, list) or not raw_criteria:
        p.file(where.top_line("criteria") or 1, "no [[criteria]] defined")
        raw_criteria = raw_criteria if isinstance(raw_criteria, list) else []
    seen: dict[str, int] = {}
    criteria: list[Criterion] = []
    for index, raw in enumerate(raw_criteria):
        checked = _check_criterion(p, index, raw, seen)
        if checked is None:
            if known is not None and isinstance(raw, dict) and raw.get("kind") in KINDS:
                cid = raw["id"] if isinstance(raw.get("id"), str) else ""
                params = {k: v for k, v in raw.items() if k not in _META}
                _check_names(p, index, cid, params, known, active, raw["kind"], files)
            continue
        cid, params = checked
        if known is not None:
            _check_concepts(p, index, cid, params, known, active, units, raw["kind"], files)
        _check_title(p, index, cid, raw)
        criteria.append(
            Criterion(
                id=cid,
                kind=raw["kind"],
                type=raw["type"],
                title=raw.get("title", cid),
                params=params,
                manual_when_unknown=raw.get("manual_when_unknown", False),
                missing_hint=raw.get("missing_hint", ""),
                time_limited=KINDS[raw["kind"]].limited(params),
            )
        )
    if known is not None and isinstance(screen, list):
        for name in (n for n in screen if isinstance(n, str)):
            if found := _name_problem(name, HEAD, known, active, files):
                p.head("screen_concepts", found[0], warn=found[1])
    errors = [e for _, e in sorted(p.found, key=lambda x: x[0])]
    warnings = [w for _, w in sorted(p.warnings, key=lambda x: x[0])]
    if errors:
        return TrialCheck(None, errors, warnings)
    trial = Trial(
        id=str(head["id"]),
        title=str(head.get("title", head["id"])),
        path=path,
        screen_concepts=list(head["screen_concepts"]),
        criteria=criteria,
        manual_items=[str(m) for m in head.get("manual", [])],
        warnings=warnings,
    )
    return TrialCheck(trial, errors, warnings)


def load_trial(
    path: Path,
    known_concepts: set[str] | None = None,
    active: set[str] | None = None,
    units: set[str] | None = None,
    files: Files | None = None,
) -> Trial:
    """The trial of a criteria file; the first problem `check_trial` finds is raised."""
    checked = check_trial(path, known_concepts, active, units, files)
    if checked.errors:
        raise checked.errors[0]
    assert checked.trial is not None
    return checked.trial
