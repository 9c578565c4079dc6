"""candidates.csv and evidence.csv for one site: UTF-8 with BOM, CRLF, Excel-safe cells."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any

from cohort.model import Candidate, CriterionInfo, Evidence, SiteResult
from cohort.report import rows
from cohort.report.columns import HEAD_COLUMNS, PHI_COLUMNS, TAIL_COLUMNS
from cohort.report.files import FORMULA_CHARS, excel_safe
from cohort.report.nophi import evidence_cells, public_candidate

BOM = "\ufeff"
EVIDENCE_COLUMNS = (
    "patient_id",
    "criterion",
    "status",
    "used",
    "ref",
    "concept",
    "value",
    "unit",
    "date",
    "note",
)


def candidate_columns(site: SiteResult, *, phi: bool = True) -> list[str]:
    """Header of candidates.csv: contract columns, one per criterion, then the rest."""
    cols = [*HEAD_COLUMNS, *(ci.id for ci in site.criteria), *TAIL_COLUMNS]
    return cols + list(PHI_COLUMNS) if phi else cols


def _render(header: Iterable[str], body: Iterable[Iterable[str]]) -> str:
    return "".join(render_chunks(header, body))


def _writer(buf: io.StringIO) -> Any:
    return csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)


def _safe_cells(row: Iterable[str]) -> list[str]:
    """The cells made safe to open in Excel; only a cell starting with a formula character can
    need it, so `excel_safe` is called for those alone (millions of cells in evidence.csv)."""
    starts = FORMULA_CHARS
    return [excel_safe(x) if x[:1] in starts else x for x in row]


def render_chunks(
    header: Iterable[str], body: Iterable[Iterable[str]], rows: int = 5000
) -> Iterator[str]:
    """The CSV text in pieces of `rows` rows, so a large file is never held whole in memory;
    the first piece is the BOM and the header."""
    buf = io.StringIO()
    w = _writer(buf)
    w.writerow(_safe_cells(header))
    yield BOM + buf.getvalue()
    n = 0
    buf.seek(0)
    buf.truncate()
    for row in body:
        w.writerow(_safe_cells(row))
        n += 1
        if n == rows:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            n = 0
    if n:
        yield buf.getvalue()


def candidate_row(site: SiteResult, c: Candidate, *, phi: bool = True) -> list[str]:
    """One candidates.csv row as text cells (before Excel neutralisation)."""
    done = rows.ordered(site, c)
    row = [
        str(c.rank),
        c.patient.id,
        c.tier,
        rows.fmt_score(c.score),
        rows.fmt_date(c.eligible_from),
        rows.reasons(site, c, done),
    ]
    status = rows.statuses(c, done)
    row += [status.get(ci.id, "") for ci in site.criteria]
    row += [
        rows.change_of(site, c),
        "; ".join(rows.to_confirm_items(site, c, done)),
        "; ".join(rows.missing_items(site, c, done)),
        rows.fmt_date(c.last_seen),
    ]
    if phi:
        p = c.patient
        age = rows.age_of(p, site.as_of)
        row += [
            p.name,
            p.mrn,
            p.birth_date,
            "" if age is None else str(age),
            p.sex,
            p.phone,
            p.postal_code,
        ]
    return row


def candidates_csv(site: SiteResult, *, phi: bool = True) -> str:
    """candidates.csv text: one row per screened patient, in rank order.

    Identifying columns (name, MRN, birth date, age, sex, phone, postal code) are written
    last, and only when `phi` is true.
    """
    return "".join(candidates_csv_chunks(site, phi=phi))


def candidates_csv_chunks(site: SiteResult, *, phi: bool = True) -> Iterator[str]:
    """candidates.csv text in pieces (see `candidates_csv`); without `phi`, reasons quote no
    free text (`report.nophi`)."""
    ordered = sorted(site.candidates, key=lambda c: (c.rank <= 0, c.rank))
    if not phi:
        ordered = [public_candidate(c) for c in ordered]
    return render_chunks(
        candidate_columns(site, phi=phi),
        (candidate_row(site, c, phi=phi) for c in ordered),
    )


def _evidence_cells(e: Evidence, phi: bool = True) -> list[str]:
    if not phi:
        return evidence_cells(e)  # free-text values and units withheld
    return [e.ref, e.concept, e.value, e.unit, e.date, e.full_note]


def evidence_rows(site: SiteResult, *, phi: bool = True) -> Iterable[list[str]]:
    """One row per (patient, criterion, evidence item); used = yes / ignored."""
    order = criterion_order(site.criteria)
    for c in _ranked(site):
        yield from candidate_evidence_rows(c, order, phi=phi)


def criterion_order(criteria: Iterable[CriterionInfo]) -> dict[str, int]:
    """criterion id -> its position in the trial (evidence rows follow it)."""
    return {ci.id: i for i, ci in enumerate(criteria)}


def _ranked(site: SiteResult) -> list[Candidate]:
    return sorted(site.candidates, key=lambda c: (c.rank <= 0, c.rank))


def candidate_evidence_rows(
    c: Candidate, order: dict[str, int], *, phi: bool = True
) -> Iterator[list[str]]:
    """One candidate's evidence.csv rows, in criterion order (without `phi`: no free text)."""
    for r in sorted(c.results, key=lambda r: order.get(r.criterion, len(order))):
        status = rows.status_text(r)
        for e in r.evidence:
            yield [c.patient.id, r.criterion, status, "yes", *_evidence_cells(e, phi)]
        for e in r.ignored:
            yield [c.patient.id, r.criterion, status, "ignored", *_evidence_cells(e, phi)]


def evidence_text(c: Candidate, order: dict[str, int], *, phi: bool = True) -> str:
    """One candidate's evidence.csv rows as CSV text, exactly as evidence.csv has them.

    The runner renders this where the candidate is evaluated (in parallel workers) and keeps
    the text instead of the evidence objects; evidence.csv then only concatenates, in rank order.
    """
    return "".join(csv_line(row) for row in candidate_evidence_rows(c, order, phi=phi))


# In a row of plain cells nothing is quoted: the csv writer quotes a cell (QUOTE_MINIMAL) only
# for a delimiter, a quote or a line break in it, or an empty row of one cell.
_QUOTED = re.compile(r'["\r\n]')


def csv_line(row: list[str]) -> str:
    """One Excel-safe CSV row, exactly as `render_chunks` writes it (CRLF included).

    Plain rows (nearly all of evidence.csv) are joined directly: ~5 -> ~1.5 us a row against
    the csv writer into a buffer (bench/RESULTS.md); any other row goes through the writer.
    """
    cells = _safe_cells(row)
    line = ",".join(cells)
    if len(cells) > 1 and line.count(",") == len(cells) - 1 and _QUOTED.search(line) is None:
        return line + "\r\n"
    buf = io.StringIO()
    _writer(buf).writerow(cells)
    return buf.getvalue()


def evidence_csv(site: SiteResult, *, phi: bool = True) -> str:
    """evidence.csv text (no identifying columns: patient_id is the FHIR logical id; without
    `phi`, free-text values and units are withheld: `report.nophi`)."""
    return "".join(evidence_csv_chunks(site, phi=phi))


def evidence_csv_chunks(site: SiteResult, *, phi: bool = True) -> Iterator[str]:
    """evidence.csv text in pieces (see `evidence_csv`); a candidate's pre-rendered
    `evidence_text` is used as it is (rendered with the same `phi`: `screening.screen`)."""
    yield from render_chunks(EVIDENCE_COLUMNS, ())
    order = criterion_order(site.criteria)
    piece: list[str] = []
    for c in _ranked(site):
        piece.append(
            c.evidence_text if c.evidence_text is not None else evidence_text(c, order, phi=phi)
        )
        if len(piece) >= 500:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)
