"""The fused CPU unroll of a cell with more than ``units.STRAIGHT_H`` units: the step's matrix-vector
products register-blocked over a block of sequences (the source ``generate`` writes for ``units``).

The traced step (``kernels.trace.trace_units``) writes every matrix product as 'dot' nodes, one per
output element: the sum over k ascending of a_k b_k. Where one factor of every term is a
member-level value (a parameter, what is computed from the parameters alone, a constant) and the
other a step value (the state, the input, what the step computes), the dot is a row of a
matrix-vector product; the rows that share their vector (e.g. the gates' W h) form one product.
A step is then a few passes over the block of NB sequences (``block``: 64 in float64, 128 in
float32), each a numba function of the block's arrays (flat, rows of NB values: the state, the
next state, the input, the products' rows, values kept between passes; and the member's entries:
its coefficients, filled once per member, in L1):

- products (``product<g>``): per tile of ``TILE`` rows, one loop over half the block's sequences
  (``SPLIT``) in which each row's sum is written out k ascending, the same terms in the same order
  as the straight-line kernel and the trace (((a_0 b_0 + a_1 b_1) + a_2 b_2) + ...); the
  TILE x SPLIT sums stay in registers, each loaded vector serves TILE rows and each coefficient,
  broadcast, SPLIT vectors;
- elementwise passes (``pass<p>_<c>``: the gate nonlinearities, as ``codegen._Emitter`` writes
  them): every other node, each in the last pass its consumers allow, split into functions of
  about ``CHUNK_NODES`` nodes (numba compiles one long function slowly: a gru at H = 32 took 140 s
  as one function, 45 s in these); a value needed by a later pass, or as a product's vector, is
  kept in a row; the last pass writes the next state, and the two swap.

A cell whose products need other products' results (e.g. MUT3's W (r h)) has several of each;
a dot that is not of this form is computed in an elementwise pass as written. Every pass runs over
the whole block (the lanes past N compute on zero inputs, and nothing reads them), so every index
is a constant plus the lane: LLVM vectorises each loop (the rows of one array lie at known distances;
different arrays are told apart by a check per call).
"""
from __future__ import annotations

import torch

from .codegen import CODEGEN_VERSION, finish, prelude

# Measured on a gru's step (H = 16 and 32, float64, one core, AVX-512): 4 rows x 2 parts of a block of 8
# vectors took 0.8x the time of 4 x 1 (the coefficients then serve one vector each), of 4 x 4, 6 x 2 and
# 8 x 2 (their sums spill: 1.7-2.3x), and of blocks of 4 vectors (1.2-1.3x: a function call per pass).
TILE = 4  # rows of a product computed together (their sums in registers)
SPLIT = 2  # parts of the block each coefficient serves in one iteration (each part's sums in registers)
VECTORS = 8  # 64-byte vectors of sequences per block
CHUNK_NODES = 160  # nodes per elementwise function (numba's compile time grows faster than a function's length)


def block(dtype: torch.dtype) -> int:
    """The sequences per block (nb): ``VECTORS`` 64-byte vectors (64 in float64, 128 in float32)."""
    return VECTORS * 64 // (torch.finfo(dtype).bits // 8)


def min_sequences(dtype: torch.dtype) -> int:
    """The fewest sequences (N) for which these kernels run: a quarter of a block (16 in float64).
    Every pass computes the whole block; measured on a gru's plane at H = 16 (441 points, T = 100,
    float64, one core), the kernel took 1.20x the torch path's time at N = 8, 0.69x at N = 16 (4.2x
    at N = 1); float32 takes the same fraction of its block (not measured)."""
    return block(dtype) // 4


def generate(prog, dtype: torch.dtype, emitter) -> str:
    """The source of a module with ``run(params, xs, init, ends, kptr, klist, steps, out, lo, hi, nb)``
    (the interface of ``units.generate``) for a ``UnitProgram``; emitter: ``units._UnitEmitter``
    of the program (its expressions, the irregular dots' included)."""
    em = emitter
    nodes, deps = prog.nodes, em.deps
    slot = {a: g for g, a in enumerate(prog.params)}  # (name, flat index) -> column of params
    member = [d <= {"p"} for d in deps]  # member-level (constants included)
    step_live = prog.live(prog.state)
    out_live = prog.live(prog.outputs)
    hoisted = [i for i in sorted(set(step_live) | set(out_live)) if member[i] and nodes[i].op != "const"]
    step = [i for i in step_live if not member[i]]
    out = [i for i in out_live if not member[i]]
    leaf = {"state", "x"}

    # the products: dot -> (vector nodes, coefficient nodes), k ascending
    rows = {}
    for i in step:
        nd = nodes[i]
        if nd.op != "dot":
            continue
        K = len(nd.args) // 2
        pairs = list(zip(nd.args[:K], nd.args[K:]))
        if all(member[a] != member[b] for a, b in pairs):
            rows[i] = (tuple(b if member[a] else a for a, b in pairs), tuple(a if member[a] else b for a, b in pairs))
    groups: dict[tuple, list[int]] = {}
    for i, (vec, _) in rows.items():
        groups.setdefault(vec, []).append(i)

    # stages: a product runs after the pass that completes its vector; its rows are ready for the next
    stage = {}
    for i in step:
        nd = nodes[i]
        if nd.op in leaf:
            stage[i] = 0
        elif i in rows:
            stage[i] = 1 + max(stage[v] for v in rows[i][0])
        else:
            stage[i] = max([stage[a] for a in nd.args if a >= 0 and not member[a]], default=0)
    last = max([stage[i] for i in prog.state if i in stage], default=0)
    after = {vec: max(stage[v] for v in vec) for vec in groups}  # the pass each product follows

    # each elementwise node as late as its consumers allow
    consumers: dict[int, list] = {i: [] for i in step}
    for i in step:
        if i in rows:
            for v in rows[i][0]:
                consumers[v].append(("vec", after[rows[i][0]]))
        elif nodes[i].op not in leaf:
            for a in nodes[i].args:
                if a >= 0 and not member[a]:
                    consumers[a].append(("node", i))
    pass_of = {}
    for i in reversed(step):
        if nodes[i].op in leaf or i in rows:
            continue
        limits = [last] if i in prog.state else []
        limits += [pass_of[c] if kind == "node" else c for kind, c in consumers[i]]
        pass_of[i] = min(limits)
    kept = [i for i in step if i in pass_of and any(kind == "vec" or pass_of[c] > pass_of[i]
                                                   for kind, c in consumers[i])]
    kept_row = {i: r for r, i in enumerate(kept)}
    dot_row = {}
    for vec, ids in groups.items():
        for i in ids:
            dot_row[i] = len(dot_row)

    # the member's array: each product's coefficients (rows x K, row-major), then the member-level
    # values the elementwise passes read
    coef_base, entries = {}, []
    for vec, ids in groups.items():
        coef_base[vec] = len(entries)
        for i in ids:
            entries.extend(rows[i][1])
    scalars = sorted({a for i in pass_of for a in nodes[i].args if a >= 0 and member[a] and nodes[a].op != "const"}
                     | {i for i in prog.state if member[i] and nodes[i].op != "const"})
    scalar_at = {n: len(entries) + j for j, n in enumerate(scalars)}
    entries.extend(scalars)
    cidx = [slot[nodes[c].attr] if nodes[c].op == "param" else -1 for c in entries]
    computed = [(c, n) for c, n in enumerate(entries) if nodes[n].op != "param"]
    in_run = {a for i in hoisted + out if nodes[i].op != "param" for a in nodes[i].args if a >= 0}
    in_run |= {n for _, n in computed} | {i for i in out if member[i]}

    SH = prog.n_state * prog.H
    NB = block(dtype)
    dt = "np.float32" if em.f32 else "np.float64"
    sfx = em.suffix
    L, more_imports = prelude(
        [f"# generated by landscape.kernels.numba.matvec (codegen version {CODEGEN_VERSION}); do not edit",
         f"# dtype {dt}; H = {prog.H}, D = {prog.D}; {len(nodes)} nodes, {len(step)} in the step, "
         f"{len(hoisted)} per member; {len(groups)} product(s) of {len(rows)} rows, {last + 1} elementwise pass(es)"],
        [f"from landscape.kernels.numba.mathfn import (clamp, clamp_max, clamp_min, exp{sfx}, maximum, minimum,",
         f"                                           prefer_wide_vectors, sigmoid{sfx}, tanh{sfx})"],
        dt, ["TWO = DT(2.0)", *em.constants(), f"NB = {NB}  # sequences per block (the run's nb must be this)",
             f"CIDX = np.array({cidx!r}, np.int64)  # the params column of each member entry (-1: computed)"])
    w = L.append
    w("")

    # every pass is a function of the block's arrays (rows of NB values, flat): S the state, S2 the
    # next step's, X the input, V the kept values, A the products' rows; C the member's entries
    args = "S, S2, X, V, A, C"

    def ref_at(n):  # a step value at lane i
        nd = nodes[n]
        if member[n]:
            return em.ref(n)
        if nd.op == "state":
            return f"S[{nd.attr * NB} + i]"
        if nd.op == "x":
            return f"X[{nd.attr * NB} + i]"
        if n in rows:
            return f"A[{dot_row[n] * NB} + i]"
        return f"V[{kept_row[n] * NB} + i]"

    calls = []

    def function(name, doc):
        calls.append(f"{name}({args})")
        w("")
        w("@njit(**OPTS)")
        w(f"def {name}({args}):")
        w(f"    \"\"\"{doc}\"\"\"")
        w("    prefer_wide_vectors()")

    def product(g, vec, ids):
        base, K = coef_base[vec], len(vec)
        R = len(ids)
        first = dot_row[ids[0]]
        whole = R - R % TILE
        part = NB // SPLIT  # lanes i, i + part, ...: SPLIT vectors per coefficient
        function(f"product{g}", f"Rows {first}..{first + R - 1} of A: {R} sums over {K} terms, {TILE} rows at a time.")
        for r0, size in ([("r", TILE)] if whole else []) + ([(whole, R % TILE)] if R % TILE else []):
            pad = " " * (8 if r0 == "r" else 4)
            if r0 == "r":
                w(f"    for r in range(0, {whole}, {TILE}):")
            w(f"{pad}for i in range({part}):")
            for k in range(K):
                for u in range(SPLIT):
                    w(f"{pad}    x{u} = {ref_at(vec[k]).replace('+ i]', f'+ i + {u * part}]')}")
                for j in range(size):
                    c = f"C[{base + j * K + k} + r * {K}]" if r0 == "r" else f"C[{base + (r0 + j) * K + k}]"
                    w(f"{pad}    c = {c}")
                    for u in range(SPLIT):
                        w(f"{pad}    a{j}_{u} = c * x{u}" if k == 0 else f"{pad}    a{j}_{u} = a{j}_{u} + c * x{u}")
            for j in range(size):
                row = f"({first + j} + r) * NB" if r0 == "r" else f"{(first + r0 + j) * NB}"
                for u in range(SPLIT):
                    w(f"{pad}    A[{row} + i + {u * part}] = a{j}_{u}")
        w("    return 0")

    def cone(roots, p):  # the nodes of pass p the roots are computed from, ascending
        seen, todo = set(), [r for r in roots if pass_of.get(r) == p]
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo.extend(a for a in nodes[i].args if a >= 0 and pass_of.get(a) == p)
        return sorted(seen)

    def elementwise(p):
        # the roots in items that go to one function whole: each kept value; in the last pass the
        # state of each unit (an LSTM's h' and c' share their gates)
        items = [[i] for i in kept if pass_of[i] == p]
        if p == last:
            items += [[f"S{j}" for j in range(u, len(prog.state), prog.H)] for u in range(prog.H)]
        chunk = []
        for n, item in enumerate(items):
            chunk += item
            roots = [prog.state[int(c[1:])] if isinstance(c, str) else c for c in chunk]
            if len(cone(roots, p)) >= CHUNK_NODES or n == len(items) - 1:
                emit_chunk(p, chunk)
                chunk = []

    def emit_chunk(p, chunk):
        kept_here = [c for c in chunk if not isinstance(c, str)]
        state_here = sorted(int(c[1:]) for c in chunk if isinstance(c, str))
        ids = cone(kept_here + [prog.state[j] for j in state_here], p)
        inside = set(ids)
        used = sorted({a for i in ids for a in nodes[i].args if a >= 0 and not member[a] and a not in inside}
                      | {prog.state[j] for j in state_here if not member[prog.state[j]] and prog.state[j] not in inside})
        what = ([f"{len(kept_here)} kept value(s)"] if kept_here else []) + (
            [f"the state of units {min(j % prog.H for j in state_here)}..{max(j % prog.H for j in state_here)}"]
            if state_here else [])
        function(f"pass{p}_{len(calls)}", f"Elementwise pass {p}: {', '.join(what)}.")
        for a in sorted({a for i in ids for a in nodes[i].args if a in scalar_at}
                        | {prog.state[j] for j in state_here if prog.state[j] in scalar_at}):
            w(f"    v{a} = C[{scalar_at[a]}]")
        w("    for i in range(NB):")
        for a in used:
            w(f"        v{a} = {ref_at(a)}")
        L.extend(em.body(ids, 8))
        for i in kept_here:
            w(f"        V[{kept_row[i] * NB} + i] = v{i}")
        for j in state_here:
            w(f"        S2[{j * NB} + i] = {em.ref(prog.state[j])}")
        w("    return 0")

    for p in range(last + 1):
        elementwise(p)
        for g, (vec, ids) in enumerate(groups.items()):
            if after[vec] == p:
                product(g, vec, ids)

    w("")
    w("@njit(**OPTS)")
    w("def run(params, xs, init, ends, kptr, klist, steps, out, lo, hi, nb):")
    w("    \"\"\"Members lo..hi-1, blocks of NB sequences (nb == NB); see landscape.kernels.numba.matvec.\"\"\"")
    w("    prefer_wide_vectors()")
    w("    N = out.shape[2]")
    w(f"    S = np.empty({SH * NB}, DT)")
    w(f"    S2 = np.empty({SH * NB}, DT)")
    w(f"    X = np.zeros({max(1, prog.D) * NB}, DT)  # the lanes past N stay 0")
    w(f"    V = np.empty({max(1, len(kept)) * NB}, DT)")
    w(f"    A = np.empty({max(1, len(dot_row)) * NB}, DT)")
    w(f"    C = np.empty({max(1, len(entries))}, DT)")
    w("    for p in range(lo, hi):")
    w("        G = params[p]")
    for i in hoisted:
        if nodes[i].op == "param" and i in in_run:
            w(f"        v{i} = G[{slot[nodes[i].attr]}]")
    L.extend(em.body([i for i in hoisted if nodes[i].op != "param"], 8))
    w(f"        for c in range({len(entries)}):")
    w("            C[c] = G[max(CIDX[c], 0)]")
    for c, n in computed:
        w(f"        C[{c}] = {em.ref(n)}")
    w("        for n0 in range(0, N, NB):")
    w("            m = min(NB, N - n0)")
    w(f"            for j in range({SH}):")
    w("                S[j * NB:(j + 1) * NB] = init[j]")
    w("            for t in range(steps):")
    for d in range(prog.D):
        w(f"                X[{d * NB}:{d * NB} + m] = xs[{d}, t, n0:n0 + m]")
    for c in calls:
        w(f"                {c}")
    w("                S, S2 = S2, S")
    w("                for j in range(kptr[t], kptr[t + 1]):")
    w("                    k = klist[j]")
    w("                    E = ends[k, n0:n0 + m]")
    w("                    O = out[k, p, n0:n0 + m]")
    w("                    for i in range(m):")
    w("                        if E[i] == t + 1:")
    for i in out:
        if nodes[i].op == "ostate":
            w(f"                            v{i} = S[{nodes[i].attr * NB} + i]")
    L.extend(em.body(out, 28))
    for u, i in enumerate(prog.outputs):
        w(f"                            O[i, {u}] = {em.ref(i)}")
    w("    return 0")
    w("")
    return finish(L, more_imports, em.imports)
