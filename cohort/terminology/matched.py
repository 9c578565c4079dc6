"""Which mapping rows a record's codings and names match, for `cohort explain`'s `matched:`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from cohort.model import Code
from cohort.terminology.codes import TEXT, ConceptIndex, Systems, norm_code
from cohort.terminology.mappings import MappingRow
from cohort.terminology.rows import RXNORM


class RowLookup:
    """Rows by concept: exact ones by (concept, system, code), the few others (prefix, range,
    glob, names) tried one by one. Built only when asked (explain), never by a run: the
    concept index a run matches with keeps no row, so that its hits stay small and shared."""

    def __init__(
        self,
        rows: Iterable[MappingRow],
        systems: Systems,
        products: Mapping[str, tuple[str, str]],
        groups: Mapping[str, set[str]],
    ) -> None:
        """`products`: RxNorm product code -> (ingredient, `file:line`) of the systemic
        products; `groups`: ingredient -> the concepts its rows name (a product's concepts)."""
        self._systems = systems
        self._products = products
        self._groups = groups
        self._exact: dict[tuple[str, str, str], list[MappingRow]] = defaultdict(list)
        self._other: dict[str, list[MappingRow]] = defaultdict(list)
        self._indexes: dict[MappingRow, ConceptIndex] = {}
        for row in rows:
            if row.exclude:  # (a record an exclude row matches is not the concept's at all)
                continue
            system = systems.canonical(row.system)
            if row.match == "exact" and system != TEXT:
                self._exact[(row.concept, system, norm_code(system, row.code))].append(row)
            else:
                self._other[row.concept].append(row)

    def matched(self, concept: str, codes: Iterable[Code], text: str = "") -> list[str]:
        """`system|code (file:line)` of each row of `concept` the codings or names match, as
        the row writes them (so that line of the file holds them); a product's concept is
        named by its products.csv line."""
        codes = list(codes)
        found: list[str] = []
        for c in codes:
            system = self._systems.canonical(c.system)
            for row in self._exact.get((concept, system, norm_code(system, c.code)), ()):
                found.append(_shown(row))
        for row in self._other.get(concept, ()):
            index = self._indexes.get(row)
            if index is None:
                index = self._indexes[row] = ConceptIndex([row], self._systems)
            by_code, by_name = index.hits(codes, text, self._systems)
            if by_code or by_name:
                found.append(_shown(row))
        for c in codes:
            if self._systems.canonical(c.system) != RXNORM:
                continue
            product = self._products.get(c.code.strip())
            if product is not None and concept in self._groups.get(product[0], ()):
                found.append(f"{RXNORM}|{c.code.strip()} ({product[1]})")
        return list(dict.fromkeys(found))


def _shown(row: MappingRow) -> str:
    return f"{row.system}|{row.code} ({row.file}:{row.line})"
