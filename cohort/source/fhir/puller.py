"""The `Puller`: the state of one pull that the search plan (search.py) and Bulk (bulk.py)
share: client, capability, marks, store writes, searches run in parallel, fallbacks learned."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from cohort.errors import ServerError
from cohort.store.schema import FHIR_MARK

from .answer import earliest
from .client import FhirClient
from .medications import fetch_medications, medications_of
from .outcome import keyed, type_name
from .paging import search_all
from .plan import MED_TYPES, Capability, PullReport, search_values, token_pairs
from .quirks import Quirks
from .settings import ServerSettings

Params = list[tuple[str, str]]
Items = list[tuple[dict, str]]


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
        # the (system or None: any, code) pairs those searches ask for (a Bulk export's filter)
        self.pairs = {t: set(token_pairs(v, settings.match_system)) for t, v in tokens.items()}
        self.screen_tokens = search_values(screen_tokens, settings.match_system)
        self.screen_codes = {t.rpartition("|")[2] for t in screen_tokens}
        self.full_refresh = full_refresh
        self.report = PullReport(site=site, base_url=settings.base_url, full_refresh=full_refresh)
        self.cap = Capability()
        self.obs_category: list[str] = list(settings.observation_category)
        self.no_include: set[str] = set()
        self.no_since: set[str] = set()
        self.refused: dict[str, ServerError] = {}  # types whose search answered 403
        self.unsupported: dict[str, ServerError] = {}  # ... 404/405/501 (unsupported.py)
        self.answered: set[str] = set()  # types a search's first page answered tonight
        self.category_each = False  # the server takes one Observation category per search
        self.patient_each = False  # the server takes one patient per search
        # types whose search was read twice alike short of its Bundle.total, no record twice:
        # the server's totals of the type count what it never returns (deleted or _include'd
        # records, an estimate), so its later shortfalls by no more are taken without a
        # second read (per type, not per server: a count may be wrong in one table or index
        # only, and another type keeps its re-read of pages moved by a deletion; paging.py)
        self.overcounts: dict[str, int] = {}  # type -> the most a total overshot (read alike)
        self.lock = threading.Lock()  # (searches run in threads: `concurrency`)
        # what an Observation search by mapped code uses (Capability.code_params); back to
        # ("code",) when the server refuses combo-code or component-code
        self.obs_params: tuple[str, ...] = ("code",)
        # while the known patients' searches of a type run: the _lastUpdated of its searches by
        # each code parameter (codeparams.py: a fallback to code takes code's)
        self.since_by: dict[str, str | None] | None = None
        # types of records whose referenced Medication the server refused (403): their marks
        # (and the bulk mark) stay, so the records are read again, Medications with them
        self.meds_unread: set[str] = set()
        # ids of the Medications stored by this pull (a full refresh reads each one once)
        self.meds_put: set[str] = set()
        # lowered (halved) when a server answers 414/431 to a long query
        self.url_limit = settings.max_url_length
        # full refresh: the (type, id) fetched, and the types fetched in full (sweep.py)
        self.seen: set[tuple[str, str]] = set()
        self.swept: set[str] = set()
        # types pulled in full tonight because what their mark was searched with changed
        # (mapped codes, categories): swept as by a full refresh (sweep.py)
        self.resweep: set[str] = set()
        # tonight's answer lacks records (a Bulk export's error files, a file cut short or with
        # a damaged line): nothing of the site is removed as gone from the server (sweep.py)
        self.partial = False
        # records of each type this pull inserted: the sweep's guard weighs what it no longer
        # found against the records stored before the pull, not also these
        self.added: dict[str, int] = {}
        # the server's quirks learned on earlier nights (quirks.py; pull() loads them)
        self.quirks = Quirks(None, 0.0, reprobe=True)

    # -- marks -------------------------------------------------------------------------------
    def mark(self, key: str) -> str | None:
        if self.full_refresh:
            return None
        value = self.store.get_mark(self.site, FHIR_MARK + key)
        return str(value) if value else None

    def set_mark(self, key: str, value: str) -> None:
        self.store.set_mark(self.site, FHIR_MARK + key, value)
        if key not in ("screened", "complete"):  # patient id lists stay out of run.json
            self.report.marks[key] = value

    def clear_mark(self, key: str) -> None:
        if self.store.get_mark(self.site, FHIR_MARK + key):
            self.store.set_mark(self.site, FHIR_MARK + key, "")

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
        kept = [(r, o) for r, o in items if keyed(r)]
        if len(kept) < len(items):
            # nothing can be stored, updated or referenced without one: said, and left out
            # (the store refused the whole batch: exit 8, "local store error", every night)
            for r, _ in items:
                rt = r.get("resourceType")
                if not keyed(r):
                    self.report.warn(f"{type_name(rt)}: record(s) without an id left out")
            items = kept
        if not items:
            return
        self.meds_put.update(r["id"] for r, _ in items if r.get("resourceType") == "Medication")
        lift: set[tuple[str, str]] = set()
        if self.full_refresh or self.resweep:
            keys = {(r["resourceType"], r["id"]) for r, _ in items}
            if self.full_refresh:  # the server's copy, whatever the stored version says
                lift = keys - self.seen  # (a restore, a migration's new version counters)
            self.seen |= keys
        st = self.store.put_resources(self.site, items, source=self.s.base_url, lift=lift)
        self.report.stored += st.inserted
        self.report.updated += st.updated
        self.report.unchanged += st.unchanged
        for rtype, n in st.new.items():
            self.added[rtype] = self.added.get(rtype, 0) + n

    # -- searching ---------------------------------------------------------------------------
    def code_params(self, rtype: str) -> tuple[str, ...]:
        """The parameters `rtype`'s searches by mapped code use, each a search of its own."""
        return self.obs_params if rtype == "Observation" else ("code",)

    def search_all(self, rtype: str, params: Params) -> tuple[Items, str | None]:
        """Every page of one search, with vendor fallbacks; (items, earliest server time)."""
        return search_all(self, rtype, params)

    def _without_include(self, rtype: str, params: Params, why: str) -> Params:
        self.no_include.add(rtype)
        self.report.warn(f"{rtype}: server {why}; Medications read separately")
        return [(k, v) for k, v in params if k != "_include"]

    def run_searches(self, rtype: str, queries: list[Params]) -> tuple[int, str | None]:
        """Run queries (concurrently, politely), store results in order; (resources, min clock)."""
        count, clocks = 0, []
        with ThreadPoolExecutor(max_workers=self.s.concurrency) as pool:
            for items, clock in pool.map(lambda q: self.search_all(rtype, q), queries):
                self.put(items)
                count += len(items)
                if clock:
                    clocks.append(clock)
                if rtype in MED_TYPES:
                    # also where _include was accepted: a server may leave Medications out
                    self.fetch_medications(*medications_of(items))
        return count, earliest(clocks)

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

    def fetch_medications(self, records: list[dict], carried: set[str] | None = None) -> None:
        """Read referenced Medications neither in `carried` nor stored (medications.py)."""
        fetch_medications(self, records, carried or set())
