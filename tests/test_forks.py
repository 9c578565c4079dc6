"""map_slices: forked slices come back in order through the caller's codec; a dead fork is None."""

from __future__ import annotations

import json
import os

import pytest

from cohort.forks import map_slices


def _dump(rows: list[int]) -> bytes:
    return json.dumps(rows).encode()


def _load(blob: bytes) -> list[int]:
    return list(json.loads(blob))


@pytest.mark.parametrize("nproc", [2, 3])
def test_slices_come_back_in_slice_order_through_the_codec(nproc: int) -> None:
    items = list(range(23))
    parent = os.getpid()
    seen: list[int] = []

    def square(part: list[int]) -> list[int]:
        if os.getpid() == parent:
            seen.extend(part)  # only this process's own slice is recorded here
        return [i * i for i in part]

    out = map_slices(square, items, nproc, _dump, _load)
    # slice k is items[k::nproc]; slice 0 ran here, the others in forks, then in slice order
    assert out == [i * i for k in range(nproc) for i in items[k::nproc]]
    assert seen == items[0::nproc]


def test_a_fork_that_dies_gives_none() -> None:
    parent = os.getpid()

    def dies_in_a_fork(part: list[int]) -> list[int]:
        if os.getpid() != parent:
            os._exit(9)  # as if killed for memory
        return part

    assert map_slices(dies_in_a_fork, list(range(10)), 2, _dump, _load) is None


def test_an_error_in_this_process_slice_propagates() -> None:
    def fails(part: list[int]) -> list[int]:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        map_slices(fails, list(range(10)), 2, _dump, _load)
