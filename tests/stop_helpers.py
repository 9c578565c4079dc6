"""A run stopped by a signal half-way: `runner.screen` replaced by one that sends it."""

from __future__ import annotations

import os
import signal
import time

import pytest


def signal_during_screen(monkeypatch: pytest.MonkeyPatch, sig: signal.Signals) -> None:
    """The next run's screening sends `sig` to this process and waits for its handler (the
    CLI's `stop_on_signals`, installed by the `sigterm_stops` fixture)."""
    import cohort.runner as runner

    def stopped(*_: object, **__: object) -> None:
        os.kill(os.getpid(), sig)
        for _ in range(500):  # the handler runs at the next bytecode boundary
            time.sleep(0.01)

    monkeypatch.setattr(runner, "screen", stopped)
