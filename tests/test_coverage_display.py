"""`cohort mappings coverage` names a code by the same display whatever order its records were
read in (per-patient Bundles, NDJSON per type, shuffled lines): the display most of its records
carry, the first in code-point order between equals."""

from __future__ import annotations

import itertools

from criteria_helpers import terminology

from cohort.extract.census_data import CensusEntry
from cohort.model import Code
from cohort.tools.coverage_census import Unmapped, count_entry

LOINC = "http://loinc.org"
TERM = terminology()


def _display(entries: list[CensusEntry]) -> str:
    found: dict[tuple[str, str, str, str], Unmapped] = {}
    for entry in entries:
        count_entry(found, "syn", entry, set(), TERM)
    (u,) = found.values()
    return u.display


def _entry(display: str, records: int, text: str = "") -> CensusEntry:
    return CensusEntry("Observation", (Code(LOINC, "5767-9", display),), text, records=records)


def test_display_is_the_one_most_records_carry_in_any_order() -> None:
    """Synthea sends LOINC 5767-9 as "Appearance of Urine" (5 records here) and, on fewer,
    "Odor of Urine" (2): the first display read was shown, so NDJSON per type and per-patient
    Bundles of the same records named the code differently."""
    entries = [_entry("Odor of Urine", 2), _entry("Appearance of Urine", 5)]
    for order in itertools.permutations(entries):
        assert _display(list(order)) == "Appearance of Urine"


def test_display_between_equal_counts_is_the_first_in_code_point_order() -> None:
    # (Synthea also writes "[#/volume]" with a zero-width space after the slash; "v" < U+200B)
    plain = _entry("Erythrocytes [#/volume] in Blood", 3)
    spaced = _entry("Erythrocytes [#/\u200bvolume] in Blood", 3)
    assert _display([plain, spaced]) == _display([spaced, plain])
    assert _display([spaced, plain]) == "Erythrocytes [#/volume] in Blood"


def test_a_coding_without_display_is_named_by_the_records_text() -> None:
    """As before: no display on the coding, the code element's text names it; counts add up
    across the entries that carry it."""
    entries = [_entry("", 1, text="urine look"), _entry("", 1, text="urine look"),
               _entry("Appearance of Urine", 1)]
    for order in itertools.permutations(entries):
        assert _display(list(order)) == "urine look"
