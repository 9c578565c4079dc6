"""An id-less Bundle entry named by a URN fullUrl takes its id from it: `urn:uuid:` and
`urn:oid:` (FHIR R4 references.html, "Resolving references in Bundles": resources "identified
with urn:uuid: or urn:oid: fullUrls"), and references to that URN are rewritten to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from criteria_helpers import observation, patient, qty

from cohort.source.files import ReadStats, read_path

OID = "urn:oid:2.16.840.1.113883.19.5.1"


def _read(tmp_path: Path, entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], ReadStats]:
    path = tmp_path / "b.json"
    path.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection",
                                   "entry": entries}))  # fmt: skip
    stats = ReadStats()
    return [r for r, _ in read_path(path, stats)], stats


def test_an_id_less_entry_named_by_an_oid_takes_it_as_its_id(tmp_path: Path) -> None:
    person = {k: v for k, v in patient("1990-05-01").items() if k != "id"}
    result = observation("718-7", "2026-11-20", valueQuantity=qty(13.1, "g/dL", "g/dL"))
    result["subject"] = {"reference": OID}
    got, stats = _read(tmp_path, [{"fullUrl": OID, "resource": person},
                                  {"fullUrl": "urn:oid:2.16.840.1.113883.19.5.2",
                                   "resource": {k: v for k, v in result.items() if k != "id"}}])  # fmt: skip
    # it was refused ("Patient.id: missing"), the file not read whole, the result read for no one
    assert not stats.rejected and not stats.issues and not stats.partial
    assert [(r["resourceType"], r["id"]) for r in got] == [
        ("Patient", "2.16.840.1.113883.19.5.1"),
        ("Observation", "2.16.840.1.113883.19.5.2"),
    ]
    assert got[1]["subject"] == {"reference": "Patient/2.16.840.1.113883.19.5.1"}


def test_an_oid_that_is_no_fhir_id_names_no_record(tmp_path: Path) -> None:
    # an id is at most 64 characters: such an entry stays one without an id, as before
    long_oid = "urn:oid:" + ".".join(["1"] * 40)
    person = {k: v for k, v in patient("1990-05-01").items() if k != "id"}
    got, stats = _read(tmp_path, [{"fullUrl": long_oid, "resource": person}])
    assert got == [] and stats.rejected["Patient"] == 1
