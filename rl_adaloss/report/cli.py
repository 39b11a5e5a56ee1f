"""The command: ``python -m rl_adaloss.report SWEEP_DIR`` writes the whole report into the sweep folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rl_adaloss.errors import UsageError, exit_on_usage_error
from rl_adaloss.io import write_atomic
from rl_adaloss.report.aggregation import aggregate
from rl_adaloss.report.figures import (
    plot_accumulator_growth,
    plot_reward_curves,
    plot_robustness,
    plot_step_sizes,
    plot_training_scores,
)
from rl_adaloss.report.runs import load_runs
from rl_adaloss.report.stats import DEFAULT_REPS
from rl_adaloss.report.tensorboard import write_tensorboard
from rl_adaloss.report.text import diagnostics_csv, summary_csv, summary_markdown

OUTPUTS = ("reward_curves.png", "robustness.png", "step_sizes.png", "accumulator_growth.png", "training_scores.png",
           "summary.csv", "summary.md", "diagnostics.csv")


def write_report(sweep_dir: str | Path, reps: int = DEFAULT_REPS, seed: int = 0, bootstrap: str = "rliable",
                 challengers: Sequence[str] | None = None, references: Sequence[str] | None = None) -> dict[str, Path]:
    """Read the sweep in ``sweep_dir`` and write every output; returns name -> path.

    ``bootstrap`` ("rliable" or "numpy") computes the CIs; ``challengers`` and ``references`` are the variants the
    generated paragraph compares (by default every variant against the Adam ones).
    """
    sweep_dir = Path(sweep_dir)
    report = aggregate(*load_runs(sweep_dir), reps=reps, seed=seed, bootstrap=bootstrap)
    paths = {name: sweep_dir / name for name in OUTPUTS}
    # The text first: it checks the variant names, before any figure is drawn.
    markdown = summary_markdown(report, challengers, references)
    plot_reward_curves(report, paths["reward_curves.png"])
    plot_robustness(report, paths["robustness.png"])
    plot_step_sizes(report, paths["step_sizes.png"])
    plot_accumulator_growth(report, paths["accumulator_growth.png"])
    plot_training_scores(report, paths["training_scores.png"])
    write_atomic(paths["summary.csv"], summary_csv(report))
    write_atomic(paths["summary.md"], markdown)
    write_atomic(paths["diagnostics.csv"], diagnostics_csv(report))
    paths["aggregate"] = write_tensorboard(report, sweep_dir)
    return paths


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rl_adaloss.report",
        description="Write a sweep's comparison report into its folder: reward_curves.png (eval return per b0, "
                    "seed aggregate with 95% bootstrap band), robustness.png (final return and AUC against b0), "
                    "step_sizes.png (effective step sizes), summary.csv and summary.md (table and a generated "
                    "verdict per b0: each variant against Adam), and a TensorBoard dashboard in aggregate/.",
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


def run(argv: Sequence[str] | None = None) -> int:
    """The command, raising :class:`UsageError` for input that cannot run."""
    args = parse_args(argv)
    if args.reps < 1:
        raise UsageError(f"--reps: expected an integer >= 1, got {args.reps}")
    paths = write_report(args.sweep_dir, reps=args.reps, seed=args.seed)
    print(f"report of {args.sweep_dir}:")
    for name, path in paths.items():
        print(f"  {path}{'/  (TensorBoard events)' if name == 'aggregate' else ''}")
    print(f"see the dashboard: tensorboard --logdir {args.sweep_dir}  (Custom Scalars tab)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command; input that cannot run is one line on stderr and exit code 2."""
    return exit_on_usage_error(run, argv)
