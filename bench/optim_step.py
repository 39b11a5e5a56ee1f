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

Member mode (``--members 1,8,64``): the batched engine steps K members' actors (Pendulum-v1's, stacked along a
leading member axis) with one member-axis optimizer (``members=K``, a (K,) loss), where the alternative is K
separate instances, one per member, each fed a float loss. Both are timed in the same run, interleaved, and the
ratio ``members=K / K instances`` is printed per K (below 1: the member axis is faster). Ratios, never assertions.

    python bench/optim_step.py [--steps 5000] [--block 100] [--clock cpu|wall]
                               [--members 1,8,64] [--member-steps 400] [--member-block 20] [--only members|single]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from rl_adaloss.optim import AdaLoss, AdamLoss, member_adam

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


# -- member mode ----------------------------------------------------------------------------------------------

MEMBER_OBS_DIM = 3  # Pendulum-v1's actor: obs -> 64 -> 64 -> 1, plus gSDE's log-std (64 x 1)


def member_params(members: int) -> list[torch.Tensor]:
    """K actors stacked along dim 0 (Linear weights (K, out, in), biases (K, out), log-std (K, 64, 1)), with
    fixed random gradients."""
    gen = torch.Generator().manual_seed(2)
    shapes = [(64, MEMBER_OBS_DIM), (64,), (64, 64), (64,), (1, 64), (1,), (64, 1)]
    out = []
    for shape in shapes:
        p = (torch.randn((members, *shape), generator=gen) * 0.1).requires_grad_()
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
        out.append(p)
    return out


def slices(params: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    out = []
    for p in params:
        q = p[k].detach().clone().requires_grad_()
        q.grad = p.grad[k].clone()
        out.append(q)
    return out


def member_variants(members: int) -> dict[str, callable]:
    """For K members: each rule as one member-axis optimizer, and as K separate instances (float losses)."""
    lrs = [LR * (1 + 0.1 * k) for k in range(members)]
    losses = torch.full((members,), 0.7)

    def one(make):
        opt = make(member_params(members))
        return lambda: opt.step(loss=losses)

    def loop(make, takes_loss=True):
        opts = [make(slices(member_params(members), k), k) for k in range(members)]
        if takes_loss:
            return lambda: [o.step(loss=0.7) for o in opts]
        return lambda: [o.step() for o in opts]

    return {
        "AdamLoss members=K": one(lambda ps: AdamLoss(ps, lr=[lr * 1e3 for lr in lrs], b0=1e6, betas=BETAS, eps=EPS,
                                                     members=members)),
        "AdamLoss x K": loop(lambda ps, k: AdamLoss(ps, lr=lrs[k] * 1e3, b0=1e6, betas=BETAS, eps=EPS)),
        "member_adam members=K": one(lambda ps: member_adam(ps, members=members, lr=lrs, betas=BETAS, eps=EPS)),
        "Adam default x K": loop(lambda ps, k: torch.optim.Adam(ps, lr=lrs[k], betas=BETAS, eps=EPS), False),
        "AdaLoss members=K": one(lambda ps: AdaLoss(ps, lr=lrs, b0=1.0, alpha=1e-3, members=members)),
        "AdaLoss x K": loop(lambda ps, k: AdaLoss(ps, lr=lrs[k], b0=1.0, alpha=1e-3)),
    }


MEMBER_COMPARISONS = [
    ("AdamLoss members=K", "AdamLoss x K"),
    ("member_adam members=K", "Adam default x K"),
    ("AdaLoss members=K", "AdaLoss x K"),
]


def bench_members(member_counts: list[int], steps: int, block: int, clock) -> None:
    print(f"\nmember mode: Pendulum-v1 actor per member, {steps} steps per variant in blocks of {block}")
    summary = []
    for members in member_counts:
        per_step = time_interleaved(member_variants(members), steps, block, clock)
        med = {name: statistics.median(ts) for name, ts in per_step.items()}
        print(f"\nK = {members}: median us per step of all K members (us per member)")
        for name, t in med.items():
            print(f"  {name:<24} {t * 1e6:9.1f}  ({t * 1e6 / members:7.2f})")
        for a, b in MEMBER_COMPARISONS:
            ratios = [x / y for x, y in zip(per_step[a], per_step[b])]
            q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
            print(f"  {a} / {b}: {med[a] / med[b]:.3f}x  [rounds IQR {q1:.3f}-{q3:.3f}]")
            summary.append((members, a, b, med[a] / med[b]))
    print("\nmember-axis optimizer / K separate instances (below 1: the member axis is faster):")
    for members, a, b, ratio in summary:
        print(f"  K={members:<3} {a:<24} / {b:<18} {ratio:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps per variant and network")
    parser.add_argument("--block", type=int, default=100, help="steps per timed block")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this thread's CPU time (robust on a shared machine); wall: perf_counter")
    parser.add_argument("--members", default="1,8,64", help="member counts K for the member-mode measurement")
    parser.add_argument("--member-steps", type=int, default=400, help="timed steps per member-mode variant")
    parser.add_argument("--member-block", type=int, default=20, help="steps per timed block in member mode")
    parser.add_argument("--only", choices=("members", "single"), default=None,
                        help="run only the member-mode or only the single-network measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"torch {torch.__version__}, 1 thread, {args.clock} clock")
    if args.only != "single":
        bench_members([int(k) for k in args.members.split(",")], args.member_steps, args.member_block, clock)
    if args.only == "members":
        return
    print(f"\nsingle networks: {args.steps} steps per variant in blocks of {args.block}")

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
