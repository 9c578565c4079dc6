"""CLI contract: help on every command, the default sample run, one-line errors with exit codes."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from stop_helpers import signal_during_screen

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", [(), *_commands(cli)], ids=lambda p: " ".join(p) or "cohort")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"


def test_default_run_uses_shipped_samples(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--as-of", "2026-11-25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for site in ("uci", "amr"):
        path = out / site / "candidates.csv"
        assert path.stat().st_mode & 0o777 == 0o600
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and list(rows[0])[:6] == [
            "rank",
            "patient_id",
            "tier",
            "score",
            "eligible_from",
            "reasons",
        ]
        assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    report = json.loads((out / "run.json").read_text())
    assert report["status"] == "success"
    assert report["mapping_version"].startswith("sha256:")
    assert set(report["sites"]) == {"uci", "amr"}
    assert report["sites"]["uci"]["screened"] == len(
        list(csv.DictReader((out / "uci" / "candidates.csv").open(encoding="utf-8-sig")))
    )


def _config(tmp_path: Path, source: str, mappings: Path | None = None) -> Path:
    cfg = tmp_path / "site.toml"
    extra = f'mappings = "{mappings}"\n' if mappings else ""
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\n{extra}[[sites]]\nid = "uci"\nname = "UCI"\n'
        f'source = "{source}"\n'
    )
    return cfg


def test_missing_config_is_exit_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 3
    assert "config file not found" in result.output


def test_missing_source_is_exit_5_and_keeps_previous_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    good = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    assert CliRunner().invoke(cli, ["run", "--config", str(good), "--out", str(out)]).exit_code == 0
    before = (out / "uci" / "candidates.csv").read_bytes()
    bad = _config(tmp_path, str(tmp_path / "missing-dir"))
    result = CliRunner().invoke(cli, ["run", "--config", str(bad), "--out", str(out)])
    assert result.exit_code == 5
    # (which site, and which key of it: "data path not found: ..." named neither)
    missing = tmp_path / "missing-dir"
    last = result.output.splitlines()[-1]
    assert last == f"cohort: error: site 'uci': source: data path not found: {missing}"
    assert (out / "uci" / "candidates.csv").read_bytes() == before
    report = json.loads((out / "run.json").read_text())
    assert report["status"] == "failed" and "missing-dir" in report["error"]


def test_broken_criteria_file_is_exit_4_naming_file_line_key(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    trial = mappings / "trials" / "sirius-sle-2.toml"
    trial.write_text(trial.read_text().replace("fail_below = 25", 'fail_below = "25"'))
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"), mappings)
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 4
    line = next(  # the line of the key itself (it was the criterion's id line)
        i for i, t in enumerate(trial.read_text().splitlines(), 1) if 'fail_below = "25"' in t
    )
    assert f"sirius-sle-2.toml:{line}: criterion 'platelets': key 'fail_below'" in result.output


def test_misspelt_concept_suggests_the_right_one(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    trial = mappings / "trials" / "sirius-sle-2.toml"
    trial.write_text(
        trial.read_text().replace('concepts = ["platelets"]', 'concepts = ["platelet"]')
    )
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"), mappings)
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 4
    assert (
        "unknown concept 'platelet'" in result.output
        and "did you mean 'platelets'" in result.output
    )


def test_bad_as_of_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["run", "--as-of", "25/11/2026"])
    assert result.exit_code == 2
    assert "not a date" in result.output


def test_files_saved_with_a_byte_order_mark_read_as_without(tmp_path: Path) -> None:
    """Notepad and Excel save UTF-8 with a BOM; tomllib refused it ("Invalid statement"), so a
    researcher's edited criteria file or an IT-edited config stopped the nightly run."""
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    for name in ("rules.toml", "trials/sirius-sle-2.toml", "VERSION", "concepts/labs.csv"):
        path = mappings / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    source = str(ROOT / "sample_bundles" / "uci")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clean = _config(tmp_path / "a", source)
    marked = _config(tmp_path / "b", source, mappings)
    marked.write_bytes(b"\xef\xbb\xbf" + marked.read_bytes())
    runner = CliRunner()
    check = runner.invoke(cli, ["mappings", "check", "--mappings", str(mappings)])
    assert check.exit_code == 0, check.output
    for cfg in (clean, marked):
        args = ["run", "--config", str(cfg), "--as-of", "2026-11-25"]
        result = runner.invoke(cli, [*args, "--out", str(cfg.parent / "out")])
        assert result.exit_code == 0, result.output
    got = (marked.parent / "out" / "uci" / "candidates.csv").read_bytes()
    assert got == (clean.parent / "out" / "uci" / "candidates.csv").read_bytes()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[sites.x]\nmin_agee = 18",
            "[[sites]] #1: unknown key 'min_agee' (did you mean 'min_age'?)",
        ),
        ("[trial.x]\nuse_unverifed = true", "[trial]: unknown key 'use_unverifed' (did you mean"),
        ("[store]\npth = 'x'", "[store]: unknown key 'pth' (did you mean 'path'?)"),
        ("[run]\nworker = 2", "[run]: unknown key 'worker' (did you mean 'workers'?)"),
        ("[runn]\nworkers = 2", "unknown key 'runn' (did you mean 'run'?)"),
        ("[trial.x]\nuse_unverified = 'false'", "key 'use_unverified' must be true or false"),
        ("[run]\nsnapshot = 'no'", "key 'snapshot' must be true or false"),
        ("[run]\nbatch_size = 0", "key 'batch_size' must be 1 or more"),
        ("[sites.x]\nmin_age = '18'", "[[sites]] #1: key 'min_age' must be a whole number"),
        ("[sites.x]\nmin_age = -5", "[[sites]] #1: key 'min_age' must be a whole number from 0"),
        ("[store]\npath = 7", "[store]: key 'path' must be a string"),
        (
            "[sites.x]\nmrn_system = 5",
            "[[sites]] #1: key 'mrn_system' must be a string or a list of strings",
        ),
        (
            "[sites.x]\nmrn_system = ['urn:oid:1.2', 5]",
            "[[sites]] #1: key 'mrn_system' must be a string or a list of strings",
        ),
        ("[sites.x]\nmrn_system = ' '", "[[sites]] #1: key 'mrn_system' is empty"),
        ("[sites.x]\nmrn_system = []", "[[sites]] #1: key 'mrn_system' is empty"),
        ("[sites.x]\nmrn_sytem = 'x'", "unknown key 'mrn_sytem' (did you mean 'mrn_system'?)"),
    ],
)
def test_config_typos_and_wrong_types_are_exit_3_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    """An unknown key was ignored without a word (`min_agee = 18` left the site at the trial's
    age limit) and `use_unverified = "false"` turned unverified codes on."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    lines = cfg.read_text().splitlines()
    table, line = text.split("\n")
    at = {"[sites.x]": len(lines), "[trial.x]": 2}.get(table)
    if at is None:
        lines += [table, line]
    else:
        lines.insert(at, line)
    cfg.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3, result.output
    assert message in result.output and result.output.count("\n") == 1


def test_mrn_column_filled_from_type_text_and_the_site_mrn_system(tmp_path: Path) -> None:
    """QA found candidates.csv's mrn column empty: only a coded MR type was read, and Epic
    sends its MRN with `type.text` "MRN" or by its system alone (tests/data/mrn)."""
    epic = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
    cfg = _config(tmp_path, str(ROOT / "tests" / "data" / "mrn"))
    out = tmp_path / "out"
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]

    def mrns() -> dict[str, str]:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "00012345" not in result.output  # (PHI: never logged)
        assert "00012345" not in (out / "run.json").read_text()
        with (out / "uci" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
            return {r["patient_id"]: r["mrn"] for r in csv.DictReader(fh)}

    assert mrns() == {"m1": "00012345", "m2": "00012345", "m3": ""}
    cfg.write_text(cfg.read_text() + f'mrn_system = "{epic}"\n')
    assert mrns() == {"m1": "00012345", "m2": "00012345", "m3": "00012345"}
    cfg.write_text(cfg.read_text().replace(f'"{epic}"', f'["urn:oid:1.2.3", "{epic}"]'))
    assert mrns() == {"m1": "00012345", "m2": "00012345", "m3": "00012345"}


def test_a_site_min_age_of_0_is_used_by_run_and_explain(tmp_path: Path) -> None:
    """`min_age = 0` is the site's limit (config and criterion accepted it), but the run and
    `cohort explain` handed the criterion no site limit for 0: the trial's 12 applied."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    cfg.write_text(cfg.read_text() + "min_age = 0\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with (out / "uci" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = {r["patient_id"]: r for r in csv.DictReader(fh)}
    child = [pid for pid, r in rows.items() if r["age_years"] and int(r["age_years"]) < 12]
    assert child, "the sample should hold a screened patient under 12"
    assert [rows[pid]["age"] for pid in child] == ["pass"] * len(child)
    args = ["explain", child[0], "--config", str(cfg), "--as-of", "2026-11-25"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "[pass] age" in result.output and "site min_age=0" in result.output


def test_a_site_min_age_shows_in_the_age_title(tmp_path: Path) -> None:
    """A site screening from 18 (`min_age = 18`) showed the trial file's title "Age >= 12
    years" in its summary.html funnel, run.json and `cohort explain`, beside patients of 12 to
    17 failing it: coordinators read the wrong limit."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    cfg.write_text(cfg.read_text() + "min_age = 18\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    title = "Age >= 12 years (this site: min_age 18)"
    funnel = json.loads((out / "run.json").read_text())["sites"]["uci"]["funnel"]
    assert [f["title"] for f in funnel if f["id"] == "age"] == [title]
    assert (
        "Age &gt;= 12 years (this site: min_age 18)" in (out / "uci" / "summary.html").read_text()
    )
    with (out / "uci" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        pid = next(r["patient_id"] for r in csv.DictReader(fh))
    args = ["explain", pid, "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"age - {title} (inclusion)" in result.output
    # a site without min_age, or with the trial's own limit, keeps the title as written
    cfg.write_text(cfg.read_text().replace("min_age = 18", "min_age = 12"))
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    )
    funnel = json.loads((out / "run.json").read_text())["sites"]["uci"]["funnel"]
    assert [f["title"] for f in funnel if f["id"] == "age"] == ["Age >= 12 years"]


def test_a_site_min_age_below_the_trial_s_is_a_run_warning(tmp_path: Path) -> None:
    """A site's `min_age = 10` under a trial whose `age` criterion says `min_years = 12`
    screened children of 10 and 11 as passing, without a word: the protocol does not admit
    them. The run goes on (the site's setting is used) but warns in run.json and the log."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    base = cfg.read_text()
    out = tmp_path / "out"

    def age_warnings(min_age: int) -> tuple[list[str], str]:
        cfg.write_text(base + f"min_age = {min_age}\n")
        args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        warnings = json.loads((out / "run.json").read_text())["warnings"]
        return [w for w in warnings if "min_age" in w], result.output

    found, output = age_warnings(10)
    assert found == [
        "uci: min_age 10 is below the trial's minimum age 12 (criterion 'age', min_years in "
        "sirius-sle-2.toml): patients aged 10 to 11 pass 'age' at this site"
    ]
    assert found[0] in output  # logged too
    assert age_warnings(12)[0] == [] and age_warnings(18)[0] == []


def test_a_run_json_that_cannot_be_written_keeps_the_run_s_own_error(tmp_path: Path) -> None:
    """run.json cannot be written (a folder in its place): a run failing for a missing source
    exited 9 naming run.json (the write's error replaced the run's own), not 5."""
    out = tmp_path / "out"
    (out / "run.json").mkdir(parents=True)
    cfg = _config(tmp_path, str(tmp_path / "no-such-source"))
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 5, result.output
    assert "cohort: error: site 'uci': source: data path not found" in result.output


def test_an_out_folder_that_is_a_file_is_exit_9(tmp_path: Path) -> None:
    """`--out` naming a file: one line naming it and exit 9 (it was caught only by the failing
    run.json write: the run itself ended as an internal error)."""
    out = tmp_path / "out"
    out.write_text("a file\n")
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 9, result.output
    assert f"cohort: error: cannot write {out}: not a folder" in result.output
    assert out.read_text() == "a file\n"


def test_a_store_folder_that_cannot_be_made_is_exit_8(tmp_path: Path) -> None:
    """`[store] path` under a file: a store error (exit 8), not an internal error (exit 1)."""
    (tmp_path / "blocked").write_text("a file\n")
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    cfg.write_text(cfg.read_text() + f'[store]\npath = "{tmp_path / "blocked" / "s.sqlite"}"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 8, result.output
    assert "cohort: error: cannot open " in result.output and "not a folder" in result.output
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and "not a folder" in report["error"]


def test_a_site_id_ending_in_a_line_break_is_exit_3(tmp_path: Path) -> None:
    """`id = "uci\\n"` passed the id check (`$` matches before a final line break) and the run
    wrote OUT/"uci\\n"/candidates.csv, a folder no coordinator finds."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    cfg.write_text(cfg.read_text().replace('id = "uci"', 'id = "uci\\n"'))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 3, result.output
    assert "key 'id'" in result.output and "lower-case letters" in result.output
    assert not (out / "uci\n").exists()


def test_sample_into_a_file_is_one_line_exit_9(tmp_path: Path) -> None:
    """`cohort sample --out FILE` ended in an internal error (exit 1, a traceback)."""
    target = tmp_path / "taken"
    target.write_text("a file\n")
    result = CliRunner().invoke(cli, ["sample", "--out", str(target), "--patients", "1"])
    assert result.exit_code == 9, result.output
    assert result.output == f"cohort: error: cannot write {target}: File exists\n"
    assert target.read_text() == "a file\n"


def test_an_empty_site_source_is_exit_3(tmp_path: Path) -> None:
    """`source = ""` read the config file's own folder, and every folder under it, as the
    site's data: a run that screened whatever FHIR files lay there, exit 0."""
    (tmp_path / "stray").mkdir()
    shutil.copy(ROOT / "sample_bundles" / "uci" / "bundle-0021.json", tmp_path / "stray")
    cfg = _config(tmp_path, "")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 3, result.output
    assert "[[sites]] #1: key 'source' is empty" in result.output
    assert not (out / "uci").exists()


@pytest.mark.parametrize(
    ("table", "line", "named"),
    [
        ("[store]", 'path = ""', "[store]: key 'path'"),
        ("[trial]", 'mappings = " "', "[trial]: key 'mappings'"),
    ],
)
def test_an_empty_store_path_or_mappings_folder_is_exit_3(
    tmp_path: Path, table: str, line: str, named: str
) -> None:
    """`[store] path = ""` took the config file's own folder for the store (exit 8, `cannot
    open store /etc/cohort: IsADirectoryError`, after writing run.lock and mapping-check.json
    into it), and `[trial] mappings = ""` took it for the mappings folder (exit 4, naming only
    `systems.csv: file not found`): both are configuration errors naming the key, as an empty
    `source` is."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    text = cfg.read_text()
    if table == "[store]":
        text += f"[store]\n{line}\n"
    else:
        text = text.replace('id = "sirius-sle-2"\n', f'id = "sirius-sle-2"\n{line}\n', 1)
    cfg.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 3, result.output
    assert f"{named} is empty" in result.output and result.output.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.toml"]


@pytest.mark.parametrize("encoding", ["utf-16", "cp1252"])
def test_a_config_not_in_utf8_is_exit_3_naming_its_line(tmp_path: Path, encoding: str) -> None:
    """A config saved as Notepad's "Unicode" (UTF-16) or in the Windows code page (a site name
    "Clínica") ended in an internal error (UnicodeDecodeError, exit 1)."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    text = cfg.read_text().replace('name = "UCI"', 'name = "Clínica UCI"')
    cfg.write_bytes(text.encode(encoding))
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3, result.output
    line = 1 if encoding == "utf-16" else 5
    assert f"{cfg}:{line}: not UTF-8 text" in result.output and result.output.count("\n") == 1


def _a_good_run(tmp_path: Path) -> tuple[Path, Path, list[str], bytes]:
    """(config, out, the run's arguments, its candidates.csv) after a good run of uci."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    out = tmp_path / "out"
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    return cfg, out, args, (out / "uci" / "candidates.csv").read_bytes()


def test_a_run_stopped_by_ctrl_c_says_so_in_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (KeyboardInterrupt) mid-run wrote run.json with `"status": "running"` and a
    `finished` time: a run that had stopped read as one still going, with no reason."""
    import cohort.runner as runner
    from cohort.config import load_config

    cfg, out, args, before = _a_good_run(tmp_path)

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "screen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run(load_config(cfg), date(2026, 11, 26), out)
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and "interrupted" in report["error"]
    assert report["previous_outputs_kept"] is True
    assert (out / "uci" / "candidates.csv").read_bytes() == before


@pytest.mark.usefixtures("sigterm_stops")  # (as cli.main installs it; CliRunner does not)
def test_a_run_stopped_by_sigterm_keeps_outputs_and_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM (systemd stopping the nightly unit, `kill`) ended the process at once: run.json
    said "running" for a run long stopped; Ctrl-C exited 1, the code of a bug ("Aborted!")."""
    import signal

    import cohort.runner as runner

    cfg, out, args, before = _a_good_run(tmp_path)
    signal_during_screen(monkeypatch, signal.SIGTERM)
    result = CliRunner().invoke(cli, [*args[:-3], "2026-11-26", "--out", str(out)])
    assert result.exit_code == 143, result.output
    assert "cohort: error: interrupted (SIGTERM)" in result.output
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and report["error"] == "interrupted (SIGTERM)"
    assert (out / "uci" / "candidates.csv").read_bytes() == before

    def ctrl_c(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "screen", ctrl_c)
    result = CliRunner().invoke(cli, [*args[:-3], "2026-11-26", "--out", str(out)])
    assert result.exit_code == 130 and "interrupted (Ctrl-C / SIGINT)" in result.output


def test_sigterm_taken_inside_a_string_exec_still_exits_143_under_python_m(
    tmp_path: Path,
) -> None:
    """`python -m cohort run` stopped by SIGTERM while a string was being exec'd (a lazily
    imported module defining a dataclass) printed the line and wrote run.json, then died of
    SIGINT (-2, 130 to a shell): CPython marks such a KeyboardInterrupt unhandled, caught or
    not, and under -m ends the process with SIGINT at exit (a quarter of the SIGTERMs sent
    ~0.7 s into a run of 20k patients)."""
    import os
    import subprocess
    import sys

    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(  # (imported at start-up: replaces the screening)
        "import cohort.runner\n"
        "def screen(*args, **kwargs):\n"
        "    exec('import os, signal, time\\n'\n"
        "         'os.kill(os.getpid(), signal.SIGTERM)\\n'\n"
        "         'for _ in range(500): time.sleep(0.01)\\n')\n"
        "cohort.runner.screen = screen\n"
    )
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--out", str(out)],
        env={**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 143, res.stderr
    assert res.stderr.endswith("cohort: error: interrupted (SIGTERM)\n")
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["error"] == "interrupted (SIGTERM)"


def test_explain_says_which_criteria_decide_before_the_detail(tmp_path: Path) -> None:
    """A researcher asking why a patient is excluded had to read ~26 blocks to find the fails:
    the lines after the header name them, as candidates.csv's criterion columns have them."""
    cfg = _config(tmp_path, str(ROOT / "sample_bundles" / "uci"))
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    assert CliRunner().invoke(cli, ["run", *args]).exit_code == 0
    with (out / "uci" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    excluded = next(r for r in rows if r["tier"] == "excluded")
    crits = [c for c in reader.fieldnames or [] if excluded[c] in ("pass", "fail", "unknown")]
    fails = [c for c in crits if excluded[c] == "fail"]
    result = CliRunner().invoke(cli, ["explain", excluded["patient_id"], *args])
    assert result.exit_code == 0, result.output
    head = result.output.split("\n\n")[0].splitlines()
    assert f"fails: {', '.join(fails)}" in head, head
    assert not any(line.startswith("fails:") for line in result.output.split("\n\n")[1:])
