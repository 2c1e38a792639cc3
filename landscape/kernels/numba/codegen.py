"""numba source for a traced one-unit cell (``kernels.trace.Program``): the fused unroll, two loop orders.

The program's nodes are sorted by what they depend on:

- constants: module-level values of the kernel's dtype (``K<i>``);
- parameter-level nodes (the parameters, and what is computed from them alone, e.g. MUT1's
  sigmoid(b_z) without input): evaluated once per member, before the time loop;
- input-level nodes (what is computed from the input alone, e.g. MUT1's tanh(x)): evaluated once
  per (step, sequence) for the whole population, into extra input channels (``derive``);
- the rest: the step, evaluated for every (member, sequence, step) in the innermost loop; as one
  loop over the block per layer of elementary-function calls where it has several (``passes``: an
  LSTM's four gates in one, its cell update and tanh(c) in the next, the gates carried between them
  in arrays of the block ``T<i>``), else as one loop.

tanh, sigmoid and exp are called as ``mathfn.<fn>_with(x, C_<fn>)``, their constants put once, before
the loops, through ``mathfn.registers`` (``C_<fn> = registers(<FN>_K)``): as compile-time constants
LLVM reloads each from the constant pool in every iteration of the vectorised loop. Both forms
compute the same bits.

Two kernels with the same body, one per loop order (both keep a block's state in L1 through all T,
so a step reads and writes the state once and streams the input row):

- ``run_wide(.., lo, hi, ..)``: members lo..hi-1, each in blocks of up to ``nb`` sequences; the
  parameters are scalars in registers and the input row is contiguous. For N of a few dozen and up.
- ``run_lanes(.., lo, hi, ..)``: (member, sequence) pairs lo..hi-1 of the flattened (P, N) grid in
  blocks of ``nb`` pairs, the parameters gathered per pair once per block. For small N (target:
  N = 1), where the wide loop would have no length to vectorise.

Both write, after each step t (1-based) at which some sequence of output k ends, that sequence's
output into out[k, member, sequence]: ``kptr``/``klist`` list the k due at each t (CSR), ``ends``
(K, N) the step each sequence ends at.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch

from ...spec import MATH_CLASSES
from ..trace import Program, Unsupported

CODEGEN_VERSION = 2  # part of the cache key: bump when the generated code changes meaning

# the elementary functions with a vectorisable form in mathfn besides tanh, sigmoid and exp (which every
# module imports): op -> the function's name without its dtype suffix (mathfn.<name>64 / <name>32);
# and the exact roundings (llvm intrinsics, any dtype)
_MATHFN = {"expm1": "expm1_", "log": "log", "log1p": "log1p", "log2": "log2_", "exp2": "exp2_", "asinh": "asinh",
           "sin": "sin", "cos": "cos", "tan": "tan", "atan": "atan"}
_ROUNDING = {"floor": "floor", "ceil": "ceil", "trunc": "trunc", "round": "round_even"}
_LIBM = {"erf": "erf"}  # still one libm call per value (numba's math.<name>)
SCALAR_OPS = frozenset({*_LIBM, "pow"})  # the ops whose code calls libm per value (pow: a ** b)


# ---------------------------------------------------------------------------------------------
# what every generated module starts with

OPTS = "OPTS = dict(nogil=True, cache=True, error_model='numpy', boundscheck=False, fastmath={'contract'})"
MATHFN64 = ["from landscape.kernels.numba.mathfn import (clamp, clamp_max, clamp_min, exp64, maximum, minimum,",
            "                                           sigmoid64, tanh64)"]  # the float64 derivative kernels' imports


def prelude(header: list[str], mathfn: list[str], dt: str, constants: list[str]) -> tuple[list[str], int]:
    """The first lines of a generated module, and where ``finish`` puts the import of the other mathfn
    functions its code calls (known once the code is written): the ``header`` comments, the imports
    (``mathfn``: the lines importing what every module of its kind calls), DT (``dt``), ONE and ZERO,
    ``constants`` (the program's constants, tables, sizes) and the numba options OPTS."""
    L = [*header, "import math", "import numpy as np", "from numba import njit", *mathfn]
    return [*L, "", f"DT = {dt}", "ONE = DT(1.0)", "ZERO = DT(0.0)", *constants, OPTS], len(L)


def finish(L: list[str], at: int, imports) -> str:
    """The module's text: its lines L with the import of the mathfn functions ``imports`` at ``at``."""
    if imports:
        L = [*L[:at], f"from landscape.kernels.numba.mathfn import {', '.join(sorted(imports))}", *L[at:]]
    return "\n".join(L)


def scalar_calls(prog: Program) -> set[str]:
    """The ops of the program's step and output that call libm one value at a time (``SCALAR_OPS``):
    the loop around them does not vectorise (``choice`` decides by measurement whether to use it)."""
    used = set(prog.live(prog.state)) | set(prog.live((prog.output,)))
    return {prog.nodes[i].op for i in used if prog.nodes[i].op in SCALAR_OPS}


_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "gt": ">", "lt": "<", "ge": ">=", "le": "<=",
           "eq": "==", "ne": "!="}


class _Emitter:
    def __init__(self, prog: Program, dtype: torch.dtype, math_class: str = "exact", in_registers: bool = False):
        self.prog = prog
        self.nodes = prog.nodes
        self.f32 = dtype == torch.float32
        self.suffix = "32" if self.f32 else "64"
        self.deps = prog.deps()
        # the fast class changes only float32's sigmoid (mathfn.sigmoid32fast): float64 kernels are the exact ones
        self.fast_sigmoid = math_class == "fast" and self.f32
        self.imports: set[str] = set()  # the mathfn functions beyond the built-in cells' (imported on use)
        # tanh, sigmoid and exp called with their constants passed in (``<fn>_with(x, C_<fn>)``), which the
        # module's kernels hold in registers (``constants_in_registers``); else the plain function
        self.in_registers = in_registers

    def function(self, i: int) -> str | None:
        """The mathfn function node i calls among tanh, sigmoid and exp (those with a ``_with`` form
        and constants ``<NAME>_K``), e.g. 'tanh32' or the fast class's 'sigmoid32fast'; else None."""
        op = self.nodes[i].op
        if op == "sigmoid" and self.fast_sigmoid:
            return "sigmoid32fast"
        return f"{op}{self.suffix}" if op in ("tanh", "sigmoid", "exp") else None

    def constants_in_registers(self, ids, indent) -> list[str]:
        """The lines that put the constants of the functions the nodes ``ids`` call into registers,
        once before a kernel's loops (``C_tanh32 = registers(TANH32_K)``, ...)."""
        names = sorted({fn for fn in map(self.function, ids) if fn is not None}) if self.in_registers else []
        return [f"{' ' * indent}C_{fn} = registers({fn.upper()}_K)" for fn in names]

    def ref(self, i: int) -> str:
        return f"K{i}" if self.nodes[i].op == "const" else f"v{i}"

    def expr(self, i: int) -> str:
        nd, r = self.nodes[i], self.ref
        a = [r(j) if j >= 0 else None for j in nd.args]
        op = nd.op
        if op in _BINARY:
            return f"{a[0]} {_BINARY[op]} {a[1]}"
        if op == "neg":
            return f"-{a[0]}"
        if op == "abs":
            return f"abs({a[0]})"
        if op in ("tanh", "sigmoid", "exp"):
            fn = self.function(i)
            if not self.in_registers:
                return f"{fn}({a[0]})"
            self.imports.update((f"{fn}_with", f"{fn.upper()}_K", "registers"))
            return f"{fn}_with({a[0]}, C_{fn})"
        if op in _MATHFN:
            self.imports.add(f"{_MATHFN[op]}{self.suffix}")
            return f"{_MATHFN[op]}{self.suffix}({a[0]})"
        if op in _ROUNDING:
            self.imports.add(_ROUNDING[op])
            return f"{_ROUNDING[op]}({a[0]})"
        if op == "max":
            return f"maximum({a[0]}, {a[1]})"
        if op == "min":
            return f"minimum({a[0]}, {a[1]})"
        if op == "clamp":
            if a[1] is not None and a[2] is not None:
                return f"clamp({a[0]}, {a[1]}, {a[2]})"
            if a[1] is not None:
                return f"clamp_min({a[0]}, {a[1]})"
            if a[2] is not None:
                return f"clamp_max({a[0]}, {a[2]})"
            return a[0]
        if op == "where":
            return f"({a[1]} if {a[0]} else {a[2]})"
        if op == "not":
            return f"(not {a[0]})"
        if op in ("and", "or"):
            return f"({a[0]} {op} {a[1]})"
        if op == "float":
            return f"(ONE if {a[0]} else ZERO)"
        if op == "sqrt":
            return f"math.sqrt({a[0]})"
        if op == "rsqrt":
            return f"ONE / math.sqrt({a[0]})"
        if op == "reciprocal":
            return f"ONE / {a[0]}"
        if op == "pow":
            return f"DT({a[0]} ** {a[1]})"
        if op in _LIBM:
            return f"DT(math.{_LIBM[op]}({a[0]}))"
        raise Unsupported(f"no code for the operation {op}")

    # --- pieces ---------------------------------------------------------------------------------
    def constants(self) -> list[str]:
        lines = []
        for i, nd in enumerate(self.nodes):
            if nd.op == "const":
                v = nd.attr
                text = "math.nan" if v == "nan" else ("math.inf" if v == math.inf else
                                                       "-math.inf" if v == -math.inf else repr(float(v)))
                lines.append(f"K{i} = DT({text})")
        return lines

    def classify(self):
        """(hoisted, channels, step, out): node ids of the parameter-level nodes, of the input
        channels (node ids, the raw input first when present), and of the step and output bodies."""
        prog, deps = self.prog, self.deps
        step_live = prog.live(prog.state)
        out_live = prog.live((prog.output,))
        hoisted = [i for i in sorted(set(step_live) | set(out_live))
                   if deps[i] <= {"p"} and self.nodes[i].op != "const"]
        x_level = {i for i in step_live if deps[i] == {"x"}}
        used_by_loop = set()
        for i in step_live:
            if i in x_level or deps[i] <= {"p"}:
                continue
            used_by_loop.update(a for a in self.nodes[i].args if a in x_level)
        used_by_loop.update(i for i in prog.state if i in x_level)
        xnode = next((i for i, nd in enumerate(self.nodes) if nd.op == "x"), None)
        channels = ([xnode] if xnode is not None else []) + sorted(used_by_loop - {xnode})
        step = [i for i in step_live if not (deps[i] <= {"p"} or i in x_level)]
        out = [i for i in out_live if not deps[i] <= {"p"}]
        return hoisted, channels, step, out

    def body(self, ids, indent) -> list[str]:
        pad = " " * indent
        return [f"{pad}v{i} = {self.expr(i)}" for i in ids
                if self.nodes[i].op not in ("param", "state", "ostate", "x", "const")]


def passes(em: _Emitter, step: list[int]) -> list[list[int]]:
    """The step's nodes split into passes over the block, one per layer of elementary-function calls:
    a call goes to the pass numbered by the calls on its longest path from the state (itself
    included), every other node to the pass of its first consumer (the new state: the last pass).
    So an LSTM's four gates are one pass and its cell update, tanh(c) and output the next: each loop
    iteration's dependency chain holds one call instead of two, and the core keeps more iterations
    in flight (the loops are latency-bound: lstm float64 measured 20 % faster as two passes).
    One pass (the single loop) where a step has at most one layer, or where a product and the sum it
    feeds would land in different passes (that would undo an FMA contraction: other bits). Which
    product of a sum of two LLVM fuses can still depend on the loop around it (an MUT3 step came out
    1 ulp apart): ``unroll`` compares the staged kernel with the single loop, bit for bit, and keeps
    the single loop where they differ."""
    step_set = set(step)
    calls = {i for i in step if em.function(i) is not None or em.nodes[i].op in _MATHFN}
    depth = {}
    for i in step:  # ascending ids: a node's operands come first
        below = [depth[a] for a in em.nodes[i].args if a in step_set]
        depth[i] = max(below, default=0) + (i in calls)
    last = max(depth.values(), default=0)
    if last <= 1:
        return [step]
    users = {i: [] for i in step}
    for i in step:
        for a in em.nodes[i].args:
            if a in step_set:
                users[a].append(i)
    where = {}
    for i in reversed(step):
        if i in calls:
            where[i] = depth[i]
        else:
            where[i] = min([where[u] for u in users[i]] + ([last] if i in em.prog.state else []), default=last)
    products = [i for i in step if em.nodes[i].op == "mul"]
    if any(em.nodes[u].op in ("add", "sub") and where[u] != where[i] for i in products for u in users[i]):
        return [step]
    return [[i for i in step if where[i] == k] for k in range(1, last + 1)]


def generate(prog: Program, dtype: torch.dtype, math_class: str = "exact", staged: bool = True) -> str:
    """The source of a module with ``run_wide``, ``run_lanes`` and ``derive`` for this program;
    ``math_class`` one of spec.MATH_CLASSES (the fast class's source differs, hence its cache key);
    ``staged``: run_wide's step in ``passes`` (else one loop, as run_lanes's always: where LLVM
    contracts the products of a staged step into FMAs otherwise, ``unroll`` falls back to it)."""
    if dtype not in (torch.float32, torch.float64):
        raise Unsupported(f"dtype {dtype}")
    if math_class not in MATH_CLASSES:
        raise ValueError(f"unknown math class {math_class!r}; choose from: {', '.join(MATH_CLASSES)}")
    em = _Emitter(prog, dtype, math_class, in_registers=True)
    hoisted, channels, step, out = em.classify()
    S = prog.n_state
    dt = "np.float32" if em.f32 else "np.float64"
    param_of = {i: prog.params.index(nd.attr) for i, nd in enumerate(em.nodes) if nd.op == "param"}
    state_of = {i: nd.attr for i, nd in enumerate(em.nodes) if nd.op == "state"}
    ostate_of = {i: nd.attr for i, nd in enumerate(em.nodes) if nd.op == "ostate"}
    chan_of = {n: c for c, n in enumerate(channels)}
    step_set = set(step)
    # the parameter-level values the step reads (each becomes a lane array in run_lanes)
    lane_vals = sorted({a for i in step for a in em.nodes[i].args if a >= 0 and a in set(hoisted)}
                       | {i for i in prog.state if i in set(hoisted)})
    new_state = [em.ref(i) for i in prog.state]
    wide_layers = passes(em, step) if staged else [step]  # run_wide's passes (run_lanes: one loop)

    def carried_of(layers: list[list[int]]) -> list[int]:
        """The values computed in one pass and read in a later one: an array of the block each (T<i>)."""
        made = {i: k for k, layer in enumerate(layers) for i in layer}
        return sorted({a for k, layer in enumerate(layers) for i in layer for a in em.nodes[i].args
                       if made.get(a, k) < k and em.nodes[a].op != "state"}
                      | {i for i in prog.state if made.get(i, len(layers) - 1) < len(layers) - 1})

    def step_loops(indent: int, lane: str, loads: dict[int, str], layers: list[list[int]]) -> list[str]:
        """The step as one loop over the block per pass of ``layers``; ``lane`` the loop's index
        expression for the input channels, ``loads`` node -> what each pass reads it from (the
        state, the parameter lanes); one pass reads everything, as the single loop always did."""
        pad, lines = " " * indent, []
        made = {i: k for k, layer in enumerate(layers) for i in layer}
        carried = carried_of(layers)
        for k, layer in enumerate(layers):
            lines.append(f"{pad}for i in range(m):")
            reads = set(loads) | set(chan_of) if len(layers) == 1 else (
                {a for i in layer for a in em.nodes[i].args} | (set(prog.state) if k == len(layers) - 1 else set()))
            lines += [f"{pad}    v{i} = {src}" for i, src in loads.items() if i in reads]
            lines += [f"{pad}    v{node} = X{c}[{lane}]" for node, c in chan_of.items() if node in reads]
            lines += [f"{pad}    v{i} = T{i}[i]" for i in carried if i in reads and made[i] < k]
            lines += em.body(layer, indent + 4)
            lines += [f"{pad}    T{i}[i] = v{i}" for i in carried if made[i] == k]
        lines += [f"{pad}    S{j}[i] = {new_state[j]}" for j in range(S)]
        return lines

    L, more_imports = prelude(
        [f"# generated by landscape.kernels.numba.codegen (version {CODEGEN_VERSION}); do not edit. "
         "One file per program:",
         "# cells whose steps trace to the same program share it (the name is a hash of this text)",
         f"# dtype {dt}; {len(em.nodes)} nodes, {len(step)} in the step, {len(hoisted)} per member, "
         f"{len(channels)} input channel(s)"],
        ["from landscape.kernels.numba.mathfn import clamp, clamp_max, clamp_min, maximum, minimum, "
         "prefer_wide_vectors"],
        dt, [*em.constants(), f"N_STATE = {S}", f"N_CHANNELS = {len(channels)}", f"PARAMS = {tuple(prog.params)!r}"])
    w = L.append
    w("")

    # derive: the input channels beyond the raw input
    w("")
    w("@njit(**OPTS)")
    w("def derive(xs):")
    w("    \"\"\"xs (C, T, N): channel 0 holds the input; fill the others (input-only subexpressions).\"\"\"")
    w("    prefer_wide_vectors()")
    if len(channels) > 1:
        xnode = channels[0]
        need = prog.live(channels[1:])
        L.extend(em.constants_in_registers(need, 4))
        w("    for t in range(xs.shape[1]):")
        w("        for n in range(xs.shape[2]):")
        w(f"            v{xnode} = xs[0, t, n]")
        L.extend(em.body([i for i in need if i != xnode], 12))
        for c, node in enumerate(channels[1:], start=1):
            w(f"            xs[{c}, t, n] = {em.ref(node)}")
    w("    return 0")
    w("")

    def hoist(indent, source):
        pad = " " * indent
        lines = [f"{pad}v{i} = params[{param_of[i]}, {source}]" for i in hoisted if i in param_of]
        lines += em.body([i for i in hoisted if i not in param_of], indent)
        return lines

    def capture(indent, index_n, target):
        pad = " " * indent
        lines = [f"{pad}v{i} = S{j}[i]" for i, j in ostate_of.items()]
        lines += em.body(out, indent)
        lines.append(f"{pad}{target} = {em.ref(prog.output)}")
        return lines

    # run_wide
    w("")
    w("@njit(**OPTS)")
    w("def run_wide(params, xs, init, ends, kptr, klist, steps, out, lo, hi, nb):")
    w("    \"\"\"Members lo..hi-1, blocks of nb sequences; see the module docstring.\"\"\"")
    w("    prefer_wide_vectors()")
    w("    N = out.shape[2]")
    L.extend(em.constants_in_registers(hoisted + step + out, 4))
    for j in range(S):
        w(f"    S{j} = np.empty(nb, DT)")
    for i in carried_of(wide_layers):
        w(f"    T{i} = np.empty(nb, DT)")
    w("    for p in range(lo, hi):")
    L.extend(hoist(8, "p"))
    w("        for n0 in range(0, N, nb):")
    w("            m = min(nb, N - n0)")
    w("            for i in range(m):")
    for j in range(S):
        w(f"                S{j}[i] = init[{j}]")
    w("            for t in range(steps):")
    for c in range(len(channels)):
        w(f"                X{c} = xs[{c}, t, n0:n0 + m]")
    L.extend(step_loops(16, "i", {i: f"S{j}[i]" for i, j in state_of.items() if i in step_set}, wide_layers))
    w("                for j in range(kptr[t], kptr[t + 1]):")
    w("                    k = klist[j]")
    w("                    E = ends[k, n0:n0 + m]")
    w("                    O = out[k, p, n0:n0 + m]")
    w("                    for i in range(m):")
    w("                        if E[i] == t + 1:")
    L.extend(capture(28, "i", "O[i]"))
    w("    return 0")
    w("")

    # run_lanes
    w("")
    w("@njit(**OPTS)")
    w("def run_lanes(params, xs, init, ends, kptr, klist, steps, out, lo, hi, nb):")
    w("    \"\"\"(member, sequence) pairs lo..hi-1 of the flattened grid, blocks of nb pairs.\"\"\"")
    w("    prefer_wide_vectors()")
    w("    N = out.shape[2]")
    L.extend(em.constants_in_registers(hoisted + step + out, 4))
    for j in range(S):
        w(f"    S{j} = np.empty(nb, DT)")
    for i in lane_vals:
        w(f"    L{i} = np.empty(nb, DT)")
    w("    PI = np.empty(nb, np.int64)")
    w("    NI = np.empty(nb, np.int64)")
    w("    for j0 in range(lo, hi, nb):")
    w("        m = min(nb, hi - j0)")
    w("        for i in range(m):")
    w("            p = (j0 + i) // N")
    w("            PI[i] = p")
    w("            NI[i] = j0 + i - p * N")
    L.extend(hoist(12, "p"))
    for i in lane_vals:
        w(f"            L{i}[i] = v{i}")
    for j in range(S):
        w(f"            S{j}[i] = init[{j}]")
    w("        for t in range(steps):")
    for c in range(len(channels)):
        w(f"            X{c} = xs[{c}, t]")
    L.extend(step_loops(12, "NI[i]", {**{i: f"S{j}[i]" for i, j in state_of.items() if i in step_set},
                                      **{i: f"L{i}[i]" for i in lane_vals}}, [step]))
    w("            for j in range(kptr[t], kptr[t + 1]):")
    w("                k = klist[j]")
    w("                for i in range(m):")
    w("                    n = NI[i]")
    w("                    if ends[k, n] == t + 1:")
    L.extend(capture(24, "n", "out[k, PI[i], n]"))
    w("    return 0")
    w("")
    return finish(L, more_imports, em.imports)


# ---------------------------------------------------------------------------------------------
# the cache folder


def source_key(source: str) -> str:
    """The generated module's key: a hash of its source and of the code it imports (mathfn), whose
    changes numba's cache would not notice."""
    h = hashlib.sha256(source.encode())
    h.update(Path(__file__).with_name("mathfn.py").read_bytes())
    return h.hexdigest()[:20]
