"""Server quirks a pull learned, remembered per site and base URL in the store's marks: later
nights start with the fallback instead of paying the refused request(s) again. A quirk is used
for REPROBE_DAYS after it was learned; then (or on --full-refresh) the full request is tried
again, so that a server upgrade is noticed: refused, the quirk is learned anew; accepted, it is
forgotten. Only a refusal (400/422) whose fallback then succeeded teaches a quirk. A refused
_include of Medication, or _lastUpdated, is a quirk of the type refused (TYPED): a server may
refuse _lastUpdated on one type only, which is then pulled in full, not every type."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cohort.store.schema import FHIR_MARK

from .fallback import id_param
from .kickoff import combo_asked
from .plan import COMBO_CODE, COMPONENT_CODE, DEFAULT_CATEGORIES, MED_TYPES, PULL_TYPES

if TYPE_CHECKING:
    from .puller import Params, Puller

REPROBE_DAYS = 30

# the quirks (their names are what the mark and run.json's `quirks` hold), and what each means
QUIRKS = {
    "no-count": "refuses _count",
    "observation-category": "requires category in an Observation search",
    "category-each": "takes one Observation category per search",
    "patient-each": "takes one patient per search",
    "observation-code-only": "refuses the combo-code / component-code it lists in an Observation"
    " search",
    "bulk-no-medication": "refuses Medication in a Bulk export's _type",
    "bulk-no-combo-code": "refuses combo-code in a Bulk export's Observation _typeFilter",
    "bulk-no-typefilter": "refuses _typeFilter in a Bulk export",
}
# the quirks of one resource type: "<name>:<type>" (no-include:MedicationRequest), each
# learned, used and tried again on its own; the types each may name
TYPED = {
    "no-include": "refuses _include of Medication in a search of",
    "no-lastupdated": "refuses _lastUpdated in a search of",
}
_TYPES = {"no-include": MED_TYPES, "no-lastupdated": (*PULL_TYPES, "Medication")}


def known_name(name: str) -> bool:
    """Whether `name` is a quirk's: one of QUIRKS, or "<name>:<type>" of TYPED."""
    base, _, rtype = name.partition(":")
    return name in QUIRKS or rtype in _TYPES.get(base, ())


def describe(name: str) -> str:
    """What quirk `name` means (the log's words)."""
    base, _, rtype = name.partition(":")
    return QUIRKS.get(name) or f"{TYPED[base]} {rtype}"


def mark_key(base_url: str) -> str:
    """The mark holding a server's quirks: {name: when learned (ISO instant)}."""
    return f"{FHIR_MARK}quirks:{base_url}"


def _instant(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age(stamp: str, now: float) -> timedelta | None:
    try:
        learned = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if learned.tzinfo is None:
        return None
    return datetime.fromtimestamp(now, UTC) - learned


def _parse(raw: str | None) -> dict[str, str]:
    """The known quirks of a mark's value; anything unreadable is taken for none."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if known_name(k) and isinstance(v, str)}


class Quirks:
    """The quirks known of one server: those used tonight (`on`), those learned tonight, and
    those tried again tonight (too old, or a full refresh). Thread-safe: parallel searches
    learn and pass them."""

    def __init__(self, raw: str | None, now: float, *, reprobe: bool) -> None:
        self.known = _parse(raw)
        self.used = frozenset(
            name
            for name, stamp in self.known.items()
            if not reprobe
            and (age := _age(stamp, now)) is not None
            and timedelta(0) <= age < timedelta(days=REPROBE_DAYS)  # (a future date: tried)
        )
        self.fresh: set[str] = set()
        self.changed = False
        self._lock = threading.Lock()

    def on(self, name: str) -> bool:
        """Whether tonight's requests start with the quirk's fallback."""
        return name in self.used

    def learn(self, name: str, now: float) -> bool:
        """Note a quirk whose fallback succeeded; True the first time tonight."""
        with self._lock:
            if name in self.fresh or name in self.used:
                return False
            self.fresh.add(name)
            self.known[name] = _instant(now)
            self.changed = True
            return True

    def passed(self, name: str) -> bool:
        """A known quirk tried again and the full request accepted: forgotten; True then."""
        with self._lock:
            if name not in self.known or name in self.fresh or name in self.used:
                return False
            del self.known[name]
            self.changed = True
            return True


def load(p: Puller) -> Quirks:
    """The server's quirks from the store, applied to the pull; one log line names them."""
    key = mark_key(p.s.base_url)
    q = Quirks(p.store.get_mark(p.site, key), p.client.clock(), reprobe=p.full_refresh)
    if q.on("no-count"):
        p.client.send_count = False
    if q.on("observation-category") and not p.obs_category:
        p.obs_category = list(DEFAULT_CATEGORIES)
    if q.on("category-each"):
        p.category_each = True
    if q.on("patient-each"):
        p.patient_each = True
    if p.full_refresh:
        # a full refresh sends no _lastUpdated, so it cannot try this quirk again: forgotten,
        # the next night asks with _lastUpdated (and learns it anew if still refused)
        for name in sorted(n for n in q.known if n.startswith("no-lastupdated:")):
            if q.passed(name):
                p.log.info("fhir %s: server quirk %s forgotten by --full-refresh", p.site, name)
    p.no_include |= {t for t in MED_TYPES if q.on(f"no-include:{t}")}
    p.no_since |= {t for t in _TYPES["no-lastupdated"] if q.on(f"no-lastupdated:{t}")}
    if q.used:
        p.log.info(
            "fhir %s: server quirks remembered from earlier nights: %s; tried again after %d "
            "days or with --full-refresh",
            p.site,
            ", ".join(f"{n} (learned {q.known[n][:10]})" for n in sorted(q.used)),
            REPROBE_DAYS,
        )
    return q


def learned(p: Puller, name: str) -> None:
    if p.quirks.learn(name, p.client.clock()):
        p.log.info(
            "fhir %s: server quirk learned: %s (%s); remembered for %d days",
            p.site,
            name,
            describe(name),
            REPROBE_DAYS,
        )


def confirm(p: Puller, tried: dict[str, tuple[Params, bool]], params: Params) -> None:
    """A search succeeded with `params`: the quirks whose fallback gave them are learned (not
    one after which a further fallback was needed: it may not have been the server's reason;
    nor one after which _count was dropped, which leaves the parameters as they were)."""
    for name, given in tried.items():
        if given == (params, p.client.send_count):
            learned(p, name)


def passed(p: Puller, name: str) -> None:
    if name in p.quirks.known and p.quirks.passed(name):
        p.log.info("fhir %s: server quirk no longer seen: %s; forgotten", p.site, name)


def searched(p: Puller, rtype: str, params: Params, counted: bool) -> None:
    """A search's first page was answered: the quirks its request shows the server lacks."""
    if counted:
        passed(p, "no-count")
    keys = {k for k, _ in params}
    if id_param(rtype, params):
        passed(p, "patient-each")
    if "_include" in keys:
        passed(p, f"no-include:{rtype}")
    if "_lastUpdated" in keys:
        passed(p, f"no-lastupdated:{rtype}")
    if rtype == "Observation":
        if any(k in (COMBO_CODE, COMPONENT_CODE) for k, _ in params):
            passed(p, "observation-code-only")
        category = dict(params).get("category")
        if not category:
            passed(p, "observation-category")
        elif "," in category:
            passed(p, "category-each")


def kicked_off(p: Puller, params: Params, dropped: list[str]) -> None:
    """A Bulk kick-off was taken with `params`, after dropping what `dropped` names."""
    for name in dropped:
        learned(p, name)
    if "Medication" in dict(params)["_type"].split(","):
        passed(p, "bulk-no-medication")
    if any(k == "_typeFilter" for k, _ in params):
        passed(p, "bulk-no-typefilter")
    if combo_asked(params):
        passed(p, "bulk-no-combo-code")


def save(p: Puller) -> None:
    """Write the quirks known (if changed tonight) and show them in the report."""
    if p.quirks.changed:
        p.store.set_mark(p.site, mark_key(p.s.base_url), json.dumps(p.quirks.known, sort_keys=True))
        p.quirks.changed = False
    p.report.quirks = dict(sorted(p.quirks.known.items()))
