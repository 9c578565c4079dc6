"""The sites a tool's `--site` picks from the configuration, and lists in OUT of sites it lacks."""

from __future__ import annotations

from pathlib import Path

from cohort.config import Config, SiteConfig
from cohort.errors import ArgumentError
from cohort.tools.changes import read_candidates

# (a site this configuration lacks: another configuration's, or one taken out of this one)
NOT_SCREENED = "from an earlier run, a site this configuration does not screen"


def config_label(cfg: Config) -> str:
    """The configuration as a message names it: its file as given, or the built-in one."""
    return str(cfg.path) if cfg.path else "the built-in sample configuration"


def chosen_sites(cfg: Config, site_id: str | None, out: Path | None = None) -> list[SiteConfig]:
    """The sites of `cfg` that `--site site_id` selects (all of them without it).

    A site the configuration does not have is a mistake on the command line, not in the
    configuration: an ArgumentError (exit 2) naming it and the sites there are, and a site
    folder in `out` holding its lists (a site since taken out of the configuration), which
    is why it was asked for."""
    if site_id is None:
        return list(cfg.sites)
    sites = [s for s in cfg.sites if s.id == site_id]
    if sites:
        return sites
    ids = ", ".join(s.id for s in cfg.sites)
    held = ""
    if out is not None and site_id in {p.parent.name for p in out.glob("*/candidates.csv")}:
        held = f" ({out / site_id} holds site {site_id}'s lists {NOT_SCREENED})"
    raise ArgumentError(
        f"--site {site_id} is not a site of {config_label(cfg)}; its sites: {ids}{held}"
    )


def listed_elsewhere(cfg: Config, out: Path, pid: str) -> str:
    """Where `pid`, found in none of `cfg`'s sites, is listed in `out` all the same: the
    candidates.csv of a site the configuration lacks (left over from an earlier run), as the
    end of the "not in the local store" message; "" when none lists it."""
    ours = {s.id for s in cfg.sites}
    for path in sorted(out.glob("*/candidates.csv")):
        site = path.parent.name
        if site in ours:
            continue
        _, rows = read_candidates(path)
        if any(r["patient_id"] == pid for r in rows):
            return f"; {path} lists it: site {site}'s list {NOT_SCREENED}"
    return ""
