"""What one notebook may use, how the machine enforces it, and whether it can.

    limits = Limits(wall_s=300, cpu_s=300, memory_bytes=8 << 30, processes=64)
    confine = choose_confinement(limits)        # cgroup v2, cgroup v1, or rlimits
    problems = check_limits(limits, confine)    # [] or what is wrong, in the instructor's words

Three ways to hold a notebook's whole process tree, tried in this order:

    cgroup2   root, a cgroup v2 hierarchy whose top level delegates `memory` and `pids`: one
              cgroup per notebook (memory.max, memory.swap.max = 0, pids.max) directly under
              the hierarchy's root
    cgroup1   root, cgroup v1 `memory` and `pids` hierarchies (hybrid machines, e.g. a Debian VM
              without systemd): one cgroup per notebook under the grader's own cgroups
              (memory.limit_in_bytes and memory.memsw.limit_in_bytes, pids.max)
    rlimit    anything else (a user without cgroup delegation): RLIMIT_AS per process, and
              RLIMIT_NPROC set by the worker inside the sandbox's own user namespace, where it
              counts only that notebook's processes. Linux does not apply RLIMIT_NPROC to root,
              so as root without cgroups the process limit cannot be granted.

In every mode each process also has RLIMIT_AS (--memory: an allocation past it is a MemoryError
the student can read) and RLIMIT_CPU, and the sandbox's only writable places are one size-capped
tmpfs (the notebook's folder, /tmp inside it) and a size-capped /dev/shm (`sandbox.py`). In the
cgroup modes tmpfs pages count against the notebook's memory too.

The floors below are what the course's own solution notebooks needed, graded one by one on a
2-core Debian VM (see docs/grading.md): a limit under them would fail a correct notebook, so the
grader refuses it before grading anything rather than blame the students.
"""
from __future__ import annotations

import math
import os
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "Confinement", "choose_confinement", "check_limits", "MINIMUM", "CONFINEMENTS"]

GiB, MiB = 1 << 30, 1 << 20


@dataclass
class Limits:
    """What one notebook may use."""
    wall_s: float = 300             # seconds on the clock for the whole notebook
    cpu_s: float = 300              # seconds of processor time per process (RLIMIT_CPU)
    memory_bytes: int = 8 * GiB     # RLIMIT_AS of each process; with cgroups also the whole tree's memory
    disk_bytes: int = 256 * MiB     # the notebook's tmpfs (its folder and /tmp)
    shm_bytes: int = 64 * MiB       # /dev/shm
    processes: int = 64             # processes and threads of the whole notebook; 0: no limit


@dataclass(frozen=True)
class Minimum:
    wall_s: float
    cpu_s: float
    memory_bytes: int
    disk_bytes: int
    processes: int


# Floors, from grading solutions/ex01..ex06 one notebook at a time on a loaded 2-core Debian VM
# (docs/grading.md has the table): the slowest took 11 s on the clock and 5 s of processor time;
# the worker maps at most 3.3 GiB of address space (about 3.0 once torch is imported), its cgroup
# peaks at 0.4 GiB of memory and 4 tasks (bwrap twice, Python with one thread); a notebook writes
# under 1 KB. The floors leave room for a slower machine; they are not recommendations.
MINIMUM = Minimum(wall_s=20, cpu_s=10, memory_bytes=int(3.5 * GiB), disk_bytes=4 * MiB, processes=8)


# ----------------------------------------------------------------------------- confinement

class Confinement:
    """How the notebooks' whole-tree limits are held; `box()` makes one notebook's holder."""
    kind = "rlimit"
    tree_memory = False          # does --memory bound the whole tree (else: each process)?
    tree_processes = True        # does --processes hold (else: not at all)?

    def box(self, limits: Limits) -> Box:
        return Box()

    def describe(self) -> str:
        if os.geteuid() == 0:
            return ("no usable cgroups: memory is capped per process (RLIMIT_AS), and as root the "
                    "process limit cannot be enforced")
        return ("no usable cgroups: memory is capped per process (RLIMIT_AS), processes per notebook "
                "(RLIMIT_NPROC in the sandbox's user namespace)")

    def problems(self, limits: Limits) -> list[str]:
        return []


class Box:
    """One notebook's share: joined by the worker's first process before it execs bubblewrap."""

    def join(self) -> None:            # runs in the child between fork and exec: no allocation-heavy work
        pass

    def oom_killed(self) -> bool:
        return False

    def peak(self) -> dict:
        return {}

    def close(self) -> None:
        pass


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _kill_and_remove(dirs: list[Path], kill_file: Path | None = None) -> None:
    """Kill whatever is left in `dirs` (cgroups) and remove them; tries for about 2 s."""
    if kill_file is not None and kill_file.exists():
        try:
            _write(kill_file, "1")
        except OSError:
            pass
    for _ in range(40):
        for d in dirs:
            for pid in _read(d / "cgroup.procs").split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError, PermissionError):
                    pass
        for d in list(dirs):
            try:
                d.rmdir()
                dirs.remove(d)
            except FileNotFoundError:
                dirs.remove(d)
            except OSError:
                pass
        if not dirs:
            return
        time.sleep(0.05)


class _CgroupBox(Box):
    def __init__(self, dirs: list[Path], procs: list[Path], memory_dir: Path, events: str, kill_file):
        self.dirs, self.procs, self.memory_dir, self.events, self.kill_file = dirs, procs, memory_dir, events, kill_file

    def join(self) -> None:
        pid = str(os.getpid())
        for procs in self.procs:
            _write(procs, pid)

    def oom_killed(self) -> bool:
        for line in _read(self.memory_dir / self.events).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
        return False

    def peak(self) -> dict:
        out = {}
        for key, name in (("memory_bytes", "memory.peak"), ("memory_bytes", "memory.max_usage_in_bytes"),
                          ("processes", "pids.peak")):
            for d in self.dirs:
                text = _read(d / name).strip()
                if text.isdigit():
                    out[key] = int(text)
        return out

    def close(self) -> None:
        _kill_and_remove(list(self.dirs), self.kill_file)


_SERIAL = iter(range(1, 1 << 62))


def _name() -> str:
    return f"cvae-grade-{os.getpid()}-{next(_SERIAL)}"


class Cgroup2(Confinement):
    """Notebook cgroups directly under a cgroup v2 root that delegates memory and pids."""
    kind, tree_memory = "cgroup2", True

    def __init__(self, root: Path):
        self.root = root

    def describe(self) -> str:
        return f"cgroup v2 ({self.root}): memory and processes capped for each notebook's whole process tree"

    def box(self, limits: Limits) -> Box:
        d = self.root / _name()
        d.mkdir()
        try:
            _write(d / "memory.max", str(limits.memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.processes) if limits.processes else "max")
        except OSError:
            _kill_and_remove([d])
            raise
        return _CgroupBox([d], [d / "cgroup.procs"], d, "memory.events", d / "cgroup.kill")


class Cgroup1(Confinement):
    """Notebook cgroups under the grader's own cgroup v1 `memory` and `pids` cgroups."""
    kind, tree_memory = "cgroup1", True

    def __init__(self, memory: Path, pids: Path):
        self.memory, self.pids = memory, pids

    def describe(self) -> str:
        return (f"cgroup v1 ({self.memory}, {self.pids}): memory and processes capped for each notebook's "
                "whole process tree")

    def problems(self, limits: Limits) -> list[str]:
        own = _read(self.memory / "memory.limit_in_bytes").strip()
        if own.isdigit() and int(own) < limits.memory_bytes:
            return [f"--memory {limits.memory_bytes / GiB:g} is more than the grader's own cgroup allows "
                    f"({int(own) / GiB:.1f} GiB in {self.memory}): lower --memory or raise that limit"]
        return []

    def box(self, limits: Limits) -> Box:
        name = _name()
        mem, pids = self.memory / name, self.pids / name
        made = []
        try:
            for d in (mem, pids):
                d.mkdir()
                made.append(d)
            _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
            if (mem / "memory.memsw.limit_in_bytes").exists():         # no swap beyond the memory limit
                _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            _write(pids / "pids.max", str(limits.processes) if limits.processes else "max")
        except OSError:
            _kill_and_remove(made)
            raise
        return _CgroupBox([mem, pids], [mem / "cgroup.procs", pids / "cgroup.procs"], mem, "memory.oom_control",
                          None)


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, file system type, super options) of every mount."""
    out = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3:
            out.append((fields[4].replace("\\040", " "), rest[0], rest[2]))
    return out


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of `controller`, or in v2 (None)."""
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        hid, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controller is None and hid == "0" and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _remove_stale(parents: list[Path]) -> None:
    """Remove notebook cgroups that a grader killed before it could (SIGKILL) left behind."""
    for parent in parents:
        for d in parent.glob("cvae-grade-*-*"):
            try:
                os.kill(int(d.name.split("-")[2]), 0)
            except ProcessLookupError:
                _kill_and_remove([d])
            except (ValueError, PermissionError, OSError):
                pass


def _try(confinement: Confinement) -> Confinement | None:
    """`confinement` if one notebook cgroup can be made, limited and removed here, else None."""
    try:
        _remove_stale([getattr(confinement, a) for a in ("root", "memory", "pids") if hasattr(confinement, a)])
        confinement.box(Limits(memory_bytes=GiB, processes=8)).close()
        return confinement
    except OSError:
        return None


def _cgroup2() -> Confinement | None:
    for point, fstype, _ in _mounts():
        if fstype != "cgroup2":
            continue
        root = Path(point)
        if not {"memory", "pids"} <= set(_read(root / "cgroup.controllers").split()):
            continue
        if not {"memory", "pids"} <= set(_read(root / "cgroup.subtree_control").split()):
            try:
                _write(root / "cgroup.subtree_control", "+memory +pids")
            except OSError:
                continue
        found = _try(Cgroup2(root))
        if found:
            return found
    return None


def _cgroup1() -> Confinement | None:
    points = {}
    for point, fstype, options in _mounts():
        if fstype == "cgroup":
            for controller in ("memory", "pids"):
                if controller in options.split(","):
                    points[controller] = Path(point)
    if set(points) != {"memory", "pids"}:
        return None
    paths = {c: _own_cgroup(c) for c in points}
    if any(p is None for p in paths.values()):
        return None
    return _try(Cgroup1(*(points[c] / paths[c].lstrip("/") for c in ("memory", "pids"))))


CONFINEMENTS = ("auto", "cgroup", "rlimit")


def choose_confinement(mode: str = "auto") -> Confinement:
    """The strongest confinement this machine allows: `mode` "auto" (cgroups if possible, else
    rlimits), "cgroup" (cgroups or ValueError) or "rlimit" (rlimits only)."""
    if mode not in CONFINEMENTS:
        raise ValueError(f"unknown confinement {mode!r}: one of {', '.join(CONFINEMENTS)}")
    if mode != "rlimit" and os.geteuid() == 0:
        found = _cgroup2() or _cgroup1()
        if found:
            return found
    if mode == "cgroup":
        raise ValueError("cgroups cannot hold the notebooks' limits here: the grader needs root and a cgroup v2 "
                         "root with memory and pids, or cgroup v1 memory and pids hierarchies it can write "
                         f"(running as uid {os.geteuid()})")
    return Confinement()


# ----------------------------------------------------------------------------- validation

def _rlimit_problem(kind: int, name: str, needed: float, option: str, show=str) -> str | None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY and hard < needed:
        return (f"{option} asks for {show(needed)}, but the grader's own hard limit ({name}) is {show(hard)}: "
                f"lower {option}, or raise that limit in the shell that starts the grader")
    return None


def check_limits(limits: Limits, confinement: Confinement, minimum: Minimum = MINIMUM) -> list[str]:
    """Everything wrong with `limits` on this machine, in words; [] when grading may start."""
    out = []
    for value, name in ((limits.wall_s, "--timeout"), (limits.cpu_s, "--cpu-time")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            out.append(f"{name} must be a positive number of seconds, got {value}")
    if out:
        return out
    floors = [
        (limits.wall_s < minimum.wall_s, f"--timeout {limits.wall_s:g} s is below the {minimum.wall_s:g} s"),
        (limits.cpu_s < minimum.cpu_s, f"--cpu-time {limits.cpu_s:g} s is below the {minimum.cpu_s:g} s"),
        (limits.memory_bytes < minimum.memory_bytes,
         f"--memory {limits.memory_bytes / GiB:g} GiB is below the {minimum.memory_bytes / GiB:g} GiB"),
        (limits.disk_bytes < minimum.disk_bytes,
         f"--disk {limits.disk_bytes / MiB:g} MiB is below the {minimum.disk_bytes / MiB:g} MiB"),
        (0 < limits.processes < minimum.processes,
         f"--processes {limits.processes} is below the {minimum.processes}"),
    ]
    out += [f"{what} minimum that the course's own solution notebooks need (measured in docs/grading.md): "
            "a correct notebook could fail" for bad, what in floors if bad]
    if limits.processes < 0:
        out.append(f"--processes must be 0 (no limit) or a positive count, got {limits.processes}")
    out += [p for p in (
        _rlimit_problem(resource.RLIMIT_AS, "ulimit -v", limits.memory_bytes, "--memory",
                        lambda b: f"{b / GiB:.2f} GiB"),
        _rlimit_problem(resource.RLIMIT_CPU, "ulimit -t", math.ceil(limits.cpu_s) + 1, "--cpu-time",
                        lambda s: f"{s:g} s"),
    ) if p]
    if confinement.kind == "rlimit" and limits.processes:
        if os.geteuid() == 0:
            out.append("--processes cannot be enforced here: the grader runs as root without cgroups it can use, "
                       "and Linux does not apply RLIMIT_NPROC to root. Run it as a regular user, or give it a "
                       "cgroup v2 root with memory and pids (e.g. a container with its own writable cgroup), or "
                       "pass --processes 0 to grade without a process limit")
        else:
            p = _rlimit_problem(resource.RLIMIT_NPROC, "ulimit -u", limits.processes, "--processes")
            if p:
                out.append(p)
    out += confinement.problems(limits)
    return out
