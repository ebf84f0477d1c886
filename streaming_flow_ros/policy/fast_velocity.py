"""The per-tick velocity pass in numpy: the same function as nets.velocity.VelocityNet
``forward_cached`` for batch 1, without torch's per-op dispatch cost (~5 us an op, ~50 ops).

Exact re-arrangements (tested against the torch module):
- LayerNorm's affine (gamma, beta) is folded into the following linear:
  W (gamma * n + beta) + b = (W diag(gamma)) n + (W beta + b).
- FiLM's "1 + scale" is folded into the time-bias, and the time part W_t emb(t) + b_t is cached
  per flow time t (a receding-horizon controller revisits the same grid t = i * dt every chunk).
- SiLU(y) = y sigmoid(y) = u (1 + tanh u) with u = y / 2: the 1/2 is folded into both FiLM
  halves (time part and per-observation cache), so the activation is 3 numpy calls and cannot
  overflow.
- With ``input_cond`` the input layer's time part W_tt emb(t) is cached per t after the FiLM
  time part, and its per-observation part rides (not halved) at the end of the cache.
- Buffers are preallocated; a pass allocates only its small output vector.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
import torch

from ..nets.velocity import VelocityNet


class NumpyVelocity:
    MAX_CACHED_TIMES = 8192

    def __init__(self, net: VelocityNet) -> None:
        def w(m):
            return m.weight.detach().double().numpy()

        def b(m):
            return m.bias.detach().double().numpy()

        f32 = np.float32
        self.depth, self.hidden, self.x_dim = net.depth, net.hidden, net.x_dim
        self.input_cond, self.film_dim = net.input_cond, net.film_dim
        self.eps = float(net.norms[0].eps)
        self.w_in, self.b_in = w(net.inp).astype(f32), b(net.inp).astype(f32)
        self.blocks = []
        for i in range(net.depth):
            g, be = net.norms[i].weight.detach().double().numpy(), net.norms[i].bias.detach().double().numpy()
            w1, b1 = w(net.lin1[i]), b(net.lin1[i])
            self.blocks.append(
                (
                    np.ascontiguousarray((w1 * g[None]).astype(f32)),
                    (b1 + w1 @ be).astype(f32),
                    np.ascontiguousarray(w(net.lin2[i]).astype(f32)),
                    b(net.lin2[i]).astype(f32),
                )
            )
        g, be = net.out_norm.weight.detach().double().numpy(), net.out_norm.bias.detach().double().numpy()
        self.w_out = np.ascontiguousarray((w(net.out) * g[None]).astype(f32))
        self.b_out = (b(net.out) + w(net.out) @ be).astype(f32)
        self.freqs = net.time_emb.freqs.detach().double().numpy()
        self.w_t = w(net.film_t)
        bt = b(net.film_t).reshape(net.depth, 2, net.hidden).copy()
        bt[:, 0] += 1.0  # FiLM multiplies by (1 + scale)
        # u = y / 2 for the SiLU identity: halve both FiLM terms (time part here, cache below)
        self.w_t = 0.5 * self.w_t
        self.b_t = 0.5 * bt.reshape(-1)
        if self.input_cond:  # the input layer's time part, not halved
            self.w_t = np.concatenate([self.w_t, w(net.inp_t)])
            self.b_t = np.concatenate([self.b_t, np.zeros(net.hidden)])
        self._t_cache: dict[float, np.ndarray] = {}
        H = net.hidden
        self._inv_hidden = 1.0 / H
        self._h, self._n, self._y, self._tmp = (np.empty(H, f32) for _ in range(4))
        self._film = np.empty(net.cache_dim, f32)

    def time_film(self, t: float) -> np.ndarray:
        """W_t emb(t) + b_t (+1 on the scale half; then the input layer's W_tt emb(t) with
        ``input_cond``), cached per t."""
        ft = self._t_cache.get(t)
        if ft is None:
            if len(self._t_cache) >= self.MAX_CACHED_TIMES:
                self._t_cache.clear()
            a = t * self.freqs
            ft = (self.w_t @ np.concatenate([np.sin(a), np.cos(a)]) + self.b_t).astype(np.float32)
            self._t_cache[t] = ft
        return ft

    @staticmethod
    def cache_from_torch(cache: torch.Tensor, film_dim: int) -> np.ndarray:
        """The per-observation part (1, cache_dim) as the float32 vector this class adds to its
        time part: the first ``film_dim`` (FiLM) entries halved like that part, for the SiLU
        identity; the input layer's entries after them as they are."""
        c = cache.detach()[0].double().clone()
        c[:film_dim] *= 0.5
        return np.ascontiguousarray(c.numpy().astype(np.float32))

    def _norm(self, h: np.ndarray, out: np.ndarray) -> np.ndarray:
        np.subtract(h, float(h.sum()) * self._inv_hidden, out=out)
        out *= 1.0 / math.sqrt(float(np.dot(out, out)) * self._inv_hidden + self.eps)
        return out

    def __call__(self, x: np.ndarray, t: float, cache: np.ndarray) -> np.ndarray:
        """x (x_dim,) float32, t flow time, cache (cache_dim,) -> v (x_dim,) float32."""
        h, n, y, tmp, film = self._h, self._n, self._y, self._tmp, self._film
        np.add(self.time_film(t), cache, out=film)
        fv = film[: self.film_dim].reshape(self.depth, 2, self.hidden)
        np.matmul(self.w_in, x, out=h)
        h += self.b_in
        if self.input_cond:
            h += film[self.film_dim :]  # W_tt emb(t) + W_ct cond
        for i, (w1, b1, w2, b2) in enumerate(self.blocks):
            np.matmul(w1, self._norm(h, n), out=y)
            y += b1
            y *= fv[i, 0]  # y is now u = FiLM(.) / 2
            y += fv[i, 1]
            np.tanh(y, out=tmp)  # SiLU(2u) = u (1 + tanh u)
            tmp += 1.0
            y *= tmp
            np.matmul(w2, y, out=tmp)
            tmp += b2
            h += tmp
        return self.w_out @ self._norm(h, n) + self.b_out


_BLAS_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads_64_")


def limit_blas_threads(n: int) -> int:
    """Cap the OpenBLAS libraries loaded in this process (numpy's) at ``n`` threads; returns how
    many were capped. A large matrix-vector product is otherwise split over every core: on a
    busy 2-core machine a 2048-wide velocity pass took 136 ms that way and 22 ms on one thread,
    and the split competes with the control thread. Linux only (reads /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return 0
    capped = 0
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(int(n)))
                capped += 1
                break
    return capped
