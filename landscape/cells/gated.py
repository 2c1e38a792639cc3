"""Gated cells: the LSTM family (with Jozefowicz et al. 2015's ablations and the 1997 original),
the GRU in torch's and Keras's form, and Jozefowicz et al.'s evolved MUT1-3 (docs/reference.md §4, §5).

Parameter names: ``w_<gate>`` recurrent (H, H), ``u_<gate>`` input (H, D), ``b_<gate>`` bias (H,),
declared within each role in Keras 2's gate concatenation order (LSTM i, f, z, o; GRU z, r, h), which
is the order the Keras initialiser concatenates them in. Shapes as in ``base``: parameters
(P, *shape), states (P|1, N, H), x (N, D) or (P, N, D), or None when D = 0.

Every cell here also offers ``step_detail(p, state, x) -> (new_state, gates)``: the gate
activations of the step, each (P, N, H), for the gradient analysis; ``step`` calls it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..errors import LandscapeError
from ..lazy import torch
from .base import Cell, ParamDecl, bias, drive, gate_activation, linear

if TYPE_CHECKING:
    from torch import Tensor


def _decls(gates: str, recurrent: str, inputs: str, biases: str,
           bias_options: dict[str, dict] | None = None) -> tuple[ParamDecl, ...]:
    """Declarations in Keras order (``gates``) within each role; ``recurrent``, ``inputs`` and
    ``biases`` list the gates that have a parameter of that role. Defaults: weights 1 (recurrent
    1 * I), biases 0; ``bias_options`` maps a gate to other ParamDecl fields of its bias."""
    extra = bias_options or {}
    return (*(ParamDecl(f"w_{g}", "recurrent", g, default=1.0) for g in gates if g in recurrent),
            *(ParamDecl(f"u_{g}", "input", g, default=1.0) for g in gates if g in inputs),
            *(ParamDecl(f"b_{g}", "bias", g, **{"default": 0.0, **extra.get(g, {})})
              for g in gates if g in biases))


@dataclass(frozen=True)
class GatedCell(Cell):
    """A cell with a gate activation option: ``sigmoid``, ``hard_sigmoid`` (Keras 2's clip(0.2 x + 0.5,
    0, 1)) or ``hard_sigmoid_keras3`` (Keras 3's relu6(x + 3) / 6)."""

    gate: str = "sigmoid"

    def __post_init__(self):
        gate_activation(self.gate)  # raises LandscapeError naming the choices

    @property
    def sigma(self):
        return gate_activation(self.gate)

    def step_detail(self, p: dict[str, Tensor], state: tuple[Tensor, ...], x: Tensor | None
                    ) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
        raise NotImplementedError

    def step(self, p, state, x):
        return self.step_detail(p, state, x)[0]


# ---------------------------------------------------------------------------------------------
# LSTM family


def _lstm_decls(removed: str = "", forget_bias: float = 0.0) -> tuple[ParamDecl, ...]:
    gates = "".join(g for g in "ifzo" if g != removed)
    return _decls(gates, gates, gates, gates, {"f": dict(default=forget_bias, keras_bias=1.0)})


@dataclass(frozen=True)
class LSTM(GatedCell):
    """The standard LSTM; subclasses remove one gate (``removed``: fixed at 1, no parameters)."""

    name = "lstm"
    summary = "LSTM with forget gate (torch.nn.LSTM, Keras LSTM)"
    equations = ("i = g(W_i h + U_i x + b_i);  f = g(W_f h + U_f x + b_f);  o = g(W_o h + U_o x + b_o)\n"
                 "z = tanh(W_z h + U_z x + b_z);  c' = f*c + i*z;  h' = o*tanh(c')   (g = gate)")
    removed: ClassVar[str] = ""
    params = _lstm_decls()
    gates = ("i", "f", "z", "o")
    state_names = ("h", "c")
    default_axes = ("b_f:-4:6:201", "w_z:-4:6:201")  # the forget bias against the block input's weight
    block_input = ("w_z", "b_z")

    def squash_input(self, a: Tensor) -> Tensor:
        """The block input's squashing (z = tanh)."""
        return torch.tanh(a)

    def squash_cell(self, c: Tensor) -> Tensor:
        """The cell output's squashing (tanh)."""
        return torch.tanh(c)

    def step_detail(self, p, state, x):
        """gates: i, f, z, o, each (P, N, H); the removed gate is absent (it is 1)."""
        h, c = state  # (P|1, N, H) each

        def pre(g):  # (P, N, H)
            return linear(h, p[f"w_{g}"]) + drive(x, p, f"u_{g}") + bias(p[f"b_{g}"])

        gates = {g: self.sigma(pre(g)) for g in "ifo" if g != self.removed}
        gates["z"] = self.squash_input(pre("z"))
        i, f, o = (gates.get(g, 1.0) for g in "ifo")  # a removed gate is exactly 1
        c = f * c + i * gates["z"]  # (P, N, H)
        h = o * self.squash_cell(c)
        return (h, c), {g: gates[g] for g in self.gates}


@dataclass(frozen=True)
class LSTMB(LSTM):
    name = "lstm-b"
    summary = "LSTM whose forget bias starts at 1 (Jozefowicz et al. 2015's LSTM-b)"
    params = _lstm_decls(forget_bias=1.0)

    def init_params(self, scheme, H, D, P, generator, dtype=None):
        """As ``lstm`` (the same draws), then b_f = 1 (Keras's unit_forget_bias already gives 1)."""
        out = super().init_params(scheme, H, D, P, generator, dtype)
        out["b_f"] = torch.ones_like(out["b_f"])
        return out


@dataclass(frozen=True)
class LSTMNoInputGate(LSTM):
    name = "lstm-i"
    summary = "LSTM without input gate (i = 1; Jozefowicz et al. 2015's LSTM-i)"
    equations = "as lstm with i = 1:  c' = f*c + z;  h' = o*tanh(c')"
    removed = "i"
    params = _lstm_decls(removed="i")
    gates = ("f", "z", "o")


@dataclass(frozen=True)
class LSTMNoOutputGate(LSTM):
    name = "lstm-o"
    summary = "LSTM without output gate (o = 1; Jozefowicz et al. 2015's LSTM-o)"
    equations = "as lstm with o = 1:  c' = f*c + i*z;  h' = tanh(c')"
    removed = "o"
    params = _lstm_decls(removed="o")
    gates = ("i", "f", "z")


@dataclass(frozen=True)
class LSTMNoForgetGate(LSTM):
    name = "lstm-f"
    summary = "LSTM without forget gate (f = 1; Jozefowicz et al. 2015's LSTM-f)"
    equations = "as lstm with f = 1:  c' = c + i*z;  h' = o*tanh(c')"
    removed = "f"
    params = _lstm_decls(removed="f")
    gates = ("i", "z", "o")
    default_axes = ("w_z:-4:6:201", "b_z:-4:6:201")  # no forget bias: the block input's plane


@dataclass(frozen=True)
class LSTM1997(LSTM):
    name = "lstm1997"
    summary = "Hochreiter & Schmidhuber 1997: no forget gate, squashings 4s-2 and 2s-1"
    equations = ("i = g(W_i h + U_i x + b_i);  o = g(W_o h + U_o x + b_o);  z = 4 s(W_z h + U_z x + b_z) - 2\n"
                 "c' = c + i*z;  h' = o*(2 s(c') - 1)   (s = logistic, g = gate)")
    removed = "f"
    params = _lstm_decls(removed="f")
    gates = ("i", "z", "o")
    default_axes = ("w_z:-4:6:201", "b_z:-4:6:201")

    def squash_input(self, a):
        return 4.0 * torch.sigmoid(a) - 2.0

    def squash_cell(self, c):
        return 2.0 * torch.sigmoid(c) - 1.0


# ---------------------------------------------------------------------------------------------
# GRU

GRU_FORMS = {
    # torch.nn.GRU: the candidate's input and hidden biases stay separate (b_h = b_in, b_hn)
    "torch": (*_decls("zrh", "zrh", "zrh", "zrh", {"h": dict(torch_terms=1)}),
              ParamDecl("b_hn", "bias", "h", torch_terms=1)),
    # docs/reference.md §4 / Keras 2.1 reset_after=False: the reset multiplies h before W_h
    "reset_before": _decls("zrh", "zrh", "zrh", "zrh"),
}


@dataclass(frozen=True)
class GRU(GatedCell):
    name = "gru"
    summary = "GRU; form=torch (torch.nn.GRU, reset after W_h) or reset_before (Cho et al., Keras 2.1)"
    equations = ("z = g(W_z h + U_z x + b_z);  r = g(W_r h + U_r x + b_r)\n"
                 "torch:        h~ = tanh(U_h x + b_h + r*(W_h h + b_hn))\n"
                 "reset_before: h~ = tanh(W_h (r*h) + U_h x + b_h)\n"
                 "h' = z*h + (1 - z)*h~   (g = gate)")
    params = GRU_FORMS["torch"]
    gates = ("z", "r", "h")
    default_axes = ("b_z:-6:6:201", "w_h:-3:5:201")  # the update gate's bias against the candidate's weight
    block_input = ("w_h", "b_h")

    form: str = "torch"

    def __post_init__(self):
        super().__post_init__()
        if self.form not in GRU_FORMS:
            raise LandscapeError(f"unknown GRU form {self.form!r}; choose from: {', '.join(GRU_FORMS)}")

    def decls(self, D):
        return tuple(p for p in GRU_FORMS[self.form] if not (p.role == "input" and D == 0))

    def step_detail(self, p, state, x):
        """gates: z (update), r (reset), h (candidate h~), each (P, N, H)."""
        (h,) = state  # (P|1, N, H)
        z = self.sigma(linear(h, p["w_z"]) + drive(x, p, "u_z") + bias(p["b_z"]))
        r = self.sigma(linear(h, p["w_r"]) + drive(x, p, "u_r") + bias(p["b_r"]))
        if self.form == "torch":
            cand = torch.tanh(drive(x, p, "u_h") + bias(p["b_h"])
                              + r * (linear(h, p["w_h"]) + bias(p["b_hn"])))
        else:
            cand = torch.tanh(linear(r * h, p["w_h"]) + drive(x, p, "u_h") + bias(p["b_h"]))
        h = z * h + (1.0 - z) * cand  # (P, N, H)
        return (h,), {"z": z, "r": r, "h": cand}


# ---------------------------------------------------------------------------------------------
# Jozefowicz et al. 2015's evolved architectures (docs/reference.md §4). Note z weights the candidate.


@dataclass(frozen=True)
class _Mutant(GatedCell):
    """What MUT1-3 share: the gates z, r, h and the GRU's default window.

    Source: Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
    Architectures", ICML 2015, PMLR 37 (proceedings.mlr.press/v37/jozefowicz15.pdf): the three
    best architectures its search found. UNCHECKED AT THE SOURCE: the paper's own text, and so
    the page of its equations, was not found in what is reachable here (the code, docs and pages
    indexes quote only its abstract). The equations rest on docs/reference.md §4 and agree term
    by term with three independent transcriptions: dlib's rnn layer comment (MUT1), a TensorFlow
    "JZS1" cell (MUT1, its equations 1-3) and MartinuzziFrancesco/RecurrentLayers.jl
    src/cells/mut_cell.jl (MUT2 and MUT3 in its docstrings; for MUT1 it puts tanh(W x + b) where
    its comment says "in the paper is tanh(x_t)", and its MUT2 code gives r a weight on x where
    its comment says the paper's form needs D = H). Here ``needs_input_equal_hidden`` keeps the
    paper's tanh(x) and bare x.
    """

    gates = ("z", "r", "h")
    default_axes = ("b_z:-6:6:201", "w_h:-3:5:201")
    block_input = ("w_h", "b_h")


@dataclass(frozen=True)
class MUT1(_Mutant):
    name = "mut1"
    summary = "Jozefowicz et al. 2015's MUT1 (needs D = H or D = 0)"
    equations = ("z = g(W_xz x + b_z);  r = g(W_xr x + W_hr h + b_r)\n"
                 "h' = tanh(W_hh (r*h) + tanh(x) + b_h)*z + h*(1 - z)   (g = gate)")
    params = _decls("zrh", recurrent="rh", inputs="zr", biases="zrh")
    needs_input_equal_hidden = True

    def step_detail(self, p, state, x):
        """gates: z (update), r (reset), h (candidate), each (P, N, H)."""
        (h,) = state  # (P|1, N, H)
        z = self.sigma(drive(x, p, "u_z") + bias(p["b_z"]))
        z = z.expand(*z.shape[:-2], h.shape[-2], z.shape[-1])  # (P, N, H) even with D = 0
        r = self.sigma(drive(x, p, "u_r") + linear(h, p["w_r"]) + bias(p["b_r"]))
        cand = torch.tanh(linear(r * h, p["w_h"]) + (0.0 if x is None else torch.tanh(x)) + bias(p["b_h"]))
        h = cand * z + h * (1.0 - z)  # (P, N, H)
        return (h,), {"z": z, "r": r, "h": cand}


@dataclass(frozen=True)
class MUT2(_Mutant):
    name = "mut2"
    summary = "Jozefowicz et al. 2015's MUT2 (needs D = H or D = 0)"
    equations = ("z = g(W_xz x + W_hz h + b_z);  r = g(x + W_hr h + b_r)\n"
                 "h' = tanh(W_hh (r*h) + W_xh x + b_h)*z + h*(1 - z)   (g = gate)")
    params = _decls("zrh", recurrent="zrh", inputs="zh", biases="zrh")
    needs_input_equal_hidden = True

    def step_detail(self, p, state, x):
        """gates: z (update), r (reset), h (candidate), each (P, N, H)."""
        (h,) = state  # (P|1, N, H)
        z = self.sigma(drive(x, p, "u_z") + linear(h, p["w_z"]) + bias(p["b_z"]))
        r = self.sigma((0.0 if x is None else x) + linear(h, p["w_r"]) + bias(p["b_r"]))
        cand = torch.tanh(linear(r * h, p["w_h"]) + drive(x, p, "u_h") + bias(p["b_h"]))
        h = cand * z + h * (1.0 - z)  # (P, N, H)
        return (h,), {"z": z, "r": r, "h": cand}


@dataclass(frozen=True)
class MUT3(_Mutant):
    name = "mut3"
    summary = "Jozefowicz et al. 2015's MUT3"
    equations = ("z = g(W_xz x + W_hz tanh(h) + b_z);  r = g(W_xr x + W_hr h + b_r)\n"
                 "h' = tanh(W_hh (r*h) + W_xh x + b_h)*z + h*(1 - z)   (g = gate)")
    params = _decls("zrh", recurrent="zrh", inputs="zrh", biases="zrh")

    def step_detail(self, p, state, x):
        """gates: z (update), r (reset), h (candidate), each (P, N, H)."""
        (h,) = state  # (P|1, N, H)
        z = self.sigma(drive(x, p, "u_z") + linear(torch.tanh(h), p["w_z"]) + bias(p["b_z"]))
        r = self.sigma(drive(x, p, "u_r") + linear(h, p["w_r"]) + bias(p["b_r"]))
        cand = torch.tanh(linear(r * h, p["w_h"]) + drive(x, p, "u_h") + bias(p["b_h"]))
        h = cand * z + h * (1.0 - z)  # (P, N, H)
        return (h,), {"z": z, "r": r, "h": cand}

