"""The fused F and dF/ds of a cell with more than ``jacobian.STRAIGHT_H`` units: the Jacobian in matrix form,
code the size of one unit's step (the source ``jacobian`` builds above ``STRAIGHT_H``).

``jacobian.generate`` writes every entry of J as straight-line code, S^2 entries of the trace (its
cold builds: ``jacobian``'s docstring; at 32 units, many minutes). Here the traced step
(``kernels.trace.trace_units``) is cut in two:

- the products: every 'dot' node that depends on the state and whose terms are each a parameter
  times a state or input element (a row of W h or of W [x, h]) is a row r of a matrix-vector
  product, A_r = sum over t ascending of C[r, t] z[t'] (z = the state, then the input: (S + D,));
  its derivative is the row of the recurrent matrix, dA_r/ds = DA[r, :] (R, S), filled from the
  member's parameters once per member;
- the units: what each unit computes from its own products, the state and input elements, the
  parameters and constants, up to its new state values (an LSTM's c' and h'). Every unit must
  compute the same formula (``template``: the same operations in the same order; which state
  element, product row, parameter element or input channel each unit reads is a table (H, leaves)),
  so the code is written once, for one unit, in a loop over u.

The unit's formula is differentiated with respect to its leaves that depend on the state (its own
state elements and its products: ``derivative.state_jacobian`` on the template, the same rules as
``jacobian``): local partials L[sigma, q] = dF_sigma / dleaf_q, a few per unit (gru: 4, lstm: 10). The
chain rule then assembles each row of J as a loop over the S state numbers,

    J[p, m, sigma H + u, k] = sum over product leaves q of L[sigma, q] DA[r_q(u), k]
                              + sum over state leaves q of (L[sigma, q] where k = a_q(u), else 0),

dF/ds = diag(the gates' derivatives) x the recurrent matrices. Per point: the products (R x K
multiply-adds), the unit formulas (H x the template), J (S^2 x the partials per unit); per member:
the parameters, the products' coefficients and DA, and what the units compute from the parameters
and the input alone (``Q``: (H, slots)).

Not written here (``Unsupported``, and ``jacobian`` uses autograd with ``why_not`` saying why): a step
whose units compute different formulas, or whose unit formula reaches past ``MAX_TEMPLATE`` nodes (a
product of computed values, e.g. MUT3's W (r h), pulls every unit's r into each unit's formula).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..derivative import state_jacobian
from ..trace import Node, Unsupported, UnitProgram
from .codegen import CODEGEN_VERSION
from .units import _UnitEmitter

MAX_TEMPLATE = 400  # the most nodes of one unit's formula (with its derivatives) written here


@dataclass
class _Rows:
    """The products: row r is sum over t < length[r] of G[col[r, t]] z[zidx[r, t]], t ascending."""

    node: list[int]  # the program's dot node of each row
    col: np.ndarray  # (R, K) int64: the coefficient's column in the member's flat parameters
    zidx: np.ndarray  # (R, K) int64: the vector element (a state number < S, or S + an input channel)
    length: np.ndarray  # (R,) int64


@dataclass
class _Template:
    """One unit's formula: ``nodes`` a program of leaves ('state' for the state-dependent leaves: state
    elements and product rows, attr the tangent number; 'param', 'x', 'const') and operations; ``kind``
    of each node ('state', 'row', 'param', 'x', 'const' or 'op'); ``table`` (H, nodes) int64: each
    unit's state number, row, parameter column or z index at a leaf; ``out`` each new state value's node."""

    nodes: list[Node]
    kind: list[str]
    table: np.ndarray
    out: tuple[int, ...]


def columns(prog: UnitProgram) -> tuple[tuple[str, ...], dict[str, int], dict[tuple, int]]:
    """(the parameter names in the kernel's order, each one's first column, (name, j) -> column) of
    the member's flat parameters G (the names' elements one after the other)."""
    names = tuple(dict.fromkeys(name for name, _ in prog.params))
    offset, col = {}, {}
    for c, a in enumerate(prog.params):
        offset.setdefault(a[0], c)
        col[a] = c
    return names, offset, col


def products(prog: UnitProgram, col: dict) -> _Rows:
    """The rows of the step's matrix-vector products (see the module docstring)."""
    nodes, deps = prog.nodes, prog.deps()
    S = prog.n_state * prog.H
    found = []
    for i in prog.live(prog.state):
        nd = nodes[i]
        if nd.op != "dot" or "s" not in deps[i]:
            continue
        K = len(nd.args) // 2
        terms = []
        for a, b in zip(nd.args[:K], nd.args[K:]):
            coef, vec = (a, b) if nodes[a].op == "param" else (b, a)
            if nodes[coef].op != "param" or nodes[vec].op not in ("state", "x"):
                break
            terms.append((col[nodes[coef].attr], nodes[vec].attr + (S if nodes[vec].op == "x" else 0)))
        else:
            found.append((i, terms))
    K = max([len(t) for _, t in found], default=1)
    colt = np.zeros((len(found), K), np.int64)
    zidx = np.zeros((len(found), K), np.int64)
    for r, (_, terms) in enumerate(found):
        colt[r, :len(terms)], zidx[r, :len(terms)] = zip(*terms)
    return _Rows([i for i, _ in found], colt, zidx, np.array([len(t) for _, t in found], np.int64))


def template(prog: UnitProgram, rows: _Rows, col: dict) -> _Template:
    """The formula every unit computes (see ``_Template``); Unsupported where the units differ."""
    nodes, H, S = prog.nodes, prog.H, prog.n_state * prog.H
    row_of = {i: r for r, i in enumerate(rows.node)}

    def unit(u):  # (structure, table entries) of unit u's formula, nodes in depth-first post-order
        pos, shape, entry = {}, [], []

        def visit(i):
            if i in pos:
                return pos[i]
            nd = nodes[i]
            if i in row_of:
                what, at = ("row",), row_of[i]
            elif nd.op == "state":
                what, at = ("state",), nd.attr
            elif nd.op == "x":
                what, at = ("x",), S + nd.attr
            elif nd.op == "param":
                what, at = ("param",), col[nd.attr]
            elif nd.op == "const":
                what, at = ("const", nd.attr), 0
            else:
                what, at = (nd.op, tuple(visit(a) if a >= 0 else -1 for a in nd.args), nd.attr), 0
            if len(shape) >= MAX_TEMPLATE:
                raise Unsupported(f"one unit's formula has over {MAX_TEMPLATE} nodes (a product of computed values?)")
            pos[i] = len(shape)
            shape.append(what)
            entry.append(at)
            return pos[i]

        out = tuple(visit(prog.state[sigma * H + u]) for sigma in range(prog.n_state))
        return (tuple(shape), out), entry

    (shape, out), first = unit(0)
    table = [first]
    for u in range(1, H):
        (other, other_out), entry = unit(u)
        if (other, other_out) != (shape, out):
            raise Unsupported(f"unit {u} computes another formula than unit 0")
        table.append(entry)

    tnodes, kind, tangents = [], [], 0
    for q, what in enumerate(shape):
        k = what[0] if what[0] in ("row", "state", "x", "param", "const") else "op"
        kind.append(k)
        if k in ("row", "state"):
            tnodes.append(Node("state", (), tangents))
            tangents += 1
        elif k == "param":
            tnodes.append(Node("param", (), (f"leaf{q}", 0)))
        elif k == "x":
            tnodes.append(Node("x", (), q))
        elif k == "const":
            tnodes.append(Node("const", (), what[1]))
        else:
            tnodes.append(Node(what[0], what[1], what[2]))
    return _Template(tnodes, kind, np.array(table, np.int64).reshape(H, len(shape)), out)


def generate(prog: UnitProgram) -> str:
    """The source of the module with ``jac(params, xs, s, F, J) -> bad`` (the interface and layout of
    ``jacobian.generate``) for a traced step of H units, in matrix form (the module docstring)."""
    H, D, S = prog.H, prog.D, prog.n_state * prog.H
    names, offset, col = columns(prog)
    rows = products(prog, col)
    tpl = template(prog, rows, col)
    n_tangent = sum(k in ("row", "state") for k in tpl.kind)
    unit_prog = UnitProgram(nodes=tpl.nodes, state=tpl.out, output=tpl.out[0], params=(), n_state=n_tangent,
                            has_x=D > 0, H=1, D=0)
    jac = state_jacobian(unit_prog)  # J[sigma][q]: dF_sigma / d (tangent leaf q)
    tp = jac.program
    leaf_of_tangent = [q for q, k in enumerate(tpl.kind) if k in ("row", "state")]
    partials = [[(leaf_of_tangent[t], n) for t, n in enumerate(jac.J[sigma]) if n is not None]
                for sigma in range(prog.n_state)]
    roots = [*tpl.out, *(n for terms in partials for _, n in terms)]
    needed = tp.live(roots)
    em = _UnitEmitter(tp, torch.float64)
    deps = em.deps
    kind = tpl.kind + ["op"] * (len(tp.nodes) - len(tpl.kind))  # the derivatives' nodes are operations
    member = [i for i in needed if "s" not in deps[i] and tp.nodes[i].op != "const"]
    unit = [i for i in needed if "s" in deps[i]]
    slots = sorted({a for i in unit for a in tp.nodes[i].args if a >= 0 and a in set(member)}
                   | {n for n in roots if n in set(member)})
    slot = {n: c for c, n in enumerate(slots)}
    read_cols = sorted({int(c) for r in range(len(rows.node)) for c in rows.col[r, :rows.length[r]]}
                       | {int(tpl.table[u, q]) for u in range(H) for q in member if kind[q] == "param"})
    read_x = sorted({int(z) - S for r in range(len(rows.node)) for z in rows.zidx[r, :rows.length[r]] if z >= S}
                    | {int(tpl.table[u, q]) - S for u in range(H) for q in member if kind[q] == "x"})
    R, K = rows.col.shape

    L = []
    w = L.append
    w(f"# generated by landscape.kernels.numba.jacobian_wide (codegen version {CODEGEN_VERSION}); do not edit")
    w(f"# float64; H = {H}, D = {D}, S = {S}; {R} product rows of up to {K} terms; one unit: "
      f"{len(tpl.nodes)} nodes, {len(member)} per member, {len(unit)} per start, "
      f"{sum(map(len, partials))} partials")
    w("import math")
    w("import numpy as np")
    w("from numba import njit")
    w("from landscape.kernels.numba.mathfn import (clamp, clamp_max, clamp_min, exp64, maximum, minimum,")
    w("                                           sigmoid64, tanh64)")
    more_imports = len(L)
    w("")
    w("DT = np.float64")
    w("ONE = DT(1.0)")
    w("ZERO = DT(0.0)")
    L.extend(em.constants())
    w(f"S = {S}  # state numbers")
    w(f"COL = np.array({rows.col.tolist()!r}, np.int64).reshape({R}, {K})  # each product term's parameter column")
    w(f"ZIDX = np.array({rows.zidx.tolist()!r}, np.int64).reshape({R}, {K})  # its vector element (state, then input)")
    w(f"LENGTH = np.array({rows.length.tolist()!r}, np.int64)  # the terms of each row")
    w(f"LEAF = np.array({tpl.table.tolist()!r}, np.int64).reshape({H}, {len(tpl.nodes)})  # each unit's leaves")
    w(f"READ = np.array({read_cols!r}, np.int64)  # the parameter columns the step reads")
    w("OPTS = dict(nogil=True, cache=True, error_model='numpy', boundscheck=False, fastmath={'contract'})")
    w("")
    w("")
    w("@njit(**OPTS)")
    w("def jac(params, xs, s, F, J):")
    w("    \"\"\"J (P, M, S, S) = dF/ds at s (P, M, S), and F (P, M, S) unless it has no members; returns the")
    w("    number of points where s, F, J or the member's parameters or input are not finite.\"\"\"")
    w("    P, M = s.shape[0], s.shape[1]")
    w("    with_F = F.shape[0] > 0")
    w(f"    G = np.empty({len(prog.params)}, DT)  # the member's parameters, flat")
    w(f"    z = np.zeros(S + {max(D, 1)}, DT)  # the state, then the input")
    w(f"    C = np.empty(({R}, {K}), DT)  # the products' coefficients")
    w(f"    DA = np.empty(({R}, S), DT)  # dA / ds")
    w(f"    A = np.empty({max(R, 1)}, DT)  # the products")
    w(f"    Q = np.empty(({H}, {max(len(slots), 1)}), DT)  # per unit, what it computes from the member alone")
    w("    acc = np.empty(S, DT)")
    w("    bad = 0")
    w("    for p in range(P):")
    for c, name in enumerate(names):
        size = sum(1 for a in prog.params if a[0] == name)
        w(f"        G[{offset[name]}:{offset[name] + size}] = params[{c}][p if params[{c}].shape[0] > 1 else 0]  # {name}")
    if D:
        w("        X = xs[p if xs.shape[0] > 1 else 0]")
        w(f"        z[S:S + {D}] = X[:{D}]")
    w("        nan_member = ZERO  # x * 0 is NaN exactly where x is inf or NaN")
    w("        for c in READ:")
    w("            nan_member += G[c] * ZERO")
    for d in read_x:
        w(f"        nan_member += z[S + {d}] * ZERO")
    w(f"        for r in range({R}):")
    w("            for k in range(S):")
    w("                DA[r, k] = ZERO")
    w("            for t in range(LENGTH[r]):")
    w("                C[r, t] = G[COL[r, t]]")
    w("                if ZIDX[r, t] < S:")
    w("                    DA[r, ZIDX[r, t]] += C[r, t]")
    w(f"        for u in range({H}):")
    for q in member:
        if kind[q] == "param":
            w(f"            v{q} = G[LEAF[u, {q}]]")
        elif kind[q] == "x":
            w(f"            v{q} = z[LEAF[u, {q}]]")
    L.extend(em.body(member, 12))
    for n, c in slot.items():
        w(f"            Q[u, {c}] = v{n}")
    w("        for m in range(M):")
    w("            nan = nan_member")
    w("            for k in range(S):")
    w("                z[k] = s[p, m, k]")
    w("                nan += z[k] * ZERO")
    w("                acc[k] = ZERO")
    w(f"            for r in range({R}):")
    w("                a = C[r, 0] * z[ZIDX[r, 0]]")
    w("                for t in range(1, LENGTH[r]):")
    w("                    a += C[r, t] * z[ZIDX[r, t]]")
    w("                A[r] = a")
    w(f"            for u in range({H}):")
    for q in unit:
        if kind[q] == "state":
            w(f"                v{q} = z[LEAF[u, {q}]]")
        elif kind[q] == "row":
            w(f"                v{q} = A[LEAF[u, {q}]]")
    for n, c in slot.items():
        w(f"                v{n} = Q[u, {c}]")
    L.extend(em.body(unit, 16))
    for sigma, n in enumerate(tpl.out):
        w(f"                nan += {em.ref(n)} * ZERO")
        w("                if with_F:")
        w(f"                    F[p, m, {sigma * H} + u] = {em.ref(n)}")
    for sigma, terms in enumerate(partials):
        for q, _ in terms:
            w(f"                i{q} = LEAF[u, {q}]")
    w("                for k in range(S):")
    for sigma, terms in enumerate(partials):
        parts = [f"{em.ref(n)} * DA[i{q}, k]" if kind[q] == "row" else f"({em.ref(n)} if k == i{q} else ZERO)"
                 for q, n in terms]
        w(f"                    j = {' + '.join(parts) if parts else 'ZERO'}")
        w(f"                    J[p, m, {sigma * H} + u, k] = j")
        w("                    acc[k] += j * ZERO")
    w("            for k in range(S):")
    w("                nan += acc[k]")
    w("            bad += nan != ZERO")
    w("    return bad")
    w("")
    if em.imports:
        L.insert(more_imports, f"from landscape.kernels.numba.mathfn import {', '.join(sorted(em.imports))}")
    return "\n".join(L)
