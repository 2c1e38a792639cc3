"""An animation of one surface across T: one frame per length, the T printed on each frame, ONE
colour scale (and, in 3-D, one z range) for all frames, so that a cliff is seen to form.

    from landscape.figures.animation import write_animation
    write_animation(landscape.load("pascanu.h5"), "cliff.gif", kind="contour", log=True, fps=2)

Frames are the project's own figures (``plot_contour`` / ``plot_surface``, in the project style),
rendered on the Agg canvas inside one common box and written as a GIF (Pillow, one shared
palette so colours do not flicker) or, when ffmpeg is on the PATH and the name ends in .mp4, as
H.264 video. Non-finite values are masked and counted on each frame, as in the static figures.
"""
from __future__ import annotations

import shutil
import subprocess
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import LandscapeError
from .interactive import basin_x0, has_dynamics
from .loss import plot_contour, plot_surface
from .overlays import lyapunov_colour, overlay_basin, overlay_dynamics, overlay_folds
from .scales import check_scale, describe, finite_range, mask, pick_Ts
from .style import new_figure, use_style

ANIMATION_KINDS = ("contour", "surface")
FORMATS = (".gif", ".mp4")


@dataclass(frozen=True)
class Frames:
    """The frames of an animation: T (n,); images, n arrays (H, W, 3) uint8 of one size; crange:
    the shared colour range (loss units); box: (x0, y0, x1, y1) of the figure region each frame
    shows, in inches from the figure's lower left (a point drawn at display pixel (px, py) of a
    frame's figure at ``dpi`` lands at column px - x0 * dpi, row y1 * dpi - py)."""

    T: tuple[int, ...]
    images: tuple[np.ndarray, ...]
    crange: tuple[float, float]
    box: tuple[float, float, float, float]
    dpi: float


def check_animation_kind(kind: str) -> str:
    if kind not in ANIMATION_KINDS:
        raise LandscapeError(f"unknown animation kind {kind!r}; choose from: {', '.join(ANIMATION_KINDS)}")
    return kind


def animation_format(path) -> str:
    """'.gif' or '.mp4' from the name; LandscapeError otherwise, or for .mp4 without ffmpeg."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise LandscapeError(f"an animation is written as .gif or .mp4; got {str(path)!r}")
    if suffix == ".mp4" and shutil.which("ffmpeg") is None:
        raise LandscapeError("writing .mp4 needs ffmpeg on the PATH, and it is not there; install ffmpeg "
                             "or write a .gif (needs only Pillow)")
    return suffix


def shared_range(surface, Ts, scale: str) -> tuple[float, float]:
    """(lo, hi) over the unmasked loss of all frames, in loss units (positive on a log scale)."""
    picks = pick_Ts(surface, Ts)
    return finite_range([mask(surface.loss[k], scale) for k, _ in picks], scale)


def draw_frame(surface, T: int, kind: str = "contour", scale="linear", crange=None, folds: bool = False,
               basin: float | None = None, title: str | None = None, width="single", elev: float = 25.0,
               azim: float = -60.0, overlay: Sequence[str] = ()):
    """The Figure of one frame: the loss at length T on the colour range ``crange`` (lo, hi) in
    loss units (default: this surface's range over all T). The title ends in 'T = <T>'.
    folds / basin: overlays of srnn / pascanu over (w, b), contour only; basin is the x0 of the
    boundary drawn, 'auto' (the target task's x0 where there is one) or None. overlay:
    "bifurcations" and / or "lyapunov" (lambda_T at this frame's T) from a --dynamics surface's
    fields: lines and labelled contours on the contour; in 3-D the lines on the floor of the box
    and lambda_T as the surface's colour (one scale for all frames)."""
    kind = check_animation_kind(kind)
    scale = check_scale(scale)
    lo, hi = crange if crange is not None else shared_range(surface, None, scale)
    head = title if title is not None else describe(surface)
    text = f"{head}, T = {T}" if head else f"T = {T}"
    if kind == "contour":
        ax = plot_contour(surface, T=T, scale=scale, vmin=lo, vmax=hi, title=text, width=width)
        ax.title.set_fontsize("large")  # the T label, read while the frames run
        x0 = None if basin == "auto" and not has_dynamics(surface) else basin_x0(surface, basin)
        if folds or x0 is not None:
            _overlays(ax, surface, folds, x0)
        if overlay:
            overlay_dynamics([ax], [surface], [T], overlay)
        return ax.figure
    if folds or basin not in (None, False, "auto"):
        raise LandscapeError("folds and basin boundaries are drawn on the contour animation, not in 3-D")
    if scale == "symlog":
        raise LandscapeError("a 3-D animation has no symlog z axis; use log or linear")
    z = (float(np.log10(lo)), float(np.log10(hi))) if scale == "log" else (lo, hi)
    fig = new_figure(width, aspect=0.85, layout=None)
    ax = fig.add_subplot(projection="3d")
    plot_surface(surface, ax=ax, T=T, scale=scale, vmin=z[0], vmax=z[1], zlim=z, elev=elev, azim=azim,
                 title=text, colour=lyapunov_colour(surface, T) if "lyapunov" in overlay else None)
    ax.title.set_fontsize("large")
    if overlay:
        overlay_dynamics([ax], [surface], [T], overlay)
    return fig


def _overlays(ax, surface, folds: bool, x0: float | None) -> None:
    """Fold curves and the basin boundary of x0 on a contour of srnn / pascanu over (w, b)."""
    if not has_dynamics(surface):
        raise LandscapeError(f"folds and basin boundaries need a one-unit srnn or pascanu surface over (w, b); "
                             f"got {describe(surface) or 'a surface'} over ({surface.x_name}, {surface.y_name})")
    cell, names = surface.spec["cell"], (surface.x_name, surface.y_name)
    if folds:
        overlay_folds(ax, cell, axes=names)
    if x0 is not None:
        overlay_basin(ax, cell, x0, axes=names)
    ax.legend(loc="upper right", frameon=True, facecolor="white", edgecolor="none", framealpha=0.85)


def _render_all(figs, dpi: float, pad: float = 0.04):
    """Each figure rendered at ``dpi`` inside ONE box: the union of their tight boxes (so nothing
    drawn outside the canvas, e.g. a 3-D axis label, is cut, and every frame has the same size).
    Returns ([(H, W, 3) uint8, ...], the box in inches)."""
    import io

    from matplotlib.transforms import Bbox
    from PIL import Image

    boxes = []
    for fig in figs:
        fig.set_dpi(dpi)
        fig.canvas.draw()
        boxes.append(fig.get_tightbbox(fig.canvas.get_renderer()))
    box = Bbox.union(boxes).padded(pad)
    frames = []
    for fig in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches=box, facecolor="white")
        frames.append(np.asarray(Image.open(buf).convert("RGB")))
    return frames, box


def animation_frames(surface, kind: str = "contour", log: bool = False, Ts: Sequence[int] | None = None,
                     dpi: float = 200.0, folds: bool = False, basin: float | None = None,
                     title: str | None = None, width="single", elev: float = 25.0, azim: float = -60.0,
                     style: str | None = "paper", overlay: Sequence[str] = ()) -> Frames:
    """One RGB frame per length (default: all of the surface's), all of one size, on one colour
    scale. style: 'paper' | 'talk', or None to draw in the rc settings in force (e.g. inside the
    caller's ``use_style``)."""
    kind = check_animation_kind(kind)
    scale = "log" if log else "linear"
    picks = pick_Ts(surface, Ts)
    if not picks:
        raise LandscapeError("no length T to animate")
    crange = shared_range(surface, [T for _, T in picks], scale)
    with use_style(style) if style else nullcontext():
        figs = [draw_frame(surface, T, kind, scale, crange, folds, basin, title, width, elev, azim, overlay)
                for _, T in picks]
        frames, box = _render_all(figs, dpi)
    return Frames(tuple(T for _, T in picks), tuple(frames), crange, (box.x0, box.y0, box.x1, box.y1), dpi)


def shared_palette(frames: list[np.ndarray]) -> np.ndarray:
    """One palette (256, 3) uint8 for all frames: 254 colours from up to 8 frames (evenly spread)
    by median cut, then pure white and black (the background stays white, the text black)."""
    from PIL import Image

    take = np.unique(np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int))
    sample = np.concatenate([frames[k] for k in take], axis=0)
    cut = Image.fromarray(sample).quantize(colors=254, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    colours = np.zeros((256, 3), np.uint8)
    found = np.asarray(cut.getpalette()[:254 * 3], np.uint8).reshape(-1, 3)
    colours[:len(found)] = found
    colours[254] = 255
    return colours


def to_palette(frame: np.ndarray, palette: np.ndarray):
    """An RGB frame (H, W, 3) as a "P" image of the nearest palette colours (exact nearest, by
    squared RGB distance, over the frame's distinct colours)."""
    from PIL import Image

    key = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
    uniq, inverse = np.unique(key.ravel(), return_inverse=True)  # (U,)
    rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], -1).astype(np.int32)  # (U, 3)
    nearest = ((rgb[:, None, :] - palette[None].astype(np.int32)) ** 2).sum(-1).argmin(1)  # (U,)
    image = Image.fromarray(nearest.astype(np.uint8)[inverse].reshape(frame.shape[:2]), mode="P")
    image.putpalette(palette.ravel().tolist())
    return image


def write_gif(frames: list[np.ndarray], path, fps: float = 2.0, hold: float = 1.0) -> Path:
    """Frames (H, W, 3) uint8 as a looping GIF on one palette (``shared_palette``); the last
    frame stays ``hold`` seconds longer."""
    palette = shared_palette(frames)
    images = [to_palette(f, palette) for f in frames]
    step = 1000.0 / fps
    durations = [round(step)] * len(images)
    durations[-1] = round(step + 1000.0 * hold)
    path = Path(path)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    return path


def write_mp4(frames: list[np.ndarray], path, fps: float = 2.0, hold: float = 1.0) -> Path:
    """Frames as H.264 video (yuv420p, even size padded white) through ffmpeg; the last frame is
    repeated for ``hold`` seconds."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        animation_format(path)  # the one-line error
    h, w = frames[0].shape[:2]
    extra = int(round(hold * fps))
    cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-framerate", f"{fps:g}", "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:color=white",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)]
    stream = b"".join(np.ascontiguousarray(f).tobytes() for f in frames + [frames[-1]] * extra)
    run = subprocess.run(cmd, input=stream, capture_output=True)
    if run.returncode != 0:
        last = (run.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise LandscapeError(f"ffmpeg could not write {path}: {last}")
    return Path(path)


def write_animation(surface, path, kind: str = "contour", log: bool = False, fps: float = 2.0,
                    Ts: Sequence[int] | None = None, hold: float = 1.0, dpi: float = 200.0,
                    folds: bool = False, basin: float | None = None, title: str | None = None,
                    width="single", elev: float = 25.0, azim: float = -60.0, style: str | None = "paper",
                    overlay: Sequence[str] = ()) -> Path:
    """Write the animation of ``surface`` (a Surface or a path) across T to ``path``.

    kind: 'contour' or 'surface' (3-D, one z range); log: log colour (and z) scale, values <= 0
    masked and counted; fps: frames (lengths) per second; hold: extra seconds on the last frame;
    Ts: the lengths (default all); folds, basin, overlay: as ``draw_frame``. The format comes from the
    name: .gif (Pillow) or .mp4 (needs ffmpeg on the PATH; LandscapeError otherwise). Returns the path.
    """
    fmt = animation_format(path)
    if not fps > 0:
        raise LandscapeError(f"fps must be positive, got {fps:g}")
    if hold < 0:
        raise LandscapeError(f"hold must be >= 0 seconds, got {hold:g}")
    if isinstance(surface, (str, Path)):
        from ..store import load

        surface = load(surface)
    frames = list(animation_frames(surface, kind, log, Ts, dpi, folds, basin, title, width, elev, azim,
                                   style, overlay).images)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_gif(frames, path, fps, hold) if fmt == ".gif" else write_mp4(frames, path, fps, hold)
    except OSError as err:
        raise LandscapeError(f"cannot write {path}: {err.strerror or err}") from None


__all__ = ["Frames", "animation_frames", "draw_frame", "write_animation", "write_gif", "write_mp4"]
