"""Researcher commands: `cohort mappings ...`, `cohort explain` and `cohort diff`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from cohort.cli_options import (
    AS_OF_TEXT,
    EPILOG,
    FilePath,
    config_option,
    mappings_config_option,
    mappings_option,
    out_option,
)
from cohort.errors import MappingError, shown_path
from cohort.safetext import printable


def echo(text: str) -> None:
    """Print a tool's text: data in it (names, values, codes, file names) may hold control or
    bidirectional characters, shown as escapes (an ANSI sequence would rewrite the terminal)."""
    click.echo(printable(text, keep="\n"))


# codes a ValueSet import finds mapped already, listed one by one up to this many (re-importing
# an updated 10,000-code set listed every one); the rest counted in one line
SHOWN_ALREADY = 20
OUT_HELP = "Output folder of the run (its store is OUT/.cohort/store.sqlite unless configured)."


def _cfg(config: Path | None, *, writing: bool = True) -> Any:
    """cli.load_cfg (imported here: cli imports this module). These commands read the store
    and spool a run writes, never write them: each says so (`writing=False`), so that a store
    or spool inside a source folder refuses their configuration only for `cohort run`."""
    from cohort.cli import load_cfg

    return load_cfg(config, writing=writing)


def _mappings_dir(mappings: Path | None, config: Path | None = None, **others: Any) -> Path:
    """`--mappings`, else the folder the configuration `--config` names (as `cohort run
    --config` loads it), else the shipped one; `--config` beside `--mappings` (or an option in
    `others` given a value) is a usage error."""
    from cohort.config import shipped

    if config is None:
        return mappings or shipped("mappings")
    given = {"mappings": mappings, **others}
    for name, value in given.items():
        if value is not None:
            what = _DECIDED.get(name, name)
            raise click.UsageError(
                f"'--{name}' cannot be used with '--config' (the configuration names {what})"
            )
    return Path(_cfg(config, writing=False).mappings_dir)


_DECIDED = {"mappings": "its mappings folder: [trial] mappings", "trial": "its trial: [trial] id"}


READS_CONFIG = (
    "{} the mappings folder `cohort run --config FILE` loads (its [trial] mappings, else the "
    "shipped one)."
)


@click.group(epilog=EPILOG)
def mappings() -> None:
    """Check, measure and extend the mapping files (codes, names, units) researchers edit."""


@mappings.command(epilog=EPILOG)
@mappings_option
@click.option("--trial", help="Check only mappings/trials/<ID>.toml (default: every trial file).")
@mappings_config_option(
    "check exactly what `cohort run --config FILE` loads: the mappings folder ([trial] "
    "mappings, else the shipped one), the criteria file of its [trial] id only, and its rows "
    "with verified=N when it sets use_unverified.",
    also=" or --trial",
)
def check(mappings_dir: Path | None, trial: str | None, config: Path | None) -> None:
    """Validate every mapping and criteria file; errors and warnings name file, line and key.

    Exits 4 when there are errors, 0 when there are only warnings (3 for a configuration
    error with --config, as `cohort run`).
    """
    from cohort.tools.check import check_mappings

    root = _mappings_dir(mappings_dir, config, trial=trial)
    unverified = False
    if config is not None:
        cfg = _cfg(config, writing=False)
        cfg.trial_file()  # a [trial] id without a criteria file: the run's ConfigError
        trial, unverified = cfg.trial_id, cfg.use_unverified
    report = check_mappings(root, trial, use_unverified=unverified)
    f = report.findings
    for msg in f.errors:
        echo(f"error: {msg}")
    for msg in f.warnings:
        echo(f"warning: {msg}")
    for msg in f.notes:
        echo(f"note: {msg}")
    human = f" ({report.human_version})" if report.human_version else ""
    echo(  # (which folder: a researcher with two copies, or a --config, may not know)
        f"checked {shown_path(root)}: mapping version {report.version}{human}: "
        f"{report.rows} concept rows "
        f"({report.unverified} unverified), {report.routes} route codes, "
        f"trials {', '.join(report.trials) or '-'}; "
        f"{len(f.errors)} error(s), {len(f.warnings)} warning(s)"
    )
    if f.errors:
        raise MappingError(f"{len(f.errors)} error(s) in the mapping files (listed above)")


@mappings.command(epilog=EPILOG)
@config_option
@click.option("--site", help="Only this site (default: every site of the configuration).")
@out_option(OUT_HELP + " coverage.csv is written there.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="Rows per table shown on the terminal (the CSV has all).",
)
def coverage(config: Path | None, site: str | None, out: Path, limit: int) -> None:
    """Codes in the stored data that no concept maps, ranked by screened patients.

    Also mapped codes of the trial's concepts never seen in the data and values whose units
    did not convert.
    Reads the local store of a previous `cohort run`; writes OUT/coverage.csv.
    """
    from cohort.tools.coverage import coverage_report, render_terminal, write_csv

    cfg = _cfg(config, writing=False)
    report = coverage_report(cfg, out, site)
    echo(render_terminal(report, limit))
    target = out / "coverage.csv"
    # OUT's lock only for the write (milliseconds): held while the store is read (long on a
    # large one) it would make a nightly run starting meanwhile exit 10
    with _writing(out, target):
        path = write_csv(report, target)
    echo(f"mapping version {report.version} -> {path}")


@contextmanager
def _writing(out: Path, target: Path) -> Iterator[None]:
    """OUT made (0700, as `cohort run` makes it) and locked to write `target` into it."""
    from cohort.atomic import ensure_dir
    from cohort.errors import OutputError
    from cohort.runlock import out_lock, why

    try:
        ensure_dir(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {why(exc)}") from None
    with out_lock(out, writing=target):
        yield


@mappings.command("import-valueset", epilog=EPILOG)
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--concept", required=True, help="Concept name the codes belong to.")
@mappings_option
@click.option(
    "--file",
    "target",
    type=FilePath(path_type=Path),  # (blank: the working directory, "concept file not found")
    help="Concept CSV to append to (relative to the mappings folder allowed). "
    "Default: the file already holding the concept, else concepts/local.csv.",
)
@click.option("--ingredient", default="", help="Ingredient column value (medications.csv only).")
@click.option("--verified", is_flag=True, help="Mark the rows verified=Y (default N).")
@click.option(
    "--new-concept",
    is_flag=True,
    help="The concept is new on purpose (else a concept no row or criteria file names is "
    "refused as a likely typo, exit 4).",
)
@mappings_config_option(READS_CONFIG.format("add to"))
def import_valueset(
    file: Path,
    concept: str,
    mappings_dir: Path | None,
    target: Path | None,
    ingredient: str,
    verified: bool,
    new_concept: bool,
    config: Path | None,
) -> None:
    """Add the codes of a FHIR ValueSet (expansion or compose) to a concept file.

    FILE: the ValueSet's JSON, or a Bundle holding one. Codes the concept maps or excludes
    already are skipped and listed (of those mapped already, the first 20 and a count), a code
    of another concept is added and noted; `source`
    keeps the ValueSet url, version and title. The concept must be one the mapping rows or
    criteria files name, unless --new-concept.
    """
    from cohort.tools.valueset import import_valueset as run_import

    res = run_import(
        file,
        concept,
        _mappings_dir(mappings_dir, config),
        target,
        ingredient=ingredient,
        verified=verified,
        new_concept=new_concept,
    )
    for msg in res.skipped + res.already[:SHOWN_ALREADY]:
        echo(f"skipped: {msg}")
    if len(res.already) > SHOWN_ALREADY:
        more = len(res.already) - SHOWN_ALREADY
        echo(f"skipped: ... and {more} more code(s) already mapped to '{concept}'")
    for msg in res.notes:
        echo(f"note: {msg}")
    again = (
        f" --config {config}" if config else f" --mappings {mappings_dir}" if mappings_dir else ""
    )
    echo(
        f"added {res.added} row(s) for '{concept}' to {res.path} "
        f"({len(res.skipped) + len(res.already)} skipped); run `cohort mappings check{again}`"
    )


@mappings.command("expand-rxnorm", epilog=EPILOG)
@click.option("--concept", required=True, help="Medication concept whose ingredients to expand.")
@mappings_option
@click.option(
    "--timeout",
    type=click.FloatRange(0, 600, min_open=True),
    default=20.0,
    show_default=True,
    help="Seconds to wait for RxNav per request.",
)
@mappings_config_option(READS_CONFIG.format("expand in"))
def expand_rxnorm(
    concept: str, mappings_dir: Path | None, timeout: float, config: Path | None
) -> None:
    """Append RxNorm products (SCD, SBD, packs) of the concept's ingredients from NLM RxNav.

    Needs the internet; offline it stops with one line (exit 6).
    """
    from cohort.tools.rxnav import expand_rxnorm as run_expand

    res = run_expand(concept, _mappings_dir(mappings_dir, config), timeout=timeout)
    for msg in res.skipped:  # (products.csv maps them already, or import-valueset can)
        echo(f"skipped: {msg}: not sent to RxNav")
    for msg in res.empty:
        echo(
            f"note: {msg}: RxNav lists no products (a retired RxCUI, or no ingredient? "
            "look it up on RxNav)"
        )
    echo(
        f"added {res.added} product(s) to {res.path} from {res.asked} ingredient "
        f"RxCUI(s); {res.known} already present"
    )


@click.command(epilog=EPILOG)
@click.argument("patient_id")
@config_option
@click.option("--site", help="Site of the patient (default: the first site holding the id).")
@click.option(
    "--as-of",
    "as_of",
    help=f"Screening reference date YYYY-MM-DD ({AS_OF_TEXT}). Default: the as-of date of "
    "the lists in OUT (its run.json: the last run's, or after a failed run the earlier lists "
    "it kept), else today.",
)
@out_option(OUT_HELP)
def explain(
    patient_id: str, config: Path | None, site: str | None, as_of: str | None, out: Path
) -> None:
    """Every criterion for one patient: status, rule, evidence used and ignored (and why).

    Prints patient data to this terminal only (for an authorised user); nothing is logged.
    An id that starts with "-" goes after `--`: cohort explain --out OUT -- -p1
    """
    from cohort.cli import parse_as_of
    from cohort.runlock import out_read_lock
    from cohort.tools.explain import explain_patient

    cfg = _cfg(config, writing=False)
    day = parse_as_of(as_of) if as_of is not None else None
    # run.json's as-of date and the store, read while no run replaces them (its lock, shared);
    # printed after letting go: a terminal paging it never holds up the nightly run
    with out_read_lock(out):
        text = explain_patient(cfg, out, patient_id, day, site)
    echo(text)


@click.command(epilog=EPILOG)
@click.argument("out_a", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("out_b", type=click.Path(path_type=Path, exists=True, file_okay=False))
def diff(out_a: Path, out_b: Path) -> None:
    """Compare two output folders (e.g. before and after a mapping edit), per site.

    Patients added or removed, tier, eligible_from and to_confirm changes, criterion cell
    changes, and criteria present in one run only.
    """
    from cohort.runlock import out_read_lock
    from cohort.tools.diff import diff_outputs, render

    # each folder's lists and run.json read while no run replaces them (its lock, shared)
    with out_read_lock(out_a), out_read_lock(out_b):
        found = diff_outputs(out_a, out_b)
    echo(render(found))


def register(cli: click.Group) -> None:
    """Add the researcher commands to the `cohort` group."""
    cli.add_command(mappings)
    cli.add_command(explain)
    cli.add_command(diff)
