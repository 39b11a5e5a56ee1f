"""Plain gradient steps with four step-size rules: AdaLoss, AdaGrad-Norm, constant, and 1/sqrt(t) decay.

All four move every parameter by ``-step_size * grad`` (with optional L2 weight decay folded into the gradient);
they differ only in how ``step_size`` is computed. In Algorithm 1 of Wu et al. (2022) ``b0`` is squared: the
accumulator starts at ``b0**2`` and the step size is ``lr / b``.

With ``members=K`` (see :mod:`rl_adaloss.optim.base`) the step size is a (K,) vector, broadcast over dim 0 of each
parameter, and a member with a non-finite loss is left as it was.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rl_adaloss.optim.base import (
    MEMBER_DTYPE,
    MemberMask,
    ScheduledOptimizer,
    add_loss,
    check_finite,
    check_non_negative,
    check_positive,
    member_view,
)


def _with_weight_decay(params: list[Tensor], grads: list[Tensor], weight_decay: float) -> list[Tensor]:
    if weight_decay == 0:
        return grads
    return torch._foreach_add(grads, params, alpha=weight_decay)


def _descend(params: list[Tensor], grads: list[Tensor], step_size: float | Tensor) -> None:
    """p <- p - step_size * g for every parameter; ``step_size`` is a float (host) or a 0-dim device tensor."""
    if isinstance(step_size, Tensor):
        torch._foreach_sub_(params, torch._foreach_mul(grads, step_size))
    else:
        torch._foreach_add_(params, grads, alpha=-step_size)


def _descend_members(params: list[Tensor], grads: list[Tensor], step_size: Tensor, stepping: Tensor,
                     all_step: bool = False) -> None:
    """Member mode: p[k] <- p[k] - step_size[k] * g[k] where ``stepping[k]``; elsewhere p[k] - 0, which is p[k]
    bit for bit (the masked update is 0 even where the gradient is not finite)."""
    mask = MemberMask(stepping)
    for p, g in zip(params, grads):
        update = g * member_view(step_size, p)
        p.sub_(update if all_step else mask.zero_frozen_(update))


class _SquaredAccumulator(ScheduledOptimizer):
    """The Algorithm-1 form: the accumulator is b squared (group key ``b_squared``, from ``b0**2``); step ``lr / b``."""

    b0_squared = True

    def _init_group(self, group) -> None:
        b0 = group["b0"]
        self._init_scalar(group, "b_squared", b0**2 if self.members else float(b0) ** 2)

    def _step_size(self, group):
        if self.members is not None:
            return self._member(group, "lr") / self._member(group, "b_squared").sqrt()
        return group["lr"] / math.sqrt(float(group["b_squared"]))

    @property
    def b(self) -> list[float] | list[list[float]]:
        """Per group, the current :math:`b` (not squared); in member mode a list of K floats per group."""
        if self.members is not None:
            return [self._member(group, "b_squared").sqrt().tolist() for group in self.param_groups]
        return [math.sqrt(float(group["b_squared"])) for group in self.param_groups]


class AdaLoss(_SquaredAccumulator):
    r"""AdaLoss, Algorithm 1 of Wu, Xie, Du & Ward (AAAI 2022).

    Per parameter group, with the current loss :math:`f(w_j)`:

    * line 4: :math:`b_{j+1}^2 = b_j^2 + \alpha\,|f(w_j) - c|`, starting from :math:`b_0^2`;
    * line 5: :math:`w_{j+1} = w_j - \frac{\eta}{b_{j+1}} \nabla f(w_j)`.

    The accumulator is updated with the current loss *before* the parameters move. ``b0`` is squared here.

    Args:
        params: parameters or parameter groups.
        lr: the base step size :math:`\eta`.
        b0: the initial :math:`b` (the accumulator starts at ``b0**2``); > 0.
        alpha: weight of the loss in the accumulator; >= 0.
        c: the constant subtracted from the loss (an estimate of the optimal loss).
        weight_decay: L2 penalty folded into the gradient.
        members: K for K independent runs along dim 0 of every parameter (:mod:`rl_adaloss.optim.base`); then
            ``lr``, ``b0``, ``alpha`` and ``c`` may be one number or K, and ``step`` takes a (K,) loss.
    """

    needs_loss = True
    hyper_checks = {"lr": check_non_negative, "b0": check_positive, "alpha": check_non_negative, "c": check_finite}

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, alpha: float = 1.0, c: float = 0.0,
                 weight_decay: float = 0.0, *, members: int | None = None) -> None:
        check_non_negative(type(self).__name__, "weight_decay", weight_decay)
        defaults = dict(lr=lr, b0=b0, alpha=alpha, c=c, weight_decay=weight_decay)
        super().__init__(params, defaults, members=members)

    def _update_group(self, group, params, grads, loss) -> None:
        grads = _with_weight_decay(params, grads, group["weight_decay"])
        if isinstance(loss, Tensor):
            b_squared = add_loss(self._group_scalar(group, "b_squared", loss.device), loss, group["alpha"], group["c"])
            # A non-finite loss adds nothing and moves nothing: masked, so no sync.
            finite = torch.isfinite(loss)
            step_size = torch.where(finite, group["lr"] / b_squared.sqrt(), 0.0).to(params[0].dtype)
            grads = [torch.where(finite, g, 0.0) for g in grads]
            _descend(params, grads, step_size)
        else:
            group["b_squared"] = add_loss(group["b_squared"], loss, group["alpha"], group["c"])
            _descend(params, grads, group["lr"] / math.sqrt(group["b_squared"]))

    def _update_members(self, group, params, grads, loss, stepping) -> None:
        grads = _with_weight_decay(params, grads, group["weight_decay"])
        add_loss(self._member(group, "b_squared"), loss, self._member(group, "alpha"), self._member(group, "c"),
                 self._all_step)
        _descend_members(params, grads, self._step_size(group), stepping, self._all_step)


class AdaGradNorm(_SquaredAccumulator):
    r"""AdaGrad-Norm (Ward, Wu & Bottou, 2020), equations (1)-(2) of Wu et al. (2022).

    Per parameter group:

    * :math:`b_{j+1}^2 = b_j^2 + \sum_p \|\nabla_p f(w_j)\|^2` (the norm over the whole group), from :math:`b_0^2`;
    * :math:`w_{j+1} = w_j - \frac{\eta}{b_{j+1}} \nabla f(w_j)`.

    ``b0`` is squared here. The loss is accepted and ignored (in member mode it only masks: a member with a
    non-finite loss is skipped). In member mode each member's :math:`b^2` takes that member's own gradient norm
    over the group: the sum over dim-0 slice ``k`` of every parameter.
    """

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, weight_decay: float = 0.0, *,
                 members: int | None = None) -> None:
        check_non_negative(type(self).__name__, "weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, b0=b0, weight_decay=weight_decay), members=members)

    def _update_group(self, group, params, grads, loss) -> None:
        grads = _with_weight_decay(params, grads, group["weight_decay"])
        squared_norm = torch.stack(torch._foreach_norm(grads)).square().sum()
        if self._host_scalars(params[0].device):
            group["b_squared"] = float(group["b_squared"]) + squared_norm.item()
            _descend(params, grads, group["lr"] / math.sqrt(group["b_squared"]))
        else:
            b_squared = self._group_scalar(group, "b_squared", params[0].device)
            b_squared.add_(squared_norm)
            _descend(params, grads, (group["lr"] / b_squared.sqrt()).to(params[0].dtype))

    def _update_members(self, group, params, grads, loss, stepping) -> None:
        grads = _with_weight_decay(params, grads, group["weight_decay"])
        members = self.members
        squared_norms = torch.stack([g.reshape(members, -1).square().sum(dim=1) for g in grads]).sum(dim=0)
        self._member(group, "b_squared").add_(torch.where(stepping, squared_norms, 0.0))
        _descend_members(params, grads, self._step_size(group), stepping, self._all_step)


class SGDConstant(ScheduledOptimizer):
    r"""SGD-Constant, the baseline of Section 3 of Wu et al. (2022): :math:`w_{j+1} = w_j - \frac{\eta}{b_0}\nabla f`.

    Plain SGD at ``lr / b0``, written as a class so that every schedule is configured the same way.
    """

    b0_squared = True

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, *, members: int | None = None) -> None:
        super().__init__(params, dict(lr=lr, b0=b0), members=members)

    def _update_group(self, group, params, grads, loss) -> None:
        _descend(params, grads, self._step_size(group))

    def _update_members(self, group, params, grads, loss, stepping) -> None:
        _descend_members(params, grads, self._step_size(group), stepping, self._all_step)

    def _step_size(self, group):
        if self.members is not None:
            return self._member(group, "lr") / self._member(group, "b0")
        return group["lr"] / group["b0"]


class SGDDecaySqrt(ScheduledOptimizer):
    r"""SGD-DecaySqrt, the baseline of Section 3 of Wu et al. (2022): :math:`\eta_t = \eta/\sqrt{b_0^2 + t}`.

    ``t`` is 1 at the first step. The step count is deterministic, so it is kept on the host even on a device;
    in member mode it is a (K,) tensor (a skipped member's count stands still).
    """

    b0_squared = True

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, *, members: int | None = None) -> None:
        super().__init__(params, dict(lr=lr, b0=b0), members=members)

    def _init_group(self, group) -> None:
        self._init_scalar(group, "step", 0)

    def _update_group(self, group, params, grads, loss) -> None:
        group["step"] += 1
        _descend(params, grads, self._step_size(group))

    def _update_members(self, group, params, grads, loss, stepping) -> None:
        self._member(group, "step").add_(stepping.to(MEMBER_DTYPE))
        _descend_members(params, grads, self._step_size(group), stepping, self._all_step)

    def _step_size(self, group):
        if self.members is not None:
            return self._member(group, "lr") / (self._member(group, "b0").square() + self._member(group, "step")).sqrt()
        return group["lr"] / math.sqrt(group["b0"] ** 2 + group["step"])
