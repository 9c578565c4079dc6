"""`cohort mappings coverage` suggests concepts the configured trial reads, from the rows the run
reads. A second trial (DKD-DEMO, tests/data/dkd_trial) whose rows are all verified=N, read with
`use_unverified`, got suggestions of the first trial's concepts only: "HIV status" as `hiv_test`,
"Chronic congestive heart failure" as `heart_failure` (read by no criterion at all), and never one
of its own: a site's local eGFR code was no `egfr` (docs/mappings-howto.md, section 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_tools_suggest import SCT, lab, other

from cohort.criteria.loading import load_trial
from cohort.terminology import Terminology
from cohort.tools.suggest import Suggester

ROOT = Path(__file__).resolve().parent.parent
DKD = ROOT / "tests" / "data" / "dkd_trial" / "mappings"
LAB = "http://example.org/fhir/site-x/lab"


@pytest.fixture(scope="module")
def dkd(tmp_path_factory: pytest.TempPathFactory) -> Suggester:
    m = tmp_path_factory.mktemp("dkd") / "mappings"
    shutil.copytree(ROOT / "mappings", m)
    for extra in DKD.rglob("*.csv"):
        with (m / extra.relative_to(DKD)).open("a", encoding="utf-8") as fh:
            fh.write(extra.read_text(encoding="utf-8"))
    shutil.copy(DKD / "trials" / "dkd-demo.toml", m / "trials")
    term = Terminology.load(m, use_unverified=True)
    return Suggester(term, load_trial(m / "trials" / "dkd-demo.toml").concepts())


def test_a_second_trials_unverified_concept_is_suggested(dkd: Suggester) -> None:
    u = lab("GFR-EPI", "Estimated Glomerular Filtration Rate", "mL/min/{1.73_m2}", 48.0, system=LAB)
    concept, why = dkd.suggest(u)
    assert concept == "egfr", why
    assert "unit converts to mL/min/{1.73_m2}" in why


def test_another_trials_concepts_are_not_suggested(dkd: Suggester) -> None:
    failing = other("Condition", SCT, "88805009", "Chronic congestive heart failure (disorder)")
    assert dkd.suggest(failing) == ("", "")
    assert dkd.suggest(lab("55277-8", "HIV status")) == ("", "")
