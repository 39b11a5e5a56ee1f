"""One optimizer per network role (actor, critic, or joint) for K members whose parameters carry a member axis.

:class:`MemberOptimizer` is what the batched PPO update steps: ``step(losses, active)`` with a (K,) loss tensor and
a (K,) mask of the members that step now (the others, stopped by target_kl or diverged, are left exactly as they
are). Two implementations behind it:

* the member-axis optimizers of :mod:`rl_adaloss.optim` (``members=K``, per-member ``lr``/``b0``/``alpha``/``c``,
  ``step(loss=losses)`` skipping members with a non-finite loss), used as soon as the optimizer class takes
  ``members``; torch's Adam is ``AdamLoss(alpha=0, lr=1, b0=1/lr**2, members=K)`` there;
* until then, and for any class without ``members``, one optimizer of the configured class per member over views
  of member k's slices (``param.detach()[k]``, which share the stacked storage): K small steps, but exactly the
  optimizer ``AdaLossPPO`` runs (``torch.optim.Adam`` for ``adam``), state and all.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rl_adaloss.errors import UsageError
from rl_adaloss.optim import OPTIMIZERS, AdamLoss

__all__ = ["MemberOptimizer", "clip_grad_norm_per_member", "has_member_axis"]

#: torch.optim.Adam switches the batched engine cannot honour through AdamLoss.
_ADAM_REFUSED = ("amsgrad", "maximize", "decoupled_weight_decay", "capturable", "differentiable")


def has_member_axis(cls: type) -> bool:
    """Does this optimizer class take ``members=K`` (the member-axis interface of rl_adaloss.optim)?"""
    try:
        return "members" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def clip_grad_norm_per_member(params: Sequence[nn.Parameter], max_norm: float) -> Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for each member on its own slices; returns the (K,) total norms."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads], dim=1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return total


class MemberOptimizer:
    """The optimizer of one role for K members. ``kwargs`` is one dict of constructor arguments per member (with
    ``lr``), as ``SeparateOptimizersPolicy`` would build it for that member's run."""

    def __init__(
        self, name: str, params: Sequence[nn.Parameter], kwargs: Sequence[dict[str, Any]], force_loop: bool = False
    ) -> None:
        self.name = name
        self.params = list(params)
        self.members = len(kwargs)
        self.cls = OPTIMIZERS[name]
        if name == "adam":
            for key in _ADAM_REFUSED:
                if any(k.get(key) for k in kwargs):
                    raise UsageError(f"optimizer.{key}: not supported by the batched engine")
        self.member_axis = not force_loop and (
            has_member_axis(AdamLoss) if name == "adam" else has_member_axis(self.cls)
        )
        if self.member_axis:
            self.optimizer = self._member_axis_optimizer(kwargs)
        else:
            self.views = [[p.detach()[k] for p in self.params] for k in range(self.members)]
            self.optimizers = [self.cls(views, **kw) for views, kw in zip(self.views, kwargs)]

    def _member_axis_optimizer(self, kwargs: Sequence[dict[str, Any]]):
        merged: dict[str, Any] = {}
        for key in kwargs[0]:
            values = [kw[key] for kw in kwargs]
            if key in ("lr", "b0", "alpha", "c"):
                merged[key] = values
            elif any(v != values[0] for v in values):
                raise UsageError(f"optimizer.{key}: must be the same for every member of a batch, got {values}")
            else:
                merged[key] = values[0]
        if self.name == "adam":
            # torch's Adam, with its own defaults (AdamLoss's betas are the paper's (0.9, 0.99)).
            adam = dict(
                betas=tuple(merged.get("betas", (0.9, 0.999))),
                eps=merged.get("eps", 1e-8),
                weight_decay=merged.get("weight_decay", 0.0),
            )
            from rl_adaloss.optim import adam as adam_module

            if hasattr(adam_module, "member_adam"):
                return adam_module.member_adam(self.params, members=self.members, lr=merged["lr"], **adam)
            return AdamLoss(
                self.params,
                lr=1.0,
                alpha=0.0,
                c=0.0,
                b0=[1.0 / lr**2 for lr in merged["lr"]],
                members=self.members,
                **adam,
            )
        return self.cls(self.params, members=self.members, **merged)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, losses: Tensor, active: Tensor) -> None:
        """Step the members in ``active`` with their losses (K,); the others are left exactly as they are."""
        if self.member_axis:
            losses = losses.detach()
            # On the CPU reading the (K,) masks is free: when every member steps, the optimizer may skip its masks.
            # step_members: the member-axis rules are all ScheduledOptimizers; it skips torch's per-call step
            # wrapper (hooks, record_function), which this engine never uses.
            if losses.device.type == "cpu" and bool(active.all()) and bool(torch.isfinite(losses).all()):
                self.optimizer.step_members(losses, all_finite=True)
                return
            masked = torch.where(active, losses, torch.full_like(losses, float("nan")))
            self.optimizer.step_members(masked)
            return
        values = losses.detach().tolist()
        for k in torch.nonzero(active).flatten().tolist():
            for view, p in zip(self.views[k], self.params):
                view.grad = p.grad[k] if p.grad is not None else None
            optimizer = self.optimizers[k]
            if hasattr(optimizer, "needs_loss"):  # our schedules take the loss; torch's Adam does not
                optimizer.step(loss=values[k])
            else:
                optimizer.step()

    # -- what is logged and compared -----------------------------------------------------------------------------

    @property
    def effective_lr(self) -> list[float]:
        """Per member, the step size of the most recent step (torch's Adam: its lr)."""
        if self.member_axis:
            return [float(v) for v in self.optimizer.effective_lr[0]]
        return [
            float(o.effective_lr[0]) if hasattr(o, "effective_lr") else float(o.param_groups[0]["lr"])
            for o in self.optimizers
        ]

    @property
    def b(self) -> list[float] | None:
        """Per member, the accumulator where the rule has one (AdamLoss, AdaLoss, ...); None otherwise."""
        if self.name == "adam":
            return None
        if self.member_axis:
            return [float(v) for v in self.optimizer.b[0]] if hasattr(self.optimizer, "b") else None
        if not hasattr(self.optimizers[0], "b"):
            return None
        return [float(o.b[0]) for o in self.optimizers]

    def member_state(self, k: int) -> list[dict[str, Tensor]]:
        """Member k's per-parameter optimizer state (moments, step count), in parameter order."""
        if self.member_axis:
            out = []
            for p in self.params:
                state = self.optimizer.state[p]
                out.append(
                    {
                        key: (
                            value[k]
                            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == self.members
                            else value
                        )
                        for key, value in state.items()
                    }
                )
            return out
        optimizer = self.optimizers[k]
        return [dict(optimizer.state[view]) for view in self.views[k]]


def finite(values: list[float]) -> list[bool]:
    return [math.isfinite(v) for v in values]
