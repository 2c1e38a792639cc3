"""landscape.figures.animation: one frame per T, the T on each frame, ONE colour scale, GIF read back
with Pillow (and MP4 with ffprobe when ffmpeg is there). The truth is a synthetic surface whose
peak is at a chosen point of a NON-SQUARE grid and grows with T: a frame drawn on its own colour
scale, or transposed, shows the wrong colour at the peak."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps, colors

import landscape
from landscape.errors import LandscapeError
from landscape.figures import animation as A
from landscape.figures.style import use_style
from landscape.store import Surface

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

NX, NY = 9, 15
I0, J0 = 6, 3  # the peak: x[6], y[3]
TS = (1, 4, 16)


def bump(names=("w", "b"), cell="pascanu", inf_at=None, nan_at=None) -> Surface:
    """loss[k] = (k + 1) * exp(-u^2 - v^2), peaked at (x[I0], y[J0]); optional +inf / NaN points
    (k, i, j) in the last frame."""
    x, y = np.linspace(4.5, 5.5, NX), np.linspace(-2.9, -1.9, NY)
    X, Y = np.meshgrid(x, y, indexing="ij")  # (NX, NY)
    base = np.exp(-((X - x[I0]) / 0.3) ** 2 - ((Y - y[J0]) / 0.25) ** 2)
    loss = np.arange(1, len(TS) + 1, dtype=float)[:, None, None] * base  # (nT, NX, NY)
    for at, value in ((inf_at, np.inf), (nan_at, np.nan)):
        for k, i, j in at or ():
            loss[k, i, j] = value
    return Surface(Path("bump.h5"), loss, np.asarray(TS), names[0], x, names[1], y,
                   {"cell": cell, "task": "target", "task_params": {"x0": 0.5}}, {"complete": True},
                   np.ones(1, bool), {})


def gif_frames(path) -> tuple[list[np.ndarray], list[int]]:
    frames, durations = [], []
    with Image.open(path) as im:
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    return frames, durations


def pixel_of(frames: A.Frames, fig, x, y) -> tuple[int, int]:
    """(row, column) in a frame of data point (x, y) of the frame's contour axes."""
    ax = fig.axes[0]
    fig.set_dpi(frames.dpi)
    fig.canvas.draw()
    px, py = ax.transData.transform((x, y))
    x0, _, _, y1 = frames.box
    return int(round(y1 * frames.dpi - py)), int(round(px - x0 * frames.dpi))


def value_at(image, row, col, norm) -> float:
    """The loss whose viridis colour is nearest to the median colour of a 5 x 5 patch."""
    patch = image[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3).astype(float) / 255
    colour = np.median(patch, axis=0)
    values = np.linspace(norm.vmin, norm.vmax, 4001)
    table = colormaps["viridis"](norm(values))[:, :3]
    return float(values[np.argmin(((table - colour) ** 2).sum(-1))])


def test_gif_has_one_frame_per_T_each_on_the_shared_colour_scale(tmp_path):
    s = bump()
    path = A.write_animation(s, tmp_path / "cliff.gif", fps=4, hold=0.5, dpi=120)
    frames, durations = gif_frames(path)
    assert len(frames) == len(TS)
    assert len({f.shape for f in frames}) == 1
    assert (frames[0][0, 0] == 255).all()  # the background stays pure white through the palette
    assert durations == [250] * (len(TS) - 1) + [750]
    for a, b in zip(frames, frames[1:]):
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0  # each T its own picture
    # the GIF's frames are the rendered frames, in T order (a shared palette: small colour error)
    made = A.animation_frames(s, dpi=120)
    assert made.T == TS and made.crange == pytest.approx((s.loss.min(), s.loss.max()))
    for gif, rgb in zip(frames, made.images):
        assert gif.shape == rgb.shape and np.abs(gif.astype(int) - rgb.astype(int)).mean() < 3.0
    # pixels: at the peak the colour reads (k + 1) * peak on ONE scale (its own scale would read
    # the maximum in every frame); the transposed place and a far corner read low
    norm = colors.Normalize(*made.crange)
    peak = s.loss[0, I0, J0]
    with use_style("paper"):
        for k, T in enumerate(TS):
            fig = A.draw_frame(s, T, crange=made.crange)
            top = value_at(frames[k], *pixel_of(made, fig, s.x[I0], s.y[J0]), norm)
            swapped = value_at(frames[k], *pixel_of(made, fig, s.x[round(J0 * (NX - 1) / (NY - 1))],
                                                     s.y[round(I0 * (NY - 1) / (NX - 1))]), norm)
            corner = value_at(frames[k], *pixel_of(made, fig, s.x[1], s.y[-2]), norm)
            assert top == pytest.approx((k + 1) * peak, rel=0.08, abs=0.03 * made.crange[1]), (T, top)
            assert swapped < 0.5 * (k + 1) * peak and corner < 0.1 * made.crange[1]


def test_each_frame_prints_its_T_and_counts_what_it_masks():
    s = bump(inf_at=[(2, 0, 0), (2, 1, 0)], nan_at=[(2, 8, 14)])
    with use_style("paper"):
        crange = A.shared_range(s, None, "linear")
        titles, notes, norms = [], [], []
        for T in TS:
            fig = A.draw_frame(s, T, crange=crange)
            ax = fig.axes[0]
            titles.append(ax.get_title())
            notes.append(" ".join(t.get_text() for t in ax.texts))
            cs = next(c for c in ax.collections if hasattr(c, "levels"))
            norms.append((cs.norm.vmin, cs.norm.vmax))
    assert titles == [f"pascanu on target, T = {T}" for T in TS]
    assert notes[:2] == ["", ""] and "2 points +inf" in notes[2] and "1 NaN" in notes[2]
    finite = s.loss[np.isfinite(s.loss)]
    assert norms == [(finite.min(), finite.max())] * len(TS)  # one scale, from the finite values only


def test_log_scale_masks_non_positive_values_and_3d_frames_share_z(tmp_path):
    s = bump()
    s.loss[0, 0, :] = 0.0  # 15 zeros at T = 1: masked on the log scale, and said
    with use_style("paper"):
        fig = A.draw_frame(s, TS[0], scale="log", crange=A.shared_range(s, None, "log"))
        assert "15 points <= 0 on the log scale" in " ".join(t.get_text() for t in fig.axes[0].texts)
        lims = [A.draw_frame(s, T, kind="surface", crange=(0.01, 3.0), scale="log").axes[0].get_zlim()
                for T in TS]
    assert lims == [pytest.approx((-2.0, np.log10(3.0)))] * len(TS)
    path = A.write_animation(s, tmp_path / "s.gif", kind="surface", log=True, dpi=80)
    frames, _ = gif_frames(path)
    assert len(frames) == len(TS) and np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1


def test_folds_and_basin_on_the_contour_frames():
    s = bump()
    with use_style("paper"):
        fig = A.draw_frame(s, TS[-1], folds=True, basin="auto")
        labels = [line.get_label() for line in fig.axes[0].lines]
        assert "folds" in labels and any("0.5" in label for label in labels)
        with pytest.raises(LandscapeError, match="srnn or pascanu"):
            A.draw_frame(bump(cell="lstm"), TS[-1], folds=True)
        A.draw_frame(bump(cell="lstm"), TS[-1], basin="auto")  # auto: nothing to draw, no error
        with pytest.raises(LandscapeError, match="contour animation"):
            A.draw_frame(s, TS[-1], kind="surface", folds=True)


def test_frames_draw_the_bifurcation_lines_and_lambda_T_in_2d_and_3d():
    """One fixed point left of x[4], three from it on: the line is the vertical between x[3] and
    x[4]; lambda_T[k] = (k + 1) (x - 5) coloured on one scale, +-1.5 (its largest |value| over all T)."""
    s = bump()
    cycles = np.zeros((NX, NY, 8))
    cycles[:, :, 0] = np.where(np.arange(NX) < 4, 1, 3)[:, None]
    X = np.meshgrid(s.x, s.y, indexing="ij")[0]
    s.fields.update(n_cycles=cycles, n_stable_cycles=cycles, lyapunov=np.stack([(k + 1) * (X - 5.0)
                                                                                  for k in range(len(TS))]))
    with use_style("paper"):
        for T in (TS[0], TS[-1]):
            fig = A.draw_frame(s, T, kind="surface", overlay=["bifurcations", "lyapunov"])
            ax, bar = fig.axes
            (lines,) = [c for c in ax.collections if type(c).__name__ == "Line3DCollection"]
            seg = np.asarray(lines._segments3d)  # (L, 2, 3)
            np.testing.assert_allclose(seg[..., 0], 0.5 * (s.x[3] + s.x[4]))
            np.testing.assert_allclose(seg[..., 2], min(ax.get_zlim()))
            assert bar.get_ylabel() == f"lambda_T at T = {T}" and bar.get_ylim() == pytest.approx((-1.5, 1.5))
        # the contour frames: the same line, and lambda_T = 0 (dashed) on x = 5
        ax = A.draw_frame(s, TS[-1], overlay=["bifurcations", "lyapunov"]).axes[0]
        (lines,) = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
        np.testing.assert_allclose(np.asarray(lines.get_segments())[..., 0], 0.5 * (s.x[3] + s.x[4]))
        (cs,) = [c for c in ax.collections if hasattr(c, "levels") and 0.0 in list(c.levels)]
        zero = np.concatenate(cs.allsegs[list(cs.levels).index(0.0)])
        np.testing.assert_allclose(zero[:, 0], 5.0, atol=1e-9)
    with pytest.raises(LandscapeError, match="--dynamics"):
        A.draw_frame(bump(), TS[-1], kind="surface", overlay=["lyapunov"])


def test_bad_names_kinds_and_missing_ffmpeg_are_one_clear_error(tmp_path, monkeypatch):
    s = bump()
    with pytest.raises(LandscapeError, match=r"\.gif or \.mp4"):
        A.write_animation(s, tmp_path / "a.avi")
    with pytest.raises(LandscapeError, match="contour, surface"):
        A.write_animation(s, tmp_path / "a.gif", kind="wireframe")
    with pytest.raises(LandscapeError, match="T=7 is not in"):
        A.write_animation(s, tmp_path / "a.gif", Ts=[7])
    monkeypatch.setattr(A.shutil, "which", lambda name: None)
    with pytest.raises(LandscapeError, match="needs ffmpeg on the PATH"):
        A.write_animation(s, tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                    reason="ffmpeg/ffprobe not on the PATH (mp4 output needs ffmpeg)")
def test_mp4_has_one_frame_per_T_plus_the_hold(tmp_path):
    s = bump()
    path = A.write_animation(s, tmp_path / "cliff.mp4", fps=2, hold=1.0, dpi=90)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                            "stream=codec_name,nb_read_frames,width,height", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["codec_name"] == "h264"
    assert int(stream["nb_read_frames"]) == len(TS) + 2  # hold 1 s at 2 fps: the last frame twice more
    assert stream["width"] % 2 == 0 and stream["height"] % 2 == 0


def test_a_real_pascanu_surface_animates(tmp_path):
    r = landscape.grid(landscape.GridSpec.of(cell="pascanu", task="target", T=(1, 5, 10, 50),
                                          x=landscape.Axis.parse("w:4.5:5.5:41"),
                                          y=landscape.Axis.parse("b:-2.9:-1.9:31")),
                       out=tmp_path / "p.h5", force=True)
    path = A.write_animation(tmp_path / "p.h5", tmp_path / "p.gif", log=True, folds=True, dpi=80)
    frames, _ = gif_frames(path)
    assert len(frames) == 4
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() > 0.5 for a, b in zip(frames, frames[1:]))
    del r
