"""The triage's answer from an NDJSON line's bytes (msgspec) equals its answer from the parsed
record: same records summarised, kept and rejected, same census, on generated and broken lines."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohort.config import default_config
from cohort.extract import Triage
from cohort.extract.census_data import Census
from cohort.ingest import Loaded
from cohort.source.files import ReadStats
from cohort.source.reader import Reader

LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
SNOMED = "http://snomed.info/sct"
LOADED = Loaded.from_config(default_config())
TYPES = {"Observation", "Procedure", "Immunization", "Condition", "Patient"}

# codes no criterion reads and codes one does (hemoglobin, MMR, a live zoster vaccine)
OBS_CODES = [(LOINC, "8302-2"), (LOINC, "8867-4"), (LOINC, "72166-2"), (LOINC, "718-7")]
# components: blood pressure's (read by no criterion) and a platelet count's (read)
COMPONENT_CODES = [(LOINC, "8480-6"), (LOINC, "8462-4"), (LOINC, "777-3")]
VACCINES = [(CVX, "140"), (CVX, "08"), (CVX, "03")]
PROCEDURES = [(SNOMED, "234947003"), (SNOMED, "73761001")]
# SLE (read by the criteria) and conditions none reads
CONDITIONS = [(SNOMED, "55464009"), (SNOMED, "195662009"), (SNOMED, "10509002")]
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ABSENT_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
LOCAL_STATUS = {"system": "http://ehr.example.org/ver", "code": "R", "display": "Ruled out"}
VALUES: list[tuple[str, Any]] = [
    ("valueQuantity", {"value": 172.5, "unit": "cm", "system": "http://unitsofmeasure.org",
                       "code": "cm"}),
    ("valueQuantity", {"value": 70, "unit": "kg"}),
    ("valueQuantity", {"value": 1, "code": ""}),
    ("valueCodeableConcept", {"coding": [{"system": SNOMED, "code": "266919005"}],
                              "text": "Never smoker"}),
    ("valueString", "negative"),
    ("valueInteger", 4),
    ("valueBoolean", True),
    ("valueRatio", {"numerator": {"value": 1}, "denominator": {"value": 80}}),
]  # fmt: skip
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "2026-02-30", "2026-13-01", "Patient/", "final", "entered-in-error",
                     "caf\u00e9", "a\nb", "2026", "2026-05-01T10:00:00Z"]),
    st.just([]),
    st.just({}),
    st.just({"coding": {"code": "1"}}),
    st.just([{"code": "8302-2", "system": LOINC}]),
)  # fmt: skip


def _coded(pair: tuple[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": pair[0], "code": pair[1], "display": "d"}], "text": "t"}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Observation"] * 4 + ["Procedure", "Immunization"] * 2
                                + ["Condition"] * 3))  # fmt: skip
    pid = draw(st.sampled_from(["p1", "p2", "p-3.x"]))
    status = draw(st.sampled_from(["final", "completed", "entered-in-error", "amended"]))
    res: dict[str, Any] = {"resourceType": kind, "id": f"r{draw(st.integers(0, 10**6))}"}
    if kind == "Observation":
        res |= {"status": status, "code": _coded(draw(st.sampled_from(OBS_CODES))),
                "subject": {"reference": f"Patient/{pid}"}}  # fmt: skip
        when = draw(st.sampled_from(["2026-01-0", "2025-12-3", "2024-02-2"])) + str(
            draw(st.integers(1, 9))
        )
        where = draw(st.sampled_from(["effectiveDateTime", "effectivePeriod", "effectiveTiming",
                                      "issued", "none"]))  # fmt: skip
        if where == "effectivePeriod":
            res[where] = {draw(st.sampled_from(["start", "end"])): when}
        elif where == "effectiveTiming":
            res[where] = draw(st.sampled_from([
                {"event": [when]}, {"event": [when + "T08:00:00Z", "2023-06-01", "x"]},
                {"event": ["x"], "repeat": {"boundsPeriod": {"start": when}}},
                {"repeat": {"boundsPeriod": {"end": when}, "frequency": 1}}, {"event": []}]))  # fmt: skip
        elif where == "issued":
            res[where] = when + "T08:00:00Z"
        elif where != "none":
            res[where] = when
        if draw(st.booleans()):
            key, value = draw(st.sampled_from(VALUES))
            res[key] = value
        if draw(st.integers(0, 2)) == 0:
            # a panel: components whose codes map to a concept (kept) or not (summarised)
            res["component"] = [
                {"code": _coded(draw(st.sampled_from(COMPONENT_CODES))), key: value}
                for key, value in draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=3))
            ]
    elif kind == "Condition":
        res |= {"code": _coded(draw(st.sampled_from(CONDITIONS))),
                "subject": {"reference": f"Patient/{pid}"}}  # fmt: skip
        verification = draw(st.sampled_from(["confirmed", "refuted", "entered-in-error", ""]))
        if verification:
            coding = {"system": VERIFICATION, "code": verification}
            # a local coding first, the status's system after it or not named (drop_reason
            # reads the condition-ver-status coding, else the first with one of its codes)
            res["verificationStatus"] = {"coding": draw(st.sampled_from([
                [coding], [LOCAL_STATUS, coding], [LOCAL_STATUS, {"code": verification}],
                [{**LOCAL_STATUS, "code": "confirmed"}, coding]]))}  # fmt: skip
        for where in draw(st.sets(st.sampled_from(["recordedDate", "onsetDateTime", "onsetPeriod"]))):
            when = f"202{draw(st.integers(0, 6))}-0{draw(st.integers(1, 9))}-1{draw(st.integers(0, 9))}"
            res[where] = {"start": when} if where == "onsetPeriod" else when
        if draw(st.integers(0, 5)) == 0:
            res["status"] = status  # not an element of R4's Condition, but drop rules read it
    elif kind == "Procedure":
        res |= {"status": status, "code": _coded(draw(st.sampled_from(PROCEDURES))),
                "subject": {"reference": f"Patient/{pid}"}}  # fmt: skip
        for where in draw(st.sets(st.sampled_from(["performedDateTime", "performedPeriod"]))):
            when = f"202{draw(st.integers(0, 6))}-0{draw(st.integers(1, 9))}-1{draw(st.integers(0, 9))}"
            res[where] = {"start": when} if where == "performedPeriod" else when
    else:
        when = draw(st.sampled_from(["2026-01-01", "2025-03-0", "2024-07-11T09:00:00Z"]))
        res |= {"status": status, "vaccineCode": _coded(draw(st.sampled_from(VACCINES))),
                "patient": {"reference": f"Patient/{pid}"}, "occurrenceDateTime": when}  # fmt: skip
    # a status, or a Condition's abatement, sent as its extension alone (valid FHIR JSON: no
    # value, a data-absent-reason; the record is not read as one with the most permissive value)
    if draw(st.integers(0, 5)) == 0:
        name = "abatementDateTime" if kind == "Condition" else "status"
        res.pop(name, None)
        res["_" + name] = {"extension": [{"url": ABSENT_URL, "valueCode": "unknown"}]}
    # one or two mutations anywhere in the record: a value of another type, a key dropped
    res = copy.deepcopy(res)  # the shared examples above stay as they are
    for _ in range(draw(st.integers(0, 2))):
        node: Any = res
        path = []
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = draw(
                st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
            )
            path.append((node, key))
            node = node[key]
        if path:
            parent, key = path[-1]
            if isinstance(parent, dict) and key != "resourceType" and draw(st.booleans()):
                del parent[key]
            else:
                parent[key] = copy.deepcopy(draw(JUNK))
    return res


def _line(res: dict[str, Any], style: int) -> bytes:
    if style == 0:
        return orjson.dumps(res)
    if style == 1:
        return json.dumps(res).encode()  # spaces after separators
    if style == 2:
        return json.dumps(res, ensure_ascii=False).encode()  # raw UTF-8
    if style == 3:
        # a duplicated key: the last one counts (orjson and msgspec agree)
        text = orjson.dumps(res)
        return text[:-1] + b',"status":"final"}' if len(res) > 1 else text
    # keys sorted (resourceType no longer first), or resourceType moved to the end
    if style == 4:
        return orjson.dumps(res, option=orjson.OPT_SORT_KEYS)
    return orjson.dumps({**{k: v for k, v in res.items() if k != "resourceType"}, **res})


def _read(lines: list[bytes], by_line: bool) -> tuple[list[Any], ReadStats, Census]:
    triage = Triage(LOADED.rules, LOADED.relevant)
    stats = ReadStats()
    reader = Reader(stats, TYPES, "fast", triage)
    if not by_line:
        reader._lines = frozenset()  # the ordinary path only
    got = [(res, origin, raw) for res, origin, raw in reader.ndjson(lines, "x.ndjson")]
    return got, stats, triage.take()


def _same(lines: list[bytes]) -> None:
    fast, fast_stats, fast_census = _read(lines, True)
    slow, slow_stats, slow_census = _read(lines, False)
    assert fast == slow
    assert fast_stats == slow_stats
    assert fast_census.records == slow_census.records
    assert fast_census.dates == slow_census.dates
    # (a handler binds its type's counts when made: an empty one where it took no line)
    assert {t: n for t, n in fast_census.counts.items() if n} == slow_census.counts
    assert {t: d for t, d in fast_census.latest.items() if d} == slow_census.latest
    assert {t: list(e) for t, e in fast_census.entries.items() if e} == {
        t: list(e) for t, e in slow_census.entries.items()
    }
    # (each type's entries in read order; the types in the order their handlers were made)
    assert sorted(fast_census.entry_rows()) == sorted(slow_census.entry_rows())


@settings(
    max_examples=400,
    deadline=None,
    # big charts sometimes overrun hypothesis's buffer: those examples are skipped, not failed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(records(), st.integers(0, 5)), min_size=1, max_size=40))
def test_line_triage_answers_as_the_parsed_record(batch: list[tuple[dict[str, Any], int]]) -> None:
    _same([_line(res, style) for res, style in batch])


def test_line_triage_takes_most_repeat_lines_and_agrees_on_broken_ones() -> None:
    """Once a code's census samples are full its repeats are answered from the bytes alone;
    lines orjson refuses (or msgspec cannot follow) are read and rejected as before."""
    vital = {"resourceType": "Observation", "id": "v", "status": "final",
             "code": _coded(OBS_CODES[0]), "subject": {"reference": "Patient/p1"},
             "effectiveDateTime": "2026-01-01",
             "valueQuantity": {"value": 170, "unit": "cm", "code": "cm"}}  # fmt: skip
    lines = [orjson.dumps({**vital, "id": f"v{i}", "valueQuantity": {"value": 170 + i}})
             for i in range(10)]  # fmt: skip
    deep = b"[" * 1100 + b"]" * 1100
    lines += [
        orjson.dumps(vital)[:-1] + b',"note":"\xff"}',  # invalid UTF-8 in an unread element
        orjson.dumps(vital)[:-1] + b',"note":"\\ud800"}',  # a lone surrogate
        orjson.dumps(vital)[:-1] + b',"note":' + deep + b"}",  # deeper than orjson reads
        orjson.dumps(vital)[:-1] + b',"note":' + b"[" * 600 + b"]" * 600 + b"}",
        orjson.dumps(vital)[:-1] + b",}",  # trailing comma
        b'\xef\xbb\xbf' + orjson.dumps(vital),  # byte order mark
    ]  # fmt: skip
    _same(lines)
    triage = Triage(LOADED.rules, LOADED.relevant)
    answers = [triage.offer_line(line, "Observation") for line in lines[:10]]
    assert answers[0] is None  # the first records of a code are sampled from the parsed record
    triage.offer(orjson.loads(lines[0]))
    triage.offer(orjson.loads(lines[1]))
    triage.offer(orjson.loads(lines[2]))
    assert [triage.offer_line(line, "Observation") for line in lines[3:10]] == [True] * 7
    assert triage.census.records == 10


def test_line_triage_samples_other_values_from_the_bytes() -> None:
    """Records with no quantity are sampled from their value elements alone: a panel of
    components (nothing to sample) and a code with only two distinct values, which never fills
    its samples, are summarised from their bytes from the first record on."""
    base = {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-01-01"}  # fmt: skip
    panel = {**base, "code": _coded(OBS_CODES[0]),
             "component": [{"code": _coded(OBS_CODES[1]), "valueQuantity": {"value": 120}}]}  # fmt: skip
    smoker = {**base, "code": _coded(OBS_CODES[2])}
    answers = [{"text": "Never smoker"}, {"text": "Former smoker"}]
    lines = [orjson.dumps({**panel, "id": f"p{i}"}) for i in range(4)]
    lines += [
        orjson.dumps({**smoker, "id": f"s{i}", "valueCodeableConcept": answers[i % 2]})
        for i in range(6)
    ]
    _same(lines)
    triage = Triage(LOADED.rules, LOADED.relevant)
    assert [triage.offer_line(line, "Observation") for line in lines] == [True] * 10
    values = sorted(v for e in triage.census.all_entries() for v in e.values)
    assert values == ["Former smoker", "Never smoker"]


def test_line_triage_keeps_panels_whose_components_are_read() -> None:
    """A panel whose own code maps to nothing is kept when a component's code maps to a concept
    (a platelet count in a CBC), from its bytes as from the parsed record; a blood-pressure
    panel, none of whose components maps, is summarised."""
    base = {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-01-01", "code": _coded(OBS_CODES[0])}  # fmt: skip
    bp = [{"code": _coded(COMPONENT_CODES[0]), "valueQuantity": {"value": 120}},
          {"code": _coded(COMPONENT_CODES[1]), "valueQuantity": {"value": 80}}]  # fmt: skip
    platelets = {"code": _coded(COMPONENT_CODES[2]), "valueQuantity": {"value": 10}}
    lines = [orjson.dumps({**base, "id": f"b{i}", "component": bp}) for i in range(4)]
    lines += [
        orjson.dumps({**base, "id": f"c{i}", "component": [*bp, platelets]}) for i in range(4)
    ]
    _same(lines)
    triage = Triage(LOADED.rules, LOADED.relevant)
    assert [triage.offer_line(line, "Observation") for line in lines] == [True] * 4 + [False] * 4


def test_lines_with_the_type_after_other_keys_are_read_from_their_bytes(monkeypatch) -> None:
    """A writer that sorts keys puts resourceType after other keys. Such lines still take the
    byte paths: a type no criterion reads is counted unparsed, and repeats of an Observation
    code no criterion reads are summarised from the elements msgspec decodes."""
    import types

    import cohort.source.reader as reader_module

    vital = {"resourceType": "Observation", "status": "final", "code": _coded(OBS_CODES[0]),
             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-01-01",
             "valueQuantity": {"value": 170, "unit": "cm", "code": "cm"}}  # fmt: skip
    records = [{**vital, "id": f"v{i}", "valueQuantity": {"value": 170 + i}} for i in range(10)]
    records += [{"resourceType": "Claim", "id": f"c{i}", "status": "active"} for i in range(5)]
    lines = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records]
    assert not any(line.startswith(b'{"resourceType"') for line in lines)
    parsed: list[bytes] = []
    real = orjson.loads
    spy = types.SimpleNamespace(
        loads=lambda b: parsed.append(b) or real(b), JSONDecodeError=orjson.JSONDecodeError
    )
    monkeypatch.setattr(reader_module, "orjson", spy)
    triage = Triage(LOADED.rules, LOADED.relevant)
    stats = ReadStats()
    got = list(Reader(stats, TYPES, "fast", triage).ndjson(lines, "x.ndjson"))
    assert got == [] and stats.skipped_types["Claim"] == 5
    assert stats.summarised["Observation"] == 10 and triage.census.records == 10
    assert not any(b'"Claim"' in b for b in parsed)  # counted, never parsed
    assert len(parsed) < 5  # only a new code's first records, which the census samples


def _or_junk(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` half the time, JUNK the other half (st.one_of would draw each of JUNK's own
    branches as often as `good`, and a good value about one time in ten)."""
    return st.booleans().flatmap(lambda ok: good if ok else JUNK)


@st.composite
def versioned(draw: st.DrawFn) -> dict[str, Any]:
    """A record of `records()` with an id and meta of any shape (or none): most have a meta
    object, most of those a string versionId or lastUpdated."""
    res = draw(records())
    if draw(st.integers(0, 4)) == 0:
        res["id"] = draw(JUNK)
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return res
    if shape == 1:
        res["meta"] = draw(JUNK)
        return res
    res["meta"] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "versionId": _or_junk(st.sampled_from(["1", "12", "x"])),
                "lastUpdated": _or_junk(st.just("2026-05-01T10:00:00Z")),
                "source": st.just("#a"),
            },
        )
    )
    return res


def _tombs(lines: list[bytes], by_line: bool) -> list[Any]:
    triage = Triage(LOADED.rules, LOADED.relevant, tombstones=True)
    reader = Reader(ReadStats(), TYPES, "fast", triage)
    if not by_line:
        reader._lines = frozenset()  # the ordinary path only
    list(reader.ndjson(lines, "x.ndjson"))
    assert triage.tombs is not None
    return triage.tombs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(versioned(), st.integers(0, 5)), min_size=1, max_size=30))
def test_line_tombstones_are_those_of_the_parsed_records(
    batch: list[tuple[dict[str, Any], int]],
) -> None:
    """`snapshot = false`: a line summarised from its bytes leaves the tombstone (id, versionId,
    lastUpdated) the parsed record leaves, whatever the shape of its id and meta."""
    lines = [_line(res, style) for res, style in batch]
    assert _tombs(lines, True) == _tombs(lines, False)


def test_line_tombstones_are_read_from_the_bytes_and_only_when_asked() -> None:
    vital = {"resourceType": "Observation", "status": "final", "code": _coded(OBS_CODES[2]),
             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-01-01"}  # fmt: skip
    metas: list[Any] = [
        {"versionId": "3", "lastUpdated": "2026-05-01T10:00:00Z"},
        {"lastUpdated": "2026-05-01"},
        {"versionId": 3},  # not a string: no version (as prepare_row reads it)
        [],
        None,
    ]
    lines = [orjson.dumps({**vital, "id": f"v{i}", "meta": m}) for i, m in enumerate(metas)]
    lines += [
        orjson.dumps({**vital, "id": "v5"}),
        orjson.dumps(vital),
        orjson.dumps({**vital, "id": 7}),
    ]
    triage = Triage(LOADED.rules, LOADED.relevant, tombstones=True)
    assert [triage.offer_line(line, "Observation") for line in lines] == [True] * len(lines)
    assert triage.tombs == [
        ("Observation", "v0", "3", "2026-05-01T10:00:00Z"),
        ("Observation", "v1", None, "2026-05-01"),
        ("Observation", "v2", None, None),
        ("Observation", "v3", None, None),
        ("Observation", "v4", None, None),
        ("Observation", "v5", None, None),
    ]
    plain = Triage(LOADED.rules, LOADED.relevant)
    assert [plain.offer_line(line, "Observation") for line in lines] == [True] * len(lines)
    assert plain.tombs is None


def test_a_do_not_perform_element_drops_only_a_medication_request() -> None:
    """doNotPerform is a MedicationRequest's element (FHIR R4: none of the types read from a
    line's bytes has it): one on a Condition, Observation, Procedure or Immunization is read
    alike from the bytes and from the parsed record, not dropped on one path and counted on
    the other."""
    base = {"status": "final", "subject": {"reference": "Patient/p1"}, "doNotPerform": True}
    lines = [
        orjson.dumps({**base, "resourceType": "Condition", "id": "c1", "status": "active",
                      "code": _coded(CONDITIONS[1]), "recordedDate": "2026-01-02"}),
        orjson.dumps({**base, "resourceType": "Procedure", "id": "p1", "status": "completed",
                      "code": _coded(PROCEDURES[0])}),
        orjson.dumps({**base, "resourceType": "Immunization", "id": "i1", "status": "completed",
                      "vaccineCode": _coded((CVX, "88"))}),
    ]  # fmt: skip
    _same(lines)
    rules = LOADED.rules
    assert rules.drop_reason({"resourceType": "Condition", "doNotPerform": True}) is None
    order = {"resourceType": "MedicationRequest", "doNotPerform": True, "status": "active"}
    assert rules.drop_reason(order) == "doNotPerform"


def test_the_census_keeps_each_patients_latest_date_per_type() -> None:
    """What a criterion that finds nothing dates the other records on file by (criteria.searched)
    : the latest of each type's summarised records, read alike from the bytes and the record."""
    subject = {"reference": "Patient/p1"}
    obs = [{"resourceType": "Observation", "id": f"o{i}", "status": "final", "subject": subject,
            "code": _coded(OBS_CODES[1]), "effectiveDateTime": when}
           for i, when in enumerate(["2026-03-01T10:00:00Z", "2026-05-02", "2026-04-01"])]
    conds = [{"resourceType": "Condition", "id": "c1", "subject": subject,
              "code": _coded(CONDITIONS[1]), "onsetDateTime": "2019-01-01",
              "recordedDate": "2021-02-03"},
             {"resourceType": "Condition", "id": "c2", "subject": subject,
              "code": _coded(CONDITIONS[2]), "onsetPeriod": {"start": "2020-06-07"}}]
    procs = [{"resourceType": "Procedure", "id": "p1", "status": "completed", "subject": subject,
              "code": _coded(PROCEDURES[0]), "performedPeriod": {"start": "2025-08-09"}},
             {"resourceType": "Procedure", "id": "p2", "status": "completed", "subject": subject,
              "code": _coded(PROCEDURES[0]), "performedDateTime": "2024-01-01T08:00:00Z"},
             {"resourceType": "Procedure", "id": "p3", "status": "completed", "subject": subject,
              "code": _coded(PROCEDURES[0])}]  # (undated: counted, not dated)
    vacs = [{"resourceType": "Immunization", "id": "i1", "status": "completed",
             "patient": subject, "vaccineCode": _coded(VACCINES[0]),
             "occurrenceDateTime": "2025-10-11"},
            {"resourceType": "Immunization", "id": "i2", "status": "completed",
             "patient": subject, "vaccineCode": _coded(VACCINES[0]),
             "occurrenceString": "last spring"}]  # fmt: skip
    lines = [orjson.dumps(r) for r in [*obs, *conds, *procs, *vacs]]
    _same(lines)
    _, stats, census = _read(lines, True)
    assert sum(stats.summarised.values()) == len(lines)
    assert census.counts == {"Observation": {"p1": 3}, "Condition": {"p1": 2},
                             "Procedure": {"p1": 3}, "Immunization": {"p1": 2}}  # fmt: skip
    assert census.latest == {"Observation": {"p1": "2026-05-02"},
                             "Condition": {"p1": "2021-02-03"},
                             "Procedure": {"p1": "2025-08-09"},
                             "Immunization": {"p1": "2025-10-11"}}  # fmt: skip
    [(pid, text)] = census.date_rows()
    assert pid == "p1"
    assert text.partition(";")[2] == (
        "Condition=2,Condition@2021-02-03,Immunization=2,Immunization@2025-10-11,"
        "Observation=3,Observation@2026-05-02,Procedure=3,Procedure@2025-08-09"
    )


def test_line_triage_dates_a_result_by_its_timing() -> None:
    """effectiveTiming dates a result alike from the bytes and the parsed record: its earliest
    event (none when one does not read), else repeat.boundsPeriod's start (its end without a
    start); a Timing of another
    shape (an event that is a number or null, events not in a list, a repeat that is a list)
    fails the decode and the line is read whole, where it reads as no date (`issued` dates it,
    or, undated, it is kept)."""
    base = {"resourceType": "Observation", "status": "final", "code": _coded(OBS_CODES[0])}
    timings: list[tuple[Any, str | None, bool | None]] = [  # (timing, census day, from bytes)
        ({"event": ["2026-10-01T08:00:00Z", "2026-09-30"]}, "2026-09-30", True),
        # an event that does not read: the earliest is unknown, undated (kept whole)
        ({"event": ["x", "2026-05"]}, None, False),
        ({"event": ["2026", "2026-01-10"]}, "2026-01-01", True),
        ({"repeat": {"boundsPeriod": {"start": "2026-08-01"}, "frequency": 2}}, "2026-08-01", True),
        ({"repeat": {"boundsPeriod": {"end": "2026-08-02"}}}, "2026-08-02", True),
        ({"event": [5]}, None, None),
        # (null: its date not known, so the earliest is not: no date, `issued` dates it)
        ({"event": [None, "2026-10-01"]}, None, None),
        ({"event": "2026-10-01"}, None, None),
        ({"repeat": []}, None, None),
        ("2026-10-01", None, None),
    ]  # fmt: skip
    lines = [
        orjson.dumps({**base, "id": f"o{i}", "subject": {"reference": f"Patient/p{i}"},
                      "effectiveTiming": timing})
        for i, (timing, _, _) in enumerate(timings)
    ]  # fmt: skip
    # the broken ones again, with an `issued`: dated by it where their Timing gives no date
    lines += [
        orjson.dumps({**base, "id": f"i{i}", "subject": {"reference": f"Patient/q{i}"},
                      "effectiveTiming": timing, "issued": "2026-07-07T07:00:00Z"})
        for i, (timing, _, answer) in enumerate(timings) if answer is None
    ]  # fmt: skip
    _same(lines)
    triage = Triage(LOADED.rules, LOADED.relevant)
    answers = [triage.offer_line(line, "Observation") for line in lines]
    assert answers == [t[2] for t in timings] + [None] * 5
    _, _, census = _read(lines, True)
    want = {f"p{i}": day for i, (_, day, _) in enumerate(timings) if day}
    want |= {f"q{i}": t[1] or "2026-07-07" for i, t in enumerate(timings) if t[2] is None}
    assert census.latest["Observation"] == want
