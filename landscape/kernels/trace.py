"""Trace a one-unit cell's torch ``step`` into a scalar program: one formula per (member, sequence).

With one hidden unit (H = 1) and at most one input (D <= 1) a cell's step is, for nearly every cell
one writes, elementwise over the population member p and the sequence n: the new state of
(p, n) depends only on the parameters of p, the state of (p, n) and the input of n. ``trace_cell``
runs ``cell.step`` once on small random tensors (P = 3 members, N = 5 sequences) under a
``TorchDispatchMode`` that records every aten operation, and turns the record into a ``Program``:
a list of scalar nodes (parameters, state, input, constants, arithmetic and the elementary
functions) in evaluation order, with the nodes that give the new state and the cell's output.

Whether an operation really is elementwise over (p, n) is checked, not assumed: every traced
tensor carries two integer maps of its own shape and strides, the member and the sequence each of
its elements belongs to (-1: none). View operations (transpose, expand, view, ...) are applied to
the maps themselves, so they follow the elements exactly; an elementwise operation must find, at
every element, the operands agreeing on (p, n); a reduction or matrix product is accepted only
over dimensions of size one. Anything else (a mean over sequences, a concatenation, an operation
this module does not know, a dtype change) makes the trace fail with a reason, and the engine
keeps the torch path. The generated kernel is also checked against ``cell.step`` on other random
inputs when it is built (``runtime.self_check``), which catches what a single trace cannot see
(data-dependent Python control flow, for one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

TRACE_P, TRACE_N = 3, 5  # distinct sizes, so that a mix-up of the two axes cannot pass


class Unsupported(Exception):
    """The step cannot be written as one scalar formula per (member, sequence)."""


# ---------------------------------------------------------------------------------------------
# the program


@dataclass(frozen=True)
class Node:
    """One scalar value of the program.

    op     'param' (attr: name), 'state' (attr: index), 'x' (the input), 'const' (attr: value),
           or an operation: add sub mul div neg abs max min clamp tanh sigmoid exp expm1 exp2 log log1p
           log2 sqrt rsqrt reciprocal pow sin cos tan atan asinh erf floor ceil trunc round where gt lt
           ge le eq ne not and or float (bool -> 0/1)
    args   operand node ids (a clamp's missing bound is -1)
    attr   the parameter name, state index or constant value (else None)
    """

    op: str
    args: tuple[int, ...] = ()
    attr: object = None


@dataclass
class Program:
    """A traced step: nodes in evaluation order; ``state`` the node of each new state value,
    ``output`` the node of the cell's output (on a separate trace of ``cell.output``, whose
    'state' nodes are the state it is applied to); ``params`` the parameter names, in the order
    the kernel receives them."""

    nodes: list[Node]
    state: tuple[int, ...]
    output: int
    params: tuple[str, ...]
    n_state: int
    has_x: bool
    init: tuple[float | None, ...] = ()  # None: h0 (the base class); a number: that constant
    notes: list[str] = field(default_factory=list)

    def deps(self) -> list[frozenset]:
        """What each node depends on: a subset of {'p', 'x', 's'} (the parameters, the input, the
        state); empty for constants and what is computed from constants alone."""
        out = []
        for nd in self.nodes:
            if nd.op == "param":
                d = {"p"}
            elif nd.op == "x":
                d = {"x"}
            elif nd.op in ("state", "ostate"):
                d = {"s"}
            elif nd.op == "const":
                d = set()
            else:
                d = set()
                for a in nd.args:
                    if a >= 0:
                        d |= out[a]
            out.append(frozenset(d))
        return out

    def live(self, roots) -> list[int]:
        """The ids of the nodes ``roots`` are computed from (themselves included), ascending."""
        return live(self.nodes, roots)

    def describe(self) -> str:
        lines = []
        for i, nd in enumerate(self.nodes):
            a = ", ".join(f"%{j}" if j >= 0 else "_" for j in nd.args)
            lines.append(f"%{i} = {nd.op}({a})" + (f" [{nd.attr!r}]" if nd.attr is not None else ""))
        lines.append(f"state <- {', '.join(f'%{j}' for j in self.state)}; output <- %{self.output}")
        return "\n".join(lines)



def _op_names(func, kwargs) -> tuple[str, str, bool]:
    """(name, base name without the in-place '_', whether it mutates) of an aten op; refuses out=."""
    name = func.overloadpacket.__name__
    if "out" in kwargs:
        raise Unsupported(f"{name} with out=")
    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    return name, base, func._schema.is_mutable

class _Builder:
    """Nodes with common subexpressions shared (a node is keyed by what it computes)."""

    def __init__(self):
        self.nodes: list[Node] = []
        self._index: dict[Node, int] = {}

    def add(self, op: str, args=(), attr=None) -> int:
        node = Node(op, tuple(args), attr)
        if op == "const" and isinstance(attr, float) and math.isnan(attr):
            node = Node(op, (), "nan")  # NaN != NaN: key it by name
        hit = self._index.get(node)
        if hit is not None:
            return hit
        self.nodes.append(node)
        self._index[node] = len(self.nodes) - 1
        return len(self.nodes) - 1

    def const(self, value) -> int:
        v = float(value)
        return self.add("const", (), "nan" if math.isnan(v) else v)


# ---------------------------------------------------------------------------------------------
# recording


class _Recorder(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # True wraps __torch_dispatch__ in torch._disable_dynamo: a 1.7 s import of dynamo

    def __init__(self):
        super().__init__()
        self.log: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.log.append((func, args, kwargs, out))
        return out


@dataclass
class _Value:
    """A traced tensor: its node (or, for a bool or float tensor, one node for all elements), and
    the member / sequence maps of its elements (-1: does not depend)."""

    node: int
    pidx: Tensor
    nidx: Tensor
    dtype: torch.dtype


def _maps_like(t: Tensor, pidx: Tensor | None = None, nidx: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Index maps of t's shape (contiguous: a view maps elements by their row-major order, which
    does not depend on strides, so views are applied to the maps as ``reshape``)."""
    out = []
    for src in (pidx, nidx):
        out.append(torch.full(tuple(t.shape), -1, dtype=torch.int64) if src is None
                   else src.expand(tuple(t.shape)).contiguous())
    return out[0], out[1]


def _combine(shape, maps: list[Tensor]) -> Tensor:
    """The common index of operands at each element of the broadcast shape; Unsupported where two
    operands belong to different members (or sequences) at one element."""
    out = torch.full(tuple(shape), -1, dtype=torch.int64)
    for m in maps:
        m = m.expand(tuple(shape))
        clash = (out >= 0) & (m >= 0) & (out != m)
        if bool(clash.any()):
            raise Unsupported("an operation mixes different members or sequences (not elementwise)")
        out = torch.where(m >= 0, m, out)
    return out


_VIEWS = {"transpose", "t", "unsqueeze", "squeeze", "expand", "view", "_unsafe_view", "reshape", "permute",
          "alias", "clone", "detach", "contiguous", "lift_fresh", "lift_fresh_copy", "expand_copy", "view_copy",
          "squeeze_copy", "unsqueeze_copy", "transpose_copy", "permute_copy", "t_copy", "alias_copy",
          "_reshape_alias", "as_strided", "select", "slice", "movedim", "flatten", "unflatten", "numpy_T",
          "mT", "adjoint", "swapaxes", "swapdims", "broadcast_to", "resolve_conj", "resolve_neg",
          "positive", "_conj", "conj", "flip", "roll", "narrow", "index_select", "repeat", "tile", "rot90",
          "diagonal", "unfold", "split", "chunk", "unbind"}  # pure indexing: applied to the index maps
_FACTORIES = {"zeros_like", "ones_like", "full_like", "empty_like", "zeros", "ones", "full", "scalar_tensor",
              "new_zeros", "new_ones", "new_full", "tensor", "new_empty", "empty", "empty_strided"}
_REDUCTIONS = {"sum", "mean", "amax", "amin", "prod", "max", "min", "nansum", "logsumexp"}
_UNARY = {"neg": "neg", "abs": "abs", "tanh": "tanh", "sigmoid": "sigmoid", "exp": "exp", "expm1": "expm1",
          "log": "log", "log1p": "log1p", "sqrt": "sqrt", "rsqrt": "rsqrt", "reciprocal": "reciprocal",
          "logical_not": "not", "sin": "sin", "cos": "cos", "tan": "tan", "atan": "atan", "asinh": "asinh",
          "erf": "erf", "log2": "log2", "exp2": "exp2", "floor": "floor", "ceil": "ceil", "trunc": "trunc",
          "round": "round"}
_COMPARE = {"gt": "gt", "lt": "lt", "ge": "ge", "le": "le", "eq": "eq", "ne": "ne", "greater": "gt",
            "less": "lt", "greater_equal": "ge", "less_equal": "le", "not_equal": "ne"}
_LOGICAL = {"logical_and": "and", "logical_or": "or", "bitwise_and": "and", "bitwise_or": "or"}


class _Tracer:
    def __init__(self, dtype: torch.dtype):
        self.b = _Builder()
        self.dtype = dtype
        self.values: dict[int, _Value] = {}  # id(tensor) -> value
        self.traced: set[int] = set()  # ids of the tensors the traced step computed (not constants)
        self.keep: list[Tensor] = []  # keeps traced tensors alive, so ids are not reused

    # --- operands ------------------------------------------------------------------------------
    def bind(self, t: Tensor, node: int, pidx=None, nidx=None, dtype=None):
        p, n = _maps_like(t, pidx, nidx)
        self.values[id(t)] = _Value(node, p, n, dtype or t.dtype)
        self.keep.append(t)
        if self.b.nodes[node].op != "const":
            self.traced.add(id(t))

    def value(self, a) -> _Value | float | bool:
        """A tensor operand's value (a constant for a uniform tensor the trace did not make), or a
        Python number."""
        if isinstance(a, Tensor):
            v = self.values.get(id(a))
            if v is not None:
                return v
            return self._constant_tensor(a)
        if isinstance(a, (bool, int, float)):
            return a
        raise Unsupported(f"an operand of type {type(a).__name__}")

    def _constant_tensor(self, t: Tensor) -> _Value:
        if t.numel() == 0:
            raise Unsupported("an empty tensor")
        flat = t.detach().reshape(-1)
        if not bool((flat == flat[0]).all()) and not bool(torch.isnan(flat).all()):
            raise Unsupported("a non-uniform constant tensor")
        if t.dtype == torch.bool:
            node = self.b.const(1.0 if bool(flat[0]) else 0.0)
            node = self.b.add("ne", (node, self.b.const(0.0)))
        elif t.dtype.is_floating_point or not t.dtype.is_complex:
            node = self.b.const(float(flat[0]))
        else:
            raise Unsupported(f"a constant of dtype {t.dtype}")
        self.bind(t, node)
        return self.values[id(t)]

    def node_of(self, v) -> int:
        return v.node if isinstance(v, _Value) else self.b.const(v)

    # --- one recorded op -----------------------------------------------------------------------
    def apply(self, func, args, kwargs, out):
        name, base, mutable = _op_names(func, kwargs)
        if base == "copy" and mutable:  # dst.copy_(src)
            src = self.value(args[1])
            self._result(args[0], self.node_of(src), [src] if isinstance(src, _Value) else [], dtype=args[0].dtype,
                         check_alias=True)
            return
        if base == "fill" and mutable:
            self._result(args[0], self.b.const(float(args[1] if not isinstance(args[1], Tensor) else args[1].item())),
                         [], check_alias=True)
            return
        if base == "log_sigmoid_forward":  # (output, buffer): torch's CPU formula min(x, 0) - log1p(exp(-|x|))
            v = self.value(args[0])
            x = self.node_of(v)
            b = self.b
            soft = b.add("log1p", (b.add("exp", (b.add("neg", (b.add("abs", (x,)),)),)),))
            node = b.add("sub", (b.add("min", (x, b.const(0.0))), soft))
            self._result(out[0], node, [v] if isinstance(v, _Value) else [], dtype=out[0].dtype)
            return
        if not isinstance(out, Tensor):
            raise Unsupported(f"{name} returns {type(out).__name__}")
        target = args[0] if mutable else out
        if mutable and not isinstance(target, Tensor):
            raise Unsupported(f"in-place {name}")
        if base in _VIEWS:
            self._view(func, base, args, kwargs, out)
            return
        if base == "_to_copy" or base == "to":
            self._convert(args[0], kwargs, out)
            return
        if base in _FACTORIES:
            self._constant_tensor(out)
            return
        if base in _REDUCTIONS:
            self._reduction(base, args, kwargs, out)
            return
        if base in ("mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm"):
            self._matmul(base, args, kwargs, out)
            return
        node, operands = self._elementwise(base, func, args, kwargs)
        self._result(target, node, operands, dtype=out.dtype, check_alias=mutable)

    def _result(self, t: Tensor, node: int, operands: list, dtype=None, check_alias=False):
        if check_alias:
            ptr = t.untyped_storage().data_ptr()
            for other in self.keep:
                if other is not t and other.untyped_storage().data_ptr() == ptr:
                    raise Unsupported("an in-place operation on a tensor that has views")
        maps = [v for v in operands if isinstance(v, _Value)]
        pidx = _combine(t.shape, [v.pidx for v in maps])
        nidx = _combine(t.shape, [v.nidx for v in maps])
        self.bind(t, node, pidx, nidx, dtype or t.dtype)

    def _view(self, func, base, args, kwargs, out):
        src = self.value(args[0])
        if not isinstance(src, _Value):
            raise Unsupported(f"{base} of a number")
        if base in ("clone", "detach", "contiguous", "lift_fresh", "lift_fresh_copy", "alias", "alias_copy",
                    "positive", "resolve_conj", "resolve_neg", "_conj", "conj"):
            self.bind(out, src.node, src.pidx, src.nidx, src.dtype)
            return
        if base == "as_strided":
            raise Unsupported("as_strided")
        try:  # the same view of the index maps follows the elements
            if base in ("view", "_unsafe_view", "_reshape_alias", "view_copy"):
                pidx, nidx = src.pidx.reshape(out.shape), src.nidx.reshape(out.shape)
            else:
                pidx = func(src.pidx, *args[1:], **kwargs)
                nidx = func(src.nidx, *args[1:], **kwargs)
        except RuntimeError as err:
            raise Unsupported(f"{base} of the index maps failed: {err}") from None
        if tuple(pidx.shape) != tuple(out.shape):
            raise Unsupported(f"{base}: index maps of shape {tuple(pidx.shape)}, result {tuple(out.shape)}")
        self.bind(out, src.node, pidx, nidx, src.dtype)

    def _convert(self, src_t, kwargs, out):
        src = self.value(src_t)
        if not isinstance(src, _Value):
            raise Unsupported("a conversion of a number")
        dtype = kwargs.get("dtype", out.dtype)
        if dtype == src.dtype:
            self.bind(out, src.node, src.pidx, src.nidx, src.dtype)
        elif src.dtype == torch.bool and dtype == self.dtype:
            self.bind(out, self.b.add("float", (src.node,)), src.pidx, src.nidx, dtype)
        else:
            raise Unsupported(f"a conversion from {src.dtype} to {dtype}")

    def _reduction(self, base, args, kwargs, out):
        src = self.value(args[0])
        if not isinstance(src, _Value):
            raise Unsupported(f"{base} of a number")
        t = args[0]
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
            dims = list(range(t.dim()))
        dims = [dims] if isinstance(dims, int) else list(dims)
        if any(t.shape[d] != 1 for d in dims):
            raise Unsupported(f"{base} over a dimension of size > 1 (not elementwise)")
        if base == "logsumexp":
            raise Unsupported("logsumexp")
        keep = (args[2] if len(args) > 2 else kwargs.get("keepdim", False))
        pidx, nidx = src.pidx, src.nidx
        if not keep:
            for d in sorted((d % t.dim() for d in dims), reverse=True):
                pidx, nidx = pidx.squeeze(d), nidx.squeeze(d)
        self.bind(out, src.node, pidx, nidx, src.dtype)

    def _matmul(self, base, args, kwargs, out):
        """A matrix product over a contraction of length one is a broadcast product."""
        if base in ("addmm", "baddbmm", "addbmm"):
            acc, a, b = args[0], args[1], args[2]
        else:
            acc, a, b = None, args[0], args[1]
        if a.dim() < 2 or b.dim() < 2 or a.shape[-1] != 1 or b.shape[-2] != 1 or base == "addbmm":
            raise Unsupported(f"{base} over a contraction of length > 1")
        va, vb = self.value(a), self.value(b)
        node = self.b.add("mul", (self.node_of(va), self.node_of(vb)))
        shape = out.shape
        maps = [v for v in (va, vb) if isinstance(v, _Value)]
        pidx = _combine(shape, [v.pidx for v in maps])
        nidx = _combine(shape, [v.nidx for v in maps])
        if acc is not None:
            beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
            if alpha != 1:
                node = self.b.add("mul", (node, self.b.const(alpha)))
            vacc = self.value(acc)
            term = self.node_of(vacc)
            if beta != 1:
                term = self.b.add("mul", (term, self.b.const(beta)))
            node = self.b.add("add", (term, node))
            if isinstance(vacc, _Value):
                pidx = _combine(shape, [pidx, vacc.pidx])
                nidx = _combine(shape, [nidx, vacc.nidx])
        self.bind(out, node, pidx, nidx, out.dtype)

    def _elementwise(self, base, func, args, kwargs) -> tuple[int, list]:
        b = self.b
        vals = [self.value(a) for a in args if isinstance(a, (Tensor, bool, int, float))]
        tensor_vals = [self.value(a) for a in args if isinstance(a, Tensor)]
        for a, v in zip((a for a in args if isinstance(a, Tensor)), tensor_vals):
            if v.dtype not in (self.dtype, torch.bool) and not (a.dim() == 0 and id(a) not in self.traced):
                raise Unsupported(f"{base} on a {v.dtype} tensor (the program is {self.dtype})")
        n = [self.node_of(v) for v in vals]
        kw = dict(kwargs)

        def scal(i, key, default):
            if len(args) > i:
                return args[i]
            return kw.get(key, default)

        if base in ("add", "sub"):
            alpha = scal(2, "alpha", 1)
            other = n[1] if alpha == 1 else b.add("mul", (n[1], b.const(alpha)))
            return b.add(base, (n[0], other)), tensor_vals
        if base == "rsub":
            alpha = scal(2, "alpha", 1)
            other = n[0] if alpha == 1 else b.add("mul", (n[0], b.const(alpha)))
            return b.add("sub", (n[1], other)), tensor_vals
        if base in ("mul", "multiply"):
            return b.add("mul", (n[0], n[1])), tensor_vals
        if base in ("div", "true_divide", "divide"):
            if kw.get("rounding_mode") is not None:
                raise Unsupported(f"div with rounding_mode={kw['rounding_mode']}")
            return b.add("div", (n[0], n[1])), tensor_vals
        if base in _UNARY:
            return b.add(_UNARY[base], (n[0],)), tensor_vals
        if base == "square":
            return b.add("mul", (n[0], n[0])), tensor_vals
        if base == "relu":
            return b.add("clamp", (n[0], b.const(0.0), -1)), tensor_vals
        if base == "pow":
            if len(tensor_vals) == 1 and isinstance(args[1], (int, float)):
                e = float(args[1])
                if e == 1:
                    return n[0], tensor_vals
                if e == 2:
                    return b.add("mul", (n[0], n[0])), tensor_vals
                if e == 0.5:
                    return b.add("sqrt", (n[0],)), tensor_vals
                if e == -1:
                    return b.add("reciprocal", (n[0],)), tensor_vals
            return b.add("pow", (n[0], n[1])), tensor_vals
        if base in ("maximum", "fmax", "minimum", "fmin"):
            return b.add("max" if base in ("maximum", "fmax") else "min", (n[0], n[1])), tensor_vals
        if base in ("clamp", "clip", "clamp_min", "clamp_max", "hardtanh"):
            if base == "clamp_min":
                lo, hi = scal(1, "min", None), None
            elif base == "clamp_max":
                lo, hi = None, scal(1, "max", None)
            elif base == "hardtanh":
                lo, hi = scal(1, "min_val", -1.0), scal(2, "max_val", 1.0)
            else:
                lo, hi = scal(1, "min", None), scal(2, "max", None)
            lo_n = -1 if lo is None else self.node_of(self.value(lo))
            hi_n = -1 if hi is None else self.node_of(self.value(hi))
            extra = [self.value(v) for v in (lo, hi) if isinstance(v, Tensor)]
            return b.add("clamp", (n[0], lo_n, hi_n)), tensor_vals + extra
        if base == "where":
            return b.add("where", (n[0], n[1], n[2])), tensor_vals
        if base in _COMPARE:
            return b.add(_COMPARE[base], (n[0], n[1])), tensor_vals
        if base in _LOGICAL:
            return b.add(_LOGICAL[base], (n[0], n[1])), tensor_vals
        if base == "hardsigmoid":  # torch: relu6(x + 3) / 6
            t = b.add("clamp", (b.add("add", (n[0], b.const(3.0))), b.const(0.0), b.const(6.0)))
            return b.add("div", (t, b.const(6.0))), tensor_vals
        if base == "softplus":  # torch: x if beta x > threshold else log1p(exp(beta x)) / beta
            beta, threshold = float(scal(1, "beta", 1.0)), float(scal(2, "threshold", 20.0))
            bx = n[0] if beta == 1 else b.add("mul", (n[0], b.const(beta)))
            soft = b.add("log1p", (b.add("exp", (bx,)),))
            if beta != 1:
                soft = b.add("div", (soft, b.const(beta)))
            return b.add("where", (b.add("gt", (bx, b.const(threshold))), n[0], soft)), tensor_vals
        if base in ("elu", "celu"):  # torch: x > 0 ? x scale : expm1(x input_scale) alpha scale
            alpha = float(scal(1, "alpha", 1.0))
            scale, in_scale = ((1.0, 1.0 / alpha) if base == "celu" else
                               (float(scal(2, "scale", 1.0)), float(scal(3, "input_scale", 1.0))))
            x = n[0]
            xin = x if in_scale == 1 else b.add("mul", (x, b.const(in_scale)))
            neg = b.add("mul", (b.add("expm1", (xin,)), b.const(alpha * scale)))
            pos = x if scale == 1 else b.add("mul", (x, b.const(scale)))
            return b.add("where", (b.add("le", (x, b.const(0.0))), neg, pos)), tensor_vals
        if base == "leaky_relu":
            x = n[0]
            slope = b.add("mul", (x, b.const(float(scal(1, "negative_slope", 0.01)))))
            return b.add("where", (b.add("gt", (x, b.const(0.0))), x, slope)), tensor_vals
        if base == "gelu":  # torch's CPU formulas
            x = n[0]
            if kw.get("approximate", "none") == "tanh":  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
                cube = b.add("mul", (b.add("mul", (x, x)), x))
                inner = b.add("add", (x, b.add("mul", (b.const(0.044715), cube))))
                t = b.add("tanh", (b.add("mul", (b.const(math.sqrt(2.0 / math.pi)), inner)),))
                return b.add("mul", (b.add("mul", (b.const(0.5), x)), b.add("add", (b.const(1.0), t)))), tensor_vals
            e = b.add("erf", (b.add("mul", (x, b.const(math.sqrt(0.5)))),))  # x 0.5 (1 + erf(x / sqrt 2))
            return b.add("mul", (b.add("mul", (x, b.const(0.5))), b.add("add", (b.const(1.0), e)))), tensor_vals
        if base == "mish":  # x tanh(log1p(exp(x)))
            x = n[0]
            return b.add("mul", (x, b.add("tanh", (b.add("log1p", (b.add("exp", (x,)),)),)))), tensor_vals
        if base == "hardswish":  # x min(max(x + 3, 0), 6) / 6
            x = n[0]
            t = b.add("clamp", (b.add("add", (x, b.const(3.0))), b.const(0.0), b.const(6.0)))
            return b.add("div", (b.add("mul", (x, t)), b.const(6.0))), tensor_vals
        if base == "silu":
            return b.add("mul", (n[0], b.add("sigmoid", (n[0],)))), tensor_vals
        if base == "lerp":  # torch's CPU formula
            start, end, weight = n[0], n[1], n[2]
            diff = b.add("sub", (end, start))
            low = b.add("add", (start, b.add("mul", (weight, diff))))
            high = b.add("sub", (end, b.add("mul", (diff, b.add("sub", (b.const(1.0), weight))))))
            small = b.add("lt", (b.add("abs", (weight,)), b.const(0.5)))
            return b.add("where", (small, low, high)), tensor_vals
        if base in ("addcmul", "addcdiv"):
            value = scal(3, "value", 1)
            prod = b.add("mul" if base == "addcmul" else "div", (n[1], n[2]))
            if value != 1:
                prod = b.add("mul", (b.const(value), prod)) if base == "addcmul" else \
                    b.add("mul", (prod, b.const(value)))
            return b.add("add", (n[0], prod)), tensor_vals
        if base == "sign":
            x = n[0]
            pos = b.add("float", (b.add("gt", (x, b.const(0.0))),))
            neg = b.add("float", (b.add("lt", (x, b.const(0.0))),))
            return b.add("sub", (pos, neg)), tensor_vals
        raise Unsupported(f"the operation aten.{func.overloadpacket.__name__}.{func._overloadname}")


# ---------------------------------------------------------------------------------------------
# tracing a cell


def trace_cell(cell, D: int, dtype: torch.dtype = torch.float64) -> Program:
    """The scalar program of ``cell.step`` for H = 1 and input size D (0 or 1).

    Raises Unsupported (with the reason) where the step is not elementwise over (member,
    sequence) or uses an operation this module does not know."""
    if D not in (0, 1):
        raise Unsupported(f"input size {D} (the fused path takes D = 0 or 1)")
    shapes = cell.param_shapes(1, D)
    if any(math.prod(s) != 1 for s in shapes.values()):
        raise Unsupported("a parameter with more than one element")
    names = tuple(shapes)
    P, N = TRACE_P, TRACE_N
    g = torch.Generator().manual_seed(1234)
    params = {k: torch.randn((P, *s), generator=g, dtype=dtype) for k, s in shapes.items()}
    n_state = len(cell.state_names)
    state = tuple(torch.rand((P, N, 1), generator=g, dtype=dtype) * 2 - 1 for _ in range(n_state))
    x = torch.randn((N, 1), generator=g, dtype=dtype) if D else None

    tr = _Tracer(dtype)
    prange = torch.arange(P).view(P, 1, 1)
    nrange = torch.arange(N).view(1, N, 1)
    for k in names:
        v = params[k]
        tr.bind(v, tr.b.add("param", (), k), prange.reshape(P, *([1] * (v.dim() - 1))), None)
    for i, s in enumerate(state):
        tr.bind(s, tr.b.add("state", (), i), prange, nrange)
    if x is not None:
        tr.bind(x, tr.b.add("x"), None, torch.arange(N).view(N, 1))
    new = _run(cell.step, tr, params, state, x)
    if not isinstance(new, tuple) or len(new) != n_state:
        raise Unsupported(f"step returned {type(new).__name__} of length {len(new) if isinstance(new, tuple) else '?'}, "
                          f"not a tuple of {n_state} states")
    state_nodes = tuple(_final(tr, t, f"new state {cell.state_names[i]}") for i, t in enumerate(new))
    step_nodes = tr.b.nodes

    # the output, as a function of the state it is applied to
    out_tr = _Tracer(dtype)
    out_state = tuple(torch.rand((P, N, 1), generator=g, dtype=dtype) * 2 - 1 for _ in range(n_state))
    for i, s in enumerate(out_state):
        out_tr.bind(s, out_tr.b.add("state", (), i), prange, nrange)
    y = _run(lambda st: cell.output(st), out_tr, out_state)
    if not isinstance(y, Tensor):
        raise Unsupported("output() did not return a tensor")
    out_node = _final(out_tr, y, "output")

    nodes, state_nodes, (out_node,) = _merge(step_nodes, state_nodes, out_tr.b.nodes, (out_node,))
    return Program(nodes, state_nodes, out_node, names, n_state, D == 1,
                   init=_initial(cell, params, dtype))


def _run(fn, tracer, *args):
    rec = _Recorder()
    try:
        with torch.no_grad(), rec:
            result = fn(*args)
    except Unsupported:
        raise
    except Exception as err:  # the cell could not run on the trace's tensors
        raise Unsupported(f"the step raised {type(err).__name__}: {err}") from None
    for func, a, kw, out in rec.log:
        tracer.apply(func, a, kw, out)
    return result


def _final(tr: _Tracer, t: Tensor, what: str) -> int:
    """The node of a returned (P, N, 1) tensor, checking its elements are (p, n) in order."""
    if not isinstance(t, Tensor):
        raise Unsupported(f"{what} is not a tensor")
    v = tr.value(t)
    if not isinstance(v, _Value):
        raise Unsupported(f"{what} is a number")
    if v.dtype != tr.dtype:
        raise Unsupported(f"{what} has dtype {v.dtype}, not {tr.dtype}")
    P, N = TRACE_P, TRACE_N
    if t.dim() != 3 or t.shape[0] not in (1, P) or t.shape[1] not in (1, N) or t.shape[2] != 1:
        raise Unsupported(f"{what} has shape {tuple(t.shape)}, not (P, N, 1)")
    pidx, nidx = v.pidx.expand(P, N, 1), v.nidx.expand(P, N, 1)
    want_p = torch.arange(P).view(P, 1, 1).expand(P, N, 1)
    want_n = torch.arange(N).view(1, N, 1).expand(P, N, 1)
    if not bool(((pidx == want_p) | (pidx < 0)).all() and ((nidx == want_n) | (nidx < 0)).all()):
        raise Unsupported(f"{what}: its elements are not in (member, sequence) order")
    return v.node


def _merge(step_nodes, state_nodes, out_nodes, out_roots: tuple[int, ...]):
    """One node list: the live step nodes, then the output's nodes (its 'state' nodes kept as
    inputs of the output formula). Dead nodes (e.g. a gate step_detail returns but the state does
    not use) are dropped. out_roots: the output's node per unit (one for H = 1); returned remapped."""
    step_live = live(step_nodes, state_nodes)
    remap, nodes = {}, []
    for i in step_live:
        nd = step_nodes[i]
        remap[i] = len(nodes)
        nodes.append(Node(nd.op, tuple(remap[a] if a >= 0 else -1 for a in nd.args), nd.attr))
    new_state = tuple(remap[i] for i in state_nodes)
    out_live = live(out_nodes, out_roots)
    out_remap = {}
    index = {nd: i for i, nd in enumerate(nodes)}
    for i in out_live:
        nd = out_nodes[i]
        if nd.op == "state":
            nd = Node("ostate", (), nd.attr)  # the state the output is applied to
        nd = Node(nd.op, tuple(out_remap[a] if a >= 0 else -1 for a in nd.args), nd.attr)
        if nd in index and nd.op in ("const",):
            out_remap[i] = index[nd]
            continue
        out_remap[i] = len(nodes)
        index[nd] = len(nodes)
        nodes.append(nd)
    return nodes, new_state, tuple(out_remap[i] for i in out_roots)


def live(nodes: list[Node], roots) -> list[int]:
    """The ids of the nodes ``roots`` are computed from (themselves included; -1, a missing
    operand, is skipped), ascending."""
    seen, stack = set(), list(roots)
    while stack:
        i = stack.pop()
        if i < 0 or i in seen:
            continue
        seen.add(i)
        stack.extend(nodes[i].args)
    return sorted(seen)


def _initial(cell, params, dtype, H: int = 1) -> tuple:
    """Each state's initial value: None where it is h0 (the base class's initial_state), else a
    constant; Unsupported where a cell's own initial_state is not uniform or depends on h0 otherwise."""
    from ..cells.base import Cell

    if type(cell).initial_state is Cell.initial_state:
        return (None,) * len(cell.state_names)
    a = cell.initial_state(params, TRACE_N, H, 0.25)
    b = cell.initial_state(params, TRACE_N, H, -0.5)
    out = []
    for ta, tb in zip(a, b):
        fa, fb = ta.reshape(-1), tb.reshape(-1)
        if not (bool((fa == fa[0]).all()) and bool((fb == fb[0]).all())):
            raise Unsupported("initial_state is not uniform over members and sequences")
        va, vb = float(fa[0]), float(fb[0])
        if va == 0.25 and vb == -0.5:
            out.append(None)
        elif va == vb:
            out.append(va)
        else:
            raise Unsupported("initial_state depends on h0 other than by filling")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# H > 1: one scalar program per unit, the matrix-vector products written out


@dataclass
class UnitProgram(Program):
    """A traced step of an H-unit cell with D inputs. Its scalar nodes: 'param' (attr (name, flat
    index into the parameter's shape)), 'state' / 'ostate' (attr s * H + i: unit i of state s),
    'x' (attr d: input channel d), and besides ``Node``'s operations 'dot' (args a_0..a_K-1,
    b_0..b_K-1: the sum of a_k b_k, k ascending, as ((a_0 b_0 + a_1 b_1) + a_2 b_2) + ...). ``state`` lists the new value of every (state, unit), s-major;
    ``outputs`` the output's node of each unit (``output`` is unit 0's); ``params`` the (name,
    flat index) of every parameter element, in the order the kernel receives them."""

    H: int = 1
    D: int = 0
    outputs: tuple[int, ...] = ()


@dataclass
class _Units:
    """A traced tensor of the H > 1 tracer: the node, member and sequence of each element."""

    nodes: Tensor
    pidx: Tensor
    nidx: Tensor
    dtype: torch.dtype


class _UnitTracer(_Tracer):
    """The tracer for H > 1. The units' formulas differ, so each traced tensor carries the node of
    every element (members and sequences share them: a parameter element's node names no member).
    Elementwise operations reuse ``_Tracer._elementwise`` once per distinct combination of operand
    nodes; a matrix product (mm, bmm, addmm, baddbmm) over a contraction of length K > 1 becomes,
    per element, a node 'dot' (args a_0..a_K-1, b_0..b_K-1: ((a_0 b_0 + a_1 b_1) + a_2 b_2) + ...,
    k ascending); a sum (or mean) over a dimension of size > 1 adds the elements in index order."""

    def __init__(self, dtype: torch.dtype):
        super().__init__(dtype)
        self.scalar: dict[int, _Value] = {}  # id(tensor) -> one element, while an elementwise op is built

    def bind(self, t: Tensor, node, pidx=None, nidx=None, dtype=None):
        p, n = _maps_like(t, pidx, nidx)
        nodes = (node if isinstance(node, Tensor) else torch.tensor(node)).expand(tuple(t.shape)).contiguous()
        self.values[id(t)] = _Units(nodes, p, n, dtype or t.dtype)
        self.keep.append(t)
        if any(self.b.nodes[i].op != "const" for i in nodes.unique().tolist()):
            self.traced.add(id(t))

    def value(self, a):
        if isinstance(a, Tensor) and id(a) in self.scalar:
            return self.scalar[id(a)]
        return super().value(a)

    def _constant_tensor(self, t: Tensor) -> _Units:
        if t.numel() == 0:
            raise Unsupported("an empty tensor")
        if t.dtype.is_complex:
            raise Unsupported(f"a constant of dtype {t.dtype}")
        flat = t.detach().reshape(-1)
        ids = {}
        nodes = torch.empty(flat.shape, dtype=torch.int64)
        for j, v in enumerate(flat.tolist()):
            key = "nan" if math.isnan(v) else v
            if key not in ids:
                node = self.b.const(1.0 if v else 0.0) if t.dtype == torch.bool else self.b.const(v)
                ids[key] = self.b.add("ne", (node, self.b.const(0.0))) if t.dtype == torch.bool else node
            nodes[j] = ids[key]
        self.bind(t, nodes.reshape(t.shape))
        return self.values[id(t)]

    def _units(self, a) -> _Units:
        v = self.value(a)
        if not isinstance(v, _Units):
            raise Unsupported("an operation on a number where a tensor was expected")
        return v

    # --- the operations ----------------------------------------------------------------------
    def apply(self, func, args, kwargs, out):
        name, base, mutable = _op_names(func, kwargs)
        if base == "copy" and mutable:  # dst.copy_(src)
            src = self.value(args[1])
            srcs = [src] if isinstance(src, _Units) else []
            nodes = src.nodes if srcs else torch.tensor(self.b.const(src))
            self._store(args[0], nodes.expand(tuple(args[0].shape)), srcs, args[0].dtype, True)
            return
        if base == "fill" and mutable:
            fill = float(args[1] if not isinstance(args[1], Tensor) else args[1].item())
            self._store(args[0], torch.tensor(self.b.const(fill)), [], None, True)
            return
        if not isinstance(out, Tensor):
            raise Unsupported(f"{name} returns {type(out).__name__}")
        target = args[0] if mutable else out
        if mutable and not isinstance(target, Tensor):
            raise Unsupported(f"in-place {name}")
        if base in _VIEWS:
            self._view(func, base, args, kwargs, out)
        elif base in ("_to_copy", "to"):
            self._convert(args[0], kwargs, out)
        elif base in _FACTORIES or base in ("arange", "eye", "linspace"):  # a constant may differ per unit
            self._constant_tensor(out)
        elif base in _REDUCTIONS:
            self._reduction(base, args, kwargs, out)
        elif base in ("mm", "bmm", "addmm", "baddbmm"):
            self._matmul(base, args, kwargs, out)
        elif base in ("matmul", "addbmm"):
            raise Unsupported(f"aten.{base} (expected its decomposition)")
        else:
            self._elementwise_units(base, func, args, kwargs, target, out.dtype, mutable)

    def _store(self, t: Tensor, nodes: Tensor, operands: list, dtype, check_alias: bool):
        if check_alias:
            ptr = t.untyped_storage().data_ptr()
            for other in self.keep:
                if other is not t and other.untyped_storage().data_ptr() == ptr:
                    raise Unsupported("an in-place operation on a tensor that has views")
        pidx = _combine(t.shape, [v.pidx for v in operands])
        nidx = _combine(t.shape, [v.nidx for v in operands])
        self.bind(t, nodes.expand(tuple(t.shape)), pidx, nidx, dtype or t.dtype)

    def _elementwise_units(self, base, func, args, kwargs, target, dtype, mutable):
        """``_Tracer._elementwise`` once per distinct combination of the operands' nodes."""
        tensors = [a for a in args if isinstance(a, Tensor)]
        vals = [self._units(a) for a in tensors]
        shape = tuple(target.shape)
        if vals:
            combos = torch.stack([v.nodes.expand(shape).reshape(-1) for v in vals])  # (operands, elements)
            unique, inverse = torch.unique(combos, dim=1, return_inverse=True)
        else:
            unique, inverse = torch.zeros((0, 1), dtype=torch.int64), torch.zeros(math.prod(shape), dtype=torch.int64)
        made = []
        try:
            for col in unique.T.tolist():
                for a, v, node in zip(tensors, vals, col):
                    self.scalar[id(a)] = _Value(node, v.pidx, v.nidx, v.dtype)
                made.append(self._elementwise(base, func, args, kwargs)[0])
        finally:
            self.scalar.clear()
        nodes = torch.tensor(made, dtype=torch.int64)[inverse].reshape(shape)
        self._store(target, nodes, vals, dtype, mutable)

    def _view(self, func, base, args, kwargs, out):
        src = self._units(args[0])
        if base in ("clone", "detach", "contiguous", "lift_fresh", "lift_fresh_copy", "alias", "alias_copy",
                    "positive", "resolve_conj", "resolve_neg", "_conj", "conj"):
            self.bind(out, src.nodes, src.pidx, src.nidx, src.dtype)
            return
        if base == "as_strided":
            raise Unsupported("as_strided")
        maps = []
        for m in (src.nodes, src.pidx, src.nidx):  # the same view of each map follows the elements
            try:
                if base in ("view", "_unsafe_view", "_reshape_alias", "view_copy"):
                    maps.append(m.reshape(out.shape))
                else:
                    maps.append(func(m, *args[1:], **kwargs))
            except RuntimeError as err:
                raise Unsupported(f"{base} of the index maps failed: {err}") from None
            if tuple(maps[-1].shape) != tuple(out.shape):
                raise Unsupported(f"{base}: index maps of shape {tuple(maps[-1].shape)}, result {tuple(out.shape)}")
        self.bind(out, *maps, src.dtype)

    def _convert(self, src_t, kwargs, out):
        src = self._units(src_t)
        dtype = kwargs.get("dtype", out.dtype)
        if id(src_t) not in self.traced:  # a constant: its converted values
            self._constant_tensor(out)
        elif dtype == src.dtype:
            self.bind(out, src.nodes, src.pidx, src.nidx, src.dtype)
        elif src.dtype == torch.bool and dtype == self.dtype:
            made = {i: self.b.add("float", (i,)) for i in src.nodes.unique().tolist()}
            nodes = src.nodes.clone().apply_(lambda i: made[i])
            self.bind(out, nodes, src.pidx, src.nidx, dtype)
        else:
            raise Unsupported(f"a conversion from {src.dtype} to {dtype}")

    def _reduction(self, base, args, kwargs, out):
        src = self._units(args[0])
        t = args[0]
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
            dims = list(range(t.dim()))
        dims = sorted({d % t.dim() for d in ([dims] if isinstance(dims, int) else dims)})
        wide = [d for d in dims if t.shape[d] > 1]
        if wide and base not in ("sum", "mean"):
            raise Unsupported(f"{base} over a dimension of size > 1")
        if len(args) > 3 or kwargs.get("dtype") is not None:
            raise Unsupported(f"{base} with a dtype")
        keep = [d for d in range(t.dim()) if d not in dims]
        order = keep + dims  # the reduced dimensions last, flattened: (kept elements, reduced)
        count = math.prod(t.shape[d] for d in dims)
        flat = [m.permute(order).reshape(-1, count) for m in (src.nodes, src.pidx, src.nidx)]
        pidx, nidx = (_along(m) for m in flat[1:])
        sums = {}
        nodes = []
        for row in flat[0].tolist():
            key = tuple(row)
            if key not in sums:
                acc = row[0]
                for i in row[1:]:
                    acc = self.b.add("add", (acc, i))
                if base == "mean" and count > 1:
                    acc = self.b.add("div", (acc, self.b.const(count)))
                sums[key] = acc
            nodes.append(sums[key])
        shape = tuple(out.shape)
        self.bind(out, torch.tensor(nodes, dtype=torch.int64).reshape(shape), pidx.reshape(shape),
                  nidx.reshape(shape), src.dtype)

    def _matmul(self, base, args, kwargs, out):
        acc, a, b = (args[0], args[1], args[2]) if base in ("addmm", "baddbmm") else (None, args[0], args[1])
        va, vb = self._units(a), self._units(b)
        K = a.shape[-1]

        def pairs(m_a, m_b):  # (..., M, N, K) of a's row and b's column at each output element
            x = m_a.unsqueeze(-2)  # (..., M, 1, K)
            y = m_b.transpose(-1, -2).unsqueeze(-3)  # (..., 1, N, K)
            shape = torch.broadcast_shapes(x.shape, y.shape)
            return x.expand(shape), y.expand(shape)

        na, nb = pairs(va.nodes, vb.nodes)
        pidx = _along(torch.cat(pairs(va.pidx, vb.pidx), -1).reshape(-1, 2 * K)).reshape(na.shape[:-1])
        nidx = _along(torch.cat(pairs(va.nidx, vb.nidx), -1).reshape(-1, 2 * K)).reshape(na.shape[:-1])
        keys = torch.cat((na, nb), -1).reshape(-1, 2 * K)
        made = {}
        nodes = []
        for row in keys.tolist():
            key = tuple(row)
            if key not in made:
                made[key] = self.b.add("dot", key) if K > 1 else self.b.add("mul", key)
            nodes.append(made[key])
        nodes = torch.tensor(nodes, dtype=torch.int64).reshape(na.shape[:-1])
        operands = [_Units(nodes, pidx, nidx, out.dtype)]
        if acc is not None:  # beta acc + alpha (a @ b)
            beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
            vacc = self._units(acc)
            shape = tuple(out.shape)
            combos = torch.stack([vacc.nodes.expand(shape).reshape(-1), nodes.expand(shape).reshape(-1)])
            summed = {}
            flat = []
            for term, prod in combos.T.tolist():
                if (term, prod) not in summed:
                    p = prod if alpha == 1 else self.b.add("mul", (prod, self.b.const(alpha)))
                    q = term if beta == 1 else self.b.add("mul", (term, self.b.const(beta)))
                    summed[(term, prod)] = self.b.add("add", (q, p))
                flat.append(summed[(term, prod)])
            nodes = torch.tensor(flat, dtype=torch.int64).reshape(shape)
            operands.append(vacc)
        self._store(out, nodes, operands, out.dtype, False)


def _along(maps: Tensor) -> Tensor:
    """(E, K) member (or sequence) indices of the K operands of each of E elements -> (E,) their
    common index (-1: none); Unsupported where two differ (the result would mix them)."""
    top = maps.max(-1).values
    if not bool(((maps == top.unsqueeze(-1)) | (maps < 0)).all()):
        raise Unsupported("an operation mixes different members or sequences (not elementwise)")
    return top


def trace_units(cell, H: int, D: int, dtype: torch.dtype = torch.float64) -> UnitProgram:
    """The scalar program of ``cell.step`` for H units and D inputs: a formula per unit, the same
    for every member and sequence (checked, as for one unit: ``trace_cell``).

    Raises Unsupported (with the reason) where the step mixes members or sequences, or uses an
    operation this module does not know."""
    shapes = cell.param_shapes(H, D)
    P, N = TRACE_P, TRACE_N
    g = torch.Generator().manual_seed(1234)
    params = {k: torch.randn((P, *s), generator=g, dtype=dtype) for k, s in shapes.items()}
    n_state = len(cell.state_names)
    state = tuple(torch.rand((P, N, H), generator=g, dtype=dtype) * 2 - 1 for _ in range(n_state))
    x = torch.randn((N, D), generator=g, dtype=dtype) if D else None
    prange, nrange = torch.arange(P).view(P, 1, 1), torch.arange(N).view(1, N, 1)

    tr = _UnitTracer(dtype)
    slots = []
    for k, s in shapes.items():
        nodes = torch.tensor([tr.b.add("param", (), (k, j)) for j in range(math.prod(s))], dtype=torch.int64)
        slots += [(k, j) for j in range(math.prod(s))]
        tr.bind(params[k], nodes.reshape(s), prange.reshape(P, *([1] * len(s))), None)
    for i, st in enumerate(state):
        tr.bind(st, _unit_nodes(tr, "state", i * H, H), prange, nrange)
    if x is not None:
        tr.bind(x, _unit_nodes(tr, "x", 0, D), None, torch.arange(N).view(N, 1))
    new = _run(cell.step, tr, params, state, x)
    if not isinstance(new, tuple) or len(new) != n_state:
        raise Unsupported(f"step returned {type(new).__name__} of length {len(new) if isinstance(new, tuple) else '?'}, "
                          f"not a tuple of {n_state} states")
    state_nodes = tuple(n for i, t in enumerate(new) for n in _final_units(tr, t, H, f"new state {cell.state_names[i]}"))

    out_tr = _UnitTracer(dtype)
    out_state = tuple(torch.rand((P, N, H), generator=g, dtype=dtype) * 2 - 1 for _ in range(n_state))
    for i, st in enumerate(out_state):
        out_tr.bind(st, _unit_nodes(out_tr, "state", i * H, H), prange, nrange)
    y = _run(lambda st: cell.output(st), out_tr, out_state)
    if not isinstance(y, Tensor):
        raise Unsupported("output() did not return a tensor")
    out_nodes = _final_units(out_tr, y, H, "output")

    nodes, state_nodes, out_nodes = _merge(tr.b.nodes, state_nodes, out_tr.b.nodes, out_nodes)
    return UnitProgram(nodes, state_nodes, out_nodes[0], tuple(slots), n_state, D > 0,
                       init=_initial(cell, params, dtype, H), H=H, D=D, outputs=out_nodes)


def _unit_nodes(tr: _UnitTracer, op: str, first: int, count: int) -> Tensor:
    """(count,) nodes ``op`` with attrs first, first + 1, ..."""
    return torch.tensor([tr.b.add(op, (), first + i) for i in range(count)], dtype=torch.int64)


def _final_units(tr: _UnitTracer, t: Tensor, H: int, what: str) -> tuple[int, ...]:
    """The node of each unit of a returned (P, N, H) tensor, checking its elements are (p, n, unit)
    in order and that every member and sequence has the same formula per unit."""
    if not isinstance(t, Tensor):
        raise Unsupported(f"{what} is not a tensor")
    v = tr.value(t)
    if not isinstance(v, _Units):
        raise Unsupported(f"{what} is a number")
    if v.dtype != tr.dtype:
        raise Unsupported(f"{what} has dtype {v.dtype}, not {tr.dtype}")
    P, N = TRACE_P, TRACE_N
    if t.dim() != 3 or t.shape[0] not in (1, P) or t.shape[1] not in (1, N) or t.shape[2] != H:
        raise Unsupported(f"{what} has shape {tuple(t.shape)}, not (P, N, H)")
    pidx, nidx, nodes = (m.expand(P, N, H) for m in (v.pidx, v.nidx, v.nodes))
    if not bool(((pidx == torch.arange(P).view(P, 1, 1)) | (pidx < 0)).all()
                and ((nidx == torch.arange(N).view(1, N, 1)) | (nidx < 0)).all()):
        raise Unsupported(f"{what}: its elements are not in (member, sequence) order")
    per_unit = nodes.reshape(-1, H)
    if not bool((per_unit == per_unit[0]).all()):
        raise Unsupported(f"{what}: a unit's formula differs between members or sequences")
    return tuple(per_unit[0].tolist())
