"""Records -> tidy facts: per-patient facts and a census of the records no criterion reads."""

from cohort.extract.census import Triage
from cohort.extract.census_data import Census
from cohort.extract.elements import codes_of, obs_value, parse_date, text_of
from cohort.extract.facts import MEDICATION_TYPES, Extractor
from cohort.extract.rules import ReadingRules

__all__ = [
    "MEDICATION_TYPES",
    "Census",
    "Extractor",
    "ReadingRules",
    "Triage",
    "codes_of",
    "obs_value",
    "parse_date",
    "text_of",
]
