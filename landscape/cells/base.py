"""The cell protocol: named parameters, defaults, initialisers, and a pure batched step.

Shapes (P = population: grid points or models, N = sequences, H = hidden units, D = input size):

    parameters   name -> (P, *shape)   shape from the parameter's role:
                 recurrent (H, H), input (H, D), bias (H,), per_unit (H,); a P of 1 broadcasts
    state        tuple of (P, N, H), one tensor per name in ``state_names``
    input x_t    (N, D) shared by the population, or (P, N, D) one per member; None when D = 0

Weight matrices follow torch's (out, in) convention, so ``w[i, j]`` is the weight from unit j to
unit i. A scalar parameter is addressed by its name when it has one element (``w``, ``b_f`` for
H = 1) and by an element index otherwise (``w[0,1]``).

A cell class declares, besides its parameters and step (README, "Bring your own cell"):

    default_axes    the grid's axes when none are given, e.g. ("w:-1:3:201", "b:-1.5:1.5:201")
    block_input     (recurrent weight, bias) of the path that writes the state (srnn: w, b; lstm:
                    w_z, b_z; gru: w_h, b_h), so that cells can be compared on matching planes
    one_unit_map    the free-running one-unit map, for the fixed points and folds of ``dynamics``
                    (srnn and pascanu; None for the others)

torch is imported on first use (``landscape.lazy``): listing the cells needs none of it.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

from ..errors import LandscapeError
from ..lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

    from .maps import OneUnitMap

ROLES = ("recurrent", "input", "bias", "per_unit")
LATER = {"later": True}  # metadata of an option added after results were stored (see Cell.options)


@dataclass(frozen=True)
class ParamDecl:
    """One named parameter. ``role`` fixes its shape and initialiser; ``gate`` groups it with the
    other parameters of a gate (Keras concatenates a layer's gates in ``Cell.gates`` order)."""

    name: str
    role: str
    gate: str = ""
    default: float = 0.0  # base-point value: recurrent -> default * I, others filled with it
    keras_bias: float = 0.0  # Keras 2 bias initialiser (1.0 for unit_forget_bias)
    torch_terms: int = 2  # a bias torch splits in b_ih + b_hh is drawn as the sum of 2 uniforms

    def shape(self, H: int, D: int) -> tuple[int, ...]:
        return {"recurrent": (H, H), "input": (H, D), "bias": (H,), "per_unit": (H,)}[self.role]


# ---------------------------------------------------------------------------------------------
# activations


def sigmoid(x: Tensor) -> Tensor:
    """The logistic function 1 / (1 + e^-x) (torch's and Keras 3's LSTM gate)."""
    return torch.sigmoid(x)


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras 2's hard sigmoid: clip(0.2 x + 0.5, 0, 1) (its LSTM and GRU default gate)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def hard_sigmoid_keras3(x: Tensor) -> Tensor:
    """Keras 3's hard sigmoid: relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1) (not a Keras default gate:
    Keras 3's LSTM uses the logistic sigmoid)."""
    return torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


GATE_ACTIVATIONS = {"sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid, "hard_sigmoid_keras3": hard_sigmoid_keras3}


def gate_activation(name: str):
    try:
        return GATE_ACTIVATIONS[name]
    except KeyError:
        raise LandscapeError(
            f"unknown gate activation {name!r}; choose from: {', '.join(GATE_ACTIVATIONS)}"
        ) from None


def linear(v: Tensor, weight: Tensor) -> Tensor:
    """v (P|1, N, in) times weight (P, out, in) -> (P, N, out). Elementwise when in == 1."""
    if weight.shape[-1] == 1:
        return v * weight.transpose(-1, -2)  # (P, N, 1) * (P, 1, out)
    return torch.matmul(v, weight.transpose(-1, -2))


def drive(x: Tensor | None, p: dict[str, Tensor], name: str) -> Tensor | float:
    """The input term u x with u = p[name], (P, N, H); 0.0 when the task has no input (x is None,
    and the cell then has no input weights)."""
    return 0.0 if x is None else linear(x, p[name])


def bias(b: Tensor) -> Tensor:
    """b (P, H) -> (P, 1, H), ready to broadcast over sequences."""
    return b.unsqueeze(-2)


# ---------------------------------------------------------------------------------------------
# scalar addressing

_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[\s*(\d+)\s*(?:,\s*(\d+)\s*)?\])?$")


def parse_param_ref(ref: str, shapes: dict[str, tuple[int, ...]], where: str) -> tuple[str, tuple[int, ...]]:
    """'w' or 'w[0,1]' -> (name, index) into a parameter of the given shapes.

    Raises LandscapeError naming the valid scalars when the reference is not one.
    """
    m = _REF.match(ref.strip())
    scalars = ", ".join(scalar_names(shapes))
    if not m:
        raise LandscapeError(f"malformed parameter {ref!r}; write NAME or NAME[i,j], e.g. w or w[0,1]")
    name = m.group(1)
    if name not in shapes:
        raise LandscapeError(f"unknown parameter {name!r} for {where}; choose from: {scalars}")
    shape = shapes[name]
    idx = tuple(int(g) for g in m.groups()[1:] if g is not None)
    numel = math.prod(shape)
    if not idx:
        if numel != 1:
            raise LandscapeError(
                f"parameter {name!r} of {where} has shape {tuple(shape)}, not a scalar; "
                f"address one element, e.g. {name}[{','.join(['0'] * len(shape))}]"
            )
        idx = (0,) * len(shape)
    if len(idx) != len(shape) or any(i >= s for i, s in zip(idx, shape)):
        raise LandscapeError(f"index {ref!r} is out of range for {name!r} with shape {tuple(shape)} ({where})")
    return name, idx


def scalar_names(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Short names of the addressable scalars: 'w' for one-element parameters, 'w[i,j]' otherwise."""
    out = []
    for name, shape in shapes.items():
        if math.prod(shape) == 0:
            continue
        out.append(name if math.prod(shape) == 1 else f"{name}[{','.join('i j k'.split()[:len(shape)])}]")
    return out


# ---------------------------------------------------------------------------------------------
# the cell protocol


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: declared parameters plus a pure batched ``step``.

    Subclasses set the class attributes and implement ``step``; options are dataclass fields
    (e.g. ``gate``) and are part of a spec.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    equations: ClassVar[str] = ""
    params: ClassVar[tuple[ParamDecl, ...]]
    gates: ClassVar[tuple[str, ...]] = ("",)  # Keras concatenation order
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    needs_input_equal_hidden: ClassVar[bool] = False
    default_axes: ClassVar[tuple[str, str] | None] = None  # e.g. ("w:-1:3:201", "b:-1.5:1.5:201")
    block_input: ClassVar[tuple[str, str] | None] = None  # (recurrent weight, bias) writing the state
    one_unit_map: ClassVar[OneUnitMap | None] = None  # for landscape.dynamics (srnn, pascanu)

    # --- declarations ------------------------------------------------------------------------
    def options(self) -> dict:
        """The options that name this cell in a result's spec (and cache key). An option declared
        with ``field(..., metadata=LATER)`` is left out while it has its default, so options added
        to a cell later do not change the keys of the results made before them."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not (f.metadata.get("later") and getattr(self, f.name) == f.default)}

    def decls(self, D: int) -> tuple[ParamDecl, ...]:
        """The parameters that exist for input size D (no input weights when D = 0)."""
        return tuple(p for p in self.params if not (p.role == "input" and D == 0))

    def param_shapes(self, H: int, D: int) -> dict[str, tuple[int, ...]]:
        self.check_sizes(H, D)
        return {p.name: p.shape(H, D) for p in self.decls(D)}

    def check_sizes(self, H: int, D: int) -> None:
        if H < 1:
            raise LandscapeError(f"hidden size must be >= 1, got {H}")
        if D < 0:
            raise LandscapeError(f"input size must be >= 0, got {D}")
        if self.needs_input_equal_hidden and D not in (0, H):
            raise LandscapeError(f"cell {self.name} needs input size = hidden size (got D={D}, H={H})")

    def default_params(self, H: int, D: int, dtype=None) -> dict[str, Tensor]:
        """The base point: recurrent matrices default * I, everything else filled with default
        (float64 unless ``dtype`` says otherwise)."""
        self.check_sizes(H, D)
        dtype = torch.float64 if dtype is None else dtype
        out = {}
        for p in self.decls(D):
            if p.role == "recurrent":
                out[p.name] = p.default * torch.eye(H, dtype=dtype)
            else:
                out[p.name] = torch.full(p.shape(H, D), p.default, dtype=dtype)
        return out

    def init_params(self, scheme: str, H: int, D: int, P: int, generator, dtype=None) -> dict[str, Tensor]:
        """Random parameters for P models, (P, *shape) each: scheme 'torch' or 'keras'; generator a
        torch.Generator."""
        self.check_sizes(H, D)
        dtype = torch.float64 if dtype is None else dtype
        if scheme == "torch":
            return _torch_init(self.decls(D), H, D, P, generator, dtype)
        if scheme == "keras":
            return _keras_init(self.decls(D), H, D, P, generator, dtype)
        raise LandscapeError(f"unknown initialiser {scheme!r}; choose from: torch, keras")

    # --- dynamics ----------------------------------------------------------------------------
    def initial_state(self, params: dict[str, Tensor], N: int, H: int, h0: float = 0.0) -> tuple[Tensor, ...]:
        """Every state tensor filled with h0: (1, N, H) each, broadcasting over the population."""
        ref = next(iter(params.values()))
        return tuple(torch.full((1, N, H), float(h0), dtype=ref.dtype, device=ref.device)
                     for _ in self.state_names)

    def step(self, p: dict[str, Tensor], state: tuple[Tensor, ...], x: Tensor | None) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def output(self, state: tuple[Tensor, ...]) -> Tensor:
        """What the readout sees: h, (P, N, H)."""
        return state[0]

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options().items())
        return f"{self.name}" + (f" ({opts})" if opts else "")


# ---------------------------------------------------------------------------------------------
# initialisers


def _uniform(shape, limit, generator, dtype):
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2.0 - 1.0) * limit


def _torch_init(decls, H, D, P, generator, dtype):
    """torch.nn.RNN/LSTM/GRU: every weight U(-1/sqrt(H), 1/sqrt(H)); torch has two biases
    (b_ih + b_hh), so a merged bias is the sum of two such draws."""
    k = 1.0 / math.sqrt(H)
    out = {}
    for p in decls:
        shape = (P, *p.shape(H, D))
        draw = _uniform(shape, k, generator, dtype)
        for _ in range(p.torch_terms - 1 if p.role == "bias" else 0):  # merged b_ih + b_hh
            draw = draw + _uniform(shape, k, generator, dtype)
        out[p.name] = draw
    return out


def keras_orthogonal(rows: int, cols: int, P: int, generator, dtype) -> Tensor:
    """Keras 2's Orthogonal(gain=1) for a (rows, cols) kernel, P draws: (P, rows, cols).

    For a (1, 1) kernel this is exactly +-1; for (1, 4) a random unit vector.
    """
    big, small = max(rows, cols), min(rows, cols)
    a = torch.randn((P, big, small), generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(a)  # (P, big, small), (P, small, small)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    if rows < cols:
        q = q.transpose(-1, -2)
    return q[:, :rows, :cols]


def _keras_init(decls, H, D, P, generator, dtype):
    """Keras 2 defaults: kernel glorot_uniform and recurrent_kernel orthogonal over the gates
    concatenated in Keras order, biases zero (forget bias one with unit_forget_bias)."""
    out = {}
    for role in ("input", "recurrent"):
        group = [p for p in decls if p.role == role]
        if not group:
            continue
        fan_in = D if role == "input" else H
        cols = H * len(group)
        if role == "input":  # Keras kernel (D, G*H)
            kernel = _uniform((P, fan_in, cols), math.sqrt(6.0 / (fan_in + cols)), generator, dtype)
        else:
            kernel = keras_orthogonal(H, cols, P, generator, dtype)
        for g, p in enumerate(group):  # Keras kernel block (in, H) -> our (H, in)
            out[p.name] = kernel[:, :, g * H:(g + 1) * H].transpose(-1, -2).contiguous()
    for p in decls:
        if p.role in ("bias", "per_unit"):
            out[p.name] = torch.full((P, *p.shape(H, D)), p.keras_bias, dtype=dtype)
    return {p.name: out[p.name] for p in decls}


# ---------------------------------------------------------------------------------------------
# the protocol, checked for a class from outside the package


def check_cell_class(cls, ref: str) -> None:
    """One LandscapeError naming the first part of the protocol that ``cls`` (loaded from ``ref``)
    misses; nothing when it is a usable cell class."""
    where = f"{ref}"
    guide = "(see README, 'Bring your own cell')"
    if not isinstance(cls, type) or not issubclass(cls, Cell):
        raise LandscapeError(f"{where} is not a cell: it must subclass landscape.cells.Cell {guide}")
    if not dataclasses.is_dataclass(cls):
        raise LandscapeError(f"{where} is not a dataclass: decorate it with @dataclass(frozen=True) {guide}")
    params = getattr(cls, "params", None)
    if not isinstance(params, tuple) or not params or not all(isinstance(p, ParamDecl) for p in params):
        raise LandscapeError(f"{where} declares no parameters: set params = (ParamDecl('w', 'recurrent'), "
                             f"...) {guide}")
    for p in params:
        if p.role not in ROLES:
            raise LandscapeError(f"{where}: parameter {p.name!r} has role {p.role!r}; choose from: "
                                 f"{', '.join(ROLES)}")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise LandscapeError(f"{where} declares a parameter twice: {', '.join(names)}")
    if cls.step is Cell.step:
        raise LandscapeError(f"{where} has no step: define step(self, p, state, x) -> new state {guide}")
    if len(inspect.signature(cls.step).parameters) != 4:
        raise LandscapeError(f"{where}.step must take (self, p, state, x); it takes "
                             f"({', '.join(inspect.signature(cls.step).parameters)})")
    states = getattr(cls, "state_names", None)
    if not isinstance(states, tuple) or not states or not all(isinstance(s, str) for s in states):
        raise LandscapeError(f"{where}: state_names must be a tuple of names, e.g. ('h',)")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise LandscapeError(f"{where} has no name: set name = 'mycell'")
    for attr in ("default_axes", "block_input"):
        value = getattr(cls, attr)
        if value is None:
            continue
        if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise LandscapeError(f"{where}: {attr} must be two strings, e.g. "
                                 + ("('w:-1:3:201', 'b:-1.5:1.5:201')" if attr == "default_axes" else "('w', 'b')"))
        for v in value:
            if v.split(":")[0].split("[")[0] not in names:
                raise LandscapeError(f"{where}: {attr} names {v.split(':')[0]!r}, not one of its parameters "
                                     f"({', '.join(names)})")
