"""Code-system URIs compared as keys (pure): shared by extract, which reads a status from its
own code system's coding, and terminology, which canonicalises systems by mappings/systems.csv
(extract comes first in the pipeline and loads no mapping file)."""

from __future__ import annotations

import functools
from urllib.parse import SplitResult, urlsplit

__all__ = ["system_key", "url_parts"]


def url_parts(s: str) -> SplitResult | None:
    """urlsplit(s), or None where it would refuse the text (a bad IPv6 host) or quietly change
    it (it drops tabs and line breaks, so "http://s\nomed.info/sct" would read as SNOMED)."""
    if "\t" in s or "\n" in s or "\r" in s:
        return None
    try:
        return urlsplit(s)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)  # (a few dozen systems, each asked per mapping row)
def system_key(system: str) -> str:
    """Lookup key: case-insensitive, scheme-, `www.`- and trailing-slash-insensitive; a query
    is kept (CDC's `vaccines.asp?rpt=cvx` is CVX, `?rpt=mvx` is not)."""
    s = system.strip()
    parts = url_parts(s)
    if parts is not None and parts.scheme.lower() in ("http", "https") and parts.netloc:
        host = parts.netloc.lower()
        host = host[4:] if host.startswith("www.") else host
        query = f"?{parts.query}" if parts.query else ""
        return (host + parts.path.rstrip("/") + query).lower()
    return s.rstrip("/").lower()
