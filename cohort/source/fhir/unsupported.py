"""Searches and reads a server does not support (404, 405, 501): a type skipped, said."""

from __future__ import annotations

from cohort.errors import ServerError

# what a server answers a type it has no endpoint for: HAPI FHIR 404 "Unknown resource type",
# others 405 Method Not Allowed or 501 Not Implemented
UNSUPPORTED = frozenset({404, 405, 501})


def unsupported(e: ServerError, rtype: str) -> bool:
    """Whether `e` is the server saying it has no search of `rtype`: 404, 405 or 501 to the
    first page of a search of that type (paging.search_pages names the type; a later page's
    404 is paging state that expired, searched again by paging.search_all), while no search of
    the type has been answered tonight (then it is a server fault: a search restarted from its
    first page, a later batch's)."""
    return (
        getattr(e, "status", 0) in UNSUPPORTED
        and getattr(e, "page", 1) == 1
        and getattr(e, "rtype", None) == rtype
        and not getattr(e, "answered", False)
    )


def said(e: ServerError, rtype: str) -> str:
    """A run.json warning's start for `rtype`'s unsupported search (the status, never the URL:
    its query may carry patient ids)."""
    return f"{rtype}: the server does not support its search (HTTP {getattr(e, 'status', 0)})"
