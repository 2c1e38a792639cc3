"""The fixed-point figure: it draws what find_fixed_points found, where the PCA plane puts it.
Truth: the points' own projections (numpy), the counts of each kind, and a PNG that renders."""
from __future__ import annotations

import numpy as np
import torch

from landscape import dynamics
from landscape.figures.fixedpoints import fixed_point_view, plot_fixed_points
from landscape.figures.style import save_figure, use_style
from landscape.fixedpoints import find_fixed_points, visited_states

DT = torch.float64


def offsets(ax, facecolor):
    """Scatter offsets of the collections with that face colour (RGBA of the first point)."""
    from matplotlib.colors import to_rgba

    out = []
    for c in ax.collections:
        fc = c.get_facecolor()
        if len(fc) and np.allclose(fc[0], to_rgba(facecolor)) and c.get_sizes()[0] >= 30:
            out.append(c.get_offsets())
    return np.concatenate(out) if out else np.zeros((0, 2))


def test_two_unit_srnn_points_land_on_their_projections(tmp_path):
    params = {"w": torch.tensor([[2.0, 0.3], [0.2, 2.5]], dtype=DT),
              "u": torch.tensor([[0.5], [-0.3]], dtype=DT), "b": torch.tensor([0.05, -0.1], dtype=DT)}
    xs = torch.randn(20, 40, 1, generator=torch.Generator().manual_seed(0), dtype=DT)
    tr = visited_states("srnn", params, xs)  # (1, T, N, 2)
    res = find_fixed_points("srnn", params, x=torch.tensor([0.3]), trajectories=tr)
    m = res.member(0)
    labels = (xs[0, :, 0] > 0).numpy().astype(float)
    with use_style("paper"):
        ax = plot_fixed_points(res, tr, labels=labels)
        save_figure(ax.figure, tmp_path / "fp.png")
    assert (tmp_path / "fp.png").stat().st_size > 5000
    view = fixed_point_view(res, tr)
    want = view.pca.project(m.points[m.stable])
    got = offsets(ax, "k")  # stable: filled black
    assert got.shape == want.shape == (int(m.stable.sum()), 2)
    np.testing.assert_allclose(np.sort(got, 0), np.sort(want, 0), atol=1e-12)
    assert offsets(ax, "white").shape[0] == int((m.fixed & ~m.stable).sum())  # unstable: open
    assert len(ax.lines) >= 40  # one path per sequence


def test_one_state_number_is_drawn_against_steps(tmp_path):
    f = dynamics.fold_points("pascanu", 5.0)
    params = {"w": torch.tensor([[5.0]], dtype=DT), "b": torch.tensor([f.b1 + 3e-3], dtype=DT)}
    res = find_fixed_points("pascanu", params)
    with use_style("paper"):
        ax = plot_fixed_points(res)
        save_figure(ax.figure, tmp_path / "fp1.png")
    m = res.member(0)
    assert m.slow.sum() == 1 and "1 slow" in ax.get_title()
    np.testing.assert_allclose(offsets(ax, "k")[:, 0], m.points[m.stable, 0], atol=1e-12)
    assert ax.get_xlabel() == "state x"
