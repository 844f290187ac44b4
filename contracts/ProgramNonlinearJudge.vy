# pragma version 0.4.3
# pragma optimize codesize
"""
@title ProgramNonlinearJudge
@notice Stateless verdicts of the non-linear program rules (docs/judge-programs.md §4.3,
        §4.5-§4.7), called by ProgramJudge once it has checked the reads and values:
        softmax_grad, log_softmax_grad, layer_norm / group_norm with their mean and rstd,
        layer_norm_grad_input and _weight, silu, silu_backward, tanh_backward and
        sigmoid_backward.
@dev    Every bound is computed in directed-rounding wide floats (judge/wide.vy) and the
        claim compared with its outward-rounded edges exactly.  The Python reference is
        offchain/dispute/program_rules.py (the same rules over offchain/dispute/wide.py);
        tests/judge/test_program_judge.py checks the verdicts agree.
"""

from judge import numeric
from judge import program
from judge import softmax
from judge import wide

MAX_INPUTS: constant(uint256) = program.MAX_INPUTS
MAX_READ: constant(uint256) = program.MAX_READ
MAX_LISTS: constant(uint256) = program.MAX_LISTS
MAX_TERMS: constant(uint256) = wide.MAX_TERMS
NEG_INF: constant(int256) = 4_286_578_688
SIGN_BIT: constant(int256) = 2_147_483_648
MAG_MASK: constant(int256) = 2_147_483_647
ONE: constant(uint256) = numeric.ONE
ONE_SQ: constant(uint256) = numeric.ONE_SQ
# docs/judge-programs.md §4.5: mean error <= K_MEAN gamma_N sum|x| / N; variance K_VAR; 8u for rstd
K_MEAN: constant(int256) = 4
K_VAR: constant(int256) = 8
F_UNIT: constant(int256) = 8


@external
@pure
def check(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS],
    claimed: int256,
) -> bool:
    """
    @notice Verdict on flat output element `index` of `node` (values as ProgramJudge.check's,
            already matched against the reads).
    @return True iff the claim lies in the rule's window.
    """
    op: uint256 = node.op
    if op == program.OP_SILU or (op >= program.OP_TANH_BACKWARD and op <= program.OP_SILU_BACKWARD):
        return self._calculus(op, values, claimed)
    if op >= program.OP_SOFTMAX_GRAD and op <= program.OP_LOG_SOFTMAX_GRAD:
        at: uint256 = 0
        _: uint256 = 0
        _, _, at = program._along(node.shape, index, node.attrs[0])
        return self._softmax_grad(op, values, at, claimed)
    if op == program.OP_LAYER_NORM_GRAD_INPUT:
        return self._ln_grad_input(values, index, claimed)
    if op == program.OP_LAYER_NORM_GRAD_WEIGHT:
        return self._ln_grad_weight(values, claimed)
    if op >= program.OP_LAYER_NORM and op <= program.OP_GROUP_NORM_RSTD:
        return self._norm(node, values, index, claimed)
    raise "rule: op has no program rule on chain"


@internal
@pure
def _window(w: wide.Span, tol: wide.Wide, claimed: int256) -> bool:
    return wide._accepts(w.lo, w.hi, tol, True, True, claimed)


@internal
@pure
def _eta(n: int256) -> wide.Wide:
    """
    @notice n * 2^-126.
    """
    return wide._round(n, numeric.ETA_EXP, True)


@internal
@pure
def _floats(xs: DynArray[int256, MAX_READ]) -> DynArray[wide.Wide, MAX_TERMS]:
    out: DynArray[wide.Wide, MAX_TERMS] = []
    for v: int256 in xs:
        out.append(wide._f32(v))
    return out


@internal
@pure
def _products(a: DynArray[wide.Wide, MAX_TERMS], b: DynArray[wide.Wide, MAX_TERMS]) -> DynArray[wide.Wide, MAX_TERMS]:
    """
    @notice a_k b_k (exact: products of at most three float32).
    """
    out: DynArray[wide.Wide, MAX_TERMS] = []
    for k: uint256 in range(len(a), bound=MAX_TERMS):
        out.append(wide._mul(a[k], b[k], True))
    return out


# ╔═══════════════════════════════════════════════════════════════╗
# ║ POINTWISE (§4.7)                                              ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _sigmoid(v: int256) -> wide.Span:
    """
    @notice Enclosure of 1 / (1 + exp(-x)) from q = exp(-|x|) (Q64): 1 / (1 + q) for x >= 0,
            q / (1 + q) for x < 0.
    """
    lo: int256 = 0
    hi: int256 = 0
    lo, hi = numeric._to_q64(convert(v | SIGN_BIT, uint32))
    q_lo: uint256 = numeric._exp_neg_lo(convert(-lo, uint256))
    q_hi: uint256 = numeric._exp_neg_hi(convert(-hi, uint256))
    if v >= SIGN_BIT:
        return wide.Span(
            lo=wide._div(wide._q64(q_lo, False), wide._q64(ONE + q_lo, True), False),
            hi=wide._div(wide._q64(q_hi, True), wide._q64(ONE + q_hi, False), True),
        )
    one: wide.Wide = wide._num(1)
    return wide.Span(lo=wide._div(one, wide._q64(ONE + q_hi, True), False), hi=wide._div(one, wide._q64(ONE + q_lo, False), True))


@internal
@pure
def _calculus(op: uint256, values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS], claimed: int256) -> bool:
    """
    @notice silu = x sigma(x); silu_backward = g sigma (1 + x(1 - sigma)); tanh_backward =
            g(1 - y^2); sigmoid_backward = g(1 - y)y.
    """
    one: wide.Wide = wide._num(1)
    if op == program.OP_SILU:
        x: wide.Wide = wide._f32(values[0][0])
        ends: wide.Span = wide._scale(x, self._sigmoid(values[0][0]))
        if wide._cmp(x, wide._num(-80)) < 0:
            # exp(-x) may overflow to inf: an honest x / inf is -0
            ends.hi = empty(wide.Wide)
        return self._window(ends, wide._add_up(wide._mul_up(wide._gamma(12), wide._magnitude(ends)), self._eta(4)), claimed)
    g: wide.Wide = wide._f32(values[0][0])
    y: wide.Wide = wide._f32(values[1][0])
    ag: wide.Wide = wide._abs(g)
    if op == program.OP_TANH_BACKWARD:
        yy: wide.Wide = wide._mul(y, y, True)
        tol: wide.Wide = wide._add_up(
            wide._mul_up(wide._mul_up(wide._gamma(3), ag), wide._add_up(one, yy)),
            wide._mul_up(wide._add_up(ag, wide._num(2)), self._eta(1)),
        )
        return self._window(wide._scale(g, wide._isub(wide._point(one), wide._point(yy))), tol, claimed)
    if op == program.OP_SIGMOID_BACKWARD:
        gy: wide.Wide = wide._mul(g, y, True)
        tol: wide.Wide = wide._add_up(
            wide._mul_up(wide._mul_up(wide._gamma(3), wide._abs(gy)), wide._add_up(one, wide._abs(y))),
            wide._mul_up(wide._mul_up(wide._num(3), wide._add_up(ag, one)), self._eta(1)),
        )
        return self._window(wide._scale(gy, wide._isub(wide._point(one), wide._point(y))), tol, claimed)
    sig: wide.Span = self._sigmoid(values[1][0])
    f: wide.Span = self._silu_factor(sig.lo, y)
    f = wide._hull(f, self._silu_factor(sig.hi, y))
    if y.m != 0:
        # the parabola's vertex (1 + x) / (2x), if it may lie inside the enclosure
        one_x: wide.Span = wide._iadd(wide._point(one), wide._point(y))
        vertex: wide.Span = self._over(one_x, wide._mul(wide._num(2), y, True))
        if wide._cmp(vertex.lo, sig.hi) <= 0 and wide._cmp(vertex.hi, sig.lo) >= 0:
            f = wide._hull(f, self._over(wide._imul(one_x, one_x), wide._mul(wide._num(4), y, True)))
    tol: wide.Wide = wide._add_up(
        wide._mul_up(
            wide._mul_up(wide._mul_up(wide._gamma(16), ag), sig.hi),
            wide._add_up(one, wide._mul(wide._num(2), wide._abs(y), True)),
        ),
        wide._mul_up(wide._mul_up(wide._num(4), wide._add_up(ag, one)), self._eta(1)),
    )
    return self._window(wide._scale(g, f), tol, claimed)


@internal
@pure
def _silu_factor(s: wide.Wide, x: wide.Wide) -> wide.Span:
    """
    @notice s (1 + x (1 - s)).
    """
    one: wide.Span = wide._point(wide._num(1))
    return wide._scale(s, wide._iadd(one, wide._scale(x, wide._isub(one, wide._point(s)))))


@internal
@pure
def _over(a: wide.Span, d: wide.Wide) -> wide.Span:
    """
    @notice The interval a divided by d != 0 (either sign).
    """
    return wide.Span(
        lo=wide._smaller(wide._div(a.lo, d, False), wide._div(a.hi, d, False)),
        hi=wide._larger(wide._div(a.lo, d, True), wide._div(a.hi, d, True)),
    )


# ╔═══════════════════════════════════════════════════════════════╗
# ║ SOFTMAX GRADIENTS (§4.3)                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _softmax_grad(op: uint256, values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS], j: uint256, claimed: int256) -> bool:
    """
    @notice softmax_grad: y_j (g_j - sum g_k y_k); log_softmax_grad: g_j - exp(y_j) sum g_k
            (exactly g_j when y_j = -inf); the window of softmax._grad_window.
    """
    g_row: DynArray[int256, MAX_READ] = values[0]
    n: int256 = convert(len(g_row), int256)
    gs: DynArray[wide.Wide, MAX_TERMS] = self._floats(g_row)
    total: wide.Span = empty(wide.Span)
    mag: wide.Wide = empty(wide.Wide)
    y: int256 = values[1][0]
    if op == program.OP_SOFTMAX_GRAD:
        y = values[1][j]
        total, mag = wide._total(self._products(gs, self._floats(values[1])))
    elif y == NEG_INF:
        # exp(-inf) = 0: exactly g_j
        return numeric._is_finite(convert(claimed, uint32)) and (
            claimed == g_row[j] or (claimed & MAG_MASK == 0 and g_row[j] & MAG_MASK == 0)
        )
    else:
        total, mag = wide._total(gs)
    return softmax._grad_window(op, n, g_row[j], y, total, mag, claimed)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ NORMALISATION (§4.5, §4.6)                                    ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _moments(xs: DynArray[int256, MAX_READ], eps_bits: uint256) -> (wide.Span, wide.Wide, wide.Wide, wide.Wide, bool):
    """
    @notice (enclosure of the mean, mean allowance, rstd lower end, rstd upper end, whether
            the rstd is bounded above) of a row (docs/judge-programs.md §4.5).
    """
    x: DynArray[wide.Wide, MAX_TERMS] = self._floats(xs)
    total: wide.Span = empty(wide.Span)
    mag: wide.Wide = empty(wide.Wide)
    total, mag = wide._total(x)
    square: wide.Span = empty(wide.Span)
    _: wide.Wide = empty(wide.Wide)
    square, _ = wide._total(self._products(x, x))
    n: uint256 = len(xs)
    count: wide.Wide = wide._num(convert(n, int256))
    mean: wide.Span = wide._shrink(total, count)
    square = wide._shrink(square, count)
    var: wide.Span = wide._isub(square, wide._imul(mean, mean))
    eight_eta: wide.Wide = self._eta(8)
    mean_tol: wide.Wide = wide._add_up(
        wide._div(wide._mul_up(wide._mul_up(wide._num(K_MEAN), wide._gamma(n)), mag), count, True), eight_eta
    )
    var_tol: wide.Wide = wide._add_up(
        wide._add_up(
            wide._mul_up(wide._mul_up(wide._num(K_VAR), wide._gamma(n)), wide._sqrt_up(wide._mul(var.hi, square.hi, True))),
            wide._mul(mean_tol, mean_tol, True),
        ),
        eight_eta,
    )
    eps: wide.Wide = wide._f32(convert(eps_bits, int256))
    assert eps.m >= 0, "rule: negative epsilon"
    lo: wide.Wide = wide._mul(
        wide._rsqrt(wide._add_up(wide._add_up(var.hi, eps), var_tol), False),
        wide.Wide(m=convert(numeric.U_INV, int256) - F_UNIT, e=-24),
        False,
    )
    low: wide.Wide = wide._sub(wide._add(var.lo, eps, False), var_tol, False)
    if low.m <= 0:
        return mean, mean_tol, lo, empty(wide.Wide), False
    hi: wide.Wide = wide._mul(wide._rsqrt(low, True), wide.Wide(m=convert(numeric.U_INV, int256) + F_UNIT, e=-24), True)
    return mean, mean_tol, lo, hi, True


@internal
@pure
def _norm(node: program.Node, values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS], index: uint256, claimed: int256) -> bool:
    """
    @notice layer_norm / group_norm and their mean and rstd: the mean within its allowance,
            rstd in its window, the output (x - mu') r' w + b over the honest mu', r' plus
            gamma_4 (|x| + |mu| + D_mu) r_hi |w| + gamma_2 |b| + 8 eta.
    """
    op: uint256 = node.op
    eps: uint256 = node.attrs[1]
    if op >= program.OP_GROUP_NORM:
        eps = node.attrs[4]
    mean: wide.Span = empty(wide.Span)
    mean_tol: wide.Wide = empty(wide.Wide)
    r: wide.Span = empty(wide.Span)
    bounded: bool = False
    mean, mean_tol, r.lo, r.hi, bounded = self._moments(values[0], eps)
    if op == program.OP_LAYER_NORM_MEAN or op == program.OP_GROUP_NORM_MEAN:
        return self._window(mean, mean_tol, claimed)
    if op == program.OP_LAYER_NORM_RSTD or op == program.OP_GROUP_NORM_RSTD:
        return wide._accepts(r.lo, r.hi, self._eta(2), True, bounded, claimed)
    if not bounded:
        # the variance is lost in rounding: any finite value
        return numeric._is_finite(convert(claimed, uint32))
    has_w: uint256 = node.attrs[len(node.attrs) - 2]
    d: uint256 = len(values[0])
    x: wide.Wide = wide._f32(values[0][index % d])
    w: wide.Wide = wide._num(1)
    b: wide.Wide = empty(wide.Wide)
    if has_w != 0:
        w = wide._f32(values[1][0])
    if node.attrs[len(node.attrs) - 1] != 0:
        b = wide._f32(values[1 + has_w][0])
    centred: wide.Span = wide.Span(
        lo=wide._sub(wide._sub(x, mean.hi, False), mean_tol, False),
        hi=wide._add(wide._sub(x, mean.lo, True), mean_tol, True),
    )
    ends: wide.Span = wide._iadd(wide._scale(w, wide._imul(centred, r)), wide._point(b))
    tol: wide.Wide = wide._add_up(
        wide._add_up(
            wide._mul_up(
                wide._mul_up(
                    wide._mul_up(wide._gamma(4), wide._add_up(wide._add_up(wide._abs(x), wide._magnitude(mean)), mean_tol)),
                    r.hi,
                ),
                wide._abs(w),
            ),
            wide._mul_up(wide._gamma(2), wide._abs(b)),
        ),
        self._eta(8),
    )
    return self._window(ends, tol, claimed)


@internal
@pure
def _ln_grad_weight(values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS], claimed: int256) -> bool:
    """
    @notice sum_i g_i (x_i - mu_i) r_i over the M rows: gamma_{M+3} sum |g|(|x| + |mu|)|r|
            + (4M + 8)(1 + max |r|) eta.
    """
    # sum g r x - sum g r mu: products of three float32, exact
    m: uint256 = len(values[0])
    gr: DynArray[wide.Wide, MAX_TERMS] = self._products(self._floats(values[0]), self._floats(values[3]))
    plus: wide.Span = empty(wide.Span)
    plus_mag: wide.Wide = empty(wide.Wide)
    minus: wide.Span = empty(wide.Span)
    minus_mag: wide.Wide = empty(wide.Wide)
    plus, plus_mag = wide._total(self._products(gr, self._floats(values[1])))
    minus, minus_mag = wide._total(self._products(gr, self._floats(values[2])))
    total: wide.Span = wide._isub(plus, minus)
    mag: wide.Wide = wide._add_up(plus_mag, minus_mag)
    r_bits: int256 = 0
    for v: int256 in values[3]:
        r_bits = max(r_bits, v & MAG_MASK)
    r_max: wide.Wide = wide._f32(r_bits)
    tol: wide.Wide = wide._add_up(
        wide._mul_up(wide._gamma(m + 3), mag),
        wide._mul_up(wide._mul_up(wide._num(convert(4 * m + 8, int256)), wide._add_up(wide._num(1), r_max)), self._eta(1)),
    )
    return self._window(total, tol, claimed)


@internal
@pure
def _ln_grad_input(values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS], index: uint256, claimed: int256) -> bool:
    """
    @notice r gw_j - (r/N) db - (r^3/N)(ds - db mu)(x_j - mu), gw = g w, db = sum gw, ds =
            sum gw x, within gamma_{N+12} of its three magnitudes plus eta-terms (§4.6).
    """
    d: uint256 = len(values[0])
    j: uint256 = index % d
    one: wide.Wide = wide._num(1)
    gw: DynArray[wide.Wide, MAX_TERMS] = self._floats(values[0])
    if len(values) > 4:
        gw = self._products(gw, self._floats(values[4]))
    xs: DynArray[wide.Wide, MAX_TERMS] = self._floats(values[1])
    db: wide.Span = empty(wide.Span)
    ds: wide.Span = empty(wide.Span)
    db_abs: wide.Wide = empty(wide.Wide)
    ds_abs: wide.Wide = empty(wide.Wide)
    db, db_abs = wide._total(gw)
    ds, ds_abs = wide._total(self._products(gw, xs))
    gw_j: wide.Wide = gw[j]
    x: wide.Wide = xs[j]
    mu: wide.Wide = wide._f32(values[2][0])
    r: wide.Wide = wide._f32(values[3][0])
    count: wide.Wide = wide._num(convert(d, int256))
    first: wide.Wide = wide._mul(r, gw_j, True)
    second: wide.Span = wide._shrink(wide._scale(r, db), count)
    r3: wide.Wide = wide._mul(wide._mul(r, r, True), r, True)
    third: wide.Span = wide._shrink(
        wide._imul(wide._scale(r3, wide._isub(ds, wide._scale(mu, db))), wide._isub(wide._point(x), wide._point(mu))), count
    )
    ends: wide.Span = wide._isub(wide._isub(wide._point(first), second), third)
    ar: wide.Wide = wide._abs(r)
    amu: wide.Wide = wide._abs(mu)
    ax: wide.Wide = wide._abs(x)
    ar3: wide.Wide = wide._abs(r3)
    mags: wide.Wide = wide._add_up(
        wide._add_up(
            wide._abs(first),
            wide._div(wide._mul_up(wide._mul_up(ar3, wide._add_up(ds_abs, wide._mul_up(db_abs, amu))), wide._add_up(ax, amu)), count, True),
        ),
        wide._div(wide._mul_up(ar, db_abs), count, True),
    )
    tol: wide.Wide = wide._add_up(
        wide._mul_up(wide._gamma(d + 12), mags),
        wide._mul_up(
            wide._mul_up(
                wide._num(convert(4 * d + 16, int256)),
                wide._add_up(wide._add_up(one, ar), wide._mul_up(ar3, wide._add_up(wide._add_up(ax, amu), one))),
            ),
            self._eta(1),
        ),
    )
    return self._window(ends, tol, claimed)
