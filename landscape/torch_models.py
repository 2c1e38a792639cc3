"""torch.nn recurrent networks in and out: a trained ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (or the
``RNNCell`` / ``LSTMCell`` / ``GRUCell``) plus an optional ``nn.Linear`` head, as our cells'
named parameters, and back.

Supported layouts (docs/reference.md §7): one layer, one direction, no LSTM projection, ``batch_first``
either way (it does not touch the weights). torch stacks a layer's gates along the rows of
``weight_ih`` (G H, D) and ``weight_hh`` (G H, H), in the order

    RNN   (tanh)          ->  srnn          w = W_hh, u = W_ih, b = b_ih + b_hh
    LSTM  (i, f, g, o)    ->  lstm          w_i, w_f, w_z, w_o (g is our block input z); b = b_ih + b_hh
    GRU   (r, z, n)       ->  gru form=torch
                              w_r, w_z, w_h; b_r = b_ir + b_hr, b_z = b_iz + b_hz,
                              b_h = b_in, b_hn = b_hn (the candidate's hidden bias sits inside r * (...))

torch has two biases where our cells (except the GRU candidate) have one; they only ever appear
summed, so the sum is exact and the split back is a choice: ``to_state_dict`` puts the whole bias
in ``bias_ih`` and zeros in ``bias_hh`` (except the GRU's b_hn). A torch -> ours -> torch round
trip therefore gives a different state_dict with the same function; ours -> torch -> ours is exact.

A head ``nn.Linear(H, 1)`` becomes the logistic readout (``out_w`` (H,), ``out_b`` (1,)), an
``nn.Linear(H, 2)`` Keras' Dense(2) readout (``dense_w`` (2, H), ``dense_b`` (2,)); a head without
bias gets a zero bias. ``logistic_from_dense2`` turns the second into the first exactly (a
two-class softmax is a logistic function of the logit difference).

A state_dict does not say whether an ``nn.RNN`` used tanh or relu: ``from_state_dict`` assumes
tanh (torch's default); ``from_module`` checks ``nonlinearity``. All parameters come out in
float64, with the cells' shapes (no population axis; ``TorchModel.population`` adds one).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cells import Cell, get_cell
from .errors import LandscapeError
from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

# torch's gate rows, in order, as our gate names; the torch layer's name -> our cell
GATE_ROWS = {"srnn": ("",), "lstm": ("i", "f", "z", "o"), "gru": ("r", "z", "h")}
TORCH_NAMES = {1: "RNN", 4: "LSTM", 3: "GRU"}  # gates per layer -> torch.nn class
OUR_CELL = {"RNN": "srnn", "LSTM": "lstm", "GRU": "gru"}
CELL_OPTIONS = {"srnn": (), "lstm": (), "gru": (("form", "torch"),)}
# our cells with exactly torch's equations, and the options they must have
CONVERTIBLE = {"srnn": {}, "lstm": {"gate": "sigmoid"}, "lstm-b": {"gate": "sigmoid"},
               "gru": {"gate": "sigmoid", "form": "torch"}}
HEADS = {1: "logistic", 2: "dense2"}  # nn.Linear out_features -> readout kind
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")  # where a checkpoint keeps its weights

_EXPECTED = ("expected a one-layer, one-direction torch.nn.RNN/LSTM/GRU state_dict (weight_ih_l0 (G*H, D), "
             "weight_hh_l0 (G*H, H), optional bias_ih_l0 and bias_hh_l0 (G*H,), G = 1, 4, 3) or an "
             "RNNCell/LSTMCell/GRUCell one (weight_ih, weight_hh, bias_ih, bias_hh), optionally under a "
             "prefix such as 'rnn.', plus an optional nn.Linear(H, 1 or 2) head (PREFIX.weight, PREFIX.bias)")


@dataclass(frozen=True, eq=False)
class TorchModel:
    """A torch recurrent network in our cells' parameters.

    cell          'srnn', 'lstm' or 'gru'; ``cell_options`` (('form', 'torch'),) for the GRU
    hidden        H;  input_size: D (>= 1)
    readout       'none' (no head), 'logistic' (nn.Linear(H, 1): out_w (H,), out_b (1,)) or
                  'dense2' (nn.Linear(H, 2): dense_w (2, H), dense_b (2,))
    params        name -> float64 tensor of the cell's shape (cell parameters, then the head's)
    source        what it was read from, e.g. 'torch.nn.GRU' or 'torch.nn.GRUCell'
    """

    cell: str
    cell_options: tuple[tuple[str, object], ...]
    hidden: int
    input_size: int
    readout: str
    params: dict[str, Tensor]
    source: str = ""

    def cell_instance(self) -> Cell:
        return get_cell(self.cell, **dict(self.cell_options))

    def population(self, P: int = 1) -> dict[str, Tensor]:
        """The parameters with a population axis: name -> (P, *shape) (an expanded view)."""
        return {k: v.unsqueeze(0).expand(P, *v.shape) for k, v in self.params.items()}


# ---------------------------------------------------------------------------------------------
# torch -> ours


def from_state_dict(state_dict: Mapping[str, Tensor], source: str | None = None) -> TorchModel:
    """Our parameters from a torch state_dict (see the module docstring for the layouts).

    Raises one LandscapeError naming the keys found and the layouts expected when the state_dict
    matches none (or a multi-layer, bidirectional or projected network)."""
    sd = _tensors(state_dict)
    prefix, sfx = _find_rnn(sd)
    w_ih, w_hh = sd[f"{prefix}weight_ih{sfx}"], sd[f"{prefix}weight_hh{sfx}"]
    if w_hh.ndim != 2 or w_ih.ndim != 2 or w_hh.shape[1] < 1 or w_hh.shape[0] % w_hh.shape[1]:
        raise _layout_error(sd, f"weight_hh{sfx} has shape {tuple(w_hh.shape)}, not (G*H, H)")
    H = w_hh.shape[1]
    G = w_hh.shape[0] // H
    if G not in TORCH_NAMES:
        raise _layout_error(sd, f"weight_hh{sfx} has {G} blocks of H={H} rows; RNN has 1, GRU 3, LSTM 4")
    D = w_ih.shape[1]
    if w_ih.shape[0] != G * H or D < 1:
        raise _layout_error(sd, f"weight_ih{sfx} has shape {tuple(w_ih.shape)}, expected ({G * H}, D >= 1)")
    have = [f"{prefix}bias_ih{sfx}" in sd, f"{prefix}bias_hh{sfx}" in sd]
    if any(have) and not all(have):
        raise _layout_error(sd, f"only one of bias_ih{sfx}, bias_hh{sfx} is present")
    zeros = torch.zeros(G * H, dtype=torch.float64)
    b_ih = _f64(sd[f"{prefix}bias_ih{sfx}"]) if all(have) else zeros
    b_hh = _f64(sd[f"{prefix}bias_hh{sfx}"]) if all(have) else zeros
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b.shape != (G * H,):
            raise _layout_error(sd, f"{name}{sfx} has shape {tuple(b.shape)}, expected ({G * H},)")
    torch_name = TORCH_NAMES[G]
    cell = OUR_CELL[torch_name]
    params = _cell_from_torch(cell, _f64(w_ih), _f64(w_hh), b_ih, b_hh, H)
    rnn_keys = {f"{prefix}{k}{sfx}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    readout, head = _head(sd, {k: v for k, v in sd.items() if k not in rnn_keys}, H)
    params.update(head)
    kind = f"torch.nn.{torch_name}" + ("Cell" if sfx == "" else "")
    return TorchModel(cell, CELL_OPTIONS[cell], H, D, readout, params, source or kind)


def from_module(module: torch.nn.Module) -> TorchModel:
    """Our parameters from a torch module: an nn.RNN/LSTM/GRU or one of their cells, or a module
    holding exactly one of them and at most one nn.Linear head. Checks what a state_dict cannot
    show (tanh, not relu; one layer; one direction; no projection)."""
    if not isinstance(module, torch.nn.Module):
        raise LandscapeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    for name, m in module.named_modules():
        where = f"{type(m).__name__}{' ' + repr(name) if name else ''}"
        if isinstance(m, (torch.nn.RNN, torch.nn.RNNCell)) and m.nonlinearity != "tanh":
            raise LandscapeError(f"{where} uses nonlinearity={m.nonlinearity!r}; only tanh maps onto srnn")
        if isinstance(m, torch.nn.RNNBase):
            if m.num_layers != 1:
                raise LandscapeError(f"{where} has num_layers={m.num_layers}; only one layer is supported")
            if m.bidirectional:
                raise LandscapeError(f"{where} is bidirectional; only one direction is supported")
            if getattr(m, "proj_size", 0):
                raise LandscapeError(f"{where} has proj_size={m.proj_size}; projections are not supported")
    return from_state_dict(module.state_dict(), source=f"torch.nn.{type(module).__name__}")


def load_torch_model(path) -> TorchModel:
    """A TorchModel from a file written by ``torch.save(module.state_dict(), path)``.

    Read with ``torch.load(path, weights_only=True)`` (no code is run). A checkpoint dict that
    keeps the weights under 'state_dict', 'model_state_dict' or 'model' is accepted too."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"no such model file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickled modules, other formats: torch says why
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LandscapeError(f"cannot read {path} as a torch state_dict (torch.load weights_only=True: "
                             f"{first}); save it with torch.save(model.state_dict(), path)") from None
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in CHECKPOINT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise LandscapeError(f"{path} holds a {type(obj).__name__}, not a state_dict; {_EXPECTED}")
    return from_state_dict(obj, source=f"{path.name}")


def logistic_from_dense2(params: dict[str, Tensor]) -> dict[str, Tensor]:
    """Replace a Dense(2) readout (dense_w (..., 2, H), dense_b (..., 2)) by the logistic readout
    with the same class probabilities: out_w = dense_w[1] - dense_w[0], out_b = dense_b[1] - dense_b[0].
    Works with or without a population axis; other parameters pass through."""
    out = {k: v for k, v in params.items() if k not in ("dense_w", "dense_b")}
    if "dense_w" in params:
        w, b = params["dense_w"], params["dense_b"]
        out["out_w"] = w[..., 1, :] - w[..., 0, :]  # (..., H)
        out["out_b"] = (b[..., 1] - b[..., 0]).unsqueeze(-1)  # (..., 1)
    return out


def _cell_from_torch(cell: str, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, H: int
                     ) -> dict[str, Tensor]:
    gates = GATE_ROWS[cell]
    rows = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(gates)}
    out = {}
    for g in gates:
        tag = f"_{g}" if g else ""
        out[f"w{tag}"] = w_hh[rows[g]].clone()
        out[f"u{tag}"] = w_ih[rows[g]].clone()
        if cell == "gru" and g == "h":  # the candidate keeps its two biases apart
            out["b_h"] = b_ih[rows[g]].clone()
            out["b_hn"] = b_hh[rows[g]].clone()
        else:
            out[f"b{tag}"] = b_ih[rows[g]] + b_hh[rows[g]]
    shapes = get_cell(cell, **dict(CELL_OPTIONS[cell])).param_shapes(H, w_ih.shape[1])
    return {k: out[k] for k in shapes}  # the cell's declaration order


def _head(sd: dict[str, Tensor], rest: dict[str, Tensor], H: int) -> tuple[str, dict[str, Tensor]]:
    """The readout kind and its parameters from the keys that are not the RNN's."""
    if not rest:
        return "none", {}
    weights = [k for k in rest if k == "weight" or k.endswith(".weight")]
    if len(weights) != 1:
        raise _layout_error(sd, f"keys besides the RNN's: {', '.join(sorted(rest))} "
                                f"(at most one nn.Linear head, PREFIX.weight and PREFIX.bias)")
    q = weights[0][:-len("weight")]
    extra = sorted(set(rest) - {f"{q}weight", f"{q}bias"})
    if extra:
        raise _layout_error(sd, f"keys besides the RNN's and the head {q}weight/{q}bias: {', '.join(extra)}")
    w = _f64(rest[f"{q}weight"])
    if w.ndim != 2 or w.shape[1] != H or w.shape[0] not in HEADS:
        raise _layout_error(sd, f"head {q}weight has shape {tuple(w.shape)}; expected (1, {H}) or (2, {H})")
    K = w.shape[0]
    b = _f64(rest[f"{q}bias"]) if f"{q}bias" in rest else torch.zeros(K, dtype=torch.float64)
    if b.shape != (K,):
        raise _layout_error(sd, f"head {q}bias has shape {tuple(b.shape)}; expected ({K},)")
    if K == 1:
        return "logistic", {"out_w": w[0].clone(), "out_b": b.clone()}
    return "dense2", {"dense_w": w.clone(), "dense_b": b.clone()}


def _find_rnn(sd: dict[str, Tensor]) -> tuple[str, str]:
    """(prefix, layer suffix '_l0' or '') of the one recurrent layer in the state_dict."""
    found = []
    for k in sd:
        for sfx in ("_l0", ""):
            tail = f"weight_hh{sfx}"
            if k == tail or k.endswith("." + tail):
                found.append((k[:-len(tail)], sfx))
    if not found:
        raise _layout_error(sd, "no weight_hh_l0 or weight_hh key")
    if len(found) > 1:
        names = ", ".join(p + "weight_hh" + s for p, s in found)
        raise _layout_error(sd, f"{len(found)} recurrent layers ({names})")
    prefix, sfx = found[0]
    own = [k[len(prefix):] for k in sd if k.startswith(prefix) and "." not in k[len(prefix):]]
    bad = [prefix + k for k in own if "_reverse" in k or "weight_hr" in k or re.search(r"_l[1-9]", k)]
    if bad:
        raise _layout_error(sd, f"more than one layer, a reverse direction or a projection ({', '.join(bad)})")
    if f"{prefix}weight_ih{sfx}" not in sd:
        raise _layout_error(sd, f"no {prefix}weight_ih{sfx} key")
    return prefix, sfx


def _tensors(state_dict) -> dict[str, Tensor]:
    if not isinstance(state_dict, Mapping):
        raise LandscapeError(f"expected a state_dict (a mapping of names to tensors), got "
                             f"{type(state_dict).__name__}")
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise _layout_error(dict(state_dict), f"entries that are not tensors: {', '.join(map(str, bad))}")
    return dict(state_dict)


def _f64(t: Tensor) -> Tensor:
    return t.detach().to(device="cpu", dtype=torch.float64)


def _layout_error(sd: dict, why: str) -> LandscapeError:
    found = ", ".join(f"{k} {tuple(v.shape)}" if isinstance(v, torch.Tensor) else str(k) for k, v in sd.items())
    return LandscapeError(f"state_dict matches no supported layout ({why}); found: {found or 'no keys'}; "
                          f"{_EXPECTED}")


# ---------------------------------------------------------------------------------------------
# ours -> torch


def model_from_params(cell: Cell | str, params: dict[str, Tensor]) -> TorchModel:
    """A TorchModel from our parameters (cell shapes, no population axis; a readout out_w/out_b
    or dense_w/dense_b is taken along). Only cells with exactly torch's equations convert: srnn,
    lstm and lstm-b with sigmoid gates, gru form=torch with sigmoid gates."""
    cell = get_cell(cell) if isinstance(cell, str) else cell
    need = CONVERTIBLE.get(cell.name)
    opts = cell.options()
    if need is None or any(opts.get(k) != v for k, v in need.items()):
        raise LandscapeError(f"cell {cell.describe()} has no torch.nn equivalent; choose from: srnn, "
                             f"lstm (gate=sigmoid), lstm-b (gate=sigmoid), gru (form=torch, gate=sigmoid)")
    ours = "lstm" if cell.name == "lstm-b" else cell.name
    w = params["w" if ours == "srnn" else "w_z"]
    H = w.shape[-1]
    u = params.get("u" if ours == "srnn" else "u_z")
    if u is None:
        raise LandscapeError(f"cell {cell.name} without input weights (D = 0) has no torch.nn equivalent "
                             f"(torch needs input_size >= 1)")
    D = u.shape[-1]
    shapes = get_cell(ours, **dict(CELL_OPTIONS[ours])).param_shapes(H, D)
    missing = sorted(set(shapes) - set(params))
    if missing:
        raise LandscapeError(f"parameters {', '.join(missing)} of cell {cell.name} are missing")
    out = {}
    for k, s in shapes.items():
        v = _f64(params[k])
        if tuple(v.shape) != s:
            raise LandscapeError(f"parameter {k} has shape {tuple(v.shape)}, expected {s} (no population axis)")
        out[k] = v
    readout = "none"
    if "out_w" in params:
        readout = "logistic"
        out.update(out_w=_f64(params["out_w"]).reshape(H), out_b=_f64(params["out_b"]).reshape(1))
    elif "dense_w" in params:
        readout = "dense2"
        out.update(dense_w=_f64(params["dense_w"]).reshape(2, H), dense_b=_f64(params["dense_b"]).reshape(2))
    return TorchModel(ours, CELL_OPTIONS[ours], H, D, readout, out, f"landscape {cell.name}")


def to_state_dicts(model: TorchModel, cell: bool = False) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """(the recurrent layer's state_dict, the head's or None), float64, for torch.nn.<RNN|LSTM|GRU>
    (``cell=False``, keys ``*_l0``) or its Cell variant. The merged biases go to bias_ih, zeros to
    bias_hh (the GRU's b_hn goes to bias_hh's n rows)."""
    gates = GATE_ROWS[model.cell]
    p, H = model.params, model.hidden
    zeros = torch.zeros(H, dtype=torch.float64)
    tags = [f"_{g}" if g else "" for g in gates]
    w_ih = torch.cat([p[f"u{t}"] for t in tags])  # (G H, D)
    w_hh = torch.cat([p[f"w{t}"] for t in tags])  # (G H, H)
    b_ih = torch.cat([p[f"b{t}"] for t in tags])  # (G H,)
    b_hh = torch.cat([p["b_hn"] if (model.cell == "gru" and g == "h") else zeros for g in gates])
    sfx = "" if cell else "_l0"
    rnn = {f"weight_ih{sfx}": w_ih, f"weight_hh{sfx}": w_hh, f"bias_ih{sfx}": b_ih, f"bias_hh{sfx}": b_hh}
    head = None
    if model.readout == "logistic":
        head = {"weight": p["out_w"].reshape(1, H).clone(), "bias": p["out_b"].reshape(1).clone()}
    elif model.readout == "dense2":
        head = {"weight": p["dense_w"].clone(), "bias": p["dense_b"].clone()}
    return rnn, head


def to_modules(model: TorchModel, cell: bool = False, batch_first: bool = False
               ) -> tuple[torch.nn.Module, torch.nn.Linear | None]:
    """(torch.nn.<RNN|LSTM|GRU>, or its Cell with ``cell=True``; the nn.Linear head or None),
    float64, loaded with the model's parameters."""
    torch_name = {v: k for k, v in OUR_CELL.items()}[model.cell]
    rnn_sd, head_sd = to_state_dicts(model, cell)
    cls = getattr(torch.nn, torch_name + ("Cell" if cell else ""))
    kwargs = {} if cell else {"batch_first": batch_first}
    rnn = cls(model.input_size, model.hidden, **kwargs).to(torch.float64)
    rnn.load_state_dict(rnn_sd)
    head = None
    if head_sd is not None:
        head = torch.nn.Linear(model.hidden, head_sd["weight"].shape[0]).to(torch.float64)
        head.load_state_dict(head_sd)
    return rnn, head


def save_torch_model(model: TorchModel, path, cell: bool = False, rnn_prefix: str = "rnn.",
                     head_prefix: str = "head.") -> Path:
    """Write the model as one torch state_dict file (keys ``rnn.weight_ih_l0``, ..., ``head.weight``),
    readable by ``load_torch_model`` and by ``module.load_state_dict`` of a matching torch model."""
    rnn_sd, head_sd = to_state_dicts(model, cell)
    sd = {rnn_prefix + k: v for k, v in rnn_sd.items()}
    if head_sd is not None:
        sd.update({head_prefix + k: v for k, v in head_sd.items()})
    path = Path(path)
    torch.save(sd, path)
    return path


def n_parameters(model: TorchModel) -> int:
    return sum(math.prod(v.shape) for v in model.params.values())


__all__ = ["TorchModel", "from_module", "from_state_dict", "load_torch_model", "logistic_from_dense2",
           "model_from_params", "n_parameters", "save_torch_model", "to_modules", "to_state_dicts"]
