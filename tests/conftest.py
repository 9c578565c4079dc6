"""Fixtures shared by the test files."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cohort.store import Store

# "Today" for every test (cohort.asof.today; subprocesses inherit it): the tests' fixed --as-of
# dates (2026-03-01 .. 2026-12-20) never draw run.json's "--as-of ... after/before today"
# warning, whatever day the suite runs on
PINNED_TODAY = "2026-12-15"


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch: pytest.MonkeyPatch) -> str:
    from cohort.asof import TODAY_ENV

    monkeypatch.setenv(TODAY_ENV, PINNED_TODAY)
    return PINNED_TODAY


def _pytests(handler: logging.Handler) -> bool:
    """Whether `handler` is one of pytest's own (caplog's, live logging's): pytest adds and
    removes those itself around each phase of a test."""
    return type(handler).__module__.startswith("_pytest")


# the root logger before any test (or any module's fixture) ran: its level, its own handlers
_ROOT_LEVEL = logging.getLogger().level
_ROOT_HANDLERS = [h for h in logging.getLogger().handlers if not _pytests(h)]


@pytest.fixture(autouse=True)
def root_logger_restored() -> Iterator[None]:
    """The root logger's level and handlers put back after each test as they were before the
    first: `cli` (any CliRunner run, in a test or a module's fixture) sets them for the whole
    process (logging.basicConfig), so a test's caplog took WARNINGs or not by which test ran
    before it (tests/test_logging_isolation.py)."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if not _pytests(handler) and handler not in _ROOT_HANDLERS:
            root.removeHandler(handler)
    for handler in _ROOT_HANDLERS:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(_ROOT_LEVEL)


@pytest.fixture
def sigterm_stops() -> Iterator[None]:
    """The CLI's SIGTERM and SIGHUP handlers (KeyboardInterrupt), as in a run: cli.main installs
    them, CliRunner and a bare call do not. The previous handlers are put back after the test."""
    from cohort.cli import stop_on_signals

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    stop_on_signals()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in its tmp_path: messages name a file under the working folder by its path
    from there (csvfile.display_path), so a mappings copy in tmp_path reads `mappings/units.csv`
    as the shipped folder does run from the project."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store of its own (the server-pull tests' store; test_store.py has its own)."""
    with Store(tmp_path / "s.db") as s:
        yield s
