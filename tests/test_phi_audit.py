"""PHI and secrets, second pass (tests/test_phi.py is the first): what a server says, library
log lines, tracebacks, terminal output, `--no-phi` free text, spool files, hostile CSV and HTML.

Each test names in its docstring what leaked or was unsafe before its fix."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import responses
from test_phi import MRN, NAME_FAMILY
from test_reliability_server import FakeServer, _config, _oo
from test_reliability_support import AS_OF

from cohort.config import load_config
from cohort.errors import CohortError
from cohort.runner import run

DIAGNOSTICS = f"no patient {NAME_FAMILY} with identifier {MRN}"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    import test_reliability_server as srv

    monkeypatch.setenv(srv.TOKEN_ENV, "tok-one")


def _server_run(folder: Path, fault: Any, *, bulk: bool = False) -> tuple[dict[str, Any], str]:
    """One run against the fake server; (run.json, the message the CLI would print)."""
    cfg = load_config(_config(folder, bulk=bulk, retries=0))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeServer(rsps, fault)
        with pytest.raises(CohortError) as e:
            run(cfg, date.fromisoformat(AS_OF), folder / "out")
    report = json.loads((folder / "out" / "run.json").read_text(encoding="utf-8"))
    return report, str(e.value)


@pytest.mark.parametrize("where", ["Observation?", "bulkstatus"])
def test_operation_outcome_diagnostics_stay_out_of_errors(tmp_path: Path, where: str) -> None:
    """A search or a Bulk status URL answering an error with an OperationOutcome whose
    diagnostics quote a patient ("no patient Quixotica-Marchetti with identifier MRN-...")
    had that text in the ServerError message: printed on stderr (`cohort: error: ...`) and
    written to run.json's `error`. Now the message names the issue's severity and code only."""

    def fail(n: int, req: Any) -> Any:
        if where in req.url and req.method == "GET":
            return 400, {}, json.dumps(_oo(DIAGNOSTICS, "not-found"))
        return None

    report, message = _server_run(tmp_path, fail, bulk=where == "bulkstatus")
    assert report["status"] == "failed"
    assert "HTTP 400: error not-found" in message
    for text in (message, json.dumps(report)):
        assert MRN not in text and NAME_FAMILY not in text


def test_operation_outcome_code_that_is_text_is_not_quoted() -> None:
    """An issue `code` (or severity) holding text instead of a FHIR code was quoted as it was
    (up to 40 characters) in run.json warnings and error messages: "?" now."""
    from cohort.source.fhir.outcome import outcome_issues

    res = {"issue": [{"severity": "error", "code": f"MRN {MRN}"}, {"severity": "warning",
           "code": "too-costly"}]}  # fmt: skip
    assert outcome_issues(res) == [("error", "?"), ("warning", "too-costly")]
