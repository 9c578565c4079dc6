"""Pull screened patients' records from a FHIR server: `pull()` reads its metadata, then takes
the search plan (search.py) or Bulk (bulk.py) with a `Puller` (puller.py), then sweeps."""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from cohort.errors import ServerError, StoreError

from .client import FhirClient
from .outcome import type_name
from .plan import PULL_TYPES, Capability, PullReport, search_values
from .puller import Items, Params, Puller
from .quirks import load as load_quirks
from .quirks import save as save_quirks
from .settings import ServerSettings

# (Puller, Params, Items and search_values were defined or imported here: still importable)
__all__ = ["Items", "Params", "Puller", "pull", "search_values"]


def pull(
    site_id: str,
    settings: ServerSettings,
    store: Any,
    tokens: dict[str, list[str]],
    *,
    screen_tokens: list[str],
    full_refresh: bool = False,
    log: logging.Logger | None = None,
    client: FhirClient | None = None,
    max_removal: float = 0.5,
) -> PullReport:
    """Fill `store` for one site from a FHIR base URL; marks are advanced only after each step.
    A full refresh then drops what the server no longer has (sweep.py; `max_removal` guards),
    and every completed pull the stored records of types cohort does not read."""
    log = log or logging.getLogger("cohort.fhir")
    client = client or FhirClient(settings)
    p = Puller(site_id, settings, store, tokens, screen_tokens, full_refresh, client, log)
    p.quirks = load_quirks(p)
    t0 = time.monotonic()
    try:
        with p.phase("metadata"):
            cs, _ = client.get_json("metadata", key="metadata")
        if cs.get("resourceType") != "CapabilityStatement":
            kind = type_name(cs.get("resourceType"))
            raise ServerError(f"GET metadata: expected a CapabilityStatement, got {kind}")
        p.cap = Capability.parse(cs)
        # (a server found to refuse combo-code / component-code: by code from the start)
        p.obs_params = ("code",) if p.quirks.on("observation-code-only") else p.cap.code_params()
        if not any(p.cap.has_type(t) for t in PULL_TYPES):
            # pulling nothing would mark every newly screened patient complete
            raise ServerError(
                "GET metadata: the CapabilityStatement lists none of " + ", ".join(PULL_TYPES)
            )
        base_mark = p.mark("base_url")
        if base_mark and not same_server(base_mark, settings.base_url):
            p.full_refresh = True
            p.report.warn("base_url changed since the last pull: full refresh")
        if settings.bulk:
            from .bulk import bulk_pull

            bulk_pull(p)
        else:
            from .search import search_path

            search_path(p)
        from .sweep import drop_unread_types, sweep

        sweep(p, max_removal)
        drop_unread_types(p)
        save_quirks(p)
        p.set_mark("base_url", settings.base_url)
    except Exception:
        with suppress(StoreError):  # (learned whatever failed later; the failure is what counts)
            save_quirks(p)
        raise
    finally:
        p.report.elapsed["total"] = time.monotonic() - t0
        for key, st in client.stats.by_type.items():
            p.report.requests[key] = st.requests
            p.report.bytes[key] = st.bytes
            p.report.retries[key] = st.retries
            p.report.waits[key] = st.waits
        for w in client.warnings:
            p.report.warn(w)
    log.info(
        "fhir %s: %d requests, %d new, %d updated, %d unchanged",
        site_id,
        p.report.total_requests,
        p.report.stored,
        p.report.updated,
        p.report.unchanged,
    )
    return p.report


def same_server(a: str, b: str) -> bool:
    """Whether two base URLs name the same server and path: the scheme and host are
    case-insensitive (RFC 3986), so `https://FHIR.example.org/r4` after
    `https://fhir.example.org/r4` is no new server (QA: it forced a full refresh, with its
    removals); the path is not."""
    x, y = urlsplit(a.rstrip("/")), urlsplit(b.rstrip("/"))
    return (x.scheme.lower(), x.netloc.lower(), x.path, x.query) == (
        y.scheme.lower(),
        y.netloc.lower(),
        y.path,
        y.query,
    )
