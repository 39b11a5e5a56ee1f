"""The verdict matrix (``verdict.md``, ``verdict.csv``, ``verdict_alpha.csv``): per condition, is each variant robust
to b0 where Adam is not? Generated from the numbers, by rules stated here and at the top of ``verdict.md``.

Definitions
-----------
*Condition.* A sweep with ``conditions:`` names every variant ``<condition>/<variant>``
(:func:`rl_adaloss.sweep.with_conditions`); each condition of each env is judged on its own. A sweep without
conditions has one condition, :data:`~rl_adaloss.report.runs.NO_CONDITION` (``-``).

*Cell.* One env x condition x variant x b0. Its numbers are the **mean** over seeds (whatever statistic summary.md
uses) of the final eval return and of the AUC (the mean eval return over training), each with a 95% percentile
bootstrap CI over seeds (:func:`~rl_adaloss.report.stats.bootstrap_ci`; the CI says which bootstrap computed it).
Runs are scored as everywhere in the report: a diverged run counts as its minimum eval return
(:func:`~rl_adaloss.report.aggregation.score_curve`), and the AUC is
:func:`~rl_adaloss.report.aggregation.area_under_curve` on the env's common step axis. Fewer than 2 seeds: no CI.

*First step.* The rule's own first step from its own b0 (``initial_step(eta, b0)``: ``eta/sqrt(b0)`` for the
Algorithm-2 rules, ``eta/b0`` for the Algorithm-1 rules, which the sweep starts from ``sqrt(b0)``), and for torch's
Adam its ``lr = eta/sqrt(b0)``: under the sweep's pairing every rule's first step at a grid b0 is ``eta/sqrt(b0)``.

*Tuned Adam.* In each condition, the cell with the highest mean final return of the condition's Adam-rule variant
(the first one in the sweep's order, if there are several).

*Matches tuned Adam.* A cell matches when its CI's upper bound is at least tuned Adam's CI lower bound: the data do
not show it worse. Where either has no CI (a single seed), the point estimates decide (mean >= tuned Adam's mean)
and the row says so: that is no evidence. A b0 without usable runs does not match. Tuned Adam matches itself.

*Verdict* of a non-Adam variant, the first of these that applies:

1. :data:`ROBUST`: it matches at every b0 whose first step is at least tuned Adam's (b0 <= tuned Adam's b0), and
   Adam itself fails at one of them at least: otherwise the grid does not test the large-step side.
2. :data:`WIDER`: it matches at more of the grid's b0 values than Adam does.
3. :data:`WORSE`: at fewer.
4. :data:`NO_BETTER`: at as many.

Only the large-step side can show robustness: a loss-driven step ``eta/sqrt(b_t)`` only shrinks from its first one,
so from a too-small first step AdamLoss cannot recover, and failing there is expected, not evidence against it.

*≡ Adam where Adam fails.* For a loss-driven variant: True where its cell at every b0 at which Adam fails was flagged
``adam_equivalent`` (accumulator growth under 10% of its start in both networks,
:mod:`~rl_adaloss.report.diagnostics`): there it took Adam's steps, so its result says nothing about the mechanism.
None where Adam fails nowhere or a growth is unknown.

*Sensitivity to alpha.* Variants of one condition whose specs are equal but for ``alpha`` (e.g.
``study_pendulum_alpha``) form a family; per family and b0, each variant's mean final return [CI] and AUC [CI], and
the spread: max - min of the variants' mean final returns. Compare it with the matrix's spread over b0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rl_adaloss.report.aggregation import Group, Report, area_under_curve, score_curve
from rl_adaloss.report.diagnostics import ADAM_EQUIVALENT_BELOW, accumulator
from rl_adaloss.report.runs import NO_CONDITION, rule_class, split_variant
from rl_adaloss.report.stats import DEFAULT_REPS, bootstrap_ci
from rl_adaloss.report.text import REFERENCE_RULE, table_csv

ROBUST = "robust: matches tuned Adam at every first step ≥ tuned Adam's step"
WIDER = "wider range than Adam"
NO_BETTER = "no better than Adam"
WORSE = "worse than Adam"
REFERENCE = "reference: tuned Adam"
NO_REFERENCE = "no Adam variant with data in this condition: nothing to compare with"
NO_DATA = "no usable run"


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its 95% CI (NaN bounds: no CI)."""

    mean: float
    low: float = math.nan
    high: float = math.nan

    @property
    def has_ci(self) -> bool:
        return not math.isnan(self.low)

    def text(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        return f"{self.mean:.1f} [{self.low:.1f}, {self.high:.1f}]" if self.has_ci else f"{self.mean:.1f} (no CI)"


NO_INTERVAL = Interval(math.nan)


class MeanCI:
    """Means over seeds with 95% bootstrap CIs, from the bootstrap asked for; where rliable fails once, numpy
    computes the rest (and :attr:`fallback` says why)."""

    def __init__(self, reps: int, seed: int, bootstrap: str) -> None:
        self.reps, self.seed, self.bootstrap, self.fallback = reps, seed, bootstrap, ""
        self.used: set[str] = set()  #: the bootstraps that computed a CI

    def __call__(self, values: list[float]) -> Interval:
        values = np.asarray(values, dtype=float)
        if not len(values):
            return NO_INTERVAL
        if len(values) < 2:  # resampling one run gives a zero-width interval: no CI, not a sure one
            return Interval(float(values[0]))
        estimate = bootstrap_ci(values, "mean", self.reps, self.seed, self.bootstrap)
        if estimate.fallback and not self.fallback:
            self.bootstrap, self.fallback = "numpy", estimate.fallback
        self.used.add(estimate.bootstrap)
        return Interval(float(np.mean(values)), float(estimate.low[0]), float(estimate.high[0]))


@dataclass
class Cell:
    """One env x condition x variant x b0, its means with CIs, and whether it matches tuned Adam."""

    env: str
    condition: str
    variant: str  #: the sweep's name, ``<condition>/<variant>``
    name: str  #: the variant's name within its condition
    schedule: str
    b0: float
    b0_label: str
    first_step: float
    n_used: int
    final: Interval
    auc: Interval
    actor_growth: float
    critic_growth: float
    adam_equivalent: bool | None
    matches: bool = False


def first_step(report: Report, group: Group) -> float:
    """The cell's first step size: the rule's ``initial_step(eta, b0)`` from its own (actor) b0 where the rule
    defines one and the runs know their b0, else ``eta/sqrt(b0)`` (torch's Adam: its lr)."""
    rule = rule_class(group.schedule)
    b0s = [run.actor_b0 for run in group.runs if math.isfinite(run.actor_b0)]
    if hasattr(rule, "initial_step") and b0s:
        return float(rule.initial_step(report.variant_eta(group.optimizer), b0s[0]))
    return report.initial_step(group.b0, group.optimizer)


def cells(report: Report, mean_ci: MeanCI) -> list[Cell]:
    """Every cell of ``report`` with its mean final return and AUC, each with its CI."""
    result = []
    for group in report.groups:
        used, grid = group.used, report.grids[group.env]
        condition, name = split_variant(group.optimizer)
        finals = [run.final for run in used]
        aucs = [area_under_curve(score_curve(run, grid), grid) for run in used]
        result.append(Cell(group.env, condition, group.optimizer, name, group.schedule, group.b0,
                           report.b0_label(group.b0), first_step(report, group), len(used), mean_ci(finals),
                           mean_ci(aucs), group.actor_growth, group.critic_growth, group.adam_equivalent))
    return result


def matches(cell: Cell, reference: Cell) -> bool:
    """Not significantly worse than ``reference``: CI upper bound >= its CI lower bound; without CIs, mean >= its
    mean."""
    if not cell.n_used:
        return False
    if cell.final.has_ci and reference.final.has_ci:
        return cell.final.high >= reference.final.low
    return cell.final.mean >= reference.final.mean


@dataclass
class Row:
    """One variant of one condition: where it matches tuned Adam, and the verdict."""

    env: str
    condition: str
    variant: str
    name: str
    schedule: str
    cells: list[Cell]  #: the variant's cells, by b0
    n_b0: int  #: the grid's b0 values
    reference: Cell | None  #: tuned Adam
    adam: list[Cell]  #: the condition's Adam cells, by b0
    verdict: str = ""
    adam_equivalent: bool | None = None  #: ≡ Adam at every b0 where Adam fails
    point_estimates: bool = False  #: some comparison had no CI

    @property
    def matched(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.matches]

    @property
    def adam_matched(self) -> list[Cell]:
        return [cell for cell in self.adam if cell.matches]

    @property
    def worst(self) -> Cell | None:
        return _worst(self.cells)

    @property
    def adam_worst(self) -> Cell | None:
        return _worst(self.adam)

    @property
    def spread(self) -> float:
        """max - min over b0 of the mean final returns."""
        means = [cell.final.mean for cell in self.cells if cell.n_used]
        return max(means) - min(means) if means else math.nan

    def median_growth(self, role: str) -> float:
        values = [getattr(cell, f"{role}_growth") for cell in self.cells]
        values = [v for v in values if math.isfinite(v)]
        return float(np.median(values)) if values else math.nan

    @property
    def is_reference(self) -> bool:
        return self.reference is not None and self.variant == self.reference.variant


def _worst(cells_: list[Cell]) -> Cell | None:
    return min((cell for cell in cells_ if cell.n_used), key=lambda cell: cell.final.mean, default=None)


def _ordered(values) -> list:
    return list(dict.fromkeys(values))


def judge(row: Row) -> str:
    """The row's verdict, by the rules of the module docstring."""
    if row.reference is None:
        return NO_REFERENCE
    if row.is_reference:
        return REFERENCE
    if not any(cell.n_used for cell in row.cells):
        return NO_DATA
    mine = {cell.b0: cell.matches for cell in row.cells}
    adam = {cell.b0: cell.matches for cell in row.adam}
    large = [cell.b0 for cell in row.adam if cell.b0 <= row.reference.b0]  # first step >= tuned Adam's
    if all(mine.get(b0, False) for b0 in large) and not all(adam.get(b0, False) for b0 in large):
        return ROBUST
    n_mine, n_adam = len(row.matched), len(row.adam_matched)
    return WIDER if n_mine > n_adam else WORSE if n_mine < n_adam else NO_BETTER


def equivalent_where_adam_fails(row: Row) -> bool | None:
    """Whether the variant's cell was ≡ Adam at every b0 where Adam fails; None where the question does not arise
    (no loss-driven rule, Adam fails nowhere) or a growth is unknown."""
    kind = accumulator(row.schedule)
    if row.reference is None or kind is None or not kind.loss_driven:
        return None
    fails = [cell.b0 for cell in row.adam if not cell.matches]
    mine = {cell.b0: cell.adam_equivalent for cell in row.cells}
    flags = [mine.get(b0) for b0 in fails]
    if not flags or any(flag is None for flag in flags):
        return None
    return all(flags)


def verdict_rows(report: Report, all_cells: list[Cell]) -> list[Row]:
    """One row per env x condition x variant, Adam's own first in each condition; sets each cell's ``matches``."""
    rows = []
    for env, condition in _ordered((c.env, c.condition) for c in all_cells):
        mine = [c for c in all_cells if (c.env, c.condition) == (env, condition)]
        variants = _ordered(c.variant for c in mine)
        adam_name = next((c.variant for c in mine if c.schedule == REFERENCE_RULE), None)  # the first, in sweep order
        adam = sorted((c for c in mine if c.variant == adam_name), key=lambda c: c.b0)
        reference = max((c for c in adam if c.n_used), key=lambda c: c.final.mean, default=None)
        for cell in mine:
            cell.matches = reference is not None and matches(cell, reference)
        for variant in ([adam_name] if adam_name else []) + [v for v in variants if v != adam_name]:
            own = sorted((c for c in mine if c.variant == variant), key=lambda c: c.b0)
            row = Row(env, condition, variant, own[0].name, own[0].schedule, own, len(report.b0s), reference, adam)
            row.verdict = judge(row)
            row.adam_equivalent = equivalent_where_adam_fails(row)
            row.point_estimates = reference is not None and any(
                c.n_used and not (c.final.has_ci and reference.final.has_ci) for c in own + adam)
            rows.append(row)
    return rows


# -- sensitivity to alpha --------------------------------------------------------------------------------------------

@dataclass
class AlphaFamily:
    """Variants of one env and condition whose specs are equal but for ``alpha``, at one b0."""

    env: str
    condition: str
    label: str  #: the shared spec, e.g. "adamloss, layout joint"
    b0: float
    cells: list[tuple[Any, Cell]] = field(default_factory=list)  #: (alpha, cell), alpha ascending

    @property
    def spread(self) -> float:
        means = [cell.final.mean for _, cell in self.cells if cell.n_used]
        return max(means) - min(means) if len(means) >= 2 else math.nan


def _alpha_key(alpha: Any) -> tuple[int, float]:
    try:
        return (1, float(alpha))
    except (TypeError, ValueError):
        return (0, 0.0)  # the base config's alpha first


def alpha_families(report: Report, all_cells: list[Cell]) -> list[AlphaFamily]:
    """Every family of variants that differ only in ``alpha`` (at least two alpha values), per b0."""
    specs = report.sweep.get("optimizers") or {}
    by_spec: dict[tuple, list[str]] = {}
    for variant in _ordered(c.variant for c in all_cells):
        spec = specs.get(variant) or {}
        rest = {k: v for k, v in spec.items() if k != "alpha"}
        by_spec.setdefault((split_variant(variant)[0], json.dumps(rest, sort_keys=True, default=str)), []).append(
            variant)
    families = []
    for variants in by_spec.values():
        alphas = {variant: (specs.get(variant) or {}).get("alpha") for variant in variants}
        if len({str(a) for a in alphas.values()}) < 2:
            continue
        spec = specs.get(variants[0]) or {}
        label = spec.get("name", "?") + (f", layout {spec['layout']}" if spec.get("layout") else "")
        for env, b0 in _ordered((c.env, c.b0) for c in all_cells if c.variant in alphas):
            members = [(alphas[c.variant], c) for c in all_cells if c.variant in alphas and (c.env, c.b0) == (env, b0)]
            members.sort(key=lambda member: _alpha_key(member[0]))
            families.append(AlphaFamily(env, members[0][1].condition, label, b0, members))
    return families


# -- the texts -------------------------------------------------------------------------------------------------------

VERDICT_COLUMNS = [
    "env", "condition", "variant", "rule", "verdict", "reference_b0", "reference_first_step",
    "reference_final_mean", "reference_final_ci_low", "reference_final_ci_high", "matching_first_steps",
    "n_matched", "n_adam_matched", "n_b0", "worst_b0", "worst_final_mean", "worst_final_ci_low",
    "worst_final_ci_high", "adam_worst_b0", "adam_worst_final_mean", "adam_worst_final_ci_low",
    "adam_worst_final_ci_high", "spread_over_b0", "median_actor_growth_over_b0", "median_critic_growth_over_b0",
    "adam_equivalent_where_adam_fails", "evidence",
]
ALPHA_COLUMNS = [
    "env", "condition", "family", "b0", "first_step", "variant", "alpha", "n_used", "final_mean", "final_ci_low",
    "final_ci_high", "auc_mean", "auc_ci_low", "auc_ci_high", "spread_over_alpha",
]


def _steps(cells_: list[Cell]) -> str:
    return ", ".join(f"{cell.first_step:.3g}" for cell in cells_)


def _interval_fields(prefix: str, cell: Cell | None) -> dict[str, Any]:
    interval = cell.final if cell else NO_INTERVAL
    return {f"{prefix}_b0": cell.b0 if cell else "", f"{prefix}_final_mean": interval.mean,
            f"{prefix}_final_ci_low": interval.low, f"{prefix}_final_ci_high": interval.high}


def _flag_value(flag: bool | None) -> Any:
    return "" if flag is None else flag


def verdict_csv_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """``verdict.csv``: one row per env x condition x variant, keyed by :data:`VERDICT_COLUMNS`."""
    result = []
    for row in rows:
        ref = row.reference
        line = dict(env=row.env, condition=row.condition, variant=row.name, rule=row.schedule, verdict=row.verdict,
                    reference_first_step=ref.first_step if ref else math.nan,
                    matching_first_steps="; ".join(f"{c.first_step:.6g}" for c in row.matched),
                    n_matched=len(row.matched), n_adam_matched=len(row.adam_matched), n_b0=row.n_b0,
                    spread_over_b0=row.spread, median_actor_growth_over_b0=row.median_growth("actor"),
                    median_critic_growth_over_b0=row.median_growth("critic"),
                    adam_equivalent_where_adam_fails=_flag_value(row.adam_equivalent),
                    evidence="point estimates" if row.point_estimates else "95% CIs")
        line.update(_interval_fields("reference", ref))
        line.update(_interval_fields("worst", row.worst))
        line.update(_interval_fields("adam_worst", row.adam_worst))
        result.append(line)
    return result


def alpha_csv_rows(families: list[AlphaFamily]) -> list[dict[str, Any]]:
    """``verdict_alpha.csv``: one row per family x b0 x alpha, keyed by :data:`ALPHA_COLUMNS`."""
    return [dict(env=f.env, condition=f.condition, family=f.label, b0=f.b0, first_step=cell.first_step,
                 variant=cell.name, alpha="" if alpha is None else alpha, n_used=cell.n_used,
                 final_mean=cell.final.mean, final_ci_low=cell.final.low, final_ci_high=cell.final.high,
                 auc_mean=cell.auc.mean, auc_ci_low=cell.auc.low, auc_ci_high=cell.auc.high,
                 spread_over_alpha=f.spread)
            for f in families for alpha, cell in f.cells]


def _num(value: float, digits: str = ".1f") -> str:
    return "n/a" if math.isnan(value) else format(value, digits)


def _worst_text(cell: Cell | None) -> str:
    return "n/a" if cell is None else f"{cell.final.text()} at first step {cell.first_step:.3g}"


def _equivalent_text(flag: bool | None) -> str:
    return "" if flag is None else "yes: AdamLoss ≡ Adam there" if flag else "no"


def how_to_read(report: Report, mean_ci: MeanCI) -> str:
    """The paragraph at the top of verdict.md."""
    if mean_ci.used == {"rliable"}:
        how = "rliable's percentile bootstrap"
    elif mean_ci.used:
        how = "a percentile bootstrap (numpy" + (f"; rliable could not run: {mean_ci.fallback})" if mean_ci.fallback
                                                 else ")")
    else:
        how = "a percentile bootstrap"
    seeds = len(report.sweep.get("seeds") or [])
    caveat = (" With a single seed per cell there are no CIs: point estimates decide every match, which is no "
              "evidence." if seeds == 1 else "")
    return (f"How to read this: each row asks whether a variant trains as well as **tuned Adam** (the Adam cell with "
            f"the highest mean final eval return in the same condition) from the grid's first steps η/√b0. A cell "
            f"*matches tuned Adam* when the upper end of the 95% CI of its mean final return reaches tuned Adam's "
            f"lower end: the data do not show it worse. The verdict is *robust* when a variant matches at every first "
            f"step at least as large as tuned Adam's while Adam itself fails at one of them (else the grid does not "
            f"test robustness); otherwise *wider range than Adam*, *no better than Adam* or *worse than Adam*, by how "
            f"many of the {len(report.b0s)} b0 values it matches at against Adam's count. Only the large-step side can "
            f"show robustness: AdamLoss's step η/√b_t can only shrink from its first one, so it cannot recover from a "
            f"too-small first step, and failing there is expected, not evidence against it. \"≡ Adam where Adam "
            f"fails: yes\" means the accumulator grew by less than {ADAM_EQUIVALENT_BELOW:.0%} of its start at every "
            f"b0 where Adam fails: there AdamLoss took Adam's steps, and its result says nothing about its mechanism. "
            f"Means over seeds (a diverged run counts as its minimum eval return), CIs from {how} over seeds, "
            f"{mean_ci.reps} resamples.{caveat}")


def _condition_line(condition_rows: list[Row]) -> str:
    first = condition_rows[0]
    where = f"{first.env}, {first.condition}" if first.condition != NO_CONDITION else first.env
    ref = first.reference
    if ref is None:
        return f"- {where}: {NO_REFERENCE}."
    by_verdict: dict[str, list[str]] = {}
    for row in condition_rows:
        if not row.is_reference:
            by_verdict.setdefault(row.verdict.split(":")[0], []).append(row.name)
    verdicts = "; ".join(f"{verdict}: {', '.join(names)}" for verdict, names in by_verdict.items())
    return (f"- {where}: tuned Adam is {ref.name} at b0={ref.b0_label} (first step {ref.first_step:.3g}, mean final "
            f"{ref.final.text()}), matched at {len(first.adam_matched)} of {first.n_b0} b0 values by Adam"
            + (f"; {verdicts}" if verdicts else "") + ".")


def verdict_markdown(report: Report, rows: list[Row], all_cells: list[Cell], families: list[AlphaFamily],
                     mean_ci: MeanCI) -> str:
    """``verdict.md``: how to read it, one line per condition, the matrix, its cells, and the sensitivity to
    alpha."""
    several_envs = len(report.envs) > 1
    lines = [f"# Verdict: is AdamLoss robust to b0? ({report.sweep.get('name', '?')})", "",
             how_to_read(report, mean_ci), "", "## Per condition", ""]
    for key in _ordered((row.env, row.condition) for row in rows):
        lines.append(_condition_line([row for row in rows if (row.env, row.condition) == key]))
    header = (["env"] if several_envs else []) + [
        "condition", "variant", "rule", "verdict", "matches tuned Adam at first steps", "b0 values matched (Adam)",
        "worst b0: mean final [95% CI]", "Adam's worst b0", "spread over b0", "median growth / b0 (actor, critic)",
        "≡ Adam where Adam fails"]
    lines += ["", "## The matrix", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        verdict = row.verdict
        if row.is_reference:
            verdict = f"{REFERENCE} (b0={row.reference.b0_label})"
        if row.point_estimates and row.reference is not None:
            verdict += " (point estimates: no CI)"
        growth = (f"{_num(row.median_growth('actor'), '.3g')}, {_num(row.median_growth('critic'), '.3g')}"
                  if accumulator(row.schedule) is not None else "")
        values = ([row.env] if several_envs else []) + [
            row.condition, row.name, row.schedule, verdict,
            "n/a" if row.reference is None else _steps(row.matched) or "none",
            "n/a" if row.reference is None else f"{len(row.matched)}/{row.n_b0} ({len(row.adam_matched)}/{row.n_b0})",
            _worst_text(row.worst),
            _worst_text(row.adam_worst), _num(row.spread), growth, _equivalent_text(row.adam_equivalent)]
        lines.append("| " + " | ".join(values) + " |")
    header = (["env"] if several_envs else []) + [
        "condition", "variant", "b0", "first step", "seeds used", "mean final [95% CI]", "mean AUC [95% CI]",
        "matches tuned Adam", "growth / b0 (actor, critic)"]
    lines += ["", "## Cells", "", "AUC: the mean eval return over training (area under the eval curve over the steps "
              "it spans).", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        for cell in row.cells:
            growth = (f"{_num(cell.actor_growth, '.3g')}, {_num(cell.critic_growth, '.3g')}"
                      if accumulator(cell.schedule) is not None else "")
            match = "" if row.reference is None else "yes" if cell.matches else "no"
            if row.reference is not None and cell is row.reference:
                match = "tuned Adam"
            values = ([cell.env] if several_envs else []) + [
                cell.condition, cell.name, cell.b0_label, f"{cell.first_step:.3g}", str(cell.n_used),
                cell.final.text(), cell.auc.text(), match, growth]
            lines.append("| " + " | ".join(values) + " |")
    lines += ["", "## Sensitivity to alpha", ""]
    if not families:
        lines.append("No variants of this sweep differ only in alpha.")
    else:
        lines += ["Variants equal but for alpha, per b0: mean final return [95% CI] per alpha, and the spread (max − "
                  "min of the means) across alpha. Compare it with the spread over b0 in the matrix (of Adam, where "
                  "the condition has one).", ""]
        header = (["env"] if several_envs else []) + [
            "condition", "family", "b0 (first step)", "alpha: mean final [95% CI]", "spread across alpha"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for f in families:
            first = f.cells[0][1]
            per_alpha = "; ".join(f"{'base' if alpha is None else alpha}: {cell.final.text()}"
                                  for alpha, cell in f.cells)
            values = ([f.env] if several_envs else []) + [
                f.condition, f.label, f"{first.b0_label} ({first.first_step:.3g})", per_alpha, _num(f.spread)]
            lines.append("| " + " | ".join(values) + " |")
    lines += ["", "Numbers: verdict.csv (the matrix), verdict_alpha.csv (the alpha table); per cell with the report's "
              "own statistic: summary.csv.", ""]
    return "\n".join(lines)


@dataclass
class Verdict:
    """The verdict of one sweep, ready to write."""

    rows: list[Row]
    cells: list[Cell]
    families: list[AlphaFamily]
    markdown: str


def verdict(report: Report, reps: int = DEFAULT_REPS, seed: int = 0) -> Verdict:
    """The verdict matrix of ``report``, its cells, its alpha families and ``verdict.md``; the CIs from the
    report's bootstrap."""
    mean_ci = MeanCI(reps, seed, report.bootstrap)
    all_cells = cells(report, mean_ci)
    rows = verdict_rows(report, all_cells)
    families = alpha_families(report, all_cells)
    return Verdict(rows, all_cells, families, verdict_markdown(report, rows, all_cells, families, mean_ci))


def verdict_csv(result: Verdict) -> str:
    return table_csv(VERDICT_COLUMNS, verdict_csv_rows(result.rows))


def verdict_alpha_csv(result: Verdict) -> str:
    return table_csv(ALPHA_COLUMNS, alpha_csv_rows(result.families))
