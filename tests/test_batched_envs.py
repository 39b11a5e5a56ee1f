"""The batched torch envs against gymnasium's, through SB3's DummyVecEnv: same states, same actions, same steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

import envs  # noqa: F401  (registers CartPoleSwingUp-v1)
from rl_adaloss.batched.envs import BatchedCartPoleSwingUp, BatchedPendulum, make_batched_env
from rl_adaloss.errors import UsageError

K, N = 2, 3


def _set_states(vec_env, batched, k, which=None):
    for i, env in enumerate(vec_env.envs):
        if which is None or which[i]:
            env.unwrapped.state = batched.state[k, i].numpy().copy()


@pytest.mark.parametrize("cls,steps,scale", [(BatchedPendulum, 430, 2.5), (BatchedCartPoleSwingUp, 1100, 1.3)],
                         ids=["pendulum", "cartpole_swingup"])
def test_steps_match_gymnasium_with_autoreset_termination_and_truncation(cls, steps, scale):
    """Per member, a DummyVecEnv of the gymnasium env is put in the batched env's states and fed the same (float32,
    out-of-bounds included) actions. Observations, rewards, dones, TimeLimit.truncated and terminal observations
    agree to 1e-6 over whole episodes (the states are set only at episode starts); after each autoreset, the
    gymnasium env is moved to the batched env's new episode start."""
    batched = cls(seeds=[0, 1], n_envs=N)
    batched.reset()
    vec = [make_vec_env(cls.env_id, n_envs=N, seed=k) for k in range(K)]
    for k in range(K):
        vec[k].reset()
        _set_states(vec[k], batched, k)
    rng = np.random.default_rng(0)
    seen = dict(terminated=0, truncated=0)
    for t in range(steps):
        # CartPole: push each cart one way for long stretches, so that some leave the track (termination).
        if cls is BatchedCartPoleSwingUp:
            sign = np.where((np.arange(K * N).reshape(K, N, 1) + t // 150) % 3 == 0, 1.0, -0.3)
            actions = sign * scale * rng.uniform(0.5, 1.0, size=(K, N, 1))
            actions[:, 0] = rng.uniform(-0.05, 0.05, size=(K, 1))  # env 0 stays on the track: truncated at 500
            actions = actions.astype(np.float32)
        else:
            actions = rng.uniform(-scale, scale, size=(K, N, 1)).astype(np.float32)
        result = batched.step(torch.from_numpy(actions))
        for k in range(K):
            g_obs, g_rew, g_done, g_infos = vec[k].step(actions[k])
            np.testing.assert_array_equal(result.done[k].numpy(), g_done)
            np.testing.assert_allclose(result.reward[k].numpy(), g_rew, rtol=1e-6, atol=1e-6)
            for i, info in enumerate(g_infos):
                assert bool(result.time_limit[k, i]) == info.get("TimeLimit.truncated", False)
                if g_done[i]:
                    np.testing.assert_allclose(result.terminal_obs[k, i].numpy(), info["terminal_observation"],
                                               rtol=1e-6, atol=1e-6)
            live = ~g_done
            np.testing.assert_allclose(result.obs[k].numpy()[live], g_obs[live], rtol=1e-6, atol=1e-6)
            # gymnasium reset its done envs from its own generator: move them to the batched env's new starts.
            _set_states(vec[k], batched, k, which=g_done)
            if g_done.any():
                g_obs = np.stack([env.unwrapped._obs() if hasattr(env.unwrapped, "_obs")
                                  else env.unwrapped._get_obs() for env in vec[k].envs])
                np.testing.assert_allclose(result.obs[k].numpy(), g_obs, rtol=1e-6, atol=1e-6)
        seen["terminated"] += int(result.terminated.sum())
        seen["truncated"] += int(result.truncated.sum())
    assert seen["truncated"] > 0
    if cls is BatchedCartPoleSwingUp:
        assert seen["terminated"] > 0


def test_truncation_counter_follows_time_limit():
    env = BatchedPendulum(seeds=[3], n_envs=2)
    env.reset()
    for t in range(1, 201):
        result = env.step(torch.zeros(1, 2, 1))
        assert bool(result.truncated.all()) == (t == 200)
    assert int(env.elapsed.max()) == 0


def test_members_draw_from_their_own_generators():
    """A member's resets depend on its seed only, not on its neighbours."""
    a = BatchedCartPoleSwingUp(seeds=[7, 8], n_envs=4)
    b = BatchedCartPoleSwingUp(seeds=[9, 7], n_envs=4)
    a.reset(), b.reset()
    assert torch.equal(a.state[0], b.state[1])
    assert not torch.equal(a.state[0], a.state[1])


def test_reset_distributions():
    pend = BatchedPendulum(seeds=[0], n_envs=4000)
    pend.reset()
    th, thdot = pend.state[0].unbind(-1)
    assert th.abs().max() <= np.pi and thdot.abs().max() <= 1.0
    assert abs(float(th.mean())) < 0.1 and abs(float(th.std()) - np.pi / np.sqrt(3)) < 0.05
    cart = BatchedCartPoleSwingUp(seeds=[0], n_envs=4000)
    cart.reset()
    mean, std = cart.state[0].mean(0), cart.state[0].std(0)
    assert torch.allclose(mean, torch.tensor([0.0, 0.0, np.pi, 0.0], dtype=torch.float64), atol=0.02)
    assert torch.allclose(std, torch.full((4,), 0.2, dtype=torch.float64), atol=0.01)


def test_unknown_env_is_refused():
    with pytest.raises(UsageError, match="neither a batched env"):
        make_batched_env("NoSuchEnv-v0", seeds=[0], n_envs=1)
