"""The two locks a run holds: the store's (`<state>/run.lock`) and the output folder's
(`OUT/.outputs.lock`).

The store's lock keeps two runs of one configuration (one store) apart; it did not keep apart
two configurations with stores of their own writing the same OUT, whose lists and run.json then
ended up mixed, the `change` column computed against the other's lists. A run therefore also
holds OUT's lock, from reading the previous outputs to writing run.json.

Both are `flock`s on a file opened for the run: the lock dies with its process (a file a killed
run left behind blocks nothing), forked workers close their copy at once (`INHERITED_FDS`: one
that outlived a killed parent would keep the lock), and the file holds the pid of the run.

OUT's lock is also taken by the other commands using OUT: `cohort mappings coverage` to write
OUT/coverage.csv (exclusive, as a run), `cohort explain` and `cohort diff` to read (shared:
`out_read_lock`): a run renames the lists one after the other and run.json last, so a reader
could take one site's new list with another's old one, or last night's run.json (its as-of
date) with tonight's store. A reader exits 10 at once while a run holds the lock (for minutes
to hours); a run (or coverage's write) that finds only readers holding it waits for them
(`READER_WAIT`): a coordinator's `explain` never fails the nightly run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cohort.atomic import ensure_dir
from cohort.errors import CohortError, LockedError, OutputError, StoreError
from cohort.forks import INHERITED_FDS

__all__ = ["OUT_LOCK", "READER_WAIT", "out_lock", "out_read_lock", "run_lock", "why"]

OUT_LOCK = ".outputs.lock"  # a dot file: no site folder, no output, hidden from a listing
# seconds a run waits for readers of OUT (`explain`, `diff`: seconds each) to let go of its lock;
# one held longer (a reader stopped with Ctrl-Z) fails the run with exit 10 naming it
READER_WAIT = 60.0
_POLL = 0.05


def why(exc: OSError) -> str:
    """An OSError's reason: its strerror ("Permission denied"), else "not a folder" for the
    NotADirectoryError `ensure_dir` raises (with no strerror), else the error's type."""
    if exc.strerror:
        return exc.strerror
    return "not a folder" if isinstance(exc, NotADirectoryError) else type(exc).__name__


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock so two runs of the same configuration (store) never overlap.

    The folder is the store's: one that cannot be made or written is a store error (exit 8)."""
    path = folder / "run.lock"
    try:
        ensure_dir(folder)  # every missing folder 0700, whatever the umask
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {why(exc)}") from None
    held = f"another run holds {path}; not starting a second one"
    with _locked(path, lambda reason: StoreError(f"cannot open {path}: {reason}"), held, held):
        yield


@contextmanager
def out_lock(out: Path, writing: Path | None = None) -> Iterator[None]:
    """An exclusive lock so two runs never read or write the same output folder at once,
    whatever their configurations; with `writing`, for a command writing that one file into
    OUT (coverage.csv), whose refusal names it. OUT exists (the caller made it). A lock file
    that cannot be made (a read-only OUT) is an output error (exit 9), nothing in OUT touched."""
    path = out / OUT_LOCK
    if writing is None:  # a run
        held = f"another run holds {path} (it is writing {out}); not starting a second one"
        waited = "not starting"
    else:
        waited = f"not writing {writing}: try again once it has finished"
        held = f"a run holds {path} (it is writing {out}); {waited}"
    with _locked(
        path,
        lambda reason: OutputError(f"cannot write {path}: {reason}"),
        held,
        f"a reader (cohort explain or diff) has held {path} for over {READER_WAIT:g} s; {waited}",
    ):
        yield


@contextmanager
def out_read_lock(out: Path) -> Iterator[None]:
    """A shared lock for a command that reads OUT (`explain`, `diff`): never while a run
    replaces what it reads (exit 10 at once), any number of readers at a time. OUT without a
    lock file (no run wrote it since runs lock it, a copy) or whose lock file cannot be opened
    is read as it is: no run is writing the first (a run makes it before anything else), and a
    reader makes no file in a folder it only reads."""
    path = out / OUT_LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        fd = -1
    if fd < 0:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"a run holds {path} (it is writing {out}); not reading {out} half-written: "
                "try again once it has finished"
            ) from None
        INHERITED_FDS.add(fd)
        yield
    finally:
        INHERITED_FDS.discard(fd)
        os.close(fd)


@contextmanager
def _locked(
    path: Path, cannot: Callable[[str], CohortError], held: str, waited: str
) -> Iterator[None]:
    """flock `path` (made 0600) for the block; `cannot(reason)` when it cannot be opened;
    exit 10 with `held` when another process holds it, with `waited` when readers held it
    (shared) for over READER_WAIT seconds."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise cannot(why(exc)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _wait_for_readers(fd, held, waited)
        with contextlib.suppress(OSError):  # (one a killed run left with another mode)
            os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        INHERITED_FDS.add(fd)
        yield
    finally:
        INHERITED_FDS.discard(fd)
        os.close(fd)


def _wait_for_readers(fd: int, held: str, waited: str) -> None:
    """Take the lock on `fd` once the readers holding it (shared) let go, READER_WAIT seconds
    at most; exit 10 at once when a writer holds it (a shared lock is then refused too)."""
    deadline = time.monotonic() + READER_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(held) from None
        # (let go before trying for it exclusively: flock converts a lock by dropping it first)
        fcntl.flock(fd, fcntl.LOCK_UN)
        if time.monotonic() >= deadline:
            raise LockedError(waited)
        time.sleep(_POLL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            continue
