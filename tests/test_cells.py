"""Cells against independent truths: torch.nn modules, hand-written numpy loops of the published
equations (docs/reference.md §4, §5, §7), and the Keras 2 / torch initialiser definitions. float64."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from landscape.cells import CELLS, get_cell
from landscape.cells.base import linear
from landscape.errors import LandscapeError

DT = torch.float64
T, N, P = 12, 5, 3
GATED = ("lstm", "lstm-b", "lstm-i", "lstm-o", "lstm-f", "lstm1997", "gru", "mut1", "mut2", "mut3")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_params(cell, H, D, P, seed, scale=1.0):
    """N(0, scale^2) parameters, (P, *shape) each: large enough to reach saturation."""
    g = gen(seed)
    return {k: scale * torch.randn((P, *s), generator=g, dtype=DT) for k, s in cell.param_shapes(H, D).items()}


def random_states(cell, H, P, seed):
    g = gen(seed)
    return tuple(0.8 * torch.randn((P, N, H), generator=g, dtype=DT) for _ in cell.state_names)


def random_inputs(D, P, seed, shared):
    """(T, N, D) shared by the population or (T, P, N, D) one per member; None when D = 0."""
    if D == 0:
        return None
    shape = (T, N, D) if shared else (T, P, N, D)
    return torch.randn(shape, generator=gen(seed), dtype=DT)


def unroll(cell, p, state, xs, detail=False):
    """Every step's state (and with detail, gates) of our batched cell."""
    out = []
    for t in range(T):
        x = None if xs is None else xs[t]
        if detail:
            state, gates = cell.step_detail(p, state, x)
            out.append((state, gates))
        else:
            state = cell.step(p, state, x)
            out.append(state)
    return out


def member_input(xs, t, m):
    if xs is None:
        return None
    return (xs[t] if xs.dim() == 3 else xs[t, m]).numpy()


# ---------------------------------------------------------------------------------------------
# 1. torch.nn.RNN / LSTM / GRU, values at every step and gradients

# torch parameter -> our parameters stacked by rows in torch's gate order; None = zeros
TORCH_LAYOUT = {
    "srnn": (torch.nn.RNN, {"weight_ih_l0": ["u"], "weight_hh_l0": ["w"],
                            "bias_ih_l0": ["b"], "bias_hh_l0": [None]}),
    "lstm": (torch.nn.LSTM, {"weight_ih_l0": ["u_i", "u_f", "u_z", "u_o"],
                             "weight_hh_l0": ["w_i", "w_f", "w_z", "w_o"],
                             "bias_ih_l0": ["b_i", "b_f", "b_z", "b_o"],
                             "bias_hh_l0": [None] * 4}),
    "gru": (torch.nn.GRU, {"weight_ih_l0": ["u_r", "u_z", "u_h"],
                           "weight_hh_l0": ["w_r", "w_z", "w_h"],
                           "bias_ih_l0": ["b_r", "b_z", "b_h"],
                           "bias_hh_l0": [None, None, "b_hn"]}),
}


def torch_module(name, p, m, H, D):
    """torch.nn module holding member m of our parameters p."""
    cls, layout = TORCH_LAYOUT[name]
    mod = cls(D, H, dtype=DT)
    with torch.no_grad():
        for tname, ours in layout.items():
            blocks = [torch.zeros(H, dtype=DT) if k is None else p[k][m] for k in ours]
            getattr(mod, tname).copy_(torch.cat(blocks, 0))
    return mod


def torch_grads(name, mod, H):
    """Gradients of the module's parameters, split back to our names."""
    out = {}
    for tname, ours in TORCH_LAYOUT[name][1].items():
        for j, k in enumerate(ours):
            if k is not None:
                out[k] = getattr(mod, tname).grad[j * H:(j + 1) * H]
    return out


@pytest.mark.parametrize("shared", [False, True], ids=["x_per_member", "x_shared"])
@pytest.mark.parametrize("H,D", [(1, 1), (1, 3), (8, 1), (8, 3)])
@pytest.mark.parametrize("name", ["srnn", "lstm", "gru"])
def test_matches_torch_nn(name, H, D, shared):
    cell = get_cell(name)  # lstm: gate=sigmoid; gru: form=torch
    p = {k: v.requires_grad_() for k, v in random_params(cell, H, D, P, seed=1).items()}
    s0 = tuple(s.requires_grad_() for s in random_states(cell, H, P, seed=2))
    xs = random_inputs(D, P, seed=3, shared=shared).requires_grad_()

    ours = unroll(cell, p, s0, xs)
    loss = sum((s ** 2).sum() for state in ours for s in state)  # all h_t (and c_t)
    grads = torch.autograd.grad(loss, [*p.values(), *s0, xs])
    g_p = dict(zip(p, grads[:len(p)]))
    g_s0, g_x = grads[len(p):-1], grads[-1]

    g_x_ref = torch.zeros_like(xs)
    theirs = []  # [m][t] -> states (1, N, H) each
    for m in range(P):
        mod = torch_module(name, p, m, H, D)
        h0 = tuple(s[m:m + 1].detach().clone().requires_grad_() for s in s0)  # (1, N, H): layers=1
        xm = (xs if shared else xs[:, m]).detach().clone().requires_grad_()  # (T, N, D)
        state = h0 if name == "lstm" else h0[0]
        loss_m, theirs_m = 0.0, []
        for t in range(T):  # one torch call per step, to see the LSTM's c at every step
            _, state = mod(xm[t:t + 1], state)
            states = state if name == "lstm" else (state,)
            theirs_m.append(states)
            loss_m = loss_m + sum((s ** 2).sum() for s in states)
        theirs.append(theirs_m)
        loss_m.backward()
        for k, g in torch_grads(name, mod, H).items():
            assert_close(g_p[k][m], g, atol=1e-10, rtol=1e-10, msg=f"d loss / d {k}")
        for ours_g, h in zip(g_s0, h0):
            assert_close(ours_g[m], h.grad[0], atol=1e-10, rtol=1e-10)
        if shared:
            g_x_ref += xm.grad
        else:
            g_x_ref[:, m] = xm.grad
    assert_close(g_x, g_x_ref, atol=1e-10, rtol=1e-10)
    for j in range(len(cell.state_names)):  # every step, every member: (T, P, N, H)
        want = torch.stack([torch.cat([theirs[m][t][j] for m in range(P)]) for t in range(T)])
        assert_close(torch.stack([step[j] for step in ours]).detach(), want.detach(), atol=1e-10, rtol=1e-10)
    assert set(torch_grads(name, mod, H)) == set(p)  # every parameter of ours was compared


# ---------------------------------------------------------------------------------------------
# 2-3. every cell against a hand-written numpy loop of its defining equations


def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_hard_sigmoid(a):
    return np.clip(0.2 * a + 0.5, 0.0, 1.0)


NP_GATE = {"sigmoid": np_sigmoid, "hard_sigmoid": np_hard_sigmoid}


def mv(v, W):
    """v (N, in) through W (out, in): (N, out)."""
    return v @ W.T


def ref_lstm(p, state, x, g, fixed="", y1997=False):
    """Standard LSTM with the gates in ``fixed`` held at exactly 1; with y1997 the 1997 original
    (c' = c + i g(net), h' = o h(c'), g = 4s - 2, h = 2s - 1; call with fixed='f')."""
    h, c = state

    def net(k):
        a = mv(h, p[f"w_{k}"]) + p[f"b_{k}"]
        return a if x is None else a + mv(x, p[f"u_{k}"])

    gates = {k: g(net(k)) for k in "ifo" if k not in fixed}
    i, f, o = (gates.get(k, 1.0) for k in "ifo")
    if y1997:
        gates["z"] = 4.0 * np_sigmoid(net("z")) - 2.0
        c = c + i * gates["z"]
        h = o * (2.0 * np_sigmoid(c) - 1.0)
    else:
        gates["z"] = np.tanh(net("z"))
        c = f * c + i * gates["z"]
        h = o * np.tanh(c)
    return (h, c), gates


def ref_gru(p, state, x, g, form):
    (h,) = state
    xu = (lambda k: 0.0) if x is None else (lambda k: mv(x, p[f"u_{k}"]))
    r = g(xu("r") + mv(h, p["w_r"]) + p["b_r"])
    z = g(xu("z") + mv(h, p["w_z"]) + p["b_z"])
    if form == "torch":  # docs/reference.md §7
        n = np.tanh(xu("h") + p["b_h"] + r * (mv(h, p["w_h"]) + p["b_hn"]))
        return ((1.0 - z) * n + z * h,), {"z": z, "r": r, "h": n}
    ht = np.tanh(xu("h") + mv(r * h, p["w_h"]) + p["b_h"])  # docs/reference.md §4
    return (z * h + (1.0 - z) * ht,), {"z": z, "r": r, "h": ht}


def ref_mut1(p, state, x, g):
    (h,) = state
    x = np.zeros_like(h) if x is None else x  # D = 0: the x terms vanish
    u = lambda k: mv(x, p[f"u_{k}"]) if f"u_{k}" in p else 0.0  # noqa: E731
    z = g(u("z") + p["b_z"]) * np.ones_like(h)
    r = g(u("r") + mv(h, p["w_r"]) + p["b_r"])
    ht = np.tanh(mv(r * h, p["w_h"]) + np.tanh(x) + p["b_h"])
    return (ht * z + h * (1.0 - z),), {"z": z, "r": r, "h": ht}


def ref_mut2(p, state, x, g):
    (h,) = state
    x = np.zeros_like(h) if x is None else x
    u = lambda k: mv(x, p[f"u_{k}"]) if f"u_{k}" in p else 0.0  # noqa: E731
    z = g(u("z") + mv(h, p["w_z"]) + p["b_z"])
    r = g(x + mv(h, p["w_r"]) + p["b_r"])
    ht = np.tanh(mv(r * h, p["w_h"]) + u("h") + p["b_h"])
    return (ht * z + h * (1.0 - z),), {"z": z, "r": r, "h": ht}


def ref_mut3(p, state, x, g):
    (h,) = state
    u = lambda k: 0.0 if x is None else mv(x, p[f"u_{k}"])  # noqa: E731
    z = g(u("z") + mv(np.tanh(h), p["w_z"]) + p["b_z"])
    r = g(u("r") + mv(h, p["w_r"]) + p["b_r"])
    ht = np.tanh(mv(r * h, p["w_h"]) + u("h") + p["b_h"])
    return (ht * z + h * (1.0 - z),), {"z": z, "r": r, "h": ht}


def ref_srnn(p, state, x, g):
    a = mv(state[0], p["w"]) + p["b"]
    return (np.tanh(a if x is None else a + mv(x, p["u"])),), {}


def ref_pascanu(p, state, x, g):
    a = mv(np_sigmoid(state[0]), p["w"]) + p["b"]
    return (a if x is None else a + mv(x, p["u"]),), {}


REFS = {
    "srnn": ref_srnn,
    "pascanu": ref_pascanu,
    "lstm": ref_lstm,
    "lstm-b": ref_lstm,
    "lstm-i": lambda p, s, x, g: ref_lstm(p, s, x, g, fixed="i"),
    "lstm-o": lambda p, s, x, g: ref_lstm(p, s, x, g, fixed="o"),
    "lstm-f": lambda p, s, x, g: ref_lstm(p, s, x, g, fixed="f"),
    "lstm1997": lambda p, s, x, g: ref_lstm(p, s, x, g, fixed="f", y1997=True),
    "gru": lambda p, s, x, g: ref_gru(p, s, x, g, "torch"),
    "gru-reset_before": lambda p, s, x, g: ref_gru(p, s, x, g, "reset_before"),
    "mut1": ref_mut1,
    "mut2": ref_mut2,
    "mut3": ref_mut3,
}


def cell_for(ref_name, gate):
    name, _, form = ref_name.partition("-reset_")
    opts = {} if ref_name in ("srnn", "pascanu") else {"gate": gate}
    return get_cell(name, **opts, **({"form": "reset_before"} if form else {}))


def sizes(ref_name):
    if ref_name in ("mut1", "mut2"):
        return [(1, 0), (1, 1), (4, 0), (4, 4)]
    return [(1, 0), (1, 1), (4, 1), (4, 3)]


CASES = [(r, H, D) for r in REFS for H, D in sizes(r)]


GATE_CASES = [(r, H, D, gate) for r, H, D in CASES
              for gate in (["sigmoid"] if r in ("srnn", "pascanu") else ["sigmoid", "hard_sigmoid"])]


@pytest.mark.parametrize("ref_name,H,D,gate", GATE_CASES, ids=[f"{r}-H{H}-D{D}-{g}" for r, H, D, g in GATE_CASES])
def test_matches_hand_written_equations(ref_name, H, D, gate):
    shared = H == 1  # x (N, D) shared by the population at H = 1, (P, N, D) per member at H = 4
    cell = cell_for(ref_name, gate)
    detail = hasattr(cell, "step_detail")
    p = random_params(cell, H, D, P, seed=11, scale=1.5)
    s0 = random_states(cell, H, P, seed=12)
    xs = random_inputs(D, P, seed=13, shared=shared)
    ours = unroll(cell, p, s0, xs, detail=detail)
    ours = [step if detail else (step, {}) for step in ours]

    g = NP_GATE[gate]
    want_states, want_gates = [], []  # [m][t]
    for m in range(P):
        pm = {k: v[m].numpy() for k, v in p.items()}
        state = tuple(s[m].numpy() for s in s0)
        want_states.append([]), want_gates.append([])
        for t in range(T):
            state, gates = REFS[ref_name](pm, state, member_input(xs, t, m), g)
            want_states[m].append(state), want_gates[m].append(gates)

    for j in range(len(cell.state_names)):  # (T, P, N, H)
        got = torch.stack([step[0][j] for step in ours])
        want = np.array([[want_states[m][t][j] for m in range(P)] for t in range(T)])
        assert_close(got, torch.from_numpy(want), atol=1e-12, rtol=1e-12)
    names = set(want_gates[0][0])
    assert set(ours[0][1]) == names and (not names or tuple(ours[0][1]) == cell.gates)
    saturated = 0
    for k in names:
        got = torch.stack([step[1][k].expand(P, N, H) for step in ours])
        want = np.array([[want_gates[m][t][k] for m in range(P)] for t in range(T)])
        assert_close(got, torch.from_numpy(want), atol=1e-12, rtol=1e-12, msg=f"gate {k}")
        if k != ("z" if "c" in cell.state_names else "h"):  # a gate, not the candidate
            saturated += int(((want == 0.0) | (want == 1.0)).sum())
    if gate == "hard_sigmoid":
        assert saturated > 0, "the hard sigmoid's clipped region was never exercised"


def test_removed_gate_has_no_parameters_and_no_activation():
    for name, gone in [("lstm-i", "i"), ("lstm-o", "o"), ("lstm-f", "f"), ("lstm1997", "f")]:
        cell = get_cell(name)
        names = set(cell.param_shapes(2, 3))
        assert not {f"w_{gone}", f"u_{gone}", f"b_{gone}"} & names
        assert len(names) == 9 and gone not in cell.gates


def test_lstm_b_is_lstm_with_forget_bias_one():
    lstm, lstm_b = get_cell("lstm"), get_cell("lstm-b")
    H, D = 3, 2
    base, base_b = lstm.default_params(H, D), lstm_b.default_params(H, D)
    assert_close(base_b["b_f"], torch.ones(H, dtype=DT))
    assert all(torch.equal(base[k], base_b[k]) for k in base if k != "b_f")
    for scheme in ("torch", "keras"):
        p = lstm.init_params(scheme, H, D, 6, gen(5))
        pb = lstm_b.init_params(scheme, H, D, 6, gen(5))
        assert torch.equal(pb["b_f"], torch.ones(6, H, dtype=DT))
        assert all(torch.equal(p[k], pb[k]) for k in p if k != "b_f")  # the same draws otherwise
        # and the dynamics are lstm's at those parameters
        p["b_f"] = pb["b_f"]
        s0 = random_states(lstm, H, 6, seed=1)
        x = torch.randn(N, D, dtype=DT, generator=gen(2))
        for a, b in zip(lstm.step(p, s0, x), lstm_b.step(pb, s0, x)):
            assert torch.equal(a, b)


def test_lstm_hard_sigmoid_gates_are_clipped_lines():
    cell = get_cell("lstm", gate="hard_sigmoid")
    H = 1
    p = {k: torch.zeros((1, *s), dtype=DT) for k, s in cell.param_shapes(H, 1).items()}
    a = torch.linspace(-5, 5, 41, dtype=DT)
    for k in ("u_i", "u_f", "u_o", "u_z"):
        p[k][:] = 1.0
    h0, c0 = torch.zeros(1, 41, 1, dtype=DT), torch.full((1, 41, 1), 0.3, dtype=DT)
    _, gates = cell.step_detail(p, (h0, c0), a.unsqueeze(-1))
    want = torch.clamp(0.2 * a + 0.5, 0.0, 1.0)
    for k in "ifo":
        assert_close(gates[k][0, :, 0], want, atol=0, rtol=0)
    assert_close(gates["z"][0, :, 0], torch.tanh(a), atol=0, rtol=0)


def test_step_is_step_detail_state_and_gate_names():
    for name in GATED:
        cell = get_cell(name)
        H = D = 2
        p = random_params(cell, H, D, P, seed=4)
        s0 = random_states(cell, H, P, seed=5)
        x = torch.randn(N, D, dtype=DT, generator=gen(6))
        state, gates = cell.step_detail(p, s0, x)
        assert all(torch.equal(a, b) for a, b in zip(cell.step(p, s0, x), state))
        assert tuple(gates) == cell.gates and len(state) == len(cell.state_names)
        assert all(g.shape == (P, N, H) for g in gates.values())
        assert torch.equal(cell.output(state), state[0])


# ---------------------------------------------------------------------------------------------
# 4. initialisers


def test_keras_srnn_one_unit():
    p = get_cell("srnn").init_params("keras", 1, 1, 500, gen(0))
    assert torch.equal(p["w"].abs(), torch.ones(500, 1, 1, dtype=DT))  # orthogonal (1, 1): +-1
    assert (p["w"] > 0).any() and (p["w"] < 0).any()
    assert p["u"].abs().max() <= math.sqrt(3.0)  # glorot_uniform, fan_in = fan_out = 1
    assert p["u"].abs().max() > 0.9 * math.sqrt(3.0)
    assert torch.equal(p["b"], torch.zeros(500, 1, dtype=DT))


@pytest.mark.parametrize("name,order", [("lstm", "ifzo"), ("gru", "zrh"), ("mut3", "zrh")])
def test_keras_gated_kernel(name, order):
    H, D, Pk = 4, 1, 50
    cell = get_cell(name)
    p = cell.init_params("keras", H, D, Pk, gen(0))
    G = len(order)
    kernel = torch.cat([p[f"w_{g}"].transpose(-1, -2) for g in order], -1)  # Keras (H, G*H)
    assert kernel.shape == (Pk, H, G * H)
    assert_close(kernel @ kernel.transpose(-1, -2), torch.eye(H, dtype=DT).expand(Pk, H, H),
                 atol=1e-12, rtol=0)
    limit = math.sqrt(6.0 / (D + G * H))
    u = torch.stack([p[f"u_{g}"] for g in order])
    assert u.abs().max() <= limit and u.abs().max() > 0.8 * limit
    for k, s in cell.param_shapes(H, D).items():
        if k.startswith("b"):
            want = 1.0 if k == "b_f" else 0.0
            assert torch.equal(p[k], torch.full((Pk, *s), want, dtype=DT)), k


@pytest.mark.parametrize("name", GATED + ("srnn",))
def test_torch_init_limits(name):
    H, D, Pk = 4, 4, 200
    cell = get_cell(name)
    p = cell.init_params("torch", H, D, Pk, gen(0))
    k = 1.0 / math.sqrt(H)
    for decl in cell.decls(D):
        v = p[decl.name]
        assert v.shape == (Pk, *decl.shape(H, D))
        if name == "lstm-b" and decl.name == "b_f":
            assert torch.equal(v, torch.ones_like(v))
            continue
        merged = decl.role == "bias" and decl.torch_terms == 2
        limit = 2 * k if merged else k
        assert v.abs().max() <= limit, decl.name
        assert v.abs().max() > (1.2 if merged else 0.9) * k, decl.name  # the sum of two draws when merged
    if name == "gru":
        assert {d.name for d in cell.decls(D) if d.role == "bias" and d.torch_terms == 1} == {"b_h", "b_hn"}


@pytest.mark.parametrize("scheme", ["torch", "keras"])
@pytest.mark.parametrize("name", ["srnn", *GATED])
def test_init_reproducible_and_members_differ(name, scheme):
    cell = get_cell(name)
    H, D = 2, 2
    a = cell.init_params(scheme, H, D, 5, gen(7))
    b = cell.init_params(scheme, H, D, 5, gen(7))
    c = cell.init_params(scheme, H, D, 5, gen(8))
    assert list(a) == [d.name for d in cell.decls(D)]
    for k in a:
        assert torch.equal(a[k], b[k])
        if k.startswith(("w", "u")) or (scheme == "torch" and not (name == "lstm-b" and k == "b_f")):
            assert not torch.equal(a[k], c[k])
            assert all(not torch.equal(a[k][0], a[k][m]) for m in range(1, 5)), k


def test_default_params_base_point():
    for name in GATED:
        cell = get_cell(name)
        p = cell.default_params(3, 3)
        for d in cell.decls(3):
            if d.role == "recurrent":
                want = torch.eye(3, dtype=DT)  # 1 * I
            elif d.role == "input" or (name == "lstm-b" and d.name == "b_f"):
                want = torch.ones(d.shape(3, 3), dtype=DT)
            else:
                want = torch.zeros(d.shape(3, 3), dtype=DT)
            assert torch.equal(p[d.name], want), (name, d.name)


def test_gru_parameters_depend_on_form():
    assert set(get_cell("gru").param_shapes(2, 1)) == {
        "w_z", "w_r", "w_h", "u_z", "u_r", "u_h", "b_z", "b_r", "b_h", "b_hn"}
    assert set(get_cell("gru", form="reset_before").param_shapes(2, 1)) == {
        "w_z", "w_r", "w_h", "u_z", "u_r", "u_h", "b_z", "b_r", "b_h"}
    assert set(get_cell("gru", form="reset_before").param_shapes(2, 0)) == {
        "w_z", "w_r", "w_h", "b_z", "b_r", "b_h"}


def test_mut_parameters_only_where_the_equations_have_them():
    assert set(get_cell("mut1").param_shapes(2, 2)) == {"w_r", "w_h", "u_z", "u_r", "b_z", "b_r", "b_h"}
    assert set(get_cell("mut2").param_shapes(2, 2)) == {"w_z", "w_r", "w_h", "u_z", "u_h", "b_z", "b_r", "b_h"}
    assert set(get_cell("mut3").param_shapes(2, 1)) == {
        "w_z", "w_r", "w_h", "u_z", "u_r", "u_h", "b_z", "b_r", "b_h"}


# ---------------------------------------------------------------------------------------------
# 5. population broadcasting


@pytest.mark.parametrize("D", [0, 3])
@pytest.mark.parametrize("name", list(CELLS))
def test_population_equals_separate_runs(name, D):
    cell = get_cell(name)
    H, Pk = 3, 4
    p = random_params(cell, H, D, Pk, seed=21)
    s0 = random_states(cell, H, Pk, seed=22)
    for shared in (True, False):
        xs = random_inputs(D, Pk, seed=23, shared=shared)
        together = unroll(cell, p, s0, xs)
        alone = []
        for m in range(Pk):
            pm = {k: v[m:m + 1] for k, v in p.items()}
            xm = None if xs is None else (xs if shared else xs[:, m:m + 1])
            alone.append(unroll(cell, pm, tuple(s[m:m + 1] for s in s0), xm))
        for j in range(len(cell.state_names)):
            got = torch.stack([step[j] for step in together])  # (T, P, N, H)
            want = torch.stack([torch.cat([alone[m][t][j] for m in range(Pk)]) for t in range(T)])
            assert got.shape == (T, Pk, N, H)
            assert_close(got, want, atol=1e-13, rtol=1e-13)


@pytest.mark.parametrize("name", list(CELLS))
def test_one_member_params_broadcast_over_state_population(name):
    cell = get_cell(name)
    H = D = 2
    p = random_params(cell, H, D, 1, seed=31)
    s0 = random_states(cell, H, 4, seed=32)  # (4, N, H)
    x = torch.randn(4, N, D, dtype=DT, generator=gen(33))
    out = cell.step(p, s0, x)
    assert all(s.shape == (4, N, H) for s in out)
    for m in range(4):
        alone = cell.step(p, tuple(s[m:m + 1] for s in s0), x[m])
        for a, b in zip(out, alone):
            assert_close(a[m:m + 1], b, atol=1e-13, rtol=1e-13)
    # and the initial state (1, N, H) broadcasts against P = 4 parameters
    p4 = random_params(cell, H, D, 4, seed=34)
    out = cell.step(p4, cell.initial_state(p4, N, H, h0=0.5), x[0])
    assert all(s.shape == (4, N, H) for s in out)


def test_linear_matches_matmul_for_every_input_size():
    g = gen(0)
    for n_in in (1, 3):
        v = torch.randn(4, N, n_in, dtype=DT, generator=g)
        w = torch.randn(4, 2, n_in, dtype=DT, generator=g)
        want = torch.stack([v[m] @ w[m].T for m in range(4)])
        assert_close(linear(v, w), want, atol=1e-14, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# 6. bad inputs and the registry


def test_every_cell_is_registered_and_described():
    assert set(GATED) | {"srnn", "pascanu"} <= set(CELLS)  # fails if gated.py's import was swallowed
    for name, cls in CELLS.items():
        assert cls.name == name and cls.summary and "\n" not in cls.summary and cls.equations
        assert all(d.role != "input" for d in cls().decls(0))


@pytest.mark.parametrize("name", GATED)
def test_unknown_gate_activation(name):
    with pytest.raises(LandscapeError, match=r"'relu'.*sigmoid, hard_sigmoid"):
        get_cell(name, gate="relu")


def test_unknown_gru_form():
    with pytest.raises(LandscapeError, match=r"'reset_middle'.*torch, reset_before"):
        get_cell("gru", form="reset_middle")


@pytest.mark.parametrize("name", ["mut1", "mut2"])
def test_mut_needs_input_equal_hidden(name):
    cell = get_cell(name)
    for call in (lambda: cell.param_shapes(2, 1), lambda: cell.default_params(2, 3),
                 lambda: cell.init_params("torch", 1, 2, 1, gen(0))):
        with pytest.raises(LandscapeError, match=f"{name} needs input size = hidden size"):
            call()
    assert cell.param_shapes(2, 0) and cell.param_shapes(2, 2)
    get_cell("mut3").param_shapes(2, 1)  # MUT3 has no such restriction


def test_unknown_option():
    with pytest.raises(LandscapeError, match=r"no option 'foo'.*gate"):
        get_cell("lstm", foo=1)
    with pytest.raises(LandscapeError, match=r"no option 'gate'"):
        get_cell("srnn", gate="sigmoid")


def test_unknown_cell_lists_valid_names():
    with pytest.raises(LandscapeError, match="unknown cell 'lstmm'") as e:
        get_cell("lstmm")
    assert all(name in str(e.value) for name in ("srnn", "lstm", "lstm-b", "lstm1997", "gru", "mut1", "mut3"))


def test_unknown_initialiser():
    with pytest.raises(LandscapeError, match="'xavier'"):
        get_cell("lstm").init_params("xavier", 1, 1, 1, gen(0))


@pytest.mark.parametrize("name,order", [("lstm", "ifzo"), ("lstm-b", "ifzo"), ("lstm-i", "fzo"), ("lstm-o", "ifz"),
                                        ("lstm-f", "izo"), ("lstm1997", "izo"), ("gru", "zrh"), ("mut3", "zrh")])
def test_declared_in_keras_gate_order(name, order):
    """The Keras initialiser concatenates by declaration order: LSTM (i, f, c, o), GRU (z, r, h)."""
    decls = get_cell(name).decls(2)
    for role, prefix in (("recurrent", "w"), ("input", "u")):
        assert [d.name for d in decls if d.role == role] == [f"{prefix}_{g}" for g in order]
        assert [d.gate for d in decls if d.role == role] == list(order)
    assert [d.name for d in decls if d.role == "bias"][:len(order)] == [f"b_{g}" for g in order]


def test_keras_2_and_3_hard_sigmoids_are_their_own_definitions():
    """Keras 2: clip(0.2 x + 0.5, 0, 1) (gate=hard_sigmoid); Keras 3: relu6(x + 3) / 6
    (gate=hard_sigmoid_keras3; Keras 3's LSTM default is the logistic sigmoid)."""
    from landscape.cells.base import GATE_ACTIVATIONS

    x = torch.tensor([-10.0, -3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 3.0, 10.0], dtype=DT)
    k2 = GATE_ACTIVATIONS["hard_sigmoid"](x)
    k3 = GATE_ACTIVATIONS["hard_sigmoid_keras3"](x)
    assert torch.equal(k2, torch.tensor([0, 0, 0, 0.3, 0.5, 0.7, 1, 1, 1], dtype=DT))
    assert torch.equal(k3, torch.clamp(x + 3, 0, 6) / 6) and float(k3[3]) == pytest.approx(1 / 3)
    cell = get_cell("lstm", gate="hard_sigmoid_keras3")
    p = random_params(cell, 1, 1, P, 0)
    (h, c), gates = cell.step_detail(p, random_states(cell, 1, P, 1), torch.randn(N, 1, generator=gen(2), dtype=DT))
    assert ((gates["f"] >= 0) & (gates["f"] <= 1)).all()
