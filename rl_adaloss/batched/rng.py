"""Counter-based random streams for K members at once, in plain torch int64 arithmetic.

Word ``i`` (``i = 0, 1, ...``) of member k's stream is SplitMix64's output for the state ``key_k + (i + 1) * gamma``
(Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; the generator behind Java's
``SplittableRandom``), with ``key_k`` derived from the member's seed and the stream's name. A draw for all members is
one vectorised hash of (key, counter) pairs: no Python loop over members, and member k's numbers depend on its seed,
the stream and how many words it has used, never on K or on its position in the batch, so a member trained alone
draws exactly what it draws in a batch.

* uniforms: the top 53 bits of a word, times 2**-53, in [0, 1) (float64), cast to the requested dtype;
* normals: Box-Muller from two words (``sqrt(-2 log u1) cos(2 pi u2)``, ``u1`` in (0, 1]), in float64, cast;
* permutations: ``argsort`` of one word per element (ties have probability 2**-64 per pair and are broken by
  position, ``stable=True``), all K at once.

These are not torch's or numpy's numbers (nothing here tries to replay them): equally distributed, and reproducible
from the seeds alone. The state is the (K,) int64 ``counter`` (words used so far) and the (K,) int64 ``key``, both
plain tensors, so the engine's checkpoint captures and restores them like any other tensor.

torch's int64 arithmetic wraps modulo 2**64 (two's complement) on CPU and CUDA; ``tests/test_batched_rng.py`` checks
the hash against a pure-Python SplitMix64.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["MemberRNG", "splitmix64", "splitmix64_reference"]

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _signed(value: int) -> int:
    """A 64-bit unsigned value as the int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def splitmix64_reference(state: int) -> int:
    """SplitMix64's output function on a 64-bit state, in Python integers (the reference the tests check)."""
    z = state & _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def _shift_right_logical(x: Tensor, bits: int) -> Tensor:
    """``x >>> bits`` for int64 ``x`` read as unsigned (torch's ``>>`` on int64 is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(state: Tensor) -> Tensor:
    """SplitMix64's output function, elementwise on an int64 tensor of states (bits as unsigned 64-bit values)."""
    z = state ^ _shift_right_logical(state, 30)
    z = z * _signed(_M1)
    z = z ^ _shift_right_logical(z, 27)
    z = z * _signed(_M2)
    return z ^ _shift_right_logical(z, 31)


def stream_key(seed: int, stream: str) -> int:
    """The int64 key of ``seed``'s stream ``stream``: two SplitMix64 rounds over the seed and the stream's CRC32."""
    tag = zlib.crc32(stream.encode())
    z = splitmix64_reference((int(seed) & _MASK64) + _GAMMA)
    return _signed(splitmix64_reference(z ^ (tag * _GAMMA)))


class MemberRNG:
    """One random stream per member, for K members (``seeds``), named ``stream`` (different names give independent
    streams of the same seed)."""

    def __init__(self, seeds: Sequence[int], stream: str, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.key = torch.tensor([stream_key(s, stream) for s in seeds], dtype=torch.int64, device=self.device)
        #: Per member, the number of words used so far.
        self.counter = torch.zeros(len(seeds), dtype=torch.int64, device=self.device)

    @property
    def members(self) -> int:
        return self.key.shape[0]

    # -- words ----------------------------------------------------------------------------------------------------

    def _words_at(self, offsets: Tensor) -> Tensor:
        """Words ``counter[k] + offsets[k, ...]`` of each member's stream, (K, ...) int64; the counter stays."""
        view = (-1,) + (1,) * (offsets.dim() - 1)
        index = self.counter.view(view) + offsets + 1
        return splitmix64(self.key.view(view) + index * _signed(_GAMMA))

    def words(self, shape: Sequence[int]) -> Tensor:
        """The next ``prod(shape)`` words of every member, (K, *shape) int64, in row-major order."""
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        offsets = torch.arange(n, dtype=torch.int64, device=self.device).expand(self.members, n)
        out = self._words_at(offsets)
        self.counter += n
        return out.reshape(self.members, *shape)

    # -- distributions ----------------------------------------------------------------------------------------------

    @staticmethod
    def _unit(words: Tensor) -> Tensor:
        """Words to float64 uniforms in [0, 1): the top 53 bits times 2**-53."""
        return _shift_right_logical(words, 11).to(torch.float64) * (2.0**-53)

    @staticmethod
    def _normal_from(w1: Tensor, w2: Tensor) -> Tensor:
        u1 = (_shift_right_logical(w1, 11) + 1).to(torch.float64) * (2.0**-53)  # (0, 1]: log(u1) is finite
        u2 = MemberRNG._unit(w2)
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)

    def uniform(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """U[0, 1) draws, (K, *shape); one word each."""
        return self._unit(self.words(shape)).to(dtype)

    def normal(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal draws, (K, *shape); two words each (element i uses words 2i and 2i + 1)."""
        w = self.words((*shape, 2))
        return self._normal_from(w[..., 0], w[..., 1]).to(dtype)

    def permutations(self, n: int, count: int = 1) -> Tensor:
        """``count`` permutations of ``range(n)`` per member, (K, count, n) int64: argsort of one word each."""
        return torch.argsort(self.words((count, n)), dim=-1, stable=True)

    def rows(self, mask: Tensor, per_row: int, normal: bool = False) -> Tensor:
        """Draws for the rows where ``mask`` (K, n) is True, ``per_row`` values each: (K, n, per_row) float64 (rows
        not in the mask hold unspecified values). Member k's selected rows take its next words in row order, so
        a member's draws depend only on its own mask; its counter moves by the words its selected rows used."""
        words_per_value = 2 if normal else 1
        width = per_row * words_per_value
        rank = torch.cumsum(mask.to(torch.int64), dim=1) - 1  # a selected row's place among its member's
        offsets = rank.clamp(min=0).unsqueeze(-1) * width + torch.arange(width, dtype=torch.int64, device=self.device)
        w = self._words_at(offsets)
        self.counter += mask.sum(dim=1) * width
        if normal:
            w = w.view(*mask.shape, per_row, 2)
            return self._normal_from(w[..., 0], w[..., 1])
        return self._unit(w)
