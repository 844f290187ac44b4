"""Reference judge for the structured ops of training programs (``offchain/ml/ops.py``).

The dispute game narrows a disputed program step to one output element of one node.  For that
element this module says

* :func:`element_inputs` — exactly which input elements the judge needs (input position and flat
  C-order indices), and
* :func:`check` — whether the solver's value lies within the documented bound of
  ``docs/judge-programs.md`` of the exact result computed from those elements.

Values are float32 bit patterns (``int`` in ``[0, 2**32)``) for ``f32`` tensors, Python ints for
``i64`` and 0/1 for ``bool``.  The verdict uses integer arithmetic only: a float32 is the exact
rational it denotes (``Fraction``: an integer numerator over a power of two), the Q64
``exp``/``log`` enclosures of ``judge.py``, and for the non-linear rules (softmax gradients,
normalisation, the pointwise calculus ops) the directed-rounding wide floats of ``wide.py``, the
chain's arithmetic step for step (an :class:`Enclosure`).  A float rule yields a :class:`Window`
(an enclosure of the exact result and the honest allowance); sums of products use the any-order
bound of ``judge._linear`` (the tests check both agree), which is how the chain evaluates them with
bounded integers.  Hardware floats never enter a verdict.

Two-stage reads: where an input element's address depends on an input value (``embedding``: the
table row is the token id; ``nll_loss``: the log-probability read at each label),
``element_inputs(node, inputs, index)`` returns the first stage (the index elements) and
``element_inputs(node, inputs, index, first)`` — with ``first`` the values of that first stage —
returns the complete list (first stage, then the data-dependent reads).  ``needs_values(node)``
says which ops read in two stages; on chain, the game opens the first stage, then the second
against the committed values.

The elementwise ops (``add``, ``relu``, ``threshold_backward``, codes 16–39) are judged by
``offchain/dispute/judge.py`` (the pointwise judge on chain); their rules here broadcast the inputs
and call it.  Leaves have no rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

from offchain.ml.ops import SIGNED, Node, bernoulli_element

from . import judge as J
from . import wide as W

U = Fraction(1, 1 << 24)              # unit roundoff of binary32
ETA = Fraction(1, 1 << 126)           # absolute error of one underflowing operation (FTZ or not)
NEG_INF = 0xFF800000
MAX_SOFTMAX_ROW = 1 << 15             # Q64 log enclosure handles S < 2^16; the bounds assume C·u ≤ 2^-9
K_MEAN = 4                            # mean error ≤ K_MEAN·γ_N·Σ|x|/N (sum-then-divide: 1, Welford/Chan: < 3)
K_VAR = 8                             # variance error ≤ K_VAR·γ_N·σ·√(σ² + mean²) + (mean error)²
F_UNIT = 8                            # relative error (units of u) of exp / log / 1/sqrt (≤ 4 ulp)

Index = list[tuple[int, list[int]]]   # (input position, flat element indices)


class RuleError(J.JudgeError):
    """Malformed input to a program rule (the chain would revert)."""


def gamma(n: int) -> Fraction:
    return Fraction(n, (1 << 24) - n) if n > 0 else Fraction(0)


# ------------------------------------------------------------------------------------ values


def _fixed(bits: int) -> int:
    """A finite float32 as an integer count of 2^-149 (every float32 is one; raises on ±Inf/NaN)."""
    neg, mant, exp = J.decode(bits)
    return -(mant << (exp + 149)) if neg else mant << (exp + 149)


def value(bits: int) -> Fraction:
    """Exact value of a finite float32 bit pattern."""
    return Fraction(_fixed(bits), 1 << 149)


def _is_neg_inf(bits: int) -> bool:
    return bits == NEG_INF


def _same(a: int, b: int) -> bool:
    """Equal as real numbers (±0 equal)."""
    return J._same_value(a, b)


def round_f32(v: int) -> int:
    """Bit pattern of the integer ``v`` rounded to nearest-even binary32 (int64 -> float32 cast)."""
    if v == 0:
        return 0
    sign = 1 << 31 if v < 0 else 0
    m = abs(v)
    shift = max(m.bit_length() - 24, 0)
    q, r = m >> shift, m & ((1 << shift) - 1)
    if shift and (r > 1 << (shift - 1) or (r == 1 << (shift - 1) and q & 1)):
        q += 1
        if q == 1 << 24:
            q, shift = q >> 1, shift + 1
    while q < 1 << 23:
        q, shift = q << 1, shift - 1
    return sign | (shift + 150) << 23 | (q & 0x7FFFFF)


@dataclass(frozen=True)
class Window:
    """The documented bound of one element: accept c iff c is finite and
    lo − tol − u|c| ≤ c ≤ hi + tol + u|c| (None: no limit on that side).  [lo, hi] encloses the exact
    result (a point where it is rational); tol + u|c| is the honest error allowance."""

    lo: Fraction | None
    hi: Fraction | None
    tol: Fraction

    def accepts(self, claimed: int) -> bool:
        if not J.is_finite(claimed):
            return False
        c = value(claimed)
        slack = self.tol + U * abs(c)
        return (self.lo is None or self.lo - slack <= c) and (self.hi is None or c <= self.hi + slack)


ZERO = Window(Fraction(0), Fraction(0), Fraction(0))  # accepts ±0 only


@dataclass(frozen=True)
class Enclosure(Window):
    """A window computed in ``wide.py``'s directed rounding (the chain's arithmetic): lo − tol and
    hi + tol are rounded outwards, then the claim is compared with them exactly."""

    edges: tuple = ()   # (lo, hi, tol) as wide values (lo / hi None: unbounded)

    def accepts(self, claimed: int) -> bool:
        return W.accepts(*self.edges, claimed)


def _enclosure(lo, hi, tol) -> Enclosure:
    return Enclosure(None if lo is None else W.fraction(lo), None if hi is None else W.fraction(hi), W.fraction(tol),
                     (lo, hi, tol))


def _point(s: Fraction, tol: Fraction) -> Window:
    return Window(s, s, tol)


@dataclass(frozen=True)
class Linear(Window):
    """The window of a sum of products or values (optionally divided by a positive float32 t),
    decided in the chain's integers: ``judge._linear`` checks |t·c − s| ≤ γ_k·A + u|t·c| + e·η
    exactly at one scale, which is [lo, hi] ± tol multiplied by t (up to the one-unit truncation
    slack of terms 2^190 below the largest)."""

    terms: tuple = ()
    gamma_n: int = 0
    eta_count: int = 0
    factor: tuple[int, int] = (1, 0)

    def accepts(self, claimed: int) -> bool:
        verdict = J._linear(self.terms, claimed, self.gamma_n, self.eta_count, self.factor)
        return verdict is not None and verdict.accepted


def _linear(terms: Sequence[tuple[bool, int, int]], k: int, eta: int, factor: tuple[int, int] = (1, 0)) -> Linear:
    """c·t ≈ Σ terms with |c·t − s| ≤ γ_k·Σ|t_i| + u|c·t| + eta·t·η, as a window around s/t."""
    t = Fraction(factor[0]) * Fraction(2) ** factor[1]
    scale = Fraction(1, 1 << 298)
    fixed = [(-m if neg else m) << (e + 298) for neg, m, e in terms]
    s, mag = sum(fixed) * scale / t, sum(map(abs, fixed)) * scale / t
    return Linear(s, s, gamma(k) * mag + eta * ETA, tuple(terms), k, eta, factor)


def _dot(pairs: Sequence[tuple[int, int]], singles: Sequence[int] = ()) -> Linear:
    """Any-order sum of n terms, products of two floats or plain values, float32 or wider
    accumulation, FMA, FTZ: |c − s| ≤ γ_k·Σ|t| + u|c| + e·η with (k, e) = (n, 4n) if there are
    products, (n − 1, 2n) otherwise (docs/judge.md §3.1; judge._linear's bound)."""
    terms = [J._product(a, b) for a, b in pairs] + [J.decode(v) for v in singles]
    n = len(terms)
    k, eta = (n, 4 * n) if pairs else (max(n - 1, 0), 2 * n)
    return _linear(terms, k, eta)


# ------------------------------------------------------------------------------------ shapes


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _unravel(index: int, shape: Sequence[int]) -> list[int]:
    out = []
    for size in reversed(shape):
        index, i = divmod(index, size)
        out.append(i)
    return out[::-1]


def _ravel(multi: Sequence[int], shape: Sequence[int]) -> int:
    flat = 0
    for i, size in zip(multi, shape):
        flat = flat * size + i
    return flat


def _broadcast(multi: Sequence[int], shape: Sequence[int]) -> int:
    """Flat index into ``shape`` of an output multi-index it broadcasts to (right-aligned)."""
    tail = multi[len(multi) - len(shape):] if shape else []
    return _ravel([0 if size == 1 else i for i, size in zip(tail, shape)], shape)


def _along(node_shape: Sequence[int], index: int, dim: int) -> list[int]:
    """Flat indices of the row through ``index`` along ``dim``."""
    stride = _numel(node_shape[dim + 1:])
    size = node_shape[dim]
    base = index - (index // stride % size) * stride
    return [base + k * stride for k in range(size)]


def _reduced(node: Node, source: Sequence[int], index: int) -> list[int]:
    """Input elements reduced into output ``index`` (attrs ``[keepdim, *dims]``), C order."""
    keepdim, dims = node.attrs[0], set(node.attrs[1:])
    out = _unravel(index, node.shape)
    axes = [d for d in range(len(source)) if d not in dims]
    kept = [out[d] for d in axes] if keepdim else out
    multi = [0] * len(source)
    for d, i in zip(axes, kept):
        multi[d] = i
    red = sorted(dims)
    flats = []
    for combo in range(_numel([source[d] for d in red])):
        for d, i in zip(red, _unravel(combo, [source[d] for d in red])):
            multi[d] = i
        flats.append(_ravel(multi, source))
    return flats


def _window(o: int, k: int, stride: int, pad: int, dil: int, size: int) -> list[tuple[int, int]]:
    """(kernel offset, input position) pairs of output position ``o`` inside the input."""
    return [(t, o * stride - pad + t * dil) for t in range(k) if 0 <= o * stride - pad + t * dil < size]


def _covering(h: int, k: int, stride: int, pad: int, dil: int, out: int) -> list[tuple[int, int]]:
    """(kernel offset, output position) pairs whose window reads input position ``h``."""
    pairs = []
    for t in range(k):
        q, r = divmod(h + pad - t * dil, stride)
        if r == 0 and 0 <= q < out:
            pairs.append((t, q))
    return pairs


# ------------------------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Rule:
    gather: Callable[..., Index]      # (node, inputs, index[, first]) -> reads
    check: Callable[..., "bool | Window"]  # (node, inputs, index, values, claimed) -> verdict or bound
    two_stage: bool = False


RULES: dict[str, Rule] = {}


def _rule(*names: str, two_stage: bool = False):
    def register(pair):
        gather, verdict = pair
        for name in names:
            RULES[name] = Rule(gather, verdict, two_stage)
        return pair
    return register


# ---- randomness (exact: a dropout keep mask re-computed from the step's key)


def _bernoulli_check(node, ins, index, values, claimed):
    return claimed == J.f32_bits(bernoulli_element(values[0][0], node.attrs[0], node.attrs[1], index))


_rule("bernoulli")((lambda node, ins, index: [(0, [0])], _bernoulli_check))


# ---- data movement (exact copies: the claim's bits must be the source's bits)


def _view_gather(node, ins, index):
    multi = _unravel(index, node.shape)
    return [(0, [node.attrs[0] + sum(i * s for i, s in zip(multi, node.attrs[1:]))])]


def _copy_check(node, ins, index, values, claimed):
    return claimed == values[-1][0]


_rule("view")((_view_gather, _copy_check))


def _cat_gather(node, ins, index):
    dim = node.attrs[0]
    multi = _unravel(index, node.shape)
    for pos, inp in enumerate(ins):
        if multi[dim] < inp.shape[dim]:
            return [(pos, [_ravel(multi, inp.shape)])]
        multi[dim] -= inp.shape[dim]
    raise RuleError("rule: cat index outside its inputs")


_rule("cat")((_cat_gather, _copy_check))


def _cast_check(node, ins, index, values, claimed):
    src, dst = ins[0].dtype, node.dtype
    x = values[0][0]
    if src == dst:
        return claimed == x
    if src == "f32":
        v = value(x)
        if dst == "bool":
            return claimed == int(v != 0)
        if abs(v) >= 1 << 63:
            raise RuleError("rule: cast of a float32 outside the int64 range")
        return claimed == int(v)  # truncation toward zero
    if dst == "f32":
        return claimed == round_f32(x)
    return claimed == (int(x != 0) if dst == "bool" else x)


_rule("cast")((lambda node, ins, index: [(0, [index])], _cast_check))


# ---- reductions


def _reduce_gather(node, ins, index):
    return [(0, _reduced(node, ins[0].shape, index))]


def _sum_check(node, ins, index, values, claimed):
    if node.dtype == "i64":  # a count of int64 or bool terms: exact
        return claimed == sum(values[0])
    return _dot((), values[0])


def _mean_of(xs: Sequence[int], count: int) -> Linear | bool:
    """c ≈ Σx/count: |c − s| ≤ γ_n·Σ|x|/count + u|c| + 4η (sum then divide, or times fl(1/count)),
    checked as |count·c − Σx| ≤ γ_n·Σ|x| + u|count·c| + 4·count·η."""
    if count == 0:
        return False  # 0/0: the honest result is NaN
    return _linear([J.decode(x) for x in xs], len(xs), 4 * count, (count, 0))


def _amax_check(node, ins, index, values, claimed):
    best = max(values[0], key=value)
    return J.is_finite(claimed) and _same(claimed, best)


_rule("sum")((_reduce_gather, _sum_check))
_rule("mean")((_reduce_gather, lambda n, i, x, v, c: _mean_of(v[0], len(v[0]))))
_rule("amax")((_reduce_gather, _amax_check))


# ---- contractions


def _mm_reads(a_shape, b_shape, batch, i, j, a_pos, b_pos, transposed: bool) -> Index:
    """Row i of A and column j of B (``transposed``: row j of B, stored [n, k])."""
    m, k = a_shape[-2:]
    n = b_shape[-2] if transposed else b_shape[-1]
    a0, b0 = batch * m * k, batch * k * n
    column = [b0 + j * k + t for t in range(k)] if transposed else [b0 + t * n + j for t in range(k)]
    return [(a_pos, [a0 + i * k + t for t in range(k)]), (b_pos, column)]


def _mm_gather(node, ins, index):
    rows_cols = node.shape[-2] * node.shape[-1]
    batch, rest = divmod(index, rows_cols)
    i, j = divmod(rest, node.shape[-1])
    bias = [(0, [_broadcast([i, j], ins[0].shape)])] if node.op == "addmm" else []
    return _mm_reads(ins[-2].shape, ins[-1].shape, batch, i, j, len(ins) - 2, len(ins) - 1, node.attrs == (1,)) + bias


def _conv_geometry(node):
    a = node.attrs
    return a[0:2], a[2:4], a[4:6], a[6]


def _conv_gather(node, ins, index):
    (sh, sw), (ph, pw), (dh, dw), groups = _conv_geometry(node)
    n, co, oh, ow = _unravel(index, node.shape)
    x, w = ins[0].shape, ins[1].shape
    cin_g, kh, kw = w[1:]
    g = co // (w[0] // groups)
    xs, ws = [], []
    for ci in range(cin_g):
        for th, h in _window(oh, kh, sh, ph, dh, x[2]):
            for tw, v in _window(ow, kw, sw, pw, dw, x[3]):
                xs.append(_ravel([n, g * cin_g + ci, h, v], x))
                ws.append(_ravel([co, ci, th, tw], w))
    bias = [(2, [co])] if len(node.attrs) > 7 and node.attrs[7] else []
    return [(0, xs), (1, ws)] + bias


def _conv_grad_input_gather(node, ins, index):
    (sh, sw), (ph, pw), (dh, dw), groups = _conv_geometry(node)
    go, w = ins[0].shape, ins[2].shape
    n, ci, h, v = _unravel(index, node.shape)
    cin_g, kh, kw = w[1:]
    cout_g = w[0] // groups
    g, cl = divmod(ci, cin_g)
    gos, ws = [], []
    for co in range(g * cout_g, (g + 1) * cout_g):
        for th, oh in _covering(h, kh, sh, ph, dh, go[2]):
            for tw, ow in _covering(v, kw, sw, pw, dw, go[3]):
                gos.append(_ravel([n, co, oh, ow], go))
                ws.append(_ravel([co, cl, th, tw], w))
    return [(0, gos), (2, ws)]


def _conv_grad_weight_gather(node, ins, index):
    (sh, sw), (ph, pw), (dh, dw), groups = _conv_geometry(node)
    go, x = ins[0].shape, ins[1].shape
    co, cl, th, tw = _unravel(index, node.shape)
    ci = co // (node.shape[0] // groups) * node.shape[1] + cl
    gos, xs = [], []
    for n in range(go[0]):
        for oh in range(go[2]):
            h = oh * sh - ph + th * dh
            for ow in range(go[3]):
                v = ow * sw - pw + tw * dw
                if 0 <= h < x[2] and 0 <= v < x[3]:
                    gos.append(_ravel([n, co, oh, ow], go))
                    xs.append(_ravel([n, ci, h, v], x))
    return [(0, gos), (1, xs)]


def _conv_grad_bias_gather(node, ins, index):
    go = ins[0].shape
    return [(0, [_ravel([n, index, oh, ow], go) for n in range(go[0]) for oh in range(go[2]) for ow in range(go[3])])]


def _pairs_check(node, ins, index, values, claimed):
    """Reads [left factors, right factors(, bias)]: an any-order dot product (plus the bias)."""
    return _dot(list(zip(values[0], values[1])), values[2] if len(values) > 2 else [])


_rule("mm", "bmm", "addmm")((_mm_gather, _pairs_check))
_rule("conv2d")((_conv_gather, _pairs_check))
_rule("conv2d_grad_input")((_conv_grad_input_gather, _pairs_check))
_rule("conv2d_grad_weight")((_conv_grad_weight_gather, _pairs_check))
_rule("conv2d_grad_bias")((_conv_grad_bias_gather, _sum_check))


# ---- max pooling (exact)


def _pool_params(node):
    a = node.attrs
    return a[0:2], a[2:4], a[4:6], a[6:8]


def _pool_gather(node, ins, index):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pool_params(node)
    x = ins[0].shape
    n, c, oh, ow = _unravel(index, node.shape)
    return [(0, [_ravel([n, c, h, v], x) for _, h in _window(oh, kh, sh, ph, dh, x[2])
                 for _, v in _window(ow, kw, sw, pw, dw, x[3])])]


def _first_max(reads: Sequence[int], bits: Sequence[int]) -> tuple[int, int]:
    """(flat index, bits) of the first maximal element in window order (PyTorch: ``val > max``)."""
    best = 0
    for k in range(1, len(bits)):
        if value(bits[k]) > value(bits[best]):
            best = k
    return reads[best], bits[best]


def _pool_check(node, ins, index, values, claimed):
    reads = _pool_gather(node, ins, index)[0][1]
    flat, best = _first_max(reads, values[0])
    if node.op == "max_pool2d_indices":
        h, w = ins[0].shape[2:]
        return claimed == flat % (h * w)
    return J.is_finite(claimed) and _same(claimed, best)


def _pool_grad_gather(node, ins, index):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pool_params(node)
    go = ins[0].shape
    n, c, h, v = _unravel(index, node.shape)
    flats = [_ravel([n, c, oh, ow], go) for _, oh in _covering(h, kh, sh, ph, dh, go[2])
             for _, ow in _covering(v, kw, sw, pw, dw, go[3])]
    return [(0, flats), (2, flats)]


def _pool_grad_check(node, ins, index, values, claimed):
    h, v = _unravel(index, node.shape)[2:]
    target = h * node.shape[3] + v
    return _dot((), [g for g, i in zip(values[0], values[1]) if i == target])


_rule("max_pool2d", "max_pool2d_indices")((_pool_gather, _pool_check))
_rule("max_pool2d_grad")((_pool_grad_gather, _pool_grad_check))


# ---- softmax family: Q64 enclosures


ONE = J.ONE


def _q(bits: int) -> tuple[int, int]:
    return J._to_q64(bits)


def exp_term(pivot: int, bits: int) -> tuple[int, int]:
    """Q64 enclosure of exp(z − m) for a finite entry z (bits) of a row whose largest entry is m."""
    (m_lo, m_hi), (z_lo, z_hi) = _q(pivot), _q(bits)
    return J.exp_neg_lo(max(m_hi - z_lo, 0)), J.exp_neg_hi(max(m_lo - z_hi, 0))


def _row_exps(row: Sequence[int]):
    """Enclosures of exp(z_j − max z) (Q64) for a row that may hold −inf (masked) entries.

    Returns ``(argmax, e_lo, e_hi, S_lo, S_hi)`` or None if every entry is −inf."""
    if len(row) > MAX_SOFTMAX_ROW:
        raise RuleError("rule: softmax row too long")
    live = [j for j, b in enumerate(row) if not _is_neg_inf(b)]
    if not live:
        return None
    m = max(live, key=lambda j: (value(row[j]), -j))
    e_lo, e_hi = [0] * len(row), [0] * len(row)
    for j in live:
        e_lo[j], e_hi[j] = (ONE, ONE) if j == m else exp_term(row[m], row[j])
    return m, e_lo, e_hi, sum(e_lo), sum(e_hi)


def _softmax_gather(node, ins, index):
    return [(0, _along(node.shape, index, node.attrs[0]))]


def softmax_window(op: str, n: int, pivot: int, z: int, at_pivot: bool, e: tuple[int, int],
                   s: tuple[int, int]) -> Window:
    """The window of a live entry z (bits) of a softmax-family row of n entries whose largest
    entry is ``pivot`` (the entry itself iff ``at_pivot``), given the Q64 enclosures ``e`` of
    exp(z − pivot) and ``s`` of S = Σ exp(z_k − pivot) (§4.3)."""
    if op == "log_softmax":
        (z_lo, z_hi), (m_lo, m_hi) = _q(z), _q(pivot)
        off_lo, off_hi = (0, 0) if at_pivot else (z_lo - m_hi, z_hi - m_lo)
        lo, hi = off_lo - J.log_hi(s[1]), off_hi - J.log_lo(s[0])
        mags = Fraction(max(abs(m_lo), abs(m_hi)) + max(abs(z_lo), abs(z_hi)), ONE)
        tol = U * (16 + 2 * n + 8 * J._clog2(n) + 8 * mags) + Fraction(1, ONE)
        return Window(Fraction(lo, ONE), Fraction(hi, ONE), tol)
    p_lo = Fraction(e[0] * ONE // s[1], ONE)
    p_hi = Fraction(min(J._ceil_div(e[1] * ONE, s[0]), ONE), ONE)
    tol = U * ((24 + 2 * n) * p_hi + 2) + Fraction(1, ONE)
    return Window(p_lo, p_hi, tol)


def softmax_masked(op: str, claimed: int) -> bool | Window:
    """A masked (−inf) entry: exactly 0, or −inf for log_softmax."""
    return claimed == NEG_INF if op == "log_softmax" else ZERO


def _softmax_check(node, ins, index, values, claimed):
    row = values[0]
    j = _along(node.shape, index, node.attrs[0]).index(index)
    enc = _row_exps(row)
    if enc is None:  # all masked: safe_softmax gives 0, softmax NaN
        return ZERO if node.op == "safe_softmax" else False
    if _is_neg_inf(row[j]):  # exp(−inf) = 0 exactly; its log-probability is −inf
        return softmax_masked(node.op, claimed)
    m, e_lo, e_hi, s_lo, s_hi = enc
    return softmax_window(node.op, len(row), row[m], row[j], j == m, (e_lo[j], e_hi[j]), (s_lo, s_hi))


_rule("softmax", "safe_softmax", "log_softmax")((_softmax_gather, _softmax_check))


def _softmax_grad_gather(node, ins, index):
    row = _along(node.shape, index, node.attrs[0])
    if node.op == "softmax_grad":
        return [(0, row), (1, row)]
    return [(0, row), (1, [index])]


def _exp_interval(bits: int) -> tuple[W.Wide, W.Wide]:
    """Enclosure of exp(v) for a finite float32 v (Q64, then wide)."""
    lo, hi = _q(bits)
    if hi <= 0:
        return W.q64(J.exp_neg_lo(-lo), False), W.q64(J.exp_neg_hi(-hi), True)
    down = J.exp_neg_lo(hi)
    if down == 0:
        raise RuleError("rule: exp argument too large")
    low = J.exp_neg_lo(-lo) if lo < 0 else ONE * ONE // J.exp_neg_hi(lo)
    return W.q64(low, False), W.q64(J._ceil_div(ONE * ONE, down), True)


def softmax_grad_window(op: str, n: int, g: int, y: int, total, mag: W.Wide) -> Enclosure:
    """The window of entry j of a softmax-family gradient row of n entries (§4.3): softmax:
    y_j(g_j − Σ g_k y_k), log_softmax: g_j − exp(y_j)·Σ g_k (y_j finite), given g_j, y_j (bits),
    an interval ``total`` of the row's sum and ``mag`` ≥ the sum of its terms' magnitudes."""
    gj = W.f32(g)
    if op == "softmax_grad":
        yj = W.f32(y)
        ends = W.scale(yj, W.isub(W.point(gj), total))
        ay = W.absolute(yj)
        tol = W.add_up(W.mul_up(ay, W.gamma(n + 2), mag), W.mul_up(W.gamma(2), W.absolute(W.mul(yj, gj, True))),
                       W.mul_up(W.add_up(W.mul_up(W.num(4 * n), W.larger(ay, W.ONE)), W.num(4)), W.ETA))
        return _enclosure(ends[0], ends[1], tol)
    e = _exp_interval(y)
    ends = W.isub(W.point(gj), W.imul(e, total))
    tol = W.add_up(W.mul_up(e[1], mag, W.gamma(n + 10)),
                   W.mul_up(W.add_up(W.mul_up(W.num(2 * n), W.add(e[1], W.ONE, True)), W.mul_up(W.num(2), mag), W.num(4)),
                            W.ETA))
    return _enclosure(ends[0], ends[1], tol)


def _softmax_grad_check(node, ins, index, values, claimed):
    """softmax: y_j(g_j − Σ g_k y_k); log_softmax: g_j − exp(y_j)·Σ g_k (wide arithmetic)."""
    n = len(values[0])
    j = _along(node.shape, index, node.attrs[0]).index(index)
    g = [W.f32(b) for b in values[0]]
    if node.op == "softmax_grad":
        y = values[1][j]
        total, mag = W.total([W.mul(a, W.f32(b), True) for a, b in zip(g, values[1])])  # exact products
    else:
        y = values[1][0]
        if _is_neg_inf(y):  # exp(−inf) = 0: exactly g_j
            return J.is_finite(claimed) and _same(claimed, values[0][j])
        total, mag = W.total(g)
    return softmax_grad_window(node.op, n, values[0][j], y, total, mag)

_rule("softmax_grad", "log_softmax_grad")((_softmax_grad_gather, _softmax_grad_check))


# ---- negative log-likelihood


def _nll_gather(node, ins, index, first=None):
    reduction, ignore = node.attrs[0], node.attrs[1] - SIGNED
    classes = ins[0].shape[-1]
    if reduction == 0 and node.op == "nll_loss":
        labels = [(1, [index])]
    else:
        labels = [(1, list(range(_numel(ins[1].shape))))]
    if first is None or node.op == "nll_loss_weight":
        return labels
    reads = []
    for b, y in zip(labels[0][1], first[0]):
        if y == ignore:
            continue
        if not 0 <= y < classes:
            raise RuleError("rule: label out of range")
        reads.append(b * classes + y)
    return labels + [(0, reads)]


def _nll_check(node, ins, index, values, claimed):
    reduction, ignore = node.attrs[0], node.attrs[1] - SIGNED
    count = sum(1 for y in values[0] if y != ignore)
    if node.op == "nll_loss_weight":
        return claimed == (0 if reduction == 0 else round_f32(count))
    negated = [b ^ 1 << 31 for b in values[1]]
    if reduction == 0:  # one element, negated exactly (0 where ignored)
        return (J.is_finite(claimed) and _same(claimed, negated[0])) if negated else ZERO
    if reduction == 2:
        return _dot((), negated)
    return _mean_of(negated, count)


_rule("nll_loss", "nll_loss_weight", two_stage=True)((_nll_gather, _nll_check))


def _nll_grad_gather(node, ins, index):
    b = index // ins[1].shape[-1]
    return [(0, [b if node.attrs[0] == 0 else 0]), (2, [b]), (3, [0])]


def _nll_grad_check(node, ins, index, values, claimed):
    reduction, ignore = node.attrs[0], node.attrs[1] - SIGNED
    classes = ins[1].shape[-1]
    (go,), (y,), (total,) = values
    if y == ignore or index % classes != y:
        return ZERO
    g_neg, g_mant, g_exp = J.decode(go)
    if reduction != 1:
        return _linear([(not g_neg, g_mant, g_exp)], 2, 2)
    w_neg, w_mant, w_exp = J.decode(total)
    if w_mant == 0:
        return False
    # c·|w| against −go·sign(w); 2η per unit of |w| (rounded up)
    return _linear([(g_neg == w_neg, g_mant, g_exp)], 2, 2 * math.ceil(abs(value(total))), (w_mant, w_exp))


_rule("nll_loss_grad")((_nll_grad_gather, _nll_grad_check))


# ---- embeddings


def _embedding_gather(node, ins, index, first=None):
    rows, dim = ins[0].shape
    p, d = divmod(index, dim)
    stage = [(1, [p])]
    if first is None:
        return stage
    token = first[0][0]
    if not 0 <= token < rows:
        raise RuleError("rule: embedding index out of range")
    return stage + [(0, [token * dim + d])]


_rule("embedding", two_stage=True)((_embedding_gather, _copy_check))


def _embedding_grad_gather(node, ins, index):
    if node.attrs[2]:
        raise RuleError("rule: embedding_grad with scale_grad_by_freq is not supported")
    dim = node.shape[1]
    positions = _numel(ins[1].shape)
    return [(0, [p * dim + index % dim for p in range(positions)]), (1, list(range(positions)))]


def _embedding_grad_check(node, ins, index, values, claimed):
    v = index // node.shape[1]
    if v == node.attrs[1] - SIGNED:
        return ZERO
    return _dot((), [g for g, i in zip(values[0], values[1]) if i == v])


_rule("embedding_grad")((_embedding_grad_gather, _embedding_grad_check))


# ---- normalisation


@dataclass(frozen=True)
class Moments:
    """Enclosures of a row's mean and the honest intervals of the computed mean and rstd (wide)."""

    n: int
    mean: tuple              # (lo, hi) enclosing the exact mean
    mean_tol: W.Wide         # any honest mean is within the exact mean ± mean_tol
    rstd_lo: W.Wide          # any honest rstd lies in [rstd_lo, rstd_hi] (hi None: unbounded)
    rstd_hi: W.Wide | None


def moments(xs: Sequence[int], eps_bits: int) -> Moments:
    n = len(xs)
    x = [W.f32(b) for b in xs]
    total, mag = W.total(x)
    square, _ = W.total([W.mul(v, v, True) for v in x])  # x² exact
    count = W.num(n)
    mean, square = W.shrink(total, count), W.shrink(square, count)  # Σx/N, Σx²/N = var + mean²
    var = W.isub(square, W.imul(mean, mean))                         # var[1] ≥ var ≥ 0
    eight_eta = W.mul(W.num(8), W.ETA, True)
    mean_tol = W.add_up(W.div(W.mul_up(W.num(K_MEAN), W.gamma(n), mag), count, True), eight_eta)
    var_tol = W.add_up(W.mul_up(W.num(K_VAR), W.gamma(n), W.sqrt_up(W.mul(var[1], square[1], True))),
                       W.mul(mean_tol, mean_tol, True), eight_eta)
    eps = W.f32(eps_bits)
    if eps[0] < 0:
        raise RuleError("rule: negative epsilon")
    lo = W.mul(W.rsqrt(W.add_up(var[1], eps, var_tol), False), ((1 << 24) - F_UNIT, -24), False)
    low = W.sub(W.add(var[0], eps, False), var_tol, False)
    hi = W.mul(W.rsqrt(low, True), ((1 << 24) + F_UNIT, -24), True) if low[0] > 0 else None
    return Moments(n, mean, mean_tol, lo, hi)


def _norm_layout(node, ins):
    """(row length D, row of output index, affine index of output index)."""
    if node.op.startswith("layer_norm"):
        d = _numel(ins[0].shape[len(ins[0].shape) - node.attrs[0]:])
        return d, (lambda i: i // d), (lambda i: i % d)
    n, c, hw, groups = node.attrs[:4]
    d = c // groups * hw
    return d, (lambda i: i // d), (lambda i: i // hw % c)


def _norm_gather(node, ins, index):
    d, row_of, affine_of = _norm_layout(node, ins)
    if node.op.endswith(("_mean", "_rstd")):
        return [(0, list(range(index * d, index * d + d)))]
    row = row_of(index)
    has_w, has_b = node.attrs[-2:]
    reads = [(0, list(range(row * d, row * d + d)))]
    if has_w:
        reads.append((1, [affine_of(index)]))
    if has_b:
        reads.append((1 + has_w, [affine_of(index)]))
    return reads


def _norm_check(node, ins, index, values, claimed):
    eps = node.attrs[1] if node.op.startswith("layer_norm") else node.attrs[4]
    mo = moments(values[0], eps)
    if node.op.endswith("_mean"):
        return _enclosure(mo.mean[0], mo.mean[1], mo.mean_tol)
    if node.op.endswith("_rstd"):
        return _enclosure(mo.rstd_lo, mo.rstd_hi, W.mul(W.num(2), W.ETA, True))
    if mo.rstd_hi is None:
        return _enclosure(None, None, W.ZERO)  # the variance is lost in rounding: any finite value
    d, row_of, _ = _norm_layout(node, ins)
    has_w, has_b = node.attrs[-2:]
    x = W.f32(values[0][index - row_of(index) * d])
    w = W.f32(values[1][0]) if has_w else W.ONE
    b = W.f32(values[1 + has_w][0]) if has_b else W.ZERO
    centred = (W.sub(W.sub(x, mo.mean[1], False), mo.mean_tol, False),
               W.add(W.sub(x, mo.mean[0], True), mo.mean_tol, True))
    ends = W.iadd(W.scale(w, W.imul(centred, (mo.rstd_lo, mo.rstd_hi))), W.point(b))
    tol = W.add_up(W.mul_up(W.gamma(4), W.add_up(W.absolute(x), W.magnitude(mo.mean), mo.mean_tol), mo.rstd_hi,
                            W.absolute(w)),
                   W.mul_up(W.gamma(2), W.absolute(b)), W.mul(W.num(8), W.ETA, True))
    return _enclosure(ends[0], ends[1], tol)


_rule("layer_norm", "layer_norm_mean", "layer_norm_rstd", "group_norm", "group_norm_mean",
      "group_norm_rstd")((_norm_gather, _norm_check))


def _ln_backward_layout(node, ins):
    d = _numel(ins[1].shape[len(ins[1].shape) - node.attrs[0]:])
    return d, _numel(ins[1].shape) // d


def _ln_grad_gather(node, ins, index):
    d, rows = _ln_backward_layout(node, ins)
    if node.op == "layer_norm_grad_input":
        row = index // d
        span = list(range(row * d, row * d + d))
        w = [(4, list(range(d)))] if node.attrs[2] else []
        return [(0, span), (1, span), (2, [row]), (3, [row])] + w
    column = [i * d + index for i in range(rows)]
    if node.op == "layer_norm_grad_bias":
        return [(0, column)]
    return [(0, column), (1, column), (2, list(range(rows))), (3, list(range(rows)))]


def _ln_grad_check(node, ins, index, values, claimed):
    if node.op == "layer_norm_grad_bias":
        return _sum_check(node, ins, index, values, claimed)
    g, x, mean, rstd = ([W.f32(b) for b in v] for v in values[:4])
    eta = W.ETA
    if node.op == "layer_norm_grad_weight":
        # Σ g r x − Σ g r μ: products of three float32, exact
        m = len(g)
        gr = [W.mul(gi, ri, True) for gi, ri in zip(g, rstd)]
        plus, plus_mag = W.total([W.mul(a, b, True) for a, b in zip(gr, x)])
        minus, minus_mag = W.total([W.mul(a, b, True) for a, b in zip(gr, mean)])
        total, mag = W.isub(plus, minus), W.add(plus_mag, minus_mag, True)
        r_max = W.f32(max(b & 0x7FFFFFFF for b in values[3]))
        tol = W.add_up(W.mul_up(W.gamma(m + 3), mag), W.mul_up(W.num(4 * m + 8), W.add(W.ONE, r_max, True), eta))
        return _enclosure(total[0], total[1], tol)
    d = len(g)
    j = index % d
    w = [W.f32(b) for b in values[4]] if len(values) > 4 else [W.ONE] * d
    (mu,), (r,) = mean, rstd
    gw = [W.mul(gk, wk, True) for gk, wk in zip(g, w)]               # exact
    db, db_abs = W.total(gw)
    ds, ds_abs = W.total([W.mul(a, b, True) for a, b in zip(gw, x)])  # exact
    count = W.num(d)
    # s = r·gw_j − (r/N)·db − (r³/N)(ds − db·μ)(x_j − μ)
    first = W.mul(r, gw[j], True)                                 # exact
    second = W.shrink(W.scale(r, db), count)
    r3 = W.mul(W.mul(r, r, True), r, True)                        # exact
    third = W.shrink(W.imul(W.scale(r3, W.isub(ds, W.scale(mu, db))), W.isub(W.point(x[j]), W.point(mu))), count)
    ends = W.isub(W.isub(W.point(first), second), third)
    ar, amu, ax = W.absolute(r), W.absolute(mu), W.absolute(x[j])
    ar3 = W.absolute(r3)
    mags = W.add_up(W.absolute(first),
                    W.div(W.mul_up(ar3, W.add_up(ds_abs, W.mul_up(db_abs, amu)), W.add_up(ax, amu)), count, True),
                    W.div(W.mul_up(ar, db_abs), count, True))
    tol = W.add_up(W.mul_up(W.gamma(d + 12), mags),
                   W.mul_up(W.num(4 * d + 16), W.add_up(W.ONE, ar, W.mul_up(ar3, W.add_up(ax, amu, W.ONE))), eta))
    return _enclosure(ends[0], ends[1], tol)


_rule("layer_norm_grad_input", "layer_norm_grad_weight", "layer_norm_grad_bias")((_ln_grad_gather, _ln_grad_check))


# ---- pointwise ops of programs not in judge.py (inputs broadcast like PyTorch)


def _pointwise_gather(node, ins, index):
    multi = _unravel(index, node.shape)
    return [(p, [_broadcast(multi, inp.shape)]) for p, inp in enumerate(ins)]


def _truth(dtype: str, v: int) -> bool:
    return value(v) != 0 if dtype == "f32" else v != 0


def _logical_check(node, ins, index, values, claimed):
    a = [_truth(inp.dtype, v[0]) for inp, v in zip(ins, values)]
    result = {"logical_not": lambda: not a[0], "logical_and": lambda: a[0] and a[1],
              "logical_or": lambda: a[0] or a[1]}[node.op]()
    return claimed == int(result)


_rule("logical_not", "logical_and", "logical_or")((_pointwise_gather, _logical_check))


def _sigmoid(bits: int) -> tuple[W.Wide, W.Wide]:
    """Enclosure of 1/(1 + exp(−x)) from q = e^−|x| (Q64): 1/(1 + q) for x ≥ 0, q/(1 + q) for x < 0."""
    lo, hi = _q(bits | 1 << 31)  # −|x|
    q_lo, q_hi = J.exp_neg_lo(-lo), J.exp_neg_hi(-hi)
    if bits >> 31:
        return (W.div(W.q64(q_lo, False), W.q64(ONE + q_lo, True), False),
                W.div(W.q64(q_hi, True), W.q64(ONE + q_hi, False), True))
    return W.div(W.ONE, W.q64(ONE + q_hi, True), False), W.div(W.ONE, W.q64(ONE + q_lo, False), True)


def _unary_calculus_check(node, ins, index, values, claimed):
    """silu = xσ(x); silu_backward = gσ(1 + x(1 − σ)); tanh_backward = g(1 − y²);
    sigmoid_backward = g(1 − y)y (docs/judge-programs.md §4.7), in wide arithmetic."""
    four_eta = W.mul(W.num(4), W.ETA, True)
    if node.op == "silu":
        x = W.f32(values[0][0])
        ends = W.scale(x, _sigmoid(values[0][0]))
        if W.cmp(x, W.num(-80)) < 0:  # exp(−x) may overflow to inf: an honest x/inf is −0
            ends = (ends[0], W.ZERO)
        return _enclosure(ends[0], ends[1], W.add_up(W.mul_up(W.gamma(12), W.magnitude(ends)), four_eta))
    g, x = W.f32(values[0][0]), W.f32(values[1][0])
    ag = W.absolute(g)
    if node.op == "tanh_backward":
        xx = W.mul(x, x, True)  # exact
        ends = W.scale(g, W.isub(W.point(W.ONE), W.point(xx)))
        tol = W.add_up(W.mul_up(W.gamma(3), ag, W.add(W.ONE, xx, True)), W.mul_up(W.add(ag, W.num(2), True), W.ETA))
        return _enclosure(ends[0], ends[1], tol)
    if node.op == "sigmoid_backward":
        gx = W.mul(g, x, True)  # exact
        ends = W.scale(gx, W.isub(W.point(W.ONE), W.point(x)))
        tol = W.add_up(W.mul_up(W.gamma(3), W.absolute(gx), W.add(W.ONE, W.absolute(x), True)),
                       W.mul_up(W.num(3), W.add(ag, W.ONE, True), W.ETA))
        return _enclosure(ends[0], ends[1], tol)
    sig = _sigmoid(values[1][0])
    f = None
    for s in sig:  # σ(1 + x(1 − σ)) at both ends of the enclosure
        v = W.scale(s, W.iadd(W.point(W.ONE), W.scale(x, W.isub(W.point(W.ONE), W.point(s)))))
        f = v if f is None else W.hull(f, v)
    if x[0] != 0:  # the parabola's vertex (1 + x)/(2x), if it may lie inside the enclosure
        one_x = W.iadd(W.point(W.ONE), W.point(x))
        two_x = W.mul(W.num(2), x, True)
        vertex = (W.smaller(W.div(one_x[0], two_x, False), W.div(one_x[1], two_x, False)),
                  W.larger(W.div(one_x[0], two_x, True), W.div(one_x[1], two_x, True)))
        if W.cmp(vertex[0], sig[1]) <= 0 and W.cmp(vertex[1], sig[0]) >= 0:
            top = W.imul(one_x, one_x)
            four_x = W.mul(W.num(4), x, True)
            f = W.hull(f, (W.smaller(W.div(top[0], four_x, False), W.div(top[1], four_x, False)),
                           W.larger(W.div(top[0], four_x, True), W.div(top[1], four_x, True))))
    ends = W.scale(g, f)
    tol = W.add_up(W.mul_up(W.gamma(16), ag, sig[1], W.add(W.ONE, W.mul(W.num(2), W.absolute(x), True), True)),
                   W.mul_up(W.num(4), W.add(ag, W.ONE, True), W.ETA))
    return _enclosure(ends[0], ends[1], tol)

_rule("silu", "silu_backward", "tanh_backward", "sigmoid_backward")((_pointwise_gather, _unary_calculus_check))


# ---- the elementwise ops judged by judge.py (PointwiseJudge on chain), inputs broadcast


def _finite_or_neg_inf(*bits: int) -> None:
    for b in bits:
        J.decode(b if b != NEG_INF else 0)


def _elementwise_check(node, ins, index, values, claimed):
    """add / relu / threshold_backward and codes 16–39 through judge.py's one-element rules; over
    int and bool operands only comparisons, maximum / minimum and where have a rule (exact); −inf,
    which only the additive attention mask brings, is exact too (``add`` keeps it, ``where``
    selects it)."""
    v = [vals[0] for vals in values]
    if any(inp.dtype == "f32" for inp in ins):  # PyTorch's promotion: int64 / bool operands to float32
        v = [x if inp.dtype == "f32" or (node.op == "where" and k == 0) else round_f32(x)
             for k, (inp, x) in enumerate(zip(ins, v))]
    elif node.op in J.COMPARE:
        return claimed == int({"eq": v[0] == v[1], "ne": v[0] != v[1], "lt": v[0] < v[1], "le": v[0] <= v[1],
                               "gt": v[0] > v[1], "ge": v[0] >= v[1]}[node.op])
    elif node.op in ("maximum", "minimum"):  # clamp of ids
        return claimed == (max if node.op == "maximum" else min)(v)
    elif node.op != "where":
        raise RuleError("rule: integer arithmetic has no rule")
    if node.op == "where":
        cond, a, b = v
        if node.dtype == "f32" and NEG_INF not in (a, b):
            return J.check(J.OP_CODES["where"], [a], [b], [cond], claimed)
        if node.dtype == "f32":
            _finite_or_neg_inf(a, b)
        chosen = a if cond else b
        return claimed == chosen or (node.dtype == "f32" and chosen != NEG_INF and _same(claimed, chosen))
    if node.op == "add":
        if NEG_INF in v:  # −inf + finite (or −inf) = −inf exactly
            _finite_or_neg_inf(*v)
            return claimed == NEG_INF
        return J.check_add(v[0], v[1], claimed)
    if node.op == "relu":
        return J.check_relu(v[0], claimed)
    if node.op == "threshold_backward":  # g where x > threshold, else 0 (exact)
        g, x = v
        J.decode(g)
        J.decode(x)
        return J.is_finite(claimed) and (J._same_value(claimed, g) if value(x) > value(node.attrs[0])
                                         else claimed & 0x7FFFFFFF == 0)
    return J.check(J.OP_CODES[node.op], v[:1], v[1:], [], claimed)


_rule("add", "relu", "threshold_backward", *J.POINTWISE)((_pointwise_gather, _elementwise_check))


# ------------------------------------------------------------------------------------ entry points


def rule_for(node: Node) -> Rule:
    rule = RULES.get(node.op)
    if rule is None:
        raise RuleError(f"rule: op {node.op!r} has no program rule here")
    return rule


def needs_values(node: Node) -> bool:
    """True where the reads depend on input values (see the module docstring)."""
    return rule_for(node).two_stage


def element_inputs(node: Node, input_nodes: Sequence[Node], index: int,
                   first: Sequence[Sequence[int]] | None = None) -> Index:
    """Input elements that decide flat output element ``index`` of ``node``: ``[(position, flat
    indices)]``.  For two-stage ops, without ``first`` only the first stage (see module doc)."""
    rule = rule_for(node)
    if len(input_nodes) != len(node.inputs):
        raise RuleError("rule: wrong number of input nodes")
    if not 0 <= index < node.numel:
        raise RuleError("rule: index out of range")
    if rule.two_stage:
        return rule.gather(node, input_nodes, index, first)
    return rule.gather(node, input_nodes, index)


# ops whose element is one long reduction the game can dissect into chunks of CHUNK terms:
# "products" (Σ a_t·b_t over reads 0 and 1, then the bias read, if any, as one last term) and
# "sums" (Σ of read 0)
DISSECTABLE: dict[str, str] = {
    "mm": "products", "bmm": "products", "addmm": "products", "conv2d": "products",
    "conv2d_grad_input": "products", "conv2d_grad_weight": "products",
    "sum": "sums", "conv2d_grad_bias": "sums", "layer_norm_grad_bias": "sums",
}
CHUNK = 64                            # terms of one chunk (MAX_READ on chain)
F32_ONE = 0x3F800000                  # float32 1.0: the factor of a bias term


def _dissect(node: Node, input_nodes: Sequence[Node], index: int) -> tuple[str, Index, int, int]:
    """(kind, uncapped reads, product count k, term count n) of a dissectable element."""
    kind = DISSECTABLE.get(node.op)
    if kind is None or node.dtype != "f32":
        raise RuleError("rule: not a dissectable reduction")
    reads = element_inputs(node, input_nodes, index)
    k = len(reads[0][1])
    return kind, reads, k, k + (len(reads) > 2)


def chunk_inputs(node: Node, input_nodes: Sequence[Node], index: int, t0: int) -> tuple[int, Index]:
    """(n, reads of terms [t0, min(t0 + CHUNK, n))) of the n-term reduction of element ``index``
    of a dissectable node: the reads of :func:`element_inputs` cut to those terms, in their order
    and positions; for products the two factor lists (empty in a chunk of the bias alone) and
    the bias read iff the bias, term n − 1, is in the chunk."""
    kind, reads, k, n = _dissect(node, input_nodes, index)
    if t0 % CHUNK or not 0 <= t0 < n:
        raise RuleError("rule: no such chunk")
    t1 = min(t0 + CHUNK, n)
    if kind == "sums":
        return n, [(reads[0][0], reads[0][1][t0:t1])]
    out = [(pos, idx[t0:min(t1, k)]) for pos, idx in reads[:2]]
    if len(reads) > 2 and t0 <= n - 1 < t1:
        out.append(reads[2])
    return n, out


def reduction_terms(node: Node, input_nodes: Sequence[Node], index: int,
                    input_values: Sequence[Sequence[int]]) -> tuple[str, list[int], list[int]]:
    """The whole reduction of a dissectable element as (kind, a, b), ``input_values`` being the
    values of the uncapped :func:`element_inputs`: for products a = left factors + bias values,
    b = right factors + float32 1.0 per bias value; for sums a = the summed values, b = []."""
    kind, reads, _, _ = _dissect(node, input_nodes, index)
    _match(reads, input_values, input_nodes)
    if kind == "sums":
        return kind, list(input_values[0]), []
    bias = list(input_values[2]) if len(reads) > 2 else []
    return kind, list(input_values[0]) + bias, list(input_values[1]) + [F32_ONE] * len(bias)


def _check_values(dtype: str, values: Sequence[int]) -> None:
    for v in values:
        if not isinstance(v, int):
            raise RuleError("rule: values must be ints")
        if dtype == "f32" and not 0 <= v < 1 << 32:
            raise RuleError("rule: not a float32 bit pattern")
        if dtype == "bool" and v not in (0, 1):
            raise RuleError("rule: not a bool")
        if dtype == "i64" and not -(1 << 63) <= v < 1 << 63:
            raise RuleError("rule: not an int64")


def _match(reads: Index, input_values: Sequence[Sequence[int]], input_nodes: Sequence[Node]) -> None:
    if len(input_values) != len(reads) or any(len(v) != len(r[1]) for v, r in zip(input_values, reads)):
        raise RuleError("rule: input values do not match the reads")
    for (position, _), values in zip(reads, input_values):
        _check_values(input_nodes[position].dtype, values)


def check(node: Node, input_nodes: Sequence[Node], index: int, input_values: Sequence[Sequence[int]],
          claimed: int) -> bool:
    """Verdict for flat output element ``index``: ``input_values[k]`` are the values of the k-th
    read of :func:`element_inputs` (both stages for two-stage ops), in order."""
    verdict = _verdict(node, input_nodes, index, input_values, claimed)
    return verdict.accepts(claimed) if isinstance(verdict, Window) else verdict


def window(node: Node, input_nodes: Sequence[Node], index: int, input_values: Sequence[Sequence[int]]) -> Window | None:
    """The bound :func:`check` applies to a float32 element (None for exact ops: the claim must
    be one value).  For tests and for a challenger sizing a dispute."""
    verdict = _verdict(node, input_nodes, index, input_values, None)
    return verdict if isinstance(verdict, Window) else None


def _verdict(node, input_nodes, index, input_values, claimed):
    rule = rule_for(node)
    reads = element_inputs(node, input_nodes, index)
    if rule.two_stage:
        _match(reads, input_values[:len(reads)], input_nodes)
        reads = element_inputs(node, input_nodes, index, input_values[:len(reads)])
    _match(reads, input_values, input_nodes)
    if claimed is not None:
        _check_values(node.dtype, [claimed])
    return rule.check(node, input_nodes, index, input_values, 0 if claimed is None else claimed)


__all__ = ["CHUNK", "DISSECTABLE", "RULES", "Enclosure", "Linear", "Rule", "RuleError", "Moments", "Window", "check", "window", "element_inputs", "chunk_inputs", "gamma", "moments",
           "needs_values", "reduction_terms", "round_f32", "rule_for", "value"]
