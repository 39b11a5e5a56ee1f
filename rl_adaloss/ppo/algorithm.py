"""PPO whose actor and critic are each stepped by their own optimizer, fed their own loss."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import ClassVar

import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from rl_adaloss.optim import ScheduledOptimizer
from rl_adaloss.ppo.policy import (
    SeparateOptimizersCnnPolicy,
    SeparateOptimizersMultiInputPolicy,
    SeparateOptimizersPolicy,
)
from rl_adaloss.snapshot import rng_state

#: The names SB3's output formats (stdout/log, json, csv, tensorboard) check in a record's ``exclude``.
_EVERY_OUTPUT_FORMAT = ("stdout", "log", "json", "csv", "tensorboard")


class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN or infinite; ``step`` is the environment step at which it was seen."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"diverged at step {step}: {reason}")
        self.step = step
        self.reason = reason


@contextmanager
def _invalid_distribution_is_divergence(model: AdaLossPPO):
    """A huge step can leave the parameters finite and yet the action distribution invalid (a log-std of -1e6
    gives a zero scale); torch.distributions then refuses it with a ValueError. That is a divergence too."""
    try:
        yield
    except ValueError as error:
        if "to satisfy the constraint" not in str(error):  # torch.distributions' argument validation
            raise
        raise TrainingDiverged(model.num_timesteps, "the action distribution became invalid "
                                                    "(a NaN mean, or a NaN, infinite or zero scale)") from error


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    # Our schedules take the loss; any other optimizer (torch's Adam) is stepped as usual.
    if isinstance(optimizer, ScheduledOptimizer):
        optimizer.step(loss=loss.detach())
    else:
        optimizer.step()


class AdaLossPPO(PPO):
    """SB3's PPO, with the actor and the critic optimized separately (the paper's actor-critic set-up).

    Used exactly like ``PPO``; ``policy_kwargs`` choose the optimizers::

        AdaLossPPO("MlpPolicy", env, n_steps=2048,
                   policy_kwargs=dict(optimizer_class=AdamLoss, optimizer_kwargs=dict(b0=1e6, alpha=1.0, eps=1e-5)))

    Each minibatch, the total loss of SB3's PPO splits into the two networks' terms:

    * the actor's loss is the clipped surrogate plus ``ent_coef`` times the entropy loss;
    * the critic's loss is ``vf_coef`` times the value loss (``vf_coef`` is included, so both gradients are exactly
      those of stock PPO's total loss);

    one backward pass of their sum gives both gradients (the networks share no parameter), each network's gradient
    is clipped to ``max_grad_norm`` on its own, and each optimizer is stepped with its own loss. Stock SB3 clips the
    joint gradient instead: on Pendulum-v1 the critic's gradient norm is ~1000x the actor's, so a joint clip shrinks
    the actor's step to almost nothing.

    With ``policy_kwargs=dict(separate_optimizers=False)`` the layout is SB3's (one optimizer, the total loss, a
    joint clip) and, with ``torch.optim.Adam``, training is identical to stock ``PPO``.

    ``learning_rate`` (a float or a schedule) is the base step size eta of every optimizer. A NaN or infinite loss or
    parameter raises :class:`TrainingDiverged` at the end of the update in which it appeared; so does an action
    distribution that torch refuses (a zero or NaN scale), as soon as it is met.

    SB3 conformity:

    * the policies are SB3's ``MlpPolicy``, ``CnnPolicy`` and ``MultiInputPolicy`` with the two optimizers; in the
      separate layout the last two give the actor and the critic each their own features extractor by default. A
      features extractor with weights shared by both networks is the one set-up the separate layout refuses;
    * files are saved as stock PPO saves them (``policy`` and ``policy.optimizer``, the latter holding both
      optimizers' states), so ``stable_baselines3.PPO.load`` opens them (``rl_adaloss`` must be importable: the
      policy and optimizer classes are stored by reference) and predicts the same actions; it cannot train a
      separate-layout model on (``policy.optimizer.step()`` refuses), ``AdaLossPPO.load`` can;
    * what ``train()`` records is written at once, at the update's step (SB3 writes it one rollout late, and never the
      last update's), and stays readable in ``logger.name_to_value`` after ``learn()``, as in SB3.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": SeparateOptimizersPolicy,
        "CnnPolicy": SeparateOptimizersCnnPolicy,
        "MultiInputPolicy": SeparateOptimizersMultiInputPolicy,
    }

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "rollout_start_rng"]

    # Saved as stock PPO saves: ``policy`` and ``policy.optimizer`` (in the separate layout an OptimizerPair, whose
    # state holds both optimizers'), so SB3's PPO.load opens the file.

    def set_parameters(self, load_path_or_dict, exact_match: bool = True, device="auto") -> None:
        """SB3's ``set_parameters``; also reads files saved before the optimizers were saved as one
        ``policy.optimizer`` entry (as ``policy.actor_optimizer`` and ``policy.critic_optimizer``)."""
        if isinstance(load_path_or_dict, dict):
            params = dict(load_path_or_dict)
        else:
            _, params, _ = load_from_zip_file(load_path_or_dict, device=device, load_data=False)
        legacy = ("policy.actor_optimizer", "policy.critic_optimizer")
        if all(name in params for name in legacy) and "policy.optimizer" not in params:
            actor, critic = (params.pop(name) for name in legacy)
            params["policy.optimizer"] = {"actor": actor, "critic": critic}
        super().set_parameters(params, exact_match=exact_match, device=device)

    def _optimizer_groups(self) -> list[tuple[str, torch.optim.Optimizer, list[torch.nn.Parameter]]]:
        """(role, optimizer, the parameters it owns), for the policy's layout."""
        policy = self.policy
        if getattr(policy, "separate_optimizers", False):
            return [("actor", policy.actor_optimizer, policy.actor_parameters()),
                    ("critic", policy.critic_optimizer, policy.critic_parameters())]
        return [("joint", policy.optimizer, list(policy.parameters()))]

    def collect_rollouts(self, *args, **kwargs) -> bool:
        # The RNG states before SB3 draws this rollout's gSDE noise: a checkpoint taken at the rollout's start needs
        # them, so that a resumed run draws the same noise.
        self.rollout_start_rng = rng_state()
        with _invalid_distribution_is_divergence(self):
            return super().collect_rollouts(*args, **kwargs)

    def train(self) -> None:
        """One PPO update on the rollout buffer. The loss arithmetic is stock SB3's, term for term."""
        self.policy.set_training_mode(True)
        groups = self._optimizer_groups()
        self._update_learning_rate([optimizer for _, optimizer, _ in groups])
        clip_range = self.clip_range(self._current_progress_remaining)
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)

        # Kept as tensors and read once at the end: one host sync per update, not several per minibatch.
        pg_losses, value_losses, entropy_losses, clip_fractions = [], [], [], []
        actor_losses, critic_losses = [], []
        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = rollout_data.actions.long().flatten()

                with _invalid_distribution_is_divergence(self):
                    values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
                values = values.flatten()
                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                ratio = torch.exp(log_prob - rollout_data.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean()
                clip_fractions.append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).detach())

                if self.clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = rollout_data.old_values + torch.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)

                # Same expression and order as SB3's total loss, so the joint layout reproduces it bit for bit.
                actor_loss = policy_loss + self.ent_coef * entropy_loss
                critic_loss = self.vf_coef * value_loss
                loss = actor_loss + critic_loss
                pg_losses.append(policy_loss.detach())
                value_losses.append(value_loss.detach())
                entropy_losses.append(entropy_loss.detach())
                actor_losses.append(actor_loss.detach())
                critic_losses.append(critic_loss.detach())

                with torch.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = torch.mean((torch.exp(log_ratio) - 1) - log_ratio)
                    approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div.item() > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                for _, optimizer, _ in groups:
                    optimizer.zero_grad()
                loss.backward()
                losses = {"actor": actor_loss, "critic": critic_loss, "joint": loss}
                for role, optimizer, params in groups:
                    torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                    _step(optimizer, losses[role])

            self._n_updates += 1
            if not continue_training:
                break

        self._check_finite(actor_losses + critic_losses)
        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        mean = lambda values: torch.stack(values).mean().item()  # noqa: E731
        self.logger.record("train/entropy_loss", mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", mean(pg_losses))
        self.logger.record("train/value_loss", mean(value_losses))
        self.logger.record("train/approx_kl", mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        self.logger.record("train/actor_loss", mean(actor_losses))
        self.logger.record("train/critic_loss", mean(critic_losses))
        for key, value in self.step_size_stats().items():
            self.logger.record(f"train/{key}", value)
        self._write_records()

    def _write_records(self) -> None:
        """Write what is recorded now, at this update's step, and keep it readable in ``logger.name_to_value``.

        SB3's ``learn()`` writes ``train()``'s records at its next dump, one rollout late, so the last update's are
        never written; until then they stay readable (callbacks and user code read ``name_to_value`` after
        ``learn()``). Here they are written at once, at ``num_timesteps``; then recorded again, excluded from every
        SB3 output format, so they stay readable until the next dump clears them and are not written twice.
        """
        logger = self.logger
        values = dict(logger.name_to_value)
        logger.dump(step=self.num_timesteps)
        for key, value in values.items():
            logger.record(key, value, exclude=_EVERY_OUTPUT_FORMAT)

    def step_size_stats(self) -> dict[str, float]:
        """``actor_effective_lr``, ``critic_effective_lr`` and, where the rule has one, ``actor_b``/``critic_b``.

        In SB3's joint layout the one optimizer serves both networks, so both keys carry its values.
        """
        stats: dict[str, float] = {}
        for role, optimizer, _ in self._optimizer_groups():
            scheduled = isinstance(optimizer, ScheduledOptimizer)
            lr = optimizer.effective_lr[0] if scheduled else optimizer.param_groups[0]["lr"]
            b = optimizer.b[0] if hasattr(optimizer, "b") else None
            for name in (["actor", "critic"] if role == "joint" else [role]):
                stats[f"{name}_effective_lr"] = float(lr)
                if b is not None:
                    stats[f"{name}_b"] = float(b)
        return stats

    def _check_finite(self, losses: list[torch.Tensor]) -> None:
        if losses and not bool(torch.isfinite(torch.stack(losses)).all()):
            raise TrainingDiverged(self.num_timesteps, "a loss became NaN or infinite")
        for name, param in self.policy.named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise TrainingDiverged(self.num_timesteps, f"parameter {name} became NaN or infinite")
        for key, value in self.step_size_stats().items():
            if not math.isfinite(value):
                raise TrainingDiverged(self.num_timesteps, f"{key} became NaN or infinite")
