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
``skipped_steps`` counts it. The other rules never read the loss, so they step as usual. On the device path the
skip is done by masking (``found_inf``/``torch.where``), without a sync.

The member axis (``members=K``): K independent runs of the same rule in one optimizer, for a batched engine whose
parameters carry the member as dim 0 (a Linear weight is ``(K, out, in)``). Then ``lr``, ``b0`` (and ``alpha``,
``c`` where the rule has them) may be one number or one per member; they, the accumulators and the step counts are
``(K,)`` float64 tensors on the parameters' device (on the CPU too; float64 as the host path's Python floats, since
at ``b0 = 1e7`` float32's spacing is 1 and would drop every smaller loss increment; (K,) vectors cost nothing either
way); ``step(loss=...)`` takes a ``(K,)`` tensor, one loss per member; and member ``k`` moves exactly as an
optimizer of its own, fed slice ``k`` of every parameter, gradient and loss, would. A member whose loss is
non-finite is skipped *for that member only*, by every rule (the others go on): its parameters, moments, accumulator
and step count stay bit for bit as they were, so a batched engine freezes a diverged member by passing NaN as its
loss from then on. The member path is all tensor math, masked with ``torch.where`` on (K,) vectors and by bits
(:class:`MemberMask`) on whole parameters and moments: it never reads a tensor on the host, so a step never syncs
with the device.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


def skip_dynamo_import() -> None:
    """Let torch's optimizers run without importing ``torch._dynamo`` (which this project never uses).

    torch wraps ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
    ``torch._disable_dynamo``, which imports ``torch._dynamo`` on the first call, to mark the function as not to be
    compiled, and caches the result as ``fn.__dynamo_disable``. That import cost about 1.5 CPU-s per process on the
    2-core machine, as much as importing torch, in every process that builds an optimizer (a batch process of the
    batched engine, a config check). Caching the function itself there skips the import; outside ``torch.compile``
    the disabled function and the function are the same call. Does nothing once ``torch._dynamo`` is imported
    (someone may compile), or where torch's wrappers are not shaped as expected.
    """
    if "torch._dynamo" in sys.modules:
        return
    for name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict"):
        inner = getattr(torch.optim.Optimizer, name, None)
        fn = getattr(inner, "__wrapped__", None)
        if fn is not None and inner.__code__.co_name == "inner" and "__dynamo_disable" in inner.__code__.co_names:
            if getattr(fn, "__dynamo_disable", None) is None:
                fn.__dynamo_disable = fn


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


def check_members(owner: str, members: Any) -> int | None:
    if members is None:
        return None
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ValueError(f"{owner}: members must be None or an int >= 1 (the size of the member axis), got {members!r}")
    return members


def check_per_member(owner: str, name: str, value: Any, check: Callable[[str, str, float], None],
                     members: int | None) -> None:
    """Run ``check`` on ``value``; with ``members=K``, ``value`` may also be K numbers (a sequence or a 1-D tensor),
    each checked as ``name[i]``."""
    if members is None:
        check(owner, name, value)
        return
    if isinstance(value, Tensor):
        if value.dim() > 1:
            raise ValueError(f"{owner}: {name} must be a number or {members} numbers (one per member), "
                             f"got a tensor of shape {tuple(value.shape)}")
        value = value.tolist()  # at construction only
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        check(owner, name, value)
        return
    values = list(value)
    if len(values) != members:
        raise ValueError(f"{owner}: {name} must be a number or {members} numbers (one per member), "
                         f"got {len(values)}: {value!r}")
    for i, v in enumerate(values):
        if isinstance(v, numbers.Real) and not isinstance(v, (bool, int, float)):
            v = float(v)  # numpy scalars
        check(owner, f"{name}[{i}]", v)


#: The dtype of every member-mode scalar (hyper-parameters, accumulators, step counts, losses).
MEMBER_DTYPE = torch.float64


def member_vector(value: Any, members: int, device: torch.device) -> Tensor:
    """``value`` (a number, K numbers, or a tensor of either) as a (K,) float64 tensor on ``device``.

    Returns ``value`` itself when it already is one. A number is filled in on the device (no host-device copy).
    """
    if isinstance(value, Tensor):
        if value.shape == (members,) and value.dtype == MEMBER_DTYPE and value.device == device:
            return value
        vector = value.detach().to(device=device, dtype=MEMBER_DTYPE, non_blocking=True)
        if vector.dim() == 0:
            vector = vector.expand(members).clone()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.full((members,), float(value), dtype=MEMBER_DTYPE, device=device)
    else:
        vector = torch.tensor([float(v) for v in value], dtype=MEMBER_DTYPE).to(device, non_blocking=True)
    if vector.shape != (members,):
        raise ValueError(f"expected a number or {members} numbers (one per member), got shape {tuple(vector.shape)}")
    return vector


def member_view(vector: Tensor, like: Tensor) -> Tensor:
    """A (K,) vector viewed as (K, 1, ..., 1), to broadcast over a parameter of shape (K, ...) like ``like``; a
    floating vector is cast to ``like``'s dtype first, so that it does not promote the parameter's arithmetic."""
    if vector.is_floating_point() and vector.dtype != like.dtype:
        vector = vector.to(like.dtype)
    return vector.view((-1,) + (1,) * (like.dim() - 1))


#: The integer dtype with each floating dtype's width, to mask members by their bits.
_SAME_WIDTH_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


class MemberMask:
    """A (K,) bool mask of the members that step, applied to whole (K, ...) tensors by their bits.

    ``torch.where`` with a (K, 1, ..., 1) bool mask is several times slower on the CPU than a plain elementwise
    pass (the broadcast bool operand keeps it off the vectorised path); an integer AND with an all-ones or all-zeros
    (K, 1, ..., 1) word of the same width is not, and it is exact by construction: it keeps or clears bits, so
    nothing is rounded, and a NaN or infinite value of a frozen member never reaches arithmetic. No host reads.
    """

    def __init__(self, stepping: Tensor) -> None:
        self.stepping = stepping
        self._words: dict[tuple[torch.dtype, int], Tensor] = {}

    def _word(self, like: Tensor) -> Tensor:
        itype = _SAME_WIDTH_INT[like.element_size()]
        key = (itype, like.dim())
        word = self._words.get(key)
        if word is None:
            base = self._words.get((itype, 1))
            if base is None:
                # -1 is all ones in two's complement.
                base = self._words[(itype, 1)] = self.stepping.to(itype).neg_()
            word = self._words[key] = base.view((-1,) + (1,) * (like.dim() - 1))
        return word

    def zero_frozen_(self, update: Tensor) -> Tensor:
        """``update`` with the frozen members' entries set to +0.0 (all bits clear), in place. ``p - update`` is
        then ``p`` bit for bit for them (``x - (+0) == x`` for every x, -0, infinities and NaN included)."""
        update.view(_SAME_WIDTH_INT[update.element_size()]).bitwise_and_(self._word(update))
        return update

    def blend_(self, old: Tensor, new: Tensor) -> Tensor:
        """``old <- new`` for the members that step, ``old`` unchanged (bit for bit) for the others, in place;
        ``new`` (a temporary) is overwritten. ``old ^= (old ^ new) & word``."""
        itype = _SAME_WIDTH_INT[old.element_size()]
        diff = new.view(itype).bitwise_xor_(old.view(itype)).bitwise_and_(self._word(old))
        old.view(itype).bitwise_xor_(diff)
        return old


def add_loss(accumulator: float | Tensor, loss: float | Tensor, alpha: float, c: float,
             all_finite: bool = False) -> float | Tensor:
    r"""The loss-driven accumulator that AdaLoss and AdamLoss share: ``accumulator + alpha * |loss - c|``.

    Algorithm 1 (AdaLoss) applies it to :math:`b^2`, Algorithm 2 (AdamLoss) to :math:`b` itself. A float
    accumulator (the host path) gives a new float; a tensor accumulator (the device path) is updated in place and
    returned, and a non-finite tensor loss adds nothing there (masked, so no host-device sync). The host path
    skips non-finite losses before it gets here.

    In member mode ``accumulator``, ``loss``, ``alpha`` and ``c`` are (K,) tensors (or numbers, which broadcast),
    and the mask is per member: a member with a non-finite loss adds nothing. ``all_finite``: the caller knows every
    loss is finite (``step(all_finite=True)``), so the mask would select every increment and is skipped.
    """
    if isinstance(accumulator, Tensor):
        if all_finite:
            return accumulator.add_(alpha * (loss - c).abs())
        finite = torch.isfinite(loss)
        return accumulator.add_(torch.where(finite, alpha * (loss - c).abs(), 0.0))
    return float(accumulator) + alpha * abs(loss - c)


class ScheduledOptimizer(Optimizer):
    """Base class: resolves the loss, skips non-finite steps, and hands each group to :meth:`_update_group`
    (:meth:`_update_members` in member mode).

    Subclasses set ``needs_loss``, ``b0_squared``, ``hyper_checks`` and ``group_state``, and implement
    ``_init_group``, ``_update_group``, ``_update_members`` and ``_step_size``.
    """

    #: The hyper-parameters that may differ per member, with the check each value (or each member's value) passes.
    hyper_checks: dict[str, Callable[[str, str, float], None]] = {"lr": check_non_negative, "b0": check_positive}

    #: True for the rules whose accumulator is driven by the loss value.
    needs_loss: bool = False
    #: Member mode, during a step: every member steps (``step(all_finite=True)``), so no masks are needed.
    _all_step: bool = False
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

    def __init__(self, params, defaults: dict[str, Any], members: int | None = None) -> None:
        skip_dynamo_import()
        name = type(self).__name__
        #: The size of the member axis (dim 0 of every parameter), or None for an ordinary optimizer.
        self.members = check_members(name, members)
        for key, check in self.hyper_checks.items():
            check_per_member(name, key, defaults[key], check, self.members)
        super().__init__(params, defaults)
        self.skipped_steps = 0

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if self.members is not None:
            self._check_member_group(group, len(self.param_groups) - 1)
        self._init_group(group)

    def _init_group(self, group: dict[str, Any]) -> None:
        """Start a new group's scalar state (accumulator, step count); see :meth:`_init_scalar`."""

    def _init_scalar(self, group: dict[str, Any], key: str, value: Any) -> None:
        """Set ``group[key]`` to ``value`` unless it is there: as given, or a (K,) float64 tensor in member mode."""
        if key in group:
            return
        if self.members is not None:
            value = member_vector(value, self.members, _group_device(group)).clone()
        group[key] = value

    def _check_member_group(self, group: dict[str, Any], index: int) -> None:
        """Member mode: every parameter has the member axis as dim 0; the hyper-parameters become (K,) tensors."""
        name, members = type(self).__name__, self.members
        for i, param in enumerate(group["params"]):
            if param.dim() == 0 or param.shape[0] != members:
                raise ValueError(
                    f"{name}(members={members}): dim 0 of every parameter is the member axis and must have size "
                    f"{members}; parameter {i} of group {index} has shape {tuple(param.shape)}"
                )
        device = _group_device(group)
        for key, check in self.hyper_checks.items():
            check_per_member(name, key, group[key], check, members)
            group[key] = member_vector(group[key], members, device).clone()

    def _member(self, group: dict[str, Any], key: str) -> Tensor:
        """Member mode: ``group[key]`` as a (K,) float64 tensor on the group's device, converted once and kept.

        A number written there later (a schedule rewriting ``lr``) is filled in on the device, without a sync.
        """
        value = group[key]
        vector = member_vector(value, self.members, _group_device(group))
        if vector is not value:
            group[key] = vector
        return vector

    @property
    def skipped_steps(self) -> int | Tensor:
        """How many steps a non-finite loss skipped. On the device path the count is kept on the device (no sync
        per step); reading it syncs, so read it when logging.

        In member mode: per member, a (K,) int64 tensor on the parameters' device (reading it does not sync).
        """
        if self.members is not None:
            return self._skipped_members.clone()
        count = self._skipped_on_host
        if self._skipped_on_device is not None:
            count += int(self._skipped_on_device)
        return count

    @skipped_steps.setter
    def skipped_steps(self, value: int | Tensor) -> None:
        if self.members is not None:
            count = torch.as_tensor(value, dtype=torch.int64).to(self._first_device())
            if count.dim() == 0:
                count = count.expand(self.members)
            if count.shape != (self.members,):
                raise ValueError(f"{type(self).__name__}: skipped_steps must be a number or {self.members} numbers, "
                                 f"got shape {tuple(count.shape)}")
            self._skipped_members = count.clone()
            return
        self._skipped_on_host = int(value)
        self._skipped_on_device: Tensor | None = None

    def _first_device(self) -> torch.device:
        return _group_device(self.param_groups[0]) if self.param_groups else torch.device("cpu")

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["members"] = self.members
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Optimizer pickles only defaults, state and param_groups (and ``members``, above); a copy starts its
        # count afresh.
        super().__setstate__(state)
        self.__dict__.setdefault("members", None)
        self.__dict__.setdefault("_skipped_on_host", 0)
        self.__dict__.setdefault("_skipped_on_device", None)
        if self.members is not None and "_skipped_members" not in self.__dict__:
            self.skipped_steps = 0

    # -- the step ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, loss: Any = None,  # type: ignore[override]
             all_finite: bool = False):
        """Take one step. Pass the current loss as ``loss=`` (a float or a 0-dim tensor) or through ``closure``.

        ``all_finite`` (member mode only): the caller's promise that every member's loss is finite, so that every
        member steps. The step then skips the masks that keep skipped members bit for bit (the arithmetic of a
        stepping member is the same, so the result is too). It is for a caller that reads its losses for free (a
        trainer on the CPU); the optimizer does not check it, since checking would read the losses on the host.

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
        if self.members is not None:
            return self.step_members(loss, all_finite)
        if all_finite:
            raise ValueError(f"{type(self).__name__}.step(): all_finite is for member mode (members=K)")
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(f"{type(self).__name__}.step(): loss must be a scalar, got shape {tuple(loss.shape)}")
            loss_value: float | Tensor | None = loss.detach().reshape(())
        elif loss is None or isinstance(loss, (int, float)):
            loss_value = loss
        else:
            raise TypeError(
                f"{type(self).__name__}.step(): loss must be a float or a tensor, got {type(loss).__name__}"
            )

        counted = False
        for group in self.param_groups:
            params, grads = self._with_grads(group)
            if not params:
                continue
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
                    device_loss = torch.as_tensor(loss_value, dtype=torch.float64).to(
                        params[0].device, non_blocking=True
                    )
                    if self.needs_loss and not counted:
                        # The groups mask a non-finite step themselves; count it once, on the device, without a sync.
                        skipped = (~torch.isfinite(device_loss)).to(torch.int64)
                        if self._skipped_on_device is not None:
                            skipped = skipped + self._skipped_on_device.to(skipped.device)
                        self._skipped_on_device = skipped
                        counted = True
                self._update_group(group, params, grads, device_loss)
        return loss

    def step_members(self, loss: Tensor | None, all_finite: bool = False) -> Tensor | None:
        """Member mode: ``step(loss=loss, all_finite=all_finite)`` without what ``torch.optim.Optimizer`` wraps around
        every ``step`` call (its step hooks, the profiler's ``record_function``, and ``no_grad``), for a trainer that
        steps every minibatch under ``no_grad`` (the batched engine, where the wrapper cost about a fifth of a step).
        Registered step hooks do not run here; call it with gradients off."""
        self._all_step = bool(all_finite)
        try:
            return self._step_members(loss)
        finally:
            self._all_step = False

    def _step_members(self, loss: Tensor | None) -> Tensor | None:
        """Member mode: one loss per member; a member with a non-finite loss is skipped by every rule.

        All tensor math: nothing here reads a tensor on the host, so the step never syncs with the device.
        """
        name, members = type(self).__name__, self.members
        if loss is not None:
            if not isinstance(loss, Tensor):
                raise TypeError(f"{name}.step(): with members={members}, loss must be a tensor of shape ({members},), "
                                f"one loss per member, got {type(loss).__name__}")
            if loss.shape != (members,):
                raise ValueError(f"{name}.step(): with members={members}, loss must have shape ({members},), "
                                 f"one loss per member, got shape {tuple(loss.shape)}")
        per_device: dict[torch.device, tuple[Tensor | None, Tensor]] = {}
        for group in self.param_groups:
            params, grads = self._with_grads(group)
            if not params:
                continue
            device = params[0].device
            if device not in per_device:
                if loss is None:
                    # A rule that ignores the loss, stepped without one: every member steps.
                    per_device[device] = (None, self._everyone(device))
                else:
                    member_loss = loss.detach().to(device=device, dtype=MEMBER_DTYPE, non_blocking=True)
                    if self._all_step:
                        # Every loss is finite (the caller's promise): every member steps, none counted as skipped.
                        finite = self._everyone(device)
                    else:
                        finite = torch.isfinite(member_loss)
                        if not per_device:  # count each step once, on the device
                            skipped = (~finite).to(torch.int64)
                            self._skipped_members = skipped + self._skipped_members.to(device)
                    per_device[device] = (member_loss, finite)
            self._update_members(group, params, grads, *per_device[device])
        return loss

    def _everyone(self, device: torch.device) -> Tensor:
        """Member mode: the (K,) all-True mask on ``device``, made once (the rules read their masks, never write
        them)."""
        cache = self.__dict__.setdefault("_everyone_masks", {})
        if device not in cache:
            cache[device] = torch.ones(self.members, dtype=torch.bool, device=device)
        return cache[device]

    def _update_members(self, group: dict, params: list[Tensor], grads: list[Tensor], loss: Tensor | None,
                        stepping: Tensor) -> None:
        """Member mode: update ``group`` for the members where the (K,) bool ``stepping`` is True, and leave the
        others bit for bit as they are. ``loss`` is (K,) float64 on the group's device, or None."""
        raise NotImplementedError

    def _with_grads(self, group: dict) -> tuple[list[Tensor], list[Tensor]]:
        """The group's parameters that have a gradient, and their gradients (dense ones only)."""
        params = [p for p in group["params"] if p.grad is not None]
        if any(p.grad.is_sparse for p in params):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        return params, [p.grad for p in params]

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

        Reading it syncs with the device; call it when logging, not in the hot path. In member mode: per group, a
        list of K floats.
        """
        if self.members is not None:
            return [self._step_size(group).tolist() for group in self.param_groups]
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
        if self.members is not None:
            # Only in member mode, so an ordinary optimizer's dict stays torch's own.
            state["members"] = self.members
            state["skipped_steps"] = self._skipped_members.clone()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_members = state_dict.get("members")
        if saved_members != self.members:
            raise ValueError(f"{type(self).__name__}.load_state_dict(): the state is from an optimizer with "
                             f"members={saved_members}, this one has members={self.members}")
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
        if self.members is not None:
            self.skipped_steps = state_dict.get("skipped_steps", 0)

    def _group_scalar(self, group: dict, key: str, device: torch.device) -> Tensor:
        """The group scalar ``key`` as a float64 tensor on ``device``, moved there once and kept there. float64, as
        the host path's Python floats: at ``b0 = 1e7`` float32's spacing is 1, and every smaller loss increment of
        the accumulator would be lost."""
        value = group[key]
        if not isinstance(value, Tensor) or value.device != device or value.dtype != MEMBER_DTYPE:
            value = torch.as_tensor(value, dtype=MEMBER_DTYPE).to(device)
            group[key] = value
        return value


def _group_device(group: dict[str, Any]) -> torch.device:
    return group["params"][0].device if group["params"] else torch.device("cpu")
