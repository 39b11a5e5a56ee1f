"""One optimizer per network role (actor, critic, or joint) for K members whose parameters carry a member axis.

:class:`MemberOptimizer` is what the batched PPO update steps: ``step(losses, active)`` with a (K,) loss tensor and
a (K,) mask of the members that step now (the others, stopped by target_kl or diverged, are left exactly as they
are). Two implementations behind it:

* the member-axis optimizers of :mod:`rl_adaloss.optim` (``members=K``, per-member ``lr``/``b0``/``alpha``/``c``,
  ``step(loss=losses)`` skipping members with a non-finite loss), used as soon as the optimizer class takes
  ``members``; torch's Adam is ``AdamLoss(alpha=0, lr=1, b0=1/lr**2, members=K)`` there. The role's parameters
  then live in one (K, P) buffer, ``flat`` (each parameter a view of its columns), and the optimizer steps that one
  tensor: the same elementwise arithmetic as per parameter, in one op per term instead of one per parameter and
  term (on the CPU a step over a 64-64 MLP was mostly per-op overhead);
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

from rl_adaloss.batched import host
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
    total, coef = _total_norm_and_coef(grads, max_norm)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return total


def _total_norm_and_coef(grads: Sequence[Tensor], max_norm: float) -> tuple[Tensor, Tensor]:
    """Per member, the total 2-norm of ``grads`` (K, ...) and ``clip_grad_norm_``'s clip coefficient."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads], dim=1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)
    return total, torch.clamp(max_norm / (total + 1e-6), max=1.0)


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
        #: With the member axis: a (K, P) gradient buffer laid out as ``flat``, kept from step to step, and per
        #: parameter its columns and a view of them of the parameter's shape, for a backward to write the gradients
        #: into (:meth:`clip_grad_norm_` then finds them gathered). Scratch that every minibatch rewrites, not state.
        self.grad_buffer: Tensor | None = None
        self.grad_columns: Sequence[Tensor] = ()
        self.grad_views: list[Tensor] | None = None
        if self.member_axis:
            self._flatten()
            self.optimizer = self._member_axis_optimizer(kwargs)
            self.grad_buffer = torch.empty_like(self.flat)
            self.grad_columns = self.grad_buffer.split(self.sizes, dim=1)
            self.grad_views = [columns.view(p.shape) for p, columns in zip(self.params, self.grad_columns)]
        else:
            self.views = [[p.detach()[k] for p in self.params] for k in range(self.members)]
            self.optimizers = [self.cls(views, **kw) for views, kw in zip(self.views, kwargs)]

    def _flatten(self) -> None:
        """Move the parameters into one (K, P) buffer, ``flat``, member k's row the concatenation of its flattened
        slices in parameter order; each parameter (the same ``nn.Parameter`` object, so the policy and autograd see
        no difference) becomes a view of its columns."""
        K = self.members
        #: Per parameter, its number of elements per member (its columns in ``flat``).
        self.sizes = [p[0].numel() for p in self.params]
        first = self.params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in self.params):
            raise UsageError("the batched engine needs one dtype and device for all of a role's parameters")
        self.flat = torch.empty(K, sum(self.sizes), dtype=first.dtype, device=first.device)
        with torch.no_grad():
            for p, columns in zip(self.params, self.flat.split(self.sizes, dim=1)):
                view = columns.view(p.shape)
                view.copy_(p)
                p.data = view

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
                return adam_module.member_adam([self.flat], members=self.members, lr=merged["lr"], **adam)
            return AdamLoss(
                [self.flat],
                lr=1.0,
                alpha=0.0,
                c=0.0,
                b0=[1.0 / lr**2 for lr in merged["lr"]],
                members=self.members,
                **adam,
            )
        return self.cls([self.flat], members=self.members, **merged)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
        if self.member_axis:
            self.flat.grad = None

    def clip_grad_norm_(self, max_norm: float) -> Tensor:
        """:func:`clip_grad_norm_per_member` on this role's gradients; with the member axis the clipped gradients
        are gathered into ``flat.grad`` (the norms from each parameter's gradient, as before, so they round the
        same; one multiply on the gathered buffer)."""
        if not self.member_axis:
            return clip_grad_norm_per_member(self.params, max_norm)
        grads = self._grads()
        if all(g is v for g, v in zip(grads, self.grad_views)):
            # Written into grad_views' buffer by the backward: gathered already. The norms of its columns are the
            # views' norms (the same elements, flattened as their own flatten(1) gives them: the same per-row
            # reductions as the separate tensors'), without a flatten per view.
            total, coef = _total_norm_and_coef(self.grad_columns, max_norm)
            self.flat.grad = self.grad_buffer.mul_(coef.view(-1, 1))
        else:
            total, coef = _total_norm_and_coef(grads, max_norm)
            self.flat.grad = self._gathered(grads).mul_(coef.view(-1, 1))
        return total

    def _grads(self) -> list[Tensor]:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("the batched engine expects a gradient for every parameter of a role")
        return grads

    def _gathered(self, grads: Sequence[Tensor]) -> Tensor:
        """The parameters' gradients as one (K, P) tensor, in ``flat``'s layout."""
        return torch.cat([g.reshape(self.members, -1) for g in grads], dim=1)

    @torch.no_grad()
    def step(self, losses: Tensor, active: Tensor, all_finite: bool = False) -> None:
        """Step the members in ``active`` with their losses (K,); the others are left exactly as they are.
        ``all_finite``: the caller knows that every member is active and every loss finite (no check then)."""
        if self.member_axis:
            if self.flat.grad is None:  # not gathered by clip_grad_norm_
                self.flat.grad = self._gathered(self._grads())
            # Where host reads are not deferred (the CPU), reading the (K,) masks is free: when every member steps,
            # the optimizer may skip its masks.
            # step_members: the member-axis rules are all ScheduledOptimizers; it skips torch's per-call step
            # wrapper (hooks, record_function), which this engine never uses.
            if all_finite or (
                not host.defers_reads(losses.device) and bool(active.all()) and bool(torch.isfinite(losses).all())
            ):
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
            # The state of ``flat``: (K, P) moments, split into each parameter's columns; (K,) counts.
            state = self.optimizer.state[self.flat]
            out: list[dict[str, Tensor]] = [{} for _ in self.params]
            for key, value in state.items():
                if isinstance(value, Tensor) and value.shape[:2] == self.flat.shape:
                    for i, (p, columns) in enumerate(zip(self.params, value[k].split(self.sizes))):
                        out[i][key] = columns.view(p.shape[1:])
                else:
                    member = isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == self.members
                    for entry in out:
                        entry[key] = value[k] if member else value
            return out
        optimizer = self.optimizers[k]
        return [dict(optimizer.state[view]) for view in self.views[k]]


def finite(values: list[float]) -> list[bool]:
    return [math.isfinite(v) for v in values]
