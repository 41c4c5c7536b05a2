"""The submission folder, read as untrusted files.

    found, refused = find_submissions(Path("submitted"))    # [Submission], [Refusal]
    cells = read_cells(found[0].path)                       # [Cell(id, kind, source, tags)] or ValueError
    code = read_notebook(found[0].path)                     # [(cell id, source)] of the code cells

A student (or the zip an LMS built from their upload) controls every name and file type in the
folder, so nothing is followed or read blindly:

* the walk never follows a symbolic link (to a file, to another student's notebook, to a
  folder, to /dev/zero); each link is refused with a row that says so;
* only regular files are read: a FIFO (which would block the grader forever), a device or a
  socket is refused with a row that says so;
* a notebook is opened with O_NOFOLLOW and O_NONBLOCK, checked to be a regular file of at most
  `MAX_NOTEBOOK_BYTES` on the open descriptor (so a swap after the walk changes nothing), and
  read no further than that.

Names: `submitted/<student>/<...>/exNN_*.ipynb` (nbgrader's layout) or the flat
`submitted/<student>__exNN_*.ipynb`.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Submission", "Refusal", "Cell", "find_submissions", "read_cells", "read_notebook", "code_cells",
           "MAX_NOTEBOOK_BYTES", "EXERCISE"]

MAX_NOTEBOOK_BYTES = 50 << 20
MAX_DEPTH = 8
EXERCISE = re.compile(r"(ex\d\d[a-z0-9_]*)")
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


@dataclass(frozen=True)
class Submission:
    student: str
    exercise: str
    path: Path


@dataclass(frozen=True)
class Cell:
    """One cell of a submission, as data: only its id, kind, source and tags are kept."""
    id: str
    kind: str                   # "code" | "markdown" | "raw" | whatever the file says
    source: str | None          # None: a Markdown or raw cell whose source is not text
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refusal:
    student: str
    exercise: str
    message: str


def _names(folder: Path, path: Path) -> tuple[str, str]:
    rel = path.relative_to(folder)
    stem = path.name[:-len(".ipynb")] if path.name.endswith(".ipynb") else path.name
    match = EXERCISE.search(stem)
    if len(rel.parts) > 1:
        student = rel.parts[0]
    else:
        student = stem.split("__")[0] if "__" in stem else stem
    return student, match.group(1) if match else stem


def _what(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def find_submissions(folder: Path) -> tuple[list[Submission], list[Refusal]]:
    """Every notebook under `folder` (regular files reached without following links), and a
    refusal for every link, FIFO, device or socket where a student's notebook or folder would be."""
    found, refused = [], []

    def walk(d: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            if d != folder:
                refused.append(Refusal(*_names(folder, d / "x.ipynb")[:1], "(folder)",
                                       f"{d.relative_to(folder)} could not be listed ({e.strerror})"))
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            is_notebook = entry.name.endswith(".ipynb")
            top = d == folder
            if stat.S_ISLNK(mode) and (is_notebook or top):
                refused.append(Refusal(*_names(folder, path), "a symbolic link, which the grader does not follow "
                                                              "(submit the notebook itself)"))
            elif stat.S_ISDIR(mode) and not is_notebook:
                if entry.name != ".ipynb_checkpoints" and depth < MAX_DEPTH:
                    walk(path, depth + 1)
            elif is_notebook and stat.S_ISREG(mode):
                found.append(Submission(*_names(folder, path), path))
            elif is_notebook or (top and not stat.S_ISREG(mode)):
                refused.append(Refusal(*_names(folder, path), f"{_what(mode)}, not a notebook file; not read"))

    walk(folder, 0)
    return found, refused


def read_bytes(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """At most `limit` bytes of the regular file `path`, opened without following a link and
    without blocking; ValueError with the reason otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(f"cannot open it ({e.strerror})" if e.errno != 40 else
                         "a symbolic link, which the grader does not follow") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{_what(st.st_mode)}, not a notebook file")
        if st.st_size > limit:
            raise ValueError(f"the file is {st.st_size / 2**20:.1f} MB, over the {limit >> 20} MB limit; not read")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise ValueError(f"the file grew past the {limit >> 20} MB limit while being read")
        return data
    finally:
        os.close(fd)


def _tags(cell) -> tuple[str, ...]:
    meta = cell.get("metadata")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()


def read_cells(path: Path) -> list[Cell]:
    """Every cell of a submitted notebook (id, kind, source, tags); ValueError if unreadable.

    Only these are kept: outputs, execution counts and the rest of the metadata never reach the
    grade. A code cell whose source is not text makes the notebook unreadable; a Markdown or raw
    cell's is kept as None (a written answer that cannot be read is reported as such).
    """
    import nbformat
    data = read_bytes(path)
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        cells = []
        for c in nb.cells:
            kind, source = str(c.get("cell_type", "")), c.get("source")
            if kind == "code" and not isinstance(source, str):
                raise TypeError("a code cell's source is not text")
            cells.append(Cell(str(c.get("id", "")), kind, source if isinstance(source, str) else None, _tags(c)))
    except Exception as e:  # not UTF-8, not JSON, not a notebook
        raise ValueError(f"{type(e).__name__}: {str(e)[:200]}") from None
    return cells


def code_cells(cells: list[Cell]) -> list[tuple[str, str]]:
    """(cell id, source) of every code cell."""
    return [(c.id, c.source) for c in cells if c.kind == "code"]


def read_notebook(path: Path) -> list[tuple[str, str]]:
    """(cell id, source) of every code cell of a submitted notebook; ValueError if unreadable."""
    return code_cells(read_cells(path))
