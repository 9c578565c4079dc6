"""Read a downloaded FHIR ValueSet: its codes, and what cannot be imported and why."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.errors import MappingError
from cohort.safetext import printable

# what to do with a file that holds no usable ValueSet (VSAC: the value set's page, "Download",
# the expansion as FHIR JSON; a FHIR terminology server: `ValueSet/<id>/$expand`)
DOWNLOAD = (
    "download the value set's expansion as FHIR JSON (VSAC: Download, JSON; a terminology "
    "server: ValueSet/<id>/$expand) and import that file"
)


@dataclass
class Codes:
    """The (system, code, display) of a ValueSet, and the entries left out with why."""

    codes: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_valueset(file: Path) -> dict[str, Any]:
    """The ValueSet of a JSON file: the resource itself, or the one ValueSet of a Bundle (a
    VSAC or terminology server search answers with a searchset Bundle)."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        raise MappingError(f"{file}: cannot read the ValueSet ({type(exc).__name__})") from exc
    try:
        vs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MappingError(
            f"{file}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): an "
            "incomplete download or a web page saved instead? download it again"
        ) from None
    kind = vs.get("resourceType") if isinstance(vs, dict) else None
    if kind == "Bundle":
        found = [
            e["resource"]
            for e in vs.get("entry") or ()
            if isinstance(e, dict)
            and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == "ValueSet"
        ]
        if len(found) == 1:
            return dict(found[0])
        if found:
            raise MappingError(
                f"{file}: a Bundle of {len(found)} ValueSets: save each one to a file of its "
                "own and import them one by one"
            )
        raise MappingError(f"{file}: a Bundle holding no ValueSet: {DOWNLOAD}")
    if kind != "ValueSet":
        what = f"a {printable(str(kind))}" if isinstance(kind, str) and kind else "JSON"
        raise MappingError(f"{file}: {what}, not a FHIR ValueSet: {DOWNLOAD}")
    return vs


def _contains(items: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, entry) of `expansion.contains`, depth first, nested `contains` included."""
    for n, item in enumerate(items or (), 1):
        if isinstance(item, dict):
            yield f"{path} entry {n}", item
            yield from _contains(item.get("contains"), f"{path} entry {n}.contains")


def _entry(where: str, system: Any, item: dict[str, Any], out: Codes) -> None:
    """One expansion or compose entry into `out`: a code, or a line saying why it is none."""
    code, display = item.get("code"), str(item.get("display") or "")
    if not code or not system:
        named = printable(str(code)) if code else f"'{printable(display)}'"
        out.skipped.append(f"{where} ({named}): no {'code' if not code else 'system'}")
    elif item.get("abstract") is True:
        # FHIR: an abstract entry groups codes for navigation and is not a code for records
        out.skipped.append(
            f"{printable(f'{system}|{code}')}: abstract in the expansion (a heading, not a "
            "code for records)"
        )
    else:
        out.codes.append((str(system), str(code), display))


def _not_listed(part: str, n: int, inc: dict[str, Any], file: Path) -> MappingError:
    """A compose entry that selects codes only a terminology server can list."""
    how = (
        "by a filter"
        if inc.get("filter")
        else "from other value sets"
        if inc.get("valueSet")
        else "as a whole code system"
    )
    return MappingError(
        f"{file}: compose.{part}[{n}] selects codes {how}, which only a terminology server "
        f"can list: {DOWNLOAD}; nothing was written"
    )


def _part(vs: dict[str, Any], key: str) -> dict[str, Any]:
    """`expansion` or `compose`, empty when absent or not an object."""
    part = vs.get(key)
    return part if isinstance(part, dict) else {}


def _as_written(system: str, code: str) -> tuple[str, str]:
    return system, code


def valueset_codes(
    vs: dict[str, Any],
    file: Path,
    key: Callable[[str, str], tuple[str, str]] = _as_written,
) -> Codes:
    """The expansion's codes, else those `compose.include` lists less `compose.exclude`'s, a
    code compared by its `key` (system, code): the caller's systems.csv's canonical system and
    the code as the tool compares it, so an exclude naming the system by an alias (an OID, an
    edition URI) excludes. A compose part that selects codes it does not list (a filter,
    another value set, a whole system) is refused whole: the codes listed beside it would look
    like all of them."""
    out = Codes()
    expansion = _part(vs, "expansion")
    entries = list(_contains(expansion.get("contains"), "expansion.contains"))
    total = expansion.get("total")
    # a server pages a large $expand (count, offset): a page would look like the whole set
    if isinstance(total, int) and total > len(entries):
        raise MappingError(
            f"{file}: holds {len(entries)} of the expansion's {total} codes (one page of it): "
            "download the whole expansion (a terminology server: $expand without count); "
            "nothing was written"
        )
    for where, item in entries:
        _entry(where, item.get("system"), item, out)
    if out.codes or out.skipped:
        return out
    compose = _part(vs, "compose")
    excluded: set[tuple[str, str]] = set()
    for n, exc in enumerate(compose.get("exclude") or (), 1):
        if not isinstance(exc, dict):
            continue
        if not exc.get("concept"):
            raise _not_listed("exclude", n, exc, file)
        system = str(exc.get("system"))
        excluded |= {key(system, str(c.get("code"))) for c in exc["concept"] if isinstance(c, dict)}
    for n, inc in enumerate(compose.get("include") or (), 1):
        if not isinstance(inc, dict):
            continue
        if not inc.get("concept") or inc.get("filter") or inc.get("valueSet"):
            raise _not_listed("include", n, inc, file)
        for k, c in enumerate(inc["concept"], 1):
            if not isinstance(c, dict):
                continue
            if key(str(inc.get("system")), str(c.get("code"))) in excluded:
                shown = printable(f"{inc.get('system')}|{c.get('code')}")
                out.skipped.append(f"{shown}: excluded by the ValueSet's compose.exclude")
                continue
            _entry(f"compose.include[{n}].concept entry {k}", inc.get("system"), c, out)
    if not out.codes and not out.skipped:
        raise MappingError(
            f"{file}: the ValueSet lists no codes (no expansion.contains or "
            f"compose.include.concept): {DOWNLOAD}"
        )
    return out
