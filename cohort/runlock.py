"""The two locks a run holds: the store's (`<state>/run.lock`) and the output folder's
(`OUT/.outputs.lock`).

The store's lock keeps two runs of one configuration (one store) apart; it did not keep apart
two configurations with stores of their own writing the same OUT, whose lists and run.json then
ended up mixed, the `change` column computed against the other's lists. A run therefore also
holds OUT's lock, from reading the previous outputs to writing run.json.

Both are `flock`s on a file opened for the run: the lock dies with its process (a file a killed
run left behind blocks nothing), forked workers close their copy at once (`INHERITED_FDS`: one
that outlived a killed parent would keep the lock), and the file holds the pid of the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cohort.atomic import ensure_dir
from cohort.errors import CohortError, LockedError, OutputError, StoreError
from cohort.forks import INHERITED_FDS

__all__ = ["OUT_LOCK", "out_lock", "run_lock", "why"]

OUT_LOCK = ".outputs.lock"  # a dot file: no site folder, no output, hidden from a listing


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
    with _locked(path, lambda reason: StoreError(f"cannot open {path}: {reason}"), ""):
        yield


@contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """An exclusive lock so two runs never read or write the same output folder at once,
    whatever their configurations. OUT exists (the caller made it). A lock file that cannot
    be made (a read-only OUT) is an output error (exit 9), nothing in OUT touched."""
    path = out / OUT_LOCK
    with _locked(
        path,
        lambda reason: OutputError(f"cannot write {path}: {reason}"),
        f" (it is writing {out})",
    ):
        yield


@contextmanager
def _locked(path: Path, cannot: Callable[[str], CohortError], doing: str) -> Iterator[None]:
    """flock `path` (made 0600) for the block; `cannot(reason)` when it cannot be opened;
    exit 10 naming it (and `doing`) when another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise cannot(why(exc)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"another run holds {path}{doing}; not starting a second one"
            ) from None
        with contextlib.suppress(OSError):  # (one a killed run left with another mode)
            os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        INHERITED_FDS.add(fd)
        yield
    finally:
        INHERITED_FDS.discard(fd)
        os.close(fd)
