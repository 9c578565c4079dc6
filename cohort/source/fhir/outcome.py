"""What a server says besides its records: OperationOutcome issues in search pages and Bulk
error files, records the store cannot key, and which search page failed."""

from __future__ import annotations

import re

from cohort.errors import ServerError

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


_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")


def type_name(value: object) -> str:
    """A `resourceType` a server sent, as a message may quote it: a capitalised word ("Bundle",
    "OperationOutcome"), else "?" (the text of an answer that is no resource may quote the
    request or a patient)."""
    return value if isinstance(value, str) and _TYPE.fullmatch(value) else "?"


def keyed(res: dict) -> bool:
    """Whether the store can key this resource: a resourceType and a non-empty string id."""
    rid = res.get("id")
    return isinstance(res.get("resourceType"), str) and isinstance(rid, str) and rid != ""


def on_page(e: ServerError, rtype: str, page: int) -> ServerError:
    """`e`, of the same class (AuthError stays exit 7), saying which search page failed."""
    err = type(e)(f"{rtype}: page {page} of a search failed: {e}")
    err.__dict__.update(e.__dict__)
    return err
