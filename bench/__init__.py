"""Benchmark harness for cohort (issue 6): `python -m bench --help`. Not part of the package."""
