"""``run_batch(configs, run_dirs)``: train K configs as one batched engine, writing each run's files as
``rl_adaloss.train.run`` does (``config.yaml``, ``evaluations.csv``, ``result.json``).

The configs must describe members of one batch: the same env, PPO settings, networks, normalization, evaluation
schedule, budget and optimizer rule and layout; they may differ in ``seed`` and in the optimizer's ``lr``, ``b0``,
``alpha`` and ``c`` (also per network). Anything else is refused with a one-line :class:`UsageError`.

Not written (yet): TensorBoard events, ``monitor/`` CSVs, ``checkpoint.pkl`` (no resume), ``model.zip`` and
``vecnormalize.pkl``. ``wall_time_s`` in each ``result.json`` is the whole batch's wall time.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from rl_adaloss.batched.ppo import BatchedEvaluator, BatchedPPO, NormalizeSettings, PPOSettings
from rl_adaloss.errors import UsageError

__all__ = ["run_batch", "build_engine", "MEMBER_KEYS"]

#: Optimizer arguments that may differ between the members of a batch.
MEMBER_KEYS = ("lr", "b0", "alpha", "c")


def _shared_part(config: dict[str, Any]) -> dict[str, Any]:
    shared = copy.deepcopy(config)
    shared.pop("seed", None)
    optimizer = shared["optimizer"]
    for key in MEMBER_KEYS:
        optimizer.pop(key, None)
    for role in ("actor", "critic"):
        if isinstance(optimizer.get(role), dict):
            for key in MEMBER_KEYS:
                optimizer[role].pop(key, None)
            if not optimizer[role]:
                optimizer.pop(role)
    return shared


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    return None if a == b else where


def check_batch(configs: Sequence[dict[str, Any]]) -> None:
    """Refuse, in one line, configs that cannot be members of one batch or options the engine does not support."""
    if not configs:
        raise UsageError("run_batch: no configs")
    first = _shared_part(configs[0])
    for i, config in enumerate(configs[1:], start=1):
        key = _first_difference(first, _shared_part(config))
        if key:
            raise UsageError(f"{key}: members of a batch may differ only in seed and optimizer "
                             f"{'/'.join(MEMBER_KEYS)}; config {i} differs from config 0 here")
    for config in configs:
        if isinstance(config["optimizer"]["lr"], str):
            raise UsageError("optimizer.lr: schedules are not supported by the batched engine (use a number)")
    if configs[0]["device"] == "cuda" and not torch.cuda.is_available():
        raise UsageError("device: cuda requested but not available")


def build_engine(configs: Sequence[dict[str, Any]], force_loop_optimizer: bool = False) -> BatchedPPO:
    """The batched engine for these (resolved) configs."""
    check_batch(configs)
    base = configs[0]
    normalize = dict(base["normalize"])
    if normalize.get("gamma") is None:
        normalize["gamma"] = base["ppo"]["gamma"]
    layout = base["optimizer"]["layout"]
    roles = ["actor", "critic"] if layout == "separate" else ["joint"]
    kwargs: dict[str, list[dict[str, Any]]] = {role: [] for role in roles}
    for config in configs:
        spec = dict(config["optimizer"])
        spec.pop("name"), spec.pop("layout")
        over = {"actor": spec.pop("actor", None) or {}, "critic": spec.pop("critic", None) or {}}
        for role in roles:
            kwargs[role].append({**spec, **over.get(role, {})})
    device = "cpu" if base["device"] == "auto" else base["device"]
    return BatchedPPO(base["env"], [c["seed"] for c in configs], base["n_envs"], PPOSettings(**base["ppo"]),
                      dict(base["policy_kwargs"]), NormalizeSettings(**normalize), base["optimizer"]["name"], layout,
                      kwargs, total_timesteps=base["total_timesteps"], device=device,
                      force_loop_optimizer=force_loop_optimizer)


def run_batch(configs: Sequence[dict[str, Any]], run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Train the configs as one batch; write each member's run directory; return the ``result.json`` contents."""
    from rl_adaloss.config import dump_config
    from rl_adaloss.io import write_atomic, write_json_atomic
    from rl_adaloss.train import Evaluations

    if len(configs) != len(run_dirs):
        raise UsageError(f"run_batch: {len(configs)} configs but {len(run_dirs)} run directories")
    engine = build_engine(configs)
    base = configs[0]
    dirs = [Path(d) for d in run_dirs]
    for config, run_dir in zip(configs, dirs):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "config.yaml", dump_config(config))
        (run_dir / "result.json").unlink(missing_ok=True)
    started = time.perf_counter()
    evaluations = [Evaluations(d / "evaluations.csv") for d in dirs]
    evaluator = BatchedEvaluator(engine, base["env"], base["eval"]["episodes"], engine.env.settings)
    freq = base["eval"]["freq"]

    def evaluate() -> None:
        means, stds = evaluator.evaluate()
        stats = engine.step_size_stats()
        for k, table in enumerate(evaluations):
            if engine.diverged_at[k] is not None:
                continue
            row = {"timesteps": engine.num_timesteps, "mean_reward": means[k], "std_reward": stds[k]}
            row.update({key: values[k] for key, values in stats.items()})
            table.add(row)

    next_eval = [freq]

    def after_update(_engine: BatchedPPO) -> None:
        if engine.num_timesteps >= next_eval[0] and engine.num_timesteps < engine.total_timesteps:
            evaluate()
            next_eval[0] = (engine.num_timesteps // freq + 1) * freq

    evaluate()
    engine.learn(on_update=after_update)
    evaluate()  # the final evaluation, for the members still alive
    wall = time.perf_counter() - started
    results = []
    for k, (config, run_dir, table) in enumerate(zip(configs, dirs, evaluations)):
        result: dict[str, Any] = {"status": "finished", "reason": None}
        if engine.diverged_at[k] is not None:
            result.update(status="diverged", reason=engine.diverged_reason[k], diverged_at=engine.diverged_at[k])
        returns = table.returns
        finite = [r for r in returns if math.isfinite(r)]
        result.update(env=config["env"], optimizer=config["optimizer"]["name"], seed=config["seed"],
                      timesteps=int(engine.diverged_at[k] if engine.diverged_at[k] is not None else engine.num_timesteps),
                      total_timesteps=config["total_timesteps"],
                      final_eval_return=returns[-1] if returns else None,
                      best_eval_return=max(finite) if finite else None, wall_time_s=round(wall, 3),
                      engine="batched", batch_size=len(configs))
        write_json_atomic(run_dir / "result.json", result)
        results.append(result)
    return results
