"""Atomic writes: a reader (or DVC) never sees a half-written file or folder.

Temporary entries are named ``.<name>.<pid>.<random>.tmp`` beside their target: a process
killed before its rename (``kill -9``) leaves one behind, and the next write of the same target
sweeps every such entry whose process is gone, so killed runs leave no litter that grows.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import re
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
    code = _errno(err)
    reason = os.strerror(code) if code else err.strerror or type(err).__name__
    full = code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return OutputError(
        f"{target}: cannot write this output ({reason}"
        f"{': ' + str(err.filename) if err.filename and str(err.filename) != str(target) else ''}); "
        + (
            "free space there (or raise the quota or file-size limit), or write elsewhere"
            if full
            else "expected a folder this user can write to"
        )
    )


#: What a full disk, a quota, a file-size limit or a read-only file system raise on a write.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def write_failure(err: BaseException) -> bool:
    """Whether ``err`` is the file system refusing a write (pyarrow's errors carry the errno only in
    their text: ``[errno 28] No space left on device``)."""
    return isinstance(err, OSError) and _errno(err) in WRITE_ERRNOS


def _errno(err: OSError) -> int | None:
    if err.errno is not None:
        return err.errno
    found = re.search(r"\[errno (\d+)\]", str(err), flags=re.I)
    return int(found.group(1)) if found else None


@contextmanager
def _writable(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        raise cannot_write(target, err) from None


@contextmanager
def writing(target: str | Path) -> Iterator[None]:
    """Report a write the file system refuses inside the block (full disk, file-size limit,
    permissions) as one :class:`OutputError` naming ``target``; other errors pass through."""
    try:
        yield
    except OSError as err:
        if write_failure(err):
            raise cannot_write(Path(target), err) from None
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale(folder: Path, prefix: str) -> list[Path]:
    """Remove the temporary entries ``<prefix><pid>.*`` in ``folder`` whose process is gone."""
    removed = []
    try:
        entries = list(folder.glob(f"{glob.escape(prefix)}*"))
    except OSError:
        return removed
    for entry in entries:
        pid = re.match(r"(\d+)[.-]", entry.name[len(prefix) :])
        if pid is None or int(pid.group(1)) == os.getpid() or _alive(int(pid.group(1))):
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def _prefix(target: Path) -> str:
    return f".{target.name}."


def _temp_name(target: Path) -> str:
    """The prefix of this process's temporary entries for ``target`` (sweeping dead ones first)."""
    sweep_stale(target.parent, _prefix(target))
    return f"{_prefix(target)}{os.getpid()}."


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    with _writable(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_name(target), suffix=".tmp", dir=target.parent))
    try:
        with writing(target):
            yield tmp
        with _writable(target):
            _usual_mode(tmp, directory=True)
            if target.exists():
                old = target.with_name(f"{_prefix(target)}{os.getpid()}.old")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old)
            else:
                os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _swap(targets: tuple[Path, ...], new: Path, old: Path) -> None:
    """Put ``new``'s entries in the targets' places, the old ones moved into ``old``; undone as
    far as it went where a rename fails."""
    old.mkdir()
    aside, placed = [], []
    try:
        for target in targets:
            if target.exists() or target.is_symlink():
                os.replace(target, old / target.name)
                aside.append(target)
        for target in targets:
            os.replace(new / target.name, target)
            placed.append(target)
    except OSError:
        for target in placed:
            os.replace(target, new / target.name)
        for target in aside:
            os.replace(old / target.name, target)
        raise


@contextmanager
def atomic_outputs(name: str, *targets: str | Path) -> Iterator[tuple[Path, ...]]:
    """Where each of ``targets`` (files or folders in one folder) is to be written: all in one
    temporary folder ``.<name>.<pid>.<random>.tmp`` beside them. Once every one is written they
    replace the targets together (the old ones moved aside, then the new ones in, by renames), so
    a failure on the way leaves every old output as it was: all new or all old."""
    targets = tuple(Path(t) for t in targets)
    home = targets[0].parent
    if any(t.parent != home for t in targets):
        raise ValueError(f"atomic_outputs: {targets} are not in one folder")
    marker = home / name
    with _writable(home):
        home.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_name(marker), suffix=".tmp", dir=home))
    old = tmp / ".old"
    try:
        with writing(home):
            yield tuple(tmp / t.name for t in targets)
        unwritten = [t.name for t in targets if not (tmp / t.name).exists()]
        if unwritten:
            raise RuntimeError(f"atomic_outputs: {unwritten} not written")
        with _writable(home):
            _swap(targets, tmp, old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on success the file replaces ``path``."""
    path = Path(path)
    with _writable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_temp_name(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(name)
    try:
        with writing(path):
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


class NpyWriter:
    """An ``.npy`` file written in pieces: the header for its known shape, then rows appended,
    so an array never sits in memory whole; the file reads as ``np.save`` would have written it.
    A file not filled to its shape is refused on closing."""

    def __init__(self, path: str | Path, dtype: Any, shape: tuple[int, ...]) -> None:
        import numpy as np

        self.path, self.dtype, self.shape = Path(path), np.dtype(dtype), shape
        self.written = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed in __exit__)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self._file, header)

    def append(self, rows: Any) -> None:
        import numpy as np

        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape[1:] or self.written + len(rows) > self.shape[0]:
            raise ValueError(f"{self.path}: rows of shape {rows.shape} do not fit an array of shape {self.shape}")
        self._file.write(rows.tobytes())
        self.written += len(rows)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        self._file.close()
        if kind is None and self.written != self.shape[0]:
            raise ValueError(f"{self.path}: {self.written} rows written of the {self.shape[0]} its header promises")


def npy_chunks(path: str | Path, rows: int) -> Iterator[Any]:
    """An ``.npy`` file's rows, ``rows`` at a time, read rather than memory-mapped (the pages of a
    mapping would stay resident in the process however little of it is still used)."""
    import numpy as np

    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        if fortran_order or not shape:
            yield np.load(path)
            return
        width = int(np.prod(shape[1:], dtype=np.int64))
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            yield np.fromfile(f, dtype=dtype, count=n * width).reshape((n, *shape[1:]))
