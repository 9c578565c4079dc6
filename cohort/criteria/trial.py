"""Load and validate a trial's criteria file (TOML); errors name the file, line and key."""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.criteria.base import Criterion
from cohort.criteria.registry import CHECK_KEYS, CONCEPT_KEYS, KINDS, MEASURE_KEYS
from cohort.errors import MappingError
from cohort.model import CriterionInfo

_META = {"id", "kind", "type", "title", "manual_when_unknown", "missing_hint"}


@dataclass
class Trial:
    id: str
    title: str
    path: Path
    screen_concepts: list[str]
    criteria: list[Criterion]
    manual_items: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def infos(self) -> list[CriterionInfo]:
        return [
            CriterionInfo(c.id, c.type, c.title, c.manual_when_unknown, c.missing_hint)
            for c in self.criteria
        ]

    def concepts(self) -> set[str]:
        """Every concept the trial refers to (used by the server query plan)."""
        out = set(self.screen_concepts)
        for c in self.criteria:
            out |= _concepts_in(c.params)
        return out


def _concepts_in(params: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, value in params.items():
        if key in CONCEPT_KEYS and isinstance(value, list):
            out |= {str(v) for v in value}
        elif isinstance(value, dict):
            out |= _concepts_in(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    out |= _concepts_in(item)
    return out


class _Where:
    """Finds the line of a criterion in the file, for error messages."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()

    def line(self, cid: str) -> int:
        pat = re.compile(r'^\s*id\s*=\s*["\']' + re.escape(cid) + r'["\']')
        return next((i + 1 for i, ln in enumerate(self.lines) if pat.match(ln)), 0)

    def error(self, cid: str, key: str, msg: str) -> MappingError:
        return MappingError(f"{self.path}:{self.line(cid)}: criterion '{cid}': key '{key}': {msg}")


def _check_type(where: _Where, cid: str, key: str, value: Any, want: Any) -> None:
    if (
        isinstance(value, bool)
        and want is not bool
        and bool not in (want if isinstance(want, tuple) else (want,))
    ):
        raise where.error(cid, key, f"expected {_tname(want)}, got a boolean")
    if not isinstance(value, want):
        raise where.error(cid, key, f"expected {_tname(want)}, got {type(value).__name__}")
    if want is list and key in CONCEPT_KEYS and not all(isinstance(v, str) for v in value):
        raise where.error(cid, key, "expected a list of concept names")


def _tname(want: Any) -> str:
    names = [t.__name__ for t in (want if isinstance(want, tuple) else (want,))]
    return {"list": "a list", "dict": "a table", "int": "a whole number"}.get(
        names[0], " or ".join(names)
    )


def _check_table(where: _Where, cid: str, key: str, table: Any, allowed: dict[str, Any]) -> None:
    if not isinstance(table, dict):
        raise where.error(cid, key, "expected a table")
    for k, v in table.items():
        if k not in allowed:
            hint = difflib.get_close_matches(k, list(allowed), n=1)
            raise where.error(
                cid, f"{key}.{k}", "unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            )
        _check_type(where, cid, f"{key}.{k}", v, allowed[k])


def load_trial(path: Path, known_concepts: set[str] | None = None) -> Trial:
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = tomllib.loads(text)
    except OSError as exc:
        raise MappingError(f"{path}: cannot read criteria file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: invalid TOML: {exc}") from exc
    where = _Where(path, text)
    head = data.get("trial")
    if not isinstance(head, dict) or "id" not in head:
        raise MappingError(f"{path}: missing [trial] table with an 'id'")
    criteria: list[Criterion] = []
    seen: set[str] = set()
    for raw in data.get("criteria", []):
        cid = str(raw.get("id", ""))
        if not cid or cid in seen:
            raise MappingError(
                f"{path}:{where.line(cid)}: criterion id missing or duplicated: '{cid}'"
            )
        seen.add(cid)
        criteria.append(_criterion(where, cid, raw))
    if not criteria:
        raise MappingError(f"{path}: no [[criteria]] defined")
    trial = Trial(
        id=str(head["id"]),
        title=str(head.get("title", head["id"])),
        path=path,
        screen_concepts=list(head.get("screen_concepts", [])),
        criteria=criteria,
        manual_items=[str(m) for m in head.get("manual", [])],
    )
    if not trial.screen_concepts:
        raise MappingError(
            f"{path}: [trial] key 'screen_concepts': list the concepts that define who is screened"
        )
    if known_concepts is not None:
        _check_concepts(where, trial, known_concepts)
    return trial


def _criterion(where: _Where, cid: str, raw: dict[str, Any]) -> Criterion:
    kind = raw.get("kind")
    if kind not in KINDS:
        hint = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        raise where.error(
            cid,
            "kind",
            f"unknown kind '{kind}'"
            + (f" (did you mean '{hint[0]}'?)" if hint else f"; one of {', '.join(KINDS)}"),
        )
    ctype = raw.get("type", "")
    if ctype not in ("inclusion", "exclusion"):
        raise where.error(cid, "type", "must be 'inclusion' or 'exclusion'")
    spec = KINDS[kind]
    params = {k: v for k, v in raw.items() if k not in _META}
    for key in spec.required:
        if key not in params:
            raise where.error(cid, key, f"required by kind '{kind}'")
    allowed = {**spec.required, **spec.optional}
    for key, value in params.items():
        if key not in allowed:
            hint = difflib.get_close_matches(key, list(allowed), n=1)
            raise where.error(
                cid,
                key,
                f"not a parameter of kind '{kind}'"
                + (f" (did you mean '{hint[0]}'?)" if hint else ""),
            )
        _check_type(where, cid, key, value, allowed[key])
    for i, chk in enumerate(params.get("checks", [])):
        _check_table(where, cid, f"checks[{i}]", chk, CHECK_KEYS)
        if ("condition" in chk) == ("lab" in chk):
            raise where.error(cid, f"checks[{i}]", "needs exactly one of 'condition' or 'lab'")
        if chk.get("then", "fail") not in ("fail", "unknown"):
            raise where.error(cid, f"checks[{i}].then", "must be 'fail' or 'unknown'")
    for i, m in enumerate(params.get("measures", [])):
        _check_table(where, cid, f"measures[{i}]", m, MEASURE_KEYS)
    if kind in ("washout", "high_dose") and not ({"window_days", "window_weeks"} & params.keys()):
        raise where.error(cid, "window_weeks", f"kind '{kind}' needs window_days or window_weeks")
    if kind == "lab_latest" and ("fail_below" in params) == ("pass_at_least" in params):
        raise where.error(cid, "fail_below", "give exactly one of fail_below or pass_at_least")
    return Criterion(
        id=cid,
        kind=kind,
        type=ctype,
        title=str(raw.get("title", cid)),
        params=params,
        manual_when_unknown=bool(raw.get("manual_when_unknown", False)),
        missing_hint=str(raw.get("missing_hint", "")),
        time_limited=spec.time_limited,
    )


def _check_concepts(where: _Where, trial: Trial, known: set[str]) -> None:
    for c in trial.criteria:
        for name in _concepts_in(c.params):
            if name not in known:
                hint = difflib.get_close_matches(name, sorted(known), n=1)
                raise where.error(
                    c.id,
                    "concepts",
                    f"unknown concept '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""),
                )
    for name in trial.screen_concepts:
        if name not in known:
            raise MappingError(f"{where.path}: [trial] screen_concepts: unknown concept '{name}'")
