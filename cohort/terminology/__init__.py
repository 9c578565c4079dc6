"""Terminology: code systems, concept mappings, medications, units and result values."""

from cohort.terminology.core import Terminology
from cohort.terminology.mappings import MappingRow
from cohort.terminology.values import Titer

__all__ = ["MappingRow", "Terminology", "Titer"]
