"""`cohort mappings expand-rxnorm`: products of a concept's ingredients from the NLM RxNav API.

The only module of the tools that talks HTTP; evaluation never imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import requests

from cohort.errors import MappingError, ServerError
from cohort.extract.rules import ReadingRules
from cohort.safetext import printable
from cohort.terminology.codes import Systems
from cohort.terminology.csvfile import display_path
from cohort.terminology.mappings import load_concept_rows, read_csv
from cohort.terminology.rows import RXNORM
from cohort.tools.csvedit import append_rows

BASE = "https://rxnav.nlm.nih.gov/REST"
TTYS = "SCD+SBD+GPCK+BPCK"
# what to do when RxNav is reachable but does not answer as documented (busy, down, a proxy)
AGAIN = "try again later"
# A display that names an RxNorm product, not an ingredient: a strength ("200 MG", "0.5 mg/mL",
# "1 %"), a brand in brackets (SBD: "... [Plaquenil]") or a pack in braces (GPCK/BPCK). An
# ingredient row's display is the ingredient's name (RxNorm writes no strength in an IN or PIN)
_PRODUCT_NAME = re.compile(
    r"\d\s*(?:mg|mcg|ug|g|ml|l|unt|unit|units|meq|mmol|iu|actuat|hr)\b|\d\s*%|\[[^\]]+\]|\{",
    re.IGNORECASE,
)


@dataclass
class ExpandResult:
    path: Path
    asked: int = 0
    added: int = 0
    known: int = 0
    # the ingredient RxCUIs RxNav lists no products for (retired, or not an ingredient)
    empty: list[str] = field(default_factory=list)
    # the concept's RxNorm rows of products (an SCD or SBD import-valueset wrote), not asked
    skipped: list[str] = field(default_factory=list)


def related_products(
    rxcui: str, *, timeout: float = 20.0, base: str = BASE
) -> list[dict[str, str]]:
    """[{rxcui, name, tty}] of the products (SCD, SBD, GPCK, BPCK) related to an ingredient."""
    url = f"{base}/rxcui/{rxcui}/related.json?tty={TTYS}"
    try:
        resp = requests.get(url, timeout=(min(timeout, 10.0), timeout))
    except requests.RequestException as exc:
        raise ServerError(
            f"cannot reach RxNav ({BASE}): {type(exc).__name__}; run this command where the "
            "internet is available (nothing was changed)"
        ) from None
    if resp.status_code != 200:
        raise ServerError(
            f"RxNav answered HTTP {resp.status_code} for RxCUI {rxcui}: {AGAIN} "
            "(nothing was changed)"
        )
    try:
        data: Any = resp.json()
    except ValueError:
        raise ServerError(
            f"RxNav sent a non-JSON answer for RxCUI {rxcui} (a proxy's page?): {AGAIN} "
            "(nothing was changed)"
        ) from None
    out: list[dict[str, str]] = []
    groups = ((data or {}).get("relatedGroup") or {}).get("conceptGroup") or []
    for group in groups:
        for prop in (group or {}).get("conceptProperties") or ():
            if isinstance(prop, dict) and str(prop.get("rxcui", "")).isdigit():
                out.append(
                    {
                        "rxcui": str(prop["rxcui"]),
                        "name": str(prop.get("name", "")),
                        "tty": str(prop.get("tty", group.get("tty", ""))),
                    }
                )
    return out


def _non_systemic(root: Path) -> re.Pattern[str] | None:
    """The reading rules' non-systemic words (as `cohort run` reads them: a broken rules.toml
    is the same located error), or None without a rules.toml."""
    if not (root / "rules.toml").is_file():
        return None
    return ReadingRules.load(root / "rules.toml").non_systemic


def _product(rxcui: str, display: str, listed: dict[str, str]) -> str | None:
    """Why a concept row's RxCUI is a product's, by its display or else the name its
    products.csv line gives it (which lists ingredients' own RxCUIs too, by their names);
    None: taken for an ingredient's."""
    if _PRODUCT_NAME.search(display):
        return f" ({printable(display)}): a product"
    name = listed.get(rxcui, "")
    if _PRODUCT_NAME.search(name):
        return f": a product (medications/products.csv: {printable(name)})"
    return None


def expand_rxnorm(
    concept: str, root: Path, *, timeout: float = 20.0, today: date | None = None
) -> ExpandResult:
    """Append the products of the concept's ingredient RxCUIs to medications/products.csv."""
    systems = Systems(
        (r.get("canonical"), r.get("alias"))
        for r in read_csv(root, root / "systems.csv", ("canonical", "alias"))
    )
    path = root / "medications" / "products.csv"
    listed = {
        str(r.get("rxcui")): str(r.get("display") or "")
        for r in read_csv(root, path, ("rxcui", "ingredient", "display", "systemic"))
    }
    have = set(listed)
    ingredients: list[tuple[str, str]] = []
    skipped: list[str] = []
    for r in load_concept_rows(root):
        if (
            r.concept != concept
            or r.exclude
            or r.match != "exact"
            or systems.canonical(r.system) != RXNORM
        ):
            continue
        rxcui = r.code.strip()
        why = _product(rxcui, r.display, listed)
        if why is None:
            ingredients.append((rxcui, r.ingredient))
        else:
            skipped.append(f"RxCUI {rxcui}{why}, not an ingredient ({r.file}:{r.line})")
    if not ingredients:
        only = f" (only {len(skipped)} product row(s))" if skipped else ""
        raise MappingError(
            f"concept '{concept}' has no RxNorm ingredient rows in "
            f"{display_path(root, root / 'concepts')}/{only}"
        )
    res = ExpandResult(path, skipped=skipped)
    non_systemic = _non_systemic(root)
    source = f"RxNav related.json {(today or date.today()).isoformat()}"
    new: list[dict[str, str]] = []
    for rxcui, ingredient in ingredients:
        res.asked += 1
        products = related_products(rxcui, timeout=timeout)
        if not products:
            res.empty.append(f"RxCUI {rxcui} ({ingredient})")
        for p in products:
            if p["rxcui"] in have:
                res.known += 1
                continue
            have.add(p["rxcui"])
            systemic = "N" if non_systemic and non_systemic.search(p["name"]) else "Y"
            new.append(
                {
                    "rxcui": p["rxcui"],
                    "ingredient": ingredient,
                    "display": p["name"],
                    "systemic": systemic,
                    "source": f"{source} ({p['tty']} of {rxcui})",
                }
            )
    res.added = append_rows(path, new)
    return res
