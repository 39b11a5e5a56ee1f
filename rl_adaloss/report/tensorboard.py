"""The TensorBoard view of the report: ``<sweep>/aggregate/``, the seed aggregates as scalars and a Custom Scalars
dashboard with, per b0, each optimizer's aggregate eval return, its 95% CI, and the effective step sizes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from rl_adaloss.io import replace_directory
from rl_adaloss.report.aggregation import Report

ROLES = ("actor", "critic")


def tag(kind: str, report: Report, env: str, b0: float, name: str) -> str:
    """A scalar's tag: ``kind/[env/]b0=<label>/name``; the env only where the sweep has more than one."""
    env_part = f"{env}/" if len(report.envs) > 1 else ""
    return f"{kind}/{env_part}b0={report.b0_label(b0)}/{name}"


def _exact(name: str) -> str:
    # Multiline charts take regexes, matched in Python and in the browser: anchored, only metacharacters escaped.
    return "^" + re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", name) + "$"


def custom_scalars_layout(report: Report) -> dict[str, dict[str, list]]:
    """The dashboard, in ``SummaryWriter.add_custom_scalars``'s form: per env x b0, a chart of every optimizer's
    aggregate eval return, one chart per optimizer of it with its 95% CI, and a chart of the step sizes."""
    returns, margins, steps = {}, {}, {}
    for env in report.envs:
        for b0 in report.b0s:
            names = [n for n in report.optimizers if (g := report.group(env, n, b0)) is not None and g.used]
            where = f"{env} " if len(report.envs) > 1 else ""
            title = f"{where}b0={report.b0_label(b0)} (first step {report.initial_step(b0):.3g})"
            returns[f"eval return, {report.statistic} over seeds: {title}"] = [
                "Multiline", [_exact(tag("aggregate", report, env, b0, n)) for n in names]]
            for n in names:
                margins[f"eval return with 95% CI: {n}, {title}"] = ["Margin", [
                    tag("aggregate", report, env, b0, n), tag("aggregate_ci", report, env, b0, f"{n}_low"),
                    tag("aggregate_ci", report, env, b0, f"{n}_high")]]
            steps[f"effective step size (actor, critic): {title}"] = ["Multiline", [
                _exact(tag("step_size", report, env, b0, f"{n}_{role}")) for n in names for role in ROLES]]
    return {"eval return by b0 (seed aggregate)": returns, "eval return by b0, with 95% CI": margins,
            "effective step size by b0": steps}


def tensorboard_scalars(report: Report) -> dict[str, list[tuple[int, float]]]:
    """Every aggregate scalar series written to the dashboard: tag -> [(step, value)], finite values only."""
    series: dict[str, list[tuple[int, float]]] = {}

    def add(name: str, steps: np.ndarray, values: np.ndarray | None) -> None:
        points = [] if values is None else [(int(s), float(v)) for s, v in zip(steps, values) if math.isfinite(v)]
        if points:
            series[name] = points

    for g in report.groups:
        grid = report.grids[g.env]
        if g.used:
            add(tag("aggregate", report, g.env, g.b0, g.optimizer), grid, g.curve)
            add(tag("aggregate_ci", report, g.env, g.b0, f"{g.optimizer}_low"), grid, g.curve_low)
            add(tag("aggregate_ci", report, g.env, g.b0, f"{g.optimizer}_high"), grid, g.curve_high)
        add(tag("step_size", report, g.env, g.b0, f"{g.optimizer}_actor"), grid, g.actor_lr)
        add(tag("step_size", report, g.env, g.b0, f"{g.optimizer}_critic"), grid, g.critic_lr)
    return series


def write_tensorboard(report: Report, sweep_dir: Path) -> Path:
    """Replace ``<sweep_dir>/aggregate/`` with fresh events, so a re-run never duplicates the series."""
    from torch.utils.tensorboard import SummaryWriter

    def fill(folder: Path) -> None:
        writer = SummaryWriter(str(folder))
        try:
            for name, points in tensorboard_scalars(report).items():
                for step, value in points:
                    writer.add_scalar(name, value, step)
            writer.add_custom_scalars(custom_scalars_layout(report))
        finally:
            writer.close()

    target = Path(sweep_dir) / "aggregate"
    replace_directory(target, fill)
    return target
