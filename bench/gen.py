"""Synthetic populations at scale, written once to a cache dir (never committed).

Uses the project's generator (`cohort.samples.build_site` / `to_bundle`) in chunks of
`CHUNK` patients (each chunk is a different generator "site" so ids stay unique and memory
stays bounded), then pads every patient with background Observations/Conditions (`--pad`)
because the generator writes only ~9 resources per patient, far fewer than a real chart.
"""

from __future__ import annotations

import json
import random
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from cohort.samples import DEFAULT_AS_OF, build_site, to_bundle

CHUNK = 1000
SEED = 20261125
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"

# (code, display, unit, low, high): vitals and routine labs no criterion reads, plus older
# repeats of CBC/creatinine (mapped concepts, normal values, > 3 years old) so the padding also
# exercises the terminology and lab criteria like a real chart would.
_PAD_OBS = [
    ("8867-4", "Heart rate", "/min", 55, 100, "vital-signs"),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 100, 140, "vital-signs"),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 60, 90, "vital-signs"),
    ("8310-5", "Body temperature", "Cel", 36.1, 37.4, "vital-signs"),
    ("9279-1", "Respiratory rate", "/min", 12, 20, "vital-signs"),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 19, 31, "vital-signs"),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 110, "laboratory"),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, "laboratory"),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.0, "laboratory"),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume]", "U/L", 10, 40, "laboratory"),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140, 220, "laboratory"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.5, 14.0, "laboratory"),
    (
        "777-3",
        "Platelets [#/volume] in Blood by Automated count",
        "10*3/uL",
        200,
        320,
        "laboratory",
    ),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 0.9, "laboratory"),
]
_PAD_COND = [
    ("38341003", "Hypertensive disorder"),
    ("55822004", "Hyperlipidemia"),
    ("44054006", "Diabetes mellitus type 2"),
    ("35489007", "Depressive disorder"),
    ("40055000", "Chronic sinusitis"),
]


def padding(pid: str, n_obs: int, n_cond: int, as_of: date, rng: random.Random) -> list[dict]:
    out: list[dict[str, Any]] = []
    subj = {"reference": f"Patient/{pid}"}
    for k in range(n_obs):
        code, disp, unit, lo, hi, cat = _PAD_OBS[k % len(_PAD_OBS)]
        old = code in ("718-7", "777-3", "2160-0")
        days = rng.randint(1100, 3000) if old else rng.randint(1, 1800)
        value = round(rng.uniform(lo, hi), 1)
        out.append(
            {
                "resourceType": "Observation",
                "id": f"{pid}-pad-o{k}",
                "meta": {"lastUpdated": f"{(as_of - timedelta(days=days)).isoformat()}T09:00:00Z"},
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": cat,
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [{"system": LOINC, "code": code, "display": disp}],
                    "text": disp,
                },
                "subject": subj,
                "effectiveDateTime": (as_of - timedelta(days=days)).isoformat() + "T09:00:00Z",
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )
    for k in range(n_cond):
        code, disp = _PAD_COND[(k + len(pid)) % len(_PAD_COND)]
        onset = (as_of - timedelta(days=rng.randint(400, 5000))).isoformat()
        out.append(
            {
                "resourceType": "Condition",
                "id": f"{pid}-pad-c{k}",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "verificationStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                            "code": "confirmed",
                        }
                    ]
                },
                "code": {
                    "coding": [{"system": SNOMED, "code": code, "display": disp}],
                    "text": disp,
                },
                "subject": subj,
                "onsetDateTime": onset,
                "recordedDate": onset,
            }
        )
    return out


def dataset_dir(cache: Path, screened: int, fmt: str, pad: int, background: int | None) -> Path:
    bg = "d" if background is None else str(background)
    return cache / f"s{screened}-bg{bg}-pad{pad}-{fmt}"


def generate(
    cache: Path,
    screened: int,
    fmt: str,
    *,
    pad: int = 40,
    background: int | None = None,
    as_of: date = DEFAULT_AS_OF,
) -> Path:
    """Write (once) `screened` SLE patients + background, padded; returns the data folder.

    `background` non-screened patients default to the generator's patients // 6 per chunk.
    `pad` = extra Observations per patient (plus pad // 10 Conditions).
    """
    out = dataset_dir(cache, screened, fmt, pad, background)
    done = out / ".done.json"
    if done.exists():
        return out
    if fmt == "ndjson.gz":
        return _gzipped(generate(cache, screened, "ndjson", pad=pad, background=background), out)
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():
        p.unlink()
    t0 = time.perf_counter()
    rng = random.Random(f"bench:{SEED}:{screened}:{pad}")
    files: dict[str, Any] = {}
    counts: dict[str, int] = {}
    n_bundle = 0
    patients = 0
    left = screened
    k = 0
    while left > 0:
        n = min(CHUNK, left)
        bg = None if background is None else round(background * n / screened)
        built = build_site(patients=n, seed=SEED, as_of=as_of, site=f"c{k:03d}", background=bg)
        for _gp, resources in built:
            pid = resources[0]["id"]
            resources = resources + padding(pid, pad, pad // 10, as_of, rng)
            patients += 1
            for r in resources:
                counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
            if fmt == "ndjson":
                for r in resources:
                    rt = r["resourceType"]
                    fh = files.get(rt)
                    if fh is None:
                        fh = files[rt] = (out / f"{rt}.ndjson").open("wb")
                    fh.write(orjson.dumps(r) + b"\n")
            else:
                n_bundle += 1
                bundle = to_bundle(resources, rng, "transaction")
                (out / f"bundle-{n_bundle:06d}.json").write_bytes(orjson.dumps(bundle) + b"\n")
        left -= n
        k += 1
    for fh in files.values():
        fh.close()
    size = sum(p.stat().st_size for p in out.iterdir())
    done.write_text(
        json.dumps(
            {
                "screened": screened,
                "patients": patients,
                "resources": sum(counts.values()),
                "by_type": counts,
                "bytes": size,
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=1,
        )
    )
    return out


def _gzipped(plain: Path, out: Path) -> Path:
    """The plain NDJSON population, each file gzip-compressed (level 6, as `gzip` does)."""
    import gzip

    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(plain.glob("*.ndjson")):
        (out / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes(), compresslevel=6))
    meta = info(plain)
    meta["compressed_bytes"] = sum(p.stat().st_size for p in out.glob("*.gz"))
    (out / ".done.json").write_text(json.dumps(meta, indent=1))
    return out


def info(folder: Path) -> dict[str, Any]:
    return json.loads((folder / ".done.json").read_text())
