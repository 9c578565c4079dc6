"""Peer clients pulling the same screened patients from the same server (issue 6 item 3).

Run with the bench-only venv (`.venv-bench`, fhirpy + fhir-pyrate), never imported by cohort:

    .venv-bench/bin/python bench/peers.py fhirpy|pyrate SPEC.json OUT.json

SPEC: {"base_url", "ids": [...], "types": {rtype: {param: value}}, "batch": 100, "page_size"}.
Every HTTP request is counted by wrapping `requests.Session.send` (both peers use `requests`
in their sync paths); resources are counted from the search Bundles as they come off the wire
(entries whose resourceType is the searched type), so both peers are counted the same way.
OUT: {"peer", "version", "requests", "by_type", "resources", "bytes", "seconds", "error"?}.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

STATS: dict[str, Any] = {"requests": 0, "bytes": 0, "by_type": {}, "resources": {}, "status": {}}
_send = requests.Session.send


def _counting_send(self: requests.Session, request: Any, **kw: Any) -> Any:
    r = _send(self, request, **kw)
    rtype = urlsplit(request.url).path.rstrip("/").split("/")[-1]
    STATS["requests"] += 1
    STATS["bytes"] += len(r.content)
    STATS["by_type"][rtype] = STATS["by_type"].get(rtype, 0) + 1
    STATS["status"][str(r.status_code)] = STATS["status"].get(str(r.status_code), 0) + 1
    try:
        body = r.json()
    except ValueError:
        return r
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        for e in body.get("entry") or []:
            res = e.get("resource") or {}
            t = res.get("resourceType")
            if t and (e.get("search") or {}).get("mode", "match") == "match":
                STATS["resources"][t] = STATS["resources"].get(t, 0) + 1
    return r


requests.Session.send = _counting_send  # type: ignore[method-assign]


def run_fhirpy(spec: dict[str, Any]) -> dict[str, int]:
    from fhirpy import SyncFHIRClient

    client = SyncFHIRClient(spec["base_url"], extra_headers={"Accept": "application/fhir+json"})
    ids, batch, got = spec["ids"], spec["batch"], {}
    for rtype, params in spec["types"].items():
        n = 0
        for i in range(0, len(ids), batch):
            search = (
                client.resources(rtype)
                .search(patient=",".join(ids[i : i + batch]), **params)
                .limit(spec["page_size"])
            )
            n += len(search.fetch_all())  # follows Bundle.link[next]
        got[rtype] = n
    return got


def run_pyrate(spec: dict[str, Any]) -> dict[str, int]:
    import pandas as pd
    from fhir_pyrate import Pirate

    pirate = Pirate(
        base_url=spec["base_url"],
        auth=None,
        num_processes=1,
        disable_multiprocessing_requests=True,
        disable_multiprocessing_build=True,
        silence_fhirpath_warning=True,
    )
    df = pd.DataFrame({"patient_id": spec["ids"]})
    got = {}
    for rtype, params in spec["types"].items():
        out = pirate.trade_rows_for_dataframe(
            df,
            resource_type=rtype,
            df_constraints={"patient": "patient_id"},
            request_params={"_count": spec["page_size"], **params},
        )
        got[rtype] = len(out) if hasattr(out, "__len__") else -1
    return got


def main() -> None:
    peer, spec_path, out_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spec = json.loads(spec_path.read_text())
    dist = {"fhirpy": "fhirpy", "pyrate": "fhir-pyrate"}[peer]
    result: dict[str, Any] = {"peer": dist, "version": metadata.version(dist)}
    t0 = time.perf_counter()
    try:
        rows = run_fhirpy(spec) if peer == "fhirpy" else run_pyrate(spec)
        result["rows"] = rows
    except Exception as e:  # reported verbatim in RESULTS.md, never replaced by a number
        result["error"] = f"{type(e).__name__}: {e}"[:2000]
        result["traceback"] = traceback.format_exc()[-4000:]
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result.update(
        requests=STATS["requests"],
        by_type=STATS["by_type"],
        resources=STATS["resources"],
        bytes=STATS["bytes"],
        status=STATS["status"],
    )
    out_path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
