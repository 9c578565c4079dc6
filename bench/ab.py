"""`python -m bench ab --base REF [--head REF]`: `bench run` in two commits' trees, alternated."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.__main__ import (
    COL_E2E,
    COL_EVAL,
    COL_RATIO,
    COL_RSS,
    POPULATIONS,
    RUN_COLUMNS,
    machine,
    require_population,
)

ROOT = Path(__file__).resolve().parent.parent
WORKTREE = "WORKTREE"  # --head WORKTREE: the files of this tree as they are, uncommitted too
# `bench run` options passed through as given: repeatable, one value, flags
REPEATED = POPULATIONS
VALUED = ("format", "pad", "full_sample", "repeat", "as_of")
FLAGS = ("read_types_only", "no_rerun", "no_stages")
GEN_OPTIONS = ("scale", "synthea", "synthea_bundles", "sle_synthea", "format", "pad")
Row = dict[str, str]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench ab",
        description="`bench run` in the trees of two commits, alternated; medians compared",
    )
    ap.add_argument("--base", required=True, help="the reference commit (any git ref)")
    ap.add_argument(
        "--head",
        help="the commit compared to it (default: HEAD, refused while cohort/ or bench/ have "
        f"uncommitted changes); {WORKTREE}: this tree's files as they are",
    )
    ap.add_argument("--rounds", type=int, default=2, help="base, head pairs (default 2)")
    same = "as `bench run` (passed to it as given)"
    for name in REPEATED:
        kind: Any = Path if name == "folder" else int
        flag = "--" + name.replace("_", "-")
        ap.add_argument(flag, type=kind, action="append", default=[], help=same)
    for name in VALUED:
        ap.add_argument("--" + name.replace("_", "-"), help=same)
    for name in FLAGS:
        ap.add_argument("--" + name.replace("_", "-"), action="store_true", help=same)
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path("/tmp/cohort-bench"),
        help="as `bench run` (populations shared by both trees); the trees in CACHE/ab/<sha>",
    )
    ap.add_argument("--results", type=Path, help="append the comparison (markdown) to this file")
    return ap


def passthrough(
    a: argparse.Namespace, names: tuple[str, ...] = REPEATED + VALUED + FLAGS
) -> list[str]:
    """The `bench run` (or `bench gen`) arguments given to `ab`, in the order of `names`, paths
    made absolute (each sub-run's working directory is its own tree); the cache always."""
    out: list[str] = []
    for name in names:
        flag, value = "--" + name.replace("_", "-"), getattr(a, name)
        if name in FLAGS:
            out += [flag] if value else []
        elif name in REPEATED:
            for v in value:
                out += [flag, str(v.resolve() if isinstance(v, Path) else v)]
        elif value is not None:
            out += [flag, str(value)]
    return [*out, "--cache", str(a.cache.resolve())]


def parse_results(text: str) -> list[Row]:
    """The rows of the last `bench run` results table in `text`, each {column name: cell}."""
    rows: list[Row] = []
    header: list[str] = []
    for line in text.splitlines():
        cells = (
            [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        )
        if cells[:3] == list(RUN_COLUMNS[:3]):
            header, rows = cells, []
        elif header and cells and not set(line) <= set("|- "):
            rows.append(dict(zip(header, cells, strict=False)))
        elif not cells:
            header = []
    return rows


def number(cell: str | None) -> float | None:
    """A cell's leading number: `0.124 (median; rounds ...)` -> 0.124; `None`, `-` -> None."""
    m = re.match(r"[-+]?\d[\d,]*(?:\.\d+)?", cell or "")
    return float(m.group().replace(",", "")) if m else None


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _cell(values: list[float | None], digits: int, each: bool) -> str:
    """The median; with `each` and more than one round, every round's value in brackets."""
    mid = _median(values)
    if mid is None:
        return "-"
    listed = " / ".join("-" if v is None else f"{v:.{digits}f}" for v in values)
    return f"{mid:.{digits}f}" + (f" ({listed})" if each and len(values) > 1 else "")


def _change(base: float | None, head: float | None) -> str:
    return "-" if base is None or head is None or base == 0 else f"{(head - base) / base:+.1%}"


def table(base: str, head: str, base_runs: list[list[Row]], head_runs: list[list[Row]]) -> str:
    """One row per population (scale, format): per tree the median over rounds of the ratio,
    e2e, evaluate and peak RSS (ratio and e2e with every round's value), and head's change."""
    keys = list(
        dict.fromkeys((r["scale"], r["format"]) for run in base_runs + head_runs for r in run)
    )

    def values(runs: list[list[Row]], key: tuple[str, str], col: str) -> list[float | None]:
        found = [next((r for r in run if (r["scale"], r["format"]) == key), None) for run in runs]
        return [number(r.get(col)) if r else None for r in found]

    cols = [
        f"{COL_RATIO} {base}",
        f"{COL_RATIO} {head}",
        "ratio change",
        f"{COL_E2E} {base}",
        f"{COL_E2E} {head}",
        "e2e change",
        f"{COL_EVAL} {base}",
        f"{COL_EVAL} {head}",
        f"{COL_RSS} {base}",
        f"{COL_RSS} {head}",
    ]
    out = ["| scale | format | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for key in keys:
        cells = list(key)
        for col, digits, compared in (
            (COL_RATIO, 3, True),
            (COL_E2E, 2, True),
            (COL_EVAL, 2, False),
            (COL_RSS, 0, False),
        ):
            b, h = values(base_runs, key, col), values(head_runs, key, col)
            cells += [_cell(b, digits, compared), _cell(h, digits, compared)]
            cells += [_change(_median(b), _median(h))] if compared else []
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def git(*args: str, cwd: Path = ROOT, fail: str = "") -> str:
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(fail or f"git {shlex.join(args)}: {p.stderr.strip()}")
    return p.stdout.strip()


def resolve(ref: str, option: str) -> str:
    """The full commit id of `ref`, or a clear refusal."""
    fail = f"{option} {ref}: not a commit of the repository at {ROOT}"
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", fail=fail)


def tree_for(sha: str, cache: Path) -> Path:
    """A detached worktree of `sha` under CACHE/ab, made once and reused while unchanged."""
    path = (cache / "ab" / sha).resolve()
    if (path / ".git").exists():
        if git("rev-parse", "HEAD", cwd=path) != sha:
            raise SystemExit(f"{path} is not a worktree of {sha}; remove it (git worktree remove)")
        if git("status", "--porcelain", "--untracked-files=no", cwd=path):
            raise SystemExit(f"{path} has local changes; remove it (git worktree remove --force)")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    git("worktree", "add", "--force", "--detach", str(path), sha)  # --force: a deleted one's entry
    return path


def _inside(path: Path, tree: Path) -> bool:
    """Whether a module file is the tree's own (not a copy installed in its `.venv`)."""
    path, tree = path.resolve(), tree.resolve()
    return path.is_relative_to(tree) and not path.is_relative_to(tree / ".venv")


def check_tree(tree: Path, role: str, label: str, flags: list[str]) -> None:
    """Refuse early when the tree's own `bench run` lacks a given option, or when the interpreter
    would import cohort or bench from elsewhere (an installed copy) than the tree."""
    script = (
        "import sys, cohort, bench.__main__ as m; print(cohort.__file__); print(m.__file__); "
        "sys.argv = ['bench', 'run', '--help']; m.main()"
    )
    p = subprocess.run(
        [sys.executable, "-c", script], cwd=tree, env=_env(tree), capture_output=True, text=True
    )
    lines = p.stdout.splitlines()
    if p.returncode:
        raise SystemExit(f"{role} tree {tree}: `bench run --help` failed:\n{p.stderr[-2000:]}")
    if len(lines) < 2 or not all(_inside(Path(f), tree) for f in lines[:2]):
        raise SystemExit(
            f"{role} tree {tree}: cohort/bench not imported from it:\n{p.stdout}{p.stderr}"
        )
    missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", p.stdout)]
    if missing:
        raise SystemExit(
            f"the {role} tree's bench ({label}) has no `bench run` option {', '.join(missing)}: "
            "leave it out, or compare with a newer --base"
        )


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def sub_run(tree: Path, args: list[str], results: Path) -> list[Row]:
    """`bench run` of the tree's own code in the tree; the rows of the table it wrote."""
    results.unlink(missing_ok=True)
    log = results.with_suffix(".log")
    with log.open("wb") as fh:
        rc = subprocess.run(
            [sys.executable, "-m", "bench", "run", *args, "--results", str(results)],
            cwd=tree,
            env=_env(tree),
            stdout=fh,
            stderr=subprocess.STDOUT,
        ).returncode
    if rc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"{tail}\n`bench run` in {tree} failed (exit {rc}); see {log}")
    rows = parse_results(results.read_text())
    if not rows:
        raise SystemExit(f"{results}: no results table with the columns {RUN_COLUMNS[:3]}")
    return rows


def section(argv: list[str], about: str, tbl: str, base: str, head: str) -> str:
    """The markdown section: title, machine, the exact command, the trees, the table."""
    return "\n".join(
        [
            f"### A/B {time.strftime('%Y-%m-%d %H:%M')}: {head} against {base}",
            "",
            f"Machine: {machine()}",
            "",
            f"Command: `python -m bench ab {shlex.join(argv)}`",
            "",
            about,
            "",
            "Each cell: the median over rounds (ratio and e2e s: every round's value in brackets); "
            "change = head / base - 1 (ratio: higher is faster; e2e s: lower is faster).",
            "",
            tbl,
        ]
    )


def _describe(sha: str) -> str:
    subject = git("log", "-1", "--format=%s", sha)
    return f"{sha} ({subject[:60]}{'...' if len(subject) > 60 else ''})"


def main(argv: list[str]) -> None:
    ap = parser()
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    require_population(ap, a)
    if a.head is None and git("status", "--porcelain", "--", "cohort", "bench"):
        ap.error(
            f"{ROOT} has uncommitted changes to cohort/ or bench/: commit them, or give "
            f"--head {WORKTREE} (the files as they are) or --head REF"
        )
    base_sha = resolve(a.base, "--base")
    trees: dict[str, tuple[Path, str]] = {"base": (tree_for(base_sha, a.cache), base_sha[:7])}
    head_sha = resolve("HEAD" if a.head in (None, WORKTREE) else a.head, "--head")
    if a.head == WORKTREE:
        trees["head"] = (ROOT, f"{head_sha[:7]}+worktree")
    else:
        trees["head"] = (tree_for(head_sha, a.cache), head_sha[:7])
    args = passthrough(a)
    for role, (tree, label) in trees.items():
        check_tree(tree, role, label, [*[x for x in args if x.startswith("--")], "--results"])
    if a.scale or a.synthea or a.synthea_bundles or a.sle_synthea:
        # once, by this tree's code, before any timed round; both trees then read these files
        gen = ["-m", "bench", "gen", *passthrough(a, GEN_OPTIONS)]
        if subprocess.run([sys.executable, *gen], cwd=ROOT).returncode:
            raise SystemExit(f"`python {' '.join(gen)}` failed (its error above)")
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # (two runs in one second apart)
    runs_dir = (a.cache / "ab" / "runs" / stamp).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[list[Row]]] = {"base": [], "head": []}
    for i in range(1, a.rounds + 1):
        # base first in odd rounds, head first in even ones: the order's own effect (a warm
        # page cache, a box speeding up or slowing down) falls on both alike
        order = list(trees.items()) if i % 2 else list(trees.items())[::-1]
        for role, (tree, label) in order:
            t0 = time.perf_counter()
            print(f"round {i}/{a.rounds}: {role} {label} ({tree}) ...", flush=True)
            runs[role].append(sub_run(tree, args, runs_dir / f"{role}-{i}.md"))
            print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    base, head = trees["base"][1], trees["head"][1]
    extra = f" plus the uncommitted files of {ROOT}" if a.head == WORKTREE else ""
    about = (
        f"Base {base} = {_describe(base_sha)}; head {head} = {_describe(head_sha)}{extra}; "
        f"{a.rounds} round(s), base first in odd rounds, head first in even ones. The runs' own"
        f" results: {runs_dir}"
    )
    text = section(argv, about, table(base, head, runs["base"], runs["head"]), base, head)
    print(text)
    if a.results:
        with a.results.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
