"""The batched actor-critic against SB3's ActorCriticPolicy with the same weights: log-prob, entropy, value."""

from __future__ import annotations

import gymnasium
import pytest
import torch

import envs  # noqa: F401
from rl_adaloss.batched.policy import BatchedActorCritic
from rl_adaloss.errors import UsageError
from rl_adaloss.ppo import AdaLossPPO

SEEDS = [0, 1, 5]
VARIANTS = {
    "diag": dict(),
    "diag-relu-log-std": dict(activation_fn="relu", log_std_init=-0.5, net_arch=dict(pi=[32], vf=[16, 8])),
    "sde": dict(use_sde=True),
    "sde-per-feature-expln": dict(use_sde=True, full_std=False, use_expln=True, log_std_init=-1.0),
}


def spaces(env_id="Pendulum-v1"):
    env = gymnasium.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def perturbed_sb3(batched: BatchedActorCritic, seed: int):
    """An SB3 policy of the batched one's shapes with random weights (log_std on both sides of 0, for expln)."""
    torch.manual_seed(seed)
    policy = batched.sb3_policy()
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return policy


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPoleSwingUp-v1"])
def test_log_prob_entropy_and_value_match_sb3(variant, env_id):
    obs_space, act_space = spaces(env_id)
    batched = BatchedActorCritic(SEEDS, obs_space, act_space, **VARIANTS[variant])
    sb3 = [perturbed_sb3(batched, 100 + k) for k in range(len(SEEDS))]
    for k, policy in enumerate(sb3):
        batched.load_member(k, policy)
    torch.manual_seed(0)
    obs = torch.randn(len(SEEDS), 50, obs_space.shape[0]) * 2
    actions = torch.randn(len(SEEDS), 50, act_space.shape[0]) * 1.5
    values, log_prob, entropy, valid = batched.evaluate_actions(obs, actions)
    assert bool(valid.all())
    (log_prob.sum() + entropy.sum() + values.sum()).backward()
    for k, policy in enumerate(sb3):
        v, lp, ent = policy.evaluate_actions(obs[k], actions[k])
        torch.testing.assert_close(values[k], v.flatten(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(log_prob[k], lp, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(entropy[k], ent, rtol=1e-6, atol=1e-6)
        # The gradients too: the same function of the same weights.
        (lp.sum() + ent.sum() + v.sum()).backward()
        for name, param in policy.named_parameters():
            # float32 sums over 50 samples in another order: 1e-5 of the gradient's scale.
            scale = max(1.0, float(param.grad.abs().max()))
            assert float((batched.params[name].grad[k] - param.grad).abs().max()) <= 1e-5 * scale, name


@pytest.mark.parametrize("variant", ["diag", "sde"])
def test_members_start_from_ppo_seeded_weights(variant):
    """Member k's initial weights are those of AdaLossPPO(seed=seeds[k]), bit for bit."""
    obs_space, act_space = spaces()
    kwargs = VARIANTS[variant]
    batched = BatchedActorCritic(SEEDS[:2], obs_space, act_space, **kwargs)
    for k, seed in enumerate(SEEDS[:2]):
        model = AdaLossPPO("MlpPolicy", "Pendulum-v1", seed=seed, n_steps=64, batch_size=32, device="cpu",
                           use_sde=kwargs.get("use_sde", False))
        for name, param in model.policy.state_dict().items():
            assert torch.equal(batched.params[name][k], param), name


def test_store_member_round_trip():
    obs_space, act_space = spaces()
    batched = BatchedActorCritic([0, 1], obs_space, act_space, use_sde=True)
    policy = perturbed_sb3(batched, 3)
    batched.load_member(1, policy)
    other = batched.sb3_policy()
    batched.store_member(1, other)
    for (name, a), b in zip(policy.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("full_std", [True, False])
def test_sde_actions_use_sb3s_exploration_matrices(full_std):
    """With SB3's exploration matrices set to the member's, SB3's sampled actions and log-probs are the batched ones."""
    obs_space, act_space = spaces("CartPoleSwingUp-v1")
    batched = BatchedActorCritic([0, 1], obs_space, act_space, use_sde=True, full_std=full_std, log_std_init=-0.7)
    n_envs = 4
    batched.reset_noise(n_envs)
    obs = torch.randn(2, n_envs, obs_space.shape[0])
    actions, values, log_prob, valid = batched.act(obs)
    assert bool(valid.all())
    for k in range(2):
        policy = batched.sb3_policy()
        batched.store_member(k, policy)
        policy.action_dist.exploration_matrices = batched.exploration[k]
        with torch.no_grad():
            a, v, lp = policy(obs[k])
        torch.testing.assert_close(actions[k], a, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(values[k], v.flatten(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(log_prob[k], lp, rtol=1e-6, atol=1e-6)


def test_diag_actions_have_sb3s_log_prob_and_the_deterministic_action_is_clipped():
    obs_space, act_space = spaces()
    batched = BatchedActorCritic([0, 1], obs_space, act_space, log_std_init=1.0)
    obs = torch.randn(2, 8, 3)
    actions, _, log_prob, _ = batched.act(obs)
    for k in range(2):
        policy = batched.sb3_policy()
        batched.store_member(k, policy)
        with torch.no_grad():
            _, lp, _ = policy.evaluate_actions(obs[k], actions[k])
            expected = policy.predict(obs[k].numpy(), deterministic=True)[0]
        torch.testing.assert_close(log_prob[k], lp, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(batched.predict(obs)[k], torch.as_tensor(expected), rtol=1e-6, atol=1e-6)


def test_noise_is_per_member():
    obs_space, act_space = spaces()
    a = BatchedActorCritic([4, 5], obs_space, act_space, use_sde=True)
    b = BatchedActorCritic([6, 4], obs_space, act_space, use_sde=True)
    a.reset_noise(3), b.reset_noise(3)
    assert torch.equal(a.exploration[0], b.exploration[1])


def test_unsupported_options_are_refused():
    obs_space, act_space = spaces()
    with pytest.raises(UsageError, match="squash_output"):
        BatchedActorCritic([0], obs_space, act_space, use_sde=True, squash_output=True)
    with pytest.raises(UsageError, match="Box"):
        BatchedActorCritic([0], obs_space, gymnasium.spaces.Discrete(3))


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "leaky_relu", "gelu", "silu"])
@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
@pytest.mark.parametrize("members", [1, 3])
def test_hand_backward_is_autograds_bit_for_bit(variant, activation, members):
    """BatchedActorCritic.backward (what the update runs) gives the gradients autograd gives, bit for bit."""
    obs_space, act_space = spaces()
    kwargs = {**VARIANTS[variant], "activation_fn": activation}
    batched = BatchedActorCritic(SEEDS[:members], obs_space, act_space, **kwargs)
    with torch.no_grad():
        for param in batched.params.values():  # log_std on both sides of 0 (expln's two branches)
            param.add_(0.3 * torch.randn_like(param))
    torch.manual_seed(1)
    obs, actions = torch.randn(members, 20, 3) * 2, torch.randn(members, 20, 1)
    upstream = [torch.randn(members, 20) for _ in range(3)]  # d loss / d (values, log-prob, entropy)
    outputs = batched.evaluate_actions(obs, actions)[:3]
    sum((g * out).sum() for g, out in zip(upstream, outputs)).backward()
    expected = {name: p.grad for name, p in batched.params.items()}
    saved = {}
    with torch.no_grad():
        batched.evaluate_actions(obs, actions, saved)
    batched.backward(saved, *upstream)
    for name, param in batched.params.items():
        assert torch.equal(param.grad, expected[name]), name
    # Written into views of one (K, P) buffer (as the update's optimizers give them): the same gradients.
    sizes = [p[0].numel() for p in batched.params.values()]
    buffer = torch.empty(members, sum(sizes))
    views = {name: columns.view(p.shape)
             for (name, p), columns in zip(batched.params.items(), buffer.split(sizes, dim=1))}
    batched.backward(saved, *upstream, out=views)
    for name, param in batched.params.items():
        # Bit for bit on the machines measured (MKL writes a product into a transposed view with the same rounding);
        # to float32 rounding wherever another BLAS kernel might order a sum differently.
        assert param.grad is views[name], name
        torch.testing.assert_close(views[name], expected[name], rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("use_sde", [False, True])
@pytest.mark.parametrize("net_arch", [(64, 64), (20, 7), {"pi": [32], "vf": [16, 16]}], ids=["64-64", "20-7", "pi-vf"])
@pytest.mark.parametrize("members,n_envs", [(1, 1), (1, 4), (2, 3), (15, 4)])
@pytest.mark.parametrize("obs_dim,action_dim", [(3, 1), (5, 2)])
def test_fused_rollout_forward_is_the_separate_one_bit_for_bit(use_sde, net_arch, members, n_envs, obs_dim,
                                                               action_dim):
    """act() through fused_operands (both networks in one product per layer) gives the separate networks' numbers."""
    obs_space = gymnasium.spaces.Box(-10.0, 10.0, (obs_dim,))
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (action_dim,))
    policy = BatchedActorCritic(list(range(members)), obs_space, action_space, net_arch=net_arch, use_sde=use_sde,
                                log_std_init=-0.5)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    if use_sde:
        policy.reset_noise(n_envs)
    obs = torch.randn(members, n_envs, obs_space.shape[0]) * 2
    noise_state = policy.rng.counter.clone() if hasattr(policy.rng, "counter") else None
    plain = policy.act(obs)
    if noise_state is not None:
        policy.rng.counter.copy_(noise_state)
    fused = policy.act(obs, fused=policy.fused_operands())
    for a, b in zip(plain, fused):
        # Bit for bit on the machines measured; to float32 rounding wherever the wider product's BLAS kernel might
        # order a sum differently.
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
