"""The TensorBoard view of the report: ``<sweep>/aggregate/<optimizer>/``, one TensorBoard run per optimizer with
its seed aggregates as scalars, and a Custom Scalars dashboard.

TensorBoard colours lines by run, and its run list is the legend. So each optimizer's aggregates are a run of their
own, and every optimizer writes the **same tag** per b0 (``eval_return/b0=1e4``): a chart of that tag has one line
per optimizer, each in its own colour. Per b0 the dashboard has

* the eval return (seed aggregate), the training-episode return (seed aggregate), and the eval return with its
  95% CI (a margin chart: one band per optimizer);
* per network, the step size as ``log10(η_t / η0)`` (0 at the first step, η0 = η/√b0 shared by every optimizer
  at that b0; -1 is ten times smaller): a log scale on which step sizes that differ by 1e-5 of 3e-4 can be told
  apart, where the raw values label every tick alike;
* per network, the accumulator's relative growth ``b_t/b0 − 1`` (``b_t²/b0² − 1`` for the Algorithm-1 rules):
  under 0.1 the rule is its fixed-step counterpart (see :mod:`~rl_adaloss.report.diagnostics`).

The raw effective step sizes are written too (``step_size/b0=<label>/<network>``), for the Scalars tab.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from rl_adaloss.io import replace_directory
from rl_adaloss.report.aggregation import Report

ROLES = ("actor", "critic")
#: The folder of the aggregate runs, inside the sweep folder: ``aggregate/<optimizer>/`` is one run per optimizer.
AGGREGATE = "aggregate"


def tag(kind: str, report: Report, env: str, b0: float, name: str = "") -> str:
    """A scalar's tag, the same for every optimizer: ``kind/[env/]b0=<label>[/name]``; the env only where the sweep
    has more than one."""
    env_part = f"{env}/" if len(report.envs) > 1 else ""
    return f"{kind}/{env_part}b0={report.b0_label(b0)}" + (f"/{name}" if name else "")


def _exact(name: str) -> str:
    # Multiline charts take regexes, matched in Python and in the browser: anchored, only metacharacters escaped.
    return "^" + re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", name) + "$"


def run_name(optimizer: str) -> str:
    """The TensorBoard run of ``optimizer``'s aggregates, as TensorBoard names it (relative to the sweep folder)."""
    return f"{AGGREGATE}/{optimizer}"


def tensorboard_scalars(report: Report) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every aggregate scalar series, per optimizer (one TensorBoard run each): optimizer -> tag -> [(step, value)],
    finite values only."""
    runs: dict[str, dict[str, list[tuple[int, float]]]] = {}

    def add(optimizer: str, name: str, steps: np.ndarray, values: np.ndarray | None) -> None:
        points = [] if values is None else [(int(s), float(v)) for s, v in zip(steps, values) if math.isfinite(v)]
        if points:
            runs.setdefault(optimizer, {})[name] = points

    for g in report.groups:
        grid, first = report.grids[g.env], report.initial_step(g.b0, g.optimizer)
        if g.used:
            add(g.optimizer, tag("eval_return", report, g.env, g.b0), grid, g.curve)
            add(g.optimizer, tag("eval_return_ci", report, g.env, g.b0, "low"), grid, g.curve_low)
            add(g.optimizer, tag("eval_return_ci", report, g.env, g.b0, "high"), grid, g.curve_high)
            add(g.optimizer, tag("training_return", report, g.env, g.b0), report.train_grids.get(g.env, grid),
                g.train_curve)
        for role in ROLES:
            lr = g.actor_lr if role == "actor" else g.critic_lr
            accumulated = g.actor_accumulator if role == "actor" else g.critic_accumulator
            add(g.optimizer, tag("step_size", report, g.env, g.b0, role), grid, lr)
            if lr is not None and first > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    add(g.optimizer, tag("step_size_log10_change", report, g.env, g.b0, role), grid,
                        np.log10(lr / first))
            if accumulated is not None:
                add(g.optimizer, tag("accumulator_growth", report, g.env, g.b0, role), grid, accumulated - 1)
    return runs


def custom_scalars_layout(report: Report, scalars: dict[str, dict[str, list]] | None = None) -> dict[str, dict]:
    """The dashboard, in ``SummaryWriter.add_custom_scalars``'s form. Every multiline chart is one tag, which each
    optimizer's run writes: one line per optimizer. Charts of tags no run wrote are left out."""
    scalars = tensorboard_scalars(report) if scalars is None else scalars
    written = {name for series in scalars.values() for name in series}
    categories: dict[str, dict[str, list]] = {
        "eval return by b0 (seed aggregate)": {}, "training-episode return by b0 (seed aggregate)": {},
        "eval return by b0, with 95% CI": {}, "step size by b0: log10(η_t / η0), 0 = the first step": {},
        "accumulator growth by b0: b_t/b0 − 1 (under 0.1: ≡ fixed step)": {}}
    (returns, training, margins, steps, growth) = categories.values()

    def multiline(target: dict, title: str, name: str) -> None:
        if name in written:
            target[title] = ["Multiline", [_exact(name)]]

    for env in report.envs:
        for b0 in report.b0s:
            where = f"{env} " if len(report.envs) > 1 else ""
            title = f"{where}b0={report.b0_label(b0)} ({report.first_step_text(b0)})"
            multiline(returns, f"eval return, {report.statistic} over seeds: {title}", tag("eval_return", report,
                                                                                            env, b0))
            multiline(training, f"training-episode return, {report.statistic} over seeds: {title}",
                      tag("training_return", report, env, b0))
            band = [tag("eval_return", report, env, b0), tag("eval_return_ci", report, env, b0, "low"),
                    tag("eval_return_ci", report, env, b0, "high")]
            if set(band) <= written:  # no CI with a single seed: no margin chart, not an empty one
                margins[f"eval return with 95% CI: {title}"] = ["Margin", band]
            for role in ROLES:
                multiline(steps, f"{role} step size, log10(η_t / η0): {title}",
                          tag("step_size_log10_change", report, env, b0, role))
                multiline(growth, f"{role} accumulator growth b_t/b0 − 1: {title}",
                          tag("accumulator_growth", report, env, b0, role))
    return {name: charts for name, charts in categories.items() if charts}


def write_tensorboard(report: Report, sweep_dir: Path) -> Path:
    """Replace ``<sweep_dir>/aggregate/`` with fresh events, one run per optimizer, so a re-run never duplicates the
    series; the dashboard's layout goes into the first optimizer's run (TensorBoard reads it from any run)."""
    from torch.utils.tensorboard import SummaryWriter

    scalars = tensorboard_scalars(report)
    layout = custom_scalars_layout(report, scalars)

    def fill(folder: Path) -> None:
        for i, optimizer in enumerate(name for name in report.optimizers if name in scalars):
            writer = SummaryWriter(str(folder / optimizer))
            try:
                for name, points in scalars[optimizer].items():
                    for step, value in points:
                        writer.add_scalar(name, value, step)
                if i == 0:
                    writer.add_custom_scalars(layout)
            finally:
                writer.close()

    target = Path(sweep_dir) / AGGREGATE
    replace_directory(target, fill)
    return target
