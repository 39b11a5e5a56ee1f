"""K independent ``AdaLossPPO`` runs ("members") advanced in lockstep: rollouts, VecNormalize, GAE and the update.

Each member is the algorithm of :class:`rl_adaloss.ppo.AdaLossPPO` over SB3's ``DummyVecEnv`` + ``VecNormalize``,
term for term (``stable_baselines3/ppo/ppo.py``, ``common/on_policy_algorithm.py``, ``common/buffers.py``,
``common/vec_env/vec_normalize.py``); the members share the environment, the PPO settings, the network shapes and
the optimizer rule and layout, and differ in seed, ``lr``/``b0``, and ``alpha``/``c``.

* Rollouts of ``n_envs x n_steps`` per member; gSDE exploration matrices redrawn every ``sde_sample_freq`` steps
  (and at each rollout's start); actions clipped to the action space for the env, unclipped in the buffer; rewards
  of truncated (not terminated) episodes bootstrapped by ``gamma`` times the value of the terminal observation.
* VecNormalize per member: running mean/var of the observations (RunningMeanStd, count 1e-4), clipped to
  ``clip_obs``; rewards divided by the running std of the discounted return, clipped to ``clip_reward``.
* GAE(lambda) in float32, as SB3's ``RolloutBuffer.compute_returns_and_advantage``.
* The update: per member and epoch an independent permutation of the ``n_envs * n_steps`` samples (SB3's
  swap-and-flatten order), minibatches of ``batch_size`` (the last one may be shorter), advantages normalized per
  minibatch, the clipped surrogate, optional value clipping, the entropy term, the actor and critic losses of
  ``AdaLossPPO`` (or the total loss in the joint layout), gradients clipped per network and member, and target_kl's
  early stop per member.
* Divergence per member: a non-finite loss, parameter or step size after an update, or an action distribution torch
  would refuse (a non-finite mean, a non-finite or zero scale) in a rollout or an update, freezes the member at that
  step (``diverged_at``); the others go on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rl_adaloss.batched import host
from rl_adaloss.batched.envs import BatchedEnv, StepResult, make_batched_env
from rl_adaloss.batched.host import maybe_any
from rl_adaloss.batched.optim import MemberOptimizer
from rl_adaloss.batched.policy import BatchedActorCritic
from rl_adaloss.batched.rng import MemberRNG
from rl_adaloss.errors import UsageError

__all__ = ["BatchedPPO", "BatchedVecNormalize", "RunningMeanStd", "PPOSettings", "NormalizeSettings", "default_threads"]


def default_threads(members: int, n_envs: int, cores: int | None = None) -> int:
    """torch threads for one engine process running alone: one per 128 envs (members x n_envs), at least 1, at most
    the cores this process may use.

    The engine's tensors are small: below a few hundred envs an op is over before a second thread has helped, and
    on a busy machine (another process on the other core) every parallel op waits for a descheduled thread.
    Measured on 2 shared cores (Pendulum, 4 envs): K = 1 ... 16 ran 10-50x slower with 2 threads than with 1 under
    load; K = 64 and 256 ran ~1.5x faster with 2 on a quiet machine. Processes sharing the cores (a sweep running
    batches side by side) should split them instead, as rl_adaloss.sweep does.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, members * n_envs // 128))


#: As rl_adaloss.train: the evaluation env's seed is the training seed plus this.
EVAL_SEED_OFFSET = 10_000


# -- VecNormalize ---------------------------------------------------------------------------------------------------


def combined_moments(mean: Tensor, var: Tensor, count: Tensor, batch_mean: Tensor, batch_var: Tensor,
                     batch_count: int) -> tuple[Tensor, Tensor]:
    """The running (mean, var) with a batch's moments merged in (Chan et al.'s parallel update, as SB3's
    ``RunningMeanStd.update_from_moments`` writes it); ``count`` broadcasts against ``mean``."""
    delta = batch_mean - mean
    tot_count = count + batch_count
    new_mean = mean + delta * batch_count / tot_count
    m_2 = var * count + batch_var * batch_count + delta.square() * count * batch_count / tot_count
    return new_mean, m_2 / tot_count


class RunningMeanStd:
    """SB3's ``RunningMeanStd`` for K members: float64 mean/var of shape (K, *shape), counts (K,) from 1e-4."""

    def __init__(self, members: int, shape: tuple[int, ...] = (), epsilon: float = 1e-4, device="cpu") -> None:
        self.mean = torch.zeros(members, *shape, dtype=torch.float64, device=device)
        self.var = torch.ones(members, *shape, dtype=torch.float64, device=device)
        self.count = torch.full((members,), epsilon, dtype=torch.float64, device=device)

    def update(self, x: Tensor) -> None:
        """``x``: (K, batch, *shape); the batch moments in x's dtype, as numpy takes them."""
        batch_mean = x.mean(dim=1).to(torch.float64)
        batch_var = x.var(dim=1, unbiased=False).to(torch.float64)
        batch_count = x.shape[1]
        view = (-1,) + (1,) * (self.mean.dim() - 1)
        self.mean, self.var = combined_moments(self.mean, self.var, self.count.view(view), batch_mean, batch_var,
                                               batch_count)
        self.count = self.count + batch_count


@dataclass
class NormalizeSettings:
    obs: bool = False
    reward: bool = False
    clip_obs: float = 10.0
    clip_reward: float = 10.0
    gamma: float = 0.99
    epsilon: float = 1e-8


class BatchedVecNormalize:
    """SB3's ``VecNormalize`` around a batched env, with per-member statistics. ``training=False`` freezes them
    (evaluation); ``norm_reward`` off gives the raw rewards."""

    def __init__(self, env: BatchedEnv, settings: NormalizeSettings, training: bool = True) -> None:
        self.env, self.settings, self.training = env, settings, training
        K, n = env.members, env.n_envs
        self.obs_rms = RunningMeanStd(K, (env.obs_dim,), device=env.device)
        self.ret_rms = RunningMeanStd(K, (), device=env.device)
        self.returns = torch.zeros(K, n, dtype=torch.float64, device=env.device)
        #: :meth:`_step_both`'s joint statistics, and the views of them it gave ``obs_rms`` and ``ret_rms``.
        self._joint: tuple[Tensor, Tensor, Tensor] | None = None
        self._joint_views: tuple[Tensor, ...] = ()

    def normalize_obs(self, obs: Tensor) -> Tensor:
        if not self.settings.obs:
            return obs
        mean, var = self.obs_rms.mean.unsqueeze(1), self.obs_rms.var.unsqueeze(1)
        clip = self.settings.clip_obs
        return torch.clamp((obs - mean) / torch.sqrt(var + self.settings.epsilon), -clip, clip).to(torch.float32)

    def normalize_reward(self, reward: Tensor) -> Tensor:
        if self.settings.reward:
            clip = self.settings.clip_reward
            reward = torch.clamp(
                reward / torch.sqrt(self.ret_rms.var.unsqueeze(1) + self.settings.epsilon), -clip, clip
            )
        return reward.to(torch.float32)

    def reset(self) -> Tensor:
        obs = self.env.reset()
        self.returns.zero_()
        if self.training and self.settings.obs:
            self.obs_rms.update(obs)
        return self.normalize_obs(obs)

    def step(self, actions: Tensor) -> StepResult:
        result = self.env.step(actions)
        if self.training and self.settings.obs and self.settings.reward:
            return self._step_both(result)
        if self.training and self.settings.obs:
            self.obs_rms.update(result.obs)
        # Both at once (elementwise, so each as on its own): one pass of the per-step ops, one sqrt of the variance;
        # where no env is done the terminal observations are the observations (the same tensor), normalized once.
        if result.terminal_obs is result.obs:
            obs = terminal = self.normalize_obs(result.obs)
        else:
            obs, terminal = self.normalize_obs(torch.stack([result.obs, result.terminal_obs])).unbind(0)
        if self.training and self.settings.reward:
            self.returns = self.returns * self.settings.gamma + result.reward
            self.ret_rms.update(self.returns)
        reward = self.normalize_reward(result.reward)
        self.returns.masked_fill_(result.done, 0)
        return StepResult(obs, reward, result.terminated, result.truncated, terminal)

    def _step_both(self, result: StepResult) -> StepResult:
        """:meth:`step` when training with both normalizations: the observation and return statistics as one
        (K, obs_dim + 1) running mean/var (the return's the last column), so their updates and normalizations run
        each op once for both. Every element goes through the ops :meth:`RunningMeanStd.update` and
        ``normalize_*`` apply to it, in the same order and dtypes, so the numbers are theirs bit for bit."""
        D = self.obs_rms.mean.shape[1]
        self.returns = self.returns * self.settings.gamma + result.reward
        mean, var, count = self._joint_stats()
        obs = result.obs
        # cat promotes the observations' float32 moments to float64 exactly, as ``.to(torch.float64)`` does.
        batch_mean = torch.cat([obs.mean(dim=1), self.returns.mean(dim=1, keepdim=True)], dim=1)
        batch_var = torch.cat([obs.var(dim=1, unbiased=False), self.returns.var(dim=1, keepdim=True, unbiased=False)],
                              dim=1)
        batch_count = obs.shape[1]
        columns = count[:, self._count_columns]  # each column's count: the observation's, ..., the return's
        new_mean, new_var = combined_moments(mean, var, columns, batch_mean, batch_var, batch_count)
        new_count = count + batch_count
        self._joint = (new_mean, new_var, new_count)
        self.obs_rms.mean, self.obs_rms.var, self.obs_rms.count = new_mean[:, :D], new_var[:, :D], new_count[:, 0]
        self.ret_rms.mean, self.ret_rms.var, self.ret_rms.count = new_mean[:, D], new_var[:, D], new_count[:, 1]
        self._joint_views = (self.obs_rms.mean, self.obs_rms.var, self.obs_rms.count,
                             self.ret_rms.mean, self.ret_rms.var, self.ret_rms.count)
        std = torch.sqrt(new_var + self.settings.epsilon).unsqueeze(1)
        clip = self.settings.clip_obs
        # Where no env is done the terminal observations are the observations (the same tensor): normalized once.
        # (Only correctly rounded ops here, so an element's result does not depend on the batch it is in.)
        both = result.obs if result.terminal_obs is result.obs else torch.stack([result.obs, result.terminal_obs])
        normalized = torch.clamp((both - new_mean[:, :D].unsqueeze(1)) / std[..., :D], -clip, clip).to(torch.float32)
        obs, terminal = (normalized, normalized) if both is result.obs else normalized.unbind(0)
        clip = self.settings.clip_reward
        reward = torch.clamp(result.reward / std[..., D], -clip, clip).to(torch.float32)
        self.returns.masked_fill_(result.done, 0)
        return StepResult(obs, reward, result.terminated, result.truncated, terminal)

    def _joint_stats(self) -> tuple[Tensor, Tensor, Tensor]:
        """The joint (mean, var) (K, obs_dim + 1) and counts (K, 2) (observations', return's) that
        :meth:`_step_both` left, while ``obs_rms`` and ``ret_rms`` still hold its views of them (a checkpoint's
        restore writes into those views, so into these); else gathered anew from whatever they hold now."""
        views = (self.obs_rms.mean, self.obs_rms.var, self.obs_rms.count,
                 self.ret_rms.mean, self.ret_rms.var, self.ret_rms.count)
        if self._joint is not None and all(a is b for a, b in zip(views, self._joint_views)):
            return self._joint
        D = self.obs_rms.mean.shape[1]
        self._count_columns = torch.tensor([0] * D + [1], device=self.obs_rms.count.device)
        return (torch.cat([self.obs_rms.mean, self.ret_rms.mean.unsqueeze(1)], dim=1),
                torch.cat([self.obs_rms.var, self.ret_rms.var.unsqueeze(1)], dim=1),
                torch.stack([self.obs_rms.count, self.ret_rms.count], dim=1))

    def freeze_copy_stats_from(self, other: BatchedVecNormalize) -> None:
        """SB3's ``sync_envs_normalization``: the evaluation env takes the training env's observation statistics."""
        self.obs_rms.mean, self.obs_rms.var = other.obs_rms.mean.clone(), other.obs_rms.var.clone()
        self.obs_rms.count = other.obs_rms.count.clone()


# -- the settings -----------------------------------------------------------------------------------------------------


@dataclass
class PPOSettings:
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float | str = 0.2
    clip_range_vf: float | str | None = None
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    use_sde: bool = False
    sde_sample_freq: int = -1
    target_kl: float | None = None
    stats_window_size: int = 100


def _schedule(value: float | str | None) -> Callable[[float], float] | None:
    from rl_adaloss.config import schedule

    if value is None:
        return None
    s = schedule(value)
    return s if callable(s) else (lambda _progress, v=float(s): v)


@dataclass
class Rollout:
    """One rollout of K members: (K, n_steps, n_envs, ...) float32 tensors, and GAE's advantages and returns."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    episode_starts: Tensor
    values: Tensor
    log_probs: Tensor
    advantages: Tensor | None = None
    returns: Tensor | None = None


@dataclass
class UpdateStats:
    """Per member, means over the minibatches it trained on (SB3's ``train/*`` records)."""

    values: dict[str, list[float]] = field(default_factory=dict)


# -- the engine ------------------------------------------------------------------------------------------------


class BatchedPPO:
    """K ``AdaLossPPO`` members in lockstep. ``optimizer`` is the rule's name, ``layout`` ``separate`` or ``joint``,
    and ``optimizer_kwargs[role][k]`` member k's constructor arguments for role ``actor``/``critic`` (``joint``)."""

    def __init__(
        self,
        env_id: str,
        seeds: Sequence[int],
        n_envs: int,
        ppo: PPOSettings,
        policy_kwargs: dict[str, Any],
        normalize: NormalizeSettings,
        optimizer: str,
        layout: str,
        optimizer_kwargs: dict[str, Sequence[dict[str, Any]]],
        total_timesteps: int,
        device: str = "cpu",
        force_loop_optimizer: bool = False,
        threads: int | str | None = None,
        use_gymnasium: bool = False,
    ) -> None:
        import gymnasium

        import envs  # noqa: F401

        self.members = len(seeds)
        self.seeds = list(seeds)
        self.n_envs = n_envs
        self.ppo = ppo
        self.total_timesteps = total_timesteps
        self.device = torch.device(device)
        self.layout = layout
        #: torch threads while learning (None: leave torch's setting; "auto": :func:`default_threads`).
        self.threads = default_threads(self.members, n_envs) if threads == "auto" else threads
        if ppo.use_sde and ppo.sde_sample_freq == 0:
            raise UsageError("ppo.sde_sample_freq: 0 is not supported by the batched engine (use -1 or > 0)")
        probe = gymnasium.make(env_id)
        try:
            observation_space, action_space = probe.observation_space, probe.action_space
        finally:
            probe.close()
        #: Step the env through the gymnasium fallback even where a torch version exists (a diagnostic).
        self.use_gymnasium = use_gymnasium
        self.env = BatchedVecNormalize(make_batched_env(env_id, self.seeds, n_envs, device, use_gymnasium), normalize)
        self.policy = BatchedActorCritic(
            self.seeds,
            observation_space,
            action_space,
            use_sde=ppo.use_sde,
            noise_seeds=[s + 1_000_003 for s in self.seeds],
            device=device,
            **policy_kwargs,
        )
        self.action_low = torch.as_tensor(action_space.low, device=self.device)
        self.action_high = torch.as_tensor(action_space.high, device=self.device)
        if layout == "separate":
            roles = {"actor": self.policy.actor_parameters(), "critic": self.policy.critic_parameters()}
        elif layout == "joint":
            roles = {"joint": self.policy.parameters()}
        else:
            raise UsageError(f"optimizer.layout: expected separate or joint, got {layout!r}")
        self.optimizers = {
            role: MemberOptimizer(optimizer, params, optimizer_kwargs[role], force_loop_optimizer)
            for role, params in roles.items()
        }
        self.clip_range = _schedule(ppo.clip_range)
        self.clip_range_vf = _schedule(ppo.clip_range_vf)
        self.permutation_rng = MemberRNG(self.seeds, "permutation", self.device)
        self.num_timesteps = 0
        self.n_updates = 0
        #: Per member: None while training, else the step at which it diverged, and why.
        self.diverged_at: list[int | None] = [None] * self.members
        self.diverged_reason: list[str | None] = [None] * self.members
        #: Deferred host reads (see :mod:`.host`): the divergences met meanwhile, per reason the (K,) step at which
        #: each member first met it (-1: not), kept on the device until :meth:`_settle` reads them.
        self._pending: dict[str, Tensor] = {}
        self.last_obs: Tensor | None = None
        self.last_episode_starts: Tensor | None = None
        self.rollout: Rollout | None = None
        self.stats = UpdateStats()

    @property
    def deferred(self) -> bool:
        """Whether host reads are deferred: a property of the device the engine runs on (see :mod:`.host`)."""
        return host.defers_reads(self.device)

    # -- divergence ---------------------------------------------------------------------------------------------

    @property
    def alive(self) -> Tensor:
        return torch.tensor([d is None for d in self.diverged_at], device=self.device)

    def _diverge(self, mask: Tensor, reason: str) -> None:
        """Freeze the members in ``mask`` that still train, at this step, for ``reason``; deferred, at
        :meth:`_settle`."""
        if self.deferred:
            steps = self._pending.get(reason, torch.full((self.members,), -1, device=self.device))
            self._pending[reason] = torch.where((steps < 0) & mask, self.num_timesteps, steps)
            return
        for k in torch.nonzero(mask).flatten().tolist():
            if self.diverged_at[k] is None:
                self.diverged_at[k] = self.num_timesteps
                self.diverged_reason[k] = reason

    def _settle(self) -> None:
        """Record the deferred divergences (one read): each member's earliest, the first reason met on a tie, as
        :meth:`_diverge` would have recorded them one by one."""
        pending, self._pending = self._pending, {}
        for reason, steps in zip(pending, torch.stack(list(pending.values())).tolist() if pending else []):
            for k, step in enumerate(steps):
                if step >= 0 and (self.diverged_at[k] is None or step < self.diverged_at[k]):
                    self.diverged_at[k], self.diverged_reason[k] = step, reason

    # -- rollouts -----------------------------------------------------------------------------------------------

    def _progress_remaining(self) -> float:
        return 1.0 - float(self.num_timesteps) / float(self.total_timesteps)

    @torch.no_grad()
    def collect_rollouts(self) -> Rollout:
        """One rollout of ``n_steps`` per env and member, with GAE computed (``OnPolicyAlgorithm.collect_rollouts``)."""
        K, n, T = self.members, self.n_envs, self.ppo.n_steps
        if self.last_obs is None:
            self.last_obs = self.env.reset()
            self.last_episode_starts = torch.ones(K, n, dtype=torch.float32, device=self.device)
        # Each step's tensors are kept in lists and stacked once at the end: one copy per field and rollout instead
        # of an indexed write (a select and a copy) per field and step.
        steps: dict[str, list[Tensor]] = {f: [] for f in ("obs", "actions", "rewards", "episode_starts", "values",
                                                         "log_probs")}
        # gSDE: SB3 resets the noise at the rollout's start and again every sde_sample_freq steps (step 0 too); the
        # draws are made a few at a time (:meth:`_noise`), the same numbers as drawn one by one. The variance
        # matrix depends on the parameters only, which do not change during a rollout.
        redraw = self.ppo.use_sde and self.ppo.sde_sample_freq > 0
        sde_variance = None
        if self.ppo.use_sde:
            noise = self._noise(n, 1 + (-(-T // self.ppo.sde_sample_freq) if redraw else 0))
            self.policy.exploration = next(noise)
            sde_variance = self.policy.sde_variance_matrix()
        # Both networks in one pass per layer (the parameters do not change during a rollout either).
        fused = self.policy.fused_operands()
        for step in range(T):
            if redraw and step % self.ppo.sde_sample_freq == 0:
                self.policy.exploration = next(noise)
            actions, values, log_probs, valid = self.policy.act(self.last_obs, sde_variance=sde_variance, fused=fused)
            if maybe_any(~valid, self.deferred):
                self._diverge(
                    ~valid, "the action distribution became invalid (a NaN mean, or a NaN, infinite or zero scale)"
                )
            clipped = torch.clamp(actions, self.action_low, self.action_high)
            result = self.env.step(clipped)
            self.num_timesteps += n
            rewards = result.reward
            bootstrap = result.time_limit
            if maybe_any(bootstrap, self.deferred):  # else the where changes nothing
                terminal_values = self.policy.predict_values(result.terminal_obs)
                rewards = torch.where(bootstrap, rewards + self.ppo.gamma * terminal_values, rewards)
            steps["obs"].append(self.last_obs)
            steps["actions"].append(actions)
            steps["rewards"].append(rewards)
            steps["episode_starts"].append(self.last_episode_starts)
            steps["values"].append(values)
            steps["log_probs"].append(log_probs)
            self.last_obs = result.obs
            self.last_episode_starts = result.done.to(torch.float32)
        # (K, T, n, ...) float32, as the steps' tensors are.
        buf = Rollout(**{f: torch.stack(x, dim=1).to(torch.float32) for f, x in steps.items()})
        last_values = self.policy.predict_values(self.last_obs)
        self.compute_returns_and_advantage(buf, last_values, self.last_episode_starts)
        self.rollout = buf
        self._settle()
        return buf

    #: gSDE draws made at once: a few, so that the drawing's per-op cost is shared while its temporaries (the
    #: random words and their float64 transforms, of every member, env and latent unit) stay small at large K.
    NOISE_CHUNK = 8

    def _noise(self, n: int, draws: int) -> Iterator[Tensor]:
        """``draws`` successive exploration matrices (:meth:`BatchedActorCritic.reset_noise`'s), drawn
        ``NOISE_CHUNK`` at a time as they are needed (the noise stream serves nothing else meanwhile)."""
        for start in range(0, draws, self.NOISE_CHUNK):
            yield from self.policy.draw_noise(n, min(self.NOISE_CHUNK, draws - start)).unbind(1)

    def compute_returns_and_advantage(self, buf: Rollout, last_values: Tensor, dones: Tensor) -> None:
        """GAE(lambda), SB3's loop over the steps backwards, in float32, for all members and envs at once.

        What does not depend on the recursion (each step's TD error and its ``gamma * lambda * next_non_terminal``)
        is computed for every step in one pass, elementwise as SB3's loop computes it step by step, so only the
        recursion itself runs per step."""
        gamma, lam = self.ppo.gamma, self.ppo.gae_lambda
        T = buf.rewards.shape[1]
        # Step t's next_non_terminal and next_values: step t + 1's, the last step's from the state after the rollout.
        next_non_terminal = 1.0 - torch.cat([buf.episode_starts[:, 1:], dones.to(torch.float32).unsqueeze(1)], dim=1)
        next_values = torch.cat([buf.values[:, 1:], last_values.unsqueeze(1)], dim=1)
        deltas = (buf.rewards + gamma * next_values * next_non_terminal - buf.values).unbind(1)
        decays = (gamma * lam * next_non_terminal).unbind(1)
        advantages: list[Tensor] = [None] * T  # type: ignore[list-item]
        last_gae_lam = torch.zeros_like(buf.rewards[:, 0])
        for step in reversed(range(T)):
            last_gae_lam = deltas[step] + decays[step] * last_gae_lam
            advantages[step] = last_gae_lam
        advantages = torch.stack(advantages, dim=1)
        buf.advantages = advantages
        buf.returns = advantages + buf.values

    # -- the update ---------------------------------------------------------------------------------------------

    def permutations(self, epoch: int) -> Tensor:
        """(K, N): member k's minibatch order for this epoch, from its own stream (all members in one draw)."""
        return self.permutation_rng.permutations(self.n_envs * self.ppo.n_steps)[:, 0]

    @staticmethod
    def _flatten(x: Tensor) -> Tensor:
        """(K, T, n, ...) -> (K, n*T, ...) in SB3's swap-and-flatten order (env-major)."""
        K, T, n = x.shape[:3]
        return x.transpose(1, 2).reshape(K, n * T, *x.shape[3:])

    #: The per-minibatch records (SB3's ``train/*``), in the order of the rows of the update's sums.
    RECORDS = (
        "policy_gradient_loss",
        "value_loss",
        "entropy_loss",
        "actor_loss",
        "critic_loss",
        "clip_fraction",
        "approx_kl",
    )

    @torch.no_grad()
    def train(self, permutations: Callable[[int], Tensor] | None = None) -> None:
        """One PPO update of every live member on ``self.rollout`` (``AdaLossPPO.train``, term for term).

        ``permutations(epoch)`` gives the (K, N) minibatch orders; by default each member's own stream draws them.
        The rollout is packed into one (K, N, D) float32 buffer, shuffled once per epoch by one ``index_select``;
        a minibatch is then a slice of it.
        """
        buf = self.rollout
        assert buf is not None and buf.advantages is not None
        permutations = permutations or self.permutations
        K, B = self.members, self.ppo.batch_size
        progress = self._progress_remaining()
        clip_range = self.clip_range(progress)
        clip_range_vf = self.clip_range_vf(progress) if self.clip_range_vf is not None else None
        obs_dim, action_dim = buf.obs.shape[-1], buf.actions.shape[-1]
        packed = torch.cat(
            [self._flatten(buf.obs), self._flatten(buf.actions)]
            + [self._flatten(x).unsqueeze(-1) for x in (buf.values, buf.log_probs, buf.advantages, buf.returns)],
            dim=-1,
        )
        N, D = packed.shape[1], packed.shape[2]
        rows = packed.reshape(K * N, D)
        member_offsets = (torch.arange(K, device=self.device) * N).unsqueeze(1)
        a0 = obs_dim + action_dim
        # Members that take steps in this update: alive, and not yet stopped by target_kl.
        active = self.alive.clone()
        sums = torch.zeros(len(self.RECORDS), K, device=self.device)
        counts = torch.zeros(K, device=self.device)
        finite_losses = torch.ones(K, dtype=torch.bool, device=self.device)
        recorded = False

        # While every member steps (``all_active``) and a minibatch's records are all finite, the per-member masks
        # change nothing, so the minibatch skips them (see ``fast`` below): the same numbers, fewer ops and reads.
        # Deferring host reads: never known, so every minibatch takes the masked path (the same numbers).
        all_active = not self.deferred and bool(active.all())
        joint = "joint" in self.optimizers
        # The optimizers' gradient buffers, by parameter name, for the backward to write into (None without them).
        by_param = {id(p): v for o in self.optimizers.values() for p, v in zip(o.params, o.grad_views or [])}
        grad_out = ({name: by_param[id(p)] for name, p in self.policy.params.items()}
                    if len(by_param) == len(self.policy.params) else None)
        # The layers' operands for every minibatch's forward pass (views: they follow the optimizers' in-place
        # steps; were an exception to leave them, they would still be the parameters' views).
        self.policy.prepare()
        # _loss_grad_factors while every member is active, by minibatch size (the masks of the others vary).
        loss_grad_factors: dict[int, tuple[Tensor, ...]] = {}
        # SB3's count of the epochs run, kept on the device: deferred, the epochs go on after every member has
        # stopped (a step of no member changes nothing), and such an epoch neither counts nor takes words of the
        # permutation streams. (Reading, every epoch entered has a member active.)
        epochs_run = torch.zeros((), dtype=torch.int64, device=self.device)
        stream = self.permutation_rng
        for epoch in range(self.ppo.n_epochs):
            if not all_active and not maybe_any(active, self.deferred):
                break
            entered, words_used = active.any(), stream.counter.clone()
            order = permutations(epoch).to(self.device)
            stream.counter = torch.where(entered, stream.counter, words_used)
            epochs_run += entered
            shuffled = rows.index_select(0, (order + member_offsets).reshape(-1)).view(K, N, D)
            for start in range(0, N, B):
                if not all_active and not maybe_any(active, self.deferred):
                    break
                mb = shuffled[:, start : start + B]
                obs, actions = mb[..., :obs_dim].contiguous(), mb[..., obs_dim:a0]
                old_values, old_log_prob, advantages, returns = mb[..., a0 : a0 + 4].unbind(-1)
                saved: dict[str, Any] = {}
                values, log_prob, entropy, _ = self.policy.evaluate_actions(obs, actions, saved, validity=False)
                if self.ppo.normalize_advantage and advantages.shape[1] > 1:
                    advantages = (advantages - advantages.mean(dim=1, keepdim=True)) / (
                        advantages.std(dim=1, keepdim=True) + 1e-8
                    )
                log_ratio = log_prob - old_log_prob
                ratio = torch.exp(log_ratio)
                policy_loss_1 = advantages * ratio
                clamped_ratio = torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss_2 = advantages * clamped_ratio
                policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean(dim=1)
                clip_fraction = torch.mean((torch.abs(ratio - 1) > clip_range).float(), dim=1)
                if clip_range_vf is None:
                    values_pred = values
                else:
                    values_change = values - old_values
                    values_pred = old_values + torch.clamp(values_change, -clip_range_vf, clip_range_vf)
                value_loss = (returns - values_pred).square().mean(dim=1)
                entropy_loss = -torch.mean(entropy, dim=1)
                actor_loss = policy_loss + self.ppo.ent_coef * entropy_loss
                critic_loss = self.ppo.vf_coef * value_loss
                approx_kl = torch.mean((ratio - 1) - log_ratio, dim=1)
                # AdaLossPPO records the losses (and checks them for NaN) before target_kl's break.
                records = torch.stack(
                    [policy_loss, value_loss, entropy_loss, actor_loss, critic_loss, clip_fraction, approx_kl]
                )
                joint_loss = actor_loss + critic_loss if joint else None
                # fast: every member active and every record finite (one sum read: it is finite only if every
                # term is; an overflow to inf just takes the full path). A finite approx_kl means finite log-probs,
                # which mean a valid distribution (a NaN or infinite mean, or a NaN, infinite, zero or negative
                # scale, makes the log-prob NaN or infinite, and exp and the mean carry that on), so the validity
                # check would find nothing, the masks select everything and the losses are finite.
                fast = all_active and math.isfinite(float(records.sum())) and (
                    joint_loss is None or math.isfinite(float(joint_loss.sum())))
                if not fast:
                    valid = self.policy.valid(saved["mean"], saved["scale"])
                    if maybe_any(active & ~valid, self.deferred):
                        self._diverge(
                            active & ~valid,
                            "the action distribution became invalid (a NaN mean, or a NaN, infinite or zero scale)",
                        )
                        active = active & valid
                        all_active = False
                if fast:
                    sums += records
                    counts += 1.0
                else:
                    sums += torch.where(active, records, 0.0)
                    counts += active.float()
                    finite_losses &= ~active | (torch.isfinite(actor_loss) & torch.isfinite(critic_loss))
                recorded = True
                if self.ppo.target_kl is not None:
                    active = active & ~(approx_kl > 1.5 * self.ppo.target_kl)
                    if not maybe_any(active, self.deferred):
                        break
                    if all_active and not bool(active.all()):
                        all_active = fast = False
                if grad_out is None:  # else the backward sets every gradient, and clip_grad_norm_ flat.grad
                    for optimizer in self.optimizers.values():
                        optimizer.zero_grad()
                # The gradient of the active members' summed losses (each member's parameters get only its own
                # loss's) by the chain rule through the terms above, node by node as autograd runs it, so that the
                # gradients are autograd's bit for bit: mean's is the expanded gradient / B, min's splits a tie in
                # halves, clamp's passes the gradient on [low, high], exp's multiplies by its result.
                n = advantages.shape[1]
                factors = loss_grad_factors.get(n) if fast else None
                if factors is None:
                    factors = self._loss_grad_factors(active, n, advantages.dtype)
                    if fast:  # every member active: the same factors for every minibatch of this size
                        loss_grad_factors[n] = factors
                grad_min, grad_min_half, grad_value_loss, grad_entropy_loss = factors
                tie = policy_loss_1 == policy_loss_2
                grad_either = torch.where(tie, grad_min_half, grad_min)
                grad_ratio = grad_either.masked_fill(policy_loss_1 > policy_loss_2, 0) * advantages
                # clamp passes the gradient where low <= ratio <= high, which is where it returns ratio itself (a
                # NaN ratio: clamp gives NaN, which equals nothing, as the bounds' comparisons fail for it).
                grad_clamped = grad_either.masked_fill(policy_loss_1 < policy_loss_2, 0) * advantages
                grad_ratio = grad_ratio + grad_clamped.masked_fill(clamped_ratio != ratio, 0.0)
                grad_log_prob = grad_ratio * ratio
                grad_values = -(grad_value_loss * (2 * (returns - values_pred)))
                if clip_range_vf is not None:
                    in_range_vf = (values_change >= -clip_range_vf) & (values_change <= clip_range_vf)
                    grad_values = torch.where(in_range_vf, grad_values, 0.0)
                # Without an entropy term every member's entropy gradient is -0.0, which adds nothing to a finite
                # scale's gradient (-0.0 / scale + g is g, bit for bit): where the scales are known valid, skip it.
                grad_entropy = None if fast and self.ppo.ent_coef == 0 else grad_entropy_loss
                self.policy.backward(saved, grad_values, grad_log_prob, grad_entropy, out=grad_out)
                losses = {"actor": actor_loss, "critic": critic_loss, "joint": joint_loss}
                for role, optimizer in self.optimizers.items():
                    optimizer.clip_grad_norm_(self.ppo.max_grad_norm)
                    optimizer.step(losses[role], active, all_finite=fast)
        self.policy.release()
        self._check_finite(finite_losses)
        self.n_updates += int(epochs_run)
        self._settle()
        mean = (sums / counts.clamp(min=1)).tolist() if recorded else []
        self.stats = UpdateStats({name: values for name, values in zip(self.RECORDS, mean)})

    def _loss_grad_factors(self, active: Tensor, n: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The loss gradients' factors that depend only on which members are active, for a minibatch of n:
        d(sum of active losses)/d(the terms under min's mean), its half (min's tie), and d/d(the squared value
        errors under value_loss's mean) and d/d(entropy), each (K, n), before the node-by-node rest of ``train``."""
        grad_loss = active.to(dtype).unsqueeze(1).expand(-1, n)  # d(sum of active losses)/d loss_k
        grad_min = -grad_loss / n
        return (grad_min, grad_min / 2, (grad_loss * self.ppo.vf_coef) / n, -(grad_loss * self.ppo.ent_coef) / n)

    def _check_finite(self, finite_losses: Tensor) -> None:
        alive = self.alive
        self._diverge(alive & ~finite_losses, "a loss became NaN or infinite")
        for name, param in self.policy.params.items():
            bad = ~torch.isfinite(param.detach()).flatten(1).all(dim=1)
            self._diverge(self.alive & bad, f"parameter {name} became NaN or infinite")
        for key, values in self.step_size_stats().items():
            bad = torch.tensor([not math.isfinite(v) for v in values], device=self.device)
            self._diverge(self.alive & bad, f"{key} became NaN or infinite")

    def step_size_stats(self) -> dict[str, list[float]]:
        """Per member, ``actor_effective_lr``, ``critic_effective_lr`` and (where the rule has one) ``actor_b``,
        ``critic_b``; in the joint layout both names carry the one optimizer's values."""
        stats: dict[str, list[float]] = {}
        for role, optimizer in self.optimizers.items():
            lr, b = optimizer.effective_lr, optimizer.b
            for name in ["actor", "critic"] if role == "joint" else [role]:
                stats[f"{name}_effective_lr"] = lr
                if b is not None:
                    stats[f"{name}_b"] = b
        return stats


# -- evaluation and the training loop ----------------------------------------------------------------------------


class BatchedEvaluator:
    """SB3's ``evaluate_policy(deterministic=True)`` as ``train.py`` runs it, for every member at once: one eval env
    per member (``n_envs=1``, seeded seed + 10000), the training env's observation statistics frozen in it, raw
    rewards, and the ``episodes`` episodes played one after the other in that env, whose generator goes on from one
    episode and one evaluation to the next. Through the gymnasium fallback a member's evaluation is SB3's episode
    for episode (the same starts, given the same policy); the torch envs draw the starts from the member's own
    stream. (Side by side, in ``episodes`` envs seeded seed + 10000 + i, members with nearby seeds would share eval
    envs, and their evaluations would not be independent samples.)"""

    def __init__(self, engine: BatchedPPO, env_id: str, episodes: int, normalize: NormalizeSettings) -> None:
        self.engine = engine
        self.episodes = episodes
        seeds = [s + EVAL_SEED_OFFSET for s in engine.seeds]
        frozen = NormalizeSettings(
            obs=normalize.obs, reward=False, clip_obs=normalize.clip_obs, epsilon=normalize.epsilon
        )
        env = make_batched_env(env_id, seeds, 1, engine.device, use_gymnasium=engine.use_gymnasium)
        self.env = BatchedVecNormalize(env, frozen, training=False)

    @torch.no_grad()
    def evaluate(self) -> tuple[list[float], list[float]]:
        """Per member, the mean and (population) std of the episode returns. The episodes themselves (returns and
        lengths, per member, in the order they ended) are kept in ``episode_returns`` and ``episode_lengths``, for
        ``evaluations.npz``."""
        self.env.freeze_copy_stats_from(self.engine.env)
        obs = self.env.reset()  # evaluate_policy resets the eval env; its generator goes on
        K, n, device = self.engine.members, self.episodes, self.engine.device
        returns = torch.zeros(K, n, dtype=torch.float64, device=device)
        lengths = torch.zeros(K, n, dtype=torch.int64, device=device)
        current_return = torch.zeros(K, dtype=torch.float64, device=device)
        current_length = torch.zeros(K, dtype=torch.int64, device=device)
        done_count = torch.zeros(K, dtype=torch.int64, device=device)
        rows = torch.arange(K, device=device)
        while bool((done_count < n).any()):
            result = self.env.step(self.engine.policy.predict(obs))
            playing = done_count < n  # a member that has its episodes steps on, unrecorded, as the batch does
            current_return += torch.where(playing, result.reward[:, 0].to(torch.float64), 0.0)
            current_length += playing.long()
            ended = playing & result.done[:, 0]
            slot = done_count.clamp(max=n - 1)
            returns[rows, slot] = torch.where(ended, current_return, returns[rows, slot])
            lengths[rows, slot] = torch.where(ended, current_length, lengths[rows, slot])
            done_count += ended.long()
            current_return = torch.where(ended, 0.0, current_return)
            current_length = torch.where(ended, 0, current_length)
            obs = result.obs
        self.episode_returns, self.episode_lengths = returns.tolist(), lengths.tolist()
        return returns.mean(dim=1).tolist(), returns.std(dim=1, unbiased=False).tolist()


def _learn(self: BatchedPPO, on_update: Callable[[BatchedPPO], None] | None = None) -> None:
    """Collect and train until ``total_timesteps`` (SB3's ``learn``); ``on_update`` after each update. With
    ``threads`` set, torch runs that many threads meanwhile (restored afterwards)."""
    previous = torch.get_num_threads()
    if self.threads is not None and self.threads != previous:
        torch.set_num_threads(int(self.threads))
    try:
        while self.num_timesteps < self.total_timesteps:
            if not bool(self.alive.any()):
                break
            self.collect_rollouts()
            self.train()
            if on_update is not None:
                on_update(self)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


BatchedPPO.learn = _learn  # type: ignore[attr-defined]
