"""Batched torch versions of Pendulum-v1 and CartPoleSwingUp-v1: K members x n_envs environments in one tensor; and
:func:`make_batched_env`, which falls back to the registered gymnasium env for any other id.

The state is a float64 tensor of shape ``(K, n_envs, state_dim)``; observations are float32 ``(K, n_envs, obs_dim)``.
:meth:`BatchedEnv.step` follows Stable-Baselines3's ``DummyVecEnv`` over gymnasium's ``TimeLimit``:

* ``done = terminated | truncated``, ``truncated`` set on the ``max_episode_steps``-th step of an episode
  (``TimeLimit``), and ``time_limit = truncated & ~terminated`` (SB3's ``info["TimeLimit.truncated"]``);
* a done env is reset at once: the returned observation is the new episode's first one, and the last observation
  of the finished episode is returned separately as ``terminal_obs`` (SB3's ``info["terminal_observation"]``);
* rewards are float32, as ``DummyVecEnv`` stores them.

Randomness is per member: member k's resets are drawn from its own counter-based stream
(:class:`rl_adaloss.batched.rng.MemberRNG`, stream ``"reset"`` of ``seeds[k]``), all members in one vectorised draw,
so a member's episodes depend on its seed only, not on which other members share the batch or where it sits in it.
(They are not numpy's draws: the batched env and gymnasium's env start episodes from different, equally distributed
states.)

Every other registered gymnasium env (the bullet swing-up, any physics engine's env with flat Box observations and
Box actions) is run by :class:`rl_adaloss.batched.gym_envs.GymnasiumVectorEnv` with the same interface: K x n_envs
real ``gymnasium.make(env_id)`` envs, each seeded and autoreset as SB3's ``DummyVecEnv`` does, so that member k's
episodes are SB3's for ``seeds[k]``. It brings no speed-up beyond the batched networks and updates: the physics runs
on the CPU, env by env, and its randomness is gymnasium's per env, not ``MemberRNG``. ``use_gymnasium=True`` takes
it even where a torch version exists (to check one against the other).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from rl_adaloss.batched import host
from rl_adaloss.batched.host import maybe_any
from rl_adaloss.batched.rng import MemberRNG
from rl_adaloss.errors import UsageError

if TYPE_CHECKING:
    from rl_adaloss.batched.gym_envs import GymnasiumVectorEnv

__all__ = ["BatchedEnv", "BatchedPendulum", "BatchedCartPoleSwingUp", "StepResult", "make_batched_env", "BATCHED_ENVS"]


@dataclass
class StepResult:
    obs: Tensor  # (K, n) float32: after autoreset, the new episode's first observation where done
    reward: Tensor  # (K, n) float32
    terminated: Tensor  # (K, n) bool
    truncated: Tensor  # (K, n) bool
    terminal_obs: Tensor  # (K, n, obs_dim) float32: the finished episode's last observation (where done)

    # Cached: a step's result is read, never changed, and the rollout and VecNormalize each ask for these.
    @cached_property
    def done(self) -> Tensor:
        return self.terminated | self.truncated

    @cached_property
    def time_limit(self) -> Tensor:
        """SB3's ``TimeLimit.truncated``: truncated and not terminated (bootstrapped from the terminal value)."""
        return self.truncated & ~self.terminated


class BatchedEnv:
    """K members x n_envs copies of one environment. Subclasses define the dynamics."""

    env_id: str
    state_dim: int
    obs_dim: int
    action_dim = 1
    action_low: float
    action_high: float
    max_episode_steps: int
    #: What a reset draws per env: ``state_dim`` standard normals (True) or U[0, 1) uniforms (False).
    reset_normal: bool = False

    def __init__(self, seeds: Sequence[int], n_envs: int, device: str | torch.device = "cpu") -> None:
        self.members = len(seeds)
        self.n_envs = n_envs
        self.device = torch.device(device)
        self.rng = MemberRNG(seeds, "reset", self.device)
        self.state = torch.zeros(self.members, n_envs, self.state_dim, dtype=torch.float64, device=self.device)
        self.elapsed = torch.zeros(self.members, n_envs, dtype=torch.int64, device=self.device)

    @property
    def deferred(self) -> bool:
        """Deferring host reads (see :mod:`.host`): a step then resets in masked form, not reading whether one is
        done."""
        return host.defers_reads(self.device)

    # -- the dynamics, per subclass -----------------------------------------------------------------------------

    def _initial_state(self, draws: Tensor) -> Tensor:
        """Initial states, float64 (..., state_dim), from float64 standard draws of the same shape (normals or
        uniforms, per ``reset_normal``)."""
        raise NotImplementedError

    def _draw_reset(self, rows: Tensor) -> Tensor:
        """Initial states (K, n, state_dim) for the envs where ``rows`` (K, n) is True (elsewhere unspecified)."""
        return self._initial_state(self.rng.rows(rows, self.state_dim, normal=self.reset_normal))

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(next state, float64 reward, terminated) for float64 states and float32 actions (K, n, ...), the
        actions as SB3 hands them to the env."""
        raise NotImplementedError

    def observe(self, state: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    # -- the vector env -----------------------------------------------------------------------------------------

    def reset(self) -> Tensor:
        """Reset every env of every member; the first observations, (K, n, obs_dim) float32."""
        self.state = self._draw_reset(torch.ones(self.members, self.n_envs, dtype=torch.bool, device=self.device))
        self.elapsed.zero_()
        return self.observe()

    def close(self) -> None:
        """Nothing to release (the fallback's envs have clients to disconnect)."""

    def step(self, action: Tensor) -> StepResult:
        """One step of every env with actions (K, n, action_dim); done envs are reset (autoreset)."""
        action = action.to(device=self.device, dtype=torch.float32).reshape(self.members, self.n_envs, self.action_dim)
        state, reward, terminated = self._dynamics(self.state, action)
        self.state = state
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        obs = self.observe()
        result = StepResult(obs, reward.to(torch.float32), terminated, truncated, obs)
        done = result.done
        if maybe_any(done, self.deferred):  # a reset of no env changes nothing
            self.state = torch.where(done.unsqueeze(-1), self._draw_reset(done), self.state)
            self.elapsed.masked_fill_(done, 0)
            # A new tensor: the finished episodes' last observations stay in terminal_obs.
            result.obs = torch.where(done.unsqueeze(-1), self.observe(), obs)
        return result


class BatchedPendulum(BatchedEnv):
    """gymnasium's ``Pendulum-v1`` (``classic_control/pendulum.py``, g = 10) with its 200-step ``TimeLimit``.

    State ``(theta, theta_dot)``; observation ``(cos theta, sin theta, theta_dot)``; torque clipped to +-2, speed
    to +-8; reward ``-(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)`` from the state before the step;
    reset ``theta ~ U(-pi, pi)``, ``theta_dot ~ U(-1, 1)``.
    """

    env_id = "Pendulum-v1"
    state_dim = 2
    obs_dim = 3
    action_low, action_high = -2.0, 2.0
    max_episode_steps = 200
    max_speed, max_torque, dt, g, m, l = 8.0, 2.0, 0.05, 10.0, 1.0, 1.0  # noqa: E741 - gymnasium's names
    #: Bounds of the observation, for reference: (cos, sin, theta_dot).
    obs_high = (1.0, 1.0, 8.0)

    def _initial_state(self, u):
        high = torch.tensor([math.pi, 1.0], dtype=torch.float64, device=self.device)
        return -high + (2 * high) * u

    def _dynamics(self, state, action):
        th, thdot = state[..., 0], state[..., 1]
        # gymnasium clips the float32 action and keeps it float32: under numpy 2's promotion rules ``0.001 * u**2``
        # and ``3.0 / (m l^2) * u`` are float32 products, added to float64 terms.
        u = action[..., 0].clamp(-self.max_torque, self.max_torque)
        angle = torch.remainder(th + math.pi, 2 * math.pi) - math.pi
        costs = angle.square() + 0.1 * thdot.square() + (0.001 * u.square()).to(torch.float64)
        push = (3.0 / (self.m * self.l**2) * u).to(torch.float64)
        newthdot = thdot + (3 * self.g / (2 * self.l) * torch.sin(th) + push) * self.dt
        newthdot = newthdot.clamp(-self.max_speed, self.max_speed)
        newth = th + newthdot * self.dt
        return torch.stack([newth, newthdot], dim=-1), -costs, torch.zeros_like(th, dtype=torch.bool)

    def observe(self, state=None):
        state = self.state if state is None else state
        th, thdot = state[..., 0], state[..., 1]
        return torch.stack([torch.cos(th), torch.sin(th), thdot], dim=-1).to(torch.float32)


class BatchedCartPoleSwingUp(BatchedEnv):
    """``CartPoleSwingUp-v1`` as ``envs/cartpole_swingup.py`` defines it, with its 500-step ``TimeLimit``.

    State ``(x, x_dot, theta, theta_dot)``; observation ``(x, x_dot, cos theta, sin theta, theta_dot)``; force
    ``10 clip(a, -1, 1)``; explicit Euler with the old velocities; reward ``(1 + cos theta') / 2``; terminated when
    ``|x| > 2.4``; reset ``N([0, 0, pi, 0], 0.2^2 I)``.
    """

    env_id = "CartPoleSwingUp-v1"
    state_dim = 4
    obs_dim = 5
    action_low, action_high = -1.0, 1.0
    max_episode_steps = 500
    gravity, mass_pole, total_mass, pole_length = 9.82, 0.5, 1.0, 0.6
    mpl = 0.5 * 0.6
    friction, force_mag, dt, x_threshold = 0.1, 10.0, 0.01, 2.4

    reset_normal = True

    def _initial_state(self, z):
        mean = torch.tensor([0.0, 0.0, math.pi, 0.0], dtype=torch.float64, device=self.device)
        return mean + 0.2 * z

    def _dynamics(self, state, action):
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = self.force_mag * action[..., 0].to(torch.float64).clamp(-1.0, 1.0)
        s, c = torch.sin(theta), torch.cos(theta)
        m_p, g, M, b, l, mpl = (  # noqa: E741 - the model's symbols
            self.mass_pole, self.gravity, self.total_mass, self.friction, self.pole_length, self.mpl
        )
        x_acc = (-2.0 * mpl * theta_dot.square() * s + 3.0 * m_p * g * s * c + 4.0 * force - 4.0 * b * x_dot) / (
            4.0 * M - 3.0 * m_p * c.square()
        )
        theta_acc = (-3.0 * mpl * theta_dot.square() * s * c + 6.0 * M * g * s + 6.0 * (force - b * x_dot) * c) / (
            4.0 * l * M - 3.0 * mpl * c.square()
        )
        new = torch.stack(
            [
                x + self.dt * x_dot,
                x_dot + self.dt * x_acc,
                theta + self.dt * theta_dot,
                theta_dot + self.dt * theta_acc,
            ],
            dim=-1,
        )
        reward = 0.5 * (1.0 + torch.cos(new[..., 2]))
        terminated = new[..., 0].abs() > self.x_threshold
        return new, reward, terminated

    def observe(self, state=None):
        state = self.state if state is None else state
        x, x_dot, theta, theta_dot = state.unbind(-1)
        return torch.stack([x, x_dot, torch.cos(theta), torch.sin(theta), theta_dot], dim=-1).to(torch.float32)


BATCHED_ENVS: dict[str, type[BatchedEnv]] = {cls.env_id: cls for cls in (BatchedPendulum, BatchedCartPoleSwingUp)}


def make_batched_env(env_id: str, seeds: Sequence[int], n_envs: int, device: str | torch.device = "cpu",
                     use_gymnasium: bool = False) -> BatchedEnv | GymnasiumVectorEnv:
    """The torch version of ``env_id`` where there is one, else (or with ``use_gymnasium``) the registered gymnasium
    env stepped through :class:`~rl_adaloss.batched.gym_envs.GymnasiumVectorEnv`; a :class:`UsageError` for an id
    that is neither, or whose spaces the engine cannot run."""
    import gymnasium

    import envs  # noqa: F401  (registers this project's envs)
    from rl_adaloss.batched.gym_envs import GymnasiumVectorEnv  # imported here: it imports StepResult from here

    if env_id in BATCHED_ENVS and not use_gymnasium:
        return BATCHED_ENVS[env_id](seeds, n_envs, device)
    if env_id not in gymnasium.envs.registry:
        raise UsageError(f"env: {env_id!r} is neither a batched env ({', '.join(BATCHED_ENVS)}) nor a registered "
                         f"gymnasium env")
    return GymnasiumVectorEnv(env_id, seeds, n_envs, device)
