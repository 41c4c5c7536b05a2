"""One sandboxed worker process per notebook: bubblewrap namespaces, cgroup or rlimit caps, a wall clock.

    with Sandbox(Limits(wall_s=300)) as box:
        box.send({"op": "exec", "source": "x = 1"})
        reply = box.recv()          # raises Stopped(kind, message) when the worker is gone

The worker (`python -I -m cvae_lib.grade.worker`) runs under `bwrap` with every namespace
unshared (user, pid, network, ipc, uts, cgroup): it sees read-only copies of the Python install,
the virtual environment and the `cvae_lib` package, and nothing else of the machine: no network
(only its own loopback), no solutions, submissions or gradebook, and none of the grader's
environment: bwrap itself starts from `BWRAP_ENV`, the worker from `WORKER_ENV`. The sandbox's
root and /dev are read-only; the only writable places are one size-capped tmpfs (its working
folder, with /tmp inside it) and a size-capped /dev/shm.

Caps (`limits.py`): RLIMIT_AS (memory) and RLIMIT_CPU (processor time) on every process; the
notebook's cgroup (memory and process count for the whole tree) where the machine allows, else
RLIMIT_NPROC inside the sandbox's user namespace; the grader's clock caps its wall time. The
worker is the first process of its own PID namespace under `--die-with-parent`, so killing it
(or the grader dying) ends every process it started, including ones that called setsid.
"""
from __future__ import annotations

import fcntl
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from .limits import Box, Confinement, Limits, choose_confinement
from .wire import HEADER, MAX_FRAME, WireError, pack, unpack

__all__ = ["Limits", "Sandbox", "Stopped", "SandboxUnavailable", "require_bwrap", "tmp_is_separate", "INSTALL_HINT",
           "default_confinement"]

INSTALL_HINT = "apt-get install -y bubblewrap"
WORKDIR = "/notebook"        # the notebook's working folder inside the sandbox (a tmpfs)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here; the message says how to fix it."""


class Stopped(Exception):
    """The worker is gone or broke the protocol; `kind` in instructor words, `status` what the
    checks it could not run report."""

    def __init__(self, kind: str, message: str, status: str = "error"):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


def require_bwrap() -> str:
    """The path of a working `bwrap`, or SandboxUnavailable naming the fix."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "the grader runs student code only inside a bubblewrap sandbox, and `bwrap` is not installed: "
            f"install it with `{INSTALL_HINT}` (Debian/Ubuntu; `dnf install bubblewrap` on Fedora), then rerun.")
    probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", *_system_binds(), "--", sys.executable,
                            "-c", "pass"], capture_output=True, text=True, timeout=60, env=dict(BWRAP_ENV))
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"`bwrap --unshare-all` fails here ({probe.stderr.strip()[:300]}): this machine does not allow user, "
            "PID or network namespaces. Run the grader as root, enable unprivileged user namespaces "
            "(`sysctl kernel.unprivileged_userns_clone=1`, or on Ubuntu 24.04 "
            "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or in a container started with "
            "`--security-opt seccomp=unconfined`.")
    return bwrap


def _system_binds() -> list[str]:
    """Read-only binds of what Python, torch and the library need, at their own paths."""
    import cvae_lib
    args = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix),
             Path(cvae_lib.__file__).resolve().parent}
    for p in sorted(paths, key=lambda p: len(p.parts)):
        if not str(p).startswith(("/usr/", "/bin/", "/lib")):
            args += ["--ro-bind", str(p), str(p)]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
             "--ro-bind-try", "/etc/localtime", "/etc/localtime"]
    return args


# The worker's whole environment. bwrap itself is started with only BWRAP_ENV (not the grader's
# environment), because bwrap is PID 1 of the sandbox's PID namespace and its /proc/1/environ is
# readable from inside: an instructor's shell holds tokens and keys that must not reach a student.
WORKER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
              "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
BWRAP_ENV = {"PATH": WORKER_ENV["PATH"], "LANG": "C.UTF-8"}


def tmp_is_separate(binds: list[str] | None = None) -> bool:
    """True where the Python install or the course is under /tmp (a clone or venv there): its bind
    would hide a /tmp inside the folder's tmpfs, so /tmp is a tmpfs of its own, capped like the
    folder at `disk_bytes` (twice the disk a notebook can fill, instead of once)."""
    return any(a == "/tmp" or a.startswith("/tmp/") for a in (_system_binds() if binds is None else binds))


def bwrap_command(bwrap: str, limits: Limits) -> list[str]:
    """The full `bwrap ... python -I -m cvae_lib.grade.worker` command line.

    Writable inside: the tmpfs at WORKDIR (capped at `disk_bytes`; /tmp is its folder .tmp) and
    /dev/shm (capped at `shm_bytes`); the root bwrap builds and /dev are remounted read-only.
    """
    binds = _system_binds()
    if tmp_is_separate(binds):                  # an install under /tmp: /tmp gets its own capped tmpfs
        scratch = ["--size", str(int(limits.disk_bytes)), "--tmpfs", "/tmp"]
        tmp_link = []
    else:
        scratch, tmp_link = [], ["--dir", f"{WORKDIR}/.tmp", "--symlink", f"{WORKDIR}/.tmp", "/tmp"]
    return [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
            "--size", str(int(limits.disk_bytes)), "--tmpfs", WORKDIR, *scratch,   # first: binds win over them
            *binds, "--proc", "/proc", "--dev", "/dev",
            "--size", str(int(limits.shm_bytes)), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            *tmp_link, "--remount-ro", "/", "--chdir", WORKDIR,
            *[a for k, v in WORKER_ENV.items() for a in ("--setenv", k, v)],
            "--", sys.executable, "-I", "-m", "cvae_lib.grade.worker", "--processes", str(int(limits.processes))]


def _preexec(limits: Limits, box: Box):
    """preexec_fn: join the notebook's cgroups, then the memory and processor-time caps,
    inherited by everything inside (the process cap is set by the worker, inside the sandbox)."""
    cpu = max(1, math.ceil(limits.cpu_s))

    def apply():
        box.join()
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


@lru_cache(maxsize=1)
def default_confinement() -> Confinement:
    """The strongest confinement this machine allows (cgroups as root, else rlimits)."""
    return choose_confinement("auto")


class Sandbox:
    """A running worker and its two pipes, read and written against the notebook's deadline."""

    def __init__(self, limits: Limits, bwrap: str | None = None, confinement: Confinement | None = None):
        self.limits = limits
        self.deadline = time.monotonic() + limits.wall_s
        self._stderr, self.stderr_tail = tempfile.TemporaryFile(), ""
        command = bwrap_command(bwrap or require_bwrap(), limits)
        try:
            self.box = (confinement or default_confinement()).box(limits)
        except OSError as e:
            raise Stopped("sandbox failed", f"the notebook's cgroup could not be made ({e})") from None
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         preexec_fn=_preexec(limits, self.box), env=dict(BWRAP_ENV),
                                         start_new_session=True, close_fds=True)
        except (OSError, subprocess.SubprocessError) as e:
            self.box.close()
            raise Stopped("sandbox failed", f"the sandboxed worker could not be started ({e})") from None
        self.oom, self.peak = None, {}
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        fcntl.fcntl(self._in, fcntl.F_SETFL, fcntl.fcntl(self._in, fcntl.F_GETFL) | os.O_NONBLOCK)
        try:
            ready = self.recv()
        except Stopped as e:
            raise Stopped("sandbox failed", f"the sandboxed worker did not start: {e.message}; "
                                            f"its stderr: {self.stderr_tail}") from None
        if ready.get("op") != "ready":
            self._stop("tampering", "the sandboxed worker did not start with the expected handshake")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, message: dict) -> None:
        data = memoryview(pack(message))
        while data:
            self._wait(self._in, write=True)
            try:
                n = os.write(self._in, data)
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                self._died()
            data = data[n:]

    def recv(self) -> dict:
        (n,) = HEADER.unpack(self._read(HEADER.size))
        if n > MAX_FRAME:
            self._stop("tampering", f"the sandboxed process sent a {n >> 20} MB reply (over the "
                                    f"{MAX_FRAME >> 20} MB limit); student code writing to the grader's channel?")
        try:
            return unpack(self._read(n))
        except WireError as e:
            self._stop("tampering", f"the sandboxed process sent a reply the grader cannot read ({e}); "
                                    "student code writing to the grader's channel?")

    def close(self) -> None:
        """Kill the worker's process group (and with it its PID namespace), reap it, and remove
        its cgroup (killing anything left in it)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        if self.oom is None:
            self.oom = self.box.oom_killed()
            self.peak = self.box.peak()
        self.box.close()
        if not self._stderr.closed:
            self.stderr_tail = self._stderr_tail()
        for f in (self.proc.stdin, self.proc.stdout, self._stderr):
            try:
                f.close()
            except OSError:
                pass

    def oom_killed(self) -> bool:
        """Did the kernel kill a process of this notebook for its cgroup's memory limit?"""
        return self.oom if self.oom is not None else self.box.oom_killed()

    def _wait(self, fd: int, write: bool = False) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._stop("time limit", f"the notebook did not finish within {self.limits.wall_s:.0f} s "
                                     "(an endless loop or a long sleep?) and was stopped")
        ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
        if not any(ready):
            self._wait(fd, write)

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            self._wait(self._out)
            chunk = os.read(self._out, min(n - len(buf), 1 << 20))
            if not chunk:
                self._died()
            buf += chunk
        return bytes(buf)

    def _stop(self, kind: str, message: str):
        self.close()
        raise Stopped(kind, message)

    def _died(self):
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._stop(*exit_words(code, self.limits, self.oom_killed()))

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(max(0, self._stderr.seek(0, os.SEEK_END) - 600))
            return self._stderr.read(600).decode(errors="replace").strip() or "(empty)"
        except (OSError, ValueError):
            return "(unreadable)"


def exit_words(code: int | None, limits: Limits, oom: bool = False) -> tuple[str, str]:
    """(kind, message) for a worker that ended with `code` (bwrap reports a signal n as 128 + n);
    `oom`: the notebook's cgroup saw an out-of-memory kill."""
    sig = -code if code is not None and code < 0 else (code - 128 if code is not None and code > 128 else None)
    if sig not in set(signal.Signals):
        sig = None
    if oom:
        return "memory limit", (f"the notebook's processes together used more than the "
                                f"{limits.memory_bytes / 2**30:.1f} GiB memory limit, and the kernel stopped its "
                                "Python process")
    if sig == signal.SIGXCPU:
        return "CPU time limit", (f"the notebook used more than {limits.cpu_s:.0f} s of processor time "
                                  "(an endless loop?) and was stopped")
    if sig == signal.SIGKILL:
        return "crashed", "the notebook's Python process was killed (SIGKILL; often the machine running out of memory)"
    if sig is not None:
        return "crashed", f"the notebook's Python process died from signal {signal.Signals(sig).name} (a native crash?)"
    if code is None:
        return "crashed", "the notebook's Python process closed the grader's channel and did not exit"
    return "crashed", (f"the student's code ended the notebook's Python process (exit code {code}: "
                       "os._exit, sys.exit or a crash)")
