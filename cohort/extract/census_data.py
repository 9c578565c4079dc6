"""What a read's summarised records leave: per-patient dates and counts, and a code census."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from cohort.extract.elements import obs_value
from cohort.model import Code, ObsValue, Quantity
from cohort.store.schema import COUNTS_MARK, LATEST_MARK

__all__ = ["SAMPLES", "Census", "CensusEntry", "add_sample", "value_summary"]

SAMPLES = 3  # example values / quantities kept per code, as coverage shows them


def value_summary(v: ObsValue) -> tuple[str, str, Quantity | None]:
    """(example value as text, unit as written, quantity) of an Observation value."""
    if v.quantity is not None:
        q = v.quantity
        return f"{q.comparator}{q.value:g}", q.code or q.unit, q
    if v.ratio is not None:
        return f"{v.ratio[0].value:g}:{v.ratio[1].value:g}", "", None
    text = v.string or v.text or (v.codes[0].display if v.codes else "")
    return text[:40], "", None


@dataclass
class CensusEntry:
    """One distinct code element seen on summarised records of one type."""

    rtype: str
    codes: tuple[Code, ...]
    text: str
    records: int = 0
    patients: set[str] = field(default_factory=set)
    values: list[str] = field(default_factory=list)
    units: set[str] = field(default_factory=set)
    quantities: list[Quantity] = field(default_factory=list)

    def sampling(self, quantity: bool) -> bool:
        """Whether a record can still add a sample value (or, when it carries a `quantity`, a
        sample quantity); once not, it adds at most its unit."""
        return len(self.values) < SAMPLES or (quantity and len(self.quantities) < SAMPLES)

    def to_row(self) -> tuple[str, str, str, int, str, str]:
        sample = {
            "values": self.values,
            "units": sorted(self.units),
            "quantities": [
                [q.value, q.unit, q.code, q.comparator, q.system] for q in self.quantities
            ],
        }
        return (
            self.rtype,
            orjson.dumps([[c.system, c.code, c.display] for c in self.codes]).decode(),
            self.text,
            self.records,
            orjson.dumps(sorted(self.patients)).decode(),
            orjson.dumps(sample).decode(),
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> CensusEntry:
        rtype, codes, text, records, patients, sample = row
        s = orjson.loads(sample)
        return cls(
            rtype=rtype,
            codes=tuple(Code(*c) for c in orjson.loads(codes)),
            text=text,
            records=int(records),
            patients=set(orjson.loads(patients)),
            values=list(s.get("values", [])),
            units=set(s.get("units", [])),
            # (a row written before Quantity.system has 4 cells: no system)
            quantities=[Quantity(float(q[0]), *q[1:5]) for q in s.get("quantities", [])],
        )


@dataclass
class Census:
    """What a read summarised: record dates per patient, per type the records and the latest
    date of each patient, and one entry per type and distinct code element.

    Bounded by patients x distinct codes, not by the number of records; each reading process
    fills its own and the writer stores them one after the other.
    """

    records: int = 0
    dates: dict[str, set[str]] = field(default_factory=dict)
    # type -> code element's JSON -> entry: one file may hold an order and its administration
    # under the same element, each counted under its own type
    entries: dict[str, dict[bytes, CensusEntry]] = field(default_factory=dict)
    # type -> patient -> summarised records: what a criterion that finds nothing says is on
    # file besides (criteria.searched); one integer increment per record on the hot path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # type -> patient -> ISO date of the latest dated one (not of medication records, whose
    # every start is kept): what that row dates them by; one comparison per dated record
    latest: dict[str, dict[str, str]] = field(default_factory=dict)

    def date_rows(self) -> list[tuple[str, str]]:
        """(patient, text) side_dates rows: the date tokens, then after COUNTS_MARK the
        per-type counts, each with its latest date where one is known
        ("2026-01-01,m2026-02-02;MedicationRequest=3,Observation=12,Observation@2026-01-01")."""
        counted: dict[str, list[str]] = {}
        for rtype in sorted(self.counts):
            latest = self.latest.get(rtype, {})
            for pid, n in self.counts[rtype].items():
                tokens = counted.setdefault(pid, [])
                tokens.append(f"{rtype}={n}")
                day = latest.get(pid)
                if day is not None:
                    tokens.append(f"{rtype}{LATEST_MARK}{day}")
        rows = []
        for pid, ds in self.dates.items():
            tail = counted.pop(pid, None)
            text = ",".join(sorted(ds))
            rows.append((pid, f"{text}{COUNTS_MARK}{','.join(tail)}" if tail else text))
        rows += [(pid, COUNTS_MARK + ",".join(tail)) for pid, tail in counted.items()]
        return rows

    def all_entries(self) -> list[CensusEntry]:
        return [e for by_code in self.entries.values() for e in by_code.values()]

    def entry_rows(self) -> list[tuple[str, str, str, int, str, str]]:
        return [e.to_row() for e in self.all_entries()]


def add_sample(entry: CensusEntry, res: dict[str, Any]) -> None:
    vq = res.get("valueQuantity")
    if isinstance(vq, dict) and not entry.sampling(quantity=True):
        unit = vq.get("code") or vq.get("unit")
        if isinstance(unit, str) and unit:
            entry.units.add(unit)
        return
    value, unit, q = value_summary(obs_value(res))
    if value and value not in entry.values and len(entry.values) < SAMPLES:
        entry.values.append(value)
    if unit:
        entry.units.add(unit)
    if q is not None and len(entry.quantities) < SAMPLES:
        entry.quantities.append(q)
