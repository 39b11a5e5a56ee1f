"""The comparison report of a sweep: ``python -m rl_adaloss.report runs/<sweep>``.

Reads ``<sweep>/sweep.json`` (the list of grid points: every point is accounted for, run or not) and each run's
``result.json`` and ``evaluations.csv``, and writes into the sweep folder, each file atomically:

    reward_curves.png   eval return over env steps, one panel per b0, one curve per optimizer: the seed aggregate
                        with a 95% bootstrap band, each seed faintly behind it, diverged seeds ending in an x
    robustness.png      final eval return and mean eval return over training against b0 (log x), with 95% CIs:
                        which optimizer trains well from any b0?
    step_sizes.png      the effective step size of actor and critic over training (log y), per b0 and optimizer
    summary.csv         one row per env x optimizer x b0: counts, IQM, mean and 95% CI of final return and AUC
    summary.md          the same table, a paragraph generated from the numbers, and every run left out and why
    aggregate/          TensorBoard events: the seed aggregates as scalars, and a custom-scalars dashboard

How runs are aggregated
-----------------------
*Seeds.* Each run's evaluations are put on one step axis per env, the sorted union of every run's evaluation
steps, by linear interpolation between its own evaluations (held constant before the first one). Across seeds the
curve is the IQM (interquartile mean) when the sweep has at least 4 seeds, else the plain mean (an IQM of 2 or 3
values trims nothing anyway); the band and every CI is a 95% percentile stratified bootstrap over seeds
(rliable's ``get_interval_estimates``; a numpy implementation of the same resampling where rliable cannot be
imported or run). A point with fewer than 2 usable seeds gets no CI (blank), not a zero-width one.

*Diverged runs count, as failures.* A run that diverged is neither dropped nor frozen at its last value: from the
first step after its last evaluation to the end of the budget it scores its **minimum** evaluation return (usually
about the untrained policy's). Its final return is that minimum, and its curve drops to it. Carrying its last value
forward would credit a run whose parameters became NaN with the return it had before; the minimum is the
run's own worst observed return, so a divergence costs the optimizer without inventing a number off the scale.
A diverged run with no evaluation at all has nothing to score and is left out of the numbers (still counted).

*Left out.* Failed, interrupted and never-run points are not in the numbers; summary.md lists each with its reason.

*Final return* is the last evaluation of a finished run. *AUC* is the mean eval return over training: the area
under the resampled curve divided by the steps it spans, so it rewards learning early, not only ending well.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from rl_adaloss.io import read_json, write_atomic

CONFIDENCE = 0.95
DEFAULT_REPS = 2000
#: Sweeps with at least this many seeds are aggregated with the IQM, smaller ones with the mean.
IQM_MIN_SEEDS = 4
MISSING_STATUSES = ("failed", "interrupted", "not run")
SUMMARY_COLUMNS = [
    "env", "optimizer", "schedule", "b0", "initial_step", "n_seeds", "n_used", "n_finished", "n_diverged",
    "n_failed", "n_interrupted", "n_not_run", "statistic", "final_iqm", "final_mean", "final_ci_low",
    "final_ci_high", "auc_iqm", "auc_mean", "auc_ci_low", "auc_ci_high",
]
OUTPUTS = ("reward_curves.png", "robustness.png", "step_sizes.png", "summary.csv", "summary.md")


class ReportError(Exception):
    """A sweep folder the report cannot read: the CLI prints it on one line and exits 2."""


# -- reading a sweep ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One grid point: what sweep.json and its run directory say about it."""

    env: str
    optimizer: str
    schedule: str
    b0: float
    seed: int
    run_dir: Path
    status: str
    reason: str | None = None
    diverged_at: int | None = None
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    actor_lr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    critic_lr: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def b0_label(self) -> str:
        """b0 as the sweep wrote it in the run's folder name (``b0=1e6``), else ``%g``."""
        match = re.search(r"(?:^|/)b0=([^/]+)", self.run_dir.as_posix())
        return match.group(1) if match else f"{self.b0:g}"

    @property
    def has_data(self) -> bool:
        """Whether the run enters the numbers: finished or diverged, with at least one evaluation."""
        return self.status in ("finished", "diverged") and len(self.steps) > 0

    @property
    def final(self) -> float:
        """The run's score at the end of the budget: last evaluation, or for a diverged run its minimum."""
        return float(np.min(self.returns)) if self.status == "diverged" else float(self.returns[-1])


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_evaluations(path: Path) -> dict[str, np.ndarray]:
    """``evaluations.csv`` as arrays (empty ones if the file is missing), rows sorted by step, non-finite returns
    dropped; empty cells (the b columns of Adam) read as NaN."""
    columns = ("timesteps", "mean_reward", "actor_effective_lr", "critic_effective_lr")
    if not path.is_file():
        return {name: np.zeros(0) for name in columns}
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if math.isfinite(_float(row.get("mean_reward")))]
    rows.sort(key=lambda row: _float(row.get("timesteps")))
    return {name: np.array([_float(row.get(name)) for row in rows], dtype=float) for name in columns}


def load_runs(sweep_dir: Path) -> tuple[dict[str, Any], list[Run]]:
    """The sweep config and every grid point of ``sweep.json``, with its run's data where there is any."""
    if not sweep_dir.is_dir():
        raise ReportError(f"not a directory: {sweep_dir}")
    index_path = sweep_dir / "sweep.json"
    if not index_path.is_file():
        raise ReportError(f"{sweep_dir} is not a sweep folder (no sweep.json)")
    try:
        index = read_json(index_path)
        sweep, points = index["sweep"], index["points"]
    except (ValueError, KeyError, TypeError) as error:
        raise ReportError(f"{index_path}: unreadable ({type(error).__name__}: {error})") from None
    variants = sweep.get("optimizers") or {}
    runs = []
    for point in points:
        run_dir = sweep_dir / point["run_dir"]
        status, reason, diverged_at = point.get("status") or "not run", point.get("reason"), None
        result_path = run_dir / "result.json"
        if result_path.is_file():  # fresher than sweep.json when a run ended after the index was written
            try:
                result = read_json(result_path)
                status, reason, diverged_at = result["status"], result.get("reason"), result.get("diverged_at")
            except (ValueError, KeyError):
                pass
        spec = variants.get(point["optimizer"]) or {}
        run = Run(env=point["env"], optimizer=point["optimizer"], schedule=spec.get("name", point["optimizer"]),
                  b0=float(point["b0"]), seed=int(point["seed"]), run_dir=run_dir, status=status, reason=reason,
                  diverged_at=diverged_at)
        if status in ("finished", "diverged"):
            table = read_evaluations(run_dir / "evaluations.csv")
            run.steps, run.returns = table["timesteps"], table["mean_reward"]
            run.actor_lr, run.critic_lr = table["actor_effective_lr"], table["critic_effective_lr"]
        runs.append(run)
    if not runs:
        raise ReportError(f"{index_path} lists no grid points")
    return sweep, runs


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


def step_size_curve(runs: list[Run], grid: np.ndarray, role: str) -> np.ndarray:
    """Geometric mean over seeds of the ``role`` (actor or critic) effective step size on ``grid``; each run counts
    only within its own evaluations (a diverged run's step size after it stopped is unknown, not held)."""
    rows = []
    for run in runs:
        lr = run.actor_lr if role == "actor" else run.critic_lr
        ok = np.isfinite(lr) & (lr > 0)
        if not ok.any():
            continue
        curve = np.exp(resample(run.steps[ok], np.log(lr[ok]), grid))
        curve[(grid < run.steps[ok][0]) | (grid > run.steps[ok][-1])] = np.nan
        rows.append(curve)
    if not rows:
        return np.full(len(grid), np.nan)
    logs = np.log(np.array(rows))
    with warnings.catch_warnings():  # an all-NaN column (no run evaluated there) is NaN on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.exp(np.nanmean(logs, axis=0))


# -- statistics ------------------------------------------------------------------------------------------------------

def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over runs (axis 0): the mean of the middle half, 25% trimmed from each end."""
    from scipy.stats import trim_mean

    return np.asarray(trim_mean(scores, 0.25, axis=0), dtype=float)


def mean(scores: np.ndarray) -> np.ndarray:
    return np.mean(scores, axis=0)


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"IQM": iqm, "mean": mean}
#: Which bootstrap produced the CIs of this process: "rliable", or "numpy" where rliable was unusable.
BOOTSTRAP_BACKEND = {"name": "rliable", "why": ""}


def _bootstrap_numpy(scores: np.ndarray, statistic: Callable, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap, resampling runs with replacement (with one task, stratified = plain resampling)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(scores), size=(reps, len(scores)))
    estimates = np.array([statistic(scores[pick]) for pick in picks])
    tail = (1 - CONFIDENCE) / 2 * 100
    return np.percentile(estimates, tail, axis=0), np.percentile(estimates, 100 - tail, axis=0)


def _bootstrap_rliable(scores: np.ndarray, statistic: Callable, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from rliable import library as rly

    # rliable wants (runs, tasks, ...): one task, and the steps (or the one number) as the trailing axis.
    data = scores[:, None, :]
    with warnings.catch_warnings():  # arch's FutureWarning about rliable's random_state argument
        warnings.simplefilter("ignore", FutureWarning)
        _, intervals = rly.get_interval_estimates({"x": data}, lambda s: statistic(s[:, 0, :]), reps=reps,
                                                  confidence_interval_size=CONFIDENCE,
                                                  random_state=np.random.RandomState(seed))
    return intervals["x"][0], intervals["x"][1]


def bootstrap_ci(scores: np.ndarray, statistic: str, reps: int = DEFAULT_REPS,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and 95% CI of ``statistic`` (IQM or mean) over runs, for each column of ``scores``
    (runs x points). NaNs for no runs; a zero-width interval for one run."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        scores = scores[:, None]
    if len(scores) == 0:
        nan = np.full(scores.shape[1], np.nan)
        return nan, nan.copy(), nan.copy()
    function = STATISTICS[statistic]
    point = function(scores)
    if BOOTSTRAP_BACKEND["name"] == "rliable":
        try:
            low, high = _bootstrap_rliable(scores, function, reps, seed)
            return point, np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        except Exception as error:  # noqa: BLE001 - e.g. rliable's arch dependency broken by the pandas version
            BOOTSTRAP_BACKEND.update(name="numpy", why=f"{type(error).__name__}: {str(error).splitlines()[0]}")
            print(f"note: rliable is unusable here ({BOOTSTRAP_BACKEND['why']}); using the built-in stratified "
                  f"bootstrap", file=sys.stderr)
    low, high = _bootstrap_numpy(scores, function, reps, seed)
    return point, low, high


# -- aggregating the grid --------------------------------------------------------------------------------------------

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

    @property
    def used(self) -> list[Run]:
        return [run for run in self.runs if run.has_data]

    def count(self, status: str) -> int:
        return sum(run.status == status for run in self.runs)

    @property
    def n_diverged(self) -> int:
        return self.count("diverged")

    @property
    def headline(self) -> float:
        return self.final.get(self.statistic.lower(), math.nan)


@dataclass
class Report:
    sweep: dict[str, Any]
    runs: list[Run]
    groups: list[Group]
    grids: dict[str, np.ndarray]  # env -> step axis
    statistic: str
    eta: float
    envs: list[str]
    optimizers: list[str]
    b0s: list[float]

    def group(self, env: str, optimizer: str, b0: float) -> Group | None:
        for group in self.groups:
            if (group.env, group.optimizer, group.b0) == (env, optimizer, b0):
                return group
        return None

    def b0_label(self, b0: float) -> str:
        """b0 as the sweep's folder names write it (1e6, 0.01, 100)."""
        return next((run.b0_label for run in self.runs if run.b0 == b0), f"{b0:g}")

    def initial_step(self, b0: float) -> float:
        return self.eta / math.sqrt(b0)


def _ordered(values: Iterable, preferred: Iterable = ()) -> list:
    """Unique values, those of ``preferred`` first in its order, the rest in order of appearance."""
    values = list(dict.fromkeys(values))
    first = [v for v in preferred if v in values]
    return first + [v for v in values if v not in first]


def aggregate(sweep: dict[str, Any], runs: list[Run], reps: int = DEFAULT_REPS, seed: int = 0) -> Report:
    """Group the runs by env x optimizer x b0 and compute curves, final returns, AUCs and step sizes."""
    n_seeds = len(sweep.get("seeds") or []) or max(
        sum(1 for r in runs if (r.env, r.optimizer, r.b0) == (run.env, run.optimizer, run.b0)) for run in runs)
    statistic = "IQM" if n_seeds >= IQM_MIN_SEEDS else "mean"
    envs = _ordered(run.env for run in runs)
    optimizers = _ordered((run.optimizer for run in runs), (sweep.get("optimizers") or {}).keys())
    b0s = sorted({run.b0 for run in runs})
    grids = {env: common_steps(run.steps for run in runs if run.env == env and run.has_data) for env in envs}
    groups = []
    for env in envs:
        grid = grids[env]
        for optimizer in optimizers:
            for b0 in b0s:
                members = sorted((r for r in runs if (r.env, r.optimizer, r.b0) == (env, optimizer, b0)),
                                 key=lambda r: r.seed)
                if not members:
                    continue
                group = Group(env, optimizer, members[0].schedule, b0, members, statistic)
                used = group.used
                curves = np.array([score_curve(run, grid) for run in used]).reshape(len(used), len(grid))
                finals = np.array([run.final for run in used])
                aucs = np.array([area_under_curve(curve, grid) for curve in curves])
                if len(grid):
                    group.curve, group.curve_low, group.curve_high = bootstrap_ci(curves, statistic, reps, seed)
                    if len(used) < 2:  # resampling one run gives a zero-width interval: no CI, not a sure one
                        group.curve_low, group.curve_high = np.full(len(grid), np.nan), np.full(len(grid), np.nan)
                for name, values, target in (("final", finals, group.final), ("auc", aucs, group.auc)):
                    _, low, high = bootstrap_ci(values, statistic, reps, seed) if len(values) >= 2 else (
                        None, [math.nan], [math.nan])
                    target.update(iqm=float(iqm(values[:, None])[0]) if len(values) else math.nan,
                                  mean=float(np.mean(values)) if len(values) else math.nan,
                                  low=float(low[0]), high=float(high[0]))
                group.actor_lr = step_size_curve(used, grid, "actor")
                group.critic_lr = step_size_curve(used, grid, "critic")
                groups.append(group)
    return Report(sweep, runs, groups, grids, statistic, float(sweep.get("eta", 1.0)), envs, optimizers, b0s)


# -- tables and the generated paragraph -------------------------------------------------------------------------------

def summary_rows(report: Report) -> list[dict[str, Any]]:
    rows = []
    for g in report.groups:
        rows.append(dict(
            env=g.env, optimizer=g.optimizer, schedule=g.schedule, b0=g.b0, initial_step=report.initial_step(g.b0),
            n_seeds=len(g.runs), n_used=len(g.used), n_finished=g.count("finished"), n_diverged=g.n_diverged,
            n_failed=g.count("failed"), n_interrupted=g.count("interrupted"), n_not_run=g.count("not run"),
            statistic=g.statistic, final_iqm=g.final["iqm"], final_mean=g.final["mean"],
            final_ci_low=g.final["low"], final_ci_high=g.final["high"], auc_iqm=g.auc["iqm"],
            auc_mean=g.auc["mean"], auc_ci_low=g.auc["low"], auc_ci_high=g.auc["high"]))
    return rows


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def summary_csv(report: Report) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in summary_rows(report):
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return text.getvalue()


def _num(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def _ci(stats: dict[str, float]) -> str:
    return "n/a" if math.isnan(stats.get("low", math.nan)) else f"[{stats['low']:.1f}, {stats['high']:.1f}]"


def compare(challenger: Group, reference: Group) -> str:
    """One of: beat, lost, overlap (95% CIs overlap), one-seed-higher, one-seed-lower, one-seed-equal, no-data."""
    if not challenger.used or not reference.used:
        return "no-data"
    if len(challenger.used) < 2 or len(reference.used) < 2:
        a, b = challenger.headline, reference.headline
        return "one-seed-higher" if a > b else "one-seed-lower" if a < b else "one-seed-equal"
    if challenger.final["low"] > reference.final["high"]:
        return "beat"
    if challenger.final["high"] < reference.final["low"]:
        return "lost"
    return "overlap"


def _describe(group: Group) -> str:
    text = f"{group.statistic} {_num(group.headline)}"
    if len(group.used) >= 2:
        text += f" {_ci(group.final)}"
    text += f", {len(group.used)} seed{'s' if len(group.used) != 1 else ''}"
    if group.n_diverged:
        text += f", {group.n_diverged} diverged"
    return text


def verdicts(report: Report) -> list[str]:
    """For each env and b0, a sentence per AdamLoss variant (schedule adamloss) against each Adam variant."""
    sentences = []
    for env in report.envs:
        challengers = [o for o in report.optimizers if any(g.schedule == "adamloss" for g in report.groups
                                                           if g.optimizer == o and g.env == env)]
        references = [o for o in report.optimizers if any(g.schedule == "adam" for g in report.groups
                                                          if g.optimizer == o and g.env == env)]
        if not challengers or not references:
            sentences.append(f"{env}: the sweep has no {'AdamLoss' if not challengers else 'Adam'} variant, so "
                             f"there is no AdamLoss-vs-Adam comparison.")
            continue
        for b0 in report.b0s:
            parts = []
            for name in challengers:
                for ref_name in references:
                    mine, theirs = report.group(env, name, b0), report.group(env, ref_name, b0)
                    if mine is None or theirs is None:
                        continue
                    outcome = compare(mine, theirs)
                    details = f"({_describe(mine)} vs {_describe(theirs)})"
                    phrase = {
                        "beat": f"{name} beat {ref_name} {details}: the 95% CIs do not overlap",
                        "lost": f"{name} lost to {ref_name} {details}: the 95% CIs do not overlap",
                        "overlap": f"{name} and {ref_name} are not distinguishable {details}: the 95% CIs overlap",
                        "one-seed-higher": f"{name} ended higher than {ref_name} {details}, but with a single "
                                           f"seed there is no CI, so this is no evidence either way",
                        "one-seed-lower": f"{name} ended lower than {ref_name} {details}, but with a single seed "
                                          f"there is no CI, so this is no evidence either way",
                        "one-seed-equal": f"{name} and {ref_name} ended equal {details}, on a single seed",
                        "no-data": f"{name} vs {ref_name} cannot be compared: "
                                   f"{name if not mine.used else ref_name} has no usable run",
                    }[outcome]
                    parts.append(phrase)
            if parts:
                env_text = f"{env}, " if len(report.envs) > 1 else ""
                sentences.append(f"At {env_text}b0={report.b0_label(b0)} (first step "
                                 f"{report.initial_step(b0):.3g}): " + "; ".join(parts) + ".")
    return sentences


def spread_sentence(report: Report) -> list[str]:
    """Per env: which optimizer's aggregate final return varies least across b0 (range = max - min)."""
    sentences = []
    for env in report.envs:
        spreads = []
        for name in report.optimizers:
            values = [g.headline for g in report.groups
                      if g.env == env and g.optimizer == name and not math.isnan(g.headline)]
            if values:
                spreads.append((max(values) - min(values), name, min(values), max(values), len(values)))
        if not spreads:
            continue
        n_b0 = len(report.b0s)
        if n_b0 < 2:
            sentences.append(f"{env}: one b0 value only, so there is no spread across b0 to compare.")
            continue
        spreads.sort()
        best = spreads[0]
        ties = [s[1] for s in spreads if math.isclose(s[0], best[0], rel_tol=1e-9, abs_tol=1e-9)]
        env_text = f"On {env}, a" if len(report.envs) > 1 else "A"
        lead = (f"{' and '.join(ties)} tie for" if len(ties) > 1 else f"{best[1]} has")
        text = (f"{env_text}cross the b0 values, {lead} the smallest spread of final return ({report.statistic} "
                f"over seeds, max - min = {best[0]:.1f}, from {best[2]:.1f} to {best[3]:.1f})")
        others = [f"{s[1]} {s[0]:.1f}" for s in spreads if s[1] not in ties]
        if others:
            text += "; the others: " + ", ".join(others)
        partial = [s[1] for s in spreads if s[4] < n_b0]
        if partial:
            text += f" ({', '.join(partial)}: not every b0 has usable runs, so its spread covers fewer values)"
        fewest = min((len(g.used) for g in report.groups if g.env == env and g.used), default=0)
        if fewest < 5:
            text += (f". This compares point estimates from as few as {fewest} seed{'s' if fewest != 1 else ''} "
                     f"per b0, so it is indicative, not a test")
        sentences.append(text + ".")
    return sentences


def summary_markdown(report: Report) -> str:
    sweep = report.sweep
    seeds = sweep.get("seeds") or []
    lines = [f"# Sweep report: {sweep.get('name', '?')}", ""]
    lines.append(f"{len(report.runs)} grid points: {', '.join(report.envs)}; optimizers "
                 f"{', '.join(report.optimizers)}; b0 {', '.join(report.b0_label(b) for b in report.b0s)}; "
                 f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}; "
                 f"{sweep.get('total_timesteps', '?')} env steps per run.")
    counts: dict[str, int] = {}
    for run in report.runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    lines.append("Runs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + ".")
    lines += ["", "## What the numbers say", ""]
    paragraph = verdicts(report) + spread_sentence(report)
    lines.append(" ".join(paragraph))
    lines.append("")
    if BOOTSTRAP_BACKEND["name"] == "rliable":
        how = "rliable's percentile stratified bootstrap over seeds"
    else:
        how = (f"a percentile bootstrap over seeds computed with numpy, because rliable could not run here "
               f"({BOOTSTRAP_BACKEND['why']})")
    lines.append(
        f"How to read this: every number is the {report.statistic} over seeds of the final eval return"
        f"{' (the IQM: mean of the middle half)' if report.statistic == 'IQM' else ''}, with a 95% CI from {how}. "
        f"A diverged run is not dropped: from its last evaluation on it counts as its minimum eval return, which "
        f"is also its final return. Failed, interrupted and not-run points are left out of the numbers and listed "
        f"below. Overlapping CIs mean the data cannot tell the optimizers apart, not that they are equal"
        + ("; with a single seed per point there are no CIs at all, and no comparison here is evidence."
           if len(seeds) == 1 else f"; with {len(seeds)} seeds per point the CIs are wide and can miss the true "
                                   f"value." if len(seeds) < 5 else "."))
    lines += ["", "## Final eval return and AUC (mean eval return over training)", ""]
    header = ["env", "optimizer", "b0", "first step", "seeds", "used", "diverged", "failed/interrupted/not run",
              "final IQM", "final mean", f"final 95% CI ({report.statistic})", f"AUC {report.statistic}",
              "AUC 95% CI"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for g in report.groups:
        cells = [g.env, g.optimizer, report.b0_label(g.b0), f"{report.initial_step(g.b0):.3g}", str(len(g.runs)),
                 str(len(g.used)), str(g.n_diverged),
                 f"{g.count('failed')}/{g.count('interrupted')}/{g.count('not run')}", _num(g.final['iqm']),
                 _num(g.final['mean']), _ci(g.final),
                 _num(g.auc.get(g.statistic.lower(), math.nan)), _ci(g.auc)]
        lines.append("| " + " | ".join(cells) + " |")
    left_out = [run for run in report.runs if not run.has_data]
    lines += ["", "## Runs left out of the numbers", ""]
    if left_out:
        for run in left_out:
            why = run.reason or ("no evaluations" if run.status in ("finished", "diverged") else "")
            lines.append(f"- {run.env} {run.optimizer} b0={run.b0_label} seed={run.seed}: {run.status}"
                         + (f" ({why})" if why else ""))
    else:
        lines.append("None: every grid point is in the numbers.")
    diverged = [run for run in report.runs if run.status == "diverged"]
    if diverged:
        lines += ["", "## Diverged runs (in the numbers, at their minimum eval return)", ""]
        for run in diverged:
            at = f" at step {run.diverged_at}" if run.diverged_at is not None else ""
            lines.append(f"- {run.env} {run.optimizer} b0={run.b0_label} seed={run.seed}: diverged{at}"
                         + (f" ({run.reason})" if run.reason else ""))
    lines += ["", "Figures: reward_curves.png, robustness.png, step_sizes.png. TensorBoard: "
              "`tensorboard --logdir <this folder>`, Custom Scalars tab for the per-b0 dashboard.", ""]
    return "\n".join(lines)


# -- figures -----------------------------------------------------------------------------------------------------------

def _colors(report: Report) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {name: palette(i % 10) for i, name in enumerate(report.optimizers)}


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())


def _legend(ax, **options) -> None:
    """A legend, or a note where the panel has no run with data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)
    else:
        ax.text(0.5, 0.5, "no runs with data", transform=ax.transAxes, ha="center", va="center", color="grey")


def _panels(rows: int, cols: int, width: float = 4.6, height: float = 3.6):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * cols, height * rows + 0.8), layout="constrained")
    axes = np.atleast_2d(figure.subplots(rows, cols, squeeze=False))
    return figure, axes


def plot_reward_curves(report: Report, path: Path) -> None:
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), len(report.b0s))
    for row, env in enumerate(report.envs):
        grid = report.grids[env]
        for col, b0 in enumerate(report.b0s):
            ax = axes[row, col]
            for name in report.optimizers:
                group = report.group(env, name, b0)
                if group is None:
                    continue
                color = colors[name]
                for run in group.used:
                    ax.plot(run.steps, run.returns, color=color, alpha=0.25, linewidth=0.8)
                    if run.status == "diverged":  # its line goes on, dotted, to the x where it diverged
                        at = max(run.diverged_at if run.diverged_at is not None else 0, run.steps[-1])
                        ax.plot([run.steps[-1], at], [run.returns[-1]] * 2, color=color, alpha=0.5,
                                linestyle=":", linewidth=1)
                        ax.plot([at], [run.returns[-1]], marker="x", color=color, markersize=9,
                                markeredgewidth=2, linestyle="none")
                notes = [f"n={len(group.used)}"]
                if group.n_diverged:
                    notes.append(f"{group.n_diverged} diverged ×")
                notes += [f"{group.count(s)} {s}" for s in MISSING_STATUSES if group.count(s)]
                no_data = sum(run.status in ("finished", "diverged") and not run.has_data for run in group.runs)
                if no_data:
                    notes.append(f"{no_data} without evaluations")
                label = f"{name} ({', '.join(notes)})"
                if group.curve is not None and len(group.used):
                    ax.plot(grid, group.curve, color=color, linewidth=2, label=label)
                    ax.fill_between(grid, group.curve_low, group.curve_high, color=color, alpha=0.2, linewidth=0)
                else:
                    ax.plot([], [], color=color, linewidth=2, label=label)
            prefix = f"{env}\n" if len(report.envs) > 1 else ""
            ax.set_title(f"{prefix}b0 = {report.b0_label(b0)}   (first step η/√b0 = {report.initial_step(b0):.3g})",
                         fontsize=10)
            ax.set_xlabel("env steps")
            if col == 0:
                ax.set_ylabel("eval return")
            ax.grid(alpha=0.3)
            _legend(ax, fontsize=8, loc="best")
    figure.suptitle(f"{', '.join(report.envs)}: eval return, {report.statistic} over seeds (thick) with 95% "
                    f"stratified-bootstrap band; seeds faint; × = diverged (counted at its minimum return "
                    f"from then on)", fontsize=10)
    _save(figure, path)


def plot_robustness(report: Report, path: Path) -> None:
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), 2, width=5.6)
    n = len(report.optimizers)
    for row, env in enumerate(report.envs):
        for col, (key, title) in enumerate((("final", "final eval return"),
                                            ("auc", "mean eval return over training (AUC)"))):
            ax = axes[row, col]
            for i, name in enumerate(report.optimizers):
                groups = [report.group(env, name, b0) for b0 in report.b0s]
                groups = [g for g in groups if g is not None and g.used]
                if not groups:
                    continue
                shift = 10 ** (0.06 * (i - (n - 1) / 2))  # side by side, so the CI bars don't hide each other
                xs = np.array([g.b0 for g in groups]) * shift
                stats = [getattr(g, key) for g in groups]
                ys = np.array([s[g.statistic.lower()] for s, g in zip(stats, groups)])
                low = np.array([s["low"] for s in stats])
                high = np.array([s["high"] for s in stats])
                err = np.nan_to_num(np.vstack([np.clip(ys - low, 0, None), np.clip(high - ys, 0, None)]))
                ax.errorbar(xs, ys, yerr=err, color=colors[name], marker="o", capsize=4, linewidth=1.8,
                            label=name)
                for x, y, g in zip(xs, ys, groups):
                    if g.n_diverged:
                        ax.annotate(f"{g.n_diverged}/{len(g.runs)} div.", (x, y), textcoords="offset points",
                                    xytext=(4, -12), fontsize=7, color=colors[name])
            ax.set_xscale("log")
            ax.set_xticks(report.b0s)
            ax.set_xticklabels([f"{report.b0_label(b)}\n({report.initial_step(b):.2g})" for b in report.b0s],
                               fontsize=8)
            ax.minorticks_off()
            ax.set_xlabel("b0   (first step η/√b0)")
            ax.set_ylabel(f"{report.statistic} over seeds")
            prefix = f"{env}: " if len(report.envs) > 1 else ""
            ax.set_title(f"{prefix}{title}", fontsize=10)
            ax.grid(alpha=0.3)
            _legend(ax, fontsize=8)
    figure.suptitle(f"Which optimizer is robust to b0? {report.statistic} over seeds with 95% bootstrap CIs; "
                    f"flat and high is robust; diverged runs count at their minimum return", fontsize=10)
    _save(figure, path)


def plot_step_sizes(report: Report, path: Path) -> None:
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), len(report.b0s))
    for row, env in enumerate(report.envs):
        grid = report.grids[env]
        for col, b0 in enumerate(report.b0s):
            ax = axes[row, col]
            plotted = False
            for name in report.optimizers:
                group = report.group(env, name, b0)
                if group is None or group.actor_lr is None:
                    continue
                for values, style, role in ((group.actor_lr, "-", "actor"), (group.critic_lr, "--", "critic")):
                    if np.isfinite(values).any():
                        ax.plot(grid, values, color=colors[name], linestyle=style, linewidth=1.6,
                                label=f"{name} {role}")
                        plotted = True
            if plotted:
                ax.set_yscale("log")
                low, high = ax.get_ylim()
                if high / low < 10:  # at least a decade: a step size that barely moves should look flat
                    centre = math.sqrt(low * high)
                    ax.set_ylim(centre / math.sqrt(10), centre * math.sqrt(10))
            prefix = f"{env}\n" if len(report.envs) > 1 else ""
            ax.set_title(f"{prefix}b0 = {report.b0_label(b0)}   (first step {report.initial_step(b0):.3g})",
                         fontsize=10)
            ax.set_xlabel("env steps")
            if col == 0:
                ax.set_ylabel("effective step size η_t")
            ax.grid(alpha=0.3, which="both")
            _legend(ax, fontsize=7)
    figure.suptitle("Effective step size over training, at each evaluation (geometric mean over seeds; "
                    "solid actor, dashed critic)", fontsize=10)
    _save(figure, path)


# -- TensorBoard -------------------------------------------------------------------------------------------------------

def _tag(kind: str, report: Report, env: str, b0: float, name: str) -> str:
    env_part = f"{env}/" if len(report.envs) > 1 else ""
    return f"{kind}/{env_part}b0={report.b0_label(b0)}/{name}"


def custom_scalars_layout(report: Report):
    """The dashboard: per b0, a multi-line chart of each optimizer's aggregate eval return, a margin chart of the
    same with its 95% CI, and a multi-line chart of the effective step sizes."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    # Anchored, with only the regex metacharacters escaped: TensorBoard matches these in Python and in the browser.
    def exact(tag: str) -> str:
        return "^" + re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", tag) + "$"

    returns, margins, steps = [], [], []
    for env in report.envs:
        for b0 in report.b0s:
            names = [n for n in report.optimizers if (g := report.group(env, n, b0)) is not None and g.used]
            where = f"{env} " if len(report.envs) > 1 else ""
            title = f"{where}b0={report.b0_label(b0)} (first step {report.initial_step(b0):.3g})"
            returns.append(layout_pb2.Chart(
                title=f"eval return, {report.statistic} over seeds: {title}",
                multiline=layout_pb2.MultilineChartContent(
                    tag=[exact(_tag("aggregate", report, env, b0, n)) for n in names])))
            margins.append(layout_pb2.Chart(
                title=f"eval return with 95% CI: {title}",
                margin=layout_pb2.MarginChartContent(series=[
                    layout_pb2.MarginChartContent.Series(
                        value=_tag("aggregate", report, env, b0, n),
                        lower=_tag("aggregate_ci", report, env, b0, f"{n}_low"),
                        upper=_tag("aggregate_ci", report, env, b0, f"{n}_high")) for n in names])))
            steps.append(layout_pb2.Chart(
                title=f"effective step size (actor, critic): {title}",
                multiline=layout_pb2.MultilineChartContent(
                    tag=[exact(_tag("step_size", report, env, b0, f"{n}_{role}"))
                         for n in names for role in ("actor", "critic")])))
    return layout_pb2.Layout(category=[
        layout_pb2.Category(title="eval return by b0 (seed aggregate)", chart=returns),
        layout_pb2.Category(title="eval return by b0, with 95% CI", chart=margins, closed=True),
        layout_pb2.Category(title="effective step size by b0", chart=steps),
    ])


def _layout_event(layout):
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorboard.plugins.custom_scalar import metadata

    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[layout.SerializeToString()],
                                    tensor_shape=tensor_shape_pb2.TensorShapeProto())
    value = summary_pb2.Summary.Value(tag=metadata.CONFIG_SUMMARY_TAG, tensor=tensor,
                                      metadata=metadata.create_summary_metadata())
    return event_pb2.Event(wall_time=time.time(), step=0, summary=summary_pb2.Summary(value=[value]))


def tensorboard_scalars(report: Report) -> dict[str, list[tuple[int, float]]]:
    """Every aggregate scalar series written to the dashboard: tag -> [(step, value)]."""
    series: dict[str, list[tuple[int, float]]] = {}

    def add(tag: str, steps: np.ndarray, values: np.ndarray | None) -> None:
        if values is None:
            return
        points = [(int(s), float(v)) for s, v in zip(steps, values) if math.isfinite(v)]
        if points:
            series[tag] = points

    for g in report.groups:
        grid = report.grids[g.env]
        if g.used:
            add(_tag("aggregate", report, g.env, g.b0, g.optimizer), grid, g.curve)
            add(_tag("aggregate_ci", report, g.env, g.b0, f"{g.optimizer}_low"), grid, g.curve_low)
            add(_tag("aggregate_ci", report, g.env, g.b0, f"{g.optimizer}_high"), grid, g.curve_high)
        add(_tag("step_size", report, g.env, g.b0, f"{g.optimizer}_actor"), grid, g.actor_lr)
        add(_tag("step_size", report, g.env, g.b0, f"{g.optimizer}_critic"), grid, g.critic_lr)
    return series


def write_tensorboard(report: Report, sweep_dir: Path) -> Path:
    """Replace the event files of ``<sweep_dir>/aggregate/`` with fresh ones: written in a hidden temporary folder,
    then moved in, so a re-run never duplicates the series."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    target = sweep_dir / "aggregate"
    scratch = Path(tempfile.mkdtemp(dir=sweep_dir, prefix=".aggregate-"))
    try:
        writer = EventFileWriter(str(scratch))
        now = time.time()
        for tag, points in tensorboard_scalars(report).items():
            for step, value in points:
                summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
                writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary))
        writer.add_event(_layout_event(custom_scalars_layout(report)))
        writer.close()
        target.mkdir(exist_ok=True)
        for old in target.glob("events.out.tfevents.*"):
            old.unlink()
        for new in scratch.iterdir():
            os.replace(new, target / new.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


# -- the whole report ----------------------------------------------------------------------------------------------

def write_report(sweep_dir: str | Path, reps: int = DEFAULT_REPS, seed: int = 0) -> dict[str, Path]:
    """Read the sweep in ``sweep_dir`` and write every output; returns name -> path."""
    sweep_dir = Path(sweep_dir)
    sweep, runs = load_runs(sweep_dir)
    report = aggregate(sweep, runs, reps=reps, seed=seed)
    paths = {name: sweep_dir / name for name in OUTPUTS}
    plot_reward_curves(report, paths["reward_curves.png"])
    plot_robustness(report, paths["robustness.png"])
    plot_step_sizes(report, paths["step_sizes.png"])
    write_atomic(paths["summary.csv"], summary_csv(report))
    write_atomic(paths["summary.md"], summary_markdown(report))
    paths["aggregate"] = write_tensorboard(report, sweep_dir)
    return paths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rl_adaloss.report",
        description="Write a sweep's comparison report into its folder: reward_curves.png (eval return per b0, "
                    "seed aggregate with 95% bootstrap band), robustness.png (final return and AUC against b0), "
                    "step_sizes.png (effective step sizes), summary.csv and summary.md (table and a generated "
                    "verdict per b0: AdamLoss vs Adam), and a TensorBoard dashboard in aggregate/.",
        epilog="Seeds are aggregated with the IQM from 4 seeds on, else the mean. A diverged run counts as its "
               "minimum eval return from its last evaluation on; failed, interrupted and not-run points are left "
               "out and listed in summary.md. Re-running replaces every output. Exit codes: 0 written, 2 not a "
               "sweep folder.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder, e.g. runs/pendulum (holds sweep.json)")
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS,
                        help=f"bootstrap resamples per confidence interval (default: {DEFAULT_REPS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.reps < 1:
            raise ReportError(f"--reps: expected an integer >= 1, got {args.reps}")
        paths = write_report(args.sweep_dir, reps=args.reps, seed=args.seed)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report of {args.sweep_dir}:")
    for name, path in paths.items():
        print(f"  {path}{'/  (TensorBoard events)' if name == 'aggregate' else ''}")
    print(f"see the dashboard: tensorboard --logdir {args.sweep_dir}  (Custom Scalars tab)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
