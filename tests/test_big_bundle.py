"""A .json file past BIG_JSON is a Bundle read entry by entry (memory: one entry, not ~8x the
file): the records, ids, rewritten references and issues are those of the file parsed whole."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from criteria_helpers import observation, patient, qty

from cohort.source import filereader
from cohort.source.files import ReadStats, read_path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_bundles"


def _read(path: Path) -> tuple[list[tuple[bytes, str]], ReadStats]:
    stats = ReadStats()
    records = read_path(path, stats, types={"Patient", "Observation"})
    got = [(orjson.dumps(r, option=orjson.OPT_SORT_KEYS), o) for r, o in records]
    return got, stats


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, list[str]]:
    """The file read whole, then streamed (the threshold lowered to 1 KB); which way each
    Bundle file was read."""
    whole = _read(path)
    ways: list[str] = []
    streamed = filereader.FileReader.big_bundle

    def spy(self: Any, head: bytes, fh: Any, origin: str, btype: str) -> Any:
        ways.append(btype)
        return streamed(self, head, fh, origin, btype)

    monkeypatch.setattr(filereader, "BIG_JSON", 1024)
    monkeypatch.setattr(filereader.FileReader, "big_bundle", spy)
    return whole, _read(path), ways


def _stats(stats: ReadStats) -> tuple[Any, ...]:
    return (stats.files, stats.read, stats.rejected, stats.skipped_types, stats.issues,
            stats.partial)  # fmt: skip


@pytest.mark.parametrize("site", ["uci", "amr"])
def test_the_sample_bundles_stream_to_the_same_records(
    site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (whole, ws), (streamed, ss), ways = _both(SAMPLES / site, monkeypatch)
    assert whole and streamed == whole
    assert _stats(ss) == _stats(ws)
    bundles = [p for p in (SAMPLES / site).rglob("*.json") if p.stat().st_size >= 1024]
    if site == "uci":  # (amr is NDJSON)
        assert len(ways) == len(bundles) > 0


def _transaction(tmp_path: Path, name: str = "big.json", btype: str = "transaction") -> Path:
    """urn:uuid fullUrls referenced before and after their entry, a POST with neither
    fullUrl nor id (a content id), an Encounter (a type not read), a nested Bundle."""
    person = {k: v for k, v in patient("1980-02-03").items() if k != "id"}
    hb = observation("718-7", "2026-11-20", valueQuantity=qty(13.1, "g/dL", "g/dL"))
    del hb["id"]
    hb["subject"] = {"reference": "urn:uuid:7d0f3c1e-0000-4000-8000-000000000001"}
    plt = observation("777-3", "2026-11-21", valueQuantity=qty(250, "10*3/uL", "10*3/uL"))
    plt["subject"] = {"reference": "urn:uuid:7d0f3c1e-0000-4000-8000-000000000001"}
    del plt["id"]
    entries: list[dict[str, Any]] = [
        {"fullUrl": "urn:uuid:7d0f3c1e-0000-4000-8000-000000000002", "resource": hb,
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": plt, "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": "finished"}},
        {"fullUrl": "urn:uuid:7d0f3c1e-0000-4000-8000-000000000001", "resource": person,
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {**observation("2160-0", "2026-11-19",
                                        valueQuantity=qty(0.9, "mg/dL", "mg/dL")),
                          "subject": {"reference":
                                      "urn:uuid:7d0f3c1e-0000-4000-8000-000000000001"}}}]}},
        {"request": {"method": "DELETE", "url": "Observation/old"}},
        "not an entry",
    ]  # fmt: skip
    body = {"resourceType": "Bundle", "id": "b", "type": btype, "entry": entries}
    path = tmp_path / name
    path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    return path


def test_a_transaction_streams_to_the_same_records_ids_and_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _transaction(tmp_path)
    (whole, ws), (streamed, ss), ways = _both(path, monkeypatch)
    assert ways == ["transaction"]
    assert streamed == whole
    assert _stats(ss) == _stats(ws)
    records = [orjson.loads(r) for r, _ in streamed]
    # the references to the patient's urn:uuid, before and after its entry, read as its id
    pid = next(r["id"] for r in records if r["resourceType"] == "Patient")
    assert pid == "7d0f3c1e-0000-4000-8000-000000000001"
    subjects = {r["subject"]["reference"] for r in records if r["resourceType"] == "Observation"}
    assert subjects == {f"Patient/{pid}"}
    assert [o for _, o in streamed] == [f"big.json#entry[{i}]" for i in (0, 1, 3)] + [
        "big.json#entry[4].entry[0]"
    ]
    assert any(r["id"].startswith("post-") for r in records)  # the POST with neither
    assert ss.skipped_types["Encounter"] == 1
    assert [i.reason for i in ss.issues] == ["Bundle.entry: not an object"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda b: {**b, "type": "history"}, "a history needs every entry at once"),
        (lambda b: {"resourceType": "Bundle", "entry": b["entry"], "type": b["type"]},
         "its type comes after its entries"),
        (lambda b: {"entry": b["entry"], "resourceType": "Bundle", "type": b["type"]},
         "its resourceType comes after its entries"),
    ],
)  # fmt: skip
def test_a_bundle_that_cannot_stream_is_read_whole_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any, why: str
) -> None:
    path = _transaction(tmp_path)
    path.write_bytes(orjson.dumps(change(orjson.loads(path.read_bytes()))))
    (whole, ws), (streamed, ss), ways = _both(path, monkeypatch)
    assert ways == [], why
    assert streamed == whole and _stats(ss) == _stats(ws)


def test_a_cut_short_big_bundle_is_not_read_whole_with_the_usual_issue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _transaction(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    (whole, ws), (streamed, ss), ways = _both(path, monkeypatch)
    assert ways == ["transaction"]  # streamed first, then read again whole for its error
    assert streamed == whole == []
    assert _stats(ss) == _stats(ws)
    assert ss.partial == ["big.json"] and ss.rejected["?"] == 1
    assert "invalid JSON" in ss.issues[0].reason and "cut short" in ss.issues[0].reason


def test_a_cut_short_big_bundle_in_a_tar_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tar member streamed cannot be read again: refused, not read whole, and the parser's
    message (which quotes the text: a name, a birth date) not repeated."""
    path = _transaction(tmp_path)
    data = path.read_bytes()
    cut = data[: data.index(b"1980-02-03") + 12]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "big.json").write_bytes(cut)
    with tarfile.open(tmp_path / "export.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "in" / "big.json", arcname="big.json")
    monkeypatch.setattr(filereader, "BIG_JSON", 1024)
    got, stats = _read(tmp_path / "export.tar.gz")
    assert got == []
    assert stats.partial == ["export.tar.gz/big.json"]
    reason = stats.issues[0].reason
    assert reason.startswith("invalid JSON") and "cut short" in reason
    assert "1980" not in reason


def test_a_gzipped_big_bundle_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _transaction(tmp_path)
    packed = tmp_path / "gz" / "big.json.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    (whole, ws), (streamed, ss), ways = _both(packed.parent, monkeypatch)
    assert ways == ["transaction"] and streamed == whole and _stats(ss) == _stats(ws)
    assert len(streamed) == 4


def _ndjson_lines() -> list[bytes]:
    person = patient("1980-02-03")
    hb = observation("718-7", "2026-11-20", valueQuantity=qty(13.1, "g/dL", "g/dL"))
    plt = observation("777-3", "2026-11-21", valueQuantity=qty(250, "10*3/uL", "10*3/uL"))
    return [orjson.dumps(r) for r in (person, hb, plt)]


@pytest.mark.parametrize(
    ("body", "streams"),
    [
        (b"\n".join(_ndjson_lines()) + b"\n", True),
        (b"\r\n".join(_ndjson_lines()) + b"\r\n", True),  # (Windows line ends)
        (b"\n\n".join(_ndjson_lines()), True),  # a blank line between, no last line end
        (b"\n".join([*_ndjson_lines(), b"not json"]) + b"\n", True),  # a damaged line
        (b"\n".join(_ndjson_lines())[:-9], True),  # the last line cut short
        (b"\n  ".join(_ndjson_lines()), False),  # (parsed whole: invalid JSON, as before)
        (orjson.dumps(patient("1980-02-03"), option=orjson.OPT_INDENT_2), False),
    ],
)
def test_a_large_ndjson_named_json_is_read_a_line_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes, streams: bool
) -> None:
    """An exporter's NDJSON named `.json`: read as a stream (memory: a line) with the records,
    issues and counts of the whole file parsed and then split into lines."""
    path = tmp_path / "Observation.json"
    path.write_bytes(body * 20)  # (past the lowered threshold)
    whole, ws = _read(path)
    parsed: list[str] = []
    real = filereader.FileReader.json_doc

    def spy(self: Any, data: bytes, origin: str) -> Any:
        parsed.append(origin)
        return real(self, data, origin)

    monkeypatch.setattr(filereader, "BIG_JSON", 1024)
    monkeypatch.setattr(filereader.FileReader, "json_doc", spy)
    streamed, ss = _read(path)
    assert streamed == whole and _stats(ss) == _stats(ws)
    assert parsed == ([] if streams else ["Observation.json"])
    if streams:
        assert whole  # (records read, not one issue for the file)


def _noted(tmp_path: Path, text: bytes) -> Path:
    """A collection Bundle (past the lowered threshold) of a patient and three results, the
    second's note holding `text` as written in the file."""
    person = patient("1980-02-03")
    results = [observation("718-7", f"2026-11-{day}", valueQuantity=qty(13.1, "g/dL", "g/dL"))
               for day in (10, 11, 12)]
    for i, r in enumerate(results):
        r["id"] = f"hb{i}"
        r["note"] = [{"text": f"NOTE{i}"}]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in (person, *results)]}
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps(bundle).replace(b"NOTE1", text))
    assert path.stat().st_size > 1024
    return path


@pytest.mark.parametrize(
    "escaped",
    [
        rb"\ud800",  # a lone high surrogate (ijson read it as "?")
        rb"x\uD83Dy",  # (upper-case hex) followed by text
        rb"\ud800\u0041",  # followed by an escape that is no low surrogate (ijson: one character)
        rb"\udc00",  # a lone low surrogate
    ],
)
def test_a_lone_surrogate_in_a_big_bundle_is_refused_as_in_a_small_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, escaped: bytes
) -> None:
    """A lone UTF-16 surrogate escape is no text orjson reads: a small Bundle holding one is
    refused naming the file; streamed, the same file was read with the text as "?"."""
    path = _noted(tmp_path, b"a" + escaped + b"b")
    (whole, ws), (streamed, ss), ways = _both(path, monkeypatch)
    assert whole == []  # (parsed whole: the file is refused, none of its records read)
    assert ws.partial == ["big.json"] and ws.issues[0].origin == "big.json"
    assert ws.issues[0].reason.startswith("invalid JSON (line 1, column ")
    assert streamed == whole and _stats(ss) == _stats(ws)


def test_a_surrogate_pair_and_an_escaped_backslash_read_to_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair (an emoji escaped) is text both read alike, and so is a backslash written before
    "ud800" (no escape; the stream's check does not count backslashes, so this Bundle is read
    whole again): the same records either way."""
    path = _noted(tmp_path, rb"a\ud83d\ude00 \\ud800 b")
    (whole, ws), (streamed, ss), ways = _both(path, monkeypatch)
    assert len(whole) == 4 and ws.partial == [] and ways == ["collection"]
    assert streamed == whole and _stats(ss) == _stats(ws)
    assert "\U0001f600 \\ud800 b" in orjson.loads(whole[2][0])["note"][0]["text"]


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        (rb'{"a":"xx\ud800yy"}', True),
        (rb'{"a":"xx\uDBFFyy"}', True),
        (rb'{"a":"xx\udfffyy"}', True),
        (rb'{"a":"xx\ud800\u0041"}', True),
        (rb'{"a":"xx\ud800"}', True),
        (rb'{"a":"xx\ud83d\ude00yy"}', False),
        (rb'{"a":"xx\u00e9\ud7ffyy"}', False),
        (rb'{"a":"xx\ud83d\udE00\ud83d\udE00"}', False),
    ],
)
def test_a_lone_surrogate_is_found_wherever_the_reads_split_it(text: bytes, lone: bool) -> None:
    """The stream is checked a read at a time: an escape (and what tells whether it is lone)
    split across two reads at any byte is judged as in one piece."""
    from cohort.source.bigjson import LoneSurrogate, joined

    for at in range(1, len(text)):
        stream = joined([text[:at]], io.BytesIO(text[at:]), strict=True)
        if lone:
            with pytest.raises(LoneSurrogate):
                stream.read()
        else:
            assert stream.read() == text
        assert joined([text[:at]], io.BytesIO(text[at:])).read() == text  # (NDJSON: no check)
