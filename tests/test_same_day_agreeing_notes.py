"""Results of one day that nothing orders and that agree: the one not taken as the most recent
is no "superseded by a newer result" (it is not older), but gives the same outcome read first.

A DKD trial on the public Synthea data: two eGFR results at one instant (72.99 and 142.76 mL/min
per 1.73 m2). `egfr >= 25` passed either way, and evidence.csv called 72.99 "superseded by a
newer result", so a coordinator read 142.76 as the latest eGFR (docs/rules.md)."""

from __future__ import annotations

from typing import Any

from criteria_helpers import ago, observation, qty, settled

DAY = ago(5)
K_UL = "10*3/uL"


def plt(value: float, rid: str, when: str = DAY) -> dict[str, Any]:
    return observation("777-3", when, valueQuantity=qty(value, K_UL, K_UL), rid=rid)


def test_an_agreeing_same_day_result_is_not_called_superseded() -> None:
    r = settled("platelets", plt(120, "a"), plt(150, "b"))
    assert str(r.status) == "pass"
    used = {e.ref: e.note for e in r.evidence}
    ignored = {e.ref: e.note for e in r.ignored}
    # one of them is read as the most recent (its reason); the other gives pass read so too
    assert len(used) == 1 and len(ignored) == 1
    (other,) = ignored
    assert ignored[other] == "pass if the most recent too (same day, no order)"
    assert list(used.values()) == ["most recent"]


def test_an_older_result_stays_superseded_beside_a_same_day_pair() -> None:
    r = settled("platelets", plt(100, "c", ago(20)), plt(120, "a"), plt(150, "b"))
    notes = {e.ref: e.note for e in r.ignored}
    assert notes["Observation/c"] == "superseded by a newer result"
    assert sorted(notes.values()) == [
        "pass if the most recent too (same day, no order)",
        "superseded by a newer result",
    ]
