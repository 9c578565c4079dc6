"""cohort's own code as a digest: a file read's stamp holds it, run.json names it."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from cohort import __version__


@lru_cache(maxsize=1)
def code_digest() -> str:
    """This cohort's code (every module's bytes), not only its version number: a changed
    reader must read again even before a release, and an upgrade is told from a rerun."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def code_version() -> str:
    """run.json's `code_version`: "sha256:" and the digest's first 12 hex digits."""
    return "sha256:" + code_digest()[:12]
