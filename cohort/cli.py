"""Command line: parse arguments, call the library, print one line per outcome."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
import traceback
from datetime import date
from pathlib import Path
from typing import Any

import click

from cohort import __version__
from cohort.asof import today
from cohort.cli_options import (
    AS_OF_FORM,
    AS_OF_RANGE,
    AS_OF_TEXT,
    EPILOG,
    OUT_PATH,
    as_of_option,
    config_option,
    out_option,
)
from cohort.errors import STOP_SIGNALS, CohortError, OutputError, interruption
from cohort.safetext import printable, without_queries


class CohortGroup(click.Group):
    """Turns a CohortError, or an interruption (Ctrl-C, SIGTERM, SIGHUP), into one line on
    stderr and its documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CohortError as exc:
            # (a file name or a server's answer in it may hold control characters)
            click.echo(f"cohort: error: {printable(_said(exc, str(exc)))}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            # Ctrl-C, SIGTERM or SIGHUP (`stop_on_signals`): click's "Aborted!" exited 1, which
            # the exit codes call a bug; 128 + the signal's number, as a shell reports it
            why, code = interruption(exc)
            # (a terminal that hung up refuses the line, EIO: run.json has said why already)
            with contextlib.suppress(OSError):
                line = printable(_said(exc, f"interrupted ({why})"))
                click.echo(f"cohort: error: {line}", err=True)
            ctx.exit(code)


def _said(exc: BaseException, line: str) -> str:
    """The error's one line and its notes (a run stopped part-way through replacing the lists
    adds which sites' lists are its own: `report.run.renamed_lists`)."""
    return "; ".join([line, *getattr(exc, "__notes__", [])])


def stop_on_signals() -> None:
    """SIGTERM (systemd stopping the unit, `kill`) and SIGHUP (the terminal of a manual run
    closed) stop a run the way Ctrl-C does: run.json says so and the previous outputs stay (by
    default the process ended with neither). SIGHUP ignored by whatever started the run
    (`nohup cohort run ... &`: the terminal may close) stays ignored."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        if sig != signal.SIGHUP or signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, stop)


class SafeFormatter(logging.Formatter):
    """Log lines that carry no secret and cannot rewrite a terminal or forge a line.

    The libraries' own records (urllib3 logs every request at debug level, with its query:
    a Bulk file URL signed with a token, `?X-Amz-Signature=...`) lose the query strings of the
    URLs and paths in them; every line has its control and bidirectional-control characters
    (from a file name, a server's header) shown as escapes."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not record.name.startswith("cohort"):
            text = without_queries(text)
        return printable(text, keep="\n" if record.exc_info or record.stack_info else "")


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True
    )


def parse_as_of(value: str | None) -> date:
    """The --as-of date of every command taking one (run, explain, sample), today when not
    given; a usage error (exit 2) naming the value unless it is YYYY-MM-DD in AS_OF_RANGE."""
    if value is None:  # (not "": `--as-of "$DAY"` with the variable unset is a slip, not today)
        return today()
    hint = "'--as-of'"
    try:
        # (Python 3.11's fromisoformat also reads 2026-W48-7 and 20270106, which the help does
        # not allow: a week date ran as of a day nobody wrote)
        if not AS_OF_FORM.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date (YYYY-MM-DD)", param_hint=hint) from None
    first, last = AS_OF_RANGE
    if not first <= day <= last:
        raise click.BadParameter(f"'{value}' is outside {first} .. {last}", param_hint=hint)
    return day


@click.group(cls=CohortGroup, epilog=EPILOG)
@click.version_option(__version__, prog_name="cohort")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="How much to log (to stderr). Logs never contain PHI or secrets.",
)
def cli(log_level: str) -> None:
    """Find clinical-trial candidates in FHIR R4 data, with evidence, one CSV per site."""
    _setup_logging(log_level)


def load_cfg(config: Path | None, *, writing: bool = True) -> Any:
    """`--config`'s configuration, else the shipped sample one; `writing=False` only for a
    command that writes neither the store nor a Bulk spool (load_config)."""
    from cohort.config import default_config, load_config

    return load_config(config, writing=writing) if config else default_config()


@cli.command(epilog=EPILOG)
@config_option
@as_of_option
@out_option("Output folder (OUT/<site>/candidates.csv, OUT/run.json).")
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Ignore sync marks: pull everything again from servers (dropping the stored records "
    "a server no longer has, within [run] max_snapshot_removal), try the server quirks "
    "remembered (a refused _count, Observation category, combo-code, _include, _lastUpdated, "
    "Bulk _type or _typeFilter) again, and re-read file sources "
    "even when unchanged since their last complete read.",
)
@click.option(
    "--no-phi",
    is_flag=True,
    help="Leave identifying columns out of the CSV, free-text evidence values (and the "
    "reasons quoting them) out of the CSVs, and patient lists out of the HTML (counts only, "
    "small ones withheld).",
)
def run(
    config: Path | None, as_of: str | None, out: Path, full_refresh: bool, no_phi: bool
) -> None:
    """Run the whole job: read sources, screen, rank, write the candidate lists."""
    from cohort.errors import ConfigError
    from cohort.report.unstarted import BUILT_IN, config_failed
    from cohort.runner import run as run_job
    from cohort.tools.changes import config_name

    day = parse_as_of(as_of)
    try:
        cfg = load_cfg(config)
    except ConfigError as exc:
        # OUT/run.json says so as it does for every other failure (it said last night's
        # "success"); an OUT not made yet is not made for it
        config_failed(out, config_name(str(config)) if config else BUILT_IN, day, exc)
        raise
    report = run_job(cfg, day, out, full_refresh=full_refresh, phi=not no_phi)
    for sid, site in report["sites"].items():
        tiers = site.get("tiers", {})
        click.echo(
            f"{sid}: {site.get('screened', 0)} screened, {tiers.get('likely', 0)} likely, "
            f"{tiers.get('possible', 0)} possible, {tiers.get('excluded', 0)} excluded"
            f" -> {out / sid / 'candidates.csv'}"
        )


@cli.command(epilog=EPILOG)
@click.option(
    "--out",
    type=OUT_PATH,
    required=True,
    help="Folder to write the synthetic data into.",
)
@click.option(
    "--patients",
    type=click.IntRange(1, 1_000_000),
    default=60,
    show_default=True,
    help="Screened (SLE) patients to generate.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Random seed (same seed, same files)."
)
@click.option(
    "--as-of",
    "as_of",
    default="2026-11-25",
    show_default=True,
    help=f"Reference date the scenarios are built around ({AS_OF_TEXT}).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["bundles", "ndjson"]),
    default="bundles",
    show_default=True,
    help="Transaction bundles or Bulk NDJSON.",
)
@click.option("--site", default="uci", show_default=True, help="Site id used in patient ids.")
def sample(out: Path, patients: int, seed: int, as_of: str, fmt: str, site: str) -> None:
    """Generate a deterministic synthetic population (FHIR R4) for demos, tests and benchmarks."""
    from cohort.samples import generate

    day = parse_as_of(as_of)
    try:
        made = generate(out, patients=patients, seed=seed, as_of=day, site=site, fmt=fmt)  # type: ignore[arg-type]
    except OSError as exc:  # (a file in the folder's place, a folder not writable)
        raise OutputError(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None
    click.echo(f"wrote {len(made)} patients to {out}")


def internal_error(exc: BaseException) -> str:
    """The traceback of an unexpected error without the exceptions' messages: a message may
    quote input (`ValueError: invalid literal for int(): 'Quixotica'`, a library's error
    holding a URL with its query) and stderr goes to the service's log. Frames (file, line,
    function, source line) and exception types are kept: enough to find the bug."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not seen for seen in chain):
        chain.append(e)
        e = (
            e.__cause__
            if e.__cause__ is not None
            else (None if e.__suppress_context__ else e.__context__)
        )
    parts: list[str] = []
    for i, e in enumerate(reversed(chain)):
        if i:
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if e.__cause__ is not None
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        kind = type(e)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else (f"{kind.__module__}.{kind.__qualname__}")
        )
        parts.append("Traceback (most recent call last):\n")
        parts += traceback.format_tb(e.__traceback__)
        parts.append(f"{name} (message left out: it may quote patient data)\n")
    parts.append(f"cohort: internal error ({type(exc).__name__}); this is a bug\n")
    return printable("".join(parts), keep="\n")


def _register_optional() -> None:
    """Commands that live in their own modules (mappings tools, explain, diff)."""
    try:
        from cohort import cli_tools  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    cli_tools.register(cli)  # type: ignore[attr-defined,unused-ignore]


_register_optional()


def main() -> None:
    stop_on_signals()
    # An ignored SIGCHLD survives exec (a launcher's): the kernel would then reap the run's
    # worker processes as they die, and the pid of one that died (killed for memory) could be
    # another process's by the time the run kills its workers by pid. The run reaps its own.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        cli(prog_name="cohort")
    except Exception as exc:  # a bug or an unwrapped library error (click passes them on)
        sys.stderr.write(internal_error(exc))
        sys.exit(1)
    finally:
        # The process ends here: spare the interpreter's final collection a walk over the
        # whole heap (~0.3 s after a 10k run); nothing is left to finalise that needs it.
        gc.freeze()
        # A KeyboardInterrupt (Ctrl-C, or SIGTERM: stop_on_signals) raised while a string was
        # being exec'd (e.g. a dataclass's methods defined by a module imported lazily) marks
        # it "unhandled" for good, however it was caught: under `python -m cohort` CPython
        # (3.11, 3.12) then ends the process with SIGINT at exit, -2, in place of the 143 said
        # above. Every string exec clears that mark first.
        exec("None")  # noqa: S102
