"""Masking of non-finite values, colour scales (linear, log, symlog) and picking grid slices.

Overflow is stored as +-inf and not-yet-computed points as NaN; figures mask them (never clip
them to a finite value) and say so in a note on the axes: "12 points +inf, masked". A log scale
also masks values <= 0, and says how many.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colors

from ..errors import LandscapeError

SCALES = ("linear", "log", "symlog")


@dataclass(frozen=True)
class Masked:
    """Values with the non-finite (and, on a log scale, non-positive) entries masked, and counts."""

    values: np.ma.MaskedArray
    pos_inf: int = 0
    neg_inf: int = 0
    nan: int = 0
    non_positive: int = 0

    def note(self) -> str:
        """'3 points +inf, 2 NaN (not computed), masked' or '' when nothing is masked."""
        parts = [(n, what) for n, what in ((self.pos_inf, "+inf"), (self.neg_inf, "-inf"),
                                           (self.nan, "NaN (not computed)"),
                                           (self.non_positive, "<= 0 on the log scale")) if n]
        if not parts:
            return ""
        (n0, what0), rest = parts[0], parts[1:]
        head = f"{n0} point{'s' if n0 != 1 else ''} {what0}"
        return ", ".join([head] + [f"{n} {what}" for n, what in rest]) + ", masked"


def check_scale(scale) -> str:
    """'linear' | 'log' | 'symlog'; True means 'log' and False/None 'linear'."""
    if scale is True:
        return "log"
    if scale in (False, None):
        return "linear"
    if scale not in SCALES:
        raise LandscapeError(f"unknown scale {scale!r}; choose from: {', '.join(SCALES)}")
    return scale


def mask(values, scale: str = "linear") -> Masked:
    """Mask +-inf and NaN (and values <= 0 on a log scale); count what was masked."""
    a = np.asarray(values, dtype=float)
    bad = ~np.isfinite(a)
    non_positive = np.zeros_like(bad)
    if check_scale(scale) == "log":
        with np.errstate(invalid="ignore"):
            non_positive = np.isfinite(a) & (a <= 0)
    return Masked(np.ma.masked_array(a, mask=bad | non_positive), int(np.isposinf(a).sum()),
                  int(np.isneginf(a).sum()), int(np.isnan(a).sum()), int(non_positive.sum()))


def merge_notes(items: list[Masked]) -> str:
    """One note for several masked arrays (e.g. all panels of a figure)."""
    total = Masked(np.ma.masked_array([]), sum(m.pos_inf for m in items), sum(m.neg_inf for m in items),
                   sum(m.nan for m in items), sum(m.non_positive for m in items))
    return total.note()


def annotate(ax, note: str, loc: str = "upper left"):
    """Write a masking note on the axes (2-D or 3-D) in small type; returns the Text or None."""
    if not note:
        return None
    x, ha = (0.02, "left") if "left" in loc else (0.98, "right")
    y, va = (0.98, "top") if "upper" in loc else (0.02, "bottom")
    text = getattr(ax, "text2D", ax.text)
    return text(x, y, note, transform=ax.transAxes, ha=ha, va=va, fontsize="x-small", zorder=10,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.6", lw=0.4, alpha=0.85))


def finite_range(items, scale: str = "linear") -> tuple[float, float]:
    """(min, max) over the unmasked values of several Masked arrays; (0, 1) if there are none."""
    lo, hi = np.inf, -np.inf
    for m in items:
        v = m.values.compressed()
        if v.size:
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    if not np.isfinite(lo):
        return (1e-3, 1.0) if scale == "log" else (0.0, 1.0)
    if hi <= lo:  # a flat field: widen so a colour scale exists
        pad = abs(lo) * 1e-6 or 1e-12
        lo, hi = (lo / 2, hi * 2) if scale == "log" else (lo - pad, hi + pad)
    return lo, hi


def make_norm(scale: str, vmin: float, vmax: float, linthresh: float | None = None,
              items=None) -> colors.Normalize:
    """A colour norm: linear, log (vmin > 0) or symlog (symmetric about 0)."""
    scale = check_scale(scale)
    if scale == "log":
        return colors.LogNorm(vmin=vmin, vmax=vmax)
    if scale == "symlog":
        m = max(abs(vmin), abs(vmax)) or 1.0
        if linthresh is None:
            linthresh = symlog_threshold(items or [], m)
        return colors.SymLogNorm(linthresh=linthresh, vmin=-m, vmax=m, base=10)
    return colors.Normalize(vmin=vmin, vmax=vmax)


def symlog_threshold(items, vmax_abs: float) -> float:
    """The linear range of a symlog scale: the 5th percentile of the nonzero |values|, at least
    1e-6 of the largest, so that about six decades are shown in log steps."""
    vals = np.concatenate([np.abs(m.values.compressed()) for m in items]) if items else np.empty(0)
    vals = vals[vals > 0]
    low = float(np.percentile(vals, 5)) if vals.size else vmax_abs * 1e-3
    return max(low, vmax_abs * 1e-6)


@dataclass(frozen=True)
class TailScale:
    """A symlog colour range for signed values whose bulk lies decades below a few extreme ones
    (the Hessian at a wall): ``top`` the largest |value| shown, ``linthresh`` its linear range,
    and what lies beyond +-top (drawn in the end colours, counted here and said on the figure)."""

    top: float
    linthresh: float
    n_above: int = 0  # values > +top
    n_below: int = 0  # values < -top
    extreme: float = 0.0  # the largest |value|

    @property
    def capped(self) -> bool:
        return bool(self.n_above or self.n_below)

    @property
    def extend(self) -> str:
        return {(True, True): "both", (True, False): "max", (False, True): "min"}.get(
            (self.n_above > 0, self.n_below > 0), "neither")

    def counts(self, m: Masked) -> TailScale:
        """The same range, with the counts beyond it of one Masked array (e.g. one panel)."""
        v = m.values.compressed()
        extreme = float(np.abs(v).max()) if v.size else 0.0
        return TailScale(self.top, self.linthresh, int((v > self.top).sum()), int((v < -self.top).sum()), extreme)

    def note(self) -> str:
        """'312 points beyond +-4.3 (up to 6.8e+08): end colours' or ''."""
        n = self.n_above + self.n_below
        if not n:
            return ""
        return (f"{n} point{'s' if n != 1 else ''} beyond \u00b1{short(self.top)} (up to {short(self.extreme)}): "
                f"end colours")


def short(x: float) -> str:
    """Two significant digits, plain below 10^4: 140, 4.3, 0.0021, 6.8e+08."""
    x = float(f"{x:.2g}")
    return f"{x:g}" if x == 0 or 1e-4 <= abs(x) < 1e4 else f"{x:.2g}"


def tail_scale(items, headroom: float = 100.0, decades: float = 6.0) -> TailScale:
    """The symlog range of several Masked arrays of signed values.

    top: the largest |value|, but at most ``headroom`` x the 90th percentile of |value| (two
    decades above the bulk), so that the bulk gets the colours and the few extreme points (a wall
    one grid cell wide, where the curvature of a jump is a number of the grid spacing and can
    reach 1e9) are drawn saturated instead of pushing the bulk into the white linear range. It
    depends on percentiles of the bulk, not of the tail, so it holds however many grid cells the
    wall crosses. linthresh: the 10th percentile of the nonzero |values| (rounding-level values,
    below 1e-9 of the 99th percentile, count as zero), at least ``top`` x 10^-decades and at most
    ``top`` / 10.
    """
    vals = np.concatenate([m.values.compressed() for m in items]) if items else np.empty(0)
    mag = np.abs(vals)
    mag = mag[mag > 0]
    if not mag.size:
        return TailScale(1.0, 1e-3)
    mag = mag[mag > 1e-9 * np.percentile(mag, 99)]
    extreme = float(mag.max())
    top = min(extreme, headroom * float(np.percentile(mag, 90)))
    linthresh = min(max(float(np.percentile(mag, 10)), top * 10.0 ** -decades), top / 10.0)
    return TailScale(top, linthresh, int((vals > top).sum()), int((vals < -top).sum()), extreme)


def levels_for(norm: colors.Normalize, n: int = 21) -> np.ndarray:
    """n contour levels evenly spaced in the norm's own scale (so log levels are geometric)."""
    if isinstance(norm, colors.LogNorm):
        return np.geomspace(norm.vmin, norm.vmax, n)
    if isinstance(norm, colors.SymLogNorm):
        return np.unique(norm.inverse(np.linspace(0.0, 1.0, n)))
    from matplotlib.ticker import MaxNLocator

    lv = MaxNLocator(nbins=max(2, n - 1)).tick_values(norm.vmin, norm.vmax)  # round numbers
    lv = lv[(lv >= norm.vmin) & (lv <= norm.vmax)]
    return np.unique(np.concatenate([[norm.vmin], lv, [norm.vmax]]))  # cover the whole range


def pick_T(surface, T=None) -> tuple[int, int]:
    """(index k, T): the requested T (LandscapeError if absent) or, by default, the largest."""
    Ts = np.asarray(surface.T).astype(int)
    if T is None:
        return len(Ts) - 1, int(Ts[-1])
    hits = np.nonzero(Ts == int(T))[0]
    if not len(hits):
        raise LandscapeError(f"T={T} is not in {getattr(surface, 'path', 'this surface')}; "
                             f"it has T = {', '.join(map(str, Ts))}")
    return int(hits[0]), int(T)


def pick_Ts(surface, Ts=None) -> list[tuple[int, int]]:
    """[(k, T), ...] for the requested lengths (default: all of the surface's)."""
    if Ts is None:
        return [(k, int(t)) for k, t in enumerate(np.asarray(surface.T).astype(int))]
    return [pick_T(surface, t) for t in Ts]


def nearest_index(values: np.ndarray, value: float, name: str) -> int:
    """The grid index nearest to ``value`` on axis ``name``; LandscapeError outside the grid."""
    values = np.asarray(values, dtype=float)
    step = np.max(np.abs(np.diff(values))) if values.size > 1 else 0.0
    if not (values.min() - step / 2 <= value <= values.max() + step / 2):
        raise LandscapeError(f"{name}={value:g} is outside the grid ({name} from {values.min():g} "
                             f"to {values.max():g})")
    return int(np.argmin(np.abs(values - value)))


def parse_at(text: str) -> tuple[str, float]:
    """'w=5' -> ('w', 5.0)."""
    if "=" not in text:
        raise LandscapeError(f"malformed --at {text!r}; write NAME=VALUE, e.g. --at w=5")
    name, value = text.split("=", 1)
    try:
        return name.strip(), float(value)
    except ValueError:
        raise LandscapeError(f"malformed --at {text!r}: the value must be a number") from None


def resolve_at(surface, at) -> tuple[str, int, float]:
    """Which axis is fixed, and where: at = ('w', 5.0), {'w': 5.0} or 'w=5' ->
    (axis 'x' or 'y', grid index, grid value). LandscapeError for a name not on the grid."""
    if isinstance(at, str):
        at = parse_at(at)
    if isinstance(at, dict):
        if len(at) != 1:
            raise LandscapeError(f"give one fixed parameter, e.g. {{'{surface.x_name}': value}}; got {at}")
        at = next(iter(at.items()))
    name, value = at
    if name == surface.x_name:
        i = nearest_index(surface.x, float(value), name)
        return "x", i, float(surface.x[i])
    if name == surface.y_name:
        j = nearest_index(surface.y, float(value), name)
        return "y", j, float(surface.y[j])
    raise LandscapeError(f"{name!r} is not an axis of this surface; its axes are {surface.x_name} "
                         f"and {surface.y_name}")


def describe(surface) -> str:
    """'pascanu on target' from the stored spec ('' when unknown)."""
    spec = getattr(surface, "spec", None) or {}
    cell, task = spec.get("cell"), spec.get("task")
    return f"{cell} on {task}" if cell and task else (cell or "")


def add_colorbar(fig, mappable, ax, label: str, **kw):
    """A colorbar; on a log scale with ticks at 1, 2, 5 x 10^k (so a range under a decade still has
    labelled ticks) written as plain numbers."""
    from matplotlib import ticker

    cb = fig.colorbar(mappable, ax=ax, label=label, **kw)
    norm = mappable.norm
    if type(norm) is colors.Normalize:  # round ticks, not the contour levels' end points
        ticks = ticker.MaxNLocator(6).tick_values(norm.vmin, norm.vmax)
        cb.set_ticks([t for t in ticks if norm.vmin - 1e-12 <= t <= norm.vmax + 1e-12])
    if isinstance(norm, colors.SymLogNorm):  # 0 and signed powers of ten
        lt = norm.linthresh
        ticks = ticker.SymmetricalLogLocator(linthresh=lt, base=10).tick_values(norm.vmin, norm.vmax)
        ticks = np.unique(np.concatenate([[0.0], [t for t in ticks if abs(t) >= lt]]))
        ticks = ticks[(ticks >= norm.vmin) & (ticks <= norm.vmax)]
        if len(ticks) > 9:  # keep 0 and every other decade
            keep = np.abs(np.round(np.log10(np.abs(np.where(ticks == 0, 1, ticks))))) % 2 == 0
            ticks = ticks[keep | (ticks == 0)]
        cb.set_ticks(ticks)
        cb.ax.yaxis.set_minor_locator(ticker.NullLocator())
        cb.ax.yaxis.set_major_formatter(ticker.FuncFormatter(
            lambda v, _: "0" if v == 0 else ("-" if v < 0 else "") + f"$10^{{{int(round(np.log10(abs(v))))}}}$"))
    elif isinstance(norm, colors.LogNorm):
        decades = np.log10(norm.vmax) - np.log10(norm.vmin)
        subs = (1.0, 2.0, 5.0) if decades < 4 else (1.0,)
        cb.ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
        cb.ax.yaxis.set_minor_locator(ticker.NullLocator())
        cb.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}" if decades < 4 else
                                                             f"$10^{{{int(round(np.log10(v)))}}}$"))
    return cb
