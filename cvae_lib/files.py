"""Files that are never half-written: the one atomic write, and the checksum, every writer uses.

    with atomic_write("runs/ae.pt") as tmp:      # a temporary file beside the target
        torch.save(state, tmp)                   # on success: fsync, then rename over the target

A crash or an exception inside the block leaves the old file (or none) and no temporary file
(where the folder still allows removing it: on a read-only filesystem the WriteError is raised
all the same, and a temporary file left behind is removed by the next write once its writer is
gone).
Checkpoints (train.py), shipped weights (weights.py) and the decoded CIFAR-10 cache (data.py)
all go through `atomic_write`. `course_root` finds the clone that holds the notebooks and
solutions, which belong to the repository, not to the installed package.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "sha256", "course_root"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; after the block, fsync it and rename it over `path`.

    The rename is atomic on POSIX and Windows (`os.replace`), so readers see the old file or
    the new one, never a part. Parent folders are created.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(path, e) from e
    _remove_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:   # torch.save reports a full disk as a RuntimeError
        raise WriteError(path, e) from e
    finally:
        _discard(tmp)


def _discard(tmp: Path) -> None:
    """Remove a temporary file if it is there. Cleaning up must not replace the error being raised
    (on a read-only filesystem even unlinking a file that does not exist fails with EROFS) or fail
    a write that succeeded; a file that stays is removed by a later write (`_remove_stale`)."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


class WriteError(OSError):
    """A file could not be written (full disk, no permission); the message names it and says
    that the previous version of the file, if any, is intact."""

    def __init__(self, path: Path, cause: BaseException):
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MB free there"
        except OSError:
            free = "free space unknown"
        message = (f"could not write {path} ({type(cause).__name__}: {str(cause)[:160]}); {free}. "
                   f"The previous {path.name}, if there was one, is unchanged: free some disk space "
                   f"or check the folder's permissions, then run again")
        code = getattr(cause, "errno", None)     # torch.save's RuntimeError has none: no "[Errno None]"
        super().__init__(*((code, message) if code is not None else (message,)))


def _remove_stale(path: Path) -> None:
    """Delete temporary files that a killed writer of `path` left (its process is gone)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(path.name) + 2:-4])
            os.kill(pid, 0)                 # raises if no such process: the writer is dead
        except ProcessLookupError:
            _discard(tmp)
        except (ValueError, PermissionError):   # not our naming, or another user's live process
            pass


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def course_root(folder: str | os.PathLike | None = None, need: str = "notebooks") -> Path:
    """The clone of the course that holds `need` (notebooks/ or solutions/): `folder`, else env
    CVAE_COURSE_DIR, else the repository this package sits in (an editable install), else the
    current folder. The notebooks belong to the repository, not to the installed package, so a
    wheel install must point here at a clone; the error says how."""
    candidates = [Path(folder)] if folder else []
    from .settings import current

    if current().course_dir:
        candidates.append(current().course_dir)
    candidates += [Path(__file__).resolve().parents[1], Path.cwd()]
    for c in candidates:
        if (c / need).is_dir():
            return c
    raise FileNotFoundError(f"no {need}/ folder in {', '.join(map(str, dict.fromkeys(candidates)))}: "
                            f"{need}/ comes with a clone of the course, not with `pip install`. Clone it "
                            f"(git clone https://github.com/cvae-course/cvae-course) and run from there, "
                            f"or set CVAE_COURSE_DIR to the clone.")
