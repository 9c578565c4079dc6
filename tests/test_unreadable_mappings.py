"""A mapping or criteria file, or a folder of them, that cannot be read: `cohort run` and
`cohort mappings check` both stop with one line naming it, exit 4 (they crashed with a
PermissionError traceback, exit 1 "this is a bug", or blamed the criteria for a concept folder
they could not list).

The tests run as root too, whom a mode of 000 does not stop: `unreadable` refuses the paths
as the kernel refuses a user (opening a file, listing a folder, looking inside it), so the
tests always run; one real-chmod test runs when not root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from researcher_helpers import relative_project

from cohort.cli import cli


def unreadable(monkeypatch: pytest.MonkeyPatch, path: Path, error: type[OSError]) -> None:
    """`path` refused as to a user without permission: a file cannot be opened; a folder can
    neither be listed nor looked into (what is in it cannot be opened or even stat'ed)."""
    target = os.path.abspath(path)

    def refused(p: Any, *, inside: bool) -> bool:
        if not isinstance(p, (str, os.PathLike)):
            return False  # (a file descriptor)
        full = os.path.abspath(os.fspath(p))
        return full == target or (inside and full.startswith(target + os.sep))

    def fail(p: Any) -> OSError:
        return error(13 if error is PermissionError else 21, os.strerror(13), os.fspath(p))

    real_open, real_listdir, real_scandir, real_stat = Path.open, os.listdir, os.scandir, os.stat

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if refused(self, inside=True):
            raise fail(self)
        return real_open(self, *args, **kwargs)

    def listdir(p: Any = ".") -> list[str]:
        if refused(p, inside=True):
            raise fail(p)
        return real_listdir(p)

    def scandir(p: Any = ".") -> Any:
        if refused(p, inside=True):
            raise fail(p)
        return real_scandir(p)

    def stat(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if refused(p, inside=True) and not refused(p, inside=False):
            raise PermissionError(13, os.strerror(13), os.fspath(p))  # (inside a folder)
        return real_stat(p, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(os, "scandir", scandir)
    if path.is_dir():
        monkeypatch.setattr(os, "stat", stat)


def _invoke(cfg: Path, command: str, out: Path) -> tuple[int, str]:
    if command == "run":
        args = ["run", "--config", str(cfg), "--out", str(out), "--as-of", "2026-12-01"]
    else:
        args = ["mappings", "check", "--config", str(cfg)]
    result = CliRunner().invoke(cli, args)
    crash = f"{result.exception!r}" if result.exit_code == 1 else ""
    return result.exit_code, result.output + crash


CASES = {
    "concept file": "mappings/concepts/labs.csv",
    "criteria file": "mappings/trials/sirius-sle-2.toml",
    "concepts folder": "mappings/concepts",
    "trials folder": "mappings/trials",
    "medications folder": "mappings/medications",
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_an_unreadable_mapping_file_or_folder_is_exit_4_naming_it_in_run_and_check(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    cfg = relative_project(in_tmp)
    unreadable(monkeypatch, in_tmp / CASES[case], PermissionError)
    said = {}
    for command in ("run", "check"):
        code, output = _invoke(cfg, command, in_tmp / "out")
        assert code == 4, (command, output)
        assert "Traceback" not in output and "internal error" not in output, output
        error = output.strip().splitlines()[-1] if command == "run" else _error_lines(output)[0]
        assert CASES[case] in error, (command, output)
        assert "cannot be read" in error and "PermissionError" in error, (command, output)
        said[command] = error.removeprefix("cohort: error: ").removeprefix("error: ")
    assert said["run"] == said["check"]


def _error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith(("error:", "cohort: error:"))]


def test_an_unreadable_mappings_folder_in_check_with_a_config_is_as_in_run(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mappings check --config` looked for the criteria file in the folder first and crashed
    (os.stat refused); `run` says the folder cannot be read: so does `check` now."""
    cfg = relative_project(in_tmp)
    unreadable(monkeypatch, in_tmp / "mappings", PermissionError)
    outputs = [_invoke(cfg, command, in_tmp / "out") for command in ("run", "check")]
    for code, output in outputs:
        assert code == 4, output
        assert "mappings folder cannot be read" in output, output
    said = [_error_lines(output)[-1].removeprefix("cohort: error: ") for _, output in outputs]
    assert said[0] == said[1]


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_criteria_file_that_is_a_folder_is_exit_4_naming_it(
    in_tmp: Path, command: str
) -> None:
    """Any OSError, not only PermissionError: a folder where the criteria file should be."""
    cfg = relative_project(in_tmp)
    trial = in_tmp / "mappings" / "trials" / "sirius-sle-2.toml"
    trial.unlink()
    trial.mkdir()
    code, output = _invoke(cfg, command, in_tmp / "out")
    assert code == 4, output
    assert "Traceback" not in output
    error = _error_lines(output)[0]
    assert "mappings/trials/sirius-sle-2.toml" in error, output


def test_a_concept_file_that_cannot_be_opened_for_another_reason(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = relative_project(in_tmp)
    unreadable(monkeypatch, in_tmp / "mappings" / "concepts" / "labs.csv", IsADirectoryError)
    code, output = _invoke(cfg, "run", in_tmp / "out")
    assert code == 4, output
    assert output.strip().splitlines()[-1] == (
        "cohort: error: mappings/concepts/labs.csv: cannot be read (IsADirectoryError)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_real_unreadable_concept_file(in_tmp: Path, command: str) -> None:
    cfg = relative_project(in_tmp)
    labs = in_tmp / "mappings" / "concepts" / "labs.csv"
    labs.chmod(0)
    try:
        code, output = _invoke(cfg, command, in_tmp / "out")
    finally:
        labs.chmod(0o644)
    assert code == 4, output
    assert "mappings/concepts/labs.csv: cannot be read (PermissionError)" in output
