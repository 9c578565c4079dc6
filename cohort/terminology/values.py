"""Reading titers and qualitative results (positive / negative / indeterminate) from values."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cohort.model import Code, ObsValue, Quantity

RESULTS = ("positive", "negative", "indeterminate")
_CMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "", "≤": "<=", "≥": ">=", "": ""}
_CMP_RE = r"(<=|>=|≤|≥|<|>|=)?"
_TITER_FULL = re.compile(rf"^\s*{_CMP_RE}\s*1\s*[:/]\s*(\d+(?:\.\d+)?)\s*$")
_TITER_ANY = re.compile(rf"(?<![\d.]){_CMP_RE}\s*1\s*:\s*(\d+(?:\.\d+)?)(?![\d.])")
_NUMBER = re.compile(rf"^\s*{_CMP_RE}\s*(\d+(?:\.\d+)?)\s*$")
_TITER_UNITS = {"", "1", "{titer}", "titer", "{titre}", "titre", "{ratio}", "ratio"}


@dataclass(frozen=True, slots=True)
class Titer:
    """A dilution titer: value 160 means 1:160; comparator is "", "<", "<=", ">" or ">="."""

    value: float
    comparator: str = ""

    def __str__(self) -> str:
        value = float(self.value)
        v = int(value) if value.is_integer() else value
        return f"{self.comparator}1:{v}"


def _titer_from_string(s: str) -> Titer | None:
    m = _TITER_FULL.match(s) or _NUMBER.match(s)
    if m is None:
        found = _TITER_ANY.findall(s)
        if len(found) != 1:
            return None
        cmp, num = found[0]
    else:
        cmp, num = m.group(1) or "", m.group(2)
    value = float(num)
    if value <= 0 or not math.isfinite(value):
        return None
    return Titer(value, _CMP[cmp])


# what may stand around a dilution in a result string besides the result word
_FILLER = re.compile(r"[(),;\[\]]|\b(?:titer|titre|at|dilution|of)\b", re.I)


def split_dilution(s: str) -> tuple[Titer | None, str]:
    """The one dilution a result string names and the words around it: "Positive 1:160" ->
    (1:160, "Positive"); (None, s) when it names none or more than one."""
    found = list(_TITER_ANY.finditer(s))
    if len(found) != 1:
        return None, s
    m = found[0]
    rest = _FILLER.sub(" ", f"{s[: m.start()]} {s[m.end() :]}")
    return _titer_from_string(m.group(0)), " ".join(rest.split())


def _titer_unit_ok(q: Quantity) -> bool:
    return all(written.strip().lower() in _TITER_UNITS for written in (q.code, q.unit))


def parse_titer(v: ObsValue) -> Titer | None:
    """Titer from a string ("1:160", ">1:640", "160"), a Ratio (1/160) or a `{titer}` Quantity."""
    if v.ratio is not None:
        num, den = v.ratio
        if num.value > 0 and den.value > 0:
            value = den.value / num.value  # (1e300 / 1e-300 is inf, 1e-300 / 1e300 is 0)
            if value > 0 and math.isfinite(value):
                return Titer(value, _CMP.get(num.comparator or den.comparator, ""))
        return None
    if v.quantity is not None:
        q = v.quantity
        if _titer_unit_ok(q) and q.value > 0 and math.isfinite(q.value):
            return Titer(float(q.value), _CMP.get(q.comparator, ""))
        return None
    for s in (v.string, v.text):
        if s.strip():
            t = _titer_from_string(s)
            if t is not None:
                return t
    return None


def normalise_word(s: str) -> str:
    """Comparable result wording: case, spacing and end punctuation ignored."""
    return " ".join(s.strip().strip(".!").lower().split())


class Qualitative:
    """Maps coded answers, result strings and interpretation codes to a result."""

    def __init__(
        self,
        codes: dict[tuple[str, str], str],
        strings: dict[str, str],
        interpretations: dict[tuple[str, str], str],
        canonical: Callable[[str], str],
    ) -> None:
        self.codes = codes
        self.strings = {normalise_word(k): v for k, v in strings.items()}
        self.interpretations = interpretations
        self.canonical = canonical
        # the result words as phrases in a longer text: longest first, so "not detected" is
        # read as itself and never as the "detected" inside it; a word joined to another by a
        # letter or hyphen ("undetected", "non-reactive") is not the shorter word
        phrases = sorted(self.strings, key=len, reverse=True)
        # (none listed: "(?!)", which matches nothing, where an empty alternation matches anywhere)
        alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in phrases) or "(?!)"
        self._phrase = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.I)
        # remembered: a site writes the same few result texts ("Negative", "<20 IU/mL
        # detected") on many results, and every lab check of every patient reads them
        self.named = functools.lru_cache(maxsize=4096)(self._named)
        self._word = functools.lru_cache(maxsize=4096)(self._read_word)

    def _coded(self, table: dict[tuple[str, str], str], codes: Sequence[Code]) -> str | None:
        for c in codes:
            found = table.get((self.canonical(c.system), c.code.strip()))
            if found is None:
                found = table.get((self.canonical(c.system), c.code.strip().upper()))
            if found is not None:
                return found
        return None

    def _read_word(self, s: str) -> str | None:
        return self.strings.get(normalise_word(s)) if s.strip() else None

    def value(self, v: ObsValue) -> str | None:
        """What the value says: a coded answer, then its text, displays or string (the whole
        of it one result word), then a boolean."""
        found = self._coded(self.codes, v.codes)
        if found is None:
            for s in [v.text, *(c.display for c in v.codes), v.string]:
                found = self._word(s)
                if found is not None:
                    break
        if found is None and v.boolean is not None:
            found = "positive" if v.boolean else "negative"
        return found

    def flag(self, interpretation: Sequence[Code]) -> str | None:
        """What the interpretation says: its codes, then their displays as result words."""
        found = self._coded(self.interpretations, interpretation)
        if found is None:
            for c in interpretation:
                found = self._word(c.display)
                if found is not None:
                    break
        return found

    def _named(self, s: str) -> str | None:
        """The result the result words inside a text name ("<20 IU/mL HBV DNA detected" ->
        positive); indeterminate when they name two results ("detected; repeat not
        detected"), None when it holds none."""
        found = {self.strings[normalise_word(m)] for m in self._phrase.findall(s)}
        if len(found) > 1:
            return "indeterminate"
        return found.pop() if found else None
