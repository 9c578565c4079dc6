"""A dosage route's words: its text and displays, and a bare route code named (routes.csv)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cohort.extract.elements import codes_of, text_of

RouteName = Callable[[str, str], str]  # (system, code) -> display, "" when unknown


def route_text(cc: Any, name: RouteName | None) -> str:
    """`text_of(cc)`, then the name `name` gives each coding that has a code and no display
    (a bare SNOMED CT 54485002 reads "Ophthalmic use"), each name once: the non-systemic
    words of the reading rules read only words, and some EHRs send a route as a code alone.
    Without `name` (rules loaded without the terminology), `text_of(cc)`."""
    said = text_of(cc)
    if name is None:
        return said
    named = [n for c in codes_of(cc) if not c.display and (n := name(c.system, c.code))]
    if not named:
        return said
    parts = [said] if said else []
    seen = {p.casefold() for p in said.split(" | ")} if said else set()
    for n in named:
        if n.casefold() not in seen:
            seen.add(n.casefold())
            parts.append(n)
    return " | ".join(parts)
