"""What travels between the grader and a sandboxed worker: data only, never code.

A message is a dict of plain values (None, bool, int, float, str, lists, dicts) and tensors,
framed as an 8-byte length and `torch.save` bytes, read back with `torch.load(weights_only=True)`,
which builds nothing but those types. Values that are not plain travel as tagged dicts:

    {"tag": "tensor", "value": t, "grad": bool}        a dense tensor (detached), requires_grad
    {"tag": "tuple" | "list", "items": [...]}
    {"tag": "dict", "items": [[key, value], ...]}      str or int keys
    {"tag": "generator", "state": uint8 tensor}        a torch.Generator, rebuilt from its state
    {"tag": "module", "kind": "Bottleneck", "init": {...}, "state": {...}, "training": bool}
                                                       one of `MODULES`, rebuilt from its config
    {"tag": "callback", "id": int}                     a function that stays with the grader
    {"tag": "opaque", "type": "ndarray"}               anything else: only its type name

`decode` checks every field, so a malformed frame from student code raises `WireError`; the
grader never trusts a value beyond being data of these types. Sizes are checked before any work:
a frame is at most `MAX_FRAME` bytes, a message at most `MAX_ELEMENTS` tensor elements and
`MAX_ITEMS` values, and every tensor must own its contiguous data (a broadcast view, stride 0
over one number, would otherwise stand for gigabytes that the first operation materialises).
"""
from __future__ import annotations

import importlib
import io
import struct
from collections.abc import Callable
from dataclasses import asdict, is_dataclass

import torch

__all__ = ["WireError", "MODULES", "Opaque", "encode", "decode", "pack", "unpack", "tensors_in", "MAX_FRAME",
           "MAX_ELEMENTS", "MAX_ITEMS"]

MAX_FRAME = 64 << 20           # bytes; a bigger reply is refused, not read into memory
MAX_ELEMENTS = 1 << 24         # tensor elements in one message (64 MB of float32)
MAX_ITEMS = 100_000            # values (tensors, numbers, list items) in one message
HEADER = struct.Struct("!Q")
_PLAIN = (type(None), bool, int, float, str)
_DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
           torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool}
# Modules a check may hand to the student's function: (module path, class, config class or None).
MODULES = {
    "Bottleneck": ("cvae_lib.models.blocks", "Bottleneck", None),
    "CVAE": ("cvae_lib.models.cvae", "CVAE", "CVAEConfig"),
    "FirstStage": ("cvae_lib.models.first_stage", "FirstStage", "FirstStageConfig"),
}


class WireError(ValueError):
    """A frame or value that is not what the protocol allows."""


class Opaque:
    """Stands in for a value that cannot travel; only its type name arrives."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (not sent by the sandbox)>"


def pack(message: dict) -> bytes:
    """One frame: length + torch.save bytes."""
    buf = io.BytesIO()
    torch.save(message, buf)
    data = buf.getvalue()
    return HEADER.pack(len(data)) + data


def unpack(data: bytes) -> dict:
    """The message in a frame body, or WireError; `weights_only` builds no other objects."""
    try:
        message = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:
        raise WireError(f"unreadable frame: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(message, dict):
        raise WireError(f"a frame must hold a dict, got {type(message).__name__}")
    return message


def _module_init(m: torch.nn.Module) -> dict:
    """The constructor arguments that rebuild `m` (its weights travel separately)."""
    if type(m).__name__ == "Bottleneck":
        return {"c_in": m.c1.in_channels, "c_out": m.c4.out_channels, "residual": bool(m.residual)}
    if not is_dataclass(getattr(m, "cfg", None)):
        raise WireError(f"cannot send a {type(m).__name__}: it has no config dataclass")
    return {"cfg": asdict(m.cfg)}


def encode(value, callbacks: dict[int, Callable] | None = None, depth: int = 0):
    """`value` as plain data. Callables go into `callbacks` (grader side) as {"tag": "callback"};
    without `callbacks` (the worker) they, and modules, become opaque: a module travels only from
    the grader to the worker (a student's function returns weights as a state_dict of tensors)."""
    if depth > 20:
        return {"tag": "opaque", "type": "deeply nested value"}
    if type(value) in _PLAIN:
        return value
    for kind in (bool, int, float, str):      # subclasses (numpy.float64, IntEnum) as the plain type
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.dtype not in _DTYPES or value.is_quantized:
            return {"tag": "opaque", "type": f"Tensor({value.layout}, {value.dtype})"}
        return {"tag": "tensor", "value": value.detach().cpu().contiguous().clone(),
                "grad": bool(value.requires_grad)}
    if isinstance(value, (tuple, list)):
        return {"tag": type(value).__name__ if type(value) in (tuple, list) else "tuple",
                "items": [encode(v, callbacks, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"tag": "dict", "items": [[k if isinstance(k, (str, int)) else repr(k),
                                          encode(v, callbacks, depth + 1)] for k, v in value.items()]}
    if isinstance(value, torch.Generator):
        return {"tag": "generator", "state": value.get_state()}
    if isinstance(value, torch.nn.Module) and type(value).__name__ in MODULES and callbacks is not None:
        return {"tag": "module", "kind": type(value).__name__, "init": _module_init(value),
                "state": {k: v.detach().clone() for k, v in value.state_dict().items()},
                "training": bool(value.training)}
    if callable(value) and callbacks is not None:
        callbacks[id(value)] = value
        return {"tag": "callback", "id": id(value)}
    return {"tag": "opaque", "type": type(value).__name__}


def tensors_in(value, depth: int = 0) -> list[torch.Tensor]:
    """The tensors `encode(value)` sends, in the order it visits them (modules' weights excluded)."""
    if depth > 20:
        return []
    if isinstance(value, torch.Tensor):
        ok = value.layout == torch.strided and value.dtype in _DTYPES and not value.is_quantized
        return [value] if ok else []
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v, depth + 1)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v, depth + 1)]
    return []


def _opaque(name) -> Opaque:
    name = name if isinstance(name, str) and name.isidentifier() else "UnsupportedValue"
    return type(name, (Opaque,), {})()


def _field(d: dict, key: str, kind):
    if key not in d or not isinstance(d[key], kind):
        raise WireError(f"field {key!r} missing or not {kind}")
    return d[key]


def build_module(kind: str, init: dict, state: dict, training: bool) -> torch.nn.Module:
    """Rebuild one of `MODULES` from its config and weights (the worker side)."""
    if kind not in MODULES:
        raise WireError(f"unknown module kind {kind!r}")
    path, cls_name, cfg_name = MODULES[kind]
    lib = importlib.import_module(path)
    if cfg_name is None:
        model = getattr(lib, cls_name)(**init)
    else:
        from ..configs import config_from_dict
        model = getattr(lib, cls_name)(config_from_dict(getattr(lib, cfg_name), init["cfg"]))
    model.load_state_dict(state)
    return model.train(training)


class _Budget:
    """What one message may still hold."""

    def __init__(self):
        self.elements, self.items = MAX_ELEMENTS, MAX_ITEMS

    def take(self, elements: int = 0) -> None:
        self.elements -= elements
        self.items -= 1
        if self.elements < 0 or self.items < 0:
            raise WireError(f"a message may hold at most {MAX_ELEMENTS} tensor elements and {MAX_ITEMS} values")


def _own_data(t: torch.Tensor) -> bool:
    """True if `t` is exactly its own contiguous storage (no offset, no stride-0 broadcast)."""
    return (t.is_contiguous() and t.storage_offset() == 0
            and t.untyped_storage().nbytes() == t.numel() * t.element_size())


def decode(value, on_tensor: Callable | None = None, on_callback: Callable | None = None,
           on_module: Callable | None = None, depth: int = 0, budget: _Budget | None = None):
    """Plain data back to values; every tag and field is checked (WireError otherwise).

    `on_tensor(t, grad)`, `on_callback(id)` and `on_module(kind, init, state, training)` decide
    what tensors, callbacks and modules become on this side; by default tensors arrive detached,
    and callbacks and modules are refused.
    """
    if depth > 24:
        raise WireError("value nested too deeply")
    budget = budget or _Budget()
    budget.take()
    if type(value) in _PLAIN:
        return value
    if not isinstance(value, dict):
        raise WireError(f"unexpected {type(value).__name__} in a message")
    tag = value.get("tag")
    sub = lambda v: decode(v, on_tensor, on_callback, on_module, depth + 1, budget)  # noqa: E731
    if tag == "tensor":
        t = _field(value, "value", torch.Tensor)
        if type(t) is not torch.Tensor or t.layout != torch.strided or t.dtype not in _DTYPES:
            raise WireError("only dense tensors of plain dtypes may travel")
        budget.take(t.numel())
        if not _own_data(t):
            raise WireError(f"a tensor of shape {tuple(t.shape)} arrived as a view of other data (strides "
                            f"{t.stride()}); only a tensor's own contiguous values may travel")
        grad = bool(value.get("grad", False))
        return on_tensor(t, grad) if on_tensor else t.detach()
    if tag in ("tuple", "list"):
        items = [sub(v) for v in _field(value, "items", list)]
        return tuple(items) if tag == "tuple" else items
    if tag == "dict":
        pairs = _field(value, "items", list)
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int)) for p in pairs):
            raise WireError("dict items must be [key, value] pairs with str or int keys")
        return {k: sub(v) for k, v in pairs}
    if tag == "generator":
        g = torch.Generator()
        try:
            g.set_state(_field(value, "state", torch.Tensor))
        except (RuntimeError, TypeError) as e:
            raise WireError(f"not a generator state ({str(e)[:100]})") from None
        return g
    if tag == "opaque":
        return _opaque(value.get("type"))
    if tag == "callback" and on_callback:
        return on_callback(_field(value, "id", int))
    if tag == "module" and on_module:
        state = _field(value, "state", dict)
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise WireError("module state must map names to tensors")
        return on_module(_field(value, "kind", str), _field(value, "init", dict), state,
                         bool(value.get("training", False)))
    raise WireError(f"tag {tag!r} not allowed here")
