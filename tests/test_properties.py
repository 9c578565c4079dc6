"""Property-based tests (hypothesis) of the parsers that see raw input: dates, birth dates,
quantities/units, titers and references. None may raise; each returns a sane value or None."""

from __future__ import annotations

import math
from datetime import date
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohort.config import shipped
from cohort.criteria.demographic import birth_bounds
from cohort.extract import parse_date
from cohort.model import Code, ObsValue, Quantity
from cohort.source.validate import check
from cohort.store import reference_id
from cohort.terminology import Terminology

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
junk = st.one_of(st.none(), st.integers(), st.floats(), st.text(), st.binary(), st.booleans(),
                 st.lists(st.text(), max_size=3), st.dictionaries(st.text(), st.text(), max_size=3))  # fmt: skip
date_like = st.from_regex(
    r"\A-?\d{1,5}(-\d{1,3}(-\d{1,3}(T\d\d:\d\d(:\d\d)?(Z|[+-]\d\d:\d\d)?)?)?)?\Z"
)


@cache
def term() -> Terminology:
    return Terminology.load(shipped("mappings"))


@FAST
@given(st.one_of(junk, date_like))
def test_parse_date_never_raises(value: object) -> None:
    d = parse_date(value)
    assert d is None or isinstance(d, date)


@FAST
@given(st.dates())
def test_parse_date_round_trips_real_dates(d: date) -> None:
    iso = d.isoformat()
    if len(iso) == 10:  # years 1000-9999 (FHIR dates have 4-digit years)
        assert parse_date(iso) == d
        assert parse_date(iso + "T10:00:00+02:00") == d


@FAST
@given(st.integers(1000, 9999), st.integers(0, 40), st.integers(0, 40))
def test_parse_date_impossible_days_are_none(y: int, m: int, d: int) -> None:
    text = f"{y:04d}-{m:02d}-{d:02d}"
    try:
        real: date | None = date(y, m, d)
    except ValueError:
        real = None
    assert parse_date(text) == real


@FAST
@given(st.one_of(st.text(), date_like))
def test_birth_bounds_never_raises_and_is_ordered(text: str) -> None:
    b = birth_bounds(text)
    if b is not None:
        lo, hi = b
        assert lo <= hi and (hi - lo).days <= 366


@FAST
@given(st.dates())
def test_birth_bounds_partial_dates_contain_the_day(d: date) -> None:
    iso = d.isoformat()
    if len(iso) != 10:
        return
    for text in (iso, iso[:7], iso[:4]):
        b = birth_bounds(text)
        assert b is not None and b[0] <= d <= b[1]


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
units = st.one_of(st.text(max_size=12), st.sampled_from(
    ["mg/dL", "umol/L", "10*3/uL", "g/dL", "%", "kg", "[lb_av]", "mmol/L", "/uL", "10*9/L",
     "mg", "1/min", "{titer}", "g", "U/L", "IU/mL", "m", "cel", "[degF]", "", " ", "µmol/L"]))  # fmt: skip


@FAST
@given(finite_or_not, units, units, st.sampled_from(["", "<", ">=", "<=", ">", "~"]),
       st.sampled_from(["platelets", "hemoglobin", "creatinine", "body_weight", "anc", "nope"]))  # fmt: skip
def test_convert_never_raises(value: float, unit: str, code: str, comp: str, concept: str) -> None:
    out = term().convert(Quantity(value, unit, code, comp), concept)
    assert out is None or (isinstance(out, float) and math.isfinite(out))


titer_text = st.one_of(
    st.text(max_size=20), st.from_regex(r"\A\s*[<>]?=?\s*1\s*[:/]\s*-?\d{0,12}(\.\d*)?\s*\Z")
)


@FAST
@given(titer_text, st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)))
def test_titer_never_raises(text: str, num: float | None) -> None:
    values = [ObsValue(string=text), ObsValue(text=text, codes=(Code("http://x", text, ""),))]
    if num is not None:
        values.append(ObsValue(quantity=Quantity(num, "{titer}", "{titer}")))
        values.append(ObsValue(ratio=(Quantity(1.0), Quantity(num))))
    for v in values:
        t = term().titer(v)
        assert t is None or (math.isfinite(t.value) and t.value > 0)


@FAST
@given(st.integers(1, 100_000))
def test_titer_reads_plain_dilutions(n: int) -> None:
    t = term().titer(ObsValue(string=f"1:{n}"))
    assert t is not None and t.value == n


ids = st.from_regex(r"\A[A-Za-z0-9\-.]{1,64}\Z")


@FAST
@given(junk)
def test_reference_parsers_never_raise(value: object) -> None:
    r = reference_id(value)
    assert r is None or isinstance(r, str)


@FAST
@given(ids, st.sampled_from(["", "https://fhir.x/r4/", "http://h:8080/fhir/"]),
       st.one_of(st.just(""), st.integers(1, 99).map(lambda n: f"/_history/{n}")))  # fmt: skip
def test_reference_forms_agree(pid: str, base: str, hist: str) -> None:
    ref = f"{base}Patient/{pid}{hist}"
    assert reference_id(ref) == pid
    assert reference_id(ref.replace("Patient/", "Medication/"), "Medication") == pid


@FAST
@given(st.tuples(st.sampled_from(["Patient", "Medication", "Patientx", "", "x/Patient"]),
                 st.sampled_from(["/", "", "//"]),
                 st.lists(st.sampled_from(["a", "7", ".", "-", " ", "?x", "#c", "/", "_history",
                                           "é"]), max_size=5).map("".join)).map("".join),
       st.sampled_from(["Patient", "Medication"]))  # fmt: skip
def test_reference_id_shortcut_answers_as_the_general_parser(ref: str, rtype: str) -> None:
    # a leading space skips the shortcut for plain "Type/id"; the general parser strips it
    assert reference_id(ref, rtype) == reference_id(" " + ref, rtype)


@FAST
@given(st.dictionaries(st.sampled_from(["resourceType", "id", "subject", "code", "status",
                                         "birthDate", "meta", "contained", "valueQuantity"]),
                       junk, max_size=6))  # fmt: skip
def test_validation_never_raises(resource: dict[str, object]) -> None:
    reason = check(resource, "fast")
    assert reason is None or isinstance(reason, str)


def test_convert_offset_unit_does_not_raise() -> None:
    assert term().convert(Quantity(150.0, "degF", "[degF]"), "platelets") is None


calendar_like = st.builds(
    lambda y, m, d, t: f"{y:04d}-{m:02d}-{d:02d}{t}",
    st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99), st.sampled_from(["", "T10:00:00Z"]),
)  # fmt: skip


@FAST
@given(st.recursive(st.one_of(calendar_like, date_like, st.text(max_size=12), st.integers(-9, 9)),
                    lambda kids: st.one_of(st.lists(kids, max_size=3),
                                           st.dictionaries(st.text(max_size=5), kids, max_size=3)),
                    max_leaves=12))  # fmt: skip
def test_date_prefilter_never_misses_an_impossible_date(doc: object) -> None:
    """The byte scan may send a clean record to the exact walk, never wave a bad one through."""
    import orjson

    from cohort.source.structure import impossible_date, maybe_bad_date

    res = {"resourceType": "Observation", "x": doc}
    if impossible_date(res) is not None:
        assert maybe_bad_date(orjson.dumps(res))
