"""map_chunks: chunks go to whichever process is free and come back in item order through the
caller's codec; a dead fork is None; an error in this process propagates."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from cohort.forks import map_chunks


def _dump(rows: list[list[int]]) -> bytes:
    return json.dumps(rows).encode()


def _load(blob: bytes) -> list[list[int]]:
    return [list(r) for r in json.loads(blob)]


class _Handshake:
    """One process says it has got somewhere (a fork has taken a chunk, a process has done its
    share); the other waits for that (not for a sleep to be long enough on a loaded machine)."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def tell(self) -> None:
        os.write(self.w, b"1")

    def wait(self) -> None:
        os.read(self.r, 1)

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.mark.parametrize(("nproc", "n"), [(2, 23), (3, 23), (2, 1), (3, 500)])
def test_results_come_back_in_item_order_through_the_codec(nproc: int, n: int) -> None:
    items = list(range(n))

    def square(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        for part in parts:  # each result names the process that computed it
            yield [[i * i, os.getpid()] for i in part]

    out = map_chunks(square, items, nproc, _dump, _load)
    assert out is not None
    assert [sq for sq, _ in out] == [i * i for i in items]  # every item once, in order
    assert len({pid for _, pid in out}) <= nproc


def test_a_slow_process_takes_fewer_chunks() -> None:
    """Chunks are pulled, not dealt: a fork that is slow leaves most of them to this process
    (with fixed slices, this process would have waited for the fork's half)."""
    parent = os.getpid()
    mine_done = _Handshake()

    def work(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        for part in parts:
            if os.getpid() != parent:
                # slow for as long as this process works (a sleep of 0.2 s a chunk is not slow
                # enough once this process is kept off the CPU for 1.4 s)
                mine_done.wait()
            yield [[i, os.getpid()] for i in part]
        if os.getpid() == parent:
            mine_done.tell()

    try:
        out = map_chunks(work, list(range(64)), 2, _dump, _load, per_process=16)
    finally:
        mine_done.close()
    assert out is not None
    assert [i for i, _ in out] == list(range(64))
    mine = sum(1 for _, pid in out if pid == parent)
    assert mine >= 62  # the fork took at most one chunk (2 items) of the 32: this did the rest


def test_a_fork_that_does_most_of_the_work_hands_it_all_back_in_order() -> None:
    """Each chunk a fork finishes is written as it goes and read back in its place."""
    parent = os.getpid()
    fork_done = _Handshake()

    def work(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        for part in parts:
            if os.getpid() == parent:
                # slow until the fork has taken every other chunk (with a sleep of 0.05 s a
                # chunk, the fork fell short of half once it was kept off the CPU for 0.7 s)
                fork_done.wait()
            yield [[i * 3, os.getpid()] for i in part]
        if os.getpid() != parent:
            fork_done.tell()

    try:
        out = map_chunks(work, list(range(200)), 2, _dump, _load, per_process=16)
    finally:
        fork_done.close()
    assert out is not None
    assert [v for v, _ in out] == [i * 3 for i in range(200)]
    # of the 29 chunks (28 of 7 items, the last of 4) this process took at most one
    assert sum(1 for _, pid in out if pid != parent) >= 193


def test_one_connection_per_process() -> None:
    """`fn` is entered once per process, with all the chunks that process takes."""
    entered: list[int] = []

    def work(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        entered.append(os.getpid())  # recorded here only for this process (a fork's copy dies)
        for part in parts:
            yield [[i, len(entered)] for i in part]

    out = map_chunks(work, list(range(100)), 2, _dump, _load)
    assert out is not None
    assert entered == [os.getpid()]
    assert {n for _, n in out} == {1}  # also in the fork: one entry, however many chunks


def test_a_fork_that_dies_gives_none() -> None:
    parent = os.getpid()
    fork_took = _Handshake()

    def dies_in_a_fork(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        for n, part in enumerate(parts):
            if os.getpid() != parent:
                fork_took.tell()
                os._exit(9)  # as if killed for memory
            if n == 0:
                fork_took.wait()  # (so the fork has a chunk to die on, however late it starts)
            yield [[i] for i in part]

    try:
        assert map_chunks(dies_in_a_fork, list(range(10)), 2, _dump, _load) is None
    finally:
        fork_took.close()


def test_an_error_in_this_process_propagates() -> None:
    def fails(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        for _ in parts:
            raise ValueError("boom")
        yield []

    with pytest.raises(ValueError, match="boom"):
        map_chunks(fails, list(range(10)), 2, _dump, _load)


def test_a_result_per_chunk_taken_is_required() -> None:
    parent = os.getpid()
    hold_r, hold_w = os.pipe()  # never written: the fork waits on it until it is killed

    def skips(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        if os.getpid() != parent:
            os.read(hold_r, 1)  # (so this process takes every chunk, whatever the timing)
        for _ in parts:
            pass
        yield []

    try:
        with pytest.raises(ValueError, match="10 chunks taken but 1 results"):
            map_chunks(skips, list(range(10)), 2, _dump, _load)
    finally:
        os.close(hold_r)
        os.close(hold_w)


def test_forks_are_reaped_when_reading_their_results_fails() -> None:
    """An error after the work (here the caller's codec) still kills and reaps every fork."""
    started: list[int] = []
    parent = os.getpid()
    fork_took = _Handshake()

    def work(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        for n, part in enumerate(parts):
            if os.getpid() != parent:
                fork_took.tell()
            elif n == 0:
                fork_took.wait()  # (a fork has results to read, however late it starts)
            yield [[i, os.getpid()] for i in part]

    def bad_load(blob: bytes) -> list[list[int]]:
        started.extend(pid for _, pid in _load(blob))
        raise ValueError("cannot decode")

    try:
        with pytest.raises(ValueError, match="cannot decode"):
            map_chunks(work, list(range(60)), 3, _dump, bad_load)
    finally:
        fork_took.close()
    assert started  # a fork's results were being read when it failed
    for pid in set(started):
        with pytest.raises(ChildProcessError):  # already reaped: no zombie left behind
            os.waitpid(pid, os.WNOHANG)


def test_a_fork_that_cannot_start_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """fork() refused (EAGAIN, ENOMEM) on the second fork: the first is stopped and reaped, and
    the caller falls back to one process."""
    real_fork = os.fork
    pids: list[int] = []

    def fork() -> int:
        if pids:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    def work(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        for part in parts:
            yield [[i] for i in part]

    monkeypatch.setattr(os, "fork", fork)
    assert map_chunks(work, list(range(10)), 3, _dump, _load) is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)


def test_results_files_have_no_name_on_disk(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forks' results (candidates, i.e. PHI) never appear as files: a killed run leaves none."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[list[str]] = []
    parent = os.getpid()

    def work(parts: Iterator[list[int]]) -> Iterator[list[list[int]]]:
        if os.getpid() == parent:  # (entered once the fork and its results file exist)
            seen.append(os.listdir(tmp_path))
        for part in parts:
            yield [[i] for i in part]

    assert map_chunks(work, list(range(40)), 2, _dump, _load) == [[i] for i in range(40)]
    assert seen and all(names == [] for names in seen)
