"""Population training against independent truths.

* Each member of a population, trained alone with torch.nn (nn.RNN / nn.LSTM / nn.GRU + nn.Linear)
  and torch.optim (Adam, SGD, clip_grad_norm_), follows the same parameter trajectory, step by
  step, to 1e-6 in float64 (sigmoid gates, torch Adam convention).
* The Keras 2 Adam update against its published formula, written out in numpy.
* Seeds give identical results run to run, and a model's numbers do not depend on its population.
* A killed run resumes per saved group; bad inputs raise one clear LandscapeError.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from landscape.tasks import get_task
from landscape.errors import LandscapeError
from landscape.train import Member, TrainSpec, train_population
from landscape.train.splits import epoch_orders, make_inputs, split_rows
from landscape.train.optim import PopulationOptimizer
from landscape.train.results import ResultStore, run_groups

# torch parameter -> our names stacked in torch's gate order; None = a frozen zero block
LAYOUT = {
    "srnn": (torch.nn.RNN, ["u"], ["w"], ["b"], [None]),
    "lstm": (torch.nn.LSTM, ["u_i", "u_f", "u_z", "u_o"], ["w_i", "w_f", "w_z", "w_o"],
             ["b_i", "b_f", "b_z", "b_o"], [None] * 4),
    "gru": (torch.nn.GRU, ["u_r", "u_z", "u_h"], ["w_r", "w_z", "w_h"], ["b_r", "b_z", "b_h"],
            [None, None, "b_hn"]),
}


def torch_reference(spec: TrainSpec, member: Member, start: dict[str, np.ndarray], H: int):
    """Train one model with torch.nn + torch.optim on the same batches; the parameters (our
    names) after every step: name -> (S + 1, *shape)."""
    cls, u_names, w_names, b_names, bhh_names = LAYOUT[spec.model.cell]
    task = get_task(spec.model.task)
    rnn = cls(1, H, batch_first=True).double()
    head = torch.nn.Linear(H, 2).double()
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in start.items()}
    zero = torch.zeros(H, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.cat([t[k] for k in u_names]))
        rnn.weight_hh_l0.copy_(torch.cat([t[k] for k in w_names]))
        rnn.bias_ih_l0.copy_(torch.cat([t[k] for k in b_names]))
        rnn.bias_hh_l0.copy_(torch.cat([zero if k is None else t[k] for k in bhh_names]))
        head.weight.copy_(t["dense_w"])
        head.bias.copy_(t["dense_b"])
    if all(k is None for k in bhh_names):
        rnn.bias_hh_l0.requires_grad_(False)  # our merged bias is bias_ih alone
    else:  # GRU: only the candidate's hidden bias (b_hn) trains
        keep = torch.cat([zero if k is None else torch.ones(H, dtype=torch.float64) for k in bhh_names])
        rnn.bias_hh_l0.register_hook(lambda g: g * keep)
    trainable = [p for p in [*rnn.parameters(), *head.parameters()] if p.requires_grad]
    if spec.optimizer == "adam":
        opt = torch.optim.Adam(trainable, lr=member.lr)
    else:
        opt = torch.optim.SGD(trainable, lr=member.lr)

    data, x = make_inputs(task, (member.T,), spec.n, member.data_seed)  # x (n, S, 1)
    y = data.targets[member.T].long()
    train = split_rows(member.protocol, data.targets[member.T], spec.n, spec.val_fraction, member.data_seed).train

    def snapshot():
        out = {}
        for names, full in ((u_names, rnn.weight_ih_l0), (w_names, rnn.weight_hh_l0),
                            (b_names, rnn.bias_ih_l0), (bhh_names, rnn.bias_hh_l0)):
            for g, k in enumerate(names):
                if k is not None:
                    out[k] = full[g * H:(g + 1) * H].detach().clone().numpy()
        out["dense_w"] = head.weight.detach().clone().numpy()
        out["dense_b"] = head.bias.detach().clone().numpy()
        return out

    path = [snapshot()]
    for epoch in range(1, spec.epochs + 1):
        order = train[epoch_orders(torch.tensor([member.seed]), epoch, train.numel())[0]]
        for s in range(0, order.numel(), spec.batch):
            rows = order[s:s + spec.batch]
            out, _ = rnn(x[rows, :member.T])
            loss = torch.nn.functional.cross_entropy(head(out[:, -1]), y[rows])
            opt.zero_grad()
            loss.backward()
            if member.clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, member.clip)
            opt.step()
            path.append(snapshot())
    return {k: np.stack([p[k] for p in path]) for k in path[0]}


CASES = [
    # cell, options, optimizer, H, members (T, lr, clip, protocol)
    ("srnn", (), "adam", 1, [(5, 1e-2, None, "keras-split"), (9, 3e-2, 0.05, "stratified")]),
    ("lstm", (), "sgd", 1, [(4, 0.5, None, "stratified"), (7, 0.2, 0.1, "keras-split")]),
    ("gru", (("form", "torch"),), "adam", 2, [(6, 2e-2, 0.05, "stratified"), (3, 1e-2, None, "keras-split")]),
]


@pytest.mark.parametrize("cell,options,optimizer,H,setup", CASES, ids=[c[0] for c in CASES])
def test_members_match_torch_nn(cell, options, optimizer, H, setup):
    spec = TrainSpec.of(cell=cell, cell_options=options, task="latch", hidden=H, n=40, epochs=2, batch=8,
                     optimizer=optimizer, readout="dense2", dtype="float64", record_steps=True)
    members = [Member(T=T, seed=11 + i, data_seed=3 + i % 2, lr=lr, clip=clip, init="torch", protocol=prot)
               for i, (T, lr, clip, prot) in enumerate(setup)]
    result = train_population(spec, members, device="cpu")
    assert result.step_params["dense_w"].shape[0] == 2 * 4 + 1  # 32 training rows / 8 per step x 2 epochs
    for p, m in enumerate(members):
        start = {k: v[0, p] for k, v in result.params.items()}
        ref = torch_reference(spec, m, start, H)
        for k, path in ref.items():
            np.testing.assert_allclose(result.step_params[k][:, p], path, atol=1e-6, rtol=0, err_msg=f"{cell} {k} member {p}")
        moved = max(np.abs(path[-1] - path[0]).max() for path in ref.values())
        assert moved > 1e-3  # the comparison is not trivially between two still points
    if any(m.clip for m in members):
        assert (result.step_metrics["clip_coef"] < 1).any()  # clipping was exercised


def test_keras_adam_formula():
    """Keras 2 Adam: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t m / (sqrt(v) + 1e-7)."""
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 2))
    lr = np.array([1e-3, 1e-2, 1e-1])
    params = {"x": torch.tensor(p0)}
    opt = PopulationOptimizer("adam-keras", params, torch.tensor(lr))
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t in range(1, 6):
        g = np.where(t % 2, 1e-6, 1.0) * (p - 1.0)  # tiny and large gradients: eps matters
        opt.step({"x": torch.tensor(g)})
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        lr_t = lr[:, None] * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        p = p - lr_t * m / (np.sqrt(v) + 1e-7)
        np.testing.assert_allclose(params["x"].numpy(), p, rtol=1e-12, atol=0)


def _small(**kw):
    base = dict(cell="srnn", task="latch", n=48, epochs=2, batch=8, dtype="float64")
    base.update(kw)
    return TrainSpec.of(**base)


def test_seeds_reproduce_and_population_independence():
    spec = _small(cell="lstm", cell_options=(("gate", "hard_sigmoid"),), optimizer="adam-keras", loss_clip=1e-7)
    members = [Member(T=T, seed=s, data_seed=T, protocol=prot) for T in (3, 6) for s in (0, 1)
               for prot in ("keras-split", "stratified")]
    a = train_population(spec, members, device="cpu")
    b = train_population(spec, members, device="cpu")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k])
    alone = train_population(spec, [members[5]], device="cpu")
    for k in a.params:
        np.testing.assert_allclose(alone.params[k][:, 0], a.params[k][:, 5], rtol=0, atol=1e-12)
    # keras-split validates on the last 20% of rows: latch puts label 0 there, so accuracy there
    # is the fraction of label-0 predictions; stratified validation holds both classes
    assert a.metrics["val_acc"].shape == (3, len(members))
    assert np.isnan(a.metrics["test_acc"][:, 0]).all() and np.isfinite(a.metrics["test_acc"][:, 1]).all()


def test_protocol_splits():
    labels = torch.cat([torch.ones(50), torch.zeros(50)])
    ks = split_rows("keras-split", labels, 100, 0.2, 0)
    assert ks.train.tolist() == list(range(80)) and ks.val.tolist() == list(range(80, 100))
    assert labels[ks.val].sum() == 0  # the question's flaw: one class only
    st = split_rows("stratified", labels, 100, 0.2, 0)
    assert st.train.numel() == 80 and labels[st.val].sum() == 10
    assert sorted(st.train.tolist() + st.val.tolist()) == list(range(100))
    assert st.test_seed is not None
    orders = epoch_orders(torch.tensor([1, 2]), 1, 80)
    assert sorted(orders[0].tolist()) == list(range(80)) and not torch.equal(orders[0], orders[1])


def test_trainable_subset_and_clipping():
    spec = _small(trainable=("w", "b"), readout="logistic", optimizer="sgd", record_steps=True)
    members = [Member(T=4, seed=0, lr=0.5, clip=1e-3, init="base"), Member(T=4, seed=0, lr=0.5, init="base")]
    r = train_population(spec, members, device="cpu")
    assert set(r.step_params) == {"w", "b"}
    np.testing.assert_array_equal(r.params["u"][-1], r.params["u"][0])  # fixed
    steps = np.abs(np.diff(np.concatenate([r.step_params["w"][:, 0, 0], r.step_params["b"][:, 0]], -1), axis=0))
    assert steps.max() <= 0.5 * 1e-3 * (1 + 1e-9)  # clipped: |lr g| <= lr c
    assert r.metrics["clipped_frac"][1:, 0].min() > 0 and r.metrics["clipped_frac"][1:, 1].max() == 0


@pytest.mark.parametrize("kw,member,match", [
    (dict(optimizer="adagrad"), {}, "unknown optimizer 'adagrad'"),
    (dict(batch=100), {}, "batch 100 is larger than the 38 training rows"),
    ({}, dict(T=0), "sequence lengths must be positive"),
    ({}, dict(T=-3), "sequence lengths must be positive"),
    ({}, dict(protocol="random"), "unknown protocol 'random'"),
    (dict(readout="sigmoid"), {}, "unknown readout 'sigmoid'"),
    ({}, dict(init="xavier"), "unknown initialiser 'xavier'"),
])
def test_bad_inputs(kw, member, match):
    with pytest.raises(LandscapeError, match=match) as info:
        train_population(_small(**kw), [Member(**dict(dict(T=3), **member))], device="cpu")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_resume_skips_saved_groups(tmp_path, monkeypatch, suffix):
    import landscape.train.results as store_mod

    out = tmp_path / f"run{suffix}"
    spec = _small(epochs=1)
    jobs = [(spec, [Member(T=T, seed=r, data_seed=T, group=f"srnn-T{T}", labels=(("repeat", r),))
                    for T in (2, 3) for r in range(2)])]
    calls = []
    real = store_mod.train_population

    def counting(spec, members, **kw):
        calls.append(sorted({m.group for m in members}))
        return real(spec, members, **kw)

    monkeypatch.setattr(store_mod, "train_population", counting)
    first = run_groups(jobs, out=out, device="cpu")
    assert calls == [["srnn-T2", "srnn-T3"]] and len(first) == 2 * 2 * 2
    # a killed run: only one group made it to disk
    store = ResultStore(out)
    if suffix == ".csv":
        rows = [r for r in store.rows() if r["group"] == "srnn-T2"]
        with open(out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:  # the file as it was before srnn-T3 was written, and that write's temporary file, half done
        from landscape.store.runs import read_run_file, write_run_file

        write_run_file(out, [g for g in read_run_file(out) if g.group == "srnn-T2"])
        out.with_name(f".{out.name}.new").write_bytes(b"\x89HDF\r\n\x1a\n half a file")
    calls.clear()
    second = run_groups(jobs, out=out, device="cpu")
    assert calls == [["srnn-T3"]]  # only the missing group is trained
    key = lambda r: (r["group"], r["repeat"], r["epoch"])
    a = {key(r): r["val_acc"] for r in first}
    b = {key(r): r["val_acc"] for r in second}
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-12 for k in a)
    calls.clear()
    run_groups(jobs, out=out, device="cpu")
    assert calls == []  # everything saved: nothing to do
    # a changed setting invalidates the saved groups
    run_groups([(_small(epochs=1, batch=4), jobs[0][1])], out=out, device="cpu")
    assert calls == [["srnn-T2", "srnn-T3"]]


def test_bad_output_suffix(tmp_path):
    with pytest.raises(LandscapeError, match="end the file name in .csv, .h5 or .hdf5"):
        ResultStore(tmp_path / "x.txt")


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("LANDSCAPE_SLOW"), reason="compiles for about a minute; "
                    "set LANDSCAPE_SLOW=1")
def test_compiled_unroll_matches_eager():
    spec = _small(cell="gru", cell_options=(("gate", "hard_sigmoid"), ("form", "reset_before")), n=64)
    members = [Member(T=T, seed=r, data_seed=T, protocol=p) for T in (3, 11) for r in range(2)
               for p in ("keras-split", "stratified")]
    eager = train_population(spec, members, device="cpu")
    fused = train_population(spec, members, device="cpu", compile=True)
    for k in eager.params:
        np.testing.assert_allclose(fused.params[k], eager.params[k], rtol=0, atol=1e-12)


def test_record_every_k_steps_matches_every_step_and_alone():
    """--record-steps K: the recorded steps are 0, K, 2K, ... and the last; each is the every-step
    record at that step (its loss and gradient norm those of the update leaving it), and member k
    of the population equals that member trained alone."""
    members = [Member(T=T, seed=s, data_seed=T, lr=1e-2, protocol="stratified") for T in (3, 5) for s in (0, 1)]
    every = train_population(_small(record_steps=True), members, device="cpu")
    K = 4
    spec = _small(record_steps=K)
    assert spec.record_steps == K and _small(record_steps=1).record_steps is True  # the flag's run keys stay
    kth = train_population(spec, members, device="cpu")
    S = every.step_params["w"].shape[0] - 1
    assert list(kth.steps) == list(range(0, S + 1, K)) + ([S] if S % K else [])
    for k in kth.step_params:
        np.testing.assert_array_equal(kth.step_params[k], every.step_params[k][kth.steps])
    for k in kth.step_metrics:
        np.testing.assert_array_equal(kth.step_metrics[k], every.step_metrics[k][kth.steps[:-1]])
    alone = train_population(spec, [members[3]], device="cpu")
    np.testing.assert_array_equal(alone.steps, kth.steps)
    for k in kth.step_params:
        np.testing.assert_allclose(alone.step_params[k][:, 0], kth.step_params[k][:, 3], rtol=0, atol=1e-12)
    for k in kth.step_metrics:
        np.testing.assert_allclose(alone.step_metrics[k][:, 0], kth.step_metrics[k][:, 3], rtol=0, atol=1e-12)


NAN_CELL = '''
from dataclasses import dataclass
import torch
from landscape.cells import Cell, ParamDecl, bias, drive, linear

@dataclass(frozen=True)
class Blowup(Cell):
    """h' = sqrt(w h + u x + b - 1): NaN from the first step (h0 = 0), for every member."""
    name = "blowup"
    summary = "a cell that diverges at once"
    equations = "h' = sqrt(w h + u x + b - 1)"
    params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("u", "input", default=0.0),
              ParamDecl("b", "bias", default=0.0))
    default_axes = ("w:-1:1:5", "b:-1:1:5")
    block_input = ("w", "b")

    def step(self, p, state, x):
        (h,) = state
        return (torch.sqrt(linear(h, p["w"]) + drive(x, p, "u") + bias(p["b"]) - 1.0),)
'''


def test_diverged_members_are_counted_and_said(tmp_path):
    """A member whose training loss went NaN counts as a failure and the summary says how many diverged
    (the loss mean is over the others): before, a diverged population printed only a NaN mean."""
    from click.testing import CliRunner

    from landscape.cli import main

    cell = tmp_path / "blowup.py"
    cell.write_text(NAN_CELL)
    r = CliRunner().invoke(main, ["train", "--cell", f"{cell}:Blowup", "--task", "latch", "--T", "5", "--repeats", "3",
                                  "--n", "40", "--epochs", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "T = 5: 3 of 3 models diverged (final training loss NaN or infinite)" in r.output
    rows = [line.split() for line in r.output.splitlines() if line.strip().startswith("5 ")]
    assert rows and rows[0][4] == "0.00"  # success
    r = CliRunner().invoke(main, ["train", "--cell", "srnn", "--task", "latch", "--T", "5", "--repeats", "2",
                                  "--n", "40", "--epochs", "2", "--quiet"])
    assert r.exit_code == 0 and "diverged" not in r.output, r.output
