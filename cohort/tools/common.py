"""Shared helpers of the tools: code shapes (the loader's, from terminology.rows), the run's
store path, tokenising, findings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cohort.config import Config
from cohort.errors import StoreError
from cohort.safetext import printable
from cohort.store import Store

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
    """Errors, warnings and notes (what was left out, by design), each a located one-line
    message; and the mapping files not read at all (paths in the folder, `concepts/labs.csv`),
    whose error is among the errors: nothing is compared with them."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unread: set[str] = field(default_factory=set)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{where}: {message}")


def table(head: tuple[str, ...], body: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned text table lines (indented two spaces); "(none)" when there is no row.

    Cells hold data (codes, displays, values, names in CSVs): their control and bidirectional
    characters are shown as escapes, so none can rewrite the terminal or break the layout."""
    if not body:
        return ["  (none)"]
    body = [tuple(printable(str(x)) for x in row) for row in body]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return ["  " + fmt.format(*head).rstrip()] + ["  " + fmt.format(*r).rstrip() for r in body]
