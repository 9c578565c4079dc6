"""A mapping CSV holding its header line again, as rows appended with their file's header
leave it (a trial's rows added to a copy of mappings/: docs/mappings-howto.md "A new trial's
rows"): one error naming the line, not the header's words read as a row's."""

from __future__ import annotations

from pathlib import Path

from researcher_helpers import check_all, copy_mappings

AGAIN = "the header line again (rows appended with their file's header?): delete the line"


def _append_header(path: Path) -> int:
    """The file's first line appended at its end; the line number it gets."""
    text = path.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line and not line.startswith("#"))
    path.write_text(text + header + "\n", encoding="utf-8")
    return len(text.splitlines()) + 1


def test_a_header_line_again_is_one_error_naming_it(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    labs = _append_header(m / "concepts" / "labs.csv")
    units = _append_header(m / "units.csv")
    labels = _append_header(m / "labels.csv")
    code, lines = check_all(m)
    assert code == 4
    errors = [line for line in lines if line.startswith(("error:", "warning:"))]
    assert errors == [
        f"error: {m / 'concepts' / 'labs.csv'}:{labs}: {AGAIN}",
        f"error: {m / 'labels.csv'}:{labels}: {AGAIN}",
        f"error: {m / 'units.csv'}:{units}: {AGAIN}",
    ], errors
