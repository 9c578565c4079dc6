"""Forked worker processes, each taking its tasks through a pipe of its own (POSIX only).

Made for cohort.reading in place of concurrent.futures' ProcessPoolExecutor, whose workers share
one task queue and one result queue. When a worker died there (killed for memory), CPython 3.11
SIGTERMed the others and then joined the thread writing tasks to them: a worker that outlived
that SIGTERM (it ran the CLI's handler, whose KeyboardInterrupt the executor sends back as the
task's result before serving on), or one killed while holding a queue's lock, left that thread
blocked on a pipe nobody would read, and the run hung for good holding run.lock (the executor
joins its threads at interpreter exit too).

Here nothing is shared between workers: a dead worker's pipes read as end of file, so waiting
for its result ends; every way out kills the workers (SIGKILL, which nothing can ignore) and
reaps them with a deadline; no thread is joined without a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cohort.forks import as_child, kill_and_reap, signals_held

__all__ = ["ForkPool"]

log = logging.getLogger("cohort")

_HEAD = struct.Struct("<Q")  # a message: its length, then that many bytes (a pickle)
_PIPE_BYTES = 1 << 20  # (Linux: bigger pipes, fewer switches between the processes)


@dataclass
class _Worker:
    pid: int  # 0 once reaped
    results: int  # this process's end of the worker's results pipe (its drain thread's)
    frames: queue.SimpleQueue[bytes | None]  # tasks, for the feeder thread to write to it
    feeder: threading.Thread | None = None
    got: queue.SimpleQueue[bytearray | None] = field(default_factory=queue.SimpleQueue)
    drain: threading.Thread | None = None


class ForkPool:
    """Forks of this process, each running a function on the tasks given to it, in the order
    given. Made empty, so that the caller can enter the `try` whose `finally` calls `close`
    before `start` forks (a KeyboardInterrupt may come as soon as `start` returns).

    A worker takes its tasks from a pipe that a thread of this process writes (so a big task
    never holds this thread up, nor deadlocks with the worker writing a big result back) and
    sends its results back through another, which a second thread of this process drains as
    they come: a worker never waits for this thread to take its result (a result is larger
    than a pipe holds; the caller takes them in task order and writes the store meanwhile), so
    it goes on to its next task at once (10k SLE + Synthea read: the reading processes waited
    ~2.5 s each to hand results over; bench/RESULTS.md, thirty-first pass). `result(i)` waits
    for worker i's next one: None if the worker died, or failed (its exception is not sent: it
    may quote the data, and the caller, doing the task itself, sees the real error). Only a
    live worker is waited for.
    """

    def __init__(self) -> None:
        self.workers: list[_Worker] = []

    def start(self, nproc: int, work: Callable[[Any], Any]) -> None:
        """Fork up to `nproc` workers running `work` (`size`: how many started, maybe 0)."""
        parent = os.getpid()
        ends: list[int] = []  # this process's ends of the pipes of the workers forked so far
        # SIGINT, SIGTERM and SIGHUP wait until every worker is on record (for `close`), and
        # never reach a worker before `as_child`. The feeder and drain threads start once every
        # fork is made (none copies this process while a thread writes or reads) and keep them
        # blocked, so the kernel delivers them to this thread, interrupting its wait for a
        # result.
        with signals_held():
            for _ in range(nproc):
                try:
                    pid, task_w, results = _fork(work, parent, ends)
                except OSError:
                    log.warning("could not start a reading process (%d started)", self.size)
                    break
                ends += (task_w, results)
                self.workers.append(_Worker(pid, results, queue.SimpleQueue()))
            for w, fd in zip(self.workers, ends[::2], strict=True):
                w.feeder = threading.Thread(
                    target=_feed, args=(fd, w.frames), name="cohort-feed", daemon=True
                )
                try:
                    w.feeder.start()
                except RuntimeError:  # (no thread to be had: the worker sees end of file, ends)
                    w.feeder = None
                    os.close(fd)
                w.drain = threading.Thread(
                    target=_drain, args=(w.results, w.got), name="cohort-drain", daemon=True
                )
                try:
                    w.drain.start()
                except RuntimeError:  # (none to be had: `result` reads the pipe itself)
                    w.drain = None

    @property
    def size(self) -> int:
        return len(self.workers)

    def submit(self, i: int, task: Any) -> None:
        """Queue `task` for worker i (written to it in the background)."""
        self.workers[i].frames.put(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))

    def result(self, i: int) -> Any | None:
        """Worker i's next result, waiting for it; None if the worker is gone."""
        w = self.workers[i]
        blob = w.got.get() if w.drain is not None else _recv(w.results)
        if blob is None:
            w.got.put(None)  # (gone for good: a later call reads None again, not waits)
            return None
        return pickle.loads(blob)  # noqa: S301 (our own fork's)

    def close(self) -> None:
        """Kill every worker, reap it and end its feeder and drain threads (waiting at most
        forks.REAP_SECONDS in all).

        Whatever the workers were doing is abandoned: the caller has every result it wants, or
        does the rest itself. The stop signals wait meanwhile (a second Ctrl-C would otherwise
        leave workers unkilled); they are taken as soon as it returns."""
        with signals_held():
            for w in self.workers:
                w.frames.put(None)  # (a feeder writing to a killed worker ends on EPIPE)
            deadline = kill_and_reap(self.workers, "reading")
            for w in self.workers:
                if w.feeder is not None:  # (one writing to a worker left unkilled stays)
                    w.feeder.join(max(0.0, deadline - time.monotonic()))
                if w.drain is not None:  # (it closes the pipe at end of file: a killed worker)
                    w.drain.join(max(0.0, deadline - time.monotonic()))
                else:
                    with contextlib.suppress(OSError):
                        os.close(w.results)
            self.workers = []


def _fork(work: Callable[[Any], Any], parent: int, ends: list[int]) -> tuple[int, int, int]:
    """A worker: its pid, and this process's ends of its tasks and results pipes. `ends`: those
    of the workers forked before, which it closes (so that each pipe has one reader and one
    writer: a worker's death is end of file to this process, and this process's to it)."""
    fds: list[int] = []
    try:
        fds += os.pipe()
        fds += os.pipe()
        task_r, task_w, results, result_w = fds
        for fd in (task_w, result_w):
            with contextlib.suppress(OSError, AttributeError):  # (Linux only)
                _set_pipe_size(fd)
        pid = os.fork()
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    if pid == 0:  # the worker: never returns into the caller
        code = 1
        try:
            as_child(parent)
            for fd in (*ends, task_w, results):
                os.close(fd)
            _serve(work, task_r, result_w)
            code = 0
        finally:
            os._exit(code)
    os.close(task_r)
    os.close(result_w)
    return pid, task_w, results


def _set_pipe_size(fd: int) -> None:
    import fcntl

    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[attr-defined,unused-ignore]


def _serve(work: Callable[[Any], Any], tasks: int, results: int) -> None:
    """A worker's loop: each task read, worked and its result written, until end of file."""
    while (blob := _recv(tasks)) is not None:
        out = work(pickle.loads(blob))  # noqa: S301 (from the parent)
        _send(results, pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))


def _feed(fd: int, frames: queue.SimpleQueue[bytes | None]) -> None:
    """A feeder thread: write the queued tasks to a worker until None, then close its pipe.
    EPIPE (the worker died) ends it too: the worker's results pipe tells the caller."""
    try:
        while (frame := frames.get()) is not None:
            _send(fd, frame)
    except OSError:
        pass
    finally:
        os.close(fd)


def _drain(fd: int, got: queue.SimpleQueue[bytearray | None]) -> None:
    """A drain thread: each message of a worker's results pipe queued as it comes, None at end
    of file (the worker died, or was killed by `close`), which closes the pipe: this thread
    owns it (closed under a blocked read, its number could be reused by another file)."""
    try:
        while (blob := _recv(fd)) is not None:
            got.put(blob)
    except OSError:
        pass
    finally:
        got.put(None)
        os.close(fd)


def _send(fd: int, blob: bytes) -> None:
    for part in (_HEAD.pack(len(blob)), blob):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


def _recv(fd: int) -> bytearray | None:
    """The next message from a pipe; None at end of file (the other end closed, or died)."""
    head = _exactly(fd, _HEAD.size)
    return None if head is None else _exactly(fd, _HEAD.unpack(head)[0])


def _exactly(fd: int, n: int) -> bytearray | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if not k:
            return None
        got += k
    return buf
