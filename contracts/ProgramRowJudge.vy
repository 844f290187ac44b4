# pragma version 0.4.3
# pragma optimize codesize
"""
@title ProgramRowJudge
@notice The dissection inside a long softmax-family row (docs/judge-programs.md §5), for the
        ProgramReductionChecker: the exact partial of one chunk of a pivoted row, and the fold
        (an element against its row's totals) of pivoted and linear rows.
        Pivoted rows (softmax, safe_softmax, log_softmax): a partial is (sum e_lo, sum e_hi,
        key) over the chunk's live entries, e = the Q64 enclosure of exp(z_k - pivot), key =
        the largest entry's pivot key ((order of z + 2^31) << 32 | (2^32 - 1 - k)), which the
        game combines by maximum: the totals' key names the pivot.  Linear rows
        (softmax_grad: sum g_k y_k; log_softmax_grad: sum g_k): the judge's exact partials
        (Judge.check_chunk), and the gradient's window with the sum in [x - n, x + n] 2^G.
@dev    The Python reference is offchain/dispute/rows.py.  Totals no honest solver posts
        (a key naming no entry, sums out of range) make the fold fail.
"""

from judge import numeric
from judge import program
from judge import softmax
from judge import wide

CHUNK: constant(uint256) = 64
ONE: constant(uint256) = numeric.ONE
NEG_INF: constant(int256) = 4_286_578_688
MAG_MASK: constant(int256) = 2_147_483_647
SIGN_BIT: constant(int256) = 2_147_483_648
MAX_FINITE: constant(int256) = 2_139_095_039
KEY_MASK: constant(int256) = 4_294_967_295
# the key of a run without a live entry (the game's floor)
NO_PIVOT: constant(int256) = numeric.LONG_TOP_FLOOR
# the longest row (the Q64 log enclosure takes S < 2^16)
MAX_ROW: constant(uint256) = 32_768
# honest linear totals: exponents of products of finite float32, absolute sums below 2^231
TOP_CEIL: constant(int256) = 208
MAX_ABS: constant(uint256) = 2**231


@external
@pure
def check_chunk(row: DynArray[uint32, CHUNK], t0: uint256, n: uint256, top: int256, x: int256, abs_sum: uint256, leaf_top: int256) -> bool:
    """
    @notice Whether (x, abs_sum, leaf_top) is exactly the partial of the entries t0, t0 + 1,
            ... (`row`, float32 bits, -inf where masked) of a pivoted row of n entries against
            the pivot the totals' key `top` names.
    """
    has_pivot: bool = top != NO_PIVOT
    pivot: uint32 = 0
    m: uint256 = 0
    m_lo: int256 = 0
    m_hi: int256 = 0
    if has_pivot:
        ok: bool = False
        ok, pivot, m = self._pivot(top, n)
        if not ok:
            return False
        m_lo, m_hi = numeric._to_q64(pivot)
    s_lo: uint256 = 0
    s_hi: uint256 = 0
    key: int256 = NO_PIVOT
    for i: uint256 in range(len(row), bound=CHUNK):
        v: int256 = convert(row[i], int256)
        if v == NEG_INF:
            continue
        if not has_pivot:
            return False
        k: uint256 = t0 + i
        lo: uint256 = ONE
        hi: uint256 = ONE
        if k != m:
            lo, hi = softmax._exp_term(m_lo, m_hi, row[i])
        s_lo += lo
        s_hi += hi
        key = max(key, self._key(v, k))
    return x == convert(s_lo, int256) and abs_sum == s_hi and leaf_top == key


@external
@pure
def check_pivoted(op: uint256, n: uint256, j: uint256, z: int256, x: int256, abs_sum: uint256, top: int256, claimed: int256) -> bool:
    """
    @notice The fold of a pivoted row: entry j (z, its input) of a row of n against the totals
            (x, abs_sum, top) = (S_lo, S_hi, the pivot's key).
    """
    if top == NO_PIVOT:
        # no live entry: safe_softmax gives 0, softmax NaN
        return op == program.OP_SAFE_SOFTMAX and claimed & MAG_MASK == 0
    ok: bool = False
    pivot: uint32 = 0
    m: uint256 = 0
    ok, pivot, m = self._pivot(top, n)
    if not ok or x < convert(ONE, int256) or convert(x, uint256) > abs_sum or abs_sum > n * ONE:
        return False
    if z == NEG_INF:
        if op == program.OP_LOG_SOFTMAX:
            return claimed == NEG_INF
        return claimed & MAG_MASK == 0
    e_lo: uint256 = ONE
    e_hi: uint256 = ONE
    if j != m:
        m_lo: int256 = 0
        m_hi: int256 = 0
        m_lo, m_hi = numeric._to_q64(pivot)
        e_lo, e_hi = softmax._exp_term(m_lo, m_hi, convert(z, uint32))
    return softmax._window(op, n, pivot, convert(z, uint32), j == m, e_lo, e_hi, convert(x, uint256), abs_sum, claimed)


@external
@pure
def check_linear(op: uint256, n: uint256, g: int256, y: int256, x: int256, abs_sum: uint256, top: int256, claimed: int256) -> bool:
    """
    @notice The fold of a linear row: entry j (g_j, and y_j of the output row for softmax_grad
            or of log_softmax_grad's output input) against the totals (x, abs_sum, top) of the
            judge's partials at the scale 2^G the top and the claim set.
    """
    if op == program.OP_LOG_SOFTMAX_GRAD and y == NEG_INF:
        # exp(-inf) = 0: exactly g_j
        return numeric._is_finite(convert(claimed, uint32)) and (claimed == g or (claimed & MAG_MASK == 0 and g & MAG_MASK == 0))
    if top < NO_PIVOT or top > TOP_CEIL or abs_sum > MAX_ABS or convert(abs(x), uint256) > abs_sum:
        return False
    scale: int256 = numeric._reduction_scale(top, convert(claimed, uint32))
    count: int256 = convert(n, int256)
    total: wide.Span = wide.Span(lo=wide._round(x - count, scale, False), hi=wide._round(x + count, scale, True))
    return softmax._grad_window(op, count, g, y, total, wide._round(convert(abs_sum, int256), scale, True), claimed)


@internal
@pure
def _key(v: int256, k: uint256) -> int256:
    """
    @notice The pivot key of entry k of value v: larger for a larger value, then a smaller k.
    """
    order: int256 = v & MAG_MASK
    if v & SIGN_BIT != 0:
        order = -order
    return (order + SIGN_BIT) << 32 | (KEY_MASK - convert(k, int256))


@internal
@pure
def _pivot(top: int256, n: uint256) -> (bool, uint32, uint256):
    """
    @notice (whether it names an entry, its float32 bits, its index) of a pivot key in a row of n.
    """
    if top < 0 or top >= 2**64 or n > MAX_ROW:
        return False, 0, 0
    order: int256 = (top >> 32) - SIGN_BIT
    k: int256 = KEY_MASK - (top & KEY_MASK)
    if k >= convert(n, int256) or abs(order) > MAX_FINITE:
        return False, 0, 0
    bits: int256 = order
    if order < 0:
        bits = SIGN_BIT | -order
    return True, convert(bits, uint32), convert(k, uint256)
