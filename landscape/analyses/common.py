"""What the grid reproductions share: each figure written as PDF + PNG, each surface at a fixed path.

Used by the modules in ``landscape.analyses``; a reproduction owns its output folder, so a file
there made by another spec (e.g. a --quick run before a full one) is recomputed, not an error.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LandscapeError
from ..resolved import resolve
from ..spec import GridSpec
from ..store import check_surface_file
from ..figures.style import save_figure

PNG_DPI = {False: 200, True: 72}  # full run, --quick


def save_pdf_png(fig, out_dir, stem: str, quick: bool = False) -> list[Path]:
    """Write ``fig`` as OUT_DIR/STEM.pdf and OUT_DIR/STEM.png (200 dpi; 72 dpi for --quick);
    returns both paths."""
    out_dir = Path(out_dir)
    if fig.get_layout_engine() is not None:  # lay out once, then keep the positions for both files
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
    return [save_figure(fig, out_dir / f"{stem}.pdf"),
            save_figure(fig, out_dir / f"{stem}.png", dpi=PNG_DPI[quick])]


def grid_at(spec: GridSpec, path, device: str = "auto", progress: bool | None = None):
    """``landscape.grid(spec, out=path)``: read back when the file holds this spec, recomputed when
    it holds another one (a reproduction's own folder). Returns the GridResult."""
    from ..surface import grid

    path = Path(path)
    force = False
    if path.exists():
        try:
            force = check_surface_file(path).get("spec") != resolve(spec).canonical()
        except LandscapeError:  # a foreign or broken file in the reproduction's own folder
            force = True
    return grid(spec, out=path, device=device, force=force, progress=progress)


def grid_and_say(name: str, spec: GridSpec, path, what: str, device: str = "auto", progress: bool | None = None):
    """``grid_at``, then one line: 'NAME: WHAT, NX x NY, n = N: computed in S s' (or 'read back').
    Returns the GridResult."""
    result = grid_at(spec, path, device=device, progress=progress)
    s = result.surface
    how = "read back" if result.cached else f"computed in {result.seconds:.1f} s"
    print(f"{name}: {what}, {len(s.x)} x {len(s.y)}, n = {s.spec['n']}: {how}")
    return result
