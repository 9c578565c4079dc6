"""The registry of criterion kinds: each kind's function, the parameters it accepts and the
rules between them. The one definition `load_trial` (so `cohort run`) and `cohort mappings
check` apply to a criteria file; docs/criteria-kinds.md documents the same."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cohort.criteria import checks, demographic, dose, labs, medication, therapy, titers
from cohort.criteria.base import Kind
from cohort.errors import did_you_mean
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
    "current_medication": KindSpec(
        therapy.current_medication,
        {"concepts": CONCEPTS},
        {"systemic_only": bool},
        reads={"concepts": MEDICATIONS},
    ),
    "any_record": KindSpec(
        medication.any_record, {"concepts": CONCEPTS}, reads={"concepts": MEDICATIONS}
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
    {**_CHECK_ANY, "active": bool, "unless": CONCEPTS, "stale_after_days": int, "quote_text": bool},
    # `unless`: concepts of the matching Condition itself (an exception); `stale_after_days`:
    # an active one dated more than that before as_of was likely never closed (unknown);
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

# parameters that only make sense together: (key, the key it needs)
_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "diagnosis": (("uncertain_reason", "uncertain_concepts"),),
    "lab_latest": (("alt", "fail_below"), ("unconfirmed_verification", "alt")),
    "washout": (("lab_concepts", "lab_default_lln"), ("lab_default_lln", "lab_concepts")),
}
_EXPOSURES = ("concepts", "procedures", "immunizations", "uncertain_immunizations")
# keys that name the same thing in different records: a concept under one of them whose rows
# all map another one's records is told to move there ("did you mean 'procedures'?")
SAME_ROLE: tuple[tuple[str, ...], ...] = (_EXPOSURES, ("condition", "lab"))
# FHIR R4 condition-ver-status codes under which a diagnosis is not established (refuted and
# entered-in-error drop the record: mappings/rules.toml)
_UNCONFIRMED = ("unconfirmed", "provisional", "differential")

Problem = tuple[str, str]  # (key, message)
# windows and durations longer than this are typos (and dates out of the calendar's range)
_LONGEST = {
    "window_days": 36_500,
    "window_weeks": 5_200,
    "window_months": 1_200,
    "min_months": 1_200,
}


def window_problems(params: Mapping[str, Any], key: str = "") -> Iterator[Problem]:
    """At most one window, of zero or more days/weeks/months."""
    given = [k for k in WINDOW if k in params]
    if len(given) > 1:
        yield key + given[1], f"give one window, not both {given[0]} and {given[1]}"
    for k in given:
        value = params[k]
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                yield key + k, f"{value} is negative (a window looks back from the as-of date)"
            elif value > _LONGEST[k]:
                yield key + k, f"{value} is more than 100 years"


def rule_problems(kind: str, params: Mapping[str, Any]) -> Iterator[Problem]:
    """What a criterion's parameters break beyond their names and types (those checked)."""
    yield from window_problems(params)
    for key, needs in _NEEDS.get(kind, ()):
        if key in params and needs not in params:
            yield key, f"needs '{needs}' too"
    if kind == "lab_latest" and ("fail_below" in params) == ("pass_at_least" in params):
        yield "fail_below", "give exactly one of fail_below or pass_at_least"
    if kind in ("washout", "high_dose") and not set(WINDOW) & params.keys():
        yield "window_weeks", f"kind '{kind}' needs window_days, window_weeks or window_months"
    for key in ("checks", "measures"):
        if params.get(key) == []:
            yield key, "empty list: give at least one"
    statuses = params.get("unconfirmed_verification")
    for bad in [v for v in statuses if v not in _UNCONFIRMED] if isinstance(statuses, list) else []:
        why = f"'{bad}' is not a Condition verificationStatus that leaves a diagnosis unconfirmed"
        yield "unconfirmed_verification", f"{why} ({choice(_UNCONFIRMED)})"
    checked = params.get("checks")
    if (
        kind == "checks"
        and "unconfirmed_verification" in params
        and isinstance(checked, list)
        and not any(isinstance(c, dict) and "condition" in c for c in checked)
    ):
        yield "unconfirmed_verification", "no condition check in 'checks' for it to apply to"
    if kind == "washout" and not set(_EXPOSURES) & params.keys():
        yield "concepts", f"kind '{kind}' needs at least one of {', '.join(_EXPOSURES)}"
    if kind == "washout" and isinstance(params.get("excluded_routes"), dict):
        yield from route_problems(params["excluded_routes"], params.get("concepts", []))
    low, high = params.get("min_years"), params.get("max_years")
    if type(low) is int and type(high) is int and 0 <= high < low:  # a negative one: below
        yield "max_years", f"{high} is below min_years = {low}: no age would pass"
    for key in (
        "min_years",
        "max_years",
        "min_months",
        "min_titer",
        "max_daily_mg",
        "lab_default_lln",
    ):
        value = params.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0:
                yield key, f"{value} is negative"
            elif value > _LONGEST.get(key, value):
                yield key, f"{value} is more than 100 years"


def route_problems(routes: Mapping[str, Any], concepts: list[str]) -> Iterator[Problem]:
    """A washout's `excluded_routes`: each key one of its `concepts`, each value route words."""
    if not routes:
        yield "excluded_routes", "empty table: give at least one concept = [route words]"
    for name, words in routes.items():
        key = f"excluded_routes.{name}"
        if name not in concepts:
            hint = did_you_mean(name, concepts)
            yield key, "not one of the criterion's concepts" + (f" ({hint})" if hint else "")
        if not (
            isinstance(words, list)
            and words
            and all(isinstance(w, str) and w.strip() for w in words)
        ):
            yield key, 'expected a non-empty list of route words in quotes, e.g. ["intramuscular"]'


def table_problems(table: Table, entry: Mapping[str, Any], key: str) -> Iterator[Problem]:
    """Rules inside one inline table (keys `key.x`): its required keys, chosen words, windows
    and the lab check's cut-offs."""
    for k in table.required:
        if k not in entry:
            yield f"{key}.{k}", "required"
    for k, words in CHOICES.items():
        if k in entry and k in table.keys and entry[k] not in words:
            yield f"{key}.{k}", f"'{entry[k]}': {choice(words)}"
    yield from window_problems(entry, key + ".")
    yield from _stale_problems(entry, key)
    note = entry.get("note")
    if isinstance(note, str) and not note.strip():
        yield f"{key}.note", "empty: write the instruction, or leave the key out"
    elif isinstance(note, str) and note.strip().startswith("("):
        # the reason adds them: "((review))" would reach the coordinator
        yield f"{key}.note", f"'{note}': write it without parentheses (the reason adds them)"
    if "equivocal_at" in entry and "positive_at" not in entry:
        yield f"{key}.equivocal_at", "needs 'positive_at' too"
    elif "equivocal_at" in entry and _number(entry["equivocal_at"]) > _number(entry["positive_at"]):
        yield f"{key}.equivocal_at", "is above positive_at (equivocal results lie below it)"


def _stale_problems(entry: Mapping[str, Any], key: str) -> Iterator[Problem]:
    """A condition check's `stale_after_days`: a positive number of days, with `active`."""
    days = entry.get("stale_after_days")
    if type(days) is not int:  # absent, or the wrong type (said already)
        return
    if days <= 0:
        yield f"{key}.stale_after_days", f"{days} is not a positive number of days"
    elif days > _LONGEST["window_days"]:
        yield f"{key}.stale_after_days", f"{days} is more than 100 years"
    if entry.get("active") is not True:
        why = "needs 'active = true' too (only a condition still marked active can be stale)"
        yield f"{key}.stale_after_days", why


def choice(words: tuple[str, ...]) -> str:
    """`must be 'a'` / `must be one of 'a', 'b'`."""
    quoted = ", ".join(f"'{w}'" for w in words)
    return f"must be {quoted}" if len(words) == 1 else f"must be one of {quoted}"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


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
    if kind == "lab_latest":
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
