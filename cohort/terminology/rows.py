"""What one line of each mapping file must hold: the one set of rules `Terminology.load` (which
raises the first problem, so `cohort run` stops) and `cohort mappings check` (which collects them
all) both apply. Every problem is a `MappingError` naming file, line and column."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from cohort.codesystems import system_key
from cohort.errors import MappingError
from cohort.terminology.codes import CVX, ICD10CM, TEXT, Systems
from cohort.terminology.mappings import (
    MappingRow,
    Record,
    flag,
    invisible_problem,
    parse_bound,
    parse_number,
    verified_flag,
)
from cohort.terminology.units import UnitSpec, same_unit
from cohort.terminology.values import RESULTS

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
_LOINC_RE = re.compile(r"^(\d{1,7})-(\d)$")
_LOINC_PART_RE = re.compile(r"^L[AGP]\d{1,8}-\d$")  # answer/group/part codes: shape only
_ICD10CM_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
# a prefix row's leading characters of such codes: "C" (all of chapter C), "M3", "M32."
_ICD10CM_PREFIX_RE = re.compile(r"^[A-Z](?:[0-9](?:[0-9A-Z](?:\.?[0-9A-Z]{0,4})?)?)?$")
VALUE_KINDS = ("code", "string", "interpretation")
# what Excel leaves of a code it read as a number or a date when the file is saved back: a
# long number in scientific notation as Excel writes it (one digit, "E+"; ICD-10-PCS 3E03305
# is a code), a date in a short or local form
_SCIENTIFIC_RE = re.compile(r"^\d(?:[.,]\d+)?E\+\d{1,3}$", re.IGNORECASE)
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DATE_RE = re.compile(
    rf"^(?:\d{{1,4}}[/.-]\d{{1,2}}[/.-]\d{{1,4}}|(?:{_MONTHS})[a-z]*[ -]?\d{{1,4}}"
    rf"|\d{{1,2}}[ -](?:{_MONTHS})[a-z]*)$",
    re.IGNORECASE,
)
TEXT_CELL = "type the code again in a cell formatted as Text (docs/mappings-howto.md, section 3)"
# Verhoeff's dihedral-group tables: the last digit of a SNOMED CT identifier checks the rest
_VERHOEFF_D = (
    "0123456789",
    "1234067895",
    "2340178956",
    "3401289567",
    "4012395678",
    "5987604321",
    "6598710432",
    "7659821043",
    "8765932104",
    "9876543210",
)
_VERHOEFF_P = (
    "0123456789",
    "1576283094",
    "5803796142",
    "8916043527",
    "9453126870",
    "4286573901",
    "2793806415",
    "7046913258",
)


def loinc_check_digit(number: str) -> int:
    """The LOINC mod-10 check digit of the numeric part (LOINC Users' Guide, appendix)."""
    digits = number[::-1]  # position 1 = rightmost digit
    odd = "".join(digits[i] for i in range(0, len(digits), 2))[::-1]
    even = "".join(digits[i] for i in range(1, len(digits), 2))[::-1]
    joined = even + str(int(odd) * 2)
    total = sum(int(d) for d in joined)
    return (10 - total % 10) % 10


def verhoeff_valid(digits: str) -> bool:
    """Whether a string of digits ends in its Verhoeff check digit."""
    check = 0
    for i, d in enumerate(reversed(digits)):
        check = int(_VERHOEFF_D[check][int(_VERHOEFF_P[i % 8][int(d)])])
    return check == 0


def code_problem(system: str, code: str) -> str | None:
    """Why `code` is malformed in the canonical `system`, or None when it looks right."""
    c = code.strip()
    if _SCIENTIFIC_RE.match(c):
        return f"'{c}' is a number Excel wrote in scientific notation, not a code: {TEXT_CELL}"
    if system == LOINC:
        if _LOINC_PART_RE.match(c):
            return None
        m = _LOINC_RE.match(c)
        if not m and _DATE_RE.match(c):
            return f"'{c}' is not a LOINC code (NNNNN-N): Excel turned it into a date; {TEXT_CELL}"
        if not m:
            return f"'{c}' is not a LOINC code (NNNNN-N)"
        want = loinc_check_digit(m.group(1))
        if int(m.group(2)) != want:
            return f"LOINC '{c}' has a wrong check digit (expected {m.group(1)}-{want})"
    elif system == ICD10CM:
        if not _ICD10CM_RE.match(c.upper()):
            return f"'{c}' is not shaped like an ICD-10-CM code (e.g. M32.14)"
    elif system == RXNORM:
        if not c.isdigit():
            return f"RxCUI '{c}' is not numeric"
    elif system == CVX and not (c.isdigit() and 1 <= len(c) <= 3):
        return f"CVX '{c}' is not 1-3 digits"
    elif system == SNOMED:
        if not (c.isdigit() and 6 <= len(c) <= 18 and not c.startswith("0")):
            return f"'{c}' is not a SNOMED CT identifier (6 to 18 digits)"
        if not verhoeff_valid(c):
            return (
                f"SNOMED CT '{c}' has a wrong check digit (a digit mistyped, or a long number "
                f"Excel rounded: {TEXT_CELL})"
            )
    return None


class KnownSystems:
    """The code systems systems.csv names. A system it does not name is a site's own (fine)
    unless it is a near miss of one it does (`http://lonic.org`, `LONC`, or one with a path
    after it, `https://loinc.org/777-3/`): that is a typo, and a row in it would never match
    anything."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        pairs = list(pairs)
        self.systems = Systems(pairs)
        self.canonicals = {c for c, _ in pairs}
        self.keys = {system_key(a): c for c, a in pairs if "*" not in a}
        self.keys.update({system_key(c): c for c in self.canonicals})
        # memos: a mapping file names a handful of systems on hundreds of rows
        self._canonical: dict[str, str] = {}
        self._near: dict[str, str | None] = {}

    def canonical(self, system: str) -> str:
        found = self._canonical.get(system)
        if found is None:
            found = self._canonical[system] = self.systems.canonical(system)
        return found

    def known(self, system: str) -> bool:
        return system == TEXT or self.canonical(system) in self.canonicals

    def near_miss(self, system: str) -> str | None:
        """The canonical URI an unknown `system` is a misspelling of, if it is one."""
        if system not in self._near:
            close: list[str] = []
            if not self.known(system):
                key = system_key(system)
                close = difflib.get_close_matches(key, list(self.keys), 1, 0.8)
                # a known URI with a code or a web page's path after it (loinc.org/777-3/)
                close = close or [k for k in self.keys if "." in k and key.startswith(k + "/")]
            self._near[system] = self.keys[close[0]] if close else None
        return self._near[system]


def system_pair(rec: Record) -> tuple[str, str]:
    """One line of systems.csv: (canonical, alias), neither empty."""
    for column in ("canonical", "alias"):
        if not rec.get(column):
            raise rec.fail(column, "empty")
    return rec.get("canonical"), rec.get("alias")


def coding_problems(
    where: str, known: KnownSystems, system: str, codes: Iterable[str]
) -> list[MappingError]:
    """A misspelt code system (with the URI meant), and each code malformed in its system."""
    problems: list[MappingError] = []
    canonical = known.canonical(system)
    meant = known.near_miss(system)
    if meant is not None:
        problems.append(
            MappingError(
                f"{where}: column 'system': unknown code system '{system}' "
                f"(did you mean '{meant}'?)"
            )
        )
        canonical = meant
    for code in codes:
        problem = code_problem(canonical, code)
        if problem:
            problems.append(MappingError(f"{where}: column 'code': {problem}"))
    return problems


def concept_problems(row: MappingRow, known: KnownSystems) -> list[MappingError]:
    """A concept row's misspelt system and malformed codes (its structure: `concept_row`)."""
    if row.system == TEXT:
        return []
    meant = known.near_miss(row.system) or known.canonical(row.system)
    codes: list[str] = []
    if row.match == "exact":
        codes = [row.code]
    elif row.match == "range" and meant == ICD10CM:
        codes = row.code.split("-")
    elif row.match == "prefix" and meant == ICD10CM:
        # a code's leading characters: shorter than a code ("C", "M3") is a prefix, not a typo
        codes = [] if _ICD10CM_PREFIX_RE.match(row.code.strip().upper()) else [row.code]
    return coding_problems(f"{row.file}:{row.line}", known, row.system, codes)


def value_row(rec: Record) -> tuple[str, str, str, str, str]:
    """One line of values.csv: (kind, system, code, result, verified); the system is empty for
    `string` (a coded kind's system and code are checked by `coding_problems`). A file without
    a `verified` column (a mappings folder older than the column) reads as verified."""
    kind, result, code = rec.get("kind"), rec.get("result"), rec.get("code")
    if result not in RESULTS:
        raise rec.fail("result", f"'{result}' is not one of {', '.join(RESULTS)}")
    if not code:
        raise rec.fail("code", "empty")
    for column in ("system", "code"):
        if problem := invisible_problem(rec.get(column)):
            raise rec.fail(column, problem)
    verified = verified_flag(rec) if "verified" in rec.values else "Y"
    if kind == "string":
        return kind, "", code, result, verified
    if kind not in VALUE_KINDS:
        raise rec.fail("kind", f"unknown kind '{kind}' (code, string, interpretation)")
    if not rec.get("system"):
        raise rec.fail("system", "empty")
    return kind, rec.get("system"), code, result, verified


def ingredient_row(rec: Record) -> tuple[str, float | None]:
    """One line of medications/ingredients.csv: (ingredient, prednisone factor)."""
    return rec.get("ingredient").lower(), parse_number(rec, "prednisone_factor")


def product_row(rec: Record) -> tuple[str, str, bool]:
    """One line of medications/products.csv: (rxcui, ingredient, systemic)."""
    systemic = flag(rec, "systemic", ("Y", "N"))
    if not rec.get("rxcui") or not rec.get("ingredient"):
        raise rec.fail("rxcui" if not rec.get("rxcui") else "ingredient", "empty")
    problem = code_problem(RXNORM, rec.get("rxcui"))
    if problem:
        raise rec.fail("rxcui", problem)
    return rec.get("rxcui"), rec.get("ingredient").lower(), systemic == "Y"


def unit_row(rec: Record) -> tuple[str, UnitSpec]:
    """One line of units.csv: (concept, its unit spec). Whether UCUM reads the unit needs the
    UCUM registry (~0.25 s to build): `Units.problems` asks that later, see `ucum_problem`."""
    if not rec.get("unit"):
        raise rec.fail("unit", "empty")
    return rec.get("concept"), UnitSpec(
        rec.get("unit"),
        parse_number(rec, "molar_mass_g_per_mol"),
        parse_bound(rec, "plausible_min"),
        parse_bound(rec, "plausible_max"),
    )


def alias_row(rec: Record) -> tuple[str, str]:
    """One line of unit_aliases.csv: (unit as written in data, its UCUM unit)."""
    if not rec.get("alias") or not rec.get("ucum"):
        raise rec.fail("ucum" if rec.get("alias") else "alias", "empty")
    return rec.get("alias"), rec.get("ucum")


def alias_conflict(
    first: dict[str, tuple[int, str]], rec: Record, alias: str, ucum: str
) -> MappingError | None:
    """An alias on a second line with another unit (`first`: each alias's first line and unit,
    kept here): an alias reads as one unit, and the later line won without a word. Aliases
    compare as `Units.to_ucum` looks them up first: as written, spaces around them aside, case
    counting (the shipped `G/L`, 10*9/L, and `g/l`, g/L, are two aliases). The same alias with
    the same unit again reads the same: no problem (as a code twice for one concept); so does
    one with the same unit written otherwise (10*9/L beside 10*3/uL: `alias_same_unit`).
    UCUM is asked about such a pair only, so loading files without one never builds it."""
    line = int(rec.where.rsplit(":", 1)[1])
    seen_line, seen_ucum = first.setdefault(alias, (line, ucum))
    if seen_ucum == ucum or same_unit(seen_ucum, ucum):
        return None
    return rec.fail(
        "alias",
        f"'{alias}' is also on line {seen_line} with another unit ('{seen_ucum}' there, "
        f"'{ucum}' here): delete the wrong line",
    )


def alias_same_unit(first: dict[str, tuple[int, str]], alias: str, ucum: str) -> str | None:
    """`mappings check`'s note on an alias `alias_conflict` let pass with a unit written
    otherwise than on its first line: a note, not a warning, as neither line is wrong and a
    run reads the alias alike whichever it takes (nothing to act on); it says that the two
    were compared, for the reader who finds the alias twice."""
    seen_line, seen_ucum = first[alias]
    if seen_ucum == ucum:
        return None
    return (
        f"column 'alias': '{alias}' is also on line {seen_line} as '{seen_ucum}', the same unit "
        f"as '{ucum}' here: either line reads it alike"
    )


OVERLAPS = ("overlaps.csv", ("concept", "also", "why"))  # optional file, its columns


def overlap_row(rec: Record) -> frozenset[str]:
    """One line of overlaps.csv: a pair of concepts a code may belong to at once by design
    (`mappings check` does not call such a code a conflict; nothing else reads it)."""
    for key in ("concept", "also"):
        if not rec.get(key):
            raise rec.fail(key, "empty")
    if rec.get("concept") == rec.get("also"):
        raise rec.fail("also", "name a concept other than 'concept'")
    if not rec.get("why"):
        raise rec.fail("why", "empty: say why codes of both are by design")
    return frozenset((rec.get("concept"), rec.get("also")))
