"""Files that programs leave beside a mapping file while it is edited, never read as mappings.

In a shared folder Excel writes `~$labs.csv` next to a file it has open (a few bytes holding the
user's name), LibreOffice `.~lock.labs.csv#`; editors leave `.labs.csv.swp` (vim), `labs.csv~`
(a backup copy), `#labs.csv#` and the link `.#labs.csv` (Emacs), and macOS `._labs.csv` on a
network drive. `~$labs.csv` and `._labs.csv` end in `.csv`: read as concept files they stopped
the run ("missing column 'concept'") whenever a researcher had labs.csv open, the Emacs link
("file not found") too, and each changed the mapping version. Every folder of mapping files is
listed through `data_files`; `cohort mappings check` names the files skipped (`side_files`).
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path

from cohort.errors import MappingError, shown_path

__all__ = ["data_files", "side_file", "side_files"]

FOLDERS = ("", "concepts", "medications", "trials")  # the folders of a mappings folder
_MAPPING = (".csv", ".toml")


def side_file(name: str) -> str | None:
    """What a file of this name is when a program left it beside the file it edits (a lock
    file, a swap file, a backup copy) or it is hidden; None for any other name."""
    if name.startswith("~$"):
        return "an Excel lock file: the file is open in Excel"
    if name.startswith(".~lock."):
        return "a LibreOffice lock file: the file is open in LibreOffice"
    if name.startswith(".#") or name.endswith("#"):
        return "an editor's lock or autosave file"
    if name.endswith("~"):
        return "an editor's backup copy"
    if name.startswith(".") and name.endswith((".swp", ".swo", ".swx")):
        return "an editor's swap file"
    if name.startswith("."):
        return "a hidden file"
    return None


def data_files(folder: Path, pattern: str) -> list[Path]:
    """`folder.glob(pattern)` in name order, without the files `side_file` names; none when
    there is no such folder, a MappingError naming it when it cannot be listed (glob saw no
    file in it: an unreadable concepts/ read as no concept rows, and the run blamed the
    criteria for every concept they name)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise MappingError(f"{shown_path(folder)}: cannot be read ({type(exc).__name__})") from None
    return sorted(folder / n for n in names if fnmatchcase(n, pattern) and side_file(n) is None)


def side_files(root: Path) -> list[tuple[Path, str]]:
    """The files `side_file` names in a mappings folder and its folders that belong to a
    mapping file (their name holds `.csv` or `.toml`; not `.gitignore`, `.DS_Store`), by path,
    each with what it is."""
    found: list[tuple[Path, str]] = []
    for sub in FOLDERS:
        folder = root / sub if sub else root
        try:
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                what = side_file(path.name)
                mapping = any(ext in path.name.lower() for ext in _MAPPING)
                if what and mapping and (path.is_file() or path.is_symlink()):
                    found.append((path, what))
        except OSError:
            continue  # (a folder that cannot be read: its error is the loader's, not a note's)
    return sorted(found, key=lambda f: f[0].relative_to(root).as_posix())
