"""What an HTTP answer says besides its body: how long to wait (Retry-After), the server's
clock (Bundle.meta.lastUpdated, the Date header), its length (Content-Length) and the reason
phrase a message may show."""

from __future__ import annotations

import codecs
import email.message
import email.utils
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus

import requests


def retry_after(value: str | None, now: float, served: str | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date). An HTTP-date is
    a time on the server's clock: counted from the answer's Date header (`served`) when it has
    one, so that a local clock ahead of the server's does not turn every wait into none."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # ("²" is a digit to isdigit, not to float)
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    start = _http_date(served) if served else None
    return max(0.0, when - (now if start is None else start))


def _http_date(value: str) -> float | None:
    """An HTTP-date as a POSIX timestamp (GMT when it names no zone), or None."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def reason_phrase(r: requests.Response) -> str:
    """The standard reason phrase of the answer's status code ("Not Found"), "" for a code with
    none: never the one the server sent, which a proxy may fill with the request it refused or
    the patient it was about (the message goes to stderr and run.json)."""
    try:
        return HTTPStatus(r.status_code).phrase
    except ValueError:
        return ""


def as_utf8(r: requests.Response) -> bytes | None:
    """The body in UTF-8, from the charset its Content-Type names (`charset=ISO-8859-1`: FHIR
    asks for UTF-8, a legacy server or gateway may send another); None when it names none,
    UTF-8 or one Python does not know, or the body is not text in it."""
    header = email.message.Message()
    header["Content-Type"] = r.headers.get("Content-Type") or ""
    name = header.get_param("charset")
    if not isinstance(name, str):
        return None
    try:
        if codecs.lookup(name).name == "utf-8":
            return None
        return r.content.decode(name).encode()
    except (LookupError, UnicodeError):
        return None


def content_length(r: requests.Response) -> int | None:
    """The Content-Length header's value, as urllib3 reads it: "42" or the list "42, 42" a
    proxy may make of it; None when missing or not one number (int() of "42, 42" crashed a
    Bulk download with ValueError, exit 1 every night)."""
    values = {v.strip() for v in (r.headers.get("Content-Length") or "").split(",")}
    value = values.pop() if len(values) == 1 else ""
    return int(value) if value.isascii() and value.isdigit() else None


def server_time(bundle: dict | None, r: requests.Response) -> str | None:
    """The server's clock for this answer: Bundle.meta.lastUpdated, else the Date header, as
    UTC ISO text ("...Z"). Marks take the earliest of these by comparing the text, which is
    only right in one offset: 05:00-05:00 (10:00Z) sorted before 09:00+00:00."""
    meta = (bundle or {}).get("meta") or {}
    when = utc_instant(meta.get("lastUpdated") if isinstance(meta, dict) else None)
    if when is not None:
        return when
    date = r.headers.get("Date")
    if date:
        try:
            t = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return None
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)  # an HTTP date is GMT
        return _utc_iso(t)
    return None


def earliest(clocks: Iterable[str | None]) -> str | None:
    """The earliest of server clocks (UTC ISO text; None ignored), compared as instants: as
    text "10:00:00Z" (a clock on the second) sorted after "10:00:00.500000Z" ('.' < 'Z')."""
    return min((c for c in clocks if c), key=_instant_key, default=None)


def _instant_key(clock: str) -> tuple[int, datetime | str]:
    try:
        t = datetime.fromisoformat(clock.replace("Z", "+00:00"))
    except ValueError:
        return (1, clock)  # (not an instant: after every one, by text among themselves)
    return (0, t if t.tzinfo else t.replace(tzinfo=UTC))


def utc_instant(value: object) -> str | None:
    """A FHIR instant ("2026-11-25T05:00:00-05:00") as UTC ISO text ("...T10:00:00Z"); marks
    are compared as instants (`earliest`: the text drops a zero fraction); None for anything
    else (no zone, not a date)."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _utc_iso(t) if t.tzinfo is not None else None


def _utc_iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")
