"""cohort: find clinical-trial candidates in a hospital's own FHIR R4 data, with evidence."""

__version__ = "0.1.0"
