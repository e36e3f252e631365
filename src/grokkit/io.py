"""Files written safely: atomic writes (a reader sees the old file or the new one, never half of one) and a clear
error for a full disk."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from grokkit.errors import GrokkitError

_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFullError(GrokkitError, OSError):
    """The device ran out of space while a file was written; the file's previous version (if any) is intact (exit
    code 1: the run failed while running)."""

    exit_code = 1

    def __init__(self, path: Path) -> None:
        path = Path(path)
        kept = (f"the previous {path.name} is intact" if path.exists() else f"{path.name} was not written")
        super().__init__(errno.ENOSPC, f"no space left on device writing {path}; {kept}. Free some space and run the "
                         "same command again (a run resumes from its last checkpoint)", str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def _is_disk_full(err: BaseException) -> bool:
    """ENOSPC (or EDQUOT) from Python, or the same error reported by safetensors' Rust writer as a SafetensorError
    whose message carries the OS error (``IoError(Os { code: 28, kind: StorageFull, ... })``)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, SafetensorError):
        text = str(err)
        return any(s in text for s in ("StorageFull", "No space left", f"code: {errno.ENOSPC},", "QuotaExceeded"))
    return False


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``: readers see the old file
    or the new one, never half of one. ``write(tmp_path)`` does the writing. A full disk raises
    :class:`DiskFullError` (the previous ``path`` is untouched)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        if _is_disk_full(err):
            raise DiskFullError(path) from None
        raise
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _is_disk_full(err):
            raise DiskFullError(path) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))
