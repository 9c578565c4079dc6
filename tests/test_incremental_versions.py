"""A snapshot read (a file export read whole) and a FHIR `--full-refresh` are the whole of the
site's data: the copy they hold of a record replaces the stored one even when its meta says it
is older (an EHR restored from a backup, a server migrated with its version counters started
again), as a run into a fresh folder would read it. Within one read the newest copy still
wins, and an incremental pull never lets an older copy replace a newer one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import responses
from fhir_fakes import BASE, SLE, TOKENS, FakeFhir, population

from cohort.config import Config, SiteConfig, default_config
from cohort.ingest import Loaded, ingest_files
from cohort.source.fhir import ServerSettings, pull
from cohort.store import Store

LOADED = Loaded.from_config(default_config())
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"


def _platelets(value: float, version: str, updated: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "o1", "status": "final",
            "meta": {"versionId": version, "lastUpdated": updated},
            "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-01-05",
            "valueQuantity": {"value": value, "unit": "10*3/uL", "code": "10*3/uL",
                              "system": "http://unitsofmeasure.org"}}  # fmt: skip


def _ndjson(path: Path, *records: dict[str, Any]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def _ingest(folder: Path, store: Store, **kw: Any) -> dict[str, Any]:
    cfg: Config = dataclasses.replace(default_config(), workers=1, **kw)
    return ingest_files(SiteConfig("s", "S", str(folder)), cfg, store, LOADED)


def _value(store: Store, site: str = "s") -> float:
    res = store.get(site, "Observation", "o1")
    assert res is not None
    return float(res["valueQuantity"]["value"])


def test_a_snapshot_holding_an_older_version_replaces_the_stored_one(tmp_path: Path) -> None:
    """Night 1's export holds o1 at version 3 (210); night 2's, after a restore, at version 1
    (20): the store kept 210 (an older version never replaced a newer one), a fresh read 20."""
    data = tmp_path / "export"
    data.mkdir()
    _ndjson(data / "Observation.ndjson", _platelets(210, "3", T2))
    with Store(tmp_path / "inc.db") as inc:
        _ingest(data, inc)
        _ndjson(data / "Observation.ndjson", _platelets(20, "1", T0))
        _ingest(data, inc)
        with Store(tmp_path / "fresh.db") as fresh:
            _ingest(data, fresh)
            assert _value(inc) == _value(fresh) == 20


def test_within_a_snapshot_read_the_newest_copy_still_wins(tmp_path: Path) -> None:
    """Two copies in one export (two files, either order), both older than the stored one:
    the newer of the two is kept, as a fresh read keeps it (batches of 1: across batches too)."""
    for first, second in (((25, "1", T0), (30, "2", T1)), ((30, "2", T1), (25, "1", T0))):
        data = tmp_path / f"export-{first[0]}"
        data.mkdir()
        _ndjson(data / "a.ndjson", _platelets(210, "5", T2))
        with Store(tmp_path / f"inc-{first[0]}.db") as inc:
            _ingest(data, inc, batch_size=1)
            _ndjson(data / "a.ndjson", _platelets(*first))
            _ndjson(data / "b.ndjson", _platelets(*second))
            _ingest(data, inc, batch_size=1)
            with Store(tmp_path / f"fresh-{first[0]}.db") as fresh:
                _ingest(data, fresh, batch_size=1)
                assert _value(inc) == _value(fresh) == 30


def test_increments_still_keep_the_newer_stored_copy(tmp_path: Path) -> None:
    """snapshot = false: an increment holding an older copy leaves the stored newer one."""
    data = tmp_path / "increments"
    data.mkdir()
    _ndjson(data / "1.ndjson", _platelets(210, "3", T2))
    with Store(tmp_path / "inc.db") as inc:
        _ingest(data, inc, snapshot=False)
        _ndjson(data / "2.ndjson", _platelets(20, "1", T0))
        _ingest(data, inc, snapshot=False)
        assert _value(inc) == 210


def _pull(store: Store, **kw: Any):
    s = ServerSettings.from_dict({"base_url": BASE, "max_retries": 1}, "sites[0].server")
    return pull("uci", s, store, TOKENS, screen_tokens=[SLE], **kw)


def test_a_full_refresh_after_a_server_restore_takes_its_versions(tmp_path: Path) -> None:
    """The server is restored from a backup (o0 back at version 1, its value as then) or
    migrated (version counters start again): --full-refresh, the documented remedy, kept every
    stored record whose version was higher, and later changes on the server (version 2 < 3)
    were skipped by every incremental pull until the counter passed the old one."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        o0 = fake.db[("Observation", "o0")]
        with Store(tmp_path / "inc.db") as inc:
            fake.add({**o0, "status": "amended"}, T1)
            fake.add({**o0, "status": "corrected"}, T1)  # version 3
            _pull(inc)
            assert inc.get("uci", "Observation", "o0")["meta"]["versionId"] == "3"
            fake.db[("Observation", "o0")] = {**o0, "meta": {"versionId": "1", "lastUpdated": T2}}
            fake.clock = "2026-03-02T10:00:00Z"
            _pull(inc, full_refresh=True)
            assert inc.get("uci", "Observation", "o0").get("status") == o0.get("status")
            fake.clock = "2026-03-03T10:00:00Z"
            fake.add({**o0, "status": "cancelled"}, "2026-03-03T09:00:00Z")  # version 2
            _pull(inc)
            with Store(tmp_path / "fresh.db") as fresh:
                _pull(fresh)
                assert inc.get("uci", "Observation", "o0") == fresh.get("uci", "Observation", "o0")
            assert inc.get("uci", "Observation", "o0")["status"] == "cancelled"
