"""Second review of the I/O robustness changes: each test's docstring says what was wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import responses

from cohort.source.fhir.client import FhirClient
from cohort.source.fhir.settings import ServerSettings
from cohort.source.files import ReadStats, plan_units, read_path, read_unit


def _patient(pid: str, family: str) -> bytes:
    res = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": ["Jürgen"]}],
        "birthDate": "1980-01-01",
    }
    return orjson.dumps(res)


@pytest.mark.parametrize("keep", [40, 47, 51])  # after "Müller"; inside the "ü" of "Jürgen"
def test_a_last_line_cut_after_a_non_ascii_character_is_a_file_not_read_whole(
    tmp_path: Path, keep: int
) -> None:
    """A file whose last NDJSON line is cut mid-record (an export still being written) is not
    read whole, so the snapshot sweep spares the records it held. The cut was recognised only
    when the record had no non-ASCII character before the cut: orjson gives the error's position
    in characters, and the check sliced the bytes there ("Müller": one byte off, never blank),
    or, cut inside a multi-byte character, a UTF-8 error at position 0. The file was then taken
    as read whole and the cut record (here a Patient) swept from the store."""
    last = _patient("p2", "Müller")
    data = _patient("p1", "Smith") + b"\n" + last[: len(b'{"resourceType":"Patient"') + keep]
    (tmp_path / "Patient.ndjson").write_bytes(data)
    stats = ReadStats()
    got = [res["id"] for res, _ in read_path(tmp_path, stats)]
    assert got == ["p1"]
    assert stats.partial == ["Patient.ndjson"]
    # the same file read in byte ranges (a large file, or several processes)
    units = plan_units(tmp_path, 64)
    assert len(units) == 2
    ranged = ReadStats()
    for unit in units:
        list(read_unit(unit, ranged))
    assert ranged.partial == ["Patient.ndjson"]


def test_a_complete_last_line_with_non_ascii_text_is_still_read_whole(tmp_path: Path) -> None:
    """(The check above must not take a whole file with non-ASCII text for a cut.) A bad line
    in its middle is no cut either, but since a damaged line is not a record the read can
    vouch for, its file is not read whole too (tests/test_damaged_lines.py): reported as a
    damaged line at its own position, not as the file's last line cut."""
    whole = _patient("p1", "Müller") + b"\n" + _patient("p2", "渡辺")
    (tmp_path / "Patient.ndjson").write_bytes(whole)
    stats = ReadStats()
    assert [res["id"] for res, _ in read_path(tmp_path, stats)] == ["p1", "p2"]
    assert stats.partial == [] and stats.issues == []
    bad = _patient("p1", "Müller") + b"\n" + b'{"resourceType": "Pat\xc3\xbc"x}\n'
    (tmp_path / "Patient.ndjson").write_bytes(bad + _patient("p2", "渡辺"))
    stats = ReadStats()
    assert [res["id"] for res, _ in read_path(tmp_path, stats)] == ["p1", "p2"]
    assert [i.origin for i in stats.issues] == ["Patient.ndjson:2"]
    assert stats.partial == ["Patient.ndjson"]


@responses.activate
def test_a_same_host_redirect_or_link_is_followed_whatever_the_host_case() -> None:
    """`base_url` is written as the site gives it ("https://FHIR.Example.invalid/r4"), while
    requests lower-cases the host of the URL it ends at: any redirect on the same host (a
    trailing slash, http -> https) was refused as "redirected to another host
    (fhir.example.invalid)", exit 6 every night, and the server's own next links were refused
    as links to another host. Host names are compared without regard to case."""
    base = "https://FHIR.Example.invalid/r4"
    low = "https://fhir.example.invalid/r4"
    responses.get(f"{low}/metadata", status=301, headers={"Location": f"{low}/metadata/"})
    responses.get(f"{low}/metadata/", json={"resourceType": "CapabilityStatement"})
    responses.get(f"{low}/Patient", json=_bundle("a", f"{low}/Patient?page=2"))
    responses.get(f"{low}/Patient?page=2", json=_bundle("b", None))
    c = FhirClient(ServerSettings.from_dict({"base_url": base}, "t"), sleep=lambda _: None)
    body, _ = c.get_json("metadata", key="metadata")
    assert body["resourceType"] == "CapabilityStatement"
    assert [b["entry"][0]["resource"]["id"] for _, b, _ in c.search("Patient", [])] == ["a", "b"]


def _bundle(rid: str, next_url: str | None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    entry = [{"resource": {"resourceType": "Patient", "id": rid}}]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entry}
