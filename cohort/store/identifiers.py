"""Records that name their patient by identifier only, read as the one Patient holding it."""

# FHIR R4 lets a Reference carry only an `identifier` (a logical reference: "Patient with MRN
# 123"; HL7's own Bundle-bundle-references.json example has one). `patient_of` reads literal
# references alone, so such a record was stored for no patient and read for no one, silently:
# a malignancy so recorded passed `malignancy`. Once a site's read is done, each such record is
# given to the one stored Patient whose identifiers hold the same system and value (both
# compared exactly, as FHIR's token search does); none, several, or an identifier without a
# system name no one for sure, and those records, with every other record naming no patient,
# are counted for a run.json warning. A conditional reference of a transaction
# (`Patient?identifier=system|value`, R4 http.html: the server resolves it to the one Patient
# matching) names its patient the same way; Synthea so names its Practitioners.

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson

from cohort.errors import StoreError

__all__ = ["Unattributed", "UnattributedTables", "identifier_key"]

# a search token's system|value bar, and FHIR's search escapes (`\|`, `\,`, `\$`, `\\`)
_TOKEN_BAR = re.compile(r"(?<!\\)\|")
_UNESCAPE = re.compile(r"\\([|,$\\])")

# types whose records are no patient's data (a Medication) or are the patient
_NOT_CLINICAL = ("Patient", "Medication")


def identifier_key(ident: object) -> tuple[str, str] | None:
    """(system, value) of an Identifier that has both as non-empty strings, else None."""
    if not isinstance(ident, dict):
        return None
    system, value = ident.get("system"), ident.get("value")
    if not (isinstance(system, str) and isinstance(value, str)):
        return None
    system, value = system.strip(), value.strip()
    return (system, value) if system and value else None


def _conditional(ref: object) -> tuple[str, str] | bool:
    """(system, value) of a conditional reference `Patient?identifier=system|value` (each part
    URL-decoded); True for one on identifier that names no system or value (a token without a
    system matches any system: no one patient for sure); False for anything else."""
    if not isinstance(ref, str) or not ref.startswith("Patient?identifier="):
        return False
    query = ref[len("Patient?identifier=") :]
    if "&" in query:
        return True  # more criteria than the identifier: not read
    # URL-decoded (`%7C` is the bar), then split at the first bar not escaped as `\|`
    parts = _TOKEN_BAR.split(unquote(query), maxsplit=1)
    if len(parts) != 2:
        return True
    system, value = (_UNESCAPE.sub(r"\1", part) for part in parts)
    found = identifier_key({"system": system, "value": value})
    return True if found is None else found


def _named_by(res: dict[str, Any]) -> tuple[str, str] | bool:
    """The identifier a record's subject (or patient) names it by, as a Reference's
    `identifier` or a conditional reference (its reference names no Patient otherwise: the
    record was stored for none); else whether it gives one that lacks a system or a value."""
    given = False
    for key in ("subject", "patient"):
        ref = res.get(key)
        if not isinstance(ref, dict):
            continue
        if isinstance(ref.get("identifier"), dict):
            found = identifier_key(ref["identifier"])
            if found is not None:
                return found
            given = True
        conditional = _conditional(ref.get("reference"))
        if isinstance(conditional, tuple):
            return conditional
        given = given or conditional
    return given


@dataclass
class Unattributed:
    """What a site's records naming no patient came to, after the identifier pass."""

    attributed: int = 0  # given to a Patient by identifier
    by_identifier: Counter[str] = field(default_factory=Counter)  # left: no one Patient holds it
    other: Counter[str] = field(default_factory=Counter)  # left: no reference, or not a Patient's

    def counts(self) -> dict[str, int]:
        """Records left naming no patient, by type (run.json `unattributed`)."""
        return dict(sorted((self.by_identifier + self.other).items()))

    def warning(self) -> str | None:
        """The run.json warning: counts and types only (no identifier, record or patient)."""
        left = self.counts()
        if not left:
            return None
        types = ", ".join(f"{t} {n}" for t, n in left.items())
        why = [
            f"{n} {what}"
            for n, what in (
                (sum(self.by_identifier.values()), "by an identifier no single Patient holds"),
                (sum(self.other.values()), "by no Patient reference or identifier"),
            )
            if n
        ]
        return (
            f"{sum(left.values())} record(s) name no patient in this site's data and are read"
            f" for no one ({types}): {', '.join(why)}"
        )


class UnattributedTables:
    """The identifier pass of `Store` over the `resources` table."""

    # provided by Store
    _db: sqlite3.Connection

    def _err(self, action: str, e: sqlite3.Error) -> StoreError:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        raise NotImplementedError

    def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        raise NotImplementedError

    def attribute_by_identifier(self, site: str) -> Unattributed:
        """Give each record of `site` naming its patient by identifier only to the one stored
        Patient holding that identifier; count the records left naming no patient."""
        found = Unattributed()
        named: list[tuple[str, str, tuple[str, str]]] = []
        rows = self._query(
            "SELECT type, id, json FROM resources WHERE site=? AND patient IS NULL"
            " AND type NOT IN (?, ?)",
            (site, *_NOT_CLINICAL),
        )
        for rtype, rid, blob in rows:
            key = _named_by(orjson.loads(blob))
            if isinstance(key, tuple):
                named.append((rtype, rid, key))
            else:
                (found.by_identifier if key else found.other)[rtype] += 1
        if not named:
            return found
        holders = self._holders(site, {key for _, _, key in named})
        updates = []
        for rtype, rid, key in named:
            pids = holders.get(key, set())
            if len(pids) == 1:
                updates.append((next(iter(pids)), site, rtype, rid))
            else:
                found.by_identifier[rtype] += 1
        if updates:
            self._write(
                [("UPDATE resources SET patient=? WHERE site=? AND type=? AND id=?", updates)]
            )
        found.attributed = len(updates)
        return found

    def _holders(self, site: str, keys: set[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
        """Which stored Patients of `site` hold each of `keys` among their identifiers."""
        out: dict[tuple[str, str], set[str]] = {}
        rows = self._query(
            "SELECT id, json FROM resources WHERE site=? AND type=?", (site, "Patient")
        )
        for pid, blob in rows:
            idents = orjson.loads(blob).get("identifier")
            for ident in idents if isinstance(idents, list) else ():
                key = identifier_key(ident)
                if key in keys:
                    out.setdefault(key, set()).add(pid)
        return out
