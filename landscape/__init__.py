"""landscape: loss landscapes and gradient dynamics of small recurrent cells.

    import landscape
    result = landscape.grid(cell="pascanu", task="target", T=(1, 10, 50),
                            x=landscape.Axis.parse("w:4.5:5.5:101"), y=landscape.Axis.parse("b:-2.9:-1.9:101"))
    surface = landscape.load(result.path)      # loss (nT, nx, ny) with named coordinates
"""
__version__ = "0.1.0"

from .cells import CELLS, get_cell
from .tasks import TASKS, get_task
from .errors import LandscapeError
from .spec import Axis, GridSpec, resolve
from .store import Surface, load
from .surface import GridResult, grid

__all__ = ["CELLS", "TASKS", "Axis", "GridResult", "GridSpec", "LandscapeError", "Surface", "__version__",
           "get_cell", "get_task", "grid", "load", "resolve"]
