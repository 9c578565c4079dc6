"""One search of a FHIR server, every page of it: the server's paging state expired, a
refused query asked again (fallback.py), an OperationOutcome entry on a page (search_all)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohort.errors import ServerError

from .answer import server_time
from .codeparams import current as obs_current
from .fallback import each_value, fallback, id_param, named_refusal
from .outcome import INCOMPLETE_CODES, IncompleteSearch, on_page, outcome_issues
from .quirks import confirm, searched

if TYPE_CHECKING:
    from .puller import Items, Params, Puller

# reads of one search whose results moved while paged, before the pull fails (exit 6)
MOVED_TRIES = 3


class PagesMoved(ServerError):
    """A search returned a record twice, or fewer than its total: offset paging (`_offset`,
    as sekmet pages) over records written or deleted meanwhile shifts the ones after them, and
    a record may have been skipped. `got`: the search's (items, clock); `order`: the ids of its
    matches as they came; `short`: how a read with fewer than its total fell short ("a search
    returned 3 of the 5 matches its total announced"), `short_by` by how many (else 0);
    `twice`: a record came twice; `stale`: a later page brought only records of earlier ones
    (the read stopped there)."""

    def __init__(
        self,
        msg: str,
        got: tuple[Items, str | None],
        order: list[str],
        short: str | None,
        short_by: int = 0,
        twice: bool = False,
        stale: bool = False,
    ) -> None:
        super().__init__(msg)
        self.got, self.order, self.short, self.short_by = got, order, short, short_by
        self.twice, self.stale = twice, stale


def search_all(p: Puller, rtype: str, params: Params) -> tuple[Items, str | None]:
    """Every page of one search, with vendor fallbacks; (items, earliest server time)."""
    restarted = False
    # the records of each read of this search that had a record twice or fell short of its
    # total, sorted: a server whose order is not stable returns the same ones in another order
    moved: list[list[str]] = []
    # quirks whose fallback this search took: with what (and whether _count was sent)
    tried: dict[str, tuple[Params, bool]] = {}
    while True:
        current = obs_current(p, params) if rtype == "Observation" else params
        if current is None:  # (a component-code twin refused: the code twin is searched)
            # (that quirk only: a bare 400 dropped _count first, which was not the reason)
            confirm(p, {k: v for k, v in tried.items() if k == "observation-code-only"}, params)
            return [], None
        params = current
        if p.category_each and "," in dict(params).get("category", ""):
            got = each_value(p, rtype, params, "category")
            confirm(p, tried, params)
            return got
        if (ids := id_param(rtype, params)) and p.patient_each:
            got = each_value(p, rtype, params, ids)
            confirm(p, tried, params)
            return got
        try:
            got = search_pages(p, rtype, params)
        except PagesMoved as e:
            if not e.twice and 0 < e.short_by <= p.overcounts.get(rtype, 0):
                # only short of its total by no more than this server's totals of the type
                # were seen to overshoot tonight (read twice alike): taken as a clean read.
                # What is lost: a record deleted on the server while these pages were read
                # shifts the rest back and one slides past the next offset unseen, with no
                # record twice (an update still brings one twice and is read again), or a
                # page the server cut short once, by no more than that bound: missed tonight
                # (a full refresh removes it, an incremental mark moves past it). Reading
                # every search twice instead doubled a whole pull's requests on such a server
                # (docs/scheduling.md). (An earlier read of this search short only, before
                # the type's overcount was known, moved nothing: no warning for it.)
                if any(len(set(r)) < len(r) for r in moved):  # (one came twice: moved)
                    said_moved(p, rtype)
                confirm(p, tried, params)
                return e.got
            read = sorted(e.order)
            if read in moved and e.stale:
                # (a gateway dropping `_offset`, a server ignoring its own page token: taken
                # as listing records twice, the pages never served were silently lost)
                raise ServerError(
                    f"{rtype}: a search's later pages repeated only records of its earlier "
                    "pages, on two reads alike (the server does not page as its next links "
                    "say); search incomplete"
                ) from None
            if read in moved:
                # read twice alike: nothing moved, the server lists that record twice itself
                # (or counts in its total what it does not return: said)
                if e.short:
                    said_short(p, rtype, e)
                confirm(p, tried, params)
                return e.got
            if moved:
                said_moved(p, rtype)
            moved.append(read)
            if len(moved) >= MOVED_TRIES:
                # (kept, a full refresh would remove what was skipped as deleted on the
                # server, and a mark moved past it would never bring it)
                raise ServerError(
                    f"{rtype}: a search's results kept moving while its pages were read "
                    f"({len(moved)} reads; records written or deleted meanwhile): records may "
                    "have been skipped; nothing of it is recorded as complete"
                ) from None
            continue
        except IncompleteSearch as e:
            fixed = fallback(p, rtype, params, e)
            if fixed is None:
                raise
            params = fixed
        except ServerError as e:
            page = getattr(e, "page", 1)
            status = getattr(e, "status", 0)
            if page > 1 and status in (400, 404, 410) and not restarted:
                # the server's own next link refused: its paging state (HAPI _getpages,
                # a continuation token) expired; once more from the first page
                restarted = True
                p.report.warn(
                    f"{rtype}: the server no longer had a search's later pages "
                    f"(HTTP {status}); searched again from the first page"
                )
                continue
            if page > 1 and status:  # a later page failed: not a refusal of the query
                raise on_page(e, rtype, page) from None
            if page > 1:
                raise
            fixed = fallback(p, rtype, params, e)
            if fixed is None:
                raise named_refusal(e, params) from None
            sent = getattr(e, "counted", p.client.send_count)
            if (quirk := getattr(e, "quirk", None)) and (
                quirk == "no-count" or sent == p.client.send_count
            ):
                # (not when a parallel search switched _count off meanwhile: the retry
                # differs by that too, so its answer does not show this was the reason)
                tried[quirk] = (fixed, p.client.send_count)
            if quirk == "patient-each":
                # (a bare 400 first drops _count, which did not help: not learned; were it
                # needed too, the next night's first single-patient search learns it)
                tried.pop("no-count", None)
            params = fixed
        else:
            if moved:  # (a record came twice, now not: the first read's results moved)
                said_moved(p, rtype)
            confirm(p, tried, params)
            return got


def said_moved(p: Puller, rtype: str) -> None:
    p.report.warn(
        f"{rtype}: a search's results moved while its pages were read (a record came twice, "
        "or fewer than its total: records written or deleted meanwhile, so another may have "
        "been skipped); searched again from the first page"
    )


def said_short(p: Puller, rtype: str, e: PagesMoved) -> None:
    """A search read twice alike, short of its total: with no record twice, the type's totals
    overcount, and its later shortfalls tonight by no more than the most seen so (read twice
    alike) are taken at their first read (one warning per type)."""
    if e.twice:  # (also a record listed twice: no sign that the total is what is wrong)
        p.report.warn(f"{rtype}: {e.short}")
        return
    # (searches of one type in parallel: one may flag it while another has read once already)
    with p.lock:
        known = p.overcounts.get(rtype)
        p.overcounts[rtype] = max(known or 0, e.short_by)
    if known is None:
        p.report.warn(
            f"{rtype}: the server's Bundle.total overcounts ({e.short}, read twice alike); "
            f"later shortfalls against total by up to as many not read again"
        )


def search_pages(p: Puller, rtype: str, params: Params) -> tuple[Items, str | None]:
    """The pages of one search as the server gives them; (items, the first page's server time)."""
    items: Items = []
    clock: str | None = None
    total: object = None
    matched = page = 0
    order: list[str] = []  # the ids of the matches, as they came
    known: set[str] = set()  # (the same, to tell a page that brings no new one)
    stale = False
    shape = "&".join(f"{k}=.." for k in dict.fromkeys(k for k, _ in params))
    counted = p.client.send_count  # (read once: a parallel search may switch it off)
    try:
        for page, bundle, r in p.client.search(rtype, params, count=counted):
            if page == 1:
                p.answered.add(rtype)
                clock, total = server_time(bundle, r), bundle.get("total")
                searched(p, rtype, params, counted)
            origin = f"GET {rtype}?{shape}#page{page}"
            before = len(order)
            for entry in bundle.get("entry") or []:
                res = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(res, dict) or res.get("resourceType") is None:
                    continue
                if res.get("resourceType") == "OperationOutcome":
                    page_outcome(p, rtype, res)
                    continue
                items.append((res, origin))
                how = entry.get("search")
                mode = how.get("mode", "match") if isinstance(how, dict) else "match"
                if mode == "match" and res.get("resourceType") == rtype:
                    matched += 1
                    if isinstance(res.get("id"), str):
                        order.append(res["id"])
            ids = order[before:]
            if page > 1 and ids and known.issuperset(ids):
                stale = True  # (read no further: such a server may link on for ever)
                break
            known.update(ids)
    except ServerError as e:
        if page and not isinstance(e, IncompleteSearch):
            e.page = page + 1  # type: ignore[attr-defined]
        e.rtype = getattr(e, "rtype", None) or rtype  # type: ignore[attr-defined]
        # (a type the server has searched tonight is one it supports: unsupported.py)
        e.answered = e.rtype in p.answered  # type: ignore[attr-defined]
        raise
    short, short_by = None, 0
    twice = stale or len(known) < len(order)
    matched -= len(order) - len(known) if not stale else 0  # (each record once)
    if isinstance(total, int) and not isinstance(total, bool) and matched < total:
        # records deleted while paging (read again), or a server that drops some: said
        short = f"a search returned {matched} of the {total} matches its total announced"
        short_by = total - matched
    if short or twice:
        raise PagesMoved(
            f"GET {rtype}: results moved", (items, clock), order, short, short_by, twice, stale
        )
    return items, clock


def page_outcome(p: Puller, rtype: str, res: dict) -> None:
    """An OperationOutcome entry of a search page: an error, or a result flagged incomplete
    (truncated, too costly), fails the search; anything else is a run.json warning."""
    for severity, code in outcome_issues(res):
        if severity in ("fatal", "error") or (
            code in INCOMPLETE_CODES and severity != "information"
        ):
            raise IncompleteSearch(
                f"{rtype}: the server flagged a search result as failed or incomplete "
                f"({severity} {code}); nothing of it is recorded as complete"
            )
        p.report.warn(
            f"{rtype}: the server attached an OperationOutcome to search results "
            f"({severity} {code}); the results were kept"
        )
