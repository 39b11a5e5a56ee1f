"""Adam with a scheduled base step size: AdamLoss (Algorithm 2 of Wu et al., 2022) and AdamSqrt.

Both run torch's own fused Adam kernel, so the moment updates are exactly those of ``torch.optim.Adam(fused=True)``
and only the step size differs. The fused kernel takes a tensor step size on CUDA without a sync, and takes
``found_inf`` to skip a step without a sync, which is how a non-finite loss is handled on a device.

With ``members=K`` the step size is a (K,) vector, which the fused kernel cannot take, so the member path is
written with ``torch._foreach_*`` and batched tensor ops: the same update as torch's Adam (L2 folded into the
gradient, ``eps`` added to the bias-corrected square root), with the step size broadcast as (K, 1, ..., 1) and the
bias corrections from each member's own step count; a member with a non-finite loss keeps its parameters, moments
and step count bit for bit. ``torch.optim.Adam`` has no member axis: :func:`member_adam` builds it (AdamLoss with
``alpha = 0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.optim.adam import adam as adam_update

from rl_adaloss.optim.base import (
    MEMBER_DTYPE,
    MemberMask,
    ScheduledOptimizer,
    add_loss,
    check_betas,
    check_finite,
    check_non_negative,
    check_positive,
)


def _one_minus_power(beta: float, steps: list[Tensor]) -> list[Tensor]:
    """``1 - beta**t`` for each (K,) step count ``t``, as ``-expm1(t log beta)``: accurate where ``1 - beta**t`` is
    small (at t = 1 with beta = 0.999, ``1 - beta**t`` in float32 loses four digits to cancellation)."""
    log_beta = math.log(beta) if beta > 0 else -math.inf
    out = torch._foreach_mul(steps, log_beta)
    torch._foreach_expm1_(out)
    torch._foreach_neg_(out)
    return out


class _ScheduledAdam(ScheduledOptimizer):
    """An Adam step whose step size ``_step_size`` comes from a schedule rather than from ``lr`` alone."""

    def __init__(self, params, defaults: dict, members: int | None = None) -> None:
        name = type(self).__name__
        check_betas(name, defaults["betas"])
        defaults = {**defaults, "betas": tuple(defaults["betas"])}
        check_non_negative(name, "eps", defaults["eps"])
        check_non_negative(name, "weight_decay", defaults["weight_decay"])
        super().__init__(params, defaults, members=members)

    def _moments(self, params: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Each parameter's Adam state (first and second moments, step count), made on first use in the layout of
        ``torch.optim.Adam(fused=True)``, so the moments read the same to anyone. The step count is a float32
        scalar, or in member mode a (K,) float64 count per member."""
        exp_avgs, exp_avg_sqs, steps = [], [], []
        for p in params:
            state = self.state[p]
            if not state:
                if self.members is None:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                else:
                    state["step"] = torch.zeros(self.members, dtype=MEMBER_DTYPE, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        return exp_avgs, exp_avg_sqs, steps

    def _adam(self, group: dict, params: list[Tensor], grads: list[Tensor], lr: float | Tensor,
              found_inf: Tensor | None = None) -> None:
        exp_avgs, exp_avg_sqs, steps = self._moments(params)
        beta1, beta2 = group["betas"]
        adam_update(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            fused=True, found_inf=found_inf,
            amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        )

    def _adam_members(self, group: dict, params: list[Tensor], grads: list[Tensor], lr: Tensor,
                      stepping: Tensor) -> None:
        """Member mode: Adam at the (K,) step size ``lr`` for the members where ``stepping``; the others unchanged.

        State per parameter as torch's Adam keeps it, with ``step`` a (K,) float64 count per member.
        """
        exp_avgs, exp_avg_sqs, steps = self._moments(params)
        beta1, beta2 = group["betas"]
        if group["weight_decay"] != 0:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])

        if self._all_step:
            torch._foreach_add_(steps, 1.0)  # what adding the all-True mask as float64 adds, without the cast
        else:
            torch._foreach_add_(steps, [stepping.to(MEMBER_DTYPE)] * len(steps))
        # Per parameter and member, (P, K): the step size lr / (1 - beta1^t) and sqrt(1 - beta2^t), computed for all
        # parameters at once, stacked, and cast once to the parameters' dtype (elementwise the same arithmetic as per
        # parameter: -expm1(t log beta), see _one_minus_power).
        if len(params) == 1:
            # One parameter (the batched engine's (K, P) buffer): the same elementwise ops on its (K,) count,
            # without the stacking and splitting.
            p, count = params[0], steps[0]
            shape = (-1,) + (1,) * (p.dim() - 1)
            step_sizes = [(lr / _one_minus_power(beta1, [count])[0]).to(p.dtype).view(shape)]
            bias_correction2_sqrt = [_one_minus_power(beta2, [count])[0].sqrt_().to(p.dtype).view(shape)]
        else:
            counts = torch.stack(steps)
            factors = torch.stack([lr / _one_minus_power(beta1, [counts])[0],
                                   _one_minus_power(beta2, [counts])[0].sqrt_()])
            step_sizes, bias_correction2_sqrt = _per_param(factors, params)

        if self._all_step:
            # Every member steps: the moments in place, no masks (the same arithmetic as below).
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
            new_exp_avgs, new_exp_avg_sqs = exp_avgs, exp_avg_sqs
        else:
            # The new moments, out of place: a skipped member keeps its old ones below.
            new_exp_avgs = torch._foreach_lerp(exp_avgs, grads, 1 - beta1)
            new_exp_avg_sqs = torch._foreach_mul(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(new_exp_avg_sqs, grads, grads, value=1 - beta2)
        denoms = torch._foreach_sqrt(new_exp_avg_sqs)
        torch._foreach_div_(denoms, bias_correction2_sqrt)
        torch._foreach_add_(denoms, group["eps"])
        updates = torch._foreach_div(new_exp_avgs, denoms)
        torch._foreach_mul_(updates, step_sizes)
        if self._all_step:
            torch._foreach_sub_(params, updates)
            return
        mask = MemberMask(stepping)
        for update in updates:
            mask.zero_frozen_(update)
        # p - (+0) is p bit for bit, even where the update is not finite.
        torch._foreach_sub_(params, updates)
        for i in range(len(params)):
            mask.blend_(exp_avgs[i], new_exp_avgs[i])
            mask.blend_(exp_avg_sqs[i], new_exp_avg_sqs[i])


def _per_param(values: Tensor, params: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """The two (P, K) tensors of per-member scalars stacked in ``values`` (2, P, K), row i of each in parameter i's
    dtype, viewed as (K, 1, ..., 1): one cast per dtype and one view per dtype and rank (no per-parameter ops)."""
    rows: dict[tuple[torch.dtype, int], tuple[tuple[Tensor, ...], tuple[Tensor, ...]]] = {}
    cast: dict[torch.dtype, Tensor] = {}
    first, second = [], []
    for i, p in enumerate(params):
        key = (p.dtype, p.dim())
        if key not in rows:
            if p.dtype not in cast:
                cast[p.dtype] = values.to(p.dtype)
            shaped = cast[p.dtype].view(values.shape + (1,) * (p.dim() - 1))
            rows[key] = (shaped[0].unbind(0), shaped[1].unbind(0))
        first.append(rows[key][0][i])
        second.append(rows[key][1][i])
    return first, second


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
        members: K for K independent runs along dim 0 of every parameter (:mod:`rl_adaloss.optim.base`); then
            ``lr``, ``b0``, ``alpha`` and ``c`` may be one number or K, and ``step`` takes a (K,) loss. With
            ``alpha=0`` it is the member-axis Adam at step size ``lr / sqrt(b0)`` (see :func:`member_adam`).
    """

    needs_loss = True
    hyper_checks = {"lr": check_non_negative, "b0": check_positive, "alpha": check_non_negative, "c": check_finite}

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, alpha: float = 1.0, c: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8, weight_decay: float = 0.0, *,
                 members: int | None = None) -> None:
        defaults = dict(lr=lr, b0=b0, alpha=alpha, c=c, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, members=members)

    def _init_group(self, group) -> None:
        b0 = group["b0"]
        self._init_scalar(group, "b", b0 if self.members else float(b0))

    def _update_group(self, group, params, grads, loss) -> None:
        if isinstance(loss, Tensor):
            b = add_loss(self._group_scalar(group, "b", loss.device), loss, group["alpha"], group["c"])
            # found_inf makes the fused kernel leave parameters, moments and step counts untouched.
            step_size = (group["lr"] / b.sqrt()).to(params[0].dtype)  # the accumulator's precision, the kernel's dtype
            self._adam(group, params, grads, step_size, found_inf=(~torch.isfinite(loss)).float())
        else:
            group["b"] = add_loss(group["b"], loss, group["alpha"], group["c"])
            self._adam(group, params, grads, group["lr"] / math.sqrt(group["b"]))

    def _update_members(self, group, params, grads, loss, stepping) -> None:
        add_loss(self._member(group, "b"), loss, self._member(group, "alpha"), self._member(group, "c"),
                 self._all_step)
        self._adam_members(group, params, grads, self._step_size(group), stepping)

    def _step_size(self, group):
        if self.members is not None:
            return self._member(group, "lr") / self._member(group, "b").sqrt()
        return group["lr"] / math.sqrt(float(group["b"]))

    @property
    def b(self) -> list[float] | list[list[float]]:
        """Per group, the current accumulator :math:`b_t`; in member mode a list of K floats per group."""
        if self.members is not None:
            return [self._member(group, "b").tolist() for group in self.param_groups]
        return [float(group["b"]) for group in self.param_groups]


class AdamSqrt(_ScheduledAdam):
    r"""AdamSqrt, the baseline of Section 5 of Wu et al. (2022): Adam with :math:`\eta_t = \eta/\sqrt{b_0 + t}`.

    ``t`` is 1 at the first step; ``b0`` enters unsquared, as in AdamLoss, so both start from the same step size.
    The loss is accepted and ignored (in member mode it only masks: a member with a non-finite loss is skipped, and
    its ``t`` stands still).
    """

    def __init__(self, params, lr: float = 1.0, b0: float = 1.0, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, members: int | None = None) -> None:
        defaults = dict(lr=lr, b0=b0, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, members=members)

    def _init_group(self, group) -> None:
        self._init_scalar(group, "step", 0)

    def _update_group(self, group, params, grads, loss) -> None:
        group["step"] += 1
        # The schedule depends only on the step count, so a Python float is fine on any device.
        self._adam(group, params, grads, self._step_size(group))

    def _update_members(self, group, params, grads, loss, stepping) -> None:
        self._member(group, "step").add_(1.0 if self._all_step else stepping.to(MEMBER_DTYPE))
        self._adam_members(group, params, grads, self._step_size(group), stepping)

    def _step_size(self, group):
        if self.members is not None:
            return self._member(group, "lr") / (self._member(group, "b0") + self._member(group, "step")).sqrt()
        return group["lr"] / math.sqrt(group["b0"] + group["step"])


def member_adam(params, *, members: int, lr: float | Sequence[float] | Tensor = 1e-3,
                betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> AdamLoss:
    """``torch.optim.Adam`` with a member axis: ``AdamLoss(alpha=0, b0=1, members=members)``.

    With ``alpha = 0`` the accumulator stays at ``b0`` and AdamLoss is Adam at step size ``lr / sqrt(b0)``
    (bit for bit ``Adam(fused=True)`` without members; to rounding, about 1e-6 relative, with them). At
    ``b0 = 1`` the step size is ``lr`` exactly, per member, and a trainer may rewrite ``group["lr"]`` as for Adam.
    The defaults are torch's Adam's (``betas=(0.9, 0.999)``), not AdamLoss's. A member with a non-finite loss is
    skipped, as in every member-mode rule, so ``step`` still wants ``loss=`` (a (K,) tensor).
    """
    return AdamLoss(params, lr=lr, b0=1.0, alpha=0.0, c=0.0, betas=betas, eps=eps, weight_decay=weight_decay,
                    members=members)
