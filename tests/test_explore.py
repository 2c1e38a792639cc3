"""landscape explore (landscape.explorer): the state's round trip through a URL, the compute functions
against the library computed independently (the surface against landscape.grid, the gradient norms
against gradients.grad_norms_t's other scheme, a path's first step against one optimiser step by
hand, every step against the engine's loss), the exported figure, and the app in a REAL headless
Chromium (tests/browser.py) with no network but this server: it loads, the T slider changes the
picture, a click starts the paths, a URL restores the state."""
from __future__ import annotations

import base64
import math
import threading

import numpy as np
import pytest
import torch

import landscape
from landscape.errors import LandscapeError
from landscape.explorer import compute, export
from landscape.explorer.state import ExploreState, default_axes
from tests import browser

SMALL = dict(x="w:4.5:5.5:21", y="b:-2.9:-1.9:17", T="1,10,50")  # pascanu on target, E_T of Pascanu et al.


# ---------------------------------------------------------------------------------------------
# the state and its URL


def test_the_default_state_is_an_empty_query_and_every_field_survives_the_round_trip():
    assert ExploreState().to_query() == ""
    s = ExploreState(cell="lstm", task="latch", hidden=2, sets=("w[0,1]=0.5", "b_i=1"), x="b_f:-4:6:31",
                     y="w_z:-4:6:31", T="50,1,10", t=10, n=64, seed=3, scale="log", point=(0.25, -1.5),
                     lr=0.1, adam_lr=0.02, clip=2.0, steps=7, optimizers=("sgd", "adam"))
    back = ExploreState.from_query("?" + s.to_query())
    assert back == s
    assert back.T == "1,10,50" and back.Ts == (1, 10, 50)  # sorted on the way in


def test_a_bad_url_is_one_clear_error():
    with pytest.raises(LandscapeError, match="unknown explorer setting 'colour'"):
        ExploreState.from_query("colour=red")
    with pytest.raises(LandscapeError, match="malformed explorer setting point"):
        ExploreState.from_query("point=1")
    with pytest.raises(LandscapeError, match="unknown optimizer 'rmsprop'"):
        ExploreState.from_query("optimizers=sgd,rmsprop")
    assert ExploreState.from_query("T=1,10&t=7").t == 10  # a t not on the list: the largest


def test_a_new_cell_gets_its_own_axes_at_101_points():
    assert default_axes("lstm") == ("b_f:-4:6:101", "w_z:-4:6:101")
    assert default_axes("pascanu") == (ExploreState.x, ExploreState.y)


# ---------------------------------------------------------------------------------------------
# compute, against the library


def test_the_surface_is_landscape_grids_and_a_revisit_comes_from_memory(tmp_path):
    s = ExploreState(**SMALL)
    view = compute.surface(s)
    truth = landscape.grid(cell="pascanu", task="target", T=(1, 10, 50), x="w:4.5:5.5:21", y="b:-2.9:-1.9:17",
                           n=1, out=tmp_path / "truth.h5", force=True)
    np.testing.assert_array_equal(view.surface.loss, truth.surface.loss)
    assert compute.surface(s.with_(t=10, point=(5.0, -2.5))).seconds == 0.0  # same surface: held


def test_fold_curves_only_where_the_cell_has_a_one_unit_map():
    assert [c.kind for c in compute.curves(compute.surface(ExploreState(**SMALL)).surface)] == ["folds", "basin"]
    lstm = ExploreState(cell="lstm", task="latch", x="b_f:-4:6:5", y="w_z:-4:6:5", T="5", n=8)
    assert compute.curves(compute.surface(lstm).surface) == ()


def _problem(s: ExploreState):
    r = landscape.resolve(s.grid_spec())
    data = r.problem.task.make(r.Ts, r.n, r.spec.seed).to(torch.float64, torch.device("cpu"))
    return r, data


def _params(r, xs, ys):
    from landscape.engine import chunk_params

    return chunk_params(r.problem.base, r.refs, (torch.as_tensor(xs, dtype=torch.float64),
                                                 torch.as_tensor(ys, dtype=torch.float64)),
                        torch.float64, torch.device("cpu"))


@pytest.mark.parametrize("cell,task,at", [("pascanu", "target", (4.8, -2.15)), ("srnn", "latch", (1.2, 0.3))])
def test_the_gradient_norms_at_a_point_are_the_other_schemes(cell, task, at):
    from landscape.gradients import grad_norms_t

    s = ExploreState(cell=cell, task=task, x=default_axes(cell)[0], y=default_axes(cell)[1], T="5,20", t=20,
                     n=None if task == "target" else 16)
    a = compute.point_analysis(s, *at)
    r, data = _problem(s)
    params = _params(r, [at[0]], [at[1]])
    truth = grad_norms_t(r.problem, params, data, 20, method="autograd")  # state -> (1, steps)
    assert set(a.norms) == set(truth)
    for k in truth:
        np.testing.assert_allclose(a.norms[k], truth[k][0].numpy(), rtol=1e-9, atol=1e-300)
    loss = landscape.engine.unroll_losses(r.problem, params, data, (20,))[0, 0].item()
    assert a.loss == pytest.approx(loss, rel=1e-12)
    assert len(a.factor) == len(a.log10_product) == 20


def test_a_paths_first_step_is_one_optimiser_step_by_hand_and_every_step_is_on_the_surface():
    from landscape import engine

    s = ExploreState(**SMALL, lr=0.645, adam_lr=0.05, clip=0.05, steps=6)
    x0, y0 = 4.8, -2.15
    paths = compute.paths(s, x0, y0)
    r, data = _problem(s)
    # the gradient by central differences of the engine's loss (no autograd)
    h = 1e-6
    pts = _params(r, [x0 + h, x0 - h, x0, x0], [y0, y0, y0 + h, y0 - h])
    L = engine.unroll_losses(r.problem, pts, data, (50,))[0].numpy()
    g = np.array([L[0] - L[1], L[2] - L[3]]) / (2 * h)
    norm = math.hypot(*g)
    expect = {"sgd": (x0, y0) - s.lr * g,
              "sgd-clip": (x0, y0) - s.lr * min(1.0, s.clip / (norm + 1e-6)) * g,
              "adam": (x0, y0) - s.adam_lr * g / (np.abs(g) + 1e-8)}  # Adam's first step: lr * sign
    for name, p in paths.items():
        np.testing.assert_allclose([p.x[1], p.y[1]], expect[name], rtol=1e-6, err_msg=name)
        assert p.grad_norm[0] == pytest.approx(norm, rel=1e-6)
        on_surface = engine.unroll_losses(r.problem, _params(r, p.x, p.y), data, (50,))[0].numpy()
        np.testing.assert_allclose(p.loss, on_surface, rtol=1e-10)
    assert norm > s.clip  # so the first clipped step differs from the plain one
    assert paths["sgd"].clip_coef[0] == 1.0 and paths["sgd-clip"].clip_coef[0] < 1.0


def test_the_export_is_a_png_or_pdf_of_the_view():
    s = ExploreState(**SMALL, point=(4.8, -2.15), steps=3)
    view = compute.surface(s)
    fig = export.view_figure(s, view, compute.curves(view.surface), compute.point_analysis(s, 4.8, -2.15),
                             compute.paths(s, 4.8, -2.15))
    assert export.figure_bytes(fig, "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert export.figure_bytes(fig, "pdf")[:5] == b"%PDF-"
    assert export.file_stem(s.with_(cell="examples/cells/mgu.py:MGU")) == "MGU-target-T50"
    with pytest.raises(LandscapeError, match="choose from: png, pdf"):
        export.figure_bytes(fig, "gif")


def test_the_command_is_registered_and_a_bad_point_is_one_line():
    from click.testing import CliRunner

    from landscape.cli import main

    assert "--no-browser" in CliRunner().invoke(main, ["explore", "--help"]).output
    r = CliRunner().invoke(main, ["explore", "--point", "4.8", "--no-browser"])
    assert r.exit_code == 2 and "malformed --point '4.8'" in r.output


# ---------------------------------------------------------------------------------------------
# the app in a real browser

@pytest.fixture(scope="module")
def server():
    pytest.importorskip("dash", reason="dash is not installed (the optional extra 'explore')")
    from werkzeug.serving import make_server

    from landscape.explorer.app import make_app

    app = make_app(ExploreState(**SMALL, steps=5))
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()


@pytest.fixture(scope="module")
def chrome():
    if browser.BROWSER is None:
        pytest.skip(browser.NO_BROWSER)
    c = browser.Chrome(browser.BROWSER, offline=False)  # only this machine's loopback answers
    yield c
    c.close()


GRAPH = "document.querySelector('#surface .js-plotly-plot')"


def _open(chrome, url, ready="true"):
    chrome.goto(url, f"(function(){{var g = {GRAPH}; return !!(g && g.data && g.data.length && {ready});}})()",
                timeout=120)


def _title(chrome) -> str:
    return chrome.js(f"{GRAPH}.layout.title.text")


def _array(chrome, expression) -> np.ndarray:
    """An array of the figure as the page holds it, also in plotly's typed-array form {dtype, bdata, shape}."""
    a = chrome.js(expression)
    if isinstance(a, dict):
        shape = tuple(int(v) for v in str(a.get("shape", -1)).split(","))
        return np.frombuffer(base64.b64decode(a["bdata"]), a["dtype"]).reshape(shape)
    return np.array(a, float)


def _z(chrome) -> np.ndarray:
    """The heat map's z: (ny, nx)."""
    return _array(chrome, f"{GRAPH}.data[0].z")


def _names(chrome) -> list:
    return chrome.js(f"Array.from({GRAPH}.data).map(function(d){{return d.name;}})")


@pytest.mark.slow
def test_the_page_loads_with_nothing_from_the_network(chrome, server):
    _open(chrome, server)
    assert _title(chrome) == "pascanu on target, T = 50"
    assert chrome.requests and all(u.startswith((server, "data:")) for u in chrome.requests), \
        [u for u in chrome.requests if not u.startswith(server)][:3]


@pytest.mark.slow
def test_moving_the_T_slider_changes_the_picture(chrome, server):
    _open(chrome, server)
    before_z, before_png = _z(chrome), chrome.screenshot()
    x, y = chrome.js("""(function(){
        var root = document.getElementById('ctl-t').closest('div').parentElement;
        var mark = Array.from(root.querySelectorAll('*')).filter(function(e){
            return e.children.length === 0 && e.textContent.trim() === '10';})[0];
        mark.scrollIntoView({block: 'center'});
        var r = mark.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2];})()""")
    chrome.click(x, y)
    chrome.wait(f"{GRAPH}.layout.title.text === 'pascanu on target, T = 10'", timeout=60)
    chrome.wait("location.search.indexOf('t=10') >= 0", timeout=10)
    after_z = _z(chrome)
    truth = compute.surface(ExploreState(**SMALL)).surface.loss  # (nT, nx, ny); plotly holds z[y][x]
    np.testing.assert_allclose(before_z, truth[2].T, rtol=1e-12)
    np.testing.assert_allclose(after_z, truth[1].T, rtol=1e-12)
    assert np.abs(chrome.screenshot().astype(int) - before_png).sum(-1).astype(bool).mean() > 0.02


@pytest.mark.slow
def test_a_click_on_the_surface_starts_the_paths_and_goes_into_the_url(chrome, server):
    _open(chrome, server)
    x, y = chrome.js(f"""(function(){{
        var gd = {GRAPH}, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        return [r.left + xa._offset + xa.l2p(4.8), r.top + ya._offset + ya.l2p(-2.15)];}})()""")
    chrome.click(x, y)
    chrome.wait(f"{GRAPH}.data.some(function(d){{return d.name === 'Adam';}})", timeout=60)
    assert {"SGD", "SGD, clipped", "Adam", "clicked point"} <= set(_names(chrome))
    sgd = _array(chrome, f"{GRAPH}.data.filter(function(d){{return d.name === 'SGD';}})[0].x")
    state = ExploreState.from_query(chrome.js("location.search"))
    assert state.point is not None and sgd[0] == pytest.approx(state.point[0])
    assert state.point == pytest.approx((4.8, -2.15), abs=0.05)  # the grid cell clicked
    assert len(sgd) == 6  # 5 steps


@pytest.mark.slow
def test_a_url_restores_the_state_and_a_reload_keeps_it(chrome, server):
    s = ExploreState(**SMALL, t=10, scale="log", point=(4.7, -2.3), lr=0.2, steps=3, optimizers=("sgd", "adam"))
    _open(chrome, server + "?" + s.to_query(), f"{GRAPH}.data.length >= 5")
    for _ in range(2):
        assert _title(chrome) == "pascanu on target, T = 10"
        assert {"SGD", "Adam"} <= set(_names(chrome)) and "SGD, clipped" not in _names(chrome)
        assert chrome.js("document.getElementById('ctl-lr').value") == "0.2"
        assert chrome.js(f"{GRAPH}.data[0].colorbar.title.text") == "log10 loss"
        assert ExploreState.from_query(chrome.js("location.search")) == s
        chrome.page("Page.reload")
        chrome.wait(f"(function(){{var g = {GRAPH}; return !!(g && g.data && g.data.length >= 4);}})()", timeout=120)


@pytest.mark.slow  # a fresh kernel, the app's server in it, and the page in Chromium: about 15 s
def test_landscape_explore_runs_inline_in_a_jupyter_kernel_and_its_frame_serves_the_same_app(chrome, tmp_path,
                                                                                             monkeypatch):
    """landscape.explore() in a real kernel (nbclient, ipykernel): the cell displays an iframe onto the app's
    server, which the kernel keeps running; the page behind the iframe is the explorer at the state given."""
    pytest.importorskip("dash", reason="dash is not installed (the optional extra 'explore')")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    import re
    import socket

    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))  # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fields = ", ".join(f"{k}={v!r}" for k, v in SMALL.items())
    cell = nbformat.v4.new_code_cell(f"import landscape\napp = landscape.explore({fields}, t=10, port={port})")
    nb = nbformat.v4.new_notebook(cells=[cell])
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3")
    with client.setup_kernel():  # the kernel, and with it the app's server, lives until the block ends
        client.execute_cell(cell, 0)
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
        html = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
        assert len(html) == 1 and "<iframe" in html[0]
        src = re.search(r'src="([^"]+)"', html[0]).group(1)
        assert src == f"http://127.0.0.1:{port}/"
        _open(chrome, src)
        assert _title(chrome) == "pascanu on target, T = 10"
        truth = compute.surface(ExploreState(**SMALL)).surface.loss  # (nT, nx, ny); plotly holds z[y][x]
        np.testing.assert_allclose(_z(chrome), truth[1].T, rtol=1e-12)
