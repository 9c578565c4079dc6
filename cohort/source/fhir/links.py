"""Links a server sends: their host, whether one is the server's own, and the base path."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def url_host(url: object) -> str | None:
    """The host (netloc, without any `user:password@`: messages quote it) of an http(s) URL;
    None for anything else, e.g. "http://[x", which urlsplit refuses, or a link that is not a
    string."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.rpartition("@")[2] or None


def origin(url: str) -> tuple[str, int | None] | None:
    """(host in lower case, port) of an http(s) URL, the scheme's default port as None: a
    link to "host:443" is one to "host" (a proxy's Host header in HAPI's links). None for a
    URL with a user name (requests would send it as Basic auth) or a port that is no number."""
    if url_host(url) is None:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.username is not None or not parts.hostname:
        return None
    return parts.hostname.lower(), None if port == DEFAULT_PORTS[parts.scheme] else port


def safe_path(url: str) -> str:
    """The URL path without query (queries carry patient ids: never put them in messages)."""
    return urlsplit(url).path or "/"


def under_base(url: str, base: str) -> bool:
    """Whether `url`'s path is `base`'s or lies under it, segment by segment ("/fhirx" is not
    under "/fhir"), with no "." or ".." segment (plain or %-encoded) that could lead out."""
    segments = urlsplit(url).path.split("/")
    if any(unquote(s) in (".", "..") for s in segments):
        return False
    root = [s for s in urlsplit(base).path.split("/") if s]
    return [s for s in segments if s][: len(root)] == root
