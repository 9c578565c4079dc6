"""Tiers, score, eligible_from and ordering (SPEC §4, docs/rules.md 'Tiers, score')."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from criteria_helpers import (
    AS_OF,
    FLOWSHEET,
    ago,
    component,
    condition,
    context,
    days_before,
    dosage,
    immunization,
    medication,
    observation,
    patient,
    qty,
    trial,
)

from cohort.evaluate import evaluate
from cohort.model import Candidate, Patient, Result, Status
from cohort.rank import eligible_from, freshness, rank, score, tier_of

P, F, U = Status.PASS, Status.FAIL, Status.UNKNOWN
TIME_LIMITED = {
    "washout_high_dose_cs",
    "washout_12wk",
    "washout_belimumab",
    "washout_24wk",
    "washout_b_cell_depletion",
    "live_vaccine",
}


def res(cid: str, st: Status, ef: date | None = None, manual: bool = False) -> Result:
    return Result(criterion=cid, status=st, reason="", eligible_from=ef, manual=manual)


def cand(pid: str, results: list[Result], last_seen: date | None = AS_OF) -> Candidate:
    return Candidate(patient=Patient(id=pid), results=results, last_seen=last_seen)


# --- tiers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("results", "tier"),
    [
        ([res("age", P), res("hbv", P)], "likely"),
        ([res("age", P), res("sledai", U, manual=True), res("bilag", U, manual=True)], "likely"),
        ([res("age", P), res("weight", U)], "possible"),
        ([res("age", P), res("weight", U), res("sledai", U, manual=True)], "possible"),
        ([res("age", P), res("hbv", F)], "excluded"),
        ([res("age", U), res("hbv", F), res("sledai", U, manual=True)], "excluded"),
        ([res("washout_12wk", F, AS_OF)], "excluded"),
    ],
)
def test_tier(results: list[Result], tier: str) -> None:
    assert tier_of(results) == tier


# --- eligible_from -----------------------------------------------------------------------------
D1, D2 = date(2026, 12, 20), date(2027, 2, 1)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([res("washout_12wk", F, D1)], D1),
        ([res("washout_12wk", F, D1), res("live_vaccine", F, D2)], D2),
        ([res("live_vaccine", F, D2), res("washout_24wk", F, D1), res("age", P)], D2),
        ([res("washout_12wk", F, D1), res("hbv", F)], None),  # a fail that is not time-limited
        ([res("washout_12wk", F, D1), res("washout_b_cell_depletion", F, None)], None),  # CD19
        ([res("washout_high_dose_cs", F, None)], None),  # ongoing exposure
        ([res("prior_ianalumab", F)], None),
        ([res("age", P)], None),
    ],
)
def test_eligible_from(results: list[Result], expected: date | None) -> None:
    assert eligible_from(results, TIME_LIMITED) == expected


def test_trial_time_limited_set_matches() -> None:
    assert {c.id for c in trial().criteria if c.time_limited} == TIME_LIMITED


# --- freshness / score -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("age_days", "expected"),
    [(0, 1.0), (30, 1.0), (197.5, 0.5), (365, 0.0), (400, 0.0), (31, 1 - 1 / 335)],
)
def test_freshness(age_days: float, expected: float) -> None:
    if age_days == 197.5:
        # halfway between 30 and 365 days lies between two whole days: check both sides
        assert freshness(AS_OF - timedelta(days=197), AS_OF) > 0.5
        assert freshness(AS_OF - timedelta(days=198), AS_OF) < 0.5
        return
    assert freshness(AS_OF - timedelta(days=int(age_days)), AS_OF) == pytest.approx(expected)


def test_score_counts_passing_non_manual_plus_freshness() -> None:
    results = [
        res("age", P),
        res("weight", P),
        res("hbv", P),
        res("ana_titer", U),
        res("sledai", U, manual=True),
        res("malignancy", F),
    ]
    assert score(results, AS_OF, AS_OF) == pytest.approx(4.0, abs=0.01)
    assert score(results, AS_OF - timedelta(days=365), AS_OF) == pytest.approx(3.0, abs=0.01)
    assert score(results, AS_OF - timedelta(days=100), AS_OF) == pytest.approx(
        3 + 1 - 70 / 335, abs=0.01
    )


# --- rank --------------------------------------------------------------------------------------
def test_rank_orders_by_tier_then_score_then_id() -> None:
    likely = [res("age", P), res("weight", P)]
    cands = [
        cand("e1", [res("age", P), res("hbv", F)]),
        cand("p-low", [res("age", P), res("weight", U)], last_seen=None),
        cand("b", likely, last_seen=AS_OF - timedelta(days=400)),
        cand("p-high", [res("age", P), res("weight", U), res("hbv", P)]),
        cand("a", likely, last_seen=AS_OF - timedelta(days=400)),
        cand("z", likely),
        cand("e0", [res("hbv", F)]),
    ]
    ordered = rank(cands, AS_OF, TIME_LIMITED)
    assert [c.patient.id for c in ordered] == ["z", "a", "b", "p-high", "p-low", "e1", "e0"]
    assert [c.rank for c in ordered] == [1, 2, 3, 4, 5, 6, 7]
    assert [c.tier for c in ordered] == ["likely"] * 3 + ["possible"] * 2 + ["excluded"] * 2


def test_rank_orders_ties_of_the_rounded_score_by_id() -> None:
    """docs/rules.md: the score is rounded to 2 decimals and ties are ordered by id. Data 31 days
    old is 0.997 fresh, shown 1.00: it ties with this month's data and goes by id, not ahead of
    or behind it by a difference the score column does not show (found by the ranking oracle)."""
    likely = [res("age", P), res("weight", P)]
    cands = [
        cand("b-today", likely),
        cand("c-30", likely, last_seen=AS_OF - timedelta(days=30)),
        cand("a-31", likely, last_seen=AS_OF - timedelta(days=31)),
        cand("d-32", likely, last_seen=AS_OF - timedelta(days=32)),  # 0.994: 2.99
    ]
    ordered = rank(cands, AS_OF, TIME_LIMITED)
    assert [c.patient.id for c in ordered] == ["a-31", "b-today", "c-30", "d-32"]
    assert [f"{c.score:.2f}" for c in ordered] == ["3.00", "3.00", "3.00", "2.99"]


def test_rank_sets_eligible_from_only_for_excluded() -> None:
    cands = [
        cand("x", [res("washout_12wk", F, D1), res("live_vaccine", F, D2)]),
        cand("y", [res("washout_12wk", F, D1), res("immunodeficiency", F)]),
        cand("z", [res("age", P)]),
    ]
    by_id = {c.patient.id: c for c in rank(cands, AS_OF, TIME_LIMITED)}
    assert by_id["x"].eligible_from == D2
    assert by_id["y"].eligible_from is None
    assert by_id["z"].eligible_from is None


# --- end to end through the real trial ---------------------------------------------------------
def good_patient() -> list[dict]:
    return [
        patient("1990-01-01"),
        condition("M32.14", onset="2019-05-01"),
        observation("5048-4", ago(100), valueString="1:320"),
        medication(
            "MedicationStatement",
            "8640",  # prednisone
            status="active",
            start=ago(400),
            dosages=[dosage(qty(5, "mg", "mg"), timing_code="QD", route="oral")],
        ),
        observation("29463-7", ago(30), valueQuantity=qty(62, "kg", "kg")),
        observation("777-3", ago(10), valueQuantity=qty(210, "K/uL")),
        observation("718-7", ago(10), valueQuantity=qty(12.1, "g/dL", "g/dL")),
        observation("751-8", ago(10), valueQuantity=qty(3.2, "K/uL")),
        observation("2160-0", ago(10), valueQuantity=qty(0.8, "mg/dL", "mg/dL")),
    ]


def activity() -> list[dict]:
    return [
        observation("SLEDAI-2K", ago(20), FLOWSHEET, valueInteger=8),
        observation(
            "BILAG-2004",
            ago(20),
            FLOWSHEET,
            components=[component("renal", valueString="A"), component("skin", valueString="C")],
        ),
    ]


def candidate(resources: list[dict], last_seen: date | None = None) -> Candidate:
    ctx = context(*resources)
    return Candidate(
        patient=ctx.facts.patient,
        results=evaluate(trial(), ctx),
        last_seen=last_seen or days_before(10),
    )


def test_end_to_end_all_pass_is_likely() -> None:
    c = candidate(good_patient() + activity())
    assert {r.criterion: str(r.status) for r in c.results if r.status is not P} == {}
    [ranked] = rank([c], AS_OF, TIME_LIMITED)
    assert ranked.tier == "likely"
    assert ranked.score == pytest.approx(len(trial().criteria) + 1, abs=0.01)


def test_end_to_end_missing_activity_scores_is_still_likely() -> None:
    c = candidate(good_patient())
    not_pass = {r.criterion: (str(r.status), r.manual) for r in c.results if r.status is not P}
    assert not_pass == {"sledai": ("unknown", True), "bilag": ("unknown", True)}
    [ranked] = rank([c], AS_OF, TIME_LIMITED)
    assert ranked.tier == "likely"
    assert ranked.score == pytest.approx(len(trial().criteria) - 2 + 1, abs=0.01)


def test_end_to_end_possible_when_a_lab_is_missing() -> None:
    resources = [
        r
        for r in good_patient()
        if r.get("code", {}).get("coding", [{}])[0].get("code") != "29463-7"
    ]
    [ranked] = rank([candidate(resources)], AS_OF, TIME_LIMITED)
    assert ranked.tier == "possible"


def test_end_to_end_time_limited_fails_give_latest_eligible_from() -> None:
    extra = [
        immunization("03", ago(10)),
        medication("MedicationStatement", "42316", status="completed", start=ago(200), end=ago(30)),
    ]
    [ranked] = rank([candidate(good_patient() + extra)], AS_OF, TIME_LIMITED)
    assert ranked.tier == "excluded"
    assert ranked.eligible_from == max(
        days_before(10) + timedelta(weeks=4), days_before(30) + timedelta(weeks=12)
    )
    assert ranked.eligible_from == AS_OF + timedelta(days=54)


@pytest.mark.parametrize(
    "extra",
    [
        [observation("5196-1", ago(10), valueString="Positive")],  # HBsAg: not time-limited
        [medication("MedicationStatement", "42316", status="active", start=ago(200))],  # ongoing
        [
            medication("MedicationAdministration", "121191", status="completed", when=ago(300)),
            observation("8116-6", ago(5), valueQuantity=qty(10, "/uL", "/uL")),
        ],  # CD19 still low after the window
    ],
)
def test_end_to_end_no_eligible_from(extra: list[dict]) -> None:
    extra = extra + [immunization("03", ago(10))]
    [ranked] = rank([candidate(good_patient() + extra)], AS_OF, TIME_LIMITED)
    assert ranked.tier == "excluded"
    assert ranked.eligible_from is None
