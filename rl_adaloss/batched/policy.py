"""SB3's ``ActorCriticPolicy`` (``MlpPolicy``, Box actions) for K members at once.

Every parameter is one tensor with a leading member axis: member k's ``mlp_extractor.policy_net.0.weight`` is
``params["mlp_extractor.policy_net.0.weight"][k]``, with SB3's name and SB3's shape behind the member axis, so a
member's weights go to and from an SB3 policy by name (:meth:`BatchedActorCritic.load_member`,
:meth:`BatchedActorCritic.store_member`). The layers are batched matrix products (``torch.baddbmm``), which
round each member's products the same whatever K (see ``_member_bmm``).

Initialisation is SB3's own: member k's weights are those an SB3 policy built right after ``torch.manual_seed(seed_k)``
gets (default ``nn.Linear`` draws, then orthogonal with gains sqrt(2) for the hidden layers, 0.01 for the action
head, 1 for the value head, and ``log_std_init``), which is exactly how ``PPO(seed=seed_k)`` starts.

Distributions, term for term as SB3's (``stable_baselines3/common/distributions.py``) and torch's ``Normal``:

* diagonal Gaussian: ``std = ones_like(mean) * exp(log_std)``;
* gSDE (``StateDependentNoiseDistribution``, ``learn_features=False``): ``std = exp(log_std)`` (or ``expln``),
  broadcast to (latent, action) without ``full_std``; ``scale = sqrt((latent_pi.detach()**2) @ std**2 + 1e-6)``;
  a sampled action is ``mean + latent_pi.detach() @ E`` with one exploration matrix ``E ~ N(0, std)`` per env,
  redrawn by :meth:`BatchedActorCritic.reset_noise`.

Each member draws its noise from its own counter-based stream (:class:`rl_adaloss.batched.rng.MemberRNG`, stream
``"noise"`` of its noise seed), all members in one vectorised draw: a member's noise depends on its seed only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rl_adaloss.batched import host
from rl_adaloss.batched.rng import MemberRNG
from rl_adaloss.errors import UsageError
from rl_adaloss.optim.base import skip_dynamo_import

__all__ = ["BatchedActorCritic", "ACTIVATIONS"]

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": nn.functional.elu,
    "leaky_relu": nn.functional.leaky_relu,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
}
_ACTIVATION_MODULES = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
#: Each activation's backward, ``(grad_out, input, output) -> grad_in``: autograd's formula for it.
_ACTIVATION_BACKWARD = {
    "tanh": lambda g, z, h: torch.ops.aten.tanh_backward(g, h),
    "relu": lambda g, z, h: torch.ops.aten.threshold_backward(g, h, 0),
    "elu": lambda g, z, h: torch.ops.aten.elu_backward(g, 1.0, 1, 1, False, z),
    "leaky_relu": lambda g, z, h: torch.ops.aten.leaky_relu_backward(g, z, 0.01, False),
    "gelu": lambda g, z, h: torch.ops.aten.gelu_backward(g, z),
    "silu": lambda g, z, h: torch.ops.aten.silu_backward(g, z),
}
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_SDE_EPSILON = 1e-6


def _member_bmm(x: Tensor, matrix: Tensor, bias: Tensor | None = None, transpose: bool = False) -> Tensor:
    """``torch.bmm`` (``baddbmm`` with ``bias``) over the member axis, rounding a member's products the same for every
    K: for a batch of one, torch takes a matrix-vector path for a one-column product that rounds differently from
    its batched kernel (in the last bit), so such a product at K = 1 runs as a batch of two copies and keeps the
    first (the copies are made before ``transpose``, so that they have the batch's memory layout). A member trained
    alone then equals itself trained in a batch, bit for bit. ``transpose``: multiply by ``matrix.transpose(1, 2)``."""
    columns = matrix.shape[1] if transpose else matrix.shape[2]
    if x.shape[0] == 1 and columns == 1:
        x, matrix = torch.cat([x, x]), torch.cat([matrix, matrix])
        bias = None if bias is None else torch.cat([bias, bias])
        return _member_bmm(x, matrix, bias, transpose)[:1]
    if transpose:
        matrix = matrix.transpose(1, 2)
    return torch.bmm(x, matrix) if bias is None else torch.baddbmm(bias, x, matrix)


class BatchedActorCritic:
    """K members' actor-critic MLPs; ``params`` maps SB3's parameter names to member-stacked tensors."""

    def __init__(
        self,
        seeds: Sequence[int],
        observation_space,
        action_space,
        net_arch=(64, 64),
        activation_fn: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        use_sde: bool = False,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        share_features_extractor: bool = True,
        noise_seeds: Sequence[int] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        from gymnasium import spaces

        if not isinstance(action_space, spaces.Box):
            raise UsageError(f"env: the batched engine supports continuous (Box) actions only, got {action_space}")
        if squash_output:
            raise UsageError("policy_kwargs.squash_output: not supported by the batched engine")
        if activation_fn not in ACTIVATIONS:
            raise UsageError(f"policy_kwargs.activation_fn: unknown activation {activation_fn!r}")
        self.members = len(seeds)
        self.device = torch.device(device)
        self.use_sde, self.full_std, self.use_expln = use_sde, full_std, use_expln
        self.activation = ACTIVATIONS[activation_fn]
        self.activation_backward = _ACTIVATION_BACKWARD[activation_fn]
        self.action_dim = int(action_space.shape[0])
        self.sb3_kwargs = dict(
            net_arch=list(net_arch) if not isinstance(net_arch, dict) else dict(net_arch),
            activation_fn=_ACTIVATION_MODULES[activation_fn],
            ortho_init=ortho_init,
            log_std_init=log_std_init,
            use_sde=use_sde,
            full_std=full_std,
            use_expln=use_expln,
            share_features_extractor=share_features_extractor,
        )
        self.observation_space, self.action_space = observation_space, action_space
        # Member k's initial weights: an SB3 policy built right after torch.manual_seed(seeds[k]) (which builds
        # an optimizer too).
        skip_dynamo_import()
        states = []
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                states.append(self.sb3_policy().state_dict())
        self.names = list(states[0])
        self.params: dict[str, nn.Parameter] = {
            name: nn.Parameter(torch.stack([s[name] for s in states]).to(self.device)) for name in self.names
        }
        self.pi_layers = self._layers("mlp_extractor.policy_net")
        self.vf_layers = self._layers("mlp_extractor.value_net")
        self.rng = MemberRNG(noise_seeds if noise_seeds is not None else seeds, "noise", self.device)
        self.exploration = None  # gSDE: (K, n_envs, latent, action)
        self._layer_indices: dict[str, list[int]] = {}  # per MLP prefix, its layers' indices (see _mlp_backward)
        self._grad_out: dict[str, Tensor] | None = None  # backward's ``out``, while it runs
        self._prepared: dict[int, tuple[Tensor, Tensor]] | None = None  # see prepare()

    @property
    def deferred(self) -> bool:
        """Deferring host reads (see :mod:`.host`): :meth:`act` then checks every distribution, not reading whether
        to."""
        return host.defers_reads(self.device)

    # -- SB3 interop ------------------------------------------------------------------------------------------

    def sb3_policy(self):
        """A fresh SB3 ``ActorCriticPolicy`` with these networks' shapes (its weights are its own draws)."""
        from stable_baselines3.common.policies import ActorCriticPolicy

        return ActorCriticPolicy(self.observation_space, self.action_space, lambda _: 0.0, **self.sb3_kwargs)

    @torch.no_grad()
    def load_member(self, k: int, policy) -> None:
        """Copy an SB3 policy's weights (by name) into member k."""
        state = policy.state_dict()
        for name in self.names:
            self.params[name][k].copy_(state[name])

    @torch.no_grad()
    def store_member(self, k: int, policy) -> None:
        """Copy member k's weights into an SB3 policy (by name)."""
        state = policy.state_dict()
        for name in self.names:
            state[name].copy_(self.params[name][k])

    def _layers(self, prefix: str) -> list[tuple[nn.Parameter, nn.Parameter]]:
        indices = sorted(
            {int(name[len(prefix) + 1 :].split(".")[0]) for name in self.names if name.startswith(prefix + ".")}
        )
        return [(self.params[f"{prefix}.{i}.weight"], self.params[f"{prefix}.{i}.bias"]) for i in indices]

    # -- parameters by network (SeparateOptimizersPolicy's split and order) -------------------------------------

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for w, b in self.pi_layers for p in (w, b)] + [
            self.params["action_net.weight"],
            self.params["action_net.bias"],
            self.params["log_std"],
        ]

    def critic_parameters(self) -> list[nn.Parameter]:
        return [p for w, b in self.vf_layers for p in (w, b)] + [
            self.params["value_net.weight"],
            self.params["value_net.bias"],
        ]

    def parameters(self) -> list[nn.Parameter]:
        """All parameters, in SB3's ``policy.parameters()`` order."""
        return [self.params[name] for name in self.names]

    # -- the networks ---------------------------------------------------------------------------------------------

    def _linear(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        operands = self._prepared.get(id(weight)) if self._prepared is not None else None
        if operands is not None:
            return torch.baddbmm(operands[1], x, operands[0])
        return _member_bmm(x, weight, bias.unsqueeze(1), transpose=True)

    def prepare(self) -> None:
        """Keep each layer's ``_linear`` operands (the transposed weight, the bias as a row: views of the
        parameters, so they follow in-place updates) until :meth:`release`, for many forward passes over
        parameters that are updated in place only (an update). Not where ``_member_bmm`` copies a batch of one
        (K = 1 with one output), which keeps its own path."""
        layers = self.pi_layers + self.vf_layers + [
            (self.params[f"{head}.weight"], self.params[f"{head}.bias"]) for head in ("action_net", "value_net")]
        self._prepared = {id(w): (w.transpose(1, 2), b.unsqueeze(1)) for w, b in layers
                          if not (self.members == 1 and w.shape[1] == 1)}

    def release(self) -> None:
        self._prepared = None

    @staticmethod
    def _features_times(x: Tensor, matrix: Tensor) -> Tensor:
        """``x @ matrix`` for x (..., L) and matrix (..., L, A) with few columns A, as a product and a sum over L
        (the same rounding for every K; used for the rollout's gSDE noise, which no gradient goes through)."""
        return (x.unsqueeze(-1) * matrix).sum(dim=-2)

    def _mlp(self, x: Tensor, layers, saved: list | None = None) -> Tensor:
        """The MLP on x; with ``saved``, each layer's (input, pre-activation, output) is appended, for
        :meth:`_mlp_backward`."""
        for weight, bias in layers:
            z = self._linear(x, weight, bias)
            h = self.activation(z)
            if saved is not None:
                saved.append((x, z, h))
            x = h
        return x

    def latents(self, obs: Tensor, saved: dict | None = None) -> tuple[Tensor, Tensor]:
        """``latent_pi``, ``latent_vf`` for observations (K, B, obs_dim); ``saved``: see :meth:`evaluate_actions`."""
        obs = obs.to(torch.float32)
        if saved is None:
            return self._mlp(obs, self.pi_layers), self._mlp(obs, self.vf_layers)
        saved["pi"], saved["vf"] = [], []
        return self._mlp(obs, self.pi_layers, saved["pi"]), self._mlp(obs, self.vf_layers, saved["vf"])

    def value_from_latent(self, latent_vf: Tensor) -> Tensor:
        return self._linear(latent_vf, self.params["value_net.weight"], self.params["value_net.bias"])[..., 0]

    def predict_values(self, obs: Tensor) -> Tensor:
        """Values (K, B)."""
        return self.value_from_latent(self._mlp(obs.to(torch.float32), self.vf_layers))

    def _sde_std(self) -> Tensor:
        log_std = self.params["log_std"]
        if self.use_expln:
            below = torch.exp(log_std) * (log_std <= 0)
            safe = log_std * (log_std > 0) + _SDE_EPSILON
            std = below + (torch.log1p(safe) + 1.0) * (log_std > 0)
        else:
            std = torch.exp(log_std)
        if self.full_std:
            return std
        return torch.ones(self.members, log_std.shape[1], self.action_dim, device=log_std.device) * std

    def sde_variance_matrix(self) -> Tensor:
        """gSDE: the (K, latent, action) matrix whose product with the squared latent is the action variance."""
        return self._sde_std().square()

    def distribution(self, latent_pi: Tensor, sde_variance: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The action distribution's (mean, scale), each (K, B, action_dim). ``sde_variance``: gSDE's
        :meth:`sde_variance_matrix` where the caller has it (computed from the current parameters)."""
        mean = self._linear(latent_pi, self.params["action_net.weight"], self.params["action_net.bias"])
        return mean, self._scale(latent_pi, mean, sde_variance)

    def _scale(self, latent_pi: Tensor, mean: Tensor, sde_variance: Tensor | None) -> Tensor:
        """The action distribution's scale (K, B, action_dim) for the mean that ``latent_pi`` gave."""
        if self.use_sde:
            if sde_variance is None:
                sde_variance = self.sde_variance_matrix()
            return torch.sqrt(_member_bmm(latent_pi.detach().square(), sde_variance) + _SDE_EPSILON)
        return torch.ones_like(mean) * self.params["log_std"].exp().unsqueeze(1)

    @staticmethod
    def log_prob(actions: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
        """torch's ``Normal.log_prob``, summed over the action dimension: (K, B)."""
        var = scale.square()
        return (-(actions - mean).square() / (2 * var) - scale.log() - _LOG_SQRT_2PI).sum(dim=-1)

    @staticmethod
    def entropy(scale: Tensor) -> Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(scale)).sum(dim=-1)

    @staticmethod
    def valid(mean: Tensor, scale: Tensor) -> Tensor:
        """Per member: would torch's ``Normal`` accept these arguments (finite mean, finite positive scale)?"""
        ok = torch.isfinite(mean) & torch.isfinite(scale) & (scale > 0)
        return ok.flatten(1).all(dim=1)

    def evaluate_actions(
        self, obs: Tensor, actions: Tensor, saved: dict | None = None, validity: bool = True
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """SB3's ``evaluate_actions``: values, log-prob and entropy (each (K, B)), plus per-member validity (K,).

        ``saved``: a dict that receives what :meth:`backward` needs (run it under ``no_grad`` then: the update
        differentiates by hand, without recording a graph). ``validity=False``: None for the validity (a caller
        that checks it otherwise, or later with :meth:`valid` on ``saved``'s mean and scale)."""
        latent_pi, latent_vf = self.latents(obs, saved)
        # gSDE: the std kept for backward (sde_variance_matrix is its square).
        sde_std = self._sde_std() if self.use_sde else None
        mean, scale = self.distribution(latent_pi, None if sde_std is None else sde_std.square())
        if saved is not None:
            saved.update(actions=actions, mean=mean, scale=scale, sde_std=sde_std)
        return (
            self.value_from_latent(latent_vf),
            self.log_prob(actions, mean, scale),
            self.entropy(scale),
            self.valid(mean, scale) if validity else None,
        )

    # -- the gradients, by hand --------------------------------------------------------------------------------

    @torch.no_grad()
    def backward(self, saved: dict, grad_values: Tensor, grad_log_prob: Tensor, grad_entropy: Tensor | None,
                 out: dict[str, Tensor] | None = None) -> None:
        """Set every parameter's ``.grad`` to the gradient of a loss whose gradients with respect to
        :meth:`evaluate_actions`' values, log-prob and entropy (each (K, B)) are given, for the forward pass that
        filled ``saved``. ``grad_entropy`` None: no entropy term (as a zero gradient, for finite nonzero scales).
        ``out``: per parameter name, a tensor of its shape to write its gradient into (and make its ``.grad``).

        autograd's backward written out for these networks: the same formulas (``baddbmm``'s, the activations',
        sqrt's, exp's, ...), node by node, and gradients of a tensor used twice added in autograd's order, so the
        gradients are autograd's bit for bit (tests/test_batched_policy.py). On the CPU, recording the graph and
        running its ~40 small nodes cost a third of an update's minibatch step; this costs the arithmetic."""
        params = self.params
        grads: dict[str, Tensor] = {}
        self._grad_out = out
        # The critic: the value head and its MLP.
        grad_latent_vf = self._linear_backward(grad_values.unsqueeze(-1), saved["vf"][-1][2], "value_net", grads)
        self._mlp_backward(grad_latent_vf, saved["vf"], "mlp_extractor.value_net", grads)
        # The actor: Normal(mean, scale)'s log-prob, -(a - mean)**2 / (2 scale**2) - log(scale) - log(sqrt(2 pi)),
        # and entropy, log(scale) + const, summed over the action dimension; node by node as autograd runs them,
        # and scale's three gradients added in autograd's order (entropy's, log's, the square's).
        actions, mean, scale = saved["actions"], saved["mean"], saved["scale"]
        shape = mean.shape
        diff = actions - mean
        twice_var = 2 * scale.square()
        grad_q = grad_log_prob.unsqueeze(-1).expand(shape)
        grad_scale = (-grad_q) / scale
        if grad_entropy is not None:
            grad_scale = grad_entropy.unsqueeze(-1).expand(shape) / scale + grad_scale
        grad_twice_var = -grad_q * ((-diff.square() / twice_var) / twice_var)
        grad_scale = grad_scale + (grad_twice_var * 2) * (2 * scale)
        grad_mean = -((-(grad_q / twice_var)) * (2 * diff))
        latent_pi = saved["pi"][-1][2]
        grad_latent_pi = self._linear_backward(grad_mean, latent_pi, "action_net", grads)
        log_std = params["log_std"]
        if self.use_sde:
            # scale = sqrt(latent_pi**2 @ std**2 + eps), latent_pi detached (SB3's learn_features=False).
            grad_variance = grad_scale / (2 * scale)
            std = saved["sde_std"]
            grad_std = _member_bmm(latent_pi.square().transpose(1, 2), grad_variance) * (2 * std)
            if not self.full_std:
                grad_std = grad_std.sum(dim=-1, keepdim=True)
            if self.use_expln:  # _sde_std's two branches, each times its mask
                below, above = log_std <= 0, log_std > 0
                safe = log_std * above + _SDE_EPSILON
                grads["log_std"] = (grad_std * below) * torch.exp(log_std) + ((grad_std * above) / (safe + 1)) * above
            else:  # full_std: std is exp(log_std) itself
                grads["log_std"] = grad_std * (std if self.full_std else torch.exp(log_std))
        else:
            # scale = exp(log_std), broadcast over the batch.
            grads["log_std"] = grad_scale.sum(dim=1) * torch.exp(log_std)
        self._mlp_backward(grad_latent_pi, saved["pi"], "mlp_extractor.policy_net", grads)
        for name, grad in grads.items():
            if out is not None and grad is not out[name]:
                grad = out[name].copy_(grad)
            params[name].grad = grad
        self._grad_out = None

    def _linear_backward(self, grad_out: Tensor, x: Tensor, prefix: str, grads: dict[str, Tensor],
                         need_input: bool = True) -> Tensor | None:
        """``_linear``'s backward (``baddbmm``'s): the weight's and bias' gradients into ``grads``, and the input's
        (None where not needed)."""
        weight = self.params[f"{prefix}.weight"]
        # As autograd: (x^T grad)^T, made contiguous as AccumulateGrad does (the per-member optimizers' kernels
        # want a gradient laid out as its parameter). Into backward's ``out`` directly, the product written
        # transposed, where both of the weight's dimensions are at least 32: MKL's gemm then rounds the same
        # (checked over K, batch and layer sizes; products with a vector side take other paths, which may not).
        # torch runs a product into a transposed ``out`` as one gemm per member, which costs more than autograd's
        # batched product and a copy below that size (by about 30 us per layer for the 3-input first layer).
        name = f"{prefix}.weight"
        out = self._grad_out
        if out is None:
            grads[name] = _member_bmm(x.transpose(1, 2), grad_out).transpose(1, 2).contiguous()
            grads[f"{prefix}.bias"] = grad_out.sum(dim=1)
        else:
            if min(weight.shape[1:]) >= 32:
                torch.bmm(x.transpose(1, 2), grad_out, out=out[name].transpose(1, 2))
            else:
                out[name].copy_(_member_bmm(x.transpose(1, 2), grad_out).transpose(1, 2))
            grads[name] = out[name]
            # The sum over the batch, each output element accumulated in the same order whatever the output's
            # strides (the batch axis lies between the member and the unit axes, so they never merge).
            grads[f"{prefix}.bias"] = torch.sum(grad_out, dim=1, out=out[f"{prefix}.bias"])
        return _member_bmm(grad_out, weight) if need_input else None

    def _mlp_backward(self, grad_h: Tensor, saved: list, prefix: str, grads: dict[str, Tensor]) -> None:
        indices = self._layer_indices.get(prefix)
        if indices is None:  # the same every minibatch: found once
            indices = self._layer_indices[prefix] = sorted(
                {int(name[len(prefix) + 1 :].split(".")[0]) for name in self.names if name.startswith(prefix + ".")})
        for i, (index, (x, z, h)) in reversed(list(enumerate(zip(indices, saved)))):
            grad_z = self.activation_backward(grad_h, z, h)
            grad_h = self._linear_backward(grad_z, x, f"{prefix}.{index}", grads, need_input=i > 0)

    # -- acting -----------------------------------------------------------------------------------------------

    def _normal(self, shape: tuple[int, ...]) -> Tensor:
        """Standard normal draws (K, *shape), float32, member k's from its own stream."""
        return self.rng.normal(shape)

    @torch.no_grad()
    def reset_noise(self, n_envs: int) -> None:
        """gSDE: draw one exploration matrix per member and env, ``E ~ N(0, std)``."""
        self.exploration = self.draw_noise(n_envs, 1)[:, 0]

    @torch.no_grad()
    def draw_noise(self, n_envs: int, draws: int) -> Tensor:
        """gSDE: ``draws`` successive :meth:`reset_noise` draws at once, (K, draws, n_envs, latent, action): draw i
        is the i-th call's matrices, bit for bit (the same words of each member's stream, in the same order, through
        the same elementwise ops), for a rollout that knows in advance how often it redraws."""
        std = self._sde_std()
        return self._normal((draws, n_envs, *std.shape[1:])) * std.unsqueeze(1).unsqueeze(1)

    @torch.no_grad()
    def fused_operands(self) -> list[tuple[Tensor, Tensor]] | None:
        """The actor's and critic's layers side by side, for :meth:`act` while the parameters stay as they are (a
        rollout): per layer the (2K, in, out) transposed weights and (2K, 1, out) biases, the actor's members first,
        so that one batched product runs both networks; the last pair the heads (action then value) where the action
        has one dimension, as the value does. None where the two MLPs differ in shape.

        A member's product is the same whatever the batch (see ``_member_bmm``), so the fused layers give the
        separate ones' numbers; the stacked copies are made once per rollout."""
        if len(self.pi_layers) != len(self.vf_layers) or any(
                wp.shape != wv.shape for (wp, _), (wv, _) in zip(self.pi_layers, self.vf_layers)):
            return None
        layers = list(zip(self.pi_layers, self.vf_layers))
        if self.action_dim == 1:
            layers.append(((self.params["action_net.weight"], self.params["action_net.bias"]),
                           (self.params["value_net.weight"], self.params["value_net.bias"])))
        return [(torch.cat([wp, wv]).transpose(1, 2), torch.cat([bp, bv]).unsqueeze(1))
                for (wp, bp), (wv, bv) in layers]

    def _fused_forward(self, obs: Tensor, fused: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
        """(latent_pi, mean, values) through :meth:`fused_operands`' layers, as :meth:`latents`,
        :meth:`distribution`'s mean and :meth:`value_from_latent` give them."""
        K = self.members
        x = obs.to(torch.float32)
        x = x.expand(2, *x.shape).reshape(2 * K, *x.shape[1:])
        hidden = len(self.pi_layers)
        for weight, bias in fused[:hidden]:
            z = torch.baddbmm(bias, x, weight)
            # Elementwise ops round an element by where it falls in the vectorised loop (its last, partial block
            # runs the scalar function): one call over both halves is the same as a call per half only where each
            # half is a whole number of blocks (64 elements cover every vector width).
            if (z.numel() // 2) % 64 == 0:
                x = self.activation(z)
            else:
                x = torch.cat([self.activation(z[:K]), self.activation(z[K:])])
        latent_pi, latent_vf = x[:K], x[K:]
        if len(fused) > hidden:
            weight, bias = fused[hidden]
            out = torch.baddbmm(bias, x, weight)
            return latent_pi, out[:K], out[K:, :, 0]
        mean = self._linear(latent_pi, self.params["action_net.weight"], self.params["action_net.bias"])
        return latent_pi, mean, self.value_from_latent(latent_vf)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False, sde_variance: Tensor | None = None,
            fused: list[tuple[Tensor, Tensor]] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """SB3's ``policy(obs)``: actions (K, n, A), values (K, n), log-probs (K, n), and validity (K,).
        ``sde_variance``: see :meth:`distribution`; ``fused``: :meth:`fused_operands` for the current parameters
        (the same numbers, fewer ops)."""
        if fused is not None:
            latent_pi, mean, values = self._fused_forward(obs, fused)
            scale = self._scale(latent_pi, mean, sde_variance)
        else:
            latent_pi, latent_vf = self.latents(obs)
            mean, scale = self.distribution(latent_pi, sde_variance)
            values = self.value_from_latent(latent_vf)
        if deterministic:
            actions = mean
        elif self.use_sde:
            actions = mean + self._features_times(latent_pi, self.exploration)
        else:
            actions = mean + self._normal(tuple(mean.shape[1:])) * scale
        log_prob = self.log_prob(actions, mean, scale)
        # Finite log-probs imply a valid distribution (a NaN or infinite mean makes actions - mean NaN; a NaN,
        # infinite, zero or negative scale makes log(scale) non-finite), so the full check runs only when some
        # log-prob is not finite: then it tells which members are invalid. (One read of their sum: it is finite
        # only if every log-prob is; an overflow would just run the full check. Deferred: always the full check.)
        if not self.deferred and math.isfinite(float(log_prob.sum())):
            valid = torch.ones(self.members, dtype=torch.bool, device=self.device)
        else:
            valid = self.valid(mean, scale)
        return actions, values, log_prob, valid

    @torch.no_grad()
    def predict(self, obs: Tensor) -> Tensor:
        """Deterministic actions (the mean), clipped to the action space, as SB3's ``predict`` gives them."""
        latent_pi = self._mlp(obs.to(torch.float32), self.pi_layers)
        mean = self._linear(latent_pi, self.params["action_net.weight"], self.params["action_net.bias"])
        low = torch.as_tensor(self.action_space.low, device=self.device)
        high = torch.as_tensor(self.action_space.high, device=self.device)
        return torch.clamp(mean, low, high)
