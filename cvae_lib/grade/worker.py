"""The sandboxed side of the grader: runs one student's cells and calls their functions.

Started by `cvae_lib.grade.sandbox` inside bubblewrap as `python -I -m cvae_lib.grade.worker`;
it speaks `cvae_lib.grade.wire` frames on its stdin/stdout and never decides a grade: it only
runs what the grader asks and sends back plain data. Requests and replies:

    {"op": "exec", "source"}                      -> {"op": "done", "error": None | {"type", "message"}}
    {"op": "call", "name", "args", "kwargs", "grad"}
                                                  -> {"op": "result", "value", "handle"} | {"op": "raised", "error"}
       (while it runs: {"op": "callback", "id", "args", "kwargs"} <- {"op": "callback_result" | "callback_raised"})
    {"op": "vjp", "handle", "cotangent"}          -> {"op": "result", "value": [grad or None, ...]}

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


class Channel:
    """Frames in and out over the two pipes."""

    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile

    def send(self, message: dict) -> None:
        from .wire import MAX_FRAME, pack
        frame = pack(message)
        if len(frame) > MAX_FRAME:
            frame = pack({"op": "raised", "error": {
                "type": "ValueError", "message": f"the value is too large to check ({len(frame) >> 20} MB)"}})
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

    def exec(self, request: dict) -> dict:
        result = self.shell.run_cell(str(request.get("source", "")), store_history=False)
        err = result.error_before_exec or result.error_in_exec
        return {"op": "done", "error": _error(err) if err is not None else None}

    def call(self, request: dict) -> dict:
        import torch

        from .wire import build_module, decode, encode
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
        try:
            with torch.set_grad_enabled(grad):
                out = fn(*args, **kwargs)
        except (Exception, SystemExit) as e:
            return {"op": "raised", "error": _error(e)}
        handle = None
        if leaves and isinstance(out, torch.Tensor) and out.requires_grad:
            handle, self.next_handle = self.next_handle, self.next_handle + 1
            self.handles = {k: v for k, v in self.handles.items() if k > handle - 8}
            self.handles[handle] = (out, leaves)
        return {"op": "result", "value": encode(out), "handle": handle}

    def vjp(self, request: dict) -> dict:
        import torch

        from .wire import decode, encode
        out, leaves = self.handles[int(request.get("handle"))]
        grads = torch.autograd.grad(out, leaves, decode(request.get("cotangent")), allow_unused=True,
                                    retain_graph=True)
        return {"op": "result", "value": encode(list(grads))}

    def serve(self) -> None:
        ops = {"exec": self.exec, "call": self.call, "vjp": self.vjp}
        while (request := self.channel.recv()) is not None:
            op = ops.get(request.get("op"))
            try:
                reply = op(request) if op else {"op": "raised", "error": {"type": "ValueError", "message": "bad op"}}
            except (Exception, SystemExit) as e:
                reply = {"op": "raised", "error": _error(e)}
            self.channel.send(reply)


def main() -> None:
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
