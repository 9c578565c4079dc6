"""Local SQLite store of FHIR resources per site: versioned idempotent upserts, marks, runs."""

from cohort.store.db import Store
from cohort.store.rows import PutStats, Row, patient_of, prepare_row, reference_id

__all__ = ["PutStats", "Row", "Store", "patient_of", "prepare_row", "reference_id"]
