"""docs/criteria-kinds.md cannot rot: every ```toml block it marks as a full criterion (or a full
criteria file) loads through the criteria loader, with the concepts of the example trial it names
(tests/data/<trial>: the shipped mappings plus that trial's rows, as a researcher's copy), without
an error or a warning; and its reference table names every kind and every key the registry takes."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest

from cohort.criteria.loading import load_trial
from cohort.criteria.registry import ALT, CONDITION_CHECK, KINDS, LAB_CHECK, MEASURE, WINDOW
from cohort.terminology import Terminology
from cohort.terminology.mappings import concept_files

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "criteria-kinds.md"
# `<!-- criterion: dkd_trial -->` (or `shipped`) on the line before the fence
_BLOCK = re.compile(r"^<!-- (criterion|criteria file): (\w+) -->\n```toml\n(.*?)^```", re.M | re.S)


def _examples() -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3]) for m in _BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def _mappings(tmp: Path, trial: str) -> Path:
    """The shipped mappings, with the rows of tests/data/<trial> appended (trial_helpers)."""
    m = tmp / trial / "mappings"
    if not m.exists():
        shutil.copytree(ROOT / "mappings", m)
        if trial != "shipped":
            extra_root = ROOT / "tests" / "data" / trial / "mappings"
            for extra in extra_root.rglob("*.csv"):
                with (m / extra.relative_to(extra_root)).open("a", encoding="utf-8") as fh:
                    fh.write(extra.read_text(encoding="utf-8"))
    return m


def _screen(trial: str) -> list[str]:
    if trial == "shipped":
        path = ROOT / "mappings" / "trials" / "sirius-sle-2.toml"
    else:
        (path,) = (ROOT / "tests" / "data" / trial / "mappings" / "trials").glob("*.toml")
    return list(tomllib.loads(path.read_text(encoding="utf-8"))["trial"]["screen_concepts"])


def test_the_guide_marks_an_example_for_every_pattern() -> None:
    found = _examples()
    # (a broken marker would pass the test below on nothing)
    assert len(found) >= 15
    assert {t for _, t, _ in found} >= {"shipped", "dkd_trial", "copd_trial", "hf_trial",
                                        "obesity_trial"}  # fmt: skip
    for _, trial, _ in found:
        assert trial == "shipped" or (ROOT / "tests" / "data" / trial).is_dir(), trial


@pytest.mark.parametrize("what,trial,text", _examples())
def test_each_example_loads_as_written(tmp_path: Path, what: str, trial: str, text: str) -> None:
    m = _mappings(tmp_path, trial)
    if what == "criteria file":
        trial_id = tomllib.loads(text)["trial"]["id"]
        body = text
    else:
        trial_id = "doc-example"
        screen = ", ".join(f'"{c}"' for c in _screen(trial))
        body = f'[trial]\nid = "{trial_id}"\nscreen_concepts = [{screen}]\n\n{text}'
    path = m / "trials" / f"{trial_id}.toml"
    path.write_text(body, encoding="utf-8")
    term = Terminology.load(m, use_unverified=True)
    rows = term.rows()
    loaded = load_trial(
        path, {r.concept for r in rows}, term.concept_names(), term.unit_concepts(),
        concept_files(rows),
    )  # fmt: skip
    assert loaded.criteria and loaded.warnings == []


def _row(doc: str, kind: str) -> str:
    (line,) = [x for x in doc.splitlines() if x.startswith(f"| `{kind}` |")]
    return line


def test_the_reference_table_names_every_kind_and_key() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for kind, spec in KINDS.items():
        row = _row(doc, kind)
        for key in {**spec.required, **spec.optional}:
            named = f"`{key}`" in row or f"`{key} = " in row  # (`measures = [...]`)
            assert named or (key in WINDOW and "window" in row), (kind, key)
    for table in (ALT, MEASURE, CONDITION_CHECK, LAB_CHECK):
        for key in table.keys:
            if key not in WINDOW:
                assert f"`{key}`" in doc or f"`{key} = " in doc, key
