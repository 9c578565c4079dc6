"""Property-based tests (hypothesis) of three reading rules, each against an oracle written here
from the rule's text, not from the code: a result reported with a comparator ("<25") against a
limit (criteria/bounds.py), merged charts (docs/rules.md "Merged charts", run end to end through
the CLI) and the most recent of several results on one day (criteria/ordering.py newest_first)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from criteria_helpers import ago, condition, observation, patient, qty, run
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from researcher_helpers import csv_rows, run_records

from cohort.criteria.bounds import above, below, fails_below
from cohort.model import Status

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INF = math.inf


# --- 1. a comparator against a limit (criteria/bounds.py) --------------------------------------
# "<v" stands for every real true value below v, "<=v" for v too, ">v"/">=v" likewise upwards
# and a plain v (or "=v") for v alone. Answer: True when every true value is below (above) the limit,
# False when none is, None when the report leaves both possible.
def _contains(x: float | Fraction, v: float, cmp: str) -> bool:
    return {
        "": x == v,
        "<": x < v,
        "<=": x <= v,
        ">": x > v,
        ">=": x >= v,
    }[cmp]


# smaller than the gap between any two floats (the least subnormal is 2**-1074)
TINY = Fraction(1, 2**1100)


def real_values(v: float, cmp: str, limit: float) -> list[Fraction]:
    """A sample of the real true values `cmp v` stands for, exactly (fractions): v itself where
    allowed, values a hair either side of it and of the limit (where the answer can change;
    between two neighbouring floats there are still reals), and values far off."""
    fv, fl = Fraction(v), Fraction(limit)
    offsets = [Fraction(0), TINY, -TINY] + [
        Fraction(d) * sgn for d in (1e-9, 1e-3, 1.0, 1e3, 1e9, 1e200, 1e300) for sgn in (1, -1)
    ]
    sample = {fv + d for d in offsets} | {fl + d for d in (Fraction(0), TINY, -TINY)}
    return sorted(x for x in sample if _contains(x, v, cmp))


def round_down(x: Fraction) -> float:
    """The largest float not above x: against a float limit it reads as x does (x < limit
    exactly when it is), so a plain result of it is what a result of x would give."""
    f = float(x)
    return math.nextafter(f, -INF) if Fraction(f) > x else f


def verdict(values: list[Fraction], test: Callable[[Fraction], bool]) -> bool | None:
    hits = {test(x) for x in values}
    return True if hits == {True} else False if hits == {False} else None


def _bounds_cases() -> st.SearchStrategy[tuple[float, float]]:
    """(reported value, limit): any finite pair, and pairs equal or a few ulps apart."""
    num = st.floats(-1e300, 1e300, allow_nan=False)
    small = st.one_of(num, st.floats(-100, 100), st.integers(-100, 100).map(float))

    def close(v: float, steps: int) -> float:
        for _ in range(abs(steps)):
            v = math.nextafter(v, INF if steps > 0 else -INF)
        return v

    return st.one_of(
        st.tuples(small, small),
        st.builds(lambda v, k: (v, close(v, k)), small, st.integers(-3, 3)),
        st.builds(lambda v, d: (v, v + d), small, st.sampled_from([1e-12, -1e-12, 1e-6, -1e-6])),
    )


COMPARATORS = ["", "<", "<=", ">", ">="]
# as reported: "=" is no comparator, blanks around it are read away
SPELLED = {"": ["", "=", " = "], "<": ["<", " <"], "<=": ["<=", "<= "], ">": [">"], ">=": [">="]}


@FAST
@given(_bounds_cases(), st.sampled_from(COMPARATORS), st.data())
def test_below_and_above_agree_with_the_true_values(
    case: tuple[float, float], cmp: str, data: st.DataObject
) -> None:
    v, limit = case
    sign = data.draw(st.sampled_from(SPELLED[cmp]))
    values = real_values(v, cmp, limit)
    assert values  # every comparator stands for some value
    expect_below = verdict(values, lambda x: x < Fraction(limit))
    expect_above = verdict(values, lambda x: x > Fraction(limit))
    assert below(v, sign, limit) is expect_below, (v, sign, limit, values)
    assert above(v, sign, limit) is expect_above, (v, sign, limit, values)
    want = {True: Status.FAIL, False: Status.PASS, None: Status.UNKNOWN}[expect_below]
    assert fails_below(v, sign, limit) is want


@FAST
@given(
    st.floats(allow_nan=False),
    st.floats(allow_nan=False),
    st.text(max_size=3).filter(lambda s: s.strip() not in ("", "=", "<", "<=", ">", ">=")),
)
def test_an_unknown_comparator_cannot_tell(v: float, limit: float, sign: str) -> None:
    # "ad" (FHIR: "sufficient to achieve this total") or junk: no set of true values to read
    assert below(v, sign, limit) is None and above(v, sign, limit) is None
    assert fails_below(v, sign, limit) is Status.UNKNOWN


PLATELET_LIMIT = 25.0  # trial file: platelets fail_below = 25 (x10^3/uL)
PLATELET_RANGE = (0.0, 5000.0)  # mappings/units.csv: platelets' plausible range
UNIT = "10*3/uL"  # the canonical unit: no conversion between the reported and the compared


def _platelets(value: float, cmp: str | None) -> str:
    o = observation("777-3", ago(10), valueQuantity=qty(value, UNIT, UNIT, comparator=cmp))
    return str(run("platelets", o).status)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.floats(*PLATELET_RANGE),
        st.sampled_from([0.0, 24.0, 25.0, 26.0, 5000.0]),
        st.sampled_from([25.0, 0.0, 5000.0]).map(lambda v: math.nextafter(v, INF)),
        st.sampled_from([25.0, 5000.0]).map(lambda v: math.nextafter(v, -INF)),
    ),
    st.sampled_from(COMPARATORS),
)
def test_platelets_with_a_comparator_read_as_every_true_value_would(v: float, cmp: str) -> None:
    """End to end (extraction, units, lab_latest): a "cmp v" result fails when every plausible
    (real) true value it stands for fails as a plain result, passes when every one passes, else
    is unknown."""
    lo, hi = PLATELET_RANGE
    values = [
        x
        for x in real_values(v, cmp, PLATELET_LIMIT) + [Fraction(lo), Fraction(hi)]
        if lo <= x <= hi and _contains(x, v, cmp)
    ]
    assume(values)  # "<0": no plausible value (the report is implausible)
    plain = {_platelets(round_down(x), None) for x in values}
    assert plain <= {"pass", "fail"}  # each true value in the range reads
    want = plain.pop() if len(plain) == 1 else "unknown"
    assert _platelets(v, cmp or None) == want, (v, cmp, values)


# --- 2. merged charts (docs/rules.md "Merged charts"), end to end ------------------------------
IDS = [f"p{i}" for i in range(8)]


@st.composite
def charts(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """Some of p0..p7 stored, each maybe replaced by another id (stored or not, itself, in a
    chain or a loop), each maybe saying it replaced others (link replaces: any ids, so
    also charts another one claims, or that say replaced-by someone else), each maybe with SLE
    conditions, old (over 6 months) or recent; some ids not stored, with SLE conditions only."""
    stored = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=8, unique=True))
    out: dict[str, dict[str, Any]] = {}
    for pid in sorted(stored):
        target = draw(st.one_of(st.none(), st.sampled_from(IDS)))
        replaces = draw(st.lists(st.sampled_from(IDS), max_size=2, unique=True))
        sle = draw(st.lists(st.sampled_from(["old", "new"]), max_size=2))
        out[pid] = {"replaced_by": target, "replaces": replaces, "sle": sle}
    for pid in sorted(set(IDS) - set(stored)):
        sle = draw(st.lists(st.sampled_from(["old", "new"]), max_size=1))
        if sle:
            out[pid] = {"stored": False, "replaced_by": None, "replaces": [], "sle": sle}
    return out


def _stored(data: dict[str, dict[str, Any]]) -> set[str]:
    return {pid for pid, chart in data.items() if chart.get("stored", True)}


def merged_into(data: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The oracle, from the rule's words: a stored Patient replaced by another is read with the
    patient that replaced it; a chain is followed to its last stored Patient; where the links
    loop the chart is read as it is, and so where the first patient that replaced it is not in
    the data. A link to itself (the rule does not say) is read as no link: it ends a chain.
    A chart with no replaced-by link of its own (stored or not) is replaced by the one stored
    Patient whose replaces link names it; where several do, by the last of them when the
    links above (own, or the one claim) lead each of the others to it, else by none."""
    stored = _stored(data)

    def claims(pid: str) -> set[str]:
        return {q for q in stored if q != pid and pid in data[q].get("replaces", ())}

    def first(pid: str) -> str | None:
        own = data[pid]["replaced_by"] if pid in stored else None
        if own is not None and own != pid:
            return str(own)
        one = claims(pid)
        return one.pop() if len(one) == 1 else None

    def leads_to(start: str, goal: str) -> bool:
        seen, cur = {start}, first(start)
        while cur is not None and cur not in seen:
            if cur == goal:
                return True
            seen.add(cur)
            cur = first(cur)
        return cur == goal and cur != start

    def replaced_by(pid: str) -> str | None:
        found = first(pid)
        by = claims(pid)
        if found is not None or len(by) < 2:
            return found
        last = [c for c in by if all(c == b or leads_to(b, c) for b in by)]
        return last[0] if len(last) == 1 else None

    into: dict[str, str] = {}
    for pid in data:
        path = [pid]
        while True:
            nxt = replaced_by(path[-1])
            if nxt is None:
                break
            path.append(nxt)
            if nxt in path[:-1]:
                path = []  # a loop: merges nothing
                break
            if nxt not in stored:
                path.pop()  # not stored: the chain ends at the last stored one
                break
        if len(path) > 1:
            into[pid] = path[-1]
    return into


def _write_and_run(tmp: Path, records: list[dict[str, Any]]) -> tuple[dict, list[dict]]:
    site = run_records(tmp, records, "[run]\nworkers = 1\n")
    rows = {row["patient_id"]: row for row in csv_rows(site / "candidates.csv")}
    return rows, csv_rows(site / "evidence.csv")


# found by hypothesis: p0 (no Patient) is claimed by p2 and p6, and p6 by p2 and p1 (merged
# into p2); a shared chart was weighed on another shared chart's outcome when that one was read
# first, so the result hung on the order the Patients were read in
SHARED_BY_SHARED = {
    "p1": {"replaced_by": "p2", "replaces": ["p6"], "sle": []},
    "p2": {"replaced_by": None, "replaces": ["p6", "p0"], "sle": []},
    "p3": {"replaced_by": None, "replaces": [], "sle": []},
    "p6": {"replaced_by": None, "replaces": ["p0"], "sle": []},
    "p7": {"replaced_by": None, "replaces": [], "sle": []},
    "p0": {"stored": False, "replaced_by": None, "replaces": [], "sle": ["old"]},
}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@example(data=SHARED_BY_SHARED)
@given(charts())
def test_merged_charts_end_to_end_as_the_rule_reads(
    tmp_path_factory: Any, data: dict[str, dict[str, Any]]
) -> None:
    records: list[dict[str, Any]] = []
    stored = _stored(data)
    for n, (pid, chart) in enumerate(sorted(data.items())):
        links = [
            {"other": {"reference": f"Patient/{old}"}, "type": "replaces"}
            for old in chart.get("replaces", ())
        ]
        extra: dict[str, Any] = {}
        if chart["replaced_by"] is not None:
            other = {"reference": f"Patient/{chart['replaced_by']}"}
            links.append({"other": other, "type": "replaced-by"})
            extra = {"active": False}
        if links:
            extra["link"] = links
        if pid in stored:
            records.append(patient(f"19{50 + n}-01-0{n % 9 + 1}", pid=pid, **extra))
        for k, age in enumerate(chart["sle"]):
            c = condition("M32.14", onset=ago(3000 if age == "old" else 30), rid=f"c-{pid}-{k}")
            records.append({**c, "subject": {"reference": f"Patient/{pid}"}})
    into = merged_into(data)
    survivor = {pid: into.get(pid, pid) for pid in data}
    want: dict[str, set[str]] = {}  # candidate -> its SLE conditions
    ages: dict[str, set[str]] = {}
    for pid, chart in data.items():
        for k, age in enumerate(chart["sle"]):
            want.setdefault(survivor[pid], set()).add(f"Condition/c-{pid}-{k}")
            ages.setdefault(survivor[pid], set()).add(age)

    rows, evidence = _write_and_run(tmp_path_factory.mktemp("merged"), records)

    assert set(rows) == set(want), (data, into)
    for pid, refs in want.items():
        got = {
            e["ref"]
            for e in evidence
            if (e["patient_id"], e["criterion"]) == (pid, "sle_diagnosis")
        }
        assert got == refs, (pid, data, into)
        assert rows[pid]["sle_diagnosis"] == ("pass" if "old" in ages[pid] else "fail")
        # demographics are the surviving chart's (none where no Patient is stored)
        n = sorted(data).index(pid)
        born = f"19{50 + n}-01-0{n % 9 + 1}" if pid in stored else ""
        assert rows[pid]["birth_date"] == born


def test_merge_oracle_reads_the_documented_cases() -> None:
    """The oracle itself on the cases tests/test_merged_patients.py names."""

    def chart(to: str | None) -> dict[str, Any]:
        return {"replaced_by": to, "sle": []}

    assert merged_into({"a": chart("b"), "b": chart("c"), "c": chart(None)}) == {"a": "c", "b": "c"}
    assert merged_into({"x": chart("missing")}) == {}
    assert merged_into({"p": chart("q"), "q": chart("p")}) == {}
    assert merged_into({"a": chart("b"), "b": chart("m")}) == {"a": "b"}  # ends at b, stored
    assert merged_into({"a": chart("a")}) == {}
    assert merged_into({"a": chart("b"), "b": chart("b")}) == {"a": "b"}
    assert merged_into({"a": chart("p"), "p": chart("q"), "q": chart("p")}) == {}

    def claims(*olds: str, to: str | None = None) -> dict[str, Any]:
        return {"replaced_by": to, "replaces": list(olds), "sle": []}

    gone = {"stored": False, "replaced_by": None, "sle": ["old"]}
    # tests/test_merged_patients.py: the old chart has no link, or is not in the data
    assert merged_into({"n": claims("o", "g"), "o": chart(None), "g": gone}) == {
        "o": "n",
        "g": "n",
    }
    # two claim it: neither; its own replaced-by wins; a loop of claims merges nothing
    assert merged_into({"a": claims("x"), "b": claims("x"), "x": chart(None)}) == {}
    assert merged_into({"d": claims("o"), "o": chart("c"), "c": chart(None)}) == {"o": "c"}
    assert merged_into({"a": claims("b"), "b": claims("a")}) == {}
    # both kinds in one chain, to its last stored Patient
    assert merged_into({"x": chart("a"), "a": chart(None), "b": claims("a")}) == {
        "x": "b",
        "a": "b",
    }


# --- 3. the most recent of several results on one day (criteria/ordering.py newest_first) ------
DAY = ago(5)  # in the platelets window


@st.composite
def stamps(draw: st.DrawFn) -> tuple[str, int | None]:
    """A FHIR dateTime on DAY, as written, and its instant (POSIX microseconds, exact; None:
    no time):
    any time, seconds 60 included (FHIR R4 allows it), up to 6 decimals, any FHIR zone or
    (read as UTC, per instant_of) none."""
    if draw(st.integers(0, 4)) == 0:
        return DAY, None
    h, m, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 60))
    digits = draw(st.integers(0, 6))
    frac = draw(st.integers(0, 10**digits - 1)) if digits else 0
    frac_text = f".{frac:0{digits}d}" if digits else ""
    zone = draw(
        st.one_of(
            st.just("Z"),
            st.just(""),
            st.integers(-(13 * 60 + 59), 14 * 60).map(
                lambda mins: f"{'-' if mins < 0 else '+'}{abs(mins) // 60:02d}:{abs(mins) % 60:02d}"
            ),
        )
    )
    offset = 0
    if zone not in ("", "Z"):
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * (-1 if zone[0] == "-" else 1)
    midnight = int(datetime.fromisoformat(DAY).replace(tzinfo=UTC).timestamp())
    at = (midnight + h * 3600 + m * 60 + s - offset * 60) * 10**6 + frac * 10 ** (6 - digits)
    return f"{DAY}T{h:02d}:{m:02d}:{s:02d}{frac_text}{zone}", at


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(stamps(), st.from_regex(r"\A[A-Za-z0-9\-.]{1,12}\Z")),
        min_size=2,
        max_size=6,
        unique_by=lambda t: t[1],
    ),
    st.randoms(use_true_random=False),
    st.sampled_from(["effectiveDateTime", "effectivePeriod"]),
)
def test_the_most_recent_result_of_a_day_is_the_latest_instant(
    results: list[tuple[tuple[str, int | None], str]], rnd: Any, field: str
) -> None:
    """Timed results after the day's untimed ones, zones compared; whatever the ids or order."""
    obs = [
        observation(
            "777-3",
            stamp,
            date_field=field,
            rid=rid,
            valueQuantity=qty(10.0 + i, UNIT, UNIT),
        )
        for i, ((stamp, _), rid) in enumerate(results)
    ]
    timed = [at for (_, at), _ in results if at is not None]
    latest = max(timed) if timed else None
    # equal instants (one moment in two zones) may go either way, but always the same way
    want = {f"Observation/{rid}" for (_, at), rid in results if at == latest}
    got = run("platelets", *obs).evidence[0].ref
    assert got in want, (results, got)
    rnd.shuffle(obs)
    assert run("platelets", *obs).evidence[0].ref == got
