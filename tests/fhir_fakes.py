"""Test helpers: a tiny in-memory FHIR server on `responses` (search, paging, _include, quirks)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses

from cohort.source.fhir.plan import PULL_TYPES

BASE = "https://fhir.example.invalid/r4"
NOW = "2026-11-25T10:00:00Z"
ALL = (
    *PULL_TYPES,
    "Medication",
    "Group",
)


def capability(
    types=ALL,
    no_params: dict[str, set[str]] | None = None,
    includes=True,
    more_params: dict[str, list[str]] | None = None,
) -> dict:
    res = []
    for t in types:
        params = ["_id", "_lastUpdated", "patient", "code", "category"]
        params = [p for p in params if p not in (no_params or {}).get(t, set())]
        params += (more_params or {}).get(t, [])
        entry: dict[str, Any] = {"type": t, "searchParam": [{"name": p} for p in params]}
        if includes and t.startswith("Medication") and t != "Medication":
            entry["searchInclude"] = [f"{t}:medication"]
        elif not includes and t.startswith("Medication") and t != "Medication":
            entry["searchInclude"] = ["Other:thing"]
        res.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "resource": res, "operation": [{"name": "export"}]}],
    }


class FakeFhir:
    """Resources keyed (type, id) with meta.lastUpdated; answers GET searches via `responses`."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        *,
        page: int = 2,
        cap: dict | None = None,
        demand_category: bool = False,
        reject_lastupdated: bool = False,
    ) -> None:
        self.rsps, self.page, self.cap = rsps, page, cap or capability()
        self.demand_category, self.reject_lastupdated = demand_category, reject_lastupdated
        self.max_url: int | None = None  # longer request URLs are answered 414
        self.db: dict[tuple[str, str], dict] = {}
        self.clock = NOW
        self.log: list[str] = []
        rsps.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=self._get)

    def add(self, res: dict, when: str | None = None) -> dict:
        res = json.loads(json.dumps(res))
        res.setdefault("meta", {})["lastUpdated"] = when or self.clock
        old = self.db.get((res["resourceType"], res["id"]))
        res["meta"]["versionId"] = str(int(old["meta"]["versionId"]) + 1) if old else "1"
        self.db[(res["resourceType"], res["id"])] = res
        return res

    def _match(self, res: dict, key: str, value: str) -> bool:
        vals = value.split(",")
        if key == "_id":
            return res["id"] in vals
        if key in ("patient", "subject"):
            ref = (res.get("subject") or res.get("patient") or {}).get("reference", "")
            return ref.split("/")[-1] in vals
        if key in ("code", "component-code", "combo-code"):
            ccs = [] if key == "component-code" else [res.get("code") or res.get("medicationCodeableConcept") or {}]
            if key != "code":
                ccs += [part.get("code") or {} for part in res.get("component") or []]
            codings = [c for cc in ccs for c in cc.get("coding", [])]
            toks = {f"{c.get('system')}|{c.get('code')}" for c in codings}
            toks |= {str(c.get("code")) for c in codings}  # bare code: any system
            return bool(toks & set(vals))
        if key == "category":
            return True
        if key == "_lastUpdated":
            return res["meta"]["lastUpdated"] > value[2:]
        raise AssertionError(key)

    def _get(self, req) -> tuple[int, dict, str]:
        p = urlsplit(req.url)
        path = p.path[len(urlsplit(BASE).path) :].strip("/")
        q = parse_qsl(p.query)
        self.log.append(f"{path}?{'&'.join(sorted(k for k, _ in q))}")
        hdr = {"Content-Type": "application/fhir+json"}
        if self.max_url and len(req.url) > self.max_url:
            return 414, hdr, json.dumps(oo("URI Too Long"))
        if path == "metadata":
            return 200, hdr, json.dumps(self.cap)
        if "/" in path:
            t, rid = path.split("/", 1)
            res = self.db.get((t, rid))
            return (200, hdr, json.dumps(res)) if res else (404, hdr, json.dumps(oo("not found")))
        if self.demand_category and path == "Observation" and "category" not in dict(q):
            return 400, hdr, json.dumps(oo("Observation search requires a category parameter"))
        if self.reject_lastupdated and "_lastUpdated" in dict(q):
            return 400, hdr, json.dumps(oo("Unknown search parameter _lastUpdated"))
        crit = [(k, v) for k, v in q if k not in ("_count", "_offset", "_include", "_summary")]
        hits = [
            r
            for (t, _), r in sorted(self.db.items())
            if t == path and all(self._match(r, k, v) for k, v in crit)
        ]
        if dict(q).get("_summary") == "count":
            return (
                200,
                hdr,
                json.dumps(
                    {
                        "resourceType": "Bundle",
                        "type": "searchset",
                        "meta": {"lastUpdated": self.clock},
                        "total": len(hits),
                    }
                ),
            )
        off = int(dict(q).get("_offset", 0))
        chunk = hits[off : off + self.page]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in chunk]
        if "_include" in dict(q):
            for r in chunk:
                mid = (r.get("medicationReference") or {}).get("reference", "").split("/")[-1]
                if ("Medication", mid) in self.db:
                    entries.append(
                        {"resource": self.db[("Medication", mid)], "search": {"mode": "include"}}
                    )
        links = []
        if off + self.page < len(hits):
            rest = [(k, v) for k, v in q if k != "_offset"] + [("_offset", str(off + self.page))]
            links.append(
                {"relation": "next", "url": f"{path}?" + "&".join(f"{k}={v}" for k, v in rest)}
            )
        return (
            200,
            hdr,
            json.dumps(
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "meta": {"lastUpdated": self.clock},
                    "entry": entries,
                    "link": links,
                }
            ),
        )


def oo(text: str, code: str = "invalid") -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


SLE = "http://snomed.info/sct|55464009"
HGB = "http://loinc.org|718-7"
PLASMA = "http://snomed.info/sct|127788007"


def population(fake: FakeFhir, n: int = 3, when: str = "2026-11-01T00:00:00Z") -> None:
    """n screened patients (p0..), one unscreened (px), each with a few records."""

    def cc(tok: str) -> dict:
        s, c = tok.split("|")
        return {"coding": [{"system": s, "code": c}]}

    for i in range(n):
        pid = f"p{i}"
        fake.add({"resourceType": "Patient", "id": pid}, when)
        fake.add(
            {
                "resourceType": "Condition",
                "id": f"c{i}",
                "subject": {"reference": f"Patient/{pid}"},
                "code": cc(SLE),
            },
            when,
        )
        fake.add(
            {
                "resourceType": "Condition",
                "id": f"c{i}b",
                "subject": {"reference": f"Patient/{pid}"},
                "code": cc("http://snomed.info/sct|38341003"),
            },
            when,
        )
        fake.add(
            {
                "resourceType": "Observation",
                "id": f"o{i}",
                "subject": {"reference": f"Patient/{pid}"},
                "code": cc(HGB),
            },
            when,
        )
        fake.add(
            {
                "resourceType": "Observation",
                "id": f"o{i}x",
                "subject": {"reference": f"Patient/{pid}"},
                "code": cc("http://loinc.org|0000-0"),
            },
            when,
        )
        fake.add({"resourceType": "Medication", "id": f"m{i}", "code": {"text": "VAY736"}}, when)
        fake.add(
            {
                "resourceType": "MedicationRequest",
                "id": f"mr{i}",
                "subject": {"reference": f"Patient/{pid}"},
                "medicationReference": {"reference": f"Medication/m{i}"},
            },
            when,
        )
        fake.add(
            {
                "resourceType": "Immunization",
                "id": f"im{i}",
                "patient": {"reference": f"Patient/{pid}"},
            },
            when,
        )
    fake.add({"resourceType": "Patient", "id": "px"}, when)
    fake.add(
        {
            "resourceType": "Observation",
            "id": "ox",
            "subject": {"reference": "Patient/px"},
            "code": cc(HGB),
        },
        when,
    )


TOKENS = {"Observation": [HGB], "Procedure": [PLASMA], "Condition": [SLE]}


class BulkFake(FakeFhir):
    """FakeFhir that also answers a Patient-level Bulk `$export` (with `_since`) at once:
    NDJSON files of the asked types' records updated after `_since`, Medication left out (it
    is outside the Patient compartment, as HAPI or sekmet export it)."""

    def __init__(self, rsps: responses.RequestsMock, **kw: Any) -> None:
        super().__init__(rsps, **kw)
        self.asked: dict[str, str] = {}
        rsps.add(responses.DELETE, re.compile(re.escape(BASE) + r"/bulk-status/.*"), status=202)

    def _get(self, req) -> tuple[int, dict, str]:
        p = urlsplit(req.url)
        path = p.path[len(urlsplit(BASE).path) :].strip("/")
        if path == "Patient/$export":
            self.log.append("Patient/$export?" + "&".join(sorted(k for k, _ in parse_qsl(p.query))))
            self.asked = dict(parse_qsl(p.query))
            return 202, {"Content-Location": f"{BASE}/bulk-status/1"}, ""
        if path == "bulk-status/1":
            since = self.asked.get("_since")
            types = [t for t in self.asked.get("_type", "").split(",") if t and t != "Medication"]
            out = [
                {"type": t, "url": f"{BASE}/bulk-files/{t}.ndjson"}
                for t in types
                if self._exported(t, since)
            ]
            manifest = {"transactionTime": self.clock, "requiresAccessToken": False,
                        "output": out, "error": []}
            return 200, {"Content-Type": "application/json"}, json.dumps(manifest)
        if path.startswith("bulk-files/"):
            t = path.split("/")[1].split(".")[0]
            rows = self._exported(t, self.asked.get("_since"))
            return 200, {"Content-Type": "application/fhir+ndjson"}, "".join(
                json.dumps(r) + "\n" for r in rows
            )
        return super()._get(req)

    def _exported(self, rtype: str, since: str | None) -> list[dict]:
        return [
            r
            for (t, _), r in sorted(self.db.items())
            if t == rtype and (since is None or r["meta"]["lastUpdated"] > since)
        ]
