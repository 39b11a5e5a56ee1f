"""The command: ``python -m rl_adaloss.report SWEEP_DIR [SWEEP_DIR ...] [--out DIR]`` writes each sweep's report
into its folder and, for several sweeps, the aggregates across their tasks into ``--out``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rl_adaloss.errors import UsageError, exit_on_usage_error
from rl_adaloss.io import write_atomic
from rl_adaloss.report.across import across_tasks
from rl_adaloss.report.aggregation import Report, aggregate
from rl_adaloss.report.figures import (
    plot_accumulator_growth,
    plot_across_iqm,
    plot_performance_profiles,
    plot_probability_of_improvement,
    plot_reward_curves,
    plot_robustness,
    plot_step_sizes,
    plot_training_scores,
)
from rl_adaloss.report.runs import load_runs
from rl_adaloss.report.stats import DEFAULT_REPS, add_bootstrap_arguments, check_bootstrap_arguments
from rl_adaloss.report.tensorboard import write_tensorboard
from rl_adaloss.report.text import across_csv, across_markdown, diagnostics_csv, summary_csv, summary_markdown
from rl_adaloss.report.verdict import verdict, verdict_alpha_csv, verdict_csv

OUTPUTS = ("reward_curves.png", "robustness.png", "step_sizes.png", "accumulator_growth.png", "training_scores.png",
           "summary.csv", "summary.md", "diagnostics.csv", "verdict.md", "verdict.csv", "verdict_alpha.csv")
#: What ``--out`` gets for several sweeps: the aggregates across their tasks.
ACROSS_OUTPUTS = ("across_tasks.csv", "across_tasks.md", "across_tasks_iqm.png", "performance_profiles.png",
                  "probability_of_improvement.png")
#: The dashboard's address, smoothing off (TensorBoard's default 0.6 would smooth the aggregates again).
DASHBOARD = "http://localhost:6006/#custom_scalars&_smoothingWeight=0"


def write_report(sweep_dir: str | Path, reps: int = DEFAULT_REPS, seed: int = 0, bootstrap: str = "rliable",
                 challengers: Sequence[str] | None = None, references: Sequence[str] | None = None) -> dict[str, Path]:
    """Read the sweep in ``sweep_dir`` and write every output; returns name -> path.

    ``bootstrap`` ("rliable" or "numpy") computes the CIs; ``challengers`` and ``references`` are the variants the
    generated paragraph compares (by default every variant against the Adam ones).
    """
    return _write_sweep(Path(sweep_dir), reps, seed, bootstrap, challengers, references)[1]


def _write_sweep(sweep_dir: Path, reps: int, seed: int, bootstrap: str, challengers: Sequence[str] | None,
                 references: Sequence[str] | None) -> tuple[Report, dict[str, Path]]:
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
    matrix = verdict(report, reps=reps, seed=seed)
    write_atomic(paths["verdict.md"], matrix.markdown)
    write_atomic(paths["verdict.csv"], verdict_csv(matrix))
    write_atomic(paths["verdict_alpha.csv"], verdict_alpha_csv(matrix))
    paths["aggregate"] = write_tensorboard(report, sweep_dir)
    return report, paths


def write_reports(sweep_dirs: Sequence[str | Path], out: str | Path | None = None, reps: int = DEFAULT_REPS,
                  seed: int = 0, bootstrap: str = "rliable") -> dict[str, dict[str, Path]]:
    """Each sweep's report into its folder and, with ``out``, the aggregates across all their tasks into ``out``
    (required with more than one sweep); returns folder -> name -> path."""
    sweep_dirs = [Path(d) for d in sweep_dirs]
    if len({d.resolve() for d in sweep_dirs}) < len(sweep_dirs):
        raise UsageError("a sweep folder is named twice; name each sweep once")
    if len(sweep_dirs) > 1 and out is None:
        raise UsageError("--out: required with more than one sweep (the folder for the aggregates across tasks)")
    for sweep_dir in sweep_dirs:  # every folder checked before anything is written
        load_runs(sweep_dir)
    written, reports = {}, []
    for sweep_dir in sweep_dirs:
        report, written[str(sweep_dir)] = _write_sweep(sweep_dir, reps, seed, bootstrap, None, None)
        reports.append((sweep_dir.name, report))
    if out is not None:
        result = across_tasks(reports, reps=reps, seed=seed, bootstrap=bootstrap)
        if not result.cells:
            raise UsageError(f"--out: the sweeps share no optimizer and b0 with data ({', '.join(result.missing)})")
        out = Path(out)
        paths = {name: out / name for name in ACROSS_OUTPUTS}
        plot_across_iqm(result, paths["across_tasks_iqm.png"])
        plot_performance_profiles(result, paths["performance_profiles.png"])
        plot_probability_of_improvement(result, paths["probability_of_improvement.png"])
        write_atomic(paths["across_tasks.csv"], across_csv(result))
        write_atomic(paths["across_tasks.md"], across_markdown(result))
        written[str(out)] = paths
    return written


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rl_adaloss.report",
        description="Write each sweep's comparison report into its folder: reward_curves.png (eval return per b0, "
                    "seed aggregate with 95% bootstrap band), robustness.png (final return and AUC against b0), "
                    "step_sizes.png (effective step sizes), accumulator_growth.png (b_t/b0 over training), "
                    "training_scores.png (training-episode returns beside the eval returns), summary.csv and "
                    "summary.md (table, a generated verdict per b0: each variant against Adam, and which "
                    "loss-driven cells were Adam because their accumulator hardly grew), diagnostics.csv (per "
                    "run), verdict.md and verdict.csv (per condition and variant: does it match tuned Adam at every "
                    "large first step, at more b0 values than Adam, and was it Adam where Adam fails?), "
                    "verdict_alpha.csv (spread of final return across alpha), and a TensorBoard dashboard in "
                    "aggregate/<optimizer>/. With several sweeps, --out gets "
                    "rliable's aggregates across their tasks: across_tasks.csv/.md, across_tasks_iqm.png, "
                    "performance_profiles.png, probability_of_improvement.png.",
        epilog="Seeds are aggregated with the IQM from 4 seeds on, else the mean. A diverged run counts as its "
               "minimum eval return from its last evaluation on; failed, interrupted and not-run points are left "
               "out and listed in summary.md. Across tasks, each task's final returns are min-max normalised over "
               "all its runs. Re-running replaces every output. Exit codes: 0 written, 2 not a sweep folder, or "
               "several sweeps without --out.",
    )
    parser.add_argument("sweep_dirs", type=Path, nargs="+", metavar="SWEEP_DIR",
                        help="sweep folders, e.g. runs/pendulum (each holds sweep.json)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the aggregates across the sweeps' tasks (rliable: IQM, performance "
                             "profiles, probability of improvement over Adam); required with more than one sweep")
    add_bootstrap_arguments(parser)
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> int:
    """The command, raising :class:`UsageError` for input that cannot run."""
    args = parse_args(argv)
    check_bootstrap_arguments(args)
    written = write_reports(args.sweep_dirs, args.out, reps=args.reps, seed=args.seed)
    for folder, paths in written.items():
        print(f"{'across tasks' if args.out is not None and folder == str(args.out) else 'report of'} {folder}:")
        for name, path in paths.items():
            print(f"  {path}{'/  (TensorBoard events)' if name == 'aggregate' else ''}")
    for sweep_dir in args.sweep_dirs:
        print(f"see the dashboard: tensorboard --logdir {sweep_dir}, then {DASHBOARD} (Custom Scalars tab, "
              f"smoothing off; untick 'Ignore outliers in chart scaling' to see every point)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command; input that cannot run is one line on stderr and exit code 2."""
    return exit_on_usage_error(run, argv)
