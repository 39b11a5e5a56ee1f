"""The full state of a batched engine (or any object graph of the batched modules), captured and put back.

:func:`capture` walks an object's attributes and keeps what the next step reads: tensors (cloned), ``torch.Generator``
states, optimizers' ``state_dict()``, numbers, strings, and the lists, tuples, dicts and objects of
``rl_adaloss.batched`` that hold them; it leaves out functions, classes, gym spaces and the like, which a freshly
built engine of the same configs already has. :func:`restore` writes a capture back into such a freshly built
object: tensors in place (``copy_``, so that every alias, such as a parameter held by the policy's layer list and by
its optimizer, sees the restored value), generators by ``set_state``, optimizers by ``load_state_dict``.

An object of these modules whose state is not in such attributes (the gymnasium fallback's envs, whose state lives
in gymnasium and in a physics engine) gives it itself: if its class defines ``get_state()`` and ``set_state(state)``,
:func:`capture` keeps ``get_state()`` and :func:`restore` calls ``set_state``.

The walk is generic on purpose: it does not name the engine's attributes, so an engine whose internals change still
checkpoints completely, as long as its state lives in attributes of that kind. ``SKIPPED`` names the attributes
that are derived anew each rollout (the rollout buffer, the last update's statistics).
"""

from __future__ import annotations

import pickle
from typing import Any

import torch
from torch import Tensor

__all__ = ["capture", "restore", "restore_value", "dumps", "loads", "SKIPPED"]

#: Attributes rebuilt at every rollout or update, not state: the rollout buffer, the last update's statistics, and
#: an optimizer's gradient buffer, its columns and views (``MemberOptimizer.grad_buffer``: scratch that every
#: minibatch's backward rewrites; a restored copy would no longer be the views of its buffer).
SKIPPED = frozenset({"rollout", "stats", "grad_buffer", "grad_columns", "grad_views"})
_MODULES = ("rl_adaloss.batched", "rl_adaloss.optim")


class _Opaque:
    """A value the walk does not keep (a function, a class, a gym space): restore leaves the current one."""

    def __repr__(self) -> str:
        return "<opaque>"


OPAQUE = _Opaque()


def _ours(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith(_MODULES) and hasattr(value, "__dict__") and not isinstance(value, type)


def _gives_own_state(value: Any) -> bool:
    return callable(getattr(type(value), "get_state", None)) and callable(getattr(type(value), "set_state", None))


def capture(value: Any, _seen: dict[int, Any] | None = None) -> Any:
    """A picklable capture of ``value``'s state (see the module's docstring)."""
    seen = {} if _seen is None else _seen
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, Tensor):
        return ("tensor", value.detach().clone())
    if isinstance(value, torch.Generator):
        return ("generator", value.get_state(), str(value.device))
    if isinstance(value, torch.optim.Optimizer):
        return ("optimizer", value.state_dict())
    if isinstance(value, (list, tuple)):
        return ("list" if isinstance(value, list) else "tuple", [capture(v, seen) for v in value])
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            return OPAQUE
        return ("dict", {k: capture(v, seen) for k, v in value.items()})
    if _ours(value) and _gives_own_state(value):
        return ("own_state", value.get_state())
    if _ours(value):
        if id(value) in seen:
            return OPAQUE  # a back-reference (the evaluator's engine): captured where it was first met
        seen[id(value)] = value
        return ("object", {name: capture(v, seen) for name, v in vars(value).items()
                           if name not in SKIPPED and not callable(v)})
    return OPAQUE


def _device_of(current: Any, saved: Tensor) -> torch.device:
    return current.device if isinstance(current, Tensor) else saved.device


def _restore_value(current: Any, saved: Any, seen: set[int]) -> Any:
    if saved is OPAQUE or isinstance(saved, _Opaque):
        return current
    if not isinstance(saved, tuple) or not saved or not isinstance(saved[0], str):
        return saved  # a plain value (number, string, None)
    kind = saved[0]
    if kind == "tensor":
        tensor = saved[1]
        if (isinstance(current, Tensor) and current.shape == tensor.shape and current.dtype == tensor.dtype):
            with torch.no_grad():
                current.copy_(tensor)
            return current
        return tensor.to(_device_of(current, tensor)).clone()
    if kind == "generator":
        generator = current if isinstance(current, torch.Generator) else torch.Generator(device=saved[2])
        generator.set_state(saved[1])
        return generator
    if kind == "optimizer":
        if not isinstance(current, torch.optim.Optimizer):
            raise ValueError("checkpoint: an optimizer's state has no optimizer to go to in the rebuilt engine")
        current.load_state_dict(saved[1])
        return current
    if kind in ("list", "tuple"):
        items = saved[1]
        same = isinstance(current, (list, tuple)) and len(current) == len(items)
        old = list(current) if same else [None] * len(items)
        values = [_restore_value(c, s, seen) for c, s in zip(old, items)]
        return values if kind == "list" else tuple(values)
    if kind == "dict":
        old = current if isinstance(current, dict) else {}
        return {k: _restore_value(old.get(k), v, seen) for k, v in saved[1].items()}
    if kind == "own_state":
        if current is None or not _gives_own_state(current):
            raise ValueError(f"checkpoint: no object to restore a state into (found {type(current).__name__})")
        current.set_state(saved[1])
        return current
    if kind == "object":
        if current is None or not _ours(current):
            raise ValueError(f"checkpoint: no object to restore into (found {type(current).__name__})")
        restore(current, saved, seen)
        return current
    return saved


def restore(target: Any, saved: Any, _seen: set[int] | None = None) -> None:
    """Write a :func:`capture` of an object back into ``target``, an object of the same kind built afresh."""
    seen = set() if _seen is None else _seen
    if id(target) in seen:
        return
    seen.add(id(target))
    if not (isinstance(saved, tuple) and saved and saved[0] == "object"):
        raise ValueError("checkpoint: restore() wants the capture of an object")
    for name, value in saved[1].items():
        current = getattr(target, name, None)
        new = _restore_value(current, value, seen)
        if new is not current:
            setattr(target, name, new)


def restore_value(current: Any, saved: Any) -> Any:
    """Write a :func:`capture` of any value (a dict of objects, a list, a tensor) back into ``current``; returns
    the restored value (``current`` itself where it could be restored in place)."""
    return _restore_value(current, saved, set())


def dumps(state: Any) -> bytes:
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    return pickle.loads(data)
