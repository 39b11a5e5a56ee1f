"""Aggregating the grid: each env x optimizer x b0 cell's seeds on a common step axis, and their statistics: eval
returns, training-episode returns, effective step sizes and the accumulators' growth."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rl_adaloss.report.diagnostics import accumulator_ratio, adam_equivalent, median_relative_growth
from rl_adaloss.report.runs import Run
from rl_adaloss.report.stats import DEFAULT_REPS, bootstrap_ci, iqm

#: Sweeps with at least this many seeds are aggregated with the IQM, smaller ones with the mean.
IQM_MIN_SEEDS = 4
#: A run's training score at an episode's end is the mean return of its last this many episodes.
TRAINING_WINDOW = 10
#: Points of each env's training-score step axis.
TRAINING_POINTS = 101


# -- curves on a common step axis ------------------------------------------------------------------------------------

def common_steps(step_arrays: Iterable[np.ndarray]) -> np.ndarray:
    """The step axis that runs evaluated at different steps are resampled onto: the sorted union of their steps."""
    arrays = [np.asarray(a, dtype=float) for a in step_arrays if len(a)]
    return np.unique(np.concatenate(arrays)) if arrays else np.zeros(0)


def resample(steps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``values`` (given at ``steps``) at each step of ``grid``: linear between evaluations, the first value before
    the first one, the last value after the last one."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(steps) == 0:
        return np.full(len(grid), np.nan)
    return np.interp(grid, steps, values)


def score_curve(run: Run, grid: np.ndarray) -> np.ndarray:
    """The run's eval return on ``grid`` as aggregated: resampled, and for a diverged run its minimum eval return
    from the first grid step after its last evaluation on."""
    curve = resample(run.steps, run.returns, grid)
    if run.status == "diverged":
        curve[grid > run.steps[-1]] = np.min(run.returns)
    return curve


def area_under_curve(curve: np.ndarray, grid: np.ndarray) -> float:
    """Mean value of ``curve`` over the steps ``grid`` spans (trapezoids); the value itself for a single step."""
    if len(grid) < 2 or grid[-1] == grid[0]:
        return float(curve[0])
    return float(np.trapezoid(curve, grid) / (grid[-1] - grid[0]))


def training_scores(run: Run) -> np.ndarray:
    """The run's training score at each episode's end: the mean return of its last :data:`TRAINING_WINDOW`
    episodes (SB3's ``ep_rew_mean``, over a shorter window)."""
    returns = np.asarray(run.episode_returns, dtype=float)
    if not len(returns):
        return returns
    sums = np.cumsum(np.concatenate([[0.0], returns]))
    ends = np.arange(1, len(returns) + 1)
    starts = np.maximum(ends - TRAINING_WINDOW, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def training_points(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """The run's training score at each step where episodes ended: where several envs ended one at the same step,
    the score after all of them (one point per step, so a curve never jumps vertically)."""
    scores = training_scores(run)
    steps = np.asarray(run.episode_steps, dtype=float)
    if not len(steps):
        return steps, scores
    last = np.flatnonzero(np.r_[steps[1:] != steps[:-1], True])  # the last episode of each step (steps sorted)
    return steps[last], scores[last]


def training_steps(runs: Iterable[Run]) -> np.ndarray:
    """An env's training-score step axis: :data:`TRAINING_POINTS` evenly spaced steps from the earliest first
    episode end to the latest last one."""
    ends = [(run.episode_steps[0], run.episode_steps[-1]) for run in runs if len(run.episode_steps)]
    if not ends:
        return np.zeros(0)
    first, last = min(e[0] for e in ends), max(e[1] for e in ends)
    return np.unique(np.round(np.linspace(first, last, TRAINING_POINTS)))


def training_curve(run: Run, grid: np.ndarray) -> np.ndarray:
    """The run's training score on ``grid``, resampled as the eval curves are; for a diverged run its minimum
    training score after its last episode (as :func:`score_curve` does with its evaluations)."""
    steps, scores = training_points(run)
    curve = resample(steps, scores, grid)
    if run.status == "diverged" and len(scores):
        curve[grid > steps[-1]] = np.min(scores)
    return curve


def _geometric_curve(runs: list[Run], grid: np.ndarray, values_of) -> np.ndarray:
    """Geometric mean over seeds, on ``grid``, of each run's positive ``values_of(run)`` at its evaluations; each run
    counts only within its own evaluations (after a diverged run stopped, its value is unknown, not held)."""
    rows = []
    for run in runs:
        values = np.asarray(values_of(run), dtype=float)
        if len(values) != len(run.steps):
            continue
        ok = np.isfinite(values) & (values > 0)
        if not ok.any():
            continue
        curve = np.exp(resample(run.steps[ok], np.log(values[ok]), grid))
        curve[(grid < run.steps[ok][0]) | (grid > run.steps[ok][-1])] = np.nan
        rows.append(curve)
    if not rows:
        return np.full(len(grid), np.nan)
    logs = np.log(np.array(rows))
    with warnings.catch_warnings():  # an all-NaN column (no run evaluated there) is NaN on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.exp(np.nanmean(logs, axis=0))


def step_size_curve(runs: list[Run], grid: np.ndarray, role: str) -> np.ndarray:
    """Geometric mean over seeds of the ``role`` (actor or critic) effective step size on ``grid``; each run counts
    only within its own evaluations (a diverged run's step size after it stopped is unknown, not held)."""
    return _geometric_curve(runs, grid, lambda run: run.actor_lr if role == "actor" else run.critic_lr)


def accumulator_curve(runs: list[Run], grid: np.ndarray, role: str) -> np.ndarray:
    """Geometric mean over seeds of the ``role`` accumulator over its start (``b_t/b0``; ``b_t²/b0²`` for the
    Algorithm-1 rules) on ``grid``; NaN throughout for a rule without an accumulator."""
    return _geometric_curve(runs, grid, lambda run: accumulator_ratio(run, role))


# -- the grid's cells ------------------------------------------------------------------------------------------------

@dataclass
class Group:
    """All seeds of one env x optimizer x b0, and their aggregates."""

    env: str
    optimizer: str
    schedule: str
    b0: float
    runs: list[Run]
    statistic: str = "mean"
    curve: np.ndarray | None = None  # aggregate eval return on the env's grid, and its CI
    curve_low: np.ndarray | None = None
    curve_high: np.ndarray | None = None
    final: dict[str, float] = field(default_factory=dict)  # iqm, mean, low, high (of `statistic`)
    auc: dict[str, float] = field(default_factory=dict)
    actor_lr: np.ndarray | None = None
    critic_lr: np.ndarray | None = None
    actor_accumulator: np.ndarray | None = None  # accumulator / its start, geometric mean over seeds
    critic_accumulator: np.ndarray | None = None
    actor_growth: float = math.nan  # median over seeds of the accumulator's growth / its start
    critic_growth: float = math.nan
    adam_equivalent: bool | None = None  # a loss-driven rule whose accumulators hardly grew: None where not asked
    train_curve: np.ndarray | None = None  # aggregate training-episode score on the env's training grid, its CI
    train_low: np.ndarray | None = None
    train_high: np.ndarray | None = None

    @property
    def used(self) -> list[Run]:
        """The seeds in the numbers."""
        return [run for run in self.runs if run.has_data]

    def count(self, status: str) -> int:
        return sum(run.status == status for run in self.runs)

    @property
    def n_diverged(self) -> int:
        return self.count("diverged")

    @property
    def headline(self) -> float:
        """The cell's final return, as ``statistic`` over seeds."""
        return self.final.get(self.statistic.lower(), math.nan)


@dataclass
class Report:
    """The aggregated sweep: every cell, each env's step axis, and how the CIs were computed."""

    sweep: dict[str, Any]
    runs: list[Run]
    groups: list[Group]
    grids: dict[str, np.ndarray]  # env -> step axis
    statistic: str
    eta: float
    envs: list[str]
    optimizers: list[str]
    b0s: list[float]
    bootstrap: str = "rliable"  #: the bootstrap of the CIs, "rliable" or "numpy"
    fallback: str = ""  #: why numpy, where rliable was asked for and could not run
    train_grids: dict[str, np.ndarray] = field(default_factory=dict)  # env -> training-score step axis

    def group(self, env: str, optimizer: str, b0: float) -> Group | None:
        for group in self.groups:
            if (group.env, group.optimizer, group.b0) == (env, optimizer, b0):
                return group
        return None

    def b0_label(self, b0: float) -> str:
        """b0 as the sweep's folder names write it (1e6, 0.01, 100)."""
        return next((run.b0_label for run in self.runs if run.b0 == b0), f"{b0:g}")

    def variant_eta(self, optimizer: str) -> float:
        """The variant's base step size: its own ``eta`` where the sweep gives it one, else the sweep's."""
        return variant_eta(self.sweep, optimizer)

    def initial_step(self, b0: float, optimizer: str | None = None) -> float:
        """The first step eta/sqrt(b0) of the grid's b0, for ``optimizer``'s eta (None: the sweep's)."""
        return (self.eta if optimizer is None else self.variant_eta(optimizer)) / math.sqrt(b0)

    @property
    def variants_own_eta(self) -> bool:
        """Whether some variant has its own eta, so that no one first step at a b0 holds for every variant."""
        return any(self.variant_eta(optimizer) != self.eta for optimizer in self.optimizers)

    def first_step_label(self, b0: float, spec: str = ".3g") -> str:
        """The first step of every variant at ``b0``: eta/sqrt(b0), else "the variant's eta/√b0"."""
        return "the variant's eta/√b0" if self.variants_own_eta else format(self.initial_step(b0), spec)

    def first_step_text(self, b0: float, spec: str = ".3g") -> str:
        """"first step <label>", for a label shared by every variant at ``b0``."""
        separator = ": " if self.variants_own_eta else " "
        return f"first step{separator}{self.first_step_label(b0, spec)}"


def variant_eta(sweep: dict[str, Any], optimizer: str) -> float:
    """A sweep variant's base step size: its own ``eta`` where the sweep (as ``sweep.json`` records it) gives it one,
    else the sweep's."""
    return float(((sweep.get("optimizers") or {}).get(optimizer) or {}).get("eta") or sweep.get("eta", 1.0))


def _ordered(values: Iterable, preferred: Iterable = ()) -> list:
    """Unique values, those of ``preferred`` first in its order, the rest in order of appearance."""
    values = list(dict.fromkeys(values))
    first = [v for v in preferred if v in values]
    return first + [v for v in values if v not in first]


def _band(curves: np.ndarray, n_runs: int, statistic: str, reps: int, seed: int, bootstrap: str):
    """The aggregate of ``curves`` (runs x steps) with its 95% CI (NaN with fewer than 2 runs), and the fallback."""
    estimate = bootstrap_ci(curves, statistic, reps, seed, bootstrap)
    low, high = estimate.low, estimate.high
    if n_runs < 2:  # resampling one run gives a zero-width interval: no CI, not a sure one
        low, high = np.full(curves.shape[1], np.nan), np.full(curves.shape[1], np.nan)
    return estimate.point, low, high, estimate.fallback


def fill_diagnostics(group: Group, grid: np.ndarray, train_grid: np.ndarray, reps: int, seed: int,
                     bootstrap: str) -> str:
    """The accumulators' growth and the training-episode scores of ``group``; returns the bootstrap's fallback."""
    used = group.used
    group.actor_accumulator = accumulator_curve(used, grid, "actor")
    group.critic_accumulator = accumulator_curve(used, grid, "critic")
    group.actor_growth = median_relative_growth(used, "actor")
    group.critic_growth = median_relative_growth(used, "critic")
    group.adam_equivalent = adam_equivalent(group.schedule, group.actor_growth, group.critic_growth)
    trained = [run for run in used if len(run.episode_steps)]
    if not trained or not len(train_grid):
        return ""
    curves = np.array([training_curve(run, train_grid) for run in trained])
    group.train_curve, group.train_low, group.train_high, fallback = _band(
        curves, len(trained), group.statistic, reps, seed, bootstrap)
    return fallback


def fill_group(group: Group, grid: np.ndarray, reps: int, seed: int, bootstrap: str) -> str:
    """Compute the curve, final return, AUC and step sizes of ``group`` on ``grid``; return why rliable could not
    compute its CIs, or an empty string."""
    used, statistic = group.used, group.statistic
    curves = np.array([score_curve(run, grid) for run in used]).reshape(len(used), len(grid))
    finals = np.array([run.final for run in used])
    aucs = np.array([area_under_curve(curve, grid) for curve in curves])
    fallback = ""
    if len(grid):
        group.curve, group.curve_low, group.curve_high, fallback = _band(curves, len(used), statistic, reps, seed,
                                                                         bootstrap)
    for values, target in ((finals, group.final), (aucs, group.auc)):
        low = high = math.nan
        if len(values) >= 2:
            estimate = bootstrap_ci(values, statistic, reps, seed, bootstrap)
            fallback = fallback or estimate.fallback
            low, high = float(estimate.low[0]), float(estimate.high[0])
        target.update(iqm=float(iqm(values[:, None])[0]) if len(values) else math.nan,
                      mean=float(np.mean(values)) if len(values) else math.nan, low=low, high=high)
    group.actor_lr = step_size_curve(used, grid, "actor")
    group.critic_lr = step_size_curve(used, grid, "critic")
    return fallback


def aggregate(sweep: dict[str, Any], runs: list[Run], reps: int = DEFAULT_REPS, seed: int = 0,
              bootstrap: str = "rliable") -> Report:
    """Group the runs by env x optimizer x b0 and compute curves, final returns, AUCs and step sizes, with CIs from
    the ``bootstrap`` asked for ("rliable", or "numpy")."""
    n_seeds = len(sweep.get("seeds") or []) or max(
        sum(1 for r in runs if (r.env, r.optimizer, r.b0) == (run.env, run.optimizer, run.b0)) for run in runs)
    statistic = "IQM" if n_seeds >= IQM_MIN_SEEDS else "mean"
    envs = _ordered(run.env for run in runs)
    optimizers = _ordered((run.optimizer for run in runs), (sweep.get("optimizers") or {}).keys())
    b0s = sorted({run.b0 for run in runs})
    grids = {env: common_steps(run.steps for run in runs if run.env == env and run.has_data) for env in envs}
    train_grids = {env: training_steps(run for run in runs if run.env == env and run.has_data) for env in envs}
    groups, fallback = [], ""
    for env in envs:
        for optimizer in optimizers:
            for b0 in b0s:
                members = sorted((r for r in runs if (r.env, r.optimizer, r.b0) == (env, optimizer, b0)),
                                 key=lambda r: r.seed)
                if not members:
                    continue
                group = Group(env, optimizer, members[0].schedule, b0, members, statistic)
                why = fill_group(group, grids[env], reps, seed, bootstrap)
                why = fill_diagnostics(group, grids[env], train_grids[env], reps, seed,
                                       "numpy" if why else bootstrap) or why
                if why and not fallback:  # say it once, and stop asking rliable for every later CI
                    bootstrap, fallback = "numpy", why
                    print(f"note: rliable is unusable here ({why}); using the built-in stratified bootstrap",
                          file=sys.stderr)
                groups.append(group)
    return Report(sweep, runs, groups, grids, statistic, float(sweep.get("eta", 1.0)), envs, optimizers, b0s,
                  bootstrap, fallback, train_grids)
