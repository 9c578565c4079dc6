"""The store folder's `file-names.tsv` (PHI, 0600): which file each `file-…` pseudonym of
run.json, the log and error messages is (cohort/source/names.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cohort.config import SiteConfig
from cohort.errors import OutputError
from cohort.source.names import FileNames

__all__ = ["FILE_NAMES", "keep_names", "kept_names", "read_names"]

FILE_NAMES = "file-names.tsv"
HEADER = "pseudonym\tsite\tsource\tpath"

log = logging.getLogger("cohort")


def _cell(text: str) -> str:
    # (a tab or a line break in a file name would shift the columns or forge a line)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


@contextmanager
def kept_names(state: Path, site: SiteConfig) -> Iterator[FileNames]:
    """The names a site's read is to give its files, kept (`keep_names`) once it ends, also
    when an error stops the run (the error may name a folder by its pseudonym)."""
    names = FileNames()
    try:
        yield names
    finally:
        keep_names(state, site.id, site.source, names)


_ESCAPED = re.compile(r"\\(.)")
_UNESCAPE = {"t": "\t", "n": "\n", "r": "\r"}


def _uncell(text: str) -> str:
    return _ESCAPED.sub(lambda m: _UNESCAPE.get(m[1], m[1]), text)


def keep_names(state: Path, site: str, source: str, names: FileNames) -> None:
    """Add the pseudonyms `names` gave a site's files to `state`/file-names.tsv, beside the
    store (which holds PHI already). Lines are kept across runs: a night whose files are
    unchanged repeats the last read's issues, pseudonyms included, without reading again. A
    file that cannot be written is a warning: the run does not fail for it."""
    if not names.hidden:
        return
    from cohort.atomic import write_atomic

    path = state / FILE_NAMES
    lines = set(read_lines(path))
    lines |= {"\t".join(_cell(x) for x in (k, site, source, v)) for k, v in names.hidden.items()}
    try:
        write_atomic(path, "".join(f"{ln}\n" for ln in [HEADER, *sorted(lines)]))
    except OutputError as exc:
        log.warning("cannot list the files named by pseudonym: %s", exc)


def read_lines(path: Path) -> list[str]:
    """The lines of a file-names.tsv but its header (none when there is no such file)."""
    try:
        text = path.read_text(encoding="utf-8", errors="backslashreplace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln and ln != HEADER]


def read_names(path: Path) -> dict[str, list[tuple[str, str, str]]]:
    """pseudonym -> its (site, source, path) lines, unescaped (two files may share one)."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for line in read_lines(path):
        cells = line.split("\t")
        if len(cells) == 4:
            out.setdefault(cells[0], []).append(
                (_uncell(cells[1]), _uncell(cells[2]), _uncell(cells[3]))
            )
    return out
