"""An --as-of far from today (a typo in a nightly job: 2062 for 2026) is a run.json warning and
a log line; the run goes on. Today comes from cohort.asof.today, pinned for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.asof import TODAY_ENV, as_of_warning, today
from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
UCI = ROOT / "sample_bundles" / "uci"


def _config(folder: Path) -> Path:
    cfg = folder / "site.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n\n[[sites]]\nid = "uci"\nsource = "{UCI}"\n')
    return cfg


def _the_clock_s(asked: Callable[[], date]) -> bool:
    """Whether `asked()` is the clock's date (either side of a midnight passing meanwhile)."""
    before = date.today()
    got = asked()
    return got in (before, date.today())


def test_today_is_the_pinned_date_else_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TODAY_ENV, "2030-02-03")
    assert today() == date(2030, 2, 3)
    monkeypatch.setenv(TODAY_ENV, "not a date")
    assert _the_clock_s(today)
    monkeypatch.delenv(TODAY_ENV)
    assert _the_clock_s(today)


def test_the_conftest_pins_today(pinned_today: str) -> None:
    assert os.environ[TODAY_ENV] == pinned_today
    assert today() == date.fromisoformat(pinned_today)


@pytest.mark.parametrize(
    ("as_of", "said"),
    [
        ("2026-11-29", None),
        ("2026-12-06", None),  # 7 days after: a run prepared for next week's date
        ("2026-12-07", "--as-of 2026-12-07 is 8 days after today (2026-11-29): a typo?"),
        ("2031-01-01", "--as-of 2031-01-01 is 1494 days after today (2026-11-29): a typo?"),
        ("2021-11-29", None),  # 5 years before to the day
        (
            "2021-11-28",
            "--as-of 2021-11-28 is 1827 days before today (2026-11-29), over 5 years: a typo?",
        ),
        (
            "1926-11-29",
            "--as-of 1926-11-29 is 36525 days before today (2026-11-29), over 5 years: a typo?",
        ),
    ],
)
def test_the_warning_bounds(as_of: str, said: str | None) -> None:
    assert as_of_warning(date.fromisoformat(as_of), date(2026, 11, 29)) == said


def test_five_years_before_a_29_february() -> None:
    now = date(2028, 2, 29)
    assert as_of_warning(date(2023, 2, 28), now) is None
    assert as_of_warning(date(2023, 2, 27), now) is not None


def test_a_far_as_of_warns_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TODAY_ENV, "2026-11-29")
    out = tmp_path / "out"
    args = ["run", "--config", str(_config(tmp_path)), "--as-of", "2031-01-01", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    said = "--as-of 2031-01-01 is 1494 days after today (2026-11-29): a typo?"
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "success" and report["as_of"] == "2031-01-01"
    assert report["warnings"] == [said]
    assert (out / "uci" / "candidates.csv").is_file()
    # (the CLI's log handler writes to stderr)
    logged = [line for line in res.stderr.splitlines() if " WARNING " in line]
    assert [line.split(" ", 2)[2] for line in logged] == [f"WARNING cohort: {said}"]


def test_a_run_without_as_of_is_as_of_the_pinned_today(tmp_path: Path, pinned_today: str) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", "--config", str(_config(tmp_path)), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["as_of"] == pinned_today and report["warnings"] == []


def _subprocess_run(tmp_path: Path, as_of: str, env: dict[str, str]) -> dict[str, object]:
    out = tmp_path / f"out-{as_of}"
    argv = [sys.executable, "-m", "cohort", "run", "--config", str(_config(tmp_path))]
    done = subprocess.run(
        [*argv, "--as-of", as_of, "--out", str(out)],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    report: dict[str, object] = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return report


def test_a_subprocess_sees_the_pinned_today(tmp_path: Path) -> None:
    """A CLI run in another process takes today from the environment too: the tests' fixed
    dates draw no warning there, and a date far from the pinned day does."""
    assert _subprocess_run(tmp_path, "2026-11-25", dict(os.environ))["warnings"] == []
    env = {**os.environ, TODAY_ENV: "2026-11-25"}
    assert _subprocess_run(tmp_path, "2062-11-25", env)["warnings"] == [
        "--as-of 2062-11-25 is 13149 days after today (2026-11-25): a typo?"
    ]
