"""ForkPool (the reading processes) and as_child (every fork of cohort): results in order, a
dead or failing worker reads as None, closing kills and reaps every worker whatever it is doing,
and a worker takes SIGTERM / SIGINT / SIGHUP by their default action and dies with its parent.

Each test runs under an alarm: a pool that hangs fails it instead of blocking the suite."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cohort.forks import INHERITED_FDS, as_child, map_chunks
from cohort.pool import ForkPool

BIG = 4 << 20  # bytes: far more than a pipe holds, both ways


class Hung(Exception):
    """A test hung (no OSError, which the code under test may suppress)."""


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    def hung(_signum: int, _frame: object) -> None:
        raise Hung("the test hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def sigint_handled() -> Iterator[None]:
    """SIGINT as Python sets it up in a foreground process: a suite started in the background
    by a shell without job control inherits it ignored, and a worker keeps an ignored signal
    ignored (as nohup's SIGHUP), which is not what these tests are about."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _children() -> set[int]:
    """This process's live children (Linux; a zombie not yet reaped counts; elsewhere none are
    seen)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return set()
    kids: set[int] = set()
    for task in tasks.iterdir():
        try:
            kids.update(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # (a thread that ended since the listing; cohort forks from the main one)
    return kids


linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc, prctl")


def _echo(task: tuple[str, Any]) -> Any:
    what, arg = task
    if what == "die":
        os._exit(9)  # as if killed for memory
    if what == "fail":
        raise ValueError("a patient's data")  # (not sent back)
    if what == "sleep":
        time.sleep(arg)
    if what == "mark":  # (a pipe the test made before the fork: written when reached)
        os.write(arg, b"1")
        return "marked"
    if what == "hup":  # (a Python handler is no thing to send back: named)
        hup = signal.getsignal(signal.SIGHUP)
        return hup if isinstance(hup, signal.Handlers) else "a Python handler"
    if what == "setup":
        got = ctypes.c_int()
        ctypes.CDLL(None).prctl(2, ctypes.byref(got), 0, 0, 0)  # PR_GET_PDEATHSIG
        open_fds = [fd for fd in arg if _is_open(fd)]
        return (
            signal.getsignal(signal.SIGTERM),
            signal.getsignal(signal.SIGINT),
            got.value,
            open_fds,
        )
    return os.getpid(), arg


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@linux
def test_children_passes_over_a_thread_that_ended_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    """_children lists this process's threads, then reads each one's children: a thread that
    ended in between (a feeder of the previous test's pool, ending once its worker was killed
    for real) failed the next test with FileNotFoundError."""
    import threading

    go = threading.Event()
    thread = threading.Thread(target=go.wait)
    thread.start()
    ended = Path(f"/proc/self/task/{thread.native_id}")
    go.set()
    thread.join()
    while ended.exists():  # (joined, the thread may not have quite ended; the alarm guards)
        time.sleep(0.01)
    kids = _children()
    real = Path.iterdir
    tasks = Path("/proc/self/task")
    monkeypatch.setattr(Path, "iterdir", lambda p: iter([*real(p), ended] if p == tasks else real(p)))
    assert _children() == kids


@linux
def test_results_come_back_in_order_with_big_tasks_and_results() -> None:
    before = _children()  # (a test server started by an earlier test is one)
    pool = ForkPool()
    try:
        pool.start(2, _echo)
        assert pool.size == 2
        blobs = [bytes([i]) * BIG for i in range(6)]
        for i, blob in enumerate(blobs):  # (all queued before any result is read)
            pool.submit(i % 2, ("echo", blob))
        got = [pool.result(i % 2) for i in range(6)]
    finally:
        pool.close()
    assert [blob for _, blob in got] == blobs
    assert len({pid for pid, _ in got}) == 2 and os.getpid() not in {pid for pid, _ in got}
    assert not _children() - before


@linux
def test_a_worker_goes_on_to_its_next_task_before_its_big_results_are_taken() -> None:
    """A worker's results are drained as they come: one whose results each outgrow a pipe
    works through every task queued for it while this process takes none of them (it writes
    the store meanwhile), instead of waiting, blocked mid-result, for the first to be taken."""
    r, w = os.pipe()
    pool = ForkPool()
    try:
        pool.start(1, _echo)
        for i in range(3):
            pool.submit(0, ("echo", bytes([i]) * BIG))
        pool.submit(0, ("mark", w))
        ready, _, _ = select.select([r], [], [], 20)  # (only its last task writes here)
        assert ready, "the worker waited for its first result to be taken"
        assert os.read(r, 1) == b"1"
        got = [pool.result(0) for _ in range(4)]
    finally:
        pool.close()
        os.close(r)
        os.close(w)
    assert [blob for _, blob in got[:3]] == [bytes([i]) * BIG for i in range(3)]
    assert got[3] == "marked"


@linux
def test_a_dead_or_failing_worker_reads_as_none_and_closing_kills_the_others() -> None:
    """One worker dies with big tasks still queued for it, another fails, a third is stuck in
    a long task: the first two read as None and closing returns at once, every worker reaped."""
    before = _children()  # (a test server started by an earlier test is one)
    pool = ForkPool()
    try:
        pool.start(3, _echo)
        pool.submit(0, ("die", None))
        pool.submit(0, ("echo", b"x" * BIG))
        pool.submit(0, ("echo", b"y" * BIG))
        pool.submit(1, ("fail", None))
        pool.submit(2, ("sleep", 600))
        pool.submit(2, ("echo", b"z" * BIG))
        assert pool.result(0) is None
        assert pool.result(1) is None
    finally:
        started = time.monotonic()
        pool.close()
    assert time.monotonic() - started < 30  # (not the 600 s task)
    assert not _children() - before


@linux
@pytest.mark.usefixtures("sigterm_stops")
def test_a_worker_takes_signals_by_default_dies_with_this_process_and_closes_inherited() -> None:
    """The CLI's SIGTERM handler (and Python's SIGINT one) raise KeyboardInterrupt: a worker
    must not run them. It gets SIGKILL when this process dies (PR_SET_PDEATHSIG), and holds
    no INHERITED_FDS (the run lock)."""
    r, w = os.pipe()
    INHERITED_FDS.update((r, w))
    try:
        pool = ForkPool()
        try:
            pool.start(1, _echo)
            pool.submit(0, ("setup", [r, w]))
            term, intr, death, held = pool.result(0)
        finally:
            pool.close()
    finally:
        INHERITED_FDS.difference_update((r, w))
        os.close(r)
        os.close(w)
    assert (term, intr, death, held) == (signal.SIG_DFL, signal.SIG_DFL, signal.SIGKILL, [])


@pytest.mark.usefixtures("sigterm_stops")
@pytest.mark.parametrize("ignored", [False, True], ids=["handled", "ignored (nohup)"])
def test_a_worker_takes_sighup_by_default_unless_the_run_ignores_it(ignored: bool) -> None:
    """SIGHUP (a terminal closing) stops a run as SIGTERM does: a worker takes its default
    action, never the CLI's handler; under `nohup` (ignored) the worker ignores it too, and
    outlives the terminal with the run."""
    if ignored:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # (the fixture puts the handler back)
    pool = ForkPool()
    try:
        pool.start(1, _echo)
        pool.submit(0, ("hup", None))
        got = pool.result(0)
    finally:
        pool.close()
    assert got == (signal.SIG_IGN if ignored else signal.SIG_DFL)


@linux
@pytest.mark.usefixtures("sigterm_stops")
def test_an_evaluation_fork_is_set_up_the_same_way() -> None:
    """map_chunks (evaluation, report writing) forks through as_child too."""
    parent = os.getpid()
    took_r, took_w = os.pipe()

    def work(parts: Iterator[list[int]]) -> Iterator[list[Any]]:
        for n, part in enumerate(parts):
            if os.getpid() != parent:
                os.write(took_w, b"1")
                yield [_echo(("setup", []))[:3] for _ in part]
            else:
                if n == 0:  # (the fork has a chunk, however late it starts: not a sleep)
                    os.read(took_r, 1)
                yield [None for _ in part]

    try:
        out = map_chunks(work, list(range(40)), 2, _dump, _load)
    finally:
        os.close(took_r)
        os.close(took_w)
    assert out is not None
    from_fork = {tuple(x) for x in out if x is not None}
    assert from_fork == {(signal.SIG_DFL, signal.SIG_DFL, signal.SIGKILL)}


def _dump(part: list[Any]) -> bytes:
    import pickle

    return pickle.dumps(part)


def _load(blob: bytes) -> list[Any]:
    import pickle

    return pickle.loads(blob)  # noqa: S301


def test_a_fork_whose_parent_died_before_it_was_set_up_ends_at_once() -> None:
    """(The race PR_SET_PDEATHSIG leaves: the parent dying between fork and prctl.)"""
    pid = os.fork()
    if pid == 0:
        try:
            as_child(os.getppid() + 1)  # a parent that is not there any more
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
