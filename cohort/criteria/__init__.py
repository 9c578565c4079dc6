"""Eligibility criteria: trial files, the registry of kinds, and the evaluation context."""

from cohort.criteria.base import Context, Criterion
from cohort.criteria.trial import Trial, load_trial

__all__ = ["Context", "Criterion", "Trial", "load_trial"]
