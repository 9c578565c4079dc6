"""Deterministic synthetic FHIR R4 sample population (Bundles or Bulk NDJSON) with expectations."""

from __future__ import annotations

from cohort.samples.decorations import DECORATIONS
from cohort.samples.people import GeneratedPatient, build_site
from cohort.samples.write import (
    DEFAULT_AS_OF,
    DEFAULT_SEED,
    SAMPLE_LAYOUT,
    expected_rows,
    generate,
    main,
    sample_sizes,
    to_bundle,
    write_samples,
)

__all__ = [
    "DECORATIONS",
    "DEFAULT_AS_OF",
    "DEFAULT_SEED",
    "SAMPLE_LAYOUT",
    "GeneratedPatient",
    "build_site",
    "expected_rows",
    "generate",
    "main",
    "sample_sizes",
    "to_bundle",
    "write_samples",
]
