"""Per-member VecNormalize and the rollout's truncation bootstrap against SB3's VecNormalize over gymnasium envs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import envs  # noqa: F401
from rl_adaloss.batched.envs import BatchedCartPoleSwingUp, BatchedPendulum
from rl_adaloss.batched.ppo import BatchedPPO, BatchedVecNormalize, NormalizeSettings, PPOSettings

K, N = 2, 2


def _follow(vec, batched, k):
    """Make the gymnasium envs of member k start their episodes where the batched env starts them."""
    for i, env in enumerate(vec.envs):
        base = env.unwrapped

        def reset(*, seed=None, options=None, base=base, i=i):
            base.state = batched.state[k, i].numpy().copy()
            return (base._obs() if hasattr(base, "_obs") else base._get_obs()), {}

        base.reset = reset
        base.state = batched.state[k, i].numpy().copy()


@pytest.mark.parametrize(
    "cls,steps", [(BatchedPendulum, 420), (BatchedCartPoleSwingUp, 300)], ids=["pendulum", "cartpole"]
)
def test_vecnormalize_matches_sb3(cls, steps):
    settings = NormalizeSettings(obs=True, reward=True, clip_obs=5.0, clip_reward=3.0, gamma=0.9)
    batched = BatchedVecNormalize(cls(seeds=[0, 1], n_envs=N), settings)
    first = batched.reset()
    vecs = []
    for k in range(K):
        vec = make_vec_env(cls.env_id, n_envs=N, seed=k)
        vec.reset()
        _follow(vec, batched.env, k)
        norm = VecNormalize(vec, gamma=0.9, clip_obs=5.0, clip_reward=3.0)
        raw = batched.env.observe()[k].numpy()
        norm.obs_rms.update(raw)  # what VecNormalize.reset does with the first observations
        np.testing.assert_allclose(first[k].numpy(), norm.normalize_obs(raw), rtol=1e-5, atol=1e-5)
        vecs.append(norm)
    rng = np.random.default_rng(1)
    high = cls.action_high
    for _ in range(steps):
        actions = rng.uniform(-1.5 * high, 1.5 * high, size=(K, N, 1)).astype(np.float32)
        result = batched.step(torch.from_numpy(actions))
        for k, norm in enumerate(vecs):
            obs, rewards, dones, infos = norm.step(actions[k])
            np.testing.assert_array_equal(result.done[k].numpy(), dones)
            np.testing.assert_allclose(result.obs[k].numpy(), obs, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(result.reward[k].numpy(), rewards, rtol=1e-5, atol=1e-5)
            for i, info in enumerate(infos):
                if dones[i]:
                    np.testing.assert_allclose(
                        result.terminal_obs[k, i].numpy(), info["terminal_observation"], rtol=1e-5, atol=1e-5
                    )
            np.testing.assert_allclose(batched.obs_rms.mean[k].numpy(), norm.obs_rms.mean, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(batched.obs_rms.var[k].numpy(), norm.obs_rms.var, rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(float(batched.ret_rms.var[k]), norm.ret_rms.var, rtol=1e-5)


def test_frozen_statistics_do_not_move():
    settings = NormalizeSettings(obs=True, reward=False)
    train = BatchedVecNormalize(BatchedPendulum([0], 2), settings)
    train.reset()
    for _ in range(5):
        train.step(torch.zeros(1, 2, 1))
    evaluation = BatchedVecNormalize(BatchedPendulum([9], 3), settings, training=False)
    evaluation.freeze_copy_stats_from(train)
    mean = evaluation.obs_rms.mean.clone()
    evaluation.reset()
    result = evaluation.step(torch.ones(1, 3, 1))
    assert torch.equal(evaluation.obs_rms.mean, mean)
    assert result.reward.dtype == torch.float32 and float(result.reward.max()) <= 0  # raw Pendulum rewards


def test_rollout_bootstraps_truncated_episodes_from_the_terminal_value():
    """Pendulum truncates every env at its 200th step: there, the stored reward is the normalized reward plus gamma
    times the value of the (normalized) terminal observation; elsewhere it is the normalized reward."""
    ppo = PPOSettings(n_steps=120, batch_size=60, n_epochs=1, gamma=0.9)
    engine = BatchedPPO(
        "Pendulum-v1",
        [0, 1],
        2,
        ppo,
        {},
        NormalizeSettings(obs=True, reward=True, gamma=0.9),
        "adam",
        "separate",
        {"actor": [dict(lr=1e-3)] * 2, "critic": [dict(lr=1e-3)] * 2},
        total_timesteps=10_000,
    )
    engine.collect_rollouts()
    results = []
    original = engine.env.step
    engine.env.step = lambda actions: results.append(original(actions)) or results[-1]
    buf = engine.collect_rollouts()  # steps 121..240 of the episodes: the 200th is index 79
    assert engine.num_timesteps == 480
    for step, result in enumerate(results):
        expected = result.reward
        if step == 79:
            assert bool(result.time_limit.all()) and bool(buf.episode_starts[:, step + 1].all())
            expected = result.reward + 0.9 * engine.policy.predict_values(result.terminal_obs)
        else:
            assert not bool(result.done.any())
        torch.testing.assert_close(buf.rewards[:, step], expected, rtol=0, atol=0)
