"""AdaLossPPO where SB3's PPO is expected: its files, policies, logger, callbacks and tools.

A small, representative set of SB3's documented PPO usage patterns, written by us from SB3's documentation (not
copied from its test suite), each run in both layouts: ``separate`` (ours: two optimizers) and ``joint`` (SB3's one
optimizer). The environments are tiny (16-step rollouts, 36x36 images), so every test takes a second or two.
"""

from __future__ import annotations

import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from rl_adaloss.optim import AdamLoss
from rl_adaloss.ppo import (
    AdaLossPPO,
    SeparateOptimizersCnnPolicy,
    SeparateOptimizersMultiInputPolicy,
    SeparateOptimizersPolicy,
)

LAYOUTS = ["separate", "joint"]
TINY = dict(n_steps=16, batch_size=8, n_epochs=2, seed=0, device="cpu", verbose=0)
ADAMLOSS = dict(optimizer_class=AdamLoss, optimizer_kwargs=dict(b0=100.0, alpha=1.0, eps=1e-5))


class ImageEnv(gym.Env):
    """36x36x1 uint8 images (the smallest NatureCNN takes), 3 discrete actions, 10-step episodes."""

    observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def step(self, action):
        self.t += 1
        return self._obs(), float(action == 1), False, self.t >= 10, {}


class DictEnv(gym.Env):
    """Dict observations, an image and a vector, and a 2-d continuous action; 10-step episodes."""

    observation_space = spaces.Dict({"image": spaces.Box(0, 255, (36, 36, 1), np.uint8),
                                     "vector": spaces.Box(-1.0, 1.0, (3,), np.float32)})
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return {"image": self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8),
                "vector": self.np_random.uniform(-1, 1, 3).astype(np.float32)}

    def step(self, action):
        self.t += 1
        return self._obs(), -float(np.square(action).sum()), False, self.t >= 10, {}


#: policy alias -> (environment factory, the policy class it gives)
POLICIES = {
    "MlpPolicy": (lambda: gym.make("Pendulum-v1"), SeparateOptimizersPolicy),
    "CnnPolicy": (ImageEnv, SeparateOptimizersCnnPolicy),
    "MultiInputPolicy": (DictEnv, SeparateOptimizersMultiInputPolicy),
}


def make_model(policy: str = "MlpPolicy", layout: str = "separate", env=None, policy_kwargs=None,
               **overrides) -> AdaLossPPO:
    kwargs = {**TINY, "learning_rate": 0.01, **overrides}
    policy_kwargs = {**ADAMLOSS, "separate_optimizers": layout == "separate", **(policy_kwargs or {})}
    return AdaLossPPO(policy, env if env is not None else POLICIES[policy][0](), policy_kwargs=policy_kwargs,
                      **kwargs)


def ids(params) -> set[int]:
    return {id(p) for p in params}


def optimizer_ids(optimizer) -> set[int]:
    return ids(p for group in optimizer.param_groups for p in group["params"])


def assert_same_state(a: dict, b: dict, where: str = "") -> None:
    """Two (nested) state dicts are equal, tensors bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def sample_observations(env, n: int = 5):
    space = env.observation_space
    space.seed(1)
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        return {key: np.stack([s[key] for s in samples]) for key in space.spaces}
    return np.stack(samples)


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# -- the save format: stock PPO.load opens our files ------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("policy", list(POLICIES))
def test_stock_ppo_load_opens_our_model(tmp_path, policy, layout):
    model = make_model(policy, layout).learn(32)
    path = tmp_path / "model.zip"
    model.save(path)
    # The entries stock PPO's loader expects, and no others.
    with zipfile.ZipFile(path) as archive:
        assert {"policy.pth", "policy.optimizer.pth"} <= set(archive.namelist())
        assert not any("actor_optimizer" in name or "critic_optimizer" in name for name in archive.namelist())

    stock = PPO.load(path, device="cpu")
    assert type(stock) is PPO and type(stock.policy) is POLICIES[policy][1]
    observations = sample_observations(model.get_env())
    expected, _ = model.predict(observations, deterministic=True)
    actions, _ = stock.predict(observations, deterministic=True)
    np.testing.assert_array_equal(actions, expected)
    assert_same_state(stock.policy.state_dict(), model.policy.state_dict())
    # Stock PPO's loader restores the optimizers too: policy.optimizer holds both in the separate layout.
    assert_same_state(stock.policy.optimizer.state_dict(), model.policy.optimizer.state_dict())

    ours = AdaLossPPO.load(path, device="cpu")
    assert type(ours.policy) is POLICIES[policy][1]
    assert ours.policy.separate_optimizers is (layout == "separate")
    for role, optimizer in model.policy.optimizers().items():
        reloaded = ours.policy.optimizers()[role]
        assert type(reloaded) is AdamLoss
        assert reloaded.b == optimizer.b and reloaded.b[0] > 100.0
        assert_same_state(reloaded.state_dict(), optimizer.state_dict(), role)
    np.testing.assert_array_equal(ours.predict(observations, deterministic=True)[0], expected)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stock_ppo_load_opens_a_runs_model(tmp_path, capsys, layout):
    """The model.zip that ``python -m rl_adaloss.train`` writes (what rl-zoo's enjoy and Hub tools read)."""
    from rl_adaloss.train import main

    code = main(["n_envs=1", "ppo.n_steps=64", "ppo.batch_size=32", "ppo.n_epochs=1", "eval.freq=100000",
                 "eval.episodes=1", "device=cpu", "total_timesteps=128", f"optimizer.layout={layout}", "--quiet",
                 "--out-dir", str(tmp_path), "--name", "run"])
    capsys.readouterr()
    assert code == 0
    path = tmp_path / "run" / "model.zip"
    stock, ours = PPO.load(path, device="cpu"), AdaLossPPO.load(path, device="cpu")
    assert stock.num_timesteps == ours.num_timesteps == 128
    observations = sample_observations(gym.make("Pendulum-v1"), 8)
    np.testing.assert_array_equal(stock.predict(observations, deterministic=True)[0],
                                  ours.predict(observations, deterministic=True)[0])
    assert_same_state(stock.policy.optimizer.state_dict(), ours.policy.optimizer.state_dict())
    # rl-zoo's enjoy and record_video load with these replacements (schedules pickled by another Python version).
    zoo = PPO.load(path, device="cpu", custom_objects={"learning_rate": 0.0, "lr_schedule": lambda _: 0.0,
                                                       "clip_range": lambda _: 0.0})
    np.testing.assert_array_equal(zoo.predict(observations, deterministic=True)[0],
                                  ours.predict(observations, deterministic=True)[0])


def test_stock_ppo_refuses_to_train_the_separate_layout(tmp_path):
    make_model().learn(16).save(tmp_path / "model.zip")
    stock = PPO.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"), device="cpu")
    with pytest.raises(RuntimeError, match="each with its own loss.*AdaLossPPO"):
        stock.learn(16)


def test_files_saved_with_two_optimizer_entries_still_load(tmp_path, monkeypatch):
    """Files written before the optimizers were saved as one policy.optimizer entry."""
    model = make_model().learn(32)
    with monkeypatch.context() as patch:
        patch.setattr(AdaLossPPO, "_get_torch_save_params", lambda self: (
            ["policy", "policy.actor_optimizer", "policy.critic_optimizer"], []))
        model.save(tmp_path / "old.zip")
    with zipfile.ZipFile(tmp_path / "old.zip") as archive:
        assert "policy.actor_optimizer.pth" in archive.namelist()
    loaded = AdaLossPPO.load(tmp_path / "old.zip", device="cpu")
    assert_same_state(loaded.policy.optimizer.state_dict(), model.policy.optimizer.state_dict())


def test_get_and_set_parameters_round_trip():
    model, other = make_model().learn(16), make_model(seed=1)
    other.set_parameters(model.get_parameters(), exact_match=True)
    assert_same_state(other.policy.state_dict(), model.policy.state_dict())
    assert_same_state(other.policy.optimizer.state_dict(), model.policy.optimizer.state_dict())


# -- policy aliases: CnnPolicy, MultiInputPolicy -----------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("policy", ["CnnPolicy", "MultiInputPolicy"])
def test_cnn_and_multi_input_policies(policy, layout):
    model = make_model(policy, layout)
    net = model.policy
    assert type(net) is POLICIES[policy][1]
    if layout == "joint":
        assert net.share_features_extractor  # SB3's default
        assert optimizer_ids(net.optimizer) == ids(net.parameters())
    else:
        # Each network gets its own features extractor, owned by its optimizer.
        assert not net.share_features_extractor
        assert net.pi_features_extractor is not net.vf_features_extractor
        actor, critic = optimizer_ids(net.actor_optimizer), optimizer_ids(net.critic_optimizer)
        assert ids(net.pi_features_extractor.parameters()) <= actor
        assert ids(net.vf_features_extractor.parameters()) <= critic
        assert not actor & critic and actor | critic == ids(net.parameters())
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    model.learn(32)
    assert model.num_timesteps == 32
    changed = [name for name, p in net.named_parameters() if not torch.equal(before[name], p)]
    assert any("features_extractor" in name for name in changed)
    assert any(name.startswith("value_net") for name in changed)


@pytest.mark.parametrize("policy", ["CnnPolicy", "MultiInputPolicy"])
def test_a_shared_extractor_with_weights_is_the_one_refusal(policy):
    with pytest.raises(ValueError, match=r"^separate optimizers need.*features_extractor\..*"
                                         r"\(use share_features_extractor=False, or separate_optimizers=False\)$"):
        make_model(policy, "separate", policy_kwargs=dict(share_features_extractor=True))


def test_image_observations_are_transposed_and_normalized_as_in_sb3():
    model = make_model("CnnPolicy")
    # SB3 wraps channel-last images in VecTransposeImage, and scales them to [0, 1] in the policy.
    assert model.observation_space.shape == (1, 36, 36)
    assert model.policy.normalize_images
    action, _ = model.predict(ImageEnv().reset(seed=0)[0], deterministic=True)
    assert np.shape(action) == () and int(action) in range(3)


# -- the logger --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_values_are_readable_after_learn(layout):
    model = make_model(layout=layout).learn(32)
    values = model.logger.name_to_value
    for key in ("entropy_loss", "policy_gradient_loss", "value_loss", "approx_kl", "clip_fraction", "loss",
                "explained_variance", "n_updates", "clip_range", "std", "actor_loss", "critic_loss",
                "actor_effective_lr", "critic_effective_lr", "actor_b", "critic_b"):
        assert f"train/{key}" in values, key
    assert values["train/loss"] != 0.0
    assert values["train/value_loss"] > 0.0
    assert values["train/n_updates"] == 2 * 2  # updates x epochs
    assert values["train/actor_b"] == model.policy.optimizers()["actor" if layout == "separate" else "joint"].b[0]


def test_a_callback_reads_the_last_update_at_rollout_start():
    """As in SB3: what train() recorded is readable from the next rollout's start until the next dump."""
    seen = []

    class Reader(BaseCallback):
        def _on_rollout_start(self) -> None:
            seen.append(self.logger.name_to_value.get("train/loss", 0.0))

        def _on_step(self) -> bool:
            return True

    make_model().learn(48, callback=Reader())
    assert len(seen) == 3
    assert seen[0] == 0.0 and seen[1] != 0.0 and seen[2] != 0.0


def test_each_update_is_written_once_at_its_step(tmp_path):
    model = make_model(tensorboard_log=str(tmp_path))
    model.learn(48, tb_log_name="run")
    model.learn(32, tb_log_name="run", reset_num_timesteps=False)
    assert [path.name for path in tmp_path.iterdir()] == ["run_1"]
    scalars = read_scalars(tmp_path / "run_1")
    for key in ("train/loss", "train/value_loss", "train/actor_b", "train/critic_loss"):
        assert [step for step, _ in scalars[key]] == [16, 32, 48, 64, 80], key
    # The values kept readable after learn() were not written a second time by the next dump.
    assert "train/n_updates" not in scalars  # excluded from tensorboard, as in SB3
    assert [step for step, _ in scalars["time/fps"]] == [16, 32, 48, 16 + 48, 32 + 48]
    assert scalars["train/loss"][-1][1] == pytest.approx(model.logger.name_to_value["train/loss"], rel=1e-6)


def test_stdout_and_csv_logging(tmp_path, capsys):
    model = make_model(verbose=1)
    model.set_logger(configure(str(tmp_path), ["stdout", "csv"]))
    model.learn(32)
    out = capsys.readouterr().out
    # Two updates: each writes SB3's rollout table (learn(), before the update) and the update's table (train()).
    assert out.count("| train/") == 2 and out.count("| time/") == 2
    assert "actor_b" in out and "total_timesteps" in out
    rows = (tmp_path / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "train/actor_b" in header and "time/total_timesteps" in header


# -- callbacks ---------------------------------------------------------------------------------------------------

def test_callbacks_are_called_as_in_sb3(tmp_path):
    calls = {"training_start": 0, "rollout_start": 0, "step": 0, "rollout_end": 0, "training_end": 0}

    class Counter(BaseCallback):
        def _on_training_start(self) -> None:
            calls["training_start"] += 1

        def _on_rollout_start(self) -> None:
            calls["rollout_start"] += 1

        def _on_step(self) -> bool:
            calls["step"] += 1
            return True

        def _on_rollout_end(self) -> None:
            calls["rollout_end"] += 1

        def _on_training_end(self) -> None:
            calls["training_end"] += 1

    checkpoints = CheckpointCallback(save_freq=16, save_path=str(tmp_path / "checkpoints"), name_prefix="m")
    evaluation = EvalCallback(Monitor(gym.make("Pendulum-v1")), n_eval_episodes=1, eval_freq=32,
                              log_path=str(tmp_path / "eval"), verbose=0)
    model = make_model()
    model.learn(48, callback=CallbackList([Counter(), checkpoints, evaluation]))
    assert calls == {"training_start": 1, "rollout_start": 3, "step": 48, "rollout_end": 3, "training_end": 1}
    saved = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert saved == ["m_16_steps.zip", "m_32_steps.zip", "m_48_steps.zip"]
    assert np.load(tmp_path / "eval" / "evaluations.npz")["timesteps"].tolist() == [32]
    # A checkpoint written by SB3's callback opens in stock PPO.
    PPO.load(tmp_path / "checkpoints" / "m_32_steps.zip", device="cpu")


def test_a_callback_returning_false_stops_training():
    class StopAt(BaseCallback):
        def _on_step(self) -> bool:
            return self.num_timesteps < 20

    model = make_model().learn(1000, callback=StopAt())
    assert model.num_timesteps == 20


# -- predict, evaluation, vectorized environments ----------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_predict_follows_sb3(layout):
    model = make_model(env=make_vec_env("CartPole-v1", n_envs=2, seed=0), layout=layout).learn(32)
    assert model.num_timesteps == 32  # 2 envs x 16 steps
    obs = model.get_env().reset()
    actions, state = model.predict(obs, deterministic=True)
    assert actions.shape == (2,) and state is None
    single, _ = model.predict(obs[0], deterministic=True)
    assert np.shape(single) == () and single == actions[0]
    again, _ = model.predict(obs, state=None, episode_start=np.ones(2, bool), deterministic=True)
    np.testing.assert_array_equal(again, actions)
    mean, std = evaluate_policy(model, model.get_env(), n_eval_episodes=2)
    assert mean >= 1.0 and std >= 0.0


def test_predict_clips_continuous_actions_to_the_space():
    model = make_model(env=DictEnv(), policy="MultiInputPolicy", policy_kwargs=dict(log_std_init=3.0))
    actions, _ = model.predict(sample_observations(model.get_env(), 20), deterministic=False)
    assert actions.shape == (20, 2) and np.abs(actions).max() <= 1.0


# -- gSDE --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_gsde(layout):
    model = make_model(layout=layout, use_sde=True, sde_sample_freq=4)
    net = model.policy
    if layout == "separate":
        assert id(net.log_std) in optimizer_ids(net.actor_optimizer)
    log_std = net.log_std.detach().clone()
    model.learn(32)
    assert not torch.equal(log_std, net.log_std)
    # Deterministic actions do not depend on the exploration noise.
    obs = sample_observations(model.get_env())
    first, _ = model.predict(obs, deterministic=True)
    net.reset_noise()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], first)
    # Stochastic ones do, and they stay within the action space.
    stochastic, _ = model.predict(obs, deterministic=False)
    assert np.abs(stochastic).max() <= 2.0 and not np.array_equal(stochastic, first)


# -- training and evaluation modes -------------------------------------------------------------------------------

class BatchNormDropoutExtractor(BaseFeaturesExtractor):
    """A features extractor that behaves differently in training and evaluation modes."""

    def __init__(self, observation_space) -> None:
        super().__init__(observation_space, features_dim=4)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(observation_space.shape[0], 4), nn.BatchNorm1d(4),
                                 nn.Dropout(0.5))

    def forward(self, observations):
        return self.net(observations)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_train_eval_mode(layout):
    # The extractor has weights, so the separate layout needs one per network.
    policy_kwargs = dict(features_extractor_class=BatchNormDropoutExtractor, net_arch=[16])
    if layout == "separate":
        policy_kwargs["share_features_extractor"] = False
    model = make_model(layout=layout, policy_kwargs=policy_kwargs)
    net = model.policy
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == (2 if layout == "separate" else 1)
    running = lambda: [m.running_mean.clone() for m in norms]  # noqa: E731

    before = running()
    obs = sample_observations(model.get_env(), 8)
    first, _ = model.predict(obs, deterministic=True)
    # predict() runs in evaluation mode: BatchNorm statistics stay, dropout is off (so actions repeat).
    assert not net.training
    for old, new in zip(before, running()):
        assert torch.equal(old, new)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], first)

    # Collecting rollouts does not update the statistics; train() (training mode) does.
    model.learn(16)
    assert net.training  # train() leaves the policy in training mode, as SB3's does
    for old, new in zip(before, running()):
        assert not torch.equal(old, new)
    net.set_training_mode(False)
    assert all(not m.training for m in net.modules())
