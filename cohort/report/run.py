"""run.json rendering, its per-site counts (shared with the HTML summary) and the trend history."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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
    likely, unlikely = rows.likely_moves(rows.changed(sr))  # (summary.html's two lists)
    return {
        "screened": len(sr.candidates),
        "tiers": tier_counts(sr),
        "funnel": criterion_funnel(sr),
        "changes": {
            "new": sum(1 for c in sr.candidates if c.change == "new"),
            "removed": len(set(prev) - current),
            "tier_changed": sum(1 for c in sr.candidates if c.change.startswith("tier ")),
            "criteria_changed": len(getattr(prev, "changed", {})),
            "newly_likely": len(likely),
            "no_longer_likely": len(unlikely),
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


SITE_FILES = ("candidates.csv", "evidence.csv", "summary.html")  # a site's lists, as renamed


@dataclass
class Renamed:
    """Whose lists each site of a run holds once its renames stopped part-way (an error, a
    SIGTERM): `replaced` (all of the site's files this run's), `partly` (the files of a site
    that are), `kept` (none: the earlier run's) and `unwritten` (none, and none before)."""

    replaced: list[str] = field(default_factory=list)
    partly: dict[str, list[str]] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    unwritten: list[str] = field(default_factory=list)

    def said(self) -> str:
        """What the failure's one line and run.json's `error` add ("previous outputs kept"
        would be false for the sites replaced)."""
        parts = []
        if self.replaced:
            parts.append("lists replaced by this run's: " + ", ".join(self.replaced))
        if self.partly:
            parts.append("partly replaced: " + ", ".join(
                f"{sid} ({', '.join(done)} replaced; "
                f"{', '.join(f for f in SITE_FILES if f not in done)} "
                f"{'not written' if sid in self.unwritten else 'kept'})"
                for sid, done in self.partly.items()
            ))  # fmt: skip
        if self.kept:
            parts.append("previous lists kept: " + ", ".join(self.kept))
        new = [sid for sid in self.unwritten if sid not in self.partly]
        if new:
            parts.append("not written (no earlier lists): " + ", ".join(new))
        return "; ".join(parts)

    def fields(self) -> dict[str, Any]:
        """run.json's keys for it."""
        fields: dict[str, Any] = {"outputs_replaced": self.replaced, "outputs_kept": self.kept}
        if self.partly:
            fields["outputs_partly_replaced"] = self.partly
        return fields

    @property
    def earlier_left(self) -> bool:
        """Some site of the run still holds an earlier run's list (whose trial and
        configuration the next run must still be told)."""
        return bool(self.kept or self.partly)


def renamed_lists(sites: list[str], renamed: list[Path], had: list[str]) -> Renamed | None:
    """Whose lists `sites` hold after the renames of `renamed` (None when nothing was renamed:
    every earlier list kept); `had`: the sites that held lists before the run."""
    if not renamed:
        return None
    done: dict[str, set[str]] = {sid: set() for sid in sites}
    for path in renamed:
        done.setdefault(path.parent.name, set()).add(path.name)
    out = Renamed()
    for sid in sites:
        names = [f for f in SITE_FILES if f in done[sid]]
        if len(names) == len(SITE_FILES):
            out.replaced.append(sid)
            continue
        if names:
            out.partly[sid] = names
        if sid not in had:
            out.unwritten.append(sid)
        elif not names:
            out.kept.append(sid)
    return out
