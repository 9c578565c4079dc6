"""`cohort mappings check`: a lab limit of a criteria file outside its concept's plausible range."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cohort.criteria.registry import KINDS, LAB_CHECK, MEASURE, tables_of
from cohort.terminology.units import UnitSpec
from cohort.tomllines import TomlLines
from cohort.tools.common import Findings


def lab_limits(kind: str, params: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(key, value, concepts) of every number a criterion compares a lab result with, in the
    canonical unit of those concepts (criteria/labs.py, medication.py, checks.py)."""
    if kind == "lab_latest":
        for key in ("fail_below", "pass_at_least", "pass_below"):
            if key in params:
                yield key, params[key], params.get("concepts")
        alt = params.get("alt")
        if isinstance(alt, dict) and "fail_below" in alt:
            # alt's concepts are conditions: its limit applies to the criterion's results
            yield "alt.fail_below", alt["fail_below"], params.get("concepts")
    if kind == "washout" and "lab_default_lln" in params:
        yield "lab_default_lln", params["lab_default_lln"], params.get("lab_concepts")
    for key, table, entry in tables_of(kind, params):
        if not isinstance(entry, dict):
            continue
        if table is MEASURE and "fail_above" in entry:
            yield f"{key}.fail_above", entry["fail_above"], entry.get("concepts")
        if table is LAB_CHECK:
            for k in ("positive_at", "equivocal_at"):
                if k in entry:
                    yield f"{key}.{k}", entry[k], entry.get("lab")


def _outside(value: float, spec: UnitSpec) -> str | None:
    """The plausible range `value` lies outside, as a message writes it; None when inside."""
    low, high = spec.low, spec.high
    if (low is None or value >= low) and (high is None or value <= high):
        return None
    if low is not None and high is not None:
        return f"{_number(low)}-{_number(high)} {spec.unit}"
    if low is not None:
        return f"at least {_number(low)} {spec.unit}"
    return f"at most {_number(high)} {spec.unit}"


def _number(value: float | None) -> str:
    """A number as a researcher writes it: 25000000, not 2.5e+07."""
    if value is not None and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}"


def plausible_limits(path: Path, specs: Mapping[str, UnitSpec], f: Findings) -> None:
    """A warning for each lab limit outside the plausible range (units.csv) of a concept it is
    compared with: a result outside that range is no value, so such a limit fails or passes
    every result, and is most likely written in another unit (platelets `fail_below = 25000`
    per uL where 10*3/uL is meant; hemoglobin 80 g/L where g/dL is), or units.csv's unit was
    changed under it. A file that cannot be read is skipped (`check_trial` reports it)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return
    where = TomlLines(path, text)
    raw_criteria = data.get("criteria")
    for index, raw in enumerate(raw_criteria if isinstance(raw_criteria, list) else []):
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
            continue
        cid = raw["id"] if isinstance(raw.get("id"), str) else ""
        for key, value, concepts in lab_limits(raw["kind"], raw):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # (a type error of check_trial's)
            if not math.isfinite(value):
                continue  # nan, inf: an error of check_trial's, no unit mistake
            for name in concepts if isinstance(concepts, list) else []:
                spec = specs.get(name) if isinstance(name, str) else None
                if spec is None or (shown := _outside(float(value), spec)) is None:
                    continue
                line = where.key_line(index, cid, key)
                f.warnings.append(
                    f"{where.shown}:{line}: criterion '{cid}': key '{key}': "
                    f"{_number(float(value))} is outside the plausible range of {name} "
                    f"({shown}): is it in another unit?"
                )
