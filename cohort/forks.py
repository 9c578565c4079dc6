"""Run a CPU-bound function over chunks of a list in forked worker processes (POSIX only)."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import tempfile
from collections.abc import Callable, Iterator
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


def map_chunks(
    fn: Callable[[Iterator[list[T]]], Iterator[list[R]]],
    items: list[T],
    nproc: int,
    dump: Callable[[list[R]], bytes],
    load: Callable[[bytes], list[R]],
    per_process: int = 16,
) -> list[R] | None:
    """`fn` over chunks of `items` in this process and `nproc - 1` forks, in item order.

    `fn` takes an iterator of chunks and yields one result list per chunk, in the order it took
    them (so it can open a connection once per process). Chunks are handed out one at a time
    through a pipe, so whichever process is free takes the next: a process slowed down (its
    copy-on-write pages, a busy core) takes fewer instead of leaving the others idle at the end.
    None if a fork failed (the caller retries serially and so sees the real error); an error in
    this process's own work propagates. Forks' results travel through 0700 temp files of our
    own, written with `dump` and read back with `load` (the caller's codec: e.g. msgpack for
    dataclasses is ~3x faster than pickle).
    """
    # (at most 4096 chunks: their numbers must fit the pipe's buffer, see below)
    size = max(1, -(-len(items) // (nproc * per_process)), -(-len(items) // 4096))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    # every chunk number is written before the forks start (4096 numbers of 4 bytes are well
    # within a pipe's 64 KiB buffer), and the closed write end makes an empty pipe read as EOF
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, struct.pack(f"<{len(chunks)}I", *range(len(chunks))))
    finally:
        os.close(wfd)
    by_chunk: list[list[R] | None] = [None] * len(chunks)
    try:
        with tempfile.TemporaryDirectory(prefix="cohort-forks-") as tmp:
            kids: list[tuple[int, Path]] = []
            try:
                for k in range(1, nproc):
                    path = Path(tmp) / f"{k}.bin"
                    pid = os.fork()
                    if pid == 0:  # child: never returns into the caller
                        code = 1
                        try:
                            close_inherited()
                            taken, parts = _work(fn, chunks, rfd)
                            path.write_bytes(_packed(taken, parts, dump))
                            code = 0
                        finally:
                            os._exit(code)
                    kids.append((pid, path))
                taken, parts = _work(fn, chunks, rfd)
            except BaseException:
                for pid, _ in kids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                raise
            for i, part in zip(taken, parts, strict=True):
                by_chunk[i] = part
            for pid, path in kids:
                _, status = os.waitpid(pid, 0)
                if os.waitstatus_to_exitcode(status) == 0 and path.exists():
                    _place(path.read_bytes(), load, by_chunk)
    finally:
        os.close(rfd)
    if any(part is None for part in by_chunk):
        return None  # a fork died (its chunks are missing)
    return [r for part in by_chunk for r in part]  # type: ignore[union-attr]


def _work(
    fn: Callable[[Iterator[list[T]]], Iterator[list[R]]], chunks: list[list[T]], rfd: int
) -> tuple[list[int], list[list[R]]]:
    """This process's share: (the chunk numbers it took, its result for each, same order)."""
    taken: list[int] = []

    def feed() -> Iterator[list[T]]:
        while len(b := os.read(rfd, 4)) == 4:  # 4-byte reads of a pipe of 4-byte numbers
            taken.append(int.from_bytes(b, "little"))
            yield chunks[taken[-1]]

    parts = list(fn(feed()))
    if len(parts) != len(taken):
        raise ValueError(f"map_chunks: {len(taken)} chunks taken but {len(parts)} results")
    return taken, parts


def _packed(taken: list[int], parts: list[list[R]], dump: Callable[[list[R]], bytes]) -> bytes:
    """A fork's file: chunk count, chunk numbers, result count per chunk, then the payload."""
    counts = [len(p) for p in parts]
    head = struct.pack(f"<{2 * len(taken) + 1}I", len(taken), *taken, *counts)
    return head + dump([r for p in parts for r in p])


def _place(blob: bytes, load: Callable[[bytes], list[R]], by_chunk: list[list[R] | None]) -> None:
    """A fork's file (see `_packed`) into `by_chunk`."""
    n = int.from_bytes(blob[:4], "little")
    head = struct.unpack_from(f"<{2 * n}I", blob, 4)
    flat = load(blob[4 + 8 * n :])
    at = 0
    for i, count in zip(head[:n], head[n:], strict=True):
        by_chunk[i] = flat[at : at + count]
        at += count
