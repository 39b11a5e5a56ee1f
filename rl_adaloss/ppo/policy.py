"""SB3 actor-critic policies whose actor and critic each get their own optimizer."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, MultiInputActorCriticPolicy
from torch import nn


class OptimizerPair(torch.optim.Optimizer):
    """``policy.optimizer`` in the separate layout: the actor's and the critic's optimizers under SB3's one name.

    It is a view, not a third optimizer: it owns no parameter and no state. It exists so that SB3's own code finds
    ``policy.optimizer`` where it looks for it:

    * ``state_dict()`` is ``{"actor": actor.state_dict(), "critic": critic.state_dict()}`` and ``load_state_dict``
      restores both, so a saved model holds the entries SB3's ``PPO.load`` expects (``policy``, ``policy.optimizer``)
      and both optimizers' states come back, whichever of ``PPO.load`` and ``AdaLossPPO.load`` reads the file;
    * ``param_groups`` are the two optimizers' own groups, so SB3's learning-rate updates reach both;
    * ``zero_grad()`` clears both;
    * ``step()`` refuses: each optimizer must be stepped with its own loss, which only ``AdaLossPPO.train`` does
      (stock ``PPO.train`` would step them with the total loss after a joint clip).
    """

    def __init__(self, actor: torch.optim.Optimizer, critic: torch.optim.Optimizer) -> None:
        # torch's Optimizer.__init__ is not called on purpose: it would take parameters and keep state of its own.
        self.actor = actor
        self.critic = critic

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor, "critic": self.critic}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [*self.actor.param_groups, *self.critic.param_groups]

    @property
    def state(self) -> dict[torch.Tensor, Any]:  # type: ignore[override]
        """Both optimizers' per-parameter state (a new dict; the networks share no parameter)."""
        return {**self.actor.state, **self.critic.state}

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return dict(self.actor.defaults)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if set(state_dict) != {"actor", "critic"}:
            raise ValueError(f"OptimizerPair.load_state_dict needs the keys 'actor' and 'critic', got "
                             f"{sorted(state_dict)} (a state saved by a single optimizer, i.e. the joint layout?)")
        self.actor.load_state_dict(state_dict["actor"])
        self.critic.load_state_dict(state_dict["critic"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.actor.zero_grad(set_to_none)
        self.critic.zero_grad(set_to_none)

    def step(self, closure=None):  # type: ignore[override]
        raise RuntimeError("the actor's and the critic's optimizers are stepped one by one, each with its own loss, "
                           "by rl_adaloss.ppo.AdaLossPPO.train; train this model with AdaLossPPO, not stock PPO")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise RuntimeError("add parameter groups to policy.actor_optimizer or policy.critic_optimizer")

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(actor={self.actor!r}, critic={self.critic!r})"


class SeparateOptimizersPolicy(ActorCriticPolicy):
    """SB3's ``ActorCriticPolicy``, with one ``optimizer_class`` instance for the actor and one for the critic.

    * ``actor_optimizer`` owns the actor: the policy MLP, the action head and the log-std (plus the policy's own
      features extractor when ``share_features_extractor=False``);
    * ``critic_optimizer`` owns the critic: the value MLP and the value head (plus its features extractor);
    * ``optimizer`` is an :class:`OptimizerPair` of the two, under SB3's name (so SB3's save format and
      ``PPO.load`` work); it is not a third optimizer, and refuses ``step()``.

    ``optimizer_kwargs`` go to both; ``actor_optimizer_kwargs`` / ``critic_optimizer_kwargs`` override them per
    network (e.g. a per-network ``b0``, ``alpha`` or ``c`` for AdamLoss, whose losses differ by orders of magnitude).
    With ``separate_optimizers=False`` the layout is SB3's: ``optimizer`` is one ``optimizer_class`` instance over all
    parameters, and the per-network kwargs are refused.

    A parameter that belongs to both networks (a features extractor with weights, shared) cannot be given to two
    optimizers, and is refused: this is the one policy set-up of SB3's that the separate layout refuses. The policies
    whose default extractor has weights (:class:`SeparateOptimizersCnnPolicy`,
    :class:`SeparateOptimizersMultiInputPolicy`) therefore default to ``share_features_extractor=False`` in the
    separate layout; this one keeps SB3's default (``True``), its default extractor (a flatten) having no weights.
    """

    #: Whether the separate layout defaults to ``share_features_extractor=False`` (the default extractor has weights).
    own_features_extractors_by_default: ClassVar[bool] = False

    def __init__(self, *args, separate_optimizers: bool = True, actor_optimizer_kwargs: dict[str, Any] | None = None,
                 critic_optimizer_kwargs: dict[str, Any] | None = None, **kwargs) -> None:
        if not separate_optimizers and (actor_optimizer_kwargs or critic_optimizer_kwargs):
            raise ValueError("actor_optimizer_kwargs/critic_optimizer_kwargs need separate_optimizers=True")
        if separate_optimizers and self.own_features_extractors_by_default:
            kwargs.setdefault("share_features_extractor", False)
        # Set before super().__init__, which calls _build.
        self.separate_optimizers = separate_optimizers
        self.actor_optimizer_kwargs = dict(actor_optimizer_kwargs or {})
        self.critic_optimizer_kwargs = dict(critic_optimizer_kwargs or {})
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(separate_optimizers=self.separate_optimizers,
                    actor_optimizer_kwargs=self.actor_optimizer_kwargs,
                    critic_optimizer_kwargs=self.critic_optimizer_kwargs,
                    share_features_extractor=self.share_features_extractor)
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
        # No third optimizer over everything (it would silently fight the two above): SB3's name holds a view.
        self.optimizer = OptimizerPair(self.actor_optimizer, self.critic_optimizer)

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


class SeparateOptimizersCnnPolicy(SeparateOptimizersPolicy, ActorCriticCnnPolicy):
    """SB3's ``ActorCriticCnnPolicy`` (alias ``CnnPolicy``: a NatureCNN features extractor), with the optimizers of
    :class:`SeparateOptimizersPolicy`. In the separate layout the actor and the critic each get their own CNN
    (``share_features_extractor=False``) unless told otherwise; sharing it there is refused."""

    own_features_extractors_by_default: ClassVar[bool] = True


class SeparateOptimizersMultiInputPolicy(SeparateOptimizersPolicy, MultiInputActorCriticPolicy):
    """SB3's ``MultiInputActorCriticPolicy`` (alias ``MultiInputPolicy``: dict observations, a CombinedExtractor),
    with the optimizers of :class:`SeparateOptimizersPolicy`. In the separate layout the actor and the critic each
    get their own extractor (``share_features_extractor=False``) unless told otherwise."""

    own_features_extractors_by_default: ClassVar[bool] = True

