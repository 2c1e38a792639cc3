"""landscape.figures and `landscape plot` on synthetic surfaces whose answer is known: a bump with
its maximum at a chosen grid point of a NON-SQUARE grid, so that a transposed or flipped drawing
puts the maximum somewhere else. Checked through the artists' own data and by reading pixels back."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib import colormaps

from landscape import dynamics
from landscape import figures as F
from landscape.errors import LandscapeError
from landscape.figures import kinds
from landscape.store import Surface, SurfaceContents, SurfaceWriter

NX, NY = 7, 13
I0, J0 = 5, 3  # the maximum of the bump: x[5], y[3]
TS = (1, 5, 20)


def bump_surface(nx=NX, ny=NY, i0=I0, j0=J0, Ts=TS, names=("w", "b"), cell="pascanu", x_range=(4.5, 5.5),
                 y_range=(-2.9, -1.9)) -> Surface:
    """loss[k] = (k + 1) exp(-((x - x0)/sx)^2 - ((y - y0)/sy)^2) with its fields, exactly."""
    x, y = np.linspace(*x_range, nx), np.linspace(*y_range, ny)
    X, Y = np.meshgrid(x, y, indexing="ij")  # (nx, ny)
    sx, sy = 0.3 * np.ptp(x), 0.25 * np.ptp(y)
    u, v = (X - x[i0]) / sx, (Y - y[j0]) / sy
    base = np.exp(-u ** 2 - v ** 2)
    scale = np.arange(1, len(Ts) + 1, dtype=float)[:, None, None]
    loss = scale * base  # (nT, nx, ny)
    grad = np.stack([loss * (-2 * u / sx), loss * (-2 * v / sy)], -1)  # (nT, nx, ny, 2)
    eig = np.stack([-loss, loss - 0.3 * scale], -1)  # ascending where loss > 0.15 scale... kept simple
    eig = np.sort(eig, axis=-1)
    T_max = max(Ts)
    t = np.arange(1, T_max + 1)
    gnt = base[..., None] * np.exp(-0.2 * (T_max - t))  # (nx, ny, T_max): max at (i0, j0, T_max)
    return Surface(Path("synthetic.h5"), loss, np.asarray(Ts), names[0], x, names[1], y,
                   {"cell": cell, "task": "target"}, {"complete": True}, np.ones(1, bool),
                   {"grad": grad, "hessian_eigvals": eig, "grad_norm_t": gnt})


def render(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255.0  # (H, W, 3)


def probe(fig, ax, x, y, image=None) -> np.ndarray:
    """The RGB colour drawn at data point (x, y) of a 2-D axes (median of a 3 x 3 patch)."""
    image = render(fig) if image is None else image
    px, py = ax.transData.transform((x, y))
    row, col = int(round(image.shape[0] - py)), int(round(px))
    return np.median(image[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3), axis=0)


def value_of(colour, cmap: str, norm) -> float:
    """Invert a colour map: the value whose colour is nearest to ``colour``."""
    values = np.linspace(norm.vmin, norm.vmax, 2001)
    table = colormaps[cmap](norm(values))[:, :3]
    return float(values[np.argmin(((table - colour) ** 2).sum(-1))])


def labels(fig) -> set[str]:
    out = set()
    for ax in fig.axes:
        out |= {ax.get_xlabel(), ax.get_ylabel(), ax.get_title()}
        if hasattr(ax, "get_zlabel"):
            out.add(ax.get_zlabel())
    return out


def notes(fig) -> str:
    return " | ".join(t.get_text() for ax in fig.axes for t in ax.texts)


# ---------------------------------------------------------------------------------------------
# every kind draws something, labelled by the parameter names


@pytest.mark.parametrize("kind", tuple(k for k, v in kinds.KINDS.items() if v.render is not None))
def test_every_kind_draws_a_labelled_non_blank_figure(kind):
    """Each kind draws the labels it declares (PlotKind.labels) with the surface's own parameter
    names, here ones no kind could have hard-coded, written as mathematics: w_hh[0,1] as w with
    subscript hh and its index, b_z as b with subscript z."""
    k = kinds.KINDS[kind]
    names = ("w_hh[0,1]", "b_z")
    shown = {"x": "$w_{hh}[0,1]$", "y": "$b_{z}$"}  # mathtext, as written by hand
    s = bump_surface(names=names)
    surfaces = [s, bump_surface(names=names, i0=1, j0=10)] if k.several else [s]
    with F.use_style("paper"):
        fig = kinds.draw(kind, surfaces)
        image = render(fig)
    assert image.std() > 0.05, f"{kind} looks blank"
    text = labels(fig)
    assert k.labels, f"{kind} declares no labels"
    assert not any(name in t for t in text for name in names), (kind, text)  # no plain name is left
    for template in k.labels:
        label = template.format(**shown)
        if label.endswith("= "):  # a fixed parameter named in a title
            assert any(label in t for t in text), (label, text)
        else:
            assert label in text, (label, text)


def test_style_widths_and_embedded_fonts(tmp_path):
    with F.use_style("paper"):
        import matplotlib as mpl

        assert mpl.rcParams["pdf.fonttype"] == 42 and mpl.rcParams["svg.fonttype"] == "none"
        for width, inches in (("single", 3.25), ("double", 6.75)):
            assert F.new_figure(width).get_size_inches()[0] == pytest.approx(inches)
        ax = F.plot_contour(bump_surface())
        pdf = F.save_figure(ax.figure, tmp_path / "f.pdf")
        svg = F.save_figure(ax.figure, tmp_path / "f.svg")
    assert b"/FontFile2" in pdf.read_bytes()  # TrueType (Type 42) embedded, not Type 3
    assert "<text" in svg.read_text()  # text kept as text
    with pytest.raises(LandscapeError, match="talk"):
        F.use_style("poster").__enter__()
    with pytest.raises(LandscapeError, match="single, double"):
        F.new_figure("triple")


# ---------------------------------------------------------------------------------------------
# orientation: the maximum is drawn where the data have it


def test_contour_puts_the_maximum_where_the_data_have_it():
    s = bump_surface()
    with F.use_style("paper"):
        ax = F.plot_contour(s, T=20, lines=False)
        cs = next(c for c in ax.collections if hasattr(c, "levels"))
        image = render(ax.figure)
        top = value_of(probe(ax.figure, ax, s.x[I0], s.y[J0], image), "viridis", cs.norm)
        # the transposed place (x index J0 scaled, y index I0 scaled) and the far corner are low
        far = value_of(probe(ax.figure, ax, s.x[1], s.y[-2], image), "viridis", cs.norm)
        swapped = value_of(probe(ax.figure, ax, s.x[round(J0 * (NX - 1) / (NY - 1))],
                                 s.y[round(I0 * (NY - 1) / (NX - 1))], image), "viridis", cs.norm)
    peak = s.loss[-1].max()
    assert top > 0.9 * peak
    assert far < 0.2 * peak and swapped < 0.5 * peak
    assert cs.norm.vmax == pytest.approx(peak)


def test_wireframe_and_surface_vertices_follow_ij():
    s = bump_surface()
    with F.use_style("paper"):
        ax = F.plot_wireframe(s, T=20, lines=40)
        segs = np.concatenate([np.asarray(seg) for seg in ax.collections[0]._segments3d])  # (m, 3)
        x, y, z = segs[np.argmax(segs[:, 2])]
        assert (x, y) == pytest.approx((s.x[I0], s.y[J0]))
        ax = F.plot_surface(s, T=20, resolution=100)
        ax.figure.canvas.draw()
        poly = ax.collections[0]
        faces = getattr(poly, "_faces", None)  # (m, 4, 3) on matplotlib >= 3.9
        verts = faces.reshape(-1, 3) if faces is not None else np.asarray(poly._vec)[:3].T  # (m, 3)
        x, y, z = verts[np.nanargmax(verts[:, 2])]
        assert (x, y) == pytest.approx((s.x[I0], s.y[J0]))
        assert z == pytest.approx(s.loss[-1].max())


def test_panels_share_one_scale_and_each_puts_the_maximum_right():
    s = bump_surface()
    with F.use_style("paper"):
        fig = F.plot_panels(s, ncols=2)
        sets = [c for ax in fig.axes for c in ax.collections if hasattr(c, "levels")]
        filled = [c for c in sets if c.filled]
        assert len(filled) == len(TS)
        assert len({(c.norm.vmin, c.norm.vmax) for c in filled}) == 1  # one colour scale
        assert filled[0].norm.vmax == pytest.approx(s.loss.max())
        image = render(fig)
        for ax, c, k in zip(fig.axes, filled, range(len(TS))):
            v = value_of(probe(fig, ax, s.x[I0], s.y[J0], image), "viridis", c.norm)
            assert v == pytest.approx(s.loss[k].max(), abs=0.12 * s.loss.max())


def test_3d_panels_share_the_z_limits():
    s = bump_surface()
    with F.use_style("paper"):
        fig = F.plot_panels(s, kind="wireframe", Ts=(1, 20))
        assert render(fig).std() > 0.05
    zlims = {ax.get_zlim() for ax in fig.axes}
    assert len(zlims) == 1 and next(iter(zlims)) == pytest.approx((s.loss.min(), s.loss.max()))
    assert [ax.get_title() for ax in fig.axes] == ["T = 1", "T = 20"]


def test_slices_run_along_the_free_axis():
    s = bump_surface()
    with F.use_style("paper"):
        ax = F.plot_slices(s, at=f"w={s.x[I0]}")
        for line, k in zip(ax.get_lines(), range(len(TS))):
            xs, ys = line.get_data()
            assert np.array_equal(xs, s.y) and np.allclose(ys, s.loss[k, I0, :])
        ax = F.plot_slices(s, at={"b": float(s.y[J0]) + 0.01})  # nearest grid value
        xs, ys = ax.get_lines()[-1].get_data()
        assert np.array_equal(xs, s.x) and np.allclose(ys, s.loss[-1, :, J0])
        assert xs[np.argmax(ys)] == s.x[I0]
    with pytest.raises(LandscapeError, match="outside the grid"):
        F.plot_slices(s, at="w=9")
    with pytest.raises(LandscapeError, match="not an axis"):
        F.plot_slices(s, at="u=1")


def test_compare_shares_the_scale_and_keeps_each_surface_in_place():
    a, b = bump_surface(), bump_surface(i0=1, j0=10)
    with F.use_style("paper"):
        fig = F.plot_compare([a, b], Ts=(5, 20))
        image = render(fig)
        filled = [[c for c in ax.collections if getattr(c, "filled", False)][0] for ax in fig.axes[:4]]
        assert len({(c.norm.vmin, c.norm.vmax) for c in filled}) == 1
        for ax, c, s, i, j in zip(fig.axes[:2], filled, (a, b), (I0, 1), (J0, 10)):  # row T = 5
            here = value_of(probe(fig, ax, s.x[i], s.y[j], image), "viridis", c.norm)
            assert here == pytest.approx(s.loss[1].max(), abs=0.15 * a.loss.max())
    with pytest.raises(LandscapeError, match="T=7"):
        F.plot_compare([a, b], Ts=(7,))


def test_gradnorm_curves_and_heatmap_follow_the_data():
    s = bump_surface()
    g = s.fields["grad_norm_t"]
    with F.use_style("paper"):
        ax = F.plot_gradnorm(s, points=[(s.x[I0], s.y[J0]), (s.x[0], s.y[0])])
        assert ax.get_yscale() == "log"
        (t1, y1), (_, y2) = (line.get_data() for line in ax.get_lines())
        assert np.array_equal(t1, np.arange(1, max(TS) + 1)) and np.allclose(y1, g[I0, J0])
        assert np.allclose(y2, g[0, 0])
        ax = F.plot_gradnorm_map(s, at=f"w={s.x[I0]}")
        mesh = ax.collections[0]
        C = np.asarray(mesh.get_array()).reshape(NY, max(TS))  # rows: the parameter (vertical)
        assert np.allclose(C, g[I0])
        coords = mesh.get_coordinates()  # (NY + 1, T + 1, 2) cell corners
        r, c = np.unravel_index(np.argmax(C), C.shape)
        centre = coords[r:r + 2, c:c + 2].reshape(-1, 2).mean(0)
        assert tuple(centre) == pytest.approx((max(TS), s.y[J0]))


def test_quiver_arrows_point_downhill():
    s = bump_surface()
    with F.use_style("paper"):
        ax = F.plot_quiver(s, T=20, arrows=50)
    q = next(c for c in ax.collections if hasattr(c, "U"))
    xy = q.get_offsets()
    left = np.nonzero(np.isclose(xy[:, 0], s.x[I0 - 2]) & np.isclose(xy[:, 1], s.y[J0]))[0][0]
    above = np.nonzero(np.isclose(xy[:, 0], s.x[I0]) & np.isclose(xy[:, 1], s.y[J0 + 3]))[0][0]
    assert q.U[left] < 0 and abs(q.V[left]) < 1e-9 * abs(q.U[left]) + 1e-12  # away from the peak, along x
    assert q.V[above] > 0 and abs(q.U[above]) < 1e-9 * abs(q.V[above]) + 1e-12


def test_curvature_panels_show_each_eigenvalue_in_place():
    s = bump_surface()
    with F.use_style("paper"):
        fig = F.plot_curvature(s, T=20)
        image = render(fig)
        filled = [[c for c in ax.collections if getattr(c, "filled", False)][0] for ax in fig.axes[:2]]
        assert filled[0].norm is filled[1].norm or filled[0].norm.vmax == filled[1].norm.vmax
        lam_min = value_of(probe(fig, fig.axes[0], s.x[I0], s.y[J0], image), "RdBu_r", filled[0].norm)
        lam_max = value_of(probe(fig, fig.axes[1], s.x[I0], s.y[J0], image), "RdBu_r", filled[1].norm)
    eig = s.fields["hessian_eigvals"][-1, I0, J0]
    assert lam_min < 0 < lam_max
    assert lam_min == pytest.approx(eig[0], rel=0.35) and lam_max == pytest.approx(eig[1], rel=0.35)


# ---------------------------------------------------------------------------------------------
# +-inf and NaN: masked, never clipped, and said


def test_infinities_are_masked_and_counted():
    s = bump_surface()
    s.loss[-1, 0:2, 8:13] = np.inf  # 10 points +inf, far from the peak
    s.loss[-1, 6, 0] = -np.inf
    s.loss[-1, 3, 6] = np.nan
    with F.use_style("paper"):
        ax = F.plot_contour(s, T=20, lines=False)
        cs = next(c for c in ax.collections if getattr(c, "filled", False))
        assert "10 points +inf, 1 -inf, 1 NaN (not computed), masked" in notes(ax.figure)
        finite = s.loss[-1][np.isfinite(s.loss[-1])]
        assert np.isfinite(cs.norm.vmax) and cs.norm.vmax == pytest.approx(finite.max())
        colour = probe(ax.figure, ax, 0.5 * (s.x[0] + s.x[1]), s.y[10])  # inside the +inf block
        assert np.ptp(colour) < 0.05 and colour.mean() > 0.6  # grey background, no colour-map colour
        for draw in (F.plot_surface, F.plot_wireframe):
            ax3 = draw(s, T=20)
            render(ax3.figure)
            assert "10 points +inf" in notes(ax3.figure)
        ax = F.plot_slices(s, at=f"w={s.x[0]}")
        assert "5 points +inf" in notes(ax.figure)
        fig = F.plot_panels(s)
        assert "10 points +inf" in notes(fig)


def test_log_scale_masks_non_positive_values_and_says_so():
    s = bump_surface()
    s.loss[:, 0, 0] = 0.0
    with F.use_style("paper"):
        ax = F.plot_contour(s, T=20, scale="log")
        cs = next(c for c in ax.collections if getattr(c, "filled", False))
    assert "1 point <= 0 on the log scale, masked" in notes(ax.figure)
    assert cs.norm.vmin > 0 and cs.norm.vmin == pytest.approx(s.loss[-1][s.loss[-1] > 0].min())
    note = F.mask(np.array([1.0, np.inf, -np.inf, np.nan])).note()
    assert note == "1 point +inf, 1 -inf, 1 NaN (not computed), masked"
    assert F.mask(np.ones(3)).note() == ""


# ---------------------------------------------------------------------------------------------
# overlays


def test_fold_and_basin_overlays_match_the_dynamics_and_keep_the_limits():
    s = bump_surface()
    with F.use_style("paper"):
        ax = F.plot_contour(s)
        lims = ax.get_xlim(), ax.get_ylim()
        (folds,) = F.overlay_folds(ax, "pascanu")
        (basin,) = F.overlay_basin(ax, "pascanu", 0.5)
        assert (ax.get_xlim(), ax.get_ylim()) == lims
    w, b = folds.get_data()
    f = dynamics.fold_points("pascanu", w)
    assert np.all(np.isclose(b, f.b1) | np.isclose(b, f.b2))
    w, b = basin.get_data()
    assert np.allclose(b, 0.5 - w / (1 + np.exp(-0.5)))  # b = x0 - w sigmoid(x0)
    # (b, w) orientation: b on the horizontal axis
    t = bump_surface(names=("b", "w"), x_range=(-2.9, -1.9), y_range=(4.5, 5.5))
    with F.use_style("paper"):
        ax = F.plot_contour(t)
        (folds,) = F.overlay_folds(ax, "pascanu")
    b, w = folds.get_data()
    f = dynamics.fold_points("pascanu", w)
    assert np.all(np.isclose(b, f.b1) | np.isclose(b, f.b2))
    with pytest.raises(LandscapeError, match=r"\(w, b\) plane"):
        F.overlay_folds(ax, "pascanu", axes=("b_f", "w_z"))
    with pytest.raises(LandscapeError, match="srnn, pascanu"):
        F.overlay_folds(ax, "lstm")


def with_dynamics(s: Surface, edge: int = 3) -> Surface:
    """``s`` with the fields of ``grid --dynamics`` made by hand: one fixed point left of x[edge]
    and three from it on, so the only bifurcation line is the vertical half way between x[edge - 1]
    and x[edge]; lambda_T[k] = (k + 1) (x - 5), 0 along x = 5."""
    cycles = np.zeros((len(s.x), len(s.y), 8))
    cycles[:, :, 0] = np.where(np.arange(len(s.x)) < edge, 1, 3)[:, None]
    X = np.meshgrid(s.x, s.y, indexing="ij")[0]  # (nx, ny)
    lam = np.stack([(k + 1) * (X - 5.0) for k in range(len(s.T))])  # (nT, nx, ny)
    s.fields.update(n_cycles=cycles, n_stable_cycles=np.minimum(cycles, 2), lyapunov=lam)
    return s


def _bifurcation_segments(ax) -> np.ndarray:
    """The (L, 2, 2 or 3) segments of the bifurcation lines drawn on ax (2-D or 3-D)."""
    from matplotlib.collections import LineCollection

    (lines,) = [c for c in ax.collections if type(c).__name__ in ("LineCollection", "Line3DCollection")
                and isinstance(c, LineCollection) and np.allclose(c.get_color(), (1.0, 0.0, 1.0, 1.0))]  # magenta
    return np.asarray(lines._segments3d if ax.name == "3d" else lines.get_segments())


@pytest.mark.parametrize("name", [k for k, kind in kinds.KINDS.items() if kind.render and kind.dynamics])
def test_every_kind_over_the_grid_plane_draws_the_bifurcation_lines_and_lambda_T(name):
    s = with_dynamics(bump_surface())
    surfaces = [s, s] if name == "compare" else [s]
    mid = 0.5 * (s.x[2] + s.x[3])
    with F.use_style("paper"):
        fig = kinds.draw(name, surfaces, overlay=["bifurcations", "lyapunov"])
        drawn = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        for ax in drawn:
            seg = _bifurcation_segments(ax)
            np.testing.assert_allclose(seg[..., 0], mid)  # the vertical between x[2] and x[3]
            if ax.name == "3d":  # on the floor of the box
                np.testing.assert_allclose(seg[..., 2], min(ax.get_zlim()))
    if fig.axes[0].name == "3d":
        # lambda_T colours the surface: a colorbar on the symmetric diverging scale
        (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert bar.get_ylabel() == f"lambda_T at T = {TS[-1]}"
        assert bar.get_ylim() == pytest.approx((-len(TS) * 0.5, len(TS) * 0.5))
    else:
        # lambda_T's labelled contours: 0 (dashed) on x = 5
        levels = [c for ax in drawn for c in ax.collections if hasattr(c, "levels") and 0.0 in list(c.levels)]
        assert levels
        zero = levels[0].allsegs[list(levels[0].levels).index(0.0)]
        np.testing.assert_allclose(np.concatenate(zero)[:, 0], 5.0, atol=1e-9)


def test_3d_faces_take_the_colour_of_lambda_T_at_their_corners():
    """A flat loss: every facet of the mesh is the RdBu_r colour of the mean of lambda_T = x - 5
    at its three corners, which on a grid is x_i + d/3 or x_i + 2d/3 (two corners on one column)."""
    from matplotlib import colors

    from landscape.figures.loss import ColourField, wall_faithful_mesh

    x, y = np.linspace(4.5, 5.5, 5), np.linspace(0, 1, 4)
    X, Y = np.meshgrid(x, y, indexing="ij")
    field = ColourField(X - 5.0, "RdBu_r", colors.Normalize(-0.5, 0.5), "lambda_T")
    mesh = wall_faithful_mesh(X, Y, np.zeros_like(X), "viridis", 0.0, 1.0, colour=field)
    with F.use_style("paper"):
        ax = F.new_figure("single").add_subplot(projection="3d")
        ax.add_collection3d(mesh)
        render(ax.figure)
    faces = mesh.get_facecolor()  # (F, 4), in drawing order
    assert len(faces) == 2 * 4 * 3
    d = x[1] - x[0]
    means = np.concatenate([x[:-1] + d / 3, x[:-1] + 2 * d / 3]) - 5.0
    allowed = colormaps["RdBu_r"]((means + 0.5) / 1.0)  # (8, 4)
    assert all(np.abs(allowed - f).max(1).min() < 1e-6 for f in faces)
    assert len({tuple(np.round(f, 6)) for f in faces}) == 8  # every column's two means appear


def test_kinds_off_the_grid_plane_refuse_an_overlay_naming_those_that_take_it():
    s = with_dynamics(bump_surface())
    off = {k for k, kind in kinds.KINDS.items() if not kind.dynamics}
    assert off == {"slices", "gradnorm"}  # the 1-D plots; every plot over the grid plane draws them
    for name in off:
        with pytest.raises(LandscapeError, match=r"over the grid plane: contour, surface, wireframe, .*; not " + name):
            kinds.draw(name, [s], overlay=["bifurcations"])


def test_trajectory_keeps_the_window_when_a_step_leaves_it():
    s = bump_surface()
    with F.use_style("paper"):
        ax = F.plot_contour(s)
        lims = ax.get_xlim(), ax.get_ylim()
        artists = F.overlay_trajectory(ax, [5.0, 5.05, 5.1, 40.0], [-2.5, -2.45, -2.4, 30.0], label="gd")
        render(ax.figure)
    assert (ax.get_xlim(), ax.get_ylim()) == lims
    xs, ys = artists[0].get_data()
    assert list(xs) == [5.0, 5.05, 5.1, 40.0]
    with pytest.raises(LandscapeError, match="1-D arrays of one length"):
        F.overlay_trajectory(ax, [1, 2], [1])


def test_bifurcation_diagram_draws_bold_attractors_and_a_dashed_unstable_branch():
    d = dynamics.bifurcation_diagram("pascanu", 5.0, np.linspace(-3.2, -1.8, 141))
    with F.use_style("paper"):
        ax = F.plot_bifurcation(d)
        image = render(ax.figure)
    assert image.std() > 0.05
    bold = [l for l in ax.get_lines() if l.get_linewidth() > 2]
    dashed = [l for l in ax.get_lines() if l.get_linestyle() == "--" and l.get_color() == "k"]
    assert len(bold) == 2 and len(dashed) == 1
    b, y = dashed[0].get_data()  # the unstable branch runs between the folds
    assert b.min() == pytest.approx(float(d.folds.b2)) and b.max() == pytest.approx(float(d.folds.b1))
    assert ax.get_ylim() == (0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# `landscape plot`


def write_file(path: Path, s: Surface, with_fields: bool = True) -> Path:
    """A surface file in the store's format, written by its own writer."""
    nT, nx, ny = s.loss.shape
    T_max = int(max(s.T))
    fields = {"grad": (2,), "hessian_eigvals": (2,), "grad_norm_t": ("grid", T_max)} if with_fields else {}
    w = SurfaceWriter(path, SurfaceContents(json.dumps(s.spec), [int(t) for t in s.T], s.x_name, s.x, s.y_name, s.y,
                                            nx * ny, fields=fields))
    values = {"loss": s.loss.reshape(nT, nx * ny)}
    if with_fields:
        values.update(grad=s.fields["grad"].reshape(nT, nx * ny, 2),
                      hessian_eigvals=s.fields["hessian_eigvals"].reshape(nT, nx * ny, 2),
                      grad_norm_t=s.fields["grad_norm_t"].reshape(nx * ny, T_max))
    w.write_chunk(0, values)
    w.finish()
    w.close()
    return path


def cli():
    from landscape.cli import Group
    from landscape.cli import plot, reproduce

    @click.group(cls=Group)
    def group():
        pass

    group.add_command(plot.command)
    group.add_command(reproduce.command)
    return group


@pytest.fixture
def files(tmp_path):
    return {"full": write_file(tmp_path / "full.h5", bump_surface()),
            "bare": write_file(tmp_path / "bare.h5", bump_surface(), with_fields=False),
            "lstm": write_file(tmp_path / "lstm.h5", bump_surface(names=("b_f", "w_z"), cell="lstm"),
                               with_fields=False)}


@pytest.mark.parametrize("kind", tuple(k for k, v in kinds.KINDS.items() if v.render is not None))
def test_plot_command_writes_every_kind(files, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    args = ["plot", str(files["full"])] + ([str(files["bare"])] if kind == "compare" else [])
    result = CliRunner().invoke(cli(), args + ["--kind", kind, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_command_format_from_extension_and_options(files, tmp_path):
    runner = CliRunner()
    for name, magic in (("f.pdf", b"%PDF"), ("f.svg", b"<?xml")):
        r = runner.invoke(cli(), ["plot", str(files["full"]), "--out", str(tmp_path / name), "--folds",
                                  "--basin", "0.5", "--log", "--style", "talk", "--width", "double"])
        assert r.exit_code == 0, r.output
        assert (tmp_path / name).read_bytes()[:len(magic)] == magic
    r = runner.invoke(cli(), ["plot", str(files["full"]), "--kind", "wireframe", "--elev", "20", "--azim", "-22",
                              "--T", "5", "--dpi", "50", "--out", str(tmp_path / "w.png")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli(), ["plot", str(files["full"]), "--kind", "slices", "--at", "b=-2.5", "--T", "1,20",
                              "--out", str(tmp_path / "s.png")])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args,message", [
    (["--kind", "bogus"], "unknown kind 'bogus'; choose from: contour, surface"),
    (["--T", "7"], "T=7 is not in"),
    (["--T", "1,5"], "--kind contour shows one T"),
    (["--out", "fig.jpg"], "cannot tell the figure format"),
    (["--style", "poster"], "unknown style 'poster'"),
    (["--width", "wide"], "unknown width 'wide'"),
    (["--kind", "slices", "--at", "u=1"], "'u' is not an axis"),
    (["--kind", "slices", "--at", "w"], "malformed --at"),
    (["--kind", "surface", "--folds"], "--folds and --basin draw on 2-D"),
    (["--log", "--symlog"], "choose one of --log and --symlog"),
    (["--elev", "10"], "--elev and --azim set the view of 3-D plots"),
])
def test_plot_command_bad_inputs_are_one_line(files, tmp_path, args, message):
    out = ["--out", str(tmp_path / "x.png")] if "--out" not in args else []
    r = CliRunner().invoke(cli(), ["plot", str(files["full"])] + args + out)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output


def test_plot_command_file_errors(files, tmp_path):
    runner = CliRunner()
    out = ["--out", str(tmp_path / "x.png")]
    cases = [
        (["plot", str(files["bare"]), "--kind", "quiver"], "has no 'grad' field"),
        (["plot", str(files["bare"]), "--kind", "curvature"], "has no 'hessian_eigvals' field"),
        (["plot", str(files["bare"]), "--kind", "gradnorm"], "has no 'grad_norm_t' field"),
        (["plot", str(files["full"]), str(files["bare"])], "--kind contour plots one file; got 2"),
        (["plot", str(files["lstm"]), "--folds"], "--folds/--basin need a surface of srnn or pascanu"),
        (["plot", str(tmp_path / "missing.h5")], "no such file"),
    ]
    for args, message in cases:
        r = runner.invoke(cli(), args + out)
        assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = runner.invoke(cli(), ["plot", str(files["full"]), "--out", str(tmp_path / "x.pgf")])
    import shutil

    if shutil.which("xelatex") is None:
        assert r.exit_code == 2 and "pgf output needs LaTeX" in r.output


def test_the_readme_names_every_kind_in_the_registry():
    """The README's `landscape plot ... --kind a|b|...` line lists the registered kinds, in order."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    usage = [line for line in readme.splitlines() if line.lstrip().startswith("landscape plot") and "--kind " in line]
    assert len(usage) == 1, usage
    documented = usage[0].split("--kind ", 1)[1].split()[0].split("|")
    assert documented == list(kinds.KINDS)
    assert F.KINDS is kinds.KINDS  # the public name is the registry itself


# ---------------------------------------------------------------------------------------------
# defaults that show the wall: a synthetic cliff whose answer is known


def wall_surface(nx=61, ny=43, Ts=(1, 10, 50), cell="pascanu", names=("w", "b"), x_range=(4.5, 5.5),
                 y_range=(-2.9, -1.9), peak=(37, 14)) -> Surface:
    """A Pascanu-like cliff at the largest T: a plateau (0.4) below the line j = 3 + 0.7 (ny - 1)(1 - i / (nx - 1))
    (not the grid's diagonal, which a regular subsample would follow), a low valley above it, and on
    the wall cells (one per row i) a gradient 1e3 (1e4 at
    ``peak``, off the regular subsample) and Hessian eigenvalues +-1e8, where elsewhere |grad| lies
    in [0.03, 0.4], lambda_min in [-0.4, -0.1] and lambda_max in [0.01, 1]."""
    x, y = np.linspace(*x_range, nx), np.linspace(*y_range, ny)
    X, Y = np.meshgrid(x, y, indexing="ij")  # (nx, ny)
    u, v = (X - x[0]) / np.ptp(x), (Y - y[0]) / np.ptp(y)  # 0..1
    i = np.arange(nx)
    jw = np.round(3 + 0.7 * (ny - 1) * (1 - i / (nx - 1))).astype(int)  # (nx,) the wall's column in row i
    wall = np.zeros((nx, ny), bool)
    wall[i, jw] = True
    below = np.arange(ny)[None, :] < jw[:, None]  # the plateau
    nT = len(Ts)
    loss = np.empty((nT, nx, ny))
    grad = np.empty((nT, nx, ny, 2))
    eig = np.empty((nT, nx, ny, 2))
    for k in range(nT):
        loss[k] = np.where(below, 0.4, 0.05 * v) if k == nT - 1 else 0.1 * u * v * (k + 1)
        mag = 0.03 * (0.4 / 0.03) ** (0.5 * (u + v))  # 0.03 .. 0.4, smooth
        grad[k, ..., 0], grad[k, ..., 1] = 0.6 * mag, -0.8 * mag
        eig[k, ..., 0] = -(0.1 + 0.3 * u)
        eig[k, ..., 1] = 10.0 ** (-2 + 2 * v)
    last = nT - 1
    grad[last][wall] = np.array([0.6e3, -0.8e3])
    grad[last, peak[0], peak[1]] = np.array([0.6e4, -0.8e4])
    eig[last][wall] = np.array([-1e8, 1e8])
    assert wall[peak]
    T_max = max(Ts)
    gnt = np.ones((nx, ny, T_max))
    return Surface(Path("wall.h5"), loss, np.asarray(Ts), names[0], x, names[1], y,
                   {"cell": cell, "task": "target"}, {"complete": True}, np.ones(1, bool),
                   {"grad": grad, "hessian_eigvals": eig, "grad_norm_t": gnt})


def coloured_fraction(fig, ax, image=None) -> float:
    """The fraction of an axes' pixels whose colour is not near white (a blank map scores ~0)."""
    image = render(fig) if image is None else image
    box = ax.get_window_extent()
    H = image.shape[0]
    patch = image[int(H - box.y1) + 2:int(H - box.y0) - 2, int(box.x0) + 2:int(box.x1) - 2]  # (h, w, 3)
    return float((np.abs(patch - 1.0).max(-1) > 0.15).mean())


def test_curvature_at_its_default_T_is_not_blank_and_says_what_is_beyond_the_scale():
    s = wall_surface()
    with F.use_style("paper"):
        fig = kinds.draw("curvature", [s])  # the default T: the largest, where the wall is
        image = render(fig)
        panels = fig.axes[:2]
        fractions = [coloured_fraction(fig, ax, image) for ax in panels]
        filled = [[c for c in ax.collections if getattr(c, "filled", False)][0] for ax in panels]
        assert all(f > 0.6 for f in fractions), fractions  # the old scale up to 1e8: ~0.02
        norm = filled[0].norm
        assert filled[1].norm.vmax == norm.vmax and norm.vmax < 1e3  # fits the bulk (|lambda| <= 1), not the wall's 1e8
        assert filled[0].extend == "both"  # the wall: end colours, arrows on the colorbar
        # each bulk value is drawn as itself (orientation and scale): lambda_min at x[45], y[5]
        here = value_of(probe(fig, panels[0], s.x[45], s.y[5], image), "RdBu_r", norm)
        assert here == pytest.approx(s.fields["hessian_eigvals"][-1, 45, 5, 0], rel=0.25)
        # the wall is drawn in the end colours, not left empty
        i, j = 30, 18  # a wall cell
        assert np.allclose(probe(fig, panels[1], s.x[i], s.y[j], image), colormaps["RdBu_r"](1.0)[:3], atol=0.12)
    n_wall = int(s.loss.shape[1])
    text = notes(fig)
    assert f"{n_wall} points beyond \u00b1" in text and "up to 1e+08" in text, text


def test_tail_scale_keeps_a_range_without_outliers_whole():
    from landscape.figures.scales import tail_scale

    m = F.mask(np.linspace(-3.0, 2.0, 101))
    t = tail_scale([m])
    assert t.top == pytest.approx(3.0) and not t.capped and t.note() == ""
    m = F.mask(np.concatenate([np.linspace(-3.0, 2.0, 1000), [5e8, -7e7]]))
    t = tail_scale([m])
    assert t.top == pytest.approx(100 * np.percentile(np.abs(m.values.compressed()), 90))  # two decades over the bulk
    assert (t.n_above, t.n_below) == (1, 1) and t.extreme == pytest.approx(5e8) and t.extend == "both"
    assert 0 < t.linthresh < t.top / 10


def test_quiver_colours_span_the_stored_range_and_the_wall_is_not_stepped_over():
    s = wall_surface()
    g = s.fields["grad"][-1]
    gn = np.hypot(g[..., 0], g[..., 1])  # (nx, ny)
    with F.use_style("paper"):
        ax = kinds.draw("quiver", [s]).axes[0]
    q = next(c for c in ax.collections if hasattr(c, "U"))
    assert (q.norm.vmin, q.norm.vmax) == pytest.approx((gn.min(), gn.max()))  # 0.03 .. 1e4, the whole grid
    xy = q.get_offsets()
    i = np.array([np.argmin(np.abs(s.x - px)) for px in xy[:, 0]])
    j = np.array([np.argmin(np.abs(s.y - py)) for py in xy[:, 1]])
    assert np.allclose(s.x[i], xy[:, 0]) and np.allclose(s.y[j], xy[:, 1])  # arrows sit on grid points
    assert np.allclose(np.asarray(q.get_array()), gn[i, j])  # each arrow coloured by its own |grad|
    assert (37, 14) in set(zip(i, j))  # the largest |grad|, off the old regular subsample
    on_wall = int((gn[i, j] >= 1e3).sum())
    assert on_wall >= 15  # 17 blocks a side: the wall crosses at least 17 of them
    # the old regular subsample (17 rows and columns incl. the edges) catches far fewer wall points
    si = np.unique(np.linspace(0, len(s.x) - 1, 17).round().astype(int))
    sj = np.unique(np.linspace(0, len(s.y) - 1, 17).round().astype(int))
    assert int((gn[np.ix_(si, sj)] >= 1e3).sum()) < on_wall / 2
    # arrows grow with log |grad|: the longest is the steepest, in the axes' own fractions
    length = np.hypot(q.U / np.ptp(s.x), q.V / np.ptp(s.y))
    assert gn[i, j][np.argmax(length)] == gn.max()
    assert length.max() / length.min() == pytest.approx(1 / 0.35, rel=0.02)
    # away from the wall the arrows stay on the regular block centres
    flat = gn[i, j] < 1e3
    assert len(np.unique(i[flat])) <= 17 and len(np.unique(j[flat])) <= 17


def test_arrow_points_are_block_centres_on_a_smooth_field():
    from landscape.figures.gradients import arrow_points

    i, j = np.meshgrid(np.arange(40), np.arange(30), indexing="ij")
    gn = 2.0 - ((i - 21) / 40) ** 2 - ((j - 16) / 30) ** 2  # smooth, largest at a block centre (21, 16)
    I, J = arrow_points(gn, 10)  # blocks of 4 x 3: centres at rows 4 b + 1, columns 3 b + 1
    assert len(I) == 100 and set(I.tolist()) == set(range(1, 40, 4)) and set(J.tolist()) == set(range(1, 30, 3))
    gn[[0, 39], [0, 29]] = [np.nan, np.inf]  # non-finite points are never chosen
    gn[7, 7] = 50.0  # one steep point: its block moves onto it
    I, J = arrow_points(gn, 10)
    assert (7, 7) in set(zip(I, J)) and (39, 29) not in set(zip(I, J)) and len(I) == 100


def pit_surface(nx=81, ny=61) -> Surface:
    """srnn-like: a plateau (0.69) with a low wedge opening to +x: w from -1 to 3, |b| < 0.6 (w - 1) / 2."""
    x, y = np.linspace(-1.0, 3.0, nx), np.linspace(-1.5, 1.5, ny)
    X, Y = np.meshgrid(x, y, indexing="ij")
    inside = (X > 1.0) & (np.abs(Y) < 0.6 * (X - 1.0) / 2.0 + 0.05)
    loss = np.where(inside, 0.01, 0.69)[None]  # (1, nx, ny)
    return Surface(Path("pit.h5"), loss, np.asarray([50]), "w", x, "b", y, {"cell": "srnn", "task": "latch"},
                   {"complete": True}, np.ones(1, bool), {})


def test_surface_default_view_looks_into_the_valley_and_its_ticks_do_not_overlap():
    from mpl_toolkits.mplot3d import proj3d

    s = pit_surface()
    floor = np.asarray(colormaps["viridis"](0.0)[:3])
    points = [(w, b) for w in (2.0, 2.25, 2.5, 2.75) for b in (-0.2, 0.0, 0.2)]  # on the valley floor

    def floor_seen(**view):
        """How many of the floor points are drawn in the floor's colour (not hidden behind a wall)."""
        with F.use_style("paper"):
            ax = F.plot_surface(s, **view)
            image = render(ax.figure)
        seen = 0
        for w, b in points:
            px, py = proj3d.proj_transform(w, b, 0.01, ax.get_proj())[:2]
            col, row = ax.transData.transform((px, py))
            r, c = int(round(image.shape[0] - row)), int(round(col))
            patch = image[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3)  # 3 x 3: polygon seams are 1 px
            seen += bool(np.abs(patch - floor).max(-1).min() < 0.1)
        return ax, seen

    ax, new = floor_seen()
    assert np.cos(np.radians(ax.azim)) > 0.5  # the viewer stands at large w, where the wedge opens
    assert new >= 0.75 * len(points), new
    _, old = floor_seen(elev=25.0, azim=-60.0)  # the former default: the plateau hides the floor
    assert old <= 0.5 * len(points), old
    renderer = ax.figure.canvas.get_renderer()
    for axis in (ax.xaxis, ax.yaxis):
        boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
        assert len(boxes) >= 3
        assert not any(a.overlaps(b) for n, a in enumerate(boxes) for b in boxes[n + 1:]), axis
    with F.use_style("paper"):  # a view given is kept
        ax = F.plot_surface(s, elev=20.0, azim=-22.0)
    assert (ax.elev, ax.azim) == (20.0, -22.0)


def test_view_from_low_side_faces_the_low_region():
    from landscape.figures.loss import view_from_low_side

    s = bump_surface()  # high at x[5], y[3]; low far from it
    for sign_x, sign_y in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        Z = np.where((np.sign(s.x - s.x.mean())[:, None] == sign_x) & (np.sign(s.y - s.y.mean())[None, :] == sign_y),
                     0.0, 1.0)
        elev, azim = view_from_low_side(s, Z)
        a = np.radians(azim)
        assert np.sign(np.cos(a)) == sign_x and np.sign(np.sin(a)) == sign_y, (sign_x, sign_y, azim)
        assert 35 <= azim % 90 <= 55  # no axis end-on
    assert view_from_low_side(s, np.ones((NX, NY))) == (35.0, -60.0)  # flat: matplotlib's default side


def block_surface(cell, names, x_range=(-1.0, 5.0), y_range=(-1.5, 1.5), Ts=TS):
    return bump_surface(names=names, cell=cell, x_range=x_range, y_range=y_range, Ts=Ts)


def test_compare_always_names_T():
    a, b = bump_surface(), bump_surface(i0=1, j0=10)
    with F.use_style("paper"):
        fig = F.plot_compare([a, b])  # one row: the largest common T, in every title
        assert [ax.get_title() for ax in fig.axes[:2]] == ["pascanu on target, T = 20"] * 2
        fig = F.plot_compare([a, b], Ts=(5,), titles=["one", "two"])
        assert [ax.get_title() for ax in fig.axes[:2]] == ["one, T = 5", "two, T = 5"]
        fig = F.plot_compare([a, b], Ts=(1, 20))  # rows: T on each row's label
        assert [fig.axes[n].get_ylabel() for n in (0, 2)] == ["T = 1\n$b$", "T = 20\n$b$"]


def plane_text(fig) -> str:
    return fig._supxlabel.get_text() if getattr(fig, "_supxlabel", None) else ""


def test_compare_says_when_cells_are_on_matching_block_input_planes():
    cells = [block_surface("srnn", ("w", "b")), block_surface("lstm", ("w_z", "b_z")),
             block_surface("gru", ("w_h", "b_h"))]
    with F.use_style("paper"):
        fig = F.plot_compare(cells)
        image = render(fig)
    text = plane_text(fig)
    assert text.startswith("matching planes: each cell's block-input weight")
    assert "srnn w \u00d7 b" in text and "lstm w_z \u00d7 b_z" in text and "gru w_h \u00d7 b_h" in text
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes[:3]] == [("$w$", "$b$"), ("$w_{z}$", "$b_{z}$"), ("$w_{h}$", "$b_{h}$")]
    # one window: every panel puts its maximum at x[I0], y[J0]
    for ax in fig.axes[:3]:
        c = [c for c in ax.collections if getattr(c, "filled", False)][0]
        assert value_of(probe(fig, ax, cells[0].x[I0], cells[0].y[J0], image), "viridis", c.norm) > 0.9 * 3


@pytest.mark.parametrize("second,why", [
    (("lstm", ("b_f", "w_z"), (-1.0, 5.0)), "different parameters (srnn w \u00d7 b, lstm b_f \u00d7 w_z)"),
    (("lstm", ("w_z", "b_z"), (-1.0, 3.0)), "different windows (srnn w [-1, 5]"),
    (("srnn", ("w", "b"), (-1.0, 3.0)), "different windows (srnn w [-1, 5]"),
    (("lstm", ("b_z", "w_z"), (-1.0, 5.0)), "different parameters"),  # swapped roles
])
def test_compare_warns_on_the_figure_when_the_planes_do_not_match(second, why):
    cell, names, x_range = second
    with F.use_style("paper"):
        fig = F.plot_compare([block_surface("srnn", ("w", "b")), block_surface(cell, names, x_range=x_range)])
    text = plane_text(fig)
    assert text.startswith("not matching planes: ") and why in text, text
    assert fig._supxlabel.get_color() == "tab:red"


def test_compare_of_one_plane_says_nothing_more():
    with F.use_style("paper"):
        fig = F.plot_compare([bump_surface(), bump_surface(i0=1, j0=10)])
    assert plane_text(fig) == ""
    from landscape.figures.loss import compare_planes

    assert compare_planes([bump_surface(cell="my.py:Cell"), bump_surface(cell="my.py:Cell")]).kind == "same"
