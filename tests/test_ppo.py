"""AdaLossPPO and SeparateOptimizersPolicy against real SB3 on Pendulum-v1.

Every run is tiny (a few hundred environment steps, 128-step rollouts, 32-sample minibatches), so the whole file
takes seconds. The runs are on the CPU with one torch thread, which keeps them bit-for-bit reproducible.
"""

from __future__ import annotations

import math

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from rl_adaloss.optim import AdamLoss, SGDConstant
from rl_adaloss.ppo import AdaLossPPO, OptimizerPair, SeparateOptimizersPolicy, TrainingDiverged

ENV = "Pendulum-v1"
#: Small PPO: two updates of 128 steps, 4 minibatches of 32, 2 epochs.
SMALL = dict(n_steps=128, batch_size=32, n_epochs=2, seed=0, device="cpu", verbose=0)
ADAMLOSS = dict(optimizer_class=AdamLoss, optimizer_kwargs=dict(b0=1e6, alpha=1.0, c=0.0, betas=(0.9, 0.99), eps=1e-5))


def adamloss_ppo(**overrides) -> AdaLossPPO:
    kwargs = {**SMALL, "learning_rate": 1.0, "policy_kwargs": ADAMLOSS, **overrides}
    return AdaLossPPO("MlpPolicy", ENV, **kwargs)


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def ids(params) -> set[int]:
    return {id(p) for p in params}


# -- the joint layout is stock PPO, bit for bit ------------------------------------------------------------------

@pytest.mark.parametrize("extra", [
    dict(),
    dict(use_sde=True, sde_sample_freq=4),
    dict(normalize_advantage=False),
    dict(ent_coef=0.01, clip_range_vf=0.2, vf_coef=0.7, max_grad_norm=0.3, gamma=0.9),
], ids=["default", "sde", "no-advantage-normalization", "entropy-clipped-vf"])
def test_joint_layout_with_adam_reproduces_stock_ppo(extra):
    kwargs = {**SMALL, "learning_rate": 3e-4, **extra}
    stock = PPO("MlpPolicy", ENV, **kwargs).learn(256)
    ours = AdaLossPPO("MlpPolicy", ENV, policy_kwargs=dict(separate_optimizers=False), **kwargs).learn(256)
    assert ours.num_timesteps == stock.num_timesteps == 256
    assert isinstance(ours.policy.optimizer, torch.optim.Adam)
    assert_same_parameters(ours.policy, stock.policy)
    # The moments too: the optimizer saw the same gradients in the same order.
    for p_ours, p_stock in zip(ours.policy.parameters(), stock.policy.parameters()):
        assert torch.equal(ours.policy.optimizer.state[p_ours]["exp_avg_sq"],
                           stock.policy.optimizer.state[p_stock]["exp_avg_sq"])


def test_separate_layout_is_not_stock_ppo():
    """Negative control for the test above: same optimizer class and settings, but each network's gradient is
    clipped on its own (on Pendulum the critic's dwarfs the actor's), so training differs. (Adam splits into two
    without any other change: only the clipping, and the eps it then meets, tell the layouts apart.)"""
    kwargs = {**SMALL, "learning_rate": 3e-4}
    stock = PPO("MlpPolicy", ENV, **kwargs).learn(256)
    ours = AdaLossPPO("MlpPolicy", ENV, policy_kwargs=dict(separate_optimizers=True), **kwargs).learn(256)
    actor = ours.policy.action_net.weight
    assert not torch.equal(actor, stock.policy.action_net.weight)
    assert not torch.equal(ours.policy.value_net.weight, stock.policy.value_net.weight)


# -- the policy's two optimizers ----------------------------------------------------------------------------------

def test_two_optimizers_own_disjoint_parameters_covering_the_policy():
    model = AdaLossPPO("MlpPolicy", ENV, learning_rate=0.5, policy_kwargs=dict(
        optimizer_class=AdamLoss, optimizer_kwargs=dict(b0=4.0, alpha=0.5, eps=1e-5),
        actor_optimizer_kwargs=dict(b0=9.0), critic_optimizer_kwargs=dict(alpha=2.0, c=-1.0)), **SMALL)
    policy = model.policy
    assert isinstance(policy, SeparateOptimizersPolicy)
    actor, critic = policy.actor_optimizer, policy.critic_optimizer
    assert type(actor) is AdamLoss and type(critic) is AdamLoss
    assert policy.optimizers() == {"actor": actor, "critic": critic}
    # No third optimizer: SB3's policy.optimizer (what SB3's save format and PPO.load need) is a view of the two,
    # with no parameter groups or state of its own, and it refuses to step.
    assert isinstance(policy.optimizer, OptimizerPair)
    assert policy.optimizer.optimizers() == {"actor": actor, "critic": critic}
    assert [id(g) for g in policy.optimizer.param_groups] == [id(g) for g in actor.param_groups + critic.param_groups]
    with pytest.raises(RuntimeError, match="AdaLossPPO"):
        policy.optimizer.step()

    actor_ids = ids(p for g in actor.param_groups for p in g["params"])
    critic_ids = ids(p for g in critic.param_groups for p in g["params"])
    assert not actor_ids & critic_ids
    assert actor_ids | critic_ids == ids(policy.parameters())
    expected_actor = ids([*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters(),
                          policy.log_std])
    expected_critic = ids([*policy.mlp_extractor.value_net.parameters(), *policy.value_net.parameters()])
    assert actor_ids == expected_actor
    assert critic_ids == expected_critic

    # Shared kwargs, overridden per network; lr is SB3's learning_rate.
    a, c = actor.param_groups[0], critic.param_groups[0]
    assert (a["lr"], a["b0"], a["alpha"], a["c"], a["eps"]) == (0.5, 9.0, 0.5, 0.0, 1e-5)
    assert (c["lr"], c["b0"], c["alpha"], c["c"], c["eps"]) == (0.5, 4.0, 2.0, -1.0, 1e-5)
    assert actor.b == [9.0] and critic.b == [4.0]


def test_joint_layout_refuses_per_network_kwargs():
    with pytest.raises(ValueError, match="separate_optimizers=True"):
        AdaLossPPO("MlpPolicy", ENV, policy_kwargs=dict(separate_optimizers=False,
                                                        actor_optimizer_kwargs=dict(lr=1.0)), **SMALL)


class LinearExtractor(BaseFeaturesExtractor):
    """A features extractor with weights."""

    def __init__(self, observation_space, features_dim: int = 8) -> None:
        super().__init__(observation_space, features_dim)
        self.linear = nn.Linear(observation_space.shape[0], features_dim)

    def forward(self, observations):
        return torch.tanh(self.linear(observations))


def test_a_shared_features_extractor_with_weights_is_refused():
    with pytest.raises(ValueError, match=r"features_extractor\.linear\.weight.*share_features_extractor=False"):
        AdaLossPPO("MlpPolicy", ENV, policy_kwargs=dict(features_extractor_class=LinearExtractor,
                                                        share_features_extractor=True), **SMALL)


def test_separate_features_extractors_go_to_their_networks():
    model = AdaLossPPO("MlpPolicy", ENV, learning_rate=3e-4, policy_kwargs=dict(
        features_extractor_class=LinearExtractor, share_features_extractor=False), **SMALL)
    policy = model.policy
    actor_ids = ids(policy.actor_optimizer.param_groups[0]["params"])
    critic_ids = ids(policy.critic_optimizer.param_groups[0]["params"])
    assert ids(policy.pi_features_extractor.parameters()) <= actor_ids
    assert ids(policy.vf_features_extractor.parameters()) <= critic_ids
    assert not actor_ids & critic_ids and actor_ids | critic_ids == ids(policy.parameters())
    extractors = (policy.pi_features_extractor.linear.weight, policy.vf_features_extractor.linear.weight)
    before = [w.detach().clone() for w in extractors]
    model.learn(128)
    for old, new in zip(before, extractors):
        assert not torch.equal(old, new)


# -- AdamLoss in PPO: accumulators and what is logged ------------------------------------------------------------

def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_adamloss_accumulators_grow_and_are_logged_to_tensorboard(tmp_path):
    # TensorBoard stores float32: with b0=1e6 (resolution 0.06) the actor's growth would not show, so b0=100 here
    # (same first step size 1e-3 as lr=1, b0=1e6).
    b0 = 100.0
    model = adamloss_ppo(learning_rate=0.01, policy_kwargs={**ADAMLOSS, "optimizer_kwargs": dict(b0=b0, eps=1e-5)})
    logger = configure(str(tmp_path), ["tensorboard"])
    model.set_logger(logger)
    model.learn(384)
    logger.close()
    actor_b, critic_b = model.policy.actor_optimizer.b[0], model.policy.critic_optimizer.b[0]
    assert actor_b > b0 and critic_b > b0
    # The critic's loss (vf_coef x squared returns of -1000ish) is far larger than the actor's.
    assert critic_b - b0 > 10 * (actor_b - b0)

    scalars = read_scalars(tmp_path)
    keys = ["actor_effective_lr", "critic_effective_lr", "actor_b", "critic_b", "actor_loss", "critic_loss"]
    for key in keys:
        steps = [step for step, _ in scalars[f"train/{key}"]]
        assert steps == [128, 256, 384], key  # one per update, the final one included
    assert model.num_timesteps == 384
    final = {key: scalars[f"train/{key}"][-1][1] for key in keys}
    assert final["actor_b"] == pytest.approx(actor_b, rel=1e-6)
    assert final["critic_b"] == pytest.approx(critic_b, rel=1e-6)
    assert final["actor_effective_lr"] == pytest.approx(0.01 / math.sqrt(actor_b), rel=1e-6)
    assert final["critic_effective_lr"] == pytest.approx(0.01 / math.sqrt(critic_b), rel=1e-6)
    # The accumulators grow, update after update.
    for key in ("actor_b", "critic_b"):
        values = [v for _, v in scalars[f"train/{key}"]]
        assert b0 < values[0] < values[1] < values[2]
    assert scalars["train/critic_loss"][-1][1] > 0


def test_each_optimizer_is_fed_its_own_loss_and_clipped_on_its_own(monkeypatch, tmp_path):
    model = adamloss_ppo(ent_coef=0.01, vf_coef=0.7, max_grad_norm=0.4)
    policy = model.policy
    fed = {"actor": [], "critic": []}
    for role, optimizer in policy.optimizers().items():
        original = optimizer.step

        def step(*args, _role=role, _original=original, _optimizer=optimizer, **kwargs):
            loss = kwargs["loss"]
            assert isinstance(loss, torch.Tensor) and not loss.requires_grad
            params = [p for g in _optimizer.param_groups for p in g["params"]]
            grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()
            fed[_role].append((loss.item(), grad_norm))
            return _original(*args, **kwargs)

        monkeypatch.setattr(optimizer, "step", step)

    clipped = []
    original_clip = torch.nn.utils.clip_grad_norm_

    def clip(params, max_norm, *args, **kwargs):
        params = list(params)
        clipped.append((ids(params), max_norm))
        return original_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)

    logged = {}
    model.set_logger(configure(str(tmp_path), ["csv"]))
    original_record = model.logger.record

    def record(key, value, *args, **kwargs):
        logged[key] = value
        return original_record(key, value, *args, **kwargs)

    monkeypatch.setattr(model.logger, "record", record)
    model.learn(128)  # one update: 2 epochs x 4 minibatches

    assert len(fed["actor"]) == len(fed["critic"]) == 8
    actor_losses = [loss for loss, _ in fed["actor"]]
    critic_losses = [loss for loss, _ in fed["critic"]]
    assert all(a != c for a, c in zip(actor_losses, critic_losses))
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    assert mean(critic_losses) == pytest.approx(0.7 * logged["train/value_loss"], rel=1e-5)
    assert mean(actor_losses) == pytest.approx(
        logged["train/policy_gradient_loss"] + 0.01 * logged["train/entropy_loss"], rel=1e-5, abs=1e-7)
    assert logged["train/critic_loss"] == pytest.approx(mean(critic_losses), rel=1e-5)
    assert logged["train/actor_loss"] == pytest.approx(mean(actor_losses), rel=1e-5, abs=1e-7)

    # Each network clipped on its own, to max_grad_norm, before its optimizer stepped.
    actor_ids = ids(policy.actor_parameters())
    critic_ids = ids(policy.critic_parameters())
    assert clipped == [(actor_ids, 0.4), (critic_ids, 0.4)] * 8
    norms = [norm for role in fed for _, norm in fed[role]]
    assert max(norms) <= 0.4 * (1 + 1e-5)
    # The critic's gradient is always far above 0.4 on Pendulum, so it is clipped to exactly 0.4.
    assert all(norm == pytest.approx(0.4, rel=1e-4) for _, norm in fed["critic"])
    # And the actor keeps its own (smaller, unscaled) norm, so the two together exceed a joint clip.
    assert all(math.hypot(a, c) > 0.4 * (1 + 1e-3) for (_, a), (_, c) in zip(fed["actor"], fed["critic"]))


def test_torch_adam_in_the_separate_layout():
    model = AdaLossPPO("MlpPolicy", ENV, learning_rate=3e-4, **SMALL)
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
    model.learn(256)
    policy = model.policy
    for role, optimizer in policy.optimizers().items():
        assert type(optimizer) is torch.optim.Adam, role
        for p in optimizer.param_groups[0]["params"]:
            assert int(optimizer.state[p]["step"]) == 2 * 2 * 4  # updates x epochs x minibatches
    for name, p in policy.named_parameters():
        assert not torch.equal(before[name], p), name
    stats = model.step_size_stats()
    assert stats == {"actor_effective_lr": 3e-4, "critic_effective_lr": 3e-4}


def test_save_and_load_carry_both_optimizers_state(tmp_path):
    model = adamloss_ppo(policy_kwargs={**ADAMLOSS, "critic_optimizer_kwargs": dict(b0=1e4)})
    model.learn(256)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = AdaLossPPO.load(path, device="cpu")

    assert_same_parameters(loaded.policy, model.policy)
    assert loaded.policy.critic_optimizer_kwargs == {"b0": 1e4}
    for role in ("actor", "critic"):
        trained = getattr(model.policy, f"{role}_optimizer")
        reloaded = getattr(loaded.policy, f"{role}_optimizer")
        assert type(reloaded) is AdamLoss
        assert reloaded.b == trained.b
        assert reloaded.b[0] > reloaded.param_groups[0]["b0"]
        trained_params = [p for g in trained.param_groups for p in g["params"]]
        reloaded_params = [p for g in reloaded.param_groups for p in g["params"]]
        assert len(trained_params) == len(reloaded_params)
        for p, q in zip(trained_params, reloaded_params):
            for key in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(trained.state[p][key], reloaded.state[q][key]), (role, key)
    assert model.policy.critic_optimizer.param_groups[0]["b0"] == 1e4

    # The reloaded model trains on from there: its accumulators keep growing.
    loaded.set_env(model.get_env())
    loaded.learn(128, reset_num_timesteps=False)
    assert loaded.policy.actor_optimizer.b[0] > model.policy.actor_optimizer.b[0]
    assert loaded.policy.critic_optimizer.b[0] > model.policy.critic_optimizer.b[0]


# -- divergence ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer_class, lr, use_sde", [
    (SGDConstant, 1e30, False), (SGDConstant, 1e6, False),
    (torch.optim.Adam, 1e6, False), (torch.optim.Adam, 1e6, True),
], ids=["sgd-1e30", "sgd-1e6", "adam-1e6", "adam-1e6-sde"])
def test_an_absurd_step_size_raises_training_diverged(optimizer_class, lr, use_sde):
    # A step this large leaves the log-std at -1e6 or NaN: a zero or NaN scale, which torch.distributions refuses.
    model = AdaLossPPO("MlpPolicy", ENV, learning_rate=lr, policy_kwargs=dict(optimizer_class=optimizer_class),
                       use_sde=use_sde, **SMALL)
    with pytest.raises(TrainingDiverged) as caught:
        model.learn(1024)
    assert caught.value.step == model.num_timesteps
    assert caught.value.step in (128, 256)
    assert f"diverged at step {caught.value.step}" in str(caught.value)


def test_a_nan_loss_raises_training_diverged(monkeypatch):
    model = adamloss_ppo()
    model.learn(128)
    # Poison the next rollout's returns: the critic's loss becomes NaN (AdamLoss skips such a step).
    original = model.rollout_buffer.compute_returns_and_advantage

    def poisoned(*args, **kwargs):
        original(*args, **kwargs)
        model.rollout_buffer.returns[3] = float("nan")

    monkeypatch.setattr(model.rollout_buffer, "compute_returns_and_advantage", poisoned)
    with pytest.raises(TrainingDiverged, match="a loss became NaN or infinite") as caught:
        model.learn(128, reset_num_timesteps=False)
    assert caught.value.step == 256
