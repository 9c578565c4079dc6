"""Second review of the I/O robustness changes: each test's docstring says what was wrong."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

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
    """(The check above must not take a whole file, or a bad line in its middle, for a cut.)"""
    data = _patient("p1", "Müller") + b"\n" + b'{"resourceType": "Pat\xc3\xbc"x}\n'
    (tmp_path / "Patient.ndjson").write_bytes(data + _patient("p2", "渡辺"))
    stats = ReadStats()
    assert [res["id"] for res, _ in read_path(tmp_path, stats)] == ["p1", "p2"]
    assert stats.partial == [] and [i.origin for i in stats.issues] == ["Patient.ndjson:2"]
