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
from collections.abc import Iterator
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


def _bundle_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of each bundle in the archive, in archive order."""
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            fh = tf.extractfile(member) if member.isfile() else None
            if fh is not None and member.name.endswith(".json"):
                yield Path(member.name).name, fh.read()


def _charts(archive: Path) -> list[list[tuple[str, bytes]]]:
    """Per bundle: (resourceType, compact JSON with urn:uuid references resolved)."""
    out: list[list[tuple[str, bytes]]] = []
    for _, blob in _bundle_files(archive):
        bundle = orjson.loads(blob)
        entries = [e for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
        refs = {
            e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in entries
            if isinstance(e.get("fullUrl"), str) and "id" in e["resource"]
        }
        out.append(
            [
                (e["resource"]["resourceType"], orjson.dumps(_resolve(e["resource"], refs)))
                for e in entries
            ]
        )
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


class _Population:
    """One NDJSON file per type in a fresh folder, records counted; `done` writes `.done.json`."""

    def __init__(self, out: Path, archive: Path) -> None:
        if not archive.exists():
            raise SystemExit(f"Synthea archive not found: {archive} (needs ../shared)")
        out.mkdir(parents=True, exist_ok=True)
        for p in out.iterdir():
            p.unlink()
        self.out = out
        self.t0 = time.perf_counter()
        self.files: dict[str, IO[bytes]] = {}
        self.counts: Counter[str] = Counter()

    def write(self, rtype: str, blob: bytes) -> None:
        fh = self.files.get(rtype)
        if fh is None:
            fh = self.files[rtype] = (self.out / f"{rtype}.ndjson").open("wb")
        fh.write(blob + b"\n")
        self.counts[rtype] += 1

    def done(self, **meta: Any) -> Path:
        for fh in self.files.values():
            fh.close()
        counts = self.counts
        meta |= {
            "patients": counts["Patient"],
            "resources": sum(counts.values()),
            "by_type": dict(counts.most_common()),
            "bytes": sum(p.stat().st_size for p in self.out.iterdir()),
            "seconds": round(time.perf_counter() - self.t0, 1),
        }
        (self.out / ".done.json").write_text(json.dumps(meta, indent=1))
        return self.out


def _renumbered(blob: bytes, copy: int) -> bytes:
    """`blob` with every UUID's first four hex digits replaced by `copy`."""
    prefix = b"%04x" % copy
    return _UUID.sub(lambda m: prefix + m.group(0)[4:], blob)


def generate(cache: Path, copies: int, archive: Path = DEFAULT_ARCHIVE) -> Path:
    """Write (once) `copies` renumbered copies of the Synthea population; returns the folder."""
    out = dataset_dir(cache, copies)
    if (out / ".done.json").exists():
        return out
    pop = _Population(out, archive)
    resources = [r for chart in _charts(archive) for r in chart]
    for k in range(copies):
        for rtype, blob in resources:
            pop.write(rtype, _renumbered(blob, k))
    return pop.done(source=archive.name, copies=copies)


def bundles_dir(cache: Path, copies: int) -> Path:
    return cache / f"synthea-x{copies}-bundles"


def generate_bundles(cache: Path, copies: int, archive: Path = DEFAULT_ARCHIVE) -> Path:
    """Synthea's own output, `copies` times over: one transaction Bundle per patient file
    (urn:uuid references, every resource type), each copy renumbered as in `generate`. What a
    site that ran Synthea, or exported per patient, hands over; the reader resolves it."""
    out = bundles_dir(cache, copies)
    if (out / ".done.json").exists():
        return out
    pop = _Population(out, archive)
    for name, blob in _bundle_files(archive):
        types = [
            e["resource"]["resourceType"]
            for e in orjson.loads(blob).get("entry", [])
            if isinstance(e.get("resource"), dict)
        ]
        for k in range(copies):
            (out / f"{k:04x}-{name}").write_bytes(_renumbered(blob, k))
            pop.counts.update(types)
    return pop.done(source=archive.name, copies=copies)


def cohort_dir(cache: Path, screened: int) -> Path:
    return cache / f"sle-synthea-s{screened}-ndjson"


def generate_cohort(cache: Path, screened: int, archive: Path = DEFAULT_ARCHIVE) -> Path:
    """An SLE cohort with real-shaped charts: the generator's patients, each given a Synthea chart.

    Every generated patient (screened SLE patients plus the generator's background) keeps its
    own Patient and trial-relevant records, and takes over every other resource of one Synthea
    patient (encounters, claims, vitals, surveys, procedures, immunizations ...), renumbered as
    in `generate`. This is what a Bulk export of a server-side-filtered SLE cohort looks like:
    hundreds of resources per patient, most of them of no interest to any criterion.
    """
    from cohort.samples import DEFAULT_AS_OF, build_site

    out = cohort_dir(cache, screened)
    if (out / ".done.json").exists():
        return out
    pop = _Population(out, archive)
    charts = _charts(archive)
    people = [c for c in charts if any(t == "Patient" for t, _ in c)]
    shared = [r for c in charts if c not in people for r in c]  # organizations, practitioners
    n = 0
    for k in range(0, screened, 1000):
        built = build_site(
            patients=min(1000, screened - k), seed=20261125, as_of=DEFAULT_AS_OF, site=f"s{k}"
        )
        for _gp, resources in built:
            copy, chart = divmod(n, len(people))
            if chart == 0:
                for rtype, blob in shared:
                    pop.write(rtype, _renumbered(blob, copy))
            theirs = next(orjson.loads(b)["id"] for t, b in people[chart] if t == "Patient")
            old = _renumbered(f"Patient/{theirs}".encode(), copy)
            mine = f"Patient/{resources[0]['id']}".encode()
            for r in resources:
                pop.write(r["resourceType"], orjson.dumps(r))
            for rtype, blob in people[chart]:
                if rtype != "Patient":
                    pop.write(rtype, _renumbered(blob, copy).replace(old, mine))
            n += 1
    return pop.done(source=f"cohort.samples + {archive.name}", screened=screened)
