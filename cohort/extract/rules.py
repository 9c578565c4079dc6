"""What the reading rules (mappings/rules.toml) drop and count as active or ongoing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cohort.errors import MappingError, did_you_mean, shown_path
from cohort.extract.elements import (
    R4_CLINICAL_STATUS,
    R4_VERIFICATION_STATUS,
    verification_status,
)
from cohort.extract.routes import RouteName
from cohort.model import MEDICATION_TYPES, PIPELINE_TYPES
from cohort.source.checkers import present
from cohort.tomllines import TomlLines
from cohort.tomlsyntax import loads
from cohort.utf8 import utf8_text

__all__ = ["PROCEDURE_STATUS", "R4_STATUS", "STATUS_NOT_GIVEN", "ReadingRules"]

# Procedure statuses as the medication statuses SPEC §2 names ([exposure] ongoing in
# rules.toml): in-progress is a procedure's active; preparation (not begun) none of them
PROCEDURE_STATUS = {"in-progress": "active", "on-hold": "on-hold"}


@dataclass(frozen=True)
class ReadingRules:
    """Statuses to drop, what counts as active/ongoing; loaded from mappings/rules.toml."""

    drop_status: dict[str, frozenset[str]]
    drop_verification: dict[str, frozenset[str]]
    active_clinical: frozenset[str]
    missing_status_is_active: bool
    ongoing: frozenset[str]
    non_systemic: re.Pattern[str] = field(default=re.compile(r"(?!x)x"))
    drop_intent: dict[str, frozenset[str]] = field(default_factory=dict)
    # a bare route code's name (Terminology.route_name, routes.csv): set by `with_routes`
    route_name: RouteName | None = field(default=None, compare=False, repr=False)
    # resourceType -> the statuses that drop it ("*" and its own), filled as types are met
    _dropped: dict[str, frozenset[str]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def load(cls, path: Path) -> ReadingRules:
        """The rules of `path`; a misspelt table, key or resource type, or a value of the wrong
        type, is a MappingError naming the line and key (ignored, it would change who counts)."""
        shown = shown_path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise MappingError(f"{shown}: cannot read reading rules: {exc.strerror}") from None
        except OSError as exc:  # (as every mapping file's: csvfile.read_bytes)
            raise MappingError(f"{shown}: cannot be read ({type(exc).__name__})") from None
        text = utf8_text(raw, shown, MappingError)
        data = loads(text, shown, MappingError)
        _validate(path, text, data)

        def table(key: str) -> dict[str, frozenset[str]]:
            return {k: frozenset(v) for k, v in data.get(key, {}).items()}

        cond = data.get("condition", {})
        expo = data.get("exposure", {})
        words = [re.escape(w) for w in expo.get("non_systemic_words", [])]
        pattern = re.compile(r"\b(?:" + "|".join(words) + ")", re.I) if words else cls.non_systemic
        return cls(
            drop_status=table("drop_status"),
            drop_verification=table("drop_verification"),
            active_clinical=frozenset(cond.get("active", ["active", "recurrence", "relapse"])),
            missing_status_is_active=cond.get("missing_status_is_active", True),
            ongoing=frozenset(expo.get("ongoing", ["active", "on-hold", "intended"])),
            non_systemic=pattern,
            drop_intent=table("drop_intent"),
        )

    def with_routes(self, name: RouteName | None) -> ReadingRules:
        """These rules, naming a dosage route given as a code alone by `name` (the mappings'
        routes.csv, read by the terminology: `Loaded` joins the two)."""
        return replace(self, route_name=name)

    def dropped_statuses(self, rtype: str) -> frozenset[str]:
        """The statuses that drop a record of `rtype`: those listed for "*" and for the type."""
        found = self._dropped.get(rtype)
        if found is None:
            every, own = self.drop_status.get("*", frozenset()), self.drop_status.get(rtype)
            found = self._dropped[rtype] = every | own if own else every
        return found

    def drop_reason(self, res: dict[str, Any]) -> str | None:
        rtype = res.get("resourceType", "")
        status = res.get("status", "")
        # (a type whose status validation does not check may carry any JSON value there)
        dropped = self._dropped.get(rtype) or self.dropped_statuses(rtype)  # (a call saved)
        if isinstance(status, str) and status in dropped:
            return f"status {status}"
        # an order NOT to give it: read on a MedicationRequest only, the one type read that has
        # the element (FHIR R4), as the triage reading other types from a line's bytes does
        if rtype == "MedicationRequest" and res.get("doNotPerform") is True:
            return "doNotPerform"
        intents = self.drop_intent.get(rtype)
        if intents and isinstance(intent := res.get("intent"), str) and intent in intents:
            return f"intent {intent}"
        if rtype == "Condition":
            vs = verification_status(res.get("verificationStatus"))
            if vs in self.drop_verification.get("Condition", ()):
                return f"verificationStatus {vs}"
        return None

    def doubt(self, res: dict[str, Any]) -> str | None:
        """What of `res` that decides whether it counts, or stays open, is sent as its `_name`
        extension alone (FHIR R4 JSON: present, no value; e.g. a data-absent-reason): its
        status, a MedicationRequest's intent or doNotPerform; None nearly always (a status is
        required: one lookup). Asked of a record `drop_reason` keeps: a value it does give
        still decides (a proposal is dropped whatever its doNotPerform)."""
        rtype = res.get("resourceType")
        if rtype not in _DOUBTED:
            return None
        if "status" not in res and present(res, "status"):
            return STATUS_NOT_GIVEN
        if rtype != "MedicationRequest":
            return None
        if "intent" not in res and self.drop_intent.get(rtype) and present(res, "intent"):
            return "intent not given"
        if "doNotPerform" not in res and present(res, "doNotPerform"):
            return "doNotPerform not given"
        return None


STATUS_NOT_GIVEN = "status not given"  # (a `doubt`: its only one an open reading changes)
# the types whose status the reading rules read (Condition and Patient have none)
_DOUBTED = frozenset({*MEDICATION_TYPES, "Observation", "Immunization", "Procedure"})

# The tables of rules.toml: a table of resource types (each a list of codes), or fixed keys.
_TYPES = "resource types"
_TABLES: dict[str, Any] = {
    "drop_status": _TYPES,
    "drop_verification": _TYPES,
    "drop_intent": _TYPES,
    "condition": {"active": list, "missing_status_is_active": bool},
    "exposure": {"ongoing": list, "non_systemic_words": list},
}
_VERIFIED_TYPES = ("Condition",)  # the only type whose verificationStatus is read
_INTENT_TYPES = ("MedicationRequest",)  # the only type whose intent is read
# FHIR R4 MedicationRequest.intent (required binding)
R4_INTENT = (
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
)
# FHIR R4 (4.0.1) codes of what the rules compare (required bindings: a word not among them
# matches no record, and `canceled` for `cancelled` stopped cancelled Observations from being
# dropped without a word). Patient and Condition have no `status`.
R4_STATUS: dict[str, tuple[str, ...]] = {
    "Observation": (
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    ),
    "MedicationStatement": (
        "active",
        "completed",
        "entered-in-error",
        "intended",
        "stopped",
        "on-hold",
        "unknown",
        "not-taken",
    ),
    "MedicationRequest": (
        "active",
        "on-hold",
        "cancelled",
        "completed",
        "entered-in-error",
        "stopped",
        "draft",
        "unknown",
    ),
    "MedicationAdministration": (
        "in-progress",
        "not-done",
        "on-hold",
        "completed",
        "entered-in-error",
        "stopped",
        "unknown",
    ),
    "Medication": ("active", "inactive", "entered-in-error"),
    "Immunization": ("completed", "entered-in-error", "not-done"),
    "Procedure": (
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    ),
}


def _allowed_codes(table: str, key: str) -> tuple[tuple[str, ...], str] | None:
    """The FHIR R4 codes a list of `[table] key` may hold and what they are, for the error
    (None: not a list of codes)."""
    if table == "drop_status" and key == "*":
        every = sorted({c for codes in R4_STATUS.values() for c in codes})
        return tuple(every), "a status of any type these rules apply to"
    if table == "drop_status":
        return R4_STATUS.get(key, ()), f"{'an' if key[0] in 'AEIOU' else 'a'} {key} status"
    if table == "drop_verification":
        return R4_VERIFICATION_STATUS, "a Condition verificationStatus"
    if table == "drop_intent":
        return R4_INTENT, f"a {key} intent"
    if (table, key) == ("condition", "active"):
        return R4_CLINICAL_STATUS, "a Condition clinicalStatus"
    if (table, key) == ("exposure", "ongoing"):
        codes = tuple(dict.fromkeys(c for t in MEDICATION_TYPES for c in R4_STATUS[t]))
        return codes, f"a {', '.join(MEDICATION_TYPES[:-1])} or {MEDICATION_TYPES[-1]} status"
    return None


def _validate(path: Path, text: str, data: dict[str, Any]) -> None:
    lines = TomlLines(path, text)

    def fail(table: str, key: str, msg: str) -> MappingError:
        at = lines.table_key_line(table, key)
        where = f"{lines.shown}:{at}" if at is not None else lines.shown
        what = f"[{table}] key '{key}'" if key else f"[{table}]"
        return MappingError(f"{where}: {what}: {msg}")

    for table, value in data.items():
        if table not in _TABLES:
            near = did_you_mean(table, _TABLES)
            hint = f" ({near})" if near else f"; one of {', '.join(_TABLES)}"
            raise fail(table, "", "unknown table" + hint)
        if not isinstance(value, dict):
            raise fail(table, "", "must be a table")
        keys = _TABLES[table]
        for key, v in value.items():
            if keys == _TYPES:
                known = {"drop_verification": _VERIFIED_TYPES, "drop_intent": _INTENT_TYPES}.get(
                    table, ("*", *PIPELINE_TYPES)
                )
                if key not in known:
                    hint = did_you_mean(key, known) or f"one of {', '.join(known)}"
                    raise fail(table, key, f"not a resource type these rules apply to ({hint})")
                want: type = list
            elif key not in keys:
                near = did_you_mean(key, keys)
                hint = f" ({near})" if near else f"; one of {', '.join(keys)}"
                raise fail(table, key, "unknown key" + hint)
            else:
                want = keys[key]
            if want is bool and not isinstance(v, bool):
                raise fail(table, key, f"expected true or false (without quotes), got {v!r}")
            if want is list and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                raise fail(table, key, f'expected a list of texts, e.g. ["a", "b"], got {v!r}')
            allowed = _allowed_codes(table, key) if want is list else None
            if allowed is None:
                continue
            codes, what = allowed
            for word in v:
                if word not in codes:
                    hint = did_you_mean(word, codes) or (
                        f"one of {', '.join(codes)}" if codes else f"a {key} has no status"
                    )
                    raise fail(table, key, f"'{word}' is not {what} in FHIR R4 ({hint})")
