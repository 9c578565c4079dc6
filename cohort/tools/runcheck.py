"""The mapping checks a run applies: `mappings check`'s errors stop it, its warnings are kept."""

from __future__ import annotations

from cohort.config import Config
from cohort.errors import MappingError


def run_checks(cfg: Config) -> list[str]:
    """What `cohort mappings check --config` finds in the folder a run has just loaded: its
    first error raised (exit 4, the line `check` prints), as some are no loader's rule (a
    concept row a typo away from one the criteria read: its rows reach no criterion and
    eligibility changes silently); else its warnings, for run.json (notes are left out: what
    is skipped by design). Units UCUM cannot read are the run's `check_units`, after the read,
    as before. Mapping files hold no patient data, so neither holds PHI."""
    from cohort.tools.check import check_mappings  # (looked up here: tests count the calls)

    report = check_mappings(
        cfg.mappings_dir, cfg.trial_id, use_unverified=cfg.use_unverified, for_run=True
    )
    errors = report.findings.errors
    if errors:
        more = len(errors) - 1
        tail = f" (and {more} more error(s): run `cohort mappings check`)" if more else ""
        raise MappingError(errors[0] + tail)
    return list(report.findings.warnings)
