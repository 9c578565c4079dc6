"""One damaged line in a Bulk export's file (docs/operations.md "Bad input", "Server"): which
stored record it held is unknown. A full refresh took that record for deleted on the server and
removed it (the file path's defect, tests/test_damaged_lines.py); an incremental export moved the
bulk mark past it, so the changed record was never delivered again. Now the export is not read
whole: nothing it did not hold is removed and the mark stays, with a warning (no PHI).

Also: the full refresh's removal guard weighs what it no longer found against the records stored
before tonight's pull, not also those the pull itself just added."""

from __future__ import annotations

import json
import logging

import pytest
import responses
from fhir_fakes import SLE, TOKENS
from test_fhir_bulk import (
    FILES,
    STATUS,
    _manifest,
    _serve_p3_by_search,
    cond,
    ndjson,
    nosleep,
    obs,
    settings,
    setup_server,
)

from cohort.errors import ServerError
from cohort.source.fhir import pull

MARK = "2026-11-25T10:00:00Z"


def _line(res) -> bytes:
    return (json.dumps(res) + "\n").encode()


def _cut_char(res) -> bytes:
    """The record's line with one character gone (its closing brace): whole, but no JSON."""
    return (json.dumps(res)[:-1] + "\n").encode()


O3 = obs(3, "p1")
DAMAGED = {
    "invalid JSON": _cut_char(O3),
    "no id": _line({k: v for k, v in O3.items() if k != "id"}),
    "no resourceType": _line({k: v for k, v in O3.items() if k != "resourceType"}),
    "no R4 resourceType": _line({**O3, "resourceType": "Observatoin"}),
    "empty id": _line({**O3, "id": ""}),
    "not an object": b'["o3"]\n',
}


def _said(warnings: list[str], name: str) -> list[str]:
    return [w for w in warnings if name in w and "not read whole" in w]


@pytest.mark.parametrize("kind", sorted(DAMAGED))
@responses.activate
def test_full_refresh_with_a_damaged_line_removes_nothing_and_holds_the_mark(
    tmp_path, store, caplog, kind
):
    """o3's line damaged in tonight's full export: o3 stays stored (it was removed, `removed ==
    1`, with only an "unreadable line" warning, or none for a record without an id), the bulk
    mark stays, and a WARNING in the log and run.json says why, quoting nothing of the line."""
    setup_server(ndjson([obs(1, "p1"), O3]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    mark = store.get_mark("uci", "fhir:bulk")
    assert mark.startswith(MARK + "|")
    responses.replace(responses.GET, STATUS, json=_manifest(transactionTime="2026-11-26T10:00:00Z"))
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=ndjson([obs(1, "p1")]) + DAMAGED[kind])
    with caplog.at_level(logging.WARNING):
        rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s),
                   full_refresh=True)
    assert rep.removed == 0 and store.get("uci", "Observation", "o3") is not None
    assert store.get_mark("uci", "fhir:bulk") == mark
    said = _said(rep.to_dict()["warnings"], "0002.Observation.ndjson")
    assert len(said) == 1 and "not advanced" in said[0] and "removed" in said[0]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("0002.Observation.ndjson" in m and "not read whole" in m for m in logged)
    text = " ".join(rep.warnings + logged)
    assert "p1" not in text and "Patient/" not in text and "loinc" not in text
    # the export whole again: what it no longer holds goes, and the mark moves
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=ndjson([obs(1, "p1")]))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    assert rep.removed == 1 and store.get("uci", "Observation", "o3") is None
    assert store.get_mark("uci", "fhir:bulk").startswith("2026-11-26T10:00:00Z|")


@responses.activate
def test_damaged_malignancy_condition_line_keeps_the_stored_condition(tmp_path, store):
    """The QA case on the server path: one character gone from a screened patient's malignancy
    Condition line in a full refresh's export; the stored Condition (what excludes the
    patient) was removed as deleted on the server."""
    cancer = cond(9, "p1", code="363346000")
    setup_server(b"", {}, [], [])
    responses.replace(responses.GET, f"{FILES}/Condition.ndjson",
                      body=ndjson([cond(1, "p1"), cancer]))
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Condition", "c9") is not None
    responses.replace(responses.GET, f"{FILES}/Condition.ndjson",
                      body=ndjson([cond(1, "p1")]) + _cut_char(cancer))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    assert rep.removed == 0 and store.get("uci", "Condition", "c9") is not None
    assert _said(rep.warnings, "Condition.ndjson")


@responses.activate
def test_damaged_full_refresh_that_searches_a_merged_chart_removes_nothing(tmp_path, store):
    """The full refresh's export holds a damaged line and names p3, a chart merged with screened
    p1 that the Group export does not hold: p3 is fetched by search, which completes every type's
    searches. Those searched types were then swept against what the damaged export held, and o5
    (on the damaged line) went; no record of the site goes while the export is not whole."""
    o5 = obs(5, "p1")
    setup_server(ndjson([obs(1, "p1"), o5]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    link = [{"type": "replaces", "other": {"reference": "Patient/p3"}}]
    responses.replace(responses.GET, f"{FILES}/Patient.ndjson",
                      body=ndjson([{"resourceType": "Patient", "id": "p1", "link": link}]))
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=ndjson([obs(1, "p1")]) + _cut_char(o5))
    seen = _serve_p3_by_search()
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    assert seen and store.get("uci", "Observation", "o3") is not None  # (p3's, by search)
    assert rep.removed == 0 and store.get("uci", "Observation", "o5") is not None


@responses.activate
def test_incremental_export_with_a_damaged_line_asks_again_from_the_same_point(tmp_path, store):
    """An export since the mark holds o3's new version on a damaged line: the mark moved past
    it, and no later export (since the new mark) held o3 again unless it changed once more, so
    the stale stored version stayed for good. Now the mark stays: the next night's export asks
    from the same point, and o3's new version is stored."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1"), O3]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    mark = store.get_mark("uci", "fhir:bulk")
    o3v2 = {**O3, "valueQuantity": {"value": 8.1, "unit": "g/dL"},
            "meta": {"versionId": "2", "lastUpdated": "2026-11-26T09:00:00Z"}}
    responses.replace(responses.GET, STATUS, json=_manifest(transactionTime="2026-11-26T10:00:00Z"))
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=_cut_char(o3v2))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert rep.incremental
    assert store.get_mark("uci", "fhir:bulk") == mark
    assert _said(rep.warnings, "0002.Observation.ndjson")
    responses.replace(responses.GET, STATUS, json=_manifest(transactionTime="2026-11-27T10:00:00Z"))
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=ndjson([o3v2]))
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert since == [None, "2026-11-25T09:55:00Z", "2026-11-25T09:55:00Z"]
    assert store.get("uci", "Observation", "o3")["meta"]["versionId"] == "2"
    assert store.get_mark("uci", "fhir:bulk").startswith("2026-11-27T10:00:00Z|")


@responses.activate
def test_full_refresh_guard_weighs_against_the_records_stored_before_it(tmp_path, store):
    """80 Observations stored; tonight's full refresh holds 80 others and none of them. The
    guard counted the 80 the pull had just added as stored: 80 of 160 is not over 0.5, and every
    stored record went. Against the 80 stored before the pull, all of them lacking, it refuses."""
    setup_server(ndjson([obs(i, "p1") for i in range(80)]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.count_by_type("uci")["Observation"] == 80
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=ndjson([obs(i, "p1") for i in range(100, 180)]))
    with pytest.raises(ServerError, match="Observation: the full refresh no longer found 80 of"
                                          " the 80 records stored .*Nothing was removed"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True,
             max_removal=0.5)
    assert store.get("uci", "Observation", "o0") is not None
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True,
               max_removal=1.0)
    assert rep.removed == 80 and store.count_by_type("uci")["Observation"] == 80


@responses.activate
def test_full_refresh_guard_passes_a_replacement_within_the_limit(tmp_path, store):
    """30 of 80 stored no longer found, 30 new: under 0.5 of those stored before, removed."""
    setup_server(ndjson([obs(i, "p1") for i in range(80)]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    kept = [obs(i, "p1") for i in range(30, 80)] + [obs(i, "p1") for i in range(100, 130)]
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=ndjson(kept))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True,
               max_removal=0.5)
    assert rep.removed == 30 and store.count_by_type("uci")["Observation"] == 80


@responses.activate
def test_an_empty_downloaded_file_removes_nothing_and_holds_the_mark(tmp_path, store, caplog):
    """The manifest lists a second Observation file, and its download is 0 bytes (a body that
    died before its first byte): it read as a file with no records, and the full refresh
    removed o3, which it held, as gone from the server (`removed == 1`), no warning, the mark
    moved. Now the file is not read whole, as a 0-byte local .ndjson is."""
    setup_server(ndjson([obs(1, "p1"), obs(2, "p1"), O3]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    mark = store.get_mark("uci", "fhir:bulk")
    split = _manifest(transactionTime="2026-11-26T10:00:00Z")
    split["output"].append({"type": "Observation", "url": f"{FILES}/Observation.001.ndjson"})
    responses.replace(responses.GET, STATUS, json=split)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=ndjson([obs(1, "p1"), obs(2, "p1")]))
    responses.get(f"{FILES}/Observation.001.ndjson", body=b"")
    with caplog.at_level(logging.WARNING):
        rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s),
                   full_refresh=True)
    assert rep.removed == 0 and store.get("uci", "Observation", "o3") is not None
    assert store.get_mark("uci", "fhir:bulk") == mark
    said = _said(rep.to_dict()["warnings"], "0003.Observation.ndjson")
    assert len(said) == 1 and "empty" in said[0] and "not advanced" in said[0]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("0003.Observation.ndjson" in m and "not read whole" in m for m in logged)


def _split_export(count) -> dict:
    """Tonight's manifest: o1 and o2 in Observation.ndjson, and a second Observation file,
    0 bytes, its item saying `count` (left out when None)."""
    split = _manifest(transactionTime="2026-11-26T10:00:00Z")
    item = {"type": "Observation", "url": f"{FILES}/Observation.001.ndjson"}
    split["output"].append(item if count is None else {**item, "count": count})
    responses.replace(responses.GET, STATUS, json=split)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=ndjson([obs(1, "p1"), obs(2, "p1")]))
    responses.get(f"{FILES}/Observation.001.ndjson", body=b"")
    return split


@responses.activate
def test_an_empty_file_the_manifest_counts_as_empty_is_read_whole(tmp_path, store, caplog):
    """A server that lists an empty file on purpose, `"count": 0` in its manifest item (the
    Bulk Data IG's optional count): its 0-byte download was "not read whole", and the bulk mark
    was held back every night for ever. It is now a whole file of no records: the full refresh
    removes o3, which the export no longer holds, no warning, and the mark moves."""
    setup_server(ndjson([obs(1, "p1"), obs(2, "p1"), O3]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o3") is not None
    _split_export(0)
    with caplog.at_level(logging.WARNING):
        rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s),
                   full_refresh=True)
    assert rep.removed == 1 and store.get("uci", "Observation", "o3") is None
    assert store.get("uci", "Observation", "o1") is not None
    assert store.get_mark("uci", "fhir:bulk").startswith("2026-11-26T10:00:00Z|")
    assert not [w for w in rep.to_dict()["warnings"] if "not read whole" in w]
    assert not [r for r in caplog.records if "not read whole" in r.getMessage()]


@pytest.mark.parametrize("count", [2, "0", False, None])
@responses.activate
def test_an_empty_file_the_manifest_does_not_count_as_empty_holds_the_mark(
    tmp_path, store, count
):
    """A 0-byte download whose item gives no count, another count, or a count that is not the
    number 0: not read whole, as before (o3 stays, the mark is held)."""
    setup_server(ndjson([obs(1, "p1"), obs(2, "p1"), O3]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    mark = store.get_mark("uci", "fhir:bulk")
    _split_export(count)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s),
               full_refresh=True)
    assert rep.removed == 0 and store.get("uci", "Observation", "o3") is not None
    assert store.get_mark("uci", "fhir:bulk") == mark
    said = _said(rep.to_dict()["warnings"], "0003.Observation.ndjson")
    assert len(said) == 1 and "empty" in said[0], rep.to_dict()["warnings"]
