"""Run a CPU-bound function over chunks of a list in forked worker processes (POSIX only)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TypeVar

log = logging.getLogger("cohort")
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


@dataclass
class _Kid:
    """A fork: its pid (0 once reaped), its unnamed results file, its "done" pipe's read end."""

    pid: int
    results: IO[bytes]
    done: int


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
    None if a fork failed or could not start (the caller retries serially and so sees the real
    error); an error in this process's own work propagates. Every fork is reaped on every way
    out. A fork writes each chunk's result, with `dump` (the caller's codec: e.g. msgpack for
    dataclasses is ~3x faster than pickle), to an unnamed temp file as it goes (nothing is left
    on disk, even if this process is killed), and says when it is done through a pipe of its
    own: this process reads the results back with `load` while the fork is still exiting.
    """
    # (at most 1024 chunks: their numbers fit one page, the smallest buffer a pipe can have)
    size = max(1, -(-len(items) // (nproc * per_process)), -(-len(items) // 1024))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    # every chunk number is written before the forks start (one write of at most 4096 bytes:
    # whole), and the closed write end makes an empty pipe read as EOF
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, struct.pack(f"<{len(chunks)}I", *range(len(chunks))))
    finally:
        os.close(wfd)
    by_chunk: list[list[R] | None] = [None] * len(chunks)
    kids: list[_Kid] = []
    with contextlib.ExitStack() as stack:  # closes and reaps on every way out, in reverse
        stack.callback(os.close, rfd)
        stack.callback(_stop, kids)
        for _ in range(1, nproc):
            try:
                results = stack.enter_context(tempfile.TemporaryFile(prefix="cohort-forks-"))
                done_r, done_w = os.pipe()
                stack.callback(os.close, done_r)
                try:
                    pid = os.fork()
                except OSError:
                    os.close(done_w)
                    raise
            except OSError:
                log.warning("could not start a second process; working in this one")
                return None
            if pid == 0:  # child: never returns into the caller
                code = 1
                try:
                    close_inherited()
                    os.close(done_r)
                    _fork_work(fn, chunks, rfd, results, dump)
                    os.write(done_w, b"1")
                    code = 0
                finally:
                    os._exit(code)
            os.close(done_w)  # (so a fork that dies reads as EOF here)
            kids.append(_Kid(pid, results, done_r))
        for i, part in _work(fn, chunks, rfd):
            by_chunk[i] = part
        for kid in kids:
            if os.read(kid.done, 1) == b"1":  # its file is complete (it may still be exiting)
                kid.results.seek(0)
                _place(kid.results.read(), load, by_chunk)
        for kid in kids:
            os.waitpid(kid.pid, 0)
            kid.pid = 0
    if any(part is None for part in by_chunk):
        log.warning("a second process stopped early; redoing its work in this one")
        return None  # a fork died or failed (its chunks are missing)
    return [r for part in by_chunk for r in part]  # type: ignore[union-attr]


def _stop(kids: list[_Kid]) -> None:
    """Kill and reap the forks not reaped yet (an error here, or one that could not start)."""
    for kid in kids:
        if kid.pid:
            with contextlib.suppress(OSError):
                os.kill(kid.pid, signal.SIGKILL)
                os.waitpid(kid.pid, 0)
            kid.pid = 0


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
    results: IO[bytes],
    dump: Callable[[list[R]], bytes],
) -> None:
    """A fork's share, each chunk's result appended to `results` as soon as it is ready
    (encoding while the other processes still work): chunk number, byte length, payload."""
    for i, part in _work(fn, chunks, rfd):
        blob = dump(part)
        results.write(struct.pack("<II", i, len(blob)))
        results.write(blob)
    results.flush()  # (the fork ends with os._exit, which flushes nothing)


def _place(blob: bytes, load: Callable[[bytes], list[R]], by_chunk: list[list[R] | None]) -> None:
    """A fork's file (see `_fork_work`) into `by_chunk`."""
    at = 0
    while at < len(blob):
        i, n = struct.unpack_from("<II", blob, at)
        by_chunk[i] = load(blob[at + 8 : at + 8 + n])
        at += 8 + n
