"""Eligibility criteria: trial files, the registry of kinds, and the evaluation context."""

from cohort.criteria.base import Context, Criterion
from cohort.criteria.loading import load_trial
from cohort.criteria.trial import Trial

__all__ = ["Context", "Criterion", "Trial", "load_trial"]
