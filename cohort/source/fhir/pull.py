"""Incremental search-based pull of screened patients' records from a FHIR server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from cohort.errors import ServerError

from .client import FhirClient, server_time
from .plan import (
    BY_CODE,
    DEFAULT_CATEGORIES,
    MED_TYPES,
    PULL_TYPES,
    Capability,
    PullReport,
    chunk_values,
    minus_overlap,
    patient_of,
    ref_id,
    search_values,
    token_hash,
)
from .settings import ServerSettings

Params = list[tuple[str, str]]
Items = list[tuple[dict, str]]

FIRST_BATCH = 100  # ids per search while a type's records per patient are not yet known
PAGE_FILL = 0.9  # later searches aim at this share of a page (a spill costs one more request)


class Puller:
    """State of one pull: client, capability, marks, report; the bulk path reuses it."""

    def __init__(
        self,
        site: str,
        settings: ServerSettings,
        store: Any,
        tokens: dict[str, list[str]],
        screen_tokens: list[str],
        full_refresh: bool,
        client: FhirClient,
        log: logging.Logger,
    ) -> None:
        self.site, self.s, self.store, self.client, self.log = site, settings, store, client, log
        self.tokens = {t: search_values(v, settings.match_system) for t, v in tokens.items()}
        self.screen_tokens = search_values(screen_tokens, settings.match_system)
        self.screen_codes = {t.rpartition("|")[2] for t in screen_tokens}
        self.full_refresh = full_refresh
        self.report = PullReport(site=site, base_url=settings.base_url, full_refresh=full_refresh)
        self.cap = Capability()
        self.obs_category: list[str] = list(settings.observation_category)
        self.no_include: set[str] = set()
        self.no_since: set[str] = set()
        # lowered (halved) when a server answers 414/431 to a long query
        self.url_limit = settings.max_url_length

    # -- marks -------------------------------------------------------------------------------
    def mark(self, key: str) -> str | None:
        if self.full_refresh:
            return None
        value = self.store.get_mark(self.site, f"fhir:{key}")
        return str(value) if value else None

    def set_mark(self, key: str, value: str) -> None:
        self.store.set_mark(self.site, f"fhir:{key}", value)
        if key not in ("screened", "complete"):  # patient id lists stay out of run.json
            self.report.marks[key] = value

    def id_set(self, key: str) -> set[str]:
        raw = self.mark(key)
        return set(json.loads(raw)) if raw else set()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0, before = time.monotonic(), self.client.stats.total("requests")
        yield
        took = time.monotonic() - t0
        self.report.elapsed[name] = self.report.elapsed.get(name, 0.0) + took
        n = int(self.client.stats.total("requests") - before)
        self.log.info("fhir %s: %s: %d requests in %.1fs", self.site, name, n, took)

    def put(self, items: Items) -> None:
        if not items:
            return
        st = self.store.put_resources(self.site, items, source=self.s.base_url)
        self.report.stored += st.inserted
        self.report.updated += st.updated
        self.report.unchanged += st.unchanged

    # -- searching ---------------------------------------------------------------------------
    def search_all(self, rtype: str, params: Params) -> tuple[Items, str | None]:
        """Every page of one search, with vendor fallbacks; (items, earliest server time)."""
        while True:
            try:
                return self._search(rtype, params)
            except ServerError as e:
                fixed = self._fallback(rtype, params, e)
                if fixed is None:
                    raise
                params = fixed

    def _fallback(self, rtype: str, params: Params, e: ServerError) -> Params | None:
        status, text = getattr(e, "status", 0), str(getattr(e, "outcome", "")).lower()
        names = {k for k, _ in params}
        if status not in (400, 403, 422):
            return None
        if rtype == "Observation" and "category" in text and "category" not in names:
            self.obs_category = self.obs_category or list(DEFAULT_CATEGORIES)
            self.report.warn(
                "Observation: server requires 'category'; searched with category="
                + ",".join(self.obs_category)
            )
            return [*params, ("category", ",".join(self.obs_category))]
        if "_lastUpdated" in names and ("_lastupdated" in text or status == 400):
            self.no_since.add(rtype)
            self.report.warn(f"{rtype}: server rejected _lastUpdated; full pull of that type")
            return [(k, v) for k, v in params if k != "_lastUpdated"]
        if "_include" in names:
            self.no_include.add(rtype)
            self.report.warn(f"{rtype}: server rejected _include; Medications read separately")
            return [(k, v) for k, v in params if k != "_include"]
        return None

    def _search(self, rtype: str, params: Params) -> tuple[Items, str | None]:
        items: Items = []
        clock: str | None = None
        shape = "&".join(f"{k}=.." for k in dict.fromkeys(k for k, _ in params))
        for page, bundle, r in self.client.search(rtype, params):
            if page == 1:
                clock = server_time(bundle, r)
            origin = f"GET {rtype}?{shape}#page{page}"
            for entry in bundle.get("entry") or []:
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict) and res.get("resourceType") not in (
                    None,
                    "OperationOutcome",
                ):
                    items.append((res, origin))
        return items, clock

    def run_searches(self, rtype: str, queries: list[Params]) -> tuple[int, str | None]:
        """Run queries (concurrently, politely), store results in order; (resources, min clock)."""
        count, clocks = 0, []
        with ThreadPoolExecutor(max_workers=self.s.concurrency) as pool:
            for items, clock in pool.map(lambda q: self.search_all(rtype, q), queries):
                self.put(items)
                count += len(items)
                if clock:
                    clocks.append(clock)
                if rtype in MED_TYPES and rtype in self.no_include:
                    self.fetch_medications([res for res, _ in items])
        return count, min(clocks) if clocks else None

    def run_split(self, rtype: str, build: Callable[[], list[Params]]) -> tuple[int, str | None]:
        """run_searches, re-splitting with a halved URL limit when the server refuses a long URL
        (414 URI Too Long / 431): long id and code lists are the norm, limits differ per server."""
        while True:
            qs = build()
            if not qs:
                return 0, None
            try:
                return self.run_searches(rtype, qs)
            except ServerError as e:
                if not self.shorter_urls(e, rtype):
                    raise

    def shorter_urls(self, e: ServerError, rtype: str) -> bool:
        """On 414/431 halve the URL limit (down to ~400 characters); False: not that error."""
        if getattr(e, "status", 0) not in (414, 431) or self.url_limit < 800:
            return False
        self.url_limit //= 2
        self.report.warn(
            f"{rtype}: server refused a long URL; URL limit lowered to {self.url_limit}"
        )
        return True

    def fetch_medications(self, records: list[dict]) -> None:
        """Read referenced Medications not yet stored (when _include is unsupported)."""
        ids = sorted(
            {
                mid
                for res in records
                if (
                    mid := ref_id(
                        (res.get("medicationReference") or {}).get("reference"), "Medication"
                    )
                )
                and self.store.get(self.site, "Medication", mid) is None
            }
        )
        if not ids:
            return
        if self.cap.has_param("Medication", "_id"):
            prefix = len(self.s.base_url) + 40
            for group in chunk_values(prefix, ids, self.url_limit):
                items, _ = self.search_all("Medication", [("_id", ",".join(group))])
                self.put(items)
            return
        for mid in ids:
            body, _ = self.client.get_json(f"Medication/{mid}", key="Medication")
            self.put([(body, "GET Medication/{id}")])

    # -- the plan ----------------------------------------------------------------------------
    def pull_ids(self, rtype: str, ids: list[str], since: str | None) -> tuple[int, str | None]:
        """Search `rtype` for patients `ids`: first `concurrency` searches of FIRST_BATCH ids,
        then the rest in searches sized by what a patient yielded so that one fills about a
        page. Types with few records per patient (Immunization, Procedure) thus need a few
        searches where a fixed batch needs one per 100 patients; a page-filling type keeps
        FIRST_BATCH. Never more than `patient_batch` ids (what the server tolerates)."""
        first = min(self.s.patient_batch, FIRST_BATCH)
        head, rest = ids[: first * self.s.concurrency], ids[first * self.s.concurrency :]
        n, clock = self.run_split(rtype, lambda: self.queries(rtype, head, since, first))
        if rest:
            per_patient = n / len(head)
            size = self.s.patient_batch
            if per_patient > 0:
                size = int(PAGE_FILL * self.s.page_size / per_patient)
                size = max(first, min(self.s.patient_batch, size))
            m, later = self.run_split(rtype, lambda: self.queries(rtype, rest, since, size))
            n, clock = n + m, min((c for c in (clock, later) if c), default=None)
        return n, clock

    def queries(self, rtype: str, ids: list[str], since: str | None, batch: int) -> list[Params]:
        """Requests for `rtype` over patients `ids` (`batch` per search, URL-length split)."""
        limit = self.url_limit
        base_len = len(self.s.base_url) + len(rtype) + 60
        codes = self.tokens.get(rtype, []) if rtype in BY_CODE else []
        id_room = limit - base_len if not codes else (limit - base_len) // 2
        out: list[Params] = []
        # each URL filled with ids up to the length limit or `batch`, whichever comes first:
        # slicing by batch and then by length left a short remainder request per batch
        # whenever long ids (UUIDs) did not fit a whole batch into one URL
        for group in chunk_values(base_len, ids, base_len + id_room, batch):
            fixed: Params = [("_id" if rtype == "Patient" else "patient", ",".join(group))]
            if rtype == "Observation" and self.obs_category:
                fixed.append(("category", ",".join(self.obs_category)))
            if rtype in MED_TYPES and rtype not in self.no_include:
                fixed.append(("_include", f"{rtype}:medication"))
            if since:
                fixed.append(("_lastUpdated", f"gt{since}"))
            if not codes:
                out.append(fixed)
                continue
            used = base_len + sum(len(k) + len(v) + 2 for k, v in fixed)
            for cg in chunk_values(used, codes, limit):
                out.append([*fixed, ("code", ",".join(cg))])
        return out

    def since_for(self, rtype: str, mark: str | None) -> str | None:
        if not mark:
            return None
        if not self.cap.has_param(rtype, "_lastUpdated") or rtype in self.no_since:
            self.report.warn(
                f"{rtype}: server lacks _lastUpdated; known patients re-pulled in full"
            )
            return None
        return minus_overlap(mark, timedelta(seconds=self.s.sync_overlap))

    def unchanged_since(self, rtype: str, since: str) -> tuple[bool, str | None]:
        """One cheap server-wide count of `rtype` changed since the mark (mapped codes only);
        (True, server clock) when nothing changed, so the batched patient searches are skipped.
        Any doubt (no `total`, an error, a change anywhere) -> (False, None): search as usual."""
        codes = self.tokens.get(rtype, []) if rtype in BY_CODE else []
        base: Params = [("_lastUpdated", f"gt{since}"), ("_summary", "count")]
        if rtype == "Observation" and self.obs_category:
            base.append(("category", ",".join(self.obs_category)))
        prefix = len(self.s.base_url) + len(rtype) + 80
        groups: list[list[str]] = chunk_values(prefix, codes, self.url_limit) if codes else [[]]
        clock: str | None = None
        for group in groups:
            params = base + ([("code", ",".join(group))] if group else [])
            try:
                body, r = self.client.get_json(
                    f"{rtype}?{urlencode(params, safe=',|:/')}", key=rtype
                )
            except ServerError:
                return False, None
            total = body.get("total")
            if not isinstance(total, int) or isinstance(total, bool) or total != 0:
                return False, None
            clock = clock or server_time(body, r)
        return clock is not None, clock

    def screen(self) -> set[str]:
        """Patients with a screening Condition (incrementally: only changed ones since the mark)."""
        mark = self.mark("screen")
        since = self.since_for("Condition", mark.split("|")[0] if mark else None)
        if mark and mark.split("|")[1:] != [token_hash(self.screen_tokens)]:
            since = None
        prefix = len(self.s.base_url) + 100
        found: set[str] = set()
        clocks: list[str] = []
        groups = chunk_values(prefix, sorted(self.screen_tokens), self.url_limit)
        while groups:
            params: Params = [("code", ",".join(groups[0]))]
            if since:
                params.append(("_lastUpdated", f"gt{since}"))
            try:
                items, clock = self.search_all("Condition", params)
            except ServerError as e:
                if not self.shorter_urls(e, "Condition"):
                    raise
                rest = [t for g in groups for t in g]
                groups = chunk_values(prefix, rest, self.url_limit)
                continue
            groups = groups[1:]
            self.put(items)
            found |= {pid for res, _ in items if (pid := patient_of(res))}
            if clock:
                clocks.append(clock)
        screened = found | self.id_set("screened")
        self.set_mark("screened", json.dumps(sorted(screened)))
        if clocks:
            self.set_mark("screen", f"{min(clocks)}|{token_hash(self.screen_tokens)}")
        return screened

    def pull_types(self, new: list[str], known: list[str]) -> None:
        for rtype in PULL_TYPES:
            if not self.cap.has_type(rtype):
                self.report.warn(f"{rtype}: not in the server's CapabilityStatement; not pulled")
                continue
            if rtype in BY_CODE and not self.tokens.get(rtype):
                continue
            raw = self.mark(rtype)
            h = token_hash(self.tokens.get(rtype, [])) if rtype in BY_CODE else "-"
            mark = raw.split("|")[0] if raw and raw.split("|")[1:] == [h] else None
            if rtype in MED_TYPES and not self.cap.has_include(rtype, f"{rtype}:medication"):
                self.no_include.add(rtype)
                self.report.warn(f"{rtype}: no _include of Medication; read separately")
            with self.phase(rtype):
                since = self.since_for(rtype, mark) if mark else None
                quiet, quiet_clock = (
                    self.unchanged_since(rtype, since) if since and known else (False, None)
                )
                n, clock = self.pull_ids(rtype, new, None)
                if not quiet:
                    m, changed_clock = self.pull_ids(rtype, known, since)
                    n, clock = n + m, min((c for c in (clock, changed_clock) if c), default=None)
                # the mark may only move to a clock read before any search of this pull
                clock = min((c for c in (clock, quiet_clock) if c), default=None)
            self.log.info("fhir %s: %s: %d resources", self.site, rtype, n)
            if clock:
                self.set_mark(rtype, f"{clock}|{h}")


def search_path(p: Puller) -> None:
    """Screen, then pull every type for new patients in full and known ones incrementally."""
    with p.phase("screen"):
        screened = p.screen()
    complete = p.id_set("complete")
    known = sorted(screened & complete)
    new = sorted(screened - complete)
    p.report.incremental = bool(known)
    p.report.patients_screened, p.report.patients_new = len(screened), len(new)
    p.log.info("fhir %s: screened %d patients (%d new)", p.site, len(screened), len(new))
    p.pull_types(new, known)
    p.set_mark("complete", json.dumps(sorted(screened)))


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
) -> PullReport:
    """Fill `store` for one site from a FHIR base URL; marks are advanced only after each step."""
    log = log or logging.getLogger("cohort.fhir")
    client = client or FhirClient(settings)
    p = Puller(site_id, settings, store, tokens, screen_tokens, full_refresh, client, log)
    t0 = time.monotonic()
    try:
        with p.phase("metadata"):
            cs, _ = client.get_json("metadata", key="metadata")
        p.cap = Capability.parse(cs)
        base_mark = p.mark("base_url")
        if base_mark and base_mark != settings.base_url:
            p.full_refresh = True
            p.report.warn("base_url changed since the last pull: full refresh")
        if settings.bulk:
            from .bulk import bulk_pull

            bulk_pull(p)
        else:
            search_path(p)
        p.set_mark("base_url", settings.base_url)
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
