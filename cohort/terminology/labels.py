"""Display labels of concepts (`labels.csv`, optional): the words reasons name a concept by."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from cohort.errors import MappingError
from cohort.terminology.csvfile import Record, read_csv

LABELS = ("labels.csv", ("concept", "label"))  # optional file, its columns
_CONCEPT_RE = re.compile(r"^[a-z][a-z0-9_]*$")  # (as a concept row's: mappings.concept_row)


def label_row(rec: Record) -> tuple[str, str]:
    """One line of labels.csv: (concept, label)."""
    concept, label = rec.get("concept"), rec.get("label")
    if not concept:
        raise rec.fail("concept", "empty")
    if not _CONCEPT_RE.match(concept):
        raise rec.fail("concept", f"invalid concept name '{concept}' (use a-z, 0-9, _)")
    if not label:
        raise rec.fail("label", "empty (leave the line out: the concept then reads as its name)")
    # a reason is one line of text: a control character (a tab, a bell) has no place in it
    odd = next((ch for ch in label if unicodedata.category(ch) == "Cc"), None)
    if odd is not None:
        raise rec.fail("label", f"holds a control character (U+{ord(odd):04X}): type it again")
    return concept, label


def label_twice(first: dict[str, int], rec: Record, concept: str) -> MappingError | None:
    """The error of a concept labelled on a second line (one label per concept: the later
    line would have won without a word), naming the first; None the first time (recorded)."""
    line = int(rec.where.rsplit(":", 1)[1])
    seen = first.setdefault(concept, line)
    if seen == line:
        return None
    return rec.fail("concept", f"'{concept}' is also labelled on line {seen}: keep one line")


def load_labels(root: Path) -> dict[str, str]:
    """Concept -> label of `labels.csv` ({} without the file); MappingError at the first bad
    line, as `mappings check` reports it."""
    path = root / LABELS[0]
    if not path.is_file():
        return {}
    labels: dict[str, str] = {}
    first: dict[str, int] = {}
    for rec in read_csv(root, path, LABELS[1]):
        concept, label = label_row(rec)
        problem = label_twice(first, rec, concept)
        if problem is not None:
            raise problem
        labels[concept] = label
    return labels
