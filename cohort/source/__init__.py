"""Data sources: files (Bundles, NDJSON, archives) and FHIR servers, with structural validation."""

from cohort.source.files import ReadIssue, ReadStats, read_path
from cohort.source.validate import check

__all__ = ["ReadIssue", "ReadStats", "check", "read_path"]
