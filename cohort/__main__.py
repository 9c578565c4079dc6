"""Allow `python -m cohort`."""

from cohort.cli import main

main()
