"""What each member of a batch writes besides its evaluations, in the SB3 path's formats.

* :class:`EpisodeRecorder` follows the training episodes of every member and env (raw rewards, before
  normalization, as SB3's ``Monitor`` sees them inside ``VecNormalize``), by wrapping the batched env's ``step``.
* :class:`MonitorFiles`: one member's ``monitor/<i>.monitor.csv`` per env, SB3 ``Monitor``'s format (a
  ``#{"t_start": ..., "env_id": ...}`` line, then ``r,l,t`` rows); ``sizes()`` and ``truncate()`` let a resumed
  batch drop the rows written after its checkpoint.
* :func:`update_records` and :func:`rollout_records`: a member's ``train/*``, ``rollout/*`` and ``time/fps`` scalars
  after an update, with the SB3 path's tags, for SB3's logger (one ``configure(run_dir, ["tensorboard"])`` per
  member, as ``rl_adaloss.train`` writes its events).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl_adaloss.batched.host import maybe_any

__all__ = ["EpisodeRecorder", "Episode", "MonitorFiles", "update_records", "rollout_records", "explained_variance"]


@dataclass
class Episode:
    member: int
    env: int
    reward: float
    length: int
    time: float       #: time.time() at its end
    timesteps: int    #: the engine's step count at its end


class EpisodeRecorder:
    """Running return and length of every member's and env's training episode; finished ones kept until taken.
    Installed on a :class:`~rl_adaloss.batched.envs.BatchedEnv` by shadowing its ``step`` and ``reset`` (the
    engine's code is untouched)."""

    def __init__(self, env, engine) -> None:
        self.env = env
        self.engine = engine
        self.returns = torch.zeros(env.members, env.n_envs, dtype=torch.float64, device=env.device)
        self.lengths = torch.zeros(env.members, env.n_envs, dtype=torch.int64, device=env.device)
        #: The steps at which episodes may have ended, read at :meth:`take`: their done masks, returns and lengths
        #: (on the device), times and step counts. Every step where the engine defers its host reads (see
        #: :mod:`rl_adaloss.batched.host`), else only those where an episode ended.
        self._ended: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, int]] = []
        self._step, self._reset = env.step, env.reset
        env.step, env.reset = self.step, self.reset

    def reset(self):
        self.returns.zero_()
        self.lengths.zero_()
        return self._reset()

    def step(self, action):
        result = self._step(action)
        self.returns += result.reward.to(torch.float64)
        self.lengths += 1
        done = result.done
        if maybe_any(done, self.engine.deferred):
            # The engine counts this step after the env returns it.
            step = int(self.engine.num_timesteps) + self.env.n_envs
            self._ended.append((done, self.returns.clone(), self.lengths.clone(), time.time(), step))
            self.returns.masked_fill_(done, 0.0)
            self.lengths.masked_fill_(done, 0)
        return result

    def take(self) -> list[Episode]:
        """The episodes that ended since the last call, in the order they ended (by step, member, env)."""
        if not self._ended:
            return []
        ended, self._ended = self._ended, []
        done = torch.stack([e[0] for e in ended])
        rows = torch.nonzero(done).tolist()
        returns = torch.stack([e[1] for e in ended])[done].tolist()
        lengths = torch.stack([e[2] for e in ended])[done].tolist()
        return [Episode(k, i, reward, length, *ended[t][3:])
                for (t, k, i), reward, length in zip(rows, returns, lengths)]

    def state(self) -> dict[str, Any]:
        return {"returns": self.returns.clone(), "lengths": self.lengths.clone()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.returns.copy_(state["returns"])
        self.lengths.copy_(state["lengths"])
        self._ended = []


class MonitorFiles:
    """One member's Monitor CSVs, ``monitor/<i>.monitor.csv`` for env ``i``, as SB3's ``make_vec_env`` names them."""

    def __init__(self, folder: Path, n_envs: int, env_id: str, t_start: float) -> None:
        self.folder = Path(folder)
        self.paths = [self.folder / f"{i}.monitor.csv" for i in range(n_envs)]
        self.env_id = env_id
        self.t_start = t_start

    def create(self) -> None:
        """Start every file afresh: the header line and the column names."""
        self.folder.mkdir(parents=True, exist_ok=True)
        header = f"#{json.dumps({'t_start': self.t_start, 'env_id': self.env_id})}\nr,l,t\n"
        for path in self.paths:
            path.write_text(header)

    def append(self, episodes: list[Episode]) -> None:
        by_env: dict[int, list[str]] = {}
        for e in episodes:
            by_env.setdefault(e.env, []).append(f"{round(e.reward, 6)},{e.length},{round(e.time - self.t_start, 6)}\n")
        for i, lines in by_env.items():
            with self.paths[i].open("a", newline="\n") as handle:
                handle.write("".join(lines))

    def sizes(self) -> list[int]:
        return [path.stat().st_size if path.exists() else 0 for path in self.paths]

    def truncate(self, sizes: list[int]) -> None:
        """Back to ``sizes`` (a checkpoint's): rows written after it go; a missing file starts afresh."""
        if any(not path.exists() for path in self.paths):
            self.create()
            return
        for path, size in zip(self.paths, sizes):
            if path.stat().st_size > size:
                with path.open("r+b") as handle:
                    handle.truncate(size)


def explained_variance(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """SB3's ``explained_variance``: 1 - Var[y - y_pred] / Var[y] (NaN where Var[y] is 0)."""
    var_y = np.var(y_true)
    return float("nan") if var_y == 0 else float(1 - np.var(y_true - y_pred) / var_y)


def rollout_records(window: deque, fps: int) -> dict[str, float]:
    """SB3's ``dump_logs`` records: ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` over the last
    ``stats_window_size`` episodes (where there are any), and ``time/fps``."""
    records: dict[str, float] = {}
    if window:
        records["rollout/ep_rew_mean"] = float(np.mean([r for r, _ in window]))
        records["rollout/ep_len_mean"] = float(np.mean([n for _, n in window]))
    records["time/fps"] = fps
    return records


def update_records(engine, k: int, step_sizes: dict[str, list[float]]) -> dict[str, float]:
    """Member k's ``train/*`` records of the last update, with ``AdaLossPPO.train``'s tags; ``train/learning_rate``
    comes from the member's config (run.py), and ``train/loss`` (the last minibatch's total loss, which the engine
    does not keep) is not written."""
    records: dict[str, float] = {}
    for name in ("entropy_loss", "policy_gradient_loss", "value_loss", "approx_kl", "clip_fraction", "actor_loss",
                 "critic_loss"):
        values = engine.stats.values.get(name)
        if values is not None:
            records[f"train/{name}"] = float(values[k])
    rollout = engine.rollout
    if rollout is not None and rollout.returns is not None:
        records["train/explained_variance"] = explained_variance(
            rollout.values[k].flatten().detach().cpu().numpy(), rollout.returns[k].flatten().detach().cpu().numpy())
    log_std = engine.policy.params.get("log_std")
    if log_std is not None:
        records["train/std"] = float(torch.exp(log_std[k].detach()).mean())
    progress = engine._progress_remaining()
    records["train/clip_range"] = float(engine.clip_range(progress))
    if engine.clip_range_vf is not None:
        records["train/clip_range_vf"] = float(engine.clip_range_vf(progress))
    for key, values in step_sizes.items():
        records[f"train/{key}"] = float(values[k])
    return records
