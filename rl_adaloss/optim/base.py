"""What every step-size rule in this package shares: how the loss arrives, validation, and state handling.

All six optimizers take ``step(closure=None, *, loss=None)``. The loss-driven ones (AdaLoss, AdamLoss) need the
current loss; the others accept it and ignore it, so a trainer can feed any of them the same way.

Where the per-group scalars (the accumulator ``b``, the step count) live depends on the parameters' device:

* On the CPU they are Python floats. Reading a CPU loss with ``.item()`` costs nothing, and scalar arithmetic in
  Python is far cheaper than a handful of 0-dim tensor ops, which keeps AdamLoss as fast as Adam.
* On an accelerator the accumulator is a 0-dim tensor on the parameters' device and the step size is a device
  tensor fed to torch's fused kernels, so a tensor loss never forces a host-device sync.

Non-finite losses: for the loss-driven rules (AdaLoss, AdamLoss), a step whose loss is NaN or infinite is
**skipped** for every group: parameters, moments, step counts and accumulators stay as they were, and
``skipped_steps`` counts it. The other rules never read the loss, so they step as usual. On the device path the skip is done by
masking (``found_inf``/``torch.where``), without a sync.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor
from torch.optim import Optimizer


def check_positive(owner: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")


def check_non_negative(owner: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")


def check_finite(owner: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")


def check_betas(owner: str, betas: Any) -> None:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
            raise ValueError(f"{owner}: betas[{i}] must be in [0, 1), got {beta!r}")


def add_loss(accumulator: float | Tensor, loss: float | Tensor, alpha: float, c: float) -> float | Tensor:
    r"""The loss-driven accumulator that AdaLoss and AdamLoss share: ``accumulator + alpha * |loss - c|``.

    Algorithm 1 (AdaLoss) applies it to :math:`b^2`, Algorithm 2 (AdamLoss) to :math:`b` itself. A float
    accumulator (the host path) gives a new float; a tensor accumulator (the device path) is updated in place and
    returned, and a non-finite tensor loss adds nothing there (masked, so no host-device sync). The host path
    skips non-finite losses before it gets here.
    """
    if isinstance(accumulator, Tensor):
        finite = torch.isfinite(loss)
        return accumulator.add_(torch.where(finite, alpha * (loss - c).abs(), 0.0))
    return float(accumulator) + alpha * abs(loss - c)


class ScheduledOptimizer(Optimizer):
    """Base class: resolves the loss, skips non-finite steps, and hands each group to :meth:`_update_group`.

    Subclasses set ``needs_loss`` and ``b0_squared`` and implement ``_update_group`` and ``_step_size``.
    """

    #: True for the rules whose accumulator is driven by the loss value.
    needs_loss: bool = False
    #: True for the Algorithm-1 rules, whose step is ``lr / b0`` at first (the accumulator starts at ``b0**2``);
    #: False for the Adam-based rules of Algorithm 2, whose first step is ``lr / sqrt(b0)``.
    b0_squared: bool = False

    @classmethod
    def initial_step(cls, lr: float, b0: float) -> float:
        """The step size before the first step, for ``lr`` and ``b0``: ``lr/b0`` or ``lr/sqrt(b0)``."""
        return lr / (b0 if cls.b0_squared else math.sqrt(b0))

    @classmethod
    def b0_from_unsquared(cls, b0: float) -> float:
        """This rule's ``b0`` that takes the first step of an Algorithm-2 rule started from ``b0`` (same ``lr``)."""
        return math.sqrt(b0) if cls.b0_squared else b0

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        self.skipped_steps = 0

    @property
    def skipped_steps(self) -> int:
        """How many steps a non-finite loss skipped. On the device path the count is kept on the device (no sync
        per step); reading it syncs, so read it when logging."""
        count = self._skipped_on_host
        if self._skipped_on_device is not None:
            count += int(self._skipped_on_device)
        return count

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self._skipped_on_host = int(value)
        self._skipped_on_device: Tensor | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Optimizer pickles only defaults, state and param_groups; a copy starts its count afresh.
        super().__setstate__(state)
        self.__dict__.setdefault("_skipped_on_host", 0)
        self.__dict__.setdefault("_skipped_on_device", None)

    # -- the step ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, loss: Any = None):  # type: ignore[override]
        """Take one step. Pass the current loss as ``loss=`` (a float or a 0-dim tensor) or through ``closure``.

        Returns the loss (what the closure returned, or ``loss``).
        """
        if closure is not None:
            if loss is not None:
                raise ValueError(f"{type(self).__name__}.step(): pass either a closure or loss=, not both")
            with torch.enable_grad():
                loss = closure()
        if loss is None and self.needs_loss:
            raise ValueError(
                f"{type(self).__name__}.step() needs the current loss: call step(loss=loss_value) "
                "or step(closure) with a closure that returns the loss"
            )
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(f"{type(self).__name__}.step(): loss must be a scalar, got shape {tuple(loss.shape)}")
            loss_value: float | Tensor | None = loss.detach().reshape(())
        elif loss is None or isinstance(loss, (int, float)):
            loss_value = loss
        else:
            raise TypeError(f"{type(self).__name__}.step(): loss must be a float or a tensor, got {type(loss).__name__}")

        counted = False
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            grads = [p.grad for p in params]
            if self._host_scalars(params[0].device):
                host_loss = None if loss_value is None else float(loss_value)
                if self.needs_loss and not math.isfinite(host_loss):
                    # Skip before touching any group, so the step is all-or-nothing.
                    self._skipped_on_host += 1
                    return loss
                self._update_group(group, params, grads, host_loss)
            else:
                device_loss = None
                if loss_value is not None:
                    device_loss = torch.as_tensor(loss_value, dtype=torch.float32).to(params[0].device, non_blocking=True)
                    if self.needs_loss and not counted:
                        # The groups mask a non-finite step themselves; count it once, on the device, without a sync.
                        skipped = (~torch.isfinite(device_loss)).to(torch.int64)
                        if self._skipped_on_device is not None:
                            skipped = skipped + self._skipped_on_device.to(skipped.device)
                        self._skipped_on_device = skipped
                        counted = True
                self._update_group(group, params, grads, device_loss)
        return loss

    @staticmethod
    def _host_scalars(device: torch.device) -> bool:
        """Keep scalars in Python on the CPU (free to read); on a device, keep them as device tensors."""
        return device.type == "cpu"

    def _update_group(self, group: dict, params: list[Tensor], grads: list[Tensor], loss) -> None:
        raise NotImplementedError

    # -- what a trainer logs -----------------------------------------------------------------------------------

    def _step_size(self, group: dict) -> float | Tensor:
        raise NotImplementedError

    @property
    def effective_lr(self) -> list[float]:
        """Per group, the step size of the most recent step (before the first step: the initial one, from b0).

        Reading it syncs with the device; call it when logging, not in the hot path.
        """
        return [float(self._step_size(group)) for group in self.param_groups]

    # -- state -------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        # torch hands out the live per-parameter tensors (moments, step counts), which the next step updates in
        # place; clone them so a saved dict stays a snapshot.
        state["state"] = {
            key: {name: value.detach().clone() if isinstance(value, Tensor) else value for name, value in s.items()}
            for key, s in state["state"].items()
        }
        # Group scalars that are tensors are updated in place too; clone them as well.
        for group in state["param_groups"]:
            for key, value in group.items():
                if isinstance(value, Tensor):
                    group[key] = value.detach().clone()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # torch keeps the loaded tensors themselves where dtype and device already match (always for "step"), so
        # this optimizer would update the caller's dict in place, and share state with any other optimizer loaded
        # from it. Own copies instead, on the parameter's device (torch leaves "step" where it was saved).
        for param, s in self.state.items():
            for name, value in s.items():
                if isinstance(value, Tensor):
                    s[name] = value.detach().to(device=param.device, copy=True)
        for group in self.param_groups:
            for key, value in group.items():
                if isinstance(value, Tensor) and key != "params":
                    group[key] = value.detach().clone()

    def _group_scalar(self, group: dict, key: str, device: torch.device) -> Tensor:
        """The group scalar ``key`` as a float32 tensor on ``device``, moved there once and kept there."""
        value = group[key]
        if not isinstance(value, Tensor) or value.device != device:
            value = torch.as_tensor(value, dtype=torch.float32).to(device)
            group[key] = value
        return value

