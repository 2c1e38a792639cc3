"""Progress of long runs where no bar is drawn: lines with the time left, and an estimate up front.

On a terminal the grid and training commands draw tqdm bars. In a log file or a batch job (stderr
not a terminal) a bar draws nothing useful, so ``Lines`` prints one line at most every
``EVERY_S`` seconds instead, with the share done and the time left at the rate measured so far:

    lstm latch: 12 of 32 chunks (38 %), 3 min 10 s so far, about 5 min 17 s left

``grid_estimate`` guesses a grid's time before it starts from a cost model: cell-steps (points x
sequences x time steps) times a CPU time per cell-step per cell family (``SECONDS_PER_CELL_STEP``),
times ``GRADS_FACTOR`` with --grads. The constants were measured once, with ``--threads 1`` on
the 2-core development machine under load from other work (srnn 101 x 101, lstm 51 x 51, gru
201 x 201 at T = 50, n = 1000; --grads on 41 x 41 srnn and 11 x 11 lstm grids, about 40x a plain
grid, where the fused kernels compute the losses and torch the gradients): a guess to a factor of
about two, not a promise; the progress lines that follow measure the real rate.
"""
from __future__ import annotations

import sys
import time

EVERY_S = 30.0  # seconds between two progress lines
ESTIMATE_FROM_S = 60.0  # a run expected to take longer is announced with its estimate

# CPU seconds per cell-step (one point, one sequence, one time step) with one thread, by the cell's
# name up to its first "-" (lstm-b is an lstm); other cells (a user's FILE.py cell, the mut cells)
# take the slowest built-in family's
SECONDS_PER_CELL_STEP = {"pascanu": 4e-9, "srnn": 6e-9, "plrnn": 6e-9, "gru": 1.1e-8, "lstm": 2.2e-8}
OTHER_CELL = 2.2e-8
GRADS_FACTOR = 40.0  # --grads against a plain grid, measured here: srnn 40x (85 against 3400 points/s), lstm 43x


def wanted(progress: bool | None) -> bool:
    """Progress lines: asked for (progress=True), or by default where no bar is drawn (stderr is
    not a terminal). progress=False (--quiet) turns them off."""
    if progress is None:
        return not sys.stderr.isatty()
    return False  # progress=True draws the bar itself; False is quiet


def duration(seconds: float) -> str:
    """'45 s', '3 min 10 s', '2 h 05 min'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Lines:
    """Progress lines for ``total`` units of ``what`` (e.g. "chunks"), labelled ``label``; silent
    unless ``on``. ``update(n)`` after each n units; a line is printed when ``EVERY_S`` seconds
    passed since the last one (never for a run shorter than that)."""

    def __init__(self, total: int, what: str, label: str, on: bool, stream=None):
        self.total, self.what, self.label, self.on = int(total), what, label, on
        self.stream = stream
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if not self.on or now - self.last < EVERY_S or self.done >= self.total or self.done <= 0:
            return
        self.last = now
        spent = now - self.start
        left = spent * (self.total - self.done) / self.done
        print(f"{self.label}: {self.done} of {self.total} {self.what} ({100 * self.done / self.total:.0f} %), "
              f"{duration(spent)} so far, about {duration(left)} left", file=self.stream or sys.stderr, flush=True)


def grid_estimate(cell: str, points: int, sequences: int, steps: int, grads: bool) -> float:
    """Seconds a grid of ``points`` points, each ``sequences`` sequences of ``steps`` time steps,
    is expected to take on one CPU thread (the cost model of the module docstring)."""
    per_step = SECONDS_PER_CELL_STEP.get(cell.split("-")[0], OTHER_CELL)
    return points * sequences * steps * per_step * (GRADS_FACTOR if grads else 1.0)
