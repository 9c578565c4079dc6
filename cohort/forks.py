"""Run a CPU-bound function over slices of a list in forked worker processes (POSIX only)."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


# Descriptors a forked child must close at once, e.g. the run lock: a child that outlived a
# killed parent would otherwise keep the lock and block the next run.
INHERITED_FDS: set[int] = set()


def close_inherited() -> None:
    """In a freshly forked child: close INHERITED_FDS (the parent keeps its own copies)."""
    for fd in INHERITED_FDS:
        with contextlib.suppress(OSError):
            os.close(fd)


def workers_for(n_items: int, threshold: int = 4000, cap: int = 4) -> int:
    """One worker per core (at most `cap`) for large inputs; 1 means: do it in this process."""
    if n_items < threshold or not hasattr(os, "fork"):
        return 1
    return min(os.cpu_count() or 1, cap)


def map_slices(fn: Callable[[list[T]], list[R]], items: list[T], nproc: int) -> list[R] | None:
    """`fn` over interleaved slices in `nproc` forks; None if any worker failed (caller retries
    serially and so sees the real error). Results travel through 0700 temp files of our own."""
    with tempfile.TemporaryDirectory(prefix="cohort-forks-") as tmp:
        kids: list[tuple[int, Path]] = []
        for k in range(nproc):
            path = Path(tmp) / f"{k}.pickle"
            pid = os.fork()
            if pid == 0:  # child: never returns into the caller
                code = 1
                try:
                    close_inherited()
                    path.write_bytes(pickle.dumps(fn(items[k::nproc]), pickle.HIGHEST_PROTOCOL))
                    code = 0
                finally:
                    os._exit(code)
            kids.append((pid, path))
        parts: list[list[R]] = []
        failed = False
        for pid, path in kids:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0 and path.exists():
                parts.append(pickle.loads(path.read_bytes()))  # noqa: S301 - our own temp file
            else:
                failed = True
    return None if failed else [r for part in parts for r in part]
