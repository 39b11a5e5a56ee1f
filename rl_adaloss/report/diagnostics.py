"""Could this setting have shown the effect at all? The accumulator diagnostics of the loss-driven rules.

AdaLoss and AdamLoss differ from their fixed-step counterparts only through the accumulator, which grows by
``α·|f − c|`` at every step. Where that growth stays small next to where the accumulator started, the rule *is* its
counterpart (AdamLoss is Adam with ``lr = η/√b0``) and a sweep cannot show the paper's mechanism, whatever the
returns say. With normalised rewards and ``α = 1`` the loss sum over a whole PPO run was about 500, so from any
``b0 ≥ 1e4`` AdamLoss was Adam.

The accumulator of each rule, as its class says (``rl_adaloss.optim.OPTIMIZERS[name].b0_squared``):

* Algorithm 2 (AdamLoss, ``b0_squared = False``): the accumulator is ``b`` itself; it starts at ``b0`` and its
  growth is ``b_T − b0``.
* Algorithm 1 (AdaLoss, AdaGrad-Norm, ``b0_squared = True``): the accumulator is ``b²``; the ``b`` columns of
  ``evaluations.csv`` hold ``b`` unsquared; it starts at ``b0²`` and its growth is ``b_T² − b0²``.
* torch's Adam has no ``b0_squared``: no accumulator, no growth. A rule without ``b`` columns (AdamSqrt, SGD) has
  none either.

The growth is measured against where the accumulator started (``b0``, or ``b0²``), which under the sweep's pairing
is the sweep's ``b0`` in both cases: the rule's own ``b0`` of each network comes from the run's ``config.yaml``
(``optimizer.b0``, overridden by ``optimizer.actor.b0`` / ``optimizer.critic.b0``). Since the step size is
``η/√accumulator``, a relative growth ``g`` shrinks the step by ``1/√(1 + g)``: under 10% growth, under 5% smaller.
A cell of a loss-driven rule is flagged ``adam_equivalent`` ("≡ Adam here") where the median over seeds of the
relative growth stays under :data:`ADAM_EQUIVALENT_BELOW` for both networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rl_adaloss.report.runs import ROLES, Run, rule_class

#: A loss-driven cell whose accumulators grew by less than this fraction of their start is "≡ Adam here".
ADAM_EQUIVALENT_BELOW = 0.1


@dataclass(frozen=True)
class Accumulator:
    """How a rule's accumulator relates to its ``b`` columns."""

    squared: bool  #: Algorithm 1: the accumulator is b² (the columns hold b)
    loss_driven: bool  #: it grows by the loss (AdaLoss, AdamLoss), not by gradients or steps

    @property
    def power(self) -> int:
        return 2 if self.squared else 1

    @property
    def counterpart(self) -> str:
        """The rule this one is while its accumulator stays put: Adam (Algorithm 2) or SGD (Algorithm 1)."""
        return "SGD" if self.squared else "Adam"

    @property
    def formula(self) -> str:
        """The relative growth, in the rule's own terms."""
        return "b_T²/b0² − 1" if self.squared else "b_T/b0 − 1"


def accumulator(schedule: str) -> Accumulator | None:
    """The accumulator of rule ``schedule``, or None where the rule has none (torch's Adam, an unknown name)."""
    rule = rule_class(schedule)
    if rule is None or not hasattr(rule, "b0_squared"):
        return None
    return Accumulator(bool(rule.b0_squared), bool(getattr(rule, "needs_loss", False)))


def accumulator_ratio(run: Run, role: str) -> np.ndarray:
    """The ``role`` network's accumulator over its start at each evaluation (``b_t/b0``, or ``b_t²/b0²``); NaN
    where the rule has no accumulator, the run no ``b`` column or no b0."""
    b = run.actor_b if role == "actor" else run.critic_b
    b0 = run.actor_b0 if role == "actor" else run.critic_b0
    kind = accumulator(run.schedule)
    if kind is None or not len(b) or not (math.isfinite(b0) and b0 > 0):
        return np.full(len(b), np.nan)
    with np.errstate(invalid="ignore", over="ignore"):
        return (np.asarray(b, dtype=float) / b0) ** kind.power


@dataclass(frozen=True)
class Growth:
    """One network's accumulator growth over a run: absolute (accumulator units) and over its start."""

    start: float  #: b0 (Algorithm 2) or b0² (Algorithm 1)
    growth: float  #: b_T − b0, or b_T² − b0², at the last evaluation with a b
    relative: float  #: growth / start


NO_GROWTH = Growth(math.nan, math.nan, math.nan)


def growth(run: Run, role: str) -> Growth:
    """The accumulator growth of ``role`` over ``run`` up to its last evaluation; NaNs where there is none."""
    ratio = accumulator_ratio(run, role)
    finite = np.flatnonzero(np.isfinite(ratio))
    if not len(finite):
        return NO_GROWTH
    kind = accumulator(run.schedule)
    start = (run.actor_b0 if role == "actor" else run.critic_b0) ** kind.power
    relative = float(ratio[finite[-1]]) - 1.0
    return Growth(start, relative * start, relative)


def median_relative_growth(runs: list[Run], role: str) -> float:
    """The median over ``runs`` of ``role``'s relative growth; NaN where no run has one."""
    values = [g.relative for g in (growth(run, role) for run in runs) if math.isfinite(g.relative)]
    return float(np.median(values)) if values else math.nan


def adam_equivalent(schedule: str, actor: float, critic: float) -> bool | None:
    """Whether a cell of rule ``schedule`` with these median relative growths was its fixed-step counterpart:
    True or False for a loss-driven rule with both growths known, else None (the question does not arise)."""
    kind = accumulator(schedule)
    if kind is None or not kind.loss_driven or math.isnan(actor) or math.isnan(critic):
        return None
    return actor < ADAM_EQUIVALENT_BELOW and critic < ADAM_EQUIVALENT_BELOW


DIAGNOSTICS_COLUMNS = [
    "env", "optimizer", "schedule", "b0", "seed", "status", "actor_b0", "critic_b0", "actor_accumulator_start",
    "critic_accumulator_start", "actor_growth", "critic_growth", "actor_growth_over_b0", "critic_growth_over_b0",
    "n_training_episodes",
]


def diagnostics_rows(runs: list[Run]) -> list[dict]:
    """``diagnostics.csv``: one row per run with data, its accumulators' growth per network."""
    rows = []
    for run in runs:
        if not run.has_data:
            continue
        row = dict(env=run.env, optimizer=run.optimizer, schedule=run.schedule, b0=run.b0, seed=run.seed,
                   status=run.status, actor_b0=run.actor_b0, critic_b0=run.critic_b0,
                   n_training_episodes=len(run.episode_steps))
        for role in ROLES:
            g = growth(run, role)
            row.update({f"{role}_accumulator_start": g.start, f"{role}_growth": g.growth,
                        f"{role}_growth_over_b0": g.relative})
        rows.append(row)
    return rows
