"""PHI and secrets, third pass (tests/test_phi.py and test_phi_audit.py are the first two):
spreadsheet formulas behind leading whitespace or in full-width forms, URLs whose credentials
were not recognised as a URL's, and what an authorisation server or a FHIR server says.

Each test names in its docstring what leaked or was unsafe before its fix."""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_reliability_support import AS_OF, SAMPLES

from cohort.config import load_config
from cohort.runner import run

# ---- CSV cells a spreadsheet evaluates --------------------------------------------------------

# What a spreadsheet may read as a formula: = + - @ (ASCII, full-width or small forms) after any
# leading whitespace (space, NBSP, ideographic space, line breaks) or zero-width characters, or
# a cell starting with a tab or CR. Written independently of cohort.report.files on purpose.
_SIGNS = "=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b"
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def formula_like(cell: str) -> bool:
    if cell[:1] in ("\t", "\r"):
        return True
    head = cell.lstrip("".join(c for c in map(chr, range(0x3001)) if c.isspace()) + _ZERO_WIDTH)
    return head != "" and head[0] in _SIGNS and _NUMBER.fullmatch(head) is None


SNEAKY = [
    ' =HYPERLINK("http://evil.example/","x")',
    "  @SUM(1+1)*cmd|' /C calc'!A0",
    "\u00a0=1+1",
    "\u3000=1+1",
    "\n=1+2",
    "\r\n+cmd|' /C calc'!A0",
    "\u200b=1+1",
    "\ufeff=1+1",
    "\uff1dHYPERLINK(\"http://evil.example/\")",
    "\uff0b1+1",
    "\uff0d1+1",
    "\uff20SUM(1)",
    "\ufe661+1",
    " \t-2+3",
]


@pytest.mark.parametrize("cell", SNEAKY)
def test_excel_safe_guards_a_formula_after_whitespace_or_in_full_width(cell: str) -> None:
    """`excel_safe` looked at the first character only, and only at ASCII `= + - @`, tab and
    CR: " =HYPERLINK(...)", a formula after a no-break or ideographic space, a line break or a
    zero-width space, and the full-width `＝ ＋ － ＠` (which spreadsheets in East Asian locales
    read as the ASCII signs) went into candidates.csv, evidence.csv and coverage.csv as they
    were. They are prefixed with `'` now, as a formula at the start of a cell is."""
    from cohort.report.files import excel_safe

    assert formula_like(cell)
    assert excel_safe(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell", [" -3", "  42", " 1.5e3", " plain text", "\uff5ccmd", "|cmd", "a=b", "\u3000name"]
)
def test_excel_safe_leaves_numbers_and_text_after_whitespace(cell: str) -> None:
    from cohort.report.files import excel_safe

    assert not formula_like(cell)
    assert excel_safe(cell) == cell


def test_a_guarded_cell_reads_back_as_it_was() -> None:
    """The `change` column reads the previous candidates.csv back: a name or id guarded with
    `'` must come back as it was recorded, or a patient reads as changed every night."""
    from cohort.report.files import excel_safe
    from cohort.tools.changes import unguard

    for cell in [*SNEAKY, "=1+1", "-p1", "plain", "'quoted"]:
        assert unguard(excel_safe(cell)) == cell


def _sneaky_site(root: Path) -> Path:
    import orjson

    site = root / "amr"
    shutil.copytree(SAMPLES / "amr", site)
    mr = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    recs: list[dict[str, object]] = []
    for i, h in enumerate(SNEAKY):
        pid, subject = f"sn-{i}", {"reference": f"Patient/sn-{i}"}
        recs += [
            {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-01-01",
             "name": [{"text": h}], "identifier": [{"type": mr, "value": h}],
             "telecom": [{"system": "phone", "value": h}], "address": [{"postalCode": h}]},
            {"resourceType": "Condition", "id": f"{pid}-sle", "subject": subject,
             "code": sle, "onsetDateTime": "2015-01-01"},
            {"resourceType": "Observation", "id": f"{pid}-plt", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
             "subject": subject, "effectiveDateTime": "2026-11-01", "valueString": h},
            {"resourceType": "Observation", "id": f"{pid}-local", "status": "final",
             "code": {"coding": [{"system": "http://example.org/lab", "code": f"L{i}",
                                  "display": h}], "text": h},
             "subject": subject, "effectiveDateTime": "2026-11-01", "valueString": h},
        ]  # fmt: skip
    (site / "sneaky.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in recs) + b"\n")
    return site


def _cells(path: Path) -> list[str]:
    csv.field_size_limit(1 << 24)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [c for row in csv.reader(fh) for c in row]


def test_no_output_csv_holds_a_formula_behind_whitespace_or_in_full_width(
    tmp_path: Path,
) -> None:
    """End to end: names, MRNs, phones, postal codes, values and displays recorded as the
    sneaky formulas above. candidates.csv, evidence.csv and coverage.csv held them unguarded;
    the next run's `change` column must still read the guarded names and ids back."""
    from cohort.tools.coverage import coverage_report, write_csv

    site = _sneaky_site(tmp_path)
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(f'[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "amr"\nname = "A"\n'
                        f'source = "{site}"\n', encoding="utf-8")  # fmt: skip
    cfg, out = load_config(cfg_path), tmp_path / "out"
    for _ in range(2):  # the second run reads the first one's candidates.csv back
        run(cfg, date.fromisoformat(AS_OF), out)
    cov = write_csv(coverage_report(cfg, out), out / "coverage.csv")
    folder = out / "amr"
    cands = _cells(folder / "candidates.csv")
    for h in SNEAKY:
        assert "'" + h in cands, repr(h)  # the name, MRN, phone and postal code, as text
    for path in (folder / "candidates.csv", folder / "evidence.csv", cov):
        bad = [c for c in _cells(path) if formula_like(c)]
        assert bad == [], f"{path.name}: {bad[:5]}"
    with (folder / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        changes = {r["patient_id"]: r["change"] for r in csv.DictReader(fh)}
    assert all(changes[f"sn-{i}"] == "" for i in range(len(SNEAKY))), changes


def test_import_valueset_guards_a_display_behind_whitespace(tmp_path: Path) -> None:
    """A ValueSet display " =HYPERLINK(...)" (or one whose line break became a space) went
    into the mapping CSV unguarded; a code that starts so is refused like "=1+2" is."""
    from cohort.cli import cli

    m = tmp_path / "mappings"
    shutil.copytree(Path(__file__).resolve().parent.parent / "mappings", m)
    local = "http://example.org/lab"
    contains = [
        {"system": local, "code": "ANA-7", "display": ' =HYPERLINK("http://evil.example/")'},
        {"system": local, "code": "ANA-8", "display": "\n\uff1d1+1"},
        {"system": local, "code": " =1+2", "display": "a code behind a space"},
    ]
    vs = tmp_path / "vs.json"
    vs.write_text(json.dumps({"resourceType": "ValueSet", "url": "http://x/vs",
                              "expansion": {"contains": contains}}), encoding="utf-8")  # fmt: skip
    args = ["mappings", "import-valueset", str(vs), "--concept", "ana_titer", "--mappings", str(m)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "added 2 row(s)" in result.output and "(1 skipped)" in result.output
    cells = _cells(m / "concepts" / "labs.csv")
    assert "' =HYPERLINK(\"http://evil.example/\")" in cells and "' \uff1d1+1" in cells
    assert [c for c in cells if formula_like(c)] == []



# ---- URLs with credentials that did not look like URLs ----------------------------------------

PASSWORD = "Pa55w0rd-x"


@pytest.mark.parametrize(
    "source",
    [
        f"HTTPS://svc:{PASSWORD}@fhir.example.invalid/r4",
        f"Https://fhir.example.invalid/r4?access_token={PASSWORD}",
        f" https://svc:{PASSWORD}@fhir.example.invalid/r4",
        f"https:/svc:{PASSWORD}@fhir.example.invalid/r4",
        f"ftp://svc:{PASSWORD}@fhir.example.invalid/r4",
    ],
)
def test_source_url_with_credentials_is_refused_whatever_its_scheme_spelling(
    tmp_path: Path, source: str
) -> None:
    """A `source` URL was recognised only when it began with lower-case "http://" or
    "https://": with an upper-case scheme, a leading space, a scheme missing a slash or another
    scheme it was taken for a folder, and the run failed with `data path not found:
    .../HTTPS:/svc:Pa55w0rd-x@fhir...` on stderr and in run.json. It is a configuration error
    now (exit 3, before any run.json), whose message quotes no part of the URL."""
    import subprocess
    import sys

    from test_reliability_support import REPO, write_config

    cfg = write_config(tmp_path, {"amr": source})
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--as-of", AS_OF,
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert "key 'source'" in res.stderr and res.stderr.count("\n") == 1
    assert PASSWORD not in res.stderr + res.stdout
    assert not (out / "run.json").exists()


def test_source_url_with_an_upper_case_scheme_is_read_as_a_server(tmp_path: Path) -> None:
    """ "HTTPS://host/r4" is the same URL as "https://host/r4" (RFC 3986: schemes are not
    case-sensitive): it names a FHIR server, not a folder called "HTTPS:"."""
    from test_reliability_support import write_config

    cfg = load_config(write_config(tmp_path, {"amr": " HTTPS://fhir.example.invalid/r4 "}))
    [site] = cfg.sites
    assert site.is_url and site.source == "https://fhir.example.invalid/r4"


# ---- what an authorisation server or a FHIR server says ---------------------------------------


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ({"error": "invalid_client", "error_description": "{text}"}, "invalid_client"),
        ({"error": "{text}"}, "?"),
        ({"error_description": "{text}"}, "?"),
    ],
)
def test_token_endpoint_error_description_is_not_quoted(
    tmp_path: Path, answer: dict[str, str], shown: str
) -> None:
    """A SMART token endpoint refusing the client answered with an `error_description` that
    the AuthError quoted (200 characters of it) on stderr and in run.json: authorisation servers
    put the client assertion, a token or a user's name there ("assertion eyJ... rejected",
    "no consent for patient ..."). The message names the OAuth `error` code only (RFC 6749
    §5.2: an ASCII code such as invalid_client), and "?" for one that is not shaped as a code."""
    import responses
    from test_fhir_auth import TOKEN_URL, smart
    from test_phi import MRN, NAME_FAMILY, TOKEN

    from cohort.errors import AuthError

    text = f"assertion {TOKEN} rejected for {NAME_FAMILY} ({MRN})"
    body = {k: v.replace("{text}", text) for k, v in answer.items()}
    with responses.RequestsMock() as rsps:
        rsps.post(TOKEN_URL, status=400, json=body)
        c, _, _ = smart(tmp_path, token_url=TOKEN_URL)
        with pytest.raises(AuthError) as e:
            c.get_json("Patient", key="Patient")
    message = str(e.value)
    assert message == f"token request refused: HTTP 400: {shown}"
    for secret in (TOKEN, NAME_FAMILY, MRN):
        assert secret not in message


def _quoting_server(answer: tuple[int, str, str, bytes]) -> tuple[object, str]:
    """A local HTTP server giving every GET `answer` (status, reason phrase, Content-Type,
    body); (the server, its base URL). Real HTTP: a reason phrase is whatever the server sends."""
    import http.server
    import threading

    status, phrase, kind, body = answer

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            self.send_response(status, phrase)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_port}/r4"


QUOTED = "Quixotica-Marchetti MRN-ZQ-991734"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # a proxy's own reason phrase, quoting the request or the patient it was about
        ((502, f"Bad Gateway for {QUOTED}", "text/plain", b"down"), "HTTP 502: Bad Gateway"),
        ((404, f"No patient {QUOTED}", "text/html", b"<p>no</p>"), "HTTP 404: Not Found"),
        ((200, "OK", "application/fhir+json", json.dumps({"resourceType": QUOTED}).encode()),
         "expected a Bundle, got ?"),
        ((200, "OK", "application/fhir+json", json.dumps({"resourceType": "Patient"}).encode()),
         "expected a Bundle, got Patient"),
    ],
)  # fmt: skip
def test_what_a_server_sends_is_quoted_by_its_shape_only(
    answer: tuple[int, str, str, bytes], expected: str
) -> None:
    """An error answer without an OperationOutcome was quoted by the reason phrase the server
    sent (any printable text, up to 60 characters), and a search answer that was not a Bundle
    by its `resourceType`, whatever text it held: a proxy's "No patient <name> <MRN>" went to
    stderr and run.json. The message now says the status code's standard phrase, and a
    resourceType only when shaped as one (a capitalised word), else "?"."""
    from cohort.errors import ServerError
    from cohort.source.fhir.client import FhirClient
    from cohort.source.fhir.settings import ServerSettings

    srv, base = _quoting_server(answer)
    try:
        client = FhirClient(ServerSettings.from_dict({"base_url": base, "max_retries": 0}, "t"))
        with pytest.raises(ServerError) as e:
            list(client.search("Observation", [("patient", "p1")]))
    finally:
        srv.shutdown()  # type: ignore[attr-defined]
        srv.server_close()  # type: ignore[attr-defined]
    assert expected in str(e.value)
    assert "Quixotica" not in str(e.value) and "MRN" not in str(e.value)


def test_metadata_that_is_no_capability_statement_is_quoted_by_its_shape_only(
    tmp_path: Path,
) -> None:
    """`GET metadata` answering a JSON object whose resourceType held text was quoted (40
    characters of it) in the run's error line and run.json."""
    import responses
    from test_fhir_client import BASE
    from test_reliability_support import write_config

    from cohort.errors import ServerError

    cfg = load_config(write_config(tmp_path, {"amr": BASE}, server={"amr": {"max_retries": 0}}))
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/metadata", json={"resourceType": QUOTED})
        with pytest.raises(ServerError) as e:
            run(cfg, date.fromisoformat(AS_OF), tmp_path / "out")
    report = (tmp_path / "out" / "run.json").read_text(encoding="utf-8")
    assert str(e.value).endswith("GET metadata: expected a CapabilityStatement, got ?")
    assert "Quixotica" not in str(e.value) + report


def test_a_foreign_hosts_credentials_are_not_quoted() -> None:
    """A next link (or a redirect: the same `url_host`) to another host was refused quoting
    that host as the URL wrote it, `user:password@` included: the error went to stderr and
    run.json."""
    import responses
    from test_fhir_client import BASE, bundle, client

    from cohort.errors import ServerError
    from cohort.source.fhir.client import url_host

    foreign = "https://svc:Quixotica-pw@evil.invalid/Patient?p=2"
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/Patient", json=bundle(["a"], foreign))
        c, _ = client()
        with pytest.raises(ServerError) as e:
            list(c.search("Patient", []))
    assert "another host (evil.invalid)" in str(e.value)
    assert "Quixotica" not in str(e.value) and "svc" not in str(e.value)
    assert url_host("https://svc:pw@evil.invalid:8443/x") == "evil.invalid:8443"
    assert url_host("https://svc:pw@/x") is None


@pytest.mark.parametrize("kind", ["Quixotica", "Marchetti"])
def test_a_resource_type_is_quoted_only_when_it_is_one_of_fhir_r4(kind: str) -> None:
    """`type_name` quoted any capitalised word, so a bare surname a proxy put in resourceType
    reached the message; only FHIR R4's resource types are quoted now."""
    from cohort.source.fhir.outcome import type_name

    assert type_name(kind) == "?"
    assert type_name("Bundle") == "Bundle" and type_name("OperationOutcome") == "OperationOutcome"
