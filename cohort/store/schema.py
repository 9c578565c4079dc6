"""The store's SQLite schema and the statements shared by its writers."""

__all__ = [
    "CARRIED_MARK",
    "CENSUS_MARK",
    "COUNTS_MARK",
    "FHIR_MARK",
    "FILES_COUNT_MARK",
    "FILES_MARK",
    "INSERT",
    "LATEST_MARK",
    "MEDICATION_MARK",
    "PATIENT_INDEX",
    "SCHEMA",
    "SET_MARK",
    "SOURCE_MARK",
]

# (dropped during a first load and built at its end: Store.first_load)
PATIENT_INDEX = "CREATE INDEX IF NOT EXISTS resources_patient ON resources (site, patient, type)"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS resources (
    site TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version TEXT,
    last_updated TEXT,
    patient TEXT,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    hash TEXT NOT NULL,
    json BLOB NOT NULL,
    PRIMARY KEY (site, type, id)
);
{PATIENT_INDEX};
CREATE TABLE IF NOT EXISTS marks (
    site TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (site, key)
);
-- Records no criterion reads (cohort.extract.census), summarised instead of stored whole:
-- record dates per patient (for last_seen) and one row per distinct code (for coverage).
-- Rows carry a generation; readers use the one named by the mark 'census-gen:<source>', which a
-- read sets only once it is complete, so a crashed read never shows half a census.
CREATE TABLE IF NOT EXISTS side_dates (
    site TEXT NOT NULL,
    source TEXT NOT NULL,
    gen INTEGER NOT NULL,
    patient TEXT NOT NULL,
    dates TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS side_dates_patient ON side_dates (site, patient);
CREATE TABLE IF NOT EXISTS census (
    site TEXT NOT NULL,
    source TEXT NOT NULL,
    gen INTEGER NOT NULL,
    rtype TEXT NOT NULL,
    codes TEXT NOT NULL,
    text TEXT NOT NULL,
    records INTEGER NOT NULL,
    patients TEXT NOT NULL,
    sample TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    record TEXT NOT NULL
);
"""

SET_MARK = (
    "INSERT INTO marks (site, key, value) VALUES (?, ?, ?)"
    " ON CONFLICT (site, key) DO UPDATE SET value=excluded.value"
)
# mark key prefix naming a source's current census generation
CENSUS_MARK = "census-gen:"
# mark key prefix of a file source's last complete read: its stamp, a newline, its report
FILES_MARK = "files-read:"
# mark key of a site's last complete file read: records read (kept, summarised or rejected) by type
FILES_COUNT_MARK = "files-count"
# mark key of the source (folder, file or server URL) of a site's last complete read: a snapshot
# read of another source is told apart from an export that lost records (cohort.ingest)
SOURCE_MARK = "source"
# mark key prefix of a FHIR server pull's sync positions (cohort.source.fhir.puller)
FHIR_MARK = "fhir:"
# side_dates token prefix of a summarised medication record's start ("m" alone: undated)
MEDICATION_MARK = "m"
# side_dates text: after it, the patient's summarised records per type ("Observation=12"),
# summed over a generation's rows; a count carried over a damaged read (carry_census) is marked
# CARRIED_MARK and taken as a floor ("~Observation=12"). A row written before counts has none.
COUNTS_MARK = ";"
CARRIED_MARK = "~"
# side_dates text, among the counts: the date of the patient's latest summarised record of a type
# ("Observation@2026-10-02"; the latest over a generation's rows). A row written before these
# has none (no date is shown); a reader from before them skips them (no "=": no count).
LATEST_MARK = "@"

# A resource row, bound by `rows.bound`: NULLIF turns the 0 it binds for None into NULL
INSERT = (
    "{verb} INTO resources"
    " (site, type, id, version, last_updated, patient, source, origin, hash, json)"
    " VALUES (?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), ?, ?, ?, ?)"
)
