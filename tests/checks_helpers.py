"""Result values, LOINC codes and the `lab` builder shared by the `checks` criteria tests."""

from __future__ import annotations

from typing import Any

from criteria_helpers import SNOMED, ago, observation

POSITIVE: dict[str, Any] = {"valueString": "Positive"}
NEGATIVE: dict[str, Any] = {"valueString": "Negative"}
CODED_POS = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "10828004"}]}}
CODED_NEG = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "260385009"}]}}
PRESENT = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "52101004"}]}}
ABSENT = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "2667000"}]}}

HBSAG, ANTI_HBC, HBV_DNA = "5196-1", "16933-4", "29615-2"
HCV_AB, HCV_RNA, HCV_RNA_QUAL = "16128-1", "11011-4", "11259-9"
IGRA, HIV_TEST = "71773-6", "56888-1"
HCG_QUAL, HCG_QUANT = "2106-3", "19080-1"


def lab(code: str, days: int, value: dict[str, Any], **kw: Any) -> dict:
    """An Observation of `code` dated `days` before as-of with `value` (and `rid`, `status`...)."""
    return observation(code, ago(days), **value, **kw)
