"""The same loss landscapes in JAX, written the way a strong JAX user would: the cell as a pure
step, ``lax.scan`` over time, the grid points as a batch dimension, ``jax.jit`` over all of it,
``jax_enable_x64`` for float64 and the carry created in the computation's dtype (a float64 zeros
carry would silently promote a float32 run).

The population is run as ``lax.map`` over chunks of ``chunk`` members, each chunk one scan with a
(chunk, N) carry: with the whole grid in one carry (P x N = 10 million values for a 101 x 101 grid
of 1000 sequences) every step streams the state through memory, and JAX is slower (srnn, float64:
1.40 against 0.91 ns per cell-step with chunks of 8 to 128 members; float32: 0.31 either way;
``make_losses(..., chunk=0)`` gives the unchunked form). XLA fuses each
step into one loop with its own inlined tanh and logistic (rational or polynomial approximations).

The optimal readout (``loss="optimal"``: ridge-regularised logistic, l2 / 2 out_w^2, per member) is
``newton_fit``: a pure function of one member's outputs, ``jax.vmap``ped over the chunk and run as
the chunk's scan ends, in float64: a fixed ``NEWTON_ITERS`` damped Newton steps on the 2 x 2 system
(the line search a ``lax.while_loop`` that runs only while some member of the chunk still
backtracks). ``fit_losses`` runs it alone on given outputs (the check that it reaches landscape's
optimum).

Import is cheap; jax is imported on first use, with XLA's CPU threading off (one core, as the
benchmarks measure), and ``available()`` says whether it is installed.
"""
from __future__ import annotations

import functools
import os

import numpy as np

CELLS = ("srnn", "pascanu", "lstm", "gru")


def available() -> bool:
    """Whether jax is installed (found, not imported: importing it would start XLA before
    ``one_core_flags``)."""
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def one_core_flags() -> None:
    """XLA's CPU threading off in $XLA_FLAGS (read when jax starts its backend): one core, like the
    other candidates. The process's affinity is the caller's (``common.pin``)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()


@functools.lru_cache(maxsize=1)
def _jax():
    one_core_flags()
    import jax
    import jax.numpy as jnp
    from jax import lax

    jax.config.update("jax_enable_x64", True)  # float64 where asked; float32 arrays stay float32
    return jax, jnp, lax


def _step(cell: str, jax, jnp):
    """The cell's step on a chunk: p name -> (C, 1) columns, h tuple of (C, N), x (N,) or None."""
    sigmoid = jax.nn.sigmoid  # lax.logistic: XLA expands it inline

    if cell == "srnn":
        def step(p, s, x):
            (h,) = s
            a = p["w"] * h + p["b"] + (0 if x is None else p["u"] * x)
            return (jnp.tanh(a),)
    elif cell == "pascanu":
        def step(p, s, x):
            (v,) = s
            return (p["w"] * sigmoid(v) + p["b"] + (0 if x is None else p["u"] * x),)
    elif cell == "lstm":
        def step(p, s, x):
            h, c = s

            def pre(g):
                return p[f"w_{g}"] * h + (0 if x is None else p[f"u_{g}"] * x) + p[f"b_{g}"]

            i, f, o = sigmoid(pre("i")), sigmoid(pre("f")), sigmoid(pre("o"))
            c = f * c + i * jnp.tanh(pre("z"))
            return (o * jnp.tanh(c), c)
    elif cell == "gru":  # torch.nn.GRU's form (the reset after W_h), as landscape's gru default
        def step(p, s, x):
            (h,) = s
            ux = (lambda g: 0 if x is None else p[f"u_{g}"] * x)
            z = sigmoid(p["w_z"] * h + ux("z") + p["b_z"])
            r = sigmoid(p["w_r"] * h + ux("r") + p["b_r"])
            n = jnp.tanh(ux("h") + p["b_h"] + r * (p["w_h"] * h + p["b_hn"]))
            return (z * h + (1 - z) * n,)
    else:
        raise ValueError(f"no JAX version of cell {cell!r}; choose from: {', '.join(CELLS)}")
    return step, sigmoid


NEWTON_ITERS = 12  # Newton steps of the optimal fit: 11 are the fewest that reach the fused fit's losses to
#                    1e-10 on every latch grid of the benchmarks (10 left gru 1e-8 away), one more for margin
LINE_TRIALS = 40  # step halvings at most, as readouts._fit_block_1


def newton_fit(jax, jnp, lax, l2: float, iters: int = NEWTON_ITERS):
    """The optimal readout of one member as a pure function, to be vmapped: (h (N,), y (N,), sign
    (N,)) -> (out_w, out_b, loss), all float64.

    Minimises mean BCE + (l2 / 2) out_w^2 by ``iters`` Newton steps on the 2 x 2 system from
    (0, 0), as landscape's fit: where the Newton decrement^2 exceeds 0.01 the step is halved until
    the penalised objective does not rise (at most LINE_TRIALS times; none found: the iterate
    stays), below it the full step is taken. The halving is a ``lax.while_loop`` whose condition is
    false from the start where no line search is needed, so under ``vmap`` the loop body runs only
    while some member of the batch still backtracks. ``loss`` is the unpenalised mean BCE at the
    fitted readout (what the grid stores)."""

    def softplus(q):
        return jnp.maximum(q, 0) + jnp.log1p(jnp.exp(-jnp.abs(q)))

    def fit(h, y, sign):
        N = h.shape[0]
        yh, ybar = jnp.dot(y, h) / N, jnp.mean(y)

        def objective(a, c):
            return jnp.mean(softplus(sign * (a * h + c))) + 0.5 * l2 * a * a

        def step(_, state):
            a, c, value, known = state  # value: the penalised objective at (a, c) where known
            s = jax.nn.sigmoid(a * h + c)
            r = s * (1 - s)
            rh = r * h
            g_a, g_c = jnp.mean(s * h) - yh + l2 * a, jnp.mean(s) - ybar
            h_aa, h_ac, h_cc = jnp.mean(rh * h) + l2, jnp.mean(rh), jnp.mean(r) + 1e-12
            det = h_aa * h_cc - h_ac * h_ac
            d_a, d_c = (h_cc * g_a - h_ac * g_c) / det, (h_aa * g_c - h_ac * g_a) / det
            done = jnp.maximum(jnp.abs(d_a), jnp.abs(d_c)) <= 1e-10 * (1 + jnp.maximum(jnp.abs(a), jnp.abs(c)))
            search = (g_a * d_a + g_c * d_c > 1e-2) & ~done  # damped phase: backtrack

            # the objective at (a, c) where a search needs it and it is not known (after a full
            # step): a one-pass while loop, so that no pass is made where no member needs one
            old, _ = lax.while_loop(lambda st: st[1], lambda st: (objective(a, c), False),
                                    (value, search & ~known))

            def rises(st):
                return (st[1] < LINE_TRIALS) & (st[2] > old + 1e-13 * (1 + jnp.abs(old)))

            def halve(st):
                t, trial, _ = st
                t = 0.5 * t
                return t, trial + 1, objective(a - t * d_a, c - t * d_c)

            t, _, new = lax.while_loop(lambda st: search & rises(st), halve,
                                       (jnp.full((), 2.0, h.dtype), 0, jnp.full((), jnp.inf, h.dtype)))
            failed = search & (new > old + 1e-13 * (1 + jnp.abs(old)))  # no descent: the iterate stays
            t = jnp.where(done | failed, 0.0, jnp.where(search, t, 1.0))
            value = jnp.where(search, jnp.where(failed, old, new), value)
            return a - t * d_a, c - t * d_c, value, search

        zero = jnp.zeros((), h.dtype)
        a, c, _, _ = lax.fori_loop(0, iters, step, (zero, zero, objective(zero, zero), True))
        return a, c, jnp.mean(softplus(sign * (a * h + c)))

    return fit


def make_losses(cell: str, params: dict[str, np.ndarray], x: np.ndarray | None, n: int, T: int, h0: float,
                dtype: str, loss: str, target: np.ndarray, out_w: float = 0.0, out_b: float = 0.0,
                chunk: int = 32, l2: float = 1e-4, iters: int = NEWTON_ITERS):
    """A jitted ``run()`` -> losses (P,) as a numpy array, and the number of members P.

    params  name -> (P,) or a scalar (shared): the grid's parameter values
    x       (T, N) the input, or None (no input)
    loss    'logistic' (fixed readout out_w, out_b; target the labels in {0, 1}), 'optimal' (the
            ridge-regularised logistic readout fitted per member by ``newton_fit`` with ``l2`` and
            ``iters``, in float64 whatever ``dtype``, as landscape fits it) or 'identity'
            (mean (y_T - target)^2; y the cell's output: sigmoid(x) for pascanu)
    chunk   members per scan (0: the whole grid in one scan); the fit runs on each chunk's outputs
            as the scan ends, inside the same jitted map
    """
    jax, jnp, lax = _jax()
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    step, sigmoid = _step(cell, jax, jnp)
    P = max(np.size(v) for v in params.values())
    C = P if chunk <= 0 else min(chunk, P)
    chunks = -(-P // C)
    cols = {}
    for k, v in params.items():  # (chunks, C, 1) per-member columns, padded; shared stay scalars
        v = np.asarray(v, dtype=np.float64)
        if v.size == 1:
            cols[k] = jnp.asarray(v.reshape(()), dt)
        else:
            pad = np.zeros(chunks * C)
            pad[:P] = v
            cols[k] = jnp.asarray(pad.reshape(chunks, C, 1), dt)
    shared = {k: v for k, v in cols.items() if v.ndim == 0}
    batched = {k: v for k, v in cols.items() if v.ndim > 0}
    xs = None if x is None else jnp.asarray(x[:T], dt)
    y = jnp.asarray(target, dt)
    n_state = 2 if cell == "lstm" else 1
    wo, bo = jnp.asarray(out_w, dt), jnp.asarray(out_b, dt)
    if loss == "optimal":
        one = newton_fit(jax, jnp, lax, l2, iters)
        fit = jax.vmap(lambda h, y, sign: one(h, y, sign)[2], in_axes=(0, None, None))
    elif loss not in ("identity", "logistic"):
        raise ValueError(f"unknown loss {loss!r}; choose from: logistic, optimal, identity")

    def chunk_loss(p_batched):
        p = {**shared, **p_batched}
        h = tuple(jnp.full((C, n), h0, dt) for _ in range(n_state))  # the carry in the right dtype
        if xs is None:
            h, _ = lax.scan(lambda s, _: (step(p, s, None), None), h, None, length=T)
        else:
            h, _ = lax.scan(lambda s, xt: (step(p, s, xt), None), h, xs)
        out = sigmoid(h[0]) if cell == "pascanu" else h[0]  # (C, N)
        if loss == "identity":
            return jnp.mean((out - y) ** 2, axis=-1)
        if loss == "optimal":
            y64 = y.astype(jnp.float64)
            return fit(out.astype(jnp.float64), y64, jnp.where(y64 > 0.5, -1.0, 1.0))  # (C,)
        q = jnp.where(y > 0.5, -1, 1) * (wo * out + bo)  # BCE as softplus of the signed logit
        return jnp.mean(jnp.maximum(q, 0) + jnp.log1p(jnp.exp(-jnp.abs(q))), axis=-1)

    @jax.jit
    def run_all(b):
        if chunks == 1:
            return chunk_loss({k: v[0] for k, v in b.items()}).reshape(-1)
        return lax.map(chunk_loss, b).reshape(-1)

    def run():
        return np.asarray(run_all(batched).block_until_ready())[:P]

    return run, P


def fit_losses(y: np.ndarray, target: np.ndarray, l2: float = 1e-4, iters: int = NEWTON_ITERS) -> np.ndarray:
    """The optimal readout's losses of given outputs, by the same jitted, vmapped ``newton_fit``:
    y (P, N), target (N,) in {0, 1} -> (P,) float64. For checking the fit alone on landscape's own
    outputs (an unroll in float32 differs by its rounding, which the loss then carries)."""
    jax, jnp, lax = _jax()
    one = newton_fit(jax, jnp, lax, l2, iters)
    fit = jax.jit(jax.vmap(lambda h, t, sign: one(h, t, sign)[2], in_axes=(0, None, None)))
    t = jnp.asarray(target, jnp.float64)
    return np.asarray(fit(jnp.asarray(y, jnp.float64), t, jnp.where(t > 0.5, -1.0, 1.0)))
