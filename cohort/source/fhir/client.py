"""HTTP client for one FHIR server: retries with backoff, next-link paging, accounting."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import orjson
import requests

from cohort.errors import AuthError, ServerError
from cohort.source.structure import loads

from .answer import as_utf8, content_length, reason_phrase, retry_after
from .auth import Auth, TokenEndpointDown, make_auth
from .links import origin, safe_path, under_base, url_host
from .outcome import operation_outcome_codes, operation_outcome_text, outcome_issues, type_name
from .settings import ServerSettings
from .tls import tls_refused

log = logging.getLogger("cohort.fhir")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# a connection lost or a body cut or garbled in transit: worth another attempt
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
MAX_PAGES = 100_000
# pages in a row with no entry, each with a next link, before a search is taken for endless:
# Epic filters a page after paging it (a few come empty), a buggy server links on for ever
MAX_EMPTY = 20
FHIR_JSON = "application/fhir+json"
_NOT_JSON = object()
REBASED = "the server's links name another host"
ESCAPED = "the server's next links escape '&' as '&amp;'; read as '&'"


@dataclass
class TypeStats:
    requests: int = 0
    bytes: int = 0
    retries: int = 0
    waits: float = 0.0
    elapsed: float = 0.0


@dataclass
class Accounting:
    """Requests, bytes, retries, waits and elapsed seconds per resource type (or 'auth')."""

    by_type: dict[str, TypeStats] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self,
        key: str,
        *,
        requests: int = 0,
        nbytes: int = 0,
        retries: int = 0,
        waits: float = 0.0,
        elapsed: float = 0.0,
    ) -> None:
        with self._lock:
            t = self.by_type.setdefault(key, TypeStats())
            t.requests += requests
            t.bytes += nbytes
            t.retries += retries
            t.waits += waits
            t.elapsed += elapsed

    def total(self, attr: str) -> float:
        return sum(getattr(t, attr) for t in self.by_type.values())


class FhirClient:
    """One requests.Session per source; at most `settings.concurrency` requests in flight."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        session: requests.Session | None = None,
        auth: Auth | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.base = settings.base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": "cohort/0.1"})
        self.sleep = sleep
        self.clock = clock
        self.stats = Accounting()
        self.warnings: list[str] = []
        self.send_count = True  # False once the server refused _count (pull's fallback)
        self._sem = threading.BoundedSemaphore(settings.concurrency)
        self.auth = auth or make_auth(
            settings, self.session, clock=clock, on_request=self._auth_hit
        )

    def _auth_hit(self, r: requests.Response | None, elapsed: float) -> None:
        self.stats.add(
            "auth", requests=1, nbytes=len(r.content) if r is not None else 0, elapsed=elapsed
        )

    def same_host(self, url: str) -> bool:
        """Whether `url` is an http(s) URL on the server's own host and port (host names are
        not case-sensitive: requests lower-cases the host it ends at, base_url is as written;
        a scheme's default port written out is the same port)."""
        ours = origin(url) if isinstance(url, str) else None
        return ours is not None and ours == origin(self.base)

    def url(self, path_or_url: str, *, rebase: bool = False) -> str:
        """Absolute URL for a path relative to the base (or an absolute URL, checked to be ours;
        with `rebase`, one on another host under the base path is taken at the base URL)."""
        try:
            url = urljoin(self.base + "/", path_or_url) if isinstance(path_or_url, str) else ""
        except ValueError:  # e.g. "http://[x": urljoin refuses it
            url = ""
        host = url_host(url)
        if host is None:
            # (the link itself is not quoted: a query may carry patient ids)
            raise ServerError("the server sent a link that is not an http(s) URL")
        parts, base = urlsplit(url), urlsplit(self.base)
        if not self.same_host(url):
            if not (rebase and under_base(url, self.base)):
                raise ServerError(f"refusing to follow a link to another host ({host})")
            # a server behind a reverse proxy writing its own internal address into its links
            # (http://10.0.0.5:8080/fhir?_getpages=...): the same path at the configured host,
            # which alone gets the credentials; said once a run
            parts = parts._replace(scheme=base.scheme)
            if not any(w.startswith(REBASED) for w in self.warnings):
                self.warnings.append(f"{REBASED} ({host}); followed at the base URL")
        # the host as base_url writes it (not "HOST:443"), so that a repeated link is seen
        url = urlunsplit(parts._replace(netloc=base.netloc))
        if base.scheme == "https" and parts.scheme == "http":
            # a server behind a TLS proxy that writes http:// into its links: the same host
            # over https, never the credentials in clear text
            url = urlunsplit(urlsplit(url)._replace(scheme="https"))
            note = "the server's links say http://; followed over https"
            if note not in self.warnings:
                self.warnings.append(note)
        return url

    def backoff(self, attempt: int) -> float:
        return min(self.settings.max_wait, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        key: str,
        params: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        auth: bool = True,
        ok: tuple[int, ...] = (200,),
        foreign: bool = False,
    ) -> requests.Response:
        """Send with retries; return a response whose status is in `ok`, else raise ServerError."""
        url = path_or_url if foreign else self.url(path_or_url)
        if auth and urlsplit(url).scheme == "http" and urlsplit(self.base).scheme == "https":
            raise ServerError(f"{method} {safe_path(url)}: refusing to send credentials over http")
        s, refreshed, attempt = self.settings, False, 0
        while True:
            hdrs = dict(headers or {})
            t0 = time.monotonic()
            wait: float | None = None
            try:
                if auth:
                    hdrs.update(self.auth.headers())
                with self._sem:
                    r = self.session.request(
                        method,
                        url,
                        params=params,
                        headers=hdrs,
                        stream=stream,
                        timeout=s.timeout,
                        verify=s.verify,
                    )
                    size = len(r.content) if not stream else content_length(r) or 0
            except TokenEndpointDown as e:
                # the token endpoint is down or busy: retried like the server (exit 6 in the end)
                if attempt >= s.max_retries:
                    raise TokenEndpointDown(f"{e} (after {attempt + 1} attempts)") from None
                wait = self.backoff(attempt)
            except TRANSIENT as e:
                self.stats.add(key, requests=1, elapsed=time.monotonic() - t0)
                if (why := tls_refused(e)) is not None:  # (no retry makes a certificate good)
                    raise ServerError(f"{method} {safe_path(url)}: {why}") from None
                if attempt >= s.max_retries:
                    raise ServerError(
                        f"{method} {safe_path(url)}: {type(e).__name__} after "
                        f"{attempt + 1} attempts"
                    ) from None
                wait = self.backoff(attempt)
            except requests.RequestException as e:  # e.g. TooManyRedirects: no retry helps
                self.stats.add(key, requests=1, elapsed=time.monotonic() - t0)
                raise ServerError(f"{method} {safe_path(url)}: {type(e).__name__}") from None
            else:
                self.stats.add(key, requests=1, nbytes=size, elapsed=time.monotonic() - t0)
                moved = url_host(r.url) if r.history and not foreign else None
                if moved is not None and not self.same_host(r.url):
                    # (requests sent no credentials there); its answer is not the server's
                    r.close()
                    raise ServerError(
                        f"{method} {safe_path(url)}: the server redirected to another host "
                        f"({moved}): a login page or a proxy in the way? Answer not used"
                    )
                if r.status_code in ok:
                    return r
                if r.status_code == 401 and auth and not refreshed and self.auth.invalidate():
                    refreshed = True
                    self.stats.add(key, retries=1)
                    continue
                if r.status_code not in RETRY_STATUS or attempt >= s.max_retries:
                    raise self.error(method, url, r)
                hinted = retry_after(
                    r.headers.get("Retry-After"), self.clock(), r.headers.get("Date")
                )
                # never below the client's own backoff: "Retry-After: 0" (or a date already
                # past) retried at once spent every retry in one burst on an overloaded server
                backoff = self.backoff(attempt)
                wait = backoff if hinted is None else min(s.max_wait, max(hinted, backoff))
                r.close()
            attempt += 1
            self.stats.add(key, retries=1, waits=wait)
            self.sleep(wait)

    def error(self, method: str, url: str, r: requests.Response) -> ServerError:
        try:
            body = r.json()
        except ValueError:
            body = None
        # the message names the issues' severity and code, never their diagnostics text (it may
        # quote patients, and the message goes to stderr and run.json); `outcome` keeps the text
        # for telling answers apart (a timeout, a parameter the server requires)
        said = operation_outcome_codes(body) or reason_phrase(r)
        # 401/403 that survived a token refresh: credentials or scopes, not the server (exit 7)
        kind = AuthError if r.status_code in (401, 403) else ServerError
        err = kind(f"{method} {safe_path(url)}: HTTP {r.status_code}: {said}".rstrip(": "))
        err.status = r.status_code  # type: ignore[attr-defined]
        err.credentials_refused = r.status_code == 401  # type: ignore[attr-defined]
        err.outcome = operation_outcome_text(body) or (r.reason or "")  # type: ignore[attr-defined]
        # (a Bulk status URL's way of saying that its job failed, unlike a proxy's bare 502)
        is_outcome = isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"
        err.is_outcome = is_outcome  # type: ignore[attr-defined]
        err.issues = outcome_issues(body) if is_outcome else []  # type: ignore[attr-defined]
        return err

    def get_json(
        self, path_or_url: str, *, key: str, params: Any = None
    ) -> tuple[dict, requests.Response]:
        r = self.request("GET", path_or_url, key=key, params=params)
        try:
            # orjson: strict JSON (no NaN/Infinity) and fast on large pages
            body = loads(r.content)
        except orjson.JSONDecodeError:
            # in the charset the Content-Type names (second: a page labelled Latin-1 is as
            # often UTF-8)
            body = _NOT_JSON
            with suppress(orjson.JSONDecodeError):
                body = loads(as_utf8(r) or b"")
        if body is _NOT_JSON:
            kind = (r.headers.get("Content-Type") or "no Content-Type").split(";")[0].strip()
            hint = ": a login or error page from a proxy?" if "html" in kind.lower() else ""
            raise ServerError(
                f"GET {safe_path(r.url)}: response is not JSON ({kind[:60]}){hint}"
            ) from None
        if not isinstance(body, dict):
            raise ServerError(f"GET {safe_path(r.url)}: response is not a JSON object")
        return body, r

    def search(
        self,
        rtype: str,
        params: list[tuple[str, str]],
        *,
        key: str | None = None,
        count: bool | None = None,
    ) -> Iterator[tuple[int, dict, requests.Response]]:
        """Yield (page number, Bundle, response) following Bundle.link[next] only, loop-guarded;
        with _count unless `count` (else the shared switch, read once) says otherwise."""
        key, counted = key or rtype, self.send_count if count is None else count
        query = [*params, *([("_count", str(self.settings.page_size))] if counted else [])]
        url = self.url(f"{rtype}?{urlencode(query, safe=',|:/')}")
        seen: set[str] = {url}
        page = empty = 0
        while url:
            page += 1
            try:
                bundle, r = self._page(url, key)
            except ServerError as e:
                e.counted = counted  # type: ignore[attr-defined]  # (what fallback.py retries)
                raise
            yield page, bundle, r
            nxt = next(
                (
                    ln.get("url")
                    for ln in bundle.get("link") or []
                    if isinstance(ln, dict) and ln.get("relation") == "next"
                ),
                None,
            )
            if not nxt:
                return
            empty = 0 if _has_entry(bundle) else empty + 1
            if empty >= MAX_EMPTY:
                raise ServerError(
                    f"{rtype}: the server sent {empty} pages in a row with no entry, each with a "
                    f"next link (page {page}); search incomplete"
                )
            url = self.url(self._unescaped(nxt), rebase=True)
            if url in seen or page >= MAX_PAGES:
                # an incomplete result must not pass as complete: the run fails, marks stay put
                raise ServerError(
                    f"{rtype}: server repeated a next link (page {page}); search incomplete"
                )
            seen.add(url)

    def _unescaped(self, link: str) -> str:
        """A next link with its query's `&` written `&amp;` (HTML-escaped by a server or
        gateway) read with `&`: followed as written, the server took `amp;_offset` for an
        unknown parameter and answered the first page again. No FHIR parameter is named
        `amp;...`, and an `&` inside a value is sent as %26, so nothing else is changed."""
        if not isinstance(link, str) or "&amp;" not in link:
            return link
        if ESCAPED not in self.warnings:
            self.warnings.append(ESCAPED)
        return link.replace("&amp;", "&")

    def _page(self, url: str, key: str) -> tuple[dict, requests.Response]:
        """One search page; on a 5xx that hides a timeout, retry once with half the page size."""
        try:
            body, r = self.get_json(url, key=key)
        except ServerError as e:
            status = getattr(e, "status", 0)
            text = str(getattr(e, "outcome", "")).lower()
            count = _count_of(url)
            if not (status >= 500 and ("timeout" in text or "timed out" in text) and count > 10):
                raise
            smaller = _with_count(url, max(10, count // 2))
            self.warnings.append(f"{key}: server timed out; page size reduced to {count // 2}")
            body, r = self.get_json(smaller, key=key)
        if body.get("resourceType") != "Bundle":
            kind = type_name(body.get("resourceType"))
            raise ServerError(f"GET {safe_path(url)}: expected a Bundle, got {kind}")
        return body, r


def _has_entry(bundle: dict) -> bool:
    """Whether a page holds a resource besides OperationOutcomes (stops at the first)."""
    entries = bundle.get("entry")
    return isinstance(entries, list) and any(
        isinstance(e, dict)
        and isinstance(res := e.get("resource"), dict)
        and res.get("resourceType") != "OperationOutcome"
        for e in entries
    )


def _count_of(url: str) -> int:
    for k, v in parse_qsl(urlsplit(url).query):
        if k == "_count" and v.isdigit():
            return int(v)
    return 0


def _with_count(url: str, count: int) -> str:
    p = urlsplit(url)
    q = [
        (k, str(count) if k == "_count" else v)
        for k, v in parse_qsl(p.query, keep_blank_values=True)
    ]
    return urlunsplit(p._replace(query=urlencode(q, safe=",|:/")))
