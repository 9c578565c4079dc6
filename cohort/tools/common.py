"""Shared helpers of the tools: code shapes (the loader's, from terminology.rows), the run's
store path, tokenising, findings."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.config import Config
from cohort.errors import StoreError
from cohort.store import Store
from cohort.terminology.codes import ICD10CM as ICD10CM
from cohort.terminology.rows import CVX as CVX
from cohort.terminology.rows import LOINC as LOINC
from cohort.terminology.rows import RXNORM as RXNORM
from cohort.terminology.rows import code_problem as code_problem
from cohort.terminology.rows import loinc_check_digit as loinc_check_digit

_WORD = re.compile(r"[a-z0-9]+")


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
