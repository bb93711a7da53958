"""Writing files without ever leaving a half-written one in place.

Temp files and folders are named `.<name>.dynode-tmp-<pid>-<random>` beside the target, so leftovers of a
killed process (kill -9 cannot be caught) are recognisable; the next write to the same target removes those
whose process is gone. Data is fsync'ed before the rename, and the folder after it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_TAG = ".dynode-tmp-"


def _fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove temp files/folders of `path` left by processes that no longer run."""
    pat = re.compile(re.escape(f".{path.name}{_TAG}") + r"(\d+)-")
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return
    for p in siblings:
        m = pat.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            except OSError:
                pass


def temp_name(path: Path) -> str:
    return f".{path.name}{_TAG}{os.getpid()}-"


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)` on a temp file in `path`'s folder, fsync it, then move it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(21, "cannot write a file over a folder", str(path))
    _remove_stale(path)
    # keep the real extension last, so writers that infer the format from the name (PIL, PyAV) still work
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_name(path), suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_folder(path: str | os.PathLike, write, ours: re.Pattern) -> None:
    """Call `write(tmp_folder)` on a new temp folder beside `path`, then put it in place of `path`.

    An existing `path` may only hold files whose names match `ours` (e.g. frames written by an earlier run):
    they are replaced all at once; a folder with any other file is refused (nothing of the user's is deleted).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(20, "not a folder (cannot write PNG frames into it)", str(path))
    if path.is_dir():
        others = sorted(p.name for p in path.iterdir() if not ours.match(p.name))
        if others:
            raise FileExistsError(17, f"folder holds files that are not DynODE frames ({', '.join(others[:3])}"
                                      f"{' ...' if len(others) > 3 else ''}); write to a new or empty folder", str(path))
    _remove_stale(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_name(path), suffix=".tmp"))
    old = None
    try:
        write(tmp)
        for f in tmp.iterdir():
            _fsync_path(f)
        os.chmod(tmp, 0o777 & ~_umask())
        if path.is_dir():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_name(path), suffix=".old"))
            os.rmdir(old)
            os.rename(path, old)
        os.rename(tmp, path)
        _fsync_path(path.parent, directory=True)
    except BaseException:
        if old is not None and old.exists() and not path.exists():
            os.rename(old, path)  # put the earlier frames back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None and old.exists():
            for f in old.iterdir():
                if ours.match(f.name):
                    f.unlink()
            try:
                old.rmdir()
            except OSError:
                pass


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide, racy with other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
