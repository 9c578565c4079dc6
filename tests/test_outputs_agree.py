"""candidates.csv, evidence.csv, summary.html and run.json of one run tell the same story:
screened and tier counts, the criteria and their order, the mapping version, the changes."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from cohort.config import default_config
from cohort.runner import run
from cohort.tools.changes import criterion_columns


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datetime import date

    out = tmp_path_factory.mktemp("agree") / "out"
    cfg = default_config()
    run(cfg, date(2026, 11, 20), out)
    run(cfg, date(2026, 11, 25), out)  # a second run: the changes are compared
    return out


def _csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.mark.parametrize("site", ["uci", "amr"])
def test_outputs_agree(outputs: Path, site: str) -> None:
    report = json.loads((outputs / "run.json").read_text(encoding="utf-8"))
    info = report["sites"][site]
    head, rows = _csv(outputs / site / "candidates.csv")
    ev_head, evidence = _csv(outputs / site / "evidence.csv")
    page = (outputs / site / "summary.html").read_text(encoding="utf-8")

    # screened and tiers
    tiers = {t: sum(r["tier"] == t for r in rows) for t in ("likely", "possible", "excluded")}
    assert info["screened"] == len(rows) == info["tiers"]["screened"]
    assert {k: v for k, v in info["tiers"].items() if k != "screened"} == tiers
    cards = dict(re.findall(r'data-tier="(\w+)"><span class="n">(\d+)<', page))
    assert cards == {k: str(v) for k, v in info["tiers"].items()}

    # criteria, in the same order everywhere
    criteria = criterion_columns(head)
    assert [f["id"] for f in info["funnel"]] == criteria
    assert re.findall(r'class="funnel-group" data-criterion="([^"]+)"', page) == criteria
    order = {c: i for i, c in enumerate(criteria)}
    by_patient: dict[str, list[int]] = {}
    for r in evidence:
        by_patient.setdefault(r["patient_id"], []).append(order[r["criterion"]])
    assert all(v == sorted(v) for v in by_patient.values())
    ids = [r["patient_id"] for r in rows]
    assert list(dict.fromkeys(r["patient_id"] for r in evidence)) == [
        i for i in ids if i in by_patient
    ]
    assert ev_head[:3] == ["patient_id", "criterion", "status"]
    cells = {(r["patient_id"], c): r[c] for r in rows for c in criteria}
    assert all(cells[(r["patient_id"], r["criterion"])] == r["status"] for r in evidence)
    for f in info["funnel"]:
        for st in ("pass", "fail", "unknown"):
            assert f[st] == sum(r[f["id"]] == st for r in rows)

    # the mapping version of the run
    stamp = f"{report['mapping_version']} ({report['mapping_human_version']})"
    assert f"mapping version <b>{stamp}</b>" in page

    # changes
    assert info["changes"]["new"] == sum(r["change"] == "new" for r in rows)
    assert info["changes"]["tier_changed"] == sum(r["change"].startswith("tier ") for r in rows)
    counts = re.search(
        r'id="change-counts"><b>(\d+)</b> new .*?<b>(\d+)</b> no longer screened', page
    )
    assert counts and counts.groups() == (
        str(info["changes"]["new"]),
        str(info["changes"]["removed"]),
    )
    moves = re.search(r"<b>(\d+)</b> newly likely · <b>(\d+)</b> no longer likely", page)
    assert moves and moves.groups() == (
        str(info["changes"]["newly_likely"]),
        str(info["changes"]["no_longer_likely"]),
    )
    assert info["changes"]["newly_likely"] == sum(
        r["change"] == "tier possible -> likely" for r in rows
    )
    assert info["changes"]["no_longer_likely"] == sum(
        r["change"] == "tier likely -> possible" for r in rows
    )
