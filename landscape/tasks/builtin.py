"""The built-in tasks: Pascanu's target, the Cross Validated latch, Bengio et al.'s minimal task,
Hochreiter & Schmidhuber's two-sequence problem, and our bit relay (docs/reference.md §1-§5)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import LandscapeError
from ..lazy import torch
from .base import BLOCK, Task, TaskData, _noise, _same_ends, _signs


@dataclass(frozen=True)
class Target(Task):
    name = "target"
    summary = "Pascanu Fig. 6: no input, fixed initial state, loss (y_T - target)^2"
    input_size = 0
    readout = "identity"
    default_n = 1
    x0: float = 0.5
    target: float = 0.7
    param_docs = {"x0": "initial state (for pascanu the pre-activation x_0)",
                  "target": "the value y_T should reach (y = the cell's output, sigmoid(x) for pascanu)"}

    def check_n(self, n):
        if n != 1:
            raise LandscapeError("task target has no randomness: use n = 1")

    def make(self, Ts, n, seed):
        return TaskData(None, {T: torch.full((n,), self.target, dtype=torch.float64) for T in Ts},
                        _same_ends(Ts, n), self.x0)


@dataclass(frozen=True)
class Latch(Task):
    name = "latch"
    summary = "Cross Validated 340898: +-1 first value + noise, label from its sign, logistic readout"
    input_size = 1
    readout = "logistic"
    noise: float = 0.1
    param_docs = {"noise": "sd of the Gaussian noise added to every value (first value +-1)"}

    def check(self):
        super().check()
        self._at_least("noise", 0.0)

    def make(self, Ts, n, seed):
        g = torch.Generator().manual_seed(seed)
        steps = max(Ts)
        half = n // 2  # as in the question: label 1 (first value +1) for the first half of the rows
        label = torch.cat([torch.ones(half), torch.zeros(n - half)]).to(torch.float64)
        x = _noise(steps, n, self.noise, g)
        x[0] += 2.0 * label - 1.0
        return TaskData(x.unsqueeze(-1), {T: label for T in Ts}, _same_ends(Ts, n))


NOISE_READINGS = ("variance", "sd")  # what Bengio et al.'s s stands for


@dataclass(frozen=True)
class Bengio(Task):
    name = "bengio"
    summary = "Bengio et al. 1994: L class inputs, then Gaussian noise set by s; targets +-0.8, MSE on h_T"
    input_size = 1
    readout = "identity"
    loss_scale = 0.5
    L: int = 3
    s: float = 0.2
    h: float = 1.0
    reading: str = "variance"
    param_docs = {"L": "number of leading class inputs (trainable in the paper)",
                  "s": "the Gaussian noise after step L: its variance (the paper's word) or its sd (reading=sd)",
                  "h": "value of the L class inputs (+h for class +, -h for class -)",
                  "reading": "what s is: variance (as the paper says) or sd (the reading `reproduce bengio-fig2` "
                             "fits the paper's Fig. 2(b) with)"}

    def check(self):
        super().check()
        self._at_least("s", 0.0)
        self._at_least("L", 1)
        if self.reading not in NOISE_READINGS:
            raise LandscapeError(f"task bengio: reading={self.reading!r}; choose from: {', '.join(NOISE_READINGS)}")

    @staticmethod
    def noise_sd(s, reading: str):
        """The standard deviation of the noise that s stands for under a reading (variance or sd)."""
        return s if reading == "sd" else math.sqrt(s)

    def make(self, Ts, n, seed):
        if self.L < 1 or self.L >= min(Ts):
            raise LandscapeError(f"bengio needs 1 <= L < T; got L={self.L} with T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        steps = max(Ts)
        sign = torch.cat([torch.ones(n // 2), -torch.ones(n - n // 2)]).to(torch.float64)  # (N,)
        x = _noise(steps, n, self.noise_sd(self.s, self.reading), g)
        x[: self.L] = self.h * sign
        return TaskData(x.unsqueeze(-1), {T: 0.8 * sign for T in Ts}, _same_ends(Ts, n))


@dataclass(frozen=True)
class TwoSequence(Task):
    name = "two-sequence"
    summary = "Hochreiter & Schmidhuber 1997 Exp. 3a: first k inputs +-1, noise, length in [T, 1.1T]"
    input_size = 1
    readout = "logistic"
    k: int = 3
    variance: float = 0.2
    spread: float = 0.1
    param_docs = {"k": "number of leading class inputs (+1 for class 1, -1 for class 0)",
                  "variance": "variance of the Gaussian noise after the class inputs",
                  "spread": "lengths are uniform integers in [T, (1 + spread) T]"}

    def check(self):
        super().check()
        self._at_least("k", 1)
        self._at_least("variance", 0.0)
        self._at_least("spread", 0.0)

    def steps(self, T):
        return int(T) + math.floor(self.spread * T)

    def make(self, Ts, n, seed):
        if self.k < 1 or self.k >= min(Ts):
            raise LandscapeError(f"two-sequence needs 1 <= k < T; got k={self.k} with T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        label = torch.randint(0, 2, (n,), generator=g).to(torch.float64)
        u = torch.rand((n,), generator=g, dtype=torch.float64)  # (N,) one draw for every T
        ends = {T: T + torch.floor(u * (math.floor(self.spread * T) + 1)).long() for T in Ts}
        steps = max(int(e.max()) for e in ends.values())
        x = _noise(steps, n, math.sqrt(self.variance), g)
        x[: self.k] = 2.0 * label - 1.0
        return TaskData(x.unsqueeze(-1), {T: label for T in Ts}, ends)


@dataclass(frozen=True)
class Relay(Task):
    name = "relay"
    summary = "bit relay (our definition): first input the bit +-1, then +-1 distractors; label the bit"
    input_size = 1
    readout = "logistic"
    default_hidden = 8
    lag: int = 0
    param_docs = {"lag": "0: the label is the first bit; k > 0: the label is the input k steps "
                         "before the last one"}

    def check(self):
        super().check()
        self._at_least("lag", 0)

    def make(self, Ts, n, seed):
        if self.lag < 0 or self.lag >= min(Ts):
            raise LandscapeError(f"relay needs 0 <= lag < T; got lag={self.lag} with T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        x = _signs(max(Ts), n, g)  # (T, N): x[0] is the bit, the rest distractors
        if self.lag == 0:
            targets = {T: (x[0] > 0).to(torch.float64) for T in Ts}
        else:
            targets = {T: (x[T - 1 - self.lag] > 0).to(torch.float64) for T in Ts}
        return TaskData(x.unsqueeze(-1), targets, _same_ends(Ts, n))



@dataclass(frozen=True)
class Teacher(Task):
    """Zucchet & Orvieto 2024 (Fig. 1): regress a linear teacher. The inputs are i.i.d. Gaussian,
    x_t ~ N(mu, sigma^2); the teacher runs h*_t = lam h*_{t-1} + x_t from h*_0 = 0 and the target at
    length T is h*_T; the loss is 1/2 (y_T - h*_T)^2 on the cell's output (the student; for the
    ``linear`` cell with u = 1, b = 0 and w = lambda, as T -> infinity its mean is
    1/2 [1/(1 - lambda^2) + 1/(1 - lam^2) - 2/(1 - lambda lam)] sigma^2
    + 1/2 mu^2 (1/(1 - lambda) - 1/(1 - lam))^2)."""

    name = "teacher"
    summary = "Zucchet & Orvieto 2024: regress a linear teacher h*_t = lam h*_(t-1) + x_t, x iid N(mu, sigma^2)"
    input_size = 1
    readout = "identity"
    loss_scale = 0.5
    lam: float = 0.99
    mu: float = 0.0
    sigma: float = 1.0
    param_docs = {"lam": "the teacher's recurrent weight lambda* (memory ~ 1 / (1 - lam))",
                  "mu": "mean of the inputs", "sigma": "sd of the inputs"}

    def check(self):
        super().check()
        self._at_least("sigma", 0.0)

    def make(self, Ts, n, seed):
        g = torch.Generator().manual_seed(seed)
        x = self.mu + _noise(max(Ts), n, self.sigma, g)  # (T, N)
        targets, h = {}, torch.zeros(n, dtype=torch.float64)
        for t in range(max(Ts)):
            h = self.lam * h + x[t]
            if t + 1 in Ts:
                targets[t + 1] = h.clone()
        return TaskData(x.unsqueeze(-1), targets, _same_ends(Ts, n))


PLACEMENTS = ("code", "arxiv")  # where temporal-order's two marked symbols go


@dataclass(frozen=True)
class TemporalOrder(Task):
    """Hochreiter & Schmidhuber 1997 Exp. 6a as Pascanu et al. 2013 ran it (its §4 and Fig. 7): a
    stream of one-hot symbols (D = 6: A, B, then the distractors c, d, e, f) in which two steps
    carry A or B and every other step a distractor drawn uniformly from c-f; the class at the end
    is the order of the two marked symbols, v0 + 2 v1 with A = 0, B = 1 (v0 the first, v1 the
    second): 0 = AA, 1 = BA, 2 = AB, 3 = BB, as the official ``tempOrder.py`` numbers them.

    Where the marked symbols go (steps counted from 0), ``placement``:

    code   the official code: the first at p0 in [int(T/10), 2 int(T/10)), the second at p1 in
           [int(T/2), int(T/2) + int(T/10)) (T >= 10)
    arxiv  the arXiv appendix: the first in [T/10, 2T/10], the second in [4T/10, 5T/10], both
           ends included, rounded inwards (ceil of the low end, floor of the high end)

    The marked positions scale with T, so sequences of two lengths are not prefixes of each other:
    a data set has one T (``make`` refuses several).
    """

    name = "temporal-order"
    summary = "Hochreiter & Schmidhuber 1997 Exp. 6a / Pascanu 2013: the order of two marked symbols, 4 classes"
    input_size = 6
    readout = "logistic"
    classes = 4
    default_hidden = 50
    placement: str = "code"
    param_docs = {"placement": "where the two marked symbols go: code (Pascanu's tempOrder.py: [0.1T, 0.2T) "
                               "and [0.5T, 0.6T)) or arxiv (the appendix: [T/10, 2T/10] and [4T/10, 5T/10])"}

    def check(self):
        super().check()
        if self.placement not in PLACEMENTS:
            raise LandscapeError(f"task temporal-order: placement={self.placement!r}; choose from: "
                                 f"{', '.join(PLACEMENTS)}")

    def windows(self, T: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """The steps (first, last), both included, where each marked symbol may go at length T."""
        if self.placement == "code":
            tenth, half = int(T * 0.1), int(T * 0.5)
            return (tenth, 2 * tenth - 1), (half, half + tenth - 1)
        return (math.ceil(T / 10), math.floor(2 * T / 10)), (math.ceil(4 * T / 10), math.floor(5 * T / 10))

    def make(self, Ts, n, seed):
        if len(Ts) != 1:
            raise LandscapeError(f"temporal-order puts its marked symbols at fractions of T, so one data set has "
                                 f"one length; got T={', '.join(map(str, Ts))}")
        (T,) = Ts
        first, second = self.windows(T)
        if T < 10 or first[0] > first[1] or second[0] > second[1]:
            raise LandscapeError(f"temporal-order needs T >= 10 (a tenth of T must hold a marked symbol); got T={T}")
        g = torch.Generator().manual_seed(seed)
        rows = torch.arange(n)
        symbols = torch.randint(2, 6, (T, n), generator=g)  # (T, N) the distractors c-f
        for lo, hi in (first, second):
            pos = torch.randint(lo, hi + 1, (n,), generator=g)  # (N,)
            symbols[pos, rows] = torch.randint(0, 2, (n,), generator=g)  # A = 0 or B = 1
        marked = symbols < 2  # (T, N), exactly two per sequence
        v = symbols.T[marked.T].view(n, 2)  # (N, 2): (v0, v1) in time order
        label = (v[:, 0] + 2 * v[:, 1]).to(torch.float64)
        x = torch.nn.functional.one_hot(symbols, 6).to(torch.float64)  # (T, N, 6)
        return TaskData(x, {T: label}, _same_ends(Ts, n))


EISENMANN_A = (0.83777, 0.96461)  # Eisenmann et al. 2023 Fig. 3: the ground-truth 2-unit PLRNN
EISENMANN_W = ((0.0, -0.64375), (0.52505, 0.0))
EISENMANN_H = (0.37298, -0.97931)


@dataclass(frozen=True)
class PLRNNPath(Task):
    """Eisenmann et al. 2023 (Fig. 3): regress the trajectory of their 2-unit piecewise-linear RNN
    z*_t = A z*_{t-1} + W relu(z*_{t-1}) + h (A, W, h above) from z*_0 = (x0, x0), with the loss over
    every step: mean over t = 1..T and both units of (y_t - z*_t)^2 (``TaskData.path``). No input.

    ``forcing`` (teacher forcing, Doya 1993; Eisenmann et al.): 0 runs the model free from z*_0;
    tau >= 1 resets the model's state to z*_t at t = 0, tau, 2 tau, ... before it steps on (tau = 1:
    every step forced, the one-step-ahead prediction loss). The model is any cell of 2 units whose
    first state is what it outputs (the PLRNN of examples/cells/plrnn.py, at the ground truth at
    its base point).
    """

    name = "plrnn-path"
    summary = "Eisenmann et al. 2023: a 2-unit PLRNN's trajectory, loss over every step; forcing=tau"
    input_size = 0
    readout = "identity"
    default_hidden = 2
    default_n = 1
    x0: float = 0.0
    forcing: int = 0
    param_docs = {"x0": "the ground truth's (and the model's) initial state, both units",
                  "forcing": "teacher forcing: 0 free-running; tau >= 1 resets the state to the ground truth "
                             "every tau steps (1: fully forced)"}

    def check(self):
        super().check()
        self._at_least("forcing", 0)

    def check_n(self, n):
        if n != 1:
            raise LandscapeError("task plrnn-path has no randomness: use n = 1")

    def make(self, Ts, n, seed):
        A, W, h = (torch.tensor(v, dtype=torch.float64) for v in (EISENMANN_A, EISENMANN_W, EISENMANN_H))
        z = torch.full((n, 2), self.x0, dtype=torch.float64)  # (N, 2)
        path = [z]
        for _ in range(max(Ts)):
            z = A * z + torch.relu(z) @ W.T + h
            path.append(z)
        path = torch.stack(path)  # (T_max + 1, N, 2)
        return TaskData(None, {T: path[T, :, 0] for T in Ts}, _same_ends(Ts, n), self.x0, path, self.forcing)


# ---------------------------------------------------------------------------------------------
# More readings of the thread's lost "bit relay" (docs/reference.md §1). They are OUR readings,
# not the asker's task (its text is lost); `landscape reproduce relay-readings` trains srnn, lstm
# and gru on each. A third reading, a k-step delayed copy of a random bit stream, is ``relay``
# with ``lag=k`` and has no class of its own.


def _blockwise(steps: int, draw, generator) -> tuple:
    """Several (steps, n) streams drawn together block by block, so that each one's first rows do
    not depend on ``steps`` (the prefix property of ``_noise`` for more than one stream):
    ``draw(generator)`` returns one (BLOCK, n) tensor per stream."""
    blocks = [draw(generator) for _ in range(math.ceil(steps / BLOCK))]
    return tuple(torch.cat(parts)[:steps] for parts in zip(*blocks))


@dataclass(frozen=True)
class RelayPulse(Task):
    """OUR reading of "bit relay": the bit (+-1) arrives as one pulse at a random step of a quiet
    stream (Gaussian noise of sd ``noise``, 0 by default) and must be relayed to the end, which
    comes T steps after the pulse.

    inputs   (steps(T), N, 1): noise everywhere, plus the bit +-1 at step s, s uniform in
             0 .. window - 1 (one draw per sequence, the same for every T)
    ends     s + T: the last input is T - 1 steps after the pulse, as the last input of latch
             and relay is T - 1 steps after their first (so the pulse lies in the first half of
             every sequence when T >= window)
    targets  1 for a +1 pulse, 0 for -1 (random bits: about half of each)
    """

    name = "relay-pulse"
    summary = "bit relay, our reading: one +-1 pulse at a random early step of a quiet stream; label it"
    input_size = 1
    readout = "logistic"
    default_hidden = 8
    window: int = 16
    noise: float = 0.0
    param_docs = {"window": "the pulse comes at a step drawn uniformly from 0 .. window - 1; the sequence "
                            "ends T steps after it",
                  "noise": "sd of the Gaussian noise added to every input (0: a quiet stream)"}

    def check(self):
        super().check()
        self._at_least("window", 1)
        self._at_least("noise", 0.0)

    def steps(self, T):
        return int(T) + self.window - 1

    def make(self, Ts, n, seed):
        if min(Ts) < 1:
            raise LandscapeError(f"relay-pulse needs T >= 1; got T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        bit = torch.randint(0, 2, (n,), generator=g).to(torch.float64)  # (N,)
        onset = torch.randint(0, self.window, (n,), generator=g)  # (N,) the pulse's step
        x = _noise(self.steps(max(Ts)), n, self.noise, g)  # (steps, N)
        x[onset, torch.arange(n)] += 2.0 * bit - 1.0
        return TaskData(x.unsqueeze(-1), {T: bit for T in Ts}, {T: onset + int(T) for T in Ts})


@dataclass(frozen=True)
class RelayFlipFlop(Task):
    """OUR reading of "bit relay" as a latching relay (a one-bit flip-flop): set (+1) and reset
    (-1) pulses come at random steps of a quiet stream; the label is the last pulse.

    inputs   (T, N, 1): at each step a pulse with probability ``rate`` (its sign a fair coin),
             else 0; step 0 always carries a pulse, so every sequence has a state; plus
             Gaussian noise of sd ``noise`` everywhere
    targets  1 when the last pulse at or before step T - 1 is +1, else 0

    With only step 0's pulse remembered a model is right with probability
    (1 - rate)^(T - 1) + (1 - (1 - rate)^(T - 1)) / 2; with only the last few steps remembered, it
    fails on the sequences whose last pulse is older (a fraction (1 - rate)^k beyond k steps).
    """

    name = "relay-flipflop"
    summary = "bit relay, our reading: a latching relay; +-1 pulses at random steps, label the last one"
    input_size = 1
    readout = "logistic"
    default_hidden = 8
    rate: float = 0.1
    noise: float = 0.0
    param_docs = {"rate": "probability that a step after the first carries a pulse (step 0 always does)",
                  "noise": "sd of the Gaussian noise added to every input (0: a quiet stream)"}

    def check(self):
        super().check()
        self._at_least("rate", 0.0, strict=True)
        if self.rate > 1:
            raise LandscapeError(f"task {self.name}: rate={self.rate} must be <= 1 ({self.param_docs['rate']})")
        self._at_least("noise", 0.0)

    def make(self, Ts, n, seed):
        if min(Ts) < 1:
            raise LandscapeError(f"relay-flipflop needs T >= 1; got T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        rate = self.rate

        def draw(gen):
            hit = torch.rand((BLOCK, n), generator=gen, dtype=torch.float64) < rate
            sign = 2.0 * torch.randint(0, 2, (BLOCK, n), generator=gen).to(torch.float64) - 1.0
            return hit, sign, torch.randn((BLOCK, n), generator=gen, dtype=torch.float64)

        hit, sign, noise = _blockwise(max(Ts), draw, g)  # (T_max, N) each
        hit[0] = True
        pulses = torch.where(hit, sign, torch.zeros_like(sign))  # (T_max, N) in {-1, 0, +1}
        steps = torch.arange(pulses.shape[0]).unsqueeze(1).expand_as(pulses)
        last = torch.where(hit, steps, torch.full_like(steps, -1)).cummax(dim=0).values  # (T_max, N)
        state = pulses.gather(0, last) > 0  # (T_max, N): the relay's state after each step
        x = pulses + self.noise * noise
        return TaskData(x.unsqueeze(-1), {T: state[T - 1].to(torch.float64) for T in Ts}, _same_ends(Ts, n))
