"""Options shared by several commands (one definition each), and the exit-code epilog."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from cohort.errors import EXIT_CODES

FC = TypeVar("FC", bound=Callable[..., Any])

EPILOG = (
    "Exit codes: "
    + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items())
    + "; 129 / 130 / 143 stopped by SIGHUP (its terminal closed) / Ctrl-C (SIGINT) / SIGTERM"
    " (previous outputs kept, except for the sites the message names as replaced)"
)


class FolderPath(click.Path):
    """A folder option's path, refused when blank: Path("") is the working directory, and
    `--out "$OUT"` with the variable unset wrote the lists (PHI) and the store there
    (`--mappings`: checked it as the mappings folder)."""

    names = "folder"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"'{value}' names no {self.names}", param, ctx)
        return super().convert(value, param, ctx)


class FilePath(FolderPath):
    """A file option's path, refused when blank: `--config ""` read the working directory as
    the configuration ("cannot read config: Is a directory", exit 3, naming no option)."""

    names = "file"


# (click's Path checks a file's read permission by default, and refused an unreadable config as
# a usage error, exit 2 with its usage text: `load_config` says so, one line, exit 3)
CONFIG_PATH = FilePath(path_type=Path, readable=False)

config_option = click.option(
    "--config",
    type=CONFIG_PATH,
    help="Run configuration (TOML). Default: the shipped sample data for the seed sites.",
)
# Screening dates accepted: windows and ages are reckoned back and forth from it, and a date
# near the calendar's ends (0001-01-01, 9999-12-31) crashed the evaluation (OverflowError)
AS_OF_RANGE = (date(1900, 1, 1), date(2999, 12, 31))
AS_OF_TEXT = f"{AS_OF_RANGE[0]} to {AS_OF_RANGE[1]}"
AS_OF_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # the only form the help allows

as_of_option = click.option(
    "--as-of",
    "as_of",
    help=f"Screening reference date YYYY-MM-DD ({AS_OF_TEXT}). Default: today.",
)


def mappings_config_option(text: str, also: str = "") -> Callable[[FC], FC]:
    """--config of a `cohort mappings` command that also takes --mappings (not both; nor
    `also`, another option the configuration decides)."""
    return click.option(
        "--config",
        type=CONFIG_PATH,
        help=f"Run configuration (TOML): {text} Not with --mappings{also}.",
    )


OUT_PATH = FolderPath(path_type=Path)

mappings_option = click.option(
    "--mappings",
    "mappings_dir",
    # (blank: the working directory was checked as the mappings folder, "7 error(s)", exit 4)
    type=FolderPath(path_type=Path),
    help="Mappings folder. Default: the shipped one.",
)


def out_option(text: str) -> Callable[[FC], FC]:
    """--out with the given help text (each command says what it writes there)."""
    return click.option("--out", type=OUT_PATH, default=Path("out"), show_default=True, help=text)
