"""How store errors name their cause: the exception's class and message, never row values."""

from __future__ import annotations

import shutil
from pathlib import Path

# below this much free space a "disk I/O error" is most likely the disk being full
LOW_FREE = 64 << 20


def why(e: BaseException, path: Path | None = None) -> str:
    """`e` as a store error's message ends (sqlite and OS messages name the problem, "database
    is locked", "Permission denied", never row values; the class name kept for context); with
    the store's `path`, a "disk I/O error" on a nearly full file system says so."""
    msg = getattr(e, "strerror", None) or str(e)
    said = f"{type(e).__name__}: {msg}"
    if path is not None and msg == "disk I/O error":
        # SQLite's words for a -shm or -wal file it cannot grow on a full disk, too: read as a
        # failing disk or a damaged store (which docs/operations.md has moved away)
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            return said
        if free < LOW_FREE:
            said += f" ({free >> 10} KiB free on the store's file system: disk full?)"
    return said
