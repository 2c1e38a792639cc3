"""The whole state of the explorer as one dataclass, and its round trip through a URL query string.

    s = ExploreState(cell="pascanu", task="target", point=(4.8, -2.15))
    s.to_query()                     # 'cell=pascanu&task=target&...&point=4.8,-2.15'
    ExploreState.from_query(q) == s  # True: a reload or a pasted URL restores what was seen

Only the fields that differ from the defaults go into the query, so a shared URL stays short and
a URL written by an older version (fewer fields) still opens. Nothing here imports torch or dash.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from urllib.parse import parse_qsl, urlencode

from ..errors import LandscapeError
from ..spec import Axis, GridSpec, parse_T

# the optimisers drawn from a clicked point, in legend order
OPTIMIZERS = ("sgd", "sgd-clip", "adam")
OPTIMIZER_LABELS = {"sgd": "SGD", "sgd-clip": "SGD, clipped", "adam": "Adam"}
SCALES = ("linear", "log")
NUM = 101  # points per axis of a cell's default axes: a move recomputes in about a second
MAX_N = 200  # the sequences used when n is not given: the task's default, at most this many


@dataclass(frozen=True)
class ExploreState:
    """What the explorer shows.

    cell, task, hidden, sets   the model (sets: ('NAME=VALUE', ...) base-point values, as --set)
    x, y                       the axes as text, 'NAME:LO:HI:NUM'
    T                          the lengths computed at once (one unroll), 't' the one shown
    n, seed                    the task's sequences (n None: the task's default, at most MAX_N)
    scale                      the colour scale of the loss: linear | log
    point                      the clicked (x, y), or None
    lr, adam_lr, clip, steps   the training paths from ``point``: SGD's and clipped SGD's learning
                               rate, Adam's, the clipping threshold (gradient norm), the number of steps
    optimizers                 which of OPTIMIZERS are drawn
    """

    cell: str = "pascanu"
    task: str = "target"
    hidden: int | None = None
    sets: tuple[str, ...] = ()
    x: str = "w:4.5:5.5:101"
    y: str = "b:-2.9:-1.9:101"
    T: str = "1,5,10,20,50"
    t: int = 50
    n: int | None = None
    seed: int = 0
    scale: str = "linear"
    point: tuple[float, float] | None = None
    lr: float = 0.645
    adam_lr: float = 0.05
    clip: float = 0.4
    steps: int = 20
    optimizers: tuple[str, ...] = field(default=OPTIMIZERS)

    def __post_init__(self):
        """Checked values: the axes and T parse, t is one of T, the names are known."""
        Ts = parse_T(self.T)
        object.__setattr__(self, "T", ",".join(map(str, Ts)))
        for name in ("x", "y"):
            Axis.parse(getattr(self, name))
        if int(self.t) not in Ts:
            object.__setattr__(self, "t", max(Ts))
        if self.scale not in SCALES:
            raise LandscapeError(f"unknown scale {self.scale!r}; choose from: {', '.join(SCALES)}")
        bad = [o for o in self.optimizers if o not in OPTIMIZERS]
        if bad:
            raise LandscapeError(f"unknown optimizer {bad[0]!r}; choose from: {', '.join(OPTIMIZERS)}")
        for name in ("lr", "adam_lr", "clip"):
            if not float(getattr(self, name)) > 0:
                raise LandscapeError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if int(self.steps) < 1:
            raise LandscapeError(f"steps must be at least 1, got {self.steps!r}")

    @property
    def Ts(self) -> tuple[int, ...]:
        return parse_T(self.T)

    def grid_spec(self) -> GridSpec:
        """The surface's spec: every T of the list at once (the slider only picks one)."""
        from ..model import parse_assignments
        from ..tasks import get_task

        n = self.n if self.n is not None else min(get_task(self.task).default_n, MAX_N)
        return GridSpec.of(cell=self.cell, task=self.task, hidden=self.hidden,
                           set=parse_assignments(self.sets, "parameter value"), T=self.Ts,
                           x=self.x, y=self.y, n=n, seed=self.seed)

    def surface_key(self) -> tuple:
        """What the surface depends on (not t, the scale, the point or the training controls)."""
        return (self.cell, self.task, self.hidden, self.sets, self.x, self.y, self.T, self.n, self.seed)

    def to_query(self) -> str:
        """The fields that differ from the defaults, as a URL query string (no leading '?')."""
        default = ExploreState()
        items = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                items.append((f.name, _text(value, ";" if f.name == "sets" else ",")))
        return urlencode(items, safe=":,;=[]")

    @classmethod
    def from_query(cls, query: str) -> ExploreState:
        """The state a query string (with or without '?') describes; unknown keys are one clear error."""
        kinds = {f.name: f for f in fields(cls)}
        values = {}
        for key, text in parse_qsl(query.lstrip("?"), keep_blank_values=True):
            if key not in kinds:
                raise LandscapeError(f"unknown explorer setting {key!r} in the URL; choose from: {', '.join(kinds)}")
            values[key] = _parse(key, text)
        return cls(**values)

    def with_(self, **changes) -> ExploreState:
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


def default_axes(cell: str) -> tuple[str, str]:
    """The axes of a cell when none are given: its ``default_axes`` at NUM points each (a cell that
    declares none gets pascanu's, which the user then edits)."""
    from ..cells import cell_class
    from ..spec import Axis

    texts = cell_class(cell).default_axes or (ExploreState.x, ExploreState.y)
    return tuple(replace(Axis.parse(t), num=NUM).describe() for t in texts)


def _text(value, sep: str = ",") -> str:
    """A field's value as query text: tuples joined by ``sep`` (';' for sets, whose items hold commas)."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return sep.join(_text(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


_INTS = ("hidden", "t", "n", "seed", "steps")
_FLOATS = ("lr", "adam_lr", "clip")
_LISTS = ("optimizers",)


def _parse(key: str, text: str):
    """The value of field ``key`` from its query text (empty: None for optional fields, () for lists)."""
    try:
        if key in _INTS:
            return int(text) if text else None
        if key in _FLOATS:
            return float(text)
        if key == "point":
            if not text:
                return None
            a, b = (float(v) for v in text.split(","))
            return (a, b)
        if key == "sets":
            return tuple(s for s in text.split(";") if s)
        if key in _LISTS:
            return tuple(s for s in text.split(",") if s)
    except ValueError:
        raise LandscapeError(f"malformed explorer setting {key}={text!r} in the URL") from None
    return text
