"""The comparison report of a sweep: ``python -m rl_adaloss.report runs/<sweep>``; of several, with the aggregates
across their tasks: ``python -m rl_adaloss.report runs/a runs/b --out runs/across``.

Reads ``<sweep>/sweep.json`` (the list of grid points: every point is accounted for, run or not) and each run's
``result.json`` and ``evaluations.csv``, and writes into the sweep folder, each file atomically:

    reward_curves.png   eval return over env steps, one panel per b0, one curve per optimizer: the seed aggregate
                        with a 95% bootstrap band, each seed faintly behind it, diverged seeds ending in an x
    robustness.png      final eval return and mean eval return over training against b0 (log x), with 95% CIs:
                        which optimizer trains well from any b0?
    step_sizes.png      the effective step size of actor and critic over training (log y), per b0 and optimizer
    accumulator_growth.png  each network's accumulator over its start (b_t/b0; b_t²/b0² for AdaLoss) over
                        training, log y, per b0: did it move at all? (:mod:`~rl_adaloss.report.diagnostics`)
    training_scores.png training-episode returns from the Monitor files (the paper's scores), seed aggregate with
                        the same bootstrap, above the deterministic eval returns, per b0
    summary.csv         one row per env x optimizer x b0: counts, IQM, mean and 95% CI of final return and AUC,
                        the median accumulator growth / b0 per network, and ``adam_equivalent``
    summary.md          the same table, a paragraph generated from the numbers (each challenger variant against
                        the reference, by default every variant against Adam), which loss-driven cells were
                        "≡ Adam here" (and whether the sweep could have shown the mechanism), and every run left
                        out and why
    diagnostics.csv     per run: each network's b0 and its accumulator's growth
    verdict.md          the verdict matrix, per condition (a sweep's ``conditions:``) and variant: the first steps
                        at which it matches tuned Adam (Adam's best b0 there), its worst b0 against Adam's, whether
                        it was ≡ Adam where Adam fails, and a verdict (robust / wider range than Adam / no better /
                        worse); its cells' mean final return and AUC with CIs; the sensitivity to alpha
                        (:mod:`~rl_adaloss.report.verdict`, whose docstring states the rules)
    verdict.csv         the matrix, one row per condition x variant
    verdict_alpha.csv   per family of variants equal but for alpha, and b0: mean final return per alpha, the spread
    aggregate/<optimizer>/  TensorBoard events, one run per optimizer with the same tags, and a custom-scalars
                        dashboard (:mod:`~rl_adaloss.report.tensorboard`)

With several sweeps, ``--out`` gets the aggregates across their tasks (:mod:`~rl_adaloss.report.across`):
across_tasks.csv/.md, across_tasks_iqm.png, performance_profiles.png, probability_of_improvement.png.

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

Modules, one job each: :mod:`~rl_adaloss.report.runs` (loading), :mod:`~rl_adaloss.report.stats` (IQM, mean,
bootstrap), :mod:`~rl_adaloss.report.aggregation` (cells and curves), :mod:`~rl_adaloss.report.text` (summary.csv,
summary.md, diagnostics.csv, across_tasks.csv/.md), :mod:`~rl_adaloss.report.diagnostics` (accumulator growth),
:mod:`~rl_adaloss.report.across` (rliable across tasks), :mod:`~rl_adaloss.report.verdict` (the verdict matrix),
:mod:`~rl_adaloss.report.figures`,
:mod:`~rl_adaloss.report.tensorboard` and :mod:`~rl_adaloss.report.cli`.
"""

from rl_adaloss.report.across import AcrossTasks, across_tasks
from rl_adaloss.report.aggregation import (
    IQM_MIN_SEEDS,
    Group,
    Report,
    aggregate,
    area_under_curve,
    common_steps,
    resample,
    score_curve,
    step_size_curve,
)
from rl_adaloss.report.cli import ACROSS_OUTPUTS, OUTPUTS, main, write_report, write_reports
from rl_adaloss.report.diagnostics import ADAM_EQUIVALENT_BELOW, accumulator, adam_equivalent, growth
from rl_adaloss.report.figures import (
    plot_accumulator_growth,
    plot_reward_curves,
    plot_robustness,
    plot_step_sizes,
    plot_training_scores,
)
from rl_adaloss.report.runs import Run, load_runs, read_evaluations
from rl_adaloss.report.stats import DEFAULT_REPS, Estimate, bootstrap_ci, iqm, mean
from rl_adaloss.report.tensorboard import custom_scalars_layout, tensorboard_scalars, write_tensorboard
from rl_adaloss.report.text import default_comparison, summary_csv, summary_markdown, verdicts

__all__ = [
    "ACROSS_OUTPUTS", "ADAM_EQUIVALENT_BELOW", "DEFAULT_REPS", "IQM_MIN_SEEDS", "OUTPUTS", "AcrossTasks", "Estimate",
    "Group", "Report", "Run", "accumulator", "across_tasks", "adam_equivalent", "aggregate", "area_under_curve",
    "bootstrap_ci", "common_steps", "custom_scalars_layout", "default_comparison", "growth", "iqm", "load_runs",
    "main", "mean", "plot_accumulator_growth", "plot_reward_curves", "plot_robustness", "plot_step_sizes",
    "plot_training_scores", "read_evaluations", "resample", "score_curve", "step_size_curve", "summary_csv",
    "summary_markdown", "tensorboard_scalars", "verdicts", "write_report", "write_reports", "write_tensorboard",
]
