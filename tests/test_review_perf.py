"""Review of the perf merge (69ce29c): the cases its rewrites and memos must keep as before.

No defect was found; these pin the edge cases the rewrites made non-obvious (obs_evidence's
`if not (value and unit)`, `worst` with sets, memos shared by runs in one process, the census
fast path)."""

from __future__ import annotations

import itertools
import re
from datetime import date
from pathlib import Path

from cohort.criteria.base import SEVERITY, Context, window_span, window_start, worst
from cohort.model import (
    ExposureFact,
    ObservationFact,
    ObsValue,
    Patient,
    PatientFacts,
    Quantity,
    Status,
)
from cohort.store import Store


def _ctx(non_systemic: re.Pattern[str] | None = None) -> Context:
    return Context(PatientFacts(Patient("p")), None, date(2026, 11, 25), non_systemic=non_systemic)  # type: ignore[arg-type]


class _NoUnits:
    """A terminology that gives no concept a canonical unit: obs_evidence converts nothing."""

    def canonical_unit(self, concept: str) -> None:
        return None


def test_obs_evidence_fills_what_the_caller_leaves_empty() -> None:
    o = ObservationFact(
        "Observation/1", (), "final", date(2026, 1, 2), ObsValue(Quantity(7.0, "mg/dL"))
    )
    ctx = _ctx()
    ctx.term = _NoUnits()  # type: ignore[assignment]
    got = {
        (v, u): (e.value, e.unit)
        for v, u in itertools.product(("", "5"), ("", "g/L"))
        for e in [ctx.obs_evidence(o, "c", "n", v, u)]
    }
    assert got == {
        ("", ""): ("7", "mg/dL"),
        ("", "g/L"): ("7", "g/L"),  # a unit only: the result's own value
        ("5", ""): ("5", "mg/dL"),  # a value only: the result's own unit
        ("5", "g/L"): ("5", "g/L"),
    }
    e = ctx.obs_evidence(o, "c", "n")
    assert (e.ref, e.concept, e.date, e.note) == ("Observation/1", "c", "2026-01-02", "n")


def test_worst_is_the_most_severe() -> None:
    for n in range(4):
        for combo in itertools.product(list(Status), repeat=n):
            want = max(combo, key=lambda s: SEVERITY[s], default=Status.PASS)
            assert worst(iter(combo)) is want, combo


def test_the_non_systemic_memo_is_per_pattern() -> None:
    """Two rule sets in one process (tests, `cohort explain` twice): each its own answer."""
    e = ExposureFact("MedicationRequest/1", (), "prednisone cream", "active", None, None)
    e2 = ExposureFact("MedicationRequest/2", (), "prednisone", "active", None, None, route="Top")
    topical, inhaled = re.compile(r"\b(?:topical|cream)", re.I), re.compile(r"\b(?:inhal)", re.I)
    case_sensitive = re.compile(r"\b(?:top)")
    for _ in range(2):
        assert not _ctx(topical).systemic(e) and _ctx(inhaled).systemic(e)
        assert _ctx(re.compile(r"\b(?:top)", re.I)).systemic(e2) is False
        assert _ctx(case_sensitive).systemic(e2) is True
        assert _ctx(None).systemic(e)


def test_window_memos_follow_the_as_of_date() -> None:
    for as_of, want in (
        (date(2026, 8, 31), date(2026, 2, 28)),
        (date(2024, 8, 31), date(2024, 2, 29)),
    ):
        assert window_start(as_of, {"window_months": 6}) == want
        assert window_start(as_of, {"window_days": "10"}) == date(as_of.year, 8, 21)
    assert window_span({"window_weeks": 2}).days == 14
    assert window_span({"window_months": 3}).months == 3


def test_summarised_dates_with_medication_marks_and_empty_tokens(tmp_path: Path) -> None:
    rows = [
        ("p1", "2026-01-01,,2026-02-02"),  # dates only, an empty token
        ("p2", "2026-03-03,m2026-03-03,,m"),  # dates and marks (one undated), an empty token
        ("p3", ""),
        ("p4", "m2026-04-04"),
    ]
    with Store(tmp_path / "s.sqlite") as store:
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, rows, [])
        store.commit_census("s", "src", gen)
        got = store.side_facts("s", ["p1", "p2", "p3", "p4"])
    assert got == {
        "p1": ([date(2026, 1, 1), date(2026, 2, 2)], [], {}, {}),
        "p2": ([date(2026, 3, 3)], [date(2026, 3, 3), None], {}, {}),
        "p3": ([], [], {}, {}),
        "p4": ([], [date(2026, 4, 4)], {}, {}),
    }
