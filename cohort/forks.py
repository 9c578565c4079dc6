"""Run a CPU-bound function over chunks of a list in forked worker processes (POSIX only)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Protocol, TypeVar

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


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The signals that stop a run (Ctrl-C, systemd, a terminal closing): the CLI's handlers turn
# them into KeyboardInterrupt, which only the main thread of the main process may take.
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP wait (in this thread) until the block ends, then are taken:
    around a fork, so that the KeyboardInterrupt comes once the child is on record (to be killed and
    reaped) and never in the child before `as_child` (which would run this process's own
    error handling there: run.json, the store); around killing and reaping (a second Ctrl-C
    would leave children unkilled). A thread started in it keeps them blocked for good."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def as_child(parent: int) -> None:
    """First thing in a process forked by `parent` (its pid, taken before the fork) inside
    `signals_held`, to work for it: close INHERITED_FDS, take SIGTERM, SIGINT and SIGHUP by
    their default action (unblocked) unless the run ignores them, and die with the parent.

    The CLI's handlers raise KeyboardInterrupt, which in a worker unwinds whatever it was doing
    (a concurrent.futures worker even sent it back as its task's result and went on serving,
    deaf to the pool's own SIGTERM). Default, not ignored: systemd stopping the unit, or Ctrl-C,
    signals the whole process group, and each worker then ends at once, while the parent's own
    handler stops the run (exit 143 / 130) and kills and reaps whatever worker is left; a worker
    killed alone reads to the parent as one that died (it then does the work itself).

    On Linux the kernel SIGKILLs this process when the parent thread that forked it ends
    (PR_SET_PDEATHSIG): a parent killed with SIGKILL can clean nothing up, and its workers would
    live on, reparented to init, holding the store open and blocked on pipes nobody reads. The
    parent must therefore fork from a thread that lives as long as the work (cohort forks from
    the main thread). A parent that died before the prctl took effect is seen by getppid."""
    close_inherited()
    for sig in STOPS:
        # (one the run ignores, `nohup`'s SIGHUP, stays so: the worker outlives the terminal too)
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)  # (one that came meanwhile ends it now)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # (no libc prctl: no such guard)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


REAP_SECONDS = 5.0  # a killed fork is waited for this long (one stuck in the kernel, D state)


class Child(Protocol):
    pid: int  # 0 once reaped


def kill_and_reap(children: Sequence[Child], what: str) -> float:
    """SIGKILL the `children` not reaped yet and reap them, waiting at most REAP_SECONDS; the
    deadline (for the caller's own waits). Called inside `signals_held`, where a blocking
    waitpid on a child that SIGKILL does not end (stuck in the kernel, D state: a hung network
    mount) would hang the run with SIGTERM held: such a child is left, with a warning, and the
    run goes on. One reaped by the kernel (SIGCHLD ignored) counts as reaped."""
    for c in children:
        if c.pid:  # (never 0: that would be this process's whole group)
            with contextlib.suppress(OSError):
                os.kill(c.pid, signal.SIGKILL)
    deadline = time.monotonic() + REAP_SECONDS
    while True:
        for c in children:
            try:
                if c.pid and os.waitpid(c.pid, os.WNOHANG)[0]:
                    c.pid = 0
            except ChildProcessError:
                c.pid = 0
        left = sum(1 for c in children if c.pid)
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.002)
    if left:
        log.warning("%d %s process(es) did not end when killed", left, what)
    return deadline


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
    error); an error in this process's own work propagates. A fork's work is waited for as
    long as it takes (a stopped fork holds this up until it is continued, or SIGTERM); once its
    results are read, and on every way out, every fork is killed and reaped (`kill_and_reap`).
    A fork writes each chunk's result, with `dump` (the caller's codec: e.g. msgpack for
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
    parent = os.getpid()
    with contextlib.ExitStack() as stack:  # closes and reaps on every way out, in reverse
        stack.callback(os.close, rfd)
        stack.callback(_stop, kids)
        for _ in range(1, nproc):
            with signals_held():  # (taken once the fork is on record, and not in it)
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
                        as_child(parent)
                        os.close(done_r)
                        _fork_work(fn, chunks, rfd, results, dump)
                        os.write(done_w, b"1")
                        code = 0
                    finally:
                        os._exit(code)
                kids.append(_Kid(pid, results, done_r))
                os.close(done_w)  # (so a fork that dies reads as EOF here)
        for i, part in _work(fn, chunks, rfd):
            by_chunk[i] = part
        for kid in kids:
            if os.read(kid.done, 1) == b"1":  # its file is complete (it may still be exiting)
                kid.results.seek(0)
                _place(kid.results.read(), load, by_chunk)
        # (the ExitStack kills and reaps the forks: one that wrote its results has no more to
        # do, but may be stopped short of exiting and would hold this process up for good)
    if any(part is None for part in by_chunk):
        log.warning("a second process stopped early; redoing its work in this one")
        return None  # a fork died or failed (its chunks are missing)
    return [r for part in by_chunk for r in part]  # type: ignore[union-attr]


def _stop(kids: list[_Kid]) -> None:
    """Kill and reap the forks (their work read, an error here, or one that could not start)."""
    with signals_held():
        kill_and_reap(kids, "worker")


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
