"""One whole PPO update of the batched engine against AdaLossPPO.train(), member by member.

Each member has an AdaLossPPO twin (same seed, so the same initial weights; its own lr/b0/alpha). The twin collects
a real rollout on Pendulum-v1 (VecNormalize, 2 envs); the engine gets that buffer as it is, and the twin's minibatch
orders (numpy's permutations, replayed). After one update each, every member's parameters and optimizer state
(moments, step counts, accumulator) equal its twin's to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from rl_adaloss.batched.optim import has_member_axis
from rl_adaloss.batched.ppo import BatchedPPO, NormalizeSettings, PPOSettings, Rollout
from rl_adaloss.optim import OPTIMIZERS, AdamLoss
from rl_adaloss.ppo import AdaLossPPO

N_ENVS, N_STEPS, BATCH, EPOCHS = 2, 50, 32, 2  # 100 samples: minibatches of 32, 32, 32 and 4

CASES = {
    "adam-separate": ("adam", "separate", [dict(lr=3e-4, eps=1e-5), dict(lr=3e-3, eps=1e-5)], {}),
    "adam-joint-sde": (
        "adam",
        "joint",
        [dict(lr=1e-3, eps=1e-5), dict(lr=1e-4, eps=1e-5)],
        dict(use_sde=True, sde_sample_freq=4),
    ),
    "adamloss-separate-sde": (
        "adamloss",
        "separate",
        [
            dict(lr=1.0, b0=1e6, alpha=1.0, c=0.0, eps=1e-5, betas=(0.9, 0.99)),
            dict(lr=1.0, b0=1e4, alpha=0.1, c=0.5, eps=1e-5, betas=(0.9, 0.99)),
        ],
        dict(use_sde=True, sde_sample_freq=4),
    ),
    "adamloss-joint-clipvf-ent": (
        "adamloss",
        "joint",
        [dict(lr=1.0, b0=1e5, alpha=1.0, eps=1e-5), dict(lr=0.5, b0=1e7, alpha=2.0, eps=1e-5)],
        dict(clip_range_vf=0.2, ent_coef=0.01, max_grad_norm=0.3),
    ),
    "adamsqrt-separate-target-kl": (
        "adamsqrt",
        "separate",
        [dict(lr=1.0, b0=1e8, eps=1e-5), dict(lr=1.0, b0=1e3, eps=1e-5)],
        dict(target_kl=0.002),
    ),
}


def twin(seed: int, name: str, layout: str, kwargs: dict, ppo: dict) -> AdaLossPPO:
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=N_ENVS, seed=seed), gamma=0.9)
    spec = dict(kwargs)
    lr = spec.pop("lr")
    model = AdaLossPPO(
        "MlpPolicy",
        env,
        learning_rate=lr,
        n_steps=N_STEPS,
        batch_size=BATCH,
        n_epochs=EPOCHS,
        gamma=0.9,
        seed=seed,
        device="cpu",
        policy_kwargs=dict(
            optimizer_class=OPTIMIZERS[name], optimizer_kwargs=spec, separate_optimizers=layout == "separate"
        ),
        **ppo,
    )
    return model


def collect(model: AdaLossPPO) -> None:
    _, callback = model._setup_learn(10 * N_STEPS * N_ENVS, callback=None)
    callback.on_training_start(locals(), globals())
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=N_STEPS)


def as_members(models, attr: str) -> torch.Tensor:
    """The twins' buffers, stacked: (K, n_steps, n_envs, ...)."""
    return torch.stack([torch.as_tensor(getattr(m.rollout_buffer, attr)) for m in models]).float()


def rollout_of(models, *computed: str) -> Rollout:
    """The twins' rollout buffers as one member-stacked Rollout; ``computed``: the GAE fields SB3 filled in."""
    fields = dict(obs="observations", actions="actions", rewards="rewards", episode_starts="episode_starts",
                  values="values", log_probs="log_probs")
    return Rollout(**{name: as_members(models, attr) for name, attr in fields.items()},
                   **{name: as_members(models, name) for name in computed})


@pytest.mark.parametrize("loop", [False, True], ids=["member-axis", "per-member-loop"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_one_update_equals_adalossppo_train(case, loop):
    name, layout, member_kwargs, ppo = CASES[case]
    seeds = [3, 4]
    models = [twin(s, name, layout, kw, ppo) for s, kw in zip(seeds, member_kwargs)]
    for model in models:
        collect(model)
    settings = PPOSettings(
        n_steps=N_STEPS, batch_size=BATCH, n_epochs=EPOCHS, gamma=0.9, **{k: v for k, v in ppo.items()}
    )
    roles = ["actor", "critic"] if layout == "separate" else ["joint"]
    engine = BatchedPPO(
        "Pendulum-v1",
        seeds,
        N_ENVS,
        settings,
        dict(),
        NormalizeSettings(obs=True, reward=True),
        name,
        layout,
        {role: [dict(kw) for kw in member_kwargs] for role in roles},
        total_timesteps=10 * N_STEPS * N_ENVS,
        force_loop_optimizer=loop,
    )
    assert all(o.member_axis != loop for o in engine.optimizers.values()) or not has_member_axis(AdamLoss)
    for k, model in enumerate(models):
        for pname, param in model.policy.state_dict().items():  # same seed, same initial weights
            assert torch.equal(engine.policy.params[pname][k], param), pname
    engine.rollout = rollout_of(models, "advantages", "returns")
    # Replay each twin's numpy permutations: train() draws one per epoch, nothing else.
    orders = []
    for seed in seeds:
        np.random.seed(1000 + seed)
        orders.append([torch.as_tensor(np.random.permutation(N_ENVS * N_STEPS)) for _ in range(EPOCHS)])
    engine.train(permutations=lambda epoch: torch.stack([o[epoch] for o in orders]))
    for seed, model in zip(seeds, models):
        np.random.seed(1000 + seed)
        model.train()

    worst = 0.0
    for k, model in enumerate(models):
        for pname, param in model.policy.state_dict().items():
            diff = float((engine.policy.params[pname][k].detach() - param).abs().max())
            worst = max(worst, diff)
            assert diff <= 1e-5, (pname, diff)
        twin_optimizers = model.policy.optimizers()
        for role, optimizer in engine.optimizers.items():
            reference = twin_optimizers[role]
            params = (
                model.policy.actor_parameters()
                if role == "actor"
                else model.policy.critic_parameters()
                if role == "critic"
                else list(model.policy.parameters())
            )
            for state, param in zip(optimizer.member_state(k), params):
                expected = reference.state[param]
                assert set(state) == set(expected)
                for key, value in expected.items():
                    diff = float(
                        (torch.as_tensor(state[key], dtype=torch.float64) - torch.as_tensor(value, dtype=torch.float64))
                        .abs()
                        .max()
                    )
                    assert diff <= 1e-5 * max(1.0, float(torch.as_tensor(value).abs().max())), (role, key, diff)
            if hasattr(reference, "b"):
                assert optimizer.b[k] == pytest.approx(reference.b[0], rel=1e-6)
            lr = reference.effective_lr[0] if hasattr(reference, "effective_lr") else reference.param_groups[0]["lr"]
            assert optimizer.effective_lr[k] == pytest.approx(lr, rel=1e-6)
    steps = [
        int(next(iter(m.policy.optimizers().values())).state[next(iter(m.policy.parameters()))]["step"]) for m in models
    ]
    if "target_kl" in ppo:  # the case is set up so that target_kl stops one member early and not the other
        assert min(steps) < EPOCHS * 4 and max(steps) == EPOCHS * 4, steps
    print(f"{case}: steps per member {steps}, max |param difference| = {worst:.2e}")


def test_gae_and_normalization_match_sb3_on_the_same_rollout():
    """GAE over SB3's own rewards/values/episode starts gives SB3's advantages and returns."""
    models = [twin(s, "adam", "separate", dict(lr=3e-4), {}) for s in (0, 1)]
    for model in models:
        collect(model)
    engine = BatchedPPO(
        "Pendulum-v1",
        [0, 1],
        N_ENVS,
        PPOSettings(n_steps=N_STEPS, gamma=0.9),
        dict(),
        NormalizeSettings(),
        "adam",
        "separate",
        {"actor": [dict(lr=3e-4)] * 2, "critic": [dict(lr=3e-4)] * 2},
        total_timesteps=1000,
    )
    buf = rollout_of(models)
    last_values = torch.stack(
        [m.policy.predict_values(m.policy.obs_to_tensor(m._last_obs)[0]).flatten().detach() for m in models]
    )
    dones = torch.stack([torch.as_tensor(m._last_episode_starts, dtype=torch.float32) for m in models])
    engine.compute_returns_and_advantage(buf, last_values, dones)
    torch.testing.assert_close(buf.advantages, as_members(models, "advantages"), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(buf.returns, as_members(models, "returns"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("loop", [False, True], ids=["member-axis", "per-member-loop"])
def test_adamloss_accumulator_grows_as_adalossppo_s(loop):
    """AdaLossPPO's AdamLoss keeps b as a Python float: from b0 = 1e7, 20 losses of 0.3 make it 1e7 + 6."""
    from rl_adaloss.batched.optim import MemberOptimizer

    param = torch.nn.Parameter(torch.zeros(2, 3))
    optimizer = MemberOptimizer("adamloss", [param], [dict(lr=1.0, b0=1e7, alpha=1.0, c=0.0)] * 2, force_loop=loop)
    for _ in range(20):
        param.grad = torch.ones(2, 3)
        optimizer.step(torch.tensor([0.3, 0.3]), torch.tensor([True, True]))
    assert optimizer.b == pytest.approx([1e7 + 6.0] * 2, abs=1e-3)


def test_threads_while_learning_and_the_default():
    """``threads`` sets torch's threads during learn() and restores them after; the default is one thread per 128
    envs, within the cores."""
    import torch as _torch

    from rl_adaloss.batched.ppo import default_threads

    assert [default_threads(k, 4, cores=2) for k in (1, 16, 32, 64, 256)] == [1, 1, 1, 2, 2]
    assert default_threads(256, 4, cores=16) == 8 and default_threads(4096, 4, cores=16) == 16
    seen = []
    engine = BatchedPPO(
        "Pendulum-v1",
        [0],
        1,
        PPOSettings(n_steps=8, batch_size=8, n_epochs=1),
        dict(),
        NormalizeSettings(),
        "adam",
        "separate",
        {"actor": [dict(lr=1e-3)], "critic": [dict(lr=1e-3)]},
        total_timesteps=16,
        threads=1,
    )
    before = _torch.get_num_threads()
    _torch.set_num_threads(2)
    try:
        engine.learn(on_update=lambda e: seen.append(_torch.get_num_threads()))
        assert seen == [1, 1] and _torch.get_num_threads() == 2
    finally:
        _torch.set_num_threads(before)
