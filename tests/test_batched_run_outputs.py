"""What a batch writes per member: the SB3 path's TensorBoard tags at its steps, Monitor CSVs, model.zip and
vecnormalize.pkl that SB3 opens, per-member divergence, and a bit-exact resume from the batch's checkpoint."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_adaloss.batched.export import model_bytes
from rl_adaloss.batched.ppo import BatchedPPO
from rl_adaloss.batched.run import build_engine, default_checkpoint_path, run_batch
from rl_adaloss.config import load_config

TINY = ["n_envs=2", "ppo.n_steps=64", "ppo.batch_size=32", "ppo.n_epochs=2", "total_timesteps=512",
        "eval.freq=256", "eval.episodes=2", "normalize=true"]


def config(seed=0, *extra, name="pendulum_adamloss"):
    return load_config(name, [f"seed={seed}", *TINY, *extra])


def scalars(run_dir: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_member_writes_the_sb3_paths_tags_at_its_steps(tmp_path):
    """The same config run by rl_adaloss.train and as a batch of one: every tag of the SB3 path's events file is
    written at the same steps (but train/loss, which the engine does not keep)."""
    from rl_adaloss.train import run

    cfg = config(0)
    run(cfg, tmp_path / "sb3")
    run_batch([cfg], [tmp_path / "batched"])
    sb3, batched = scalars(tmp_path / "sb3"), scalars(tmp_path / "batched")
    assert set(batched) == set(sb3) - {"train/loss"}
    for tag, steps in batched.items():
        assert steps == sb3[tag], tag
    for tag in ("eval/mean_reward", "eval/std_reward", "train/actor_effective_lr", "train/critic_effective_lr",
                "train/actor_b", "train/critic_b", "train/actor_loss", "train/critic_loss", "rollout/ep_rew_mean"):
        assert tag in batched, tag
    assert batched["train/actor_b"] == [128, 256, 384, 512] and batched["eval/mean_reward"] == [0, 256, 512]
    # Monitor files named and laid out as SB3's.
    assert sorted(p.name for p in (tmp_path / "batched" / "monitor").iterdir()) == ["0.monitor.csv", "1.monitor.csv"]


def test_monitor_csvs_are_the_members_training_episodes(tmp_path):
    run_batch([config(0)], [tmp_path / "a"])
    for path in sorted((tmp_path / "a" / "monitor").glob("*.csv")):
        lines = path.read_text().splitlines()
        header = json.loads(lines[0][1:])
        assert lines[0].startswith("#") and header["env_id"] == "Pendulum-v1" and "t_start" in header
        rows = list(csv.DictReader(lines[1:]))
        # 512 steps / 2 envs = 256 steps per env: one 200-step episode each.
        assert len(rows) == 1 and int(rows[0]["l"]) == 200 and -2000 < float(rows[0]["r"]) < 0
    from rl_adaloss.report.runs import read_monitor

    steps, returns = read_monitor(tmp_path / "a" / "monitor")
    assert list(steps) == [400, 400] and len(returns) == 2


@pytest.mark.parametrize("name,extra", [
    ("pendulum_adamloss", []),
    ("pendulum_adamloss", ["optimizer.layout=joint"]),
    ("pendulum_adam", []),
    ("pendulum_adamloss", ["optimizer.name=adaloss"]),
])
def test_model_zip_opens_with_adalossppo_and_holds_the_members_weights_and_optimizers(name, extra):
    from rl_adaloss.ppo import AdaLossPPO

    configs = [config(0, *extra, name=name), config(1, *extra, "optimizer.lr=0.5", name=name)]
    engine = build_engine(configs)
    engine.learn()
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    expected = engine.policy.predict(torch.as_tensor(obs).expand(2, 5, 3)).numpy()
    for k in range(2):
        model = AdaLossPPO.load(io.BytesIO(model_bytes(engine, k, configs[k])))
        actions, _ = model.predict(obs, deterministic=True)
        np.testing.assert_allclose(actions, expected[k], rtol=1e-6, atol=1e-6)
        assert model.num_timesteps == 512
        for role, optimizer in model.policy.optimizers().items():
            member = engine.optimizers[role]
            if member.b is not None:
                assert optimizer.b[0] == member.b[k]
            if hasattr(optimizer, "effective_lr"):
                assert optimizer.effective_lr[0] == pytest.approx(member.effective_lr[k], rel=1e-12)
            state = optimizer.state_dict()["state"]
            if "optimizer.name=adaloss" not in extra:  # AdaLoss keeps no per-parameter state
                # 4 updates x 2 epochs x 4 minibatches
                assert state and all(float(s["step"]) == 4 * 2 * 4 for s in state.values())


def test_vecnormalize_pkl_holds_the_members_statistics(tmp_path):
    from stable_baselines3.common.vec_env import VecNormalize

    configs = [config(0), config(1)]
    run_batch(configs, [tmp_path / "a", tmp_path / "b"])
    for run_dir in (tmp_path / "a", tmp_path / "b"):
        normalizer = pickle.loads((run_dir / "vecnormalize.pkl").read_bytes())
        assert isinstance(normalizer, VecNormalize)
        assert normalizer.obs_rms.count == pytest.approx(2 + 512 + 1e-4)  # the reset, then every step
    a = pickle.loads((tmp_path / "a" / "vecnormalize.pkl").read_bytes())
    b = pickle.loads((tmp_path / "b" / "vecnormalize.pkl").read_bytes())
    assert not np.array_equal(a.obs_rms.mean, b.obs_rms.mean)  # each member its own


def test_evaluations_npz_and_the_best_model_as_sb3s_evalcallback_writes_them(tmp_path):
    """Each member writes evaluations.npz (SB3's EvalCallback format, the csv's evaluations per episode) and
    best_model.zip / best_vecnormalize.pkl from its best evaluation, which stock PPO.load opens."""
    from stable_baselines3 import PPO

    results = run_batch([config(0), config(1)], [tmp_path / "a", tmp_path / "b"])
    assert [r["status"] for r in results] == ["finished", "finished"]
    for run_dir, result in zip((tmp_path / "a", tmp_path / "b"), results):
        rows = list(csv.DictReader((run_dir / "evaluations.csv").open()))
        npz = np.load(run_dir / "evaluations.npz")
        assert npz["timesteps"].tolist() == [int(r["timesteps"]) for r in rows] == [0, 256, 512]
        assert npz["results"].shape == npz["ep_lengths"].shape == (3, 2)  # eval.episodes = 2
        assert (npz["ep_lengths"] == 200).all()  # Pendulum's episodes are truncated at 200 steps
        assert npz["results"].mean(axis=1) == pytest.approx([float(r["mean_reward"]) for r in rows], rel=1e-9)
        assert result["best_eval_return"] == pytest.approx(npz["results"].mean(axis=1).max(), rel=1e-9)
        best = PPO.load(run_dir / "best_model.zip", device="cpu")
        final = PPO.load(run_dir / "model.zip", device="cpu")
        assert best.observation_space == final.observation_space
        assert pickle.loads((run_dir / "best_vecnormalize.pkl").read_bytes()).norm_obs


def test_reward_only_normalization_exports_what_sb3_keeps(tmp_path):
    """normalize: {obs: false, reward: true}: SB3's VecNormalize keeps no obs_rms then, and the member's
    vecnormalize.pkl has its return statistics only (the export once looked obs_rms up and failed the run)."""
    results = run_batch([config(0, "normalize={obs: false, reward: true}")], [tmp_path / "a"])
    assert results[0]["status"] == "finished"
    normalizer = pickle.loads((tmp_path / "a" / "vecnormalize.pkl").read_bytes())
    assert not normalizer.norm_obs and normalizer.norm_reward
    assert normalizer.ret_rms.count == pytest.approx(512 + 1e-4)


def test_a_diverged_member_ends_alone_with_the_sb3_paths_files(tmp_path):
    """b0 = 1e-16 makes AdamLoss's first step 1e8: that member diverges at its first update, is recorded at once,
    writes no model; the other finishes."""
    configs = [config(0, "optimizer.b0=1e4"), config(1, "optimizer.b0=1e-16")]
    results = run_batch(configs, [tmp_path / "ok", tmp_path / "bad"])
    assert results[0]["status"] == "finished" and results[1]["status"] == "diverged"
    assert results[1]["diverged_at"] == 128 and results[1]["timesteps"] == 128
    assert json.loads((tmp_path / "bad" / "result.json").read_text()) == results[1]
    assert not (tmp_path / "bad" / "model.zip").exists() and (tmp_path / "ok" / "model.zip").exists()
    rows = list(csv.DictReader((tmp_path / "bad" / "evaluations.csv").open()))
    assert [int(r["timesteps"]) for r in rows] == [0]
    assert "train/actor_b" not in scalars(tmp_path / "bad")  # AdaLossPPO raises before it records


def test_an_interrupted_batch_resumes_bit_exact(tmp_path, monkeypatch):
    """Interrupted in its third update (Ctrl-C), then run again: every member's evaluations.csv, Monitor rows and
    result are those of the uninterrupted batch; a member that had diverged before the interrupt rides along."""
    pairs = ((0, 1e4), (1, 1e6), (2, 1e-16))
    configs = [config(seed, f"optimizer.b0={b0}", "total_timesteps=768") for seed, b0 in pairs]
    straight = [tmp_path / "u" / name for name in "abc"]
    resumed = [tmp_path / "i" / name for name in "abc"]
    reference = run_batch(configs, straight)

    calls = []
    train = BatchedPPO.train

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train(self, *args, **kwargs)

    monkeypatch.setattr(BatchedPPO, "train", interrupted)
    first = run_batch(configs, resumed)
    assert [r["status"] for r in first] == ["interrupted", "interrupted", "diverged"]
    assert default_checkpoint_path(resumed).is_file()
    monkeypatch.setattr(BatchedPPO, "train", train)
    second = run_batch(configs, resumed)
    assert [r["status"] for r in second] == ["finished", "finished", "diverged"]
    for a, b, x, y in zip(straight, resumed, reference, second):
        assert (a / "evaluations.csv").read_text() == (b / "evaluations.csv").read_text()
        assert (a / "evaluations.npz").read_bytes() == (b / "evaluations.npz").read_bytes()
        assert (a / "best_model.zip").exists() == (b / "best_model.zip").exists()
        for monitor in sorted((a / "monitor").glob("*.csv")):
            rows = lambda path: [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()[1:]]  # noqa: E731
            assert rows(monitor) == rows(b / "monitor" / monitor.name)
        strip = lambda r: {key: v for key, v in r.items() if key != "wall_time_s"}  # noqa: E731
        assert strip(x) == strip(y)


def test_a_stale_checkpoint_never_reruns_an_ended_member(tmp_path):
    """The sweep lets a member whose run has ended ride along when a batch checkpoint exists. Where that checkpoint
    cannot be resumed (here: of another format) and the batch starts afresh, the ended run's files stay as they
    were, byte for byte; the other member trains from the start and finishes."""
    configs = [config(0, "total_timesteps=256"), config(1, "total_timesteps=256")]
    dirs = [tmp_path / "ended", tmp_path / "todo"]
    assert run_batch(configs[:1], dirs[:1])[0]["status"] == "finished"
    before = {p.relative_to(dirs[0]): p.read_bytes() for p in dirs[0].rglob("*") if p.is_file()}
    checkpoint = default_checkpoint_path(dirs)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(pickle.dumps({"version": -1}))
    results = run_batch(configs, dirs)
    assert [r["status"] for r in results] == ["finished", "finished"]
    assert results[0] == json.loads((dirs[0] / "result.json").read_text())
    after = {p.relative_to(dirs[0]): p.read_bytes() for p in dirs[0].rglob("*") if p.is_file()}
    assert after == before
    assert (dirs[1] / "model.zip").is_file()
