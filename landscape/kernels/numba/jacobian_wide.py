"""The fused F and dF/ds of a cell with more than ``jacobian.STRAIGHT_H`` units: the Jacobian in
matrix form, code the size of one unit's step (the source ``jacobian`` builds above ``STRAIGHT_H``).

``jacobian.generate`` writes every entry of J as straight-line code, S^2 entries of the trace (its
cold builds: ``jacobian``'s docstring; at 32 units, many minutes). Here the traced step
(``kernels.trace.trace_units``) is cut in two:

- the products: every 'dot' node that depends on the state and whose terms are each a parameter
  times a state or input element (a row of W h or of W [x, h]) is a row r of a matrix-vector
  product, A_r = sum over t ascending of C[r, t] z[t'] (z = the state, then the input: (S + D,));
  its derivative is the row of the recurrent matrix, dA_r/ds = DA[r, :] (R, S), filled from the
  member's parameters once per member. A second stage: the rows whose vector is one value per unit
  that the units compute (MUT's W (r h): V[u] = r_u h_u), A2_r = sum over t of C2[r, t] V[t], and
  dA2_r/ds = sum over t of C2[r, t] dV[t]/ds (R2 x H x S per point: dV is dense);
- the units: what each unit computes from its own products, the state and input elements, the
  parameters and constants, up to its new state values (an LSTM's c' and h'; for the second stage,
  up to its element of each vector first). Every unit must compute the same formula (``template``:
  the same operations in the same order; which state element, product row, parameter element or
  input channel each unit reads is a table (H, leaves)), so the code is written once, for one unit,
  in a loop over u.

The unit's formula is differentiated with respect to its leaves that depend on the state (its
state elements and its products: ``derivative.state_jacobian`` on the template, the same rules as
``jacobian``): local partials L[sigma, q] = dF_sigma / dleaf_q, a few per unit (gru: 4, lstm: 10). The
chain rule then assembles each row of J as a loop over the S state numbers,

    J[p, m, sigma H + u, k] = sum over product leaves q of L[sigma, q] DA[r_q(u), k]  (DA2 likewise)
                              + sum over state leaves q of (L[sigma, q] where k = a_q(u), else 0),

dF/ds = diag(the gates' derivatives) x the recurrent matrices. Per point: the products (R x K
multiply-adds), the unit formulas (H x the template), J (S^2 x the partials per unit); per member:
the parameters, the products' coefficients and DA, and what the units compute from the parameters
and the input alone (``Q``: (H, slots)).

The cut (``MatrixForm``: the products, the stages, the module's tables) is shared with the fused
lambda_T above ``STRAIGHT_H`` (``lyapunov.generate_wide``: J v instead of J, ``_Stage.jvp_code``).

Not written here (``Unsupported``, and ``jacobian`` uses autograd with ``why_not`` saying why): a step
whose units compute different formulas, whose unit formula reaches past ``MAX_TEMPLATE`` nodes, or
with a product of values computed from a second-stage product.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..derivative import state_jacobian
from ..trace import Node, Unsupported, UnitProgram
from .codegen import CODEGEN_VERSION, MATHFN64, finish, prelude
from .units import _UnitEmitter

MAX_TEMPLATE = 400  # the most nodes of one unit's formula written here
TANGENT = ("state", "row", "row2")  # the leaves of a unit's formula that depend on the state


@dataclass
class _Rows:
    """Products: row r is sum over t < length[r] of G[col[r, t]] times its vector's element vec[r, t],
    t ascending (stage 1: z[vec] (z: the state, then the input); stage 2: V[group[r], vec], the
    value ``vectors[group[r]]`` of unit vec)."""

    node: list[int]  # the program's dot node of each row
    col: np.ndarray  # (R, K) int64: the coefficient's column in the member's flat parameters
    vec: np.ndarray  # (R, K) int64: the vector element
    length: np.ndarray  # (R,) int64
    group: np.ndarray  # (R,) int64: stage 2, the row's vector
    vectors: list[tuple[int, ...]]  # stage 2: each vector's nodes, one per unit

    @classmethod
    def of(cls, found: list, vectors=()) -> _Rows:
        """found: (node, [(column, element)...], group) per row."""
        K = max([len(t) for _, t, _ in found], default=1)
        col, vec = np.zeros((len(found), K), np.int64), np.zeros((len(found), K), np.int64)
        for r, (_, terms, _) in enumerate(found):
            col[r, :len(terms)], vec[r, :len(terms)] = zip(*terms)
        return cls([i for i, _, _ in found], col, vec, np.array([len(t) for _, t, _ in found], np.int64),
                   np.array([g for _, _, g in found], np.int64), list(vectors))


@dataclass
class _Template:
    """One unit's formula: ``nodes`` a program of leaves ('state' for the leaves of ``TANGENT``, attr
    the tangent number; 'param', 'x', 'const') and operations; ``kind`` of each node ('state', 'row',
    'row2', 'param', 'x', 'const' or 'op'); ``table`` (H, nodes) int64: each unit's state number,
    row, parameter column or z index at a leaf; ``out`` the nodes of the values it gives."""

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


def products(prog: UnitProgram, col: dict) -> tuple[_Rows, _Rows]:
    """The rows of the step's matrix-vector products: stage 1, of the state and input (W h, W [x, h]);
    stage 2, of one value per unit that the units compute (MUT's W (r h))."""
    nodes, deps, H = prog.nodes, prog.deps(), prog.H
    S = prog.n_state * H
    first, second, vectors = [], [], {}
    for i in prog.live(prog.state):
        nd = nodes[i]
        if nd.op != "dot" or "s" not in deps[i]:
            continue
        K = len(nd.args) // 2
        pairs = [(a, b) if nodes[a].op == "param" else (b, a) for a, b in zip(nd.args[:K], nd.args[K:])]
        if any(nodes[c].op != "param" or nodes[v].op == "param" for c, v in pairs):
            continue
        if all(nodes[v].op in ("state", "x") for _, v in pairs):
            first.append((i, [(col[nodes[c].attr], nodes[v].attr + (S if nodes[v].op == "x" else 0))
                              for c, v in pairs], 0))
        elif K == H and all("s" in deps[v] for _, v in pairs):
            vec = tuple(v for _, v in pairs)
            g = vectors.setdefault(vec, len(vectors))
            second.append((i, [(col[nodes[c].attr], u) for u, (c, _) in enumerate(pairs)], g))
    return _Rows.of(first), _Rows.of(second, vectors)


def template(prog: UnitProgram, roots, rows: dict, col: dict) -> _Template:
    """The formula every unit u computes for the values roots(u) (see ``_Template``), stopping at the
    rows (node -> (kind, row)); Unsupported where the units differ."""
    nodes, H, S = prog.nodes, prog.H, prog.n_state * prog.H

    def unit(u):  # (structure, table entries) of unit u's formula, nodes in depth-first post-order
        pos, shape, entry = {}, [], []

        def visit(i):
            if i in pos:
                return pos[i]
            nd = nodes[i]
            if i in rows:
                what, at = (rows[i][0],), rows[i][1]
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
                raise Unsupported(f"one unit's formula has over {MAX_TEMPLATE} nodes")
            pos[i] = len(shape)
            shape.append(what)
            entry.append(at)
            return pos[i]

        out = tuple(visit(i) for i in roots(u))
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
        k = what[0] if what[0] in (*TANGENT, "x", "param", "const") else "op"
        kind.append(k)
        if k in TANGENT:
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


class _PrefixedEmitter(_UnitEmitter):
    """``units._UnitEmitter`` with its names prefixed (two formulas in one module)."""

    def __init__(self, prog, prefix: str):
        super().__init__(prog, torch.float64)
        self.prefix = prefix

    def ref(self, i: int) -> str:
        return f"K{self.prefix}{i}" if self.nodes[i].op == "const" else f"v{self.prefix}{i}"

    def body(self, ids, indent) -> list[str]:
        return [f"{' ' * indent}{self.ref(i)} = {self.expr(i)}" for i in ids
                if self.nodes[i].op not in ("param", "state", "ostate", "x", "const")]

    def constants(self) -> list[str]:
        return [line.replace("K", f"K{self.prefix}", 1) for line in super().constants()]


class _Stage:
    """A unit's formula differentiated with respect to its leaves of ``TANGENT``: the local partials
    ``partials[o]`` ((leaf, node) pairs) of each value it gives; its nodes split into what the member
    alone determines (``member``, computed once per member into Q<prefix> (H, slots)) and the rest
    (``unit``: what depends on one of ``point``, a set of 's' (the state), 'x' (the input); the input
    is per member for the Newton Jacobian, per step for lambda_T)."""

    def __init__(self, tpl: _Template, H: int, prefix: str, point: frozenset = frozenset({"s"})):
        self.tpl, self.prefix = tpl, prefix
        leaves = [q for q, k in enumerate(tpl.kind) if k in TANGENT]
        prog = UnitProgram(nodes=tpl.nodes, state=tpl.out, output=tpl.out[0], params=(), n_state=len(leaves),
                           has_x=False, H=1, D=0)
        jac = state_jacobian(prog)  # J[o][t]: d out_o / d (tangent leaf t)
        self.tp = jac.program
        self.partials = [[(leaves[t], n) for t, n in enumerate(row) if n is not None] for row in jac.J]
        roots = [*tpl.out, *(n for terms in self.partials for _, n in terms)]
        self.em = em = _PrefixedEmitter(self.tp, prefix)
        self.kind = tpl.kind + ["op"] * (len(self.tp.nodes) - len(tpl.kind))  # the derivatives: operations
        needed = self.tp.live(roots)
        self.member = [i for i in needed if not em.deps[i] & point and self.tp.nodes[i].op != "const"]
        self.unit = [i for i in needed if em.deps[i] & point]
        member = set(self.member)
        self.slots = sorted({a for i in self.unit for a in self.tp.nodes[i].args if a in member}
                            | {n for n in roots if n in member})

    def read(self, kind: str) -> set[int]:
        """The table entries (every unit's) of the leaves of this kind it reads."""
        return {int(self.tpl.table[u, q]) for u in range(self.tpl.table.shape[0]) for q in self.member + self.unit
                if self.kind[q] == kind}

    def member_code(self, indent: int) -> list[str]:
        """Inside a loop over u: the member-level values, into Q<prefix>[u]."""
        pad, em, L = " " * indent, self.em, []
        for q in self.member:
            if self.kind[q] == "param":
                L.append(f"{pad}{em.ref(q)} = G[LEAF{self.prefix}[u, {q}]]")
            elif self.kind[q] == "x":
                L.append(f"{pad}{em.ref(q)} = z[LEAF{self.prefix}[u, {q}]]")
        L += em.body(self.member, indent)
        L += [f"{pad}Q{self.prefix}[u, {c}] = {em.ref(n)}" for c, n in enumerate(self.slots)]
        return L

    def unit_code(self, indent: int) -> list[str]:
        """Inside a loop over u at a point: the unit's values and partials."""
        pad, em, L = " " * indent, self.em, []
        source = {"state": "z", "x": "z", "row": "A", "row2": "A2"}
        L += [f"{pad}{em.ref(q)} = {source[self.kind[q]]}[LEAF{self.prefix}[u, {q}]]" for q in self.unit
              if self.kind[q] in source]
        L += [f"{pad}{em.ref(n)} = Q{self.prefix}[u, {c}]" for c, n in enumerate(self.slots)]
        return L + em.body(self.unit, indent)

    def tangent_code(self, indent: int, write) -> list[str]:
        """Inside a loop over u at a point: the derivatives of each value o along every state number,
        a loop over k with ``write(o, j)`` the lines that store j (dout_o / ds_k)."""
        pad, em = " " * indent, self.em
        used = sorted({q for terms in self.partials for q, _ in terms})
        L = [f"{pad}i{q} = LEAF{self.prefix}[u, {q}]" for q in used]
        L.append(f"{pad}for k in range(S):")
        tangent = {"row": "DA[i{q}, k]", "row2": "DB[i{q}, k]"}
        for o, terms in enumerate(self.partials):
            parts = [f"{em.ref(n)} * {tangent[self.kind[q]].format(q=q)}" if self.kind[q] in tangent
                     else f"({em.ref(n)} if k == i{q} else ZERO)" for q, n in terms]
            L.append(f"{pad}    j = {' + '.join(parts) if parts else 'ZERO'}")
            L += [f"{pad}    {line}" for line in write(o)]
        return L

    def jvp_code(self, indent: int, write) -> list[str]:
        """Inside a loop over u at a point: the derivative of each value o along the direction whose
        tangents are zv (the state's, (S,)), dA (the products', (R1,)) and dA2 (the second products',
        (R2,)), with ``write(o)`` the lines that store it (j)."""
        pad, em = " " * indent, self.em
        used = sorted({q for terms in self.partials for q, _ in terms})
        L = [f"{pad}i{q} = LEAF{self.prefix}[u, {q}]" for q in used]
        tangent = {"state": "zv", "row": "dA", "row2": "dA2"}
        for o, terms in enumerate(self.partials):
            parts = [f"{em.ref(n)} * {tangent[self.kind[q]]}[i{q}]" for q, n in terms]
            L.append(f"{pad}j = {' + '.join(parts) if parts else 'ZERO'}")
            L += [f"{pad}{line}" for line in write(o)]
        return L

    def tables(self) -> list[str]:
        H, n = self.tpl.table.shape
        return [f"LEAF{self.prefix} = np.array({self.tpl.table.tolist()!r}, np.int64).reshape({H}, {n})"
                f"  # each unit's leaves"]


@dataclass
class MatrixForm:
    """A traced step cut into its products and one unit's formula (the module docstring): what a
    generator in matrix form writes from. ``stages``: the second products' vectors' stage (prefix
    'p') when there are second products, then the new state's (prefix '')."""

    prog: UnitProgram
    names: tuple[str, ...]  # the parameters in the kernel's order
    offset: dict[str, int]  # each one's first column in G
    rows1: _Rows
    rows2: _Rows
    stages: list[_Stage]
    read_cols: list[int]  # the parameter columns the step reads, ascending
    read_x: list[int]  # the z indices of the inputs the step reads, ascending

    @classmethod
    def of(cls, prog: UnitProgram, point: frozenset = frozenset({"s"})) -> MatrixForm:
        """point: what a unit's values are recomputed for (``_Stage``); Unsupported where the matrix
        form does not apply."""
        H, S = prog.H, prog.n_state * prog.H
        names, offset, col = columns(prog)
        rows1, rows2 = products(prog, col)
        kinds = {**{i: ("row", r) for r, i in enumerate(rows1.node)},
                 **{i: ("row2", r) for r, i in enumerate(rows2.node)}}
        final = _Stage(template(prog, lambda u: [prog.state[o * H + u] for o in range(prog.n_state)], kinds, col), H,
                       "", point)
        stages = [final]
        if rows2.node:  # the values the second products take, one per unit and vector
            pre = template(prog, lambda u: [vec[u] for vec in rows2.vectors], kinds, col)
            if "row2" in pre.kind:
                raise Unsupported("a product of values computed from another such product")
            stages.insert(0, _Stage(pre, H, "p", point))
        read_cols = set().union(*(st.read("param") for st in stages))
        read_x = set().union(*(st.read("x") for st in stages))
        for rows in (rows1, rows2):
            read_cols |= {int(c) for r in range(len(rows.node)) for c in rows.col[r, :rows.length[r]]}
        read_x |= {int(v) for r in range(len(rows1.node)) for v in rows1.vec[r, :rows1.length[r]] if v >= S}
        return cls(prog, names, offset, rows1, rows2, stages, sorted(read_cols), sorted(read_x))

    def summary(self) -> str:
        """The second line of a generated module's header."""
        prog = self.prog
        (R1, K1), (R2, K2) = self.rows1.col.shape, self.rows2.col.shape
        return (f"# float64; H = {prog.H}, D = {prog.D}, S = {prog.n_state * prog.H}; {R1} + {R2} product rows of "
                f"up to {K1}, {K2} terms; one unit: "
                + "; ".join(f"{len(st.tpl.nodes)} nodes, {len(st.member)} per member, {len(st.unit)} per start, "
                            f"{sum(map(len, st.partials))} partials" for st in self.stages))

    def module(self, title: str, code: list[str]) -> str:
        """The module: the header (title, ``summary``), imports, constants and tables, then the code
        (written before this is called: the mathfn functions it uses are known then)."""
        S = self.prog.n_state * self.prog.H
        tables = [c for st in self.stages for c in st.em.constants()] + [f"S = {S}  # state numbers"]
        for tag, rows in (("1", self.rows1), ("2", self.rows2)):
            R, K = rows.col.shape
            tables += [f"COL{tag} = np.array({rows.col.tolist()!r}, np.int64).reshape({R}, {K})"
                       "  # each term's parameter column",
                       f"VEC{tag} = np.array({rows.vec.tolist()!r}, np.int64).reshape({R}, {K})"
                       "  # its vector's element",
                       f"LENGTH{tag} = np.array({rows.length.tolist()!r}, np.int64)  # the terms of each row"]
        tables.append(f"GROUP2 = np.array({self.rows2.group.tolist()!r}, np.int64)"
                      "  # the vector of each second-stage row")
        tables += [line for st in self.stages for line in st.tables()]
        tables.append(f"READ = np.array({self.read_cols!r}, np.int64)  # the parameter columns the step reads")
        L, at = prelude([title, self.summary()], MATHFN64, "np.float64", tables)
        return finish([*L, "", "", *code], at, set().union(*(st.em.imports for st in self.stages)))

    def parameter_code(self, indent: int) -> list[str]:
        """Inside a loop over p: the member's parameters into G (flat)."""
        pad, prog = " " * indent, self.prog
        L = []
        for c, name in enumerate(self.names):
            size = sum(1 for a in prog.params if a[0] == name)
            L.append(f"{pad}G[{self.offset[name]}:{self.offset[name] + size}] = "
                     f"params[{c}][p if params[{c}].shape[0] > 1 else 0]  # {name}")
        return L


def generate(prog: UnitProgram) -> str:
    """The source of the module with ``jac(params, xs, s, F, J) -> bad`` (the interface and layout of
    ``jacobian.generate``) for a traced step of H units, in matrix form (the module docstring)."""
    form = MatrixForm.of(prog)
    H, D = prog.H, prog.D
    rows1, rows2, stages, final = form.rows1, form.rows2, form.stages, form.stages[-1]
    R1, K1 = rows1.col.shape
    R2, K2 = rows2.col.shape
    V = len(rows2.vectors)

    L = []
    w = L.append
    w("@njit(**OPTS)")
    w("def jac(params, xs, s, F, J):")
    w("    \"\"\"J (P, M, S, S) = dF/ds at s (P, M, S), and F (P, M, S) unless it has no members; returns the")
    w("    number of points where s, F, J or the member's parameters or input are not finite.\"\"\"")
    w("    P, M = s.shape[0], s.shape[1]")
    w("    with_F = F.shape[0] > 0")
    w(f"    G = np.empty({len(prog.params)}, DT)  # the member's parameters, flat")
    w(f"    z = np.zeros(S + {max(D, 1)}, DT)  # the state, then the input")
    w(f"    C = np.empty(({R1}, {K1}), DT)  # the products' coefficients")
    w(f"    DA = np.empty(({R1}, S), DT)  # their derivatives dA / ds")
    w(f"    A = np.empty({max(R1, 1)}, DT)  # the products")
    w(f"    C2 = np.empty(({R2}, {K2}), DT)  # the second products' coefficients")
    w(f"    DB = np.empty(({R2}, S), DT)  # their derivatives dA2 / ds")
    w(f"    A2 = np.empty({max(R2, 1)}, DT)  # the second products")
    w(f"    V = np.empty(({V}, {H}), DT)  # their vectors")
    w(f"    DV = np.empty(({V}, {H}, S), DT)  # and the vectors' derivatives")
    for st in stages:
        w(f"    Q{st.prefix} = np.empty(({H}, {max(len(st.slots), 1)}), DT)  # per unit, what it computes from the member alone")
    w("    acc = np.empty(S, DT)")
    w("    bad = 0")
    w("    for p in range(P):")
    L.extend(form.parameter_code(8))
    if D:
        w("        X = xs[p if xs.shape[0] > 1 else 0]")
        w(f"        z[S:S + {D}] = X[:{D}]")
    w("        nan_member = ZERO  # x * 0 is NaN exactly where x is inf or NaN")
    w("        for c in READ:")
    w("            nan_member += G[c] * ZERO")
    for d in form.read_x:
        w(f"        nan_member += z[{d}] * ZERO")
    w(f"        for r in range({R1}):")
    w("            for k in range(S):")
    w("                DA[r, k] = ZERO")
    w("            for t in range(LENGTH1[r]):")
    w("                C[r, t] = G[COL1[r, t]]")
    w("                if VEC1[r, t] < S:")
    w("                    DA[r, VEC1[r, t]] += C[r, t]")
    w(f"        for r in range({R2}):")
    w("            for t in range(LENGTH2[r]):")
    w("                C2[r, t] = G[COL2[r, t]]")
    w(f"        for u in range({H}):")
    for st in stages:
        L.extend(st.member_code(12))
    w("        for m in range(M):")
    w("            nan = nan_member")
    w("            for k in range(S):")
    w("                z[k] = s[p, m, k]")
    w("                nan += z[k] * ZERO")
    w("                acc[k] = ZERO")
    w(f"            for r in range({R1}):")
    w("                a = C[r, 0] * z[VEC1[r, 0]]")
    w("                for t in range(1, LENGTH1[r]):")
    w("                    a += C[r, t] * z[VEC1[r, t]]")
    w("                A[r] = a")
    if len(stages) == 2:
        pre = stages[0]
        w(f"            for u in range({H}):")
        L.extend(pre.unit_code(16))
        for g, n in enumerate(pre.tpl.out):
            w(f"                V[{g}, u] = {pre.em.ref(n)}")
        L.extend(pre.tangent_code(16, lambda o: [f"DV[{o}, u, k] = j"]))
        w(f"            for r in range({R2}):")
        w("                g = GROUP2[r]")
        w("                a = C2[r, 0] * V[g, VEC2[r, 0]]")
        w("                for t in range(1, LENGTH2[r]):")
        w("                    a += C2[r, t] * V[g, VEC2[r, t]]")
        w("                A2[r] = a")
        w("                for k in range(S):")
        w("                    DB[r, k] = ZERO")
        w("                for t in range(LENGTH2[r]):")
        w("                    c = C2[r, t]")
        w("                    for k in range(S):")
        w("                        DB[r, k] += c * DV[g, VEC2[r, t], k]")
    w(f"            for u in range({H}):")
    L.extend(final.unit_code(16))
    for o, n in enumerate(final.tpl.out):
        w(f"                nan += {final.em.ref(n)} * ZERO")
        w("                if with_F:")
        w(f"                    F[p, m, {o * H} + u] = {final.em.ref(n)}")
    L.extend(final.tangent_code(16, lambda o: [f"J[p, m, {o * H} + u, k] = j", "acc[k] += j * ZERO"]))
    w("            for k in range(S):")
    w("                nan += acc[k]")
    w("            bad += nan != ZERO")
    w("    return bad")
    w("")
    return form.module(f"# generated by landscape.kernels.numba.jacobian_wide (codegen version {CODEGEN_VERSION}); "
                       "do not edit", L)
