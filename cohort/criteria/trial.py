"""A trial as cohort reads it: its criteria, screening concepts and manual items, and the
concepts its criteria name (loaded and validated by criteria/loading.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.criteria.base import Criterion
from cohort.criteria.reads import HEAD, readers
from cohort.criteria.registry import (
    CONCEPT_KEYS,
)
from cohort.model import CriterionInfo


@dataclass
class Trial:
    id: str
    title: str
    path: Path
    screen_concepts: list[str]
    criteria: list[Criterion]
    manual_items: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def infos(self) -> list[CriterionInfo]:
        return self.site_infos(None)

    def site_infos(self, min_age: int | None) -> list[CriterionInfo]:
        """The criteria as a site's reports show them: titles as `site_title` gives them."""
        return [
            CriterionInfo(
                c.id, c.type, site_title(c, min_age), c.manual_when_unknown, c.missing_hint
            )
            for c in self.criteria
        ]

    def age_warnings(self, site: str, min_age: int | None) -> list[str]:
        """A site's `min_age` below an `age` criterion's `min_years`: the site's limit is the
        one applied (a configuration's override), so patients the trial's criteria do not
        admit pass; a run warns of it (a higher limit narrows the screening, no warning)."""
        out = []
        for c in self.criteria:
            least = c.params.get("min_years")
            if c.kind != "age" or min_age is None or not isinstance(least, int | float):
                continue
            if min_age < least:
                out.append(
                    f"{site}: min_age {min_age} is below the trial's minimum age {least} "
                    f"(criterion '{c.id}', min_years in {self.path.name}): patients aged "
                    f"{min_age} to {int(least) - 1} pass '{c.id}' at this site"
                )
        return out

    def concepts(self) -> set[str]:
        """Every concept the trial refers to (used by the server query plan)."""
        out = set(self.screen_concepts)
        for c in self.criteria:
            out |= _concepts_in(c.params)
        return out

    def concept_records(self) -> dict[str, set[str]]:
        """The records each concept is read as (registry `reads`: "conditions", "labs", ...),
        by the keys naming it: what a server is asked for when no concept file says it (a
        site's code in local.csv; `Terminology.search_tokens`)."""
        out: dict[str, set[str]] = {n: {HEAD.records} for n in self.screen_concepts}
        for c in self.criteria:
            keys = readers(c.kind, c.params)
            for key, name in concept_refs(c.params):
                if key in keys:
                    out.setdefault(name, set()).add(keys[key].records)
        return out


def site_title(c: Criterion, min_age: int | None) -> str:
    """A criterion's title at a site: an age criterion of a site whose `min_age` overrides the
    trial's `min_years` says so ("Age >= 12 years (this site: min_age 18)"), as the title is
    shown as written (summary.html, run.json, explain) beside patients judged by the site's
    limit."""
    if c.kind == "age" and min_age is not None and min_age != c.params.get("min_years"):
        return f"{c.title} (this site: min_age {min_age})"
    return c.title


def _concepts_in(params: dict[str, Any]) -> set[str]:
    return {name for _, name in concept_refs(params)}


# id(criterion) -> (the criterion, the concepts it reads): Criterion holds a dict, so it is no
# dict key itself; kept beside its answer so the id cannot be reused by another object
_READS: dict[int, tuple[Criterion, frozenset[str]]] = {}


def concepts_read(crit: Criterion) -> frozenset[str]:
    """The concept names `crit`'s parameters refer to, remembered: asked per patient and
    criterion of every chart with a dropped or unreadable record (walking the parameters each
    time cost ~5% of a dense population's evaluation)."""
    hit = _READS.get(id(crit))
    if hit is None or hit[0] is not crit:
        hit = _READS[id(crit)] = (crit, frozenset(name for _, name in concept_refs(crit.params)))
    return hit[1]


def concept_refs(params: Any, key: str = "") -> Iterable[tuple[str, str]]:
    """(key, concept name) of every concept a criterion's parameters refer to; the key is the
    path of the list (`concepts`, `checks[1].lab`, `alt.concepts`)."""
    if isinstance(params, dict):
        for k, v in params.items():
            yield from concept_refs(v, f"{key}.{k}" if key else k)
    elif isinstance(params, list):
        leaf = re.sub(r"^.*\.", "", key)
        for i, v in enumerate(params):
            if isinstance(v, str) and leaf in CONCEPT_KEYS:
                yield key, v
            elif isinstance(v, dict):
                yield from concept_refs(v, f"{key}[{i}]")
