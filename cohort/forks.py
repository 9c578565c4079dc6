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
    this process's own work propagates. A fork writes each chunk's result, with `dump` (the
    caller's codec: e.g. msgpack for dataclasses is ~3x faster than pickle), to a 0700 temp
    file of our own as it goes, and says when it is done through a pipe of its own: this
    process reads the results back with `load` while the fork is still exiting.
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
    kids: list[tuple[int, Path, int]] = []  # pid, results file, read end of its "done" pipe
    try:
        with tempfile.TemporaryDirectory(prefix="cohort-forks-") as tmp:
            try:
                for k in range(1, nproc):
                    path = Path(tmp) / f"{k}.bin"
                    done_r, done_w = os.pipe()
                    pid = os.fork()
                    if pid == 0:  # child: never returns into the caller
                        code = 1
                        try:
                            close_inherited()
                            os.close(done_r)
                            _fork_work(fn, chunks, rfd, path, dump)
                            os.write(done_w, b"1")
                            code = 0
                        finally:
                            os._exit(code)
                    os.close(done_w)  # (so a fork that dies reads as EOF here)
                    kids.append((pid, path, done_r))
                for i, part in _work(fn, chunks, rfd):
                    by_chunk[i] = part
            except BaseException:
                for pid, _, _ in kids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                raise
            for _, path, done_r in kids:
                if os.read(done_r, 1) == b"1":  # its file is complete (it may still be exiting)
                    _place(path.read_bytes(), load, by_chunk)
            for pid, _, _ in kids:
                os.waitpid(pid, 0)
    finally:
        os.close(rfd)
        for _, _, done_r in kids:
            os.close(done_r)
    if any(part is None for part in by_chunk):
        return None  # a fork died (its chunks are missing)
    return [r for part in by_chunk for r in part]  # type: ignore[union-attr]


def _work(
    fn: Callable[[Iterator[list[T]]], Iterator[list[R]]], chunks: list[list[T]], rfd: int
) -> Iterator[tuple[int, list[R]]]:
    """This process's share, as (chunk number, its result) pairs."""
    taken: list[int] = []

    def feed() -> Iterator[list[T]]:
        while len(b := os.read(rfd, 4)) == 4:  # 4-byte reads of a pipe of 4-byte numbers
            taken.append(int.from_bytes(b, "little"))
            yield chunks[taken[-1]]

    given = 0
    for part in fn(feed()):
        if given >= len(taken):
            raise ValueError("map_chunks: more results than chunks taken")
        yield taken[given], part
        given += 1
    if given != len(taken):
        raise ValueError(f"map_chunks: {len(taken)} chunks taken but {given} results")


def _fork_work(
    fn: Callable[[Iterator[list[T]]], Iterator[list[R]]],
    chunks: list[list[T]],
    rfd: int,
    path: Path,
    dump: Callable[[list[R]], bytes],
) -> None:
    """A fork's share, each chunk's result appended to `path` as soon as it is ready (encoding
    while the other processes still work): chunk number, byte length, then the payload."""
    with path.open("wb") as fh:
        for i, part in _work(fn, chunks, rfd):
            blob = dump(part)
            fh.write(struct.pack("<II", i, len(blob)))
            fh.write(blob)


def _place(blob: bytes, load: Callable[[bytes], list[R]], by_chunk: list[list[R] | None]) -> None:
    """A fork's file (see `_fork_work`) into `by_chunk`."""
    at = 0
    while at < len(blob):
        i, n = struct.unpack_from("<II", blob, at)
        by_chunk[i] = load(blob[at + 8 : at + 8 + n])
        at += 8 + n
