"""The compiled prechecks (cohort/source/precheck.py) never accept what the `fast` validator
rejects, and accept the valid records of the shipped samples (so the fast path is the one taken)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_pipeline import mutated

from cohort.config import shipped
from cohort.source import validate

BAD = Path(__file__).parent / "data" / "bad"


def interpreter(res: dict[str, Any]) -> str | None:
    """The validator without its fast path: the reference the prechecks must agree with."""
    try:
        validate._check_fast(res)
    except validate.Invalid as e:
        return str(e)
    return None


def precheck(res: dict[str, Any]) -> bool:
    return validate._PRECHECKS[res["resourceType"]](res)


def _records(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or not path.name.endswith((".ndjson", ".ndjson.gz", ".json")):
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        docs = [data] if path.name.endswith(".json") else data.splitlines()
        for text in docs:
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            entries = doc.get("entry") if isinstance(doc, dict) else None
            if isinstance(entries, list):
                out += [e["resource"] for e in entries if isinstance(e, dict) and "resource" in e]
            else:
                out.append(doc)
    return [r for r in out if isinstance(r, dict) and r.get("resourceType").__class__ is str]


def test_prechecks_accept_the_valid_sample_records() -> None:
    records = _records(shipped("sample_bundles"))
    assert len(records) > 500
    for res in records:
        if res["resourceType"] in validate.RESOURCE_TYPES:
            assert interpreter(res) is None
            if "contained" not in res:  # contained resources are left to the interpreter
                assert precheck(res), res["resourceType"]


def test_prechecks_reject_every_bad_corpus_record_the_validator_rejects() -> None:
    rejected = 0
    for res in _records(BAD):
        if res["resourceType"] in validate.RESOURCE_TYPES and interpreter(res) is not None:
            rejected += 1
            assert not precheck(res)
    assert rejected >= 5


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("status", None),
        ("status", "final "),
        ("effectiveDateTime", "2026-13-01"),
        ("effectiveDateTime", None),
        ("issued", "2026-01-01"),
        ("valueQuantity", {"value": True}),
        ("valueInteger", 1.5),
        ("code", {"coding": [{"code": "a  b"}]}),
        ("meta", {"lastUpdated": "2026-01-01T00:00:00"}),
        ("id", "no spaces allowed"),
    ],
)
def test_each_leaf_kind_is_rejected_like_the_validator(element: str, value: Any) -> None:
    res = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}
    assert precheck(res) and interpreter(res) is None
    res[element] = value
    assert interpreter(res) is not None
    assert not precheck(res)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_precheck_true_means_the_validator_accepts(res: dict[str, Any]) -> None:
    rtype = res.get("resourceType")
    if rtype.__class__ is not str or rtype not in validate.RESOURCE_TYPES:
        return
    if precheck(res):
        assert interpreter(res) is None
    # and `check` itself gives the interpreter's answer either way
    assert validate.check(res, "fast") == interpreter(res)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["Observation", "Condition", "Patient", "MedicationRequest", "Immunization"]),
    st.dictionaries(
        st.sampled_from(["status", "code", "subject", "effectiveDateTime", "meta", "id",
                         "birthDate", "onsetPeriod", "intent", "vaccineCode", "patient",
                         "medicationCodeableConcept", "occurrenceDateTime", "valueQuantity"]),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                      st.sampled_from(["2026-02-01", "2026-02-01T10:00:00Z", "final", "a b"])),
            lambda inner: st.one_of(st.lists(inner, max_size=3),
                                    st.dictionaries(st.sampled_from(["coding", "code", "system",
                                                    "reference", "start", "value", "text"]),
                                                    inner, max_size=3)),
            max_leaves=8,
        ),
        max_size=6,
    ),
)  # fmt: skip
def test_precheck_on_arbitrary_shapes(rtype: str, body: dict[str, Any]) -> None:
    res = {**body, "resourceType": rtype}
    if precheck(res):
        assert interpreter(res) is None


@pytest.mark.parametrize(
    ("limit", "valid"),
    [
        ({"numerator": {"value": 40, "code": "mg"}, "denominator": {"value": 1, "code": "d"}}, True),
        # FHIR R5 (and records written to it): a list of Ratios, not refused (it dropped the order)
        ([{"numerator": {"value": 40, "code": "mg"}, "denominator": {"value": 1, "code": "d"}}],
         True),
        ([], True),
        ({"numerator": {"value": "40"}}, False),
        ([{"numerator": {"value": "40"}}], False),
        (["40 mg a day"], False),
        ("40 mg a day", False),
        ([[]], False),
    ],
)  # fmt: skip
def test_max_dose_per_period_one_ratio_or_a_list(limit: Any, valid: bool) -> None:
    dosage = {"text": "x", "maxDosePerPeriod": limit}
    res = {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
           "intent": "order", "subject": {"reference": "Patient/p1"},
           "medicationCodeableConcept": {"text": "prednisone"}, "dosageInstruction": [dosage]}  # fmt: skip
    assert (interpreter(res) is None) is valid, interpreter(res)
    assert precheck(res) is valid
