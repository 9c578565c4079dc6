"""What a Bulk export kick-off asks: the Observation filter by combo-code, and what a refused
kick-off is asked again without, step by step (each step a server quirk, quirks.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohort.errors import ServerError

from .plan import COMBO_CODE

if TYPE_CHECKING:  # (quirks.py, which puller.py imports, reads `combo_asked`)
    from .puller import Params, Puller


class NoExport(ServerError):
    """The server does not support the export kick-off it advertises: searched instead."""


def no_export(status: int, group: str | None) -> NoExport | None:
    """A kick-off answered `status` as by a server without the operation (405, 501; 404 to
    Patient/$export), or None. A Group export's 404 is most likely no such Group: a
    configuration error, and a search would pull other patients than its members."""
    if status in (405, 501) or (status == 404 and not group):
        return NoExport(f"the server does not support the export kick-off (HTTP {status})")
    return None


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


# what a refused kick-off is asked again without (the warning's words), and what a kick-off
# refused without it is called
_NO_MEDICATION = "Medication in _type (referenced Medications are read by id)"
_NO_COMBO = (
    "combo-code in _typeFilter (by code: Observations whose only mapped code is a component's"
    " are not exported)"
)
_NO_TYPE_FILTER = (
    "_typeFilter: exported unfiltered (records whose code no mapping has are counted under"
    " not_stored, not stored)"
)
_REFUSED_TOO = {
    "bulk-no-medication": "without Medication",
    "bulk-no-combo-code": "with _typeFilter by code",
    "bulk-no-typefilter": "without _typeFilter",
}

# the kick-offs a refused one is asked again as, in this order: without one thing at a time
# first (the rest back), so that what the kick-off taken lacks is what the server refused (a
# server refusing only combo-code, asked without Medication first and then without both, was
# taken to refuse Medication too), then without two; cheapest first (Medications read by id,
# then component-only results left out, then an unfiltered export)
TRIES = (
    ("bulk-no-medication",),
    ("bulk-no-combo-code",),
    ("bulk-no-medication", "bulk-no-combo-code"),
    ("bulk-no-typefilter",),
    ("bulk-no-medication", "bulk-no-typefilter"),
)


def fallbacks(params: Params) -> list[tuple[Params, list[str]]]:
    """The kick-offs a refused `params` is asked again as, in order (TRIES), each with the
    quirks it is asked without; those that drop nothing, or repeat one before, left out."""
    out: list[tuple[Params, list[str]]] = []
    drops = {quirk: drop for quirk, drop, _ in STEPS}
    for names in TRIES:
        fewer, quirks = params, list[str]()
        for name in names:
            if (less := drops[name](fewer)) is not None:
                fewer, quirks = less, [*quirks, name]
        if quirks and all(fewer != taken for taken, _ in out):
            out.append((fewer, quirks))
    return out


def refused_words(status: int, tried: list[str], then: list[str]) -> str:
    """The run.json warning of a kick-off asked without what `tried` names refused, asked
    again without what `then` names."""
    before = " and ".join(_REFUSED_TOO[q] for q in tried)
    words = {quirk: w for quirk, _, w in STEPS}
    return (
        f"bulk: server refused the export kick-off{' ' + before + ' too' if tried else ''}"
        f" (HTTP {status}); asked again without {'; and without '.join(words[q] for q in then)}"
    )


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
