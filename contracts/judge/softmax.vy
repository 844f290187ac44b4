# pragma version 0.4.3
"""
@title softmax
@notice The windows of the softmax family (docs/judge-programs.md §4.3), shared by the rules
        over a whole row (ProgramJudge, ProgramNonlinearJudge) and over a dissected one
        (ProgramRowJudge): a forward entry given the row's pivot (its largest entry) and the
        Q64 enclosures of exp(z_j - pivot) and S = sum exp(z_k - pivot); a gradient entry
        given an interval of the row's sum.
@dev    The Python reference is offchain/dispute/program_rules.py (exp_term,
        softmax_window, softmax_grad_window).
"""

from . import numeric
from . import program
from . import wide

ONE: constant(uint256) = numeric.ONE
ONE_SQ: constant(uint256) = numeric.ONE_SQ
U_INV: constant(uint256) = numeric.U_INV
# softmax tolerance in units of u: (24 + 2C) P_hi + 2; log_softmax: 16 + 2C + 8 ceil(log2 C) + 8(|m| + |z_j|)
SOFTMAX_CONST: constant(uint256) = 24
LOG_SOFTMAX_CONST: constant(uint256) = 16
PER_CLASS: constant(uint256) = 2
PER_LOG2: constant(uint256) = 8
PER_MAG: constant(uint256) = 8


@internal
@pure
def _exp_term(m_lo: int256, m_hi: int256, z: uint32) -> (uint256, uint256):
    """
    @notice Q64 enclosure of exp(z - m) for a finite entry z of a row whose largest entry m
            has the Q64 enclosure [m_lo, m_hi].
    """
    z_lo: int256 = 0
    z_hi: int256 = 0
    z_lo, z_hi = numeric._to_q64(z)
    return numeric._exp_neg_lo(convert(max(m_hi - z_lo, 0), uint256)), numeric._exp_neg_hi(convert(max(m_lo - z_hi, 0), uint256))


@internal
@pure
def _window(
    op: uint256,
    n: uint256,
    pivot: uint32,
    z: uint32,
    at_pivot: bool,
    e_lo: uint256,
    e_hi: uint256,
    s_lo: uint256,
    s_hi: uint256,
    claimed: int256,
) -> bool:
    """
    @notice Entry z (finite) of a softmax / safe_softmax / log_softmax row of n entries whose
            largest entry is `pivot` (z itself iff `at_pivot`): P = e / S or (z - pivot) -
            log S from [e_lo, e_hi] and [s_lo, s_hi], and the window [lo - tol - u|c|, hi +
            tol + u|c|], compared exactly in units of 2^-88.
    """
    m_lo: int256 = 0
    m_hi: int256 = 0
    m_lo, m_hi = numeric._to_q64(pivot)
    edge_lo: int256 = 0
    edge_hi: int256 = 0
    tol: int256 = 0
    if op == program.OP_LOG_SOFTMAX:
        j_lo: int256 = 0
        j_hi: int256 = 0
        j_lo, j_hi = numeric._to_q64(z)
        if not at_pivot:
            edge_lo = j_lo - m_hi
            edge_hi = j_hi - m_lo
        edge_lo -= convert(numeric._log_hi(s_hi), int256)
        edge_hi -= convert(numeric._log_lo(s_lo), int256)
        mags: int256 = max(abs(m_lo), abs(m_hi)) + max(abs(j_lo), abs(j_hi))
        tol = convert((LOG_SOFTMAX_CONST + PER_CLASS * n + PER_LOG2 * numeric._clog2(n)) * ONE + U_INV, int256) + convert(PER_MAG, int256) * mags
    else:
        edge_lo = convert(e_lo * ONE // s_hi, int256)
        p_hi: uint256 = min(numeric._ceil_div(e_hi * ONE, s_lo), ONE)
        edge_hi = convert(p_hi, int256)
        tol = convert((SOFTMAX_CONST + PER_CLASS * n) * p_hi + 2 * ONE + U_INV, int256)
    return self._within(edge_lo * convert(U_INV, int256) - tol, edge_hi * convert(U_INV, int256) + tol, claimed)


@internal
@pure
def _within(lo: int256, hi: int256, claimed: int256) -> bool:
    """
    @notice Whether a finite claim c meets lo - u|c| <= c * 2^88 <= hi + u|c| (lo, hi in units
            of 2^-88, |lo|, |hi| < 2^230), exactly.
    """
    if not numeric._is_finite(convert(claimed, uint32)):
        return False
    neg: bool = False
    mant: uint256 = 0
    exp: int256 = 0
    neg, mant, exp = numeric._decode(convert(claimed, uint32))
    # c + u|c| and c - u|c| in units of 2^(exp - 24)
    up: int256 = convert(mant * (U_INV + 1), int256)
    down: int256 = convert(mant * (U_INV - 1), int256)
    if neg:
        swap: int256 = up
        up = -down
        down = -swap
    return self._cmp(up, exp + 64, lo) >= 0 and self._cmp(down, exp + 64, hi) <= 0


@internal
@pure
def _cmp(a: int256, d: int256, b: int256) -> int256:
    """
    @notice The sign of a * 2^d - b, for |a| < 2^49, -85 <= d <= 168, |b| < 2^230.
    """
    x: int256 = 0
    y: int256 = b
    if d >= 0:
        x = a * convert(1 << convert(d, uint256), int256)
    elif abs(b) >= 2**170:
        # |b 2^-d| > 2^170 > |a|
        y = 0
        x = -b
    else:
        x = a
        y = b * convert(1 << convert(-d, uint256), int256)
    if x > y:
        return 1
    if x < y:
        return -1
    return 0


@internal
@pure
def _exp(v: int256) -> wide.Span:
    """
    @notice Enclosure of exp(v) for a finite float32 v (Q64).
    """
    lo: int256 = 0
    hi: int256 = 0
    lo, hi = numeric._to_q64(convert(v, uint32))
    if hi <= 0:
        return wide.Span(
            lo=wide._q64(numeric._exp_neg_lo(convert(-lo, uint256)), False),
            hi=wide._q64(numeric._exp_neg_hi(convert(-hi, uint256)), True),
        )
    down: uint256 = numeric._exp_neg_lo(convert(hi, uint256))
    assert down != 0, "rule: exp argument too large"
    low: uint256 = 0
    if lo < 0:
        low = numeric._exp_neg_lo(convert(-lo, uint256))
    else:
        low = ONE_SQ // numeric._exp_neg_hi(convert(lo, uint256))
    return wide.Span(lo=wide._q64(low, False), hi=wide._q64(numeric._ceil_div(ONE_SQ, down), True))


@internal
@pure
def _grad_window(op: uint256, n: int256, g: int256, y: int256, total: wide.Span, mag: wide.Wide, claimed: int256) -> bool:
    """
    @notice Entry j of a softmax-family gradient row of n entries: softmax_grad y_j (g_j -
            sum g_k y_k), log_softmax_grad g_j - exp(y_j) sum g_k (y_j finite), given g_j,
            y_j, an interval `total` of the row's sum and `mag` >= the sum of its terms'
            magnitudes.
    """
    gj: wide.Wide = wide._f32(g)
    eta: wide.Wide = wide._round(1, numeric.ETA_EXP, True)
    ends: wide.Span = empty(wide.Span)
    tol: wide.Wide = empty(wide.Wide)
    if op == program.OP_SOFTMAX_GRAD:
        yj: wide.Wide = wide._f32(y)
        ay: wide.Wide = wide._abs(yj)
        ends = wide._scale(yj, wide._isub(wide._point(gj), total))
        tol = wide._add_up(
            wide._add_up(
                wide._mul_up(wide._mul_up(ay, wide._gamma(convert(n + 2, uint256))), mag),
                wide._mul_up(wide._gamma(2), wide._abs(wide._mul(yj, gj, True))),
            ),
            wide._mul_up(wide._add_up(wide._mul_up(wide._num(4 * n), wide._larger(ay, wide._num(1))), wide._num(4)), eta),
        )
    else:
        e: wide.Span = self._exp(y)
        ends = wide._isub(wide._point(gj), wide._imul(e, total))
        tol = wide._add_up(
            wide._mul_up(wide._mul_up(e.hi, mag), wide._gamma(convert(n + 10, uint256))),
            wide._mul_up(
                wide._add_up(
                    wide._add_up(wide._mul_up(wide._num(2 * n), wide._add_up(e.hi, wide._num(1))), wide._mul_up(wide._num(2), mag)),
                    wide._num(4),
                ),
                eta,
            ),
        )
    return wide._accepts(ends.lo, ends.hi, tol, True, True, claimed)
