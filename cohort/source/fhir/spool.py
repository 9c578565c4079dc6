"""A Bulk export's spool folder (PHI, 0700/0600): its files downloaded resumably, its job ended."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests

from cohort.atomic import ensure_dir
from cohort.errors import ServerError

from .answer import content_length
from .links import url_host
from .puller import Puller


class JobGone(ServerError):
    """The export job cannot be finished: the server says it failed or no longer has it (or its
    files), or its manifest is unusable. Resuming it would fail every night: a new one is due."""


def spool_dir(p: Puller) -> Path:
    """The site's spool folder, 0700 whatever the umask and whoever made it before (its files
    are PHI, and a killed run leaves them to be resumed)."""
    root = Path(p.s.spool_dir) if p.s.spool_dir else None
    if root is None:
        store_path = getattr(p.store, "path", None)
        base = Path(store_path).parent if store_path else Path(tempfile.gettempdir())
        root = base / "bulk-spool"
    d = root / p.site
    try:
        ensure_dir(d)  # missing folders 0700
        os.chmod(d, 0o700)  # (one that was there before)
    except OSError as e:
        raise ServerError(f"cannot use the bulk spool folder {d}: {e.strerror}") from None
    return d


def _private(path: Path, mode: str = "wb") -> IO[bytes]:
    """`path` opened for writing ("wb" or "ab"), 0600 whatever the umask: spooled NDJSON is
    PHI (job.json, which names the job's status URL, is written 0600 by write_atomic)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, mode)


def absolute_urls(manifest: dict[str, Any], status_url: str) -> tuple[dict[str, Any], bool]:
    """The manifest with its files' relative URLs resolved against the status URL, and whether
    one was relative (the IG requires absolute ones; IBM FHIR Server writes relative ones).
    A resolved URL is then checked like any other (host, requiresAccessToken) by download."""
    relative = False
    resolved = dict(manifest)
    for kind in ("output", "error"):
        items = manifest.get(kind)
        if not isinstance(items, list):
            continue  # (download refuses it)
        resolved[kind] = [dict(out) if isinstance(out, dict) else out for out in items]
        for out in resolved[kind]:
            url = out.get("url") if isinstance(out, dict) else None
            if not isinstance(url, str) or not url:
                continue
            try:
                if urlsplit(url).scheme:
                    continue
                out["url"] = urljoin(status_url, url)
            except ValueError:  # e.g. "//[x": left for download to refuse as no http(s) URL
                continue
            relative = True
    return resolved, relative


def spool_name(kind: str, i: int, rtype: str) -> str:
    """The spool file of the manifest's `kind` ("output" or "error") item `i`, of type `rtype`."""
    return f"{'error-' if kind == 'error' else ''}{i:04d}.{rtype}.ndjson"


def counts(manifest: dict[str, Any]) -> dict[str, int]:
    """The spool file of each output item -> the number of records the manifest says it holds
    (the Bulk Data IG's optional `count`): a 0-byte download of one counted 0 is whole, not one
    that died before its first byte, and one holding fewer was not served whole (ndjson.load)."""
    items = manifest.get("output")
    return {
        spool_name("output", i, str(out.get("type", ""))): out["count"]
        for i, out in enumerate(items if isinstance(items, list) else [])
        # (a number only: not "0", nor false, which Python takes for 0)
        if isinstance(out, dict) and type(out.get("count")) is int and out["count"] >= 0
    }


def _range_start(r: requests.Response) -> int | None:
    """Where a 206's Content-Range says its bytes start, or None when it says no such thing."""
    unit, _, span = (r.headers.get("Content-Range") or "").strip().partition(" ")
    start = span.partition("-")[0].strip()
    return int(start) if unit.lower() == "bytes" and start.isdigit() else None


def download(
    p: Puller,
    manifest: dict[str, Any],
    spool: Path,
    kind: str = "output",
    asked: set[str] | None = None,
) -> list[tuple[str, Path]]:
    """Download every `kind` ("output" or "error") file, but for an output file of a type not in
    `asked` (the kick-off's, a run.json warning); completed files are skipped and partial ones
    resumed (Range). Credentials go to another host only if the manifest says
    `requiresAccessToken: true`."""
    use_token = manifest.get("requiresAccessToken") is True
    items = manifest.get(kind) or []
    if not isinstance(items, list):
        raise JobGone(f"bulk manifest: '{kind}' is not a list")
    files: list[tuple[str, Path]] = []
    unasked: dict[str, int] = {}
    for i, out in enumerate(items):
        rtype = str(out.get("type", "")) if isinstance(out, dict) else ""
        url = out.get("url") if isinstance(out, dict) else None
        if not rtype.isalpha() or not isinstance(url, str) or not url:
            # (skipping it let the mark pass records never downloaded)
            raise JobGone(f"bulk manifest: {kind} {i} has no type or no url")
        if asked is not None and rtype not in asked:
            # the IG: the output "SHALL be filtered" to `_type`; records of another type were
            # stored, and no full refresh removed them (it sweeps the types exported)
            unasked[rtype] = unasked.get(rtype, 0) + 1
            continue
        final = spool / spool_name(kind, i, rtype)
        files.append((rtype, final))
        if final.exists():
            continue
        _sized_mark(final).unlink(missing_ok=True)  # (of an earlier download of the name)
        host = url_host(url)
        if host is None:
            raise JobGone(f"bulk manifest: {kind} {i} ({rtype}) has no http(s) URL")
        same_host = p.client.same_host(url)
        if same_host:
            url = p.client.url(url)  # (an http:// link of ours is followed over https)
        part = final.with_name(final.name + ".part")
        if _fetch(p, url, part, (kind, i, rtype), use_token or same_host):
            _sized_mark(final).touch()
        part.rename(final)
    for rtype, n in sorted(unasked.items()):
        p.report.warn(
            f"bulk: the export listed {n} file(s) of {rtype[:40]}, a type not asked for;"
            " not downloaded"
        )
    return files


def _sized_mark(final: Path) -> Path:
    """The file beside a downloaded spool file saying its last answer's bytes were all those
    its Content-Length announced (fresh() removes it with the spool files)."""
    return final.with_name(final.name + ".sized")


def served_whole(final: Path) -> bool:
    """Whether a downloaded file is all the server sent as its whole: the last answer's bytes
    matched the Content-Length it announced (a resumed one's Range answer started where the
    part before it ended: _get), and the file ends at a line's end. Such a file holding fewer
    records than the manifest's optional `count` is taken as whole: that count is the server's
    error. A body with no Content-Length (its end may be a dropped connection's) is not."""
    if not _sized_mark(final).exists():
        return False
    try:
        with final.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except OSError:  # (an empty file: no last line)
        return False


def _fetch(p: Puller, url: str, part: Path, item: tuple[str, int, str], auth: bool) -> bool:
    """Download one manifest `item` (kind, index, type) to `part`, resuming what it holds: a
    connection lost mid-file is resumed (Range) in the run, again and again while the file
    grows, up to max_retries attempts in a row that add nothing; then the run fails and the
    .part file stays for the next run to resume. True when the last answer's bytes were the
    Content-Length it announced (gzip: the bytes sent, not those written)."""
    best, stalls = part.stat().st_size if part.exists() else 0, 0
    while True:
        r, have = _get(p, url, part, item, auth)
        n = 0
        try:
            with _private(part, "ab" if r.status_code == 206 and have else "wb") as f:
                for chunk in r.iter_content(1 << 16):
                    f.write(chunk)
                    n += len(chunk)
            length = content_length(r)
            tell = getattr(r.raw, "tell", None)
            sized = length is not None and callable(tell) and tell() == length
        except (requests.RequestException, OSError) as e:
            size = part.stat().st_size if part.exists() else 0
            stalls = 0 if size > best else stalls + 1
            best = max(best, size)
            # (a RequestException is an OSError too: a disk error is one that is not)
            if not isinstance(e, requests.RequestException) or stalls > p.s.max_retries:
                why = f"bulk download of {item[2]} interrupted: {type(e).__name__}"
                raise ServerError(why) from None
            wait = p.client.backoff(stalls)
            p.client.stats.add(item[2], retries=1, waits=wait)
            p.client.sleep(wait)
            continue
        finally:
            r.close()
        p.client.stats.add(item[2], nbytes=n if content_length(r) is None else 0)
        return sized


def _get(
    p: Puller, url: str, part: Path, item: tuple[str, int, str], auth: bool
) -> tuple[requests.Response, int]:
    """The answer to a request for `item`'s file from the end of `part` (Range), and that
    offset: 0 when the file is to be fetched whole."""
    kind, i, rtype = item
    have = part.stat().st_size if part.exists() else 0
    while True:
        headers = {"Accept": "application/fhir+ndjson", "Accept-Encoding": "gzip"}
        if have:
            headers.update({"Range": f"bytes={have}-", "Accept-Encoding": "identity"})
        try:
            r = p.client.request(
                "GET",
                url,
                key=rtype,
                headers=headers,
                stream=True,
                ok=(200, 206),
                auth=auth,
                foreign=True,
            )
        except ServerError as e:
            status = getattr(e, "status", 0)
            if status == 416 and have:
                # nothing left after the .part (cut after its last byte), or the file
                # changed: fetched whole (was refused, the same way, every later night)
                part.unlink()
                have = 0
                continue
            if status in (404, 410) or (status in (401, 403) and not auth):
                # an expired file link (a signed URL answers 403): the job's files are gone
                raise JobGone(f"bulk {kind} file {i} ({rtype}): HTTP {status} (expired?)") from None
            raise
        if r.status_code != 206 or not have or _range_start(r) == have:
            return r, have
        # bytes from another offset than the .part's end (or from one not said): appended,
        # they repeated or left out bytes at the seam, a line of two records' halves
        r.close()
        part.unlink()
        have = 0


def fresh(spool: Path) -> None:
    """Forget an export job: its state and files (a new job starts from nothing)."""
    for old in spool.glob("*.ndjson*"):
        old.unlink()
    (spool / "job.json").unlink(missing_ok=True)


def delete_job(p: Puller, status_url: str, which: str) -> None:
    """DELETE an export job's status URL (the Bulk Data way to end a job); a failure only warns
    (its message names the URL's path, never its query or the token: client.error)."""
    try:
        p.client.request("DELETE", status_url, key="bulk", ok=(200, 202, 204, 404, 410))
    except ServerError as e:
        p.report.warn(f"could not delete {which} bulk export job: {e}")
