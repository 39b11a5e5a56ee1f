"""The paper's step-size rules as ``torch.optim.Optimizer`` classes. Pure torch: nothing here imports SB3.

Every class takes ``step(closure=None, *, loss=None)``; AdaLoss and AdamLoss need the loss, the others ignore it.
"""

import torch

from rl_adaloss.optim.adam import AdamLoss, AdamSqrt
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
]
