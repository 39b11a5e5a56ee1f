"""Diagnostic: the agreement grid on the batched engine with Pendulum-v1 forced through the gymnasium fallback (its
training envs are seeded as SB3's), to tell the torch env's part in the engines' AUC difference from the PPO side."""
import json, shutil, sys
from pathlib import Path
import torch
import rl_adaloss.batched.envs as envs
del envs.BATCHED_ENVS["Pendulum-v1"]
from rl_adaloss.batched.run import run_batch
from rl_adaloss.io import read_json
src = Path("runs/agreement-batched/agreement_pendulum")
dst = Path("runs/agreement-fallback/agreement_pendulum")
shutil.rmtree(dst, ignore_errors=True); dst.mkdir(parents=True)
shutil.copy(src / "sweep.json", dst / "sweep.json")
index = read_json(src / "sweep.json")
from rl_adaloss.config import load_config
dirs = sorted(p.parent for p in src.rglob("config.yaml"))
configs = [load_config(d / "config.yaml") for d in dirs]
out = [dst / d.relative_to(src) for d in dirs]
torch.set_num_threads(1)
results = run_batch(configs, out, dst / ".batches" / "fallback.pkl")
print([r["status"] for r in results])
