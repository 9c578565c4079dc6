"""Local SQLite store of FHIR resources per site: versioned idempotent upserts, marks, runs."""

from cohort.store.db import Store
from cohort.store.rows import (
    PutStats,
    Row,
    Tomb,
    Tombstones,
    patient_of,
    prepare_row,
    reference_id,
    tomb_of,
)

__all__ = [
    "PutStats",
    "Row",
    "Store",
    "Tomb",
    "Tombstones",
    "patient_of",
    "prepare_row",
    "reference_id",
    "tomb_of",
]
