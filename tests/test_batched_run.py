"""The batched engine end to end: member independence, per-member divergence, run_batch's files, refusals."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from rl_adaloss.batched.run import build_engine, run_batch
from rl_adaloss.config import load_config
from rl_adaloss.errors import UsageError

TINY = ["n_envs=2", "ppo.n_steps=64", "ppo.batch_size=32", "ppo.n_epochs=2", "total_timesteps=256",
        "eval.freq=128", "eval.episodes=2"]


def config(seed=0, *extra, name="pendulum_adamloss"):
    return load_config(name, [f"seed={seed}", *TINY, *extra])


def test_a_member_trains_the_same_beside_others_and_a_diverged_one_is_frozen():
    """Member 0 of a batch whose member 1 is poisoned (NaN log_std) ends exactly where a batch of member 0 alone
    ends; member 1 is recorded as diverged at step 0 and never moves."""
    alone = build_engine([config(0)])
    pair = build_engine([config(0), config(1, "optimizer.b0=1e5")])
    with torch.no_grad():
        pair.policy.params["log_std"][1] = float("nan")
    frozen = {name: p[1].detach().clone() for name, p in pair.policy.params.items()}
    alone.learn(), pair.learn()
    assert alone.diverged_at == [None] and pair.diverged_at == [None, 0]
    assert "action distribution" in pair.diverged_reason[1]
    for name, param in alone.policy.params.items():
        torch.testing.assert_close(pair.policy.params[name][0], param[0], rtol=1e-6, atol=1e-6)
        assert torch.equal(pair.policy.params[name][1], frozen[name]) or name == "log_std"


def test_run_batch_writes_each_members_files(tmp_path):
    configs = [config(0), config(1, "optimizer.b0=1e5", "optimizer.alpha=0.5")]
    dirs = [tmp_path / "a", tmp_path / "b"]
    results = run_batch(configs, dirs)
    for result, run_dir, cfg in zip(results, dirs, configs):
        assert result["status"] == "finished" and result["timesteps"] == 256
        assert json.loads((run_dir / "result.json").read_text()) == result
        rows = list(csv.DictReader((run_dir / "evaluations.csv").open()))
        assert [int(r["timesteps"]) for r in rows] == [0, 128, 256]
        assert float(rows[0]["actor_b"]) == cfg["optimizer"]["b0"]
        assert (run_dir / "config.yaml").exists()
        assert result["final_eval_return"] == float(rows[-1]["mean_reward"])


@pytest.mark.parametrize("extra,match", [
    (["ppo.gamma=0.5"], "ppo.gamma"),
    (["optimizer.eps=1e-3"], "optimizer.eps"),
    (["env=CartPoleSwingUp-v1"], "env"),
])
def test_configs_that_are_not_one_batch_are_refused(extra, match):
    with pytest.raises(UsageError, match=match):
        build_engine([config(0), config(1, *extra)])


def test_unsupported_options_are_refused():
    with pytest.raises(UsageError, match="schedules"):
        build_engine([config(0, "optimizer.lr=lin_1.0")])
    with pytest.raises(UsageError, match="squash_output"):
        build_engine([config(0, "policy_kwargs.squash_output=true")])
