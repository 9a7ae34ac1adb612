"""Writing files so that no input is overwritten and no half-written file is left behind.

* :func:`output_path` checks where an output will go **before any work**: not a folder, not a
  file the run reads (``--out runs.csv`` for ``runs.csv``, also through ``./`` or a symlink), a
  folder that exists (or can be made) and can be written, a name the file system accepts. It
  returns the file to write: a symlink's target, so a link keeps pointing at the new file.
* :func:`atomic_path` writes beside the target and renames into place, so an interrupted or
  failed write (a full disk, Ctrl-C, SIGTERM) leaves the old file as it was and no temporary file.
  A device or FIFO (``--out /dev/stdout``) is written directly, never replaced by a regular
  file.

Failures raise :class:`~bayescale.errors.OutputError` naming the user's path, never the hidden
temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from bayescale.errors import OutputError

__all__ = ["output_path", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "remove_partial_files", "written_files"]

#: Temporary files being written now; :func:`remove_partial_files` deletes them (the CLI calls it
#: on Ctrl-C and SIGTERM, which may arrive while another thread writes).
_PARTIAL: set[Path] = set()
#: Files written in full by this process, in order (the CLI names them when interrupted).
_WRITTEN: list[str] = []


def _is_special(path: Path) -> bool:
    """A device, FIFO or socket: something to write into, never to replace."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _resolve(path: Path, what: str) -> Path:
    """``path`` with symlinks followed (to the file a link points at, existing or not)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OutputError(f"{what} {path} is a symlink loop: point the link at a file, or "
                              "give another path") from None
        if err.errno == errno.ENAMETOOLONG:
            raise OutputError(f"{what} {_short(path)}: the name is too long for the file "
                              "system; give a shorter one") from None
        if err.errno == errno.ENOTDIR:
            pass  # reported below, with the file that is in the way
        else:
            raise OutputError(f"{what} {path}: {err.strerror}") from None
    return Path(os.path.realpath(path))


def _short(path: str | os.PathLike) -> str:
    text = os.fspath(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]}"


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file (links included; by real path if either is
    missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def output_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                what: str = "--out", folder: bool = False) -> Path:
    """Check an output path before any work and return the file to write.

    ``inputs`` are the files the run reads; writing over one of them is refused. A device or
    FIFO is returned as is (:func:`atomic_path` writes into it); ``folder`` asks for a folder
    (``--by-group``).
    """
    given = Path(os.fspath(path))
    if not str(given).strip():
        raise OutputError(f"{what} is empty: give a file name")
    target = _resolve(given, what)
    for source in inputs:
        if source is not None and os.path.lexists(source) and same_file(Path(source), target):
            raise OutputError(f"{what} {path} is the input file {source}: writing there would "
                              "replace it; give another output name")
    if target.is_dir() and not folder:
        raise OutputError(f"{what} {path} is a folder; give a file name in it")
    if folder and target.exists() and not target.is_dir():
        raise OutputError(f"{what} {path} is a file; it must name a folder (one file per group "
                          "is written in it)")
    if _is_special(target):
        return target
    # The nearest folder that exists must be a folder we can write in (the rest is made).
    parent = target if folder else target.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {path}: {parent} is a file, not a folder; give a path in a "
                          "folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: cannot write in folder {parent} (permission denied "
                          "or read-only); give a path in a folder you can write")
    if target.exists() and not folder and not os.access(target, os.W_OK):
        raise OutputError(f"{what} {path} is read-only; make it writable (chmod u+w) or give "
                          "another name")
    try:
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    too_long = [p for p in target.relative_to(parent).parts if len(os.fsencode(p)) > limit]
    if too_long:
        raise OutputError(f"{what} {path}: the name {too_long[0][:40]}... is longer than the "
                          f"{limit} bytes the file system allows; give a shorter one")
    return target


def _message(err: OSError, path: Path) -> str:
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return (f"the disk is full: could not write {path}; free some space or write elsewhere "
                "(nothing was written)")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {path} (permission denied or read-only); give a path in a folder "
                "you can write")
    return f"could not write {path} ({err.strerror or err}); nothing was written"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, size: int | None = None,
                record: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On any error (or KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    A symlink is written through (its target is replaced); a device or FIFO is yielded as is, to
    be written directly. ``size``, when known, is checked against the free space first. An
    ``OSError`` (full disk, permissions) becomes :class:`OutputError` naming ``path``.
    ``record=False`` leaves it out of :func:`written_files` (a cache entry, not an output).
    """
    shown = Path(path)
    target = Path(os.path.realpath(shown))
    if _is_special(target):
        try:
            yield target
        except OSError as err:
            raise OutputError(_message(err, shown)) from None
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            free = shutil.disk_usage(target.parent).free
            if free < size:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        # The temporary name stays short: a target name near the file system's limit still fits.
        fd, name = tempfile.mkstemp(prefix=f".{target.name[:48]}.", suffix=".tmp",
                                    dir=target.parent)
    except OSError as err:
        raise OutputError(_message(err, shown)) from None
    os.close(fd)
    tmp = Path(name)
    _PARTIAL.add(tmp)
    try:
        try:
            yield tmp
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
            os.replace(tmp, target)
            if record:
                _WRITTEN.append(str(shown))
        except OSError as err:
            raise OutputError(_message(err, shown)) from None
    finally:
        _PARTIAL.discard(tmp)
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (directly into a device or FIFO)."""
    with atomic_path(path, size=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            try:
                os.fsync(f.fileno())  # a full disk on a network file system shows here
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise  # a FIFO or device cannot be synced; anything else is a failed write
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_partial_files() -> None:
    """Delete the temporary files of writes still in progress (on Ctrl-C or SIGTERM)."""
    for tmp in list(_PARTIAL):
        with contextlib.suppress(OSError):
            tmp.unlink()
        _PARTIAL.discard(tmp)


def written_files() -> list[str]:
    """The files this process has written in full so far."""
    return list(_WRITTEN)
