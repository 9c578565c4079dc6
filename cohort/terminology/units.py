"""Unit conversion with UCUM semantics (ucumvert -> pint), unit aliases and molar masses."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cohort.errors import MappingError
from cohort.model import Quantity

_ANNOTATION = re.compile(r"\{[^{}]*\}")
# an annotation standing where a unit term stands (`mL/min/{1.73_m2}`, `/{HPF}`): UCUM reads it
# as 1; attached to a unit (`mg{creat}`) it only labels that unit
_LONE_ANNOTATION = re.compile(r"(^|[./])\{[^{}]*\}(?=$|[./])")
# UCUM arbitrary units: convertible only to themselves (with prefixes), never to other units
_ARBITRARY = re.compile(r"\[(?:IU|iU|arb'U|USP'U|GPL'U|MPL'U|APL'U|beth'U|todd'U|dye'U)\]")
# a UCUM power of ten as a factor of its own (`10*3/uL`, `10*-3`), not the tail of a number
_POWER = re.compile(r"(?<![\w.*^])10\*([+-]?\d+)")


@lru_cache(maxsize=1)
def registry() -> Any:
    """The UCUM-aware pint registry (built once per process: ~0.25 s with pint's cache).

    pint caches its parsed unit definitions (no data, only the library's definition files,
    keyed by their content) in the user's cache folder; without a writable one it parses them.
    """
    from ucumvert import PintUcumRegistry

    for kwargs in ({"cache_folder": ":auto:"}, {}):
        try:
            return _own_registry(**kwargs)
        except Exception:  # noqa: S112 - an unwritable or odd cache folder: try without it
            continue
    return PintUcumRegistry()  # another ucumvert, whose internals _own_registry does not fit


def _own_registry(**kwargs: Any) -> Any:
    """ucumvert's PintUcumRegistry whose UCUM transformer builds quantities of itself.

    ucumvert 0.3 hands its transformer no registry, so the transformer builds pint's
    application registry as well: a second full parse of pint's definition files, uncached
    (~0.45 s of the ~0.7 s a process spent on units, bench/RESULTS.md). Same definitions, one
    registry; any difference in ucumvert's internals falls back to the stock class.
    """
    from pathlib import Path

    import ucumvert.ucum_pint as up
    from pint import UnitRegistry

    class Registry(up.PintUcumRegistry):
        def _after_init(self) -> None:
            UnitRegistry._after_init(self)
            defs = Path(up.__file__).resolve().parent / "pint_ucum_defs.txt"
            self._build_cache(self.load_definitions(defs))
            self._ucum_parser = up.get_ucum_parser()
            self._from_ucum_transformer = up.UcumToPintTransformer(self).transform

    return Registry(**kwargs)


def warm() -> None:
    """Build the registry and the UCUM parser now (e.g. before forking workers)."""
    parse_ucum("g/dL")


@lru_cache(maxsize=2048)
def parse_ucum(unit: str) -> Any | None:
    """A pint Quantity for a UCUM string (annotations count as 1), or None if not UCUM."""
    bare = _ANNOTATION.sub("", _LONE_ANNOTATION.sub(r"\g<1>1", unit.strip())).strip()
    if bare.startswith("/"):
        bare = "1" + bare
    try:
        parsed = registry().from_ucum(bare or "1")
    except Exception:  # ucumvert raises lark and pint errors of many kinds
        return None
    return parsed if hasattr(parsed, "to") else None


_UCUM_HINT = (
    "write the unit in UCUM (10*3/uL, [IU]/mL, mg/dL, umol/L; https://ucum.org), or map a "
    "lab's spelling to it in unit_aliases.csv"
)


def ucum_problem(unit: str, aliases: Mapping[str, str] | None = None) -> str | None:
    """Why a unit written in units.csv or unit_aliases.csv is unusable (None when UCUM reads
    it): no conversion to or from it could ever succeed, and what to write (`aliases`: the
    unit_aliases.csv table, whose UCUM unit a lab's spelling there is). The first call builds
    the registry."""
    if unit and parse_ucum(unit) is not None:
        return None
    # (a researcher writes the unit as the lab report shows it: `x10^3/uL`)
    meant = (aliases or {}).get(unit.strip())
    if meant is not None and parse_ucum(meant) is not None:
        return f"UCUM cannot parse '{unit}': unit_aliases.csv reads it as {meant}: write {meant}"
    return f"UCUM cannot parse '{unit}': {_UCUM_HINT}"


def same_unit(a: str, b: str) -> bool:
    """Whether UCUM units `a` and `b` are one unit to every conversion `Units` makes: one of
    either is one of the other (10*9/L and 10*3/uL; to float error), with the same arbitrary
    units; where they are bare numbers (`1`, `{score}`) the same annotations too, as a
    `{titer}` converts to itself only. False when UCUM cannot read one. Asks UCUM (the
    registry is built on first use)."""
    pa, pb = parse_ucum(a), parse_ucum(b)
    if pa is None or pb is None or arbitrary(a) != arbitrary(b):
        return False
    bare = _ANNOTATION.sub("", a).strip(), _ANNOTATION.sub("", b).strip()
    if bare[0] in ("", "1") or bare[1] in ("", "1"):
        return set(bare) <= {"", "1"} and _annotations(a) == _annotations(b)
    factor = _to(1.0 * pa, pb)
    return factor is not None and math.isclose(factor, 1.0, rel_tol=1e-9)


def _annotations(unit: str) -> list[str]:
    return [a.lower() for a in _ANNOTATION.findall(unit)]


def arbitrary(unit: str) -> list[str]:
    """The arbitrary-unit atoms of a UCUM unit, [iU] read as [IU] (UCUM defines [IU] as 1 [iU]):
    any other arbitrary unit converts only to itself."""
    return sorted("[IU]" if atom == "[iU]" else atom for atom in _ARBITRARY.findall(unit))


@lru_cache(maxsize=256)  # (reasons show a unit for every patient a lab criterion reads)
def readable_unit(unit: str) -> str:
    """A UCUM unit as a reason shows it, in the notation of the trial's titles: a power of ten
    as "x10^3/uL" (UCUM `10*3/uL`: "20 10*3/uL" read as a multiplication); an annotation alone
    (`{titer}`, `{score}`) or `1`, a number without unit to UCUM, as nothing; the international
    unit without its brackets ("mIU/mL" of `m[IU]/mL`); any other as it is ("mg/dL"). Reasons
    only: evidence.csv keeps the concept's UCUM unit."""
    u = unit.strip()
    if u in ("", "1") or _ANNOTATION.fullmatch(u):
        return ""
    # UCUM's brackets of the international unit are no part of how a lab writes it ("mIU/mL")
    u = u.replace("[IU]", "IU").replace("[iU]", "IU")
    if "10*" not in u:
        return u
    return _POWER.sub(lambda m: ("x" if m.start() == 0 else "") + f"10^{m.group(1)}", u)


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """A concept's canonical unit and, when mass<->molar conversion applies, its molar mass."""

    unit: str
    molar_mass: float | None = None  # g/mol
    low: float | None = None  # plausible range in the canonical unit: outside it is no value
    high: float | None = None


class Units:
    """Converts quantities to each concept's canonical unit, or says it cannot (None)."""

    def __init__(
        self,
        specs: dict[str, UnitSpec],
        aliases: dict[str, str],
        written: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        self.specs = specs
        self.aliases = dict(aliases)
        # (where, column, unit) of each UCUM unit the mapping files name, for `problems`
        self.written = tuple(written)
        self._folded = {k.strip().lower(): v for k, v in aliases.items()}
        # (source unit, spec) -> factor to the canonical unit, worked out once per pair;
        # bounded, as UCUM annotations make unit strings free text
        self._factor_of = lru_cache(maxsize=10_000)(self._factor)

    def problems(self) -> list[MappingError]:
        """Each unit of the mapping files that UCUM cannot read, located (file:line, column).
        Needs the UCUM registry (~0.25 s to build), so loading does not ask: a run asks once,
        before evaluation (`Terminology.check_units`); `mappings check` asks `ucum_problem`."""
        found = (
            (where, column, ucum_problem(unit, self.aliases))
            for where, column, unit in self.written
        )
        return [MappingError(f"{w}: column '{c}': {p}") for w, c, p in found if p is not None]

    def to_ucum(self, unit: str) -> str:
        """The UCUM string for a unit as written (alias table first, then as-is)."""
        u = unit.strip()
        if u in self.aliases:
            return self.aliases[u]
        if parse_ucum(u) is not None:
            return u
        return self._folded.get(u.lower(), u)

    def readable(self, q: Quantity) -> bool:
        """Whether UCUM reads a unit `q` is written in (its code or its text), through the
        alias table as a conversion reads it: one that is not can never convert."""
        return any(w.strip() and parse_ucum(self.to_ucum(w)) is not None for w in (q.code, q.unit))

    def canonical_unit(self, concept: str) -> str | None:
        spec = self.specs.get(concept)
        return spec.unit if spec else None

    def convert(self, q: Quantity, concept: str) -> float | None:
        """The value in the concept's canonical unit; None when no sound conversion exists
        or the result is outside the concept's plausible range (a typo is no value, not a fail)."""
        spec = self.specs.get(concept)
        if spec is None or not math.isfinite(q.value):
            return None
        try:
            value = self._convert_any(q, spec)
        except Exception:  # pint raises for offset units (Cel, [degF]) and odd expressions
            return None
        return None if value is None or _outside(spec, value) else value

    def outside(self, q: Quantity, concept: str) -> tuple[float, float | None, float | None] | None:
        """`q` in the concept's canonical unit and the plausible range (low, high), when
        `convert` said None only because the number is outside it (a typo: 32500 10*3/uL)."""
        spec = self.specs.get(concept)
        if spec is None or (spec.low is None and spec.high is None) or not math.isfinite(q.value):
            return None
        try:
            value = self._convert_any(q, spec)
        except Exception:  # (as in convert)
            return None
        if value is None or not _outside(spec, value):
            return None
        return value, spec.low, spec.high

    def to(self, q: Quantity, unit: str) -> float | None:
        """`q` in the UCUM `unit` (no molar mass, no plausible range: e.g. a dose in mg);
        None when no sound conversion exists."""
        if not math.isfinite(q.value):
            return None
        try:
            return self._convert_any(q, UnitSpec(unit))
        except Exception:  # pint raises for offset units (Cel, [degF]) and odd expressions
            return None

    def _convert_any(self, q: Quantity, spec: UnitSpec) -> float | None:
        for written in (q.code, q.unit):
            if not written.strip():
                continue
            if written.strip() == spec.unit and "{" not in spec.unit:
                # already canonical: no need to build the UCUM registry
                return float(q.value)
            source = self.to_ucum(written)
            if parse_ucum(source) is None:
                continue
            value = self._convert(q.value, source, spec)
            if value is None:
                # a case variant of an alias may be valid UCUM of another kind (`K/ul`: kelvin
                # per microlitre); the alias, looked up whatever the case, is then what it says
                folded = self._folded.get(written.strip().lower())
                if folded is not None and folded != source and parse_ucum(folded) is not None:
                    return self._convert(q.value, folded, spec)
            return value
        if not _ANNOTATION.sub("", spec.unit).strip():
            return float(q.value)  # a count or score with no unit: {score}, {titer}
        return None

    def _convert(self, value: float, source: str, spec: UnitSpec) -> float | None:
        """`value` in `source` as the canonical unit, through a factor worked out once per
        unit pair: a pint conversion costs ~26 us, and one runs per lab criterion and patient.
        Rounded to 12 significant digits, so that a value exactly at a limit in another unit
        is not a float's last bit off it (pint alone reads 7 g/24h as 6.999999999999999)."""
        factor = self._factor_of(source, spec)
        if factor is None:
            return None
        if math.isnan(factor):  # not a plain factor: pint converts each value
            return self._through_pint(value, source, spec)
        converted = value * factor
        return float(f"{converted:.12g}") if math.isfinite(converted) else None

    def _factor(self, source: str, spec: UnitSpec) -> float | None:
        """The factor from `source` to the spec's unit; None when there is no conversion, NaN
        when it is not a plain factor (then each value goes through pint, as before)."""
        try:
            one, big = self._through_pint(1.0, source, spec), self._through_pint(1e6, source, spec)
        except Exception:  # pint raises for offset units (Cel, [degF]) and odd expressions
            return math.nan
        if one is None and big is None:
            return None
        if one is None or big is None or not math.isclose(big, 1e6 * one, rel_tol=1e-9):
            return math.nan
        return one

    def _through_pint(self, value: float, source: str, spec: UnitSpec) -> float | None:
        target = spec.unit
        src, tgt = parse_ucum(source), parse_ucum(target)
        if src is None or tgt is None:
            return None
        if arbitrary(source) != arbitrary(target):
            return None
        if not _ANNOTATION.sub("", target).strip():  # pure annotation target, e.g. {score}
            bare_src = _ANNOTATION.sub("", source).strip()
            if bare_src in ("", "1") and _annotations(source) in ([], _annotations(target)):
                return float(value)
            return None
        result = _to(value * src, tgt)
        if result is None and spec.molar_mass:
            per_mol = parse_ucum("g/mol")
            if per_mol is None:
                return None
            molar = per_mol * spec.molar_mass
            result = _to(value * src * molar, tgt)
            if result is None:
                result = _to(value * src / molar, tgt)
        return result


def _to(quantity: Any, target: Any) -> float | None:
    try:
        converted = quantity.to(target.units)
    except Exception:  # pint.DimensionalityError and friends
        return None
    value = float(converted.magnitude) / float(target.magnitude)
    return value if math.isfinite(value) else None


def _outside(spec: UnitSpec, value: float) -> bool:
    """Whether a converted value lies outside the concept's plausible range."""
    return (spec.low is not None and value < spec.low) or (
        spec.high is not None and value > spec.high
    )
