#!/bin/bash
# Probes for the default config: does AdamLoss's step adapt in the main job's setting? Pendulum-v1, 1e5 steps.
cd "$(dirname "$0")/../../.."
run() { name=$1; shift; [ -f runs/probes/$name/result.json ] && return; rm -rf runs/probes/$name; OMP_NUM_THREADS=1 .venv/bin/python -m rl_adaloss.train --quiet --out-dir runs/probes --name $name total_timesteps=100000 device=cpu "$@" > runs/probes/$name.log 2>&1; }
for seed in 0 1; do
  run joint_raw_b10_s$seed --config pendulum_adamloss --b0 10 normalize.reward=false optimizer.layout=joint --seed $seed
  run sep_raw_b10_s$seed --config pendulum_adamloss --b0 10 normalize.reward=false --seed $seed
  run sep_rawadv_b10_s$seed --config pendulum_adamloss --b0 10 normalize.reward=false ppo.normalize_advantage=false --seed $seed
  run adam_raw_lr0.316_s$seed --config pendulum_adam --lr 0.316 normalize.reward=false --seed $seed
  run joint_norm_b10_s$seed --config pendulum_adamloss --b0 10 optimizer.layout=joint --seed $seed
done
