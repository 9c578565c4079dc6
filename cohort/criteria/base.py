"""Evaluation context and helpers shared by every criterion kind (pure: no I/O, no clock)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol, TypeVar

from cohort.criteria.days import condition_days, latest
from cohort.criteria.days import shown as shown  # (the kinds import it from here)
from cohort.criteria.ordering import Tie, newest_first
from cohort.criteria.recorded import obs_evidence
from cohort.criteria.windows import Span as Span  # (the kinds import these from here)
from cohort.criteria.windows import months_before as months_before
from cohort.criteria.windows import window_span as window_span
from cohort.criteria.windows import window_start as window_start
from cohort.model import (
    Code,
    ConditionFact,
    Evidence,
    ExposureFact,
    ImmunizationFact,
    NoValue,
    ObservationFact,
    ObsValue,
    PatientFacts,
    ProcedureFact,
    Quantity,
    Result,
    Status,
)

F = TypeVar("F", ConditionFact, ObservationFact, ExposureFact, ImmunizationFact, ProcedureFact)
SEVERITY = {Status.PASS: 0, Status.UNKNOWN: 1, Status.FAIL: 2}


class TerminologyLike(Protocol):
    """The part of cohort.terminology.Terminology the criteria use."""

    def concepts_for(self, codes: Iterable[Code], text: str = "") -> frozenset[str]: ...
    def medication_ingredients(self, codes: Iterable[Code], text: str = "") -> frozenset[str]: ...
    def ingredient_groups(self, ingredient: str) -> frozenset[str]: ...
    def prednisone_factor(self, ingredient: str) -> float | None: ...
    def product_names(self, codes: Iterable[Code]) -> list[str]: ...
    def canonical_unit(self, concept: str) -> str | None: ...
    def convert(self, q: Quantity, concept: str) -> float | None: ...
    def convert_to(self, q: Quantity, unit: str) -> float | None: ...
    def outside(self, q: Quantity, concept: str) -> tuple[float, Any, Any] | None: ...
    def ucum_only(self, q: Quantity) -> Quantity: ...
    def canonical_system(self, system: str) -> str: ...
    def titer(self, v: ObsValue) -> Any: ...
    def qualitative_value(self, v: ObsValue) -> str | None: ...
    def qualitative_flag(self, interpretation: Any) -> str | None: ...
    def qualitative_named(self, s: str) -> str | None: ...
    def label(self, concept: str) -> str: ...


@dataclass(frozen=True)
class Criterion:
    """One criterion of a trial file: id, kind and its validated parameters."""

    id: str
    kind: str
    type: str  # inclusion | exclusion
    title: str
    params: dict[str, Any]
    manual_when_unknown: bool = False
    missing_hint: str = ""
    time_limited: bool = False


@functools.lru_cache(maxsize=256)
def _outside(since: date) -> str:
    """The note of a result before its window: one text per window start (a dense chart has
    many such results, each asked about by several criteria)."""
    return f"outside window (before {since})"


@functools.lru_cache(maxsize=4096)
def _systemic(non_systemic: re.Pattern[str], route: str, text: str) -> bool:
    """Whether no non-systemic word is in an exposure's route or text: remembered, as charts
    repeat the same few routes and drug names and up to 7 criteria ask about each exposure."""
    return not non_systemic.search(f"{route} | {text}")


def iso(d: date | None) -> str:
    return d.isoformat() if d else ""


@dataclass
class Context:
    """One patient's facts with the terminology and the as-of date; caches concept lookups."""

    facts: PatientFacts
    term: TerminologyLike
    as_of: date
    site: dict[str, Any] = field(default_factory=dict)
    non_systemic: re.Pattern[str] | None = None
    active_statuses: frozenset[str] = frozenset({"active", "recurrence", "relapse"})
    missing_status_is_active: bool = True
    _concepts: dict[str, frozenset[str]] = field(default_factory=dict)
    _index: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    _sinces: set[date] = field(default_factory=set)  # window starts asked for (criteria.obsdays)
    _seen: set[int] | None = None  # when set, ids of the facts `matching` gave (criteria.obsdays)
    # when set, the runs of results `observations` could not order (criteria.ties); and the
    # results (ids) to put first in such a run
    _ties: list[Tie] | None = None
    _prefer: frozenset[int] = frozenset()
    # what a step after the criteria builds once per patient (criteria.searched); reset with
    # _index wherever the facts or their concepts change (`fresh`)
    _memo: dict[str, Any] = field(default_factory=dict)

    def fresh(self, **changes: Any) -> Context:
        """This context with `changes` (other facts, as_of, concepts ...) and every cache built
        from the facts emptied: the one place a new cache is reset too."""
        return replace(self, _index={}, _memo={}, _sinces=set(), _seen=None, **changes)

    def concepts(self, ref: str, codes: Iterable[Code], text: str = "") -> frozenset[str]:
        hit = self._concepts.get(ref)
        if hit is None:
            hit = self._concepts[ref] = self.term.concepts_for(codes, text)
        return hit

    def label(self, concepts: str | Iterable[str]) -> str:
        """What a reason calls a concept (its labels.csv label, else its name); several, or
        an evidence row's "a,b", each so, joined by "/". Evidence keeps the names."""
        names = concepts.split(",") if isinstance(concepts, str) else concepts
        return "/".join(self.term.label(n) for n in names)

    def matching(self, facts: Sequence[F], concepts: Iterable[str]) -> list[F]:
        """The facts (in their order) with any of `concepts`; one concept lookup per fact per
        patient, then set lookups, so 25 criteria do not rescan every record each time."""
        if not facts:
            return []  # (most patients have no procedure or immunization: nothing to index)
        if isinstance(concepts, Collection) and not concepts:
            # (a kind's optional key left out, an any_record's or a washout's `procedures`:
            # the records are not indexed for a criterion that asks for none of them)
            return []
        index = self._index.get(id(facts))
        if index is None:
            index = self._index[id(facts)] = {}
            for i, f in enumerate(facts):
                for c in self.concepts(f.ref, f.codes, f.text):
                    index.setdefault(c, []).append(i)  # ascending: built in fact order
        found = [hit for c in concepts if (hit := index.get(c)) is not None]
        if not found:
            return []
        hits = found[0] if len(found) == 1 else sorted(set().union(*found))
        out = [facts[i] for i in hits]
        if self._seen is not None:
            self._seen.update(map(id, out))
        return out

    # --- conditions -------------------------------------------------------------------------
    def conditions(self, concepts: Iterable[str]) -> list[ConditionFact]:
        return [
            c
            for c in self.matching(self.facts.conditions, concepts)
            if not ((c.onset or c.recorded) and (c.onset or c.recorded) > self.as_of)  # type: ignore[operator]
        ]

    def on_record(self, c: ConditionFact) -> bool | None:
        """Whether a condition `conditions` kept is dated on or before as_of on every day its
        date can stand for; None when its partial date also stands for days after as_of (on
        those the record is not known yet, docs/rules.md "Reading records")."""
        last = condition_days(c)[1]
        if c.onset_undated and c.onset is None:
            last = latest(c.recorded, c.recorded_last)  # an onset it cannot date: the record's
        return None if last is not None and last > self.as_of else True

    def active(self, c: ConditionFact) -> bool | None:
        """Whether the condition is active on as_of; None when it abated in a partial month or
        year that contains as_of (active on some of its days, not on others), or on a day not
        given while its status says active (FHIR con-4: an abated one is not; docs/rules.md)."""
        if c.abatement_undated:
            return None if self._active_status(c) else False
        if c.abatement and c.abatement <= self.as_of:
            if (c.abatement_last or c.abatement) <= self.as_of:  # its last possible day
                return False
            if not self._active_status(c):
                return False  # not active whatever the abatement day
            return None
        return self._active_status(c)

    def _active_status(self, c: ConditionFact) -> bool:
        if not c.clinical_status:
            return self.missing_status_is_active
        return c.clinical_status in self.active_statuses

    # --- observations -----------------------------------------------------------------------
    def observations(
        self, concepts: Iterable[str], since: date | None = None, panels: bool = False
    ) -> tuple[list[ObservationFact], list[Evidence]]:
        """Matching results dated in [since, as_of], newest first; and the ignored ones with why.

        A panel header is no result (its members and components are): left out, unless
        `panels` (the `grades` kind reads an assessment's components through it)."""
        want = set(concepts)
        if since:
            self._sinces.add(since)
        found = self.matching(self.facts.observations, want)
        if not found:
            return [], []  # (most asks: a chart has results of a few of the concepts asked)
        only = next(iter(want)) if len(want) == 1 else None  # then every match is of it
        used: list[ObservationFact] = []
        ignored: list[Evidence] = []
        for o in found:
            if o.panel and not panels:
                continue
            concept = only or sorted(want & self.concepts(o.ref, o.codes, o.text))[0]
            if o.when is None:
                ignored.append(self.obs_evidence(o, concept, "no date"))
            elif o.when > self.as_of:
                ignored.append(self.obs_evidence(o, concept, "after the as-of date"))
            elif since and o.when < since:
                ignored.append(self.obs_evidence(o, concept, _outside(since)))
            elif o.absent:
                ignored.append(self.obs_evidence(o, concept, "no value (dataAbsentReason)"))
            else:
                used.append(o)
        if len(used) > 1:
            ties = newest_first(used, self._prefer)
            if ties and self._ties is not None:
                self._ties += ties
        return used, ignored

    def obs_concept(self, o: ObservationFact, concepts: Iterable[str]) -> str:
        mine = self.concepts(o.ref, o.codes, o.text)
        hit = [c for c in concepts if c in mine]  # (no sets built: a few concepts asked)
        return min(hit) if hit else ""  # the first in sorted order

    def obs_evidence(
        self,
        o: ObservationFact,
        concept: str,
        note: str = "",
        value: str = "",
        unit: str = "",
        convert: bool = True,
    ) -> Evidence:
        """The result's evidence row, in the concept's canonical unit (criteria.recorded)."""
        return obs_evidence(self, o, concept, note, value, unit, convert)

    def numeric(self, o: ObservationFact, concept: str) -> float | None:
        q = o.value.quantity
        if q is None:
            return None
        if not q.unit and not q.code:
            # a bare number (valueInteger, unitless score) only counts for unitless concepts
            canonical = self.term.canonical_unit(concept) or ""
            return q.value if canonical in ("", "1") or canonical.startswith("{") else None
        return self.term.convert(q, concept)

    def systemic(self, e: ExposureFact) -> bool:
        if self.non_systemic is None:
            return True
        return _systemic(self.non_systemic, e.route, e.text)

    def current(self, e: ExposureFact) -> bool | None:
        """Whether the exposure's interval contains as_of; None when its partial dates cannot
        tell (it does for some of the days they stand for, not for others). A record with an
        end but no start may have started on any day up to its end (docs/rules.md)."""
        first, last = e.start, latest(e.start, e.start_last)
        if first is None and e.end is not None:
            first, last = date.min, latest(e.end, e.end_last)
        if self._contains(last, e.end, e.ongoing):
            return True
        if self._contains(first, latest(e.end, e.end_last), e.ongoing):
            return None
        return False

    def _contains(self, start: date | None, end: date | None, ongoing: bool) -> bool:
        if start is None or start > self.as_of:
            return False
        return ongoing or (end is not None and end >= self.as_of)

    # --- medications, immunizations, procedures ----------------------------------------------
    def exposures(self, concepts: Iterable[str]) -> list[ExposureFact]:
        return [
            e
            for e in self.matching(self.facts.exposures, concepts)
            if e.start is None or e.start <= self.as_of
        ]

    # records dated after as_of are not on record yet (as for exposures and conditions): a
    # procedure after as_of was a washout's "last dose" for the count-since-the-last-dose rule
    def immunizations(self, concepts: Iterable[str]) -> list[ImmunizationFact]:
        return [
            i
            for i in self.matching(self.facts.immunizations, concepts)
            if i.when is None or i.when <= self.as_of
        ]

    def procedures(self, concepts: Iterable[str]) -> list[ProcedureFact]:
        return [
            pr
            for pr in self.matching(self.facts.procedures, concepts)
            if pr.start is None or pr.start <= self.as_of
        ]


Kind = Callable[[Criterion, Context], Result]


def worst(results: Iterable[Status]) -> Status:
    """The most severe status (SEVERITY: fail, then unknown), pass when none."""
    found = set(results)  # (set tests, not max() with a key function: run per criterion)
    if Status.FAIL in found:
        return Status.FAIL
    return Status.UNKNOWN if Status.UNKNOWN in found else Status.PASS


def result(
    crit: Criterion,
    status: Status,
    reason: str,
    evidence: Iterable[Evidence] = (),
    ignored: Iterable[Evidence] = (),
    eligible_from: date | None = None,
    unconvertible: str = "",
    no_value: NoValue = NoValue.NONE,
    hint: str = "",
) -> Result:
    # (positional, in the field order: keywords cost ~1.8x for each of ~270k results a 10k run)
    named = unconvertible if status is Status.UNKNOWN else ""
    return Result(
        crit.id,
        status,
        reason,
        tuple(evidence),
        tuple(ignored),
        eligible_from if status is Status.FAIL else None,  # eligible_from
        crit.manual_when_unknown and status is Status.UNKNOWN,  # manual
        named,  # unconvertible
        no_value if named else NoValue.NONE,  # no_value: the kind of the results named
        hint if status is Status.UNKNOWN else "",  # hint
    )
