"""The free-running one-unit maps of the cells that have closed-form dynamics (``Cell.one_unit_map``).

Both are conjugate to the pre-activation map  a -> w phi(a) + beta  (beta = b + c, c a constant
input drive):

    srnn      h -> tanh(w h + b + c)        phi = tanh,     state h = tanh(a)
    pascanu   x -> w sigmoid(x) + b + c     phi = sigmoid,  state x = a (Pascanu et al. plot sigmoid(x))

``landscape.dynamics`` computes fixed points, folds and basins in the pre-activation and reports the
cell's own state through these maps; a user cell with such a map can declare one too. numpy only
(scipy's expit is imported when a sigmoid map is evaluated).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LandscapeError


@dataclass(frozen=True)
class OneUnitMap:
    """a -> w phi(a) + beta with the cell's state = to_state(a).

    state_name   the cell's state ("h" or "x")
    phi_range    phi maps R onto this open interval
    w_cusp       folds exist for w >= w_cusp (1 for tanh, 4 for sigmoid)
    output_name  what the cell outputs when that is not the state itself ("sigmoid(x)"), else None
    output_tex   the output at a fixed point in TeX, for figure labels ("h^*", "\\sigma(x^*)")
    """

    name: str
    state_name: str
    phi_range: tuple[float, float]
    w_cusp: float
    output_name: str | None = None
    output_tex: str = "h^*"

    def output(self, state):
        """The cell's output of a state (in phi_range)."""
        raise NotImplementedError

    def state_of_output(self, y):
        """The state whose output is y."""
        raise NotImplementedError

    def phi(self, a):
        raise NotImplementedError

    def dphi(self, a):
        raise NotImplementedError

    def fold_preactivation(self, w):
        """a_c >= 0 with w phi'(+-a_c) = 1, for w >= w_cusp (NaN below). Shape of w."""
        raise NotImplementedError

    def to_state(self, a):
        """The cell's state of pre-activation a."""
        raise NotImplementedError

    def from_state(self, x):
        """The pre-activation of the cell's state x."""
        raise NotImplementedError

    def step(self, state, w, b, c=0.0):
        """F(state): one step of the free-running map (numpy broadcasting)."""
        raise NotImplementedError

    def slope(self, state, w, b, c=0.0):
        """F'(state), the multiplier at ``state`` (numpy broadcasting)."""
        raise NotImplementedError

    def check_state(self, x0) -> np.ndarray:
        x0 = np.asarray(x0, dtype=float)
        if not np.all(np.isfinite(x0)):
            raise LandscapeError(f"state must be finite; got {x0.tolist()}")
        return x0


@dataclass(frozen=True)
class TanhMap(OneUnitMap):
    """srnn: h -> tanh(w h + b + c); the pre-activation a = w h + b + c, h = tanh(a)."""

    def phi(self, a):
        return np.tanh(a)

    def dphi(self, a):
        with np.errstate(over="ignore"):
            return 1.0 / np.cosh(a) ** 2

    def fold_preactivation(self, w):
        w = np.asarray(w, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):  # 1 - tanh^2(a) = 1/w
            s = np.sqrt(1.0 - 1.0 / w)  # tanh(a_c)
            one_minus_s = (1.0 / w) / (1.0 + s)
            a = 0.5 * (np.log1p(s) - np.log(one_minus_s))
        return np.where(w >= self.w_cusp, a, np.nan)

    def to_state(self, a):
        return np.tanh(a)

    def from_state(self, x):
        return np.arctanh(x)

    def output(self, state):
        return np.asarray(state)

    def state_of_output(self, y):
        return np.asarray(y)

    def step(self, state, w, b, c=0.0):
        return np.tanh(w * np.asarray(state, dtype=float) + b + c)

    def slope(self, state, w, b, c=0.0):
        return w * self.dphi(w * np.asarray(state, dtype=float) + b + c)

    def check_state(self, x0):
        x0 = super().check_state(x0)
        if np.any(np.abs(x0) >= 1):
            raise LandscapeError(f"{self.name} state must lie in (-1, 1); got {x0.tolist()}")
        return x0


@dataclass(frozen=True)
class SigmoidMap(OneUnitMap):
    """pascanu: x -> w sigmoid(x) + b + c; the state is the pre-activation itself."""

    def phi(self, a):
        from scipy.special import expit

        return expit(a)

    def dphi(self, a):
        from scipy.special import expit

        return expit(a) * expit(-a)

    def fold_preactivation(self, w):
        w = np.asarray(w, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):  # sigmoid (1 - sigmoid) = 1/w
            small = (2.0 / w) / (1.0 + np.sqrt(1.0 - 4.0 / w))  # sigmoid(-a_c), no cancellation
            a = np.log1p(-small) - np.log(small)
        return np.where(w >= self.w_cusp, a, np.nan)

    def to_state(self, a):
        return a

    def from_state(self, x):
        return x

    def output(self, state):
        return self.phi(state)

    def state_of_output(self, y):
        from scipy.special import logit

        return logit(y)

    def step(self, state, w, b, c=0.0):
        return w * self.phi(np.asarray(state, dtype=float)) + b + c

    def slope(self, state, w, b, c=0.0):
        return w * self.dphi(np.asarray(state, dtype=float))


TANH_MAP = TanhMap("srnn", "h", (-1.0, 1.0), 1.0)
SIGMOID_MAP = SigmoidMap("pascanu", "x", (0.0, 1.0), 4.0, "sigmoid(x)", r"\sigma(x^*)")
