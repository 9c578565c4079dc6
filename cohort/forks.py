"""Run a CPU-bound function over slices of a list in forked worker processes (POSIX only)."""

from __future__ import annotations

import contextlib
import os
import signal
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


def workers_for(n_items: int, threshold: int, configured: int = 0, cap: int = 4) -> int:
    """Processes for a job of `n_items`: `configured` when set (`[run] workers`), else one per
    core (at most `cap`) from `threshold` items on; 1 means: do it in this process."""
    if not hasattr(os, "fork"):
        return 1
    if configured > 0:
        return configured
    return 1 if n_items < threshold else min(os.cpu_count() or 1, cap)


def map_slices(
    fn: Callable[[list[T]], list[R]],
    items: list[T],
    nproc: int,
    dump: Callable[[list[R]], bytes],
    load: Callable[[bytes], list[R]],
) -> list[R] | None:
    """`fn` over `nproc` interleaved slices: slice 0 in this process, the others in forks.

    None if a fork failed (the caller retries serially and so sees the real error); an error
    in this process's own slice propagates. Forks' results travel through 0700 temp files of
    our own, written with `dump` and read back with `load` (the caller's codec: e.g. msgpack
    for dataclasses is ~3x faster than pickle). Results come back in slice order.
    """
    with tempfile.TemporaryDirectory(prefix="cohort-forks-") as tmp:
        kids: list[tuple[int, Path]] = []
        try:
            for k in range(1, nproc):
                path = Path(tmp) / f"{k}.pickle"
                pid = os.fork()
                if pid == 0:  # child: never returns into the caller
                    code = 1
                    try:
                        close_inherited()
                        path.write_bytes(dump(fn(items[k::nproc])))
                        code = 0
                    finally:
                        os._exit(code)
                kids.append((pid, path))
            parts: list[list[R]] = [fn(items[0::nproc])]
        except BaseException:
            for pid, _ in kids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            raise
        failed = False
        for pid, path in kids:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0 and path.exists():
                parts.append(load(path.read_bytes()))
            else:
                failed = True
    return None if failed else [r for part in parts for r in part]
