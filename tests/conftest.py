"""Fixtures shared by the test files."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def sigterm_stops() -> Iterator[None]:
    """The CLI's SIGTERM handler (KeyboardInterrupt), as in a run: cli.main installs it, CliRunner
    and a bare call do not. The previous handler is put back after the test."""
    from cohort.cli import stop_on_sigterm

    previous = signal.getsignal(signal.SIGTERM)
    stop_on_sigterm()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
