"""Diagnostic: the agreement grid on the batched engine with Pendulum-v1 forced through the gymnasium fallback (its
envs are seeded as SB3's), to tell the torch env's part in the engines' AUC difference from the PPO side.

    python docs/results/agreement/run_fallback.py     # after the agreement-batched sweep; then
    python bench/engine_agreement.py runs/agreement-sb3/agreement_pendulum runs/agreement-fallback/agreement_pendulum
"""

import shutil
from pathlib import Path

import torch

import rl_adaloss.batched.envs as envs
from rl_adaloss.batched.run import run_batch
from rl_adaloss.config import load_config

del envs.BATCHED_ENVS["Pendulum-v1"]  # make_batched_env then takes the gymnasium fallback
source = Path("runs/agreement-batched/agreement_pendulum")
target = Path("runs/agreement-fallback/agreement_pendulum")
shutil.rmtree(target, ignore_errors=True)
target.mkdir(parents=True)
shutil.copy(source / "sweep.json", target / "sweep.json")
dirs = sorted(p.parent for p in source.rglob("config.yaml"))
torch.set_num_threads(1)
results = run_batch([load_config(d / "config.yaml") for d in dirs], [target / d.relative_to(source) for d in dirs],
                    target / ".batches" / "fallback.pkl")
print([r["status"] for r in results])
