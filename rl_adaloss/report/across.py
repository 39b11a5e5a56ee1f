"""Several sweeps in one report: rliable's aggregates across tasks, per b0.

A *task* is one env of one sweep (named by the env, or ``sweep:env`` where two sweeps share an env). Returns are not
comparable across tasks, so each task's final returns are **min-max normalised over all its runs**: every run with
data in that task, of every optimizer and every b0, so 0 is the task's worst final return and 1 its best. Then, per
b0 and per optimizer that every task has (with a variant of the same name):

* the IQM across tasks and seeds of the normalised final return, with a 95% stratified-bootstrap CI
  (``rliable.library.get_interval_estimates``: the runs of each task resampled separately);
* the performance profile: the fraction of runs scoring above each threshold τ in [0, 1], with its CI
  (``rliable.library.create_performance_profile``);
* the probability of improvement of each optimizer over the reference (by default the Adam variants): P(X > Y),
  averaged over tasks (``rliable.metrics.probability_of_improvement``), with a 95% CI from resampling each
  optimizer's runs per task independently.

The IQM and the profile need as many runs in every task: where tasks differ, each task keeps its first ``n`` seeds
with data (``n``: the fewest any task has), and the result says so. Where rliable cannot run, a numpy stratified
bootstrap computes the same intervals, and the result says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rl_adaloss.report.aggregation import Report
from rl_adaloss.report.stats import CONFIDENCE, DEFAULT_REPS, iqm, one_line, rliable_seeded, stratified_bootstrap_numpy
from rl_adaloss.report.text import default_comparison

#: The thresholds of the performance profiles, on the normalised score.
TAUS = np.linspace(0.0, 1.0, 41)


@dataclass(frozen=True)
class Task:
    """One env of one sweep, with the range its final returns are normalised by."""

    name: str
    report: Report
    env: str
    low: float  #: the worst final return of any run with data in the task
    high: float  #: the best

    def normalise(self, values: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        return (values - self.low) / span if span > 0 else np.full(len(values), 0.5)


@dataclass
class Cell:
    """One optimizer at one b0, across tasks."""

    b0: float
    optimizer: str
    scores: np.ndarray  #: normalised final returns, runs x tasks (each task's first n seeds with data)
    dropped: int = 0  #: runs with data left out to make every task have n
    iqm: float = math.nan
    iqm_low: float = math.nan
    iqm_high: float = math.nan
    profile: np.ndarray | None = None
    profile_low: np.ndarray | None = None
    profile_high: np.ndarray | None = None
    reference: str = ""
    poi: float = math.nan  #: P(this optimizer > reference), averaged over tasks
    poi_low: float = math.nan
    poi_high: float = math.nan


@dataclass
class AcrossTasks:
    """The aggregates across tasks: every cell, and how they were computed."""

    tasks: list[Task]
    optimizers: list[str]
    references: list[str]
    b0s: list[float]
    b0_labels: dict[float, str]
    cells: list[Cell]
    reps: int
    bootstrap: str = "rliable"
    fallback: str = ""
    missing: list[str] = field(default_factory=list)  #: optimizers or b0s that not every task has

    def cell(self, optimizer: str, b0: float) -> Cell | None:
        return next((c for c in self.cells if (c.optimizer, c.b0) == (optimizer, b0)), None)


def tasks_of(reports: Sequence[tuple[str, Report]]) -> list[Task]:
    """One task per env of each named sweep report, with the range of its runs' final returns."""
    envs = [env for _, report in reports for env in report.envs]
    tasks: list[Task] = []
    for sweep, report in reports:
        for env in report.envs:
            finals = [run.final for run in report.runs if run.env == env and run.has_data]
            name = env if envs.count(env) == 1 else f"{sweep}:{env}"
            taken = {task.name for task in tasks}
            name = next(f"{name} ({i})" for i in range(2, len(tasks) + 3) if f"{name} ({i})" not in taken) \
                if name in taken else name
            tasks.append(Task(name, report, env, min(finals, default=math.nan), max(finals, default=math.nan)))
    return tasks


def _scores(tasks: list[Task], optimizer: str, b0: float) -> tuple[np.ndarray, int] | None:
    """Normalised final returns (runs x tasks), each task's first n seeds; None where a task has no run with data."""
    columns = []
    for task in tasks:
        group = task.report.group(task.env, optimizer, b0)
        used = sorted(group.used, key=lambda run: run.seed) if group is not None else []
        if not used:
            return None
        columns.append(task.normalise(np.array([run.final for run in used])))
    n = min(len(column) for column in columns)
    dropped = sum(len(column) - n for column in columns)
    return np.stack([column[:n] for column in columns], axis=1), dropped


def _intervals(arrays: tuple[np.ndarray, ...], function: Callable, reps: int, seed: int,
               bootstrap: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Point estimate and 95% CI of ``function(*arrays)``, by rliable (or numpy); the last item says why numpy
    computed it where rliable was asked for, else is empty."""
    point = np.asarray(function(*arrays), dtype=float)
    if bootstrap == "rliable":
        try:
            from rliable import library as rly

            with rliable_seeded(seed) as random_state:
                data = arrays[0] if len(arrays) == 1 else list(arrays)
                _, intervals = rly.get_interval_estimates({"x": data}, function, reps=reps,
                                                          confidence_interval_size=CONFIDENCE,
                                                          random_state=random_state)
            low, high = intervals["x"]
            return point, np.asarray(low, dtype=float), np.asarray(high, dtype=float), ""
        except Exception as error:  # noqa: BLE001 - rliable or its arch dependency unusable here
            return point, *stratified_bootstrap_numpy(arrays, function, reps, seed), one_line(error)
    return point, *stratified_bootstrap_numpy(arrays, function, reps, seed), ""


def _iqm(scores: np.ndarray) -> np.ndarray:
    return np.array([float(iqm(scores.reshape(-1, 1))[0])])  # across every run of every task


def _profile(scores: np.ndarray) -> np.ndarray:
    return np.array([np.mean(scores > tau) for tau in TAUS])  # rliable's score distribution, fraction above tau


def _poi(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.probability_of_improvement(scores_x, scores_y)])


def _poi_numpy(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """rliable's probability of improvement without rliable: per task P(X > Y) + P(X = Y)/2, averaged."""
    per_task = [np.mean((x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :]))
                for x, y in zip(scores_x.T, scores_y.T)]
    return np.array([float(np.mean(per_task))])


def across_tasks(reports: Sequence[tuple[str, Report]], references: Sequence[str] | None = None,
                 reps: int = DEFAULT_REPS, seed: int = 0, bootstrap: str = "rliable") -> AcrossTasks:
    """The aggregates across the tasks of ``reports`` (sweep name, report), per b0 and optimizer that every task
    has; ``references``: the variants each optimizer is compared against (by default the Adam ones)."""
    tasks = tasks_of(reports)
    first = reports[0][1]
    per_task_optimizers = [{g.optimizer for g in t.report.groups if g.env == t.env} for t in tasks]
    per_task_b0s = [{g.b0 for g in t.report.groups if g.env == t.env} for t in tasks]
    all_optimizers = list(dict.fromkeys(name for _, r in reports for name in r.optimizers))
    optimizers = [name for name in all_optimizers if all(name in names for names in per_task_optimizers)]
    b0s = sorted(set.intersection(*per_task_b0s)) if per_task_b0s else []
    missing = [f"optimizer {name}" for name in all_optimizers if name not in optimizers]
    missing += [f"b0={b0:g}" for b0 in sorted(set.union(*per_task_b0s) - set(b0s))] if per_task_b0s else []
    if references is None:
        references = [name for name in default_comparison(first)[1] if name in optimizers] or optimizers[:1]
    labels = {b0: next((r.b0_label(b0) for _, r in reports if b0 in r.b0s), f"{b0:g}") for b0 in b0s}
    result = AcrossTasks(tasks, optimizers, list(references), b0s, labels, [], reps, bootstrap, "", missing)

    def estimate(arrays, function):
        point, low, high, why = _intervals(arrays, function, reps, seed, result.bootstrap)
        if why:  # say it once, and stop asking rliable
            result.bootstrap, result.fallback = "numpy", why
        return point, low, high

    for b0 in b0s:
        for name in optimizers:
            found = _scores(tasks, name, b0)
            if found is None:
                continue
            cell = Cell(b0, name, *found)
            point, low, high = estimate((cell.scores,), _iqm)
            cell.iqm, cell.iqm_low, cell.iqm_high = float(point[0]), float(low[0]), float(high[0])
            cell.profile, cell.profile_low, cell.profile_high = estimate((cell.scores,), _profile)
            result.cells.append(cell)
        for cell in [c for c in result.cells if c.b0 == b0]:
            reference = next((r for r in result.references if r != cell.optimizer and result.cell(r, b0)), None)
            if reference is None:
                continue
            cell.reference = reference
            # Resampled with the vectorised equivalent of rliable's metric (the Mann-Whitney U over n*m: a test
            # checks they agree), 20 times faster; the point estimate is rliable's own where it runs.
            arrays = (cell.scores, result.cell(reference, b0).scores)
            point, low, high = estimate(arrays, _poi_numpy)
            if result.bootstrap == "rliable":
                point = _poi(*arrays)
            cell.poi, cell.poi_low, cell.poi_high = float(point[0]), float(low[0]), float(high[0])
    return result
