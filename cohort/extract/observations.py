"""An Observation's result, and each of its components' whose code maps, as ObservationFacts."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import (
    Coded,
    CodeElements,
    DayRange,
    codes_of,
    obs_value,
    quantity_of,
    text_of,
)
from cohort.extract.obs_dates import obs_when
from cohort.model import Code, ObservationFact, ObsValue

_NO_VALUE = ObsValue()  # a result without a value (built once: compared for every result)
# the primitive value[x] an Observation (or a component) may send as its `_name` alone
_ABSENT_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
_PRIMITIVE_VALUES = ("valueString", "valueBoolean", "valueInteger", "valueDateTime", "valueTime")


def _value_not_known(res: dict[str, Any]) -> bool:
    """Whether a result's value[x] is given with no value but a data-absent-reason extension
    (obs-6 leaves dataAbsentReason out beside a value[x]): a primitive sent as its
    `_valueString` ... alone, or a valueQuantity whose `value` is sent as `_value` alone. Any
    other extension (a vendor's, one carrying the value) is a value not read, not none."""
    vq = res.get("valueQuantity")
    if isinstance(vq, dict):
        return "value" not in vq and _absent_reason(vq.get("_value"))
    return any(k not in res and _absent_reason(res.get("_" + k)) for k in _PRIMITIVE_VALUES)


def _absent_reason(companion: Any) -> bool:
    """Whether an `_name` companion carries the data-absent-reason extension."""
    exts = companion.get("extension") if isinstance(companion, dict) else None
    return isinstance(exts, list) and any(
        isinstance(e, dict) and e.get("url") == _ABSENT_URL for e in exts
    )


def components_of(
    elements: CodeElements, ref: str, res: dict[str, Any], parts: Any
) -> list[ObservationFact]:
    """The components of `res` whose code maps to a concept (without `relevant`: every
    coded one), each a result of its own: `<ref>#component[<i>]`, the parent's dates and
    status, its own code, value, interpretation, reference range and dataAbsentReason."""
    out: list[ObservationFact] = []
    if not isinstance(parts, list):
        return out  # (validation rejects such a record before it is stored)
    when = None
    status = str(res.get("status", ""))
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            continue
        coded = elements.read(part.get("code"))[1]
        if not coded[2] or not (coded[0] or coded[1]):
            continue
        if when is None:
            when = obs_when(res)
        out.append(observation_of(f"{ref}#component[{i}]", part, coded, when, status, ref))
    return out


def observation_of(
    ref: str,
    res: dict[str, Any],
    coded: Coded,
    when: tuple[str, DayRange | None],
    status: str | None = None,
    part_of: str = "",
) -> ObservationFact:
    """The result of an Observation `res`, or of one of its components (`part_of` its
    parent's ref, whose `when` and `status` it takes)."""
    # (each list read only when present: most results have none of them)
    low = None
    ranges = res.get("referenceRange")
    if ranges:
        for rr in ranges:
            low = low or quantity_of(rr.get("low") if isinstance(rr, dict) else None)
    parts = res.get("component")
    components = (
        tuple(
            (codes_of(c.get("code")), text_of(c.get("code")), obs_value(c))
            for c in parts
            if isinstance(c, dict)
        )
        if parts
        else ()
    )
    interp: tuple[Code, ...] = ()
    flags = res.get("interpretation")
    if flags:
        for cc in flags:
            interp += codes_of(cc)
    stamp, days = when
    value = obs_value(res)
    bare = not interp and value == _NO_VALUE  # no value of its own
    # why there is none: a dataAbsentReason, or the value's own extension (read only then)
    reason = bool(res.get("dataAbsentReason")) or (bare and _value_not_known(res))
    # (positional, in the field order, each named: keywords cost ~2x for ~230k results a
    # 10k dense population)
    return ObservationFact(
        ref,
        coded[0],  # codes
        str(res.get("status", "")) if status is None else status,  # status
        days[0] if days else None,  # when (facts._first, _last inline: once per result)
        value,
        interp,  # interpretation
        low,  # ref_low
        coded[1],  # text
        components,
        days[1] if days else None,  # when_last
        stamp,
        # absent: no value, interpretation or component, only a dataAbsentReason (or the
        # value[x]'s own extension)
        reason and bare and not components,
        # panel: no value, interpretation or dataAbsentReason: a header of members or
        # components
        bare and not reason and bool(components or res.get("hasMember")),
        part_of,
    )
