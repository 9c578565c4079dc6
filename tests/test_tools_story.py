"""The issue's acceptance story: find local codes with coverage, map them, check, see the change."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tests" / "data" / "tools" / "site-x"
AS_OF = "2026-11-25"
LOCAL_ROW = (
    "ana_titer,http://example.org/fhir/site-x/lab,ANA-T,exact,,ANA TITER,site-x lab,local,\n"
)
BRAND_ROW = "anifrolumab,anifrolumab,text,Saphnelo,exact,,Saphnelo,site-x pharmacy,local,\n"


def setup_project(tmp_path: Path) -> Path:
    """A copy of the mappings without the Saphnelo brand row, and a config for site-x."""
    m = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", m)
    meds = m / "concepts" / "medications.csv"
    meds.write_text(
        "".join(
            ln
            for ln in meds.read_text().splitlines(keepends=True)
            if not ln.startswith("anifrolumab,anifrolumab,text,Saphnelo,")
        )
    )
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        '[trial]\nid = "sirius-sle-2"\nmappings = "mappings"\n'
        f'[[sites]]\nid = "site-x"\nname = "Site X"\nsource = "{SITE}"\n'
    )
    return cfg


def rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "site-x" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        return {r["patient_id"]: r for r in csv.DictReader(fh)}


def run(cfg: Path, out: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output


def test_acceptance_story(tmp_path: Path) -> None:
    cfg = setup_project(tmp_path)
    out = tmp_path / "out"
    run(cfg, out)
    before = rows(out)
    assert before["x-p001"]["tier"] == "possible" and before["x-p001"]["ana_titer"] == "unknown"
    assert before["x-p002"]["washout_24wk"] == "pass"
    shutil.copytree(out, tmp_path / "out_before")

    # 1. coverage finds the local lab code (suggesting ana_titer) and the text-only medication
    result = CliRunner().invoke(
        cli, ["mappings", "coverage", "--config", str(cfg), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "http://example.org/fhir/site-x/lab|ANA-T" in result.output
    assert "Saphnelo 300 mg IV" in result.output
    with (out / "coverage.csv").open(encoding="utf-8-sig", newline="") as fh:
        cov = list(csv.DictReader(fh))
    ana = next(r for r in cov if r["code"] == "ANA-T")
    assert ana["section"] == "unmapped" and ana["suggestion"] == "ana_titer"
    assert ana["display"] == "ANA TITER" and "1:160" in ana["example_values"]
    assert ana["screened_patients"] == "2" and "titer-like values" in ana["why"]
    med = next(r for r in cov if r["code"] == "Saphnelo 300 mg IV")
    assert med["resource_type"] == "MedicationStatement" and med["system"] == "text"
    assert cov.index(ana) < cov.index(med)  # ranked by screened patients
    assert any(r["section"] == "mapped_never_seen" for r in cov)
    assert ana["mapping_version"].startswith("sha256:")
    assert (out / "coverage.csv").stat().st_mode & 0o777 == 0o600

    # 2. map them by editing files only; check passes
    with (tmp_path / "mappings" / "concepts" / "local.csv").open("a") as fh:
        fh.write(LOCAL_ROW)
    with (tmp_path / "mappings" / "concepts" / "medications.csv").open("a") as fh:
        fh.write(BRAND_ROW)
    result = CliRunner().invoke(
        cli, ["mappings", "check", "--mappings", str(tmp_path / "mappings")]
    )
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output

    # 3. the next run: tiers change and the change column says so
    run(cfg, out)
    after = rows(out)
    assert after["x-p001"]["tier"] == "likely"
    assert after["x-p001"]["change"] == "tier possible -> likely"
    assert after["x-p002"]["tier"] == "excluded"
    assert after["x-p002"]["change"] == "tier possible -> excluded"
    assert after["x-p003"]["change"] == ""
    report = json.loads((out / "run.json").read_text())
    # every output is stamped with the mapping version (hash + human VERSION), not the CSV
    human = (tmp_path / "mappings" / "VERSION").read_text().strip()
    assert report["mapping_version"].startswith("sha256:")
    assert report["mapping_human_version"] == human
    html = (out / "site-x" / "summary.html").read_text()
    assert f"{report['mapping_version']} ({human})" in html
    assert report["sites"]["site-x"]["changes"]["tier_changed"] == 2
    assert (
        report["mapping_version"]
        != json.loads((tmp_path / "out_before" / "run.json").read_text())["mapping_version"]
    )

    # 4. cohort diff shows the same
    result = CliRunner().invoke(cli, ["diff", str(tmp_path / "out_before"), str(out)])
    assert result.exit_code == 0, result.output
    assert "site site-x: 0 added, 0 removed, 2 tier change(s), 3 criterion cell change(s)" in (
        result.output
    )
    lines = [" ".join(ln.split()) for ln in result.output.splitlines()]
    assert "x-p001 tier possible likely" in lines
    assert "x-p002 washout_24wk pass fail" in lines

    # 5. the coverage no longer lists them
    result = CliRunner().invoke(
        cli, ["mappings", "coverage", "--config", str(cfg), "--out", str(out)]
    )
    assert "ANA-T" not in result.output and "Saphnelo" not in result.output


def test_explain_shows_rule_evidence_and_dropped(tmp_path: Path) -> None:
    cfg = setup_project(tmp_path)
    out = tmp_path / "out"
    run(cfg, out)
    result = CliRunner().invoke(
        cli, ["explain", "x-p001", "--config", str(cfg), "--out", str(out), "--as-of", AS_OF]
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert "patient x-p001 at site site-x, as of 2026-11-25: tier possible" in text
    assert "mapping version sha256:" in text
    assert "[unknown] ana_titer - ANA titer >= 1:80 (inclusion)" in text
    assert (
        "rule: titer: titer_concepts=[ana_titer], screen_concepts=[ana_screen], min_titer=80"
        in text
    )
    assert "[pass] weight" in text and "used: Observation/" in text
    # the entered-in-error belimumab record is shown as ignored under its criterion
    belimumab = text.split("[pass] washout_belimumab", 1)[1].split("\n\n", 1)[0]
    assert "dropped by the reading rules: status entered-in-error" in belimumab
    # evidence ignored by the criteria carries its reason (a platelet count dated later)
    platelets = text.split("[pass] platelets", 1)[1].split("\n\n", 1)[0]
    assert "used: Observation/" in platelets and "248 10*3/uL" in platelets
    assert "5 10*3/uL  2026-12-05  -- after the as-of date" in platelets


def test_explain_unknown_patient_and_missing_store(tmp_path: Path) -> None:
    cfg = setup_project(tmp_path)
    result = CliRunner().invoke(
        cli, ["explain", "x-p001", "--config", str(cfg), "--out", str(tmp_path / "none")]
    )
    assert result.exit_code == 8 and "no local store" in result.output
    out = tmp_path / "out"
    run(cfg, out)
    result = CliRunner().invoke(cli, ["explain", "nobody", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 2 and "not in the local store" in result.output


def test_explain_takes_the_run_s_as_of_date_by_default(tmp_path: Path) -> None:
    """`cohort run --as-of 2026-11-25`, then `cohort explain x-p001` (as README shows it, no
    --as-of): explain judged the patient as of today, so its statuses need not be the CSV's
    (windows moved) though the researcher asked why the CSV says what it says."""
    cfg = setup_project(tmp_path)
    out = tmp_path / "out"
    run(cfg, out)
    result = CliRunner().invoke(cli, ["explain", "x-p001", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "patient x-p001 at site site-x, as of 2026-11-25 (the run's, from run.json): tier possible"
    ), result.output
    # an explicit date wins, and is shown as it always was
    args = ["explain", "x-p001", "--config", str(cfg), "--out", str(out), "--as-of", "2026-12-10"]
    result = CliRunner().invoke(cli, args)
    assert result.output.startswith("patient x-p001 at site site-x, as of 2026-12-10: tier")
