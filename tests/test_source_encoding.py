"""Data files not in UTF-8 (a local export in Windows-1252): read as Windows-1252, kept, and
said once a file; FHIR JSON is UTF-8, so a file read so is named, never read silently."""

from __future__ import annotations

import gzip
import io
import tarfile
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from test_reliability_support import AS_OF, REPO, write_config

from cohort.config import default_config, load_config
from cohort.extract import Triage
from cohort.ingest import Loaded
from cohort.runner import run
from cohort.source.fhir.bulk import read_ndjson
from cohort.source.files import ReadStats, plan_units, read_path, read_unit

# "José" and "Zoë Müller" as a Windows-1252 (or Latin-1) export writes them: one byte a letter
JOSE = "José"
ZOE = "Zoë Müller"


def _patient(pid: str, family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}


def _cp1252(res: dict[str, Any]) -> bytes:
    return orjson.dumps(res).decode().encode("cp1252")


def _read(path: Path, **kw: Any) -> tuple[dict[str, dict[str, Any]], ReadStats]:
    stats = ReadStats()
    got = {res["id"]: res for res, _ in read_path(path, stats, **kw)}
    return got, stats


def _not_utf8(stats: ReadStats) -> list[tuple[str, str]]:
    return [(i.origin, i.reason) for i in stats.issues if "not UTF-8" in i.reason]


def test_windows_1252_lines_are_read_and_said_once_a_file(tmp_path: Path) -> None:
    """A Windows-1252 line ("José" as the single byte 0xE9) was one "invalid JSON" issue that
    did not say why, and the patient's record was lost. It is read as Windows-1252, kept, and
    the file is named once (not once a line), with how many lines, and no name in the issue."""
    lines = [
        _cp1252(_patient("p1", JOSE)),
        orjson.dumps(_patient("p2", "Smith")),
        _cp1252(_patient("p3", ZOE)),
        # the euro sign is 0x80 in Windows-1252 (and a control character in Latin-1)
        _cp1252({**_patient("p4", "Plain"), "gender": "other", "text": {"div": "€"}}),
    ]
    (tmp_path / "Patient.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    got, stats = _read(tmp_path)
    assert sorted(got) == ["p1", "p2", "p3", "p4"]
    assert got["p1"]["name"][0]["family"] == JOSE
    assert got["p3"]["name"][0]["family"] == ZOE
    assert got["p4"]["text"]["div"] == "€"
    assert stats.rejected == {} and stats.read == {"Patient": 4}
    [(origin, reason)] = _not_utf8(stats)
    assert len(stats.issues) == 1
    assert origin == "Patient.ndjson"
    assert "Windows-1252" in reason and "3 line(s)" in reason
    assert not any(n in reason for n in ("Jos", "Zo", "Müller", "M\\xfcller"))


def test_bytes_windows_1252_leaves_undefined_are_read_as_latin_1(tmp_path: Path) -> None:
    """0x81, 0x8D, 0x8F, 0x90 and 0x9D have no Windows-1252 letter: a strict decode would crash
    the read (UnicodeDecodeError) or lose the line. They read as Latin-1 (U+0081 ...)."""
    odd = b"\x81\x8d\x8f\x90\x9d"
    line = b'{"resourceType":"Patient","id":"p1","name":[{"family":"A' + odd + b'\xe9"}]}'
    (tmp_path / "Patient.ndjson").write_bytes(line + b"\n")
    got, stats = _read(tmp_path)
    assert got["p1"]["name"][0]["family"] == "A\x81\x8d\x8f\x90\x9dé"
    assert len(_not_utf8(stats)) == 1 and stats.partial == []


def test_a_line_mixing_utf8_and_windows_1252_keeps_both_readings(tmp_path: Path) -> None:
    """A line whose name came through in UTF-8 and whose note was pasted from a Windows-1252
    tool: read whole as Windows-1252, the UTF-8 "ü" became "Ã¼". Each UTF-8 character is read
    as UTF-8 and each byte that is not UTF-8 as Windows-1252; the file is still named."""
    line = (
        b'{"resourceType":"Patient","id":"p1","name":[{"family":"M'
        + "ü".encode()
        + b'ller","given":["Jos'
        + "é".encode("cp1252")
        + b'"]}],"text":{"div":"'
        + "€".encode("cp1252")
        + b" "
        + "€".encode()
        + b'"}}'
    )
    (tmp_path / "Patient.ndjson").write_bytes(line + b"\n")
    got, stats = _read(tmp_path)
    assert got["p1"]["name"][0] == {"family": "Müller", "given": [JOSE]}
    assert got["p1"]["text"]["div"] == "€ €"
    [(origin, reason)] = _not_utf8(stats)
    assert origin == "Patient.ndjson" and "1 line(s)" in reason


def test_a_line_not_json_in_windows_1252_either_is_refused_saying_not_utf8(
    tmp_path: Path,
) -> None:
    """A line that is not UTF-8 and not JSON read as Windows-1252 is still refused as invalid
    JSON, and the reason says it is not UTF-8 (no count of lines read: none was)."""
    bad = b'{"resourceType":"Patient","id":"p2","name":"Jos\xe9" "x"}'
    data = orjson.dumps(_patient("p1", "Smith")) + b"\n" + bad + b"\n"
    (tmp_path / "Patient.ndjson").write_bytes(data)
    got, stats = _read(tmp_path)
    assert list(got) == ["p1"] and stats.rejected == {"?": 1}
    [issue] = stats.issues
    assert issue.origin == "Patient.ndjson:2"
    assert "invalid JSON" in issue.reason and "not UTF-8" in issue.reason
    assert "line(s)" not in issue.reason


def test_valid_utf8_invalid_json_does_not_say_not_utf8(tmp_path: Path) -> None:
    """(Only a line that is not UTF-8 says so: a UTF-8 line cut inside "ü" is a cut.)"""
    cut = orjson.dumps(_patient("p2", "Müller"))
    cut = cut[: cut.index("ü".encode()) + 1]  # the first of the letter's two bytes
    (tmp_path / "Patient.ndjson").write_bytes(orjson.dumps(_patient("p1", "Smith")) + b"\n" + cut)
    _, stats = _read(tmp_path)
    assert _not_utf8(stats) == [] and stats.partial == ["Patient.ndjson"]


def test_a_windows_1252_last_line_cut_mid_record_is_a_file_not_read_whole(
    tmp_path: Path,
) -> None:
    """A file still being written whose last line breaks off after a Windows-1252 letter must
    still be a file not read whole: the snapshot sweep would drop the records it held."""
    last = _cp1252(_patient("p2", ZOE))
    data = orjson.dumps(_patient("p1", "Smith")) + b"\n" + last[: last.index(b"\xfc") + 3]
    (tmp_path / "Patient.ndjson").write_bytes(data)
    got, stats = _read(tmp_path)
    assert list(got) == ["p1"]
    assert stats.partial == ["Patient.ndjson"]
    assert any("breaks off mid-record" in i.reason for i in stats.issues)
    assert any("not UTF-8" in i.reason for i in stats.issues)


def test_the_record_kept_is_the_utf8_text(tmp_path: Path) -> None:
    """What is stored of such a line is its UTF-8 text (the store, hashes and later reads see
    JSON as FHIR has it), the same every night."""
    line = _cp1252(_patient("p1", JOSE))
    (tmp_path / "Patient.ndjson").write_bytes(line + b"\n")
    [unit] = plan_units(tmp_path)
    [(res, _, raw)] = list(read_unit(unit, ReadStats()))
    assert raw is not None
    assert raw.strip() == line.decode("cp1252").encode("utf-8")
    assert orjson.loads(raw) == res


def test_a_file_read_in_byte_ranges_is_said_once_with_every_line_counted(
    tmp_path: Path,
) -> None:
    """A large file is read in byte ranges (by several processes): still one issue for it, the
    lines of every range counted, as ingest merges the ranges' reads."""
    lines = [_cp1252(_patient(f"p{i}", JOSE)) for i in range(6)]
    (tmp_path / "Patient.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    units = plan_units(tmp_path, 100)
    assert len(units) > 2
    total = ReadStats()
    kept = 0
    for unit in units:
        part = ReadStats()
        kept += len(list(read_unit(unit, part)))
        total.merge(part)
    assert kept == 6
    [(origin, reason)] = _not_utf8(total)
    assert origin == "Patient.ndjson" and "6 line(s)" in reason


def test_bundles_and_compressed_and_archived_files_are_read_alike(tmp_path: Path) -> None:
    """A Bundle .json, a gzip NDJSON and a tar member in Windows-1252: read, one issue each."""
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": _patient("b1", JOSE)}, {"resource": _patient("b2", ZOE)}],
    }
    (tmp_path / "bundle.json").write_bytes(_cp1252(bundle))
    (tmp_path / "Patient.ndjson.gz").write_bytes(gzip.compress(_cp1252(_patient("g1", JOSE))))
    member = _cp1252(_patient("t1", ZOE)) + b"\n"
    with tarfile.open(tmp_path / "export.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("Patient.ndjson")
        info.size = len(member)
        tf.addfile(info, io.BytesIO(member))
    got, stats = _read(tmp_path)
    assert sorted(got) == ["b1", "b2", "g1", "t1"]
    assert got["b1"]["name"][0]["family"] == JOSE and got["t1"]["name"][0]["family"] == ZOE
    said = dict(_not_utf8(stats))
    assert sorted(said) == ["Patient.ndjson.gz", "bundle.json", "export.tar.gz/Patient.ndjson"]
    assert "1 line(s)" in said["Patient.ndjson.gz"] and "Windows-1252" in said["bundle.json"]
    assert len(stats.issues) == 3 and stats.partial == []


def test_a_windows_1252_bundle_cut_short_says_not_utf8_and_breaks_off(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection"}
    bundle["entry"] = [{"resource": _patient(f"b{i}", JOSE)} for i in range(3)]
    data = _cp1252(bundle)
    (tmp_path / "bundle.json").write_bytes(data[: len(data) // 2])
    got, stats = _read(tmp_path)
    assert got == {} and stats.partial == ["bundle.json"]
    [issue] = stats.issues
    assert "invalid JSON" in issue.reason and "not UTF-8" in issue.reason
    assert "breaks off mid-record" in issue.reason


def test_ndjson_named_json_in_windows_1252_is_read_line_by_line(tmp_path: Path) -> None:
    lines = [_cp1252(_patient("p1", JOSE)), _cp1252(_patient("p2", ZOE))]
    (tmp_path / "export.json").write_bytes(b"\n".join(lines) + b"\n")
    got, stats = _read(tmp_path)
    assert sorted(got) == ["p1", "p2"]
    [(origin, reason)] = _not_utf8(stats)
    assert origin == "export.json" and "2 line(s)" in reason and len(stats.issues) == 1


def _obs(oid: str, text: str) -> dict[str, Any]:
    heart_rate = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": text}
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": heart_rate,
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-01-02",
        "valueQuantity": {"value": 70, "unit": "/min"},
    }


def test_the_triage_summarises_such_lines_as_their_utf8_copies(tmp_path: Path) -> None:
    """The NDJSON fast paths (records no criterion reads, summarised from their bytes) take a
    Windows-1252 line as they take the same line in UTF-8: summarised, not lost or kept."""
    loaded = Loaded.from_config(default_config())
    counts = {}
    for name, encode in (("utf8", orjson.dumps), ("cp1252", _cp1252)):
        folder = tmp_path / name
        folder.mkdir()
        lines = [encode(_obs("o1", "Fréquence cardiaque")), encode(_obs("o2", "Pulse"))]
        lines.append(b'{"resourceType":"Claim","id":"c1","note":"caf\xe9"}')
        (folder / "Observation.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        triage = Triage(loaded.rules, loaded.relevant)
        got, stats = _read(folder, types={"Observation", "Patient"}, triage=triage)
        assert got == {} and stats.rejected == {}
        counts[name] = (dict(stats.read), dict(stats.summarised), dict(stats.skipped_types))
    assert counts["utf8"] == counts["cp1252"] == (
        {"Observation": 2},
        {"Observation": 2},
        {"Claim": 1},
    )


def test_a_rerun_of_an_unchanged_windows_1252_file_changes_no_record(tmp_path: Path) -> None:
    """Read again (a full refresh), an unchanged Windows-1252 file updates no stored record,
    and the run's site warnings name the file read so."""
    feed = tmp_path / "feed"
    feed.mkdir()
    src = REPO / "sample_bundles" / "amr"
    for f in src.iterdir():
        (feed / f.name).write_bytes(f.read_bytes())
    patients = (src / "Patient.ndjson").read_bytes().decode().splitlines()
    first = orjson.loads(patients[0])
    first["name"][0]["family"] = "Nuñez"
    patients[0] = orjson.dumps(first).decode()
    (feed / "Patient.ndjson").write_bytes("\n".join(patients).encode("cp1252") + b"\n")
    config = write_config(tmp_path, {"amr": str(feed)})
    day = date.fromisoformat(AS_OF)
    once = run(load_config(config), day, tmp_path / "out")["sites"]["amr"]
    again = run(load_config(config), day, tmp_path / "out", full_refresh=True)["sites"]["amr"]
    assert once["rejected"] == {} and once["read"]["Patient"] == len(patients)
    assert again["stored"]["updated"] == 0 and again["stored"]["inserted"] == 0
    assert any("Patient.ndjson" in w and "Windows-1252" in w for w in once["warnings"])
    [issue] = [i for i in once["issues"] if "not UTF-8" in i["reason"]]
    assert issue["origin"] == "Patient.ndjson" and "1 line(s)" in issue["reason"]


def test_bulk_lines_not_utf8_are_counted_as_such(tmp_path: Path) -> None:
    """A Bulk export file must be UTF-8 (the server's fault, not a site's save): such a line is
    not guessed at, but the unreadable lines that are not UTF-8 are counted apart."""
    path = tmp_path / "Patient.ndjson"
    good = orjson.dumps(_patient("a", "Smith"))
    path.write_bytes(b"\n".join([good, _cp1252(_patient("b", JOSE)), b"{cut"]) + b"\n")
    bad: list[int] = []
    foreign: list[int] = []
    assert [r["id"] for _, r in read_ndjson(path, bad, not_utf8=foreign)] == ["a"]
    assert bad == [2, 3] and foreign == [2]
