"""When the batched engine reads a tensor on the host, and how it avoids doing so on an accelerator.

On the CPU, reading a small tensor (``bool(done.any())``) costs nothing, and the engine uses such reads to skip work:
no reset when no env is done, no masks while every member is active. On CUDA, each read waits for every queued kernel
(a host-device sync), and one read per env step or per minibatch would leave the GPU idle most of the time. So on an
accelerator the engine *defers* its reads:

* work that a read would skip runs in its masked form instead (``torch.where`` with an all-false mask, a reset of no
  env, a step of no member), which gives the same numbers;
* what the host must know (which members diverged, and at which step; which training episodes ended) is kept on the
  device and read once per rollout and once per update, with the evaluation and the logging.

``tests/test_batched_host_reads.py`` runs the deferred form on the CPU, checks that it gives the same numbers bit
for bit, and counts its reads: they do not grow with the number of env steps or minibatches.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["defers_reads", "maybe_any"]


def defers_reads(device: torch.device) -> bool:
    """Does the engine defer its host reads on ``device``? On every device but the CPU."""
    return torch.device(device).type != "cpu"


def maybe_any(mask: Tensor, deferred: bool) -> bool:
    """False only where ``mask`` is known to hold no True element: read on the host, or, with ``deferred``, True
    without reading. For skipping work whose masked form is an identity where the mask is all false."""
    return deferred or bool(mask.any())
