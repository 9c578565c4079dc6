"""Every fork of cohort (reading processes, evaluation and report forks) is killed and reaped on
every way out within a deadline: one that is stopped (SIGSTOP, a debugger) or cannot be killed
(stuck in the kernel, D state) never holds the run up with SIGTERM held, and a run started with
SIGCHLD ignored (inherited from its launcher) reaps its forks as any other.

Each test runs under an alarm: one that hangs fails instead of blocking the suite. No test
asserts a duration."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# (`deadline`: test_pool's autouse alarm, imported to guard these tests too)
from test_pool import BIG, Hung, _children, _dump, _echo, _load, deadline, linux  # noqa: F401

import cohort.forks as forks
from cohort.forks import map_chunks
from cohort.pool import ForkPool


@pytest.fixture
def unkillable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """SIGKILL from this process does not take on its forks, as on one stuck in the kernel (D
    state, a hung NFS mount); the short reaping deadline keeps the test quick. Yields the pids
    the run tried to kill; after the test they are killed for real and reaped."""
    real_kill, me, tried = os.kill, os.getpid(), []

    def kill(pid: int, sig: int) -> None:
        if sig == signal.SIGKILL and pid != me and os.getpid() == me:
            tried.append(pid)
            return
        real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(forks, "REAP_SECONDS", 0.3)
    yield tried
    for pid in set(tried):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):  # (one that ended)
            real_kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _state(pid: int) -> str:
    """A process's state letter (R, S, T stopped, Z zombie, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until(check: Any) -> None:
    """Wait until `check()` holds (the alarm guards against forever)."""
    while not check():
        time.sleep(0.01)


def _squares(parts: Iterator[list[int]]) -> Iterator[list[Any]]:
    for part in parts:
        yield [[i * i, os.getpid()] for i in part]


@linux
def test_a_fork_that_cannot_be_killed_is_left_with_a_warning_and_the_error_goes_on(
    unkillable: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """An error in this process while a fork is stuck: map_chunks used to wait for it with a
    blocking waitpid, SIGTERM held, for good."""
    parent = os.getpid()
    r, w = os.pipe()

    def work(parts: Iterator[list[int]]) -> Iterator[list[Any]]:
        for _ in parts:
            if os.getpid() != parent:
                os.write(w, b"1")  # inside a chunk, for good
                time.sleep(600)
            os.read(r, 1)  # (until the fork is)
            raise ValueError("an error here")
        yield []

    try:
        with (
            caplog.at_level(logging.WARNING, "cohort"),
            pytest.raises(ValueError, match="an error here"),
        ):
            map_chunks(work, list(range(10)), 2, _dump, _load)
    finally:
        os.close(r)
        os.close(w)
    assert len(unkillable) == 1
    assert os.waitpid(unkillable[0], os.WNOHANG) == (0, 0)  # left, not reaped
    assert "1 worker process(es) did not end when killed" in caplog.text


@linux
def test_a_fork_stopped_after_handing_its_work_over_is_killed_and_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fork stopped (SIGSTOP, a debugger) between writing its results and exiting: its work
    is whole, and this process used to wait for it to end (a blocking waitpid) for good."""
    parent, real_exit = os.getpid(), os._exit

    def stop_then_exit(code: int) -> None:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGSTOP)
        real_exit(code)

    monkeypatch.setattr(os, "_exit", stop_then_exit)
    before = _children()
    out = map_chunks(_squares, list(range(40)), 2, _dump, _load)
    assert out is not None and [sq for sq, _ in out] == [i * i for i in range(40)]
    assert not _children() - before


@linux
def test_forks_are_reaped_with_sigchld_ignored() -> None:
    """A run started with SIGCHLD ignored (an ignored signal stays ignored across exec): the
    kernel reaps the forks itself, and map_chunks's waitpid failed with ChildProcessError
    (`cohort: internal error (ChildProcessError)`, exit 1, in evaluation)."""
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        before = _children()
        out = map_chunks(_squares, list(range(40)), 3, _dump, _load)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert out is not None and [sq for sq, _ in out] == [i * i for i in range(40)]
    assert not _children() - before


@linux
def test_a_reading_process_that_cannot_be_killed_is_left_with_a_warning(
    unkillable: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the pool returns though a worker does not die, its feeder blocked writing it a
    big task: the worker is left (with a warning), the feeder's join has the same deadline."""
    pool = ForkPool()
    try:
        pool.start(2, _echo)
        pool.submit(0, ("sleep", 600))
        pool.submit(0, ("echo", b"x" * BIG))
        pool.submit(1, ("echo", b"y"))
        assert pool.result(1)[1] == b"y"
        # the other worker ends before closing, not on its end of file inside the short
        # reaping deadline (which a loaded machine could let pass: "2 ... did not end")
        pool.submit(1, ("die", None))
        assert pool.result(1) is None
        other = pool.workers[1].pid
        _until(lambda: _state(other) == "Z")
    finally:
        with caplog.at_level(logging.WARNING, "cohort"):
            pool.close()
    assert len(unkillable) == 2
    assert "1 reading process(es) did not end when killed" in caplog.text


@linux
def test_closing_the_pool_ends_a_stopped_worker() -> None:
    """A worker stopped (SIGSTOP) inside a task, more big tasks queued for it: closing kills
    and reaps it (SIGKILL ends a stopped process) and its feeder ends."""
    before = _children()
    pool = ForkPool()
    try:
        pool.start(2, _echo)
        pool.submit(0, ("sleep", 600))
        pool.submit(0, ("echo", b"x" * BIG))
        pool.submit(0, ("echo", b"y" * BIG))
        pid = pool.workers[0].pid
        os.kill(pid, signal.SIGSTOP)
        _until(lambda: _state(pid) == "T")
        feeders = [w.feeder for w in pool.workers]
    finally:
        pool.close()
    assert not _children() - before
    assert not any(f is not None and f.is_alive() for f in feeders)


def _sigterm_when_waiting() -> None:
    """A thread sends the main thread SIGTERM once it waits on a pipe (a fork's), or on the
    queue a reading process's drain thread fills (a futex)."""
    task = Path(f"/proc/self/task/{os.getpid()}")  # (the main thread's)

    def waiting() -> bool:
        state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        wchan = (task / "wchan").read_text()
        # (0: not shown)
        return state == "S" and ("pipe" in wchan or "futex" in wchan or wchan in ("", "0"))

    def send() -> None:
        _until(waiting)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    threading.Thread(target=send, daemon=True).start()


@linux
@pytest.mark.usefixtures("sigterm_stops")
def test_sigterm_while_waiting_for_a_stopped_reading_process_ends_the_wait() -> None:
    """The pool waits for a stopped worker's result as long as it stays stopped (a task may
    take long); SIGTERM ends that wait, and closing kills and reaps the worker."""
    before = _children()
    pool = ForkPool()
    with pytest.raises(KeyboardInterrupt):
        try:
            pool.start(2, _echo)
            pool.submit(0, ("sleep", 600))
            pid = pool.workers[0].pid
            os.kill(pid, signal.SIGSTOP)
            _until(lambda: _state(pid) == "T")
            _sigterm_when_waiting()
            pool.result(0)
        finally:
            pool.close()
    assert not _children() - before


@linux
@pytest.mark.usefixtures("sigterm_stops")
def test_sigterm_while_waiting_for_a_stopped_fork_ends_map_chunks() -> None:
    """map_chunks waits for a stopped evaluation fork's work as long as it stays stopped;
    SIGTERM ends that wait, and the fork is killed and reaped."""
    parent = os.getpid()
    before = _children()

    def work(parts: Iterator[list[int]]) -> Iterator[list[Any]]:
        for part in parts:
            if os.getpid() != parent:
                os.kill(os.getpid(), signal.SIGSTOP)  # inside its first chunk
            else:
                _until(lambda: any(_state(k) == "T" for k in _children() - before))
            yield [[i] for i in part]
        if os.getpid() == parent:  # (this process's share done: next, it waits for the fork)
            _sigterm_when_waiting()

    with pytest.raises(KeyboardInterrupt):
        map_chunks(work, list(range(10)), 2, _dump, _load)
    assert not _children() - before
