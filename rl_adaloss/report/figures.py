"""The report's figures: reward curves per b0, robustness to b0, effective step sizes per b0, the accumulators'
growth per b0, and training-episode returns beside the eval returns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rl_adaloss.io import save_figure
from rl_adaloss.records import MISSING_STATUSES
from rl_adaloss.report.aggregation import TRAINING_WINDOW, Group, Report, training_points
from rl_adaloss.report.diagnostics import ADAM_EQUIVALENT_BELOW, accumulator


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
            ax.set_title(f"{prefix}b0 = {report.b0_label(b0)}   ({report.first_step_text(b0)})",
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
            ax.set_xticklabels([f"{report.b0_label(b)}\n({report.first_step_label(b, '.2g')})"
                                for b in report.b0s],
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


def _at_least_a_decade(ax) -> None:
    """A log axis of at least a decade: a value that barely moves should look flat."""
    low, high = ax.get_ylim()
    if high / low < 10:
        centre = math.sqrt(low * high)
        ax.set_ylim(centre / math.sqrt(10), centre * math.sqrt(10))


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
        _at_least_a_decade(ax)


def plot_step_sizes(report: Report, path: Path) -> None:
    """``step_sizes.png``: the effective step size over training (log y), one panel per env x b0."""
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), len(report.b0s))
    for row, env in enumerate(report.envs):
        for col, b0 in enumerate(report.b0s):
            ax = axes[row, col]
            _plot_step_sizes(ax, report, env, b0, colors)
            prefix = f"{env}\n" if len(report.envs) > 1 else ""
            ax.set_title(f"{prefix}b0 = {report.b0_label(b0)}   ({report.first_step_text(b0)})",
                         fontsize=10)
            ax.set_xlabel("env steps")
            if col == 0:
                ax.set_ylabel("effective step size η_t")
            ax.grid(alpha=0.3, which="both")
            _legend(ax, fontsize=7)
    figure.suptitle("Effective step size over training, at each evaluation (geometric mean over seeds; "
                    "solid actor, dashed critic)", fontsize=10)
    _save(figure, path)


def _plot_accumulators(ax, report: Report, env: str, b0: float, colors: dict[str, Any]) -> None:
    """Each optimizer's accumulator over its start, actor solid and critic dashed, on a log axis from 1 up."""
    plotted = False
    for name in report.optimizers:
        group = report.group(env, name, b0)
        if group is None or group.actor_accumulator is None:
            continue
        note = f" ≡ {accumulator(group.schedule).counterpart} here" if group.adam_equivalent else ""
        for values, style, role, grew in ((group.actor_accumulator, "-", "actor", group.actor_growth),
                                          (group.critic_accumulator, "--", "critic", group.critic_growth)):
            if np.isfinite(values).any():
                ax.plot(report.grids[env], values, color=colors[name], linestyle=style, linewidth=1.6,
                        label=f"{name} {role}: +{grew:.2g}{note}")
                plotted = True
    if plotted:
        ax.axhline(1 + ADAM_EQUIVALENT_BELOW, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, 0.9), max(high, 10.0))  # from the start (1) to at least a decade above it


def plot_accumulator_growth(report: Report, path: Path) -> None:
    """``accumulator_growth.png``: each network's accumulator over its start (b_t/b0; b_t²/b0² for the
    Algorithm-1 rules) over training, log y, one panel per env x b0."""
    colors = _colors(report)
    figure, axes = _panels(len(report.envs), len(report.b0s))
    for row, env in enumerate(report.envs):
        for col, b0 in enumerate(report.b0s):
            ax = axes[row, col]
            _plot_accumulators(ax, report, env, b0, colors)
            prefix = f"{env}\n" if len(report.envs) > 1 else ""
            ax.set_title(f"{prefix}b0 = {report.b0_label(b0)}", fontsize=10)
            ax.set_xlabel("env steps")
            if col == 0:
                ax.set_ylabel("accumulator / b0")
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, "no accumulator (Adam, AdamSqrt, SGD)\nor no runs with data",
                        transform=ax.transAxes, ha="center", va="center", color="grey", fontsize=8)
    figure.suptitle(f"Did the accumulator move? b_t/b0 (AdamLoss) or b_t²/b0² (AdaLoss) over training, geometric "
                    f"mean over seeds; solid actor, dashed critic;\nlegend: median growth / b0 over seeds. "
                    f"Below the dotted line (+{ADAM_EQUIVALENT_BELOW:.0%}) the rule is its fixed-step counterpart",
                    fontsize=10)
    _save(figure, path)


def _plot_training_group(ax, group: Group, grid: np.ndarray, color, label: str) -> None:
    if group.train_curve is None:
        return
    for run in group.used:
        if len(run.episode_steps):
            ax.plot(*training_points(run), color=color, alpha=0.25, linewidth=0.8)
    ax.plot(grid, group.train_curve, color=color, linewidth=2, label=label)
    ax.fill_between(grid, group.train_low, group.train_high, color=color, alpha=0.2, linewidth=0)


def plot_training_scores(report: Report, path: Path) -> None:
    """``training_scores.png``: per env, a row of training-episode returns (the paper's scores, from the Monitor
    files) above a row of deterministic eval returns, one column per b0, on the same y axis."""
    colors = _colors(report)
    figure, axes = _panels(2 * len(report.envs), len(report.b0s), height=3.2)
    for row, env in enumerate(report.envs):
        for col, b0 in enumerate(report.b0s):
            train_ax, eval_ax = axes[2 * row, col], axes[2 * row + 1, col]
            for name in report.optimizers:
                group = report.group(env, name, b0)
                if group is None:
                    continue
                _plot_training_group(train_ax, group, report.train_grids.get(env, np.zeros(0)), colors[name],
                                     _curve_label(name, group))
                _plot_group_curves(eval_ax, group, report.grids[env], colors[name], _curve_label(name, group))
            prefix = f"{env}, " if len(report.envs) > 1 else ""
            train_ax.set_title(f"{prefix}b0 = {report.b0_label(b0)}: training episodes", fontsize=10)
            eval_ax.set_title(f"{prefix}b0 = {report.b0_label(b0)}: deterministic evaluation", fontsize=10)
            for ax in (train_ax, eval_ax):
                ax.set_xlabel("env steps")
                ax.grid(alpha=0.3)
            if col == 0:
                train_ax.set_ylabel(f"training return (last {TRAINING_WINDOW} ep.)")
                eval_ax.set_ylabel("eval return")
            if train_ax.get_legend_handles_labels()[0]:
                train_ax.legend(fontsize=7)
                lows, highs = zip(train_ax.get_ylim(), eval_ax.get_ylim())
                for ax in (train_ax, eval_ax):
                    ax.set_ylim(min(lows), max(highs))
                lefts, rights = zip(train_ax.get_xlim(), eval_ax.get_xlim())
                for ax in (train_ax, eval_ax):
                    ax.set_xlim(min(lefts), max(rights))
            else:
                train_ax.text(0.5, 0.5, "no training episodes (monitor/*.csv)", transform=train_ax.transAxes,
                              ha="center", va="center", color="grey")
            _legend(eval_ax, fontsize=7)
    figure.suptitle(f"Training-episode returns (top: mean of the last {TRAINING_WINDOW} episodes, stochastic "
                    f"policy, raw rewards)\nbeside the deterministic evaluation (bottom); "
                    f"{report.statistic} over seeds with 95% bootstrap band, seeds faint", fontsize=10)
    _save(figure, path)


# -- across tasks --------------------------------------------------------------------------------------------------

def _across_colors(result) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {name: palette(i % 10) for i, name in enumerate(result.optimizers)}


def _b0_axis(ax, result) -> None:
    ax.set_xscale("log")
    ax.set_xticks(result.b0s)
    ax.set_xticklabels([result.b0_labels[b0] for b0 in result.b0s], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("b0")
    ax.grid(alpha=0.3)


def _against_b0(ax, result, colors, value: str) -> None:
    """``value`` (iqm or poi) of each optimizer against b0, side by side with CI bars."""
    n = len(result.optimizers)
    for i, name in enumerate(result.optimizers):
        cells = [c for c in (result.cell(name, b0) for b0 in result.b0s)
                 if c is not None and not math.isnan(getattr(c, value))]
        if not cells:
            continue
        shift = 10 ** (0.05 * (i - (n - 1) / 2))
        ys = np.array([getattr(c, value) for c in cells])
        low = np.array([getattr(c, f"{value}_low") for c in cells])
        high = np.array([getattr(c, f"{value}_high") for c in cells])
        err = np.nan_to_num(np.vstack([np.clip(ys - low, 0, None), np.clip(high - ys, 0, None)]))
        label = name if value == "iqm" else f"{name} vs {cells[0].reference}"
        ax.errorbar(np.array([c.b0 for c in cells]) * shift, ys, yerr=err, color=colors[name], marker="o",
                    capsize=4, linewidth=1.8, label=label)


def _plot_across(result, path: Path, value: str, ylabel: str, title: str, chance: float | None = None) -> None:
    """One across-task statistic against b0, per optimizer, with 95% CIs, on a [0, 1] axis."""
    figure, axes = _panels(1, 1, width=7.0, height=4.2)
    ax = axes[0, 0]
    _against_b0(ax, result, _across_colors(result), value)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1)
    _b0_axis(ax, result)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel(ylabel)
    _legend(ax, fontsize=8)
    figure.suptitle(title, fontsize=10)
    _save(figure, path)


def plot_across_iqm(result, path: Path) -> None:
    """``across_tasks_iqm.png``: IQM across tasks of the normalised final return against b0, with 95% CIs."""
    _plot_across(result, path, "iqm", "IQM of normalised final return",
                 f"Across {len(result.tasks)} tasks ({', '.join(t.name for t in result.tasks)}): IQM with 95% "
                 f"stratified-bootstrap CI;\neach task min-max normalised over all its runs")


def plot_probability_of_improvement(result, path: Path) -> None:
    """``probability_of_improvement.png``: P(optimizer > reference) across tasks against b0, with 95% CIs."""
    _plot_across(result, path, "poi", "P(X > reference), mean over tasks",
                 f"Probability of improvement over {' / '.join(result.references)} across "
                 f"{len(result.tasks)} tasks, 95% CIs; 0.5 = no difference", chance=0.5)


def plot_performance_profiles(result, path: Path) -> None:
    """``performance_profiles.png``: per b0, the fraction of runs (all tasks) whose normalised final return
    exceeds τ, with 95% CI bands (rliable's plot where it can run)."""
    from rl_adaloss.report.across import TAUS

    colors = _across_colors(result)
    figure, axes = _panels(1, max(len(result.b0s), 1), width=4.2, height=3.6)
    for col, b0 in enumerate(result.b0s):
        ax = axes[0, col]
        cells = [c for c in (result.cell(name, b0) for name in result.optimizers) if c is not None]
        profiles = {c.optimizer: c.profile for c in cells}
        bands = {c.optimizer: (c.profile_low, c.profile_high) for c in cells}
        try:
            from rliable import plot_utils

            plot_utils.plot_performance_profiles(profiles, TAUS, performance_profile_cis=bands, ax=ax,
                                                 colors={c.optimizer: colors[c.optimizer] for c in cells},
                                                 xlabel="normalised score τ", ylabel="fraction of runs > τ",
                                                 labelsize="medium", ticklabelsize="small")
        except Exception:  # noqa: BLE001 - rliable's plotting needs seaborn; draw the same lines without it
            for name, profile in profiles.items():
                ax.plot(TAUS, profile, color=colors[name], linewidth=2)
                ax.fill_between(TAUS, *bands[name], color=colors[name], alpha=0.15)
            ax.set_xlabel("normalised score τ")
            ax.set_ylabel("fraction of runs > τ")
        for line, name in zip(ax.get_lines(), profiles):
            line.set_label(name)
        ax.set_title(f"b0 = {result.b0_labels[b0]}", fontsize=10)
        _legend(ax, fontsize=8)
    figure.suptitle(f"Performance profiles across {len(result.tasks)} tasks (normalised final return, 95% CI "
                    f"bands): higher and further right is better", fontsize=10)
    _save(figure, path)
