"""`mappings expand-rxnorm` asks RxNav only about a concept's ingredient rows: a product code
(an SCD/SBD RxCUI) that `import-valueset` wrote to concepts/medications.csv beside them is not
an ingredient, and is skipped with a line saying so."""

from __future__ import annotations

import re
from pathlib import Path

import responses
from click.testing import CliRunner
from researcher_helpers import copy_mappings

from cohort.cli import cli
from cohort.tools.rxnav import BASE

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SRC = "VSAC 2.16.840.1.113762.1.4.1.1"


def _rows(m: Path, rows: list[str]) -> None:
    path = m / "concepts" / "medications.csv"
    with path.open("a", encoding="utf-8") as fh:
        fh.writelines(row + "\n" for row in rows)


def _asked() -> list[str]:
    return [re.search(r"/rxcui/(\d+)/", c.request.url).group(1) for c in responses.calls]  # type: ignore[union-attr]


def _expand(m: Path) -> str:
    args = ["mappings", "expand-rxnorm", "--concept", "antimalarial", "--mappings", str(m)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


@responses.activate
def test_product_rows_of_a_concept_are_not_sent_to_rxnav(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    # what import-valueset writes for a VSAC set of hydroxychloroquine products: an SCD, an
    # SBD (brand in brackets) and a pack (braces); and a hand-written product row
    _rows(m, [
        f"antimalarial,hydroxychloroquine,{RXNORM},900001,exact,,hydroxychloroquine sulfate 300 MG Oral Tablet,{SRC},N,",
        f"antimalarial,hydroxychloroquine,{RXNORM},900002,exact,,hydroxychloroquine sulfate 200 MG Oral Tablet [Plaquenil],{SRC},N,",
        f"antimalarial,hydroxychloroquine,{RXNORM},900003,exact,,{{30 (hydroxychloroquine sulfate 200 MG Oral Tablet) }} Pack,{SRC},N,",
        f"antimalarial,chloroquine,{RXNORM},900004,exact,,chloroquine phosphate 250 mg tablet,site pharmacy,local,",
    ])  # fmt: skip
    responses.add(
        responses.GET,
        re.compile(re.escape(BASE) + r"/rxcui/\d+/related\.json.*"),
        json={"relatedGroup": {"conceptGroup": [{"tty": "SCD"}]}},
    )
    output = _expand(m)
    # the shipped ingredient rows of antimalarial: hydroxychloroquine 5521, chloroquine 2393
    assert sorted(_asked()) == ["2393", "5521"]
    for rxcui in ("900001", "900002", "900003", "900004"):
        assert f"skipped: RxCUI {rxcui} (" in output
    assert "skipped: RxCUI 900002 (hydroxychloroquine sulfate 200 MG Oral Tablet [Plaquenil]): a product, not an ingredient" in output
    assert "from 2 ingredient RxCUI(s)" in output


@responses.activate
def test_a_row_whose_rxcui_products_csv_lists_is_not_sent(tmp_path: Path) -> None:
    # 979092 is in medications/products.csv (hydroxychloroquine sulfate 200 MG Oral Tablet):
    # a row of it, even without a display, is a product
    m = copy_mappings(tmp_path)
    assert "979092," in (m / "medications" / "products.csv").read_text()
    _rows(m, [f"antimalarial,hydroxychloroquine,{RXNORM},979092,exact,,,{SRC},N,"])
    responses.add(
        responses.GET,
        re.compile(re.escape(BASE) + r"/rxcui/\d+/related\.json.*"),
        json={"relatedGroup": {"conceptGroup": [{"tty": "SCD"}]}},
    )
    output = _expand(m)
    assert sorted(_asked()) == ["2393", "5521"]
    assert (
        "skipped: RxCUI 979092: a product (medications/products.csv: hydroxychloroquine sulfate "
        "200 MG Oral Tablet), not an ingredient"
    ) in output


def test_a_concept_of_product_rows_only_is_refused_saying_so(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    _rows(m, [f"lupus_x,hydroxychloroquine,{RXNORM},900001,exact,,hydroxychloroquine sulfate 300 MG Oral Tablet,{SRC},N,"])
    args = ["mappings", "expand-rxnorm", "--concept", "lupus_x", "--mappings", str(m)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 4
    assert "concept 'lupus_x' has no RxNorm ingredient rows" in result.output
    assert "1 product row(s)" in result.output
