"""Adam with a scheduled base step size: AdamLoss (Algorithm 2 of Wu et al., 2022) and AdamSqrt.

Both run torch's own fused Adam kernel, so the moment updates are exactly those of ``torch.optim.Adam(fused=True)``
and only the step size differs. The fused kernel takes a tensor step size on CUDA without a sync, and takes
``found_inf`` to skip a step without a sync, which is how a non-finite loss is handled on a device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.optim.adam import adam as adam_update

from rl_adaloss.optim.base import (
    ScheduledOptimizer,
    add_loss,
    check_betas,
    check_finite,
    check_non_negative,
    check_positive,
)


class _ScheduledAdam(ScheduledOptimizer):
    """An Adam step whose step size ``_step_size`` comes from a schedule rather than from ``lr`` alone."""

    def __init__(self, params, defaults: dict) -> None:
        name = type(self).__name__
        check_non_negative(name, "lr", defaults["lr"])
        check_positive(name, "b0", defaults["b0"])
        check_betas(name, defaults["betas"])
        defaults = {**defaults, "betas": tuple(defaults["betas"])}
        check_non_negative(name, "eps", defaults["eps"])
        check_non_negative(name, "weight_decay", defaults["weight_decay"])
        super().__init__(params, defaults)

    def _adam(self, group: dict, params: list[Tensor], grads: list[Tensor], lr: float | Tensor,
              found_inf: Tensor | None = None) -> None:
        exp_avgs, exp_avg_sqs, steps = [], [], []
        for p in params:
            state = self.state[p]
            if not state:
                # Same layout as torch.optim.Adam(fused=True), so the moments read the same to anyone.
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        beta1, beta2 = group["betas"]
        adam_update(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            fused=True, found_inf=found_inf,
            amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        )


class AdamLoss(_ScheduledAdam):
    r"""AdamLoss, Algorithm 2 of Wu, Xie, Du & Ward (AAAI 2022).

    Per parameter group, with the current loss :math:`f(x_t)`:

    * line 3: :math:`b_t = b_{t-1} + \alpha\,|f(x_t) - c|`, starting from :math:`b_0`;
    * line 4: :math:`\eta_t = \eta / \sqrt{b_t}`;
    * lines 5-11: a bias-corrected Adam step with step size :math:`\eta_t` (the update of ``torch.optim.Adam``).

    ``b0`` *is* the accumulator here (not squared, unlike Algorithm 1), so the first step size is about
    :math:`\eta/\sqrt{b_0}`: Adam at ``lr`` corresponds to AdamLoss at ``b0 = (eta / lr)**2``. The accumulator is
    updated with the current loss before the parameters move. ``lr`` is :math:`\eta`; trainers (SB3) may rewrite it
    freely, since the accumulator lives in its own group key ``b``.

    Args:
        params: parameters or parameter groups.
        lr: the base step size :math:`\eta`.
        b0: the initial accumulator :math:`b_0`; > 0.
        alpha: weight of the loss in the accumulator; >= 0 (0 gives Adam at ``lr / sqrt(b0)``).
        c: the constant subtracted from the loss.
        betas: Adam's moment decay rates; the paper uses (0.9, 0.99).
        eps: Adam's denominator guard.
        weight_decay: L2 penalty, as in ``torch.optim.Adam``.
    """

    needs_loss = True

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, alpha: float = 1.0, c: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        check_non_negative(type(self).__name__, "alpha", alpha)
        check_finite(type(self).__name__, "c", c)
        defaults = dict(lr=lr, b0=b0, alpha=alpha, c=c, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("b", float(group["b0"]))

    def _update_group(self, group, params, grads, loss) -> None:
        if isinstance(loss, Tensor):
            b = add_loss(self._group_scalar(group, "b", loss.device), loss, group["alpha"], group["c"])
            # found_inf makes the fused kernel leave parameters, moments and step counts untouched.
            self._adam(group, params, grads, group["lr"] / b.sqrt(), found_inf=(~torch.isfinite(loss)).float())
        else:
            group["b"] = add_loss(group["b"], loss, group["alpha"], group["c"])
            self._adam(group, params, grads, group["lr"] / math.sqrt(group["b"]))

    def _step_size(self, group):
        return group["lr"] / math.sqrt(float(group["b"]))

    @property
    def b(self) -> list[float]:
        """Per group, the current accumulator :math:`b_t`."""
        return [float(group["b"]) for group in self.param_groups]


class AdamSqrt(_ScheduledAdam):
    r"""AdamSqrt, the baseline of Section 5 of Wu et al. (2022): Adam with :math:`\eta_t = \eta/\sqrt{b_0 + t}`.

    ``t`` is 1 at the first step; ``b0`` enters unsquared, as in AdamLoss, so both start from the same step size.
    The loss is accepted and ignored.
    """

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        defaults = dict(lr=lr, b0=b0, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("step", 0)

    def _update_group(self, group, params, grads, loss) -> None:
        group["step"] += 1
        # The schedule depends only on the step count, so a Python float is fine on any device.
        self._adam(group, params, grads, self._step_size(group))

    def _step_size(self, group):
        return group["lr"] / math.sqrt(group["b0"] + group["step"])
