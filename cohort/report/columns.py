"""The fixed columns of candidates.csv (those that are not a criterion's), in header order.

Kept apart from `report.csv` so the criteria loader can read them without importing the
writers (which import the criteria).
"""

from __future__ import annotations

HEAD_COLUMNS = ("rank", "patient_id", "tier", "score", "eligible_from", "reasons")
TAIL_COLUMNS = ("change", "to_confirm", "missing", "last_seen")
# `age_years`, not `age`: the SIRIUS-SLE 2 criterion `age` already owns that column name.
PHI_COLUMNS = ("name", "mrn", "birth_date", "age_years", "sex", "phone", "postal_code")
# Every column of candidates.csv that is not a criterion's: no criterion id may be one of them
# (criteria.loading), or the header would name a column twice.
FIXED_COLUMNS = frozenset((*HEAD_COLUMNS, *TAIL_COLUMNS, *PHI_COLUMNS))
