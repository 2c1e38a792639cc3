"""In-place H = 1 steps for the CPU: srnn, pascanu, lstm (and lstm-b), gru.

The plain path (``cell.step``) allocates a new tensor for every operation of every step. With one
hidden unit the state of a block of members is a (P, N) matrix and every parameter a (P, 1) column
(or a (1, 1) scalar when the block shares it), so a step can be written as a few in-place passes
over preallocated buffers: ``torch.addcmul`` for the affine part and ``tanh_``/``sigmoid_`` for the
squashing. Nothing is allocated per step (a 1 MiB temporary per operation means an mmap and page
faults with glibc), and a block's buffers stay in cache through all T.

A stepper is built for one block of members: ``Stepper(params, x, n, h0, pool)`` with x (T, N)
the inputs shared by the population (None when the task has none) and pool an optional
``Buffers`` to take its arrays from; ``step(t)`` advances every sequence
by step t (0-based) and ``output()`` is the cell's output y (P, N), a view valid until the next
step. The numbers equal ``cell.step``'s up to float rounding (the terms are added in another
order); tests/test_kernels.py checks them against it.

``group_by`` names the parameters which, when the whole block shares them, save a pass per step:
srnn's w h + b + u x_t is then one addcmul of h with the row b + u x_t, computed for all t at once.
The engine sorts a chunk's members so that blocks share them where it can.

Each stepper declares which cells and options it covers (``cells``, ``options``; ``covers``);
``cpu_stepper`` picks the first in ``STEPPERS`` that does. The cell must be exactly one of the
classes named (a subclass may change the step), with H = 1 and at most one input.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import torch

from ..cells import Cell
from ..cells.elman import SRNN, Pascanu
from ..cells.gated import GRU, LSTM, LSTMB

if TYPE_CHECKING:
    from torch import Tensor


def _column(v: Tensor | None) -> Tensor | None:
    """A parameter (P|1, 1, 1) or (P|1, 1) of a one-unit cell as a column (P|1, 1)."""
    return None if v is None else v.reshape(v.shape[0], 1)


def _members(params: dict[str, Tensor]) -> int:
    return max(v.shape[0] for v in params.values())


class _Affine:
    """w h + u x_t + b of one gate, written into ``out`` (P, N) with the fewest passes the shapes
    allow. w, u, b are (P|1, 1) columns (u None when the task has no input), x (T, N) or None.

    Where b and u are shared by the block, the rows b + u x_t (1, N) are computed for every t up
    front and a step is one addcmul; otherwise the per-member terms cost a pass each."""

    def __init__(self, w: Tensor, u: Tensor | None, b: Tensor, x: Tensor | None):
        self.w, self.u, self.b = w, u, b
        if x is None or u is None:
            self.rows = None
            self.per_member = b.shape[0] > 1
        elif b.shape[0] == 1 and u.shape[0] == 1:
            self.rows = torch.addcmul(b, u, x).unbind(0)  # T rows b + u x_t, (N,) each
            self.per_member = False
        elif u.shape[0] == 1:
            self.rows = torch.mul(u, x).unbind(0)  # T rows u x_t; b per member
            self.per_member = True
        else:  # u per member: u x_t is an outer product, one more pass
            self.rows = x.unbind(0)
            self.per_member = True
        self.outer = u is not None and u.shape[0] > 1

    def __call__(self, h: Tensor, t: int, out: Tensor) -> Tensor:
        w, b = self.w, self.b
        if self.rows is None:  # no input: w h + b
            if h.shape[1] == 1:  # one pass: with N = 1 the columns are contiguous
                return torch.addcmul(b, h, w, out=out)
            return torch.mul(h, w, out=out).add_(b)
        if self.outer:
            return torch.mul(h, w, out=out).add_(b).addcmul_(self.u, self.rows[t])
        out = torch.addcmul(self.rows[t], h, w, out=out)
        return out.add_(b) if self.per_member else out


class Stepper:
    """Base of the in-place steppers: what they cover, and the step they take."""

    cells: tuple[type, ...] = ()  # the cell classes this stepper runs (exact types)
    options: dict[str, tuple] = {}  # cell option -> the values it handles
    group_by: tuple[str, ...] = ()
    buffers: int = 1  # (P, N) arrays a step works on: sizes the engine's cache blocks

    @classmethod
    def covers(cls, cell: Cell, H: int, D: int) -> bool:
        return (H == 1 and D <= 1 and type(cell) in cls.cells
                and all(getattr(cell, k, None) in v for k, v in cls.options.items()))

    @classmethod
    def factory(cls, cell: Cell):
        """``(params, x, n, h0, pool=None) -> Stepper`` for this cell (its options bound)."""
        return cls

    def step(self, t: int) -> None:
        raise NotImplementedError

    def output(self) -> Tensor:
        raise NotImplementedError


def _affine(p: dict[str, Tensor], gate: str, x: Tensor | None) -> _Affine:
    suffix = f"_{gate}" if gate else ""
    return _Affine(_column(p[f"w{suffix}"]), _column(p.get(f"u{suffix}")), _column(p[f"b{suffix}"]), x)


class Buffers:
    """(P, N) work arrays that outlive a block: the engine keeps one ``Buffers`` for all the blocks
    of a call, so a new block reuses memory that is already mapped (and warm in cache) instead of
    allocating and faulting in fresh pages."""

    def __init__(self):
        self._flat: list[Tensor] = []

    def get(self, i: int, like: Tensor, shape: tuple[int, int]) -> Tensor:
        numel = shape[0] * shape[1]
        while len(self._flat) <= i:
            self._flat.append(like.new_empty(0))
        flat = self._flat[i]
        if flat.numel() < numel or flat.dtype != like.dtype or flat.device != like.device:
            flat = self._flat[i] = like.new_empty(numel)
        return flat[:numel].view(shape)


def _buffers(p: dict[str, Tensor], n: int, count: int, pool: Buffers | None) -> list[Tensor]:
    """``count`` (P, N) arrays for the block, from the pool when one is given."""
    ref = next(iter(p.values()))
    shape = (_members(p), n)
    if pool is None:
        return [ref.new_empty(shape) for _ in range(count)]
    return [pool.get(i, ref, shape) for i in range(count)]


class SRNNStepper(Stepper):
    """h' = tanh(w h + u x + b): one addcmul and one tanh_ per step where b, u are shared."""

    cells = (SRNN,)
    group_by = ("b", "u")

    def __init__(self, p: dict[str, Tensor], x: Tensor | None, n: int, h0: float, pool: Buffers | None = None):
        self.affine = _affine(p, "", x)
        (self.h,) = _buffers(p, n, 1, pool)
        self.h.fill_(h0)

    def step(self, t):
        a = self.affine
        if a.rows is not None and not a.per_member and not a.outer:  # the common case, inlined
            torch.addcmul(a.rows[t], self.h, a.w, out=self.h).tanh_()
        else:
            a(self.h, t, out=self.h).tanh_()

    def output(self):
        return self.h


class PascanuStepper(Stepper):
    """x' = w sigmoid(x) + u in + b, output sigmoid(x). The buffer holds v = sigmoid(x), which is
    both what the next step needs and the output: one addcmul and one sigmoid_ per step."""

    cells = (Pascanu,)
    options = {"observe": ("sigmoid",)}  # the buffer holds sigmoid(x): the output, not the state
    group_by = ("b", "u")

    def __init__(self, p, x, n, h0, pool=None):
        self.affine = _affine(p, "", x)
        (self.v,) = _buffers(p, n, 1, pool)
        self.v.fill_(h0).sigmoid_()

    def step(self, t):
        self.affine(self.v, t, out=self.v).sigmoid_()

    def output(self):
        return self.v


class LSTMStepper(Stepper):
    """i, f, o = sigmoid(.), z = tanh(.), c' = f c + i z, h' = o tanh(c'); gate activation sigmoid."""

    cells = (LSTM, LSTMB)
    options = {"gate": ("sigmoid",)}
    buffers = 6

    def __init__(self, p, x, n, h0, pool=None):
        self.gates = {g: _affine(p, g, x) for g in "ifzo"}
        self.h, self.c, *gates = _buffers(p, n, 6, pool)
        self.h.fill_(h0)
        self.c.fill_(h0)
        self.buf = dict(zip("ifzo", gates))

    def step(self, t):
        h, c, buf, gates = self.h, self.c, self.buf, self.gates
        i = gates["i"](h, t, out=buf["i"]).sigmoid_()
        f = gates["f"](h, t, out=buf["f"]).sigmoid_()
        o = gates["o"](h, t, out=buf["o"]).sigmoid_()
        z = gates["z"](h, t, out=buf["z"]).tanh_()
        c.mul_(f).addcmul_(i, z)  # c' = f c + i z
        torch.mul(o, torch.tanh(c, out=z), out=h)  # h' = o tanh(c')

    def output(self):
        return self.h


class GRUStepper(Stepper):
    """z, r = sigmoid(.); torch form h~ = tanh(u_h x + b_h + r (w_h h + b_hn)), reset_before form
    h~ = tanh(w_h (r h) + u_h x + b_h); h' = z h + (1 - z) h~, one lerp."""

    cells = (GRU,)
    options = {"gate": ("sigmoid",), "form": ("torch", "reset_before")}
    buffers = 4

    @classmethod
    def factory(cls, cell):
        form = cell.form

        def make(p, x, n, h0, pool=None):
            return GRUStepper(p, x, n, h0, pool, form)

        make.group_by, make.buffers = cls.group_by, cls.buffers
        return make

    def __init__(self, p, x, n, h0, pool=None, form: str = "torch"):
        self.form = form
        self.z, self.r = _affine(p, "z", x), _affine(p, "r", x)
        if form == "torch":  # r (w_h h + b_hn) + (u_h x + b_h): the input part as an affine of h = 0
            self.hidden = _Affine(_column(p["w_h"]), None, _column(p["b_hn"]), None)
            self.inp = _Affine(_column(p["w_h"]), _column(p.get("u_h")), _column(p["b_h"]), x)
        else:
            self.cand = _affine(p, "h", x)
        self.h, self.gz, self.gr, self.gn = _buffers(p, n, 4, pool)
        self.h.fill_(h0)

    def step(self, t):
        h, gz, gr, gn = self.h, self.gz, self.gr, self.gn
        self.z(h, t, out=gz).sigmoid_()
        self.r(h, t, out=gr).sigmoid_()
        if self.form == "torch":
            self.hidden(h, t, out=gn).mul_(gr)  # r (w_h h + b_hn)
            inp = self.inp
            if inp.rows is None:
                gn.add_(inp.b)
            elif inp.outer:
                gn.add_(inp.b).addcmul_(inp.u, inp.rows[t])
            else:
                gn.add_(inp.rows[t])
                if inp.per_member:
                    gn.add_(inp.b)
        else:
            self.cand(torch.mul(gr, h, out=gn), t, out=gn)
        torch.lerp(gn.tanh_(), h, gz, out=h)  # h~ + z (h - h~)

    def output(self):
        return self.h


STEPPERS = (SRNNStepper, PascanuStepper, LSTMStepper, GRUStepper)


def cpu_stepper(cell: Cell, H: int, D: int):
    """A factory ``(params, x, n, h0, pool=None) -> Stepper`` for this cell, or None where the plain path is
    used (no stepper in ``STEPPERS`` covers the cell, its options, H and D)."""
    for stepper in STEPPERS:
        if stepper.covers(cell, H, D):
            return stepper.factory(cell)
    return None
