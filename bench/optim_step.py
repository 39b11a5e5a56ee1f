"""Time per optimizer step: AdamLoss against torch.optim.Adam on the networks PPO trains here.

The configs use SB3's MlpPolicy with ``net_arch [64, 64]``, gSDE, and ``layout: separate`` (one optimizer for the
actor, one for the critic). So the networks timed are, for Pendulum-v1 (obs 3) and CartPoleSwingUp-v1 (obs 5):

* actor:  obs -> 64 -> 64 -> 1, plus gSDE's log-std parameter (64 x 1);
* critic: obs -> 64 -> 64 -> 1.

Every optimizer gets its own copy of the parameters and the same fixed random gradients, so only ``step()`` is
timed. One thread (``torch.set_num_threads(1)``), as the trainers run. The variants of one network are timed in
interleaved blocks (the order rotates every round), and each variant's time per step is the median over rounds.
By default the clock is the thread's CPU time, so time spent descheduled on a busy machine does not count.

AdamLoss runs torch's fused Adam kernel, so ``AdamLoss / Adam(fused=True)`` is its pure overhead (target <= 1.03x);
``Adam default`` is what SB3 builds (on the CPU torch picks the for-loop implementation).

    python bench/optim_step.py [--steps 5000] [--block 100] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from rl_adaloss.optim import AdamLoss

LR, BETAS, EPS = 1e-3, (0.9, 0.99), 1e-5  # the configs' Adam


def network_params(kind: str, obs_dim: int) -> list[torch.Tensor]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    params = list(mlp.parameters())
    if kind == "actor":
        params.append(nn.Parameter(torch.zeros(64, 1)))  # gSDE log-std
    return params


def copies_with_grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = torch.randn(q.shape, generator=gen) * 1e-2
        out.append(q)
    return out


def variants(params: list[torch.Tensor]) -> dict[str, callable]:
    """Name -> a no-argument function that takes one step, each on its own copy of the parameters."""

    def adam(**kwargs):
        return torch.optim.Adam(copies_with_grads(params), lr=LR, betas=BETAS, eps=EPS, **kwargs).step

    def adamloss(loss):
        # As the configs: lr / sqrt(b0) = LR, and b grows by alpha * loss per step, slowly next to b0.
        opt = AdamLoss(copies_with_grads(params), lr=LR * 1e3, b0=1e6, alpha=1.0, betas=BETAS, eps=EPS)
        return lambda: opt.step(loss=loss)

    return {
        "Adam(fused=True)": adam(fused=True),
        "Adam default": adam(),
        "Adam(foreach=True)": adam(foreach=True),
        "AdamLoss loss=float": adamloss(0.7),
        "AdamLoss loss=tensor": adamloss(torch.tensor(0.7)),
    }


def time_interleaved(steps_by_name: dict[str, callable], steps: int, block: int, clock) -> dict[str, list[float]]:
    """Seconds per step, one entry per round, for each variant; blocks interleaved, order rotated each round."""
    names = list(steps_by_name)
    for fn in steps_by_name.values():  # warm up: allocate state, first-call paths
        for _ in range(block):
            fn()
    per_step = {name: [] for name in names}
    for r in range(max(1, steps // block)):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn = steps_by_name[name]
            t0 = clock()
            for _ in range(block):
                fn()
            per_step[name].append((clock() - t0) / block)
    return per_step


COMPARISONS = [  # (numerator, denominator, what it says)
    ("AdamLoss loss=float", "Adam(fused=True)", "same kernel: pure overhead"),
    ("AdamLoss loss=float", "Adam default", "vs what SB3 builds"),
    ("AdamLoss loss=float", "Adam(foreach=True)", ""),
    ("AdamLoss loss=tensor", "Adam(fused=True)", "0-dim tensor loss"),
    ("AdamLoss loss=tensor", "Adam default", "0-dim tensor loss"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps per variant and network")
    parser.add_argument("--block", type=int, default=100, help="steps per timed block")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this thread's CPU time (robust on a shared machine); wall: perf_counter")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"torch {torch.__version__}, 1 thread, {args.steps} steps per variant in blocks of {args.block}, "
          f"{args.clock} clock")

    overall: dict[tuple[str, str], list[float]] = {(a, b): [] for a, b, _ in COMPARISONS}
    for env, obs_dim in (("Pendulum-v1", 3), ("CartPoleSwingUp-v1", 5)):
        for kind in ("actor", "critic"):
            params = network_params(kind, obs_dim)
            n = sum(p.numel() for p in params)
            per_step = time_interleaved(variants(params), args.steps, args.block, clock)
            med = {name: statistics.median(ts) for name, ts in per_step.items()}
            print(f"\n{env} {kind} ({len(params)} tensors, {n} parameters): median us/step")
            for name, t in med.items():
                print(f"  {name:<22} {t * 1e6:7.2f}")
            for a, b, note in COMPARISONS:
                ratio = med[a] / med[b]
                overall[(a, b)].append(ratio)
                # The spread of the per-round ratios (blocks of a round run close together) shows the noise.
                q1, _, q3 = statistics.quantiles([x / y for x, y in zip(per_step[a], per_step[b])], n=4)
                print(f"  {a} / {b}: {ratio:.3f}x  [rounds IQR {q1:.3f}-{q3:.3f}]" + (f"  {note}" if note else ""))

    print("\nratios, median over the four networks (target AdamLoss / Adam <= 1.03x):")
    for a, b, note in COMPARISONS:
        print(f"  {a:<22} / {b:<20} {statistics.median(overall[(a, b)]):.3f}x" + (f"  {note}" if note else ""))


if __name__ == "__main__":
    main()
