"""The report's text: ``summary.csv``, and ``summary.md`` with its paragraph generated from the numbers.

The paragraph compares challenger variants against reference variants at each b0. By default the reference is the
sweep's Adam (the variants whose rule is ``adam``) and every other variant is a challenger; callers may name both.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from rl_adaloss.errors import UsageError
from rl_adaloss.records import MISSING_STATUSES
from rl_adaloss.report.aggregation import Group, Report
from rl_adaloss.report.diagnostics import ADAM_EQUIVALENT_BELOW, DIAGNOSTICS_COLUMNS, accumulator, diagnostics_rows
from rl_adaloss.report.runs import split_variant

SUMMARY_COLUMNS = [
    "env", "optimizer", "schedule", "b0", "initial_step", "n_seeds", "n_used", "n_finished", "n_diverged",
    "n_failed", "n_interrupted", "n_not_run", "statistic", "final_iqm", "final_mean", "final_ci_low",
    "final_ci_high", "auc_iqm", "auc_mean", "auc_ci_low", "auc_ci_high", "actor_growth_over_b0",
    "critic_growth_over_b0", "adam_equivalent",
]
#: The rule whose variants are the default reference of the comparison.
REFERENCE_RULE = "adam"


# -- summary.csv -----------------------------------------------------------------------------------------------------

def summary_rows(report: Report) -> list[dict[str, Any]]:
    """One row per env x optimizer x b0, keyed by :data:`SUMMARY_COLUMNS`."""
    rows = []
    for g in report.groups:
        rows.append(dict(
            env=g.env, optimizer=g.optimizer, schedule=g.schedule, b0=g.b0,
            initial_step=report.initial_step(g.b0, g.optimizer),
            n_seeds=len(g.runs), n_used=len(g.used), n_finished=g.count("finished"), n_diverged=g.n_diverged,
            n_failed=g.count("failed"), n_interrupted=g.count("interrupted"), n_not_run=g.count("not run"),
            statistic=g.statistic, final_iqm=g.final["iqm"], final_mean=g.final["mean"],
            final_ci_low=g.final["low"], final_ci_high=g.final["high"], auc_iqm=g.auc["iqm"],
            auc_mean=g.auc["mean"], auc_ci_low=g.auc["low"], auc_ci_high=g.auc["high"],
            actor_growth_over_b0=g.actor_growth, critic_growth_over_b0=g.critic_growth,
            adam_equivalent="" if g.adam_equivalent is None else g.adam_equivalent))
    return rows


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def table_csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """``rows`` as CSV text under ``columns``: NaN as an empty cell, other floats with 6 significant digits."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return text.getvalue()


def summary_csv(report: Report) -> str:
    return table_csv(SUMMARY_COLUMNS, summary_rows(report))


def diagnostics_csv(report: Report) -> str:
    """``diagnostics.csv``: per run with data, each network's b0 and its accumulator's growth."""
    return table_csv(DIAGNOSTICS_COLUMNS, diagnostics_rows(report.runs))


# -- the verdict paragraph -------------------------------------------------------------------------------------------

def _num(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def _ci(stats: dict[str, float]) -> str:
    return "n/a" if math.isnan(stats.get("low", math.nan)) else f"[{stats['low']:.1f}, {stats['high']:.1f}]"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


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
    text += f", {_seeds(len(group.used))}"
    if group.n_diverged:
        text += f", {group.n_diverged} diverged"
    return text


def _phrase(mine: Group, theirs: Group) -> str:
    """One challenger against one reference at one b0, as a clause."""
    name, ref_name = mine.optimizer, theirs.optimizer
    details = f"({_describe(mine)} vs {_describe(theirs)})"
    no_evidence = "there is no CI, so this is no evidence either way"
    return {
        "beat": f"{name} beat {ref_name} {details}: the 95% CIs do not overlap",
        "lost": f"{name} lost to {ref_name} {details}: the 95% CIs do not overlap",
        "overlap": f"{name} and {ref_name} are not distinguishable {details}: the 95% CIs overlap",
        "one-seed-higher": f"{name} ended higher than {ref_name} {details}, but with a single seed {no_evidence}",
        "one-seed-lower": f"{name} ended lower than {ref_name} {details}, but with a single seed {no_evidence}",
        "one-seed-equal": f"{name} and {ref_name} ended equal {details}, on a single seed",
        "no-data": f"{name} vs {ref_name} cannot be compared: {name if not mine.used else ref_name} has no usable run",
    }[compare(mine, theirs)]


def default_comparison(report: Report) -> tuple[list[str], list[str]]:
    """The challengers and references compared when the caller names none: the variants whose rule is
    :data:`REFERENCE_RULE` are the references (else the sweep's first variant), every other one a challenger."""
    rules = {group.optimizer: group.schedule for group in report.groups}
    references = [name for name in report.optimizers if rules.get(name) == REFERENCE_RULE] or report.optimizers[:1]
    return [name for name in report.optimizers if name not in references], references


def _check_variants(report: Report, names: Sequence[str], role: str) -> list[str]:
    unknown = [name for name in names if name not in report.optimizers]
    if unknown:
        raise UsageError(f"{role}: no variant {', '.join(unknown)} in this sweep; it has "
                         f"{', '.join(report.optimizers)}")
    return list(names)


def verdicts(report: Report, challengers: Sequence[str] | None = None,
             references: Sequence[str] | None = None) -> list[str]:
    """For each env and b0, a sentence comparing every challenger variant with every reference variant
    (by default :func:`default_comparison`; where the sweep has conditions, the default pairs each challenger only
    with the references of its own condition: ``raw/adamloss`` with ``raw/adam``)."""
    same_condition = references is None
    default_challengers, default_references = default_comparison(report)
    challengers = _check_variants(report, default_challengers if challengers is None else challengers, "challenger")
    references = _check_variants(report, default_references if references is None else references, "reference")
    if not challengers or not references:
        return [f"There is nothing to compare: no {'challenger' if not challengers else 'reference'} variant "
                f"(the sweep has {', '.join(report.optimizers)})."]
    versus = f"{'/'.join(challengers)}-vs-{'/'.join(references)}"
    sentences = []
    for env in report.envs:
        present = {g.optimizer for g in report.groups if g.env == env}
        absent = [n for n in challengers + references if n not in present]
        if not any(n in present for n in challengers) or not any(n in present for n in references):
            sentences.append(f"{env}: the sweep has no {' or '.join(absent)} run, so there is no {versus} comparison.")
            continue
        for b0 in report.b0s:
            parts = []
            for name in challengers:
                for ref_name in references:
                    mine, theirs = report.group(env, name, b0), report.group(env, ref_name, b0)
                    if same_condition and split_variant(name)[0] != split_variant(ref_name)[0]:
                        continue
                    if mine is not None and theirs is not None and name != ref_name:
                        parts.append(_phrase(mine, theirs))
            if parts:
                env_text = f"{env}, " if len(report.envs) > 1 else ""
                sentences.append(f"At {env_text}b0={report.b0_label(b0)} ({report.first_step_text(b0)}): "
                                 + "; ".join(parts) + ".")
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
            text += (f". This compares point estimates from as few as {_seeds(fewest)} per b0, so it is "
                     f"indicative, not a test")
        sentences.append(text + ".")
    return sentences


# -- could this sweep have shown the mechanism? ---------------------------------------------------------------------

def _growth(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def _flag(group: Group) -> str:
    """The ``≡`` column of summary.md: "yes (≡ Adam)", "no", or blank where the question does not arise."""
    if group.adam_equivalent is None:
        return ""
    return f"yes (≡ {accumulator(group.schedule).counterpart})" if group.adam_equivalent else "no"


def mechanism_section(report: Report) -> list[str]:
    """``summary.md``'s diagnostic: per loss-driven cell, how much its accumulators grew against where they
    started, which cells were their fixed-step counterpart ("≡ Adam here"), and whether the sweep could have shown
    the mechanism at all."""
    lines = ["## Could this sweep have shown the mechanism?", ""]
    kinds = {g.schedule: accumulator(g.schedule) for g in report.groups}
    loss_driven = [g for g in report.groups if kinds[g.schedule] is not None and kinds[g.schedule].loss_driven]
    if not loss_driven:
        return lines + ["No variant of this sweep has a loss-driven accumulator: there is no mechanism to show.", ""]
    limit = f"{ADAM_EQUIVALENT_BELOW:.0%}"
    rules = {g.schedule: kinds[g.schedule] for g in loss_driven}
    formulas = "; ".join(f"{kind.formula} for {rule}" for rule, kind in rules.items())
    counterparts = " or ".join(dict.fromkeys(kind.counterpart for kind in rules.values()))
    lines.append(f"A loss-driven rule differs from its fixed-step counterpart ({counterparts}) only through its "
                 f"accumulator, which grows by α·Σ|f − c|. Growth below is the median over seeds of (accumulator at "
                 f"the last evaluation − its start) / its start ({formulas}); the step size shrinks by "
                 f"1/√(1 + growth). A cell whose accumulators grew by less than {limit} of their start in both "
                 f"networks took steps within 5% of a constant one: its rule *was* {counterparts} there, and its "
                 f"returns say nothing about the mechanism. Per run: diagnostics.csv; over training: "
                 f"accumulator_growth.png.")
    lines.append("")

    def cell(g: Group) -> str:
        env = f"{g.env} " if len(report.envs) > 1 else ""
        return (f"{env}{g.optimizer} b0={report.b0_label(g.b0)} (actor {_growth(g.actor_growth)}, critic "
                f"{_growth(g.critic_growth)})")

    equivalent = [g for g in loss_driven if g.adam_equivalent]
    for name in dict.fromkeys(kinds[g.schedule].counterpart for g in equivalent):
        mine = [g for g in equivalent if kinds[g.schedule].counterpart == name]
        lines.append(f"≡ {name} here (growth < {limit} in both networks): " + "; ".join(map(cell, mine)) + ".")
    moved = [g for g in loss_driven if g.adam_equivalent is False]
    if moved:
        lines.append(f"The accumulator grew by at least {limit} in: " + "; ".join(map(cell, moved)) + ".")
    unknown = [g for g in loss_driven if g.adam_equivalent is None]
    if unknown:
        lines.append("No growth could be measured (no usable run, or no b in evaluations.csv) for: "
                     + "; ".join(map(cell, unknown)) + ".")
    if equivalent and len(equivalent) == len(loss_driven):
        lines += ["", f"**Every loss-driven cell of this sweep was ≡ {counterparts}: the sweep could not have shown "
                      f"the paper's mechanism**, whatever its returns say. A smaller b0, a larger α or larger "
                      f"(unnormalised) losses would let the accumulator move."]
    return lines + [""]


# -- summary.md ------------------------------------------------------------------------------------------------------

def _overview(report: Report) -> list[str]:
    sweep, seeds = report.sweep, report.sweep.get("seeds") or []
    counts: dict[str, int] = {}
    for run in report.runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    return [f"# Sweep report: {sweep.get('name', '?')}", "",
            f"{len(report.runs)} grid points: {', '.join(report.envs)}; optimizers {', '.join(report.optimizers)}; "
            f"b0 {', '.join(report.b0_label(b) for b in report.b0s)}; {_seeds(len(seeds))}; "
            f"{sweep.get('total_timesteps', '?')} env steps per run.",
            "Runs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + "."]


def _how_to_read(report: Report) -> str:
    n_seeds = len(report.sweep.get("seeds") or [])
    if report.bootstrap == "rliable":
        how = "rliable's percentile stratified bootstrap over seeds"
    else:
        how = "a percentile bootstrap over seeds computed with numpy"
        if report.fallback:
            how += f", because rliable could not run here ({report.fallback})"
    if n_seeds == 1:
        caveat = "; with a single seed per point there are no CIs at all, and no comparison here is evidence."
    elif n_seeds < 5:
        caveat = f"; with {n_seeds} seeds per point the CIs are wide and can miss the true value."
    else:
        caveat = "."
    return (f"How to read this: every number is the {report.statistic} over seeds of the final eval return"
            f"{' (the IQM: mean of the middle half)' if report.statistic == 'IQM' else ''}, with a 95% CI from {how}. "
            f"A diverged run is not dropped: from its last evaluation on it counts as its minimum eval return, which "
            f"is also its final return. Failed, interrupted and not-run points are left out of the numbers and listed "
            f"below. Overlapping CIs mean the data cannot tell the optimizers apart, not that they are equal{caveat}")


def _table(report: Report) -> list[str]:
    header = ["env", "optimizer", "b0", "first step", "seeds", "used", "diverged", "failed/interrupted/not run",
              "final IQM", "final mean", f"final 95% CI ({report.statistic})", f"AUC {report.statistic}",
              "AUC 95% CI", "actor growth / b0", "critic growth / b0", "≡ fixed step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in report.groups:
        cells = [g.env, g.optimizer, report.b0_label(g.b0), f"{report.initial_step(g.b0, g.optimizer):.3g}",
                 str(len(g.runs)), str(len(g.used)), str(g.n_diverged),
                 "/".join(str(g.count(s)) for s in MISSING_STATUSES), _num(g.final['iqm']), _num(g.final['mean']),
                 _ci(g.final),
                 _num(g.auc.get(g.statistic.lower(), math.nan)), _ci(g.auc), _growth(g.actor_growth),
                 _growth(g.critic_growth), _flag(g)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _left_out_and_diverged(report: Report) -> list[str]:
    lines = ["", "## Runs left out of the numbers", ""]
    left_out = [run for run in report.runs if not run.has_data]
    for run in left_out:
        why = run.reason or ("no evaluations" if run.status in ("finished", "diverged") else "")
        lines.append(f"- {run.env} {run.optimizer} b0={run.b0_label} seed={run.seed}: {run.status}"
                     + (f" ({why})" if why else ""))
    if not left_out:
        lines.append("None: every grid point is in the numbers.")
    diverged = [run for run in report.runs if run.status == "diverged"]
    if diverged:
        lines += ["", "## Diverged runs (in the numbers, at their minimum eval return)", ""]
    for run in diverged:
        at = f" at step {run.diverged_at}" if run.diverged_at is not None else ""
        lines.append(f"- {run.env} {run.optimizer} b0={run.b0_label} seed={run.seed}: diverged{at}"
                     + (f" ({run.reason})" if run.reason else ""))
    return lines


def summary_markdown(report: Report, challengers: Sequence[str] | None = None,
                     references: Sequence[str] | None = None) -> str:
    """``summary.md``: an overview, the generated paragraph, the table, and every run left out or diverged."""
    paragraph = verdicts(report, challengers, references) + spread_sentence(report)
    lines = _overview(report) + ["", "## What the numbers say", "", " ".join(paragraph), "", _how_to_read(report)]
    lines += ["", "## Final eval return and AUC (mean eval return over training)", ""] + _table(report)
    lines += [""] + mechanism_section(report)
    lines += _left_out_and_diverged(report)
    lines += ["", "Figures: reward_curves.png, robustness.png, step_sizes.png, accumulator_growth.png, "
              "training_scores.png. TensorBoard: `tensorboard --logdir <this folder>`, Custom Scalars tab for the "
              "per-b0 dashboard.", ""]
    return "\n".join(lines)


# -- across tasks: across_tasks.csv and across_tasks.md ----------------------------------------------------------

ACROSS_COLUMNS = ["b0", "optimizer", "n_tasks", "runs_per_task", "runs_dropped", "iqm", "iqm_ci_low", "iqm_ci_high",
                  "reference", "probability_of_improvement", "poi_ci_low", "poi_ci_high"]
NORMALISATION = ("Each task's final eval returns are min-max normalised over all its runs with data (every "
                 "optimizer, every b0): 0 is the task's worst final return, 1 its best.")


def across_csv(result) -> str:
    """``across_tasks.csv``: per b0 and optimizer, the IQM of the normalised final return across tasks with its
    95% CI, and the probability of improvement over the reference with its CI."""
    rows = [dict(b0=c.b0, optimizer=c.optimizer, n_tasks=c.scores.shape[1], runs_per_task=c.scores.shape[0],
                 runs_dropped=c.dropped, iqm=c.iqm, iqm_ci_low=c.iqm_low, iqm_ci_high=c.iqm_high,
                 reference=c.reference, probability_of_improvement=c.poi, poi_ci_low=c.poi_low,
                 poi_ci_high=c.poi_high) for c in result.cells]
    return table_csv(ACROSS_COLUMNS, rows)


def _interval(point: float, low: float, high: float) -> str:
    return "n/a" if math.isnan(point) else f"{point:.2f} [{low:.2f}, {high:.2f}]"


def across_markdown(result) -> str:
    """``across_tasks.md``: the tasks, the normalisation, and per b0 each optimizer's IQM and probability of
    improvement over the reference, in words."""
    how = "rliable's stratified bootstrap" if result.bootstrap == "rliable" else "a numpy stratified bootstrap"
    if result.fallback:
        how += f" (rliable could not run here: {result.fallback})"
    lines = ["# Across tasks", "",
             f"Tasks: {', '.join(f'{t.name} (final return {t.low:.1f} .. {t.high:.1f})' for t in result.tasks)}.",
             "", NORMALISATION + f" Every CI is 95%, from {how} with {result.reps} resamples (the runs of each task "
             f"resampled separately). The IQM is over every run of every task; the probability of improvement "
             f"P(X > Y) is per task, averaged over tasks; 0.5 is no difference.", ""]
    if result.missing:
        lines += [f"Left out, because not every task has it: {', '.join(result.missing)}.", ""]
    dropped = sum(c.dropped for c in result.cells)
    if dropped:
        lines += [f"{dropped} runs with data were left out so that every task has as many runs per cell (each "
                  f"task keeps its first seeds).", ""]
    lines += ["| b0 | optimizer | IQM normalised final [95% CI] | P(better than reference) [95% CI] |",
              "|---|---|---|---|"]
    for c in result.cells:
        poi = f"vs {c.reference}: {_interval(c.poi, c.poi_low, c.poi_high)}" if c.reference else ""
        lines.append(f"| {result.b0_labels[c.b0]} | {c.optimizer} | {_interval(c.iqm, c.iqm_low, c.iqm_high)} | "
                     f"{poi} |")
    sentences = []
    for c in result.cells:
        if not c.reference or math.isnan(c.poi_low):
            continue
        if c.poi_low > 0.5:
            verdict = "is likely better than"
        elif c.poi_high < 0.5:
            verdict = "is likely worse than"
        else:
            verdict = "cannot be told apart from"
        sentences.append(f"at b0={result.b0_labels[c.b0]}, {c.optimizer} {verdict} {c.reference} "
                         f"(P = {_interval(c.poi, c.poi_low, c.poi_high)})")
    if sentences:
        lines += ["", "Across tasks, " + "; ".join(sentences) + "."]
    few = min((c.scores.shape[0] for c in result.cells), default=0)
    if few < 5:
        lines += ["", f"With as few as {few} run{'s' if few != 1 else ''} per task, these intervals are wide and "
                      f"can miss; they are no test."]
    lines += ["", "Figures: across_tasks_iqm.png, performance_profiles.png, probability_of_improvement.png.", ""]
    return "\n".join(lines)
