"""When the batched engine reads a tensor on the host, and how it avoids doing so on an accelerator.

On the CPU, reading a small tensor (``bool(done.any())``) costs nothing, and the engine uses such reads to skip work:
no reset when no env is done, no masks while every member is active. On CUDA, each read waits for every queued kernel
(a host-device sync), and one read per env step or per minibatch would leave the GPU idle most of the time. So on an
accelerator the engine *defers* its reads:

* work that a read would skip runs in its masked form instead (``torch.where`` with an all-false mask, a reset of no
  env, a step of no member), which gives the same numbers;
* what the host must know (which members diverged, and at which step; which training episodes ended) is kept on the
  device and read once per rollout and once per update, with the evaluation and the logging.

:class:`HostReads` counts the reads. ``tests/test_batched_host_reads.py`` runs the deferred form on the CPU, checks
that it gives the same numbers bit for bit, and that its reads do not grow with the number of env steps or
minibatches.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["defers_reads", "maybe_any", "HostReads"]


def defers_reads(device: torch.device) -> bool:
    """Does the engine defer its host reads on ``device``? On every device but the CPU."""
    return torch.device(device).type != "cpu"


def maybe_any(mask: Tensor, deferred: bool) -> bool:
    """False only where ``mask`` is known to hold no True element: read on the host, or, with ``deferred``, True
    without reading. For skipping work whose masked form is an identity where the mask is all false."""
    return deferred or bool(mask.any())


_aten = torch.ops.aten
#: Ops whose result the host needs before it can go on: a value copied to the host (``item``, ``bool``, ``float``
#: all end in ``_local_scalar_dense``), or an output whose size depends on the values.
_READS = {_aten._local_scalar_dense.default, _aten.nonzero.default, _aten.masked_select.default}
_INDEXING = {_aten.index.Tensor, _aten.index_put_.default, _aten.index_put.default}


class HostReads(TorchDispatchMode):
    """Counts the host reads made while active (``with HostReads() as reads: ...; reads.count``), on any device: at
    torch's dispatcher, the ops above and indexing by a boolean mask; and ``Tensor.tolist``/``numpy``, which read CPU
    memory without passing there. A diagnostic for tests and benchmarks: while active, every op goes through Python.
    """

    _METHODS = ("tolist", "numpy")

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __enter__(self):
        # The methods are inherited from torch's C base class: shadowed on torch.Tensor while active.
        for name in self._METHODS:
            setattr(torch.Tensor, name, self._counted(getattr(torch.Tensor, name)))
        return super().__enter__()

    def __exit__(self, *exc):
        for name in self._METHODS:
            delattr(torch.Tensor, name)
        return super().__exit__(*exc)

    def _counted(self, method):
        def read(tensor, *args, **kwargs):
            self.count += 1
            return method(tensor, *args, **kwargs)
        return read

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _READS or (func in _INDEXING and any(
                index is not None and index.dtype == torch.bool for index in args[1])):
            self.count += 1
        return func(*args, **(kwargs or {}))
