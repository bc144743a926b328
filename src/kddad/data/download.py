"""Fetch a raw data file from a local mirror, a local path or its canonical URLs, verified.

A file only ever appears under its final name after its checksum (and, for gzip, its whole
stream) checked out: it is written to a temporary file in the same folder and renamed.
"""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from kddad.errors import DownloadError
from kddad.io import sha256sum, sweep_stale

log = logging.getLogger(__name__)

MIRROR_ENV = "KDDAD_DATA_MIRROR"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One place a file may come from: a local file or a URL."""

    location: str
    kind: str  # "mirror" | "path" | "url"


def check_gzip(path: Path) -> None:
    """Read a gzip stream to its end: a truncated or corrupt file raises DownloadError."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(_CHUNK):
                pass
    except (EOFError, OSError, zlib.error) as err:
        raise DownloadError(f"not a complete gzip file ({err})") from None


def verify(path: Path, sha256: str | None, name: str | None = None, records_sha256: str | None = None) -> str:
    """Raise DownloadError unless the file matches a checksum and, if gzip, unpacks fully.

    The bytes' ``sha256`` is checked first; a file whose bytes differ (or with none pinned)
    passes if its parsed records match ``records_sha256``: copies of NSL-KDD write the same
    numbers as ``0.00`` or ``0.0``. ``name`` is the file's final name (a temporary file's own
    name says nothing of its format). Returns how the file was verified, for the log.
    """
    problems = []
    if sha256 is not None:
        actual = sha256sum(path)
        if actual == sha256:
            if (name or path.name).endswith(".gz"):
                check_gzip(path)
            return f"sha256 {sha256}"
        problems.append(f"sha256 mismatch: expected {sha256}, got {actual}")
    if (name or path.name).endswith(".gz") and not problems:
        check_gzip(path)
    if records_sha256 is not None:
        from kddad.data.read import records_sha256 as records_digest
        from kddad.errors import DataError

        try:
            actual = records_digest(path, name or path.name)
        except DataError as err:
            raise DownloadError("; ".join([*problems, f"not a KDD file ({err})"])) from None
        if actual == records_sha256:
            return f"records sha256 {records_sha256}" + (" (its bytes differ from sha256's)" if problems else "")
        problems.append(f"records sha256 mismatch: expected {records_sha256}, got {actual}")
    if problems:
        raise DownloadError("; ".join(problems))
    return "no checksum configured"


def mirrors(config_mirror: str | None) -> list[Path]:
    """Mirror folders to try, config key first, then the KDDAD_DATA_MIRROR variable."""
    found = [config_mirror, os.environ.get(MIRROR_ENV)]
    return [Path(m).expanduser() for m in dict.fromkeys(m for m in found if m)]


def sources(filename: str, urls: Iterable[str], path: str | None, mirror_dirs: Iterable[Path]) -> list[Source]:
    if path is not None:
        return [Source(str(Path(path).expanduser()), "path")]
    return [Source(str(d / filename), "mirror") for d in mirror_dirs] + [Source(u, "url") for u in urls]


def _copy(src: str, dst: Path, timeout_s: float) -> None:
    size = Path(src).stat().st_size
    with (
        open(src, "rb") as fin,
        open(dst, "wb") as fout,
        tqdm(total=size, unit="B", unit_scale=True, desc=f"copy {Path(src).name}", leave=False) as bar,
    ):
        for chunk in iter(lambda: fin.read(_CHUNK), b""):
            fout.write(chunk)
            bar.update(len(chunk))


def _http(url: str, dst: Path, timeout_s: float) -> None:
    import pooch

    pooch.HTTPDownloader(progressbar=True, timeout=timeout_s)(url, str(dst), None)


def fetch(
    filename: str,
    out_dir: Path,
    *,
    sha256: str | None,
    records_sha256: str | None = None,
    urls: Iterable[str] = (),
    path: str | None = None,
    mirror: str | None = None,
    timeout_s: float = 60,
) -> Path:
    """Place a verified copy of ``filename`` in ``out_dir`` and return its path.

    A verified file already there is kept. Otherwise each source is tried in turn (a local
    ``path``; else the mirror folders, then the URLs) until one verifies. If none does, the
    error lists every source and why it failed, and ``out_dir`` holds nothing new.
    """
    out_dir = Path(out_dir)
    target = out_dir / filename
    if target.exists():
        try:
            how = verify(target, sha256, records_sha256=records_sha256)
            log.info("%s: present and verified (%s), nothing to fetch", target, how)
            return target
        except DownloadError as err:
            log.warning("%s: present but %s; removing it and fetching it again", target, err)
            target.unlink()  # never leave a file that looks done but is not
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for src in sources(filename, urls, path, mirrors(mirror)):
        get: Callable[[str, Path, float], None] = _http if src.kind == "url" else _copy
        if src.kind != "url" and not Path(src.location).is_file():
            failures.append(f"  {src.kind} {src.location}: no such file")
            continue
        # beside out_dir, not in it: a killed fetch leaves nothing inside the stage's output
        # named for this process: a later fetch sweeps what a killed one left
        sweep_stale(out_dir.parent, f".{filename}.")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.{os.getpid()}.", suffix=".part", dir=out_dir.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            log.info("fetching %s from %s %s", filename, src.kind, src.location)
            get(src.location, tmp, timeout_s)
            how = verify(tmp, sha256, filename, records_sha256)
            os.chmod(tmp, 0o644)  # mkstemp made it private
            os.replace(tmp, target)
            log.info("%s: verified (%s)", target, how)
            return target
        except DownloadError as err:
            failures.append(f"  {src.kind} {src.location}: {err}")
        except Exception as err:  # network, HTTP status, permissions: report and try the next
            failures.append(f"  {src.kind} {src.location}: {type(err).__name__}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    if not failures:
        failures.append(f"  no source configured: set dataset.urls or dataset.path, or a mirror folder ({MIRROR_ENV})")
    raise DownloadError(f"could not get a verified {filename} into {out_dir}; tried:\n" + "\n".join(failures))
