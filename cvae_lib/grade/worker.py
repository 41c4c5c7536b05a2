"""The sandboxed side of the grader: runs one student's cells and calls their functions.

Started by `cvae_lib.grade.sandbox` inside bubblewrap as `python -I -m cvae_lib.grade.worker`;
it speaks `cvae_lib.grade.wire` frames on its stdin/stdout and never decides a grade: it only
runs what the grader asks and sends back plain data. Requests and replies:

    {"op": "exec", "source"}                      -> {"op": "done", "error": None | {"type", "message"}}
    {"op": "call", "name", "args", "kwargs", "grad"}
                                                  -> {"op": "result", "value", "handle"} | {"op": "raised", "error"}
       (while it runs: {"op": "callback", "id", "args", "kwargs"} <- {"op": "callback_result" | "callback_raised"})
    {"op": "vjp", "handle", "cotangents"}         -> {"op": "result", "value": [grad or None, ...]}
       (a cotangent per output tensor that requires grad, in the order the result encoded them)
    {"op": "trace", "paths": [dotted path, ...]}  -> {"op": "traced", "missing": [path, ...]}

`trace` (sent before any cell runs) wraps the library functions that implement graded tasks
(the checks modules' `REFERENCES`); every call reply then lists, under "references", those of
them that ran while the student's function was being called. The grader decides what that means.

Everything here runs in the same process as student code, so none of it is trusted: a student
can rewrite this module's behaviour, which only changes the data the grader receives.
"""
from __future__ import annotations

import os
import sys


def _private_channel():
    """The protocol's pipes on fresh descriptors; stdin and stdout become /dev/null, so student
    prints cannot corrupt a frame (stderr follows once the imports are done)."""
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    return os.fdopen(rfd, "rb", buffering=0), os.fdopen(wfd, "wb", buffering=0), null


def _elements(value, depth: int = 0) -> int:
    """The tensor elements in an encoded message."""
    import torch
    if isinstance(value, torch.Tensor):
        return value.numel()
    if depth > 30:
        return 0
    if isinstance(value, dict):
        return sum(_elements(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_elements(v, depth + 1) for v in value)
    return 0


class Channel:
    """Frames in and out over the two pipes."""

    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile

    def send(self, message: dict) -> None:
        from .wire import MAX_ELEMENTS, MAX_FRAME, pack
        elements = _elements(message)
        frame = pack(message) if elements <= MAX_ELEMENTS else b""
        if elements > MAX_ELEMENTS or len(frame) > MAX_FRAME:
            size = f"{len(frame) >> 20} MB" if frame else f"{elements} tensor elements"
            frame = pack({"op": "raised", "error": {
                "type": "ValueError", "message": f"the value is too large for the grader to check ({size}; at most "
                                                 f"{MAX_FRAME >> 20} MB and {MAX_ELEMENTS} elements)"}})
        self.wfile.write(frame)

    def recv(self) -> dict | None:
        from .wire import HEADER, unpack
        head = self._read(HEADER.size)
        if head is None:
            return None
        (n,) = HEADER.unpack(head)
        body = self._read(n)
        return None if body is None else unpack(body)

    def _read(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.rfile.read(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf


def _error(e: BaseException) -> dict:
    return {"type": type(e).__name__, "message": str(e)[:2000]}


_RAISABLE = {"TypeError": TypeError, "ValueError": ValueError, "IndexError": IndexError,
             "RuntimeError": RuntimeError, "KeyError": KeyError}


class Callback:
    """A function that stays with the grader (a check's spy model): calling it asks the grader."""

    def __init__(self, channel: Channel, ident: int):
        self.channel, self.ident = channel, ident

    def __call__(self, *args, **kwargs):
        from .wire import decode, encode
        self.channel.send({"op": "callback", "id": self.ident, "args": encode(args), "kwargs": encode(kwargs)})
        reply = self.channel.recv()
        if reply is None:
            raise SystemExit(0)
        if reply.get("op") == "callback_result":
            return decode(reply.get("value"))
        err = reply.get("error") or {}
        raise _RAISABLE.get(err.get("type"), RuntimeError)(str(err.get("message")))


class Tracer:
    """Wraps library functions so that a call of one while `active` is recorded in `hits`."""

    def __init__(self):
        self.active, self.hits = False, set()

    def install(self, paths: list) -> list[str]:
        """Wrap each `cvae_lib...` dotted path (a function, or a method of a class); the paths
        that do not name one are returned."""
        return [str(p) for p in paths if not (isinstance(p, str) and p.startswith("cvae_lib.") and self._wrap(p))]

    def _wrap(self, path: str) -> bool:
        import importlib
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):        # the longest importable module prefix
            try:
                owner = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for name in parts[i:-1]:
                    owner = getattr(owner, name)
                raw = vars(owner).get(parts[-1], getattr(owner, parts[-1]))
            except (AttributeError, TypeError):
                return False
            return self._replace(owner, parts[-1], raw, path)
        return False

    def _replace(self, owner, attr: str, raw, path: str) -> bool:
        import functools
        import types
        kind = type(raw) if isinstance(raw, (staticmethod, classmethod)) else None
        fn = raw.__func__ if kind else raw.fget if isinstance(raw, property) else raw
        if not callable(fn):
            return False
        tracer = self

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            if tracer.active:
                tracer.hits.add(path)
            return fn(*args, **kwargs)

        new = kind(traced) if kind else property(traced, raw.fset, raw.fdel) if isinstance(raw, property) else traced
        setattr(owner, attr, new)
        if isinstance(owner, types.ModuleType):          # `from x import f` copies elsewhere in the library
            for mod in [m for name, m in sys.modules.items() if name.startswith("cvae_lib") and m is not None]:
                for key, value in list(vars(mod).items()):
                    if value is raw:
                        setattr(mod, key, traced)
        return True


class Worker:
    """The student's namespace (an IPython shell, so magics work) and the calls into it."""

    def __init__(self, channel: Channel):
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        config = Config()
        config.HistoryManager.enabled = False
        self.shell = InteractiveShell.instance(config=config)
        self.channel = channel
        self.handles: dict[int, tuple] = {}      # call handle -> (output, leaves) for gradients
        self.next_handle = 0
        self.tracer = Tracer()

    def trace(self, request: dict) -> dict:
        paths = request.get("paths")
        return {"op": "traced", "missing": self.tracer.install(paths if isinstance(paths, list) else [])}

    def exec(self, request: dict) -> dict:
        result = self.shell.run_cell(str(request.get("source", "")), store_history=False)
        err = result.error_before_exec or result.error_in_exec
        return {"op": "done", "error": _error(err) if err is not None else None}

    def call(self, request: dict) -> dict:
        import torch

        from .wire import build_module, decode, encode, tensors_in
        fn = self.shell.user_ns.get(str(request.get("name")))
        if not callable(fn):
            return {"op": "raised", "error": {"type": "Undefined", "message": f"{request.get('name')} is not defined"}}
        grad = bool(request.get("grad"))
        leaves = []

        def on_tensor(t, wants_grad):
            if grad and wants_grad and t.is_floating_point():
                t = t.clone().requires_grad_(True)
                leaves.append(t)
            return t

        hooks = dict(on_tensor=on_tensor, on_callback=lambda i: Callback(self.channel, i), on_module=build_module)
        args, kwargs = decode(request.get("args"), **hooks), decode(request.get("kwargs"), **hooks)
        self.tracer.active, self.tracer.hits = True, set()
        try:
            with torch.set_grad_enabled(grad):
                out = fn(*args, **kwargs)
        except (Exception, SystemExit) as e:
            return {"op": "raised", "error": _error(e), "references": sorted(self.tracer.hits)}
        finally:
            self.tracer.active = False
        handle, outs = None, [t for t in tensors_in(out) if t.requires_grad and t.is_floating_point()]
        if leaves and outs:
            handle, self.next_handle = self.next_handle, self.next_handle + 1
            self.handles = {k: v for k, v in self.handles.items() if k > handle - 8}
            self.handles[handle] = (outs, leaves)
        return {"op": "result", "value": encode(out), "handle": handle, "references": sorted(self.tracer.hits)}

    def vjp(self, request: dict) -> dict:
        import torch

        from .wire import decode, encode
        outs, leaves = self.handles[int(request.get("handle"))]
        cotangents = decode(request.get("cotangents"))
        pairs = [(o, c) for o, c in zip(outs, cotangents) if isinstance(c, torch.Tensor)]
        if not pairs:
            return {"op": "result", "value": encode([None] * len(leaves))}
        grads = torch.autograd.grad([o for o, _ in pairs], leaves, [c for _, c in pairs], allow_unused=True,
                                    retain_graph=True)
        return {"op": "result", "value": encode(list(grads))}

    def serve(self) -> None:
        ops = {"exec": self.exec, "call": self.call, "vjp": self.vjp, "trace": self.trace}
        while (request := self.channel.recv()) is not None:
            op = ops.get(request.get("op"))
            try:
                reply = op(request) if op else {"op": "raised", "error": {"type": "ValueError", "message": "bad op"}}
            except (Exception, SystemExit) as e:
                reply = {"op": "raised", "error": _error(e)}
            self.channel.send(reply)


def _cap_processes(argv: list[str]) -> None:
    """RLIMIT_NPROC for everything started from here, set inside the sandbox's own user namespace,
    where it counts only this notebook's processes and threads (soft = hard: it cannot be raised)."""
    import resource
    if "--processes" in argv:
        n = int(argv[argv.index("--processes") + 1])
        if n > 0:
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))


def main() -> None:
    _cap_processes(sys.argv)
    rfile, wfile, null = _private_channel()
    # the imports below fail loudly on stderr, which the grader shows
    import torch
    torch.set_num_threads(1)
    channel = Channel(rfile, wfile)
    worker = Worker(channel)
    os.dup2(null, 2)                  # from here on student code runs: nothing reaches the grader's stderr
    sys.stdout, sys.stderr = open(os.devnull, "w"), open(os.devnull, "w")
    channel.send({"op": "ready"})
    worker.serve()


if __name__ == "__main__":
    main()
