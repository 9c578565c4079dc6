"""The mapping checks a run applies: `mappings check`'s errors stop it, its warnings are kept."""

from __future__ import annotations

import json
from pathlib import Path

from cohort.atomic import write_atomic
from cohort.config import Config
from cohort.errors import MappingError, OutputError, StoreError
from cohort.terminology.mappings import MappingRow


def run_checks(
    cfg: Config, key: str = "", cache: Path | None = None, rows: list[MappingRow] | None = None
) -> list[str]:
    """What `cohort mappings check --config` finds in the folder a run has just loaded: its
    first error raised (exit 4, the line `check` prints), as some are no loader's rule (a
    concept row a typo away from one the criteria read: its rows reach no criterion and
    eligibility changes silently); else its warnings, for run.json (notes are left out: what
    is skipped by design). Units UCUM cannot read are the run's `check_units`, after the read,
    as before. Mapping files hold no patient data, so neither holds PHI.

    `cache` keeps the warnings of a clean check under `key` (the mappings' and the code's
    digest): the checks cost ~0.4-0.8 s, the same every night the mappings stay as they were.
    `rows`: the concept rows the run has loaded (Terminology.rows), not read again."""
    kept = _cached(cache, key)
    if kept is not None:
        return kept
    from cohort.tools.check import check_mappings  # (looked up here: tests count the calls)

    report = check_mappings(
        cfg.mappings_dir,
        cfg.trial_id,
        use_unverified=cfg.use_unverified,
        for_run=True,
        loaded=rows,
    )
    errors = report.findings.errors
    if errors:
        more = len(errors) - 1
        tail = f" (and {more} more error(s): run `cohort mappings check`)" if more else ""
        raise MappingError(errors[0] + tail)
    warnings = list(report.findings.warnings)
    if cache is not None and key:
        try:
            write_atomic(cache, json.dumps({"key": key, "warnings": warnings}))
        except OutputError as e:
            # the store's folder, not OUT: exit 8 as the store's own files there (was exit 9,
            # "output cannot be written", which sends whoever is alerted to OUT)
            raise StoreError(f"store's folder: {e}") from None
    return warnings


def _cached(cache: Path | None, key: str) -> list[str] | None:
    if cache is None or not key:
        return None
    try:
        kept = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    warnings = kept.get("warnings") if isinstance(kept, dict) else None
    if kept.get("key") != key or not isinstance(warnings, list):
        return None
    return [str(w) for w in warnings]
