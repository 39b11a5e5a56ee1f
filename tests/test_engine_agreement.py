"""bench/engine_agreement.py on two fake sweep folders of one sweep (test_report's writer): one "sb3", one
"batched" (its result.json files say so). Adam's final returns are the same eight values on both engines, in
another seed order; AdamLoss's are 600 higher on the batched engine, so it differs, whatever the test."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_report import write_fake_sweep

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "engine_agreement.py"
SPREAD = [-35, -25, -15, -5, 5, 15, 25, 35]


def load_script():
    spec = importlib.util.spec_from_file_location("engine_agreement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agreement = load_script()


def fake_engine_sweep(root: Path, engine: str, shift: dict[str, float], name: str = "agreement") -> Path:
    sweep = dict(name=name, base="/nowhere/base.yaml", total_timesteps=1000, eta=1.0, b0=[1.0e7],
                 seeds=list(range(8)), optimizers={"adam": {"name": "adam"},
                                                   "adamloss": {"name": "adamloss", "layout": "separate"}})
    order = SPREAD if engine == "sb3" else SPREAD[::-1]
    points = {}
    for variant in ("adam", "adamloss"):
        for seed, offset in enumerate(order):
            final = -200 + offset + shift.get(variant, 0)
            points[(variant, "1e7", seed)] = ("finished", [0, 500, 1000], [-1500, (final - 1500) / 2, final], None)
    sweep_dir = write_fake_sweep(root / engine / name, sweep, points)
    if engine == "batched":
        for path in sweep_dir.rglob("result.json"):
            path.write_text(json.dumps({**json.loads(path.read_text()), "engine": "batched", "batch_size": 8}))
    return sweep_dir


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("agreement")
    return fake_engine_sweep(root, "sb3", {}), fake_engine_sweep(root, "batched", {"adamloss": 600})


def test_equal_samples_agree_and_a_shift_differs(folders, capsys):
    sb3, batched = folders
    assert agreement.main([str(sb3), str(batched), "--reps", "300"]) == 0
    text = capsys.readouterr().out
    assert "**adam: no significant difference at 5%.**" in text
    assert "**adamloss: differs (final return Welch p=" in text and "AUC Mann-Whitney p=" in text
    adam = text.split("## adam\n")[1].split("## ")[0]
    final = next(line for line in adam.splitlines() if line.startswith("| final return"))
    cells = [cell.strip() for cell in final.strip("|").split("|")]
    assert cells[1] == cells[3] == "8"
    assert cells[2].startswith("-200.0 [") and cells[4].startswith("-200.0 [")
    assert cells[5].startswith("0.0 [")
    assert cells[6] == "1" and cells[7] == "1"  # identical samples: p = 1 for both tests
    adamloss = text.split("## adamloss\n")[1].split("## ")[0]
    final = next(line for line in adamloss.splitlines() if line.startswith("| final return"))
    difference = final.strip("|").split("|")[5].strip()
    assert difference.startswith("600.0 [")
    low = float(difference.split("[")[1].split(",")[0])
    assert 560 < low < 600
    assert "- adam: no significant difference at 5%" in text.split("## Conclusion")[1]


def test_p_values_by_hand():
    from scipy import stats

    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 5.0, 6.0, 9.0]
    welch, mann_whitney = agreement.p_values(np.array(a), np.array(b))
    assert welch == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert mann_whitney == pytest.approx(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def test_wrong_folders_are_one_line_and_exit_2(folders, tmp_path: Path, capsys):
    sb3, batched = folders
    cases = [
        ([str(tmp_path / "nowhere"), str(batched)], "nowhere"),
        ([str(batched), str(sb3)], "expected sb3"),  # swapped
        ([str(sb3), str(sb3)], "one folder"),
        ([str(sb3), str(fake_engine_sweep(tmp_path, "batched", {}, name="other"))], "different sweeps"),
    ]
    for argv, message in cases:
        assert agreement.main(argv + ["--reps", "20"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_the_script_runs_as_a_command(tmp_path: Path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "a"), str(tmp_path / "b")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_seeds_closer_than_n_envs_are_warned_about(tmp_path: Path, capsys):
    """Seeds 0..7 with 4 envs per run share SB3's env streams (seed + i): the comparison says so; the fixture's
    runs (no config.yaml) and runs with one env do not get the warning."""
    sb3, batched = fake_engine_sweep(tmp_path, "sb3", {}), fake_engine_sweep(tmp_path, "batched", {})
    for n_envs, warned in ((1, False), (4, True)):
        for path in sb3.rglob("result.json"):
            (path.parent / "config.yaml").write_text(f"env: Pendulum-v1\nn_envs: {n_envs}\n")
        assert agreement.main([str(sb3), str(batched), "--reps", "100"]) == 0
        text = capsys.readouterr().out
        assert ("**Warning: seeds 0 and 1, 0 and 2, 0 and 3 ... are closer than n_envs" in text) == warned
