"""What the reading rules (mappings/rules.toml) drop and count as active or ongoing."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.errors import MappingError
from cohort.extract.elements import first_code

__all__ = ["ReadingRules"]


@dataclass(frozen=True)
class ReadingRules:
    """Statuses to drop, what counts as active/ongoing; loaded from mappings/rules.toml."""

    drop_status: dict[str, frozenset[str]]
    drop_verification: dict[str, frozenset[str]]
    active_clinical: frozenset[str]
    missing_status_is_active: bool
    ongoing: frozenset[str]
    non_systemic: re.Pattern[str] = field(default=re.compile(r"(?!x)x"))
    # resourceType -> the statuses that drop it ("*" and its own), filled as types are met
    _dropped: dict[str, frozenset[str]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def load(cls, path: Path) -> ReadingRules:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MappingError(f"{path}: cannot read reading rules: {exc}") from exc

        def table(key: str) -> dict[str, frozenset[str]]:
            raw = data.get(key, {})
            if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
                raise MappingError(f"{path}: [{key}] must map resource types to lists of codes")
            return {k: frozenset(str(x) for x in v) for k, v in raw.items()}

        cond = data.get("condition", {})
        expo = data.get("exposure", {})
        words = [re.escape(str(w)) for w in expo.get("non_systemic_words", [])]
        pattern = re.compile(r"\b(?:" + "|".join(words) + ")", re.I) if words else cls.non_systemic
        return cls(
            drop_status=table("drop_status"),
            drop_verification=table("drop_verification"),
            active_clinical=frozenset(cond.get("active", ["active", "recurrence", "relapse"])),
            missing_status_is_active=bool(cond.get("missing_status_is_active", True)),
            ongoing=frozenset(expo.get("ongoing", ["active", "on-hold", "intended"])),
            non_systemic=pattern,
        )

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
        if isinstance(status, str) and status in self.dropped_statuses(rtype):
            return f"status {status}"
        if rtype == "Condition":
            vs = first_code(res.get("verificationStatus"))
            if vs in self.drop_verification.get("Condition", ()):
                return f"verificationStatus {vs}"
        return None
