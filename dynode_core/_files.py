"""Writing files without ever leaving a half-written one in place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)` on a temp file in `path`'s folder, then move it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real extension last, so writers that infer the format from the name (PIL, PyAV) still work
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
