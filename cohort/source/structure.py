"""Structure checks and fixes of a read: nesting depth, impossible dates, Bundle ids and refs,
and the type of an NDJSON line read from its bytes."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from typing import Any

import msgspec
import orjson

from cohort.source.checkers import ID_RE

__all__ = [
    "LEADING_TYPE",
    "MAX_DEPTH",
    "compact",
    "created_id",
    "decoded_type",
    "deleted_before",
    "name_entry",
    "id_from_entry",
    "impossible_date",
    "loads",
    "maybe_bad_date",
    "opens_with_resource",
    "rewrite_refs",
    "rewritten",
    "too_deep",
]

BOM = b"\xef\xbb\xbf"


def loads(data: bytes) -> Any:
    """orjson.loads, also of a text that opens with a UTF-8 byte order mark.

    JSON may not carry one (RFC 8259), but files saved by Windows tools and some exporters do,
    and orjson refuses it: every file's first record (a whole Bundle) was lost. Stripped only
    after orjson refused the text, so the hot path pays nothing."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if data[:3] != BOM:
            raise
    return orjson.loads(data[3:])


# Deepest nesting of one resource accepted (real FHIR resources stay well under 30 levels).
MAX_DEPTH = 100


def too_deep(node: Any, limit: int | None = None) -> bool:
    """True when `node` nests more than `limit` (default MAX_DEPTH) levels (iterative walk)."""
    limit = MAX_DEPTH if limit is None else limit
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        cur, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(cur, dict):
            stack.extend((v, depth + 1) for v in cur.values() if isinstance(v, dict | list))
        elif isinstance(cur, list):
            stack.extend((v, depth + 1) for v in cur if isinstance(v, dict | list))
    return False


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?:T.*)?")


# Only year 0000, a month outside 01-12 or a day outside 01-28 can make "YYYY-MM-DD"
# impossible: the regex finds just those candidates, so a typical record costs one C-speed
# scan. It starts at a '-' (rarer in JSON than '"': ~2x faster) and looks back for '"YYYY'.
# Year 0000 is its first alternative (no group set); a month or day candidate sets groups.
_DAY_BYTES = re.compile(
    rb'-(?:(?<="0000-)|(?<="\d\d\d\d-)'
    rb"(?:(0[1-9]|1[0-2])-(29|3\d|00|[4-9]\d)|(00|1[3-9]|[2-9]\d)-\d\d))"
)


def compact(res: dict[str, Any]) -> bytes | None:
    try:
        return orjson.dumps(res)
    except (orjson.JSONEncodeError, TypeError):
        return None  # e.g. deeper than orjson serialises: the exact walks decide


def maybe_bad_date(blob: bytes) -> bool:
    """False only when no string in the JSON text can hold an impossible calendar date."""
    # (a one-byte `in` is a memchr; `b"\\u" in blob` alone cost ~0.9 us a record)
    if not blob.isascii() or (b"\\" in blob and b"\\u" in blob):
        return True  # non-ASCII digits match `\d` in str patterns: let the exact walk look
    first = _DAY_BYTES.search(blob)
    if first is None:
        return False  # nearly every record: one scan
    for m in _DAY_BYTES.finditer(blob, first.start()):
        if m[1] is None and m[3] is None:
            return True  # year 0 is not on the calendar either (found by the property test)
        if m[3] is not None:
            return True  # month 00 or 13-99
        at = m.start()
        try:
            date(int(blob[at - 4 : at]), int(m[1]), int(m[2]))
        except ValueError:
            return True
    return False


# A FHIR element name (`birthDate`, `_birthDate` for its extensions): what an issue may quote
# of a JSON key. A key of any other shape comes from broken or hostile data and may hold text
# (a name, an MRN, a control sequence): it is named "?".
_ELEMENT = re.compile(r"_?[A-Za-z][A-Za-z0-9]{0,63}")


def element_name(key: object) -> str:
    """`key` as an issue's element path may show it: itself when element-shaped, else "?"."""
    return key if isinstance(key, str) and _ELEMENT.fullmatch(key) else "?"


def impossible_date(res: dict[str, Any]) -> str | None:
    """Element path of the first date such as 2026-02-30 (regex-valid, not on the calendar);
    keys that are not element-shaped are named "?" (`element_name`)."""
    stack: list[tuple[Any, str]] = [(res, "")]
    while stack:
        cur, path = stack.pop()
        items = cur.items() if isinstance(cur, dict) else enumerate(cur)
        for k, v in items:
            sub = f"{path}.{element_name(k)}" if isinstance(k, str) else f"{path}[{k}]"
            if isinstance(v, dict | list):
                stack.append((v, sub))
            elif isinstance(v, str) and len(v) >= 10 and _DAY.fullmatch(v):
                try:
                    date.fromisoformat(v[:10])
                except ValueError:
                    return sub.lstrip(".")
    return None


def id_from_entry(rtype: str, full_url: Any, request: Any) -> str | None:
    """The id of an id-less entry: request.url "Type/id", a urn:uuid fullUrl, a urn:oid one
    whose OID is a FHIR id (R4 references.html: Bundle resources "identified with urn:uuid: or
    urn:oid: fullUrls"), or ".../Type/id"."""
    if isinstance(request, dict):
        url = request.get("url")
        if isinstance(url, str):
            parts = url.split("?", 1)[0].strip("/").split("/")
            if len(parts) == 2 and parts[0] == rtype and parts[1]:
                return parts[1]
    if isinstance(full_url, str):
        if full_url.startswith("urn:uuid:"):
            return full_url[len("urn:uuid:") :]
        if full_url.startswith("urn:oid:"):
            oid = full_url[len("urn:oid:") :]
            return oid if ID_RE.fullmatch(oid) else None
        parts = full_url.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2 and parts[-2] == rtype and parts[-1]:
            return parts[-1]
    return None


# Bundle.entry's elements (FHIR R4): an entry with any other key is damaged, not anonymous
_ENTRY_KEYS = frozenset(
    {
        "id",
        "extension",
        "modifierExtension",
        "link",
        "fullUrl",
        "resource",
        "search",
        "request",
        "response",
    }
)


def created_id(entry: dict[str, Any], res: dict[str, Any]) -> str | None:
    """The id of a record a transaction or batch creates without naming it (a POST with no
    fullUrl and no id: FHIR R4 bundle.html lets a server assign one), taken from its content so
    that the same record read again (the same file next night, or another file) keeps its id;
    None for any other entry, or content too deep to serialise (refused later, located)."""
    request = entry.get("request")
    if not isinstance(request, dict) or request.get("method") != "POST":
        return None
    if not entry.keys() <= _ENTRY_KEYS:
        return None  # a key no entry has (a damaged `fullUrl`): not to be read as a create
    try:
        blob = orjson.dumps(res, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None
    return "post-" + hashlib.sha256(blob).hexdigest()[:40]


def name_entry(entry: Any, refs: dict[str, str], creates: bool) -> None:
    """A Bundle's first pass, one entry: an id for an id-less resource (from its fullUrl or
    request, or a content id for a transaction's POST without either), and its fullUrl mapped
    to "Type/id" in `refs`."""
    if not isinstance(entry, dict):
        return
    res = entry.get("resource")
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        return
    rtype = res["resourceType"]
    full_url = entry.get("fullUrl")
    if "id" not in res:
        rid = id_from_entry(rtype, full_url, entry.get("request"))
        if rid is None and full_url is None and creates:
            rid = created_id(entry, res)
        if rid is not None:
            res["id"] = rid
    if isinstance(full_url, str) and isinstance(res.get("id"), str):
        refs[full_url] = f"{rtype}/{res['id']}"


def deleted_before(entries: list[Any]) -> set[int]:
    """Indexes of the entries of a history Bundle that a DELETE listed before them deleted.

    A history lists each record's versions newest first (FHIR R4 http.html#history), and a
    DELETE entry has no resource: the versions after it are of a record that is gone, and
    reading them stored the newest as if it were current."""
    gone: set[tuple[str, str]] = set()
    out: set[int] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        res, request = entry.get("resource"), entry.get("request")
        if isinstance(res, dict):
            rtype, rid = res.get("resourceType"), res.get("id")
            if isinstance(rtype, str) and (rtype, rid) in gone:
                out.add(i)
        elif isinstance(request, dict) and request.get("method") == "DELETE":
            url = request.get("url")
            parts = url.split("?", 1)[0].strip("/").split("/") if isinstance(url, str) else []
            if "_history" in parts:  # "Type/id/_history/3": HAPI's versioned id of the DELETE
                parts = parts[: parts.index("_history")]
            if len(parts) >= 2:
                gone.add((parts[-2], parts[-1]))
    return out


# A "reference" key and its string value in compact JSON. Inside a JSON string a quote is
# escaped, so the pattern cannot start in the middle of one; a value with escapes is left
# to the walk (`rewritten` counts the keys it did not match).
_REFERENCE = re.compile(rb'"reference":"([^"\\]*)"')
_REFERENCE_KEY = b'"reference":"'


def rewritten(res: dict[str, Any], refs: dict[str, str]) -> bytes | None:
    """`res` as compact JSON with its references rewritten as `rewrite_refs` would, without a
    walk in Python (two walks of every entry were a third of a Synthea bundle's read); None
    when the text cannot answer (too deep to serialise, deeper than MAX_DEPTH, or a
    reference with escapes): then the caller walks."""
    blob = compact(res)
    if blob is None or blob.count(b"{") + blob.count(b"[") > MAX_DEPTH:
        return None
    keys = blob.count(_REFERENCE_KEY)
    if not keys:
        return blob
    seen = 0

    def swap(m: re.Match[bytes]) -> bytes:
        nonlocal seen
        seen += 1
        target = refs.get(m[1].decode())
        return m[0] if target is None else b'"reference":' + orjson.dumps(target)

    out = _REFERENCE.sub(swap, blob)
    return out if seen == keys else None


def rewrite_refs(node: Any, refs: dict[str, str]) -> None:
    """Rewrite in place every `reference` equal to a fullUrl of the bundle to "Type/id"."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                target = refs.get(value)
                if target is not None:
                    node[key] = target
            elif isinstance(value, dict | list):
                rewrite_refs(value, refs)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                rewrite_refs(item, refs)


# An NDJSON line that opens with its resourceType (as every Bulk exporter writes it)
LEADING_TYPE = re.compile(rb'\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]{1,64})"')


class _TopType(msgspec.Struct):
    resourceType: Any = None


_TOP_TYPE = msgspec.json.Decoder(_TopType)


def decoded_type(line: bytes) -> bytes | None:
    """The top-level resourceType of an NDJSON line that does not open with it (a writer that
    sorts keys), by a decode of that key alone that skips the rest unbuilt (~0.75 us a line
    against ~2.3 us for orjson); None: no plain type name, or not one JSON object (the line is
    then parsed whole, which says what is wrong). Without it every such line was parsed whole
    and a per-type export read ~15% slower (bench/RESULTS.md)."""
    try:
        rtype = _TOP_TYPE.decode(line).resourceType
    except (msgspec.DecodeError, RecursionError):
        return None
    if rtype.__class__ is str and 0 < len(rtype) <= 64 and rtype.isascii() and rtype.isalpha():
        return rtype.encode()
    return None


def opens_with_resource(data: bytes) -> bool:
    """Whether the first line of `data` is one JSON object with a resourceType."""
    try:
        first = loads(data.split(b"\n", 1)[0])
    except orjson.JSONDecodeError:
        return False
    return isinstance(first, dict) and "resourceType" in first
