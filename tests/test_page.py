"""landscape.figures.interactive: the page's data against numpy and the closed-form curves, and the
page itself in a REAL headless Chromium (driven over the DevTools protocol through a pipe, with the
network cut off): it renders from file://, asks for nothing from the network, the slider changes T
and the picture, hover reads the stored values, pixels put the peak of a NON-SQUARE grid where the
data have it (contour and 3-D), and linked panels follow one slider.

The browser tests skip, saying why, when no Chromium is on the PATH (apt-get install chromium)."""
from __future__ import annotations

import base64
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps

import landscape
from landscape import dynamics
from landscape.errors import LandscapeError
from landscape.store import Surface
from tests import browser

plotly = pytest.importorskip("plotly", reason="plotly is not installed (the optional extra 'page')")
from landscape.figures import interactive as P  # noqa: E402

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

NX, NY = 9, 15
I0, J0 = 6, 3  # the peak: x[6], y[3]
TS = (1, 4, 16)


def bump(Ts=TS, names=("w", "b"), cell="pascanu", inf_at=(), nan_at=(), path="bump.h5", grads=True) -> Surface:
    """loss[k] = (k + 1) * exp(-u^2 - v^2) peaked at (x[I0], y[J0]) of a 9 x 15 grid, its exact
    gradient, optional +inf / NaN points (k, i, j)."""
    x, y = np.linspace(4.5, 5.5, NX), np.linspace(-2.9, -1.9, NY)
    X, Y = np.meshgrid(x, y, indexing="ij")  # (NX, NY)
    sx, sy = 0.3, 0.25
    u, v = (X - x[I0]) / sx, (Y - y[J0]) / sy
    loss = np.arange(1, len(Ts) + 1, dtype=float)[:, None, None] * np.exp(-u ** 2 - v ** 2)  # (nT, NX, NY)
    grad = np.stack([loss * (-2 * u / sx), loss * (-2 * v / sy)], -1)  # (nT, NX, NY, 2)
    for k, i, j in inf_at:
        loss[k, i, j] = np.inf
    for k, i, j in nan_at:
        loss[k, i, j] = np.nan
    return Surface(Path(path), loss, np.asarray(Ts), names[0], x, names[1], y,
                   {"cell": cell, "task": "target", "task_params": {"x0": 0.5}, "hidden": 1},
                   {"complete": True}, np.ones(1, bool), {"grad": grad} if grads else {})


# ---------------------------------------------------------------------------------------------
# the page's data, without a browser


def test_page_data_counts_masked_points_and_packs_the_stored_values():
    s = bump(inf_at=[(2, 0, 0), (2, 1, 0)], nan_at=[(2, 8, 14)])
    s.loss[0, 0, :] = -1e-3  # 15 negative values at T = 1: fine on a linear scale, masked on log
    data = P.compute_page([s])
    (panel,) = data.panels
    assert data.T == TS and data.start == len(TS) - 1 and not data.left_out  # opens at the largest T
    assert panel.notes == ("", "", "2 points +inf, 1 NaN (not computed), masked")
    assert panel.total_note == "2 points +inf, 1 NaN (not computed), masked"
    finite = s.loss[np.isfinite(s.loss)]
    assert data.crange == (finite.min(), finite.max())
    log = P.compute_page([s], log=True)
    assert log.panels[0].notes[0] == "15 points <= 0 on the log scale, masked"
    assert log.crange[0] == s.loss[np.isfinite(s.loss) & (s.loss > 0)].min()
    # the packed loss is the stored loss, "ij" row-major, +inf and NaN kept
    fig, index = P.page_figure(data)
    payload = P.page_payload(data, index)
    p = payload["panels"][0]
    assert p["dtype"] == "f4" and (p["nx"], p["ny"]) == (NX, NY)
    for k in range(len(TS)):
        got = np.frombuffer(base64.b64decode(p["loss"][k]), "<f4").reshape(NX, NY)
        np.testing.assert_array_equal(got, s.loss[k].astype(np.float32))
        g = np.frombuffer(base64.b64decode(p["gnorm"][k]), "<f4").reshape(NX, NY)
        np.testing.assert_allclose(g, np.hypot(*np.moveaxis(s.fields["grad"][k], -1, 0)), rtol=1e-6)
    assert payload["panels"][0]["notes"][2] == "T = 16: 2 points +inf, 1 NaN (not computed), masked"
    # one colour axis for all traces, fixed to the shared range
    assert fig.layout.coloraxis.cmin == finite.min() and fig.layout.coloraxis.cmax == finite.max()
    assert {t.coloraxis for t in fig.data if t.type in ("surface", "contour")} == {"coloraxis"}


def test_values_float32_cannot_hold_are_packed_as_float64():
    for value in (1e-40, 1e39):
        s = bump()
        s.loss[1, 2, 3] = value
        data = P.compute_page([s])
        p = P.page_payload(data, P.page_figure(data)[1])["panels"][0]
        assert p["dtype"] == "f8"
        got = np.frombuffer(base64.b64decode(p["loss"][1]), "<f8").reshape(NX, NY)
        assert got[2, 3] == value


def test_common_lengths_of_several_files_and_their_errors():
    a, b = bump(path="a.h5"), bump(Ts=(1, 4, 8, 16), path="b.h5")
    data = P.compute_page([a, b])
    assert data.T == (1, 4, 16)
    assert data.left_out == "showing the lengths all files have; not shown: b.h5 T = 8"
    with pytest.raises(LandscapeError, match="no length T in common"):
        P.compute_page([a, bump(Ts=(2, 3, 5), path="c.h5")])
    with pytest.raises(LandscapeError, match=r"T = 8 not in every file"):
        P.compute_page([a, b], Ts=[8])
    with pytest.raises(LandscapeError, match="start T = 5"):
        P.compute_page([a], start=5)


def test_fold_and_basin_curves_are_the_closed_forms_in_either_orientation():
    s = bump()
    folds, basin = P.dynamics_curves(s)
    w, b = folds.x, folds.y
    f = dynamics.fold_points("pascanu", w)
    ok = np.isfinite(b)
    assert ok.sum() > 100 and np.all(np.isclose(b[ok], f.b1[ok]) | np.isclose(b[ok], f.b2[ok]))
    assert np.nanmin(b) >= s.y.min() and np.nanmax(b) <= s.y.max()  # cut to the grid
    expected = dynamics.basin_boundary("pascanu", 0.5, basin.x).b  # x0 from the target task's spec
    np.testing.assert_allclose(basin.y[np.isfinite(basin.y)], expected[np.isfinite(basin.y)])
    assert basin.name == "basin boundary, x0 = 0.5"
    t = bump(names=("b", "w"))  # b on the horizontal axis: x holds b, y holds w
    t.x, t.y = np.linspace(-2.9, -1.9, NX), np.linspace(4.5, 5.5, NY)
    folds_t = P.dynamics_curves(t, basin=None)[0]
    f = dynamics.fold_points("pascanu", folds_t.y)
    ok = np.isfinite(folds_t.x)
    assert np.all(np.isclose(folds_t.x[ok], f.b1[ok]) | np.isclose(folds_t.x[ok], f.b2[ok]))
    assert P.dynamics_curves(bump(cell="lstm")) == ()
    assert len(P.dynamics_curves(s, basin=0.2)) == 2 and P.dynamics_curves(s, basin=0.2)[1].name.endswith("0.2")


def with_dynamics(s: Surface, edge: int = 4) -> Surface:
    """``s`` with the dynamics fields of ``grid --dynamics``, made by hand: one fixed point left of
    x[edge], three from it on (so the one bifurcation line is the vertical half way between
    x[edge - 1] and x[edge]); lambda_T[k] = (k + 1) (x - 5) + (y + 2.4), -inf at (k, i, j) = (0, 0, 0)."""
    cycles = np.zeros((NX, NY, 8))
    cycles[:, :, 0] = np.where(np.arange(NX) < edge, 1, 3)[:, None]
    stable = np.minimum(cycles, 2)
    X, Y = np.meshgrid(s.x, s.y, indexing="ij")  # (NX, NY)
    lam = np.stack([(k + 1) * (X - 5.0) + (Y + 2.4) for k in range(len(s.T))])  # (nT, NX, NY)
    lam[0, 0, 0] = -np.inf
    s.fields.update(n_cycles=cycles, n_stable_cycles=stable, lyapunov=lam)
    return s


def test_bifurcation_trace_is_the_line_where_the_counts_change():
    s = with_dynamics(bump())
    (curve,) = P.bifurcation_curve(s)
    ok = np.isfinite(curve.x)
    np.testing.assert_allclose(curve.x[ok], 0.5 * (s.x[3] + s.x[4]))  # the vertical between x[3] and x[4]
    dy = s.y[1] - s.y[0]  # the faces of the grid cells: half a step past the end points
    assert (np.nanmin(curve.y), np.nanmax(curve.y)) == pytest.approx((s.y[0] - dy / 2, s.y[-1] + dy / 2))
    fig, _ = P.page_figure(P.compute_page([s]))
    names = [t.name for t in fig.data]
    assert names.count("bifurcation lines") == 2  # on the contour and on the floor of the 3-D box
    assert P.bifurcation_curve(bump()) == ()


def test_lyapunov_layer_carries_lambda_T_per_T_on_levels_through_zero(tmp_path):
    s = with_dynamics(bump())
    data = P.compute_page([s], lyapunov=True)
    np.testing.assert_array_equal(data.panels[0].lyapunov, s.fields["lyapunov"])
    fig, index = P.page_figure(data)
    layer = fig.data[index[0]["lyapunov"]]
    assert layer.type == "contour" and layer.name == "λ_T" and layer.contours.coloring == "lines"
    assert layer.showlegend and layer.xaxis == fig.data[index[0]["contour"]].xaxis  # on the contour, togglable
    c = layer.contours
    lam = s.fields["lyapunov"][np.isfinite(s.fields["lyapunov"])]
    assert c.start <= lam.min() + c.size and c.end >= lam.max() - c.size  # covers every T's range
    assert (0 - c.start) / c.size == pytest.approx(round((0 - c.start) / c.size))  # 0 is a level
    p = P.page_payload(data, index)["panels"][0]
    for k in range(len(TS)):  # the packed lambda_T is the stored one, -inf kept
        got = np.frombuffer(base64.b64decode(p["lyap"][k]), "<" + p["ldtype"]).reshape(NX, NY)
        np.testing.assert_array_equal(got, s.fields["lyapunov"][k].astype(got.dtype))
    plain = P.compute_page([s])  # without the overlay: no layer, nothing packed
    fig, index = P.page_figure(plain)
    assert index[0]["lyapunov"] is None and "λ_T" not in [t.name for t in fig.data]
    assert "lyap" not in P.page_payload(plain, index)["panels"][0]
    with pytest.raises(LandscapeError, match="--dynamics"):
        P.compute_page([bump()], lyapunov=True)
    from landscape.figures import kinds

    with pytest.raises(LandscapeError, match="--dynamics"):
        kinds.write("interactive", [bump()], tmp_path / "p.html", overlay=["lyapunov"])
    text = kinds.write("interactive", [s], tmp_path / "p.html", overlay=["lyapunov"]).read_text(encoding="utf-8")
    assert '"lyap":' in text


def test_the_html_is_self_contained(tmp_path):
    path = P.write_page([bump()], tmp_path / "page.html", title="a <bump> & co")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=", text, re.I)  # nothing fetched
    assert f"plotly.js v{plotly.__version__}" in text or "plotly.js v" in text  # plotly.js inside
    assert "<title>a &lt;bump&gt; &amp; co</title>" in text
    assert path.stat().st_size > 1_000_000
    with pytest.raises(LandscapeError, match=r"end .* in \.html"):
        P.write_page([bump()], tmp_path / "page.png")


def test_without_plotly_the_page_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(LandscapeError, match=r"pip install 'rnn-landscape\[page\]'"):
        P.write_page([bump()], tmp_path / "p.html")


# ---------------------------------------------------------------------------------------------
# a real browser over the DevTools protocol (tests/browser.py)


BROWSER = browser.BROWSER
needs_browser = pytest.mark.skipif(BROWSER is None, reason=browser.NO_BROWSER)
ALLOWED_SCHEMES = ("file:", "data:", "about:", "blob:")


class Chrome(browser.Chrome):
    def open(self, path: Path, fragment: str = ""):
        self.goto(path.resolve().as_uri() + fragment,
                  "(function(){var g=document.getElementById('landscape-plot');"
                  "return g && g.getAttribute('data-ready')==='1';})()")


@pytest.fixture(scope="module")
def chrome():
    if BROWSER is None:
        pytest.skip(browser.NO_BROWSER)
    c = Chrome(BROWSER)
    yield c
    c.close()


def slider_to(chrome: Chrome, T: int):
    """Click the slider where its label for T is (a user's click on the rail), wait for the page."""
    x, y = chrome.js(f"""(function(){{
        document.querySelector('.slider-grip-rect').scrollIntoView({{block: 'center'}});
        var lab = Array.from(document.querySelectorAll('.slider-labels .slider-label')).filter(function(e){{
            return e.textContent.trim() === '{T}';}})[0].getBoundingClientRect();
        var grip = document.querySelector('.slider-grip-rect').getBoundingClientRect();
        return [lab.left + lab.width / 2, grip.top + grip.height / 2];}})()""")
    chrome.click(x, y)
    chrome.wait(f"document.getElementById('landscape-plot').getAttribute('data-t') === '{T}'", timeout=20)


def data_to_pixel(chrome: Chrome, trace: int, x: float, y: float) -> tuple[float, float]:
    """Viewport pixel of data point (x, y) on the 2-D axes of trace ``trace``."""
    return tuple(chrome.js(f"""(function(){{
        var gd = document.getElementById('landscape-plot'), t = gd._fullData[{trace}];
        var xa = gd._fullLayout[t.xaxis.replace('x', 'xaxis')], ya = gd._fullLayout[t.yaxis.replace('y', 'yaxis')];
        var r = gd.getBoundingClientRect();
        return [r.left + xa._offset + xa.l2p({x}), r.top + ya._offset + ya.l2p({y})];}})()"""))


HOVER = "(function(){var h = document.querySelector('.hovertext'); return h ? h.textContent : '';})()"


def hover_text(chrome: Chrome, x: float, y: float) -> str:
    """The hover label at viewport pixel (x, y), after the mouse has left the plot (no old label)."""
    chrome.move(2, 2)
    chrome.wait(f"!{HOVER}", timeout=10)
    chrome.move(x - 3, y - 3)  # a move onto the point, so that plotly sees the mouse arrive
    chrome.move(x, y)
    return chrome.wait(HOVER, timeout=10)


def colour_value(colour, lo, hi) -> float:
    """Invert viridis on [lo, hi]."""
    values = np.linspace(lo, hi, 4001)
    table = 255 * colormaps["viridis"]((values - lo) / (hi - lo))[:, :3]
    return float(values[np.argmin(((table - colour) ** 2).sum(-1))])


def patch(image, x, y, r=2):
    row, col = int(round(y)), int(round(x))
    return np.median(image[row - r:row + r + 1, col - r:col + r + 1].reshape(-1, 3).astype(float), axis=0)


def real_surface(tmp_path) -> Path:
    out = tmp_path / "pascanu.h5"
    landscape.grid(landscape.GridSpec.of(cell="pascanu", task="target", T=(1, 5, 10, 50),
                                      x=landscape.Axis.parse("w:4.5:5.5:41"),
                                      y=landscape.Axis.parse("b:-2.9:-1.9:31"), grads=True),
                   out=out, force=True)
    return out


@needs_browser
def test_page_renders_offline_and_the_slider_changes_T_and_the_picture(chrome, tmp_path):
    h5 = real_surface(tmp_path)
    page = P.write_page([h5], tmp_path / "pascanu.html", start=1)  # (the default is the largest T)
    chrome.open(page)
    assert chrome.requests and all(u.startswith(ALLOWED_SCHEMES) for u in chrome.requests), chrome.requests
    assert chrome.js("!!document.querySelector('#landscape-plot.js-plotly-plot .main-svg')")
    assert chrome.js("document.querySelectorAll('#landscape-plot canvas').length") >= 1  # the WebGL scene
    assert chrome.js("document.getElementById('landscape-plot').getAttribute('data-t')") == "1"
    before = chrome.screenshot()
    assert before.std() > 20 and len(np.unique(before.reshape(-1, 3), axis=0)) > 500  # not blank
    slider_to(chrome, 50)
    after = chrome.screenshot()
    assert before.shape == after.shape
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 5  # the picture changed
    assert "T = 50" in chrome.js("document.querySelector('.gtitle').textContent")
    # the traces now hold the T = 50 loss, z[j][i] = loss[i, j]
    s = landscape.load(h5)
    for trace in (0, 1):
        z = np.array(chrome.js(f"document.getElementById('landscape-plot').data[{trace}].z"), dtype=float)
        np.testing.assert_allclose(z, s.loss[3].T, rtol=1e-6)
    slider_to(chrome, 5)
    z = np.array(chrome.js("document.getElementById('landscape-plot').data[1].z"), dtype=float)
    np.testing.assert_allclose(z, s.loss[1].T, rtol=1e-6)
    assert all(u.startswith(ALLOWED_SCHEMES) for u in chrome.requests), chrome.requests


@needs_browser
def test_hover_shows_the_parameters_the_loss_and_the_gradient_norm(chrome, tmp_path):
    s = bump(inf_at=[(2, 2, 12)])
    page = P.write_page([s], tmp_path / "bump.html", start=16)
    chrome.open(page)
    text = hover_text(chrome, *data_to_pixel(chrome, 1, s.x[I0], s.y[J0]))
    loss = float(re.search(r"loss = ([-+0-9.e]+)", text).group(1))
    gnorm = float(re.search(r"‖∇L‖ = ([-+0-9.e]+)", text).group(1))
    assert loss == pytest.approx(s.loss[2, I0, J0], rel=1e-3)
    assert gnorm == pytest.approx(np.hypot(*s.fields["grad"][2, I0, J0]), rel=1e-2, abs=1e-6)
    assert f"w = {s.x[I0]:.4g}" in text and f"b = {s.y[J0]:.4g}" in text and "T = 16" in text
    i, j = 2, 11
    text = hover_text(chrome, *data_to_pixel(chrome, 1, s.x[i], s.y[j]))
    assert float(re.search(r"loss = ([-+0-9.e]+)", text).group(1)) == pytest.approx(s.loss[2, i, j], rel=1e-3)
    text = hover_text(chrome, *data_to_pixel(chrome, 1, s.x[2], s.y[12]))
    assert "+inf (masked)" in text
    # the masked point is counted on the page, for this T
    note = chrome.js("Array.from(document.querySelectorAll('.annotation-text')).map(e => e.textContent).join('|')")
    assert "T = 16: 1 point +inf, masked" in note
    assert "not drawn (never clipped): T = 16: 1 point +inf, masked." in chrome.js("document.body.textContent")
    # the 3-D view hovers too (customdata on the surface): the middle of the box is on the surface
    x, y = chrome.js("""(function(){var d = document.getElementById('landscape-plot')._fullLayout.scene._scene
        .container.getBoundingClientRect(); return [d.left + d.width / 2, d.top + d.height * 0.55];})()""")
    text = hover_text(chrome, x, y)
    w, b = (float(re.search(rf"{name} = ([-+0-9.e]+)", text).group(1)) for name in ("w", "b"))
    i, j = int(np.argmin(np.abs(s.x - w))), int(np.argmin(np.abs(s.y - b)))
    assert (w, b) == pytest.approx((s.x[i], s.y[j]), abs=1e-3)
    assert float(re.search(r"loss = ([-+0-9.e]+)", text).group(1)) == pytest.approx(s.loss[2, i, j], rel=1e-3)
    assert "‖∇L‖ = " in text and text.startswith("T = 16")


@needs_browser
def test_pixels_put_the_peak_where_the_data_have_it(chrome, tmp_path):
    s = bump(grads=False)
    page = P.write_page([s], tmp_path / "bump.html", start=16, folds=False, basin=None)
    chrome.open(page)
    lo, hi = P.compute_page([s]).crange
    image = chrome.screenshot()

    def value(i, j):
        return colour_value(patch(image, *data_to_pixel(chrome, 1, s.x[i], s.y[j])), lo, hi)

    peak = s.loss[2, I0, J0]
    assert value(I0, J0) == pytest.approx(peak, rel=0.05)
    si, sj = round(J0 * (NX - 1) / (NY - 1)), round(I0 * (NY - 1) / (NX - 1))  # the transposed place
    assert value(si, sj) < 0.5 * peak and value(1, NY - 2) < 0.1 * peak
    slider_to(chrome, 1)  # one colour scale for all T: at T = 1 the peak reads a third of the top
    image = chrome.screenshot()
    assert value(I0, J0) == pytest.approx(s.loss[0, I0, J0], rel=0.05)
    slider_to(chrome, 16)
    # the 3-D view from straight above (orthographic, y up, flat lighting): the brightest pixel of
    # the surface sits at the peak's fraction of the box
    chrome.js("""Plotly.restyle('landscape-plot', {'lighting.ambient': 1, 'lighting.diffuse': 0,
        'lighting.specular': 0, 'lighting.fresnel': 0, 'lighting.roughness': 1}, [0])
        .then(() => Plotly.relayout('landscape-plot', {'scene.camera.eye': {x: 0.001, y: 0.001, z: 2.2},
        'scene.camera.up': {x: 0, y: 1, z: 0}, 'scene.camera.projection.type': 'orthographic'}))
        .then(() => true)""")
    time.sleep(0.3)
    image = chrome.screenshot().astype(float)
    left, top, width, height = chrome.js("""(function(){var r = document.getElementById('landscape-plot')
        ._fullLayout.scene._scene.container.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];})()""")
    box = image[int(top):int(top + height):2, int(left):int(left + width):2]  # (h, w, 3) the scene, every 2nd px
    table = 255 * colormaps["viridis"](np.linspace(0, 1, 128))[:, :3]  # (128, 3)
    dist = ((box[:, :, None, :] - table[None, None]) ** 2).sum(-1)  # (h, w, 128)
    on = dist.min(-1) < 60  # pixels of the surface (exact viridis under flat lighting)
    rows, cols = np.nonzero(on)
    r0, r1 = np.percentile(rows, [0.5, 99.5])
    c0, c1 = np.percentile(cols, [0.5, 99.5])
    level = np.where(on, dist.argmin(-1), -1)
    br, bc = np.unravel_index(np.argmax(level), level.shape)
    fx, fy = (bc - c0) / (c1 - c0), (r1 - br) / (r1 - r0)  # y up
    assert fx == pytest.approx((s.x[I0] - s.x[0]) / np.ptp(s.x), abs=0.08)
    assert fy == pytest.approx((s.y[J0] - s.y[0]) / np.ptp(s.y), abs=0.08)


@needs_browser
def test_linked_panels_follow_one_slider_on_one_colour_scale(chrome, tmp_path):
    a = bump(path="a.h5")
    b = bump(Ts=(1, 4, 8, 16), path="b.h5")
    b.loss *= 0.5
    page = P.write_page([a, b], tmp_path / "two.html")
    chrome.open(page)
    labels = chrome.js("Array.from(document.querySelectorAll('.slider-labels .slider-label'))"
                       ".map(e => e.textContent.trim())")
    assert labels == ["1", "4", "16"]
    assert "not shown: b.h5 T = 8" in chrome.js("document.body.textContent")
    slider_to(chrome, 16)
    gd = "document.getElementById('landscape-plot')"
    traces = chrome.js(f"{gd}.data.map((t, n) => [n, t.type]).filter(p => p[1] === 'contour').map(p => p[0])")
    assert len(traces) == 2
    for trace, s, k in zip(traces, (a, b), (2, 3)):
        z = np.array(chrome.js(f"{gd}.data[{trace}].z"), dtype=float)
        np.testing.assert_allclose(z, s.loss[k].T, rtol=1e-6)
    cmin, cmax = chrome.js(f"[{gd}._fullLayout.coloraxis.cmin, {gd}._fullLayout.coloraxis.cmax]")
    assert (cmin, cmax) == pytest.approx((min(a.loss.min(), b.loss.min()), max(a.loss.max(), b.loss.max())))
    # play steps through every T from the first
    slider_to(chrome, 1)
    x, y = chrome.js("""(function(){var b = Array.from(document.querySelectorAll('.updatemenu-button')).filter(
        e => e.textContent.indexOf('play') >= 0)[0]; b.scrollIntoView({block: 'center'});
        var r = b.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2];})()""")
    chrome.click(x, y)
    seen = set()
    end = time.monotonic() + 15
    while time.monotonic() < end and "16" not in seen:
        seen.add(chrome.js(f"{gd}.getAttribute('data-t')"))
        time.sleep(0.05)
    assert seen == {"1", "4", "16"}
    # one camera for both 3-D views
    chrome.js(f"Plotly.relayout({gd}, {{'scene.camera': {{eye: {{x: 2, y: 0.1, z: 0.3}}}}}}).then(() => true)")
    chrome.wait(f"{gd}._fullLayout.scene2.camera.eye.x === 2", timeout=10)


@needs_browser
def test_lyapunov_layer_follows_the_slider_and_the_hover(chrome, tmp_path):
    s = with_dynamics(bump())
    page = P.write_page([s], tmp_path / "lyap.html", start=1, lyapunov=True)
    chrome.open(page)
    gd = "document.getElementById('landscape-plot')"
    layer = chrome.js(f"{gd}.data.map(t => t.name).indexOf('λ_T')")
    assert layer > 1
    for T, k in ((1, 0), (16, 2), (4, 1)):
        if T != 1:
            slider_to(chrome, T)
        z = np.array([[np.nan if v is None else v for v in row] for row in chrome.js(f"{gd}.data[{layer}].z")])
        want = s.fields["lyapunov"][k].T  # z[j][i] = lambda_T[k, i, j]; -inf is a gap
        np.testing.assert_allclose(z, np.where(np.isfinite(want), want, np.nan), rtol=1e-6)
    text = hover_text(chrome, *data_to_pixel(chrome, 1, s.x[I0], s.y[J0]))
    assert float(re.search(r"λ_T = ([-+0-9.e]+)", text).group(1)) == pytest.approx(
        s.fields["lyapunov"][1, I0, J0], rel=1e-2)
    # the legend hides and shows the layer
    assert chrome.js(f"{gd}._fullData[{layer}].visible") is True
    chrome.js(f"Plotly.restyle({gd}, {{visible: 'legendonly'}}, [{layer}]).then(() => true)")
    assert chrome.js(f"{gd}._fullData[{layer}].visible") == "legendonly"


@needs_browser
def test_screenshot_page_writes_a_frame_for_a_gallery(tmp_path):
    page = P.write_page([bump()], tmp_path / "bump.html")
    png = P.screenshot_page(page, tmp_path / "bump.png", T=16)
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (720, 1400, 3) and image.std() > 20
    with pytest.raises(LandscapeError, match="no such page"):
        P.screenshot_page(tmp_path / "none.html", tmp_path / "x.png")
