"""Crash-safe file writes for every layer: temp file in the same folder, fsync, rename, 0600."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cohort.errors import OutputError

__all__ = ["discard", "ensure_dir", "try_folder", "write_atomic"]

_TMP = ".tmp"  # the end of write_atomic's temp file names (see discard)


def ensure_dir(path: Path, mode: int = 0o700) -> None:
    """Create `path` and missing parents with `mode` (exactly, whatever the umask)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=mode)
        except FileExistsError:
            continue  # created concurrently: keep whatever mode it got
        os.chmod(d, mode)
    if not path.is_dir():
        raise NotADirectoryError(path)


def write_atomic(path: Path, data: bytes | str | Iterable[str], mode: int = 0o600) -> None:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename.

    `data` may be text pieces (any iterable of str), written as they come: a large file is
    never held whole in memory.

    The file gets `mode` (default 0600) whatever the umask; missing parent folders are
    created 0700. On any failure the previous file (if any) is left untouched and
    `OutputError` is raised.
    """
    path = Path(path)
    pieces = [data] if isinstance(data, str | bytes) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TMP}")
    fd = -1
    try:
        ensure_dir(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
        os.fchmod(fd, mode)
        for piece in pieces:
            view = memoryview(piece.encode("utf-8") if isinstance(piece, str) else piece)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        # also when producing the pieces failed (a bug): no temp file is left behind
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            reason = exc.strerror or exc.__class__.__name__
            raise OutputError(f"cannot write {path}: {reason}") from exc
        raise


def try_folder(path: Path) -> None:
    """Make and remove a file beside `path`, which is to be replaced or removed later: an
    `OutputError` naming the folder when it takes neither (a 0555 folder, a read-only mount).
    Named as `write_atomic`'s temp files are, so `discard(path)` also clears one left behind."""
    probe = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TMP}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise OutputError(f"cannot write {path.parent}: {reason}") from exc


def discard(path: Path) -> None:
    """Remove `path` and any temp file `write_atomic` left of it: a process killed while it
    wrote (e.g. a second writer stopped because the other failed) never cleaned up its own.
    Best effort: it runs while another error is on its way (a file in the folder's place)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    if path.parent.is_dir():
        for left in path.parent.glob(f".{path.name}.*{_TMP}"):
            with contextlib.suppress(OSError):
                left.unlink()


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can fsync a folder)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
