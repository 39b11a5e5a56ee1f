"""Loading a sweep for the report: every run record of ``sweep.json`` with its run's evaluations, the b0 of each
network from its ``config.yaml``, and its training episodes from the SB3 Monitor files in ``monitor/``."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rl_adaloss.records import FINAL_STATUSES, RunRecord, read_index

EVALUATION_COLUMNS = ("timesteps", "mean_reward", "actor_effective_lr", "critic_effective_lr", "actor_b", "critic_b")
ROLES = ("actor", "critic")
#: The condition of a sweep without ``conditions:``.
NO_CONDITION = "-"


def split_variant(name: str) -> tuple[str, str]:
    """A sweep's variant name as (condition, variant): ``<condition>/<variant>`` where the sweep has
    ``conditions:`` (:func:`rl_adaloss.sweep.with_conditions`), else (:data:`NO_CONDITION`, name)."""
    condition, slash, variant = name.partition("/")
    return (condition, variant) if slash else (NO_CONDITION, name)


def _no_data() -> np.ndarray:
    return np.zeros(0)


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single-bool ==
class Run(RunRecord):
    """One grid point's record, with its rule's name and its evaluations (empty where it has none)."""

    schedule: str = ""  #: the variant's optimizer rule (``adam``, ``adamloss``, ...)
    steps: np.ndarray = field(default_factory=_no_data)
    returns: np.ndarray = field(default_factory=_no_data)
    actor_lr: np.ndarray = field(default_factory=_no_data)
    critic_lr: np.ndarray = field(default_factory=_no_data)
    actor_b: np.ndarray = field(default_factory=_no_data)  #: the rule's ``b`` at each evaluation (NaN: none)
    critic_b: np.ndarray = field(default_factory=_no_data)
    actor_b0: float = math.nan  #: the rule's own b0 per network, from config.yaml (else the sweep's pairing)
    critic_b0: float = math.nan
    episode_steps: np.ndarray = field(default_factory=_no_data)  #: env step at each training episode's end
    episode_returns: np.ndarray = field(default_factory=_no_data)  #: its return, from monitor/*.csv

    @property
    def b0_label(self) -> str:
        """b0 as the sweep wrote it in the run's folder name (``b0=1e6``), else ``%g``."""
        match = re.search(r"(?:^|/)b0=([^/]+)", Path(self.run_dir).as_posix())
        return match.group(1) if match else f"{self.b0:g}"

    @property
    def has_data(self) -> bool:
        """Whether the run enters the numbers: finished or diverged, with at least one evaluation."""
        return self.status in FINAL_STATUSES and len(self.steps) > 0

    @property
    def final(self) -> float:
        """The run's score at the end of the budget: last evaluation, or for a diverged run its minimum."""
        return float(np.min(self.returns)) if self.status == "diverged" else float(self.returns[-1])


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_evaluations(path: Path) -> dict[str, np.ndarray]:
    """``evaluations.csv`` as arrays (empty ones if the file is missing), rows sorted by step, non-finite returns
    dropped; empty cells (the b columns of Adam) read as NaN."""
    if not path.is_file():
        return {name: _no_data() for name in EVALUATION_COLUMNS}
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if math.isfinite(_float(row.get("mean_reward")))]
    rows.sort(key=lambda row: _float(row.get("timesteps")))
    return {name: np.array([_float(row.get(name)) for row in rows], dtype=float) for name in EVALUATION_COLUMNS}


def rule_class(schedule: str) -> type | None:
    """The optimizer class of a rule name (``adamloss`` -> AdamLoss; ``adam`` -> torch's Adam); None if unknown."""
    from rl_adaloss.optim import OPTIMIZERS  # torch: imported when a sweep is read, not with the package

    return OPTIMIZERS.get(schedule)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) and number > 0 else math.nan


def network_b0s(config: dict[str, Any], paired: float) -> dict[str, float]:
    """The rule's own b0 of each network, from a run's resolved config: ``optimizer.b0``, overridden by
    ``optimizer.actor.b0`` / ``optimizer.critic.b0``; ``paired`` where the config names none."""
    section = config.get("optimizer") if isinstance(config.get("optimizer"), dict) else {}
    shared = _number(section.get("b0"))
    b0s = {}
    for role in ROLES:
        own = section.get(role) if isinstance(section.get(role), dict) else {}
        value = _number(own.get("b0"))
        b0s[role] = value if not math.isnan(value) else shared if not math.isnan(shared) else paired
    return b0s


def read_config(path: Path) -> dict[str, Any]:
    """A run's ``config.yaml`` as a dict; empty where it is missing or unreadable."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def read_monitor(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every training episode of the SB3 Monitor files in ``folder`` (``#{json}``, then ``r,l,t`` rows, one file
    per env): the env step at which each ended, and its return, sorted by step.

    The envs of a vector env step in lockstep, so an episode that ends after its env's ``k``-th step ends at about
    step ``k * n_envs`` of the run (``n_envs``: the number of files). A resumed run appends to its files.
    """
    files = sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []
    steps, returns = [], []
    for path in files:
        try:
            lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        except OSError:
            continue
        rows = [row for row in csv.DictReader(lines) if row.get("r") not in (None, "r")]
        lengths = np.array([_float(row.get("l")) for row in rows])
        rewards = np.array([_float(row.get("r")) for row in rows])
        ok = np.isfinite(lengths) & np.isfinite(rewards)
        steps.append(np.cumsum(np.where(ok, lengths, 0))[ok] * len(files))
        returns.append(rewards[ok])
    if not steps:
        return _no_data(), _no_data()
    steps_all, returns_all = np.concatenate(steps), np.concatenate(returns)
    order = np.argsort(steps_all, kind="stable")
    return steps_all[order], returns_all[order]


def load_run(record: RunRecord, sweep_dir: Path, schedule: str) -> Run:
    """``record`` with its evaluations, b0s and training episodes; only a run that ended has data that count."""
    if record.status not in FINAL_STATUSES:
        return Run(**record.to_json(), schedule=schedule)
    run_dir = Path(sweep_dir) / record.run_dir
    table = read_evaluations(run_dir / "evaluations.csv")
    rule = rule_class(schedule)
    paired = rule.b0_from_unsquared(record.b0) if hasattr(rule, "b0_from_unsquared") else record.b0
    b0s = network_b0s(read_config(run_dir / "config.yaml"), paired)
    episode_steps, episode_returns = read_monitor(run_dir / "monitor")
    return Run(**record.to_json(), schedule=schedule, steps=table["timesteps"], returns=table["mean_reward"],
               actor_lr=table["actor_effective_lr"], critic_lr=table["critic_effective_lr"],
               actor_b=table["actor_b"], critic_b=table["critic_b"], actor_b0=b0s["actor"], critic_b0=b0s["critic"],
               episode_steps=episode_steps, episode_returns=episode_returns)


def load_runs(sweep_dir: str | Path) -> tuple[dict[str, Any], list[Run]]:
    """The sweep config and every grid point of ``sweep.json``, with its run's data where there is any.

    Raises :class:`~rl_adaloss.errors.UsageError` where ``sweep_dir`` is not a readable sweep folder.
    """
    sweep, records = read_index(Path(sweep_dir))
    variants = sweep.get("optimizers") or {}
    return sweep, [load_run(record, sweep_dir, (variants.get(record.optimizer) or {}).get("name", record.optimizer))
                   for record in records]
