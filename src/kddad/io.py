"""Atomic writes: a reader (or DVC) never sees a half-written file or folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kddad.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create private 0600/0700 entries; give the result the umask's usual mode."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def cannot_write(target: Path, err: OSError) -> OutputError:
    """One clear line for a write that the file system refused, naming the output."""
    return OutputError(
        f"{target}: cannot write this output ({err.strerror or type(err).__name__}"
        f"{': ' + str(err.filename) if err.filename and str(err.filename) != str(target) else ''}); "
        "expected a folder this user can write to"
    )


@contextmanager
def _writable(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        raise cannot_write(target, err) from None


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    with _writable(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        with _writable(target):
            _usual_mode(tmp, directory=True)
            if target.exists():
                old = target.with_name(f".{target.name}.old{os.getpid()}")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old)
            else:
                os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on success the file replaces ``path``."""
    path = Path(path)
    with _writable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with _writable(path):
            _usual_mode(tmp, directory=False)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")


def sha256sum(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
