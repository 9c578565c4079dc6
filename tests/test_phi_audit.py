"""PHI and secrets, second pass (tests/test_phi.py is the first): what a server says, library
log lines, tracebacks, terminal output, `--no-phi` free text, spool files, hostile CSV and HTML.

Each test names in its docstring what leaked or was unsafe before its fix."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import responses
from test_phi import MRN, NAME_FAMILY
from test_reliability_server import FakeServer, _config, _oo
from test_reliability_support import AS_OF, REPO, SAMPLES

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


SIGNED = "X-Amz-Signature=5ecret5ignature&X-Amz-Credential=AKIAEXAMPLE"


def test_debug_log_of_a_signed_bulk_url_has_no_query(capfd: pytest.CaptureFixture[str]) -> None:
    """At `--log-level debug` urllib3 logs every request line with its query string: a Bulk
    output file URL signed with a token in its query (`?X-Amz-Signature=...`) went to stderr
    whole. Library log lines now lose the query of every URL and path in them."""
    import http.server
    import logging
    import threading

    from cohort.cli import _setup_logging
    from cohort.source.fhir.client import FhirClient
    from cohort.source.fhir.settings import ServerSettings

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _setup_logging("debug")
        base = f"http://127.0.0.1:{srv.server_port}/r4"
        client = FhirClient(ServerSettings.from_dict({"base_url": base}, "t"))
        url = f"http://127.0.0.1:{srv.server_port}/files/Patient.ndjson?{SIGNED}"
        client.request("GET", url, key="Patient", auth=False, foreign=True).close()
    finally:
        srv.shutdown()
        srv.server_close()
        logging.basicConfig(level=logging.WARNING, force=True)
    err = capfd.readouterr().err
    assert "/files/Patient.ndjson?..." in err  # the request was logged ...
    assert "5ecret5ignature" not in err and "AKIAEXAMPLE" not in err  # ... without its query


ESC_NAME = "bad\x1b]0;pwned\x07\x1b[2J\rINFO cohort: forged \u202egpj.json"


def test_control_characters_in_names_reach_no_terminal(tmp_path: Path) -> None:
    """A data file named with an ANSI escape sequence, a CR and a right-to-left override went
    into the warning logged for a file not read whole, and a missing source path into the
    `cohort: error:` line, as they were: the escapes cleared the operator's terminal (and set
    its title), the CR forged a log line, U+202E showed the name reversed. They are escaped."""
    site = tmp_path / "amr"
    shutil.copytree(SAMPLES / "amr", site)
    (site / ESC_NAME).write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")

    def cli(source: Path) -> subprocess.CompletedProcess[str]:
        cfg = tmp_path / "c.toml"
        quoted = json.dumps(str(source))  # (a TOML basic string reads JSON's escapes)
        cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "amr"\nname = "A"\n'
                       f"source = {quoted}\n", encoding="utf-8")  # fmt: skip
        return subprocess.run(
            [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--as-of", AS_OF,
             "--out", str(tmp_path / "out")],
            capture_output=True, text=True, cwd=REPO, timeout=300, env=dict(os.environ),
        )  # fmt: skip

    res = cli(site)
    assert res.returncode == 0, res.stderr[-2000:]
    # (a name that is not Bulk-style is said by its pseudonym now: tests/test_file_names.py)
    shown = "file-" + hashlib.sha256(ESC_NAME.encode()).hexdigest()[:8]
    assert "not read whole" in res.stderr and f"(first: {shown};" in res.stderr
    assert "pwned" not in res.stderr
    missing = cli(tmp_path / ESC_NAME)
    assert missing.returncode != 0 and "cohort: error:" in missing.stderr
    for out in (res, missing):
        assert not any(c in out.stderr for c in "\x1b\x07\r\u202e"), out.stderr[-500:]


def test_traceback_of_an_internal_error_carries_no_message(tmp_path: Path) -> None:
    """An unexpected exception (a bug) printed Python's traceback on stderr with each chained
    exception's message: `ValueError: invalid literal for int() with base 10: 'Quixotica-...'`
    put a value read from the data in the service's log. The traceback now keeps the frames
    and exception types (exit 1, run.json as before) and leaves every message out."""
    code = f"""
import sys
import cohort.runner
def boom(*a, **k):
    try:
        {{}}[{MRN!r}]
    except KeyError as e:
        raise ValueError("invalid literal for int() with base 10: {NAME_FAMILY!r}") from e
cohort.runner.run = boom
sys.argv = ["cohort", "run", "--out", {str(tmp_path / "out")!r}, "--as-of", "{AS_OF}"]
from cohort.cli import main
main()
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)  # fmt: skip
    assert res.returncode == 1
    err = res.stderr
    assert "Traceback (most recent call last)" in err and "direct cause" in err
    assert "KeyError (message left out" in err and "ValueError (message left out" in err
    assert "in boom" in err and "internal error (ValueError)" in err
    assert MRN not in err and NAME_FAMILY not in err


# ---- hostile data through the whole pipeline ------------------------------------------------

HOSTILE = ["=cmd|' /C calc'!A0", "@SUM(1)", "-2+3", "\tTAB", "line1\r\nline2",
           "</script><script>alert(1)</script>", "<img src=x onerror=alert(2)>",
           "\x1b]0;pwned\x07\x1b[2J", "evil\u202egpj.exe", "nul\x00byte"]  # fmt: skip
FREE = "FREETEXT-Zebulon"  # marks free text written by a clinician (could quote a patient)


def _hostile_records() -> list[dict[str, Any]]:
    mr = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    out: list[dict[str, Any]] = []
    for i, h in enumerate(HOSTILE):
        pid, subject = f"hx-{i}", {"reference": f"Patient/hx-{i}"}
        out += [
            {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-01-01",
             "name": [{"text": h}], "identifier": [{"type": mr, "value": f"{MRN}{h}"}],
             "telecom": [{"system": "phone", "value": h}], "address": [{"postalCode": h}]},
            {"resourceType": "Condition", "id": f"{pid}-sle", "subject": subject,
             "code": {**sle, "text": f"SLE {FREE} {h}"}, "onsetDateTime": "2015-01-01"},
            # platelets as text: a value no unit converts (its reason quoted it)
            {"resourceType": "Observation", "id": f"{pid}-plt", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
             "subject": subject, "effectiveDateTime": "2026-11-01", "valueString": f"{FREE} {h}"},
            # a code no concept maps: coverage lists its code, display and example value
            {"resourceType": "Observation", "id": f"{pid}-local", "status": "final",
             "code": {"coding": [{"system": "http://example.org/lab", "code": f"L{i}",
                                  "display": h}], "text": h},
             "subject": subject, "effectiveDateTime": "2026-11-01", "valueString": h},
            {"resourceType": "MedicationStatement", "id": f"{pid}-hcq", "status": "active",
             "subject": subject, "effectivePeriod": {"start": "2025-01-01"},
             "medicationCodeableConcept": {"text": f"HCQ {FREE} {h}", "coding": [
                 {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "5521"}]}},
        ]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run (PHI) into OUT and one with --no-phi into OUT-nophi, on the amr sample plus
    patients whose names, MRNs, phones, postal codes and free texts are hostile."""
    import orjson

    root = tmp_path_factory.mktemp("hostile")
    site = root / "amr"
    shutil.copytree(SAMPLES / "amr", site)
    lines = [orjson.dumps(r) for r in _hostile_records()]
    (site / "hostile.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    cfg = root / "c.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "amr"\nname = "A"\n'
                   f'source = "{site}"\n', encoding="utf-8")  # fmt: skip
    for out, phi in ((root / "out", True), (root / "out-nophi", False)):
        run(load_config(cfg), date.fromisoformat(AS_OF), out, phi=phi)
    return root


def _csv_cells(path: Path) -> list[list[str]]:
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def _formula_cells(rows: list[list[str]]) -> list[str]:
    from cohort.report.files import excel_safe

    return [c for row in rows for c in row if excel_safe(c) != c]


def test_coverage_csv_is_excel_safe(hostile: Path) -> None:
    """coverage.csv was written with a plain csv writer: a code, display or example value
    recorded as `=cmd|' /C calc'!A0` or `@SUM(1)` was a live formula when a researcher opened
    the file in Excel. It is written like candidates.csv now (cells prefixed with ')."""
    from cohort.tools.coverage import coverage_report, write_csv

    cfg = load_config(hostile / "c.toml")
    path = write_csv(coverage_report(cfg, hostile / "out"), hostile / "out" / "coverage.csv")
    rows = _csv_cells(path)
    assert rows[0][:3] == ["section", "site", "resource_type"]
    cells = [c for row in rows for c in row]
    assert "'=cmd|' /C calc'!A0" in cells and "'@SUM(1)" in cells  # listed, as text
    assert _formula_cells(rows) == []
    assert path.stat().st_mode & 0o777 == 0o600


TERMINAL_UNSAFE = ("\x1b", "\x07", "\r", "\x00", "\u202e")


def _tool(*args: str) -> str:
    from click.testing import CliRunner

    from cohort.cli import cli

    res = CliRunner().invoke(cli, list(args), color=True)  # as on a terminal: nothing stripped
    assert res.exit_code == 0, res.output[-2000:]
    return res.output


def test_explain_coverage_and_diff_print_no_control_characters(hostile: Path) -> None:
    """`cohort explain` printed a patient's values, reasons and notes, `cohort mappings
    coverage` the displays and example values of unmapped codes, as recorded: a value holding
    `ESC ] 0;pwned BEL ESC [2J` set the terminal's title and cleared the screen, a CR
    overwrote the line, U+202E showed the rest of the line reversed. They print as escapes."""
    cfg, out = str(hostile / "c.toml"), str(hostile / "out")
    texts = [_tool("explain", f"hx-{i}", "--config", cfg, "--out", out, "--as-of", AS_OF)
             for i in range(len(HOSTILE))]  # fmt: skip
    texts.append(_tool("mappings", "coverage", "--config", cfg, "--out", out, "--limit", "100"))
    texts.append(_tool("diff", out, str(hostile / "out-nophi")))
    joined = "\n".join(texts)
    assert r"\x1b]0;pwned\x07\x1b[2J" in joined and r"evil\u202egpj.exe" in joined
    assert r"line1\x0d\x0aline2" in joined  # one line, as the value is one value
    for c in TERMINAL_UNSAFE:
        assert c not in joined, repr(c)


def test_no_phi_outputs_hold_no_free_text(hostile: Path) -> None:
    """`--no-phi` (for sharing outside the care team) left out the identifying columns but
    still wrote free text as recorded: evidence.csv values (a condition's or medication's text,
    an Observation's valueString) and the reasons quoting them ("platelets: value/unit
    'FREETEXT-Zebulon ...' not convertible", "prior ianalumab: <medication text>"). Free text
    may quote a patient; only numbers, ratios and result words are kept now."""
    from cohort.report.nophi import WITHHELD

    phi_evidence = (hostile / "out" / "amr" / "evidence.csv").read_text(encoding="utf-8-sig")
    assert FREE in phi_evidence  # the care team's evidence.csv keeps it
    folder = hostile / "out-nophi" / "amr"
    for name in ("candidates.csv", "evidence.csv", "summary.html"):
        text = (folder / name).read_text(encoding="utf-8-sig")
        for secret in (FREE, MRN, "HCQ", "Hydroxychloroquine", *HOSTILE):
            assert secret not in text, f"{secret!r} in --no-phi {name}"
    evidence = _csv_cells(folder / "evidence.csv")
    values = {row[6] for row in evidence[1:]}
    assert WITHHELD in values and {"1:160", "Negative", "35"} <= values  # measurements stay
    reasons = {row[5] for row in _csv_cells(folder / "candidates.csv")[1:]}
    assert any(f"value '{WITHHELD}' (no unit) not convertible" in r for r in reasons)


def test_no_phi_reasons_withhold_free_text_without_the_pipeline() -> None:
    """The report functions called on results that still carry their evidence (as tests and
    tools do) withheld nothing either: candidates_csv(phi=False) quoted a medication's text
    in the reason, evidence_csv(phi=False) did not exist."""
    from cohort.model import Candidate, CriterionInfo, Evidence, Patient, Result, SiteResult, Status
    from cohort.report.csv import candidates_csv, evidence_csv

    ev = Evidence("MedicationStatement/m1", "ianalumab", f"VAY736 for {NAME_FAMILY}", "", "2024")
    r = Result("prior_ianalumab", Status.FAIL, f"prior ianalumab: {ev.value}", (ev,))
    site = SiteResult("s", "S", date(2026, 11, 25), [CriterionInfo("prior_ianalumab",
                      "exclusion", "No prior ianalumab")], [], [Candidate(Patient("p1"), [r],
                      tier="excluded", rank=1)])  # fmt: skip
    cands, evidence = candidates_csv(site, phi=False), evidence_csv(site, phi=False)
    assert NAME_FAMILY not in cands and "prior ianalumab: (text withheld)" in cands
    assert NAME_FAMILY not in evidence and "m1,ianalumab,(text withheld)," in evidence
    assert NAME_FAMILY in candidates_csv(site) and NAME_FAMILY in evidence_csv(site)


def test_bulk_spool_files_are_owner_only(tmp_path: Path) -> None:
    """Bulk downloads were spooled with the umask's modes: under the usual 022 the `.part`
    NDJSON file a broken (or killed) download leaves to be resumed, and job.json, were 0644,
    and a spool folder made earlier (or by hand) kept its modes: PHI readable by every local
    user. Spool files are 0600 and the site's spool folder 0700 now, whatever the umask."""
    import io

    from test_reliability_server import POPULATION, _Reset

    body = "\n".join(json.dumps(r) for (t, _), r in sorted(POPULATION.items())
                     if t == "Observation").encode()  # fmt: skip

    def drop(n: int, req: Any) -> Any:
        if "bulkfiles/Observation" in req.url:
            return 200, {}, io.BufferedReader(_Reset(body[: len(body) // 2]))
        return None

    spool = tmp_path / "spool" / "amr"
    spool.mkdir(parents=True, mode=0o755)
    spool.chmod(0o755)
    old = os.umask(0o022)
    try:
        report, _ = _server_run(tmp_path, drop, bulk=True)
    finally:
        os.umask(old)
    assert report["status"] == "failed"
    left = sorted(p.name for p in spool.iterdir())
    assert "job.json" in left and any(n.endswith(".part") for n in left), left
    assert spool.stat().st_mode & 0o777 == 0o700
    for p in spool.iterdir():
        assert p.stat().st_mode & 0o777 == 0o600, f"{p.name} is {oct(p.stat().st_mode)}"


@pytest.mark.parametrize("validate", ["fast", "full"])
def test_issue_paths_quote_no_key_of_the_data(tmp_path: Path, validate: str) -> None:
    """A record with a JSON key that is no FHIR element holding an impossible date (fast
    validation: "Patient.Zebulon Quixotica-Marchetti MRN-...: impossible calendar date") or
    refused by the FHIR model (full validation: "Patient.<key>: extra_forbidden") had the key
    quoted in run.json's issues: a key is data too. Keys not shaped like an element name are
    named "?"."""
    import orjson

    site = tmp_path / "amr"
    site.mkdir()
    key = f"{NAME_FAMILY} {MRN}"
    rec = {"resourceType": "Patient", "id": "k1", "birthDate": "1980-01-01", key: "2026-02-30"}
    (site / "p.ndjson").write_bytes(orjson.dumps(rec) + b"\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[run]\nvalidate = "{validate}"\n'
                   f'[[sites]]\nid = "amr"\nname = "A"\nsource = "{site}"\n')  # fmt: skip
    run(load_config(cfg), date.fromisoformat(AS_OF), tmp_path / "out")
    text = (tmp_path / "out" / "run.json").read_text(encoding="utf-8")
    assert "Patient.?" in text
    assert NAME_FAMILY not in text and MRN not in text


RLO_NAME = "Zeb\u202eatsop\u202c \x1b[2J\x00"


def test_summary_html_neutralises_bidi_and_control_characters() -> None:
    """A name holding a right-to-left override (U+202E) was written into summary.html as it
    was: in the upcoming-dates list it reversed the rest of the line (the reasons after the
    name read backwards), and ESC/NUL went into the page. Such characters show as U+FFFD."""
    from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
    from cohort.report.html import summary_html

    r = Result("washout", Status.FAIL, "belimumab within 84 days", eligible_from=date(2027, 1, 1))
    cand = Candidate(Patient("p1", name=RLO_NAME), [r], tier="excluded", rank=1,
                     eligible_from=date(2027, 1, 1))  # fmt: skip
    site = SiteResult("s", "S\u202e", date(2026, 11, 25),
                      [CriterionInfo("washout", "exclusion", "Washout")], [], [cand])  # fmt: skip
    html = summary_html(site, history=[], phi=True)
    assert "Zeb\ufffdatsop\ufffd \ufffd[2J\ufffd" in html
    for c in ("\u202e", "\u202c", "\x1b", "\x00"):
        assert c not in html, repr(c)


def test_run_json_escapes_bidi_and_c1_characters(tmp_path: Path) -> None:
    """run.json is read on a terminal (`cat`, `jq`): a file name with U+202E (or a C1 control
    such as U+009B, an escape sequence's start on some terminals) went into its issues as it
    was, so the origin printed reversed ("evil<RLO>gpj.ndjson" as "eviljson.jpg..."). Such
    characters are JSON \\u escapes now; the file still parses to the same name. (The source
    file itself: run.json names any other file that is not Bulk-style by its pseudonym.)"""
    site = tmp_path / "amr"
    site.mkdir()
    name = "evil\u202egpj\u009b.ndjson"
    (site / name).write_text('{"resourceType": "Patient", "id": "f1", "birthDate": "x"}\n')
    cfg = tmp_path / "c.toml"
    source = json.dumps(str(site / name))  # (a TOML basic string reads JSON's escapes)
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "amr"\nname = "A"\n'
                   f"source = {source}\n")  # fmt: skip
    run(load_config(cfg), date.fromisoformat(AS_OF), tmp_path / "out")
    text = (tmp_path / "out" / "run.json").read_text(encoding="utf-8")
    assert "\u202e" not in text and "\u009b" not in text and r"evil\u202egpj\u009b" in text
    origins = [i["origin"] for i in json.loads(text)["sites"]["amr"]["issues"]]
    assert f"{name}:1" in origins


@pytest.mark.parametrize(
    "base",
    [
        "https://svc:Pa55w0rd-x@fhir.example.invalid/r4",
        "https://fhir.example.invalid/r4?key=Pa55w0rd-x",
    ],
)
def test_base_url_with_credentials_is_refused(tmp_path: Path, base: str) -> None:
    """A base_url holding `user:password@` (requests sends it as Basic auth, so it worked) or
    an API key in its query was accepted and then written as it was to run.json (`source`,
    `base_url`), the store and error messages. It is a configuration error now, whose message
    quotes no part of the URL (and is found as the config loads: no run.json is written)."""
    from test_reliability_support import write_config

    from cohort.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, {"amr": base}))
    assert "key 'source' must hold no user name" in str(e.value)
    assert "Pa55w0rd" not in str(e.value)


def test_source_with_credentials_is_refused_beside_a_base_url(tmp_path: Path) -> None:
    """With `[sites.server] base_url` given, only that URL was checked: a `source` holding
    `user:password@` passed and was written as it was to run.json (`sites.<id>.source`), and
    the store's marks of the site (review)."""
    from test_reliability_support import write_config

    from cohort.errors import ConfigError

    source = "https://svc:Pa55w0rd-x@fhir.example.invalid/r4"
    server = {"amr": {"base_url": "https://fhir.example.invalid/r4"}}
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, {"amr": source}, server=server))
    assert "key 'source' must hold no user name" in str(e.value)
    assert "Pa55w0rd" not in str(e.value)


SECRET = "eyJhbGciOiJSUzM4NCJ9.c2VjcmV0.c2lnbmF0dXJl"
# (a TOML escape: the config holds the key's line breaks)
PEM = r"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("server", "needle"),
    [
        ({"auth": "bearer", "token_env": SECRET}, SECRET),  # the token put where its name goes
        ({"auth": "basic", "username": "u", "password_env": "hunter2-Pa55"}, "hunter2-Pa55"),
        ({"auth": "bearer", "token_file": SECRET}, SECRET),
        ({"auth": "smart-backend", "client_id": "c", "private_key_file": PEM}, "MIIEvQIB"),
    ],
)
def test_secret_put_in_a_name_key_is_not_quoted(
    tmp_path: Path, server: dict[str, str], needle: str
) -> None:
    """A secret written where its variable's or file's name belongs (`token_env = "eyJ..."`,
    `password_env = "hunter2"`, a PEM key pasted into `private_key_file`) was quoted by the
    error that followed ("environment variable eyJ... is not set", "cannot read
    private_key_file -----BEGIN PRIVATE KEY-----...") on stderr and in run.json. A name is
    quoted only when shaped as an environment variable's name or as a path now."""
    from test_fhir_client import BASE
    from test_reliability_support import write_config

    from cohort.errors import ConfigError

    cfg = load_config(write_config(tmp_path, {"amr": BASE}, server={"amr": server}))
    no_network = responses.RequestsMock(assert_all_requests_are_fired=False)
    with no_network, pytest.raises(CohortError) as e:
        run(cfg, date.fromisoformat(AS_OF), tmp_path / "out")
    assert isinstance(e.value, ConfigError)
    report = (tmp_path / "out" / "run.json").read_text(encoding="utf-8")
    assert needle not in str(e.value) and needle not in report
    assert "named in the config" in str(e.value)


def test_every_folder_made_for_outputs_and_store_is_owner_only(tmp_path: Path) -> None:
    """OUT, its .cohort folder and the store's folder were made 0700, but the folders missing
    above them (`--out /srv/new/out`, `[store] path = ".../new/state/store.sqlite"`) with
    Python's mkdir(parents=True) defaults: 0777 under umask 000, so any local user could
    rename them and put a folder of their own (and the next run's PHI) in their place."""
    cfg = tmp_path / "c.toml"
    store = tmp_path / "s1" / "s2" / "store.sqlite"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[store]\npath = "{store}"\n[[sites]]\n'
                   f'id = "amr"\nname = "A"\nsource = "{SAMPLES / "amr"}"\n')  # fmt: skip
    out = tmp_path / "o1" / "o2" / "out"
    res = subprocess.run(
        [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--as-of", AS_OF,
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300, preexec_fn=lambda: os.umask(0),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    for d in (tmp_path / "o1", tmp_path / "o1" / "o2", out, tmp_path / "s1", store.parent):
        assert d.stat().st_mode & 0o777 == 0o700, f"{d} is {oct(d.stat().st_mode)}"
