"""What an Observation search by mapped code asks with (`code`, `combo-code`, `code` and
`component-code`), what it falls back to when the server refuses combo-code or component-code,
and the `_lastUpdated` each of a known patient's searches asks with: that of the type's mark
when what the mark was searched with covers what the search asks for, per search, so that a
search falling back to `code` takes the mark of searches by code (no full pull)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohort.errors import ServerError

from .plan import BY_CODE, COMBO_CODE, COMPONENT_CODE, token_hash

if TYPE_CHECKING:
    from .puller import Params, Puller

# what a search by each parameter finds: a record by its own code, by a component's, or both
COVERS = {"code": {"own"}, COMBO_CODE: {"own", "component"}, COMPONENT_CODE: {"component"}}
# the parameters Observation searches by mapped code may use (Capability.code_params)
VARIANTS = (("code",), (COMBO_CODE,), ("code", COMPONENT_CODE))


def mark_hash(p: Puller, rtype: str, names: tuple[str, ...] | None = None) -> str:
    """What a type's mark was searched with: its mapped codes and, for Observation, the
    configured categories (a changed list pulls the known patients in full once; none
    configured: the codes' hash alone, as marks held it before) and the code parameters
    (`names`: those in use when not given)."""
    if rtype not in BY_CODE:
        return "-"
    cats = [f"category:{c}" for c in p.s.observation_category] if rtype == "Observation" else []
    # searched with combo-code or component-code: a mark of searches by code alone did not
    # cover results only a component's code holds (code alone: the hash marks held before)
    used = p.code_params(rtype) if names is None else names
    params = [f"param:{n}" for n in used if n != "code"]
    return token_hash([*p.tokens.get(rtype, []), *cats, *params])


def covered(p: Puller, rtype: str, raw: str | None) -> set[str]:
    """The code parameters whose searches the type's mark `raw` ("clock|hash") covers: those
    finding nothing its searches (same codes, same categories) could not have found. A search
    by code is covered by a mark of searches by combo-code; one by combo-code only by a mark of
    searches by combo-code, or by code and component-code. No parameter when the mark covers
    more than tonight's searches ask (the server no longer lists combo-code): those are pulled in
    full, as before, and what they no longer find is swept."""
    if not raw:
        return set()
    h = raw.partition("|")[2]
    for variant in VARIANTS if rtype == "Observation" else (("code",),):
        if h == mark_hash(p, rtype, variant):
            found = _finds(variant)
            if not found <= _finds(p.code_params(rtype)):
                return set()
            return {n for n, what in COVERS.items() if what <= found}
    return set()


def _finds(names: tuple[str, ...]) -> set[str]:
    return {what for n in names for what in COVERS[n]}


def since_param(p: Puller, name: str, since: str | None) -> Params:
    """The `_lastUpdated` a search by `name` asks with: while the known patients' searches run
    (`Puller.since_by`), the one for `name`; else `since`."""
    if p.since_by is not None and name in p.since_by:
        since = p.since_by[name]
    return [("_lastUpdated", f"gt{since}")] if since else []


def current(p: Puller, params: Params) -> Params | None:
    """An Observation search as the parameters now in use have it: combo-code turned back into
    code (with the `_lastUpdated` of a search by code), a component-code search dropped (None),
    once the server refused them."""
    keys = {k for k, _ in params}
    if COMPONENT_CODE in keys and COMPONENT_CODE not in p.obs_params:
        return None
    if COMBO_CODE in keys and COMBO_CODE not in p.obs_params:
        by_code = [("code" if k == COMBO_CODE else k, v) for k, v in params]
        if p.since_by is None:
            return by_code
        rest = [(k, v) for k, v in by_code if k not in ("_lastUpdated", "code")]
        code = [(k, v) for k, v in by_code if k == "code"]
        return [*rest, *since_param(p, "code", None), *code]
    return params


def without_components(p: Puller, name: str, e: ServerError, params: Params) -> Params:
    """`params` after the server refused `name` (combo-code or component-code): Observations
    are searched by code from now on (search_all rewrites or drops later searches); the
    quirk `observation-code-only` once that worked (quirks.py)."""
    p.obs_params = ("code",)
    e.quirk = "observation-code-only"  # type: ignore[attr-defined]
    p.report.warn(
        f"Observation: server refused {name} (HTTP {getattr(e, 'status', 0)}); searched by"
        " code: Observations whose only mapped code is a component's are not pulled"
    )
    return current(p, params) or params  # (a component-code twin: dropped, search_all)
