"""Shared helpers of the tools: code shapes, the run's store path, tokenising, findings."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.config import Config
from cohort.errors import StoreError
from cohort.store import Store

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CVX = "http://hl7.org/fhir/sid/cvx"
_LOINC_RE = re.compile(r"^(\d{1,7})-(\d)$")
_LOINC_PART_RE = re.compile(r"^L[AGP]\d{1,8}-\d$")  # answer/group/part codes: shape only
_ICD10CM_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
_WORD = re.compile(r"[a-z0-9]+")


def loinc_check_digit(number: str) -> int:
    """The LOINC mod-10 check digit of the numeric part (LOINC Users' Guide, appendix)."""
    digits = number[::-1]  # position 1 = rightmost digit
    odd = "".join(digits[i] for i in range(0, len(digits), 2))[::-1]
    even = "".join(digits[i] for i in range(1, len(digits), 2))[::-1]
    joined = even + str(int(odd) * 2)
    total = sum(int(d) for d in joined)
    return (10 - total % 10) % 10


def code_problem(system: str, code: str) -> str | None:
    """Why `code` is malformed in the canonical `system`, or None when it looks right."""
    c = code.strip()
    if system == LOINC:
        if _LOINC_PART_RE.match(c):
            return None
        m = _LOINC_RE.match(c)
        if not m:
            return f"'{c}' is not a LOINC code (NNNNN-N)"
        want = loinc_check_digit(m.group(1))
        if int(m.group(2)) != want:
            return f"LOINC '{c}' has a wrong check digit (expected {m.group(1)}-{want})"
    elif system == ICD10CM:
        if not _ICD10CM_RE.match(c.upper()):
            return f"'{c}' is not shaped like an ICD-10-CM code (e.g. M32.14)"
    elif system == RXNORM:
        if not c.isdigit():
            return f"RxCUI '{c}' is not numeric"
    elif system == CVX and not (c.isdigit() and 1 <= len(c) <= 3):
        return f"CVX '{c}' is not 1-3 digits"
    return None


def words(text: str) -> set[str]:
    """Lower-case word tokens of a text (for resemblance between displays and concepts)."""
    return set(_WORD.findall(text.lower()))


def store_path(cfg: Config, out: Path) -> Path:
    """The store the runner uses: config [store] path, else OUT/.cohort/store.sqlite."""
    return cfg.store_path or out / ".cohort" / "store.sqlite"


def open_store(cfg: Config, out: Path) -> Store:
    """Open an existing store; a missing one is an error (never create an empty store)."""
    path = store_path(cfg, out)
    if not path.is_file():
        raise StoreError(f"no local store at {path}: run `cohort run` with this --out first")
    return Store(path)


@dataclass
class Findings:
    """Errors and warnings, each a located one-line message."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")


def concept_refs(params: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, concept name) of every concept a criterion's parameters refer to."""
    from cohort.criteria.registry import CONCEPT_KEYS

    if isinstance(params, dict):
        for k, v in params.items():
            yield from concept_refs(v, k)
    elif isinstance(params, list):
        for v in params:
            if isinstance(v, str) and key in CONCEPT_KEYS:
                yield key, v
            elif isinstance(v, dict):
                yield from concept_refs(v, key)


def table(head: tuple[str, ...], body: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned text table lines (indented two spaces); "(none)" when there is no row."""
    if not body:
        return ["  (none)"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return ["  " + fmt.format(*head).rstrip()] + ["  " + fmt.format(*r).rstrip() for r in body]
