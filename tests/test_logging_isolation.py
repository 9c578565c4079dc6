"""A test that runs the CLI in this process leaves the root logger as it found it: `cli` sets
the root logger's level and handler for the whole process (logging.basicConfig), and a later
test's caplog missed the WARNINGs it waited for (test_ingest run after test_kept_lists, whose
runs say `--log-level error`)."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from cohort.cli import cli


def test_a_cli_run_at_log_level_error() -> None:
    result = CliRunner().invoke(cli, ["--log-level", "error", "sample", "--help"])
    assert result.exit_code == 0, result.output
    assert logging.getLogger().level == logging.ERROR  # (what the next test must not inherit)


@pytest.fixture(scope="module")
def cli_run_by_a_module_fixture() -> int:
    """The CLI run by a module's fixture (as test_golden's `golden_run`), set up before the
    first test using it: what it set must not outlive that test either."""
    return CliRunner().invoke(cli, ["--log-level", "error", "sample", "--help"]).exit_code


def test_a_module_fixture_runs_the_cli(cli_run_by_a_module_fixture: int) -> None:
    assert cli_run_by_a_module_fixture == 0


def test_the_next_test_still_takes_warnings(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("cohort").warning("a reading process died")
    assert [r.getMessage() for r in caplog.records] == ["a reading process died"]
    left = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    assert left == []  # (the CLI's handler, writing to a CliRunner stream long closed)
