"""`python -m bench run --scale 1000 --scale 10000 --format ndjson` (see bench/README.md)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import synthea
from bench.gen import dataset_dir, generate, info

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-25"  # the generated populations' as-of date
# the results table's columns; `bench ab` reads sub-runs' tables by these names
COL_E2E, COL_RATIO, COL_RSS, COL_EVAL = (
    "e2e first s", "ratio e2e/floor", "peak RSS MB", "eval s (run.json)"
)  # fmt: skip
RUN_COLUMNS = ("scale", "format", "resources", "MB", "orjson floor s", "floor res/s", COL_E2E,
               "e2e res/s", COL_RATIO, COL_RSS, "rerun s", COL_EVAL,
               "full validation s (extrapolated)")  # fmt: skip


def child(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """Run `cmd`; (wall seconds, peak RSS MB of that child alone via wait4, exit code)."""
    t0 = time.perf_counter()
    with log.open("wb") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, ru.ru_maxrss / 1024, p.returncode


def job(kind: str, folder: Path, work: Path, extra: int | str = 0) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{kind}.json"
    wall, rss, rc = child(
        [
            sys.executable,
            "-m",
            "bench.jobs",
            kind,
            str(folder),
            str(work / kind),
            str(out),
            str(extra),
        ],
        work / f"{kind}.log",
    )
    if rc != 0:
        raise SystemExit(f"job {kind} failed (exit {rc}); see {work / (kind + '.log')}")
    result = json.loads(out.read_text())
    result["wall_s"] = round(wall, 2)
    result["maxrss_mb"] = round(rss, 1)
    return result


def e2e(folder: Path, work: Path, rerun: bool = True, as_of: str = AS_OF) -> dict[str, Any]:
    """`cohort run` as a child process on a fresh store, then the no-change rerun."""
    import shutil

    w = work / "e2e"
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    (w / "site.toml").write_text(
        f'[trial]\nid = "sirius-sle-2"\n[store]\npath = "{w}/state/store.sqlite"\n'
        f'[[sites]]\nid = "b"\nname = "Bench"\nsource = "{folder}"\n'
    )
    res: dict[str, Any] = {}
    for label in ("first", "rerun") if rerun else ("first",):
        cmd = [
            sys.executable,
            "-m",
            "cohort",
            "run",
            "--config",
            str(w / "site.toml"),
            "--as-of",
            as_of,
            "--out",
            str(w / "out"),
        ]
        wall, rss, rc = child(cmd, w / f"{label}.log")
        report = json.loads((w / "out" / "run.json").read_text())
        res[label] = {
            "wall_s": round(wall, 2),
            "maxrss_mb": round(rss, 1),
            "exit": rc,
            "timings": report.get("timings"),
            "screened": report["sites"]["b"].get("screened"),
        }
    return res


def rounds(
    folder: Path, work: Path, n: int, full_sample: int, rerun: bool, as_of: str = AS_OF
) -> dict[str, Any]:
    """`n` rounds of the orjson floor then `cohort run`, back to back on the same files; the
    row shows the round of median ratio, and every round's ratio. On a shared VM the same
    parse can take 1.3x as long from one minute to the next, so one pair can flatter or
    wrong either side. The fhir.resources sample and the no-change rerun: first round only."""
    pairs = []
    for i in range(n):
        fl = job("floor", folder, work, full_sample if i == 0 else 0)
        print("floor", fl, flush=True)
        e = e2e(folder, work, rerun=rerun and i == 0, as_of=as_of)
        print("e2e", e, flush=True)
        pairs.append((fl, e))
    ratios = [fl["orjson_s"] / e["first"]["wall_s"] for fl, e in pairs]
    mid = sorted(range(n), key=ratios.__getitem__)[n // 2]
    fl, e = pairs[mid]
    fl = {**{k: v for k, v in pairs[0][0].items() if k.startswith("full_")}, **fl}
    e = {**pairs[0][1], "first": e["first"]}
    return {"floor": fl, "e2e": e, "ratios": [round(x, 3) for x in ratios]}


# the options that name a population (`bench gen` has all but --folder)
POPULATIONS = ("scale", "synthea", "synthea_bundles", "sle_synthea", "folder")


def require_population(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """A usage error unless `a` names at least one population (`bench run`, `gen`, `ab`)."""
    if not any(getattr(a, name, None) for name in POPULATIONS):
        ap.error("give --scale, --synthea, --synthea-bundles, --sle-synthea and/or --folder")


def folder_slots(folders: list[Path]) -> list[tuple[Path, str, str]]:
    """Each `--folder` resolved, with its row label and its work folder's name: the folder's
    name, or where two given folders share one (exports/nov, backup/nov), the whole path and a
    digest of it, so neither row nor store is the other's (`bench ab` keys rows by label)."""
    resolved = [f.resolve() for f in folders]
    names = [f.name for f in resolved]
    out = []
    for f in resolved:
        if names.count(f.name) == 1:
            out.append((f, f.name, f"folder-{f.name}"))
        else:
            digest = hashlib.sha256(str(f).encode()).hexdigest()[:10]
            out.append((f, str(f), f"folder-{f.name}-{digest}"))
    return out


def _read_types_only(folder: Path) -> Path:
    """A sibling folder linking only the population's files of the types cohort reads, as a
    Bulk export with `_type` set to them (cohort's own Bulk client asks for just these)."""
    from cohort.model import PIPELINE_TYPES

    out = folder.with_name(folder.name + "-read-types")
    if not (out / ".done.json").exists():
        out.mkdir(exist_ok=True)
        for f in folder.iterdir():
            if f.name.split(".")[0] in PIPELINE_TYPES and not (out / f.name).exists():
                (out / f.name).hardlink_to(f)
        meta = info(folder)
        meta["by_type"] = {t: n for t, n in meta["by_type"].items() if t in PIPELINE_TYPES}
        meta["resources"] = sum(meta["by_type"].values())
        (out / ".done.json").write_text(json.dumps(meta, indent=1))
    return out


def machine() -> str:
    info_ = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    cpus = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mem = next((ln.split()[1] for ln in info_.splitlines() if ln.startswith("MemTotal")), "")
    cpu = next((ln.split(":")[1] for ln in cpus.splitlines() if ln.startswith("model name")), "")
    ram = f"{int(mem) / 1024 / 1024:.1f} GiB RAM" if mem.isdigit() else "RAM unknown"
    return (
        f"{os.cpu_count()} cores ({cpu.strip()}), {ram}, Python {platform.python_version()},"
        f" {platform.system()} {platform.release()}"
    )


def markdown(cmd: str, rows: list[dict[str, Any]]) -> str:
    out = [
        f"### Run {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {machine()}",
        "",
        f"Command: `{cmd}`",
        "",
    ]
    out += ["| " + " | ".join(RUN_COLUMNS) + " |", "|---" * len(RUN_COLUMNS) + "|"]
    for r in rows:
        fl, e = r["floor"], r["e2e"]
        n = fl["resources"]
        floor_rate = n / fl["orjson_s"]
        e2e_rate = n / e["first"]["wall_s"]
        full = (
            f"{fl['full_extrapolated_s']} (sample {fl['full_sample']} in {fl['full_sample_s']} s)"
            if "full_sample" in fl
            else "-"
        )
        ratios = r.get("ratios", [])
        each = f" (median; rounds {' / '.join(map(str, ratios))})" if len(ratios) > 1 else ""
        out.append(
            f"| {r['scale']} | {r['format']} | {n} | {fl['bytes'] / 1e6:.0f} | {fl['orjson_s']} | "
            f"{floor_rate:,.0f} | {e['first']['wall_s']} | {e2e_rate:,.0f} | "
            f"{e2e_rate / floor_rate:.3f}{each} | {e['first']['maxrss_mb']} | "
            f"{e.get('rerun', {}).get('wall_s', '-')} | "
            f"{e['first']['timings'].get('evaluate')} | {full} |"
        )
    staged = [r for r in rows if "stages" in r]
    if staged:
        keys = list(staged[0]["stages"]["stages"])
        out += [
            "",
            "Stages (library pieces called directly in one child, seconds; peak RSS of "
            "that child):",
            "",
            "| scale | format | " + " | ".join(keys) + " | RSS MB |",
            "|---|---|" + "---|" * (len(keys) + 1),
        ]
        for r in staged:
            st = r["stages"]
            out.append(
                f"| {r['scale']} | {r['format']} | "
                + " | ".join(str(st["stages"].get(k, "")) for k in keys)
                + f" | {st['maxrss_mb']} |"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    if sys.argv[1:2] == ["ab"]:  # compares two commits by running `run` in each tree
        from bench.ab import main as ab_main

        ab_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["server"]:  # the server-side harness has its own options
        from bench.server import main as server_main

        server_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(prog="python -m bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="write the populations to the cache (once)")
    r = sub.add_parser("run", help="generate if needed, then floor, e2e and stage timings")
    for p in (g, r):
        p.add_argument(
            "--scale", type=int, action="append", default=[], help="screened patients (repeatable)"
        )
        p.add_argument(
            "--synthea",
            type=int,
            action="append",
            default=[],
            metavar="COPIES",
            help="also the public Synthea population copied COPIES times (bench/synthea.py)",
        )
        p.add_argument(
            "--synthea-bundles",
            type=int,
            action="append",
            default=[],
            metavar="COPIES",
            help="also the public Synthea bundles as they come (one per patient), COPIES times",
        )
        p.add_argument(
            "--sle-synthea",
            type=int,
            action="append",
            default=[],
            metavar="N",
            help="also N generated SLE patients, each with a Synthea chart (bench/synthea.py)",
        )
        p.add_argument(
            "--format",
            choices=["ndjson", "ndjson.gz", "bundles", "both"],
            default="ndjson",
            help="files of the generated population (--scale); both = ndjson and bundles",
        )
        p.add_argument(
            "--pad",
            type=int,
            default=40,
            help="extra Observations per patient (+pad//10 Conditions)",
        )
        p.add_argument(
            "--cache", type=Path, default=Path("/tmp/cohort-bench"), help="where data is kept"
        )
    r.add_argument(
        "--full-sample",
        type=int,
        default=3000,
        help="resources validated with fhir.resources (0: skip)",
    )
    r.add_argument(
        "--read-types-only",
        action="store_true",
        help="only the files of the types cohort reads (a Bulk export with _type)",
    )
    r.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="N rounds of floor + e2e per population; the round of median ratio is shown",
    )
    r.add_argument(
        "--folder",
        type=Path,
        action="append",
        default=[],
        help="also an existing folder of NDJSON or Bundle files (e.g. your own Bulk export), "
        "read as it is (repeatable)",
    )
    r.add_argument(
        "--as-of",
        default=AS_OF,
        help=f"the as-of date of `cohort run` (default {AS_OF}, the generated populations')",
    )
    r.add_argument("--no-rerun", action="store_true", help="skip the no-change rerun")
    r.add_argument("--no-stages", action="store_true", help="skip the per-stage child")
    r.add_argument("--results", type=Path, help="append a markdown section to this file")
    a = ap.parse_args()
    require_population(ap, a)
    folders = getattr(a, "folder", [])
    for f in folders:
        if not f.is_dir():
            ap.error(f"--folder {f}: not a folder")
    fmts = ["ndjson", "bundles"] if a.format == "both" else [a.format]
    # (label, format, folder, `bench gen` arguments that write it, writing it here)
    populations: list[tuple[str, str, Path, list[str], Callable[[], Path]]] = [
        (
            str(n),
            f,
            dataset_dir(a.cache, n, f, a.pad, None),
            ["--scale", str(n), "--format", f],
            partial(generate, a.cache, n, f, pad=a.pad),
        )
        for n in a.scale
        for f in fmts
    ]
    # the populations built from the public Synthea bundles: (counts given, label, format,
    # folder of a count, `bench gen` flag, writer of a count)
    synthea_kinds: list[tuple[list[int], str, str, Any, str, Any]] = [
        (a.synthea, "synthea x{}", "ndjson", synthea.dataset_dir, "--synthea", synthea.generate),
        (a.synthea_bundles, "synthea x{}", "bundles", synthea.bundles_dir, "--synthea-bundles",
         synthea.generate_bundles),
        (a.sle_synthea, "{} + Synthea charts", "ndjson", synthea.cohort_dir, "--sle-synthea",
         synthea.generate_cohort),
    ]  # fmt: skip
    populations += [
        (label.format(n), fmt, folder_of(a.cache, n), [flag, str(n)], partial(make, a.cache, n))
        for counts, label, fmt, folder_of, flag, make in synthea_kinds
        for n in counts
    ]
    rows = []
    for folder, label, slot in folder_slots(folders):
        # as it is: no generation, no per-type subset (cohort reads only its types anyway)
        print(f"data {folder}: as given", flush=True)
        work = a.cache / "work" / slot
        row: dict[str, Any] = {"scale": f"folder {label}", "format": "as given", "data": {}}
        row.update(rounds(folder, work, a.repeat, a.full_sample, not a.no_rerun, a.as_of))
        if not a.no_stages:
            row["stages"] = job("stages", folder, work, a.as_of)
            print("stages", row["stages"], flush=True)
        rows.append(row)
    for scale, fmt, folder, gen_args, make in populations:
        if a.cmd == "gen":
            make()
        elif not (folder / ".done.json").exists():
            # in a child: Linux carries a process's peak RSS across fork and exec, so a parent
            # grown by generating would show its own peak as every later child's (wait4)
            args = ["--cache", str(a.cache), "--pad", str(a.pad), *gen_args]
            subprocess.run([sys.executable, "-m", "bench", "gen", *args], check=True, cwd=ROOT)
        if getattr(a, "read_types_only", False) and fmt != "bundles":  # (per type: NDJSON only)
            folder, scale = _read_types_only(folder), f"{scale} (read types only)"
        meta = info(folder)
        print(
            f"data {folder}: {meta['patients']} patients, {meta['resources']} resources",
            flush=True,
        )
        if a.cmd == "gen":
            continue
        work = a.cache / "work" / folder.name
        row = {"scale": scale, "format": fmt, "data": meta}
        row.update(rounds(folder, work, a.repeat, a.full_sample, not a.no_rerun, a.as_of))
        if not a.no_stages:
            row["stages"] = job("stages", folder, work, a.as_of)
            print("stages", row["stages"], flush=True)
        rows.append(row)
        (work / "row.json").write_text(json.dumps(row, indent=1))
    if rows:
        text = markdown("python -m bench " + shlex.join(sys.argv[1:]), rows)
        print(text)
        if a.results:
            with a.results.open("a", encoding="utf-8") as fh:
                fh.write("\n" + text)


if __name__ == "__main__":
    main()
