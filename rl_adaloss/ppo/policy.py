"""An SB3 actor-critic policy whose actor and critic each get their own optimizer."""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn


class SeparateOptimizersPolicy(ActorCriticPolicy):
    """SB3's ``ActorCriticPolicy``, with one ``optimizer_class`` instance for the actor and one for the critic.

    * ``actor_optimizer`` owns the actor: the policy MLP, the action head and the log-std (plus the policy's own
      features extractor when ``share_features_extractor=False``);
    * ``critic_optimizer`` owns the critic: the value MLP and the value head (plus its features extractor).

    ``optimizer_kwargs`` go to both; ``actor_optimizer_kwargs`` / ``critic_optimizer_kwargs`` override them per
    network (e.g. a per-network ``b0``, ``alpha`` or ``c`` for AdamLoss, whose losses differ by orders of magnitude).
    With ``separate_optimizers=False`` the layout is SB3's: one ``optimizer`` over all parameters, and the
    per-network kwargs are refused.

    A parameter that belongs to both networks (a features extractor with weights, shared) cannot be given to two
    optimizers, and is refused.
    """

    def __init__(self, *args, separate_optimizers: bool = True, actor_optimizer_kwargs: dict[str, Any] | None = None,
                 critic_optimizer_kwargs: dict[str, Any] | None = None, **kwargs) -> None:
        if not separate_optimizers and (actor_optimizer_kwargs or critic_optimizer_kwargs):
            raise ValueError("actor_optimizer_kwargs/critic_optimizer_kwargs need separate_optimizers=True")
        # Set before super().__init__, which calls _build.
        self.separate_optimizers = separate_optimizers
        self.actor_optimizer_kwargs = dict(actor_optimizer_kwargs or {})
        self.critic_optimizer_kwargs = dict(critic_optimizer_kwargs or {})
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(separate_optimizers=self.separate_optimizers,
                    actor_optimizer_kwargs=self.actor_optimizer_kwargs,
                    critic_optimizer_kwargs=self.critic_optimizer_kwargs)
        return data

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)  # builds the networks, and SB3's joint optimizer
        if not self.separate_optimizers:
            return
        actor, critic = self.actor_parameters(), self.critic_parameters()
        lr = lr_schedule(1)
        self.actor_optimizer = self.optimizer_class(actor, lr=lr, **{**self.optimizer_kwargs,
                                                                      **self.actor_optimizer_kwargs})
        self.critic_optimizer = self.optimizer_class(critic, lr=lr, **{**self.optimizer_kwargs,
                                                                        **self.critic_optimizer_kwargs})
        # No third optimizer over everything: it would silently fight the two above.
        self.optimizer = None

    def _network_modules(self) -> tuple[list[nn.Module], list[nn.Module]]:
        actor: list[nn.Module] = [self.mlp_extractor.policy_net, self.action_net]
        critic: list[nn.Module] = [self.mlp_extractor.value_net, self.value_net]
        if not self.share_features_extractor:
            actor.append(self.pi_features_extractor)
            critic.append(self.vf_features_extractor)
        return actor, critic

    def actor_parameters(self) -> list[nn.Parameter]:
        """The actor's parameters, in a fixed order; raises if the split of all parameters is not clean."""
        return self._split_parameters()[0]

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critic's parameters, in a fixed order; raises if the split of all parameters is not clean."""
        return self._split_parameters()[1]

    def _split_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        actor_modules, critic_modules = self._network_modules()
        actor = [p for m in actor_modules for p in m.parameters()]
        if isinstance(getattr(self, "log_std", None), nn.Parameter):
            actor.append(self.log_std)
        critic = [p for m in critic_modules for p in m.parameters()]
        actor_ids, critic_ids = {id(p) for p in actor}, {id(p) for p in critic}
        names = {id(p): name for name, p in self.named_parameters()}
        shared = actor_ids & critic_ids
        unowned = [name for pid, name in names.items() if pid not in actor_ids | critic_ids]
        if shared or unowned:
            which = sorted({names[pid] for pid in shared} | set(unowned))
            raise ValueError(
                f"separate optimizers need every parameter to belong to exactly one of actor and critic; "
                f"these are shared or unowned: {', '.join(which)} (use share_features_extractor=False, "
                f"or separate_optimizers=False)"
            )
        return actor, critic

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by role: ``{"actor": ..., "critic": ...}``, or ``{"joint": ...}`` in SB3's layout."""
        if self.separate_optimizers:
            return {"actor": self.actor_optimizer, "critic": self.critic_optimizer}
        return {"joint": self.optimizer}
