"""The paper's step-size rules as ``torch.optim.Optimizer`` classes. Pure torch: nothing here imports SB3.

Every class takes ``step(closure=None, *, loss=None)``; AdaLoss and AdamLoss need the loss, the others ignore it.

Every class also takes ``members=K``: K independent runs in one optimizer, along dim 0 of every parameter, with
per-member ``lr``/``b0``/``alpha``/``c``, (K,) accumulators and step counts, and a (K,) loss per step
(:mod:`rl_adaloss.optim.base`). :func:`member_adam` is ``torch.optim.Adam`` with a member axis.
"""

import torch

from rl_adaloss.optim.adam import AdamLoss, AdamSqrt, member_adam
from rl_adaloss.optim.base import ScheduledOptimizer
from rl_adaloss.optim.sgd import AdaGradNorm, AdaLoss, SGDConstant, SGDDecaySqrt

#: The names configs use for each optimizer. ``adam`` is torch's own.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamloss": AdamLoss,
    "adamsqrt": AdamSqrt,
    "adaloss": AdaLoss,
    "adagradnorm": AdaGradNorm,
    "sgd": SGDConstant,
    "sgd_decaysqrt": SGDDecaySqrt,
}

__all__ = [
    "OPTIMIZERS",
    "AdaGradNorm",
    "AdaLoss",
    "AdamLoss",
    "AdamSqrt",
    "SGDConstant",
    "SGDDecaySqrt",
    "ScheduledOptimizer",
    "member_adam",
]
