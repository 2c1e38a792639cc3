"""Triton source for a traced one-unit cell (``kernels.trace.Program``): the fused unroll on CUDA.

``generate(prog)`` writes a module with one ``@triton.jit`` function, ``kernel``, with the
signature and output contract that ``launch`` runs:

    kernel(packed, x, ends, flags, out, h0_ptr, P, N, K, steps, HAS_X, BLOCK, LIBDEVICE)

    packed  (P, G) the parameters, one column per name of ``prog.params``, in that order
    x       (T, N) the single input channel (read per step when the program has an input)
    ends    (K, N) int32: the 1-based step at which each sequence of output k ends
    flags   (steps + 1,) int32: 1 at the steps where some sequence ends
    out     (K, P, N): the cell's output of each (member, sequence) at its end, for each k
    h0_ptr  (1,) the initial state in the kernel's dtype (a state with a constant initial value
            in ``prog.init`` starts at that constant instead)
    HAS_X   accepted for the common launch; whether x is read is the program's own (D = 1)

One program runs BLOCK consecutive flat (member, sequence) pairs p N + n. The program's nodes are
sorted as in the numba backend's ``codegen``: constants and what depends on the parameters alone before the time loop
(the parameters loaded once), the step (anything that reads the state or the input) inside it,
the output formula only at the steps where some sequence ends. Each node is one line. tanh is
libdevice's on the GPU and (1 - e^-2|a|) / (1 + e^-2|a|) with a's sign in the interpreter
(libdevice has no interpreter form), sigmoid 1 / (1 + e^-a) in both; the other
functions without a ``tl`` form are libdevice's on the GPU and short exact-enough formulas in the
interpreter (Kahan's expm1 and log1p); atan has none there (``Unsupported`` under the interpreter).

``load(prog, interpret)`` writes the source into the kernel cache (``runtime.load_module``;
``cell_triton_<hash of the text>.py``: ``triton.jit`` needs a real file) and imports it, once per (source, interpret or compiled): a process runs either compiled or
interpreted Triton, and ``triton.jit`` decides which when the module is imported.
"""
from __future__ import annotations

import hashlib
import math

from .. import runtime
from ..trace import Program, Unsupported

TRITON_CODEGEN_VERSION = 1  # in the generated text, hence in its hash: bump when the code changes meaning

_NAN_ALL = "propagate_nan=tl.PropagateNan.ALL"  # torch.maximum / minimum / clamp: NaN in, NaN out
_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "gt": ">", "lt": "<", "ge": ">=", "le": "<=",
           "eq": "==", "ne": "!="}
_BOOL_OPS = {"gt", "lt", "ge", "le", "eq", "ne", "not", "and", "or"}
_UNARY = {  # op -> the expression of its operand {0}
    "neg": "-{0}", "abs": "tl.abs({0})", "exp": "tl.exp({0})", "log": "tl.log({0})", "sqrt": "_sqrt({0})",
    "rsqrt": "1.0 / _sqrt({0})", "reciprocal": "1.0 / {0}", "sigmoid": "1.0 / (1.0 + tl.exp(-{0}))",
    "sin": "tl.sin({0})", "cos": "tl.cos({0})", "erf": "tl.erf({0})", "log2": "tl.log2({0})",
    "exp2": "tl.exp2({0})", "floor": "tl.floor({0})", "ceil": "tl.ceil({0})",
    "trunc": "tl.where({0} < 0, tl.ceil({0}), tl.floor({0}))",
    "tanh": "_tanh({0}, LIBDEVICE)", "expm1": "_expm1({0}, LIBDEVICE)", "log1p": "_log1p({0}, LIBDEVICE)",
    "tan": "_tan({0}, LIBDEVICE)", "asinh": "_asinh({0}, LIBDEVICE)", "atan": "libdevice.atan({0})",
}
NO_INTERPRETER_FORM = {"atan"}

# helpers of the generated module, each with its GPU (libdevice) and interpreter form
_HELPERS = '''
@triton.jit
def _sqrt(a):
    if a.dtype == tl.float32:
        y = tl.sqrt_rn(a)  # IEEE, as torch (tl.sqrt is approximate in fp32 on the GPU)
    else:
        y = tl.sqrt(a)
    return y


@triton.jit
def _tanh(a, LIBDEVICE: tl.constexpr):
    if LIBDEVICE:
        y = libdevice.tanh(a)
    else:
        e = tl.exp(-2.0 * tl.abs(a))
        th = (1.0 - e) / (1.0 + e)
        y = tl.where(a < 0, -th, th)
    return y


@triton.jit
def _log1p(a, LIBDEVICE: tl.constexpr):
    if LIBDEVICE:
        y = libdevice.log1p(a)
    else:  # Kahan: log(u) a / (u - 1) with u = 1 + a, exact to a few ulp
        u = 1.0 + a
        y = tl.where(u == 1.0, a, tl.where(u == a, tl.log(u), tl.log(u) * (a / (u - 1.0))))
    return y


@triton.jit
def _expm1(a, LIBDEVICE: tl.constexpr):
    if LIBDEVICE:
        y = libdevice.expm1(a)
    else:  # Kahan: (u - 1) a / log(u) with u = e^a
        u = tl.exp(a)
        d = u - 1.0
        y = tl.where(u == 1.0, a, tl.where(d == u, u, tl.where(d == -1.0, -1.0, d * (a / tl.log(u)))))
    return y


@triton.jit
def _tan(a, LIBDEVICE: tl.constexpr):
    if LIBDEVICE:
        y = libdevice.tan(a)
    else:
        y = tl.sin(a) / tl.cos(a)
    return y


@triton.jit
def _asinh(a, LIBDEVICE: tl.constexpr):
    if LIBDEVICE:
        y = libdevice.asinh(a)
    else:  # sign(a) log1p(s + s^2 / (1 + sqrt(1 + s^2))), s = |a|, written without overflow
        s = tl.abs(a)
        r = 1.0 / s
        y = _log1p(s + s / (r + _sqrt(r * r + 1.0)), LIBDEVICE)
        y = tl.where(a < 0, -y, y)
    return y


@triton.jit
def _pow(a, b, LIBDEVICE: tl.constexpr):
    if LIBDEVICE:
        y = libdevice.pow(a, b)
    else:  # |a|^b, its sign for a < 0 and an odd integer b, NaN (sqrt of a < 0) for other b < 0
        m = tl.exp(b * tl.log(tl.abs(a)))
        odd = (b - 2.0 * tl.floor(0.5 * b)) == 1.0
        y = tl.where(a < 0, tl.where(tl.floor(b) == b, tl.where(odd, -m, m), _sqrt(a)), m)
        y = tl.where((a == 1.0) | (b == 0.0), 1.0, y)
    return y
'''

# the kernel's text before the nodes and after them; {G}: parameters per member
_PROLOGUE = '''
@triton.jit
def kernel(packed, x, ends, flags, out, h0_ptr, P, N, K, steps,
           HAS_X: tl.constexpr, BLOCK: tl.constexpr, LIBDEVICE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # (BLOCK,) flat pairs p N + n
    PN = tl.cast(P, tl.int64) * N  # out's stride between lengths, in 64 bits
    mask = offs < PN
    p = offs // N  # (BLOCK,) member
    n = offs % N  # (BLOCK,) sequence
    pk = packed + p * {G}  # (BLOCK,) pointers to each pair's member's parameters
    zero = tl.zeros([BLOCK], dtype=h0_ptr.dtype.element_ty)
    h0 = zero + tl.load(h0_ptr)
'''
_X_LOAD = "        xt = tl.load(x + t * tl.cast(N, tl.int64) + n, mask=mask, other=0.0)  # (BLOCK,) x_t of each sequence\n"
_DUE = "        if tl.load(flags + t + 1) != 0:  # some sequence ends at step t + 1\n"
_EPILOGUE = '''            for k in range(K):
                end = tl.load(ends + k * N + n, mask=mask, other=0)
                tl.store(out + k * PN + offs, y, mask=mask & (end == t + 1))
'''


def _full(v) -> str:
    """A constant as a (BLOCK,) tensor, exact in the kernel's dtype (a bare literal would be fp32)."""
    v = math.nan if v == "nan" else float(v)
    text = "NAN" if math.isnan(v) else "INF" if v == math.inf else "-INF" if v == -math.inf else repr(v)
    return f"tl.full([BLOCK], {text}, zero.dtype)"


class _Emitter:
    def __init__(self, prog: Program):
        self.prog, self.nodes = prog, prog.nodes
        self.deps = prog.deps()
        self.bool = set()  # node ids of the boolean values
        for i, nd in enumerate(self.nodes):
            if nd.op in _BOOL_OPS or (nd.op == "where" and {nd.args[1], nd.args[2]} <= self.bool):
                self.bool.add(i)

    def ref(self, i: int) -> str:
        nd = self.nodes[i]
        if nd.op in ("state", "ostate"):
            return f"s{nd.attr}"
        return "xt" if nd.op == "x" else f"v{i}"

    def truth(self, i: int) -> str:
        """Node i as a boolean (logical_not/and/or also take numbers: nonzero is true)."""
        return self.ref(i) if i in self.bool else f"({self.ref(i)} != 0)"

    def expr(self, i: int) -> str:
        nd = self.nodes[i]
        op, a = nd.op, [self.ref(j) if j >= 0 else None for j in nd.args]
        if op == "const":
            return _full(nd.attr)
        if op == "param":
            return f"tl.load(pk + {self.prog.params.index(nd.attr)}, mask=mask, other=0.0)"
        if op in _BINARY:
            return f"{a[0]} {_BINARY[op]} {a[1]}"
        if op in _UNARY:
            return _UNARY[op].format(a[0])
        if op in ("max", "min"):
            return f"tl.{op}imum({a[0]}, {a[1]}, {_NAN_ALL})"
        if op == "clamp":
            y = a[0] if a[1] is None else f"tl.maximum({a[0]}, {a[1]}, {_NAN_ALL})"
            return y if a[2] is None else f"tl.minimum({y}, {a[2]}, {_NAN_ALL})"
        if op == "pow":
            return f"_pow({a[0]}, {a[1]}, LIBDEVICE)"
        if op == "where":
            return f"tl.where({self.truth(nd.args[0])}, {a[1]}, {a[2]})"
        if op == "not":
            return f"{self.truth(nd.args[0])} == 0"
        if op in ("and", "or"):
            return f"{self.truth(nd.args[0])} {'&' if op == 'and' else '|'} {self.truth(nd.args[1])}"
        if op == "float":
            return f"{a[0]}.to(zero.dtype)"
        raise Unsupported(f"no Triton code for the operation {op}")

    def lines(self, ids, indent: int) -> list[str]:
        pad = " " * indent
        return [f"{pad}v{i} = {self.expr(i)}" for i in ids if self.nodes[i].op not in ("state", "ostate", "x")]


def generate(prog: Program) -> str:
    """The source of a module whose ``kernel`` runs this program (see the module docstring)."""
    em = _Emitter(prog)
    deps, nodes = em.deps, prog.nodes
    step_live = prog.live(prog.state)
    out_live = prog.live((prog.output,))
    before = [i for i in sorted(set(step_live) | set(out_live)) if deps[i] <= {"p"}]  # once per pair
    step = [i for i in step_live if not deps[i] <= {"p"}]
    output = [i for i in out_live if not deps[i] <= {"p"}]
    S = prog.n_state
    init = [_full(v) if v is not None else "h0" for v in (prog.init or (None,) * S)]

    L = [f"# generated by landscape.kernels.triton.codegen (version {TRITON_CODEGEN_VERSION}); do not edit.",
         "# One file per program (the name is a hash of this text); params: " + ", ".join(prog.params),
         f"# {len(nodes)} nodes: {len(before)} before the time loop, {len(step)} in the step, {len(output)} in the output",
         "import triton",
         "import triton.language as tl",
         "from triton.language.extra import libdevice",
         "",
         'INF = tl.constexpr(float("inf"))',
         'NAN = tl.constexpr(float("nan"))',
         _HELPERS, _PROLOGUE.format(G=max(1, len(prog.params))).rstrip("\n")]
    L += em.lines(before, 4)
    L += [f"    s{j} = {init[j]}  # (BLOCK,) state {j}" for j in range(S)]
    L.append("    for t in range(steps):")
    if any(nodes[i].op == "x" for i in step):
        L.append(_X_LOAD.rstrip("\n"))
    L += em.lines(step, 8)
    new = [em.ref(i) for i in prog.state]
    L.append(f"        {', '.join(f's{j}' for j in range(S))} = {', '.join(new)}")  # all at once
    L.append(_DUE.rstrip("\n"))
    L += em.lines(output, 12)
    L.append(f"            y = {em.ref(prog.output)}  # (BLOCK,) the output")
    L.append(_EPILOGUE)
    return "\n".join(L)


def source_key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:20]


def check(prog: Program, interpret: bool) -> None:
    """Unsupported where the program has an operation without code here (or, under the
    interpreter, without an interpreter form)."""
    em = _Emitter(prog)
    for i, nd in enumerate(prog.nodes):
        if interpret and nd.op in NO_INTERPRETER_FORM:
            raise Unsupported(f"{nd.op} has no form in Triton's interpreter")
        if nd.op not in ("state", "ostate", "x"):
            em.expr(i)


def load(prog: Program, interpret: bool):
    """The generated ``kernel`` (a ``triton.jit`` function) of this program: its source written
    to the kernel cache and imported, once per (source, interpret)."""
    check(prog, interpret)
    source = generate(prog)
    key = source_key(source)
    name = f"landscape_triton_{key}_{'interp' if interpret else 'jit'}"  # triton.jit decides when imported
    mod, _ = runtime.load_module(source, f"cell_triton_{key}", name)
    return mod.kernel
