"""torch.nn recurrent modules <-> our cells. Truth: the torch modules themselves (their outputs on
random input, float64), and exact equality for ours -> torch -> ours."""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from landscape.cells import get_cell
from landscape.errors import LandscapeError
from landscape.torch_models import (from_module, from_state_dict, load_torch_model, logistic_from_dense2,
                                    model_from_params, save_torch_model, to_modules)

DT = torch.float64
T, N = 25, 6
LAYERS = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}
CELLS = {"RNN": torch.nn.RNNCell, "LSTM": torch.nn.LSTMCell, "GRU": torch.nn.GRUCell}
OURS = {"RNN": "srnn", "LSTM": "lstm", "GRU": "gru"}


def torch_module(kind, D, H, seed, cell=False, scale=1.0, **kw):
    """A float64 torch module with N(0, scale^2) weights (beyond torch's small init, to saturate)."""
    torch.manual_seed(seed)
    m = (CELLS if cell else LAYERS)[kind](D, H, **kw).to(DT)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, scale)
    return m


def our_outputs(model, xs):
    """Every step's output of our cell, xs (T, N, D) -> (T, N, H)."""
    cell = model.cell_instance()
    p = model.population(1)
    state = cell.initial_state(p, xs.shape[1], model.hidden)
    outs = []
    for t in range(xs.shape[0]):
        state = cell.step(p, state, xs[t])
        outs.append(cell.output(state)[0])
    return torch.stack(outs)


def torch_cell_outputs(m, kind, xs):
    h = torch.zeros(xs.shape[1], m.hidden_size, dtype=DT)
    c = torch.zeros_like(h)
    outs = []
    for t in range(xs.shape[0]):
        if kind == "LSTM":
            h, c = m(xs[t], (h, c))
        else:
            h = m(xs[t], h)
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("D,H", [(1, 8), (3, 2), (1, 1)])
def test_layer_outputs_match_torch(kind, D, H):
    m = torch_module(kind, D, H, seed=H + D)
    model = from_module(m)
    assert (model.cell, model.hidden, model.input_size, model.readout) == (OURS[kind], H, D, "none")
    assert set(model.params) == set(get_cell(model.cell, **dict(model.cell_options)).param_shapes(H, D))
    xs = torch.randn(T, N, D, dtype=DT, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = m(xs)[0]  # (T, N, H)
    assert_close(our_outputs(model, xs), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_cell_state_dicts_match_torch(kind):
    m = torch_module(kind, 2, 4, seed=3, cell=True)
    model = from_state_dict(m.state_dict())
    assert model.source == f"torch.nn.{kind}Cell"
    xs = torch.randn(T, N, 2, dtype=DT, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        want = torch_cell_outputs(m, kind, xs)
    assert_close(our_outputs(model, xs), want, rtol=0, atol=1e-12)


def test_batch_first_and_bias_false():
    m = torch_module("GRU", 1, 3, seed=4, batch_first=True, bias=False)
    model = from_module(m)
    assert float(model.params["b_hn"].abs().sum()) == 0.0
    xs = torch.randn(T, N, 1, dtype=DT, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        want = m(xs.transpose(0, 1))[0].transpose(0, 1)
    assert_close(our_outputs(model, xs), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("K,readout", [(1, "logistic"), (2, "dense2")])
def test_head_under_prefixes(K, readout):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(1, 5, batch_first=True)
            self.fc = torch.nn.Linear(5, K)

    net = Net().to(DT)
    model = from_module(net)
    assert model.readout == readout and model.cell == "lstm"
    xs = torch.randn(T, N, 1, dtype=DT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h_T = net.rnn(xs.transpose(0, 1))[0][:, -1]  # (N, H)
        want = net.fc(h_T)  # (N, K)
    h = our_outputs(model, xs)[-1]
    if K == 1:
        got = h @ model.params["out_w"] + model.params["out_b"]
        assert_close(got, want[:, 0], rtol=0, atol=1e-12)
    else:
        got = h @ model.params["dense_w"].T + model.params["dense_b"]
        assert_close(got, want, rtol=0, atol=1e-12)
        lg = logistic_from_dense2(model.params)
        assert "dense_w" not in lg
        assert_close(torch.sigmoid(h @ lg["out_w"] + lg["out_b"]), torch.softmax(want, -1)[:, 1],
                     rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,options,kind", [("srnn", {}, "RNN"), ("lstm", {}, "LSTM"),
                                               ("lstm-b", {}, "LSTM"), ("gru", {"form": "torch"}, "GRU")])
@pytest.mark.parametrize("as_cell", [False, True])
def test_ours_to_torch_and_back(name, options, kind, as_cell):
    cell = get_cell(name, **options)
    H, D = 3, 2
    g = torch.Generator().manual_seed(11)
    params = {k: torch.randn(s, dtype=DT, generator=g) for k, s in cell.param_shapes(H, D).items()}
    params["dense_w"] = torch.randn(2, H, dtype=DT, generator=g)
    params["dense_b"] = torch.randn(2, dtype=DT, generator=g)
    model = model_from_params(cell, params)
    rnn, head = to_modules(model, cell=as_cell)
    assert isinstance(rnn, (CELLS if as_cell else LAYERS)[kind]) and head.out_features == 2
    xs = torch.randn(T, N, D, dtype=DT, generator=g)
    with torch.no_grad():
        want = torch_cell_outputs(rnn, kind, xs) if as_cell else rnn(xs)[0]
    assert_close(our_outputs(model, xs), want, rtol=0, atol=1e-12)
    back = from_state_dict({**{f"rnn.{k}": v for k, v in rnn.state_dict().items()},
                            **{f"head.{k}": v for k, v in head.state_dict().items()}})
    assert back.params.keys() == params.keys()
    for k in params:
        assert torch.equal(back.params[k], params[k]), k


def test_torch_to_ours_to_torch_same_function():
    m = torch_module("GRU", 1, 8, seed=5)
    rnn, _ = to_modules(from_module(m))
    xs = torch.randn(T, N, 1, dtype=DT, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert_close(rnn(xs)[0], m(xs)[0], rtol=0, atol=1e-12)
    sd = rnn.state_dict()  # the merged biases went to bias_ih; b_hn stays in bias_hh's n rows
    assert float(sd["bias_hh_l0"][:16].abs().sum()) == 0.0
    assert torch.equal(sd["bias_hh_l0"][16:], m.state_dict()["bias_hh_l0"][16:])


def test_file_round_trip(tmp_path):
    m = torch_module("LSTM", 1, 4, seed=6)
    torch.save(m.state_dict(), tmp_path / "lstm.pt")
    model = load_torch_model(tmp_path / "lstm.pt")
    assert model.source == "lstm.pt" and model.cell == "lstm"
    torch.save({"epoch": 3, "model_state_dict": m.state_dict()}, tmp_path / "ckpt.pt")
    assert torch.equal(load_torch_model(tmp_path / "ckpt.pt").params["w_f"], model.params["w_f"])
    save_torch_model(model, tmp_path / "again.pt")
    again = load_torch_model(tmp_path / "again.pt")
    for k in model.params:
        assert_close(again.params[k], model.params[k], rtol=0, atol=1e-15)


def test_pickled_module_is_refused(tmp_path):
    torch.save(torch.nn.GRU(1, 2), tmp_path / "whole.pt")
    with pytest.raises(LandscapeError, match="cannot read .* as a torch state_dict"):
        load_torch_model(tmp_path / "whole.pt")
    with pytest.raises(LandscapeError, match="no such model file"):
        load_torch_model(tmp_path / "absent.pt")


@pytest.mark.parametrize("make,why", [
    (lambda: torch.nn.GRU(1, 3, num_layers=2).state_dict(), "more than one layer"),
    (lambda: torch.nn.LSTM(1, 3, bidirectional=True).state_dict(), "reverse direction"),
    (lambda: torch.nn.LSTM(2, 3, proj_size=2).state_dict(), "projection"),
    (lambda: {"weight": torch.zeros(2, 3)}, "no weight_hh_l0 or weight_hh key"),
    (lambda: {"weight_ih_l0": torch.zeros(6, 1), "weight_hh_l0": torch.zeros(6, 3)}, "2 blocks"),
    (lambda: {**torch.nn.GRU(1, 3).state_dict(), "fc.weight": torch.zeros(3, 3)}, "head fc.weight"),
    (lambda: {**torch.nn.GRU(1, 3).state_dict(), "a.weight": torch.zeros(1, 3),
              "b.weight": torch.zeros(1, 3)}, "at most one nn.Linear head"),
])
def test_unsupported_layouts_name_keys(make, why):
    with pytest.raises(LandscapeError, match="matches no supported layout") as err:
        from_state_dict(make())
    msg = str(err.value)
    assert why in msg and "found: " in msg and "expected a one-layer" in msg and "\n" not in msg


def test_module_checks():
    with pytest.raises(LandscapeError, match="nonlinearity='relu'"):
        from_module(torch.nn.RNN(1, 2, nonlinearity="relu"))
    with pytest.raises(LandscapeError, match="num_layers=2"):
        from_module(torch.nn.GRU(1, 2, num_layers=2))
    with pytest.raises(LandscapeError, match="no torch.nn equivalent"):
        model_from_params(get_cell("gru", form="reset_before"), {})
    with pytest.raises(LandscapeError, match="no torch.nn equivalent"):
        model_from_params(get_cell("lstm", gate="hard_sigmoid"), {})
