"""Any registered gymnasium env (a physics engine's included) behind :class:`~rl_adaloss.batched.envs.BatchedEnv`'s
interface: K members x n_envs real ``gymnasium.make(env_id)`` envs, stepped one by one on the CPU.

This is the batched engine's fallback for an env without a torch version, so that every env the SB3 path trains can
also be batched. Member k's env i is what SB3's ``DummyVecEnv`` from ``make_vec_env(env_id, n_envs, seed=seeds[k])``
holds at index i (``stable_baselines3/common/vec_env/dummy_vec_env.py``, ``common/env_util.py``):

* the same env, ``gymnasium.make(env_id)`` with its registered ``TimeLimit``;
* seeded ``seeds[k] + i`` at its first reset only (``VecEnv.seed``: the seeds wait for the next ``reset()`` and are
  then dropped); every later reset, the autoreset included, goes on with the env's own generator;
* stepped with the float32 row of the (already clipped) action array, as ``DummyVecEnv.step_wait`` hands it on;
* observations stored in the observation space's dtype and rewards as float32 (``DummyVecEnv``'s buffers), returned
  as float32 tensors; a done env is reset at once and its last observation returned as ``terminal_obs``.

So a member's episodes are, step for step, SB3's for that seed wherever the actions are the same.

What it does not do: the physics stays on the CPU and the envs are stepped in a Python loop (no CUDA speed-up; the
engine's networks and updates are batched as for the torch envs), and the randomness is each env's own gymnasium
generator, not :class:`~rl_adaloss.batched.rng.MemberRNG`.

Checkpoints: :meth:`GymnasiumVectorEnv.get_state` captures every env through all its wrappers with
:mod:`rl_adaloss.snapshot` (the time limit's step count, the env's generator, and, for an env that keeps its state in
a physics engine, what its own ``get_state()`` gives); :meth:`GymnasiumVectorEnv.set_state` puts it back into freshly
made envs. An env whose state cannot be captured that way cannot be resumed: ``set_state`` refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rl_adaloss.batched.envs import StepResult
from rl_adaloss.errors import UsageError

__all__ = ["GymnasiumVectorEnv", "check_spaces"]


def check_spaces(env_id: str, observation_space, action_space) -> None:
    """Refuse, in one line, spaces the batched engine cannot run: non-Box actions, a non-flat Box observation."""
    from gymnasium import spaces

    if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
        raise UsageError(f"env: the batched engine supports flat continuous (Box) actions only; {env_id} has "
                         f"{action_space}")
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise UsageError(f"env: the batched engine supports flat Box observations only; {env_id} has "
                         f"{observation_space}")


class GymnasiumVectorEnv:
    """K members x n_envs ``gymnasium.make(env_id)`` envs with :class:`BatchedEnv`'s interface (see the module)."""

    def __init__(self, env_id: str, seeds: Sequence[int], n_envs: int, device: str | torch.device = "cpu") -> None:
        import gymnasium

        import envs  # noqa: F401  (registers this project's envs)

        self.env_id = env_id
        self.members = len(seeds)
        self.n_envs = n_envs
        self.device = torch.device(device)
        self.envs = [gymnasium.make(env_id) for _ in range(self.members * n_envs)]
        first = self.envs[0]
        try:
            check_spaces(env_id, first.observation_space, first.action_space)
        except UsageError:
            self.close()
            raise
        self.obs_dim = int(first.observation_space.shape[0])
        self.action_dim = int(first.action_space.shape[0])
        self.obs_dtype = first.observation_space.dtype
        self.max_episode_steps = first.spec.max_episode_steps if first.spec is not None else None
        #: DummyVecEnv's ``_seeds``: applied at the next reset, then dropped (None: already applied).
        self.pending_seeds: list[int] | None = [int(s) + i for s in seeds for i in range(n_envs)]

    def _tensor(self, array: np.ndarray, dtype: torch.dtype) -> Tensor:
        shape = (self.members, self.n_envs, *array.shape[1:])
        return torch.from_numpy(array).to(device=self.device, dtype=dtype).reshape(shape)

    def reset(self) -> Tensor:
        """Reset every env (with its seed the first time); the first observations, (K, n, obs_dim) float32."""
        obs = np.zeros((len(self.envs), self.obs_dim), dtype=self.obs_dtype)
        seeds = self.pending_seeds or [None] * len(self.envs)
        for j, (env, seed) in enumerate(zip(self.envs, seeds)):
            obs[j] = env.reset(seed=seed)[0]
        self.pending_seeds = None
        return self._tensor(obs, torch.float32)

    def step(self, action: Tensor) -> StepResult:
        """One step of every env with actions (K, n, action_dim), as the engine has clipped them; done envs are
        reset (autoreset, without a seed: the env's generator goes on)."""
        actions = action.detach().to(device="cpu", dtype=torch.float32).reshape(len(self.envs), self.action_dim)
        actions = actions.numpy()
        count = len(self.envs)
        obs = np.zeros((count, self.obs_dim), dtype=self.obs_dtype)
        terminal = np.zeros((count, self.obs_dim), dtype=self.obs_dtype)
        rewards = np.zeros(count, dtype=np.float32)
        terminated = np.zeros(count, dtype=bool)
        truncated = np.zeros(count, dtype=bool)
        for j, env in enumerate(self.envs):
            obs[j], rewards[j], terminated[j], truncated[j], _ = env.step(actions[j])
            terminal[j] = obs[j]
            if terminated[j] or truncated[j]:
                obs[j] = env.reset()[0]
        return StepResult(self._tensor(obs, torch.float32), self._tensor(rewards, torch.float32),
                          self._tensor(terminated, torch.bool), self._tensor(truncated, torch.bool),
                          self._tensor(terminal, torch.float32))

    # -- checkpoints --------------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Every env's state through all its wrappers (:func:`rl_adaloss.snapshot.env_layers_state`), the pending
        seeds, and whether the capture is complete."""
        from rl_adaloss.snapshot import env_layers_state

        captured = [env_layers_state(env) for env in self.envs]
        return {"envs": [states for states, _ in captured], "complete": all(ok for _, ok in captured),
                "pending_seeds": self.pending_seeds}

    def set_state(self, state: dict[str, Any]) -> None:
        """Put a :meth:`get_state` back into these (freshly made) envs."""
        from rl_adaloss.snapshot import set_env_layers_state

        if not state["complete"]:
            raise ValueError(f"checkpoint: the state of {self.env_id} could not be captured (it lives outside Python "
                             f"and the env has no get_state/set_state), so the batch cannot resume exactly")
        if len(state["envs"]) != len(self.envs):
            raise ValueError(f"checkpoint: {len(state['envs'])} envs captured, {len(self.envs)} here")
        for env, layers in zip(self.envs, state["envs"]):
            set_env_layers_state(env, layers)
        self.pending_seeds = state["pending_seeds"]

    def close(self) -> None:
        for env in self.envs:
            env.close()
