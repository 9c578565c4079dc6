"""Read one FHIR file, NDJSON line or Bundle: type filter, triage, validation, located issues."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from cohort.source.fileinfo import ReadStats
from cohort.source.names import file_of
from cohort.source.refused import dates_only, stored_for
from cohort.source.structure import (
    LEADING_TYPE,
    MAX_DEPTH,
    compact,
    decoded_type,
    deleted_before,
    impossible_date,
    maybe_bad_date,
    name_entry,
    opens_with_resource,
    rewrite_refs,
    rewritten,
    too_deep,
)
from cohort.source.unparsed import (
    BROKE_OFF,
    EMPTY_FILE,
    NOT_UTF8,
    Refused,
    breaks_off,
    ends_early,
    reparsed,
)
from cohort.source.validate import RESOURCE_TYPES, check

if TYPE_CHECKING:  # the reader only calls the triage; the triage itself belongs to extract
    from cohort.extract.census import Triage

__all__ = ["Item", "Reader"]

# (resource, origin, the JSON text as read when it is one NDJSON line, else None)
Item = tuple[dict[str, Any], str, bytes | None]


class Reader:
    """One read_path call: shared stats, type filter and validation mode."""

    def __init__(
        self, stats: ReadStats, types: set[str] | None, validate: str, triage: Triage | None = None
    ) -> None:
        self.stats = stats
        self.types = types
        self.validate = validate
        self.triage = triage
        # NDJSON fast paths: the types the triage may summarise (not under `full` validation,
        # which checks every record first)
        quick = triage.TYPES if triage is not None and validate != "full" else frozenset()
        self._quick = quick & types if types is not None else quick
        # the types the triage is offered only once valid (all of them under `full`)
        self._checked = triage.CHECKED_TYPES if triage is not None else frozenset()
        # ... and of those, the types whose lines the triage answers from their bytes
        self._lines = (
            frozenset(t.encode() for t in self._quick & triage.LINE_TYPES)
            if triage is not None
            else frozenset()
        )
        # the valid types the filter leaves out (a Bundle is never one: it is unpacked)
        self._unread_names = (
            frozenset(RESOURCE_TYPES - types - {"Bundle"}) if types is not None else frozenset()
        )
        self._unread = frozenset(t.encode() for t in self._unread_names)
        self._file = ""  # the file being read (a record that cannot be named leaves it unread)

    # ---- resources -------------------------------------------------------------------------

    def reject(self, origin: str, rtype: str, reason: str) -> None:
        self.stats.rejected[rtype] += 1
        self.stats.issue(origin, reason)

    def unnamed(self, origin: str, rtype: str, reason: str) -> None:
        """Reject a record with no type and id a stored record could have (a damaged line)."""
        self.reject(origin, rtype, reason)
        self.lost()

    def lost(self) -> None:
        """The file being read held a record this read cannot name: which stored record it was
        is unknown, so the file is not read whole, and a snapshot read drops none (ingest) that
        it did not find; else one damaged line of a stored record took it for deleted."""
        partial = self.stats.partial
        if self._file and (not partial or partial[-1] != self._file):
            partial.append(self._file)

    def resource(
        self, res: Any, origin: str, raw: bytes | None = None, offered: bool = False
    ) -> Iterator[Item]:
        """Yield `res` (or, for a Bundle, its entries) after type filter and validation.

        `offered`: the triage already declined this record (no need to ask again)."""
        if not isinstance(res, dict):
            self.unnamed(origin, "?", "not a JSON object")
            return
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            self.unnamed(origin, "?", "resourceType: missing or not a string")
            return
        if rtype == "Bundle":
            yield from self.bundle(res, origin, {})
            return
        if rtype not in RESOURCE_TYPES:
            # A misspelt type ("Patientt") is broken data, not a type we merely do not read.
            self.unnamed(origin, "?", "resourceType: not a FHIR R4 resource type")
            return
        if self.types is not None and rtype not in self.types:
            self.stats.skipped_types[rtype] += 1
            return
        full = self.validate == "full"
        if self.triage is not None and not full and not offered and self.triage.offer(res):
            # A record no criterion reads: only its date and code went into the census, so the
            # checks below (which guard what is stored and read) have nothing to protect.
            self.stats.read[rtype] += 1
            self.stats.summarised[rtype] += 1
            return
        # One C-speed serialisation (or the NDJSON line as read) answers both structural walks
        # for nearly every resource: fewer brackets than MAX_DEPTH cannot nest deeper, and an
        # ASCII text with no calendar-impossible "YYYY-MM-DD cannot hold one (bench/RESULTS.md:
        # the two walks took ~60% of ingest). Anything else falls back to the exact walks below.
        blob = raw if raw is not None else compact(res)
        shallow = blob is not None and blob.count(b"{") + blob.count(b"[") <= MAX_DEPTH
        if not shallow and too_deep(res):
            # orjson parses 1024 levels but serialises only 255 (the store would crash) and
            # recursive walkers would hit Python's recursion limit: refuse it here, located.
            self.reject(origin, rtype, f"{rtype}: nested deeper than {MAX_DEPTH} levels")
            yield from self.refused(res, origin, f"{rtype}: nested deeper than {MAX_DEPTH} levels")
            return
        if "id" not in res:
            # The store is keyed by (type, id): a resource without an id cannot be kept.
            self.unnamed(origin, rtype, f"{rtype}.id: missing")
            return
        reason = check(res, self.validate)
        if reason is not None:
            if not dates_only(res, self.validate):
                self.reject(origin, rtype, reason)
                yield from self.refused(res, origin, reason)
                return
            # only a date the criteria read: kept, read as a server's records are (refused.py)
            self.stats.issue(origin, f"{reason}; kept, the date read as far as it reads")
        elif where := impossible_date(res) if blob is None or maybe_bad_date(blob) else None:
            # Kept (the rest of the record is good) but the date reads as missing: say so.
            self.stats.issue(origin, f"{rtype}.{where}: impossible calendar date, ignored")
        self.stats.read[rtype] += 1
        triage = self.triage
        if triage is not None and (
            (full and triage.offer(res)) or (rtype in self._checked and triage.offer_checked(res))
        ):
            self.stats.summarised[rtype] += 1  # checked first, then triaged
            return
        yield res, origin, raw

    def refused(self, res: dict[str, Any], origin: str, reason: str) -> Sequence[Item]:
        """The stub stored in a refused record's place; none when its id is not one a record
        can have ("x y", 7: a damaged id), which leaves the file not read whole (`lost`)."""
        stub = stored_for(res, origin, reason)
        if not stub:
            self.lost()
        else:
            self.stats.stubbed.add(file_of(origin))
        return stub

    def bundle(self, bundle: dict[str, Any], origin: str, outer: dict[str, str]) -> Iterator[Item]:
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            self.unnamed(origin, "Bundle", "Bundle.entry: not an array")
            return
        base = origin if "#" in origin else origin + "#"
        sep = "." if "#" in origin else ""
        # First pass: give id-less resources an id and map every fullUrl to "Type/id".
        refs = dict(outer)
        creates = bundle.get("type") in ("transaction", "batch")
        for entry in entries:
            name_entry(entry, refs, creates)
        # Second pass: rewrite references, then yield (nested Bundles recurse with this map).
        gone = deleted_before(entries) if bundle.get("type") == "history" else ()
        for i, entry in enumerate(entries):
            if i not in gone:
                # (a history's versions of a record it deleted later: not current)
                yield from self.entry(entry, f"{base}{sep}entry[{i}]", refs)

    def entry(self, entry: Any, where: str, refs: dict[str, str]) -> Iterator[Item]:
        """One Bundle entry's resource, its references rewritten through `refs`."""
        if not isinstance(entry, dict):
            self.unnamed(where, "?", "Bundle.entry: not an object")
            return
        if "resource" not in entry:
            return  # DELETE requests, transaction-response entries: nothing to read
        res = entry["resource"]
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        if rtype == "Bundle":
            yield from self.bundle(res, where, refs)
            return
        if rtype.__class__ is str and rtype in self._unread_names:  # (a list: unhashable)
            # as resource() would count it, before the walks below: in a Synthea bundle
            # most entries are types no criterion reads (Claim, Encounter, ...)
            self.stats.skipped_types[rtype] += 1
            return
        raw = None
        if refs and isinstance(res, dict):
            raw = rewritten(res, refs)
            if raw is not None:
                res = orjson.loads(raw)  # (the same content, references rewritten)
            elif not too_deep(res):
                rewrite_refs(res, refs)
        yield from self.resource(res, where, raw)

    # ---- documents -------------------------------------------------------------------------

    def json_doc(self, data: bytes, origin: str) -> Iterator[Item]:
        self.stats.files += 1
        self._file = origin
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            try:
                doc, _, recoded = reparsed(data, error)  # (a BOM, Windows-1252)
            except Refused as r:
                e = r.error
                if e.colno == 1 and e.lineno > 1 and opens_with_resource(r.text):
                    # NDJSON named .json (some exporters and hand-made extracts): a document
                    # that ends after its first line and goes on with another line of JSON is
                    # read line by line, instead of losing every record of the file to one issue
                    yield from self.ndjson(data.split(b"\n"), origin, count_file=False)
                    return
                said = f"; {NOT_UTF8}" if r.not_utf8 else ""
                where = f"invalid JSON (line {e.lineno}, column {e.colno}{said})"
                if not data.strip():
                    where = EMPTY_FILE
                elif ends_early(r.text, e):
                    where += f": {BROKE_OFF}"
                self.reject(origin, "?", where)
                # every record of the file is unknown (a Bundle cut short while being written,
                # or corrupt): a snapshot read must not take them for deleted
                self.stats.partial.append(origin)
                return
            if recoded:
                self.stats.recode(origin, 0)
        if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
            self.outcome(doc, origin)
            return
        if isinstance(doc, dict) and "resourceType" not in doc:
            # a JSON file that is no FHIR at all (a FHIR package's _package.json, an export's
            # metadata), not a damaged record: rejected, the file still read whole, else such
            # a file beside the data held back every deletion every night
            self.reject(origin, "?", "resourceType: missing or not a string")
            return
        yield from self.resource(doc, origin)

    def outcome(self, doc: dict[str, Any], origin: str) -> None:
        """A file that is one OperationOutcome: the error answer of a server or export script
        (curl saving the body of a 4xx/5xx), saved where the data should be. Not data: read
        as a type not read, the snapshot sweep dropped every record the real file held, exit 0.
        What that file would hold is unknown, as for a damaged one: not read whole."""
        # (only here: it pulls in the server source's package, never needed by a good read)
        from cohort.source.fhir.outcome import operation_outcome_codes

        codes = operation_outcome_codes(doc) or "no issue"  # coded values: no diagnostics text
        reason = f"an OperationOutcome ({codes}), not data: an error answer saved as a data file?"
        self.stats.broke(origin, reason)
        self.stats.outcomes[origin] = codes

    def ndjson(
        self, lines: Iterable[bytes], origin: str, count_file: bool = True
    ) -> Iterator[Item]:
        self.stats.files += count_file
        self._file = origin
        stats = self.stats
        # Records the triage summarises (most of a Bulk export) skip the per-resource machinery
        # below, as resource() would do for them: a valid type, read, not a Bundle.
        triage, quick, unread = self.triage, self._quick, self._unread
        # the triage's line handlers, bound once per call (the hot path of a Bulk export)
        handlers = {t: triage.line_handler(t.decode()) for t in self._lines} if triage else {}
        summed = dict.fromkeys(handlers, 0)  # lines summarised from their bytes, by type
        leading = unread or handlers
        opens_with_type = LEADING_TYPE.match  # the usual case; decoded_type for the others
        n = cut = 0  # cut: an invalid line that ends mid-record without a line end
        skipped = 0  # the last line skipped unparsed (an unread type)
        recoded = 0  # lines not UTF-8, read as Windows-1252
        try:
            for n, line in enumerate(lines, start=1):
                if not line or line.isspace():
                    continue
                offered = False
                lead = None
                if leading:
                    m = opens_with_type(line)
                    lead = m[1] if m is not None else decoded_type(line)
                if lead is not None:
                    if lead in unread and line.count(b'"resourceType"') == 1:
                        # A Bulk export is mostly types no criterion reads (Claim, Encounter
                        # ... about two thirds of Synthea's bytes): a line of such a type
                        # that names no other is counted without being parsed.
                        stats.skipped_types[lead.decode()] += 1
                        skipped = n
                        continue
                    handle = handlers.get(lead)
                    if handle is not None:
                        # Most of the rest: Observations no criterion reads, summarised from
                        # the few elements the triage decodes (None: read the line whole)
                        took = handle(line)
                        if took:
                            summed[lead] += 1
                            continue
                        offered = took is False
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError as error:
                    try:
                        # a file opening with a byte order mark, a line not UTF-8: stored as
                        # the UTF-8 text read, so every night's read stores the same bytes
                        doc, line, foreign = reparsed(line, error)
                        recoded += foreign
                    except Refused as r:
                        if n == 1 and b"\r" in line.rstrip():
                            # lines ended by CR alone (classic Mac): the whole file read as one
                            # line, every record lost to one issue. Read it line by line.
                            yield from self.ndjson(line.split(b"\r"), origin, count_file=False)
                            continue
                        said = f", {NOT_UTF8}" if r.not_utf8 else ""
                        self.unnamed(f"{origin}:{n}", "?", f"invalid JSON{said}")
                        if not line.endswith(b"\n") and ends_early(r.text, r.error):
                            cut = n
                        continue
                if triage is not None and not offered and doc.__class__ is dict:
                    rtype = doc.get("resourceType")
                    if rtype.__class__ is str and rtype in quick:  # (a list is unhashable)
                        if triage.offer(doc):
                            stats.read[rtype] += 1
                            stats.summarised[rtype] += 1
                            continue
                        offered = True  # kept: resource() need not ask again
                yield from self.resource(doc, f"{origin}:{n}", line, offered)
            if skipped and skipped == n and breaks_off(line):
                # a download that stopped in a file of a type no criterion reads (Encounter):
                # said as for a type read, at the price of parsing that one line
                cut = n
            if cut and cut == n:
                # the last line breaks off mid-record: a file still being written or cut short
                # (not read whole already, as any line that is no JSON: one entry, said why)
                stats.issue(origin, BROKE_OFF)
                self.lost()
        finally:  # counted once, also when a corrupt file ends the read early
            if recoded:
                stats.recode(origin, recoded)
            for t, k in summed.items():
                if k:
                    stats.read[t.decode()] += k
                    stats.summarised[t.decode()] += k
