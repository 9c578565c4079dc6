"""PHI and secrets: nothing identifying or secret in any log line or run.json, even at debug level;
owner-only file modes whatever the umask; hostile names escaped in CSV and HTML end to end."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import pytest
import responses
from criteria_helpers import ago, immunization, medication, qty
from criteria_helpers import run as run_criterion
from test_reliability_support import AS_OF, REPO, SAMPLES, Scenarios, report_at_end, write_config

from cohort.config import load_config
from cohort.report.nophi import WITHHELD, evidence_cells, public_result
from cohort.runner import run

RUNS = Scenarios("PHI and secrets")
NAME_GIVEN, NAME_FAMILY = "Zebulon", "Quixotica-Marchetti"
MRN = "MRN-ZQ-991734"
BIRTH = "1987-03-14"
PHONE = "+1-949-555-8675"
POSTAL = "92697-4321"
TOKEN = "eyJhbGciOiJSUzM4NCJ9.c2VjcmV0LXRva2VuLXZhbHVl.sig-7f3a9c"
FORMULA = '=HYPERLINK("http://evil.example/x","click me")'
SCRIPT = "<script>alert('pwn')</script>"
SECRETS = (NAME_GIVEN, NAME_FAMILY, MRN, BIRTH, PHONE, POSTAL, TOKEN, "evil.example", "alert(")
SLE = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}


@pytest.fixture(autouse=True, scope="module")
def _summary(request: pytest.FixtureRequest) -> None:
    report_at_end(request, RUNS)


def _people() -> list[dict[str, object]]:
    def patient(pid: str, name: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
        mr = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
        return {"resourceType": "Patient", "id": pid, "name": [name], "gender": "female",
                "identifier": [{"type": mr, "value": f"{MRN}{extra.get('mrn', '')}"}],
                "birthDate": BIRTH, "telecom": [{"system": "phone", "value": PHONE}],
                "address": [{"postalCode": POSTAL, "line": ["1 Secret Lane"]}]}  # fmt: skip

    out: list[dict[str, object]] = []
    for pid, name in (("phi-1", {"given": [NAME_GIVEN], "family": NAME_FAMILY}),
                      ("phi-2", {"text": FORMULA}), ("phi-3", {"text": SCRIPT})):  # fmt: skip
        out.append(patient(pid, name, {"mrn": pid[-1]}))
        out.append({"resourceType": "Condition", "id": f"{pid}-sle", "code": SLE,
                    "subject": {"reference": f"Patient/{pid}"}, "onsetDateTime": "2015-01-01"})  # fmt: skip
    return out


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "amr"
    shutil.copytree(SAMPLES / "amr", site)
    (site / "phi.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in _people()) + b"\n")
    # a broken line and a broken record carrying PHI: the issue must not quote it
    bad = {"resourceType": "Patient", "id": "phi-9", "birthDate": f"{BIRTH}X", "name": NAME_FAMILY}
    (site / "phi-bad.ndjson").write_text(
        json.dumps(bad) + "\n" + f'{{"name": "{NAME_FAMILY}", "mrn": "{MRN}"\n', encoding="utf-8"
    )
    return site


def _assert_clean(text: str, where: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{s!r} found in {where}"


def test_debug_logs_and_run_json_carry_no_phi(tmp_path: Path) -> None:
    with RUNS.scenario("file source, --log-level debug"):
        cfg = write_config(tmp_path, {"amr": str(_site(tmp_path))})
        out = tmp_path / "out"
        res = subprocess.run(
            [sys.executable, "-m", "cohort", "--log-level", "debug", "run", "--config", str(cfg),
             "--as-of", AS_OF, "--out", str(out)],
            capture_output=True, text=True, cwd=REPO, timeout=300,
            env={**os.environ, "COHORT_TOKEN": TOKEN},
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        assert "DEBUG" in res.stderr or "INFO" in res.stderr  # logging was on
        _assert_clean(res.stderr, "stderr")
        _assert_clean(res.stdout, "stdout")
        _assert_clean((out / "run.json").read_text(encoding="utf-8"), "run.json")
        # ... while the coordinator's CSV does carry them (that is where PHI belongs)
        cands = (out / "amr" / "candidates.csv").read_text(encoding="utf-8-sig")
        assert MRN in cands and NAME_FAMILY in cands and PHONE in cands


def test_server_source_debug_logs_carry_no_phi_or_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import test_reliability_server as srv

    with RUNS.scenario("server source with bearer token, debug logging"):
        for r in _people():
            key = (str(r["resourceType"]), str(r["id"]))
            monkeypatch.setitem(srv.POPULATION, key, {**r, "meta": {"versionId": "1",
                                "lastUpdated": "2026-11-01T00:00:00Z"}})  # fmt: skip
        monkeypatch.setenv(srv.TOKEN_ENV, TOKEN)
        folder = tmp_path / "srv"
        cfg = load_config(srv._config(folder))
        caplog.set_level(logging.DEBUG)
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            fake = srv.FakeServer(rsps)
            fake.token = TOKEN
            report = run(cfg, date.fromisoformat(AS_OF), folder / "out")
        assert report["status"] == "success"
        lines = [rec.getMessage() for rec in caplog.records]
        assert any("fhir" in ln for ln in lines)
        _assert_clean("\n".join(lines), "log records")
        _assert_clean(caplog.text, "formatted log")
        _assert_clean((folder / "out" / "run.json").read_text(encoding="utf-8"), "run.json")
        assert NAME_FAMILY in (folder / "out" / "amr" / "candidates.csv").read_text("utf-8-sig")


def test_modes_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    with RUNS.scenario("0600 files / 0700 folders under umask 000"):
        cfg = write_config(tmp_path, {"amr": str(SAMPLES / "amr")})
        out = tmp_path / "out"
        res = subprocess.run(
            [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--as-of", AS_OF,
             "--out", str(out)],
            capture_output=True, cwd=REPO, timeout=300, preexec_fn=lambda: os.umask(0),
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]

        def mode(p: Path) -> int:
            return stat.S_IMODE(p.stat().st_mode)

        for d in (out, out / "amr", out / ".cohort"):
            assert mode(d) == 0o700, f"{d} is {oct(mode(d))}"
        files = [p for p in out.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"candidates.csv", "evidence.csv", "summary.html",
                                           "run.json", "store.sqlite"}  # fmt: skip
        for p in files:
            assert mode(p) & 0o077 == 0, f"{p} is {oct(mode(p))}"
            if p.name != "run.lock":
                assert mode(p) == 0o600, f"{p} is {oct(mode(p))}"


def test_hostile_names_escaped_end_to_end(tmp_path: Path) -> None:
    with RUNS.scenario("formula and script injection in names"):
        cfg = write_config(tmp_path, {"amr": str(_site(tmp_path))})
        out = tmp_path / "out"
        run(load_config(cfg), date.fromisoformat(AS_OF), out)
        text = (out / "amr" / "candidates.csv").read_text(encoding="utf-8-sig")
        rows = {r["patient_id"]: r for r in csv.DictReader(io.StringIO(text))}
        assert rows["phi-2"]["name"] == "'" + FORMULA  # Excel shows it as text, never runs it
        assert rows["phi-3"]["name"] == SCRIPT  # harmless in a CSV
        for r in rows.values():  # no cell of the file starts a formula
            for v in r.values():
                assert (
                    not (v or "").startswith(("=", "@", "+"))
                    or v.lstrip("+-").replace(".", "").isdigit()
                )
        html = (out / "amr" / "summary.html").read_text(encoding="utf-8")
        assert "<script>alert" not in html
        assert "alert('pwn')</script>" not in html  # the page never carries it unescaped


# --- --no-phi evidence rows still say what they are (output audit) ------------------------------
def test_no_phi_high_dose_names_the_drug_from_the_mappings_not_the_records_text() -> None:
    """The high-dose reason and note name the corticosteroid as the mappings spell it, so
    `--no-phi` keeps them whole while the record's free text stays withheld."""
    text = f"Solu-Medrol 1 g IV per Dr {NAME_FAMILY}"
    pulse = medication(
        "MedicationAdministration", None, text=text, status="completed", when=ago(20),
        admin_dose=qty(1, "g", "g"),
    )  # fmt: skip
    r = public_result(run_criterion("washout_high_dose_cs", pulse))
    assert r.reason.startswith("methylprednisolone 1250 mg/day prednisone-equivalent > 40")
    [ev] = r.evidence
    assert evidence_cells(ev)[1:4] == ["corticosteroid_systemic", "1250", "mg/day"]
    assert evidence_cells(ev)[5] == "methylprednisolone 1000 mg/day = 1250 mg/day " + (
        "prednisone-equivalent"
    )
    assert NAME_FAMILY not in r.reason and WITHHELD not in r.reason


def test_no_phi_live_vaccine_row_still_says_what_it_is() -> None:
    """docs/security.md (--no-phi): "The concept, date and note columns still say what each row
    is"; a vaccine's row had no concept, so with its free text withheld it said nothing."""
    given = immunization("03", ago(10))
    given["vaccineCode"]["text"] = f"MMR given by Dr {NAME_FAMILY}"
    [ev] = run_criterion("live_vaccine", given).evidence
    _ref, concept, value, _unit, when, note = evidence_cells(ev)
    assert (concept, value, when, note) == ("live_vaccine", WITHHELD, ago(10), "within window")



def test_a_birth_date_after_as_of_reaches_the_coordinator_s_csv_but_no_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`age` of a birthDate after as-of is unknown, the date in its reason (candidates.csv, for
    the coordinator to correct the record): not in a log line, run.json or a --no-phi reason."""
    future = "2031-07-19"
    records = [
        {"resourceType": "Patient", "id": "f1", "gender": "female", "birthDate": future},
        {"resourceType": "Condition", "id": "f1-sle", "code": SLE,
         "subject": {"reference": "Patient/f1"}, "onsetDateTime": "2015-01-01"},
    ]  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    cfg = load_config(write_config(tmp_path, {"s1": str(data)}, store=tmp_path / "s.sqlite"))
    caplog.set_level(logging.DEBUG)
    report = run(cfg, date.fromisoformat(AS_OF), tmp_path / "out")
    assert report["status"] == "success"
    with open(tmp_path / "out" / "s1" / "candidates.csv", newline="", encoding="utf-8-sig") as f:
        row = next(csv.DictReader(f))
    assert row["age"] == "unknown" and row["age_years"] == ""
    assert f"age: birth date {future} after as-of {AS_OF}" in row["reasons"]
    lines = [rec.getMessage() for rec in caplog.records]
    assert lines and not [ln for ln in lines if future in ln]
    assert future not in (tmp_path / "out" / "run.json").read_text(encoding="utf-8")
    assert future not in public_result(run_criterion("age", records[0])).reason
