"""The registry of criterion kinds: each kind's function and the parameters it accepts (the
rules between them: `cohort.criteria.problems`). The one definition `load_trial` (so `cohort
run`) and `cohort mappings check` apply to a criteria file; docs/criteria-kinds.md documents
the same."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cohort.criteria import (
    change,
    checks,
    demographic,
    dose,
    labs,
    medication,
    recent,
    records,
    therapy,
    titers,
)
from cohort.criteria.base import Kind
from cohort.terminology.values import RESULTS

NUMBER = (int, float)
CONCEPTS = list  # a list of concept names
Types = Mapping[str, type | tuple[type, ...]]


# The records a concept list is matched against, by the concept file whose rows map their codes
# (mappings/concepts/<name>.csv; terminology.core.FILE_TYPES): what each kind's function asks its
# Context for (conditions, observations, exposures, procedures, immunizations). A concept whose
# every row is in a file of other records matches none of them (`check` refuses it, at the key);
# local.csv, a site's own codes, maps any record. The words name the records in messages.
CONDITIONS, LABS, MEDICATIONS, PROCEDURES, VACCINES = (
    "conditions",
    "labs",
    "medications",
    "procedures",
    "vaccines",
)
RECORDS: dict[str, str] = {
    CONDITIONS: "Condition",
    LABS: "Observation",
    MEDICATIONS: "medication",
    PROCEDURES: "Procedure",
    VACCINES: "Immunization",
}
Reads = Mapping[str, str]  # concept key -> the records it reads (a RECORDS key)


@dataclass(frozen=True)
class Table:
    """The keys of an inline table inside a criterion (an `alt`, a measure, a check)."""

    required: Types
    optional: Types = field(default_factory=dict)
    reads: Reads = field(default_factory=dict)
    name: str = ""  # as messages name it: "a lab check"

    @property
    def keys(self) -> dict[str, type | tuple[type, ...]]:
        return {**self.required, **self.optional}


@dataclass(frozen=True)
class KindSpec:
    fn: Kind
    required: Types
    optional: Types = field(default_factory=dict)
    time_limited: bool = False  # its fails have a known end (eligible_from)
    reads: Reads = field(default_factory=dict)  # what each concept list is matched against

    def limited(self, params: Mapping[str, Any]) -> bool:
        """Whether a criterion of this kind with these parameters is time-limited: every one
        of a time-limited kind, and a `checks` one with a condition check in a window (the
        condition leaves it on a known day)."""
        if self.time_limited:
            return True
        checked = params.get("checks") if self.fn is checks.checks else None
        return isinstance(checked, list) and any(
            isinstance(c, dict) and "condition" in c and WINDOW.keys() & c.keys() for c in checked
        )


WINDOW: dict[str, type | tuple[type, ...]] = {
    "window_days": int,
    "window_weeks": int,
    "window_months": int,
}

KINDS: dict[str, KindSpec] = {
    "age": KindSpec(demographic.age, {"min_years": int}, {"max_years": int}),
    "deceased": KindSpec(demographic.deceased, {}),
    "active_record": KindSpec(demographic.active_record, {}),
    "diagnosis": KindSpec(
        demographic.diagnosis,
        {"concepts": CONCEPTS, "min_months": int},
        {
            "uncertain_concepts": CONCEPTS,
            "uncertain_reason": str,
            "label": str,
            "unconfirmed_verification": list,
            # at least this many conditions (one a day) in the window: criteria.counted
            "min_count": int,
            **WINDOW,
        },
        reads={"concepts": CONDITIONS, "uncertain_concepts": CONDITIONS},
    ),
    "titer": KindSpec(
        titers.titer,
        {"titer_concepts": CONCEPTS, "min_titer": NUMBER},
        {"screen_concepts": CONCEPTS, "label": str},
        reads={"titer_concepts": LABS, "screen_concepts": LABS},
    ),
    "lab_latest": KindSpec(
        labs.lab_latest,
        {"concepts": CONCEPTS},
        {
            **WINDOW,
            "fail_below": NUMBER,
            "pass_at_least": NUMBER,
            "pass_below": NUMBER,  # a strict upper limit: below it passes, at it fails
            "alt": dict,
            "unconfirmed_verification": list,  # of `alt`'s conditions
        },
        reads={"concepts": LABS},  # (alt's concepts: ALT)
    ),
    "grades": KindSpec(
        labs.grades,
        {"concepts": CONCEPTS},
        {**WINDOW, "min_a": int, "min_b": int},
        reads={"concepts": LABS},
    ),
    "labs_exceed": KindSpec(labs.labs_exceed, {"measures": list}, {**WINDOW, "latest_only": bool}),
    # the change between the two most recent results in the window ("weight stable")
    "lab_change": KindSpec(
        change.lab_change,
        {"concepts": CONCEPTS, "max_change": NUMBER},
        WINDOW,
        reads={"concepts": LABS},
    ),
    "current_medication": KindSpec(
        therapy.current_medication,
        {"concepts": CONCEPTS},
        {"systemic_only": bool},
        reads={"concepts": MEDICATIONS},
    ),
    "any_record": KindSpec(
        records.any_record,
        {},
        {"concepts": CONCEPTS, "procedures": CONCEPTS},  # at least one (criteria.problems)
        reads={"concepts": MEDICATIONS, "procedures": PROCEDURES},
    ),
    # an inclusion needing a record in the window (a washout's counterpart): at least one key
    "recent_record": KindSpec(
        recent.recent_record,
        {},
        {**WINDOW, "procedures": CONCEPTS, "immunizations": CONCEPTS},
        reads={"procedures": PROCEDURES, "immunizations": VACCINES},
    ),
    "washout": KindSpec(
        medication.washout,
        {},
        {
            **WINDOW,
            "concepts": CONCEPTS,
            "procedures": CONCEPTS,
            "immunizations": CONCEPTS,
            "uncertain_immunizations": CONCEPTS,
            "systemic_only": bool,
            "excluded_routes": dict,  # concept -> route words: not counted by those routes
            "lab_concepts": CONCEPTS,
            "lab_default_lln": NUMBER,
        },
        time_limited=True,
        reads={
            "concepts": MEDICATIONS,
            "procedures": PROCEDURES,
            "immunizations": VACCINES,
            "uncertain_immunizations": VACCINES,
            "lab_concepts": LABS,
        },
    ),
    "high_dose": KindSpec(
        dose.high_dose,
        {"concepts": CONCEPTS, "max_daily_mg": NUMBER},
        WINDOW,
        time_limited=True,
        reads={"concepts": MEDICATIONS},
    ),
    "checks": KindSpec(checks.checks, {"checks": list}, {"unconfirmed_verification": list}),
}

# the inline tables inside a criterion: `alt` of lab_latest, each of `measures`, each of `checks`
# (`alt` lowers the limit while the patient has an active condition of its concepts)
ALT = Table(
    {"concepts": CONCEPTS, "fail_below": NUMBER}, reads={"concepts": CONDITIONS}, name="alt"
)
MEASURE = Table(
    {"concepts": CONCEPTS, "fail_above": NUMBER},
    {"required": bool},
    reads={"concepts": LABS},
    name="a measure",
)
# `note`: a short instruction the reason adds in parentheses after the finding's date
_CHECK_ANY: Types = {"then": str, "label": str, "note": str}
CONDITION_CHECK = Table(
    {"condition": CONCEPTS},
    {
        **_CHECK_ANY,
        "active": bool,
        "unless": CONCEPTS,
        "stale_after_days": int,
        "quote_text": bool,
        **WINDOW,
    },
    # a window: only a condition dated within it counts ("acute MI within 90 days"); `unless`:
    # concepts of the matching Condition itself (an exception); `stale_after_days`: an active one
    # dated more than that before as_of was likely never closed (unknown);
    # `quote_text`: the reason quotes the condition's text ("malignancy: <the cancer>, onset ...")
    reads={"condition": CONDITIONS, "unless": CONDITIONS},
    name="a condition check",
)
LAB_CHECK = Table(
    {"lab": CONCEPTS},
    {
        **_CHECK_ANY,
        "latest": bool,
        "result": str,
        "numeric": str,
        "positive_at": NUMBER,
        "equivocal_at": NUMBER,
        "unless_later": CONCEPTS,
        "required": bool,  # no result (in the window) is unknown, not a pass
        **WINDOW,
    },
    reads={"lab": LABS, "unless_later": LABS},
    name="a lab check",
)
# the [trial] table's: who is screened (a Condition of one of them: evaluate.is_screened)
HEAD_READS: Reads = {"screen_concepts": CONDITIONS}
# every key a `checks` entry may hold (either sort)
CHECK_KEYS: dict[str, type | tuple[type, ...]] = {**CONDITION_CHECK.keys, **LAB_CHECK.keys}

# string parameters that take one of a few words
CHOICES: dict[str, tuple[str, ...]] = {
    "then": ("fail", "unknown"),
    "result": RESULTS,
    "numeric": ("detected",),
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

# the keys of a washout's exposures, and of an any_record's records (at least one of them)
EXPOSURES = ("concepts", "procedures", "immunizations", "uncertain_immunizations")
RECORD_KEYS = ("concepts", "procedures")
RECENT_KEYS = ("procedures", "immunizations")
# keys that name the same thing in different records: a concept under one of them whose rows
# all map another one's records is told to move there ("did you mean 'procedures'?")
SAME_ROLE: tuple[tuple[str, ...], ...] = (EXPOSURES, ("condition", "lab"))


def tables_of(kind: str, params: Mapping[str, Any]) -> Iterator[tuple[str, Table, Any]]:
    """(key, schema, value) of every inline table of a criterion's parameters."""
    if kind == "lab_latest" and "alt" in params:
        yield "alt", ALT, params["alt"]
    if kind == "labs_exceed" and isinstance(params.get("measures"), list):
        for i, m in enumerate(params["measures"]):
            yield f"measures[{i}]", MEASURE, m
    if kind == "checks" and isinstance(params.get("checks"), list):
        for i, chk in enumerate(params["checks"]):
            lab = isinstance(chk, dict) and "lab" in chk and "condition" not in chk
            yield f"checks[{i}]", LAB_CHECK if lab else CONDITION_CHECK, chk


def numeric_concepts(kind: str, params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, concept) of the concepts whose results a criterion compares with a number: each
    needs its canonical unit in units.csv (else every result with a unit is unknown)."""
    lists: list[tuple[str, Any]] = []
    if kind in ("lab_latest", "lab_change"):
        lists.append(("concepts", params.get("concepts")))
    if kind == "washout":
        lists.append(("lab_concepts", params.get("lab_concepts")))
    for key, table, entry in tables_of(kind, params):
        if isinstance(entry, dict) and (table is MEASURE or "positive_at" in entry):
            sub = "concepts" if table is MEASURE else "lab"
            lists.append((f"{key}.{sub}", entry.get(sub)))
    for key, names in lists:
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str):
                yield key, name
