"""Forward-mode derivatives of a traced step (``kernels.trace``): dF/ds as more scalar nodes.

``state_jacobian(prog)`` differentiates every node the new state is computed from along each of
the S state numbers: a node that does not depend on the state has no tangent; the state number k
has the tangent e_k; every other node's tangent along k follows from its operands' by one rule
per operation (``_RULES``: the derivative torch's autograd uses for that operation, its
conventions at the kinks included: abs' (0) = 0, a clamp passes the gradient at its bounds, a
tie of max / min splits it in halves, floor, round, comparisons and the like have derivative 0).
The derivatives are nodes of the same kinds (add, mul, where, ...) appended to the program's, so
that the code generators emit them as they emit the step; structural zeros are never written
(e_k's ones and zeros are folded in), so a matrix-vector product's tangent is the matrix element
itself. ``state_jvp(prog)`` is the same forward pass with one tangent seeded by a direction v given
at run time (nodes 'tangent', attr k: v_k): dF/ds v, S nodes instead of S x S.

Forward mode on the same expressions that autograd differentiates in reverse: the values agree to
rounding (a few ulps), and where a member's parameters are infinite or NaN the non-finite entries
may sit elsewhere in the matrix (0 * inf is taken on other paths).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .trace import Node, UnitProgram, Unsupported

# ops whose derivative is 0 wherever it exists (torch's autograd gives 0 everywhere)
_FLAT = frozenset({"gt", "lt", "ge", "le", "eq", "ne", "not", "and", "or", "float", "floor", "ceil", "trunc",
                   "round"})


@dataclass
class StateJacobian:
    """The program extended by its derivative nodes: ``program.nodes`` holds the step's nodes and
    then the derivatives', in evaluation order; ``F`` (S,) the node of each new state number (the
    program's ``state``); ``J`` S rows of S: J[j][k] the node of dF_j / ds_k, None where it is 0."""

    program: UnitProgram
    F: tuple[int, ...]
    J: tuple[tuple[int | None, ...], ...]


class _Graph:
    """The program's nodes plus new ones, identical nodes shared, with the simplifications of
    structural zeros (None) and ones that keep a tangent sparse."""

    def __init__(self, nodes: list[Node]):
        self.nodes = list(nodes)
        self.index = {nd: i for i, nd in enumerate(self.nodes)}

    def add(self, op: str, *args: int, attr=None) -> int:
        nd = Node(op, tuple(args), attr)
        hit = self.index.get(nd)
        if hit is None:
            self.nodes.append(nd)
            hit = self.index[nd] = len(self.nodes) - 1
        return hit

    def const(self, v: float) -> int:
        return self.add("const", attr=float(v))

    def is_one(self, i) -> bool:
        return i is not None and self.nodes[i].op == "const" and self.nodes[i].attr == 1.0

    # tangent arithmetic: None is a structural zero
    def plus(self, a, b):
        if a is None:
            return b
        return a if b is None else self.add("add", a, b)

    def minus(self, a, b):
        if b is None:
            return a
        return self.add("neg", b) if a is None else self.add("sub", a, b)

    def times(self, d, f):
        """A tangent d times a value f."""
        if d is None:
            return None
        if self.is_one(d):
            return f
        return d if self.is_one(f) else self.add("mul", d, f)

    def where(self, cond, a, b):
        if a is None and b is None:
            return None
        zero = self.const(0.0)
        return self.add("where", cond, zero if a is None else a, zero if b is None else b)


def state_jacobian(prog: UnitProgram) -> StateJacobian:
    """dF/ds of a traced step (see the module docstring); Unsupported for an op without a rule."""
    g = _Graph(prog.nodes)
    S = prog.n_state * prog.H
    one = g.const(1.0)
    tangent = _forward(prog, g, [[one if k == j else None for k in range(S)] for j in range(S)])
    J = tuple(tuple(tangent[j][k] if j in tangent else None for k in range(S)) for j in prog.state)
    return StateJacobian(replace(prog, nodes=g.nodes), tuple(prog.state), J)


@dataclass
class StateJVP:
    """The program extended by the nodes of one directional derivative (a Jacobian-vector product):
    ``program.nodes`` holds the step's nodes, the S seed nodes 'tangent' (attr k: component k of
    the direction v, an input of the kernel as 'state' is) and the derivatives', in evaluation
    order; ``F`` (S,) the node of each new state number; ``Jv`` (S,) the node of (dF/ds v)_j, None
    where it is 0; ``seeds`` (S,) the 'tangent' node of each v_k."""

    program: UnitProgram
    F: tuple[int, ...]
    Jv: tuple[int | None, ...]
    seeds: tuple[int, ...]


def state_jvp(prog: UnitProgram) -> StateJVP:
    """(dF/ds) v of a traced step for a direction v given at run time: one forward-mode tangent
    seeded by v (the rules of ``state_jacobian``, one component instead of S: no S x S matrix);
    Unsupported for an op without a rule. (dF/ds v)_j is the sum over k of J[j][k] v_k, with its
    products and sums in the order the rules compose them (equal to rounding)."""
    g = _Graph(prog.nodes)
    S = prog.n_state * prog.H
    seeds = tuple(g.add("tangent", attr=k) for k in range(S))
    tangent = _forward(prog, g, [[seed] for seed in seeds])
    Jv = tuple(tangent[j][0] if j in tangent else None for j in prog.state)
    return StateJVP(replace(prog, nodes=g.nodes), tuple(prog.state), Jv, seeds)


def _forward(prog: UnitProgram, g: _Graph, seed: list[list]) -> dict[int, list]:
    """The tangents (C components each) of every node the new state depends on through the state:
    node -> its C tangent nodes (None: 0); absent: no tangent at all. seed[k]: the C tangent nodes
    of state number k; Unsupported for an op without a rule."""
    deps = prog.deps()
    C = len(seed[0]) if seed else 0
    tangent: dict[int, list] = {}
    for i in prog.live(prog.state):
        nd = prog.nodes[i]
        if "s" not in deps[i]:
            continue
        if nd.op == "state":
            tangent[i] = list(seed[nd.attr])
            continue
        if nd.op in _FLAT:
            continue
        rule = _RULES.get(nd.op)
        if rule is None:
            raise Unsupported(f"no derivative rule for the operation {nd.op}")
        dargs = [tangent.get(a) if a >= 0 else None for a in nd.args]
        factors = rule.prepare(g, i, nd.args) if rule.prepare else None
        tangent[i] = [rule.apply(g, i, nd.args, [None if d is None else d[c] for d in dargs], factors)
                      for c in range(C)]
    return tangent


# ---------------------------------------------------------------------------------------------
# the rules: prepare(g, node, args) -> the factors shared by every component (or None);
# apply(g, node, args, d (the operands' tangents along one component, None: 0), factors) -> the tangent


@dataclass(frozen=True)
class _Rule:
    apply: object
    prepare: object = None


def _scaled(factor):
    """A unary op whose derivative is dx * factor(g, node, x)."""
    return _Rule(lambda g, i, a, d, f: g.times(d[0], f),
                 lambda g, i, a: factor(g, i, a[0]))


def _sign(g, x):  # torch's sgn: 1, -1, or 0 (at 0 and for NaN)
    pos = g.add("float", g.add("gt", x, g.const(0.0)))
    neg = g.add("float", g.add("lt", x, g.const(0.0)))
    return g.add("sub", pos, neg)


def _dot(g, i, a, d, f):
    K = len(a) // 2
    terms = []
    for k in range(K):
        for dv, other in ((d[k], a[K + k]), (d[K + k], a[k])):
            if dv is not None:
                terms.append((dv, other))
    if not terms:
        return None
    if len(terms) == 1:
        return g.times(*terms[0])
    return g.add("dot", *(t[0] for t in terms), *(t[1] for t in terms))


def _max_min(greater: str):
    """maximum (greater 'gt') / minimum ('lt'): the gradient goes to the winner, in halves on a tie, to
    both where a comparison is false both ways (NaN), as torch's maximum / minimum backward."""
    other = "lt" if greater == "gt" else "gt"

    def apply(g, i, a, d, f):
        if d[0] is None and d[1] is None:
            return None
        both = g.plus(d[0], d[1])
        tie = g.times(both, g.const(0.5))
        rest = g.where(g.add("eq", a[0], a[1]), tie, both)
        return g.where(g.add(greater, a[0], a[1]), d[0], g.where(g.add(other, a[0], a[1]), d[1], rest))

    return _Rule(apply)


def _clamp(g, i, a, d, f):
    """torch's clamp backward: x's gradient where lo <= x <= hi; a bound's where x passes it (with both
    bounds: the lower one only while lo < hi, the upper one also where hi < lo)."""
    x, lo, hi = a
    dx, dlo, dhi = d
    out = None
    inside = None
    if lo >= 0:
        inside = g.add("ge", x, lo)
    if hi >= 0:
        le = g.add("le", x, hi)
        inside = le if inside is None else g.add("and", inside, le)
    if dx is not None:
        out = dx if inside is None else g.where(inside, dx, None)
    if dlo is not None:
        below = g.add("lt", x, lo)
        if hi >= 0:
            below = g.add("and", below, g.add("lt", lo, hi))
        out = g.plus(out, g.where(below, dlo, None))
    if dhi is not None:
        above = g.add("gt", x, hi)
        if lo >= 0:
            above = g.add("or", above, g.add("lt", hi, lo))
        out = g.plus(out, g.where(above, dhi, None))
    return out


def _pow_factors(g, i, a):
    """(d/da, d/db) of a^b as torch: b a^(b - 1) (0 where b = 0) and a^b log a (0 where a = 0, b >= 0)."""
    base, e = a
    zero = g.const(0.0)
    da = g.where(g.add("eq", e, zero), None,
                 g.add("mul", e, g.add("pow", base, g.add("sub", e, g.const(1.0)))))
    db = g.where(g.add("and", g.add("eq", base, zero), g.add("ge", e, zero)), None,
                 g.add("mul", i, g.add("log", base)))
    return da, db


def _square(g, x):
    return g.add("mul", x, x)


_LN2 = math.log(2.0)
_RULES = {
    "add": _Rule(lambda g, i, a, d, f: g.plus(d[0], d[1])),
    "sub": _Rule(lambda g, i, a, d, f: g.minus(d[0], d[1])),
    "neg": _Rule(lambda g, i, a, d, f: None if d[0] is None else g.add("neg", d[0])),
    "mul": _Rule(lambda g, i, a, d, f: g.plus(g.times(d[0], a[1]), g.times(d[1], a[0]))),
    # d(a / b) = da / b - db (a / b) / b
    "div": _Rule(lambda g, i, a, d, f: g.minus(None if d[0] is None else g.add("div", d[0], a[1]),
                                               g.times(d[1], g.add("div", i, a[1])))),
    "dot": _Rule(_dot),
    "where": _Rule(lambda g, i, a, d, f: g.where(a[0], d[1], d[2])),
    "max": _max_min("gt"),
    "min": _max_min("lt"),
    "clamp": _Rule(_clamp),
    "pow": _Rule(lambda g, i, a, d, f: g.plus(g.times(d[0], f[0]), g.times(d[1], f[1])), _pow_factors),
    "abs": _scaled(lambda g, i, x: _sign(g, x)),
    "tanh": _scaled(lambda g, i, x: g.add("sub", g.const(1.0), _square(g, i))),
    "sigmoid": _scaled(lambda g, i, x: g.add("mul", g.add("sub", g.const(1.0), i), i)),
    "exp": _scaled(lambda g, i, x: i),
    "expm1": _scaled(lambda g, i, x: g.add("add", i, g.const(1.0))),
    "exp2": _scaled(lambda g, i, x: g.add("mul", i, g.const(_LN2))),
    "log": _scaled(lambda g, i, x: g.add("reciprocal", x)),
    "log1p": _scaled(lambda g, i, x: g.add("reciprocal", g.add("add", x, g.const(1.0)))),
    "log2": _scaled(lambda g, i, x: g.add("reciprocal", g.add("mul", x, g.const(_LN2)))),
    "sqrt": _scaled(lambda g, i, x: g.add("reciprocal", g.add("mul", i, g.const(2.0)))),
    "rsqrt": _scaled(lambda g, i, x: g.add("mul", g.const(-0.5), g.add("mul", _square(g, i), i))),
    "reciprocal": _scaled(lambda g, i, x: g.add("neg", _square(g, i))),
    "sin": _scaled(lambda g, i, x: g.add("cos", x)),
    "cos": _scaled(lambda g, i, x: g.add("neg", g.add("sin", x))),
    "tan": _scaled(lambda g, i, x: g.add("add", g.const(1.0), _square(g, i))),
    "atan": _scaled(lambda g, i, x: g.add("reciprocal", g.add("add", _square(g, x), g.const(1.0)))),
    "asinh": _scaled(lambda g, i, x: g.add("rsqrt", g.add("add", _square(g, x), g.const(1.0)))),
    "erf": _scaled(lambda g, i, x: g.add("mul", g.const(2.0 / math.sqrt(math.pi)),
                                         g.add("exp", g.add("neg", _square(g, x))))),
}
RULES = frozenset(_RULES) | _FLAT | {"state"}  # every op with a derivative here

__all__ = ["RULES", "StateJVP", "StateJacobian", "state_jacobian", "state_jvp"]


def autograd_jacobian(F, s):
    """(F(s) (P, M, S), dF/ds (P, M, S, S), J[p, m, j, :] = dF_j / ds) of a map F of a population's
    states, (P, M', S) -> (P, M', S), by one backward pass of torch's autograd: S copies of each
    point, copy j differentiated along component j (the copies do not interact). The truth the
    fused kernel (``kernels.numba.jacobian``) is checked against, and what ``fixedpoints.StateMap``
    uses where no kernel applies."""
    import torch

    P, M, S = s.shape
    with torch.enable_grad():
        se = s.detach().unsqueeze(2).expand(P, M, S, S).reshape(P, M * S, S).clone().requires_grad_(True)
        out = F(se).reshape(P, M, S, S)  # [p, m, copy j, component]
        (g,) = torch.autograd.grad(out.diagonal(dim1=2, dim2=3).sum(), se)
    return out[:, :, 0].detach(), g.reshape(P, M, S, S)
