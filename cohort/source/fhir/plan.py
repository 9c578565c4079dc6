"""Query plan helpers: CapabilityStatement reading, URL-length splitting, and the PullReport."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

PULL_TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "Immunization",
    "Procedure",
)
MED_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")
BY_CODE = frozenset({"Observation", "Procedure"})  # other types: everything of the patient
# Observation search parameters (R4) that also match a component's code: `combo-code` (the
# record's code or a component's) and `component-code` (a component's only)
COMBO_CODE, COMPONENT_CODE = "combo-code", "component-code"
DEFAULT_CATEGORIES = (
    "laboratory",
    "vital-signs",
    "survey",
    "exam",
    "social-history",
    "procedure",
    "imaging",
    "therapy",
    "activity",
)


OVERLAP = timedelta(minutes=5)


def minus_overlap(mark: str, overlap: timedelta = OVERLAP) -> str:
    try:
        t = datetime.fromisoformat(mark.replace("Z", "+00:00"))
    except ValueError:
        return mark
    return (t - overlap).isoformat().replace("+00:00", "Z")


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def token_pairs(tokens: list[str], match_system: bool) -> dict[tuple[str | None, str], None]:
    """(system, code) of "system|code" tokens as a search asks for them, in order: the system
    None (any system variant) unless `match_system`."""
    out: dict[tuple[str | None, str], None] = {}
    for tok in tokens:
        system, sep, code = tok.rpartition("|")
        if code:
            out[(system if match_system and sep and system else None, code)] = None
    return out


def search_values(tokens: list[str], match_system: bool) -> list[str]:
    """Search values for "system|code" tokens: bare codes (any system variant) unless asked."""
    return [
        f"{_escape(system)}|{_escape(code)}" if system else _escape(code)
        for system, code in token_pairs(tokens, match_system)
    ]


def token_hash(tokens: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(tokens)).encode()).hexdigest()[:12]


@dataclass
class Capability:
    """What a server says it supports (empty search-param sets mean 'not stated': assume yes)."""

    types: dict[str, set[str]] = field(default_factory=dict)
    includes: dict[str, set[str]] = field(default_factory=dict)
    common: set[str] = field(default_factory=set)
    operations: set[str] = field(default_factory=set)
    software: str = ""

    @classmethod
    def parse(cls, cs: dict[str, Any]) -> Capability:
        """Read what a CapabilityStatement states; elements of an unexpected shape (a string
        where an object belongs) are passed over, not a crash."""
        software = cs.get("software")
        cap = cls(software=str(software.get("name", "")) if isinstance(software, dict) else "")
        for rest in _dicts(cs.get("rest")):
            if rest.get("mode", "server") != "server":
                continue
            cap.common |= _names(rest.get("searchParam"))
            cap.operations |= {n.lstrip("$") for n in _names(rest.get("operation"))}
            for res in _dicts(rest.get("resource")):
                rtype = res.get("type")
                if not isinstance(rtype, str):
                    continue
                cap.types[rtype] = _names(res.get("searchParam"))
                inc = res.get("searchInclude")
                cap.includes[rtype] = (
                    {i for i in inc if isinstance(i, str)} if isinstance(inc, list) else set()
                )
                cap.operations |= {n.lstrip("$") for n in _names(res.get("operation"))}
        return cap

    def has_type(self, rtype: str) -> bool:
        return rtype in self.types

    def pulls(self, rtype: str) -> bool:
        """Whether `rtype` is asked for: listed, or Patient, asked regardless (charts without
        it read as unknown everywhere, so a server without it fails the run, as on a 404)."""
        return rtype == "Patient" or rtype in self.types

    def has_param(self, rtype: str, name: str) -> bool:
        params = self.types.get(rtype)
        if params is None:
            return False
        return not params or name in params or name in self.common

    def lists_param(self, rtype: str, name: str) -> bool:
        """Whether the statement names search parameter `name` for `rtype` (no assumption)."""
        return name in self.types.get(rtype, set()) or name in self.common

    def code_params(self) -> tuple[str, ...]:
        """The parameters an Observation search by mapped code uses, so that a record whose
        only mapped code is a component's is found too: `combo-code` where listed, else `code`
        and `component-code` (two searches), else `code` alone (components not searched)."""
        if self.lists_param("Observation", COMBO_CODE):
            return (COMBO_CODE,)
        if self.lists_param("Observation", COMPONENT_CODE):
            return ("code", COMPONENT_CODE)
        return ("code",)

    def has_include(self, rtype: str, spec: str) -> bool:
        inc = self.includes.get(rtype)
        return inc is None or not inc or spec in inc or "*" in inc


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _names(value: Any) -> set[str]:
    """The `name`s of a list of searchParam / operation elements."""
    return {n for v in _dicts(value) if isinstance(n := v.get("name"), str)}


def chunk_values(prefix_len: int, values: list[str], limit: int, most: int = 0) -> list[list[str]]:
    """Split `values` (comma-joined) into groups whose URL stays within `limit` chars and,
    given `most`, that hold at most `most` values each."""
    groups: list[list[str]] = []
    cur: list[str] = []
    size = prefix_len
    for v in values:
        add = len(quote(v, safe=",|:/")) + 3  # ",": encoded as %2C at worst
        if cur and (size + add > limit or len(cur) == most):
            groups.append(cur)
            cur, size = [], prefix_len
        cur.append(v)
        size += add
    if cur:
        groups.append(cur)
    return groups


@dataclass
class PullReport:
    """What one pull did: request accounting, store effects, warnings, marks (JSON-serialisable)."""

    site: str
    base_url: str
    mode: str = "search"  # search | bulk
    incremental: bool = False
    full_refresh: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    waits: dict[str, float] = field(default_factory=dict)
    elapsed: dict[str, float] = field(default_factory=dict)  # per phase, seconds
    stored: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # full refresh: records the server no longer has
    # Bulk: records of screened patients an unfiltered export held whose code no mapping has
    # (the search path, asking by mapped code, never fetches them): counted, not stored
    not_stored: dict[str, int] = field(default_factory=dict)
    # Bulk: records of types the kick-off did not ask for, in its files: counted, not stored
    skipped_types: dict[str, int] = field(default_factory=dict)
    # stored records of types cohort does not read (Encounter ..., stored by the Bulk loads of
    # earlier versions), dropped once a pull completes
    dropped_types: dict[str, int] = field(default_factory=dict)
    patients_screened: int = 0
    patients_new: int = 0
    warnings: list[str] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)
    # the server's quirks known after the pull (quirks.py): name -> when learned
    quirks: dict[str, str] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_requests"] = self.total_requests
        d["waits"] = {k: round(v, 3) for k, v in self.waits.items()}
        d["elapsed"] = {k: round(v, 3) for k, v in self.elapsed.items()}
        return d
