"""What a server says besides its records: OperationOutcome issues in search pages, error
answers and Bulk error files, records the store cannot key, and which search page failed."""

from __future__ import annotations

import re
from typing import Any

from cohort.errors import ServerError
from cohort.source.r4_types import RESOURCE_TYPES

_CODE = re.compile(r"[a-z][a-z-]*")

# OperationOutcome issue codes that say a search result lacks matches (FHIR issue-type)
INCOMPLETE_CODES = frozenset({"incomplete", "too-costly", "timeout", "throttled"})


class IncompleteSearch(ServerError):
    """A search answered 200 but an OperationOutcome entry says its result is incomplete."""


def outcome_issues(res: dict) -> list[tuple[str, str]]:
    """(severity, code) of each issue of an OperationOutcome (coded values only: the
    diagnostics text may quote patients, e.g. "no matching patient for MRN 123456"). A
    severity or code that is not a FHIR code token (lower-case letters and hyphens: a server
    that puts text there) is shown as "?"."""
    issues = res.get("issue")
    return [
        (_token(i.get("severity"), 20), _token(i.get("code"), 40))
        for i in (issues if isinstance(issues, list) else [])
        if isinstance(i, dict)
    ]


def _token(value: object, limit: int) -> str:
    ok = isinstance(value, str) and len(value) <= limit and _CODE.fullmatch(value)
    return value if ok else "?"  # type: ignore[return-value]


def type_name(value: object) -> str:
    """A `resourceType` a server sent, as a message may quote it: one of FHIR R4's ("Bundle",
    "OperationOutcome"), else "?" (the text of an answer that is no resource may quote the
    request or a patient, a bare surname included)."""
    return value if isinstance(value, str) and value in RESOURCE_TYPES else "?"


def keyed(res: dict) -> bool:
    """Whether the store can key this resource: a resourceType and a non-empty string id."""
    rid = res.get("id")
    return isinstance(res.get("resourceType"), str) and isinstance(rid, str) and rid != ""


def on_page(e: ServerError, rtype: str, page: int) -> ServerError:
    """`e`, of the same class (AuthError stays exit 7), saying which search page failed."""
    err = type(e)(f"{rtype}: page {page} of a search failed: {e}")
    err.__dict__.update(e.__dict__)
    return err


def operation_outcome_text(body: Any) -> str:
    """An OperationOutcome's issues with their texts and where they point, 'error invalid:
    diagnostics [expression]; ...' (or ''): only for telling server answers apart (a timeout,
    a required parameter), never for a message, a log line or run.json: the diagnostics may
    quote patients ("no patient with MRN 123456"). Messages use `operation_outcome_codes`."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (
            details.get("text") if isinstance(details, dict) else ""
        )
        # the parameter at fault is often named only where FHIR puts it, in expression/location
        at = [x for k in ("expression", "location") for x in _strings(issue.get(k))]
        parts.append(f"{issue.get('severity', '?')} {issue.get('code', '?')}: {text}".strip())
        parts[-1] += f" [{', '.join(at)}]" if at else ""
    return "; ".join(parts)


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def operation_outcome_codes(body: Any) -> str:
    """An OperationOutcome's issues as severity and code only, 'error invalid; ...' (or ''):
    what an error message may say of it."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    return "; ".join(f"{sev} {code}" for sev, code in outcome_issues(body)[:5])
