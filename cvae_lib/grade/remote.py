"""The grader's view of a sandboxed notebook: run a cell there, call a student function there.

`RemoteFunction` stands in for the student's function when the grader calls a check of
`cvae_lib.checks` in its own process: each call sends the arguments (tensors, numbers, the
check's small modules, a generator's state) to the worker, which calls the student's function
and sends back the value, data only. So the property tests, the reference values and the
verdict all stay in the grader, where no student code runs.

Two things the checks need beyond plain values:

* functions passed *to* the student's function (ex04's spy model, ex06's guided model) stay in
  the grader as callbacks: the worker asks the grader to call them with the tensors it gives;
* gradients *through* the student's function (ex02: "gradients flow to mu and logvar"): the
  value comes back attached to the grader's inputs by `_RemoteGrad`, whose backward asks the
  worker for the vector-Jacobian product of that call with the incoming gradient.

The grader's own process never does unbounded work on what the student's code produced: replies
are size-checked as they are read (`wire.py`), and a callback is refused, before it runs, when
the tensors the student's code hands it are over `CALLBACK_ELEMENTS` each or could broadcast to
more than `CALLBACK_BROADCAST` elements together (the product of their sizes bounds any
elementwise result).
"""
from __future__ import annotations

import torch

from ..checks import CheckNotRun
from .sandbox import Limits, Sandbox, Stopped
from .wire import WireError, decode, encode

__all__ = ["Remote", "RemoteFunction", "CALLBACK_ELEMENTS", "CALLBACK_BROADCAST"]

CALLBACK_ELEMENTS = 1 << 20      # elements of one tensor handed to a grader's callback
CALLBACK_BROADCAST = 1 << 24     # product of the sizes of all of them (bounds a broadcast result)


class Remote:
    """A notebook's worker, or the reason it is gone (`stopped`); requests fail fast after that."""

    def __init__(self, limits: Limits | None = None, stopped: Stopped | None = None, bwrap: str | None = None,
                 confinement=None):
        self.box, self.stopped = None, stopped
        if stopped is None:
            try:
                self.box = Sandbox(limits or Limits(), bwrap, confinement)
            except Stopped as e:
                self.stopped = e

    def trace(self, paths: list[str]) -> list[str]:
        """Have the worker watch these library functions (before any cell runs); the paths it
        could not find (a checks module naming a function that does not exist)."""
        if not paths or self.stopped is not None:
            return []
        try:
            reply = self.request({"op": "trace", "paths": list(paths)})
        except Stopped:
            return []
        missing = reply.get("missing")
        if reply.get("op") != "traced" or not isinstance(missing, list):
            self._violation("a trace reply of the wrong form")
        return [str(m)[:200] for m in missing[:50]]

    def close(self) -> None:
        if self.box is not None:
            self.box.close()

    def exec(self, source: str) -> dict | None:
        """Run one cell; its error as {"type", "message"} or None (Stopped when the worker is gone)."""
        reply = self.request({"op": "exec", "source": source})
        err = reply.get("error")
        if reply.get("op") != "done" or not (err is None or isinstance(err, dict)):
            self._violation("an exec reply of the wrong form")
        return err

    def request(self, message: dict, callbacks: dict | None = None) -> dict:
        """Send one request and return its reply, serving the worker's callbacks meanwhile."""
        if self.stopped is not None:
            raise self.stopped
        try:
            self.box.send(message)
            while (reply := self.box.recv()).get("op") == "callback":
                self.box.send(self._serve(reply, callbacks or {}))
            return reply
        except Stopped as e:
            self.stopped = e
            raise

    def vjp(self, handle: int, cotangents: list, inputs: list[tuple]) -> list:
        """Gradients w.r.t. the inputs of call `handle`, for `cotangents` on its outputs."""
        try:
            reply = self.request({"op": "vjp", "handle": handle, "cotangents": encode(list(cotangents))})
        except Stopped as e:
            raise CheckNotRun(e.status, e.message) from None
        if reply.get("op") != "result":
            raise _student_exception(reply.get("error"), ("error", "the gradient could not be computed"))
        grads = self._decode(reply.get("value"))
        if not isinstance(grads, list) or len(grads) != len(inputs):
            raise RuntimeError("the sandbox sent back the wrong number of gradients")
        for g, (shape, _) in zip(grads, inputs):
            if g is not None and (not isinstance(g, torch.Tensor) or g.shape != shape):
                raise RuntimeError(f"the sandbox sent back a gradient of the wrong shape for an input of {shape}")
        return [None if g is None else g.to(dtype) for g, (_, dtype) in zip(grads, inputs)]

    def _serve(self, request: dict, callbacks: dict) -> dict:
        """Call one of the grader's own functions for the worker (its inputs are data)."""
        fn = callbacks.get(request.get("id"))
        if fn is None:
            self._violation("a callback the grader never sent")
        args, kwargs = self._decode(request.get("args")), self._decode(request.get("kwargs"))
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            self._violation("callback arguments of the wrong form")
        too_big = _callback_size_problem(args, kwargs)
        if too_big:
            return {"op": "callback_raised", "error": {"type": "ValueError", "message": too_big}}
        try:
            with torch.no_grad():
                return {"op": "callback_result", "value": encode(fn(*args, **kwargs))}
        except Exception as e:
            return {"op": "callback_raised", "error": {"type": type(e).__name__, "message": str(e)[:500]}}

    def _decode(self, value, on_tensor=None):
        try:
            return decode(value, on_tensor)
        except WireError as e:
            self._violation(str(e))

    def _violation(self, what: str):
        self.close()
        self.stopped = Stopped("tampering", f"the sandboxed process broke the grader's protocol ({what}); "
                                            "student code writing to the grader's channel?")
        raise self.stopped


def _student_exception(err, missing: tuple[str, str]) -> Exception:
    """The exception the student's function raised, rebuilt as data: its type name and message."""
    err = err if isinstance(err, dict) else {}
    kind, message = str(err.get("type", "Exception")), str(err.get("message", ""))[:1000]
    if kind == "Undefined":
        return CheckNotRun(*missing)
    if kind == "NotImplementedError":
        return NotImplementedError(message)
    if kind == "AssertionError":
        return AssertionError(message)
    return type(kind if kind.isidentifier() else "StudentError", (Exception,), {})(message)


def _callback_size_problem(args: tuple, kwargs: dict) -> str | None:
    """Why the grader refuses to run a callback on these tensors, or None (checked before any work)."""
    sizes = [t.numel() for t in _tensors((args, kwargs), [])]
    if any(n > CALLBACK_ELEMENTS for n in sizes):
        return (f"the grader refuses to call the check's model with a tensor of {max(sizes)} elements "
                f"(at most {CALLBACK_ELEMENTS}): pass it tensors the size of the check's inputs")
    product = 1
    for n in sizes:
        product = min(product * max(n, 1), CALLBACK_BROADCAST + 1)
    if product > CALLBACK_BROADCAST:
        return (f"the grader refuses to call the check's model with tensors of {sizes} elements: together they "
                f"could broadcast to over {CALLBACK_BROADCAST} elements; pass it tensors of the check's shapes")
    return None


def _tensors(value, found: list) -> list:
    """Tensors in `value` in the order `wire.encode` visits them (modules' weights excluded)."""
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _tensors(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _tensors(v, found)
    return found


class _RemoteGrad(torch.autograd.Function):
    """Identity on the worker's output tensors in the forward pass; backward asks the worker."""

    @staticmethod
    def forward(ctx, remote, handle, n_out, *tensors):
        ctx.remote, ctx.handle, ctx.n_out = remote, handle, n_out
        ctx.inputs = [(i.shape, i.dtype) for i in tensors[n_out:]]
        return tuple(t.clone() for t in tensors[:n_out])

    @staticmethod
    def backward(ctx, *grads):
        return (None, None, None, *[None] * ctx.n_out, *ctx.remote.vjp(ctx.handle, grads, ctx.inputs))


def _substitute(value, new: dict):
    """`value` with each tensor whose id is in `new` replaced (tuples, lists and dicts rebuilt)."""
    if isinstance(value, torch.Tensor):
        return new.get(id(value), value)
    if isinstance(value, (tuple, list)):
        return type(value)(_substitute(v, new) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, new) for k, v in value.items()}
    return value


class RemoteFunction:
    """Calls the student's function `name` in the worker; `missing` = (status, message) if undefined."""

    def __init__(self, remote: Remote, name: str, missing: tuple[str, str], references: tuple[str, ...] = ()):
        self.remote, self.name, self.__name__, self.missing = remote, name, name, missing
        self.references, self.used = frozenset(references), set()   # library implementations watched / called

    def __call__(self, *args, **kwargs):
        grad = torch.is_grad_enabled()
        callbacks: dict = {}
        request = {"op": "call", "name": self.name, "args": encode(args, callbacks),
                   "kwargs": encode(kwargs, callbacks), "grad": grad}
        try:
            reply = self.remote.request(request, callbacks)
            called = reply.get("references")
            if isinstance(called, list):
                self.used |= self.references & {c for c in called if isinstance(c, str)}
            if reply.get("op") == "raised":
                raise _student_exception(reply.get("error"), self.missing)
            if reply.get("op") != "result":
                self.remote._violation("a call reply of the wrong form")
            outs = []
            value = self.remote._decode(reply.get("value"), lambda t, g: outs.append(t) or t if g else t)
        except Stopped as e:
            raise CheckNotRun(e.status, e.message) from None
        inputs = [t for t in _tensors((args, kwargs), []) if t.requires_grad] if grad else []
        outs = [t for t in outs if t.is_floating_point()]
        handle = reply.get("handle")
        if inputs and outs and type(handle) is int:
            attached = _RemoteGrad.apply(self.remote, handle, len(outs), *outs, *inputs)
            attached = attached if isinstance(attached, tuple) else (attached,)
            value = _substitute(value, {id(t): a for t, a in zip(outs, attached)})
        return value
