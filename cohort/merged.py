"""Merged patient records: a Patient that says it was replaced by another is read as that one."""

# An EHR that merges two charts of one person keeps the old Patient with a link of type
# `replaced-by` ("must no longer be used": FHIR R4 patient.html#links) and may leave records
# pointing at it; the surviving Patient may say so too, with a link of type `replaces` ("should
# be consulted to retrieve additional referenced information"). Listed on their own, the two
# ids were two candidate rows for one person, and each row missed the other's evidence. The old
# record's clinical records are read with the patient that replaced it (chains followed), the
# old Patient itself is not; where the patient that replaced it is not in the store, the old
# record is all there is and is read as it is.

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

from cohort.model import PatientFacts
from cohort.store import Store, reference_id
from cohort.store.census import Side

__all__ = ["LINKED", "Merges", "Side", "family", "linked", "merge_links", "merges_of"]


class Merges:
    """Old patient id -> the id of the stored Patient it was (finally) replaced by."""

    def __init__(self, into: dict[str, str], looped: frozenset[str] = frozenset()) -> None:
        self.into = into
        # charts whose replaced-by links lead back to them: merged into nothing, read as they are
        self.looped = looped
        self.olds: dict[str, list[str]] = {}
        for old, new in sorted(into.items()):
            self.olds.setdefault(new, []).append(old)

    def mark(self, facts: PatientFacts) -> PatientFacts:
        """`facts` of a chart whose replaced-by links loop, marked so: `active_record` names the
        loop, not a chart missing from the data (the one it names is there)."""
        if facts.patient.id in self.looped and facts.patient.replaced_by:
            facts.patient = replace(facts.patient, replaced_loop=True)
        return facts

    def __len__(self) -> int:
        return len(self.into)

    def survivors(self, ids: Iterable[str]) -> list[str]:
        """`ids` with each old id replaced by its survivor, sorted, once each."""
        return sorted({self.into.get(pid, pid) for pid in ids})

    def records(
        self,
        store: Store,
        site: str,
        ids: list[str],
    ) -> Iterator[tuple[str, list[dict[str, Any]], Side | None]]:
        """(patient id, records, side facts) of each of `ids` (survivors), with the records and
        side facts (Store.side_facts) of the ids they replaced."""
        wanted = self.query(ids)
        side = store.side_facts(site, wanted)
        held: dict[str, list[dict[str, Any]]] = {}
        for pid, resources in store.iter_by_patient(site, wanted):
            owner = self.into.get(pid)
            if owner is not None:
                keep = [r for r in resources if r.get("resourceType") != "Patient"]
                held.setdefault(owner, []).extend(keep)
            elif pid in self.olds:
                held.setdefault(pid, []).extend(resources)
            else:
                yield pid, resources, side.get(pid)
        for pid, resources in held.items():
            yield pid, resources, self._side(pid, side)

    def query(self, ids: list[str]) -> list[str]:
        """`ids` and the old ids they replaced: the patients whose records to read."""
        if not self.olds:
            return ids
        return ids + [old for pid in ids for old in self.olds.get(pid, ())]

    def _side(self, pid: str, side: dict[str, Side]) -> Side | None:
        parts = [side[p] for p in (pid, *self.olds[pid]) if p in side]
        if not parts:
            return None
        counts: dict[str, int] = {}
        latest: dict[str, date] = {}
        for s in parts:
            for rtype, n in s[2].items():
                counts[rtype] = counts.get(rtype, 0) + n
            for rtype, day in s[3].items():
                latest[rtype] = max(day, latest.get(rtype, day))
        return [d for s in parts for d in s[0]], [m for s in parts for m in s[1]], counts, latest


# (bytes every Patient with a merge link holds, either type: Store.iter_type's filter)
LINKED = b"replace"


def linked(res: dict[str, Any], kind: str) -> list[str]:
    """The ids of the other patients a Patient record's links of type `kind` name (in order;
    also what extract.patient reads `Patient.replaced_by` from)."""
    pid = res.get("id")
    links = res.get("link")
    out: list[str] = []
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("type") == kind:
            other = link.get("other")
            ref = reference_id(other.get("reference")) if isinstance(other, dict) else None
            if isinstance(pid, str) and ref and ref != pid:
                out.append(ref)
    return out


def merge_links(patients: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Old patient id -> the id that replaced it, as `patients` (Patient records) say: the old
    record's own first `replaced-by` link, else the one record whose `replaces` link names it.
    Where several say they replaced it, the last of them is taken when the others were merged
    into it (each one's chain of the links above leads there: an EHR that merged A into B may
    leave A's `replaces` link beside B's); else neither."""
    direct: dict[str, str] = {}
    claims: dict[str, set[str]] = {}
    for res in patients:
        pid = res.get("id")
        if not isinstance(pid, str):
            continue
        new = linked(res, "replaced-by")
        if new:
            direct[pid] = new[0]
        for old in linked(res, "replaces"):
            claims.setdefault(old, set()).add(pid)
    shared: dict[str, set[str]] = {}
    for old, by in claims.items():
        if old in direct:
            continue
        if len(by) == 1:
            direct[old] = next(iter(by))
        else:
            shared[old] = by
    # weighed on the links above only (own, or the one claim), never on another shared chart's
    # outcome: that would make the result depend on the order the Patients were read in
    above = dict(direct)
    for old, by in shared.items():
        last = [c for c in by if all(c == b or c in _chain(above, b) for b in by)]
        if len(last) == 1:
            direct[old] = last[0]
    return direct


def _chain(direct: dict[str, str], pid: str) -> set[str]:
    """The ids `pid`'s links lead to, one after the other (a loop ends it)."""
    seen: set[str] = set()
    while pid in direct and direct[pid] not in seen:
        pid = direct[pid]
        seen.add(pid)
    return seen


def merges_of(store: Store, site: str) -> Merges:
    """The site's merged Patient records (Patient.link of type replaced-by or replaces)."""
    direct = merge_links(store.iter_type(site, "Patient", containing=LINKED))
    into: dict[str, str] = {}
    looped: set[str] = set()
    for old in direct:
        # follow the chain to its last stored Patient; a loop merges nothing
        seen, cur, last = {old}, old, None
        while cur in direct:
            cur = direct[cur]
            if cur in seen:
                last = None
                looped.add(old)
                break
            seen.add(cur)
            if store.get(site, "Patient", cur) is None:
                break
            last = cur
        if last is not None:
            into[old] = last
    return Merges(into, frozenset(looped))


def family(links: dict[str, str], ids: set[str]) -> set[str]:
    """The patients joined to any of `ids` by merges (`links`: old id -> the id that replaced
    it), either way and down chains: the charts the records say are the same people. Those not
    in `ids` themselves."""
    edges: dict[str, set[str]] = {}
    for old, new in links.items():
        edges.setdefault(old, set()).add(new)
        edges.setdefault(new, set()).add(old)
    seen = set(ids)
    todo = [pid for pid in ids if pid in edges]
    while todo:
        for other in edges[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen - ids
