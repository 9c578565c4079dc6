"""run.json rendering, its per-site counts (shared with the HTML summary) and the trend history."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from cohort.model import SiteResult
from cohort.report import rows
from cohort.safetext import BIDI


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    raise TypeError(f"run.json cannot hold {type(obj).__name__}")


# What JSON leaves as it is but a terminal showing run.json (`cat`, `less -R`) would act on: DEL,
# the C1 controls (U+009B starts an escape sequence on some terminals) and the bidirectional
# controls (U+202E in a file name reversed the rest of the line). JSON itself escapes U+0000-001F.
_RAW = re.compile("[\x7f-\x9f" + BIDI + "]")


def run_json(report: dict[str, Any]) -> str:
    """The run report as JSON text: keys sorted (stable), indent 2, trailing newline; the
    characters a terminal would act on are \\u escapes (they can only be inside strings)."""
    text = json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False, default=_default)
    return _RAW.sub(lambda m: f"\\u{ord(m[0]):04x}", text) + "\n"


def tier_counts(site: SiteResult) -> dict[str, int]:
    """{"screened": n, "likely": n, "possible": n, "excluded": n} (any other tier added)."""
    counts = {"screened": len(site.candidates), **{t: 0 for t in rows.TIERS}}
    for c in site.candidates:
        counts[c.tier or "unranked"] = counts.get(c.tier or "unranked", 0) + 1
    return counts


def criterion_funnel(site: SiteResult) -> list[dict[str, Any]]:
    """Per criterion (in `site.criteria` order): pass/fail/unknown counts.

    Each entry: id, title, type, manual (unknowns go to `to_confirm`), pass, fail, unknown,
    and `remaining` = patients failing none of this and the earlier criteria (attrition).
    One pass over the results (a candidate's first result per criterion counts).
    """
    at = {ci.id: k for k, ci in enumerate(site.criteria)}
    n = len(site.criteria)
    counts = [{"pass": 0, "fail": 0, "unknown": 0} for _ in range(n)]
    # first_fail[k]: candidates whose first failed criterion is the k-th (n: none failed)
    first_fail = [0] * (n + 1)
    for c in site.candidates:
        seen: set[int] = set()
        first = n
        for r in c.results:
            k = at.get(r.criterion)
            if k is None or k in seen:
                continue
            seen.add(k)
            status = rows.status_text(r)
            counts[k][status] += 1
            if status == "fail" and k < first:
                first = k
        first_fail[first] += 1
    out: list[dict[str, Any]] = []
    remaining = len(site.candidates)
    for k, ci in enumerate(site.criteria):
        remaining -= first_fail[k]
        out.append(
            {
                "id": ci.id,
                "title": ci.title,
                "type": ci.type,
                "manual": ci.manual_when_unknown,
                **counts[k],
                "remaining": remaining,
            }
        )
    return out


def site_summary(sr: SiteResult, prev: dict[str, str]) -> dict[str, Any]:
    """run.json's counts of one site: screened, tiers, the criterion funnel, changes."""
    current = {c.patient.id for c in sr.candidates}
    return {
        "screened": len(sr.candidates),
        "tiers": tier_counts(sr),
        "funnel": criterion_funnel(sr),
        "changes": {
            "new": sum(1 for c in sr.candidates if c.change == "new"),
            "removed": len(set(prev) - current),
            "tier_changed": sum(1 for c in sr.candidates if c.change.startswith("tier ")),
            "criteria_changed": len(getattr(prev, "changed", {})),
        },
    }


def run_history(
    runs: list[dict[str, Any]], results: list[SiteResult], as_of: date
) -> list[dict[str, Any]]:
    """Per-site tier counts over past runs plus this one, oldest first, for the trend chart."""
    series = []
    for r in reversed(runs):
        for sid, counts in (r.get("sites") or {}).items():
            series.append({"date": r.get("date", ""), "site": sid, **counts})
    for sr in results:
        series.append(
            {
                "date": as_of.isoformat(),
                "site": sr.site_id,
                "screened": len(sr.candidates),
                **tier_counts(sr),
            }
        )
    return series
