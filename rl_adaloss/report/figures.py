"""The report's figures: reward curves per b0, robustness to b0, and effective step sizes per b0."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rl_adaloss.io import save_figure
from rl_adaloss.records import MISSING_STATUSES
from rl_adaloss.report.aggregation import Group, Report


def _colors(report: Report) -> dict[str, Any]:
    """One colour per optimizer, the same in every figure."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {name: palette(i % 10) for i, name in enumerate(report.optimizers)}


def _save(figure, path: Path) -> None:
    # Constrained layout and the minor ticks of the step-size axes are part of the look: saved as drawn.
    save_figure(figure, path, dpi=110, bbox_inches="tight", as_drawn=True)


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


def _curve_label(name: str, group: Group) -> str:
    """The legend entry of one optimizer in one panel: its name and what happened to its seeds."""
    notes = [f"n={len(group.used)}"]
    if group.n_diverged:
        notes.append(f"{group.n_diverged} diverged ×")
    notes += [f"{group.count(s)} {s}" for s in MISSING_STATUSES if group.count(s)]
    no_data = sum(run.status in ("finished", "diverged") and not run.has_data for run in group.runs)
    if no_data:
        notes.append(f"{no_data} without evaluations")
    return f"{name} ({', '.join(notes)})"


def _plot_group_curves(ax, group: Group, grid: np.ndarray, color, label: str) -> None:
    """Each seed faintly, a diverged one dotted on to an x where it diverged; the aggregate thick with its band."""
    for run in group.used:
        ax.plot(run.steps, run.returns, color=color, alpha=0.25, linewidth=0.8)
        if run.status == "diverged":
            at = max(run.diverged_at if run.diverged_at is not None else 0, run.steps[-1])
            ax.plot([run.steps[-1], at], [run.returns[-1]] * 2, color=color, alpha=0.5, linestyle=":", linewidth=1)
            ax.plot([at], [run.returns[-1]], marker="x", color=color, markersize=9, markeredgewidth=2,
                    linestyle="none")
    if group.curve is not None and len(group.used):
        ax.plot(grid, group.curve, color=color, linewidth=2, label=label)
        ax.fill_between(grid, group.curve_low, group.curve_high, color=color, alpha=0.2, linewidth=0)
    else:
        ax.plot([], [], color=color, linewidth=2, label=label)


def plot_reward_curves(report: Report, path: Path) -> None:
    """``reward_curves.png``: eval return over env steps, one panel per env x b0, one colour per optimizer."""
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), len(report.b0s))
    for row, env in enumerate(report.envs):
        for col, b0 in enumerate(report.b0s):
            ax = axes[row, col]
            for name in report.optimizers:
                group = report.group(env, name, b0)
                if group is not None:
                    _plot_group_curves(ax, group, report.grids[env], colors[name], _curve_label(name, group))
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


def _plot_against_b0(ax, report: Report, env: str, key: str, colors: dict[str, Any]) -> None:
    """``key`` (final or auc) of each optimizer against b0, with its CI bars."""
    n = len(report.optimizers)
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
        ax.errorbar(xs, ys, yerr=err, color=colors[name], marker="o", capsize=4, linewidth=1.8, label=name)
        for x, y, g in zip(xs, ys, groups):
            if g.n_diverged:
                ax.annotate(f"{g.n_diverged}/{len(g.runs)} div.", (x, y), textcoords="offset points",
                            xytext=(4, -12), fontsize=7, color=colors[name])


def plot_robustness(report: Report, path: Path) -> None:
    """``robustness.png``: final return and AUC against b0 (log x), per env, with 95% CIs."""
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), 2, width=5.6)
    for row, env in enumerate(report.envs):
        for col, (key, title) in enumerate((("final", "final eval return"),
                                            ("auc", "mean eval return over training (AUC)"))):
            ax = axes[row, col]
            _plot_against_b0(ax, report, env, key, colors)
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


def _plot_step_sizes(ax, report: Report, env: str, b0: float, colors: dict[str, Any]) -> None:
    """Actor (solid) and critic (dashed) step size of each optimizer, on a log axis of at least a decade."""
    plotted = False
    for name in report.optimizers:
        group = report.group(env, name, b0)
        if group is None or group.actor_lr is None:
            continue
        for values, style, role in ((group.actor_lr, "-", "actor"), (group.critic_lr, "--", "critic")):
            if np.isfinite(values).any():
                ax.plot(report.grids[env], values, color=colors[name], linestyle=style, linewidth=1.6,
                        label=f"{name} {role}")
                plotted = True
    if plotted:
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        if high / low < 10:  # at least a decade: a step size that barely moves should look flat
            centre = math.sqrt(low * high)
            ax.set_ylim(centre / math.sqrt(10), centre * math.sqrt(10))


def plot_step_sizes(report: Report, path: Path) -> None:
    """``step_sizes.png``: the effective step size over training (log y), one panel per env x b0."""
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), len(report.b0s))
    for row, env in enumerate(report.envs):
        for col, b0 in enumerate(report.b0s):
            ax = axes[row, col]
            _plot_step_sizes(ax, report, env, b0, colors)
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
