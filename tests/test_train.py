"""``python -m rl_adaloss.train`` end to end, on budgets of a few thousand steps: the files a run writes, bad input,
determinism, divergence, SIGTERM and --resume, and the shipped configs."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rl_adaloss.config import CONFIG_DIR, load_config
from rl_adaloss.errors import UsageError
from rl_adaloss.optim import AdamLoss
from rl_adaloss.ppo import AdaLossPPO
from rl_adaloss.train import build_model, config_from_args, main, make_envs, parse_args, run

ROOT = Path(__file__).resolve().parent.parent
#: 2 envs x 256 steps = 512-step rollouts, one epoch of 8 minibatches, one evaluation episode.
TINY = ["n_envs=2", "ppo.n_steps=256", "ppo.batch_size=64", "ppo.n_epochs=1", "eval.freq=1024", "eval.episodes=1",
        "device=cpu"]
ROLLOUT = 512
#: The config most tests train: AdamLoss in the separate layout, at the tuned step (the default config is another).
BASE = "pendulum_adamloss"
#: Its AdamLoss accumulator's start, b0.
B0 = load_config(BASE)["optimizer"]["b0"]


def read_evaluations(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "evaluations.csv", newline="") as handle:
        # The accumulator columns are empty for rules without one (sgd, adam).
        return [{key: float(value) if value else None for key, value in row.items()} for row in csv.DictReader(handle)]


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# -- a run from the command line ----------------------------------------------------------------------------------

def test_cli_run_writes_every_output(tmp_path, capsys):
    code = main(["--config", BASE, *TINY, "total_timesteps=2560", "--quiet", "--out-dir", str(tmp_path), "--name", "x"])
    out, err = capsys.readouterr()
    assert code == 0, err
    run_dir = tmp_path / "x"
    assert "finished at step 2560" in out

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["total_timesteps"] == 2560 and config["ppo"]["n_steps"] == 256 and config["n_envs"] == 2
    assert config["optimizer"]["name"] == "adamloss"
    assert load_config(run_dir / "config.yaml")["optimizer"]["b0"] == B0
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    monitors = sorted((run_dir / "monitor").glob("*.csv"))
    assert len(monitors) == 2
    # Pendulum episodes are 200 steps: each env finished 1280 // 200 = 6 of them.
    for monitor in monitors:
        assert len(monitor.read_text().splitlines()) == 2 + 6
    assert (run_dir / "model.zip").stat().st_size > 0
    assert (run_dir / "vecnormalize.pkl").stat().st_size > 0

    rows = read_evaluations(run_dir)
    assert [row["timesteps"] for row in rows] == [0, 1024, 2048, 2560]  # 0, every eval.freq, and the end
    returns = [row["mean_reward"] for row in rows]
    assert all(-2000 < r <= 0 for r in returns)
    assert rows[0]["actor_b"] == rows[0]["critic_b"] == B0
    assert rows[-1]["actor_b"] > rows[1]["actor_b"] > B0
    assert rows[-1]["critic_b"] > rows[1]["critic_b"] > B0
    assert rows[-1]["actor_effective_lr"] == pytest.approx(1.0 / math.sqrt(rows[-1]["actor_b"]))

    result = read_result(run_dir)
    assert result["status"] == "finished" and result["reason"] is None
    assert result["timesteps"] == result["total_timesteps"] == 2560
    assert result["final_eval_return"] == returns[-1]
    assert result["best_eval_return"] == max(returns)
    assert (result["env"], result["optimizer"], result["seed"]) == ("Pendulum-v1", "adamloss", 0)
    assert result["wall_time_s"] > 0

    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["eval/mean_reward"]] == [0, 1024, 2048, 2560]
    assert [value for _, value in scalars["eval/mean_reward"]] == pytest.approx(returns, rel=1e-6)
    assert [step for step, _ in scalars["train/actor_b"]] == list(range(ROLLOUT, 2561, ROLLOUT))

    # The saved model and normalization load back, with the trained accumulators.
    model = AdaLossPPO.load(run_dir / "model.zip", device="cpu")
    assert model.num_timesteps == 2560
    assert model.policy.actor_optimizer.b[0] == rows[-1]["actor_b"]
    with open(run_dir / "vecnormalize.pkl", "rb") as handle:
        assert pickle.load(handle).obs_rms.count > 2560

    # evaluations.npz: SB3's EvalCallback format, the same evaluations per episode (one episode each here).
    npz = read_npz(run_dir)
    assert npz["timesteps"].tolist() == [0, 1024, 2048, 2560]
    assert npz["results"].shape == npz["ep_lengths"].shape == (4, 1)
    assert npz["results"].mean(axis=1) == pytest.approx(returns)
    assert (npz["ep_lengths"] == 200).all()
    # best_model.zip is the model of the best evaluation, with its normalization.
    best = AdaLossPPO.load(run_dir / "best_model.zip", device="cpu")
    assert best.num_timesteps == rows[returns.index(max(returns))]["timesteps"]
    with open(run_dir / "best_vecnormalize.pkl", "rb") as handle:
        assert pickle.load(handle).obs_rms.count >= best.num_timesteps


def read_npz(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(run_dir / "evaluations.npz") as data:
        return {key: data[key] for key in data.files}


def test_best_model_follows_the_best_evaluation_and_plain_sb3_loads_both_models(tmp_path, monkeypatch):
    """best_model.zip is rewritten exactly when an evaluation beats every earlier one; stable_baselines3.PPO.load
    opens model.zip and best_model.zip, and the VecNormalize files load with VecNormalize.load."""
    import stable_baselines3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    import rl_adaloss.train as train

    written = []
    original = train.Run.write_best
    monkeypatch.setattr(train.Run, "write_best", lambda self: (written.append(self.timesteps), original(self))[1])
    config = load_config(BASE, [*TINY, "total_timesteps=2560", "eval.freq=512", "eval.episodes=2"])
    assert run(config, tmp_path)["status"] == "finished"
    rows = read_evaluations(tmp_path)
    returns = [row["mean_reward"] for row in rows]
    records = [int(row["timesteps"]) for i, row in enumerate(rows) if returns[i] > max(returns[:i], default=-math.inf)]
    assert written == records and written[0] == 0
    npz = read_npz(tmp_path)
    assert npz["results"].shape == (len(rows), 2)
    assert npz["results"].mean(axis=1) == pytest.approx(returns)
    assert npz["results"].std(axis=1) == pytest.approx([row["std_reward"] for row in rows])

    venv = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    for model_file, stats_file, steps in [("model.zip", "vecnormalize.pkl", 2560),
                                          ("best_model.zip", "best_vecnormalize.pkl", written[-1])]:
        model = stable_baselines3.PPO.load(tmp_path / model_file, device="cpu")
        assert type(model) is stable_baselines3.PPO and model.num_timesteps == steps
        env = VecNormalize.load(str(tmp_path / stats_file), venv)
        env.training, env.norm_reward = False, False
        action, _ = model.predict(env.reset(), deterministic=True)
        assert action.shape == (1, 1)
    venv.close()


@pytest.mark.parametrize("args, names", [
    (["ppo.n_stepz=5"], "ppo.n_stepz"),
    (["bogus=1"], "bogus"),
    (["ppo.n_steps=abc"], "ppo.n_steps"),
    (["optimizer.lr=fast"], "optimizer.lr"),
    (["optimizer.b0=0"], "optimizer.b0"),
    (["--b0", "-1"], "optimizer.b0"),
    (["optimizer.critic.b0=0"], "optimizer.critic.b0"),
    (["env=NoSuchEnv-v0"], "env"),
    (["--optimizer", "rmsprop"], "optimizer.name"),
    (["--config", "no/such/config.yaml"], "no/such/config.yaml"),
    (["--env", "CartPole-v1"], "ppo.use_sde"),
    (["ppo.n_steps=[256, 512]"], "ppo.n_steps"),
    (["optimizer.b0=[1, 2]"], "optimizer.b0"),
    (["normalize.clip_obs=0"], "normalize.clip_obs"),
    (["optimizer.lr=lin_fast"], "optimizer.lr"),
    (["--optimizer", "adam", "optimizer.alpha=0.1"], "optimizer.alpha"),
], ids=["unknown-key", "unknown-top-level-key", "wrong-type-int", "wrong-type-float", "b0-zero", "b0-negative-flag",
        "b0-per-network", "unknown-env", "unknown-optimizer", "missing-config", "gsde-on-discrete-actions",
        "list-for-a-scalar", "list-for-an-optimizer-number", "normalize-range", "bad-schedule",
        "argument-the-optimizer-lacks"])
def test_bad_input_exits_2_with_one_line_naming_the_key(tmp_path, capsys, args, names):
    out_dir = tmp_path / "out"
    code = main(["--config", BASE, *args, "--quiet", "--out-dir", str(out_dir), "--name", "x"])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and names in lines[0]
    assert "Traceback" not in err and out == ""
    assert not out_dir.exists()


def test_print_config_shows_every_key_with_its_description_and_writes_nothing(tmp_path, capsys):
    from rl_adaloss.config import TrainConfig
    from rl_adaloss.schema import key_table

    assert main(["--print-config", "--out-dir", str(tmp_path / "out"), "ppo.target_kl=0.02"]) == 0  # the default
    out = capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    printed = yaml.safe_load(out)
    assert printed["ppo"]["target_kl"] == 0.02 and printed["optimizer"]["name"] == "adamloss"
    lines = out.splitlines()
    for key, text in key_table(TrainConfig):
        leaf = key.rsplit(".", 1)[-1]
        description = text.rsplit(" (default:", 1)[0]
        assert any(line.strip().startswith(f"{leaf}:") and description in line for line in lines), key
    # What it prints is a config: read back, it resolves to the same one.
    assert load_config(_write(tmp_path / "printed.yaml", out)) == load_config(None, ["ppo.target_kl=0.02"])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("override, check", [
    (["normalize={obs: true, reward: false}"],
     lambda model, env: env.norm_obs and not env.norm_reward),
    (["ppo.target_kl=0.02"], lambda model, env: model.target_kl == 0.02),
    (["policy_kwargs.log_std_init=-1"],
     lambda model, env: model.policy.log_std_init == -1.0),
    (["optimizer.lr=lin_1e-3", "--optimizer", "adam"],
     lambda model, env: model.policy.actor_optimizer.param_groups[0]["lr"] < 1e-3),
    (["policy_kwargs.net_arch={pi: [32], vf: [16, 16]}", "policy_kwargs.activation_fn=relu"],
     lambda model, env: [m.out_features for m in model.policy.mlp_extractor.value_net if hasattr(m, "out_features")]
     == [16, 16] and isinstance(model.policy.mlp_extractor.policy_net[1], torch.nn.ReLU)),
], ids=["normalize-obs-only", "target-kl", "log-std-init", "linear-schedule", "net-arch-and-activation"])
def test_sb3_settings_reach_the_model(tmp_path, override, check):
    """SB3's own arguments, VecNormalize's and schedules are accepted, and each one runs with the value set."""
    args = ["--config", BASE, *TINY, "total_timesteps=1024", *override]
    config = config_from_args(parse_args([*args, "--quiet"]))
    result = run(config, tmp_path)
    assert result["status"] == "finished", result
    model = AdaLossPPO.load(tmp_path / "model.zip", device="cpu")
    with open(tmp_path / "vecnormalize.pkl", "rb") as handle:
        env = pickle.load(handle)
    assert check(model, env)


def test_an_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert main([*TINY, "--quiet", "--out-dir", str(tmp_path), "--name", "x"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.txt"]


# -- determinism and divergence, through run() --------------------------------------------------------------------

def test_same_config_and_seed_give_identical_evaluations(tmp_path):
    config = load_config(BASE, [*TINY, "total_timesteps=1024", "seed=3"])
    first = run(config, tmp_path / "a")
    second = run(config, tmp_path / "b")
    assert first["status"] == second["status"] == "finished"
    rows_a, rows_b = read_evaluations(tmp_path / "a"), read_evaluations(tmp_path / "b")
    assert [row["timesteps"] for row in rows_a] == [0, 1024]
    assert rows_a == rows_b  # returns, and the accumulators, exactly
    assert first["final_eval_return"] == second["final_eval_return"]
    # A different seed is a different run (so the equality above is not vacuous).
    other = run(load_config(BASE, [*TINY, "total_timesteps=1024", "seed=4"]), tmp_path / "c")
    assert read_evaluations(tmp_path / "c")[-1]["mean_reward"] != rows_a[-1]["mean_reward"]
    assert other["status"] == "finished"


def test_divergence_is_recorded_not_raised(tmp_path):
    # Plain SGD at a step size of 1e6 wrecks the log-std in the first update.
    config = load_config(BASE, [*TINY, "total_timesteps=2048", "optimizer.name=sgd", "optimizer.lr=1e6"])
    run_dir = tmp_path / "d"
    result = run(config, run_dir)
    assert result["status"] == "diverged"
    assert result["diverged_at"] == ROLLOUT
    assert result["timesteps"] == ROLLOUT
    assert result["reason"]
    assert read_result(run_dir) == result
    rows = read_evaluations(run_dir)
    assert [row["timesteps"] for row in rows] == [0]
    assert result["final_eval_return"] == result["best_eval_return"] == rows[0]["mean_reward"]
    assert not (run_dir / "error.txt").exists()
    assert not (run_dir / "model.zip").exists()


# -- SIGTERM, then --resume ---------------------------------------------------------------------------------------

def wait_for(condition, process: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the training exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_finishes(tmp_path, capsys):
    run_dir = tmp_path / "x"
    command = [sys.executable, "-m", "rl_adaloss.train", "--config", BASE, *TINY, "total_timesteps=100000",
               "checkpoint_freq=1024", "--quiet", "--out-dir", str(tmp_path), "--name", "x"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=stderr, env=env)
        try:
            def evaluated_after_an_update() -> bool:
                try:
                    rows = read_evaluations(run_dir)
                except (FileNotFoundError, ValueError):
                    return False
                return len(rows) >= 2 and (run_dir / "checkpoint.pkl").exists()

            wait_for(evaluated_after_an_update, process, 600, "the first evaluation after training")
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 130, (tmp_path / "stderr").read_text()
    assert "resume: python -m rl_adaloss.train --resume" in (tmp_path / "stdout").read_text()

    interrupted = read_result(run_dir)
    assert interrupted["status"] == "interrupted"
    stopped_at = interrupted["timesteps"]
    assert stopped_at >= 1024 and stopped_at % ROLLOUT == 0  # at the end of an update, not mid-rollout
    state = pickle.loads((run_dir / "checkpoint.pkl").read_bytes())
    assert state["timesteps"] == stopped_at
    before = read_evaluations(run_dir)
    assert state["evaluations"] == [{**row, "timesteps": int(row["timesteps"])} for row in before]
    b_before = before[-1]["actor_b"]
    assert b_before > B0

    # Finish the run two rollouts after the interruption: --resume uses the run's own config.yaml.
    total = (stopped_at // ROLLOUT + 2) * ROLLOUT
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["total_timesteps"] = total
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    capsys.readouterr()
    assert main(["--resume", str(run_dir), "--quiet"]) == 0, capsys.readouterr()

    result = read_result(run_dir)
    assert result["status"] == "finished"
    assert result["timesteps"] == total
    rows = read_evaluations(run_dir)
    assert rows[:len(before)] == before
    after = rows[len(before):]
    assert after and after[-1]["timesteps"] == total
    assert [row["timesteps"] for row in rows] == sorted({row["timesteps"] for row in rows})
    # The accumulators went on from where they were, not from b0.
    assert all(row["actor_b"] >= b_before and row["actor_b"] > B0 for row in after)
    assert after[-1]["actor_b"] > b_before
    assert after[-1]["critic_b"] > before[-1]["critic_b"]
    assert result["best_eval_return"] == max(row["mean_reward"] for row in rows)
    model = AdaLossPPO.load(run_dir / "model.zip", device="cpu")
    assert model.num_timesteps == total
    assert model.policy.actor_optimizer.b[0] == after[-1]["actor_b"]


def test_an_interrupt_mid_rollout_checkpoints_the_last_update(tmp_path, monkeypatch):
    """Ctrl-C while a rollout is half collected: its steps are dropped with the rollout buffer, so the checkpoint
    counts them out, and the resumed run ends at total_timesteps on the same rollout boundaries."""
    import rl_adaloss.train as train

    def on_step(self) -> bool:
        if self.num_timesteps == 2 * ROLLOUT + 2 * 37:
            raise KeyboardInterrupt
        return True

    config = load_config(BASE, [*TINY, "total_timesteps=2048", "checkpoint_freq=100000"])
    with monkeypatch.context() as patch:
        patch.setattr(train.EvalCheckpointProgress, "_on_step", on_step)
        result = run(config, tmp_path)
    assert result["status"] == "interrupted"
    assert result["timesteps"] == 2 * ROLLOUT
    state = pickle.loads((tmp_path / "checkpoint.pkl").read_bytes())
    assert state["timesteps"] == 2 * ROLLOUT
    model = AdaLossPPO.load(io.BytesIO(state["model"]), device="cpu")
    assert model.num_timesteps == 2 * ROLLOUT
    assert [row["timesteps"] for row in read_evaluations(tmp_path)] == [0, 1024]
    # The checkpoint holds the per-episode evaluations and the best model so far, as they were written.
    assert [e["timesteps"] for e in state["eval_episodes"]] == [0, 1024]
    assert state["best"]["model"] == (tmp_path / "best_model.zip").read_bytes()
    # A best model written after the checkpoint (an evaluation that a kill -9 cut off) does not survive --resume.
    (tmp_path / "best_model.zip").write_bytes(b"stale")

    result = run(config, tmp_path, resume=True)
    assert result["status"] == "finished" and result["timesteps"] == 2048
    rows = read_evaluations(tmp_path)
    assert [row["timesteps"] for row in rows] == [0, 1024, 2048]
    assert read_npz(tmp_path)["timesteps"].tolist() == [0, 1024, 2048]
    returns = [row["mean_reward"] for row in rows]
    best = AdaLossPPO.load(tmp_path / "best_model.zip", device="cpu")
    assert best.num_timesteps == rows[returns.index(max(returns))]["timesteps"]


def test_a_checkpoint_from_before_best_models_resumes(tmp_path, monkeypatch):
    """A checkpoint without ``best`` and ``eval_episodes`` (written before they existed): the run resumes, the npz
    starts at the resumed evaluations, and only an evaluation better than the checkpoint's best writes a best
    model."""
    import rl_adaloss.train as train

    def on_step(self) -> bool:
        if self.num_timesteps == 2 * ROLLOUT + 2:
            raise KeyboardInterrupt
        return True

    config = load_config(BASE, [*TINY, "total_timesteps=2048", "checkpoint_freq=100000"])
    with monkeypatch.context() as patch:
        patch.setattr(train.EvalCheckpointProgress, "_on_step", on_step)
        assert run(config, tmp_path)["status"] == "interrupted"
    state = pickle.loads((tmp_path / "checkpoint.pkl").read_bytes())
    del state["best"], state["eval_episodes"]
    (tmp_path / "checkpoint.pkl").write_bytes(pickle.dumps(state))
    for name in ("best_model.zip", "best_vecnormalize.pkl", "evaluations.npz"):
        (tmp_path / name).unlink()

    assert run(config, tmp_path, resume=True)["status"] == "finished"
    rows = read_evaluations(tmp_path)
    assert read_npz(tmp_path)["timesteps"].tolist() == [2048]
    before = max(row["mean_reward"] for row in rows[:2])
    assert (tmp_path / "best_model.zip").exists() == (rows[2]["mean_reward"] > before)


def test_the_default_config_is_one_where_adamlosss_step_visibly_adapts(tmp_path):
    """The main job shows the mechanism, not a setting where AdamLoss is Adam: within two updates of the default
    config (raw rewards, joint layout, b0 = 10), the accumulator grows far past b0 and the step size falls."""
    config = load_config(None, ["total_timesteps=4096", "eval.freq=4096", "eval.episodes=1", "device=cpu"])
    assert config["optimizer"]["name"] == "adamloss" and config["normalize"]["reward"] is False
    assert run(config, tmp_path)["status"] == "finished"
    rows = read_evaluations(tmp_path)
    b0 = config["optimizer"]["b0"]
    assert rows[0]["actor_b"] == b0
    assert rows[-1]["actor_b"] > 100 * b0  # the loss carries the reward scale: b grows by orders of magnitude
    assert rows[-1]["actor_effective_lr"] < rows[0]["actor_effective_lr"] / 10


# -- the shipped configs ------------------------------------------------------------------------------------------

TRAINING_CONFIGS = sorted(p for p in (CONFIG_DIR).glob("*.yaml")
                          if p.name.startswith(("pendulum_", "cartpole_swingup_")))
PAIRS = [("pendulum_adam.yaml", "pendulum_adamloss.yaml"),
         ("cartpole_swingup_adam.yaml", "cartpole_swingup_adamloss.yaml")]


def test_the_training_configs_are_shipped():
    names = {p.name for p in TRAINING_CONFIGS}
    assert names >= {name for pair in PAIRS for name in pair}


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_loads_and_builds(path, tmp_path):
    config = load_config(path)
    assert config["optimizer"]["name"] in ("adam", "adamloss", "adamsqrt", "adaloss", "adagradnorm", "sgd",
                                           "sgd_decaysqrt")
    # It builds a model (no training), with the optimizer it names in the layout it names.
    config = {**config, "device": "cpu"}
    train_env, eval_env = make_envs(config, tmp_path, config["seed"], resume=False)
    try:
        model = build_model(config, train_env)
        optimizers = model.policy.optimizers()
        assert list(optimizers) == (["actor", "critic"] if config["optimizer"]["layout"] == "separate" else ["joint"])
        for optimizer in optimizers.values():
            assert optimizer.param_groups[0]["lr"] == config["optimizer"]["lr"]
        assert model.n_steps == config["ppo"]["n_steps"] and model.n_envs == config["n_envs"]
    finally:
        train_env.close()
        eval_env.close()


@pytest.mark.parametrize("adam_name, adamloss_name", PAIRS, ids=["pendulum", "cartpole_swingup"])
def test_adam_and_adamloss_configs_differ_only_in_the_optimizer(adam_name, adamloss_name):
    raw_adam = yaml.safe_load((CONFIG_DIR / adam_name).read_text())
    raw_adamloss = yaml.safe_load((CONFIG_DIR / adamloss_name).read_text())
    adam, adamloss = load_config(CONFIG_DIR / adam_name), load_config(CONFIG_DIR / adamloss_name)
    without = lambda config: {k: v for k, v in config.items() if k != "optimizer"}  # noqa: E731
    assert without(raw_adam) == without(raw_adamloss)
    assert without(adam) == without(adamloss)

    opt_adam, opt_adamloss = adam["optimizer"], adamloss["optimizer"]
    assert (opt_adam["name"], opt_adamloss["name"]) == ("adam", "adamloss")
    assert opt_adam["layout"] == opt_adamloss["layout"] == "separate"
    assert opt_adam["betas"] == opt_adamloss["betas"] and opt_adam["eps"] == opt_adamloss["eps"]
    # AdamLoss's first step size eta/sqrt(b0) is Adam's learning rate (to the digits the YAML writes it with).
    assert opt_adamloss["lr"] / math.sqrt(opt_adamloss["b0"]) == pytest.approx(opt_adam["lr"], rel=1e-7)
    optimizer = AdamLoss([torch.nn.Parameter(torch.zeros(1))],
                         **{k: v for k, v in opt_adamloss.items() if k not in ("name", "layout")})
    assert optimizer.effective_lr[0] == pytest.approx(opt_adam["lr"], rel=1e-7)


def test_config_errors_are_config_errors():
    # The CLI's exit code 2 relies on every bad value being a UsageError, not a crash later.
    with pytest.raises(UsageError, match="ppo.batch_size"):
        load_config(None, ["ppo.batch_size=0"])


@pytest.mark.parametrize("name", ["adam", "adamloss", "adamsqrt", "adaloss", "adagradnorm", "sgd", "sgd_decaysqrt"])
def test_resolving_a_resolved_config_changes_nothing(name):
    # --resume reads a run's own config.yaml back: it must resolve to the same config (torch Adam's int defaults).
    from rl_adaloss.config import resolve

    config = load_config(BASE, [f"optimizer.name={name}"])
    assert resolve(yaml.safe_load(yaml.safe_dump(config))) == config


@pytest.mark.parametrize("interrupt_at", [2 * ROLLOUT + 2 * 37, 3 * ROLLOUT], ids=["mid-rollout", "rollout-end"])
def test_an_interrupted_and_resumed_run_reproduces_the_uninterrupted_one(tmp_path, monkeypatch, interrupt_at):
    """The checkpoint holds the RNGs, the environments mid-episode and VecNormalize's running return, so the
    resumed run's evaluations are the uninterrupted run's, to the last bit."""
    import rl_adaloss.train as train

    config = load_config(BASE, [*TINY, "total_timesteps=3072", "checkpoint_freq=100000", "eval.episodes=2"])
    straight = run(config, tmp_path / "straight")
    assert straight["status"] == "finished"

    def on_step(self) -> bool:
        if self.num_timesteps == interrupt_at:
            raise KeyboardInterrupt
        return True

    with monkeypatch.context() as patch:
        patch.setattr(train.EvalCheckpointProgress, "_on_step", on_step)
        assert run(config, tmp_path / "resumed")["status"] == "interrupted"
    assert run(config, tmp_path / "resumed", resume=True)["status"] == "finished"
    assert (tmp_path / "resumed" / "evaluations.csv").read_text() == \
        (tmp_path / "straight" / "evaluations.csv").read_text()
    # evaluations.npz and the best model go on as well: the same episodes, the same best weights and statistics.
    straight_npz, resumed_npz = read_npz(tmp_path / "straight"), read_npz(tmp_path / "resumed")
    assert straight_npz.keys() == resumed_npz.keys()
    for key in straight_npz:
        np.testing.assert_array_equal(resumed_npz[key], straight_npz[key])
    best = [AdaLossPPO.load(tmp_path / name / "best_model.zip", device="cpu") for name in ("straight", "resumed")]
    assert best[0].num_timesteps == best[1].num_timesteps
    for a, b in zip(best[0].policy.state_dict().values(), best[1].policy.state_dict().values()):
        assert torch.equal(a, b)
    stats = [pickle.loads((tmp_path / name / "best_vecnormalize.pkl").read_bytes()) for name in ("straight", "resumed")]
    np.testing.assert_array_equal(stats[0].obs_rms.mean, stats[1].obs_rms.mean)
    state = pickle.loads((tmp_path / "resumed" / "checkpoint.pkl").read_bytes())
    assert state["snapshot"]["exact"]
    # The training episodes too: each Monitor file lists the same episodes, none twice (wall times aside).
    for monitor in sorted((tmp_path / "straight" / "monitor").glob("*.csv")):
        episodes = [[line.split(",")[:2] for line in (run / "monitor" / monitor.name).read_text().splitlines()[2:]]
                    for run in (tmp_path / "straight", tmp_path / "resumed")]
        assert episodes[0] == episodes[1] and episodes[0], monitor.name
