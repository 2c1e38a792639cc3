"""The thread's lost "bit relay" (docs/reference.md §1) read several ways: srnn, lstm and gru with
8 units, 10 repeats and 10 epochs on each reading in ``landscape.analyses.relay.READINGS`` (every
one OUR reading; the definitions, sizes and outputs are in ``relay``'s docstring)."""
from __future__ import annotations

from .relay import READINGS_NAME as NAME
from .relay import run_readings as run

DESCRIPTION = ("Bit relay read six ways (first bit, delayed copy, pulse, noisy pulse, flip-flop, sparse noisy "
               "flip-flop): srnn vs lstm vs gru, 8 units")

__all__ = ["DESCRIPTION", "NAME", "run"]
