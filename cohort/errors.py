"""One small exception tree; each error carries the CLI exit code it maps to."""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable
from pathlib import Path

# The signals the CLI turns into a KeyboardInterrupt whose text is their name
# (cli.stop_on_signals): systemd stopping the unit, `kill`; a manual run's terminal closing
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def interruption(exc: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped a run, for its one line and run.json, and its exit code: 128 + the
    signal's number, as a shell reports it (SIGHUP 129, Ctrl-C 130, SIGTERM 143)."""
    for sig in STOP_SIGNALS:
        if str(exc) == sig.name:
            return sig.name, 128 + sig
    return "Ctrl-C / SIGINT", 128 + signal.SIGINT


def cwd_relative(full: Path) -> str:
    """`full` (an absolute path) as messages name it: relative to the working folder when under
    it (`mappings/units.csv` run from the project), else absolute."""
    cwd = Path.cwd()
    if cwd == Path(cwd.anchor):
        # cron's and systemd's working folder: `srv/maps/labs.csv` read as a path from nowhere
        return full.as_posix()
    try:
        return full.relative_to(cwd).as_posix()
    except ValueError:
        return full.as_posix()


def shown_path(path: Path) -> str:
    """A file under its folder as messages name it (cwd_relative): the folder resolved, not the
    file, so a linked file is named where its folder has it; the same file reads the same in
    every message, however the path was given."""
    return cwd_relative(path.parent.resolve() / path.name)


class CohortError(Exception):
    """Base of every error the CLI turns into a one-line message."""

    exit_code = 1


class ArgumentError(CohortError):
    """A command-line argument names what is not there (`cohort explain`'s patient id not in
    the store, a `--site` not in the configuration): the command line is wrong, exit 2 as for
    a usage error (it was 5, "data source cannot be read", and 3, "configuration error",
    which send whoever is alerted to the source or the configuration)."""

    exit_code = 2


class ConfigError(CohortError):
    """The run configuration (TOML) is missing, malformed or inconsistent."""

    exit_code = 3


class MappingError(CohortError):
    """A mapping or criteria file is invalid; the message names file, line and key."""

    exit_code = 4


class SourceError(CohortError):
    """A data source (directory, file) cannot be read at all."""

    exit_code = 5


class ServerError(CohortError):
    """A FHIR server failed or answered with an error we cannot recover from."""

    exit_code = 6


class AuthError(ServerError):
    """Authentication with a FHIR server failed (bad credentials, token endpoint)."""

    exit_code = 7


class StoreError(CohortError):
    """The local store cannot be opened or written."""

    exit_code = 8


class OutputError(CohortError):
    """Outputs cannot be written; previous good outputs are left in place."""

    exit_code = 9


class LockedError(CohortError):
    """Another run with the same configuration (store), or into the same output folder, is in
    progress."""

    exit_code = 10


class ReportError(CohortError):
    """The outputs were written (renamed into place), but OUT/run.json, written last, could not
    be: the previous outputs were not kept, so no exit 9 (and the previous run.json is gone)."""

    exit_code = 11


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (a bug: please report it)",
    2: (
        "command-line usage error (also: a patient id cohort explain does not find, a --site"
        " the configuration does not have)"
    ),
    3: "configuration error",
    4: "mapping or criteria file error",
    5: "data source cannot be read",
    6: "FHIR server error",
    7: "FHIR server authentication error",
    8: "local store error",
    9: "output cannot be written (previous outputs kept, except for the sites the message names)",
    10: (
        "another run of this configuration, or into this output folder, is in progress (or a"
        " reader held the folder over 60 s; for explain, diff, coverage: a run is writing it)"
    ),
    11: "outputs written, but run.json cannot be written",
}


def closest(word: str, known: Iterable[str]) -> str | None:
    """The one of `known` that `did_you_mean` names for `word`, or None."""
    near = difflib.get_close_matches(word, list(known), n=1)
    return near[0] if near else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """ "did you mean 'x'?" for the closest of `known` to a misspelt `word`, else "" (the
    hint every located error of a configuration, mapping or criteria file gives)."""
    near = closest(word, known)
    return f"did you mean '{near}'?" if near else ""


# what a config value of each type must be, as its error says ("key 'x' must be a number")
KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
