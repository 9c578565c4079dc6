"""Which records each concept list of a criteria file is matched against, and the error for a
concept whose mapping rows are all for other records.

The records of a key are data in registry.py (each kind's and inline table's `reads`, the
[trial] table's HEAD_READS); a concept's are the concept files of its rows (labs.csv:
Observations). Plasmapheresis moved from a washout's `procedures` into its `concepts` (medication
concepts) passed `check` and `run` and matched no record: the criterion was off without a word.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from cohort.criteria.registry import (
    CONDITION_CHECK,
    HEAD_READS,
    KINDS,
    LAB_CHECK,
    RECORDS,
    SAME_ROLE,
    Reads,
    tables_of,
)

_CHECKS: Reads = {**CONDITION_CHECK.reads, **LAB_CHECK.reads}  # a check's keys, either sort


@dataclass(frozen=True)
class Reader:
    """A concept key: the records it reads, its name, who reads it ("kind 'washout'", "a lab
    check") and the records the other concept keys there read (for a "did you mean")."""

    records: str
    key: str
    owner: str
    others: Reads


HEAD = Reader(HEAD_READS["screen_concepts"], "screen_concepts", "the [trial] table", HEAD_READS)


def readers(kind: str, params: Mapping[str, Any]) -> dict[str, Reader]:
    """The Reader of each concept key of a criterion, by its path as `concept_refs` gives it
    (`concepts`, `alt.concepts`, `measures[0].concepts`, `checks[1].lab`)."""
    spec = KINDS.get(kind)
    if spec is None:
        return {}
    out = {k: Reader(r, k, f"kind '{kind}'", spec.reads) for k, r in spec.reads.items()}
    for key, table, _ in tables_of(kind, params):
        others = _CHECKS if key.startswith("checks[") else table.reads
        for k, r in table.reads.items():
            out[f"{key}.{k}"] = Reader(r, k, table.name, others)
    return out


def records_problem(reader: Reader, name: str, files: Collection[str]) -> str | None:
    """Why concept `name`, whose rows are in `files` (`mappings/concepts/labs.csv`), matches no
    record `reader` reads; None when a row of it is in a file of those records, or in local.csv
    or another file named for no records (a site's own codes, for any record)."""
    stems = {PurePosixPath(f).stem for f in files}
    if not stems or reader.records in stems or not stems <= RECORDS.keys():
        return None
    what = " and ".join(RECORDS[s] for s in RECORDS if s in stems)
    where = ", ".join(sorted({PurePosixPath(f).name for f in files}))
    why = (
        f"concept '{name}' is mapped for {what} records only ({where}), but '{reader.key}' of "
        f"{reader.owner} reads {RECORDS[reader.records]} records"
    )
    role = next((keys for keys in SAME_ROLE if reader.key in keys), ())
    near = [k for k in role if k != reader.key and reader.others.get(k) in stems]
    return why + (f" (did you mean '{near[0]}'?)" if near else "")
