"""bench/soak.py's population: the charts as the EHR holds them, changed night by night."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.gen import padding
from bench.server import _post
from cohort.samples import build_site

START = date(2026, 9, 29)  # night 0's as-of; the data is generated as of it
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
LABS = {
    "platelets": ("777-3", "10*3/uL", 250),
    "hemoglobin": ("718-7", "g/dL", 13.2),
    "neutrophils": ("751-8", "10*3/uL", 3.5),
    "weight": ("29463-7", "kg", 62),
}
ODD = ("ambiguous", "partial", "month", "year", "outside")  # scenarios a new lab may not settle
Res = dict[str, Any]


def obs(rid: str, pid: str, code: str, unit: str, value: float, when: date) -> Res:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when.isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def cond(rid: str, pid: str, code: str, onset: date) -> Res:
    status = {
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
        "code": "active",
    }
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [status]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset.isoformat(),
    }


def hcq(rid: str, pid: str, start: date) -> Res:
    rx = {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "5521"}
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": "active",
        "medicationCodeableConcept": {"coding": [rx]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectivePeriod": {"start": start.isoformat()},
    }


class Population:
    """The charts as the EHR holds them tonight; `changed` and `deleted`: tonight's edits."""

    def __init__(self, patients: int, pad: int) -> None:
        self.rng, self.pad, self.stamp = random.Random(20261129), pad, 0
        self.res: dict[tuple[str, str], Res] = {}
        self.pids: list[str] = []
        self.odd: set[str] = set()
        self.changed: dict[tuple[str, str], Res] = {}
        self.deleted: dict[tuple[str, str], Res] = {}
        self.add_people(patients, "s", START, patients // 6)

    def put(self, r: Res) -> None:
        key = (r["resourceType"], r["id"])
        old = self.res.get(key)
        self.stamp += 1
        version = int(old["meta"]["versionId"]) + 1 if old else 1
        r["meta"] = {
            "versionId": str(version),
            "lastUpdated": f"2026-11-29T00:00:00.{self.stamp:06d}Z",
        }
        self.res[key] = self.changed[key] = r

    def delete(self, key: tuple[str, str]) -> None:
        self.deleted[key] = self.res.pop(key)

    def add_people(self, n: int, site: str, as_of: date, background: int = 0) -> list[str]:
        new = []
        for gp, rs in build_site(patients=n, seed=7, as_of=as_of, site=site, background=background):
            pid = rs[0]["id"]
            if any(w in gp.scenario for w in ODD):
                self.odd.add(pid)
            for r in rs + padding(pid, self.pad, max(1, self.pad // 10), as_of, self.rng):
                r.pop("meta", None)
                self.put(r)
            self.pids.append(pid)
            new.append(pid)
        return new

    def night(self, n: int, d: date, prev: list[dict[str, str]]) -> dict[str, Any]:
        """Tonight's changes; returns what the lists should say of them."""
        rng, self.changed, self.deleted = self.rng, {}, {}
        yesterday = d - timedelta(days=1)
        for pid in rng.sample(self.pids, k=max(1, len(self.pids) // 20)):
            kind = rng.choice(["lab", "vital", "cond", "med"])
            rid = f"{pid}-n{n}-{kind}"
            if kind == "lab":
                self.put(
                    obs(rid, pid, "2160-0", "mg/dL", round(rng.uniform(0.6, 1.0), 2), yesterday)
                )
            elif kind == "vital":
                self.put(obs(rid, pid, "8867-4", "/min", rng.randint(55, 95), yesterday))
            else:
                self.put(cond(rid, pid, "38341003", d) if kind == "cond" else hcq(rid, pid, d))
        pads = [k for k in self.res if "-pad-o" in k[1]]
        for key in rng.sample(pads, k=max(1, len(self.pids) // 100)):
            r = json.loads(json.dumps(self.res[key]))
            r["valueQuantity"]["value"] = round(r["valueQuantity"]["value"] * 1.05, 1)
            self.put(r)
        for key in rng.sample([k for k in pads if k not in self.changed], k=3):
            self.delete(key)
        expect: dict[str, Any] = {"new": self.add_people(2, f"n{n:02d}", d)}
        usable = [
            r for r in prev if r["patient_id"] in self.pids and r["patient_id"] not in self.odd
        ]
        for r in rng.sample(usable, k=len(usable)):
            unknown = {c for c, v in r.items() if v == "unknown"} - {"sledai", "bilag"}
            if r["tier"] == "possible" and unknown and unknown <= set(LABS):
                for c in unknown:
                    code, unit, value = LABS[c]
                    self.put(
                        obs(
                            f"{r['patient_id']}-n{n}-{c}",
                            r["patient_id"],
                            code,
                            unit,
                            value,
                            yesterday,
                        )
                    )
                expect["newly_likely"] = r["patient_id"]
                break
        likely = [r["patient_id"] for r in usable if r["tier"] == "likely"]
        if likely:
            pid = rng.choice(likely)
            self.put(cond(f"{pid}-n{n}-malig", pid, "363346000", d - timedelta(days=5)))
            expect["malignancy"] = pid
        for key in [k for k in self.res if k[1].endswith(f"-n{n - 3}-malig")]:
            self.delete(key)
            expect["malignancy_deleted"] = key[1].split(f"-n{n - 3}-")[0]
        return expect

    def write_snapshot(self, folder: Path, n: int) -> None:
        """A whole export, written beside the folder and renamed over it."""
        tmp = folder.with_name(folder.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        by: dict[str, list[bytes]] = {}
        for (t, _), r in self.res.items():
            by.setdefault(t, []).append(json.dumps(r).encode() + b"\n")
        for t, lines in by.items():
            if t == "Observation" and n % 5 == 0:
                (tmp / "Observation_1.ndjson").write_bytes(b"".join(lines[::2]))
                (tmp / "Observation_2.ndjson").write_bytes(b"".join(lines[1::2]))
            elif t == "Observation" and n % 7 == 0:
                (tmp / "Observation.ndjson.gz").write_bytes(gzip.compress(b"".join(lines), mtime=0))
            else:
                (tmp / f"{t}.ndjson").write_bytes(b"".join(lines))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    def write_increment(self, folder: Path, n: int) -> None:
        sub = folder / f"night-{n:03d}"
        sub.mkdir(parents=True)
        by: dict[str, list[bytes]] = {}
        gone = []
        for r in self.deleted.values():
            r = json.loads(json.dumps(r))
            r["meta"]["versionId"] = str(int(r["meta"]["versionId"]) + 1)
            if r["resourceType"] == "Condition":
                vs = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
                r["verificationStatus"] = {"coding": [{"system": vs, "code": "entered-in-error"}]}
            else:
                r["status"] = "entered-in-error"
            gone.append(r)
        for r in [*self.changed.values(), *gone]:
            by.setdefault(r["resourceType"], []).append(json.dumps(r).encode() + b"\n")
        for t, lines in by.items():
            (sub / f"{t}.ndjson").write_bytes(b"".join(lines))

    def push(self, s: requests.Session, base: str) -> None:
        items = sorted(self.changed.values(), key=lambda r: r["resourceType"] != "Medication")
        for i in range(0, len(items), 200):
            _post(
                s,
                base,
                [
                    {
                        "resource": {k: v for k, v in r.items() if k != "meta"},
                        "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                    }
                    for r in items[i : i + 200]
                ],
            )
        if self.deleted:
            _post(
                s,
                base,
                [{"request": {"method": "DELETE", "url": f"{t}/{i}"}} for t, i in self.deleted],
            )
