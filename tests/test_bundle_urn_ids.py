"""An id-less Bundle entry named by a URN fullUrl takes its id from it: `urn:uuid:` and
`urn:oid:` (FHIR R4 references.html, "Resolving references in Bundles": resources "identified
with urn:uuid: or urn:oid: fullUrls"), and references to that URN are rewritten to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from criteria_helpers import observation, patient, qty

from cohort.source.checkers import ID_RE
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


def _tx(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _post(res: dict[str, Any]) -> dict[str, Any]:
    # a create in a transaction: no fullUrl, no id (the server would assign one; FHIR R4
    # bundle.html: a fullUrl may be absent for a POST in a transaction or batch)
    rtype = res["resourceType"]
    return {"resource": {k: v for k, v in res.items() if k != "id"},
            "request": {"method": "POST", "url": rtype}}  # fmt: skip


def test_an_anonymous_post_in_a_transaction_is_read_under_an_id_its_content_gives(
    tmp_path: Path,
) -> None:
    a = observation("718-7", "2026-11-20", valueQuantity=qty(13.1, "g/dL", "g/dL"))
    b = observation("718-7", "2026-11-21", valueQuantity=qty(12.0, "g/dL", "g/dL"))
    path = tmp_path / "tx.json"
    path.write_bytes(orjson.dumps(_tx([_post(a), _post(b)])))
    stats = ReadStats()
    got = [r for r, _ in read_path(path, stats)]
    # it was refused ("Observation.id: missing") and the file called not read whole
    assert not stats.rejected and not stats.partial and not stats.issues
    assert [r["effectiveDateTime"] for r in got] == ["2026-11-20", "2026-11-21"]
    ids = [r["id"] for r in got]
    assert ids[0] != ids[1]
    assert all(ID_RE.fullmatch(i) for i in ids)
    # the same file read again (next night) names the same records: nothing new, nothing gone
    again = [r["id"] for r, _ in read_path(path, ReadStats())]
    assert again == ids
    # the same content in another file is the same record, not a second one
    other = tmp_path / "other" / "tx.json"
    other.parent.mkdir()
    other.write_bytes(orjson.dumps(_tx([_post(b)])))
    assert [r["id"] for r, _ in read_path(other, ReadStats())] == [ids[1]]


def test_an_anonymous_entry_that_is_no_create_still_names_no_record(tmp_path: Path) -> None:
    # outside a transaction or batch POST every entry has a fullUrl (FHIR R4 bdl-7 context):
    # one without is damaged data, refused as before rather than given a made-up id
    a = observation("718-7", "2026-11-20", valueQuantity=qty(13.1, "g/dL", "g/dL"))
    entry = _post(a)
    collection = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": entry["resource"]}]}  # fmt: skip
    put = _tx([{**entry, "request": {"method": "PUT", "url": "Observation?identifier=x"}}])
    for n, doc in enumerate((collection, put)):
        path = tmp_path / f"b{n}.json"
        path.write_bytes(orjson.dumps(doc))
        stats = ReadStats()
        assert [r for r, _ in read_path(path, stats)] == [] and stats.rejected["Observation"] == 1


def test_a_post_whose_fullurl_key_is_damaged_is_not_read_as_an_anonymous_create(
    tmp_path: Path,
) -> None:
    # `fullUrk`: the entry had a fullUrl (its id, which other entries may reference): reading
    # it under a new id would store it twice beside the copy read before the damage
    a = observation("718-7", "2026-11-20", valueQuantity=qty(13.1, "g/dL", "g/dL"))
    entry = {**_post(a), "fullUrk": "urn:uuid:5b0f0c3e-0000-4000-8000-000000000001"}
    path = tmp_path / "tx.json"
    path.write_bytes(orjson.dumps(_tx([entry])))
    stats = ReadStats()
    assert [r for r, _ in read_path(path, stats)] == [] and stats.rejected["Observation"] == 1
