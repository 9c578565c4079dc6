"""Load sample_bundles/ into a FHIR server: transaction Bundles as-is, NDJSON as PUT transactions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import requests

CHUNK = 200


def _ndjson(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def post_transaction(session: requests.Session, base: str, entries: list[dict[str, Any]]) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    r = session.post(base, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=120)
    if r.status_code >= 300:
        raise AssertionError(f"transaction failed: HTTP {r.status_code}: {r.text[:500]}")


def put_entries(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r,
             "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]


def load_dir(session: requests.Session, base: str, folder: Path) -> int:
    """Load every Bundle (*.json) and NDJSON (*.ndjson[.gz]) file under `folder`; returns resources."""
    n = 0
    for path in sorted(folder.rglob("*")):
        if path.name.endswith(".json"):
            bundle = json.loads(path.read_text(encoding="utf-8"))
            if bundle.get("resourceType") != "Bundle":
                resources = [bundle]
            elif bundle.get("type") in ("transaction", "batch"):
                post_transaction(session, base, bundle["entry"])
                n += len(bundle["entry"])
                continue
            else:
                resources = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        elif path.name.endswith((".ndjson", ".ndjson.gz")):
            resources = _ndjson(path)
        else:
            continue
        # Medications first so references resolve on servers that check them
        resources.sort(key=lambda r: r.get("resourceType") != "Medication")
        for i in range(0, len(resources), CHUNK):
            post_transaction(session, base, put_entries(resources[i:i + CHUNK]))
        n += len(resources)
    return n
