"""The `value` class decorator of the pipeline's facts and results (cohort.model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

__all__ = ["value"]

_T = TypeVar("_T")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform

    @dataclass_transform(frozen_default=True)
    def value(cls: type[_T]) -> type[_T]:
        """What the type checker enforces: a frozen dataclass, never assigned to once built."""
        ...

else:

    def value(cls):
        # What runs: the same class minus the per-field object.__setattr__ a frozen dataclass
        # pays on construction (0.78 vs 0.19 us for six fields, and ~2M facts, evidence and
        # results are built per 10k screened patients); hashed by value like a frozen one.
        return dataclass(slots=True, unsafe_hash=True)(cls)
