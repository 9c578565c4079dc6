"""What `cohort mappings coverage` shows: the terminal's tables, and coverage.csv."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from cohort.atomic import write_atomic
from cohort.report.csv import render_chunks
from cohort.tools.common import table

if TYPE_CHECKING:
    from cohort.tools.coverage import CoverageReport
    from cohort.tools.coverage_census import Unmapped

COLUMNS = (
    "section",
    "site",
    "resource_type",
    "system",
    "code",
    "display",
    "screened_patients",
    "patients",
    "records",
    "example_values",
    "units",
    "suggestion",
    "why",
    "mapping_version",
)


def _cut(text: str, width: int, keep_end: bool = False) -> str:
    """`text` in at most `width` characters, a cut marked by "…" (the whole is in coverage.csv):
    `system|code` keeps its end, the code ("…tp://example.org/lab|PLT", not "ttp://...")."""
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def render_terminal(r: CoverageReport, limit: int) -> str:
    """Tables for the terminal (the first `limit` rows of each)."""
    lines = [f"unmapped codes in the data ({len(r.unmapped)}), by screened patients:"]
    body = [
        (
            u.site,
            u.rtype,
            _cut(f"{u.system}|{u.code}", 48, keep_end=True),
            _cut(u.display, 28),
            str(len(u.screened)),
            _cut(" ".join(u.values), 20),
            _cut(" ".join(sorted(u.units)), 12),
            u.suggestion + _aside(u),
        )
        for u in r.unmapped[:limit]
    ]
    lines += table(
        ("site", "type", "system|code", "display", "screened", "values", "units", "suggest"), body
    )
    lines += ["", f"unit failures ({len(r.unit_failures)}):"]
    lines += table(
        ("site", "concept", "unit", "example", "screened", "records"),
        [(s, c, u, v, str(n), str(k)) for s, c, u, v, n, _, k in r.unit_failures[:limit]],
    )
    per: dict[str, int] = defaultdict(int)
    for concept, *_ in r.never_seen:
        per[concept] += 1
    lines += [
        "",
        f"mapped rows never seen in the data: {len(r.never_seen)} "
        f"(in {len(per)} concepts; listed in coverage.csv)",
    ]
    if r.left_out[0]:
        lines.append(
            f"left out: {r.left_out[0]} mapped row(s) of {r.left_out[1]} concept(s) the trial "
            f"{r.trial} does not read"
        )
    return "\n".join(lines)


def _aside(u: Unmapped) -> str:
    """What the terminal adds to a suggestion: the row to verify, or the units to alias."""
    if u.unverified_at:
        return f" (verified=N row {u.unverified_at})"
    if len(u.unread_units) == 1:
        return f" (unit {u.unread_units[0]}: add it to unit_aliases.csv)"
    if u.unread_units:
        return f" (units {', '.join(u.unread_units)}: add them to unit_aliases.csv)"
    return ""


def write_csv(r: CoverageReport, path: Path) -> Path:
    """coverage.csv (0600, atomic): one row per unmapped code, unseen row and unit failure.

    Written like candidates.csv (BOM, CRLF, Excel-safe cells): its codes, displays, example
    values and units are taken from the data as they were recorded."""
    rows: list[list[object]] = []
    for u in r.unmapped:
        rows.append(
            [
                "unmapped",
                u.site,
                u.rtype,
                u.system,
                u.code,
                u.display,
                len(u.screened),
                len(u.patients),
                u.records,
                "; ".join(u.values),
                "; ".join(sorted(u.units)),
                u.suggestion,
                u.why,
                r.version,
            ]
        )
    for s, concept, unit, value, screened, patients, records in r.unit_failures:
        rows.append(
            [
                "unit_not_converted",
                s,
                "Observation",
                "",
                "",
                "",
                screened,
                patients,
                records,
                value,
                unit,
                concept,
                "",
                r.version,
            ]
        )
    for concept, system, code, display, where in r.never_seen:
        rows.append(
            [
                "mapped_never_seen",
                "",
                "",
                system,
                code,
                display,
                0,
                0,
                0,
                "",
                "",
                concept,
                where,
                r.version,
            ]
        )
    write_atomic(path, render_chunks(COLUMNS, ([str(x) for x in row] for row in rows)))
    return path
