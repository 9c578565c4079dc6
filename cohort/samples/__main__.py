"""Allow `python -m cohort.samples [ROOT]` (regenerate the shipped samples in ROOT)."""

from __future__ import annotations

from cohort.samples.write import main

main()
