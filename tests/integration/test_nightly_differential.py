"""Integration: a nightly run into the same OUT folder (incremental pull) writes what a run into a
fresh folder writes, after a night of changes on a real sekmet-fhir server (search and Bulk):
a Medication corrected, a mapping row marked verified=N, records updated and added."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from loader import load_dir, post_transaction, put_entries
from server import start_sekmet

from cohort.config import load_config
from cohort.runner import run

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_bundles"
AS_OF = date(2026, 11, 25)
RITUXIMAB = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "121191",
                         "display": "rituximab"}], "text": "rituximab"}


def _without_change(path: Path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    i = rows[0].index("change")
    return [r[:i] + r[i + 1:] for r in rows]


def _config(tmp_path: Path, name: str, base: str, maps: Path, bulk: bool) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\nmappings = "{maps}"\n'
                   f'[[sites]]\nid = "amr"\nname = "amr"\nsource = "{base}"\n'
                   f"[sites.server]\nsync_overlap = 0\nbulk = {str(bulk).lower()}\n"
                   f'spool_dir = "{tmp_path / (name + "-spool")}"\n')
    return cfg


@pytest.mark.parametrize("bulk", [False, True], ids=["search", "bulk"])
def test_a_nightly_run_writes_what_a_fresh_run_writes(tmp_path, bulk):
    srv = start_sekmet(tmp_path / "srv")
    try:
        s = requests.Session()
        load_dir(s, srv.base_url, SAMPLES / "amr")
        maps = tmp_path / "mappings"
        shutil.copytree(ROOT / "mappings", maps)
        nightly = load_config(_config(tmp_path, "nightly", srv.base_url, maps, bulk))
        run(nightly, AS_OF, tmp_path / "out")
        # the day's changes: a Medication corrected (the records referencing it unchanged), an
        # Observation entered in error, a new platelet count, hemoglobin 718-7 verified=N
        med = json.loads((SAMPLES / "amr" / "Medication.ndjson").read_text().splitlines()[0])
        changed = [{**med, "code": RITUXIMAB, "ingredient": []}]
        first = gzip.decompress((SAMPLES / "amr" / "Observation.ndjson.gz").read_bytes())
        obs = [{**json.loads(first.splitlines()[0]), "status": "entered-in-error"}]
        pat = json.loads((SAMPLES / "amr" / "Patient.ndjson").read_text().splitlines()[0])
        changed.append({"resourceType": "Observation", "id": "it-plt", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
                        "subject": {"reference": f"Patient/{pat['id']}"},
                        "effectiveDateTime": (AS_OF + timedelta(days=1)).isoformat(),
                        "valueQuantity": {"value": 15, "unit": "10*3/uL", "code": "10*3/uL",
                                          "system": "http://unitsofmeasure.org"}})
        post_transaction(s, srv.base_url, put_entries(changed + obs))
        labs = maps / "concepts" / "labs.csv"
        labs.write_text(re.sub(r"^(hemoglobin,http://loinc.org,718-7,.*),Y,", r"\1,N,",
                               labs.read_text(), flags=re.M))
        night2 = AS_OF + timedelta(days=1)
        rep = run(nightly, night2, tmp_path / "out")
        run(load_config(_config(tmp_path, "fresh", srv.base_url, maps, bulk)), night2,
            tmp_path / "fresh")
    finally:
        srv.stop()
    # (Bulk: the mapping edit makes the night's export a full one)
    assert rep["sites"]["amr"]["incremental"] is not bulk
    for name in ("candidates.csv", "evidence.csv"):
        a, b = tmp_path / "out" / "amr" / name, tmp_path / "fresh" / "amr" / name
        if name == "candidates.csv":
            assert _without_change(a) == _without_change(b)
        else:
            assert a.read_bytes() == b.read_bytes()
