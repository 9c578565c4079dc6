"""What a Bulk export kick-off asks: the Observation filter by combo-code, and what a refused
kick-off is asked again without, step by step (each step a server quirk, quirks.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .plan import COMBO_CODE

if TYPE_CHECKING:  # (quirks.py, which pull.py imports, reads `combo_asked`)
    from .pull import Params, Puller


def by_combo(p: Puller, types: list[str]) -> bool:
    """Whether the export's Observation _typeFilter asks by combo-code (the record's code or a
    component's): where the CapabilityStatement lists it. (Not code and component-code in two
    _typeFilters: the IG ORs them, but some servers AND them, which would export nothing.)"""
    return "Observation" in types and p.cap.lists_param("Observation", COMBO_CODE)


def combo_asked(params: Params) -> bool:
    """Whether a kick-off's parameters filter Observations by combo-code."""
    return any(k == "_typeFilter" and v.startswith(f"Observation?{COMBO_CODE}=") for k, v in params)


def said_by_code(p: Puller, listed: bool, params: Params, dropped: list[str]) -> None:
    """A run.json warning when the kick-off taken (`params`) filtered Observations by code:
    those whose only mapped code is a component's are not exported. None for a filter by
    combo-code or an unfiltered export (it holds them), nor for a combo-code refused tonight
    (`dropped`: that refusal's warning says so)."""
    if not any(k == "_typeFilter" and v.startswith("Observation?code=") for k, v in params):
        return
    if not listed:
        p.report.warn(
            "bulk: the server lists no combo-code for Observation; the export's _typeFilter asks"
            " by code: Observations whose only mapped code is a component's (a platelet count"
            " inside a CBC panel) are not exported"
        )
    elif "bulk-no-combo-code" not in dropped:
        p.report.warn(
            "bulk: the server refused combo-code in _typeFilter on an earlier night; the export"
            " asks by code: Observations whose only mapped code is a component's are not exported"
        )


# what a refused kick-off is asked again without, in this order (the warning's words)
_NO_MEDICATION = "Medication in _type (referenced Medications are read by id)"
_NO_COMBO = (
    "combo-code in _typeFilter (by code: Observations whose only mapped code is a component's"
    " are not exported)"
)
_NO_TYPE_FILTER = (
    "_typeFilter: exported unfiltered (records whose code no mapping has are counted under"
    " not_stored, not stored)"
)
REFUSED_TOO = {
    _NO_MEDICATION: "without Medication too",
    _NO_COMBO: "with _typeFilter by code too",
    _NO_TYPE_FILTER: "without _typeFilter",
}


def fewer(params: Params) -> tuple[Params, str, str] | None:
    """`params` less the next thing a refused kick-off is asked again without, its quirk's
    name and its words; None when nothing is left to drop."""
    for quirk, drop, words in STEPS:
        if (fewer := drop(params)) is not None:
            return fewer, quirk, words
    return None


def _no_medication(params: Params) -> Params | None:
    types = dict(params)["_type"].split(",")
    if "Medication" not in types:
        return None
    rest = ",".join(t for t in types if t != "Medication")
    return [(k, rest if k == "_type" else v) for k, v in params]


def _no_combo(params: Params) -> Params | None:
    if not combo_asked(params):
        return None
    combo = f"Observation?{COMBO_CODE}="
    return [
        (k, "Observation?code=" + v[len(combo) :] if v.startswith(combo) else v) for k, v in params
    ]


def _no_type_filter(params: Params) -> Params | None:
    if not any(k == "_typeFilter" for k, _ in params):
        return None
    return [(k, v) for k, v in params if k != "_typeFilter"]


# what a refused kick-off is asked again without, in this order: (quirk, how, the words)
STEPS = (
    ("bulk-no-medication", _no_medication, _NO_MEDICATION),
    ("bulk-no-combo-code", _no_combo, _NO_COMBO),
    ("bulk-no-typefilter", _no_type_filter, _NO_TYPE_FILTER),
)
