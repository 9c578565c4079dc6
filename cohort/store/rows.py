"""What the store keeps of one resource, and which of two versions of it is newer (pure)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cohort.errors import StoreError
from cohort.instants import parse_instant
from cohort.source.checkers import ID_RE
from cohort.source.names import FileNames

__all__ = [
    "PutStats",
    "Row",
    "Tomb",
    "Tombstones",
    "bound",
    "compare_versions",
    "patient_of",
    "prepare_row",
    "reference_id",
    "same_content",
]


@dataclass
class PutStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    older: int = 0  # an older version than the stored one: never replaces it
    # inserted, by type: the snapshot guard weighs what a read lacks against the records stored
    # before it, not also those it added (cohort.ingest)
    new: dict[str, int] = field(default_factory=dict)


# patient reference -> its id: a chart repeats one reference on every record (~1 us saved a
# kept record); bounded like the other memos
_PATIENT_IDS: dict[str, str | None] = {}
_MEMO_MAX = 100_000
_REF_MAX = 256
# An id as a reference may carry it: FHIR's id pattern, loosened to the characters of a URL
# path segment and 256 of them, because servers that pull does not validate issue ids like
# "a_b" or longer ones, and dropping their patients or Medications would be silent (a washout
# then passes). Whitespace, controls, direction marks, non-ASCII and "'" (the CSV guard's
# mark) still name nobody.
_REF_ID = re.compile(r"[A-Za-z0-9\-._~%!$&()*+,;=:@]{1,256}")


def reference_id(ref: object, rtype: str = "Patient") -> str | None:
    """Id in a reference to `rtype`: "Patient/1", "https://x/fhir/Patient/1", ".../_history/2".

    None unless the id is one a reference can carry (`_REF_ID`): a record naming "Patient/bad
    id" belongs to no patient. Every place that asks which patient a record is about (the
    store, screening, facts, the server pull) asks here, so they all agree."""
    if not isinstance(ref, str):
        return None
    if rtype != "Patient":
        return _reference_id(ref, rtype)
    if ref in _PATIENT_IDS:
        return _PATIENT_IDS[ref]
    pid = _reference_id(ref, rtype)
    if len(ref) <= _REF_MAX:  # (bounded in bytes too: a reference can be any length)
        if len(_PATIENT_IDS) >= _MEMO_MAX:
            _PATIENT_IDS.clear()
        _PATIENT_IDS[ref] = pid
    return pid


def _reference_id(ref: str, rtype: str) -> str | None:
    head = len(rtype) + 1
    if ref.startswith(rtype) and ref[head - 1 : head] == "/" and ID_RE.fullmatch(ref, head):
        return ref[head:]  # the usual shape ("Patient/<id>"), without splitting (a kept record)
    parts = ref.strip().split("?", 1)[0].split("#", 1)[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == rtype and _REF_ID.fullmatch(parts[-1]):
        return parts[-1]
    return None


def patient_of(res: dict[str, Any]) -> str | None:
    """The patient a record is about: a Patient's id, else its subject's (or patient's)."""
    if res.get("resourceType") == "Patient":
        rid = res.get("id")
        return rid if isinstance(rid, str) else None
    for key in ("subject", "patient"):
        ref = res.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            pid = reference_id(ref["reference"])
            if pid is not None:
                return pid
    return None


def _counter(v: str) -> bool:
    """A versionId that reads as a counter: ASCII digits only ("²" is a digit to isdigit, not
    to int), and not more of them than int() reads (4,300)."""
    return len(v) <= 64 and v.isascii() and v.isdigit()


def compare_versions(
    new: tuple[str | None, str | None], old: tuple[str | None, str | None]
) -> int | None:
    """+1 when `new` (versionId, lastUpdated) is newer, -1 older, None when undecided."""
    nv, nl = new
    ov, ol = old
    if nv is not None and ov is not None and _counter(nv) and _counter(ov) and int(nv) != int(ov):
        return 1 if int(nv) > int(ov) else -1
    if nl is not None and ol is not None and nl != ol:
        a, b = parse_instant(nl), parse_instant(ol)
        if a is not None and b is not None:
            if a != b:
                return 1 if a > b else -1
        else:
            return 1 if nl > ol else -1
    return None


# (type, id, versionId, lastUpdated, patient, origin, hash, json): one resource ready to store
Row = tuple[str, str, str | None, str | None, str | None, str, str, bytes]


# (type, id, versionId, lastUpdated) of a record the triage summarised (not stored): what a
# `snapshot = false` read needs to drop the stored copy it replaces (Store.doomed)
Tomb = tuple[str, str, str | None, str | None]


class Tombstones:
    """The tombstones of a stretch of a read, one per key: its newest, the one read last where
    versions do not decide (the order `Store._put_many` keeps rows in).

    A row read after a tombstone of its key overrules it unless the tombstone is newer: the row
    is then the copy to keep (`overrule`). What is left deletes older stored copies."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], Tomb] = {}

    def __len__(self) -> int:
        return len(self.by_key)

    def add(self, tombs: Iterable[Tomb]) -> None:
        """Tombstones read after those held (in read order)."""
        by_key = self.by_key
        for tomb in tombs:
            key = (tomb[0], tomb[1])
            old = by_key.get(key)
            if old is None or compare_versions((tomb[2], tomb[3]), (old[2], old[3])) != -1:
                by_key[key] = tomb

    def overrule(self, rows: Iterable[Row]) -> None:
        """Rows read after the tombstones held: each drops its key's tombstone unless that is
        newer."""
        by_key = self.by_key
        if not by_key:
            return
        for row in rows:
            tomb = by_key.get((row[0], row[1]))
            if tomb is not None and compare_versions((row[2], row[3]), (tomb[2], tomb[3])) != -1:
                del by_key[(row[0], row[1])]

    def take(self) -> list[Tomb]:
        """The tombstones held, handing over an empty set."""
        out = list(self.by_key.values())
        self.by_key = {}
        return out


def prepare_row(res: dict[str, Any], origin: str, raw: bytes | None = None) -> Row:
    """What the store keeps of one resource; pure, so parallel readers can do it.

    `raw`, when given, is the resource's JSON text exactly as read (an NDJSON line): stored
    as is instead of serialising `res` again.
    """
    rtype, rid = res.get("resourceType"), res.get("id")
    if not isinstance(rtype, str) or not isinstance(rid, str):
        where = FileNames().show(origin)  # (a file named after its patient: no name)
        raise StoreError(f"cannot store a resource without resourceType and id ({where})")
    meta = res.get("meta")
    if isinstance(meta, dict):
        version = meta.get("versionId") if isinstance(meta.get("versionId"), str) else None
        updated = meta.get("lastUpdated") if isinstance(meta.get("lastUpdated"), str) else None
    else:
        version = updated = None
    blob = raw.strip() if raw is not None else orjson.dumps(res)
    # A hash of the bytes stored: equal bytes are equal content. Different bytes may still be
    # the same content (keys in another order, a Bundle entry against an NDJSON line): the
    # store then compares the two as key-sorted JSON (`same_content`). Key-sorting every record
    # here instead cost ~2.3 us of the ~36 us a kept record costs (bench/RESULTS.md).
    digest = hashlib.sha256(blob).hexdigest()
    return (rtype, rid, version, updated, patient_of(res), origin, digest, blob)


def tomb_of(rtype: str, res: Any) -> Tomb | None:
    """A record's tombstone, (type, id, versionId, lastUpdated), for one not stored (a
    summarised record, a Bulk record of a patient not screened); None without an id. Its
    versions are read as prepare_row reads a kept record's."""
    rid = res.get("id") if isinstance(res, dict) else None
    if not isinstance(rid, str):
        return None
    meta = res.get("meta")
    if not isinstance(meta, dict):
        return (rtype, rid, None, None)
    version, updated = meta.get("versionId"), meta.get("lastUpdated")
    return (
        rtype,
        rid,
        version if isinstance(version, str) else None,
        updated if isinstance(updated, str) else None,
    )


def bound(site: str, source: str, rows: Iterable[Row]) -> list[tuple[Any, ...]]:
    """The parameters of `schema.INSERT` for `rows` of `site` read from `source`.

    Python's sqlite3 module looks for an adapter (~0.25 us) for each parameter that is not an
    exact str, int, float or bytearray: every None and bytes value cost that. The columns that
    may be NULL go as 0 for None (INSERT's NULLIF makes it NULL again: text never equals the
    integer 0) and the JSON as a bytearray (its copy is cheaper); the same values are stored.
    bench (229k rows, in memory): executemany 0.70 -> 0.38 s."""
    return [
        (site, t, i, 0 if v is None else v, 0 if u is None else u, 0 if p is None else p,
         source, o, h, bytearray(j))
        for t, i, v, u, p, o, h, j in rows
    ]  # fmt: skip


def same_content(a: bytes, b: bytes) -> bool:
    """Whether two stored JSON texts hold the same resource (key order and spacing aside)."""
    if a == b:
        return True
    sort = orjson.OPT_SORT_KEYS
    try:
        return orjson.dumps(orjson.loads(a), option=sort) == orjson.dumps(
            orjson.loads(b), option=sort
        )
    except orjson.JSONDecodeError:
        # a text stored by an older version that no longer parses (e.g. with the byte order
        # mark its file opened with): not the same, so the new text replaces it
        return False
