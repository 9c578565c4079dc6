"""The registry of criterion kinds: each kind's function and the parameters it accepts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cohort.criteria import checks, demographic, labs, medication
from cohort.criteria.base import Kind

NUMBER = (int, float)
CONCEPTS = list  # a list of concept names


@dataclass(frozen=True)
class KindSpec:
    fn: Kind
    required: Mapping[str, type | tuple[type, ...]]
    optional: Mapping[str, type | tuple[type, ...]] = field(default_factory=dict)
    time_limited: bool = False  # its fails have a known end (eligible_from)


WINDOW = {"window_days": int, "window_weeks": int, "window_months": int}

KINDS: dict[str, KindSpec] = {
    "age": KindSpec(demographic.age, {"min_years": int}),
    "diagnosis": KindSpec(
        demographic.diagnosis,
        {"concepts": CONCEPTS, "min_months": int},
        {"uncertain_concepts": CONCEPTS, "uncertain_reason": str},
    ),
    "titer": KindSpec(
        labs.titer, {"titer_concepts": CONCEPTS, "min_titer": NUMBER}, {"screen_concepts": CONCEPTS}
    ),
    "lab_latest": KindSpec(
        labs.lab_latest,
        {"concepts": CONCEPTS},
        {**WINDOW, "fail_below": NUMBER, "pass_at_least": NUMBER, "alt": dict},
    ),
    "grades": KindSpec(labs.grades, {"concepts": CONCEPTS}, {**WINDOW, "min_a": int, "min_b": int}),
    "labs_exceed": KindSpec(labs.labs_exceed, {"measures": list}, WINDOW),
    "current_medication": KindSpec(
        medication.current_medication, {"concepts": CONCEPTS}, {"systemic_only": bool}
    ),
    "any_record": KindSpec(medication.any_record, {"concepts": CONCEPTS}),
    "washout": KindSpec(
        medication.washout,
        {},
        {
            "window_days": int,
            "window_weeks": int,
            "concepts": CONCEPTS,
            "procedures": CONCEPTS,
            "immunizations": CONCEPTS,
            "uncertain_immunizations": CONCEPTS,
            "systemic_only": bool,
            "lab_concepts": CONCEPTS,
            "lab_default_lln": NUMBER,
        },
        time_limited=True,
    ),
    "high_dose": KindSpec(
        medication.high_dose,
        {"concepts": CONCEPTS, "max_daily_mg": NUMBER},
        {"window_days": int, "window_weeks": int},
        time_limited=True,
    ),
    "checks": KindSpec(checks.checks, {"checks": list}),
}

# keys inside a `checks` entry, and inside a `labs_exceed` measure
CHECK_KEYS: dict[str, type | tuple[type, ...]] = {
    "condition": CONCEPTS,
    "lab": CONCEPTS,
    "unless": CONCEPTS,
    "unless_later": CONCEPTS,
    "active": bool,
    "latest": bool,
    "result": str,
    "then": str,
    "label": str,
    "numeric": str,
    "positive_at": NUMBER,
    "equivocal_at": NUMBER,
    **WINDOW,
}
MEASURE_KEYS: dict[str, type | tuple[type, ...]] = {
    "concepts": CONCEPTS,
    "fail_above": NUMBER,
    "required": bool,
}
CONCEPT_KEYS = frozenset(
    {
        "concepts",
        "uncertain_concepts",
        "titer_concepts",
        "screen_concepts",
        "procedures",
        "immunizations",
        "uncertain_immunizations",
        "lab_concepts",
        "condition",
        "lab",
        "unless",
        "unless_later",
    }
)
