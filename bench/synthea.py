"""A real-world-shaped Bulk export: the public Synthea bundles as NDJSON, copied to scale.

The project's generator writes only the types `cohort` reads. A real Bulk export also carries
Claim, ExplanationOfBenefit, Encounter, DiagnosticReport, CarePlan ... (about two thirds of
the bytes in Synthea's output) and charts with hundreds of vitals and survey Observations.
This turns the 615 Synthea v2.4 patient bundles of `../shared/data/public-fhir` (Apache-2.0,
see its MANIFEST.md) into one NDJSON file per type, `copies` times over: copy k rewrites every
UUID (ids, references, identifiers) by replacing its first four hex digits with k, so the
copies are distinct patients with identical shapes. `urn:uuid:` references become `Type/id`
as in a Bulk export. Few of these patients have lupus: this population measures reading at
scale, the generated one (`bench/gen.py`) measures screening.
"""

from __future__ import annotations

import json
import re
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import orjson

DEFAULT_ARCHIVE = (
    Path(__file__).resolve().parent.parent.parent
    / "shared/data/public-fhir/generated-sample-data-r4/R4_SYNTHEA_617_bundles.tar.xz"
)
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def dataset_dir(cache: Path, copies: int) -> Path:
    return cache / f"synthea-x{copies}-ndjson"


def _resources(archive: Path) -> list[tuple[str, bytes]]:
    """(resourceType, compact JSON with urn:uuid references resolved) for every entry."""
    out: list[tuple[str, bytes]] = []
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            fh = tf.extractfile(member) if member.isfile() else None
            if fh is None or not member.name.endswith(".json"):
                continue
            bundle = orjson.loads(fh.read())
            entries = [e for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
            refs = {
                e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
                for e in entries
                if isinstance(e.get("fullUrl"), str) and "id" in e["resource"]
            }
            for e in entries:
                res = e["resource"]
                out.append((res["resourceType"], orjson.dumps(_resolve(res, refs))))
    return out


def _resolve(node: Any, refs: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (refs.get(v, v) if k == "reference" and isinstance(v, str) else _resolve(v, refs))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve(v, refs) for v in node]
    return node


def generate(cache: Path, copies: int, archive: Path = DEFAULT_ARCHIVE) -> Path:
    """Write (once) `copies` renumbered copies of the Synthea population; returns the folder."""
    out = dataset_dir(cache, copies)
    done = out / ".done.json"
    if done.exists():
        return out
    if not archive.exists():
        raise SystemExit(f"Synthea archive not found: {archive} (needs ../shared)")
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():
        p.unlink()
    t0 = time.perf_counter()
    resources = _resources(archive)
    files: dict[str, IO[bytes]] = {}
    counts: Counter[str] = Counter()
    for k in range(copies):
        prefix = b"%04x" % k

        def renumber(m: re.Match[bytes], prefix: bytes = prefix) -> bytes:
            return prefix + m.group(0)[4:]

        for rtype, blob in resources:
            fh = files.get(rtype)
            if fh is None:
                fh = files[rtype] = (out / f"{rtype}.ndjson").open("wb")
            fh.write(_UUID.sub(renumber, blob) + b"\n")
            counts[rtype] += 1
    for fh in files.values():
        fh.close()
    done.write_text(
        json.dumps(
            {
                "source": str(archive.name),
                "copies": copies,
                "patients": counts["Patient"],
                "resources": sum(counts.values()),
                "by_type": dict(counts.most_common()),
                "bytes": sum(p.stat().st_size for p in out.iterdir()),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=1,
        )
    )
    return out
