"""Command lines as users type them: key=value overrides before, between and after flags."""

from __future__ import annotations

import yaml

from rl_adaloss.train import main


def test_overrides_may_stand_before_and_after_flags(tmp_path, capsys):
    code = main(["total_timesteps=4096", "--config", "pendulum_adamloss", "--b0", "10", "normalize.reward=false",
                 "--seed", "3", "ppo.normalize_advantage=false", "--print-config", "--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    config = yaml.safe_load(out)
    assert config["total_timesteps"] == 4096 and config["seed"] == 3 and config["optimizer"]["b0"] == 10.0
    assert config["normalize"]["reward"] is False and config["normalize"]["obs"] is True
    assert config["ppo"]["normalize_advantage"] is False
    assert not any(tmp_path.iterdir())
