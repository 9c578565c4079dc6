"""Evidence values as evidence.csv shows them: a code element's names once each, a long text
shortened at a word boundary with "…" (cohort.safetext.clipped)."""

from __future__ import annotations

from typing import Any

import pytest
from criteria_helpers import ICD, ago, condition, immunization, run

from cohort.extract.elements import text_of
from cohort.safetext import clipped

LONG = (
    "Systemic lupus erythematosus with organ involvement, nephritis class IV per biopsy "
    "reviewed by rheumatology"
)


# --- text_of -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cc", "expected"),
    [
        ({"text": "MMR", "coding": [{"code": "03", "display": "MMR"}]}, "MMR"),
        (
            {
                "text": "Prednisone 5 MG Oral Tablet",
                "coding": [{"code": "312617", "display": "prednisone 5 MG Oral Tablet"}],
            },
            "Prednisone 5 MG Oral Tablet",  # any case: the first spelling
        ),
        (
            {"coding": [{"display": "b"}, {"display": "A"}, {"display": "B"}, {"display": "a"}]},
            "b | A",  # the first of each, in their order
        ),
        ({"text": "Lupus", "coding": [{"display": "SLE"}, {"display": ""}]}, "Lupus | SLE"),
        ({"text": "", "coding": [{"display": "x"}, {"display": "x"}]}, "x"),
    ],
)
def test_text_of_names_each_text_once(cc: dict[str, Any], expected: str) -> None:
    assert text_of(cc) == expected


def test_a_vaccine_whose_text_and_display_agree_shows_its_name_once() -> None:
    im = immunization("03", ago(10))
    im["vaccineCode"]["text"] = "MMR"
    im["vaccineCode"]["coding"][0]["display"] = "MMR"
    [ev] = run("live_vaccine", im).evidence
    assert ev.value == "MMR"


# --- clipped -----------------------------------------------------------------------------------
def test_clipped_leaves_a_short_text_as_it_is() -> None:
    assert clipped("") == ""
    assert clipped("Lupus") == "Lupus"
    assert clipped("x" * 80) == "x" * 80


def test_clipped_cuts_at_a_word_boundary_within_the_limit() -> None:
    got = clipped(LONG)
    assert got == (
        "Systemic lupus erythematosus with organ involvement, nephritis class IV per…"
    )
    assert len(got) <= 80
    assert clipped("word " * 30, 20) == "word word word word…"


def test_clipped_a_cut_before_a_space_keeps_the_whole_last_word() -> None:
    text = "a" * 78 + "b " + "tail"  # the 80th character is a space after a whole word
    assert clipped(text) == "a" * 78 + "b…"


def test_clipped_drops_a_separator_left_at_the_end() -> None:
    assert clipped("Prednisone | " + "y" * 90, 20) == "Prednisone…"


def test_clipped_one_word_longer_than_the_limit_is_cut_inside_it() -> None:
    assert clipped("z" * 100) == "z" * 79 + "…"


def test_condition_evidence_value_is_clipped_at_a_word() -> None:
    r = run("sle_diagnosis", condition("M32.14", ICD, onset="2019-03-04", text=LONG))
    assert [e.value for e in r.evidence] == [clipped(LONG)]
    assert r.evidence[0].value.endswith("per…")
