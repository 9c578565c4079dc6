"""Command-line arguments refused, or not found, with the documented exit code: an --as-of in
another ISO 8601 form than YYYY-MM-DD (Python 3.11's date.fromisoformat reads week dates and
basic forms, and `--as-of 2026-W48-7` ran as of 2026-11-29), and a patient `cohort explain`
does not find in the store (exit 5, "data source cannot be read", alerted on as a broken
source), and a `--site` of `explain` or `mappings coverage` that the configuration does not have
(exit 3, "configuration error"), or a patient listed only by a site folder left in OUT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.cli import cli
from cohort.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parent.parent

# what date.fromisoformat reads in Python 3.11 besides YYYY-MM-DD, and a few more slips
# ... and "": `--as-of "$DAY"` in a cron line whose variable is unset ran as of today, exit 0
NOT_YYYY_MM_DD = ["2026-W48-7", "2026W487", "2026-W48", "20270106", "2026-1-5", " 2026-11-29", ""]


def _args(command: str, value: str, out: Path) -> list[str]:
    if command == "run":
        return ["run", "--as-of", value, "--out", str(out)]
    if command == "explain":
        return ["explain", "uci-p001", "--as-of", value, "--out", str(out)]
    return ["sample", "--as-of", value, "--out", str(out)]


@pytest.mark.parametrize("command", ["run", "explain", "sample"])
@pytest.mark.parametrize("value", NOT_YYYY_MM_DD)
def test_an_as_of_not_written_yyyy_mm_dd_is_a_usage_error_naming_it(
    tmp_path: Path, command: str, value: str
) -> None:
    result = CliRunner().invoke(cli, _args(command, value, tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert f"'{value}'" in result.output and "YYYY-MM-DD" in result.output, result.output
    assert "--as-of" in result.output, result.output
    assert not (tmp_path / "out").exists()  # (nothing run, nothing written)


@pytest.mark.parametrize("command", ["explain", "sample"])
def test_a_yyyy_mm_dd_as_of_is_still_read(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli, _args(command, "2026-11-25", tmp_path / "out"))
    assert result.exit_code != 2, result.output


def test_explain_a_patient_not_in_the_store_is_the_usage_code_not_a_source_error(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    ran = CliRunner().invoke(cli, ["run", "--as-of", "2026-11-25", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    result = CliRunner().invoke(cli, ["explain", "nobody", "--out", str(out)])
    assert result.output == (
        "cohort: error: patient 'nobody' is not in the local store for any site\n"
    )
    assert result.exit_code == 2
    assert EXIT_CODES[result.exit_code] != EXIT_CODES[5]


SITE_X = ROOT / "tests" / "data" / "tools" / "site-x"


def _site_args(command: str, out: Path, *more: str) -> list[str]:
    if command == "explain":
        return ["explain", "uci-p001", "--out", str(out), *more]
    return ["mappings", "coverage", "--out", str(out), *more]


@pytest.mark.parametrize("command", ["explain", "coverage"])
def test_a_site_not_in_the_configuration_is_a_usage_error_naming_its_sites(
    tmp_path: Path, command: str
) -> None:
    """`--site` naming no site of the configuration exited 3, "configuration error", which
    sends whoever is alerted to a configuration that is fine: the command line is wrong."""
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, _site_args(command, out, "--site", "xyz"))
    assert result.output == (
        "cohort: error: --site xyz is not a site of the built-in sample configuration;"
        " its sites: uci, amr\n"
    )
    assert result.exit_code == 2
    assert not out.exists()  # (refused before the store or OUT is touched)
    cfg = tmp_path / "two.toml"
    cfg.write_text(
        '[trial]\nid = "sirius-sle-2"\n'
        f'[[sites]]\nid = "x"\nsource = "{SITE_X}"\n[[sites]]\nid = "y"\nsource = "{SITE_X}"\n'
    )
    result = CliRunner().invoke(cli, _site_args(command, out, "--site", "X", "--config", str(cfg)))
    assert result.output == f"cohort: error: --site X is not a site of {cfg}; its sites: x, y\n"
    assert result.exit_code == 2


def _left_over_site(tmp_path: Path) -> tuple[Path, Path]:
    """OUT after a run of sites x and y, then one of a configuration without y: OUT/y holds
    the first run's lists (patients y-p001...), the store still y's records. (config, OUT)"""
    shutil.copytree(SITE_X, tmp_path / "x")
    (tmp_path / "y").mkdir()
    for path in SITE_X.glob("*.json"):
        text = path.read_text(encoding="utf-8").replace("x-p00", "y-p00")
        (tmp_path / "y" / path.name.replace("x-p00", "y-p00")).write_text(text, encoding="utf-8")
    both, one = tmp_path / "both.toml", tmp_path / "one.toml"
    sites = {s: f'[[sites]]\nid = "{s}"\nsource = "{tmp_path / s}"\n' for s in ("x", "y")}
    both.write_text('[trial]\nid = "sirius-sle-2"\n' + sites["x"] + sites["y"])
    one.write_text('[trial]\nid = "sirius-sle-2"\n' + sites["x"])
    out = tmp_path / "out"
    for cfg, day in ((both, "2026-11-25"), (one, "2026-11-26")):
        args = ["--log-level", "error", "run", "--config", str(cfg), "--as-of", day]
        assert CliRunner().invoke(cli, [*args, "--out", str(out)]).exit_code == 0
    assert "y-p001" in (out / "y" / "candidates.csv").read_text(encoding="utf-8-sig")
    return one, out


def test_explain_a_patient_of_a_site_left_over_in_out_says_so(tmp_path: Path) -> None:
    """A coordinator reads y-p001 in OUT/y/candidates.csv, left by a run before site y left
    the configuration, and asks why: "not in the local store for any site" contradicted the
    list they read it in. Not explained from the stale store either (the site's settings are
    gone with it): exit 2, naming the list and why it is not explained."""
    cfg, out = _left_over_site(tmp_path)
    args = ["explain", "y-p001", "--config", str(cfg), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.output == (
        f"cohort: error: patient 'y-p001' is not in the local store for any site of {cfg}"
        f" (its sites: x); {out / 'y' / 'candidates.csv'} lists it: site y's list from an"
        " earlier run, a site this configuration does not screen\n"
    )
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, [*args, "--site", "y"])
    assert result.output == (
        f"cohort: error: --site y is not a site of {cfg}; its sites: x ({out / 'y'} holds"
        " site y's lists from an earlier run, a site this configuration does not screen)\n"
    )
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["mappings", "coverage", "--config", str(cfg),
                                      "--out", str(out), "--site", "y"])  # fmt: skip
    assert result.exit_code == 2 and "--site y is not a site of" in result.output
    assert not (out / "coverage.csv").exists()
    # the configuration's own sites are explained as before
    result = CliRunner().invoke(cli, ["explain", "x-p001", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("patient x-p001 at site x, as of 2026-11-26 (the run's")


@pytest.mark.parametrize("command", ["run", "explain", "sample", "coverage"])
def test_an_empty_out_is_a_usage_error_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """`--out "$OUT"` in a cron line whose variable is unset took the working directory for
    OUT: `cohort run` wrote its lists (PHI) into ./<site>/ (a site's own source folder, when
    the config sat beside it), run.json and the store into the working directory, exit 0."""
    monkeypatch.chdir(tmp_path)
    args = {
        "run": ["run", "--as-of", "2026-11-25", "--out", ""],
        "explain": ["explain", "uci-p001", "--out", ""],
        "sample": ["sample", "--patients", "1", "--out", ""],
        "coverage": ["mappings", "coverage", "--out", ""],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "''" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_explain_a_site_put_back_says_its_lists_are_an_earlier_run_s(
    tmp_path: Path, pinned_today: str
) -> None:
    """Site y put back in the configuration after a run without it: OUT/y/candidates.csv is
    the 2026-11-25 run's, which the last run.json (a successful run of x only) does not
    describe. `cohort explain y-p001` judged as of today with no note, beside a list of
    another day that may say otherwise; it now says so in its note line."""
    _, out = _left_over_site(tmp_path)
    both = tmp_path / "both.toml"
    args = ["explain", "y-p001", "--config", str(both), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"patient y-p001 at site y, as of {pinned_today}: tier ")
    assert lines[2] == (
        f"note: this may not match candidates.csv: {out / 'y'} holds site y's lists from an"
        " earlier run, which run.json does not describe (judged as of today)"
    )
    # site x's lists are the last run's: judged as of their day, no note
    args = ["explain", "x-p001", "--config", str(both), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("patient x-p001 at site x, as of 2026-11-26 (the run's")
    assert not [ln for ln in result.output.splitlines() if ln.startswith("note:")]
    # an explicit date is the reader's: no note
    result = CliRunner().invoke(cli, ["explain", "y-p001", "--config", str(both),
                                      "--out", str(out), "--as-of", "2026-11-25"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not [ln for ln in result.output.splitlines() if ln.startswith("note:")]


def _damage_run_json(out: Path, damage: str) -> None:
    """OUT/run.json (a successful run of site x as of 2026-11-26) as `damage` leaves it."""
    run_json = out / "run.json"
    report = json.loads(run_json.read_text(encoding="utf-8"))
    assert report["status"] == "success" and report["as_of"] == "2026-11-26"
    if damage == "missing":  # (an exit-11 run could not write it; or removed by hand)
        run_json.unlink()
    elif damage == "not json":
        run_json.write_text(run_json.read_text(encoding="utf-8")[:40], encoding="utf-8")
    elif damage == "as_of":  # (edited by hand: a day written another way)
        run_json.write_text(json.dumps({**report, "as_of": "26/11/2026"}), encoding="utf-8")
    else:  # a failed run's description of the lists it kept, whose as_of is not a date
        kept = {"x": {"as_of": 20261126, "mapping_version": report["mapping_version"]}}
        failed = {**report, "status": "failed", "as_of": "2026-11-27", "outputs_sites": kept}
        run_json.write_text(json.dumps(failed), encoding="utf-8")


UNDATED = {
    "missing": "there is no run.json in {out} to say which run wrote site x's lists",
    "not json": "run.json is damaged and does not say which run wrote site x's lists",
    "as_of": "run.json gives no readable as-of date for site x's lists",
    "failed as_of": "run.json gives no readable as-of date for site x's lists",
}


@pytest.mark.parametrize("damage", list(UNDATED))
def test_explain_says_why_it_judges_as_of_today_beside_lists_run_json_does_not_date(
    tmp_path: Path, pinned_today: str, damage: str
) -> None:
    """OUT/x/candidates.csv is the 2026-11-26 run's, but OUT/run.json is gone (an exit-11
    run), not JSON, or gives a day that is not a date: `cohort explain x-p001` judged as of
    today with no note, beside a list of another day that may say otherwise. It now says why
    the day is today in its note line."""
    cfg, out = _left_over_site(tmp_path)
    _damage_run_json(out, damage)
    args = ["explain", "x-p001", "--config", str(cfg), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"patient x-p001 at site x, as of {pinned_today}: tier ")
    assert lines[2] == (
        "note: this may not match candidates.csv: "
        + UNDATED[damage].format(out=out)
        + " (judged as of today)"
    )
    # an explicit date is the reader's: no note
    result = CliRunner().invoke(cli, [*args, "--as-of", "2026-11-26"])
    assert result.exit_code == 0, result.output
    assert not [ln for ln in result.output.splitlines() if ln.startswith("note:")]


def test_explain_without_lists_or_run_json_judges_as_of_today_without_a_note(
    tmp_path: Path, pinned_today: str
) -> None:
    """No lists in OUT (its site folder and run.json removed, the store kept): nothing for the
    explanation to differ from, no note."""
    cfg, out = _left_over_site(tmp_path)
    (out / "run.json").unlink()
    shutil.rmtree(out / "x")
    result = CliRunner().invoke(cli, ["explain", "x-p001", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"patient x-p001 at site x, as of {pinned_today}: tier ")
    assert not [ln for ln in result.output.splitlines() if ln.startswith("note:")]


@pytest.mark.parametrize("command", ["check", "import-valueset", "expand-rxnorm"])
def test_an_empty_mappings_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """`--mappings "$MAPS"` with the variable unset took the working directory for the
    mappings folder: `cohort mappings check` checked it ("7 error(s)", exit 4), as if the
    mappings were broken. Now a usage error naming the option, as an empty --out is."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vs.json").write_text('{"resourceType": "ValueSet"}')
    args = {
        "check": ["mappings", "check", "--mappings", ""],
        "import-valueset": ["mappings", "import-valueset", "vs.json", "--concept", "sle",
                            "--mappings", ""],
        "expand-rxnorm": ["mappings", "expand-rxnorm", "--concept", "hcq", "--mappings", ""],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "--mappings" in result.output and "''" in result.output, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["vs.json"]


CONFIG_COMMANDS = {
    "run": ["run", "--out", "out"],
    "explain": ["explain", "uci-p001", "--out", "out"],
    "check": ["mappings", "check"],
    "coverage": ["mappings", "coverage", "--out", "out"],
    "import-valueset": ["mappings", "import-valueset", "vs.json", "--concept", "sle"],
    "expand-rxnorm": ["mappings", "expand-rxnorm", "--concept", "hcq"],
}


@pytest.mark.parametrize("blank", ["", " "])
@pytest.mark.parametrize("command", list(CONFIG_COMMANDS))
def test_an_empty_config_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, blank: str
) -> None:
    """`--config "$CFG"` with the variable unset read the working directory as the config:
    `cohort: error: .: cannot read config: Is a directory`, exit 3, which named no option (and
    `cohort run` wrote a failed OUT/run.json for it). Now a usage error naming the option, as
    an empty --out or --mappings is, and nothing is written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vs.json").write_text('{"resourceType": "ValueSet"}')
    result = CliRunner().invoke(cli, [*CONFIG_COMMANDS[command], "--config", blank])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--config': '{blank}' names no file" in result.output, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["vs.json"]


@pytest.mark.parametrize("blank", ["", " "])
def test_an_empty_import_valueset_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """`cohort mappings import-valueset --file "$CSV"` with the variable unset took the working
    directory for the concept file: `cohort: error: .: concept file not found`, exit 4, as if
    the mappings were broken. Now a usage error naming the option; no mapping file changes."""
    maps = tmp_path / "maps"
    shutil.copytree(ROOT / "mappings", maps)
    before = {p: p.read_bytes() for p in maps.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    vs = {"resourceType": "ValueSet", "url": "http://example.org/vs",
          "expansion": {"contains": [{"system": "http://snomed.info/sct", "code": "55464009"}]}}
    (tmp_path / "vs.json").write_text(json.dumps(vs))
    args = ["mappings", "import-valueset", "vs.json", "--concept", "sle", "--mappings", str(maps),
            "--file", blank]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--file': '{blank}' names no file" in result.output, result.output
    assert {p: p.read_bytes() for p in maps.rglob("*") if p.is_file()} == before
