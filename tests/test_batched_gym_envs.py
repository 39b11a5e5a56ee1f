"""The batched engine's gymnasium fallback: SB3's DummyVecEnv step for step, refusals, checkpoints of the bullet
env's physics, and a bullet batch that trains, writes its run directories and resumes bit for bit."""

from __future__ import annotations

import csv
import json
import pickle

import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

import envs  # noqa: F401  (registers the bullet swing-up where pybullet is installed)
from rl_adaloss.batched.envs import BatchedPendulum, make_batched_env
from rl_adaloss.batched.gym_envs import GymnasiumVectorEnv
from rl_adaloss.batched.ppo import BatchedPPO
from rl_adaloss.batched.run import default_checkpoint_path, run_batch
from rl_adaloss.config import load_config
from rl_adaloss.errors import UsageError

BULLET = "InvertedPendulumSwingupBulletEnv-v0"
needs_bullet = pytest.mark.skipif(BULLET not in gymnasium.envs.registry, reason="needs pybullet: pip install .[bullet]")


def test_pendulum_through_the_fallback_is_sb3s_dummyvecenv_exactly():
    """Seeds [7, 3], 3 envs each, the same float32 actions (out of bounds included, as the engine hands them
    clipped): observations, rewards, dones, TimeLimit.truncated and terminal observations equal SB3's
    ``make_vec_env("Pendulum-v1", 3, seed=s)`` exactly over 450 steps (two truncations per env)."""
    seeds, n, steps = [7, 3], 3, 450
    batched = make_batched_env("Pendulum-v1", seeds, n, use_gymnasium=True)
    assert isinstance(batched, GymnasiumVectorEnv) and (batched.obs_dim, batched.action_dim) == (3, 1)
    vec = [make_vec_env("Pendulum-v1", n_envs=n, seed=s) for s in seeds]
    obs = batched.reset()
    for k, v in enumerate(vec):
        assert np.array_equal(obs[k].numpy(), v.reset())
    rng = np.random.default_rng(0)
    truncations = 0
    for _ in range(steps):
        actions = np.clip(rng.normal(0.0, 2.0, size=(len(seeds), n, 1)), -2.0, 2.0).astype(np.float32)
        result = batched.step(torch.from_numpy(actions))
        assert result.reward.dtype == torch.float32 and result.obs.dtype == torch.float32
        for k, v in enumerate(vec):
            g_obs, g_rew, g_done, g_infos = v.step(actions[k])
            assert np.array_equal(result.obs[k].numpy(), g_obs)
            assert np.array_equal(result.reward[k].numpy(), g_rew)
            assert np.array_equal(result.done[k].numpy(), g_done)
            for i, info in enumerate(g_infos):
                assert bool(result.time_limit[k, i]) == info.get("TimeLimit.truncated", False)
                if g_done[i]:
                    assert np.array_equal(result.terminal_obs[k, i].numpy(), info["terminal_observation"])
        truncations += int(result.truncated.sum())
    assert truncations == len(seeds) * n * 2


def test_without_a_torch_version_the_fallback_is_used_and_with_one_it_is_not():
    assert isinstance(make_batched_env("Pendulum-v1", [0], 1), BatchedPendulum)
    env = make_batched_env("MountainCarContinuous-v0", [0, 1], 2)
    assert isinstance(env, GymnasiumVectorEnv) and env.reset().shape == (2, 2, 2)
    assert env.max_episode_steps == 999


class ImageEnv(gymnasium.Env):
    """Box actions, but (2, 2) observations: not an MLP's input."""

    observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(2, 2))
    action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(1,))


@pytest.mark.parametrize("env_id, message", [
    ("NoSuchEnv-v0", "'NoSuchEnv-v0' is neither a batched env"),
    ("CartPole-v1", "continuous (Box) actions only; CartPole-v1 has Discrete(2)"),
    ("ImageObservations-v0", "flat Box observations only; ImageObservations-v0 has Box(0.0, 1.0, (2, 2)"),
])
def test_what_the_fallback_cannot_run_is_refused_in_one_line(env_id, message):
    if env_id == "ImageObservations-v0" and env_id not in gymnasium.envs.registry:
        gymnasium.register(env_id, entry_point=ImageEnv)
    with pytest.raises(UsageError) as error:
        make_batched_env(env_id, [0], 1)
    assert message in str(error.value) and "\n" not in str(error.value)


@needs_bullet
def test_the_bullet_envs_state_continues_its_episode_bit_for_bit():
    """get_state() mid-episode (the slider driven against its limit), pickled, set into a fresh env that was never
    reset: the next 300 observations are the original's exactly, and so is the next reset (the generator)."""
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1.5, 1.5, size=(500, 1)).astype(np.float32)
    actions[:150] = 1.0  # pushed to the slider's limit x = 1
    env = gymnasium.make(BULLET).unwrapped
    env.reset(seed=4)
    for a in actions[:200]:
        x = env.step(a)[0][0]
    assert x > 0.9
    state = pickle.loads(pickle.dumps(env.get_state()))
    fresh = gymnasium.make(BULLET).unwrapped
    fresh.set_state(state)
    for a in actions[200:]:
        assert np.array_equal(env.step(a)[0], fresh.step(a)[0])
    assert np.array_equal(env.reset()[0], fresh.reset()[0])
    env.close(), fresh.close()


TINY = ["n_envs=1", "ppo.n_steps=128", "ppo.batch_size=64", "ppo.n_epochs=2", "total_timesteps=1280",
        "eval.freq=640", "eval.episodes=1", "normalize=true"]


@needs_bullet
def test_a_bullet_batch_trains_and_resumes_bit_exact(tmp_path, monkeypatch):
    """K=2 on the bullet swing-up through the fallback (1280 steps: one 1000-step truncation per member): each
    member writes a finished run directory; interrupted in its fourth update and run again, the batch writes the
    uninterrupted one's evaluations.csv, Monitor rows and results."""
    configs = [load_config("bullet_swingup_adamloss", [f"seed={s}", f"optimizer.b0={b0}", *TINY])
               for s, b0 in ((0, 1e4), (1, 1e8))]
    straight = [tmp_path / "u" / name for name in "ab"]
    resumed = [tmp_path / "i" / name for name in "ab"]
    reference = run_batch(configs, straight)
    for result, run_dir in zip(reference, straight):
        assert result["status"] == "finished" and result["timesteps"] == 1280
        assert json.loads((run_dir / "result.json").read_text()) == result
        rows = list(csv.DictReader((run_dir / "evaluations.csv").open()))
        assert [int(r["timesteps"]) for r in rows] == [0, 640, 1280]
        assert (run_dir / "model.zip").is_file() and (run_dir / "vecnormalize.pkl").is_file()
        monitor = (run_dir / "monitor" / "0.monitor.csv").read_text().splitlines()
        assert [line.split(",")[1] for line in monitor[2:]] == ["1000"]  # the one truncated episode

    calls, train = [], BatchedPPO.train

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return train(self, *args, **kwargs)

    monkeypatch.setattr(BatchedPPO, "train", interrupted)
    assert [r["status"] for r in run_batch(configs, resumed)] == ["interrupted"] * 2
    assert default_checkpoint_path(resumed).is_file()
    monkeypatch.setattr(BatchedPPO, "train", train)
    second = run_batch(configs, resumed)
    for a, b, x, y in zip(straight, resumed, reference, second):
        assert (a / "evaluations.csv").read_text() == (b / "evaluations.csv").read_text()
        rows = lambda path: [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()[1:]]  # noqa: E731
        assert rows(a / "monitor" / "0.monitor.csv") == rows(b / "monitor" / "0.monitor.csv")
        strip = lambda r: {key: v for key, v in r.items() if key != "wall_time_s"}  # noqa: E731
        assert strip(x) == strip(y)


def test_an_evaluation_through_the_fallback_is_sb3s_evaluate_policy():
    """Two evaluations of two members (seeds 5 and 6: adjacent, so side-by-side eval envs seeded seed + 10000 + i
    would share streams) after one rollout and update, through the fallback: each member's episode returns and
    lengths equal SB3's ``evaluate_policy`` on ``make_vec_env(..., n_envs=1, seed=seed + 10000)`` with the member's
    weights and frozen observation statistics, in order, and the second evaluation goes on with the env's generator
    as SB3's does."""
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from rl_adaloss.batched.export import member_model
    from rl_adaloss.batched.ppo import EVAL_SEED_OFFSET, BatchedEvaluator
    from rl_adaloss.batched.run import build_engine

    configs = []
    for seed in (5, 6):
        config = load_config("pendulum_adam.yaml", [f"seed={seed}", "total_timesteps=2048", "eval.episodes=3"])
        configs.append(config)
    engine = build_engine(configs, use_gymnasium=True)
    engine.learn()
    evaluator = BatchedEvaluator(engine, "Pendulum-v1", 3, engine.env.settings)
    ours = [evaluator.evaluate() and (evaluator.episode_returns, evaluator.episode_lengths) for _ in range(2)]
    for k, config in enumerate(configs):
        model = member_model(engine, k, config)
        env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=config["seed"] + EVAL_SEED_OFFSET),
                           training=False, norm_reward=False, clip_obs=engine.env.settings.clip_obs,
                           epsilon=engine.env.settings.epsilon)
        env.obs_rms.mean = engine.env.obs_rms.mean[k].numpy().astype(np.float64)
        env.obs_rms.var = engine.env.obs_rms.var[k].numpy().astype(np.float64)
        for returns, lengths in ours:
            theirs, their_lengths = evaluate_policy(model, env, n_eval_episodes=3, deterministic=True,
                                                    return_episode_rewards=True)
            assert lengths[k] == their_lengths == [200, 200, 200]
            np.testing.assert_allclose(returns[k], theirs, rtol=1e-4)
    assert ours[0][0][0] != ours[0][0][1]  # the members' evaluations are their own
