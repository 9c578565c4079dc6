"""The operations files research IT copies as they are: docs/scheduling.md's JWK Set command,
docs/cron.example's lines and the systemd unit's run.json check, run as written (paths moved
into tmp_path, cohort replaced by a stub exiting as a night would)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from test_reliability_support import REPO

DOCS = REPO / "docs"


def _doc_check() -> str:
    """The Python check docs/operations.md "Alerting" gives, its script only."""
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("python3 -c '"))
    return line.removeprefix("python3 -c '").removesuffix("' OUT/run.json")


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_the_documented_jwks_verifies_the_assertions_key(tmp_path: Path, alg: str) -> None:
    """The docs said nothing of what to register with the EHR for SMART Backend Services."""
    text = (DOCS / "scheduling.md").read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("sudo /opt/cohort/.venv/bin/python -c"))
    args = shlex.split(line.split(" > ")[0])[1:]
    assert args[-3:] == ["/etc/cohort/keys/cohort-rs384.pem", "cohort-2026", "RS384"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RS384" \
        else ec.generate_private_key(ec.SECP384R1())  # fmt: skip
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip
    res = subprocess.run([sys.executable, *args[1:-3], str(pem), "k-1", alg],
                         capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    jwks = json.loads(res.stdout)
    (jwk,) = jwks["keys"]
    assert jwk["kid"] == "k-1" and jwk["alg"] == alg and jwk["use"] == "sig"
    assert "d" not in jwk  # the private part stays home
    token = jwt.encode({"iss": "c"}, key, algorithm=alg, headers={"kid": "k-1"})
    public = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public, algorithms=[alg]) == {"iss": "c"}


def _cron_lines() -> list[str]:
    text = (DOCS / "cron.example").read_text(encoding="utf-8")
    return [x for x in text.splitlines() if x and not x.startswith("#") and "=" not in x.split()[0]]


def test_the_cron_lines_are_valid_and_never_overlap() -> None:
    """The monthly `--full-refresh` ran at 04:00 on the 1st beside the 02:30 nightly run: one
    still going then made it exit 10, and the refresh waited a month."""
    lines = _cron_lines()
    assert len(lines) == 2
    for line in lines:
        fields = line.split(" ", 6)
        assert fields[5] == "cohort" and "%" not in line  # (cron reads % as a newline)
    assert [x.split(" ", 5)[:5] for x in lines] == [["30", "2", "2-31", "*", "*"], ["30", "2", "1", "*", "*"]]
    assert "--full-refresh" in lines[1] and "--full-refresh" not in lines[0]


def _stub(tmp_path: Path, code: int, run_json: dict | None) -> Path:
    out = tmp_path / "lib" / "out"
    out.mkdir(parents=True, exist_ok=True)
    stub = tmp_path / "cohort"
    write = f"printf '%s' '{json.dumps(run_json)}' > {out}/run.json\n" if run_json else ""
    stub.write_text(f"#!/bin/sh\necho 'INFO cohort: a log line' >&2\n{write}"
                    f"[ {code} -eq 0 ] || echo 'cohort: error: the reason' >&2\nexit {code}\n")  # fmt: skip
    stub.chmod(0o755)
    return stub


def _cron_says(tmp_path: Path, line: str, code: int, run_json: dict | None) -> tuple[int, str]:
    """The command part of a cron line, run by sh as cron runs it: its exit and what cron mails."""
    stub = _stub(tmp_path, code, run_json)
    (tmp_path / "log").mkdir(exist_ok=True)
    cmd = line.split(" ", 6)[6]
    cmd = cmd.replace("/opt/cohort/.venv/bin/cohort", str(stub))
    cmd = cmd.replace("/opt/cohort/.venv/bin/python", sys.executable)
    cmd = cmd.replace("/var/log/cohort", str(tmp_path / "log")).replace("/var/lib/cohort", str(tmp_path / "lib"))
    res = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout + res.stderr


CLEAN = {"status": "success", "warnings": [], "sites": {"uci": {"screened": 3, "warnings": []}}}
WARNED = {"status": "success", "warnings": ["uci: 1 file(s) not read whole"],
          "sites": {"uci": {"screened": 3, "warnings": ["1 file(s) not read whole"], "issues_total": 1}}}  # fmt: skip


def test_the_cron_lines_mail_a_failure_and_a_warning_night(tmp_path: Path) -> None:
    """The cron example ran no run.json check: a night of damaged input (exit 0, warnings in
    run.json) mailed nothing, where docs/operations.md says to alert on it."""
    for line, what in zip(_cron_lines(), ("nightly", "full refresh"), strict=True):
        assert f" -c '{_doc_check()}' /var/lib/cohort/out/run.json" in line
        assert _cron_says(tmp_path, line, 0, CLEAN) == (0, "")
        code, mail = _cron_says(tmp_path, line, 0, WARNED)
        assert code != 0
        assert mail == f"cohort check: {tmp_path}/lib/out/run.json: status success, 1 warning(s); sites to look at: uci\n"
        code, mail = _cron_says(tmp_path, line, 6, None)
        assert code != 0 and mail == f"cohort {what} failed (exit 6): cohort: error: the reason\n"


def test_the_systemd_unit_checks_run_json_after_exit_0() -> None:
    """docs/scheduling.md says to run the check "under systemd as ExecStartPost=", but the unit
    it ships had none: a warning night left the unit succeeded, OnFailure= silent."""
    unit = (DOCS / "systemd" / "cohort-nightly.service").read_text(encoding="utf-8")
    (post,) = re.findall(r"^ExecStartPost=(.*)$", unit, flags=re.M)
    (start,) = re.findall(r"^ExecStart=(.*)$", unit, flags=re.M)
    out = shlex.split(start)[shlex.split(start).index("--out") + 1]
    assert shlex.split(post) == ["/opt/cohort/.venv/bin/python", "-c", _doc_check(), f"{out}/run.json"]
    assert "%" not in post and "$" not in post  # (systemd's specifiers and variables)
