"""What a search does when the server refuses one of its parameters: drop or add which one."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cohort.errors import ServerError

from .answer import earliest
from .codeparams import without_components
from .outcome import IncompleteSearch
from .plan import COMBO_CODE, COMPONENT_CODE, DEFAULT_CATEGORIES

if TYPE_CHECKING:
    from .puller import Items, Params, Puller


def fallback(p: Puller, rtype: str, params: Params, e: ServerError) -> Params | None:
    """The search's parameters changed to get past error `e` (the first page refused, or a
    result flagged incomplete), with a run.json warning; None when nothing is to be done.
    A parameter the server's answer names is dropped (or, `category`, added; `combo-code`
    turned back into `code`, `component-code` searches dropped); an answer that names none
    drops `_include`, then `_count` (once: it costs one request), then splits a category list,
    then gives up combo-code / component-code, before `_lastUpdated` (that costs a full pull
    of the type)."""
    status, text = getattr(e, "status", 0), str(getattr(e, "outcome", "")).lower()
    names = {k for k, _ in params}
    if isinstance(e, IncompleteSearch):
        if "_include" not in names:
            return None
        # e.g. a server that caps included resources per page
        return p._without_include(rtype, params, "flagged results with _include incomplete")
    if status not in (400, 422):  # (403: the type outside the token's scope, search.py)
        return None
    if rtype == "Observation" and "category" in text and "category" not in names:
        p.obs_category = p.obs_category or list(DEFAULT_CATEGORIES)
        e.quirk = "observation-category"  # type: ignore[attr-defined]
        p.report.warn(
            "Observation: server requires 'category'; searched with category="
            + ",".join(p.obs_category)
        )
        return [*params, ("category", ",".join(p.obs_category))]
    named = named_in(text, names | {"_count"})
    ids = id_param(rtype, params)
    if ids and named_in(text, {ids, "patient"}):
        return _each_patient(p, rtype, params, e)
    component = [k for k in (COMBO_CODE, COMPONENT_CODE) if k in names]
    if component and component[0] in named:
        return without_components(p, component[0], e, params)
    if "_lastUpdated" in named:
        return _without_since(p, rtype, params, e)
    if "_include" in names and ("_include" in named or not named):
        e.quirk = f"no-include:{rtype}"  # type: ignore[attr-defined]
        return p._without_include(rtype, params, "rejected _include")
    # (whether this request carried _count, not whether searches still send it: a parallel
    # search refused first may have switched it off since)
    counted = getattr(e, "counted", p.client.send_count)
    if counted and ("_count" in named or (status == 400 and not named)):
        # (the client adds _count to every search: from now on it is left out)
        p.client.send_count = False
        e.quirk = "no-count"  # type: ignore[attr-defined]  # (remembered once it worked)
        why = f"{rtype}: server refused a search (HTTP 400) naming no parameter; tried"
        if "_count" in named:
            why = "server rejected _count; searched"
        p.report.warn(why + " without _count, with the server's own page size, from then on")
        return params
    if "," in dict(params).get("category", "") and ("category" in named or not named):
        # (Epic documents its Observation category as one value, not a list)
        p.category_each = True
        e.quirk = "category-each"  # type: ignore[attr-defined]
        p.report.warn(
            f"{rtype}: server takes one category per search; searched category by category"
        )
        return params  # (paging.search_all splits it)
    if component and not named:  # (before _lastUpdated, which costs a full pull)
        return without_components(p, component[0], e, params)
    if "_lastUpdated" in names and status == 400 and not named:
        return _without_since(p, rtype, params, e)
    if ids and status == 400 and not named:  # (last: it costs a request per patient)
        return _each_patient(p, rtype, params, e)
    return None


def named_refusal(e: ServerError, params: Params) -> ServerError:
    """`e`, a refusal (400/422) no fallback got past, saying which of the search's parameters
    its answer names ("GET /fhir/Condition: HTTP 400: error not-supported" said nothing of
    what the server refused): the names are the search's own, never the answer's text."""
    text = str(getattr(e, "outcome", "")).lower()
    named = named_in(text, {k for k, _ in params})
    if getattr(e, "status", 0) not in (400, 422) or not named:
        return e
    which = ", ".join(f"'{k}'" for k in sorted(named))
    err = type(e)(
        f"{e} (the answer names the search's parameter {which}, which cannot be left out)"
    )
    err.__dict__.update(e.__dict__)
    return err


def id_param(rtype: str, params: Params) -> str | None:
    """The parameter of a search that lists several patients ("patient", or "_id" in a
    search of Patients), else None (not Medications by id: a list of those refused says
    nothing of patients)."""
    key = "_id" if rtype == "Patient" else "patient"
    return next((k for k, v in params if k == key and "," in v), None)


def _each_patient(p: Puller, rtype: str, params: Params, e: ServerError) -> Params:
    # (Epic and athena document one patient per search; paging.search_all splits the list,
    # and search.pull_ids plans one patient per search from then on)
    p.patient_each = True
    e.quirk = "patient-each"  # type: ignore[attr-defined]
    p.report.warn("server takes one patient per search; searched patient by patient")
    return params


def each_value(p: Puller, rtype: str, params: Params, name: str) -> tuple[Items, str | None]:
    """search_all once per value of the search's comma-joined parameter `name` (a category, a
    patient): the records of all, each once, and the earliest server clock."""
    rest = [(k, v) for k, v in params if k != name]
    items: Items = []
    seen: set[tuple[object, object]] = set()
    clocks: list[str] = []
    for value in dict(params)[name].split(","):
        got, clock = p.search_all(rtype, [*rest, (name, value)])
        for res, origin in got:
            if (key := (res.get("resourceType"), res.get("id"))) not in seen:
                seen.add(key)
                items.append((res, origin))
        clocks += [clock] if clock else []
    return items, earliest(clocks)


def _without_since(p: Puller, rtype: str, params: Params, e: ServerError) -> Params:
    p.no_since.add(rtype)
    e.quirk = f"no-lastupdated:{rtype}"  # type: ignore[attr-defined]
    p.report.warn(f"{rtype}: server rejected _lastUpdated; full pull of that type")
    return [(k, v) for k, v in params if k != "_lastUpdated"]


def named_in(text: str, names: set[str]) -> set[str]:
    """The parameter `names` the (lower-cased) error text names as words: "code" is not named
    by an issue code "code-invalid", "_include" is by "Unsupported _include value"."""
    return {k for k in names if re.search(rf"(?<![\w-]){re.escape(k.lower())}(?![\w-])", text)}


def refusal(p: Puller, rtype: str) -> str:
    """A run.json warning's start for a type whose search the server refused with 403."""
    if p.s.auth == "smart-backend":
        why = f"outside the scope granted? [sites.server] scope = '{p.s.scope}'"
    else:
        why = "outside the access the credentials grant?"
    return f"{rtype}: the server refused its search (HTTP 403: {why})"
