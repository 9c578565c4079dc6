"""Server-side scale (issue 6 item 3): cohort's pull vs fhirpy / fhir-pyrate against sekmet.

    .venv/bin/python -m bench.server --scale 1000 --scale 5000 --results bench/RESULTS.md

Per scale: a synthetic population from the project's generator (`cohort.samples.generate`,
bundles, chunks of 1,000 screened patients + background, cached under --cache) is loaded into a
fresh sekmet-fhir (127.0.0.1, free port, simulator off; loading is not measured); then
`cohort run` (fresh store: first load, then a no-change rerun) and the peers pull the same
screened patients and types from that server. The server is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import requests

from cohort.source.fhir.plan import PULL_TYPES
from cohort.source.fhir.settings import ServerSettings

ROOT = Path(__file__).resolve().parent.parent
SEKMET = ROOT / ".venv-sekmet" / "bin" / "sekmet"
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"
CHUNK = 1000
SEED = 20261125
SITE = "b"
AS_OF = "2026-11-25"
# the clinical types cohort pulls, without Patient (peers are handed the patient ids)
PEER_TYPES = tuple(t for t in PULL_TYPES if t != "Patient")


# -- population ------------------------------------------------------------------------------
def population(cache: Path, screened: int) -> Path:
    """Bundles for `screened` SLE patients (+ generator background), written once to the cache."""
    from cohort.samples import DEFAULT_AS_OF, generate

    out = cache / f"pop-s{screened}"
    done = out / ".done.json"
    if done.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    t0, left, k, patients = time.perf_counter(), screened, 0, 0
    while left > 0:
        n = min(CHUNK, left)
        gps = generate(
            out / f"c{k:03d}",
            patients=n,
            seed=SEED,
            as_of=DEFAULT_AS_OF,
            site=f"c{k:03d}",
            fmt="bundles",
        )
        patients += len(gps)
        left -= n
        k += 1
    files = sorted(out.rglob("bundle-*.json"))
    done.write_text(
        json.dumps(
            {
                "screened": screened,
                "patients": patients,
                "files": len(files),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )
    return out


# -- server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sekmet:
    """sekmet-fhir on 127.0.0.1 with a fresh data dir (as tests/server.py does, without pytest)."""

    def __init__(self, workdir: Path) -> None:
        if not SEKMET.exists():
            raise SystemExit("sekmet not installed: run scripts/fhir-test-server.sh")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        cfg = {
            "host": "127.0.0.1",
            "port": self.port,
            "base_url": self.base,
            "data_dir": str(workdir / "data"),
            "simulator": {"enabled": False},
            "validation": {"inbound": "off"},
            "log_inbound": False,
        }
        settings = workdir / "settings.yaml"
        settings.write_text(json.dumps(cfg))
        self.log = workdir / "sekmet.log"
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(
                [
                    str(SEKMET),
                    "serve",
                    "--config",
                    str(settings),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=workdir,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, "SEKMET_CONFIG": str(settings)},
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sekmet exited ({self.proc.returncode}); see {self.log}")
            try:
                if requests.get(f"{self.base}/metadata", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"sekmet did not answer /metadata in 60 s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _post(session: requests.Session, base: str, entries: list[dict[str, Any]]) -> None:
    body = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    r = session.post(
        base, data=body, headers={"Content-Type": "application/fhir+json"}, timeout=300
    )
    if r.status_code >= 300:
        raise RuntimeError(f"transaction failed: HTTP {r.status_code}: {r.text[:500]}")


def load(base: str, folder: Path, workers: int = 4) -> tuple[int, float]:
    """POST transaction bundles as-is; collection bundles as PUT transactions (loader.py)."""
    t0 = time.perf_counter()
    files = sorted(folder.rglob("bundle-*.json"))
    sessions = [requests.Session() for _ in range(workers)]

    def one(i: int) -> int:
        s = sessions[i % workers]
        bundle = orjson.loads(files[i].read_bytes())
        if bundle.get("type") == "transaction":
            _post(s, base, bundle["entry"])
            return len(bundle["entry"])
        res = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        res.sort(key=lambda r: r.get("resourceType") != "Medication")
        _post(
            s,
            base,
            [
                {
                    "fullUrl": f"{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in res
            ],
        )
        return len(res)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        n = sum(pool.map(one, range(len(files))))
    return n, time.perf_counter() - t0


# -- cohort ----------------------------------------------------------------------------------
def cohort_runs(base: str, work: Path, server: dict[str, Any]) -> dict[str, Any]:
    w = work / "cohort"
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in server.items())
    cfg = w / "site.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\n[store]\npath = "{w}/state/store.sqlite"\n'
        f'[[sites]]\nid = "{SITE}"\nname = "Bench server"\nsource = "{base}"\n'
        f"[sites.server]\n{extra}"
    )
    out: dict[str, Any] = {"config": cfg.read_text()}
    for label in ("first", "rerun"):
        cmd = [
            sys.executable,
            "-m",
            "cohort",
            "run",
            "--config",
            str(cfg),
            "--as-of",
            AS_OF,
            "--out",
            str(w / "out"),
        ]
        t0 = time.perf_counter()
        with (w / f"{label}.log").open("wb") as fh:
            rc = subprocess.run(
                cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, timeout=3600
            ).returncode
        wall = time.perf_counter() - t0
        if rc not in (0, 1):  # 1 may only mean "no candidates"; run.json tells
            raise RuntimeError(f"cohort run ({label}) exit {rc}; see {w / (label + '.log')}")
        rep = json.loads((w / "out" / "run.json").read_text())
        s = rep["sites"][SITE]
        out[label] = {
            "exit": rc,
            "wall_s": round(wall, 2),
            "requests": s.get("requests", {}),
            "total_requests": s.get("total_requests"),
            "bytes": sum((s.get("bytes") or {}).values()),
            "elapsed": s.get("elapsed", {}),
            "stored": s.get("stored"),
            "updated": s.get("updated"),
            "unchanged": s.get("unchanged"),
            "patients_screened": s.get("patients_screened"),
            "patients_new": s.get("patients_new"),
            "warnings": s.get("warnings", []),
            "timings": rep.get("timings"),
        }
    db = sqlite3.connect(w / "state" / "store.sqlite")
    try:
        out["store_by_type"] = dict(
            db.execute("SELECT type, count(*) FROM resources WHERE site=? GROUP BY type", (SITE,))
        )
        row = db.execute(
            "SELECT value FROM marks WHERE site=? AND key='fhir:screened'", (SITE,)
        ).fetchone()
    finally:
        db.close()
    out["screened_ids"] = json.loads(row[0]) if row else []
    return out


def peer_spec(base: str, ids: list[str], page_size: int) -> dict[str, Any]:
    """Same types and the same code= filters cohort searches with (Observation, Procedure)."""
    from cohort.config import load_config
    from cohort.runner import Loaded
    from cohort.source.fhir.plan import BY_CODE, search_values

    tmp = Path(f"/tmp/cohort-bench-server-cfg-{os.getpid()}.toml")
    tmp.write_text('[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "x"\nsource = "/tmp"\n')
    try:
        loaded = Loaded.from_config(load_config(tmp))
    finally:
        tmp.unlink()
    tokens = loaded.term.search_tokens(loaded.trial.concepts())
    types: dict[str, dict[str, str]] = {}
    for rtype in PEER_TYPES:
        types[rtype] = (
            {"code": ",".join(search_values(tokens.get(rtype, []), False))}
            if rtype in BY_CODE
            else {}
        )
    return {"base_url": base, "ids": ids, "types": types, "batch": 100, "page_size": page_size}


def run_peer(peer: str, spec: Path, work: Path) -> dict[str, Any]:
    if not BENCH_PY.exists():
        return {
            "peer": peer,
            "error": f"{BENCH_PY} missing (python3 -m venv .venv-bench && "
            ".venv-bench/bin/pip install fhirpy fhir-pyrate)",
        }
    out = work / f"peer-{peer}.json"
    out.unlink(missing_ok=True)
    with (work / f"peer-{peer}.log").open("wb") as fh:
        rc = subprocess.run(
            [str(BENCH_PY), str(ROOT / "bench" / "peers.py"), peer, str(spec), str(out)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=3600,
            cwd=ROOT,
        ).returncode
    if not out.exists():
        return {
            "peer": peer,
            "error": f"exit {rc}, no result; see {work / ('peer-' + peer + '.log')}",
        }
    return json.loads(out.read_text())


# -- one scale -------------------------------------------------------------------------------
def one_scale(scale: int, a: argparse.Namespace) -> dict[str, Any]:
    folder = population(a.cache, scale)
    meta = json.loads((folder / ".done.json").read_text())
    work = a.cache / "work" / f"s{scale}"
    work.mkdir(parents=True, exist_ok=True)
    srv = Sekmet(work / "sekmet")
    try:
        n, took = load(srv.base, folder)
        print(
            f"s{scale}: loaded {n} resources ({meta['patients']} patients) into {srv.base} "
            f"in {took:.0f} s",
            flush=True,
        )
        server = {
            "patient_batch": a.patient_batch,
            "page_size": a.page_size,
            "concurrency": a.concurrency,
            "max_url_length": a.max_url_length,
            # the data was loaded seconds ago: with the default 300 s overlap the "no-change"
            # rerun would re-fetch all of it (client and server share one clock here)
            "sync_overlap": a.sync_overlap,
        }
        row: dict[str, Any] = {
            "scale": scale,
            "population": meta,
            "loaded": n,
            "load_s": round(took, 1),
            "settings": server,
        }
        row["cohort"] = cohort_runs(srv.base, work, server)
        c = row["cohort"]
        print(
            f"s{scale}: cohort first {c['first']['total_requests']} req "
            f"{c['first']['wall_s']} s, rerun {c['rerun']['total_requests']} req "
            f"{c['rerun']['wall_s']} s",
            flush=True,
        )
        ids = c.pop("screened_ids")
        row["screened"] = len(ids)
        spec = work / "peer-spec.json"
        spec.write_text(json.dumps(peer_spec(srv.base, ids, a.page_size)))
        row["peers"] = {}
        for peer in a.peers:
            row["peers"][peer] = run_peer(peer, spec, work)
            p = row["peers"][peer]
            print(
                f"s{scale}: {peer}: {p.get('requests')} req, "
                f"{sum((p.get('resources') or {}).values())} res, {p.get('seconds')} s "
                f"{p.get('error', '')}",
                flush=True,
            )
    finally:
        srv.stop()
    (work / "row.json").write_text(json.dumps(row, indent=1))
    return row


# -- report ----------------------------------------------------------------------------------
def markdown(cmd: str, rows: list[dict[str, Any]]) -> str:
    from bench.__main__ import machine

    out = [
        f"### Server run {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {machine()}",
        "",
        f"Command: `{cmd}`",
        "",
    ]
    s0 = rows[0]["settings"]
    out += [
        "cohort `[sites.server]` settings: "
        + ", ".join(f"{k} = {v}" for k, v in s0.items())
        + "; peers: 100 patient ids per search (fhirpy), one search per patient and type "
        "(fhir-pyrate), `_count` = page_size.",
        "",
    ]
    out += [
        "| N screened | patients on server | resources loaded | cohort first: requests | "
        "req / screened patient | MB | s | rerun: requests | MB | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, re_ = r["cohort"]["first"], r["cohort"]["rerun"]
        out.append(
            f"| {r['screened']} | {r['population']['patients']} | {r['loaded']} | "
            f"{f['total_requests']} | {f['total_requests'] / max(r['screened'], 1):.3f} | "
            f"{f['bytes'] / 1e6:.1f} | {f['wall_s']} | {re_['total_requests']} | "
            f"{re_['bytes'] / 1e6:.1f} | {re_['wall_s']} |"
        )
    keys = sorted(
        {k for r in rows for run in ("first", "rerun") for k in r["cohort"][run]["requests"]}
    )
    out += [
        "",
        "cohort requests per type (first / rerun):",
        "",
        "| N | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for r in rows:
        f, re_ = r["cohort"]["first"]["requests"], r["cohort"]["rerun"]["requests"]
        out.append(
            f"| {r['scale']} | "
            + " | ".join(f"{f.get(k, 0)} / {re_.get(k, 0)}" for k in keys)
            + " |"
        )
    out += [
        "",
        "Same screened patients, same 7 types (" + ", ".join(PEER_TYPES) + "), same "
        "server; resources = search matches of those types (cohort: rows in its store; "
        "it also stores Patient and _include'd Medication, not counted here):",
        "",
        "| N | client | requests | resources | MB | s | " + " | ".join(PEER_TYPES) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(PEER_TYPES),
    ]
    for r in rows:
        c = r["cohort"]
        by = c["store_by_type"]
        req = sum(v for k, v in c["first"]["requests"].items() if k in PEER_TYPES)
        out.append(
            f"| {r['scale']} | cohort (first load, all phases: {c['first']['total_requests']} "
            f"req) | {req} (7 types) | {sum(by.get(t, 0) for t in PEER_TYPES)} | "
            f"{c['first']['bytes'] / 1e6:.1f} | {c['first']['elapsed'].get('total', 0):.2f} "
            f"(pull; whole `cohort run` {c['first']['wall_s']}) | "
            + " | ".join(str(by.get(t, 0)) for t in PEER_TYPES)
            + " |"
        )
        for name, p in r["peers"].items():
            if "error" in p and not p.get("requests"):
                out.append(f"| {r['scale']} | {name} | failed: `{p['error'][:300]}` |")
                continue
            res = p.get("resources") or {}
            err = f" (error: `{p['error'][:200]}`)" if "error" in p else ""
            out.append(
                f"| {r['scale']} | {p['peer']} {p.get('version', '')}{err} | {p['requests']} | "
                f"{sum(res.get(t, 0) for t in PEER_TYPES)} | {p['bytes'] / 1e6:.1f} | "
                f"{p['seconds']} | " + " | ".join(str(res.get(t, 0)) for t in PEER_TYPES) + " |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.server")
    ap.add_argument("--scale", type=int, action="append", required=True)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/cohort-bench-server"))
    defaults = ServerSettings(base_url="")  # cohort's own defaults unless told otherwise
    ap.add_argument("--patient-batch", type=int, default=defaults.patient_batch)
    ap.add_argument("--page-size", type=int, default=defaults.page_size)
    ap.add_argument("--concurrency", type=int, default=defaults.concurrency)
    ap.add_argument("--max-url-length", type=int, default=defaults.max_url_length)
    ap.add_argument("--sync-overlap", type=float, default=0.0)
    ap.add_argument("--peers", nargs="*", default=["fhirpy", "pyrate"])
    ap.add_argument("--results", type=Path, help="append a markdown section to this file")
    a = ap.parse_args(argv)
    rows = [one_scale(scale, a) for scale in a.scale]
    text = markdown("python -m bench.server " + shlex.join(sys.argv[1:]), rows)
    print(text)
    if a.results:
        with a.results.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
