"""Population training: P models of one cell type, each with its own length T, data seed,
initialisation, learning rate, clipping threshold and protocol, trained together.

One step is one forward/backward over the whole population: the loss is the SUM over models of
each model's mean batch loss, so each model's gradient is its own; the optimiser updates (P, ...)
tensors at once (``optim``). Models of different T share the unroll: a model's output is read
when the unroll passes its T (the steps after it receive no gradient).

Shapes: parameters (P, *shape); a batch of inputs (T_run, P, B, D); states (P, B, H).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from ..lazy import torch

from ..cells import parse_param_ref
from ..engine import outputs_at_ends, resolve_device
from ..errors import LandscapeError
from .. import settings
from ..model import ModelSpec, split_model_fields
from ..plan import check_training_memory, training_bytes, training_budget
from ..problem import apply_set, resolve_model
from ..readouts import TRAIN_KINDS, readout_kind
from ..spec import DTYPES, torch_dtype
from .omega import loss_and_omega_grads, unroll_states
from .optim import PopulationOptimizer, check_optimizer, clip_grads, grad_norms
from .splits import check_protocol, epoch_orders, make_inputs, split_rows

if TYPE_CHECKING:
    from torch import Tensor

INITS = ("keras", "torch", "base")
KERAS_CLIP = 1e-7  # Keras' epsilon: it clips probabilities to [eps, 1 - eps] in its cross-entropy
EVAL_ELEMS = 1 << 21  # state elements (models x rows x units) per evaluation chunk
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
           "grad_norm_mean", "grad_norm_max", "clipped_frac")


@dataclass(frozen=True)
class TrainSpec:
    """What a population shares: the model (cell, task, hidden size), data size, schedule, optimiser,
    readout. ``TrainSpec.of(cell=..., task=..., n=..., ...)`` takes the flat form.

    model     a ``ModelSpec`` without a base point: each member's start is its own (``Member.init``,
              ``Member.set``)

    readout   the readout kind (landscape.readouts): dense2, Keras' Dense(2, softmax) + sparse
              categorical cross-entropy (2 (H + 1) parameters ``dense_w`` (2, H), ``dense_b``
              (2,)); logistic: one logit ``out_w . h + out_b`` + binary cross-entropy (the landscape
              grids' readout). Tasks whose loss is on the state (target, bengio) have the identity
              readout and ignore this.
    loss_clip Keras clips the softmax probabilities to [eps, 1 - eps] before the log; "auto"
              (default): Keras' eps = 1e-7 with the adam-keras optimiser (the Keras convention,
              as the question's code ran: Keras 2 and 3 alike), else None, the exact cross-entropy
              (torch). Resolved when the spec is made, so ``canonical`` holds the number.
    trainable names ('w', 'u_f', 'dense_w') or scalar elements ('w_hh[0,1]') that train; the
              rest stay at their initial values. Empty: everything trains.
    record_steps  also record the trainable parameters, the batch loss and the gradient norm along
              training (paths on the landscape): False (off), True (every step) or K, an int (every
              K-th step and the last; ``record_every``). 0 and 1 are stored as False and True, so
              the flag's run keys are unchanged.
    omega     alpha, the weight of Pascanu et al. 2013's regulariser Omega (``train.omega``): the
              gradient of E + alpha Omega is taken (Omega's on the recurrent weights only), before
              clipping; 0 (default): no regulariser, and the spec's canonical form omits it
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    n: int = 10000
    epochs: int = 5
    batch: int = 16
    optimizer: str = "adam-keras"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float | None = None
    readout: str = "dense2"
    loss_clip: float | None | str = "auto"
    val_fraction: float = 0.2
    n_test: int | None = None
    dtype: str = "float32"
    trainable: tuple[str, ...] = ()
    record_steps: bool | int = False
    shuffle: bool = True
    omega: float = 0.0

    def __post_init__(self):
        K = self.record_steps
        if not isinstance(K, (bool, int, np.integer)) or K < 0:
            raise LandscapeError(f"record_steps must be a step interval K >= 1 (or True / False), got {K!r}")
        object.__setattr__(self, "record_steps", bool(K) if int(K) <= 1 else int(K))
        if self.loss_clip == "auto":
            object.__setattr__(self, "loss_clip", KERAS_CLIP if self.optimizer == "adam-keras" else None)

    @property
    def record_every(self) -> int:
        """K: the recording interval in optimiser steps; 0 when nothing is recorded."""
        return int(self.record_steps)

    @classmethod
    def of(cls, **flat) -> TrainSpec:
        """A TrainSpec from the flat keyword form: the ModelSpec's fields (cell, task, hidden, ...)
        beside the population's own (n, epochs, ...)."""
        model, rest = split_model_fields(flat)
        return cls(model=model, **rest)

    def canonical(self) -> dict:
        """The spec as stored and hashed: the model's fields that a population has, flat, then its own."""
        m = self.model
        flat = {"cell": m.cell, "cell_options": m.cell_options, "task": m.task, "task_options": m.task_options,
                "hidden": m.hidden, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}}
        if not self.omega:  # runs without the regulariser keep the form (and key) they had before it
            del flat["omega"]
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in flat.items()}


@dataclass(frozen=True)
class Member:
    """One model of the population.

    T          its sequence length
    seed       its initialisation and its shuffling
    data_seed  its data set (models with the same data seed share the rows)
    init       keras (Keras 2 initialisers), torch (torch.nn's), base (the cell's default point
               and readout_defaults: the point landscape grids are drawn around)
    set        values that replace the initialisation: (('b_f', 2.0),) or (('w[0,1]', 0.5),)
    group      the unit of saving and resuming (see ``store``)
    labels     extra columns carried into the result rows, e.g. (('repeat', 3),)
    """

    T: int
    seed: int = 0
    data_seed: int = 0
    lr: float = 1e-3
    clip: float | None = None
    init: str = "keras"
    protocol: str = "keras-split"
    set: tuple[tuple[str, float], ...] = ()
    group: str = ""
    labels: tuple[tuple[str, object], ...] = ()

    def canonical(self) -> dict:
        d = asdict(self)
        d["set"] = [list(s) for s in self.set]
        d["labels"] = [list(s) for s in self.labels]
        return d


def spec_key(spec: TrainSpec, members) -> str:
    """A hash of everything that determines the numbers of these members under this spec."""
    doc = {"spec": spec.canonical(), "members": [m.canonical() for m in members]}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """What a population run recorded.

    metrics       name -> (E + 1, P): epoch 0 is the initial point (evaluation metrics only);
                  train_* are the running means over the epoch's batches, as Keras reports them
    params        name -> (E + 1, P, *shape), every parameter after each epoch
    step_params   name -> (R, P, *shape), trainable parameters after the recorded steps
                  ``steps`` (record_steps)
    step_metrics  loss, grad_norm, clip_coef -> (R - 1, P) (record_steps): the batch loss, gradient
                  norm and clipping factor of update steps[r] + 1, which starts from step_params[r]
    steps         (R,) int64 the recorded optimiser steps: 0, K, 2K, ... and the last, S (record_steps)
    """

    spec: TrainSpec
    members: list[Member]
    metrics: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    step_params: dict[str, np.ndarray] | None
    step_metrics: dict[str, np.ndarray] | None
    seconds: float
    device: str
    steps_per_epoch: int
    eval_seconds: float = 0.0
    steps: np.ndarray | None = None

    def subset(self, idx: list[int]) -> TrainResult:
        """The result of the models at positions ``idx`` only."""
        def pick(arrays, axis):
            return None if arrays is None else {k: np.take(v, idx, axis=axis) for k, v in arrays.items()}

        return TrainResult(self.spec, [self.members[i] for i in idx], pick(self.metrics, 1),
                           pick(self.params, 1), pick(self.step_params, 1), pick(self.step_metrics, 1),
                           self.seconds, self.device, self.steps_per_epoch, self.eval_seconds, self.steps)

    def rows(self, param_columns: int = 64) -> list[dict]:
        """Tidy rows: one per model and epoch. Parameter values become columns ``p:NAME``
        (``p:NAME[i,j]`` for matrices) when a model has at most ``param_columns`` scalars."""
        spec = self.spec
        n_scalars = sum(int(np.prod(v.shape[2:])) for v in self.params.values())
        out = []
        E1 = next(iter(self.metrics.values())).shape[0]
        for p, m in enumerate(self.members):
            base = {"group": m.group, "cell": spec.model.cell, "task": spec.model.task,
                    "optimizer": spec.optimizer, "readout": spec.readout, "protocol": m.protocol,
                    "T": m.T, "seed": m.seed, "data_seed": m.data_seed, "lr": m.lr,
                    "clip": "" if m.clip is None else m.clip, "init": m.init,
                    "set": ";".join(f"{k}={v}" for k, v in m.set)}
            base.update({k: v for k, v in spec.model.cell_options})
            base.update(dict(m.labels))
            for e in range(E1):
                row = dict(base, epoch=e)
                row.update({k: float(self.metrics[k][e, p]) for k in METRICS})
                if n_scalars <= param_columns:
                    for name, arr in self.params.items():
                        v = arr[e, p]
                        if v.size == 1:
                            row[f"p:{name}"] = float(v.reshape(()))
                        else:
                            for idx in np.ndindex(v.shape):
                                row[f"p:{name}[{','.join(map(str, idx))}]"] = float(v[idx])
                out.append(row)
        return out


# ---------------------------------------------------------------------------------------------
# setup


def _trainable_masks(refs, shapes, where) -> dict[str, Tensor | None]:
    """name -> None (all of it trains), a bool mask of its trainable elements, or absent."""
    if not refs:
        return {k: None for k in shapes}
    masks: dict[str, Tensor] = {}
    for ref in refs:
        name = ref.split("[")[0].strip()
        if name in shapes and "[" not in ref:
            masks[name] = torch.ones(shapes[name], dtype=torch.bool)
            continue
        name, idx = parse_param_ref(ref, shapes, where)
        masks.setdefault(name, torch.zeros(shapes[name], dtype=torch.bool))[idx] = True
    return {k: (None if bool(m.all()) else m) for k, m in masks.items()}


def check_population(spec: TrainSpec, members) -> None:
    """One clear LandscapeError for the first bad setting."""
    if not members:
        raise LandscapeError("no models to train: give at least one length and one repeat")
    check_optimizer(spec.optimizer)
    given = [name for name in ("set", "base_file", "base_model") if getattr(spec.model, name)]
    if given:
        raise LandscapeError(f"a population's model has no base point ({given[0]} given): each member starts "
                             f"from its own init and Member.set")
    if spec.dtype not in DTYPES:
        raise LandscapeError(f"unknown dtype {spec.dtype!r}; choose from: {', '.join(DTYPES)}")
    if spec.readout not in TRAIN_KINDS:
        raise LandscapeError(f"unknown readout {spec.readout!r}; choose from: {', '.join(TRAIN_KINDS)}")
    if spec.loss_clip is not None and not (isinstance(spec.loss_clip, float) and 0 < spec.loss_clip < 0.5):
        raise LandscapeError(f"loss_clip must be a probability in (0, 0.5), None or 'auto'; got {spec.loss_clip!r}")
    if spec.epochs < 0:
        raise LandscapeError(f"epochs must be >= 0, got {spec.epochs}")
    if not (isinstance(spec.omega, (int, float)) and math.isfinite(spec.omega) and spec.omega >= 0):
        raise LandscapeError(f"omega (the regulariser's weight alpha) must be a finite number >= 0, got {spec.omega!r}")
    if spec.batch < 1:
        raise LandscapeError(f"batch must be >= 1, got {spec.batch}")
    if not 0.0 < spec.val_fraction < 1.0:
        raise LandscapeError(f"validation fraction must be in (0, 1), got {spec.val_fraction}")
    for m in members:
        if not isinstance(m.T, (int, np.integer)) or m.T <= 0:
            raise LandscapeError(f"sequence lengths must be positive integers; got T={m.T!r}")
        check_protocol(m.protocol)
        if m.init not in INITS:
            raise LandscapeError(f"unknown initialiser {m.init!r}; choose from: {', '.join(INITS)}")
        if not m.lr > 0:
            raise LandscapeError(f"learning rate must be > 0, got {m.lr}")
        if m.clip is not None and not m.clip > 0:
            raise LandscapeError(f"clipping threshold must be > 0 (or none), got {m.clip}")
    kinds = {m.protocol == "all" for m in members}
    if len(kinds) > 1:
        raise LandscapeError("protocol 'all' trains on every row and cannot share a population with "
                             "keras-split or stratified; train them separately")
    n_train = spec.n if kinds == {True} else int(spec.n * (1.0 - spec.val_fraction))
    if spec.batch > n_train:
        raise LandscapeError(f"batch {spec.batch} is larger than the {n_train} training rows "
                             f"(n={spec.n}); lower --batch or raise --n")


class _Setup:
    """Everything a run needs, built once: cell, task, data, splits, initial parameters."""

    def __init__(self, spec: TrainSpec, members: list[Member], device: torch.device):
        check_population(spec, members)
        self.spec, self.members, self.device = spec, members, device
        self.dtype = torch_dtype(spec.dtype)
        self.problem = problem = resolve_model(spec.model, readout=spec.readout)
        self.cell, self.task, self.H, self.D = problem.cell, problem.task, problem.H, problem.D
        self.kind = problem.readout.kind  # identity, logistic or dense2
        self.readout = readout_kind(self.kind, self.task.classes)
        self.shapes = problem.shapes
        where = problem.where
        self.masks = _trainable_masks(spec.trainable, self.shapes, where)
        self.task.check_n(spec.n)
        self._check_memory()
        self.P = len(members)
        self.T = torch.tensor([m.T for m in members], dtype=torch.long)
        self.classes = self.kind != "identity"
        self._init_params(where)
        self._make_data()

    def _check_memory(self):
        """One line, before the data or the population are made, when the run does not fit the
        budget ($LANDSCAPE_MEMORY, else the machine's memory: ``plan.training_budget``)."""
        spec, members = self.spec, self.members
        steps = self.task.steps(max(int(m.T) for m in members))
        per_member = sum(math.prod(s) for s in self.shapes.values())
        trainable = sum(math.prod(self.shapes[k]) if m is None else int(m.sum()) for k, m in self.masks.items())
        n_train = spec.n if all(m.protocol == "all" for m in members) else int(spec.n * (1 - spec.val_fraction))
        need = training_bytes(len(members), spec.batch, spec.n, len({m.data_seed for m in members}), steps,
                              self.D, self.H, len(self.cell.state_names), torch.finfo(self.dtype).bits // 8,
                              per_member, trainable, spec.epochs, math.ceil(n_train / spec.batch),
                              spec.record_every, EVAL_ELEMS)
        check_training_memory(need, training_budget(self.device, settings.memory()),
                              f"{len(members)} models of {self.cell.name} over {spec.n} sequences of up to "
                              f"{steps} steps")

    # --- parameters ---------------------------------------------------------------------------
    def _init_params(self, where):
        cpu = torch.float64
        per_member = []
        for m in self.members:  # one-time setup: each model's draws depend only on its own seed
            g = torch.Generator().manual_seed(int(m.seed))
            if m.init == "base":
                p = self.cell.default_params(self.H, self.D, dtype=cpu)
            else:
                p = {k: v[0] for k, v in self.cell.init_params(m.init, self.H, self.D, 1, g, cpu).items()}
            p.update(self.readout.init(m.init, self.H, g, cpu))
            apply_set(p, self.shapes, m.set, where)
            per_member.append(p)
        self.params = {k: torch.stack([p[k] for p in per_member]).to(self.device, self.dtype).contiguous()
                       for k in self.shapes}

    # --- data -----------------------------------------------------------------------------------
    def _make_data(self):
        spec, dev = self.spec, self.device
        seeds = sorted({m.data_seed for m in self.members})
        self.did = torch.tensor([seeds.index(m.data_seed) for m in self.members], dtype=torch.long)
        Ts_of = {s: tuple(sorted({m.T for m in self.members if m.data_seed == s})) for s in seeds}
        self.steps = 0
        xs, self.targets, self.ends, h0 = [], {}, {}, 0.0
        for k, s in enumerate(seeds):
            data, x = make_inputs(self.task, Ts_of[s], spec.n, s)
            if data.path is not None:  # the training loss is read at the end of each sequence
                raise LandscapeError(f"task {self.task.name}'s loss is over every step of a path; training "
                                     f"reads it at the end only: grid it (landscape grid) instead")
            h0 = data.h0
            xs.append(x)
            for T in Ts_of[s]:
                self.targets[(k, T)] = data.targets[T]
                self.ends[(k, T)] = data.ends[T]
            self.steps = max(self.steps, data.steps)
        self.h0 = h0
        # time-major, data sets side by side: (S, K * n, D); row r of data set k is column k * n + r
        self.X = None if xs[0] is None else _stack_padded(xs, self.steps).to(dev, self.dtype)
        # one row of targets / ends per (data set, T) pair
        pairs = sorted(self.targets)
        self.pair = torch.tensor([pairs.index((int(d), m.T)) for d, m in zip(self.did, self.members)])
        self.Y = torch.stack([self.targets[q] for q in pairs]).to(dev, self.dtype)  # (K2, n)
        self.E = torch.stack([self.ends[q] for q in pairs]).to(dev)  # (K2, n)
        self.variable_ends = bool((self.E != torch.tensor([q[1] for q in pairs], device=dev).unsqueeze(-1)).any())
        # splits per (data set, protocol)
        self.splits = {}
        for d, m in zip(self.did.tolist(), self.members):
            if (d, m.protocol) not in self.splits:
                labels = self.targets[(d, m.T)] if self.classes else None
                self.splits[(d, m.protocol)] = split_rows(m.protocol, labels, spec.n, spec.val_fraction,
                                                          seeds[d])
        self.train_rows = torch.stack([self.splits[(d, m.protocol)].train
                                       for d, m in zip(self.did.tolist(), self.members)]).to(dev)  # (P, n_train)
        self.n_train = self.train_rows.shape[1]
        self._make_eval_sets(seeds)

    def _make_eval_sets(self, seeds):
        """[(kind, member indices, x (S, N, D) | None, y (Pg, N), ends (Pg, N))]."""
        dev, spec = self.device, self.spec
        self.eval_sets = []
        for (d, protocol), split in self.splits.items():
            idx = [p for p, m in enumerate(self.members) if int(self.did[p]) == d and m.protocol == protocol]
            if split.val is not None:
                rows = split.val.to(dev)
                x = None if self.X is None else self.X[:, d * spec.n + rows]  # (S, N, D)
                y = self.Y[self.pair[idx]][:, rows]
                e = self.E[self.pair[idx]][:, rows]
                self.eval_sets.append(("val", idx, x, y, e))
            if split.test_seed is not None:
                n_test = spec.n_test or split.val.numel()
                Ts = tuple(sorted({self.members[p].T for p in idx}))
                data, xt = make_inputs(self.task, Ts, n_test, split.test_seed)
                x = None if xt is None else xt.permute(1, 0, 2).to(dev, self.dtype)
                y = torch.stack([data.targets[self.members[p].T] for p in idx]).to(dev, self.dtype)
                e = torch.stack([data.ends[self.members[p].T] for p in idx]).to(dev)
                self.eval_sets.append(("test", idx, x, y, e))


def _stack_padded(xs: list[Tensor], steps: int) -> Tensor:
    """[(n, S_k, D)] -> (steps, K * n, D), time-major, zeros after each data set's own length."""
    n, _, D = xs[0].shape
    out = torch.zeros((steps, len(xs) * n, D), dtype=xs[0].dtype)
    for k, x in enumerate(xs):
        s = min(steps, x.shape[1])
        out[:s, k * n:(k + 1) * n] = x[:, :s].transpose(0, 1)
    return out


# ---------------------------------------------------------------------------------------------
# the batched forward pass


def unroll_outputs(cell, params: dict[str, Tensor], x: Tensor | None, ends: Tensor, H: int,
                   h0: float = 0.0, n: int | None = None) -> Tensor:
    """Each model's output at the end of each of its sequences: (P, N, H).

    x      (steps, P, N, D) one batch per model, (steps, N, D) shared, or None (no input)
    ends   (P, N) the step at which each sequence ends (1-based); x has at least ends.max() steps
    """
    P, N = ends.shape[0], (ends.shape[1] if n is None else n)
    state = tuple(s.expand(P, N, H) for s in cell.initial_state(params, N, H, h0))  # (P, N, H)

    def advance(t):
        nonlocal state
        state = cell.step(params, state, None if x is None else x[t - 1])

    ((_, y),) = outputs_at_ends(advance, lambda: cell.output(state), [ends])
    return y.expand(P, N, H)


class CompiledUnroll:
    """``unroll_outputs`` with K steps fused per call by torch.compile (inductor).

    On a CPU this is several times faster than the eager unroll for the small cells here, after a
    compilation of about a minute per cell and shape. The numbers agree with the eager unroll to
    rounding, not bit for bit. The unroll runs in whole chunks of K steps (inputs past the data
    are zeros); each chunk returns its K outputs, and each sequence's output is gathered at its
    own end afterwards (selecting inside the compiled chunk was much slower).
    """

    def __init__(self, cell, K: int = 8):
        self.cell, self.K = cell, int(K)

        def chunk(params, state, xs):
            outs = []
            for i in range(self.K):
                state = cell.step(params, state, None if xs is None else xs[i])
                outs.append(cell.output(state))
            return state, torch.stack(outs)  # (K, P, N, H)

        self.fn = torch.compile(chunk, dynamic=False)

    def __call__(self, cell, params, x, ends, H, h0=0.0, n=None):
        P, N = ends.shape[0], (ends.shape[1] if n is None else n)
        state = tuple(s.expand(P, N, H).contiguous() for s in cell.initial_state(params, N, H, h0))
        last = int(ends.max())
        steps = -(-last // self.K) * self.K
        if x is not None and x.shape[0] < steps:  # whole chunks: zeros after the data
            x = torch.cat([x, x.new_zeros((steps - x.shape[0], *x.shape[1:]))])
        outs = []
        for t0 in range(0, steps, self.K):
            state, out = self.fn(params, state, None if x is None else x[t0:t0 + self.K])
            outs.append(out)
        outs = torch.cat(outs)  # (steps, P, N, H)
        index = (ends - 1).reshape(1, P, N, 1).expand(1, P, N, H)
        return outs.gather(0, index).squeeze(0)  # (P, N, H)


_COMPILED: dict = {}


def compiled_unroll(cell, K: int = 8) -> CompiledUnroll:
    """One CompiledUnroll per (cell, K) per process, so populations of one cell share the
    compiled code (after the second shape, torch.compile makes it shape-generic)."""
    if (cell, K) not in _COMPILED:
        import torch._dynamo

        # one static graph per shape (populations of several sizes in one process)
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        _COMPILED[(cell, K)] = CompiledUnroll(cell, K)
    return _COMPILED[(cell, K)]


# ---------------------------------------------------------------------------------------------
# training


def train_population(spec: TrainSpec, members, device: str = "auto", progress: bool | None = None,
                     on_epoch=None, compile: bool = False, flush_denormal: bool = True,
                     threads: int | None = 1) -> TrainResult:
    """Train every member together; see the module docstring. ``on_epoch(epoch, metrics)`` is
    called after each epoch with the (P,) metrics of that epoch. ``compile``: fuse the cell's
    step with torch.compile for the training steps (worth it for long runs only).

    ``flush_denormal``: on the CPU, treat subnormal floats as zero while training (as TensorFlow
    does on CPUs). Vanishing gradients produce subnormals, and arithmetic on them is about a
    hundred times slower; a run then crawls at random moments. Values below 1.2e-38 (float32) or
    2.2e-308 (float64) become 0; nothing else changes.

    ``threads``: CPU threads while training (None: leave torch's setting). One by default: the
    tensors of a step are small, and on a busy machine a second OpenMP thread that gets
    descheduled stalls every parallel region (runs became ten times slower at random moments).
    """
    old_threads = torch.get_num_threads()
    flushed = bool(flush_denormal) and torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _train(spec, members, device, progress, on_epoch, compile)
    finally:
        if flushed:
            torch.set_flush_denormal(False)
        torch.set_num_threads(old_threads)


def _train(spec, members, device, progress, on_epoch, compile) -> TrainResult:
    members = list(members)
    dev = resolve_device(device) if isinstance(device, str) else device
    start = time.perf_counter()
    s = _Setup(spec, members, dev)
    P, B = s.P, spec.batch
    params = {k: v.clone().requires_grad_(s.masks.get(k, False) is not False) for k, v in s.params.items()}
    train_names = [k for k in params if k in s.masks]
    masks = {k: (None if s.masks[k] is None else s.masks[k].to(dev, s.dtype)) for k in train_names}
    opt = PopulationOptimizer(spec.optimizer, {k: params[k] for k in train_names},
                              torch.tensor([m.lr for m in members], device=dev, dtype=s.dtype),
                              spec.beta1, spec.beta2, spec.eps)
    clip = torch.tensor([math.inf if m.clip is None else m.clip for m in members], device=dev, dtype=s.dtype)
    any_clip = any(m.clip is not None for m in members)
    seeds = torch.tensor([int(m.seed) for m in members], dtype=torch.int64)
    n_steps = math.ceil(s.n_train / B)
    E = spec.epochs

    metrics = {k: np.full((E + 1, P), np.nan) for k in METRICS}
    history = {k: [v.detach().cpu().numpy().copy()] for k, v in params.items()}
    K, last = spec.record_every, E * n_steps
    recorded = recorded_steps(last, K) if K else None  # (R,) the steps whose parameters are kept
    step_params = {k: [params[k].detach().cpu().numpy().copy()] for k in train_names} if K else None
    step_metrics = {"loss": [], "grad_norm": [], "clip_coef": []} if K else None
    done = 0  # optimiser steps taken
    unroll = compiled_unroll(s.cell) if compile else unroll_outputs
    s.unroll = unroll_outputs  # evaluation (no graph) stays eager
    eval_seconds = _evaluate(s, params, metrics, 0)
    fixed_end = None if s.variable_ends else s.T.to(dev).unsqueeze(-1)  # (P, 1)
    did = s.did.to(dev).unsqueeze(-1)  # (P, 1)
    pair = s.pair.to(dev).unsqueeze(-1)
    bar = _bar(progress, E * n_steps, f"{spec.model.cell} x{P}")
    for epoch in range(1, E + 1):
        order = (epoch_orders(seeds, epoch, s.n_train).to(dev) if spec.shuffle
                 else torch.arange(s.n_train, device=dev).expand(P, -1))
        rows_all = torch.gather(s.train_rows, 1, order)  # (P, n_train)
        loss_sum = torch.zeros(P, device=dev, dtype=s.dtype)
        correct_sum = torch.zeros(P, device=dev, dtype=s.dtype)
        gn_sum = torch.zeros(P, device=dev, dtype=s.dtype)
        gn_max = torch.zeros(P, device=dev, dtype=s.dtype)
        n_clipped = torch.zeros(P, device=dev, dtype=s.dtype)
        for step in range(n_steps):
            rows = rows_all[:, step * B:(step + 1) * B]  # (P, b)
            b = rows.shape[1]
            x = None if s.X is None else torch.index_select(
                s.X, 1, (rows + did * spec.n).reshape(-1)).view(s.steps, P, b, -1)  # (S, P, b, D)
            y = s.Y[pair, rows]  # (P, b)
            ends = s.E[pair, rows] if fixed_end is None else fixed_end.expand(P, b)
            if spec.omega:  # the states of every step are kept for the regulariser (eager unroll)
                h, states = unroll_states(s.cell, params, x, ends, s.H, s.h0, b)
            else:
                h = unroll(s.cell, params, x, ends, s.H, s.h0, b)
            loss, correct = s.readout.train_loss(params, h, y, s.task.loss_scale, spec.loss_clip)
            if spec.omega:
                grads, _ = loss_and_omega_grads(s.cell, params, train_names, loss, states, x, spec.omega)
            else:
                grads = dict(zip(train_names, torch.autograd.grad(loss.sum(), [params[k] for k in train_names])))
            with torch.no_grad():
                for k, mk in masks.items():
                    if mk is not None:
                        grads[k] = grads[k] * mk
                norms = grad_norms(grads)  # (P,)
                coef = clip_grads(grads, norms, clip) if any_clip else torch.ones_like(norms)
                opt.step(grads)
                loss_sum += loss.detach() * b
                correct_sum += correct.sum(-1)
                gn_sum += norms
                gn_max = torch.maximum(gn_max, norms)
                n_clipped += (coef < 1.0)
            done += 1
            if K and (done - 1) % K == 0:  # this update started from the recorded step done - 1
                step_metrics["loss"].append(loss.detach().cpu().numpy())
                step_metrics["grad_norm"].append(norms.cpu().numpy())
                step_metrics["clip_coef"].append(coef.cpu().numpy())
            if K and (done % K == 0 or done == last):
                for k in train_names:
                    step_params[k].append(params[k].detach().cpu().numpy().copy())
            if bar is not None:
                bar.update(1)
        metrics["train_loss"][epoch] = (loss_sum / s.n_train).cpu().numpy()
        metrics["train_acc"][epoch] = (correct_sum / s.n_train).cpu().numpy()
        metrics["grad_norm_mean"][epoch] = (gn_sum / n_steps).cpu().numpy()
        metrics["grad_norm_max"][epoch] = gn_max.cpu().numpy()
        metrics["clipped_frac"][epoch] = (n_clipped / n_steps).cpu().numpy()
        eval_seconds += _evaluate(s, params, metrics, epoch)
        for k, v in params.items():
            history[k].append(v.detach().cpu().numpy().copy())
        if on_epoch is not None:
            on_epoch(epoch, {k: metrics[k][epoch] for k in METRICS})
    if bar is not None:
        bar.close()
    return TrainResult(
        spec, members, metrics, {k: np.stack(v) for k, v in history.items()},
        None if step_params is None else {k: np.stack(v) for k, v in step_params.items()},
        None if step_metrics is None else {k: np.stack(v) if v else np.zeros((0, P)) for k, v in step_metrics.items()},
        time.perf_counter() - start, str(dev), n_steps, eval_seconds, recorded)


def recorded_steps(last: int, K: int) -> np.ndarray:
    """The optimiser steps a run of ``last`` steps records every K: 0, K, 2K, ... and ``last``
    (R,) int64."""
    steps = np.arange(0, last + 1, K, dtype=np.int64)
    return steps if steps[-1] == last else np.append(steps, np.int64(last))


def _evaluate(s: _Setup, params, metrics, epoch) -> float:
    """Validation and test loss/accuracy of every model that has them, at the current point.
    Returns the seconds it took."""
    start = time.perf_counter()
    with torch.no_grad():
        for kind, idx, x, y, e in s.eval_sets:
            N = y.shape[1]
            chunk = max(1, EVAL_ELEMS // (N * s.H))
            for a in range(0, len(idx), chunk):
                sub = idx[a:a + chunk]
                sel = torch.tensor(sub, device=s.device)
                p = {k: v[sel] for k, v in params.items()}
                h = s.unroll(s.cell, p, x, e[a:a + chunk], s.H, s.h0, N)
                loss, correct = s.readout.train_loss(p, h, y[a:a + chunk], s.task.loss_scale, s.spec.loss_clip)
                metrics[f"{kind}_loss"][epoch, sub] = loss.cpu().numpy()
                metrics[f"{kind}_acc"][epoch, sub] = correct.to(s.dtype).mean(-1).cpu().numpy()
    return time.perf_counter() - start


def _bar(progress, total, desc):
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)
