"""What a criteria file's parameters break beyond their names and types (`load_trial`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cohort.criteria.counted import is_counted
from cohort.criteria.registry import CHOICES, EXPOSURES, RECENT_KEYS, RECORD_KEYS, WINDOW, Table
from cohort.errors import did_you_mean

# parameters that only make sense together: (key, the key it needs)
_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "diagnosis": (("uncertain_reason", "uncertain_concepts"),),
    "lab_latest": (("alt", "fail_below"), ("unconfirmed_verification", "alt")),
    "washout": (("lab_concepts", "lab_default_lln"), ("lab_default_lln", "lab_concepts")),
}

# FHIR R4 condition-ver-status codes under which a diagnosis is not established (refuted and
# entered-in-error drop the record: mappings/rules.toml)
_UNCONFIRMED = ("unconfirmed", "provisional", "differential")

# lab_latest's limits, one of which it takes
_LIMITS = ("fail_below", "pass_at_least", "pass_below")

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
    if kind == "lab_latest" and sum(k in params for k in _LIMITS) != 1:
        yield "fail_below", f"give exactly one of {', '.join(_LIMITS[:-1])} or {_LIMITS[-1]}"
    if kind in ("washout", "high_dose", "recent_record") and not set(WINDOW) & params.keys():
        yield (
            "window_days" if kind == "recent_record" else "window_weeks",
            f"kind '{kind}' needs window_days, window_weeks or window_months",
        )
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
    if kind == "washout" and not set(EXPOSURES) & params.keys():
        yield "concepts", f"kind '{kind}' needs at least one of {', '.join(EXPOSURES)}"
    if kind == "any_record" and not set(RECORD_KEYS) & params.keys():
        yield "concepts", f"kind '{kind}' needs at least one of {', '.join(RECORD_KEYS)}"
    if kind == "recent_record" and not set(RECENT_KEYS) & params.keys():
        yield "immunizations", f"kind '{kind}' needs at least one of {', '.join(RECENT_KEYS)}"
    if kind == "washout" and isinstance(params.get("excluded_routes"), dict):
        yield from route_problems(params["excluded_routes"], params.get("concepts", []))
    if kind == "diagnosis" and "uncertain_concepts" in params and is_counted(params):
        why = "not read with min_count or a window: remove it, or the count"
        yield "uncertain_concepts", why
    count = params.get("min_count")
    if type(count) is int and count < 1:
        yield "min_count", f"{count} is below 1"
    low, high = params.get("min_years"), params.get("max_years")
    if type(low) is int and type(high) is int and 0 <= high < low:  # a negative one: below
        yield "max_years", f"{high} is below min_years = {low}: no age would pass"
    for key in (
        "min_years",
        "max_years",
        "min_months",
        "min_titer",
        "max_daily_mg",
        "max_change",
        "lab_default_lln",
        # a grade count below zero passes every patient with a readable grade
        "min_a",
        "min_b",
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
